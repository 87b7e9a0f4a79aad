//! The flag document the operator publishes (`flags.json`) and workloads read.
//! Described in `docs/flag-document.md`. The JSON Schema in `sdk/flag-document.schema.json` is
//! generated from these types (`json_schema`, feature `schema`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::{Version, parse_decimal};

/// The document version the operator writes: 2 added targeting rules and segments.
pub const SCHEMA_VERSION: u32 = 2;

/// Every version this SDK reads. Version 1 is version 2 without `targeting` and `segments`.
pub const READABLE_SCHEMA_VERSIONS: [u32; 2] = [1, 2];

/// The flag keys the operator accepts, 1–63 characters of a-z, 0-9, `.`, `_` or `-`, starting
/// and ending with a letter or digit. The schema requires it of map keys and of `key`; the
/// reader does not check it.
#[cfg(feature = "schema")]
const KEY_PATTERN: &str = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$";

/// `{"schemaVersion": 2, "flags": {"<key>": {…}}, "segments": {"<name>": {…}}}`. Keys are
/// sorted so that the published bytes, and their hash, depend only on content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        title = "Rollgate flag document, schemaVersion 2",
        description = "What the operator publishes under the ConfigMap key flags.json and what the SDKs read. See docs/flag-document.md.",
        extend("$id" = "https://rollgate.dev/schemas/flag-document-v2.json")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FlagDocument {
    #[cfg_attr(feature = "schema", schemars(extend("enum" = READABLE_SCHEMA_VERSIONS)))]
    pub schema_version: u32,
    #[cfg_attr(
        feature = "schema",
        schemars(extend("propertyNames" = { "pattern": KEY_PATTERN }))
    )]
    pub flags: BTreeMap<String, FlagEntry>,
    /// The segments the flags' `InSegment` conditions name, each once; absent when none is
    /// used. A segment missing here never matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, SegmentEntry>,
}

/// One resolved flag, as the operator writes it. Readers ignore properties they do not know
/// (new optional ones may be added within schemaVersion 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FlagEntry {
    /// The flag key; equals the map key.
    #[cfg_attr(feature = "schema", schemars(pattern(KEY_PATTERN)))]
    pub key: String,
    /// false: off for everyone (kill switch, rollback or kill).
    pub enabled: bool,
    /// Resolved rollout percent (exposure), 0–100 with 0.01 resolution.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub percent: f64,
    /// Users who are on while `enabled` is true, whatever the percent.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(max = 10000),
            inner(length(max = 253)),
            extend("uniqueItems" = true)
        )
    )]
    pub allowed_users: Vec<String>,
    /// Arms of an A/B test; their weights sum to 100.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Present for experiments: who is in, and the salt of the variant hash.
    // Never serialized as null, and the schema does not allow null (the SDKs read it as absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "ExperimentAssignment"))]
    pub experiment: Option<ExperimentAssignment>,
    /// Set once an experiment shipped; every user resolves to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_variant: Option<String>,
    /// Ordered rules on the evaluation context; the first that matches decides, after the
    /// kill switch and before everything else. Absent when the flag has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targeting: Vec<TargetingRule>,
    /// The FeatureFlag's phase, for display: Pending, Disabled, Static, Progressing, Paused,
    /// Complete, RolledBack, Killed or Invalid today. Readers must not depend on the set: it may
    /// grow within schemaVersion 1.
    #[serde(default)]
    pub phase: String,
    /// metadata.generation of the FeatureFlag this entry was resolved from.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub generation: i64,
    /// When the operator resolved this entry (RFC 3339).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("format" = "date-time")))]
    pub updated_at: String,
}

impl FlagEntry {
    /// The segments this flag's rules name, in rule order, repeats included.
    pub fn segments_used(&self) -> impl Iterator<Item = &str> {
        self.targeting
            .iter()
            .flat_map(|rule| &rule.conditions)
            .filter(|condition| condition.operator == Operator::InSegment)
            .flat_map(|condition| condition.values.iter().map(String::as_str))
    }
}

/// One arm of an A/B test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub name: String,
    /// Share of assigned users, in percent; a flag's weights sum to 100.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub weight: f64,
}

/// Who is in an experiment, and the salt of its variant hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAssignment {
    /// Percent of users in the experiment, 0.01 resolution.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub coverage: f64,
    pub salt: String,
}

