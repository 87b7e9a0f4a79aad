//! `sdk/flag-document.schema.json` is generated from the document types
//! (`document::json_schema`, feature `schema`): a plain `cargo test` fails when the committed
//! file differs. The schema is then checked against documents: it accepts what the operator
//! publishes and refuses malformed entries, and where it is stricter than the SDK's reader the
//! table below says so. The Python tests check the committed file with Python's jsonschema.

use std::path::{Path, PathBuf};

use rollgate_sdk::FlagDocument;
use rollgate_sdk::document::json_schema;
use serde_json::{Value, json};

const SCHEMA_PATH: &str = "sdk/flag-document.schema.json";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[test]
fn committed_schema_is_the_generated_one() {
    let generated = json_schema();
    let committed_text = read(SCHEMA_PATH);
    let committed: Value = serde_json::from_str(&committed_text)
        .unwrap_or_else(|error| panic!("{SCHEMA_PATH} is not JSON ({error}); run `make schema`"));
    assert!(
        committed == generated,
        "{SCHEMA_PATH} differs from the schema of the Rust types; run `make schema` and commit \
         the result.\ngenerated:\n{generated:#}"
    );
    // The same text the generator prints, so `make schema` leaves a clean tree.
    let generated_text = format!("{generated:#}\n");
    assert!(
        committed_text == generated_text,
        "{SCHEMA_PATH} has the generated content but not its formatting; run `make schema`"
    );
}

/// The generated schema, compiled; format assertions on, so `updatedAt` must be a date-time.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Self {
        let schema = json_schema();
        let url = schema["$id"]
            .as_str()
            .expect("the schema has an $id")
            .to_owned();
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        compiler
            .add_resource(&url, schema)
            .expect("the schema's $id is a URL");
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(&url, &mut schemas)
            .unwrap_or_else(|error| panic!("the generated schema does not compile: {error:#}"));
        Self { schemas, index }
    }

    /// `Ok`, or every error with its instance location (`at '/flags/a/percent': …`).
    fn check(&self, document: &Value) -> Result<(), String> {
        self.schemas
            .validate(document, self.index)
            .map_err(|error| format!("{error}"))
    }
}

fn document(entry: Value) -> Value {
    let key = entry["key"].as_str().unwrap_or("checkout").to_owned();
    json!({"schemaVersion": 1, "flags": {key: entry}})
}

/// Every field the operator writes, as in `docs/flag-document.md`.
fn entry() -> Value {
    json!({
        "key": "checkout",
        "enabled": true,
        "percent": 5,
        "allowedUsers": ["qa-1"],
        "variants": [],
        "phase": "Progressing",
        "generation": 3,
        "updatedAt": "2026-11-24T08:00:00Z",
    })
}

fn experiment_entry() -> Value {
    let mut entry = entry();
    entry["variants"] =
        json!([{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]);
    entry["experiment"] = json!({"coverage": 20, "salt": "checkout-2026"});
    entry["shippedVariant"] = json!("treatment");
    entry
}

/// A schemaVersion 2 document: the entry with targeting rules of every serve, and the segment
/// they name, as in `docs/targeting.md`.
fn targeting_document() -> Value {
    let mut entry = experiment_entry();
    entry.as_object_mut().unwrap().remove("shippedVariant");
    entry["targeting"] = json!([
        {"name": "legal-hold",
         "conditions": [{"attribute": "country", "operator": "In", "values": ["DE", "FR"]}],
         "serve": {"enabled": false}},
        {"name": "pro",
         "conditions": [{"attribute": "plan", "operator": "In", "values": ["pro"]},
                        {"attribute": "age", "operator": "Gte", "values": ["18"]}],
         "serve": {"variant": "treatment"}},
        {"name": "beta-on-new-app",
         "conditions": [{"operator": "InSegment", "values": ["beta-testers"]},
                        {"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2"]},
                        {"attribute": "email", "operator": "Exists", "values": []}],
         "serve": {"percent": 37.5}}
    ]);
    json!({
        "schemaVersion": 2,
        "flags": {"checkout": entry},
        "segments": {"beta-testers": {
            "included": ["alice", "bob"],
            "excluded": ["mallory"],
            "rules": [{"conditions": [
                {"attribute": "email", "operator": "EndsWith", "values": ["@example.com"]}]}]
        }}
    })
}

