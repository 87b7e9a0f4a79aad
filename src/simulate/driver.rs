//! The loop that runs the engine on a virtual clock; its steps are listed in the docs of
//! [`crate::simulate`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::request::ScheduledRequest;
use super::source::MetricSource;
use super::trace::{Breach, GuardrailReading, Outcome, Summary, Tick, Trace, TraceEvent};
use rollgate_core::crd::{
    Analysis, FeatureFlag, FeatureFlagStatus, Guardrail, GuardrailStatus, MetricCheck,
    MetricVerdict, Phase, REQUEST_ANNOTATION, Verdict,
};
use rollgate_core::engine::{self, Decision, EventReason, PROGRESSING, Verb};
use rollgate_core::guardrail::{GuardrailVerdict, Tolerance};
use rollgate_core::observation::Observation;

/// The `Progressing` reason of a step whose pause has elapsed while it waits for its
/// guardrails' samples (`docs/rollout.md`, table C).
const WAITING_FOR_SAMPLES: &str = "WaitingForSamples";

/// What to simulate: one flag from `start` until the data ends at `end`.
#[derive(Clone, Copy, Debug)]
pub struct Scenario<'a> {
    pub flag: &'a FeatureFlag,
    /// When the flag is applied; rounded down to a whole second, as the engine does.
    pub start: Timestamp,
    /// The end of the data: nothing is simulated after it.
    pub end: Timestamp,
    /// Requests, in time order (ties keep their order).
    pub requests: &'a [ScheduledRequest],
}

/// Why a simulation could not run to its end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    #[error("the end of the data ({end}) is before the start ({start})")]
    EndBeforeStart { start: Timestamp, end: Timestamp },
    #[error(
        "the engine asked to be called again at {at} more than {calls} times without time moving; giving up"
    )]
    Stuck { at: Timestamp, calls: u32 },
}

impl SimulateError {
    /// A short label, as every error of the project has.
    pub fn category(&self) -> &'static str {
        match self {
            Self::EndBeforeStart { .. } => "simulate_range",
            Self::Stuck { .. } => "simulate_stuck",
        }
    }
}

/// How many calls at one instant the driver allows beyond the requests due then. The engine
/// moves at most one step per call, so a few more than the 20 steps a flag may have is
/// plenty; more means the engine and the driver disagree about time.
const CALLS_PER_INSTANT: u32 = 64;

/// Runs the scenario to its end.
pub fn simulate(
    scenario: &Scenario<'_>,
    source: &mut dyn MetricSource,
) -> Result<Trace, SimulateError> {
    simulate_with(scenario, source, &mut |_, _| {})
}

/// [`simulate`], calling `on_tick` after every acted-on call with the tick and the full
/// status the engine returned (for live output, and for checking the driver against the
/// engine).
pub fn simulate_with(
    scenario: &Scenario<'_>,
    source: &mut dyn MetricSource,
    on_tick: &mut dyn FnMut(&Tick, &FeatureFlagStatus),
) -> Result<Trace, SimulateError> {
    let start = whole_second_floor(scenario.start);
    let end = scenario.end;
    if end < start {
        return Err(SimulateError::EndBeforeStart { start, end });
    }
    let mut flag = prepare(scenario.flag);
    let analysis = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.analysis.clone())
        .filter(|analysis| !analysis.metrics.is_empty() || !analysis.guardrails.is_empty());
    let mut requests: Vec<&ScheduledRequest> = scenario.requests.iter().collect();
    requests.sort_by_key(|request| request.time);

    let mut status = FeatureFlagStatus::default();
    let mut ticks = Vec::new();
    let mut now = start;
    let mut next_request = 0;
    let mut calls_here = 0u32;
    let mut engine_calls = 0u64;
    loop {
        let request = requests
            .get(next_request)
            .filter(|request| request.time <= now)
            .map(|request| {
                next_request += 1;
                set_request(&mut flag, request, next_request);
                request.verb
            });
        let (decision, analyzed) = call(
            &flag,
            &status,
            analysis.as_ref(),
            source,
            now,
            &mut engine_calls,
        );
        let tick = tick(&flag, start, now, request, &status, &decision, analyzed);
        on_tick(&tick, &decision.status);
        ticks.push(tick);
        let requeue_after = decision.requeue_after;
        status = decision.status;

        let pending = next_request < requests.len();
        if settled(status.phase) && !pending {
            break;
        }
        let wake = requeue_after.map(|after| whole_second_ceil(saturating_add(now, after)));
        let request_at = requests
            .get(next_request)
            .map(|request| whole_second_floor(request.time).max(now));
        let next = match (wake, request_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(at) => at,
                None => break,
            },
        };
        if next > end {
            break;
        }
        if next == now {
            calls_here += 1;
            let allowed =
                CALLS_PER_INSTANT.saturating_add(u32::try_from(requests.len()).unwrap_or(u32::MAX));
            if calls_here > allowed {
                return Err(SimulateError::Stuck {
                    at: now,
                    calls: allowed,
                });
            }
        } else {
            calls_here = 0;
        }
        now = next;
    }
    let summary = summarize(&flag, &status, &ticks, start, end, engine_calls);
    Ok(Trace {
        flag: flag.key().to_string(),
        start,
        end,
        summary,
        ticks,
        final_status: status,
    })
}