/// One targeting rule: when every condition holds, `serve` decides the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TargetingRule {
    /// Unique within the flag; reported as the reason of the answers the rule decides.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub name: String,
    pub conditions: Vec<Condition>,
    pub serve: Serve,
}

/// One test on the evaluation context (`docs/targeting.md`, "Conditions").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The context attribute tested; `targetingKey` is the user id. Absent for `InSegment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    pub operator: Operator,
    /// Strings, as in label selectors; numeric and version operators parse theirs. Segment
    /// names for `InSegment`, empty for `Exists`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The operators of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Operator {
    In,
    NotIn,
    StartsWith,
    EndsWith,
    Contains,
    Lt,
    Lte,
    Gt,
    Gte,
    SemverLt,
    SemverGte,
    SemverEq,
    Exists,
    InSegment,
}

impl Operator {
    pub const ALL: [Operator; 14] = [
        Self::In,
        Self::NotIn,
        Self::StartsWith,
        Self::EndsWith,
        Self::Contains,
        Self::Lt,
        Self::Lte,
        Self::Gt,
        Self::Gte,
        Self::SemverLt,
        Self::SemverGte,
        Self::SemverEq,
        Self::Exists,
        Self::InSegment,
    ];

    /// The name as written in specs and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::StartsWith => "StartsWith",
            Self::EndsWith => "EndsWith",
            Self::Contains => "Contains",
            Self::Lt => "Lt",
            Self::Lte => "Lte",
            Self::Gt => "Gt",
            Self::Gte => "Gte",
            Self::SemverLt => "SemverLt",
            Self::SemverGte => "SemverGte",
            Self::SemverEq => "SemverEq",
            Self::Exists => "Exists",
            Self::InSegment => "InSegment",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a matching rule serves: exactly one of these, written `{"enabled": true}`,
/// `{"variant": "blue"}` or `{"percent": 37.5}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Serve {
    /// On (`true`) or off (`false`) for every matching user.
    Enabled(bool),
    /// On, with this variant (one of the flag's `variants`).
    Variant(String),
    /// On for matching users whose rollout rank is below this percent (0–100, 0.01
    /// resolution); the same rank as the flag's own percent.
    Percent(#[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))] f64),
}

/// A reusable audience, as published: a user is in when not `excluded` and either
/// `included` or matched by one of `rules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SegmentEntry {
    #[serde(default)]
    pub included: Vec<String>,
    /// Wins over `included` and `rules`.
    #[serde(default)]
    pub excluded: Vec<String>,
    #[serde(default)]
    pub rules: Vec<SegmentRule>,
}

/// A segment rule: a user matching every condition is in the segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SegmentRule {
    pub conditions: Vec<Condition>,
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
    /// A targeting rule or segment that breaks `docs/targeting.md`; `path` is the field, as
    /// `flags.checkout.targeting[1].conditions[0].values` or `segments.beta.rules[0].conditions`.
    InvalidTargeting { path: String, message: String },
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
                "unsupported flag document schemaVersion {found}; this SDK reads versions 1 and {SCHEMA_VERSION}"
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
            Self::InvalidTargeting { path, message } => {
                write!(f, "flag document field {path}: {message}")
            }
        }
    }
}

impl std::error::Error for DocumentError {}

impl FlagDocument {
    /// An empty document of the current version.
    pub fn new() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            flags: BTreeMap::new(),
            segments: BTreeMap::new(),
        }
    }

    /// Parses and checks a document. The version is checked before the shape, so a
    /// document from a newer operator says so instead of failing on a renamed field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DocumentError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VersionProbe {
            schema_version: Option<serde_json::Value>,
            shards: Option<serde::de::IgnoredAny>,
        }
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|error| DocumentError::Malformed {
                path: String::new(),
                message: error.to_string(),
            })?;
        if probe.shards.is_some() {
            return Err(DocumentError::Malformed {
                path: "shards".into(),
                message: "this is the index of a sharded document, not a document; read it \
                          with shards::parse_stored and put the shards together"
                    .into(),
            });
        }
        match probe.schema_version {
            None => {
                return Err(DocumentError::Malformed {
                    path: "schemaVersion".into(),
                    message: "missing field".into(),
                });
            }
            Some(serde_json::Value::Number(n))
                if n.as_u64().is_some_and(|found| {
                    READABLE_SCHEMA_VERSIONS.contains(&u32::try_from(found).unwrap_or(0))
                }) => {}
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

    /// The checks beyond the JSON shape that [`FlagDocument::from_json`] makes: keys match,
    /// ranges hold, weights sum to 100, and targeting rules and segments follow
    /// `docs/targeting.md`. For a document built in code; evaluation of a document that fails
    /// them is still defined (a malformed condition holds for no one).
    pub fn check(&self) -> Result<(), DocumentError> {
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
            check_targeting(map_key, flag)?;
        }
        for (name, segment) in &self.segments {
            check_segment(name, segment)?;
        }
        Ok(())
    }
}

