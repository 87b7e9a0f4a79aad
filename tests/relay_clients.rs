//! The official OpenFeature OFREP providers against `rollgate relay`: JavaScript
//! (`@openfeature/server-sdk` + `@openfeature/ofrep-provider` from npm), Python
//! (`openfeature-sdk` + `openfeature-provider-ofrep` from PyPI) and Rust (`open-feature` +
//! `open-feature-ofrep` from crates.io), each run as its own process by the harness in
//! `tests/ofrep-clients/`. Every client's answers must equal the Rust SDK's for the same users;
//! then a flag is killed in the relay's file and the time until each client's answer changes is
//! measured and printed. A second test sends every case of the shared targeting vectors
//! (`sdk/testdata/vectors.json`, `"targeting"`): the context's attributes through each provider,
//! the answers equal to the Rust SDK's `evaluate_with`, which equal the vectors'.
//!
//! `scripts/install-ofrep-clients` installs the clients (`scripts/test-all` runs it). Without
//! them the test is skipped with the reason, unless `ROLLGATE_REQUIRE_OFREP_CLIENTS=1` (set by
//! `scripts/test-all`), which turns a missing client into a failure.

#[path = "support/ofrep_clients.rs"]
mod ofrep_clients;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ofrep_clients::{Client, all_or_skip, compare};
use rollgate::relay::ofrep;
use rollgate_sdk::{AttributeValue, Context, FlagDocument, FlagEntry, Flags, SegmentEntry};
use serde_json::{Value, json};

/// The flags every client is asked about: on/off at 50%, variants at 100% and at 30%, an
/// allow-list at 0%, and a disabled flag.
const DOCUMENT: &str = r#"{"schemaVersion":1,"flags":{
  "checkout":{"key":"checkout","enabled":true,"percent":50,"phase":"Progressing","generation":3},
  "button":{"key":"button","enabled":true,"percent":100,
            "variants":[{"name":"blue","weight":50},{"name":"green","weight":50}]},
  "layout":{"key":"layout","enabled":true,"percent":30,
            "variants":[{"name":"grid","weight":70},{"name":"list","weight":30}]},
  "beta":{"key":"beta","enabled":true,"percent":0,"allowedUsers":["qa-1"]},
  "dark":{"key":"dark","enabled":false,"percent":100}}}"#;

