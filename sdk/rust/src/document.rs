//! The flag document the operator publishes (`flags.json`) and workloads read.
//! Described in `docs/flag-document.md`; JSON Schema in `sdk/flag-document.schema.json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The only document version this SDK understands.
pub const SCHEMA_VERSION: u32 = 1;

/// `{"schemaVersion": 1, "flags": {"<key>": {…}}}`. Keys are sorted so that the
/// published bytes, and their hash, depend only on content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagDocument {
    pub schema_version: u32,
    pub flags: BTreeMap<String, FlagEntry>,
}

/// One resolved flag as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagEntry {
    pub key: String,
    pub enabled: bool,
    /// Resolved rollout percent, 0–100 with 0.01 resolution.
    pub percent: f64,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Present for experiments: who is in, and the salt of the variant hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentAssignment>,
    /// Set once an experiment shipped its winner: every user resolves to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_variant: Option<String>,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub generation: i64,
    #[serde(default)]
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub name: String,
    /// Share of assigned users, in percent; a flag's weights sum to 100.
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAssignment {
    /// Percent of users in the experiment, 0.01 resolution.
    pub coverage: f64,
    pub salt: String,
}

/// Why a document could not be used.
#[derive(Debug)]
pub enum DocumentError {
    /// Not JSON, or JSON of the wrong shape; carries the path to the offending field.
    Malformed { path: String, message: String },
    /// A `schemaVersion` this SDK does not know.
    UnsupportedSchemaVersion { found: u64 },
    /// A flag stored under one key but naming another.
    KeyMismatch { map_key: String, flag_key: String },
    /// A field value outside its documented range.
    InvalidField {
        flag: String,
        field: &'static str,
        message: String,
    },
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { path, message } if path.is_empty() || path == "." => {
                write!(f, "malformed flag document: {message}")
            }
            Self::Malformed { path, message } => {
                write!(f, "malformed flag document at {path}: {message}")
            }
            Self::UnsupportedSchemaVersion { found } => write!(
                f,
                "unsupported flag document schemaVersion {found}; this SDK reads version {SCHEMA_VERSION}"
            ),
            Self::KeyMismatch { map_key, flag_key } => write!(
                f,
                "flag document entry flags.{map_key} has key {flag_key:?}; they must match"
            ),
            Self::InvalidField {
                flag,
                field,
                message,
            } => write!(f, "flag document entry flags.{flag}.{field}: {message}"),
        }
    }
}

impl std::error::Error for DocumentError {}

impl FlagDocument {
    /// An empty version-1 document.
    pub fn new() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            flags: BTreeMap::new(),
        }
    }

    /// Parses and checks a document. The version is checked before the shape, so a
    /// document from a newer operator says so instead of failing on a renamed field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DocumentError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VersionProbe {
            schema_version: Option<serde_json::Value>,
        }
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|error| DocumentError::Malformed {
                path: String::new(),
                message: error.to_string(),
            })?;
        match probe.schema_version {
            None => {
                return Err(DocumentError::Malformed {
                    path: "schemaVersion".into(),
                    message: "missing field".into(),
                });
            }
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {
            }
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => {
                return Err(DocumentError::UnsupportedSchemaVersion {
                    found: n.as_u64().unwrap_or_default(),
                });
            }
            Some(other) => {
                return Err(DocumentError::Malformed {
                    path: "schemaVersion".into(),
                    message: format!("expected a positive integer, found {other}"),
                });
            }
        }
        let document: FlagDocument =
            serde_json::from_slice(bytes).map_err(|error| DocumentError::Malformed {
                path: String::new(),
                message: error.to_string(),
            })?;
        document.check()?;
        Ok(document)
    }

    /// Serializes compactly; the same content always gives the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable_serialization())
    }

    fn check(&self) -> Result<(), DocumentError> {
        for (map_key, flag) in &self.flags {
            if &flag.key != map_key {
                return Err(DocumentError::KeyMismatch {
                    map_key: map_key.clone(),
                    flag_key: flag.key.clone(),
                });
            }
            let invalid = |field, message: String| DocumentError::InvalidField {
                flag: map_key.clone(),
                field,
                message,
            };
            if !(0.0..=100.0).contains(&flag.percent) {
                return Err(invalid(
                    "percent",
                    format!("{} is outside 0..100", flag.percent),
                ));
            }
            if !flag.variants.is_empty() {
                let total: f64 = flag.variants.iter().map(|v| v.weight).sum();
                if (total - 100.0).abs() > 1e-6 || flag.variants.iter().any(|v| v.weight < 0.0) {
                    return Err(invalid(
                        "variants",
                        format!("weights must be non-negative and sum to 100, got {total}"),
                    ));
                }
            }
            if let Some(experiment) = &flag.experiment
                && !(0.0..=100.0).contains(&experiment.coverage)
            {
                return Err(invalid(
                    "experiment.coverage",
                    format!("{} is outside 0..100", experiment.coverage),
                ));
            }
            if let Some(shipped) = &flag.shipped_variant
                && !flag.variants.iter().any(|v| &v.name == shipped)
            {
                return Err(invalid(
                    "shippedVariant",
                    format!("{shipped:?} is not one of the flag's variants"),
                ));
            }
        }
        Ok(())
    }
}

// Serializing plain structs of strings, numbers and maps with string keys cannot fail;
// non-finite floats serialize as null rather than erroring.
#[cold]
fn unreachable_serialization() -> String {
    String::from("{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schema_version_is_named() {
        let error = FlagDocument::from_json(br#"{"schemaVersion": 2, "flags": {}}"#).unwrap_err();
        assert!(error.to_string().contains("schemaVersion 2"), "{error}");
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        for input in [
            &b"{"[..],
            b"[]",
            b"null",
            b"{\"schemaVersion\":\"1\"}",
            b"\xff",
        ] {
            assert!(FlagDocument::from_json(input).is_err());
        }
        let error = FlagDocument::from_json(br#"{"schemaVersion":1,"flags":{"a":{"key":"a"}}}"#)
            .unwrap_err();
        assert!(error.to_string().contains("enabled"), "{error}");
    }

    #[test]
    fn mismatched_key_and_bad_percent_are_rejected() {
        let doc = br#"{"schemaVersion":1,"flags":{"a":{"key":"b","enabled":true,"percent":1}}}"#;
        assert!(matches!(
            FlagDocument::from_json(doc),
            Err(DocumentError::KeyMismatch { .. })
        ));
        let doc = br#"{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":101}}}"#;
        assert!(
            FlagDocument::from_json(doc)
                .unwrap_err()
                .to_string()
                .contains("flags.a.percent")
        );
    }

    #[test]
    fn round_trip_is_byte_stable() {
        let doc = br#"{"schemaVersion":1,"flags":{"b":{"key":"b","enabled":true,"percent":5.5},"a":{"key":"a","enabled":false,"percent":0}}}"#;
        let parsed = FlagDocument::from_json(doc).unwrap();
        let json = parsed.to_json();
        assert!(json.find("\"a\"").unwrap() < json.find("\"b\"").unwrap());
        assert_eq!(FlagDocument::from_json(json.as_bytes()).unwrap(), parsed);
    }
}
