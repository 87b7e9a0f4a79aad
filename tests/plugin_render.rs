//! `kubectl rollgate` without a cluster: the pure renderers on fixture FeatureFlags
//! (golden strings at a fixed `now`), the request bookkeeping, the error sentences, and
//! the command line of the built binary.

use std::process::Command;

use clap::Parser;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use rollgate::plugin::list::{ListOptions, render_list};
use rollgate::plugin::render::{self, Table};
use rollgate::plugin::request::{
    RequestState, describe_applied, refusal_reason, request_id, request_state,
};
use rollgate::plugin::stale::{is_stale, render_stale, stale_order};
use rollgate::plugin::status::{
    EventsView, StatusView, experiment_section, guardrails_section, render_status,
};
use rollgate::plugin::{PluginArgs, PluginCommand, PluginError};
use rollgate_core::crd::{FeatureFlag, FeatureFlagStatus, Phase, RequestOutcome, RequestRecord};
use rollgate_core::engine::{self, Verb};
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts, GuardrailVerdict};
use rollgate_core::observation::{
    GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome, Observation,
};
use serde_json::json;

const NOW: &str = "2024-05-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// `NOW` minus some seconds, as the API server writes times.
fn ago(seconds: i64) -> String {
    let t = Timestamp::from_second(now().as_second() - seconds).unwrap();
    t.to_string()
}

fn flag(value: serde_json::Value) -> FeatureFlag {
    serde_json::from_value(value).unwrap()
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    since: i64,
) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": ago(since), "observedGeneration": 1})
}

fn metric(name: &str, value: Option<f64>, verdict: &str, message: &str) -> serde_json::Value {
    let mut m = json!({"name": name, "verdict": verdict, "message": message});
    if let Some(value) = value {
        m["value"] = json!(value);
    }
    m
}

fn run(
    seconds: i64,
    step: u32,
    verdict: &str,
    metrics: Vec<serde_json::Value>,
) -> serde_json::Value {
    json!({"time": ago(seconds), "step": step, "verdict": verdict, "metrics": metrics})
}

fn steps() -> serde_json::Value {
    json!([
        {"percent": 1, "pause": "10m"},
        {"percent": 5, "pause": "10m"},
        {"percent": 25, "pause": "10m"},
        {"percent": 50, "pause": "30m"},
        {"percent": 100}
    ])
}

fn analysis() -> serde_json::Value {
    json!({
        "interval": "1m",
        "failureLimit": 2,
        "metrics": [
            {"name": "error-rate", "query": "sum(rate(errors[1m]))", "max": 0.05},
            {"name": "success-rate", "query": "sum(rate(ok[1m]))", "min": 0.99},
            {"name": "latency-p99", "query": "histogram_quantile(0.99, x)", "min": 0.01, "max": 0.5}
        ]
    })
}

fn metadata(name: &str, namespace: &str, created_ago: i64) -> serde_json::Value {
    json!({"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
           "generation": 1, "creationTimestamp": ago(created_ago)})
}

/// A guarded ramp at step 2 of 0–4 (25%), 4 minutes into a 10-minute pause, one failure.
fn checkout() -> FeatureFlag {
    let pass = |s| {
        run(
            s,
            2,
            "Pass",
            vec![
                metric("error-rate", Some(0.012345), "Pass", ""),
                metric("success-rate", Some(0.995), "Pass", ""),
                metric("latency-p99", Some(0.31), "Pass", ""),
            ],
        )
    };
    flag(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": metadata("checkout", "shop", 3 * 3600),
        "spec": {
            "enabled": true,
            "owner": "team-payments",
            "description": "The new checkout flow",
            "rollout": {"steps": steps(), "analysis": analysis()}
        },
        "status": {
            "phase": "Progressing",
            "percent": 25,
            "currentStep": 2,
            "stepStartedAt": ago(240),
            "observedGeneration": 1,
            "consecutiveFailures": 1,
            "stepAnalyses": 3,
            "lastAnalysisAt": ago(40),
            "analyses": [
                pass(1500), pass(1000), pass(700), pass(160),
                run(100, 2, "Hold", vec![
                    metric("error-rate", None, "Hold", "metric error-rate: no data (onNoData Hold)"),
                    metric("success-rate", Some(0.999), "Pass", ""),
                    metric("latency-p99", Some(0.33), "Pass", ""),
                ]),
                run(40, 2, "Fail", vec![
                    metric("error-rate", Some(0.12), "Fail", "metric error-rate = 0.12 above max 0.05"),
                    metric("success-rate", Some(0.97), "Fail", "metric success-rate = 0.97 below min 0.99"),
                    metric("latency-p99", Some(0.29), "Pass", ""),
                ]),
            ],
            "lastRequest": {"id": "1714564560000-4242", "verb": "promote",
                            "handledAt": ago(240), "outcome": "Applied",
                            "message": "promoted by request 1714564560000-4242 to step 2 of 0–4 (25%)"},
            "rampFingerprint": "f00d",
            "conditions": [
                condition("Ready", "True", "Progressing", "ramping: step 2 of 0–4 at 25%", 3 * 3600),
                condition("Progressing", "False", "AnalysisFailing",
                          "1 failed analyses of 2 before rollback, at step 2 of 0–4 at 25%: metric error-rate = 0.12 above max 0.05", 40),
                condition("Degraded", "False", "AsExpected", "no rollback", 3 * 3600),
                condition("Stale", "False", "NotComplete", "only a ramp complete at 100% can become stale", 3 * 3600),
            ]
        }
    }))
}

fn dark_mode() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("dark-mode", "web", 20 * 86_400),
        "spec": {"enabled": true, "percent": 30, "owner": "team-frontend"},
        "status": {"phase": "Static", "percent": 30, "observedGeneration": 1, "conditions": [
            condition("Ready", "True", "Static", "static at 30%", 20 * 86_400),
        ]}
    }))
}

