//! OFREP v1 on the wire, and the pure mapping from the SDK's answers to it: request parsing,
//! the reason mapping, the bulk `ETag` and `If-None-Match`, and the SSE event. No I/O here;
//! `server.rs` is the shell around it.
//!
//! The protocol is the OpenAPI document `service/openapi.yaml` of `open-feature/protocol`
//! (version 0.3.0) with ADR-0006 (an answer without `value` defers to the code default) and
//! ADR-0008 (`eventStreams`, SSE `refetchEvaluation`). That version has no configuration
//! endpoint: it was removed from the protocol, and the bulk answer carries `eventStreams`.

use rollgate_sdk::{
    AttributeValue, Context, Evaluation, FlagEntry, FlagSnapshot, Reason, percent_threshold,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Mixed into every ETag, so that a relay whose answers change shape never revalidates a
/// client's cached bulk answer from an older one.
const ETAG_SCHEME: &[u8] = b"rollgate-relay ofrep-v1 etag 1";

/// An OFREP error code, and the HTTP status of a single-flag answer carrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    TargetingKeyMissing,
    InvalidContext,
    FlagNotFound,
    General,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "PARSE_ERROR",
            Self::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            Self::InvalidContext => "INVALID_CONTEXT",
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::General => "GENERAL",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::FlagNotFound => 404,
            Self::General => 500,
            Self::ParseError | Self::TargetingKeyMissing | Self::InvalidContext => 400,
        }
    }
}

/// Limits on the evaluation context of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextLimits {
    /// Attributes in the context, nested ones and list items included.
    pub max_attributes: usize,
    /// Bytes of any string in the context (attribute names, values, `targetingKey`).
    pub max_string_bytes: usize,
    /// Nesting of objects and lists below `context`.
    pub max_depth: usize,
}

impl Default for ContextLimits {
    fn default() -> Self {
        Self {
            max_attributes: 100,
            max_string_bytes: 1024,
            max_depth: 8,
        }
    }
}

/// A request the relay refuses as a whole: `PARSE_ERROR` or `INVALID_CONTEXT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    pub code: ErrorCode,
    pub details: String,
}

impl RequestError {
    fn parse(details: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::ParseError,
            details: details.into(),
        }
    }

    fn context(details: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidContext,
            details: details.into(),
        }
    }
}

/// The evaluation context of a request, as the relay uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalContext {
    /// `context.targetingKey`, the user id of the SDKs; `None` when absent.
    pub targeting_key: Option<String>,
    /// The context as targeting rules read it: the targeting key and every attribute that is
    /// a string, a number, a boolean or a list of strings. Other attributes (objects, mixed
    /// lists, null) are left out, so a rule on one sees it missing and does not match.
    pub attributes: Context,
    /// SHA-256 of the whole context in a canonical form (keys sorted, values typed), so that
    /// two contexts that differ in anything get different bulk ETags.
    pub digest: [u8; 32],
}

/// Parses a request body `{"context": {...}}`. An empty body, `{}` or `"context": null` is
/// an empty context (no targeting key): the JavaScript providers send `{}` when the
/// application set no context.
pub fn parse_request(body: &[u8], limits: &ContextLimits) -> Result<EvalContext, RequestError> {
    let body = body.trim_ascii();
    let request: Value = if body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|error| RequestError::parse(format!("request body is not JSON: {error}")))?
    };
    let Value::Object(mut request) = request else {
        return Err(RequestError::parse(format!(
            "request body must be a JSON object {{\"context\": {{...}}}}, not {}",
            kind(&request)
        )));
    };
    let context = match request.remove("context") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(context)) => context,
        Some(other) => {
            return Err(RequestError::context(format!(
                "context must be an object, not {}",
                kind(&other)
            )));
        }
    };
    let targeting_key = match context.get("targetingKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(other) => {
            return Err(RequestError::context(format!(
                "context.targetingKey must be a string, not {}",
                kind(other)
            )));
        }
    };
    let mut attribute_count = 0;
    for (name, value) in &context {
        check_value(name, value, "context", 1, limits, &mut attribute_count)?;
    }
    let attributes = targeting_context(targeting_key.as_deref(), &context);
    let context = Value::Object(context);
    let mut hasher = Sha256::new();
    hash_canonical(&mut hasher, &context);
    Ok(EvalContext {
        targeting_key,
        attributes,
        digest: hasher.finalize().into(),
    })
}

