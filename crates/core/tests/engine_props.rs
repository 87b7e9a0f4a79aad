//! Property tests of the rollout engine: random sequences of time jumps, observations,
//! requests and spec edits, with the invariants of `docs/rollout.md` checked after every
//! call.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use rollgate_core::crd::{
    Analysis, ErrorPolicy, FeatureFlag, FeatureFlagSpec, FeatureFlagStatus, MetricCheck,
    NoDataPolicy, Phase, REQUEST_ANNOTATION, RequestOutcome, Rollout, Step, Verdict,
};
use rollgate_core::duration::parse_duration;
use rollgate_core::engine::{Decision, EventReason, decide};
use rollgate_core::observation::{MetricObservation, MetricOutcome, Observation};

const T0: i64 = 1_735_689_600;
const METRIC_NAMES: [&str; 2] = ["error-rate", "latency"];

// ----- generators --------------------------------------------------------------------------

fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::collection::btree_set(1u32..100, 0..=4),
        prop::collection::vec(
            prop::sample::select(vec!["0s", "30s", "1m", "5m", "10m"]),
            5,
        ),
    )
        .prop_map(|(percents, pauses)| {
            let mut percents: Vec<u32> = percents.into_iter().collect();
            percents.push(100);
            let last = percents.len() - 1;
            percents
                .into_iter()
                .enumerate()
                .map(|(i, percent)| Step {
                    percent: f64::from(percent),
                    pause: (i < last).then(|| pauses[i].to_string()),
                })
                .collect()
        })
}

fn metric(name: &'static str) -> impl Strategy<Value = MetricCheck> {
    (
        prop::sample::select(vec![0.005, 0.05, 0.5]),
        prop::sample::select(vec![
            NoDataPolicy::Hold,
            NoDataPolicy::Fail,
            NoDataPolicy::Ignore,
        ]),
        prop::sample::select(vec![ErrorPolicy::Hold, ErrorPolicy::Fail]),
    )
        .prop_map(move |(max, on_no_data, on_error)| MetricCheck {
            name: name.to_string(),
            query: "up".to_string(),
            min: None,
            max: Some(max),
            on_no_data,
            on_error,
        })
}

