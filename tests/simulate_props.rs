//! The simulator is the engine and nothing else: on any random flag, history and request
//! schedule, `simulate` makes exactly the decisions that calling `engine::decide` step by
//! step on a dense clock makes.
//!
//! The reference below calls the engine every 10 seconds of virtual time (every time in the
//! generated scenarios is a multiple of 10 s), with the controller's protocol and a naive
//! lookup of each metric's last sample (and of each guardrail cohort's last counts, less
//! those at `status.rampStartedAt`). Every call that changes the status or emits an
//! event must appear in the simulator's trace at the same time with the same status and
//! events, and no other. So the simulator's clock jumps (to `requeueAfter` or the next
//! request) skip nothing, and its binary-search history agrees with a linear scan.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rollgate::simulate::csv::{
    BEFORE_FIRST_SAMPLE, EMPTY_VALUE, GUARDRAIL_BEFORE_FIRST_ROW, GUARDRAIL_NOT_IN_HISTORY,
    NOT_IN_HISTORY, is_control,
};
use rollgate::simulate::{
    GuardrailSample, History, Scenario, ScheduledRequest, parse_guarded_history, parse_history,
    simulate, simulate_with,
};
use rollgate_core::crd::{FeatureFlag, FeatureFlagStatus, MetricCheck, REQUEST_ANNOTATION};
use rollgate_core::engine::{Verb, decide};
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts};
use rollgate_core::observation::{
    GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome, Observation,
};
use serde_json::{Value, json};

const T0: i64 = 1_741_683_600;
const TICK: i64 = 10;
const NAMES: [&str; 2] = ["error-ratio", "latency"];
const GUARDRAIL: &str = "errors";

/// A call that changed something: its time, the status after it, and its events.
type Change = (Timestamp, FeatureFlagStatus, Vec<(String, String)>);

fn at(ticks: i64) -> Timestamp {
    Timestamp::from_second(T0 + ticks * TICK).expect("valid time")
}

// ----- generators --------------------------------------------------------------------------

// The flag is built as JSON, as the API server would give it, so spec fields added later
// take their defaults here too.

fn steps() -> impl Strategy<Value = Vec<Value>> {
    (
        prop::collection::btree_set(1u32..=100, 1..=4),
        prop::collection::vec(
            prop::sample::select(vec!["0s", "10s", "30s", "1m", "2m", "5m"]),
            4,
        ),
    )
        .prop_map(|(percents, pauses)| {
            let percents: Vec<u32> = percents.into_iter().collect();
            let last = percents.len() - 1;
            percents
                .into_iter()
                .enumerate()
                .map(|(i, percent)| match i < last {
                    true => json!({"percent": percent, "pause": pauses[i]}),
                    false => json!({"percent": percent}),
                })
                .collect()
        })
}

fn metric(name: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            json!({"max": 1.0}),
            json!({"min": 0.5}),
            json!({"min": 0.2, "max": 1.5}),
        ]),
        prop::sample::select(vec!["Hold", "Fail", "Ignore"]),
        prop::sample::select(vec!["Hold", "Fail"]),
    )
        .prop_map(move |(bounds, on_no_data, on_error)| {
            let mut metric = json!({
                "name": name,
                "query": "up",
                "onNoData": on_no_data,
                "onError": on_error,
            });
            if let (Some(metric), Some(bounds)) = (metric.as_object_mut(), bounds.as_object()) {
                metric.extend(bounds.clone());
            }
            metric
        })
}

/// A guardrail with few samples needed, so the generated counts reach judging.
fn guardrail() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            json!({"maxRelativeIncrease": 0.1}),
            json!({"maxAbsoluteIncrease": 0.02}),
        ]),
        1u64..=60,
    )
        .prop_map(|(tolerance, min_samples)| {
            let mut guardrail = json!({
                "name": GUARDRAIL,
                "bad": "sum by (cohort) (increase(bad_total[{{ since_ramp_start }}]))",
                "total": "sum by (cohort) (increase(all_total[{{ since_ramp_start }}]))",
                "minSamplesPerCohort": min_samples,
            });
            if let (Some(guardrail), Some(tolerance)) =
                (guardrail.as_object_mut(), tolerance.as_object())
            {
                guardrail.extend(tolerance.clone());
            }
            guardrail
        })
}