/// The SDK context of a request's (checked) context object.
fn targeting_context(
    targeting_key: Option<&str>,
    context: &serde_json::Map<String, Value>,
) -> Context {
    let mut attributes = Context::from(targeting_key);
    for (name, value) in context {
        let value = match value {
            Value::String(text) => AttributeValue::String(text.clone()),
            Value::Bool(flag) => AttributeValue::Bool(*flag),
            Value::Number(number) => match number.as_f64() {
                Some(number) => AttributeValue::Number(number),
                None => continue,
            },
            Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect();
                match strings {
                    Some(strings) => AttributeValue::List(strings),
                    None => continue,
                }
            }
            Value::Null | Value::Object(_) => continue,
        };
        attributes.set(name, value);
    }
    attributes
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Checks one attribute (and what it holds) against the limits, counting attributes.
fn check_value(
    name: &str,
    value: &Value,
    parent: &str,
    depth: usize,
    limits: &ContextLimits,
    attributes: &mut usize,
) -> Result<(), RequestError> {
    *attributes += 1;
    if *attributes > limits.max_attributes {
        return Err(RequestError::context(format!(
            "context has more than {} attributes (nested ones and list items count)",
            limits.max_attributes
        )));
    }
    if name.len() > limits.max_string_bytes {
        return Err(RequestError::context(format!(
            "an attribute name in {parent} is {} bytes, over the limit of {}",
            name.len(),
            limits.max_string_bytes
        )));
    }
    if depth > limits.max_depth {
        return Err(RequestError::context(format!(
            "{parent}.{name} is nested deeper than {} levels",
            limits.max_depth
        )));
    }
    let path = format!("{parent}.{name}");
    match value {
        Value::String(text) if text.len() > limits.max_string_bytes => {
            Err(RequestError::context(format!(
                "{path} is {} bytes, over the limit of {}",
                text.len(),
                limits.max_string_bytes
            )))
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_value(
                    &index.to_string(),
                    item,
                    &path,
                    depth + 1,
                    limits,
                    attributes,
                )?;
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (field, item) in fields {
                check_value(field, item, &path, depth + 1, limits, attributes)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Feeds `value` to `hasher` unambiguously: a type tag, lengths before contents, object keys
/// sorted. Independent of serde_json's map order and number formatting features.
fn hash_canonical(hasher: &mut Sha256, value: &Value) {
    fn bytes(hasher: &mut Sha256, tag: u8, data: &[u8]) {
        hasher.update([tag]);
        hasher.update((data.len() as u64).to_be_bytes());
        hasher.update(data);
    }
    match value {
        Value::Null => hasher.update([b'n']),
        Value::Bool(true) => hasher.update([b't']),
        Value::Bool(false) => hasher.update([b'f']),
        Value::Number(number) => bytes(hasher, b'#', number.to_string().as_bytes()),
        Value::String(text) => bytes(hasher, b's', text.as_bytes()),
        Value::Array(items) => {
            hasher.update([b'[']);
            hasher.update((items.len() as u64).to_be_bytes());
            for item in items {
                hash_canonical(hasher, item);
            }
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort_unstable();
            hasher.update([b'{']);
            hasher.update((keys.len() as u64).to_be_bytes());
            for key in keys {
                bytes(hasher, b'k', key.as_bytes());
                if let Some(item) = fields.get(key) {
                    hash_canonical(hasher, item);
                }
            }
        }
    }
}

/// An OFREP resolution reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OfrepReason {
    Static,
    /// A flag with targeting rules answered by its fallthrough: another context could match
    /// a rule, so the answer is not `STATIC`.
    Default,
    TargetingMatch,
    Split,
    Disabled,
}

impl OfrepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::Default => "DEFAULT",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
        }
    }
}

/// A flag's value: a boolean for an on/off flag, the variant's name for a flag with variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FlagValue<'a> {
    Bool(bool),
    Variant(&'a str),
}

/// Flag metadata: flat strings, numbers and booleans, as the protocol allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagMetadata<'a> {
    /// The SDK's own reason (`percent`, `full-rollout`, …), as in the Rust SDK's OpenFeature
    /// provider.
    pub reason: &'static str,
    /// The targeting rule that decided, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// The user's rollout rank (0..10000) when the SDK compared it with the percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u16>,
    /// The FeatureFlag's phase (`Progressing`, `Complete`, …).
    pub phase: &'a str,
    /// The resolved exposure, 0–100.
    pub percent: f64,
    /// `metadata.generation` of the FeatureFlag the entry was resolved from.
    pub flag_generation: i64,
    /// The document's generation in this relay: 1 for the first document it loaded, +1 for
    /// each change.
    pub generation: u64,
}

/// One flag's answer: a success, or a failure for that flag alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FlagAnswer<'a> {
    Success {
        key: &'a str,
        /// Absent: the provider returns the application's code default (ADR-0006).
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<FlagValue<'a>>,
        reason: OfrepReason,
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<&'a str>,
        metadata: FlagMetadata<'a>,
    },
    Failure {
        key: &'a str,
        #[serde(rename = "errorCode")]
        code: &'static str,
        #[serde(rename = "errorDetails")]
        details: String,
    },
}

