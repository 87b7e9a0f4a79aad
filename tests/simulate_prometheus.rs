//! `rollgate simulate --prometheus` against a real Prometheus gives the same outcome as
//! `--metrics` on a CSV of the same data.
//!
//! The two example histories are turned into raw Prometheus data: counters of requests by
//! status code whose error ratio over each minute is the CSV's `error-ratio`, and a classic
//! histogram whose p99 over each minute is the CSV's `p99-latency-seconds` (an empty value
//! becomes a minute without traffic, which Prometheus answers with NaN: no data). Both are
//! backfilled into one Prometheus, in two namespaces, and the example flag's real queries
//! are replayed with `--namespace`.
//!
//! The guardrail history (`treatment-regression-at-5.csv`) also becomes the counter its
//! guardrail queries, `rollgate_flag_requests_total` by cohort and outcome, sampled at every
//! row, so that `increase(...[{{ since_ramp_start }}])` gives the CSV's counts since the ramp
//! started exactly.

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::path::Path;
use std::process::{Command, Output};

use jiff::Timestamp;
use prometheus_support::{OpenMetricsHistory, PrometheusServer, prometheus_or_skip};
use rollgate::simulate::{History, parse_guarded_history, parse_history};
use rollgate_core::observation::{GuardrailOutcome, MetricOutcome};
use serde_json::Value;

const STEP: i64 = 15;
/// Requests per second: enough that the ratios come out exact to many digits.
const TRAFFIC: f64 = 100.0;
const NAMES: [&str; 2] = ["error-ratio", "p99-latency-seconds"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &str) -> History {
    let text = std::fs::read_to_string(root().join(path)).expect("example history");
    parse_history(&text, &NAMES, None).expect("example history parses")
}

/// The value of `metric` for the minute that ends at or after `t`, i.e. the one a
/// `rate(...[1m])` evaluated at the next whole minute sees.
fn minute_value(history: &History, metric: &str, start: i64, t: i64) -> Option<f64> {
    let minute_end = start + (t - start + 59).div_euclid(60) * 60;
    let at = Timestamp::from_second(minute_end.max(start)).expect("time");
    match history.outcome_at(metric, at) {
        MetricOutcome::Value { value } => Some(value),
        MetricOutcome::NoData { .. } => None,
        MetricOutcome::Error { message } => panic!("cannot replay a query error: {message}"),
    }
}

/// Adds one history's series under `namespace`.
fn add(om: &mut OpenMetricsHistory, history: &History, namespace: &str) {
    let start = history.first_time().expect("rows").as_second();
    let end = history.last_time().expect("rows").as_second();
    // Series begin five minutes early, so the first minute already has a full window.
    let from = start - 300;
    let labels = |code| {
        [
            ("namespace", namespace),
            ("job", "checkout"),
            ("code", code),
        ]
    };
    let errors = |t| minute_value(history, "error-ratio", start, t);
    om.counter("http_requests_total", &labels("200"))
        .rate(from, end, STEP, |t| {
            errors(t).map_or(0.0, |r| TRAFFIC * (1.0 - r))
        });
    om.counter("http_requests_total", &labels("500"))
        .rate(from, end, STEP, |t| errors(t).map_or(0.0, |r| TRAFFIC * r));
    // With all but `c` of the observations under 0.1 s and `c` in (0.1, 1], p99 is
    // 0.1 + 0.9·(c − 1)/c, so c = 1 / (1 − (q − 0.1)/0.9) gives p99 = q.
    om.histogram(
        "http_request_duration_seconds",
        &[0.1, 1.0],
        &[("namespace", namespace), ("job", "checkout")],
    )
    .histogram_rate(from, end, STEP, |t| {
        match minute_value(history, "p99-latency-seconds", start, t) {
            Some(q) => {
                assert!(
                    q > 0.1 && q < 1.0,
                    "p99 {q} cannot be built from these buckets"
                );
                let c = TRAFFIC / 100.0 / (1.0 - (q - 0.1) / 0.9);
                vec![TRAFFIC - c, c, 0.0]
            }
            None => vec![0.0, 0.0, 0.0],
        }
    });
}