fn metrics() -> impl Strategy<Value = Vec<MetricCheck>> {
    prop_oneof![
        1 => Just(vec![]),
        3 => metric(METRIC_NAMES[0]).prop_map(|m| vec![m]),
        2 => (metric(METRIC_NAMES[0]), metric(METRIC_NAMES[1])).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn analysis_section() -> impl Strategy<Value = Option<Analysis>> {
    prop::option::weighted(
        0.8,
        (
            prop::sample::select(vec!["10s", "1m", "2m"]),
            1u32..=3,
            metrics(),
        )
            .prop_map(|(interval, failure_limit, metrics)| Analysis {
                interval: interval.to_string(),
                failure_limit,
                prometheus: None,
                metrics,
                ..Default::default()
            }),
    )
}

fn spec() -> impl Strategy<Value = FeatureFlagSpec> {
    (
        steps(),
        analysis_section(),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(steps, analysis, enabled, is_static)| FeatureFlagSpec {
            key: None,
            enabled,
            description: None,
            owner: None,
            percent: is_static.then_some(25.0),
            allowed_users: vec![],
            rollout: (!is_static).then_some(Rollout { steps, analysis }),
            variants: vec![],
            targeting: vec![],
            stale_after: Some("1h".to_string()),
            publish: None,
            experiment: None,
        })
}

fn outcome() -> impl Strategy<Value = MetricOutcome> {
    prop_oneof![
        5 => Just(MetricOutcome::Value { value: 0.001 }),
        3 => Just(MetricOutcome::Value { value: 0.2 }),
        1 => Just(MetricOutcome::Value { value: f64::NAN }),
        1 => Just(MetricOutcome::NoData { reason: "empty result".into() }),
        1 => Just(MetricOutcome::Error { message: "connection refused".into() }),
    ]
}

fn observation() -> impl Strategy<Value = Observation> {
    (outcome(), outcome(), prop::bool::weighted(0.05)).prop_map(|(a, b, drop_second)| {
        let mut metrics = vec![
            MetricObservation {
                name: METRIC_NAMES[0].into(),
                outcome: a,
            },
            MetricObservation {
                name: METRIC_NAMES[1].into(),
                outcome: b,
            },
        ];
        if drop_second {
            metrics.pop();
        }
        Observation::Analysis(metrics)
    })
}

#[derive(Clone, Debug)]
enum Edit {
    ToggleEnabled,
    Threshold(f64),
    Interval(&'static str),
    FailureLimit(u32),
    Metrics(Vec<MetricCheck>),
    Steps(Vec<Step>),
    Key(Option<&'static str>),
    Users,
    ToStatic(f64),
    ToRamp(Vec<Step>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::ToggleEnabled),
        prop::sample::select(vec![0.005, 0.05, 0.5]).prop_map(Edit::Threshold),
        prop::sample::select(vec!["10s", "1m", "2m"]).prop_map(Edit::Interval),
        (1u32..=3).prop_map(Edit::FailureLimit),
        metrics().prop_map(Edit::Metrics),
        steps().prop_map(Edit::Steps),
        prop::sample::select(vec![None, Some("a"), Some("b")]).prop_map(Edit::Key),
        Just(Edit::Users),
        prop::sample::select(vec![0.0, 30.0, 100.0]).prop_map(Edit::ToStatic),
        steps().prop_map(Edit::ToRamp),
    ]
}

const VERBS: [&str; 9] = [
    "pause",
    "resume",
    "promote",
    "promote-full",
    "abort",
    "retry",
    "kill",
    "unkill",
    "explode",
];

#[derive(Clone, Debug)]
enum Action {
    /// Seconds and milliseconds forward.
    Wait(i64, i64),
    /// The controller's protocol, with what the queries would give.
    Reconcile(Observation),
    /// A call with an analysis whether or not one is due (an out-of-protocol caller).
    CallWith(Observation),
    /// Sets the request annotation; `true` reuses the previous id.
    Request(&'static str, bool),
    Edit(Edit),
}

fn wait() -> impl Strategy<Value = Action> {
    (
        prop_oneof![
            Just(0i64),
            1i64..60,
            Just(60),
            55i64..=65,
            300i64..900,
            3_600i64..36_000,
        ],
        prop_oneof![3 => Just(0i64), 1 => 0i64..1000],
    )
        .prop_map(|(seconds, millis)| Action::Wait(seconds, millis))
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => wait(),
        6 => observation().prop_map(Action::Reconcile),
        1 => observation().prop_map(Action::CallWith),
        2 => (prop::sample::select(VERBS.to_vec()), prop::bool::weighted(0.2))
            .prop_map(|(verb, repeat)| Action::Request(verb, repeat)),
        1 => edit().prop_map(Action::Edit),
    ]
}

// ----- the world ---------------------------------------------------------------------------

struct World {
    flag: FeatureFlag,
    status: FeatureFlagStatus,
    now: Timestamp,
    next_id: u32,
}

impl World {
    fn new(spec: FeatureFlagSpec) -> Self {
        let mut flag = FeatureFlag::new("checkout", spec);
        flag.metadata.generation = Some(1);
        Self {
            flag,
            status: FeatureFlagStatus::default(),
            now: Timestamp::from_second(T0).unwrap(),
            next_id: 0,
        }
    }

    fn act(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Wait(seconds, millis) => {
                let nanos =
                    self.now.as_nanosecond() + i128::from(seconds * 1_000 + millis) * 1_000_000;
                self.now = Timestamp::from_nanosecond(nanos).unwrap();
            }
            Action::Reconcile(observation) => {
                let first = self.call(Observation::None)?;
                let decision = if first.analysis_due {
                    prop_assert!(
                        !first
                            .events
                            .iter()
                            .any(|e| e.reason == EventReason::StepAdvanced),
                        "a call without observation advanced while an analysis was due"
                    );
                    self.call(observation)?
                } else {
                    first
                };
                self.status = decision.status;
            }
            Action::CallWith(observation) => {
                self.status = self.call(observation)?.status;
            }
            Action::Request(verb, repeat) => {
                if !repeat {
                    self.next_id += 1;
                }
                let value = format!("{verb}/{}", self.next_id);
                self.flag
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REQUEST_ANNOTATION.into(), value);
            }
            Action::Edit(edit) => {
                apply_edit(&mut self.flag.spec, edit);
                self.flag.metadata.generation = self.flag.metadata.generation.map(|g| g + 1);
            }
        }
        Ok(())
    }

    /// One call to the engine, with every invariant checked against the status it read.
    fn call(&self, observation: Observation) -> Result<Decision, TestCaseError> {
        let decision = decide(&self.flag, &self.status, observation.clone(), self.now);
        check_round_trip(self, &observation, &decision)?;
        check_decision(self, &decision)?;
        Ok(decision)
    }
}

fn analysis(spec: &mut FeatureFlagSpec) -> Option<&mut Analysis> {
    let rollout = spec.rollout.as_mut()?;
    Some(rollout.analysis.get_or_insert_with(Analysis::default))
}

fn apply_edit(spec: &mut FeatureFlagSpec, edit: Edit) {
    match edit {
        Edit::ToggleEnabled => spec.enabled = !spec.enabled,
        Edit::Threshold(max) => {
            if let Some(metric) = analysis(spec).and_then(|a| a.metrics.first_mut()) {
                metric.max = Some(max);
            }
        }
        Edit::Interval(interval) => {
            if let Some(a) = analysis(spec) {
                a.interval = interval.to_string();
            }
        }
        Edit::FailureLimit(limit) => {
            if let Some(a) = analysis(spec) {
                a.failure_limit = limit;
            }
        }
        Edit::Metrics(metrics) => {
            if let Some(a) = analysis(spec) {
                a.metrics = metrics;
            }
        }
        Edit::Steps(steps) => {
            if let Some(rollout) = spec.rollout.as_mut() {
                rollout.steps = steps;
            }
        }
        Edit::Key(key) => spec.key = key.map(str::to_string),
        Edit::Users => {
            if spec.allowed_users.is_empty() {
                spec.allowed_users = vec!["alice".into()];
            } else {
                spec.allowed_users.clear();
            }
        }
        Edit::ToStatic(percent) => {
            spec.rollout = None;
            spec.percent = Some(percent);
        }
        Edit::ToRamp(steps) => {
            spec.percent = None;
            let analysis = spec.rollout.take().and_then(|r| r.analysis);
            spec.rollout = Some(Rollout { steps, analysis });
        }
    }
}

// ----- invariants --------------------------------------------------------------------------

/// A JSON round trip of the status before the call changes nothing, and the new status
/// survives one unchanged.
fn check_round_trip(
    world: &World,
    observation: &Observation,
    decision: &Decision,
) -> Result<(), TestCaseError> {
    let read_back: FeatureFlagStatus =
        serde_json::from_str(&serde_json::to_string(&world.status).unwrap()).unwrap();
    let again = decide(&world.flag, &read_back, observation.clone(), world.now);
    prop_assert_eq!(
        &again,
        decision,
        "a JSON round trip of status changed the decision"
    );
    let written: FeatureFlagStatus =
        serde_json::from_str(&serde_json::to_string(&decision.status).unwrap()).unwrap();
    prop_assert_eq!(
        &written,
        &decision.status,
        "the new status does not survive JSON"
    );
    Ok(())
}

fn steps_of(spec: &FeatureFlagSpec) -> &[Step] {
    spec.rollout
        .as_ref()
        .map(|r| r.steps.as_slice())
        .unwrap_or_default()
}

fn failure_limit(spec: &FeatureFlagSpec) -> Option<u32> {
    let analysis = spec.rollout.as_ref()?.analysis.as_ref()?;
    (!analysis.metrics.is_empty()).then_some(analysis.failure_limit)
}

fn interval(spec: &FeatureFlagSpec) -> Option<std::time::Duration> {
    failure_limit(spec)?;
    let analysis = spec.rollout.as_ref()?.analysis.as_ref()?;
    Some(parse_duration(&analysis.interval).unwrap())
}

/// The request this call applied, if the annotation was new and applied.
fn applied_verb<'a>(before: &FeatureFlagStatus, after: &'a FeatureFlagStatus) -> Option<&'a str> {
    let record = after.last_request.as_ref()?;
    let new = before
        .last_request
        .as_ref()
        .is_none_or(|b| b.id != record.id);
    (new && record.outcome == RequestOutcome::Applied).then_some(record.verb.as_str())
}