#[test]
fn the_schema_accepts_published_documents() {
    let validator = Validator::new();
    for (name, document) in [
        ("the minimal entry", document(entry())),
        ("an experiment entry", document(experiment_entry())),
        ("a targeting entry and its segment", targeting_document()),
        (
            "examples/published/flags.json",
            serde_json::from_str(&read("examples/published/flags.json")).unwrap(),
        ),
    ] {
        validator
            .check(&document)
            .unwrap_or_else(|errors| panic!("the schema refuses {name}:\n{errors}"));
        let bytes = serde_json::to_vec(&document).unwrap();
        let parsed = FlagDocument::from_json(&bytes)
            .unwrap_or_else(|error| panic!("the SDK refuses {name}: {error}"));
        // What the SDK writes back is what the schema describes (`json_schema` is the
        // serialize contract), so `shippedVariant: null` and absent fields never appear.
        let written: Value = serde_json::from_str(&parsed.to_json()).unwrap();
        validator.check(&written).unwrap_or_else(|errors| {
            panic!("the schema refuses {name} as re-serialized:\n{errors}")
        });
    }
}

#[test]
fn every_vector_flag_satisfies_the_schema() {
    let validator = Validator::new();
    let vectors: Value = serde_json::from_str(&read("sdk/testdata/vectors.json")).unwrap();
    let flags: Vec<&Value> = vectors["evaluation"]
        .as_array()
        .expect("vectors.json has evaluation cases")
        .iter()
        .map(|case| &case["flag"])
        .filter(|flag| !flag.is_null())
        .collect();
    assert!(flags.len() > 1000, "only {} vector flags", flags.len());
    for flag in flags {
        validator
            .check(&document(flag.clone()))
            .unwrap_or_else(|errors| panic!("the schema refuses vector flag {flag}:\n{errors}"));
    }
    let targeting = vectors["targeting"]
        .as_array()
        .expect("vectors.json has targeting cases");
    for case in targeting {
        let key = case["flag"]["key"].as_str().unwrap();
        let document = json!({"schemaVersion": 2, "flags": {key: &case["flag"]},
                              "segments": &case["segments"]});
        validator.check(&document).unwrap_or_else(|errors| {
            panic!("the schema refuses targeting vector document {document}:\n{errors}")
        });
    }
}

