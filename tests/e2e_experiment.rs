//! End-to-end: an experiment declared and shipped by the real operator.
//!
//! A real Prometheus (Debian's package) is backfilled with the counters of
//! `examples/experiment.yaml` for this test's namespace: 50 users a second see each arm, 10%
//! of `control` and 20% of `treatment` convert, from an hour ago to half an hour from now
//! (the operator queries at wall-clock time, over the window since the experiment started).
//! `rollgate operator` runs as a process against the cluster of `ROLLGATE_E2E_KUBECONFIG`;
//! the test applies the example flag with `autoShip` and a 10s interval and checks that the
//! status names `treatment` as the winner with its lift, that it shipped (`Complete`,
//! `shippedVariant: treatment` in the published ConfigMap) and the experiment gauges on the
//! operator's `/metrics`.
//!
//! Run: `ROLLGATE_CLUSTER_DIR=/tmp/rg-e2e-exp scripts/local-cluster up`, then
//! `ROLLGATE_E2E_KUBECONFIG=/tmp/rg-e2e-exp/kubeconfig cargo test --test e2e_experiment`
//! (`scripts/test-e2e` does both). Skipped, with the reason printed, when the variable is
//! unset or Prometheus is not installed.

mod support {
    pub mod cluster;
    pub mod prometheus;
}

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::cluster::{TestNamespace, eventually, install_crd, kubeconfig, kubectl_ok};
use support::prometheus::{OpenMetricsHistory, PrometheusServer, free_port, prometheus_or_skip};

const FLAG: &str = "checkout-button";

/// The counters of the example, for `namespace`, from an hour ago to 30 minutes ahead.
fn history(namespace: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let (start, end, step) = (now - 3600, now + 1800, 5);
    let mut history = OpenMetricsHistory::new();
    for (variant, converting) in [("control", 5.0), ("treatment", 10.0)] {
        let labels = [
            ("namespace", namespace),
            ("flag", FLAG),
            ("variant", variant),
        ];
        history
            .counter("exposures_total", &labels)
            .rate(start, end, step, |_| 50.0);
        history
            .counter("conversions_total", &labels)
            .rate(start, end, step, move |_| converting);
    }
    // The guardrail: 0.5% errors, inside its 1% bound.
    for (code, per_second) in [("200", 100.0), ("500", 0.5)] {
        history
            .counter(
                "http_requests_total",
                &[
                    ("namespace", namespace),
                    ("job", "checkout"),
                    ("code", code),
                ],
            )
            .rate(start, end, step, move |_| per_second);
    }
    history.render()
}

/// `examples/experiment.yaml`, made fast: analyses every 10s, 100 exposures per variant
/// before the first decision.
fn manifest() -> String {
    let example =
        std::fs::read_to_string(support::cluster::repo_root().join("examples/experiment.yaml"))
            .expect("read the example");
    let fast = example
        .replace("minSamplesPerVariant: 1000", "minSamplesPerVariant: 100")
        .replace("interval: 5m", "interval: 10s");
    assert_ne!(fast, example);
    assert!(fast.contains("autoShip: true"));
    fast
}

/// `rollgate operator` for one namespace, with its log in a file; stopped by PID (SIGTERM,
/// then SIGKILL) when dropped.
struct Operator {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    fn start(kubeconfig: &Path, namespace: &str, prometheus_url: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-e2e-experiment-")
            .tempdir()
            .expect("temp dir");
        let port = free_port().expect("free port");
        let log = dir.path().join("operator.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace])
            .args(["--prometheus-url", prometheus_url])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("ROLLGATE_LOG", "info,rollgate=debug,kube=warn")
            .env_remove("ROLLGATE_LEADER_ELECTION")
            .env_remove("ROLLGATE_NAMESPACES")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start rollgate operator");
        let operator = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(60), || {
            (operator.get("/readyz").map(|(status, _)| status) == Some(200)).then_some(())
        });
        assert!(ready.is_some(), "operator not ready:\n{}", operator.log());
        operator
    }

    /// `GET path` on the operator's metrics address: (status, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flag_json(kubeconfig: &Path, namespace: &str) -> serde_json::Value {
    let json = kubectl_ok(
        kubeconfig,
        &["get", "ff", FLAG, "-n", namespace, "-o", "json"],
    );
    serde_json::from_str(&json).expect("flag json")
}

/// The sample of `name{labels…}` in a text exposition, when all `labels` match.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (series, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

