//! Reading `FeatureFlag` and `Segment` manifests from files: multi-document YAML or JSON,
//! strict about unknown fields, with every problem tied to its file, object and field.

use std::fmt;
use std::path::{Path, PathBuf};

use kube::Resource;
use serde::de::DeserializeOwned;

use rollgate_core::crd::FeatureFlag;
use rollgate_core::segment::Segment;
use rollgate_core::validate::{Violation, validate, validate_segment};

/// A file that could not be read or parsed at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// JSON manifests are read by the same parser (JSON is YAML), so the message says which
    /// the file claims to be.
    #[error("{}: malformed {}: {message}", path.display(), syntax_of(path))]
    Yaml { path: PathBuf, message: String },
    #[error("{}: no documents found", path.display())]
    Empty { path: PathBuf },
}

impl ManifestError {
    /// A short label for metrics and logs, as every error of the project has.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "manifest_read",
            Self::Yaml { .. } => "manifest_syntax",
            Self::Empty { .. } => "manifest_empty",
        }
    }
}

/// `JSON` for a `.json` file, else `YAML`.
fn syntax_of(path: &Path) -> &'static str {
    if path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"))
    {
        "JSON"
    } else {
        "YAML"
    }
}

/// One document of a manifest file.
#[derive(Debug)]
pub enum ManifestDocument {
    /// A FeatureFlag that parsed; `violations` is empty when it is valid.
    Flag {
        flag: Box<FeatureFlag>,
        violations: Vec<Violation>,
    },
    /// A Segment that parsed; `violations` is empty when it is valid.
    Segment {
        segment: Box<Segment>,
        violations: Vec<Violation>,
    },
    /// A FeatureFlag or Segment whose fields do not have the right shape.
    Malformed {
        /// `FeatureFlag` or `Segment`.
        kind: &'static str,
        name: String,
        violations: Vec<Violation>,
    },
    /// Some other kind (for example a Deployment next to the flags); reported, not checked.
    Other {
        api_version: String,
        kind: String,
        name: String,
    },
}

/// Every document of one file.
#[derive(Debug)]
pub struct ManifestFile {
    pub path: PathBuf,
    pub documents: Vec<ManifestDocument>,
}

impl ManifestFile {
    /// All violations as `file: kind/name: field.path: message` lines.
    pub fn violation_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for document in &self.documents {
            let violations = match document {
                ManifestDocument::Flag { violations, .. }
                | ManifestDocument::Segment { violations, .. }
                | ManifestDocument::Malformed { violations, .. } => violations,
                ManifestDocument::Other { .. } => continue,
            };
            for violation in violations {
                lines.push(format!("{}: {document}: {violation}", self.path.display()));
            }
        }
        lines
    }

    /// The valid segments of the file.
    pub fn valid_segments(&self) -> impl Iterator<Item = &Segment> {
        self.documents.iter().filter_map(|document| match document {
            ManifestDocument::Segment {
                segment,
                violations,
            } if violations.is_empty() => Some(&**segment),
            _ => None,
        })
    }

    /// The valid flags of the file.
    pub fn valid_flags(&self) -> impl Iterator<Item = &FeatureFlag> {
        self.documents.iter().filter_map(|document| match document {
            ManifestDocument::Flag { flag, violations } if violations.is_empty() => Some(&**flag),
            _ => None,
        })
    }
}

/// Reads and checks every document in `path`.
pub fn load_file(path: &Path) -> Result<ManifestFile, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(path, &text)
}