fn analysis() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.85,
        (
            prop::sample::select(vec!["10s", "20s", "30s", "1m"]),
            1u32..=3,
            prop_oneof![
                metric(NAMES[0]).prop_map(|m| vec![m]),
                (metric(NAMES[0]), metric(NAMES[1])).prop_map(|(a, b)| vec![a, b]),
            ],
            prop::option::weighted(0.4, guardrail()),
            prop::sample::select(vec![None, Some("2m")]),
            prop::bool::weighted(0.2),
        )
            .prop_map(
                |(interval, failure_limit, metrics, guardrail, max_step, no_metrics)| {
                    let mut analysis = json!({"interval": interval, "failureLimit": failure_limit});
                    // A guarded analysis may leave the absolute metrics out.
                    let metrics = if guardrail.is_some() && no_metrics {
                        Vec::new()
                    } else {
                        metrics
                    };
                    analysis["metrics"] = json!(metrics);
                    if let Some(guardrail) = guardrail {
                        analysis["guardrails"] = json!([guardrail]);
                        if let Some(max_step) = max_step {
                            analysis["maxStepDuration"] = json!(max_step);
                        }
                    }
                    analysis
                },
            ),
    )
}

fn flag() -> impl Strategy<Value = FeatureFlag> {
    (steps(), analysis()).prop_map(|(steps, analysis)| {
        let mut rollout = json!({"steps": steps});
        if let (Some(analysis), Some(rollout)) = (analysis, rollout.as_object_mut()) {
            rollout.insert("analysis".into(), analysis);
        }
        serde_json::from_value(json!({
            "apiVersion": "rollgate.dev/v1alpha1",
            "kind": "FeatureFlag",
            "metadata": {"name": "sim"},
            "spec": {"enabled": true, "rollout": rollout},
        }))
        .expect("a FeatureFlag")
    })
}

fn outcome() -> impl Strategy<Value = MetricOutcome> {
    prop_oneof![
        6 => (0u32..=200).prop_map(|v| MetricOutcome::Value { value: f64::from(v) / 100.0 }),
        1 => Just(MetricOutcome::NoData { reason: EMPTY_VALUE.into() }),
        1 => Just(MetricOutcome::Error { message: "query timed out, after 10s".into() }),
    ]
}

/// (metric, tick, outcome), at most one sample per metric and tick (a history file may
/// not have two); ticks may come before the start.
fn samples(length: i64) -> impl Strategy<Value = Samples> {
    prop::collection::btree_map(
        (prop::sample::select(NAMES.to_vec()), -3..=length),
        outcome(),
        0..80,
    )
    .prop_map(|samples| {
        samples
            .into_iter()
            .map(|((name, tick), outcome)| (name.to_string(), tick, outcome))
            .collect()
    })
}

fn requests(length: i64) -> impl Strategy<Value = Vec<(i64, Verb)>> {
    prop::collection::vec(
        (0..=length, prop::sample::select(Verb::ALL.to_vec())),
        0..=3,
    )
    .prop_map(|mut requests| {
        requests.sort_by_key(|(tick, _)| *tick);
        requests
    })
}

/// (metric, tick, outcome) rows of a history.
type Samples = Vec<(String, i64, MetricOutcome)>;

/// (tick, row) rows of the guardrail: cumulative counts of both cohorts at some ticks,
/// and errors at others. Cohort labels or names, one way per history, as a file must.
type GuardrailRows = Vec<(i64, GuardrailSample)>;