fn old_banner() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("old-banner", "web", 90 * 86_400),
        "spec": {"enabled": true, "key": "banner.v1", "owner": "team-web",
                 "rollout": {"steps": [{"percent": 50, "pause": "1h"}, {"percent": 100}]}},
        "status": {"phase": "Complete", "percent": 100, "currentStep": 1,
                   "stepStartedAt": ago(20 * 86_400), "completedAt": ago(20 * 86_400),
                   "observedGeneration": 1, "conditions": [
            condition("Ready", "True", "Complete", "ramp complete at 100%", 20 * 86_400),
            condition("Stale", "True", "Stale",
                      "flag banner.v1 has been complete at 100% since 2024-04-11T12:00:00Z, longer than staleAfter 14d: remove it from the code, then delete this FeatureFlag",
                      6 * 86_400),
        ]}
    }))
}

fn search() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("search-v2", "web", 40 * 86_400),
        "spec": {"enabled": true, "staleAfter": "30d",
                 "rollout": {"steps": [{"percent": 100}]}},
        "status": {"phase": "Complete", "percent": 100, "currentStep": 0,
                   "completedAt": ago(35 * 86_400), "observedGeneration": 1, "conditions": [
            condition("Stale", "True", "Stale", "flag search-v2 has been complete at 100% for 35d", 5 * 86_400),
        ]}
    }))
}

fn killed() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("payments-retry", "shop", 7200),
        "spec": {"enabled": true, "rollout": {"steps": steps()}},
        "status": {"phase": "Killed", "percent": 0, "observedGeneration": 1,
                   "lastRequest": {"id": "1714575600000-7", "verb": "kill", "handledAt": ago(600),
                                   "outcome": "Applied",
                                   "message": "killed by request 1714575600000-7: off for everyone until unkill"},
                   "conditions": [
            condition("Ready", "False", "Killed", "killed by a rollgate.dev/request: off for everyone until unkill", 600),
        ]}
    }))
}

fn pending() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("brand-new", "shop", 5),
        "spec": {"enabled": true, "percent": 10}
    }))
}

/// Paused at step 2 with variants, an expired pause and an edit the operator has not seen.
fn paused_experiment() -> FeatureFlag {
    let mut metadata = metadata("recs", "shop", 86_400);
    metadata["generation"] = json!(3);
    flag(json!({
        "metadata": metadata,
        "spec": {"enabled": true,
                 "variants": [{"name": "control", "weight": 50}, {"name": "ml-ranker", "weight": 50}],
                 "rollout": {"steps": [{"percent": 10, "pause": "5m"}, {"percent": 20, "pause": "5m"}, {"percent": 100}],
                             "analysis": {"interval": "1m", "failureLimit": 3, "metrics": [
                                 {"name": "ctr", "query": "ctr", "min": 0.02}]}}},
        "status": {"phase": "Paused", "percent": 20, "currentStep": 1, "stepStartedAt": ago(900),
                   "observedGeneration": 2, "stepAnalyses": 0,
                   "lastRequest": {"id": "1714564800000-99", "verb": "pause", "handledAt": ago(800),
                                   "outcome": "Applied", "message": "paused by request 1714564800000-99; analysis keeps running"}}
    }))
}

fn rolled_back() -> FeatureFlag {
    flag(json!({
        "metadata": metadata("new-search", "shop", 86_400),
        "spec": {"enabled": true, "rollout": {"steps": steps(), "analysis": analysis()}},
        "status": {"phase": "RolledBack", "percent": 0, "currentStep": 1, "consecutiveFailures": 2,
                   "observedGeneration": 1,
                   "rollback": {"reason": "AnalysisFailed", "at": ago(3600),
                                "message": "2 failed analyses in a row at step 1 of 0–4 (5%): metric error-rate = 0.2 above max 0.05"},
                   "conditions": [
            condition("Degraded", "True", "AnalysisFailed",
                      "2 failed analyses in a row at step 1 of 0–4 (5%): metric error-rate = 0.2 above max 0.05", 3600),
        ]}
    }))
}

fn events() -> Vec<Event> {
    serde_json::from_value(json!([
        {"metadata": {"name": "checkout.1", "namespace": "shop", "creationTimestamp": ago(1200)},
         "involvedObject": {"kind": "FeatureFlag", "name": "checkout", "namespace": "shop"},
         "type": "Normal", "reason": "StepAdvanced", "reportingComponent": "rollgate",
         "message": "advanced to step 1 of 0–4 (5%): pause over and the latest analysis passed",
         "eventTime": format!("{}.000000Z", ago(1200).trim_end_matches('Z'))},
        {"metadata": {"name": "checkout.2", "namespace": "shop", "creationTimestamp": ago(240)},
         "involvedObject": {"kind": "FeatureFlag", "name": "checkout", "namespace": "shop"},
         "type": "Normal", "reason": "Promoted", "reportingComponent": "rollgate",
         "message": "promoted by request 1714564560000-4242 to step 2 of 0–4 (25%)",
         "eventTime": format!("{}.000000Z", ago(240).trim_end_matches('Z'))},
        {"metadata": {"name": "checkout.3", "namespace": "shop", "creationTimestamp": ago(100)},
         "involvedObject": {"kind": "FeatureFlag", "name": "checkout", "namespace": "shop"},
         "type": "Warning", "reason": "AnalysisFailed", "reportingComponent": "rollgate",
         "message": "analysis failed (1 of 2 before rollback): metric error-rate = 0.12 above max 0.05",
         "eventTime": format!("{}.000000Z", ago(100).trim_end_matches('Z')),
         "series": {"count": 2, "lastObservedTime": format!("{}.000000Z", ago(40).trim_end_matches('Z'))}}
    ]))
    .unwrap()
}

fn status_text(flag: &FeatureFlag, events: EventsView<'_>, wide: bool) -> String {
    render_status(&StatusView {
        flag,
        events,
        now: now(),
        wide,
    })
}