/// The relay binary on 127.0.0.1 serving each (namespace, file); stopped by PID on drop.
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    fn start(namespaces: &[(String, PathBuf)], directory: &Path) -> Relay {
        let port_file = directory.join("port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        command.args(["relay", "--listen", "127.0.0.1:0"]);
        for (namespace, path) in namespaces {
            command
                .arg("--flags-file")
                .arg(format!("{namespace}={}", path.display()));
        }
        let mut child = command
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rollgate relay");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rollgate relay exited with {status}");
            }
            assert!(Instant::now() < deadline, "no port file within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        Relay { child, port }
    }

    fn base(&self, namespace: &str) -> String {
        format!("http://127.0.0.1:{}/ns/{namespace}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_document(path: &Path, document: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, document).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Cases for every flag: 40 users, the allow-listed one, for each flag.
fn cases() -> Vec<Value> {
    let mut users: Vec<String> = (0..40)
        .map(|i| format!("user-{}", i * 7919 % 10_007))
        .collect();
    users.push("qa-1".into());
    let mut cases = Vec::new();
    for (key, kind) in [
        ("checkout", "boolean"),
        ("beta", "boolean"),
        ("dark", "boolean"),
        ("button", "string"),
        ("layout", "string"),
    ] {
        for user in &users {
            cases.push(json!({"key": key, "user": user, "type": kind}));
        }
    }
    cases
}

/// The Rust SDK's answer for `key` and `context` as the relay sends it (`relay::ofrep::answer`,
/// whose mapping `tests/relay_http.rs` checks against docs/relay.md).
fn expected(flags: &Flags, key: &str, context: &Context) -> Value {
    let snapshot = flags.snapshot();
    let answer = ofrep::answer(
        key,
        snapshot.document().flags.get(key),
        snapshot.evaluate_with(key, context),
        context.targeting_key(),
        1,
    );
    serde_json::to_value(answer).unwrap()
}

/// Runs `client` on `cases` against `base` and compares with `expected`; panics listing every
/// difference. Returns the tally.
fn run_and_compare(
    client: &Client,
    base: &str,
    cases_file: &Path,
    cases: &[Value],
    expected: &[Value],
) -> ofrep_clients::Tally {
    std::fs::write(cases_file, serde_json::to_string(cases).unwrap()).unwrap();
    let answers = client.evaluate(base, cases_file);
    compare(client, cases, expected, &answers).unwrap_or_else(|wrong| {
        panic!(
            "{}: {} of {} answers differ from the SDK's:\n{}",
            client.name,
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        )
    })
}

#[test]
fn official_ofrep_providers_get_the_sdks_answers_and_see_a_kill() {
    let Some(clients) = all_or_skip() else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.json");
    write_document(&path, DOCUMENT);
    let relay = Relay::start(&[("shop".into(), path.clone())], directory.path());
    let base = relay.base("shop");
    let cases = cases();
    let cases_file = directory.path().join("cases.json");
    let flags = Flags::from_json(DOCUMENT.as_bytes()).unwrap();
    let want: Vec<Value> = cases
        .iter()
        .map(|case| {
            let context = Context::from(case["user"].as_str());
            expected(&flags, case["key"].as_str().unwrap(), &context)
        })
        .collect();

    for client in &clients {
        let tally = run_and_compare(client, &base, &cases_file, &cases, &want);
        println!(
            "{}: {} answers equal the SDK's; {} of them the caller's default reported as {:?}",
            client.name,
            tally.compared,
            tally.defaults,
            tally.default_code.unwrap_or(Value::Null)
        );
    }

    // The kill switch: a user who has `checkout` on, the flag disabled in the relay's file.
    let user = (0..)
        .map(|i| format!("user-{i}"))
        .find(|user| flags.is_enabled("checkout", Some(user)))
        .unwrap();
    let one = directory.path().join("one.json");
    std::fs::write(
        &one,
        json!([{"key": "checkout", "user": user, "type": "boolean"}]).to_string(),
    )
    .unwrap();
    let killed = DOCUMENT.replacen(
        r#""checkout":{"key":"checkout","enabled":true"#,
        r#""checkout":{"key":"checkout","enabled":false"#,
        1,
    );
    assert_ne!(killed, DOCUMENT);
    let mut report = Vec::new();
    for (round, client) in clients.iter().enumerate() {
        let document = if round % 2 == 0 { &killed } else { DOCUMENT };
        let want = round % 2 != 0;
        // One run before the change: what starting the client costs.
        let started = Instant::now();
        assert_eq!(client.evaluate(&base, &one)[0]["value"], json!(!want));
        let process = started.elapsed();
        write_document(&path, document);
        let changed = Instant::now();
        loop {
            if client.evaluate(&base, &one)[0]["value"] == json!(want) {
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(30),
                "{}: the answer did not change within 30 s",
                client.name
            );
        }
        report.push(format!(
            "{}: {} ms from the file change to the changed answer (one client run takes {} ms)",
            client.name,
            changed.elapsed().as_millis(),
            process.as_millis()
        ));
    }
    println!("kill switch through the relay:\n  {}", report.join("\n  "));
}

/// The shared targeting vectors: `sdk/testdata/vectors.json`, `"targeting"`.
fn targeting_vectors() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/testdata/vectors.json");
    let mut vectors: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match vectors["targeting"].take() {
        Value::Array(cases) if !cases.is_empty() => cases,
        other => panic!(
            "{}: \"targeting\" is not a non-empty list: {other}",
            path.display()
        ),
    }
}

/// The targeting cases grouped into flag documents in which each key has one definition and
/// each segment one content, as the rank depends on the key and cannot be renamed away: each
/// document with the indexes of its cases.
fn targeting_documents(vectors: &[Value]) -> Vec<(FlagDocument, Vec<usize>)> {
    let mut documents: Vec<(FlagDocument, Vec<usize>)> = Vec::new();
    for (index, case) in vectors.iter().enumerate() {
        let entry: FlagEntry = serde_json::from_value(case["flag"].clone())
            .unwrap_or_else(|e| panic!("targeting[{index}].flag: {e}"));
        let segments: BTreeMap<String, SegmentEntry> =
            serde_json::from_value(case["segments"].clone())
                .unwrap_or_else(|e| panic!("targeting[{index}].segments: {e}"));
        let fits = |document: &FlagDocument| {
            document
                .flags
                .get(&entry.key)
                .is_none_or(|known| known == &entry)
                && segments
                    .iter()
                    .all(|(name, segment)| document.segments.get(name).is_none_or(|s| s == segment))
        };
        let position = match documents.iter().position(|(document, _)| fits(document)) {
            Some(position) => position,
            None => {
                documents.push((FlagDocument::new(), Vec::new()));
                documents.len() - 1
            }
        };
        let (document, indexes) = &mut documents[position];
        document.flags.insert(entry.key.clone(), entry);
        document.segments.extend(segments);
        indexes.push(index);
    }
    documents
}

/// A vector's context: its `user` as the targeting key, its attributes typed as the relay
/// types the OFREP context's.
fn vector_context(index: usize, case: &Value) -> Context {
    let mut context = Context::from(case["user"].as_str());
    let attributes = case["context"]
        .as_object()
        .unwrap_or_else(|| panic!("targeting[{index}].context is not an object"));
    for (name, value) in attributes {
        let value = match value {
            Value::String(text) => AttributeValue::String(text.clone()),
            Value::Bool(flag) => AttributeValue::Bool(*flag),
            Value::Number(number) => AttributeValue::Number(number.as_f64().unwrap()),
            Value::Array(items) => AttributeValue::List(
                items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).unwrap_or_else(|| {
                            panic!("targeting[{index}].context.{name}: not a list of strings")
                        })
                    })
                    .collect(),
            ),
            other => panic!("targeting[{index}].context.{name}: unsupported {other}"),
        };
        context.set(name, value);
    }
    context
}

