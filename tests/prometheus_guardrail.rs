//! Guardrails against a real Prometheus (Debian's package) with backfilled cohort-labelled
//! counters, `rollgate_flag_requests_total{flag, cohort, outcome}` as the SDKs count them: the
//! operator's guardrail queries, fed to the engine look after look as the controller does. A
//! regression confined to the treatment rolls the ramp back while the service-wide error
//! ratio stays under the absolute bound; the same traffic without it completes the ramp.

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::time::Duration;

use jiff::Timestamp;
use prometheus_support::{OpenMetricsHistory, PrometheusServer, prometheus_or_skip};
use rollgate::prometheus::{
    PrometheusClient, PrometheusConfig, analyze, guardrail_counts, ramp_window,
};
use rollgate_core::crd::{
    Analysis, FeatureFlag, FeatureFlagSpec, FeatureFlagStatus, Guardrail, MetricCheck, Phase,
    Rollout, Step,
};
use rollgate_core::engine::decide;
use rollgate_core::guardrail::GuardrailVerdict;
use rollgate_core::observation::{GuardrailOutcome, Observation};
use rollgate_core::template::TemplateContext;

/// 2024-01-15T12:00:00Z: the ramp starts here.
const START: i64 = 1_705_320_000;
const STEP_SECONDS: i64 = 15 * 60;
const END: i64 = START + 5 * STEP_SECONDS;
const SCRAPE: i64 = 15;
/// Requests a second across the service.
const TRAFFIC: f64 = 200.0;
const CONTROL_ERRORS: f64 = 0.005;

/// 1% → 5% → 25% → 50% → 100%, 15 minutes each, as the history's traffic follows them.
const PERCENTS: [f64; 5] = [1.0, 5.0, 25.0, 50.0, 100.0];

