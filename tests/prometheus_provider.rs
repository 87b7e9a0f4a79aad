//! The metric provider against a real Prometheus (Debian's package) with backfilled history,
//! and against listeners the tests own for the failures Prometheus itself would not produce.
//!
//! History: `http_requests_total` for the checkout service in namespace `shop`, 100 req/s of
//! 200s and 0.5 req/s of 500s, with a 5xx spike of 20 req/s from +60 min to +75 min; an idle
//! service with no traffic at all; and a gauge with two series.

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_support::{
    OpenMetricsHistory, PrometheusServer, RecordingServer, SilentListener, prometheus_or_skip,
    refused_url,
};
use rollgate::prometheus::{
    Auth, NoData, PrometheusClient, PrometheusConfig, PrometheusError, Sample, analyze,
    analyze_detailed,
};
use rollgate_core::crd::{Analysis, MetricCheck, PrometheusSource};
use rollgate_core::observation::MetricOutcome;
use rollgate_core::template::{TemplateContext, parse_promql};

/// 2024-01-15T12:00:00Z.
const START: i64 = 1_705_320_000;
const END: i64 = START + 2 * 3600;
const STEP: i64 = 15;
const SPIKE_FROM: i64 = START + 60 * 60;
const SPIKE_TO: i64 = START + 75 * 60;
const HEALTHY_AT: i64 = START + 30 * 60;
const SPIKE_AT: i64 = START + 65 * 60;

const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{namespace="shop", code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="shop"}[1m]))"#;

fn history() -> String {
    let mut history = OpenMetricsHistory::new();
    let shop = |code| [("namespace", "shop"), ("job", "checkout"), ("code", code)];
    history
        .counter("http_requests_total", &shop("200"))
        .rate(START, END, STEP, |_| 100.0);
    history
        .counter("http_requests_total", &shop("500"))
        .rate(START, END, STEP, |t| {
            if t > SPIKE_FROM && t <= SPIKE_TO {
                20.0
            } else {
                0.5
            }
        });
    for code in ["200", "500"] {
        history
            .counter(
                "http_requests_total",
                &[("namespace", "idle"), ("job", "search"), ("code", code)],
            )
            .rate(START, END, STEP, |_| 0.0);
    }
    for pod in ["a", "b"] {
        history
            .gauge("queue_depth", &[("namespace", "shop"), ("pod", pod)])
            .values(START, END, STEP, |_| 7.0);
    }
    history.render()
}

/// A real Prometheus with the history, or `None` when the test is skipped (never under CI).
fn server(test: &str) -> Option<PrometheusServer> {
    if !prometheus_or_skip(test) {
        return None;
    }
    Some(PrometheusServer::start_with_history(&history()).expect("Prometheus starts"))
}

fn client(address: &str) -> PrometheusClient {
    PrometheusClient::new(PrometheusConfig::new(address)).expect("valid config")
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(seconds).unwrap())
}