/// The flag as the simulator feeds it to the engine: a generation (the API server always
/// sets one) and no request annotation of its own (requests come from the schedule).
fn prepare(flag: &FeatureFlag) -> FeatureFlag {
    let mut flag = flag.clone();
    flag.metadata.generation = Some(flag.metadata.generation.unwrap_or(1));
    if let Some(annotations) = flag.metadata.annotations.as_mut() {
        annotations.remove(REQUEST_ANNOTATION);
    }
    flag
}

/// Puts `request` on the annotation. Its id is `line-<n>` for a line of a requests file,
/// else `simulated-<n>` for the n-th request of the schedule; the engine handles each id once.
fn set_request(flag: &mut FeatureFlag, request: &ScheduledRequest, number: usize) {
    let id = if request.line > 0 {
        format!("line-{}", request.line)
    } else {
        format!("simulated-{number}")
    };
    flag.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            REQUEST_ANNOTATION.to_string(),
            format!("{}/{id}", request.verb),
        );
}

/// The engine's calling protocol: a dry call, then, when an analysis is due, the queries
/// and a second call from the same status. Returns the decision to act on and whether an
/// analysis was passed to it. Guardrails count from `status.rampStartedAt`, as the
/// operator's do.
fn call(
    flag: &FeatureFlag,
    status: &FeatureFlagStatus,
    analysis: Option<&Analysis>,
    source: &mut dyn MetricSource,
    now: Timestamp,
    engine_calls: &mut u64,
) -> (Decision, bool) {
    *engine_calls += 1;
    let first = engine::decide(flag, status, Observation::None, now);
    if !first.analysis_due {
        return (first, false);
    }
    let observation = match analysis {
        None => Observation::Analysis(Vec::new()),
        Some(analysis) if analysis.guardrails.is_empty() => {
            Observation::Analysis(source.observe(analysis, now))
        }
        Some(analysis) => {
            let ramp_started_at = status.ramp_started_at.as_ref().map_or(now, |t| t.0);
            Observation::Guarded {
                metrics: source.observe(analysis, now),
                guardrails: source.observe_guardrails(analysis, ramp_started_at, now),
            }
        }
    };
    *engine_calls += 1;
    let second = engine::decide(flag, status, observation, now);
    (second, true)
}