impl FlagAnswer<'_> {
    /// The HTTP status of this answer as a single-flag response.
    pub fn status(&self) -> u16 {
        match self {
            Self::Success { .. } => 200,
            Self::Failure { code, .. } => match *code {
                "FLAG_NOT_FOUND" => 404,
                "GENERAL" => 500,
                _ => 400,
            },
        }
    }

    /// The label of `rollgate_relay_evaluations_total{reason}`: the OFREP reason, or the
    /// error code.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Success { reason, .. } => reason.as_str(),
            Self::Failure { code, .. } => code,
        }
    }
}

/// Maps the SDK's answer for `key` to OFREP (`docs/relay.md`, "Reasons and values").
///
/// `entry` is the flag's document entry (`None`: no such flag), `evaluation` the SDK's
/// answer for `user`, and `generation` the document's generation in this relay.
pub fn answer<'a>(
    key: &'a str,
    entry: Option<&'a FlagEntry>,
    evaluation: Evaluation<'a>,
    user: Option<&str>,
    generation: u64,
) -> FlagAnswer<'a> {
    let not_found = || FlagAnswer::Failure {
        key,
        code: ErrorCode::FlagNotFound.as_str(),
        details: format!("no flag {key:?} in this namespace's flag document"),
    };
    let Some(entry) = entry else {
        return not_found();
    };
    let has_variants = !entry.variants.is_empty();
    let threshold = percent_threshold(entry.percent);
    // Nobody but allow-listed users can be on: a 0% flag answers alike for every user.
    let static_off = threshold == 0;
    // Without rules, an answer that no context could change is STATIC; with rules another
    // context might match one.
    let fixed = if entry.targeting.is_empty() {
        OfrepReason::Static
    } else {
        OfrepReason::Default
    };
    let needs_key = |why: &str| FlagAnswer::Failure {
        key,
        code: ErrorCode::TargetingKeyMissing.as_str(),
        details: format!("flag {key:?} {why}; send context.targetingKey"),
    };
    let reason = match evaluation.reason {
        Reason::Missing => return not_found(),
        Reason::Disabled => OfrepReason::Disabled,
        Reason::Shipped => fixed,
        Reason::AllowList | Reason::TargetingMatch => OfrepReason::TargetingMatch,
        Reason::NoUser if evaluation.rule.is_some() => {
            return needs_key(&format!(
                "matched rule {:?}, whose percent is decided by the user",
                evaluation.rule.unwrap_or_default()
            ));
        }
        Reason::FullRollout if !has_variants => fixed,
        Reason::FullRollout if user.is_none() => {
            return needs_key("is at 100% with variants, and the variant is chosen by the user");
        }
        Reason::FullRollout => OfrepReason::Split,
        Reason::NoUser if static_off && entry.allowed_users.is_empty() => fixed,
        Reason::NoUser if static_off => {
            return needs_key("is at 0% with an allow-list, which is checked by the user");
        }
        Reason::NoUser => {
            return needs_key(&format!(
                "is at {}%, and who is in is decided by the user",
                entry.percent
            ));
        }
        Reason::Percent if static_off => fixed,
        Reason::Percent => OfrepReason::Split,
    };
    let (value, variant) = if has_variants {
        // A variant flag's value is the variant; without one (off, disabled, outside the
        // experiment's coverage) the application's default applies.
        (
            evaluation.variant.map(FlagValue::Variant),
            evaluation.variant,
        )
    } else {
        let on = evaluation.enabled;
        (
            Some(FlagValue::Bool(on)),
            Some(if on { "on" } else { "off" }),
        )
    };
    FlagAnswer::Success {
        key,
        value,
        reason,
        variant,
        metadata: FlagMetadata {
            reason: evaluation.reason.as_str(),
            rule: evaluation.rule,
            rank: evaluation.rank,
            phase: &entry.phase,
            percent: entry.percent,
            flag_generation: entry.generation,
            generation,
        },
    }
}

/// What every bulk answer for one document shares, rendered once per document: the content
/// hash and each flag's caller-independent JSON, in the document's key order.
#[derive(Debug)]
pub struct BulkTemplate {
    /// The document's generation in this relay; the template belongs to that snapshot only.
    pub generation: u64,
    pub content_hash: String,
    pub flags: Vec<FlagTemplate>,
    /// The size of the last body built from it, so the next buffer is allocated once.
    last_size: std::sync::atomic::AtomicUsize,
}

impl BulkTemplate {
    pub fn new(snapshot: &FlagSnapshot) -> Self {
        let generation = snapshot.generation();
        Self {
            generation,
            content_hash: snapshot.content_hash(),
            flags: snapshot
                .document()
                .flags
                .iter()
                .map(|(key, entry)| FlagTemplate::new(key, entry, generation))
                .collect(),
            last_size: 0.into(),
        }
    }

