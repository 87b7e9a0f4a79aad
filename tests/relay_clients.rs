//! The official OpenFeature OFREP providers against `rollgate relay`: JavaScript
//! (`@openfeature/server-sdk` + `@openfeature/ofrep-provider` from npm), Python
//! (`openfeature-sdk` + `openfeature-provider-ofrep` from PyPI) and Rust (`open-feature` +
//! `open-feature-ofrep` from crates.io), each run as its own process by the harness in
//! `tests/ofrep-clients/`. Every client's answers must equal the Rust SDK's for the same users;
//! then a flag is killed in the relay's file and the time until each client's answer changes is
//! measured and printed.
//!
//! `scripts/install-ofrep-clients` installs the clients (`scripts/test-all` runs it). Without
//! them the test is skipped with the reason, unless `ROLLGATE_REQUIRE_OFREP_CLIENTS=1` (set by
//! `scripts/test-all`), which turns a missing client into a failure.

#[path = "support/ofrep_clients.rs"]
mod ofrep_clients;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ofrep_clients::{all_or_missing, required};
use rollgate_sdk::Flags;
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

/// The relay binary on 127.0.0.1 serving `path` as namespace `shop`; stopped by PID on drop.
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    fn start(path: &Path, directory: &Path) -> Relay {
        let port_file = directory.join("port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(["relay", "--listen", "127.0.0.1:0", "--flags-file"])
            .arg(format!("shop={}", path.display()))
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

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/ns/shop", self.port)
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

/// What the Rust SDK answers, as the provider's value: the flag's on/off for a boolean flag,
/// the variant name (or the code default "") for a variant flag.
fn expected(flags: &Flags, case: &Value) -> Value {
    let key = case["key"].as_str().unwrap();
    let user = case["user"].as_str();
    let answer = flags.evaluate(key, user);
    if case["type"] == "boolean" {
        json!(answer.enabled)
    } else {
        json!(answer.variant.unwrap_or_default())
    }
}

#[test]
fn official_ofrep_providers_get_the_sdks_answers_and_see_a_kill() {
    let clients = match all_or_missing() {
        Ok(clients) => clients,
        Err(message) => {
            assert!(!required(), "{message}");
            eprintln!("skipped: {message}");
            return;
        }
    };
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.json");
    write_document(&path, DOCUMENT);
    let relay = Relay::start(&path, directory.path());
    let cases = cases();
    let cases_file = directory.path().join("cases.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();
    let flags = Flags::from_json(DOCUMENT.as_bytes()).unwrap();

    for client in &clients {
        let answers = client.evaluate(&relay.base(), &cases_file);
        assert_eq!(answers.len(), cases.len(), "{}", client.name);
        let wrong: Vec<String> = cases
            .iter()
            .zip(&answers)
            .filter(|(case, answer)| answer["value"] != expected(&flags, case))
            .map(|(case, answer)| format!("{case} → {answer}, SDK {}", expected(&flags, case)))
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: {} of {} answers differ from the SDK's:\n{}",
            client.name,
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
        // An error code is allowed only where the relay answers without a value (ADR-0006: a
        // variant flag that gives this user no variant, so the caller's default applies):
        // providers that predate ADR-0006 report that as an error, with the default as value.
        let errors: Vec<&Value> = cases
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| !answer["errorCode"].is_null())
            .map(|(case, answer)| {
                assert_eq!(
                    (case["type"].as_str(), expected(&flags, case)),
                    (Some("string"), json!("")),
                    "{}: an error where the SDK has an answer: {answer}",
                    client.name
                );
                answer
            })
            .collect();
        println!(
            "{}: {} answers equal the SDK's; {} of them the caller's default reported as {:?}",
            client.name,
            cases.len(),
            errors.len(),
            errors
                .first()
                .map(|a| a["errorCode"].clone())
                .unwrap_or(Value::Null)
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
        assert_eq!(
            client.evaluate(&relay.base(), &one)[0]["value"],
            json!(!want)
        );
        let process = started.elapsed();
        write_document(&path, document);
        let changed = Instant::now();
        loop {
            if client.evaluate(&relay.base(), &one)[0]["value"] == json!(want) {
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
