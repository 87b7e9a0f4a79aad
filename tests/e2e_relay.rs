//! End-to-end: the kill switch through `rollgate relay` to the official OFREP providers.
//!
//! On the cluster of `ROLLGATE_E2E_KUBECONFIG`, the operator publishes a flag; `rollgate relay
//! --namespace` follows the published ConfigMap through the API; the JavaScript, Python and
//! Rust OFREP providers (`tests/ofrep-clients/`) and a plain HTTP poll ask the relay. After
//! `kubectl patch … enabled=false`, each of them asks again and again; the time from the patch
//! to each one's answer changing is printed. A client run is a process start plus one
//! evaluation, so the figures for the providers include their start-up.
//!
//! Skipped with the reason without a cluster; without the clients too, unless
//! `ROLLGATE_REQUIRE_OFREP_CLIENTS=1`.

mod support {
    pub mod cluster;
    pub mod operator;
    pub mod relay_process;
}
#[path = "support/ofrep_clients.rs"]
mod ofrep_clients;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ofrep_clients::{all_or_missing, required};
use serde_json::json;
use support::cluster::{
    TestNamespace, eventually, install_crd, kubeconfig, kubectl_ok, kubectl_with_input,
};
use support::operator::{OperatorOptions, OperatorProcess};
use support::relay_process::RelayProcess;

const FLAG: &str = "apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: relay-kill
spec:
  enabled: true
  percent: 100
";

/// One evaluation over plain HTTP: `Some(enabled)`, or `None` while the relay cannot answer.
fn ask(port: u16, namespace: &str) -> Option<bool> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = r#"{"context":{"targetingKey":"user-1"}}"#;
    write!(
        stream,
        "POST /ns/{}/ofrep/v1/evaluate/flags/relay-kill HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        namespace,
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, json) = response.split_once("\r\n\r\n")?;
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["value"].as_bool()
}

#[test]
fn a_kill_reaches_every_ofrep_client_through_the_relay() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("skipped: ROLLGATE_E2E_KUBECONFIG is not set");
        return;
    };
    let clients = match all_or_missing() {
        Ok(clients) => clients,
        Err(message) => {
            assert!(!required(), "{message}");
            eprintln!("skipped: {message}");
            return;
        }
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-relay");
    let operator = OperatorProcess::start(OperatorOptions::new(&kubeconfig, &namespace.name));
    let applied = kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "-"],
        Some(FLAG),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let directory = tempfile::tempdir().unwrap();
    let relay = RelayProcess::follow(&kubeconfig, &namespace.name, directory.path());
    let relay_log = || relay.log();
    assert_eq!(
        eventually(Duration::from_secs(60), || {
            ask(relay.port, &namespace.name).filter(|on| *on)
        }),
        Some(true),
        "the relay never answered the published flag\n{}\n{}",
        relay_log(),
        operator.log_tail(30)
    );

    let cases = directory.path().join("cases.json");
    std::fs::write(
        &cases,
        json!([{"key": "relay-kill", "user": "user-1", "type": "boolean"}]).to_string(),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{}/ns/{}", relay.port, namespace.name);
    for client in &clients {
        assert_eq!(
            client.evaluate(&base, &cases)[0]["value"],
            true,
            "{}",
            client.name
        );
    }

    // The kill switch, then every reader asks until its answer changes, all at once.
    let patched = Instant::now();
    kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "featureflag",
            "relay-kill",
            "-n",
            &namespace.name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ],
    );
    let patch_returned = patched.elapsed();
    let port = relay.port;
    let base = Arc::new(base);
    let cases = Arc::new(cases);
    let mut readers: Vec<std::thread::JoinHandle<(String, Duration)>> = clients
        .into_iter()
        .map(|client| {
            let base = base.clone();
            let cases = cases.clone();
            std::thread::spawn(move || {
                loop {
                    if client.evaluate(&base, &cases)[0]["value"] == false {
                        return (client.name.to_string(), patched.elapsed());
                    }
                    assert!(
                        patched.elapsed() < Duration::from_secs(30),
                        "{}: still on 30 s after the patch",
                        client.name
                    );
                }
            })
        })
        .collect();
    let name = namespace.name.clone();
    readers.push(std::thread::spawn(move || {
        loop {
            if ask(port, &name) == Some(false) {
                return ("plain HTTP (20 ms polls)".to_string(), patched.elapsed());
            }
            assert!(
                patched.elapsed() < Duration::from_secs(30),
                "the relay still answers on 30 s after the patch"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }));
    let mut report = Vec::new();
    for reader in readers {
        let (name, elapsed) = reader.join().expect("a reader panicked");
        report.push(format!("{name}: {} ms", elapsed.as_millis()));
    }
    println!(
        "kill switch, kubectl patch (returned after {} ms) → the answer of each reader of the relay:\n  {}",
        patch_returned.as_millis(),
        report.join("\n  ")
    );
    drop(relay);
}