#[test]
fn the_schema_refuses_malformed_documents() {
    let validator = Validator::new();
    // (what, JSON pointer, its new value or `None` to remove it, whether the SDK's reader
    // refuses the document too: `false` marks where the schema is stricter than the reader).
    let cases = [
        ("schemaVersion 3", "/schemaVersion", Some(json!(3)), true),
        ("no schemaVersion", "/schemaVersion", None, true),
        ("flags not an object", "/flags", Some(json!([])), true),
        ("no phase", "/flags/checkout/phase", None, false),
        ("no updatedAt", "/flags/checkout/updatedAt", None, false),
        (
            "enabled as a number",
            "/flags/checkout/enabled",
            Some(json!(1)),
            true,
        ),
        (
            "percent above 100",
            "/flags/checkout/percent",
            Some(json!(101)),
            true,
        ),
        (
            "percent below 0",
            "/flags/checkout/percent",
            Some(json!(-0.01)),
            true,
        ),
        (
            "a repeated allowed user",
            "/flags/checkout/allowedUsers",
            Some(json!(["a", "a"])),
            false,
        ),
        (
            "an allowed user too long",
            "/flags/checkout/allowedUsers/0",
            Some(json!("u".repeat(254))),
            false,
        ),
        (
            "a variant without weight",
            "/flags/checkout/variants/0/weight",
            None,
            true,
        ),
        (
            "a weight above 100",
            "/flags/checkout/variants/0/weight",
            Some(json!(150)),
            true,
        ),
        (
            "an unnamed variant",
            "/flags/checkout/variants/0/name",
            Some(json!("")),
            false,
        ),
        (
            "experiment null",
            "/flags/checkout/experiment",
            Some(json!(null)),
            false,
        ),
        (
            "coverage above 100",
            "/flags/checkout/experiment/coverage",
            Some(json!(100.5)),
            true,
        ),
        (
            "a negative generation",
            "/flags/checkout/generation",
            Some(json!(-1)),
            false,
        ),
        (
            "a fractional generation",
            "/flags/checkout/generation",
            Some(json!(1.5)),
            true,
        ),
        (
            "updatedAt not a date-time",
            "/flags/checkout/updatedAt",
            Some(json!("noon")),
            false,
        ),
    ];
    for (what, pointer, value, reader_refuses) in cases {
        let mut bad = document(experiment_entry());
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        let says = match value {
            Some(value) => {
                *bad.pointer_mut(pointer).unwrap() = value;
                format!("at '{pointer}': ")
            }
            None => {
                let parent_object = bad.pointer_mut(parent).unwrap().as_object_mut().unwrap();
                parent_object.remove(name).unwrap();
                format!("at '{parent}': missing properties '{name}'")
            }
        };
        assert_refused(&validator, what, &bad, &says, reader_refuses);
    }

    // Targeting rules and segments: the shapes, in the schema; names, counts and value
    // syntax, only in the reader (`FlagDocument::check`).
    let rule = "/flags/checkout/targeting/2";
    let targeting_cases = [
        (
            "an unknown operator",
            format!("{rule}/conditions/0/operator"),
            json!("Matches"),
            "at '/flags/checkout/targeting/2/conditions/0/operator'",
            true,
        ),
        (
            "two answers in one serve",
            format!("{rule}/serve"),
            json!({"enabled": true, "percent": 5}),
            "at '/flags/checkout/targeting/2/serve'",
            true,
        ),
        (
            "a rule percent above 100",
            format!("{rule}/serve"),
            json!({"percent": 100.5}),
            "at '/flags/checkout/targeting/2/serve",
            true,
        ),
        (
            "an unnamed rule",
            format!("{rule}/name"),
            json!(""),
            "at '/flags/checkout/targeting/2/name'",
            true,
        ),
        (
            "values not strings",
            format!("{rule}/conditions/1/values"),
            json!([4.2]),
            "at '/flags/checkout/targeting/2/conditions/1/values/0'",
            true,
        ),
        (
            "a segment's included not a list",
            "/segments/beta-testers/included".to_owned(),
            json!("alice"),
            "at '/segments/beta-testers/included'",
            true,
        ),
    ];
    for (what, pointer, value, says, reader_refuses) in targeting_cases {
        let mut bad = targeting_document();
        *bad.pointer_mut(&pointer).unwrap() = value;
        assert_refused(&validator, what, &bad, says, reader_refuses);
    }

    // Flag keys, as map keys and as `key` (the reader requires only that the two match).
    for (key, says) in [
        ("Bad_Key", "invalid property 'Bad_Key'"),
        ("-checkout", "at '/flags/-checkout/key': "),
    ] {
        let mut entry = experiment_entry();
        entry["key"] = json!(key);
        let what = format!("the flag key {key:?}");
        assert_refused(&validator, &what, &document(entry), says, false);
    }
}

fn assert_refused(validator: &Validator, what: &str, bad: &Value, says: &str, reader_too: bool) {
    let errors = match validator.check(bad) {
        Ok(()) => panic!("the schema accepts {what}: {bad}"),
        Err(errors) => errors,
    };
    assert!(
        errors.contains(says),
        "{what}: no error saying {says:?}:\n{errors}"
    );
    let read = FlagDocument::from_json(&serde_json::to_vec(bad).unwrap());
    assert_eq!(
        read.is_err(),
        reader_too,
        "{what}: the SDK's reader gives {read:?}"
    );
}
