//! Checks the SDK against the shared vectors in `sdk/testdata/vectors.json`, which
//! `scripts/gen_vectors.py` computes independently with Python's hashlib and big integers.
//! The Python SDK's tests read the same file.

use std::fmt::Write as _;
use std::path::PathBuf;

use rollgate_sdk::{
    AttributeValue, CompiledFlag, Context, Evaluation, FlagDocument, FlagEntry, FlagSet,
    legacy_bucket, percent_threshold, rollout_rank,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()))
}

fn cases<'a>(vectors: &'a Value, name: &str) -> &'a [Value] {
    vectors[name]
        .as_array()
        .unwrap_or_else(|| panic!("vectors.json has no array {name:?}"))
}

/// A user id short enough to print: long ids are cut, control characters escaped.
fn show(user: Option<&str>) -> String {
    match user {
        None => "null".into(),
        Some(user) if user.chars().count() > 40 => {
            let head: String = user.chars().take(40).collect();
            format!("{head:?}… ({} bytes)", user.len())
        }
        Some(user) => format!("{user:?}"),
    }
}

/// Fails once, listing every case that disagreed (the first 50 of them).
fn finish(kind: &str, total: usize, failures: Vec<String>) {
    if failures.is_empty() {
        return;
    }
    let mut message = format!("{} of {total} {kind} vectors disagree:\n", failures.len());
    for failure in failures.iter().take(50) {
        let _ = writeln!(message, "  {failure}");
    }
    panic!("{message}");
}

#[test]
fn vectors_file_is_large_enough() {
    let vectors = vectors();
    assert_eq!(vectors["generator"], "scripts/gen_vectors.py");
    let bucketing = cases(&vectors, "bucketing").len();
    let evaluation = cases(&vectors, "evaluation").len();
    let targeting = cases(&vectors, "targeting").len();
    assert!(bucketing >= 2000, "only {bucketing} bucketing cases");
    assert!(evaluation >= 500, "only {evaluation} evaluation cases");
    assert!(targeting >= 500, "only {targeting} targeting cases");
}

#[test]
fn bucketing_vectors() {
    let vectors = vectors();
    let cases = cases(&vectors, "bucketing");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let key = case["key"].as_str().expect("key");
        let user = case["user"].as_str().expect("user");
        let percent = case["percent"].as_f64().expect("percent");
        let name = format!(
            "bucketing[{index}] key={key:?} user={} percent={percent}",
            show(Some(user))
        );

        let rank = rollout_rank(key, user);
        let bucket = legacy_bucket(key, user);
        let threshold = percent_threshold(percent);
        let enabled = u32::from(rank) < threshold;
        if i64::from(rank) != case["rank"].as_i64().expect("rank") {
            failures.push(format!("{name}: rank {rank}, expected {}", case["rank"]));
        }
        if i64::from(bucket) != case["bucket"].as_i64().expect("bucket") {
            failures.push(format!(
                "{name}: bucket {bucket}, expected {}",
                case["bucket"]
            ));
        }
        if i64::from(threshold) != case["threshold"].as_i64().expect("threshold") {
            failures.push(format!(
                "{name}: threshold {threshold}, expected {}",
                case["threshold"]
            ));
        }
        if Some(enabled) != case["enabled"].as_bool() {
            failures.push(format!(
                "{name}: enabled {enabled}, expected {}",
                case["enabled"]
            ));
        }
    }
    finish("bucketing", cases.len(), failures);
}

#[test]
fn evaluation_vectors() {
    let vectors = vectors();
    let cases = cases(&vectors, "evaluation");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let user = match &case["user"] {
            Value::Null => None,
            Value::String(user) => Some(user.as_str()),
            other => panic!("evaluation[{index}]: user {other} is neither a string nor null"),
        };
        let expected = (
            case["enabled"].as_bool().expect("enabled"),
            case["variant"].as_str(),
            case["reason"].as_str().expect("reason"),
            case["rank"].as_u64(),
        );

        // The flag as a one-flag document, through the same parser and checks as a
        // workload's; a missing flag is looked up in an empty document.
        let (key, document) = if case["flag"].is_null() {
            let key = case["key"]
                .as_str()
                .expect("missing-flag cases name their key");
            (key.to_owned(), FlagDocument::new())
        } else {
            let entry: FlagEntry =
                serde_json::from_value(case["flag"].clone()).unwrap_or_else(|error| {
                    panic!("evaluation[{index}]: flag does not parse: {error}")
                });
            let json =
                serde_json::json!({"schemaVersion": 1, "flags": {&entry.key: &case["flag"]}});
            let document =
                FlagDocument::from_json(json.to_string().as_bytes()).unwrap_or_else(|error| {
                    panic!("evaluation[{index}]: invalid flag document: {error}")
                });
            (entry.key, document)
        };
        let name = format!("evaluation[{index}] key={key:?} user={}", show(user));

        let set = FlagSet::from_document(&document);
        let evaluation = set.evaluate(&key, user);
        let got = (
            evaluation.enabled,
            evaluation.variant,
            evaluation.reason.as_str(),
            evaluation.rank.map(u64::from),
        );
        if got != expected {
            failures.push(format!(
                "{name} (FlagSet): got {got:?}, expected {expected:?}"
            ));
        }
        if let Some(entry) = document.flags.get(&key) {
            let compiled = CompiledFlag::new(entry);
            let evaluation = compiled.evaluate(user);
            let got = (
                evaluation.enabled,
                evaluation.variant,
                evaluation.reason.as_str(),
                evaluation.rank.map(u64::from),
            );
            if got != expected {
                failures.push(format!(
                    "{name} (CompiledFlag): got {got:?}, expected {expected:?}"
                ));
            }
        }
        if set.is_enabled(&key, user) != expected.0 || set.variant(&key, user) != expected.1 {
            failures.push(format!("{name}: is_enabled/variant disagree with evaluate"));
        }
    }
    finish("evaluation", cases.len(), failures);
}