/// Compares with a golden string (its first newline dropped, so goldens start on their
/// own line) and prints the actual text when it differs.
#[track_caller]
fn golden(actual: &str, expected: &str) {
    let expected = expected.strip_prefix('\n').unwrap_or(expected);
    if actual != expected {
        eprintln!("----- actual -----\n{actual}----- end -----");
    }
    assert_eq!(actual, expected);
}

// ----- list ----------------------------------------------------------------------------

#[test]
fn list_shows_phase_percent_step_last_analysis_and_age() {
    let flags = [checkout(), killed(), pending()];
    golden(
        &render_list(&flags, now(), ListOptions::default()),
        r#"
NAME             PHASE         PERCENT   STEP       LAST ANALYSIS   AGE
checkout         Progressing   25%       2 of 0–4   Fail 40s ago    3h
payments-retry   Killed        0%        -          -               120m
brand-new        Pending       -         -          -               5s
"#,
    );
}

#[test]
fn list_all_namespaces_wide() {
    let flags = [checkout(), dark_mode(), old_banner()];
    let options = ListOptions {
        wide: true,
        all_namespaces: true,
    };
    golden(
        &render_list(&flags, now(), options),
        r#"
NAMESPACE   NAME         PHASE         PERCENT   STEP       LAST ANALYSIS   AGE   KEY         OWNER           FAILURES   LAST REQUEST
shop        checkout     Progressing   25%       2 of 0–4   Fail 40s ago    3h    checkout    team-payments   1/2        promote Applied 4m ago
web         dark-mode    Static        30%       -          -               20d   dark-mode   team-frontend   -          -
web         old-banner   Complete      100%      1 of 0–1   -               90d   banner.v1   team-web        -          -
"#,
    );
}

// ----- status --------------------------------------------------------------------------

#[test]
fn status_of_a_guarded_ramp() {
    let events = events();
    golden(
        &status_text(&checkout(), EventsView::Listed(&events), false),
        r#"
Name:          checkout
Namespace:     shop
Key:           checkout
Owner:         team-payments
Description:   The new checkout flow
Enabled:       true
Phase:         Progressing
Exposure:      [■■■□□] 25% (step 2 of 0–4)
Step:          2 of 0–4 at 25%, started 4m ago; 6m of 10m pause left
Analysis:      every 1m, 3 metrics; 3 runs in this step; 1 of 2 failures before rollback; next in 20s
Last request:  promote/1714564560000-4242: Applied 4m ago: promoted by request 1714564560000-4242 to step 2 of 0–4 (25%)

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m     done
  1      5%        10m     done
  2      25%       10m     current: 6m of 10m pause left
  3      50%       30m
  4      100%      -

Analyses (latest 5 of 6, newest first; -o wide shows all):
  AGE     STEP   RUN    METRIC         VALUE     BOUNDS      RESULT   MESSAGE
  40s     2      Fail   error-rate     0.12      <= 0.05     Fail     metric error-rate = 0.12 above max 0.05
                        success-rate   0.97      >= 0.99     Fail     metric success-rate = 0.97 below min 0.99
                        latency-p99    0.29      0.01..0.5   Pass
  100s    2      Hold   error-rate     no data   <= 0.05     Hold     metric error-rate: no data (onNoData Hold)
                        success-rate   0.999     >= 0.99     Pass
                        latency-p99    0.33      0.01..0.5   Pass
  2m40s   2      Pass   error-rate     0.01235   <= 0.05     Pass
                        success-rate   0.995     >= 0.99     Pass
                        latency-p99    0.31      0.01..0.5   Pass
  11m     2      Pass   error-rate     0.01235   <= 0.05     Pass
                        success-rate   0.995     >= 0.99     Pass
                        latency-p99    0.31      0.01..0.5   Pass
  16m     2      Pass   error-rate     0.01235   <= 0.05     Pass
                        success-rate   0.995     >= 0.99     Pass
                        latency-p99    0.31      0.01..0.5   Pass

Conditions:
  TYPE          STATUS   REASON            AGE   MESSAGE
  Ready         True     Progressing       3h    ramping: step 2 of 0–4 at 25%
  Progressing   False    AnalysisFailing   40s   1 failed analyses of 2 before rollback, at step 2 of 0–4 at 25%: metric error-rate = 0.12 above max 0.05
  Degraded      False    AsExpected        3h    no rollback
  Stale         False    NotComplete       3h    only a ramp complete at 100% can become stale

Events:
  TYPE      REASON           AGE                  FROM       MESSAGE
  Normal    StepAdvanced     20m                  rollgate   advanced to step 1 of 0–4 (5%): pause over and the latest analysis passed
  Normal    Promoted         4m                   rollgate   promoted by request 1714564560000-4242 to step 2 of 0–4 (25%)
  Warning   AnalysisFailed   40s (x2 over 100s)   rollgate   analysis failed (1 of 2 before rollback): metric error-rate = 0.12 above max 0.05
"#,
    );
}

#[test]
fn status_wide_shows_every_analysis() {
    let text = status_text(&checkout(), EventsView::Listed(&[]), true);
    assert!(text.contains("Analyses (newest first):"), "{text}");
    // One bounds cell per run of error-rate: all six runs, not the latest five.
    assert_eq!(text.matches("<= 0.05").count(), 6, "{text}");
}

#[test]
fn status_of_a_paused_ramp_with_variants() {
    golden(
        &status_text(&paused_experiment(), EventsView::Listed(&[]), false),
        r#"
Name:          recs
Namespace:     shop
Key:           recs
Enabled:       true
Phase:         Paused
Exposure:      [■■□] 20% (step 1 of 0–2)
Step:          1 of 0–2 at 20%, started 15m ago; 5m pause over; held by a pause request: resume continues
Analysis:      every 1m, 1 metric; 0 runs in this step; 0 of 3 failures before rollback; next due now
Last request:  pause/1714564800000-99: Applied 13m ago: paused by request 1714564800000-99; analysis keeps running
Observed:      generation 2 of 3: the operator has not caught up with the latest edit

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      10%       5m      done
  1      20%       5m      current, paused: 5m pause over
  2      100%      -

Analyses:  <none>

Variants:
  VARIANT     WEIGHT
  control     50%
  ml-ranker   50%

Conditions:  <none>

Events:  <none>
"#,
    );
}

