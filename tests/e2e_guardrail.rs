//! End-to-end: a guarded rollout caught at 5% by its guardrail while the service-wide error
//! ratio stays inside the absolute bound.
//!
//! - The workload is an axum service on 127.0.0.1 using `rollgate-sdk` as a service would:
//!   `Flags::watch_configmap` on the published ConfigMap and the `CohortMetricsLayer`, which
//!   counts `rollgate_flag_requests_total{flag, cohort, outcome}` on its `/metrics`.
//! - A load generator sends about 400 requests a second from 100,000 users; 0.5% of all
//!   requests fail.
//! - A real Prometheus (Debian's package) scrapes the workload every second.
//! - `rollgate operator` runs as a process with that Prometheus.
//!
//! The flag ramps 1% → 5% → 100%. Once 5% is published, the treatment's users (the flag on)
//! fail 10 times as often as the others; the service-wide ratio moves only to about 0.7%,
//! under the absolute bound of 5%. The test measures the time from that onset to 0% published
//! in the ConfigMap and checks that the guardrail, not the absolute metric, rolled it back.
//!
//! Run: `scripts/test-e2e` (or `ROLLGATE_E2E_KUBECONFIG=… cargo test --test e2e_guardrail`).
//! Skipped, with the reason printed, when the variable is unset or Prometheus is missing.

mod support {
    pub mod cluster;
    pub mod operator;
    pub mod prometheus;
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use rollgate_sdk::{CohortMetrics, CohortMetricsLayer, Flags};
use support::cluster::{
    TestNamespace, apply_manifests, install_crd, kubeconfig, kubectl_ok, runtime_and_client,
    wait_for,
};
use support::operator::{OperatorOptions, OperatorProcess};
use support::prometheus::{PrometheusServer, prometheus_or_skip};

const FLAG: &str = "guarded-checkout";
const CONFIGMAP: &str = "rollgate-flags";
/// Every this many requests one fails, whoever sends it: 0.5%.
const BASELINE_EVERY: u64 = 200;
/// Treatment requests fail this often once the regression starts: 5%.
const TREATMENT_EVERY: u64 = 20;

fn manifest() -> String {
    format!(
        r#"apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: {FLAG}
spec:
  enabled: true
  rollout:
    steps:
      - {{percent: 1, pause: 20s}}
      - {{percent: 5, pause: 10m}}
      - {{percent: 100}}
    analysis:
      interval: 10s
      failureLimit: 1
      metrics:
        - name: error-ratio
          query: sum(rate(rollgate_flag_requests_total{{flag={{{{ flag }}}},outcome="error"}}[30s])) / sum(rate(rollgate_flag_requests_total{{flag={{{{ flag }}}}}}[30s]))
          max: 0.05
      guardrails:
        - name: errors
          bad: sum by (cohort) (increase(rollgate_flag_requests_total{{flag={{{{ flag }}}},outcome="error"}}[{{{{ since_ramp_start }}}}]))
          total: sum by (cohort) (increase(rollgate_flag_requests_total{{flag={{{{ flag }}}}}}[{{{{ since_ramp_start }}}}]))
          maxRelativeIncrease: 0.1
          minSamplesPerCohort: 100
"#
    )
}

/// The workload's state: its flags, its registry, and whether the new path is broken.
#[derive(Clone)]
struct Workload {
    flags: Flags,
    registry: Registry,
    treatment_broken: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

async fn checkout(State(workload): State<Workload>, uri: Uri) -> StatusCode {
    let Some(user) = uri.query().and_then(|q| q.strip_prefix("user=")) else {
        return StatusCode::BAD_REQUEST;
    };
    let n = workload.requests.fetch_add(1, Ordering::Relaxed);
    let treated = workload.flags.is_enabled(FLAG, Some(user));
    let broken = treated && workload.treatment_broken.load(Ordering::Relaxed);
    if n % BASELINE_EVERY == 0 || (broken && n % TREATMENT_EVERY == 1) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn metrics(State(workload): State<Workload>) -> String {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&workload.registry.gather(), &mut text)
        .expect("encode metrics");
    String::from_utf8(text).expect("utf-8 metrics")
}

/// The flag as the API server has it, and the operator's log: what a timeout should show.
fn describe(kubeconfig: &std::path::Path, namespace: &str, operator: &OperatorProcess) -> String {
    format!(
        "{}\n{}",
        kubectl_ok(
            kubeconfig,
            &["get", "ff", FLAG, "-n", namespace, "-o", "yaml"]
        ),
        operator.log_tail(40)
    )
}

fn published(kubeconfig: &std::path::Path, namespace: &str) -> Option<serde_json::Value> {
    let output = support::cluster::kubectl(
        kubeconfig,
        &[
            "get",
            "cm",
            CONFIGMAP,
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.flags\\.json}",
        ],
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(document["flags"][FLAG].clone()).filter(|entry| !entry.is_null())
}

#[test]
fn a_treatment_only_regression_at_5_percent_is_rolled_back_by_the_guardrail() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("skipped: ROLLGATE_E2E_KUBECONFIG is not set");
        return;
    };
    if !prometheus_or_skip(
        "a_treatment_only_regression_at_5_percent_is_rolled_back_by_the_guardrail",
    ) {
        return;
    }
    // reqwest is built without a default TLS provider; these requests are plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-guard");
    let (runtime, client) = runtime_and_client(&kubeconfig);