/// Parses manifest text; `path` is only used in messages.
pub fn parse_str(path: &Path, text: &str) -> Result<ManifestFile, ManifestError> {
    let values: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|error| ManifestError::Yaml {
            path: path.to_path_buf(),
            message: one_line(&error.to_string()),
        })?;
    let documents: Vec<ManifestDocument> = values
        .into_iter()
        .filter(|value| !value.is_null())
        .map(parse_document)
        .collect();
    if documents.is_empty() {
        return Err(ManifestError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(ManifestFile {
        path: path.to_path_buf(),
        documents,
    })
}

/// Loads the single FeatureFlag a command needs from `path`; any problem is one line of text.
pub fn load_one_flag(path: &Path) -> Result<FeatureFlag, String> {
    let file = load_file(path).map_err(|error| error.to_string())?;
    let problems = file.violation_lines();
    if let Some(first) = problems.first() {
        let more = problems.len() - 1;
        return Err(if more == 0 {
            first.clone()
        } else {
            format!("{first} (and {more} more; run `rollgate validate`)")
        });
    }
    let mut flags = file.valid_flags();
    match (flags.next(), flags.next()) {
        (Some(flag), None) => Ok(flag.clone()),
        (None, _) => Err(format!("{}: no FeatureFlag in file", path.display())),
        (Some(_), Some(_)) => Err(format!(
            "{}: more than one FeatureFlag in file; give a file with exactly one",
            path.display()
        )),
    }
}

fn parse_document(value: serde_json::Value) -> ManifestDocument {
    let text = |field: &str| {
        value
            .get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("apiVersion");
    let kind = text("kind");
    let name = value
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let (expected_api_version, kind_name): (_, &'static str) = if kind == FeatureFlag::kind(&()) {
        (FeatureFlag::api_version(&()), "FeatureFlag")
    } else if kind == Segment::kind(&()) {
        (Segment::api_version(&()), "Segment")
    } else {
        return ManifestDocument::Other {
            api_version,
            kind,
            name,
        };
    };
    if api_version != expected_api_version {
        return ManifestDocument::Malformed {
            kind: kind_name,
            name,
            violations: vec![Violation {
                path: "apiVersion".into(),
                message: format!("expected {expected_api_version}, found {api_version:?}"),
            }],
        };
    }
    let malformed = |violations| ManifestDocument::Malformed {
        kind: kind_name,
        name: name.clone(),
        violations,
    };
    if kind_name == "Segment" {
        return match from_value_strict::<Segment>(value) {
            Ok((segment, unknown_fields)) => {
                let mut violations = named(&segment.metadata, unknown_fields);
                violations.extend(validate_segment(&segment));
                ManifestDocument::Segment {
                    segment: Box::new(segment),
                    violations,
                }
            }
            Err(violations) => malformed(violations),
        };
    }
    match from_value_strict::<FeatureFlag>(value) {
        Ok((flag, unknown_fields)) => {
            let mut violations = named(&flag.metadata, unknown_fields);
            violations.extend(validate(&flag));
            ManifestDocument::Flag {
                flag: Box::new(flag),
                violations,
            }
        }
        Err(violations) => malformed(violations),
    }
}

/// `metadata.name: required` first when the object has no name, then `violations`.
fn named(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    violations: Vec<Violation>,
) -> Vec<Violation> {
    let missing = metadata.name.is_none().then(|| Violation {
        path: "metadata.name".into(),
        message: "required".into(),
    });
    missing.into_iter().chain(violations).collect()
}

/// Deserializes `value`. Unknown fields come back as violations next to the value; a type
/// error is reported with its path (plus any unknown fields seen before it).
pub fn from_value_strict<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<(T, Vec<Violation>), Vec<Violation>> {
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let ignored = serde_ignored::Deserializer::new(value, &mut record_unknown);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(ignored);
    let mut violations: Vec<Violation> = unknown
        .into_iter()
        // kube's derived type reads apiVersion and kind through its TypeMeta, not as fields.
        .filter(|path| path != "apiVersion" && path != "kind" && !path.starts_with("status"))
        .map(|path| Violation {
            path,
            message: "unknown field".into(),
        })
        .collect();
    match parsed {
        Ok(parsed) => Ok((parsed, violations)),
        Err(error) => {
            let path = error.path().to_string();
            violations.push(Violation {
                path: if path == "." {
                    "<document>".into()
                } else {
                    path
                },
                message: one_line(&error.into_inner().to_string()),
            });
            Err(violations)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for ManifestDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag { flag, .. } => write!(
                f,
                "FeatureFlag/{}",
                flag.metadata.name.as_deref().unwrap_or("<unnamed>")
            ),
            Self::Segment { segment, .. } => write!(
                f,
                "Segment/{}",
                segment.metadata.name.as_deref().unwrap_or("<unnamed>")
            ),
            Self::Malformed { kind, name, .. } => write!(f, "{kind}/{name}"),
            Self::Other {
                api_version,
                kind,
                name,
            } => write!(f, "{api_version} {kind}/{name}"),
        }
    }
}