#[test]
fn status_of_a_static_flag() {
    golden(
        &status_text(&dark_mode(), EventsView::Listed(&[]), false),
        r#"
Name:       dark-mode
Namespace:  web
Key:        dark-mode
Owner:      team-frontend
Enabled:    true
Phase:      Static
Exposure:   30% (static)

Conditions:
  TYPE    STATUS   REASON   AGE   MESSAGE
  Ready   True     Static   20d   static at 30%

Events:  <none>
"#,
    );
}

#[test]
fn status_of_a_flag_the_operator_has_not_seen() {
    let unavailable = EventsView::Unavailable(
        "you are not allowed to list events in namespace 'shop': forbidden",
    );
    golden(
        &status_text(&pending(), unavailable, false),
        r#"
Name:       brand-new
Namespace:  shop
Key:        brand-new
Enabled:    true
Phase:      Pending (no status yet: is rollgate operator running?)
Exposure:   -

Conditions:  <none>

Events:  cannot be shown: you are not allowed to list events in namespace 'shop': forbidden
"#,
    );
}

#[test]
fn status_of_a_killed_flag() {
    golden(
        &status_text(&killed(), EventsView::Listed(&[]), false),
        r#"
Name:          payments-retry
Namespace:     shop
Key:           payments-retry
Enabled:       true
Phase:         Killed
Exposure:      [□□□□□] 0% (not ramping)
Last request:  kill/1714575600000-7: Applied 10m ago: killed by request 1714575600000-7: off for everyone until unkill

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m
  1      5%        10m
  2      25%       10m
  3      50%       30m
  4      100%      -

Conditions:
  TYPE    STATUS   REASON   AGE   MESSAGE
  Ready   False    Killed   10m   killed by a rollgate.dev/request: off for everyone until unkill

Events:  <none>
"#,
    );
}

#[test]
fn status_of_a_rolled_back_flag() {
    golden(
        &status_text(&rolled_back(), EventsView::Listed(&[]), false),
        r#"
Name:       new-search
Namespace:  shop
Key:        new-search
Enabled:    true
Phase:      RolledBack
Exposure:   [□□□□□] 0% (not ramping)
Analysis:   every 1m, 3 metrics
Rollback:   AnalysisFailed 60m ago: 2 failed analyses in a row at step 1 of 0–4 (5%): metric error-rate = 0.2 above max 0.05

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m
  1      5%        10m
  2      25%       10m
  3      50%       30m
  4      100%      -

Analyses:  <none>

Conditions:
  TYPE       STATUS   REASON           AGE   MESSAGE
  Degraded   True     AnalysisFailed   60m   2 failed analyses in a row at step 1 of 0–4 (5%): metric error-rate = 0.2 above max 0.05

Events:  <none>
"#,
    );
}

#[test]
fn the_experiment_section_is_absent_without_variants() {
    assert_eq!(experiment_section(&checkout(), now()), None);
    assert!(experiment_section(&paused_experiment(), now()).is_some());
}

// ----- guardrails ----------------------------------------------------------------------

/// A ramp guarded by the treatment-against-control guardrail `errors` (+10% relative,
/// 1000 events per cohort), with the absolute metric `error-rate` beside it when `metric`.
fn guarded_by_cohorts(name: &str, metric: bool) -> FeatureFlag {
    let mut analysis = json!({
        "interval": "1m",
        "failureLimit": 2,
        "guardrails": [{
            "name": "errors",
            "bad": "sum by (cohort) (increase(rollgate_flag_requests_total{flag={{ flag }}, outcome=\"error\"}[{{ since_ramp_start }}]))",
            "total": "sum by (cohort) (increase(rollgate_flag_requests_total{flag={{ flag }}}[{{ since_ramp_start }}]))",
            "maxRelativeIncrease": 0.1,
            "minSamplesPerCohort": 1000
        }]
    });
    if metric {
        analysis["metrics"] =
            json!([{"name": "error-rate", "query": "sum(rate(errors[1m]))", "max": 0.05}]);
    }
    flag(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": metadata(name, "shop", 3600),
        "spec": {
            "enabled": true,
            "rollout": {
                "steps": [
                    {"percent": 1, "pause": "10m"},
                    {"percent": 5, "pause": "10m"},
                    {"percent": 25, "pause": "10m"},
                    {"percent": 100}
                ],
                "analysis": analysis
            }
        }
    }))
}

/// Requests per minute, and the share of them that fail in each cohort.
struct Traffic {
    per_minute: f64,
    treatment_errors: f64,
    control_errors: f64,
}

/// Runs the real rollout engine minute by minute for `minutes` up to `NOW`, as the operator
/// calls it, with each cohort's cumulative counts since the ramp started growing at the
/// percent the engine published; the status it leaves is the fixture.
fn drive(mut flag: FeatureFlag, minutes: i64, traffic: &Traffic) -> FeatureFlag {
    let start = now().as_second() - minutes * 60;
    let mut status = FeatureFlagStatus::default();
    // Cumulative (treatment, control) events and bad events since the ramp started.
    let (mut treatment, mut control) = ((0.0, 0.0), (0.0, 0.0));
    for minute in 0..=minutes {
        let time = Timestamp::from_second(start + minute * 60).unwrap();
        let share = status.percent.unwrap_or(0.0) / 100.0;
        if minute > 0 {
            let exposed = traffic.per_minute * share;
            treatment.0 += exposed;
            treatment.1 += exposed * traffic.treatment_errors;
            control.0 += traffic.per_minute - exposed;
            control.1 += (traffic.per_minute - exposed) * traffic.control_errors;
        }
        let counts = GuardrailCounts {
            treatment: CohortCounts::new(treatment.1.round() as u64, treatment.0.round() as u64),
            control: CohortCounts::new(control.1.round() as u64, control.0.round() as u64),
        };
        let decision = engine::decide(&flag, &status, Observation::None, time);
        let decision = if decision.analysis_due {
            let observation = Observation::Guarded {
                metrics: vec![MetricObservation {
                    name: "error-rate".into(),
                    outcome: MetricOutcome::Value { value: 0.01 },
                }],
                guardrails: vec![GuardrailObservation {
                    name: "errors".into(),
                    outcome: GuardrailOutcome::Counts { counts },
                }],
            };
            engine::decide(&flag, &status, observation, time)
        } else {
            decision
        };
        status = decision.status;
    }
    flag.status = Some(status);
    flag
}