    // The workload, listening before anything scrapes it.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the workload");
    let address: SocketAddr = listener.local_addr().unwrap();
    let server = PrometheusServer::start_scraping(&address.to_string()).expect("Prometheus starts");
    let operator = OperatorProcess::start(
        OperatorOptions::new(&kubeconfig, &namespace.name).prometheus(server.url()),
    );
    apply_manifests(&kubeconfig, &namespace.name, &manifest());
    wait_for(
        "the flag published at 1%",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || published(&kubeconfig, &namespace.name).filter(|e| e["percent"] == 1.0),
        || operator.log_tail(40),
    );

    let flags = runtime
        .block_on(Flags::watch_configmap(client, &namespace.name, CONFIGMAP))
        .expect("the SDK watches the ConfigMap");
    let registry = Registry::new();
    let cohort_metrics = CohortMetrics::register(&registry).expect("register the counters");
    let workload = Workload {
        flags,
        registry,
        treatment_broken: Arc::new(AtomicBool::new(false)),
        requests: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route("/checkout", get(checkout))
        .layer(CohortMetricsLayer::new(cohort_metrics))
        .route("/metrics", get(metrics))
        .with_state(workload.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    // About 400 requests a second: 4 clients, one request every 10 ms each.
    let stop = Arc::new(AtomicBool::new(false));
    for client_index in 0..4u64 {
        let stop = stop.clone();
        runtime.spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client");
            let mut user = client_index * 25_013;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                user = (user * 48_271 + 11) % 100_000;
                let url = format!("http://{address}/checkout?user=user-{user}");
                let _ = http.get(&url).send().await;
            }
        });
    }

    wait_for(
        "the flag published at 5%",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || published(&kubeconfig, &namespace.name).filter(|e| e["percent"] == 5.0),
        || describe(&kubeconfig, &namespace.name, &operator),
    );
    let onset = Instant::now();
    workload.treatment_broken.store(true, Ordering::Relaxed);
    let (entry, rolled_back) = wait_for(
        "the flag published off at 0%",
        Duration::from_secs(240),
        Duration::from_millis(100),
        || {
            published(&kubeconfig, &namespace.name)
                .filter(|e| e["enabled"] == false && e["percent"] == 0.0)
        },
        || describe(&kubeconfig, &namespace.name, &operator),
    );
    stop.store(true, Ordering::Relaxed);
    let status: serde_json::Value = serde_json::from_str(&kubectl_ok(
        &kubeconfig,
        &["get", "ff", FLAG, "-n", &namespace.name, "-o", "json"],
    ))
    .unwrap();
    let rollback = &status["status"]["rollback"];
    assert_eq!(rollback["reason"], "GuardrailRegression", "{status:#}");
    assert_eq!(entry["phase"], "RolledBack");
    let message = rollback["message"].as_str().unwrap();
    assert!(message.contains("(5%)"), "{message}");
    // The absolute metric passed at every analysis: the guardrail alone saw the regression.
    let analyses = status["status"]["analyses"].as_array().unwrap();
    assert!(
        analyses.iter().all(|run| run["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["verdict"] != "Fail")),
        "{analyses:#?}"
    );
    let counted = runtime.block_on(async {
        let body = reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .filter(|line| line.starts_with("rollgate_flag_requests_total{"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    assert!(
        counted
            .iter()
            .any(|l| l.contains(r#"cohort="on""#) && l.contains(r#"outcome="error""#)),
        "{counted:#?}"
    );
    println!(
        "guardrail rollback: from the treatment's error onset at 5% to 0% published: {:.1} s; {} requests served\n{message}",
        rolled_back.duration_since(onset).as_secs_f64(),
        workload.requests.load(Ordering::Relaxed),
    );
    drop(operator);
    drop(server);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
