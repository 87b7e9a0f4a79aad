//! The official OpenFeature OFREP providers as processes: the harness in `tests/ofrep-clients/`
//! (JavaScript, Python and Rust), installed by `scripts/install-ofrep-clients`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Whether a missing client fails the test (`ROLLGATE_REQUIRE_OFREP_CLIENTS=1`, set by
/// `scripts/test-all`) instead of skipping it.
pub fn required() -> bool {
    std::env::var("ROLLGATE_REQUIRE_OFREP_CLIENTS").is_ok_and(|v| v == "1")
}

/// Every client, or why some cannot run here.
pub fn all_or_missing() -> Result<Vec<Client>, String> {
    let clients = Client::all();
    let missing: Vec<String> = clients
        .iter()
        .filter_map(|c| c.missing().map(|why| format!("{}: {why}", c.name)))
        .collect();
    if missing.is_empty() {
        Ok(clients)
    } else {
        Err(format!(
            "OFREP clients missing (run scripts/install-ofrep-clients): {}",
            missing.join("; ")
        ))
    }
}

/// Every client; `None` after printing why the test is skipped, when some are missing and not
/// required. Panics when they are required.
pub fn all_or_skip() -> Option<Vec<Client>> {
    all_or_missing()
        .inspect_err(|message| {
            assert!(!required(), "{message}");
            eprintln!("skipped: {message}");
        })
        .ok()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn cache() -> PathBuf {
    std::env::var_os("ROLLGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rollgate")
        })
}

/// One client: a name, the command that runs the harness with `BASE_URL CASES.json`, and what
/// its provider passes on.
pub struct Client {
    pub name: &'static str,
    program: PathBuf,
    leading_args: Vec<PathBuf>,
    /// Whether the provider reports the relay's `reason`.
    pub reports_reason: bool,
    /// Whether the provider reports the relay's `metadata` (with `rule`).
    pub reports_metadata: bool,
    /// Whether the provider can send a list of strings as an attribute.
    pub sends_lists: bool,
    /// Whether the provider sends an empty `targetingKey`.
    pub sends_empty_targeting_key: bool,
}

impl Client {
    pub fn all() -> Vec<Client> {
        let clients = repo().join("tests/ofrep-clients");
        vec![
            Client {
                name: "javascript",
                program: PathBuf::from("node"),
                leading_args: vec![clients.join("evaluate.mjs")],
                reports_reason: true,
                reports_metadata: true,
                sends_lists: true,
                sends_empty_targeting_key: true,
            },
            Client {
                name: "python",
                program: cache().join("venv/bin/python"),
                leading_args: vec![clients.join("evaluate.py")],
                reports_reason: true,
                reports_metadata: true,
                sends_lists: true,
                // `if evaluation_context.targeting_key:` in openfeature-provider-ofrep 0.3.0.
                sends_empty_targeting_key: false,
            },
            Client {
                name: "rust",
                program: cache().join("ofrep-rust-target/release/rollgate-ofrep-rust-client"),
                leading_args: vec![],
                // open-feature-ofrep 0.1.2 answers every success as STATIC with no metadata,
                // and sends a struct field as its debug text.
                reports_reason: false,
                reports_metadata: false,
                sends_lists: false,
                sends_empty_targeting_key: true,
            },
        ]
    }

    /// Why this client cannot run here, if it cannot.
    pub fn missing(&self) -> Option<String> {
        let runs = Command::new(&self.program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let node_modules =
            repo().join("tests/ofrep-clients/node_modules/@openfeature/ofrep-provider");
        match self.name {
            "javascript" if !runs || !node_modules.exists() => {
                Some("node or tests/ofrep-clients/node_modules is missing".into())
            }
            "python"
                if !Command::new(&self.program)
                    .args(["-c", "import openfeature.contrib.provider.ofrep"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()) =>
            {
                Some(format!(
                    "{} cannot import openfeature-provider-ofrep",
                    self.program.display()
                ))
            }
            "rust" if !self.program.exists() => {
                Some(format!("{} is not built", self.program.display()))
            }
            _ => None,
        }
    }

    /// Runs the harness; one JSON answer per case, in order.
    pub fn evaluate(&self, base: &str, cases: &Path) -> Vec<Value> {
        let output = Command::new(&self.program)
            .args(&self.leading_args)
            .arg(base)
            .arg(cases)
            .output()
            .unwrap_or_else(|e| {
                panic!("{}: cannot run {}: {e}", self.name, self.program.display())
            });
        assert!(
            output.status.success(),
            "{} client failed: {}\n{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", self.name))
            })
            .collect()
    }
}

/// What one client's answers came to, against the relay's expected answers.
#[derive(Debug, Default)]
pub struct Tally {
    pub compared: usize,
    /// Answers that are the caller's default reported as an error: where the relay answers
    /// without a value (ADR-0006) or with `TARGETING_KEY_MISSING`.
    pub defaults: usize,
    /// The first such error code, as the provider reports it.
    pub default_code: Option<Value>,
}

/// Compares `client`'s `answers` with the relay's `expected` answers (OFREP JSON, as
/// `relay::ofrep::answer` gives them) for `cases`, in order. Where the relay answers a value,
/// the client must report that value and variant, and the reason and `metadata.rule` where its
/// provider passes them on. Where it answers without a value or with an error, the provider
/// must return the caller's default (false or "") and an error code: the providers predate
/// ADR-0006. Returns every difference, or the tally.
pub fn compare(
    client: &Client,
    cases: &[Value],
    expected: &[Value],
    answers: &[Value],
) -> Result<Tally, Vec<String>> {
    assert_eq!(
        answers.len(),
        cases.len(),
        "{}: answers per case",
        client.name
    );
    let mut tally = Tally::default();
    let mut wrong = Vec::new();
    for ((case, want), got) in cases.iter().zip(expected).zip(answers) {
        tally.compared += 1;
        let default = if case["type"] == "boolean" {
            Value::Bool(false)
        } else {
            Value::String(String::new())
        };
        let differences = match want.get("value") {
            None if got["errorCode"].is_null() => vec!["no error where the relay has no value"],
            None => {
                tally.defaults += 1;
                tally.default_code.get_or_insert(got["errorCode"].clone());
                [(got["value"] != default, "not the caller's default")]
                    .into_iter()
                    .filter_map(|(differs, what)| differs.then_some(what))
                    .collect()
            }
            Some(_) if !got["errorCode"].is_null() => vec!["an error where the relay has a value"],
            Some(value) => {
                let metadata_rule = |answer: &Value| answer["metadata"]["rule"].clone();
                [
                    (&got["value"] != value, "value"),
                    (got["variant"] != want["variant"], "variant"),
                    (
                        client.reports_reason && got["reason"] != want["reason"],
                        "reason",
                    ),
                    (
                        client.reports_metadata && metadata_rule(got) != metadata_rule(want),
                        "metadata.rule",
                    ),
                ]
                .into_iter()
                .filter_map(|(differs, what)| differs.then_some(what))
                .collect()
            }
        };
        if !differences.is_empty() {
            wrong.push(format!(
                "{case}: {} differ: client {got}, relay {want}",
                differences.join(", ")
            ));
        }
    }
    if wrong.is_empty() {
        Ok(tally)
    } else {
        Err(wrong)
    }
}