fn guardrail_verdict(flag: &FeatureFlag) -> GuardrailVerdict {
    flag.status.as_ref().unwrap().guardrails[0].verdict
}

/// Step 1 (5%) of a ramp whose cohorts fail alike: the guardrail passes.
fn guardrail_passing() -> FeatureFlag {
    let traffic = Traffic {
        per_minute: 20_000.0,
        treatment_errors: 0.0052,
        control_errors: 0.005,
    };
    let flag = drive(guarded_by_cohorts("checkout", true), 14, &traffic);
    assert_eq!(render::phase(&flag), Phase::Progressing);
    assert_eq!(flag.status.as_ref().unwrap().current_step, Some(1));
    assert_eq!(guardrail_verdict(&flag), GuardrailVerdict::Pass);
    flag
}

/// Step 0 (1%) on little traffic, past its pause: too few treatment events to judge, so
/// the step is extended.
fn guardrail_collecting() -> FeatureFlag {
    let traffic = Traffic {
        per_minute: 5_000.0,
        treatment_errors: 0.005,
        control_errors: 0.005,
    };
    let flag = drive(guarded_by_cohorts("search", false), 12, &traffic);
    assert_eq!(flag.status.as_ref().unwrap().current_step, Some(0));
    assert_eq!(guardrail_verdict(&flag), GuardrailVerdict::Collecting);
    flag
}

/// The treatment fails three times as often as the control: rolled back at once.
fn guardrail_regression() -> FeatureFlag {
    let traffic = Traffic {
        per_minute: 20_000.0,
        treatment_errors: 0.015,
        control_errors: 0.005,
    };
    let flag = drive(guarded_by_cohorts("payments", true), 16, &traffic);
    assert_eq!(render::phase(&flag), Phase::RolledBack);
    assert_eq!(
        flag.status
            .as_ref()
            .unwrap()
            .rollback
            .as_ref()
            .unwrap()
            .reason,
        "GuardrailRegression"
    );
    assert_eq!(guardrail_verdict(&flag), GuardrailVerdict::Regression);
    flag
}

#[test]
fn status_of_a_passing_guardrail() {
    golden(
        &status_text(&guardrail_passing(), EventsView::Listed(&[]), false),
        r#"
Name:       checkout
Namespace:  shop
Key:        checkout
Enabled:    true
Phase:      Progressing
Exposure:   [■■□□] 5% (step 1 of 0–3)
Step:       1 of 0–3 at 5%, started 4m ago; 6m of 10m pause left
Analysis:   every 1m, 1 metric, 1 guardrail; 4 runs in this step; 0 of 2 failures before rollback; next in 1m

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m     done
  1      5%        10m     current: 6m of 10m pause left
  2      25%       10m
  3      100%      -

Analyses (latest 5 of 10, newest first; -o wide shows all):
  AGE   STEP   RUN    METRIC               VALUE   BOUNDS    RESULT   MESSAGE
  0s    1      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  60s   1      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  2m    1      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  3m    1      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  4m    0      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass

Guardrails (treatment against control since the ramp started 14m ago):
  GUARDRAIL   VERDICT   TREATMENT   CONTROL   TREATMENT − BOUND    TOLERANCE       STEP SAMPLES (T / C)      LOOKED
  errors      Pass      0.517%      0.500%    [-0.328%, +0.261%]   +10% relative   4000 / 76000 (min 1000)   0s ago

Conditions:
  TYPE          STATUS   REASON               AGE   MESSAGE
  Ready         True     Progressing          14m   ramping: step 1 of 0–3 at 5%
  Progressing   True     RolloutProgressing   14m   step 1 of 0–3 at 5%
  Degraded      False    AsExpected           14m   no rollback
  Stale         False    NotComplete          14m   only a ramp complete at 100% can become stale

Events:  <none>
"#,
    );
}

#[test]
fn status_of_a_collecting_guardrail() {
    golden(
        &status_text(&guardrail_collecting(), EventsView::Listed(&[]), false),
        r#"
Name:       search
Namespace:  shop
Key:        search
Enabled:    true
Phase:      Progressing
Exposure:   [■□□□] 1% (step 0 of 0–3)
Step:       0 of 0–3 at 1%, started 12m ago; 10m pause over; advances after the next passed analysis with enough guardrail samples
Analysis:   every 1m, 1 guardrail; 12 runs in this step; 0 of 2 failures before rollback; next in 1m

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m     current: 10m pause over; advances after the next passed analysis with enough guardrail samples
  1      5%        10m
  2      25%       10m
  3      100%      -

Analyses (latest 5 of 10, newest first; -o wide shows all):
  AGE   STEP   RUN    METRIC               VALUE   BOUNDS   RESULT       MESSAGE
  0s    0      Pass   errors (guardrail)   -       -        Collecting
  60s   0      Pass   errors (guardrail)   -       -        Collecting
  2m    0      Pass   errors (guardrail)   -       -        Collecting
  3m    0      Pass   errors (guardrail)   -       -        Collecting
  4m    0      Pass   errors (guardrail)   -       -        Collecting

Guardrails (treatment against control since the ramp started 12m ago):
  GUARDRAIL   VERDICT      TREATMENT   CONTROL   TREATMENT − BOUND   TOLERANCE       STEP SAMPLES (T / C)     LOOKED
  errors      Collecting   0.500%      0.500%    -                   +10% relative   600 / 59400 (min 1000)   0s ago

Conditions:
  TYPE          STATUS   REASON              AGE   MESSAGE
  Ready         True     Progressing         12m   ramping: step 0 of 0–3 at 1%
  Progressing   True     WaitingForSamples   12m   step 0 of 0–3 at 1%: pause elapsed; the step is extended: guardrail errors has 600 treatment and 59400 control events in this step, 1000 each needed
  Degraded      False    AsExpected          12m   no rollback
  Stale         False    NotComplete         12m   only a ramp complete at 100% can become stale

Events:  <none>
"#,
    );
}