fn guardrail_rows(length: i64) -> impl Strategy<Value = GuardrailRows> {
    (
        prop::collection::btree_map(
            -3..=length,
            prop_oneof![
                // (treatment events, bad of them, control events, bad of them) in the tick.
                6 => (0u64..=30, 0u64..=30, 0u64..=60, 0u64..=60).prop_map(Some),
                1 => Just(None),
            ],
            0..60,
        ),
        prop::bool::ANY,
    )
        .prop_map(|(ticks, labels)| {
            let (treatment, control) = if labels {
                ("on", "off")
            } else {
                ("treatment", "control")
            };
            let mut sums = GuardrailCounts::default();
            let mut rows = Vec::new();
            for (tick, increments) in ticks {
                let Some((t_total, t_bad, c_total, c_bad)) = increments else {
                    rows.push((
                        tick,
                        GuardrailSample::Error {
                            message: "query timed out, after 10s".into(),
                        },
                    ));
                    continue;
                };
                sums.treatment.total += t_total;
                sums.treatment.bad += t_bad.min(t_total);
                sums.control.total += c_total;
                sums.control.bad += c_bad.min(c_total);
                for (cohort, counts) in [(treatment, sums.treatment), (control, sums.control)] {
                    rows.push((
                        tick,
                        GuardrailSample::Counts {
                            cohort: cohort.to_string(),
                            counts,
                        },
                    ));
                }
            }
            rows
        })
}

/// A flag, the length of the data in ticks, its history and its requests.
fn scenario() -> impl Strategy<Value = (FeatureFlag, i64, Samples, GuardrailRows, Vec<(i64, Verb)>)>
{
    (flag(), 30i64..=360).prop_flat_map(|(flag, length)| {
        (
            Just(flag),
            Just(length),
            samples(length),
            guardrail_rows(length),
            requests(length),
        )
    })
}

// ----- the reference -----------------------------------------------------------------------

/// A metric's last sample at or before `time`, by linear scan.
fn naive_outcome(
    samples: &[(String, i64, MetricOutcome)],
    name: &str,
    time: Timestamp,
) -> MetricOutcome {
    let mut found: Option<(i64, &MetricOutcome)> = None;
    let mut any = false;
    for (metric, tick, outcome) in samples {
        if metric != name {
            continue;
        }
        any = true;
        if at(*tick) <= time && found.is_none_or(|(best, _)| *tick >= best) {
            found = Some((*tick, outcome));
        }
    }
    match (found, any) {
        (Some((_, outcome)), _) => outcome.clone(),
        (None, true) => MetricOutcome::NoData {
            reason: BEFORE_FIRST_SAMPLE.into(),
        },
        (None, false) => MetricOutcome::NoData {
            reason: NOT_IN_HISTORY.into(),
        },
    }
}

/// One cohort side's counts at `time`: every cohort's last row at or before it, by linear
/// scan; and the tick of the latest such row.
fn naive_counts(rows: &GuardrailRows, time: Timestamp) -> (GuardrailCounts, Option<i64>) {
    let mut last: BTreeMap<&str, (i64, CohortCounts)> = BTreeMap::new();
    for (tick, row) in rows {
        if let GuardrailSample::Counts { cohort, counts } = row
            && at(*tick) <= time
            && last.get(cohort.as_str()).is_none_or(|(t, _)| tick >= t)
        {
            last.insert(cohort, (*tick, *counts));
        }
    }
    let mut sums = GuardrailCounts::default();
    for (cohort, (_, counts)) in &last {
        let side = if is_control(cohort) {
            &mut sums.control
        } else {
            &mut sums.treatment
        };
        side.bad += counts.bad;
        side.total += counts.total;
    }
    (sums, last.values().map(|(tick, _)| *tick).max())
}