/// One targeting vector as a harness case, with the relay's expected answer.
struct TargetingCase {
    harness: Value,
    expected: Value,
    /// Its index in the vectors.
    vector: usize,
}

/// Why `client` cannot be given `case`, if it cannot.
fn cannot_send(client: &Client, case: &Value) -> Option<&'static str> {
    let attributes = case["context"].as_object().unwrap();
    if attributes.contains_key("targetingKey") {
        // The SDK ignores such an attribute; OFREP has one targetingKey, the user.
        Some("an attribute named targetingKey, which OFREP cannot send beside the user")
    } else if !client.sends_lists && attributes.values().any(Value::is_array) {
        Some("a list attribute, which the provider cannot send")
    } else if !client.sends_empty_targeting_key && case["user"] == "" {
        Some("an empty user id, which the provider leaves out")
    } else {
        None
    }
}

#[test]
fn official_ofrep_providers_get_the_sdks_targeting_answers() {
    let Some(clients) = all_or_skip() else {
        return;
    };
    let vectors = targeting_vectors();
    let documents = targeting_documents(&vectors);
    let directory = tempfile::tempdir().unwrap();
    let mut namespaces = Vec::new();
    // Per document: its namespace and its cases.
    let mut runs: Vec<(String, Vec<TargetingCase>)> = Vec::new();
    for (number, (document, indexes)) in documents.iter().enumerate() {
        let json = document.to_json();
        let namespace = format!("targeting-{number}");
        let path = directory.path().join(format!("{namespace}.json"));
        write_document(&path, &json);
        namespaces.push((namespace.clone(), path));
        let flags = Flags::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("targeting document {number}: {e}"));
        let snapshot = flags.snapshot();
        let mut cases = Vec::new();
        for &index in indexes {
            let case = &vectors[index];
            let key = case["flag"]["key"].as_str().unwrap();
            let context = vector_context(index, case);
            // The SDK's answer is the vector's, so the clients are held to the vectors.
            let sdk = snapshot.evaluate_with(key, &context);
            assert_eq!(
                json!([
                    sdk.enabled,
                    sdk.variant,
                    sdk.reason.as_str(),
                    sdk.rule,
                    sdk.rank
                ]),
                json!([
                    case["enabled"],
                    case["variant"],
                    case["reason"],
                    case["rule"],
                    case["rank"]
                ]),
                "targeting[{index}]: the SDK's answer differs from the vector's"
            );
            let has_variants = !case["flag"]["variants"].as_array().unwrap().is_empty();
            let harness_case = json!({
                "key": key,
                "user": case["user"],
                "type": if has_variants { "string" } else { "boolean" },
                "attributes": case["context"],
            });
            cases.push(TargetingCase {
                harness: harness_case,
                expected: expected(&flags, key, &context),
                vector: index,
            });
        }
        runs.push((namespace, cases));
    }
    let relay = Relay::start(&namespaces, directory.path());
    let cases_file = directory.path().join("cases.json");

    for client in &clients {
        let started = Instant::now();
        let (mut compared, mut defaults) = (0, 0);
        let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
        for (namespace, cases) in &runs {
            let mut sent = Vec::new();
            let mut want = Vec::new();
            for case in cases {
                match cannot_send(client, &vectors[case.vector]) {
                    Some(why) => *skipped.entry(why).or_default() += 1,
                    None => {
                        sent.push(case.harness.clone());
                        want.push(case.expected.clone());
                    }
                }
            }
            let tally = run_and_compare(client, &relay.base(namespace), &cases_file, &sent, &want);
            compared += tally.compared;
            defaults += tally.defaults;
        }
        println!(
            "{} targeting: {compared} of {} vectors compared, all equal to the SDK's ({defaults} \
             of them the caller's default with an error), in {} ms; skipped: {skipped:?}",
            client.name,
            vectors.len(),
            started.elapsed().as_millis()
        );
    }
}