#[test]
fn status_of_a_guardrail_regression_rollback() {
    golden(
        &status_text(&guardrail_regression(), EventsView::Listed(&[]), false),
        r#"
Name:       payments
Namespace:  shop
Key:        payments
Enabled:    true
Phase:      RolledBack
Exposure:   [□□□□] 0% (not ramping)
Analysis:   every 1m, 1 metric, 1 guardrail
Rollback:   GuardrailRegression 7m ago: rolled back at step 0 of 0–3 (1%): the treatment is worse than the control: guardrail errors: regression: treatment 1.500% (27 of 1800) vs control 0.500% (891 of 178200), bound 0.550% (maxRelativeIncrease 0.1); treatment − bound lies in [+0.050%, +1.850%], entirely above 0

Steps:
  STEP   PERCENT   PAUSE   STATE
  0      1%        10m
  1      5%        10m
  2      25%       10m
  3      100%      -

Analyses (latest 5 of 9, newest first; -o wide shows all):
  AGE   STEP   RUN    METRIC               VALUE   BOUNDS    RESULT       MESSAGE
  7m    0      Fail   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Regression   guardrail errors: regression: treatment 1.500% (27 of 1800) vs control 0.500% (891 of 178200), bound 0.550% (maxRelativeIncrease 0.1); treatment − bound lies in [+0.050%, +1.850%], entirely above 0
  8m    0      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  9m    0      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  10m   0      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass
  11m   0      Pass   error-rate           0.01    <= 0.05   Pass
                      errors (guardrail)   -       -         Pass

Guardrails (treatment against control since the ramp started 16m ago):
  GUARDRAIL   VERDICT      TREATMENT   CONTROL   TREATMENT − BOUND    TOLERANCE       STEP SAMPLES (T / C)       LOOKED
  errors      Regression   1.500%      0.500%    [+0.050%, +1.850%]   +10% relative   1800 / 178200 (min 1000)   7m ago
  guardrail errors: regression: treatment 1.500% (27 of 1800) vs control 0.500% (891 of 178200), bound 0.550% (maxRelativeIncrease 0.1); treatment − bound lies in [+0.050%, +1.850%], entirely above 0

Conditions:
  TYPE          STATUS   REASON                AGE   MESSAGE
  Ready         False    RolledBack            7m    rolled back at step 0 of 0–3 (1%): the treatment is worse than the control: guardrail errors: regression: treatment 1.500% (27 of 1800) vs control 0.500% (891 of 178200), bound 0.550% (maxRelativeIncrease 0.1); treatment − bound lies in [+0.050%, +1.850%], entirely above 0
  Progressing   False    RolledBack            7m    rolled back: a spec change or a retry request restarts at step 0
  Degraded      True     GuardrailRegression   7m    rolled back at step 0 of 0–3 (1%): the treatment is worse than the control: guardrail errors: regression: treatment 1.500% (27 of 1800) vs control 0.500% (891 of 178200), bound 0.550% (maxRelativeIncrease 0.1); treatment − bound lies in [+0.050%, +1.850%], entirely above 0
  Stale         False    NotComplete           16m   only a ramp complete at 100% can become stale

Events:  <none>
"#,
    );
}

#[test]
fn a_starved_step_shows_in_the_conditions() {
    let mut flag = guarded_by_cohorts("search", false);
    let analysis = flag
        .spec
        .rollout
        .as_mut()
        .unwrap()
        .analysis
        .as_mut()
        .unwrap();
    analysis.max_step_duration = Some("11m".into());
    let traffic = Traffic {
        per_minute: 5_000.0,
        treatment_errors: 0.005,
        control_errors: 0.005,
    };
    let text = status_text(&drive(flag, 12, &traffic), EventsView::Listed(&[]), false);
    assert!(
        text.contains(
            "  Progressing   False    GuardrailStarved   60s   held at step 0 of 0–3 at 1%: the step has run longer than maxStepDuration 11m without enough guardrail samples: guardrail errors has 600 treatment and 59400 control events in this step, 1000 each needed; promote to go on without them, or lower minSamplesPerCohort\n"
        ),
        "{text}"
    );
}

#[test]
fn guardrails_that_have_not_looked_or_failed_to() {
    // In the spec, not yet in status.
    let mut flag = guarded_by_cohorts("checkout", false);
    let section = guardrails_section(&flag, now()).unwrap();
    assert!(
        section.contains("errors      -         -           -         -                   +10% relative   0 / 0 (min 1000)       not yet"),
        "{section}"
    );
    // A look whose query failed keeps the message under the table.
    let mut status = guardrail_passing().status.unwrap();
    let failed =
        "guardrail errors: bad: Prometheus at http://prometheus:9090 did not answer within 10s";
    status.guardrails[0].verdict = GuardrailVerdict::Error;
    status.guardrails[0].message = failed.to_string();
    flag.status = Some(status);
    let section = guardrails_section(&flag, now()).unwrap();
    assert!(section.ends_with(&format!("\n  {failed}\n")), "{section}");
    // No guardrails, no section.
    assert_eq!(guardrails_section(&checkout(), now()), None);
}