fn simulate(args: &[&str]) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .current_dir(root())
        .arg("simulate")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("rollgate runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12),
        _ => a == b,
    }
}

/// The decisions of two traces agree: the same calls, phases, percents, events, verdicts,
/// and values equal up to floating point.
fn assert_same_decisions(csv: &Value, prometheus: &Value) {
    for field in [
        "outcome", "at", "phase", "percent", "analyses", "passed", "failed", "held",
    ] {
        assert_eq!(
            csv["summary"][field], prometheus["summary"][field],
            "summary.{field}"
        );
    }
    let (a, b) = (
        csv["ticks"].as_array().expect("ticks"),
        prometheus["ticks"].as_array().expect("ticks"),
    );
    assert_eq!(a.len(), b.len(), "number of engine calls");
    for (x, y) in a.iter().zip(b) {
        let at = &x["time"];
        for field in ["time", "phase", "percent", "step"] {
            assert_eq!(x[field], y[field], "{field} at {at}");
        }
        let reasons = |t: &Value| -> Vec<Value> {
            t["events"]
                .as_array()
                .map(|e| e.iter().map(|e| e["reason"].clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(reasons(x), reasons(y), "events at {at}");
        assert_eq!(
            x["analysis"]["verdict"], y["analysis"]["verdict"],
            "verdict at {at}"
        );
        let metrics = |t: &Value| {
            t["analysis"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        for (m, n) in metrics(x).iter().zip(&metrics(y)) {
            assert_eq!(m["verdict"], n["verdict"], "{} at {at}", m["name"]);
            assert!(
                close(&m["value"], &n["value"]),
                "{} at {at}: {} vs {}",
                m["name"],
                m["value"],
                n["value"]
            );
        }
    }
}

#[test]
fn prometheus_replay_matches_the_csv_of_the_same_data() {
    if !prometheus_or_skip("prometheus_replay_matches_the_csv_of_the_same_data") {
        return;
    }
    let spike = load("examples/metrics/spike-at-25.csv");
    let healthy = load("examples/metrics/healthy.csv");
    let mut om = OpenMetricsHistory::new();
    add(&mut om, &spike, "spike");
    add(&mut om, &healthy, "healthy");
    let server = PrometheusServer::start_with_history(&om.render()).expect("prometheus starts");
    let url = server.url().to_string();

    for (namespace, file, history, code) in [
        ("spike", "examples/metrics/spike-at-25.csv", &spike, 3),
        ("healthy", "examples/metrics/healthy.csv", &healthy, 0),
    ] {
        let (csv_output, csv) = simulate(&["examples/ramp.yaml", "--metrics", file]);
        let from = history.first_time().expect("rows").to_string();
        let to = history.last_time().expect("rows").to_string();
        let (output, replay) = simulate(&[
            "examples/ramp.yaml",
            "--prometheus",
            &url,
            "--from",
            &from,
            "--to",
            &to,
            "--namespace",
            namespace,
        ]);
        assert_eq!(csv_output.status.code(), Some(code), "{namespace} from CSV");
        assert_eq!(
            output.status.code(),
            Some(code),
            "{namespace} from Prometheus: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            server.log()
        );
        assert!(
            replay["source"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Prometheus at http://127.0.0.1:")
        );
        assert_same_decisions(&csv, &replay);
    }
    // The held minute of the healthy morning: NaN from Prometheus, an empty value in CSV.
    let (_, replay) = simulate(&[
        "examples/ramp.yaml",
        "--prometheus",
        &url,
        "--from",
        "2025-03-11T09:00:00Z",
        "--to",
        "2025-03-11T12:00:00Z",
        "--namespace",
        "healthy",
    ]);
    let held = replay["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .find(|t| t["analysis"]["verdict"] == "Hold")
        .expect("one held analysis");
    assert_eq!(held["time"], "2025-03-11T10:52:00Z");
    let message = held["analysis"]["metrics"][1]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("NaN"), "{message}");
}

/// Adds the guardrail's counter of `history`: per cohort (`on`, `off`) and outcome
/// (`error`, `ok`), its cumulative count at every minute of the history.
fn add_guardrail_counter(om: &mut OpenMetricsHistory, history: &History, flag: &str) {
    let start = history.first_time().expect("rows");
    let end = history.last_time().expect("rows").as_second();
    let before = Timestamp::from_second(start.as_second() - 1).expect("time");
    let counts = |t: i64| match history.guardrail_at(
        "errors",
        before,
        Timestamp::from_second(t).expect("time"),
    ) {
        GuardrailOutcome::Counts { counts } => counts,
        GuardrailOutcome::Error { message } => panic!("cannot replay a query error: {message}"),
    };
    for cohort in ["on", "off"] {
        for outcome in ["error", "ok"] {
            let labels = [("flag", flag), ("cohort", cohort), ("outcome", outcome)];
            om.counter("rollgate_flag_requests_total", &labels).values(
                start.as_second(),
                end,
                60,
                |t| {
                    let all = counts(t);
                    let side = if cohort == "on" {
                        all.treatment
                    } else {
                        all.control
                    };
                    let value = if outcome == "error" {
                        side.bad
                    } else {
                        side.total - side.bad
                    };
                    value as f64
                },
            );
        }
    }
}

#[test]
fn guardrails_replayed_from_prometheus_match_the_csv() {
    if !prometheus_or_skip("guardrails_replayed_from_prometheus_match_the_csv") {
        return;
    }
    let file = "examples/metrics/treatment-regression-at-5.csv";
    let text = std::fs::read_to_string(root().join(file)).expect("example history");
    let history = parse_guarded_history(&text, &["error-ratio"], &["errors"], None)
        .expect("example history parses");
    let mut om = OpenMetricsHistory::new();
    add(&mut om, &history, "guarded");
    add_guardrail_counter(&mut om, &history, "new-checkout-guarded");
    let server = PrometheusServer::start_with_history(&om.render()).expect("prometheus starts");

    let (csv_output, csv) = simulate(&["examples/guarded-ramp.yaml", "--metrics", file]);
    let (output, replay) = simulate(&[
        "examples/guarded-ramp.yaml",
        "--prometheus",
        server.url(),
        "--from",
        &history.first_time().expect("rows").to_string(),
        "--to",
        &history.last_time().expect("rows").to_string(),
        "--namespace",
        "guarded",
    ]);
    assert_eq!(csv_output.status.code(), Some(3), "from CSV");
    assert_eq!(
        output.status.code(),
        Some(3),
        "from Prometheus: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert_same_decisions(&csv, &replay);
    assert_eq!(
        replay["finalStatus"]["rollback"]["reason"],
        "GuardrailRegression"
    );
    // Every look saw the same counts since the ramp started, so the same statistics.
    let looks = |trace: &Value| -> Vec<Value> {
        trace["ticks"]
            .as_array()
            .expect("ticks")
            .iter()
            .filter_map(|tick| tick["guardrails"].as_array().map(|g| g[0].clone()))
            .collect()
    };
    let (a, b) = (looks(&csv), looks(&replay));
    assert!(a.len() > 10, "{} looks", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for field in [
            "verdict",
            "treatment",
            "control",
            "stepSamples",
            "tolerance",
        ] {
            assert_eq!(x[field], y[field], "{field}: {x} vs {y}");
        }
        for field in ["treatmentRate", "controlRate", "bound"] {
            assert!(close(&x[field], &y[field]), "{field}: {x} vs {y}");
        }
    }
}

#[test]
fn an_unreachable_prometheus_is_bad_input() {
    let url = prometheus_support::refused_url().expect("a free port");
    let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .current_dir(root())
        .args([
            "simulate",
            "examples/ramp.yaml",
            "--prometheus",
            &url,
            "--from",
            "2025-03-11T09:00:00Z",
            "--to",
            "2025-03-11T12:00:00Z",
        ])
        .output()
        .expect("rollgate runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot connect to Prometheus at http://127.0.0.1:"),
        "{err}"
    );
}
