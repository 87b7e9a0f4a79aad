//! `rollgate analyze` and `rollgate validate` end to end: the real binary against a real
//! Prometheus with backfilled history.

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::path::Path;
use std::process::{Command, Output};

use prometheus_support::{
    OpenMetricsHistory, PrometheusServer, RecordingServer, prometheus_or_skip, refused_url,
};

/// 2024-01-15T12:00:00Z; a 5xx spike from +60 min to +75 min.
const START: i64 = 1_705_320_000;
const END: i64 = START + 2 * 3600;
const STEP: i64 = 15;
const HEALTHY_AT: &str = "2024-01-15T12:30:00Z";
const SPIKE_AT: &str = "2024-01-15T13:05:00Z";
const BEFORE_HISTORY: &str = "2024-01-15T11:00:00Z";

const FLAG: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: new-checkout
  namespace: shop
spec:
  enabled: true
  rollout:
    steps:
      - percent: 5
        pause: 10m
      - percent: 100
    analysis:
      interval: 1m
      prometheus:
        address: http://prometheus.monitoring.svc:9090
      metrics:
        - name: error-ratio
          query: |
            sum(rate(http_requests_total{namespace={{ namespace }}, job="checkout", code=~"5.."}[{{ interval }}]))
              /
            sum(rate(http_requests_total{namespace={{ namespace }}, job="checkout"}[{{ interval }}]))
          max: 0.01
        - name: p99-latency-seconds
          query: |
            histogram_quantile(0.99,
              sum by (le) (rate(http_request_duration_seconds_bucket{namespace={{ namespace }}, job="checkout"}[{{ interval }}])))
          max: 0.5
          onNoData: Hold
"#;

fn history() -> String {
    let mut history = OpenMetricsHistory::new();
    let labels = |code| [("namespace", "shop"), ("job", "checkout"), ("code", code)];
    history
        .counter("http_requests_total", &labels("200"))
        .rate(START, END, STEP, |_| 100.0);
    history
        .counter("http_requests_total", &labels("500"))
        .rate(START, END, STEP, |t| {
            if t > START + 3600 && t <= START + 4500 {
                20.0
            } else {
                0.5
            }
        });
    // 100 req/s: 90 under 100 ms, 9 under 250 ms, 1 under 500 ms, so p99 is 250 ms.
    history
        .histogram(
            "http_request_duration_seconds",
            &[0.1, 0.25, 0.5, 1.0],
            &[("namespace", "shop"), ("job", "checkout")],
        )
        .histogram_rate(START, END, STEP, |_| vec![90.0, 9.0, 1.0, 0.0, 0.0]);
    history.render()
}

fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .env_remove("ROLLGATE_PROMETHEUS_URL")
        .output()
        .expect("rollgate runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn write_flag(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn analyze_against_real_prometheus() {
    if !prometheus_or_skip("analyze_against_real_prometheus") {
        return;
    }
    let server = PrometheusServer::start_with_history(&history()).expect("Prometheus starts");
    let dir = tempfile::tempdir().unwrap();
    let flag = write_flag(dir.path(), "flag.yaml", FLAG);

    // Healthy: both metrics pass, exit 0.
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        server.url(),
        "--time",
        HEALTHY_AT,
        &flag,
    ]);
    let out = text(&output);
    println!(
        "$ rollgate analyze --prometheus {} --time {HEALTHY_AT} flag.yaml\n{out}",
        server.url()
    );
    assert_eq!(output.status.code(), Some(0), "{out}\n{}", server.log());
    assert!(
        out.contains(&format!("prometheus  {}", server.url())),
        "{out}"
    );
    assert!(
        out.contains(r#"query    sum(rate(http_requests_total{namespace="shop", job="checkout", code=~"5.."}[1m]))"#),
        "{out}"
    );
    assert!(out.contains("value    0.004975124378109"), "{out}");
    assert!(out.contains("value    0.25"), "{out}");
    assert!(out.contains("bounds   max 0.01"), "{out}");
    assert!(
        out.contains("summary: 2 pass, 0 fail, 0 hold, 0 ignored"),
        "{out}"
    );

    // The spike: the error ratio fails, exit 3.
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        server.url(),
        "--time",
        SPIKE_AT,
        &flag,
    ]);
    let out = text(&output);
    println!(
        "$ rollgate analyze --prometheus {} --time {SPIKE_AT} flag.yaml\n{out}",
        server.url()
    );
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(out.contains("value    0.1666666666666"), "{out}");
    assert!(out.contains("verdict  FAIL (0.1666666666666"), "{out}");
    assert!(out.contains("is above max 0.01)"), "{out}");

    // Before any history: no data under the Hold policy is inconclusive, exit 4.
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        server.url(),
        "--time",
        BEFORE_HISTORY,
        &flag,
    ]);
    let out = text(&output);
    println!(
        "$ rollgate analyze --prometheus {} --time {BEFORE_HISTORY} flag.yaml\n{out}",
        server.url()
    );
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(
        out.contains("no data: query returned an empty vector"),
        "{out}"
    );
    assert!(
        out.contains("summary: 0 pass, 0 fail, 2 hold, 0 ignored"),
        "{out}"
    );

    // onNoData: Fail turns the same into a failure.
    let strict = FLAG.replace("onNoData: Hold", "onNoData: Fail");
    let strict = write_flag(dir.path(), "strict.yaml", &strict);
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        server.url(),
        "--time",
        BEFORE_HISTORY,
        &strict,
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));

    // A flag without an address of its own takes the operator's default from the
    // environment; a flag that names one keeps it, as in the operator.
    let addressless = FLAG.replace(
        "      prometheus:\n        address: http://prometheus.monitoring.svc:9090\n",
        "",
    );
    assert_ne!(addressless, FLAG);
    let addressless = write_flag(dir.path(), "addressless.yaml", &addressless);
    let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["analyze", "--time", HEALTHY_AT, &addressless])
        .env("ROLLGATE_PROMETHEUS_URL", server.url())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