// ----- stale ---------------------------------------------------------------------------

#[test]
fn stale_lists_flags_with_the_stale_condition_longest_first() {
    let mut flags: Vec<FeatureFlag> = [checkout(), old_banner(), dark_mode(), search()]
        .into_iter()
        .filter(is_stale)
        .collect();
    flags.sort_by(stale_order);
    golden(
        &render_stale(&flags, now(), false, false),
        r#"
NAME         KEY         OWNER      AT 100% FOR   STALE AFTER
search-v2    search-v2   -          35d           30d
old-banner   banner.v1   team-web   20d           14d
"#,
    );
    golden(
        &render_stale(&flags, now(), true, true),
        r#"
NAMESPACE   NAME         KEY         OWNER      AT 100% FOR   STALE AFTER   MESSAGE
web         search-v2    search-v2   -          35d           30d           flag search-v2 has been complete at 100% for 35d
web         old-banner   banner.v1   team-web   20d           14d           flag banner.v1 has been complete at 100% since 2024-04-11T12:00:00Z, longer than staleAfter 14d: remove it from the code, then delete this FeatureFlag
"#,
    );
}

// ----- helpers -------------------------------------------------------------------------

#[test]
fn progress_bar_and_tables() {
    assert_eq!(
        render::progress_bar(Some(2), 5, 25.0),
        "[■■■□□] 25% (step 2 of 0–4)"
    );
    assert_eq!(
        render::progress_bar(Some(4), 5, 100.0),
        "[■■■■■] 100% (step 4 of 0–4)"
    );
    let mut table = Table::new(["A", "B"]);
    table.row(["x", "y"]);
    // kubectl's smallest column is 6 wide, padding included.
    assert_eq!(table.render("  "), "  A     B\n  x     y\n");
}

#[test]
fn json_and_yaml_output_drop_managed_fields() {
    let raw = json!({"apiVersion": "rollgate.dev/v1alpha1", "kind": "FeatureFlag",
                     "metadata": {"name": "a", "managedFields": [{"manager": "rollgate"}]},
                     "spec": {"percent": 25}});
    let object = render::object_value(&raw);
    assert_eq!(object["metadata"], json!({"name": "a"}));
    let list = render::list_value([&raw]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["spec"]["percent"], json!(25));
    let yaml = render::to_yaml(&object).unwrap();
    assert!(yaml.contains("kind: FeatureFlag\n"), "{yaml}");
    assert!(yaml.contains("percent: 25\n"), "{yaml}");
    let json = render::to_json(&list).unwrap();
    assert!(json.ends_with("}\n"), "{json}");
}

// ----- requests ------------------------------------------------------------------------

fn with_request(mut flag: FeatureFlag, annotation: Option<&str>) -> FeatureFlag {
    flag.metadata.annotations = annotation.map(|value| {
        [("rollgate.dev/request".to_string(), value.to_string())]
            .into_iter()
            .collect()
    });
    flag
}

#[test]
fn request_ids_are_time_and_pid() {
    assert_eq!(request_id(1_714_564_560_000, 4242), "1714564560000-4242");
    assert_eq!(Verb::PromoteFull.to_string(), "promote-full");
}

#[test]
fn a_request_is_handled_when_last_request_has_its_id() {
    let flag = with_request(checkout(), Some("promote/1714564560000-4242"));
    let RequestState::Handled(record) =
        request_state(&flag, "1714564560000-4242", "promote/1714564560000-4242")
    else {
        panic!("not handled");
    };
    assert_eq!(
        (record.verb.as_str(), record.outcome),
        ("promote", RequestOutcome::Applied)
    );
    let flag = with_request(checkout(), Some("pause/1714564999000-1"));
    assert_eq!(
        request_state(&flag, "1714564999000-1", "pause/1714564999000-1"),
        RequestState::Pending
    );
    assert_eq!(
        request_state(&flag, "1714564998000-9", "kill/1714564998000-9"),
        RequestState::Replaced("pause/1714564999000-1".to_string())
    );
    // No status at all: still pending, not an error.
    let flag = with_request(pending(), Some("kill/1-2"));
    assert_eq!(
        request_state(&flag, "1-2", "kill/1-2"),
        RequestState::Pending
    );
}

#[test]
fn applied_and_refused_requests_read_as_sentences() {
    let flag = checkout();
    let record = flag.status.as_ref().unwrap().last_request.clone().unwrap();
    golden(
        &describe_applied(&flag, &record),
        r#"
promote applied to flag 'checkout' in namespace 'shop': promoted by request 1714564560000-4242 to step 2 of 0–4 (25%)
now Progressing at 25% (step 2 of 0–4)
"#,
    );
    let refused = RequestRecord {
        id: "1-2".to_string(),
        verb: "promote".to_string(),
        handled_at: flag.metadata.creation_timestamp.clone().unwrap(),
        outcome: RequestOutcome::Refused,
        message: "promote refused: the latest analysis failed (metric error-rate = 0.12 above max 0.05); promote-full overrides it".to_string(),
    };
    let reason = refusal_reason(&refused);
    assert_eq!(
        reason,
        "the latest analysis failed (metric error-rate = 0.12 above max 0.05); promote-full overrides it"
    );
    let error = PluginError::Refused {
        verb: "promote".to_string(),
        name: "checkout".to_string(),
        namespace: "shop".to_string(),
        message: reason,
    };
    assert_eq!(
        error.to_string(),
        "promote was refused for flag 'checkout' in namespace 'shop': the latest analysis failed \
         (metric error-rate = 0.12 above max 0.05); promote-full overrides it"
    );
    assert_eq!(error.exit_code(), 1);
}

// ----- errors and the command line -----------------------------------------------------