/// The guardrail's outcome at `time` for a ramp that started at `since`.
fn naive_guardrail(rows: &GuardrailRows, since: Timestamp, time: Timestamp) -> GuardrailOutcome {
    if rows.is_empty() {
        return GuardrailOutcome::Error {
            message: GUARDRAIL_NOT_IN_HISTORY.into(),
        };
    }
    let (now, counted) = naive_counts(rows, time);
    let error = rows
        .iter()
        .filter(|(tick, row)| at(*tick) <= time && matches!(row, GuardrailSample::Error { .. }))
        .max_by_key(|(tick, _)| *tick);
    match (counted, error) {
        (None, None) => GuardrailOutcome::Error {
            message: GUARDRAIL_BEFORE_FIRST_ROW.into(),
        },
        (counted, Some((tick, GuardrailSample::Error { message })))
            if counted.is_none_or(|c| c < *tick) =>
        {
            GuardrailOutcome::Error {
                message: message.clone(),
            }
        }
        _ => {
            let (base, _) = naive_counts(rows, since);
            let minus = |now: CohortCounts, base: CohortCounts| CohortCounts {
                bad: now.bad - base.bad,
                total: now.total - base.total,
            };
            GuardrailOutcome::Counts {
                counts: GuardrailCounts {
                    treatment: minus(now.treatment, base.treatment),
                    control: minus(now.control, base.control),
                },
            }
        }
    }
}

fn events(decision_events: &[rollgate_core::engine::EngineEvent]) -> Vec<(String, String)> {
    decision_events
        .iter()
        .map(|e| (e.reason.to_string(), e.message.clone()))
        .collect()
}

/// The engine called every 10 s from the start to the end, as a controller would.
fn reference(
    flag: &FeatureFlag,
    length: i64,
    samples: &[(String, i64, MetricOutcome)],
    guardrail: &GuardrailRows,
    requests: &[(i64, Verb)],
) -> Vec<Change> {
    let mut flag = flag.clone();
    flag.metadata.generation = Some(1);
    let checks: Vec<MetricCheck> = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.as_ref())
        .map(|a| a.metrics.clone())
        .unwrap_or_default();
    let guarded = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.as_ref())
        .is_some_and(|a| !a.guardrails.is_empty());
    let mut status = FeatureFlagStatus::default();
    let mut changes = Vec::new();
    let mut next = 0;
    for tick in 0..=length {
        let now = at(tick);
        let mut calls = 0;
        loop {
            if requests.get(next).is_some_and(|(t, _)| *t <= tick) {
                let verb = requests[next].1;
                next += 1;
                flag.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(
                        REQUEST_ANNOTATION.to_string(),
                        format!("{verb}/simulated-{next}"),
                    );
            }
            let first = decide(&flag, &status, Observation::None, now);
            let decision = if first.analysis_due {
                let observed = checks
                    .iter()
                    .map(|check| MetricObservation {
                        name: check.name.clone(),
                        outcome: naive_outcome(samples, &check.name, now),
                    })
                    .collect();
                let observation = if guarded {
                    let since = status.ramp_started_at.as_ref().map_or(now, |t| t.0);
                    Observation::Guarded {
                        metrics: observed,
                        guardrails: vec![GuardrailObservation {
                            name: GUARDRAIL.to_string(),
                            outcome: naive_guardrail(guardrail, since, now),
                        }],
                    }
                } else {
                    Observation::Analysis(observed)
                };
                decide(&flag, &status, observation, now)
            } else {
                first
            };
            if !decision.events.is_empty() || decision.status != status {
                changes.push((now, decision.status.clone(), events(&decision.events)));
            }
            status = decision.status;
            calls += 1;
            assert!(calls < 200, "the engine keeps asking for calls at {now}");
            let more = requests.get(next).is_some_and(|(t, _)| *t <= tick);
            if !more && decision.requeue_after != Some(Duration::ZERO) {
                break;
            }
        }
    }
    changes
}