/// The verdict of a run recorded by this call, if one was.
fn recorded_run(before: &FeatureFlagStatus, after: &FeatureFlagStatus) -> Option<Verdict> {
    (after.last_analysis_at != before.last_analysis_at)
        .then(|| after.analyses.last().map(|run| run.verdict))
        .flatten()
}

fn check_decision(world: &World, decision: &Decision) -> Result<(), TestCaseError> {
    let spec = &world.flag.spec;
    let before = &world.status;
    let after = &decision.status;
    let steps = steps_of(spec);
    let percent = after.percent.unwrap_or(-1.0);

    // The percent is always 0, a step's percent or spec.percent.
    let allowed = percent == 0.0
        || steps.iter().any(|s| s.percent == percent)
        || spec.percent == Some(percent);
    prop_assert!(
        allowed,
        "percent {} is none of 0, the steps or spec.percent",
        percent
    );
    prop_assert_eq!(decision.resolved.percent, percent);
    prop_assert_eq!(
        decision.resolved.enabled,
        !matches!(
            after.phase,
            Phase::Disabled | Phase::Killed | Phase::RolledBack | Phase::Invalid
        )
    );
    if !spec.enabled {
        prop_assert!(percent == 0.0, "a disabled flag is at {}%", percent);
    }

    let verb = applied_verb(before, after);
    let run = recorded_run(before, after);
    let same_ramp = before.ramp_fingerprint == after.ramp_fingerprint;
    let was_ramping = matches!(before.phase, Phase::Progressing | Phase::Paused);

    // Percent rises one step at a time, except through promote-full.
    let before_percent = before.percent.unwrap_or(0.0);
    if percent > before_percent && after.phase != Phase::Static && verb != Some("promote-full") {
        let one_step = after.current_step == Some(0)
            || (same_ramp
                && was_ramping
                && after.current_step == before.current_step.map(|i| i + 1));
        prop_assert!(
            one_step,
            "percent rose from {} to {} (step {:?} → {:?}, phase {} → {})",
            before_percent,
            percent,
            before.current_step,
            after.current_step,
            before.phase,
            after.phase
        );
    }

    // The ramp never advances while the latest analysis failed or held.
    let advanced = same_ramp
        && was_ramping
        && before.current_step.is_some()
        && after.current_step == before.current_step.map(|i| i + 1);
    if advanced && verb != Some("promote-full") {
        // Without metrics the ramp is time-only: earlier verdicts no longer gate it.
        let guarded = failure_limit(spec).is_some();
        let latest = run.filter(|_| guarded).or_else(|| {
            (before.step_analyses > 0)
                .then(|| before.analyses.last())
                .flatten()
                .filter(|r| guarded && Some(r.step) == before.current_step)
                .map(|r| r.verdict)
        });
        prop_assert!(
            !matches!(latest, Some(Verdict::Fail | Verdict::Hold)),
            "advanced while the latest analysis was {:?}",
            latest
        );
        if verb != Some("promote") {
            let pause = steps[before.current_step.unwrap() as usize]
                .pause
                .as_deref()
                .map(|p| parse_duration(p).unwrap())
                .unwrap_or_default();
            let started = before.step_started_at.as_ref().unwrap().0;
            prop_assert!(
                started.saturating_add(pause).unwrap() <= world.now,
                "advanced before the pause ended"
            );
            if let Some(interval) = interval(spec) {
                prop_assert_eq!(
                    latest,
                    Some(Verdict::Pass),
                    "advanced without a passed analysis"
                );
                // However late the call, the verdict it advanced on is fresh.
                let last = after.last_analysis_at.as_ref().unwrap().0;
                prop_assert!(
                    last.saturating_add(interval).unwrap() > world.now,
                    "advanced on an analysis from {} at {}",
                    last,
                    world.now
                );
            }
        }
    }
    if same_ramp
        && was_ramping
        && verb != Some("promote-full")
        && let (Some(b), Some(a)) = (before.current_step, after.current_step)
    {
        prop_assert!(
            a <= b + 1,
            "moved from step {} to step {} in one call",
            b,
            a
        );
    }

    // Rollback happens exactly at the failure that reaches failureLimit.
    match (run, failure_limit(spec)) {
        (Some(verdict), Some(limit)) => {
            let expected = match verdict {
                Verdict::Pass => 0,
                Verdict::Hold => before.consecutive_failures,
                Verdict::Fail => before.consecutive_failures + 1,
            };
            prop_assert_eq!(after.consecutive_failures, expected);
            let rolled_back = after.phase == Phase::RolledBack;
            let should = verdict == Verdict::Fail && expected >= limit;
            prop_assert_eq!(
                rolled_back,
                should,
                "{:?} with {} of {} failures",
                verdict,
                expected,
                limit
            );
        }
        (Some(_), None) => prop_assert!(false, "an analysis was recorded without metrics"),
        (None, _) => {
            if after.phase == Phase::RolledBack && before.phase != Phase::RolledBack {
                prop_assert_eq!(
                    verb,
                    Some("abort"),
                    "rolled back without a failure or an abort"
                );
            }
        }
    }

    // A ramp in progress always knows when to be called again.
    if after.phase == Phase::Progressing
        || (after.phase == Phase::Paused && failure_limit(spec).is_some())
    {
        prop_assert!(
            decision.requeue_after.is_some(),
            "a {} ramp has no requeue",
            after.phase
        );
    }
    Ok(())
}