#[test]
fn errors_are_plain_sentences_with_exit_codes() {
    let not_found = PluginError::NotFound {
        name: "checkout".to_string(),
        namespace: "shop".to_string(),
    };
    assert_eq!(
        not_found.to_string(),
        "flag 'checkout' not found in namespace 'shop'"
    );
    assert_eq!(not_found.exit_code(), 2);
    let timeout = PluginError::NotHandled {
        timeout: "30s".to_string(),
        annotation: "rollgate.dev/request",
        request: "pause/1-2".to_string(),
        name: "checkout".to_string(),
        namespace: "shop".to_string(),
    };
    assert!(
        timeout.to_string().starts_with(
            "no operator handled the request within 30s; is rollgate operator running?"
        ),
        "{timeout}"
    );
    assert_eq!(timeout.exit_code(), 1);
    assert_eq!(
        PluginError::ContextNotFound("prod".to_string()).to_string(),
        "context 'prod' not found in the kubeconfig"
    );
}

fn parse(args: &[&str]) -> PluginArgs {
    PluginArgs::try_parse_from(std::iter::once("kubectl-rollgate").chain(args.iter().copied()))
        .unwrap()
}

#[test]
fn kubectl_options_go_before_or_after_the_subcommand() {
    let args = parse(&[
        "-n",
        "shop",
        "--context",
        "prod",
        "promote",
        "checkout",
        "--full",
    ]);
    assert_eq!(args.global.namespace.as_deref(), Some("shop"));
    assert_eq!(args.global.context.as_deref(), Some("prod"));
    let (verb, request) = args.command.request().unwrap();
    assert_eq!(
        (verb, request.name.as_str()),
        (Verb::PromoteFull, "checkout")
    );
    assert_eq!(request.timeout, std::time::Duration::from_secs(30));

    let args = parse(&["list", "-A", "-o", "wide", "--kubeconfig", "/tmp/kc"]);
    assert!(args.global.all_namespaces);
    assert!(matches!(args.command, PluginCommand::List));
    assert!(args.check().is_ok());

    let args = parse(&["kill", "checkout", "--timeout", "2m", "-o", "json"]);
    let (verb, request) = args.command.request().unwrap();
    assert_eq!(verb, Verb::Kill);
    assert_eq!(request.timeout, std::time::Duration::from_secs(120));

    let args = parse(&["status", "checkout", "-A"]);
    let error = args.check().unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("-A/--all-namespaces"), "{error}");

    for bad in [
        &["promote"][..],
        &["list", "-o", "name"],
        &["pause", "x", "--timeout", "0s"],
        &["status", "x", "extra"],
    ] {
        let all = std::iter::once("kubectl-rollgate").chain(bad.iter().copied());
        assert!(PluginArgs::try_parse_from(all).is_err(), "{bad:?}");
    }
}

fn plugin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-rollgate"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn the_binary_reports_bad_input_with_exit_code_2() {
    let help = plugin(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: kubectl rollgate"), "{text}");

    let missing = plugin(&["status"]);
    assert_eq!(missing.status.code(), Some(2));

    let wrong_scope = plugin(&["-A", "kill", "checkout"]);
    assert_eq!(wrong_scope.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong_scope.stderr);
    assert!(stderr.starts_with("error: -A/--all-namespaces"), "{stderr}");

    let no_kubeconfig = plugin(&["--kubeconfig", "/nonexistent/kubeconfig", "list"]);
    assert_eq!(no_kubeconfig.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&no_kubeconfig.stderr);
    assert!(
        stderr.starts_with("error: cannot read the kubeconfig /nonexistent/kubeconfig:"),
        "{stderr}"
    );
}

// ----- targeting -------------------------------------------------------------------------

fn targeted() -> FeatureFlag {
    flag(json!({
        "apiVersion": "rollgate.dev/v1alpha1", "kind": "FeatureFlag",
        "metadata": metadata("new-pricing", "shop", 3600),
        "spec": {"enabled": true, "percent": 5, "targeting": [
            {"name": "legal-hold",
             "conditions": [{"attribute": "country", "operator": "In", "values": ["DE", "FR"]}],
             "serve": {"enabled": false}},
            {"name": "beta-on-new-app",
             "conditions": [{"operator": "InSegment", "values": ["beta-testers"]},
                            {"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2"]}],
             "serve": {"percent": 50}},
            {"name": "has-plan",
             "conditions": [{"attribute": "plan", "operator": "Exists"}],
             "serve": {"enabled": true}}
        ]},
        "status": {"phase": "Static", "percent": 5, "observedGeneration": 1, "conditions": [
            condition("Ready", "True", "Static", "static at 5%", 600),
            condition("SegmentsResolved", "False", "SegmentNotFound",
                "segment \"beta-testers\" does not exist in namespace shop; InSegment conditions naming it match no one", 600)
        ]}
    }))
}

#[test]
fn status_shows_the_rules_in_order_and_the_segments_they_use() {
    golden(
        &status_text(&targeted(), EventsView::Listed(&[]), false),
        r#"
Name:       new-pricing
Namespace:  shop
Key:        new-pricing
Enabled:    true
Phase:      Static
Exposure:   5% (static)

Targeting (first match decides; everyone else gets the ramp):
  RULE              CONDITIONS                                              SERVE
  legal-hold        country In [DE, FR]                                     off
  beta-on-new-app   InSegment [beta-testers] and appVersion SemverGte 4.2   50% of them
  has-plan          plan Exists                                             on
  Segments: beta-testers (segment "beta-testers" does not exist in namespace shop; InSegment conditions naming it match no one)

Conditions:
  TYPE               STATUS   REASON            AGE   MESSAGE
  Ready              True     Static            10m   static at 5%
  SegmentsResolved   False    SegmentNotFound   10m   segment "beta-testers" does not exist in namespace shop; InSegment conditions naming it match no one

Events:  <none>
"#,
    );
    assert_eq!(
        rollgate::plugin::status::targeting_section(&checkout()),
        None
    );
}