// ----- the property ------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn simulate_makes_the_engines_decisions((flag, length, samples, guardrail, requests) in scenario()) {
        let guarded = flag
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.analysis.as_ref())
            .is_some_and(|a| !a.guardrails.is_empty());
        // A flag without guardrails has none in its history (a file could not name them).
        let guardrail = if guarded { guardrail } else { Vec::new() };
        let history = History::from_samples(
            samples.iter().map(|(name, tick, outcome)| (name.clone(), at(*tick), outcome.clone())),
        )
        .with_guardrail_samples(
            guardrail.iter().map(|(tick, row)| (GUARDRAIL.to_string(), at(*tick), row.clone())),
        );
        let scheduled: Vec<ScheduledRequest> = requests
            .iter()
            .map(|(tick, verb)| ScheduledRequest { time: at(*tick), verb: *verb, line: 0 })
            .collect();
        let scenario = Scenario { flag: &flag, start: at(0), end: at(length), requests: &scheduled };

        let mut simulated: Vec<Change> = Vec::new();
        let mut previous = FeatureFlagStatus::default();
        let mut source = history.clone();
        let trace = simulate_with(&scenario, &mut source, &mut |tick, status| {
            let events: Vec<(String, String)> = tick
                .events
                .iter()
                .map(|e| (e.reason.to_string(), e.message.clone()))
                .collect();
            if !events.is_empty() || *status != previous {
                simulated.push((tick.time, status.clone(), events));
            }
            previous = status.clone();
        })
        .expect("the simulation runs");

        let expected = reference(&flag, length, &samples, &guardrail, &requests);
        prop_assert_eq!(simulated.len(), expected.len(), "changes: simulated {:#?}\nreference {:#?}", simulated.iter().map(|c| (c.0, &c.2)).collect::<Vec<_>>(), expected.iter().map(|c| (c.0, &c.2)).collect::<Vec<_>>());
        for (sim, reference) in simulated.iter().zip(&expected) {
            prop_assert_eq!(sim, reference);
        }
        // The trace tells the truth about what it ran.
        let recorded = trace.ticks.iter().filter(|t| t.analysis.is_some()).count();
        prop_assert_eq!(trace.summary.analyses as usize, recorded);
        prop_assert_eq!(
            trace.summary.passed + trace.summary.failed + trace.summary.held,
            trace.summary.analyses
        );
        prop_assert_eq!(&trace.final_status, &previous);

        // The same history through CSV gives the same trace.
        let names: Vec<&str> = NAMES.to_vec();
        let parsed = parse_guarded_history(&history.to_csv(), &names, &[GUARDRAIL], None);
        if history.is_empty() {
            prop_assert!(parsed.is_err());
        } else {
            let mut parsed = parsed.expect("the CSV parses back");
            prop_assert_eq!(&parsed, &history);
            prop_assert_eq!(simulate(&scenario, &mut parsed).expect("runs"), trace);
        }
    }

    #[test]
    fn csv_offsets_and_times_agree(ticks in prop::collection::vec(0i64..1000, 1..40)) {
        let mut ticks = ticks;
        ticks.sort_unstable();
        ticks.dedup();
        let start = at(0);
        let seconds: String = ticks.iter().map(|t| format!("{},latency,{t}\n", t * TICK)).collect();
        let rfc: String = ticks
            .iter()
            .map(|t| format!("{},latency,{t}\n", start.saturating_add(SignedDuration::from_secs(t * TICK)).expect("time")))
            .collect();
        let a = parse_history(&format!("time,metric,value\n{seconds}"), &NAMES, Some(start)).expect("seconds parse");
        let b = parse_history(&format!("time,metric,value\n{rfc}"), &NAMES, None).expect("RFC 3339 parses");
        prop_assert!(a.uses_offsets());
        prop_assert!(!b.uses_offsets());
        for t in -1..=1001 {
            prop_assert_eq!(a.outcome_at("latency", at(t)), b.outcome_at("latency", at(t)));
        }
    }
}