/// Cohort-labelled counters from START for two hours: the control (`off`) and the
/// treatment (`on`) fail 0.5% of 95 and 5 requests a second, until the treatment fails
/// 1.5% from +60 min.
fn cohort_history() -> String {
    let mut history = OpenMetricsHistory::new();
    let regression_from = START + 3600;
    let series = [
        ("off", "ok", 95.0 * 0.995, 95.0 * 0.995),
        ("off", "error", 95.0 * 0.005, 95.0 * 0.005),
        ("on", "ok", 5.0 * 0.995, 5.0 * 0.985),
        ("on", "error", 5.0 * 0.005, 5.0 * 0.015),
    ];
    for (cohort, outcome, before, after) in series {
        history
            .counter(
                "rollgate_flag_requests_total",
                &[
                    ("flag", "checkout"),
                    ("cohort", cohort),
                    ("outcome", outcome),
                ],
            )
            .rate(START, END, STEP, |t| {
                if t > regression_from { after } else { before }
            });
    }
    history.render()
}

/// The ramp's first hour, before the regression.
const RAMP_HOUR_ONE: &str = "2024-01-15T13:00:00Z";
/// The second hour, with the treatment failing three times as often.
const RAMP_HOUR_TWO: &str = "2024-01-15T14:00:00Z";

const GUARDED_FLAG: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: checkout
  namespace: shop
spec:
  enabled: true
  rollout:
    steps:
      - percent: 5
        pause: 10m
      - percent: 100
    analysis:
      interval: 1m
      metrics:
        - name: error-ratio
          query: |
            sum(rate(rollgate_flag_requests_total{flag={{ flag }}, outcome="error"}[{{ interval }}]))
              /
            sum(rate(rollgate_flag_requests_total{flag={{ flag }}}[{{ interval }}]))
          max: 0.01
      guardrails:
        - name: errors
          bad: sum by (cohort) (increase(rollgate_flag_requests_total{flag={{ flag }}, outcome="error"}[{{ since_ramp_start }}]))
          total: sum by (cohort) (increase(rollgate_flag_requests_total{flag={{ flag }}}[{{ since_ramp_start }}]))
          maxRelativeIncrease: 0.1
          minSamplesPerCohort: 1000
"#;