/// The context of a targeting case: its user as the targeting key, its attributes by JSON type.
fn context_of(index: usize, user: Option<&str>, attributes: &Value) -> Context {
    let mut context = Context::from(user);
    let attributes = attributes
        .as_object()
        .unwrap_or_else(|| panic!("targeting[{index}]: context is not an object"));
    for (name, value) in attributes {
        let value = match value {
            Value::String(text) => AttributeValue::String(text.clone()),
            Value::Bool(flag) => AttributeValue::Bool(*flag),
            Value::Number(number) => AttributeValue::Number(number.as_f64().expect("a double")),
            Value::Array(items) => AttributeValue::List(
                items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .unwrap_or_else(|| panic!("targeting[{index}]: {name} has {item}"))
                            .to_owned()
                    })
                    .collect(),
            ),
            other => panic!("targeting[{index}]: attribute {name} is {other}"),
        };
        context.set(name.as_str(), value);
    }
    context
}

/// (enabled, variant, reason, rule, rank) of an answer.
type Answer<'a> = (bool, Option<&'a str>, &'a str, Option<&'a str>, Option<u64>);

fn answer<'a>(evaluation: &Evaluation<'a>) -> Answer<'a> {
    (
        evaluation.enabled,
        evaluation.variant,
        evaluation.reason.as_str(),
        evaluation.rule,
        evaluation.rank.map(u64::from),
    )
}

#[test]
fn targeting_vectors() {
    let vectors = vectors();
    let cases = cases(&vectors, "targeting");
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let user = match &case["user"] {
            Value::Null => None,
            Value::String(user) => Some(user.as_str()),
            other => panic!("targeting[{index}]: user {other} is neither a string nor null"),
        };
        let context = context_of(index, user, &case["context"]);
        let expected: Answer<'_> = (
            case["enabled"].as_bool().expect("enabled"),
            case["variant"].as_str(),
            case["reason"].as_str().expect("reason"),
            case["rule"].as_str(),
            case["rank"].as_u64(),
        );
        let key = case["flag"]["key"].as_str().expect("key").to_owned();
        // Through the same parser and checks as a workload's document.
        let json = serde_json::json!({
            "schemaVersion": 2,
            "flags": {&key: &case["flag"]},
            "segments": &case["segments"],
        });
        let document = match FlagDocument::from_json(json.to_string().as_bytes()) {
            Ok(document) => document,
            Err(error) => {
                failures.push(format!("targeting[{index}] key={key:?}: refused: {error}"));
                continue;
            }
        };
        let name = format!(
            "targeting[{index}] key={key:?} user={} context={}",
            show(user),
            case["context"]
        );
        let set = FlagSet::from_document(&document);
        let evaluation = set.evaluate_with(&key, &context);
        let got = answer(&evaluation);
        if got != expected {
            failures.push(format!(
                "{name} (FlagSet): got {got:?}, expected {expected:?}"
            ));
        }
        let compiled = CompiledFlag::with_segments(&document.flags[&key], &document.segments);
        let alone = compiled.evaluate_with(&context);
        if alone != evaluation {
            failures.push(format!("{name}: CompiledFlag answers {alone:?}"));
        }
        if set.is_enabled_with(&key, &context) != expected.0
            || set.variant_with(&key, &context) != expected.1
        {
            failures.push(format!(
                "{name}: is_enabled_with/variant_with disagree with evaluate_with"
            ));
        }
        // Without attributes, the calls for a user id alone answer the same.
        if context.attributes().next().is_none() && set.evaluate(&key, user) != evaluation {
            failures.push(format!("{name}: evaluate(key, user) differs"));
        }
    }
    finish("targeting", cases.len(), failures);
}