proptest! {
    // proptest's default of 256 cases; set PROPTEST_CASES for a longer search.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn random_histories_keep_the_invariants(
        spec in spec(),
        actions in prop::collection::vec(action(), 1..=40),
    ) {
        let mut world = World::new(spec);
        for action in actions {
            world.act(action)?;
        }
    }
}

/// Drives a ramp with failing metrics only: whatever the timing, it rolls back exactly at
/// the analysis that reaches the limit and never leaves step 0.
#[test]
fn failing_metrics_never_leave_step_0() {
    proptest!(ProptestConfig { cases: 64, ..ProptestConfig::default() }, |(
        limit in 1u32..=4,
        waits in prop::collection::vec(1i64..200, 1..=40),
    )| {
        let spec = FeatureFlagSpec {
            key: None,
            enabled: true,
            description: None,
            owner: None,
            percent: None,
            allowed_users: vec![],
            rollout: Some(Rollout {
                steps: vec![
                    Step { percent: 5.0, pause: Some("10s".into()) },
                    Step { percent: 100.0, pause: None },
                ],
                analysis: Some(Analysis {
                    interval: "10s".into(),
                    failure_limit: limit,
                    prometheus: None,
                    metrics: vec![MetricCheck {
                        name: METRIC_NAMES[0].into(),
                        query: "up".into(),
                        min: None,
                        max: Some(0.05),
                        on_no_data: NoDataPolicy::Hold,
                        on_error: ErrorPolicy::Hold,
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
        let failing = Observation::Analysis(vec![MetricObservation {
            name: METRIC_NAMES[0].into(),
            outcome: MetricOutcome::Value { value: 1.0 },
        }]);
        let mut world = World::new(spec);
        let mut failures = 0;
        for seconds in waits {
            world.act(Action::Wait(seconds, 0))?;
            let before = world.status.last_analysis_at.clone();
            world.act(Action::Reconcile(failing.clone()))?;
            if world.status.last_analysis_at != before {
                failures += 1;
            }
            prop_assert!(world.status.current_step.is_none_or(|s| s == 0));
            prop_assert_eq!(world.status.phase == Phase::RolledBack, failures >= limit);
        }
    });
}