fn tick(
    flag: &FeatureFlag,
    start: Timestamp,
    now: Timestamp,
    request: Option<Verb>,
    before: &FeatureFlagStatus,
    decision: &Decision,
    analyzed: bool,
) -> Tick {
    let after = &decision.status;
    let recorded = analyzed && after.last_analysis_at != before.last_analysis_at;
    let waiting = |status: &FeatureFlagStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRESSING && c.reason == WAITING_FOR_SAMPLES)
            .map(|c| c.message.clone())
    };
    Tick {
        time: now,
        elapsed_seconds: seconds_between(start, now),
        request: request.map(|verb| verb.as_str().to_string()),
        phase: after.phase,
        percent: decision.resolved.percent,
        step: after.current_step,
        analysis: if recorded {
            after.analyses.last().cloned()
        } else {
            None
        },
        guardrails: if recorded {
            readings(guardrail_checks(flag), &after.guardrails)
        } else {
            Vec::new()
        },
        waiting: waiting(after).filter(|_| waiting(before).is_none()),
        events: decision
            .events
            .iter()
            .map(|event| TraceEvent {
                type_: event.type_().as_str(),
                reason: event.reason,
                message: event.message.clone(),
            })
            .collect(),
        requeue_after_seconds: decision.requeue_after.map(|d| d.as_secs_f64()),
    }
}

/// Phases only a request or a spec change can leave.
fn settled(phase: Phase) -> bool {
    !matches!(phase, Phase::Pending | Phase::Progressing | Phase::Paused)
}

fn summarize(
    flag: &FeatureFlag,
    status: &FeatureFlagStatus,
    ticks: &[Tick],
    start: Timestamp,
    end: Timestamp,
    engine_calls: u64,
) -> Summary {
    let runs = || ticks.iter().filter_map(|tick| tick.analysis.as_ref());
    let count = |verdict| {
        u32::try_from(runs().filter(|run| run.verdict == verdict).count()).unwrap_or(u32::MAX)
    };
    let last_run = ticks.iter().rev().find_map(|tick| tick.analysis.as_ref());
    let held_at_end = status.phase == Phase::Progressing
        && status.step_analyses > 0
        && last_run.is_some_and(|run| {
            run.verdict == Verdict::Hold && Some(run.step) == status.current_step
        });
    let outcome = match status.phase {
        Phase::Complete => Outcome::Completed,
        Phase::RolledBack => Outcome::RolledBack,
        Phase::Killed => Outcome::Killed,
        Phase::Paused => Outcome::Paused,
        _ if held_at_end => Outcome::Held,
        _ => Outcome::Unfinished,
    };
    let at = match outcome {
        Outcome::Completed | Outcome::RolledBack | Outcome::Killed => ticks
            .iter()
            .rev()
            .take_while(|tick| tick.phase == status.phase)
            .last()
            .map_or(end, |tick| tick.time),
        Outcome::Held | Outcome::Paused | Outcome::Unfinished => end,
    };
    let before = match outcome {
        Outcome::RolledBack | Outcome::Killed => ticks
            .iter()
            .rev()
            .skip_while(|tick| tick.phase == status.phase)
            .find(|tick| {
                matches!(
                    tick.phase,
                    Phase::Progressing | Phase::Paused | Phase::Complete
                )
            }),
        _ => None,
    };
    let reason = match outcome {
        Outcome::RolledBack | Outcome::Killed => status
            .rollback
            .as_ref()
            .map(|rollback| rollback.message.clone())
            .or_else(|| {
                ticks
                    .iter()
                    .rev()
                    .flat_map(|tick| tick.events.iter().rev())
                    .find(|event| event.reason == EventReason::Killed)
                    .map(|event| event.message.clone())
            }),
        Outcome::Held => last_run.map(engine::judge::summarize_run),
        _ => None,
    };
    let breach = match (outcome, status.rollback.as_ref()) {
        (Outcome::RolledBack, Some(_)) => last_run
            .filter(|run| run.verdict == Verdict::Fail)
            .and_then(|run| {
                run.metrics
                    .iter()
                    .find(|metric| metric.verdict == MetricVerdict::Fail)
            })
            .map(|failed| {
                let check = metric_checks(flag)
                    .iter()
                    .find(|check| check.name == failed.name);
                Breach {
                    metric: failed.name.clone(),
                    value: failed.value,
                    min: check.and_then(|check| check.min),
                    max: check.and_then(|check| check.max),
                    message: failed.message.clone(),
                }
            }),
        _ => None,
    };
    let guardrail_breach = match (outcome, status.rollback.as_ref()) {
        (Outcome::RolledBack, Some(_)) => ticks
            .iter()
            .rev()
            .find(|tick| tick.analysis.is_some())
            .filter(|tick| {
                tick.analysis
                    .as_ref()
                    .is_some_and(|run| run.verdict == Verdict::Fail)
            })
            .and_then(|tick| {
                tick.guardrails
                    .iter()
                    .find(|reading| reading.verdict == GuardrailVerdict::Regression)
                    .cloned()
            }),
        _ => None,
    };
    let steps = flag
        .spec
        .rollout
        .as_ref()
        .map_or(0, |rollout| rollout.steps.len());
    Summary {
        outcome,
        at,
        elapsed_seconds: seconds_between(start, at),
        phase: status.phase,
        percent: ticks.last().map_or(0.0, |tick| tick.percent),
        step: status.current_step,
        steps: u32::try_from(steps).unwrap_or(u32::MAX),
        analyses: u32::try_from(runs().count()).unwrap_or(u32::MAX),
        passed: count(Verdict::Pass),
        held: count(Verdict::Hold),
        failed: count(Verdict::Fail),
        engine_calls,
        from_percent: before.map(|tick| tick.percent),
        from_step: before.and_then(|tick| tick.step),
        reason,
        breach,
        guardrail_breach,
    }
}