#[test]
fn analyze_shows_each_guardrail_against_real_prometheus() {
    if !prometheus_or_skip("analyze_shows_each_guardrail_against_real_prometheus") {
        return;
    }
    let server =
        PrometheusServer::start_with_history(&cohort_history()).expect("Prometheus starts");
    let dir = tempfile::tempdir().unwrap();
    let flag = write_flag(dir.path(), "flag.yaml", GUARDED_FLAG);
    let analyze = |extra: &[&str], file: &str| {
        let mut args = vec!["analyze", "--prometheus", server.url()];
        args.extend_from_slice(extra);
        args.push(file);
        let output = rollgate(&args);
        let out = text(&output);
        println!("$ rollgate {}\n{out}", args.join(" "));
        (output.status.code(), out)
    };

    // The first hour: both cohorts fail 0.5%, the guardrail passes, exit 0.
    let (code, out) = analyze(
        &["--time", RAMP_HOUR_ONE, "--since-ramp-start", "1h"],
        &flag,
    );
    assert_eq!(code, Some(0), "{out}\n{}", server.log());
    assert!(
        out.contains("  since ramp  3600s (--since-ramp-start)\n"),
        "{out}"
    );
    assert!(
        out.contains(r#"  bad        sum by (cohort) (increase(rollgate_flag_requests_total{flag="checkout", outcome="error"}[3600s]))"#),
        "{out}"
    );
    assert!(
        out.contains("  treatment  90 bad of 18000 (0.500%)\n"),
        "{out}"
    );
    assert!(
        out.contains("  control    1710 bad of 342000 (0.500%)\n"),
        "{out}"
    );
    assert!(
        out.contains("  tolerance  maxRelativeIncrease 0.1: treatment at most 0.550%; alpha 0.05; minSamplesPerCohort 1000\n"),
        "{out}"
    );
    assert!(
        out.contains("  verdict    pass (the interval does not lie entirely above 0"),
        "{out}"
    );
    assert!(
        out.contains("summary: 1 pass, 0 fail, 0 hold, 0 ignored\n"),
        "{out}"
    );
    assert!(
        out.contains("guardrails: 1 pass, 0 regression, 0 collecting, 0 error\n"),
        "{out}"
    );

    // The second hour, its start taken from status.rampStartedAt as `kubectl get -o yaml`
    // saves it: the treatment fails 1.5%. The absolute error ratio (0.55%) still passes; the
    // guardrail finds the regression, exit 3 as for a failed metric.
    let saved = format!(
        "{GUARDED_FLAG}status:\n  phase: Progressing\n  rampStartedAt: \"{RAMP_HOUR_ONE}\"\n"
    );
    let saved = write_flag(dir.path(), "saved.yaml", &saved);
    let (code, out) = analyze(&["--time", RAMP_HOUR_TWO], &saved);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!(
            "  since ramp  3600s (status.rampStartedAt {RAMP_HOUR_ONE})\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("  treatment  270 bad of 18000 (1.500%)\n"),
        "{out}"
    );
    assert!(
        out.contains("  control    1710 bad of 342000 (0.500%)\n"),
        "{out}"
    );
    assert!(
        out.contains("  verdict    REGRESSION (the interval lies entirely above 0"),
        "{out}"
    );
    assert!(
        out.contains("summary: 1 pass, 0 fail, 0 hold, 0 ignored\n"),
        "{out}"
    );
    assert!(
        out.contains("guardrails: 0 pass, 1 regression, 0 collecting, 0 error\n"),
        "{out}"
    );

    // The same as JSON: the rates, the interval above 0 and the status spelling.
    let (code, out) = analyze(
        &[
            "--time",
            RAMP_HOUR_TWO,
            "--since-ramp-start",
            "1h",
            "--output",
            "json",
        ],
        &flag,
    );
    assert_eq!(code, Some(3), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let guardrail = &report["guardrails"][0];
    assert_eq!(guardrail["name"], "errors");
    assert_eq!(guardrail["verdict"], "Regression");
    assert_eq!(guardrail["maxRelativeIncrease"], 0.1);
    assert_eq!(
        guardrail["counts"]["treatment"],
        serde_json::json!({"bad": 270, "total": 18000})
    );
    assert_eq!(
        guardrail["counts"]["control"],
        serde_json::json!({"bad": 1710, "total": 342000})
    );
    assert_eq!(guardrail["treatmentRate"], 0.015);
    assert_eq!(guardrail["controlRate"], 0.005);
    assert!(
        guardrail["interval"]["lower"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    assert_eq!(report["sinceRampStart"]["range"], "3600s");
    assert_eq!(report["metrics"][0]["verdict"], "Pass");
    assert_eq!(report["exitCode"], 3);

    // Two minutes in, the treatment has 600 events of the 1000 needed: collecting, and a
    // rollout would wait, exit 4.
    let (code, out) = analyze(
        &["--time", RAMP_HOUR_ONE, "--since-ramp-start", "2m"],
        &flag,
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("  treatment  3 bad of 600 (0.500%)\n"),
        "{out}"
    );
    assert!(out.contains("  interval   none: not judged\n"), "{out}");
    assert!(
        out.contains("  verdict    collecting (judging starts at 1000 events in each cohort)"),
        "{out}"
    );
}

#[test]
fn analyze_guardrail_errors_and_bad_windows() {
    let dir = tempfile::tempdir().unwrap();
    let flag = write_flag(dir.path(), "flag.yaml", GUARDED_FLAG);
    // Prometheus is down: the metric holds and the guardrail is in error, exit 4.
    let address = refused_url().unwrap();
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        &address,
        "--timeout",
        "2s",
        &flag,
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(
        out.contains(&format!(
            "  verdict    error (bad: cannot connect to Prometheus at {address}"
        )),
        "{out}"
    );
    assert!(out.contains("  counts     none\n"), "{out}");
    assert!(out.contains("  since ramp  3600s (default;"), "{out}");

    // A window that is no duration, and a ramp that starts after the analysis time.
    for (args, words) in [
        (vec!["--since-ramp-start", "soon"], "--since-ramp-start"),
        (vec!["--since-ramp-start", "0s"], "at least 1s"),
    ] {
        let mut all = vec!["analyze", "--prometheus", "http://127.0.0.1:9"];
        all.extend(args);
        all.push(&flag);
        let output = rollgate(&all);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{out}");
        assert!(out.contains(words), "{out}");
    }
    let later = format!("{GUARDED_FLAG}status:\n  rampStartedAt: \"{RAMP_HOUR_TWO}\"\n");
    let later = write_flag(dir.path(), "later.yaml", &later);
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        "http://127.0.0.1:9",
        "--time",
        RAMP_HOUR_ONE,
        &later,
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("FeatureFlag/checkout: status.rampStartedAt {RAMP_HOUR_TWO} is after the analysis time {RAMP_HOUR_ONE}")),
        "{out}"
    );
}

#[test]
fn analyze_with_prometheus_down_is_inconclusive_and_names_the_address() {
    let address = refused_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flag = write_flag(dir.path(), "flag.yaml", FLAG);
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        &address,
        "--timeout",
        "2s",
        &flag,
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(
        out.contains(&format!("error: cannot connect to Prometheus at {address}")),
        "{out}"
    );
    assert!(
        out.contains("verdict  hold (query error, and onError is Hold)"),
        "{out}"
    );
}

#[test]
fn bad_input_is_exit_2_with_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = FLAG.replace("{{ interval }}", "{{ window }}");
    let unknown = write_flag(dir.path(), "unknown.yaml", &unknown);
    let unparsable = FLAG.replace("sum by (le) (rate(", "sum by (le) (rate((");
    let unparsable = write_flag(dir.path(), "unparsable.yaml", &unparsable);

    for (file, field, words) in [
        (
            &unknown,
            "spec.rollout.analysis.metrics[0].query",
            "unknown placeholder {{ window }}",
        ),
        (
            &unparsable,
            "spec.rollout.analysis.metrics[1].query",
            "PromQL does not parse",
        ),
    ] {
        let validate = rollgate(&["validate", file]);
        let out = text(&validate);
        assert_eq!(validate.status.code(), Some(2), "{out}");
        assert!(out.contains(field) && out.contains(words), "{out}");

        // analyze refuses the flag before sending anything.
        let analyze = rollgate(&["analyze", "--prometheus", "http://127.0.0.1:9", file]);
        let out = text(&analyze);
        assert_eq!(analyze.status.code(), Some(2), "{out}");
        assert!(out.contains(field), "{out}");
    }

    let flag = write_flag(dir.path(), "flag.yaml", FLAG);
    for args in [
        vec!["analyze", "--prometheus", "not a url", flag.as_str()],
        vec![
            "analyze",
            "--prometheus",
            "http://x",
            "--time",
            "yesterday",
            flag.as_str(),
        ],
        vec![
            "analyze",
            "--prometheus",
            "http://x",
            "--header",
            "novalue",
            flag.as_str(),
        ],
        vec![
            "analyze",
            "--prometheus",
            "http://x",
            "/nonexistent/flag.yaml",
        ],
    ] {
        let output = rollgate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
}

const ZERO: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1705320000,"0"]}]}}"#;

#[test]
fn header_takes_name_equals_value_and_name_colon_value() {
    let server = RecordingServer::start(200, "application/json", ZERO).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flag = write_flag(dir.path(), "flag.yaml", FLAG);
    let url = server.url();
    let output = rollgate(&[
        "analyze",
        "--prometheus",
        &url,
        "--header",
        "X-Scope-OrgID=team-a",
        "--header",
        "X-Filter: job=checkout",
        &flag,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let requests = server.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.header("x-scope-orgid"), Some("team-a"));
        assert_eq!(request.header("x-filter"), Some("job=checkout"));
    }

    let output = rollgate(&[
        "analyze",
        "--prometheus",
        &url,
        "--header",
        "bad name=x",
        &flag,
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("--header"), "{out}");
    assert!(
        out.contains("\"bad name\" is not a valid HTTP header name"),
        "{out}"
    );
    assert_eq!(
        server.requests().len(),
        requests.len(),
        "nothing more was sent"
    );
}