fn flag() -> FeatureFlag {
    let requests = |outcome: &str| {
        format!(
            "sum by (cohort) (increase(rollgate_flag_requests_total{{flag={{{{ flag }}}}{outcome}}}[{{{{ since_ramp_start }}}}]))"
        )
    };
    let spec = FeatureFlagSpec {
        key: None,
        enabled: true,
        description: None,
        owner: None,
        percent: None,
        allowed_users: vec![],
        rollout: Some(Rollout {
            steps: PERCENTS
                .iter()
                .map(|&percent| Step {
                    percent,
                    pause: (percent < 100.0).then(|| "15m".to_string()),
                })
                .collect(),
            analysis: Some(Analysis {
                interval: "1m".into(),
                metrics: vec![MetricCheck {
                    name: "error-ratio".into(),
                    query: r#"sum(rate(rollgate_flag_requests_total{flag={{ flag }},outcome="error"}[{{ interval }}])) / sum(rate(rollgate_flag_requests_total{flag={{ flag }}}[{{ interval }}]))"#.into(),
                    min: None,
                    max: Some(0.01),
                    on_no_data: Default::default(),
                    on_error: Default::default(),
                }],
                guardrails: vec![Guardrail {
                    name: "errors".into(),
                    bad: requests(r#",outcome="error""#),
                    total: requests(""),
                    max_relative_increase: Some(0.1),
                    max_absolute_increase: None,
                    min_samples_per_cohort: 500,
                    alpha: 0.05,
                }],
                ..Default::default()
            }),
        }),
        variants: vec![],
        targeting: vec![],
        stale_after: None,
        publish: None,
        experiment: None,
    };
    let mut flag = FeatureFlag::new("checkout", spec);
    flag.metadata.namespace = Some("shop".into());
    flag.metadata.generation = Some(1);
    flag
}

/// The percent the history serves at `t`.
fn percent_at(t: i64) -> f64 {
    let index = ((t - START).max(0) / STEP_SECONDS) as usize;
    PERCENTS[index.min(PERCENTS.len() - 1)]
}

/// Requests per cohort and outcome; with `regression`, the treatment fails three times as
/// often as the control from the 5% step on.
fn history(regression: bool) -> String {
    let mut history = OpenMetricsHistory::new();
    for cohort in ["on", "off"] {
        for outcome in ["ok", "error"] {
            let labels = [
                ("flag", "checkout"),
                ("cohort", cohort),
                ("outcome", outcome),
            ];
            history
                .counter("rollgate_flag_requests_total", &labels)
                .rate(START, END, SCRAPE, move |t| {
                    let share = percent_at(t - 1) / 100.0;
                    let (requests, error_rate) = if cohort == "on" {
                        let worse = regression && percent_at(t - 1) >= 5.0;
                        (
                            TRAFFIC * share,
                            CONTROL_ERRORS * if worse { 3.0 } else { 1.0 },
                        )
                    } else {
                        (TRAFFIC * (1.0 - share), CONTROL_ERRORS)
                    };
                    if outcome == "error" {
                        requests * error_rate
                    } else {
                        requests * (1.0 - error_rate)
                    }
                });
        }
    }
    history.render()
}

fn client(address: &str) -> PrometheusClient {
    PrometheusClient::new(PrometheusConfig::new(address)).expect("valid config")
}

/// What happened to the ramp, and when.
struct Outcome {
    status: FeatureFlagStatus,
    /// (seconds since the start, the largest service-wide error ratio the absolute metric saw).
    ended_at: i64,
    worst_error_ratio: f64,
}

/// Reconciles every 15 seconds of history, running the analysis whenever the engine asks,
/// with the queries evaluated at that past time.
async fn run(server: &PrometheusServer) -> Outcome {
    let flag = flag();
    let client = client(server.url());
    let analysis = flag
        .spec
        .rollout
        .as_ref()
        .unwrap()
        .analysis
        .as_ref()
        .unwrap();
    let mut status = FeatureFlagStatus::default();
    let mut worst_error_ratio: f64 = 0.0;
    let mut t = START;
    while t <= END {
        let now = Timestamp::from_second(t).unwrap();
        let mut decision = decide(&flag, &status, Observation::None, now);
        if decision.analysis_due {
            let started = status.ramp_started_at.as_ref().expect("ramp started").0;
            let since = Duration::from_secs(now.duration_since(started).as_secs().max(0) as u64);
            let mut template = TemplateContext::for_flag(&flag, None).with_interval_of(analysis);
            template.since_ramp_start = Some(ramp_window(since));
            let metrics = analyze(&client, analysis, &template, Some(now), 2).await;
            if let Some(rollgate_core::observation::MetricOutcome::Value { value }) =
                metrics.first().map(|m| m.outcome.clone())
            {
                worst_error_ratio = worst_error_ratio.max(value);
            }
            let mut guardrails = Vec::new();
            for guardrail in &analysis.guardrails {
                let observed = guardrail_counts(&client, guardrail, &template, Some(now)).await;
                if let GuardrailOutcome::Error { message } = &observed.outcome {
                    panic!("guardrail query failed: {message}\n{}", server.log());
                }
                guardrails.push(observed);
            }
            decision = decide(
                &flag,
                &status,
                Observation::Guarded {
                    metrics,
                    guardrails,
                },
                now,
            );
        }
        status = decision.status;
        if matches!(status.phase, Phase::RolledBack | Phase::Complete) {
            break;
        }
        t += SCRAPE;
    }
    Outcome {
        status,
        ended_at: t - START,
        worst_error_ratio,
    }
}

#[tokio::test]
async fn a_regression_confined_to_the_treatment_rolls_back_while_the_absolute_check_passes() {
    if !prometheus_or_skip(
        "a_regression_confined_to_the_treatment_rolls_back_while_the_absolute_check_passes",
    ) {
        return;
    }
    let server = PrometheusServer::start_with_history(&history(true)).expect("Prometheus starts");
    let outcome = run(&server).await;
    let status = &outcome.status;
    assert_eq!(status.phase, Phase::RolledBack, "{status:#?}");
    let rollback = status.rollback.as_ref().unwrap();
    assert_eq!(rollback.reason, "GuardrailRegression", "{rollback:?}");
    assert!(rollback.message.contains("(5%)"), "{}", rollback.message);
    assert_eq!(status.guardrails[0].verdict, GuardrailVerdict::Regression);
    let ratio = status.guardrails[0].treatment_rate / status.guardrails[0].control_rate;
    assert!((2.0..4.0).contains(&ratio), "treatment/control {ratio}");
    // The absolute check never saw the service-wide ratio leave its bound.
    assert!(
        outcome.worst_error_ratio < 0.01,
        "{}",
        outcome.worst_error_ratio
    );
    let onset = STEP_SECONDS;
    println!(
        "treatment 3× control from the 5% step: rolled back {} s after the onset, worst service-wide error ratio {:.4}; {}",
        outcome.ended_at - onset,
        outcome.worst_error_ratio,
        rollback.message
    );
    assert!(
        outcome.ended_at > onset,
        "rolled back before the regression began"
    );
}

#[tokio::test]
async fn the_same_traffic_without_the_regression_completes() {
    if !prometheus_or_skip("the_same_traffic_without_the_regression_completes") {
        return;
    }
    let server = PrometheusServer::start_with_history(&history(false)).expect("Prometheus starts");
    let outcome = run(&server).await;
    let status = &outcome.status;
    assert_eq!(status.phase, Phase::Complete, "{status:#?}");
    assert!(status.analyses.iter().all(|run| {
        run.guardrails
            .iter()
            .all(|g| g.verdict != GuardrailVerdict::Regression)
    }));
}