/// Each guardrail of the spec, as the engine left it in `statuses`, in spec order.
fn readings(checks: &[Guardrail], statuses: &[GuardrailStatus]) -> Vec<GuardrailReading> {
    checks
        .iter()
        .filter_map(|check| {
            let status = statuses.iter().find(|s| s.name == check.name)?;
            let tolerance = match (check.max_relative_increase, check.max_absolute_increase) {
                (Some(relative), _) => Tolerance::Relative(relative),
                (None, Some(absolute)) => Tolerance::Absolute(absolute),
                (None, None) => return None,
            };
            Some(GuardrailReading {
                name: check.name.clone(),
                verdict: status.verdict,
                treatment_rate: status.treatment_rate,
                control_rate: status.control_rate,
                bound: tolerance.bound(status.control_rate),
                tolerance: tolerance.to_string(),
                interval: status.interval,
                treatment: status.state.treatment,
                control: status.state.control,
                step_samples: status.step_samples,
                message: status.message.clone(),
            })
        })
        .collect()
}

/// The guardrails of the flag's analysis; empty without them.
pub fn guardrail_checks(flag: &FeatureFlag) -> &[Guardrail] {
    flag.spec
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.analysis.as_ref())
        .map_or(&[], |analysis| analysis.guardrails.as_slice())
}

/// The metrics of the flag's analysis; empty for a time-only ramp.
pub fn metric_checks(flag: &FeatureFlag) -> &[MetricCheck] {
    flag.spec
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.analysis.as_ref())
        .map_or(&[], |analysis| analysis.metrics.as_slice())
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.as_second().saturating_sub(from.as_second())
}

fn saturating_add(at: Timestamp, duration: Duration) -> Timestamp {
    at.saturating_add(duration).unwrap_or(Timestamp::MAX)
}

/// `at` rounded down to a whole second.
pub fn whole_second_floor(at: Timestamp) -> Timestamp {
    let mut second = at.as_second();
    if at.subsec_nanosecond() < 0 {
        second -= 1;
    }
    Timestamp::from_second(second).unwrap_or(at)
}