/// Most targeting rules a flag has.
pub const MAX_RULES: usize = 32;
/// Most conditions a rule (of a flag or a segment) has.
pub const MAX_CONDITIONS: usize = 16;
/// Most values of `In`, `NotIn`, `StartsWith`, `EndsWith` and `Contains`.
pub const MAX_VALUES: usize = 100;
/// Most segments one `InSegment` condition names.
pub const MAX_SEGMENTS_PER_CONDITION: usize = 10;
/// Most user ids of a segment's `included`, and of its `excluded`.
pub const MAX_SEGMENT_USERS: usize = 10_000;

fn invalid_targeting(path: impl Into<String>, message: impl Into<String>) -> DocumentError {
    DocumentError::InvalidTargeting {
        path: path.into(),
        message: message.into(),
    }
}

fn check_targeting(key: &str, flag: &FlagEntry) -> Result<(), DocumentError> {
    let path = format!("flags.{key}.targeting");
    if flag.targeting.len() > MAX_RULES {
        return Err(invalid_targeting(
            path,
            format!(
                "{} rules; a flag has at most {MAX_RULES}",
                flag.targeting.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    for (index, rule) in flag.targeting.iter().enumerate() {
        let at = format!("{path}[{index}]");
        if !is_rule_name(&rule.name) {
            return Err(invalid_targeting(
                format!("{at}.name"),
                format!(
                    "{:?} is not a rule name: 1-63 characters of a-z, 0-9 and '-', starting and \
                     ending with a letter or digit",
                    rule.name
                ),
            ));
        }
        if !names.insert(rule.name.as_str()) {
            return Err(invalid_targeting(
                format!("{at}.name"),
                format!(
                    "{:?} names an earlier rule too; names are unique within a flag",
                    rule.name
                ),
            ));
        }
        check_conditions(&at, &rule.conditions, true)?;
        match &rule.serve {
            Serve::Variant(variant) if !flag.variants.iter().any(|v| &v.name == variant) => {
                return Err(invalid_targeting(
                    format!("{at}.serve.variant"),
                    format!("{variant:?} is not one of the flag's variants"),
                ));
            }
            Serve::Percent(percent) if !(0.0..=100.0).contains(percent) => {
                return Err(invalid_targeting(
                    format!("{at}.serve.percent"),
                    format!("{percent} is outside 0..100"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_segment(name: &str, segment: &SegmentEntry) -> Result<(), DocumentError> {
    let path = format!("segments.{name}");
    for (field, users) in [
        ("included", &segment.included),
        ("excluded", &segment.excluded),
    ] {
        if users.len() > MAX_SEGMENT_USERS {
            return Err(invalid_targeting(
                format!("{path}.{field}"),
                format!("{} user ids; at most {MAX_SEGMENT_USERS}", users.len()),
            ));
        }
    }
    if segment.rules.len() > MAX_RULES {
        return Err(invalid_targeting(
            format!("{path}.rules"),
            format!(
                "{} rules; a segment has at most {MAX_RULES}",
                segment.rules.len()
            ),
        ));
    }
    for (index, rule) in segment.rules.iter().enumerate() {
        check_conditions(&format!("{path}.rules[{index}]"), &rule.conditions, false)?;
    }
    Ok(())
}

/// The conditions of the rule at `at`; `InSegment` only in a flag's rules.
fn check_conditions(
    at: &str,
    conditions: &[Condition],
    in_segment_allowed: bool,
) -> Result<(), DocumentError> {
    if !(1..=MAX_CONDITIONS).contains(&conditions.len()) {
        return Err(invalid_targeting(
            format!("{at}.conditions"),
            format!(
                "{} conditions; a rule has 1 to {MAX_CONDITIONS}",
                conditions.len()
            ),
        ));
    }
    for (index, condition) in conditions.iter().enumerate() {
        check_condition(
            &format!("{at}.conditions[{index}]"),
            condition,
            in_segment_allowed,
        )?;
    }
    Ok(())
}

fn check_condition(
    at: &str,
    condition: &Condition,
    in_segment_allowed: bool,
) -> Result<(), DocumentError> {
    let operator = condition.operator;
    match (operator, condition.attribute.as_deref()) {
        (Operator::InSegment, Some(_)) => {
            return Err(invalid_targeting(
                format!("{at}.attribute"),
                "InSegment tests the user, not an attribute; leave attribute out",
            ));
        }
        (Operator::InSegment, None) if !in_segment_allowed => {
            return Err(invalid_targeting(
                format!("{at}.operator"),
                "InSegment is not allowed inside a segment (segments cannot nest)",
            ));
        }
        (Operator::InSegment, None) => {}
        (_, None | Some("")) => {
            return Err(invalid_targeting(
                format!("{at}.attribute"),
                format!("{operator} needs an attribute"),
            ));
        }
        (_, Some(_)) => {}
    }
    let values = &condition.values;
    let count = |min: usize, max: usize| {
        if (min..=max).contains(&values.len()) {
            return Ok(());
        }
        let wanted = match (min, max) {
            (0, 0) => "no values".to_owned(),
            (1, 1) => "exactly 1 value".to_owned(),
            _ => format!("{min} to {max} values"),
        };
        Err(invalid_targeting(
            format!("{at}.values"),
            format!("{operator} takes {wanted}, got {}", values.len()),
        ))
    };
    let each = |valid: &dyn Fn(&str) -> bool, what: &str| match values
        .iter()
        .position(|value| !valid(value))
    {
        None => Ok(()),
        Some(index) => Err(invalid_targeting(
            format!("{at}.values[{index}]"),
            format!("{:?} is not {what}", values[index]),
        )),
    };
    match operator {
        Operator::In | Operator::NotIn => count(1, MAX_VALUES),
        Operator::StartsWith | Operator::EndsWith | Operator::Contains => {
            count(1, MAX_VALUES)?;
            each(&|value| !value.is_empty(), "a non-empty string")
        }
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            count(1, 1)?;
            each(
                &|value| parse_decimal(value).is_some(),
                "a decimal number (-?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?)",
            )
        }
        Operator::SemverLt | Operator::SemverGte | Operator::SemverEq => {
            count(1, 1)?;
            each(
                &|value| Version::parse(value.as_bytes()).is_some(),
                "a version (MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD])",
            )
        }
        Operator::Exists => count(0, 0),
        Operator::InSegment => {
            count(1, MAX_SEGMENTS_PER_CONDITION)?;
            each(&|value| !value.is_empty(), "a segment name")
        }
    }
}

/// `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, 1 to 63 characters.
fn is_rule_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(inner)
        && bytes.last().is_some_and(inner)
        && bytes.iter().all(|byte| inner(byte) || *byte == b'-')
}

/// The JSON Schema of the document as the operator publishes it: the committed
/// `sdk/flag-document.schema.json` (`make schema` writes it, `tests/flag_document_schema.rs`
/// checks it).
///
/// It describes the serialized form, so every field the operator always writes is required,
/// although [`FlagDocument::from_json`] defaults the missing ones. Of the checks `from_json`
/// makes beyond the types, the ranges are in the schema; that `key` equals its map key, that
/// weights sum to 100 and that `shippedVariant` names a variant are not expressible in it.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    use schemars::generate::SchemaSettings;
    use schemars::transform::RecursiveTransform;

    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(RecursiveTransform(tidy))
        .into_generator();
    sorted_keys(generator.into_root_schema_for::<FlagDocument>().to_value())
}

/// Drops schemars' `format` of Rust number types (`double`, `int64`, `uint32`): JSON Schema
/// defines no number formats, and validators that refuse unknown formats would refuse the
/// schema. Joins the lines of doc comments, which wrap at 100 columns, into one per paragraph.
#[cfg(feature = "schema")]
fn tidy(schema: &mut schemars::Schema) {
    if matches!(
        schema.get("type").and_then(serde_json::Value::as_str),
        Some("number" | "integer")
    ) {
        schema.remove("format");
    }
    if let Some(serde_json::Value::String(description)) = schema.get_mut("description") {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.split('\n').collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}

/// Sorts object keys at every level, so the text does not depend on whether some other crate in
/// the build turned on serde_json's `preserve_order`.
#[cfg(feature = "schema")]
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted_keys(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
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
        let error = FlagDocument::from_json(br#"{"schemaVersion": 3, "flags": {}}"#).unwrap_err();
        assert!(error.to_string().contains("schemaVersion 3"), "{error}");
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