#[test]
fn operator_declares_and_ships_the_winner() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    if !prometheus_or_skip("operator_declares_and_ships_the_winner") {
        return;
    }
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-exp");
    let ns = namespace.name.as_str();
    let prometheus = PrometheusServer::start_with_history(&history(ns)).expect("Prometheus starts");
    let operator = Operator::start(&kubeconfig, ns, prometheus.url());
    support::cluster::kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", ns, "-f", "-"],
        Some(&manifest()),
    );

    let shipped = eventually(Duration::from_secs(180), || {
        let flag = flag_json(&kubeconfig, ns);
        (flag["status"]["phase"] == "Complete").then_some(flag)
    });
    let Some(flag) = shipped else {
        panic!(
            "the experiment did not ship within 3 minutes; status:\n{:#}\noperator log:\n{}",
            flag_json(&kubeconfig, ns)["status"],
            operator.log()
        );
    };
    let status = &flag["status"];
    let experiment = &status["experiment"];
    assert_eq!(experiment["decision"], "Winner", "{status:#}");
    assert_eq!(experiment["winner"]["variant"], "treatment", "{status:#}");
    assert_eq!(experiment["winner"]["comparedTo"], "control", "{status:#}");
    assert_eq!(experiment["shippedVariant"], "treatment", "{status:#}");
    // A 10-point lift: 20% against 10%, with an interval above 0 that covers it.
    let lift = experiment["winner"]["lift"].as_f64().unwrap();
    assert!((0.08..=0.12).contains(&lift), "lift {lift}");
    let lower = experiment["winner"]["interval"]["lower"].as_f64().unwrap();
    let upper = experiment["winner"]["interval"]["upper"].as_f64().unwrap();
    assert!(
        lower > 0.0 && lower < 0.1 && upper > 0.1,
        "[{lower}, {upper}]"
    );
    assert!(experiment["winner"]["pValue"].as_f64().unwrap() <= 0.05);
    assert_eq!(status["percent"], 100.0);
    let conditions = status["conditions"].as_array().unwrap();
    let condition = |type_: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} in {conditions:#?}"))
    };
    assert_eq!(condition("ExperimentConcluded")["reason"], "Winner");
    assert_eq!(condition("SampleRatioMismatch")["status"], "False");
    assert_eq!(condition("Progressing")["reason"], "WinnerShipped");

    // Workloads see the winner for every user.
    let document = eventually(Duration::from_secs(30), || {
        let json = kubectl_ok(
            &kubeconfig,
            &["get", "configmap", "rollgate-flags", "-n", ns, "-o", "json"],
        );
        let configmap: serde_json::Value = serde_json::from_str(&json).ok()?;
        let text = configmap["data"]["flags.json"].as_str()?;
        let document: serde_json::Value = serde_json::from_str(text).ok()?;
        (document["flags"][FLAG]["shippedVariant"] == "treatment").then_some(document)
    })
    .unwrap_or_else(|| panic!("no shippedVariant published:\n{}", operator.log()));
    let entry = &document["flags"][FLAG];
    assert_eq!(entry["enabled"], true);
    assert_eq!(entry["percent"], 100.0);
    assert_eq!(entry["phase"], "Complete");
    assert_eq!(entry["experiment"]["coverage"], 20.0);
    assert_eq!(entry["experiment"]["salt"], "checkout-button-2026-11");
    let parsed =
        rollgate_sdk::FlagDocument::from_json(serde_json::to_string(&document).unwrap().as_bytes())
            .expect("the SDK reads the document");
    let set = rollgate_sdk::FlagSet::from_document(&parsed);
    for user in ["alice", "bob", "carol"] {
        assert_eq!(set.evaluate(FLAG, Some(user)).variant, Some("treatment"));
    }

    // Events a person reads.
    let events = kubectl_ok(
        &kubeconfig,
        &[
            "get",
            "events",
            "-n",
            ns,
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    for reason in ["ExperimentStarted", "WinnerDeclared", "WinnerShipped"] {
        assert!(events.contains(reason), "no {reason} event in {events}");
    }

    // The operator's own gauges.
    let (code, metrics) = operator.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    for variant in ["control", "treatment"] {
        let labels = [("namespace", ns), ("flag", FLAG), ("variant", variant)];
        let exposures = sample(&metrics, "rollgate_experiment_exposures", &labels);
        assert!(
            exposures.is_some_and(|n| n >= 100.0),
            "{variant}: {exposures:?}\n{metrics}"
        );
        let conversions = sample(&metrics, "rollgate_experiment_conversions", &labels);
        assert!(
            conversions.is_some_and(|n| n > 0.0),
            "{variant}: {conversions:?}"
        );
    }
    let labels = [("namespace", ns), ("flag", FLAG), ("variant", "treatment")];
    let p_value = sample(&metrics, "rollgate_experiment_p_value", &labels);
    assert!(p_value.is_some_and(|p| p <= 0.05), "{p_value:?}");
    let complete = [("namespace", ns), ("flag", FLAG), ("phase", "Complete")];
    assert_eq!(sample(&metrics, "rollgate_flag_info", &complete), Some(1.0));
    drop(operator);
    drop(prometheus);
}