fn value(sample: Sample) -> f64 {
    match sample {
        Sample::Value(value) => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

#[tokio::test]
async fn healthy_error_ratio_is_exact() {
    let Some(server) = server("healthy_error_ratio_is_exact") else {
        return;
    };
    let sample = client(server.url())
        .query(ERROR_RATIO, at(HEALTHY_AT))
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", server.log()));
    assert_close(value(sample), 0.5 / 100.5);
}

#[tokio::test]
async fn spike_is_seen_above_the_bound() {
    let Some(server) = server("spike_is_seen_above_the_bound") else {
        return;
    };
    let client = client(server.url());
    let spike = value(client.query(ERROR_RATIO, at(SPIKE_AT)).await.unwrap());
    assert_close(spike, 20.0 / 120.0);
    assert!(spike > 0.01, "the spike must break a 1% bound");
    // And the ratio is back to normal once the spike has left the window.
    let after = value(
        client
            .query(ERROR_RATIO, at(SPIKE_TO + 5 * 60))
            .await
            .unwrap(),
    );
    assert_close(after, 0.5 / 100.5);
}

#[tokio::test]
async fn absent_series_is_no_data() {
    let Some(server) = server("absent_series_is_no_data") else {
        return;
    };
    let sample = client(server.url())
        .query(
            r#"sum(rate(http_requests_total{job="does-not-exist"}[1m]))"#,
            at(HEALTHY_AT),
        )
        .await
        .unwrap();
    assert_eq!(sample, Sample::NoData(NoData::Empty));
    // Before the history starts there is nothing either.
    let before = client(server.url())
        .query(ERROR_RATIO, at(START - 3600))
        .await
        .unwrap();
    assert_eq!(before, Sample::NoData(NoData::Empty));
}

#[tokio::test]
async fn zero_over_zero_is_nan_no_data_and_division_by_zero_is_inf() {
    let Some(server) = server("zero_over_zero_is_nan_no_data") else {
        return;
    };
    let client = client(server.url());
    let nan = client
        .query(
            r#"sum(rate(http_requests_total{namespace="idle", code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="idle"}[1m]))"#,
            at(HEALTHY_AT),
        )
        .await
        .unwrap();
    assert_eq!(nan, Sample::NoData(NoData::NaN));
    let outcome = MetricOutcome::from(nan);
    assert!(
        matches!(&outcome, MetricOutcome::NoData { reason } if reason.contains("NaN")),
        "{outcome:?}"
    );
    let inf = client
        .query(
            r#"sum(rate(http_requests_total{namespace="shop", code="500"}[1m])) / sum(rate(http_requests_total{namespace="idle"}[1m]))"#,
            at(HEALTHY_AT),
        )
        .await
        .unwrap();
    assert_eq!(inf, Sample::NoData(NoData::PositiveInfinity));
    assert!(
        MetricOutcome::from(inf)
            == MetricOutcome::NoData {
                reason: NoData::PositiveInfinity.to_string()
            }
    );
}

#[tokio::test]
async fn invalid_promql_is_a_400_with_prometheus_words() {
    let Some(server) = server("invalid_promql_is_a_400") else {
        return;
    };
    let error = client(server.url())
        .query("sum(rate(http_requests_total[1m])", at(HEALTHY_AT))
        .await
        .unwrap_err();
    match &error {
        PrometheusError::Api {
            address,
            status,
            error_type,
            message,
            ..
        } => {
            assert_eq!(address, server.url());
            assert_eq!(*status, 400);
            assert_eq!(error_type, "bad_data");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(error.category(), "prometheus_api");
    assert!(!error.is_transient());
    assert!(error.to_string().contains(server.url()), "{error}");
}

#[tokio::test]
async fn more_than_one_series_is_an_error() {
    let Some(server) = server("more_than_one_series_is_an_error") else {
        return;
    };
    let client = client(server.url());
    let error = client
        .query(r#"queue_depth{namespace="shop"}"#, at(HEALTHY_AT))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PrometheusError::TooManySeries { count: 2, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("query returned 2 series, expected 1; aggregate with sum() or similar"),
        "{error}"
    );
    // Aggregated, and as a scalar, it is one number.
    let summed = client
        .query(r#"sum(queue_depth{namespace="shop"})"#, at(HEALTHY_AT))
        .await
        .unwrap();
    assert_eq!(summed, Sample::Value(14.0));
    let scalar = client
        .query(
            r#"scalar(sum(queue_depth{namespace="shop"}))"#,
            at(HEALTHY_AT),
        )
        .await
        .unwrap();
    assert_eq!(scalar, Sample::Value(14.0));
    // A range vector is not a number either.
    let error = client
        .query(r#"queue_depth{pod="a"}[1m]"#, at(HEALTHY_AT))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PrometheusError::UnsupportedResult { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn analysis_renders_templates_and_keeps_spec_order() {
    let Some(server) = server("analysis_renders_templates") else {
        return;
    };
    let metric = |name: &str, query: &str| MetricCheck {
        name: name.into(),
        query: query.into(),
        min: None,
        max: Some(0.01),
        on_no_data: Default::default(),
        on_error: Default::default(),
    };
    let analysis = Analysis {
        interval: "1m".into(),
        prometheus: Some(PrometheusSource {
            address: Some(server.url().to_string()),
        }),
        metrics: vec![
            metric(
                "error-ratio",
                r#"sum(rate(http_requests_total{namespace={{ namespace }}, code=~"5.."}[{{ interval }}])) / sum(rate(http_requests_total{namespace="{{ namespace }}"}[{{ interval }}]))"#,
            ),
            metric(
                "absent",
                r#"sum(rate(http_requests_total{job="{{ flag }}"}[{{ interval }}]))"#,
            ),
            metric("two-series", "queue_depth"),
            metric("unknown-placeholder", "sum(x{a={{ target }}})"),
            metric("unparsable", "sum(rate(x[5m])"),
            metric(
                "spike-window",
                r#"sum(rate(http_requests_total{namespace="shop", code="500"}[75m])) / sum(rate(http_requests_total{namespace="shop"}[75m]))"#,
            ),
        ],
        ..Analysis::default()
    };
    let context = TemplateContext {
        flag: "new-checkout".into(),
        namespace: "shop".into(),
        interval: "1m".into(),
        variant: None,
        since_ramp_start: None,
    };
    let runs = analyze_detailed(
        &client(server.url()),
        &analysis,
        &context,
        at(HEALTHY_AT),
        2,
    )
    .await;
    let names: Vec<&str> = runs.iter().map(|run| run.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "error-ratio",
            "absent",
            "two-series",
            "unknown-placeholder",
            "unparsable",
            "spike-window"
        ]
    );
    assert_eq!(
        runs[0].query.as_deref(),
        Some(
            r#"sum(rate(http_requests_total{namespace="shop", code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="shop"}[1m]))"#
        )
    );
    match runs[0].outcome {
        MetricOutcome::Value { value } => assert_close(value, 0.5 / 100.5),
        ref other => panic!("{other:?}"),
    }
    assert!(
        matches!(runs[1].outcome, MetricOutcome::NoData { .. }),
        "{:?}",
        runs[1]
    );
    match &runs[2].outcome {
        MetricOutcome::Error { message } => {
            assert!(message.contains("2 series"), "{message}");
            assert!(message.contains(server.url()), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for run in &runs[3..5] {
        assert!(run.query.is_none(), "{run:?}");
        assert!(
            matches!(&run.outcome, MetricOutcome::Error { message } if message.starts_with("query template:")),
            "{run:?}"
        );
    }
    assert!(
        matches!(runs[5].outcome, MetricOutcome::Value { .. }),
        "{:?}",
        runs[5]
    );

    // The engine's view: the same outcomes by name.
    let observations = analyze(
        &client(server.url()),
        &analysis,
        &context,
        at(HEALTHY_AT),
        1,
    )
    .await;
    assert_eq!(observations.len(), 6);
    for (observation, run) in observations.iter().zip(&runs) {
        assert_eq!(observation.name, run.name);
        assert_eq!(observation.outcome, run.outcome);
    }
}

#[tokio::test]
async fn promql_parser_agrees_with_prometheus_2() {
    let Some(server) = server("promql_parser_agrees_with_prometheus_2") else {
        return;
    };
    // Valid for Prometheus 2.42 (the Debian package) unless marked otherwise.
    let corpus: &[(&str, bool)] = &[
        (ERROR_RATIO, true),
        (
            r#"histogram_quantile(0.99, sum by (le) (rate(h_bucket{job="a"}[5m])))"#,
            true,
        ),
        ("rate(x[5m] @ 1705320000 offset -1m)", true),
        ("rate(x[5m] @ end())", true),
        ("max_over_time(rate(x[1m])[10m:30s])", true),
        ("holt_winters(x[10m], 0.5, 0.5)", true),
        (
            "sum without (pod) (x) / on (job) group_left sum by (job) (y)",
            true,
        ),
        ("absent_over_time(x[5m]) or vector(0)", true),
        ("x atan2 y > bool 1", true),
        (r#"label_replace(x, "dst", "$1", "src", "(.*)")"#, true),
        ("quantile_over_time(0.9, x[1h30m])", true),
        ("clamp(x, 0, 1) + clamp_min(x, 0) - clamp_max(x, 1)", true),
        ("present_over_time(x[5m])", true),
        ("sort_desc(topk(3, x))", true),
        (r#"count_values("v", x)"#, true),
        ("-x ^ 2 % 3", true),
        ("x unless on() y", true),
        ("time() - timestamp(x)", true),
        (r#"x{a=~"b|c", d!~"e", f!="g"}"#, true),
        (r#"{__name__=~"x|y"}"#, true),
        ("0x1F + 1e3 + Inf - NaN", true),
        ("histogram_count(rate(h[5m]))", true),
        ("sum(rate(x[5m])", false),
        ("rate(x)", false),
        ("x{", false),
        ("sum by (le) (x) by (a)", false),
        ("rate(x[5m]) offset", false),
        ("unknown_function(x)", false),
        (r#"x{a="b"#, false),
        ("x[5m] + 1", false),
        ("rate(x[5x])", false),
    ];
    let client = client(server.url());
    let mut disagreements = Vec::new();
    for (query, valid) in corpus {
        let local = parse_promql(query);
        let remote = client.query(query, at(HEALTHY_AT)).await;
        let remote_valid = !matches!(&remote, Err(PrometheusError::Api { error_type, .. }) if error_type == "bad_data");
        if let Err(PrometheusError::Api { error_type, .. }) = &remote {
            assert_eq!(error_type, "bad_data", "{query}: {remote:?}");
        }
        assert_eq!(
            remote_valid, *valid,
            "corpus is wrong about {query}: {remote:?}"
        );
        if local.is_ok() != remote_valid {
            disagreements.push(format!(
                "{query}: promql-parser {local:?}, Prometheus {remote:?}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));

    // The known gap, documented in docs/analysis.md: promql-parser follows Prometheus 3.x and
    // accepts what 2.42 refuses. Such queries pass validation and fail at query time with
    // Prometheus' own bad_data error. If this changes, update the docs.
    for query in [
        "info(x)",
        "ts_of_max_over_time(x[5m])",
        "mad_over_time(x[5m])",
        "histogram_avg(x)",
        "double_exponential_smoothing(x[5m], 0.5, 0.5)",
        r#"sort_by_label(x, "a")"#,
        "limitk(1, x)",
        r#"{"x"}"#,
    ] {
        assert_eq!(parse_promql(query), Ok(()), "{query}");
        let remote = client.query(query, at(HEALTHY_AT)).await;
        assert!(
            matches!(&remote, Err(PrometheusError::Api { error_type, .. }) if error_type == "bad_data"),
            "{query}: {remote:?}"
        );
    }
}

#[tokio::test]
async fn server_down_is_a_connect_error_naming_the_address() {
    let address = refused_url().unwrap();
    let started = Instant::now();
    let error = client(&address).query("vector(1)", None).await.unwrap_err();
    assert!(
        matches!(error, PrometheusError::Connect { .. }),
        "{error:?}"
    );
    assert_eq!(error.category(), "prometheus_connect");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&address), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn silent_server_times_out_naming_the_address() {
    let listener = SilentListener::start().unwrap();
    let mut config = PrometheusConfig::new(listener.url());
    config.timeout = Duration::from_millis(500);
    let client = PrometheusClient::new(config).unwrap();
    let started = Instant::now();
    let error = client.query("vector(1)", None).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, PrometheusError::Timeout { .. }),
        "{error:?}"
    );
    assert_eq!(error.category(), "prometheus_timeout");
    assert_eq!(
        error.to_string(),
        format!(
            "Prometheus at {} did not answer within 500ms",
            listener.url()
        )
    );
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn proxy_errors_without_a_prometheus_body_are_http_errors() {
    let server = RecordingServer::start(502, "text/html", "<html>502 Bad Gateway</html>").unwrap();
    let error = client(&server.url())
        .query("vector(1)", None)
        .await
        .unwrap_err();
    match &error {
        PrometheusError::Http { status, body, .. } => {
            assert_eq!(*status, 502);
            assert!(body.contains("Bad Gateway"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.category(), "prometheus_http");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&server.url()), "{error}");
}

#[tokio::test]
async fn prometheus_error_status_keeps_type_and_message() {
    let body = r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
    let server = RecordingServer::start(503, "application/json", body).unwrap();
    let error = client(&server.url())
        .query("vector(1)", None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "Prometheus at {} answered HTTP 503 timeout: query timed out in expression evaluation",
            server.url()
        )
    );
    assert!(error.is_transient());
}

const ONE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1705320000,"1"]}]}}"#;

#[tokio::test]
async fn sends_the_query_time_timeout_headers_and_rotating_bearer_token() {
    let server = RecordingServer::start(200, "application/json", ONE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let mut config = PrometheusConfig::new(format!("{}/prefix/", server.url()));
    config.auth = Auth::BearerFile(token.clone());
    config.headers = vec![("X-Scope-OrgID".into(), "team-a".into())];
    config.timeout = Duration::from_secs(7);
    let client = PrometheusClient::new(config).unwrap();

    let sample = client
        .query(r#"sum(x{a="b c"})"#, at(HEALTHY_AT))
        .await
        .unwrap();
    assert_eq!(sample, Sample::Value(1.0));
    // The projected token rotates: the next query must carry the new one.
    std::fs::write(&token, "second-token-rotated\n").unwrap();
    client.query("vector(1)", None).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.line, "POST /prefix/api/v1/query HTTP/1.1");
    assert_eq!(first.header("authorization"), Some("Bearer first-token"));
    assert_eq!(first.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(
        first.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = url_decode_form(&first.body);
    assert!(
        form.contains(&("query".into(), r#"sum(x{a="b c"})"#.into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("time".into(), "2024-01-15T12:30:00Z".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("timeout".into(), "7000ms".into())),
        "{form:?}"
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some("Bearer second-token-rotated")
    );
    assert!(
        !requests[1].body.contains("time="),
        "no time means Prometheus' now"
    );

    // A token file that disappears is an error naming the file and the address.
    std::fs::remove_file(&token).unwrap();
    let error = client.query("vector(1)", None).await.unwrap_err();
    assert!(
        matches!(error, PrometheusError::TokenFile { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("token"), "{error}");
    assert!(error.to_string().contains(&server.url()), "{error}");
}

#[tokio::test]
async fn sends_basic_auth() {
    let server = RecordingServer::start(200, "application/json", ONE).unwrap();
    let mut config = PrometheusConfig::new(server.url());
    config.auth = Auth::Basic {
        username: "rollgate".into(),
        password: "s3cret".into(),
    };
    PrometheusClient::new(config)
        .unwrap()
        .query("vector(1)", None)
        .await
        .unwrap();
    // base64("rollgate:s3cret")
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic cm9sbGdhdGU6czNjcmV0")
    );
}

#[tokio::test]
async fn falls_back_to_get_when_post_is_not_allowed() {
    let server = RecordingServer::start(405, "text/plain", "method not allowed").unwrap();
    let error = client(&server.url())
        .query("vector(1)", at(HEALTHY_AT))
        .await
        .unwrap_err();
    // Both methods were tried; the last answer (still 405) is the error.
    assert!(
        matches!(error, PrometheusError::Http { status: 405, .. }),
        "{error:?}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].line.starts_with("POST /api/v1/query "));
    assert!(
        requests[1]
            .line
            .starts_with("GET /api/v1/query?query=vector%281%29&timeout=10000ms&time="),
        "{}",
        requests[1].line
    );
}

fn url_decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