/// `at` rounded up to a whole second, so a fractional requeue still moves the clock.
fn whole_second_ceil(at: Timestamp) -> Timestamp {
    let mut second = at.as_second();
    if at.subsec_nanosecond() > 0 {
        second = second.saturating_add(1);
    }
    Timestamp::from_second(second).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_core::observation::{
        GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome,
    };

    const FLAG: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: demo
spec:
  enabled: true
  rollout:
    steps:
      - percent: 10
        pause: 5m
      - percent: 100
    analysis:
      interval: 1m
      failureLimit: 2
      metrics:
        - name: errors
          query: up
          max: 0.01
"#;

    fn flag() -> FeatureFlag {
        let file = crate::manifest::parse_str(std::path::Path::new("demo.yaml"), FLAG).unwrap();
        file.valid_flags().next().unwrap().clone()
    }

    struct Constant(f64);

    impl MetricSource for Constant {
        fn observe(&mut self, analysis: &Analysis, _: Timestamp) -> Vec<MetricObservation> {
            analysis
                .metrics
                .iter()
                .map(|m| MetricObservation {
                    name: m.name.clone(),
                    outcome: MetricOutcome::Value { value: self.0 },
                })
                .collect()
        }

        fn observe_guardrails(
            &mut self,
            analysis: &Analysis,
            _: Timestamp,
            _: Timestamp,
        ) -> Vec<GuardrailObservation> {
            analysis
                .guardrails
                .iter()
                .map(|g| GuardrailObservation {
                    name: g.name.clone(),
                    outcome: GuardrailOutcome::Error {
                        message: "no counts".into(),
                    },
                })
                .collect()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn first_hour<'a>(flag: &'a FeatureFlag, requests: &'a [ScheduledRequest]) -> Scenario<'a> {
        Scenario {
            flag,
            start: at(0),
            end: at(3600),
            requests,
        }
    }

    #[test]
    fn a_healthy_ramp_completes_when_the_pause_ends() {
        let flag = flag();
        let scenario = first_hour(&flag, &[]);
        let trace = simulate(&scenario, &mut Constant(0.001)).unwrap();
        assert_eq!(trace.summary.outcome, Outcome::Completed);
        assert_eq!(trace.summary.elapsed_seconds, 300);
        assert_eq!(trace.summary.analyses, 5);
        // The start, then one call per analysis; nothing in between.
        assert_eq!(trace.ticks.len(), 6);
    }

    #[test]
    fn a_breach_rolls_back_after_failure_limit_analyses() {
        let flag = flag();
        let scenario = first_hour(&flag, &[]);
        let trace = simulate(&scenario, &mut Constant(0.5)).unwrap();
        assert_eq!(trace.summary.outcome, Outcome::RolledBack);
        assert_eq!(trace.summary.elapsed_seconds, 120);
        let breach = trace.summary.breach.unwrap();
        assert_eq!((breach.metric.as_str(), breach.max), ("errors", Some(0.01)));
    }

    #[test]
    fn the_data_ending_early_leaves_the_ramp_unfinished() {
        let flag = flag();
        let scenario = Scenario {
            flag: &flag,
            start: at(0),
            end: at(150),
            requests: &[],
        };
        let trace = simulate(&scenario, &mut Constant(0.001)).unwrap();
        assert_eq!(trace.summary.outcome, Outcome::Unfinished);
        assert_eq!(trace.summary.at, at(150));
        assert_eq!(trace.ticks.last().unwrap().time, at(120));
    }

    #[test]
    fn requests_are_replayed_at_their_time() {
        let flag = flag();
        let requests = [ScheduledRequest {
            time: at(90),
            verb: Verb::PromoteFull,
            line: 2,
        }];
        let scenario = first_hour(&flag, &requests);
        let trace = simulate(&scenario, &mut Constant(0.5)).unwrap();
        assert_eq!(trace.summary.outcome, Outcome::Completed);
        assert_eq!(trace.summary.at, at(90));
        let tick = trace.ticks.iter().find(|t| t.request.is_some()).unwrap();
        assert_eq!(tick.request.as_deref(), Some("promote-full"));
    }

    #[test]
    fn rounding_keeps_the_clock_on_whole_seconds() {
        let t = Timestamp::new(10, 500_000_000).unwrap();
        assert_eq!(whole_second_floor(t), Timestamp::from_second(10).unwrap());
        assert_eq!(whole_second_ceil(t), Timestamp::from_second(11).unwrap());
        let whole = Timestamp::from_second(10).unwrap();
        assert_eq!(whole_second_ceil(whole), whole);
    }
}