    /// An empty buffer as large as the last body.
    pub fn buffer(&self) -> Vec<u8> {
        Vec::with_capacity(self.last_size.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn record_size(&self, size: usize) {
        self.last_size
            .store(size, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A flag's answer fields that do not depend on the caller, rendered once per document: the
/// escaped key and the metadata after `rank` (`phase`, `percent`, `flagGeneration`,
/// `generation`), as serde_json writes them.
#[derive(Clone, Debug)]
pub struct FlagTemplate {
    key_json: String,
    metadata_tail: String,
}

impl FlagTemplate {
    pub fn new(key: &str, entry: &FlagEntry, generation: u64) -> Self {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Tail<'a> {
            phase: &'a str,
            percent: f64,
            flag_generation: i64,
            generation: u64,
        }
        let tail = serde_json::to_string(&Tail {
            phase: &entry.phase,
            percent: entry.percent,
            flag_generation: entry.generation,
            generation,
        })
        .unwrap_or_default();
        Self {
            key_json: serde_json::to_string(key).unwrap_or_default(),
            // `{"phase":…}` without its opening brace: it follows `"rank":…,` or `"reason":…,`.
            metadata_tail: tail.get(1..).unwrap_or_default().to_owned(),
        }
    }
}

/// Appends `answer` as JSON to `out`, byte for byte what `serde_json::to_writer` gives, with
/// the caller-independent parts from `template`.
pub fn write_answer(out: &mut Vec<u8>, template: &FlagTemplate, answer: &FlagAnswer<'_>) {
    let FlagAnswer::Success {
        value,
        reason,
        variant,
        metadata,
        ..
    } = answer
    else {
        // Failures are rare and carry per-request text: serde writes them.
        let _ = serde_json::to_writer(&mut *out, answer);
        return;
    };
    out.extend_from_slice(b"{\"key\":");
    out.extend_from_slice(template.key_json.as_bytes());
    match value {
        Some(FlagValue::Bool(true)) => out.extend_from_slice(b",\"value\":true"),
        Some(FlagValue::Bool(false)) => out.extend_from_slice(b",\"value\":false"),
        Some(FlagValue::Variant(name)) => {
            out.extend_from_slice(b",\"value\":");
            let _ = serde_json::to_writer(&mut *out, name);
        }
        None => {}
    }
    out.extend_from_slice(b",\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.push(b'"');
    if let Some(variant) = variant {
        out.extend_from_slice(b",\"variant\":");
        let _ = serde_json::to_writer(&mut *out, variant);
    }
    out.extend_from_slice(b",\"metadata\":{\"reason\":\"");
    out.extend_from_slice(metadata.reason.as_bytes());
    out.extend_from_slice(b"\",");
    if let Some(rule) = metadata.rule {
        out.extend_from_slice(b"\"rule\":");
        let _ = serde_json::to_writer(&mut *out, rule);
        out.push(b',');
    }
    if let Some(rank) = metadata.rank {
        out.extend_from_slice(b"\"rank\":");
        // serde_json writes integers with itoa, without the formatting machinery.
        let _ = serde_json::to_writer(&mut *out, &rank);
        out.push(b',');
    }
    out.extend_from_slice(template.metadata_tail.as_bytes());
    out.push(b'}');
}

/// The strong ETag of a bulk answer: the document (its content hash and generation in this
/// relay), the namespace, the event stream URI given to this caller, and the whole context.
/// Two users never share one, and neither do two documents.
pub fn bulk_etag(
    namespace: &str,
    content_hash: &str,
    generation: u64,
    stream_uri: &str,
    context: &EvalContext,
) -> String {
    let mut hasher = Sha256::new();
    for part in [
        ETAG_SCHEME,
        namespace.as_bytes(),
        content_hash.as_bytes(),
        &generation.to_be_bytes(),
        stream_uri.as_bytes(),
        &context.digest,
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    format!("\"{}\"", hex(&digest[..16]))
}

/// Whether an `If-None-Match` header value matches `etag` (RFC 9110 §13.1.2: `*`, or any
/// listed tag under weak comparison).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The SSE message that tells a namespace's clients to fetch again (ADR-0008):
/// `(id, data)`, where `id` names the document (so a reconnecting client's `Last-Event-ID`
/// tells whether it missed one) and `data` is `{"type":"refetchEvaluation","etag":…,
/// "lastModified":…}`.
pub fn refetch_event(content_hash: &str, last_modified_unix: u64) -> (String, String) {
    let id = document_tag(content_hash);
    let data = serde_json::json!({
        "type": "refetchEvaluation",
        "etag": format!("\"{id}\""),
        "lastModified": last_modified_unix,
    });
    (id, data.to_string())
}

/// A short name of a document: the first 32 hex digits of its content hash.
pub fn document_tag(content_hash: &str) -> String {
    content_hash.chars().take(32).collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use rollgate_sdk::{CompiledFlag, ExperimentAssignment, FlagDocument, Variant};
    use serde_json::json;

    use super::*;

    fn limits() -> ContextLimits {
        ContextLimits::default()
    }

    fn entry(percent: f64) -> FlagEntry {
        FlagEntry {
            key: "checkout".into(),
            enabled: true,
            percent,
            allowed_users: vec![],
            variants: vec![],
            experiment: None,
            shipped_variant: None,
            phase: "Progressing".into(),
            generation: 4,
            updated_at: String::new(),
            targeting: Vec::new(),
        }
    }

    fn ab(percent: f64) -> FlagEntry {
        FlagEntry {
            variants: ["control", "treatment"]
                .map(|name| Variant {
                    name: name.into(),
                    weight: 50.0,
                })
                .into(),
            ..entry(percent)
        }
    }

    /// The SDK's answer through the mapping, as JSON.
    fn through(entry: &FlagEntry, user: Option<&str>) -> Value {
        let flag = CompiledFlag::new(entry);
        let evaluation = flag.evaluate(user);
        serde_json::to_value(answer("checkout", Some(entry), evaluation, user, 7)).unwrap()
    }

    /// A user whose rank is below (`in_`) or above the threshold of `percent`.
    fn user_at(entry: &FlagEntry, in_: bool) -> String {
        let flag = CompiledFlag::new(entry);
        (0..10_000)
            .map(|i| format!("user-{i}"))
            .find(|user| flag.evaluate(Some(user)).enabled == in_)
            .unwrap()
    }

    #[test]
    fn written_answers_are_what_serde_writes() {
        let disabled = FlagEntry {
            enabled: false,
            ..entry(50.0)
        };
        let allow_listed = FlagEntry {
            allowed_users: vec!["vip".into()],
            ..entry(0.0)
        };
        let quoted = FlagEntry {
            phase: "Pro\"gress\\ing".into(),
            ..ab(33.3)
        };
        let entries = [
            entry(0.0),
            entry(12.5),
            entry(100.0),
            ab(0.0),
            ab(50.0),
            ab(100.0),
            disabled,
            allow_listed,
            quoted,
        ];
        let mut compared = 0;
        for entry in &entries {
            let flag = CompiledFlag::new(entry);
            for user in [
                None,
                Some("vip"),
                Some("user-1"),
                Some("user-2"),
                Some("é\"\u{0}"),
            ] {
                for key in ["checkout", "a\"b"] {
                    let answer = answer(key, Some(entry), flag.evaluate(user), user, 9);
                    let mut written = Vec::new();
                    write_answer(&mut written, &FlagTemplate::new(key, entry, 9), &answer);
                    assert_eq!(
                        String::from_utf8(written).unwrap(),
                        serde_json::to_string(&answer).unwrap(),
                        "{key:?} {entry:?} {user:?}"
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 90);
    }

    #[test]
    fn requests_parse_with_and_without_a_targeting_key() {
        let context = parse_request(
            br#"{"context":{"targetingKey":"u-1","plan":"pro"}}"#,
            &limits(),
        )
        .unwrap();
        assert_eq!(context.targeting_key.as_deref(), Some("u-1"));
        for empty in [
            &b""[..],
            b"  ",
            b"{}",
            br#"{"context":null}"#,
            br#"{"context":{}}"#,
        ] {
            let context = parse_request(empty, &limits()).unwrap();
            assert_eq!(
                context.targeting_key,
                None,
                "{:?}",
                String::from_utf8_lossy(empty)
            );
        }
        let unicode = parse_request(
            r#"{"context":{"targetingKey":"é\u0000👩‍💻"}}"#.as_bytes(),
            &limits(),
        )
        .unwrap();
        assert_eq!(unicode.targeting_key.as_deref(), Some("é\u{0}👩‍💻"));
    }

    #[test]
    fn bad_bodies_are_parse_errors_and_bad_contexts_invalid() {
        let code = |body: &str| parse_request(body.as_bytes(), &limits()).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::ParseError);
        assert_eq!(code("[1]"), ErrorCode::ParseError);
        assert_eq!(code(r#""text""#), ErrorCode::ParseError);
        assert_eq!(code(r#"{"context":[]}"#), ErrorCode::InvalidContext);
        assert_eq!(code(r#"{"context":"u"}"#), ErrorCode::InvalidContext);
        assert_eq!(
            code(r#"{"context":{"targetingKey":42}}"#),
            ErrorCode::InvalidContext
        );
        assert_eq!(
            code(r#"{"context":{"targetingKey":{"id":1}}}"#),
            ErrorCode::InvalidContext
        );
        let error = parse_request(br#"{"context":{"targetingKey":true}}"#, &limits()).unwrap_err();
        assert!(
            error
                .details
                .contains("targetingKey must be a string, not a boolean"),
            "{error:?}"
        );
    }

    #[test]
    fn context_limits_name_what_is_over() {
        let tight = ContextLimits {
            max_attributes: 3,
            max_string_bytes: 12,
            max_depth: 2,
        };
        let ok = br#"{"context":{"targetingKey":"123456789012","a":{"b":1}}}"#;
        assert!(parse_request(ok, &tight).is_ok());
        let error = |body: &str| parse_request(body.as_bytes(), &tight).unwrap_err();
        let long = error(r#"{"context":{"targetingKey":"1234567890123"}}"#);
        assert_eq!(long.code, ErrorCode::InvalidContext);
        assert!(
            long.details.contains("context.targetingKey is 13 bytes"),
            "{long:?}"
        );
        let many = error(r#"{"context":{"a":1,"b":2,"c":[3]}}"#);
        assert!(many.details.contains("more than 3 attributes"), "{many:?}");
        let deep = error(r#"{"context":{"a":{"b":{"c":1}}}}"#);
        assert!(
            deep.details
                .contains("context.a.b.c is nested deeper than 2"),
            "{deep:?}"
        );
        let name = error(r#"{"context":{"thirteen-byte":1}}"#);
        assert!(
            name.details
                .contains("attribute name in context is 13 bytes"),
            "{name:?}"
        );
        let nested = error(r#"{"context":{"a":["short","much too long"]}}"#);
        assert!(
            nested.details.contains("context.a.1 is 13 bytes"),
            "{nested:?}"
        );
    }

    #[test]
    fn context_digest_ignores_order_and_whitespace_but_sees_every_value() {
        let digest = |body: &str| parse_request(body.as_bytes(), &limits()).unwrap().digest;
        let a = digest(r#"{"context":{"targetingKey":"u","plan":"pro","n":1}}"#);
        assert_eq!(
            a,
            digest(r#"{ "context": { "n": 1, "plan": "pro", "targetingKey": "u" } }"#)
        );
        assert_ne!(
            a,
            digest(r#"{"context":{"targetingKey":"v","plan":"pro","n":1}}"#)
        );
        assert_ne!(
            a,
            digest(r#"{"context":{"targetingKey":"u","plan":"pro","n":"1"}}"#)
        );
        assert_ne!(
            a,
            digest(r#"{"context":{"targetingKey":"u","plan":"pro"}}"#)
        );
        // Nesting is part of the form: {"a":{"b":1}} is not {"a.b":1}, ["x","y"] not ["xy"].
        assert_ne!(
            digest(r#"{"context":{"a":{"b":1}}}"#),
            digest(r#"{"context":{"a.b":1}}"#)
        );
        assert_ne!(
            digest(r#"{"context":{"a":["x","y"]}}"#),
            digest(r#"{"context":{"a":["xy"]}}"#)
        );
        assert_ne!(
            digest(r#"{"context":{}}"#),
            digest(r#"{"context":{"targetingKey":""}}"#)
        );
    }

    #[test]
    fn on_off_flags_answer_booleans_with_the_reason_of_the_rule_that_decided() {
        let ramp = entry(30.0);
        let inside = user_at(&ramp, true);
        let outside = user_at(&ramp, false);
        let on = through(&ramp, Some(&inside));
        assert_eq!(
            (
                on["value"].clone(),
                on["reason"].clone(),
                on["variant"].clone()
            ),
            (Value::Bool(true), "SPLIT".into(), "on".into())
        );
        assert_eq!(on["metadata"]["reason"], "percent");
        assert_eq!(on["metadata"]["phase"], "Progressing");
        assert_eq!(on["metadata"]["percent"], 30.0);
        assert_eq!(on["metadata"]["flagGeneration"], 4);
        assert_eq!(on["metadata"]["generation"], 7);
        assert!(on["metadata"]["rank"].as_u64().unwrap() < 3000);
        let off = through(&ramp, Some(&outside));
        assert_eq!(
            (off["value"].clone(), off["variant"].clone()),
            (Value::Bool(false), "off".into())
        );
        assert_eq!(off["reason"], "SPLIT");

        let full = through(&entry(100.0), None);
        assert_eq!(
            (full["value"].clone(), full["reason"].clone()),
            (Value::Bool(true), "STATIC".into())
        );
        assert!(full["metadata"].get("rank").is_none());

        let zero = entry(0.0);
        for user in [None, Some("u")] {
            let answer = through(&zero, user);
            assert_eq!(
                (answer["value"].clone(), answer["reason"].clone()),
                (Value::Bool(false), "STATIC".into()),
                "{user:?}"
            );
        }

        let killed = FlagEntry {
            enabled: false,
            phase: "Killed".into(),
            ..entry(100.0)
        };
        let answer = through(&killed, Some("u"));
        assert_eq!(
            (answer["value"].clone(), answer["reason"].clone()),
            (Value::Bool(false), "DISABLED".into())
        );
        assert_eq!(answer["metadata"]["phase"], "Killed");

        let listed = FlagEntry {
            allowed_users: vec!["vip".into()],
            ..entry(0.0)
        };
        let answer = through(&listed, Some("vip"));
        assert_eq!(
            (answer["value"].clone(), answer["reason"].clone()),
            (Value::Bool(true), "TARGETING_MATCH".into())
        );
        assert_eq!(through(&listed, Some("other"))["reason"], "STATIC");
    }

    #[test]
    fn a_split_without_a_key_is_targeting_key_missing() {
        for flag in [
            entry(30.0),
            FlagEntry {
                allowed_users: vec!["vip".into()],
                ..entry(0.0)
            },
            ab(100.0),
        ] {
            let answer = through(&flag, None);
            assert_eq!(answer["errorCode"], "TARGETING_KEY_MISSING", "{flag:?}");
            assert!(
                answer["errorDetails"]
                    .as_str()
                    .unwrap()
                    .contains("targetingKey")
            );
            assert_eq!(answer["key"], "checkout");
            assert!(answer.get("value").is_none());
        }
        let ramp = entry(30.0);
        let flag = CompiledFlag::new(&ramp);
        let failure = answer("checkout", Some(&ramp), flag.evaluate(None), None, 1);
        assert_eq!(
            (failure.status(), failure.label()),
            (400, "TARGETING_KEY_MISSING")
        );
    }

    #[test]
    fn variant_flags_answer_the_variant_name_or_defer_to_the_code_default() {
        let flag = ab(100.0);
        let answer = through(&flag, Some("user-1"));
        let variant = answer["variant"].as_str().unwrap();
        assert!(["control", "treatment"].contains(&variant));
        assert_eq!(answer["value"], variant);
        assert_eq!(answer["reason"], "SPLIT");

        let ramp = ab(40.0);
        let outside = user_at(&ramp, false);
        let off = through(&ramp, Some(&outside));
        assert_eq!(off["reason"], "SPLIT");
        assert!(
            off.get("value").is_none() && off.get("variant").is_none(),
            "{off}"
        );

        let mut covered = ab(100.0);
        covered.experiment = Some(ExperimentAssignment {
            coverage: 10.0,
            salt: "s".into(),
        });
        let compiled = CompiledFlag::new(&covered);
        let uncovered = (0..1000)
            .map(|i| format!("u{i}"))
            .find(|user| compiled.evaluate(Some(user)).variant.is_none())
            .unwrap();
        let answer = through(&covered, Some(&uncovered));
        assert_eq!(answer["reason"], "SPLIT");
        assert!(answer.get("value").is_none(), "{answer}");

        let mut shipped = ab(100.0);
        shipped.shipped_variant = Some("treatment".into());
        for user in [None, Some("u")] {
            let answer = through(&shipped, user);
            assert_eq!(
                (answer["value"].clone(), answer["reason"].clone()),
                ("treatment".into(), "STATIC".into())
            );
        }

        let disabled = FlagEntry {
            enabled: false,
            ..ab(100.0)
        };
        let answer = through(&disabled, Some("u"));
        assert_eq!(answer["reason"], "DISABLED");
        assert!(answer.get("value").is_none());
        assert_eq!(through(&ab(0.0), None)["reason"], "STATIC");
    }

    #[test]
    fn a_missing_flag_is_flag_not_found() {
        let set = rollgate_sdk::FlagSet::default();
        let answer = answer("nope", None, set.evaluate("nope", Some("u")), Some("u"), 1);
        assert_eq!((answer.status(), answer.label()), (404, "FLAG_NOT_FOUND"));
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["key"], "nope");
        assert!(json["errorDetails"].as_str().unwrap().contains("\"nope\""));
    }

    #[test]
    fn etags_differ_by_context_document_namespace_and_stream() {
        let context = |body: &str| parse_request(body.as_bytes(), &limits()).unwrap();
        let alice = context(r#"{"context":{"targetingKey":"alice"}}"#);
        let bob = context(r#"{"context":{"targetingKey":"bob"}}"#);
        let base = bulk_etag("shop", "abc", 1, "/s", &alice);
        assert!(
            base.starts_with('"') && base.ends_with('"') && base.len() == 34,
            "{base}"
        );
        assert_eq!(base, bulk_etag("shop", "abc", 1, "/s", &alice));
        for other in [
            bulk_etag("shop", "abc", 1, "/s", &bob),
            bulk_etag("shop", "abd", 1, "/s", &alice),
            bulk_etag("shop", "abc", 2, "/s", &alice),
            bulk_etag("shop2", "abc", 1, "/s", &alice),
            bulk_etag("shop", "abc", 1, "/s?access=x", &alice),
            // Parts are length-prefixed: moving a byte between two parts changes the tag.
            bulk_etag("shopa", "bc", 1, "/s", &alice),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        assert!(if_none_match("\"a\"", "\"a\""));
        assert!(if_none_match("W/\"a\"", "\"a\""));
        assert!(if_none_match("\"x\", \"a\"", "\"a\""));
        assert!(if_none_match("*", "\"a\""));
        assert!(!if_none_match("\"b\"", "\"a\""));
        assert!(!if_none_match("a", "\"a\""));
        assert!(!if_none_match("", "\"a\""));
    }

    #[test]
    fn the_refetch_event_is_adr_0008s_message() {
        let (id, data) = refetch_event(&"ab".repeat(32), 1_771_622_898);
        assert_eq!(id, "ab".repeat(16));
        let data: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["type"], "refetchEvaluation");
        assert_eq!(data["etag"], format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(data["lastModified"], 1_771_622_898);
    }

    /// `checkout` at `percent` with two rules: `plan In [enterprise]` on, and members of
    /// `beta` at 50%.
    fn targeted(percent: f64) -> FlagDocument {
        let document = serde_json::json!({
            "schemaVersion": 2,
            "flags": {"checkout": {
                "key": "checkout", "enabled": true, "percent": percent,
                "targeting": [
                    {"name": "enterprise",
                     "conditions": [{"attribute": "plan", "operator": "In", "values": ["enterprise"]}],
                     "serve": {"enabled": true}},
                    {"name": "beta-half",
                     "conditions": [{"attribute": "groups", "operator": "In", "values": ["beta"]}],
                     "serve": {"percent": 50}}
                ]}},
        });
        FlagDocument::from_json(document.to_string().as_bytes()).unwrap()
    }

    fn answer_for(document: &FlagDocument, body: &str) -> Value {
        let context = parse_request(body.as_bytes(), &limits()).unwrap();
        let flags = rollgate_sdk::FlagSet::from_document(document);
        let evaluation = flags.evaluate_with("checkout", &context.attributes);
        let answer = answer(
            "checkout",
            document.flags.get("checkout"),
            evaluation,
            context.targeting_key.as_deref(),
            1,
        );
        let mut written = Vec::new();
        write_answer(
            &mut written,
            &FlagTemplate::new("checkout", &document.flags["checkout"], 1),
            &answer,
        );
        let answer = serde_json::to_value(&answer).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&written).unwrap(), answer);
        answer
    }

    #[test]
    fn context_attributes_reach_targeting_rules_and_the_rule_is_named() {
        let document = targeted(0.0);
        let matched = answer_for(
            &document,
            r#"{"context": {"targetingKey": "u-1", "plan": "enterprise"}}"#,
        );
        assert_eq!(matched["value"], true);
        assert_eq!(matched["reason"], "TARGETING_MATCH");
        assert_eq!(matched["metadata"]["reason"], "targeting-match");
        assert_eq!(matched["metadata"]["rule"], "enterprise");
        // Lists of strings are attributes too; a list holding a number is left out.
        let listed = answer_for(
            &document,
            r#"{"context": {"targetingKey": "u-1", "groups": ["staff", "beta"]}}"#,
        );
        assert_eq!(listed["metadata"]["rule"], "beta-half");
        let mixed = answer_for(
            &document,
            r#"{"context": {"targetingKey": "u-1", "groups": ["beta", 1]}}"#,
        );
        assert_eq!(mixed["metadata"].get("rule"), None);
    }

    #[test]
    fn a_fallthrough_of_a_targeted_flag_is_default_not_static() {
        // At 0% nobody reaches the fallthrough's on answer, but another context could match
        // a rule, so the answer is DEFAULT.
        let answer = answer_for(
            &targeted(0.0),
            r#"{"context": {"targetingKey": "u-1", "plan": "free"}}"#,
        );
        assert_eq!(
            (&answer["value"], &answer["reason"]),
            (&json!(false), &json!("DEFAULT"))
        );
        let split = answer_for(&targeted(50.0), r#"{"context": {"targetingKey": "u-1"}}"#);
        assert_eq!(split["reason"], "SPLIT");
    }

    #[test]
    fn a_rule_percent_without_a_key_is_targeting_key_missing_naming_the_rule() {
        let answer = answer_for(&targeted(0.0), r#"{"context": {"groups": ["beta"]}}"#);
        assert_eq!(answer["errorCode"], "TARGETING_KEY_MISSING");
        let details = answer["errorDetails"].as_str().unwrap();
        assert!(details.contains("\"beta-half\""), "{details}");
    }
}
