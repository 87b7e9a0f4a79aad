//! One test per row of the tables in `docs/rollout.md`, named after the row's id.
//! `every_documented_row_has_a_test` fails when a row and the tests drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use rollgate_core::crd::{
    Analysis, ErrorPolicy, Experiment, ExperimentDecision, ExperimentMetric, FeatureFlag,
    FeatureFlagSpec, FeatureFlagStatus, Guardrail, MetricCheck, MetricVerdict, NoDataPolicy, Phase,
    REQUEST_ANNOTATION, RequestOutcome, Rollout, Step, Variant, Verdict,
};
use rollgate_core::engine::judge::{judge, judge_metric};
use rollgate_core::engine::{Decision, EventReason, EventType, decide};
use rollgate_core::experiment::{Method, VariantCounts};
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts, GuardrailVerdict};
use rollgate_core::observation::{
    ExperimentOutcome, GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome,
    Observation,
};

// ----- harness ---------------------------------------------------------------------------

const T0: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const MIN: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// A flag, its status and a clock, driven the way the controller drives the engine.
struct Sim {
    flag: FeatureFlag,
    status: FeatureFlagStatus,
    now: Timestamp,
}

impl Sim {
    fn new(spec: FeatureFlagSpec) -> Self {
        let mut flag = FeatureFlag::new("checkout", spec);
        flag.metadata.generation = Some(1);
        Self {
            flag,
            status: FeatureFlagStatus::default(),
            now: at(0),
        }
    }

    /// Creates the flag and makes the first call.
    fn start(spec: FeatureFlagSpec) -> (Self, Decision) {
        let mut sim = Self::new(spec);
        let decision = sim.call(Observation::None);
        (sim, decision)
    }

    fn wait(&mut self, seconds: i64) {
        self.now = Timestamp::from_second(self.now.as_second() + seconds).unwrap();
    }

    fn elapsed(&self) -> i64 {
        self.now.as_second() - T0
    }

    /// One call, applied.
    fn call(&mut self, observation: Observation) -> Decision {
        let decision = self.peek(observation);
        self.status = decision.status.clone();
        decision
    }

    /// One call, not applied.
    fn peek(&self, observation: Observation) -> Decision {
        decide(&self.flag, &self.status, observation, self.now)
    }

    /// The controller's protocol: a call without observation, and the real call with the
    /// metrics when the first says an analysis is due.
    fn reconcile(&mut self, metrics: &Observation) -> Decision {
        let first = self.peek(Observation::None);
        let decision = if first.analysis_due {
            self.peek(metrics.clone())
        } else {
            first
        };
        self.status = decision.status.clone();
        decision
    }

    /// Reconciles every `every` seconds until `seconds` have passed; returns the events.
    fn run_for(&mut self, seconds: i64, every: i64, metrics: &Observation) -> Vec<String> {
        let end = self.elapsed() + seconds;
        let mut reasons = Vec::new();
        while self.elapsed() < end {
            self.wait(every.min(end - self.elapsed()));
            reasons.extend(
                self.reconcile(metrics)
                    .events
                    .iter()
                    .map(|e| e.reason.to_string()),
            );
        }
        reasons
    }

    fn edit(&mut self, change: impl FnOnce(&mut FeatureFlagSpec)) {
        change(&mut self.flag.spec);
        self.flag.metadata.generation = Some(self.flag.metadata.generation.unwrap() + 1);
    }

    fn request(&mut self, value: &str) {
        self.flag
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REQUEST_ANNOTATION.to_string(), value.to_string());
    }

    fn step(&self) -> Option<u32> {
        self.status.current_step
    }

    fn percent(&self) -> f64 {
        self.status.percent.unwrap()
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds).unwrap()
}

fn step(percent: f64, pause: Option<&str>) -> Step {
    Step {
        percent,
        pause: pause.map(str::to_string),
    }
}

fn error_rate() -> MetricCheck {
    MetricCheck {
        name: "error-rate".into(),
        query: "sum(rate(errors[1m]))".into(),
        min: None,
        max: Some(0.05),
        on_no_data: NoDataPolicy::Hold,
        on_error: ErrorPolicy::Hold,
    }
}

/// 10% (10m) → 50% (10m) → 100%, with no analysis.
fn time_only() -> FeatureFlagSpec {
    FeatureFlagSpec {
        enabled: true,
        rollout: Some(Rollout {
            steps: vec![
                step(10.0, Some("10m")),
                step(50.0, Some("10m")),
                step(100.0, None),
            ],
            analysis: None,
        }),
        ..spec()
    }
}

/// The same ramp, guarded by `error-rate <= 0.05` every minute, `failureLimit: 2`.
fn guarded() -> FeatureFlagSpec {
    let mut spec = time_only();
    spec.rollout.as_mut().unwrap().analysis = Some(Analysis {
        interval: "1m".into(),
        failure_limit: 2,
        prometheus: None,
        metrics: vec![error_rate()],
        ..Default::default()
    });
    spec
}

fn spec() -> FeatureFlagSpec {
    FeatureFlagSpec {
        key: None,
        enabled: true,
        description: None,
        owner: None,
        percent: None,
        allowed_users: vec![],
        rollout: None,
        variants: vec![],
        targeting: vec![],
        stale_after: None,
        publish: None,
        experiment: None,
    }
}

fn static_at(percent: f64) -> FeatureFlagSpec {
    FeatureFlagSpec {
        percent: Some(percent),
        ..spec()
    }
}

fn analysis(spec: &mut FeatureFlagSpec) -> &mut Analysis {
    spec.rollout.as_mut().unwrap().analysis.as_mut().unwrap()
}

fn observe(outcome: MetricOutcome) -> Observation {
    Observation::Analysis(vec![MetricObservation {
        name: "error-rate".into(),
        outcome,
    }])
}

fn value(value: f64) -> MetricOutcome {
    MetricOutcome::Value { value }
}

fn pass() -> Observation {
    observe(value(0.01))
}

fn fail() -> Observation {
    observe(value(0.12))
}

fn hold() -> Observation {
    observe(MetricOutcome::NoData {
        reason: "empty result".into(),
    })
}

fn reasons(decision: &Decision) -> Vec<&str> {
    decision.events.iter().map(|e| e.reason.as_str()).collect()
}

fn condition<'a>(status: &'a FeatureFlagStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

fn assert_condition(status: &FeatureFlagStatus, type_: &str, state: &str, reason: &str) {
    let c = condition(status, type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (state, reason),
        "{c:?}"
    );
}

/// A guarded ramp that reached step 1 at 50%: one step passed under analysis.
fn guarded_at_step_1() -> Sim {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!(sim.step(), Some(1));
    sim
}

/// 10% → 20% → 50% → 100%, 10 minutes each, guarded or not.
fn four_steps(guard: bool) -> FeatureFlagSpec {
    let mut spec = if guard { guarded() } else { time_only() };
    spec.rollout.as_mut().unwrap().steps = vec![
        step(10.0, Some("10m")),
        step(20.0, Some("10m")),
        step(50.0, Some("10m")),
        step(100.0, None),
    ];
    spec
}

/// A ramp at step 2 of [`four_steps`].
fn at_step_2(guard: bool) -> Sim {
    let (mut sim, _) = Sim::start(four_steps(guard));
    sim.run_for(20 * MIN, MIN, &pass());
    assert_eq!(sim.step(), Some(2));
    sim
}

fn rolled_back() -> Sim {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(2 * MIN, MIN, &fail());
    assert_eq!(sim.status.phase, Phase::RolledBack);
    sim
}

fn complete_at_100() -> Sim {
    let (mut sim, _) = Sim::start(time_only());
    sim.run_for(20 * MIN, MIN, &Observation::None);
    assert_eq!(sim.status.phase, Phase::Complete);
    sim
}

// ----- experiments -----------------------------------------------------------------------

/// An experiment on 30% of users, control 50 / treatment 50, guarded by `error-rate`
/// every minute (`failureLimit: 2`).
fn experiment(auto_ship: bool) -> FeatureFlagSpec {
    let variant = |name: &str| Variant {
        name: name.into(),
        weight: 50,
    };
    FeatureFlagSpec {
        rollout: Some(Rollout {
            steps: vec![],
            analysis: Some(Analysis {
                interval: "1m".into(),
                failure_limit: 2,
                prometheus: None,
                metrics: vec![error_rate()],
                ..Default::default()
            }),
        }),
        experiment: Some(Experiment {
            variants: vec![variant("control"), variant("treatment")],
            coverage: 30.0,
            salt: None,
            metric: ExperimentMetric {
                exposures: "sum(increase(exposures_total{variant={{ variant }}}[{{ interval }}]))"
                    .into(),
                conversions:
                    "sum(increase(conversions_total{variant={{ variant }}}[{{ interval }}]))".into(),
            },
            alpha: 0.05,
            min_samples_per_variant: 1000,
            method: Method::Sequential,
            planned_samples_per_variant: None,
            auto_ship,
            max_duration: None,
        }),
        ..spec()
    }
}

fn exp(spec: &mut FeatureFlagSpec) -> &mut Experiment {
    spec.experiment.as_mut().unwrap()
}

/// An experiment analysis: the guardrail gives `guardrail`, the counts are
/// (exposures, conversions) of control and treatment.
fn look(guardrail: MetricOutcome, control: (u64, u64), treatment: (u64, u64)) -> Observation {
    Observation::Experiment {
        metrics: vec![MetricObservation {
            name: "error-rate".into(),
            outcome: guardrail,
        }],
        experiment: ExperimentOutcome::Counts {
            variants: vec![
                VariantCounts::new("control", 50, control.0, control.1),
                VariantCounts::new("treatment", 50, treatment.0, treatment.1),
            ],
        },
    }
}

/// A clear lift: 10% against 11.5% on 20,000 users each.
fn lift() -> Observation {
    look(value(0.01), (20_000, 2_000), (20_000, 2_300))
}

/// No difference worth the name.
fn flat() -> Observation {
    look(value(0.01), (20_000, 2_000), (20_000, 2_010))
}

/// Below the minimum samples.
fn few() -> Observation {
    look(value(0.01), (400, 40), (420, 50))
}

fn experiment_of(status: &FeatureFlagStatus) -> &rollgate_core::crd::ExperimentStatus {
    status.experiment.as_ref().expect("status.experiment")
}

/// 1% → 5% → 25% → 100%, 10 minutes each, guarded by `error-rate <= 0.05` and by the
/// guardrail `errors`: the treatment's error rate at most 10% above the control's, judged
/// from 100 events per cohort.
fn cohort_guarded() -> FeatureFlagSpec {
    FeatureFlagSpec {
        enabled: true,
        rollout: Some(Rollout {
            steps: vec![
                step(1.0, Some("10m")),
                step(5.0, Some("10m")),
                step(25.0, Some("10m")),
                step(100.0, None),
            ],
            analysis: Some(Analysis {
                interval: "1m".into(),
                failure_limit: 2,
                metrics: vec![error_rate()],
                guardrails: vec![Guardrail {
                    name: "errors".into(),
                    bad: "sum by (cohort) (increase(requests_total{outcome=\"error\"}[{{ since_ramp_start }}]))".into(),
                    total: "sum by (cohort) (increase(requests_total[{{ since_ramp_start }}]))".into(),
                    max_relative_increase: Some(0.1),
                    max_absolute_increase: None,
                    min_samples_per_cohort: 100,
                    alpha: 0.05,
                }],
                ..Default::default()
            }),
        }),
        ..spec()
    }
}

/// Requests per minute split by the flag's percent, with an error rate per cohort; the
/// counts are cumulative since the ramp started, as the guardrail's queries return them.
struct Traffic {
    per_minute: f64,
    control_rate: f64,
    treatment_rate: f64,
    counts: GuardrailCounts,
}

impl Traffic {
    fn new(per_minute: f64, control_rate: f64, treatment_rate: f64) -> Self {
        Self {
            per_minute,
            control_rate,
            treatment_rate,
            counts: GuardrailCounts::default(),
        }
    }

    fn minute(&mut self, percent: f64) {
        let treatment = (self.per_minute * percent / 100.0).round();
        let control = self.per_minute - treatment;
        let add = |c: &mut CohortCounts, n: f64, rate: f64| {
            c.total += n as u64;
            c.bad += (n * rate).round() as u64;
        };
        add(&mut self.counts.treatment, treatment, self.treatment_rate);
        add(&mut self.counts.control, control, self.control_rate);
    }

    /// What the provider gives: the absolute metric passes, and the guardrail's counts.
    fn observation(&self) -> Observation {
        Observation::Guarded {
            metrics: vec![MetricObservation {
                name: "error-rate".into(),
                outcome: value(0.01),
            }],
            guardrails: vec![GuardrailObservation {
                name: "errors".into(),
                outcome: GuardrailOutcome::Counts {
                    counts: self.counts,
                },
            }],
        }
    }
}

/// A minute of traffic at the flag's current percent, then a reconcile; the events.
fn drive(sim: &mut Sim, traffic: &mut Traffic, minutes: i64) -> Vec<String> {
    let mut reasons = Vec::new();
    for _ in 0..minutes {
        traffic.minute(sim.status.percent.unwrap_or_default());
        sim.wait(MIN);
        let observation = traffic.observation();
        reasons.extend(
            sim.reconcile(&observation)
                .events
                .iter()
                .map(|e| e.reason.to_string()),
        );
    }
    reasons
}

macro_rules! rows {
    ($($id:literal $name:ident $body:block)*) => {
        $(#[test] fn $name() $body)*
        const TESTED_ROWS: &[&str] = &[$($id),*];
    };
}

#[test]
fn every_documented_row_has_a_test() {
    let doc = include_str!("../../../docs/rollout.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| ")?.split(" |").next())
        .filter(|cell| {
            let mut chars = cell.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && !chars.as_str().is_empty()
                && chars.all(|c| c.is_ascii_digit())
        })
        .collect();
    let tested: BTreeSet<&str> = TESTED_ROWS.iter().copied().collect();
    assert_eq!(TESTED_ROWS.len(), tested.len(), "a row id is tested twice");
    let untested: Vec<_> = documented.difference(&tested).collect();
    let undocumented: Vec<_> = tested.difference(&documented).collect();
    assert!(untested.is_empty(), "rows without a test: {untested:?}");
    assert!(
        undocumented.is_empty(),
        "tests without a row: {undocumented:?}"
    );
    assert!(
        documented.len() >= 80,
        "only {} rows found",
        documented.len()
    );
}

rows! {

// ----- K: kill switch --------------------------------------------------------------------

"K1" k1_disabling_turns_off_in_the_same_call {
    let mut sim = at_step_2(true);
    sim.wait(MIN);
    sim.edit(|s| s.enabled = false);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.phase, Phase::Disabled);
    assert_eq!(d.status.percent, Some(0.0));
    assert!(!d.resolved.enabled);
    assert_eq!(d.resolved.percent, 0.0);
    let entry = d.resolved.to_entry("");
    assert_eq!((entry.enabled, entry.percent, entry.phase.as_str()), (false, 0.0, "Disabled"));
    assert!(!d.analysis_due);
    assert_eq!(d.requeue_after, None);
    assert_eq!(reasons(&d), ["Disabled"]);
}

"K2" k2_disabled_ignores_analysis {
    let mut spec = guarded();
    spec.enabled = false;
    let (mut sim, d) = Sim::start(spec);
    assert_eq!(d.status.phase, Phase::Disabled);
    sim.wait(HOUR);
    let d = sim.call(fail());
    assert!(d.status.analyses.is_empty());
    assert_eq!(d.status.consecutive_failures, 0);
    assert!(d.events.is_empty());
}

"K3" k3_reenabling_a_static_flag {
    let mut spec = static_at(30.0);
    spec.enabled = false;
    let (mut sim, _) = Sim::start(spec);
    sim.edit(|s| s.enabled = true);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.phase, Phase::Static);
    assert_eq!((d.resolved.enabled, d.resolved.percent), (true, 30.0));
}

// ----- S: static flags and invalid specs -------------------------------------------------

"S1" s1_static_percent {
    let (_, d) = Sim::start(static_at(30.0));
    assert_eq!(d.status.phase, Phase::Static);
    assert_eq!(d.status.percent, Some(30.0));
    assert_eq!((d.resolved.enabled, d.resolved.percent), (true, 30.0));
    assert!(!d.analysis_due);
    assert_eq!(d.requeue_after, None);
    assert_condition(&d.status, "Ready", "True", "Static");
    let entry = d.resolved.to_entry("2025-01-01T00:00:00Z");
    assert_eq!(
        (entry.key.as_str(), entry.enabled, entry.percent, entry.phase.as_str()),
        ("checkout", true, 30.0, "Static")
    );
    assert_eq!((entry.generation, entry.updated_at.as_str()), (1, "2025-01-01T00:00:00Z"));
}

"S2" s2_no_percent_no_steps_is_zero {
    let mut spec = spec();
    spec.allowed_users = vec!["alice".into()];
    let (_, d) = Sim::start(spec);
    assert_eq!(d.status.phase, Phase::Static);
    assert_eq!((d.resolved.enabled, d.resolved.percent), (true, 0.0));
    assert_eq!(d.resolved.allowed_users, ["alice"]);
}

"S3" s3_static_percent_edit {
    let (mut sim, _) = Sim::start(static_at(30.0));
    sim.edit(|s| s.percent = Some(60.0));
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Static, 60.0));
}

"S4" s4_percent_and_steps_is_invalid {
    let mut spec = time_only();
    spec.percent = Some(5.0);
    let (mut sim, d) = Sim::start(spec);
    assert_eq!(d.status.phase, Phase::Invalid);
    assert_eq!(d.status.percent, Some(0.0));
    assert!(!d.resolved.enabled);
    assert_condition(&d.status, "Ready", "False", "InvalidSpec");
    assert!(condition(&d.status, "Ready").message.contains("mutually exclusive"));
    // The same conditions as a spec the operator refuses, with the engine's own reason.
    assert_condition(&d.status, "InvalidSpec", "True", "PlanFailed");
    assert_condition(&d.status, "Progressing", "False", "InvalidSpec");
    assert_condition(&d.status, "Degraded", "True", "InvalidSpec");
    assert_eq!(reasons(&d), ["InvalidSpec"]);
    // The event fires on entering Invalid, not on every call.
    sim.wait(MIN);
    assert!(sim.call(Observation::None).events.is_empty());
}

"S5" s5_unparseable_duration_is_invalid {
    let mut spec = guarded();
    spec.rollout.as_mut().unwrap().steps[1].pause = Some("soon".into());
    let (_, d) = Sim::start(spec);
    assert_eq!(d.status.phase, Phase::Invalid);
    assert!(
        condition(&d.status, "Ready").message.contains("spec.rollout.steps[1].pause"),
        "{:?}",
        d.status.conditions
    );
    let mut spec = guarded();
    analysis(&mut spec).interval = String::new();
    assert_eq!(Sim::start(spec).1.status.phase, Phase::Invalid);
    let mut spec = static_at(5.0);
    spec.stale_after = Some("2 weeks".into());
    assert_eq!(Sim::start(spec).1.status.phase, Phase::Invalid);
}

"S6" s6_fixed_spec_starts_afresh {
    let mut spec = time_only();
    spec.percent = Some(5.0);
    let (mut sim, _) = Sim::start(spec);
    sim.edit(|s| s.percent = None);
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.resolved.percent, 10.0);
    assert_condition(&d.status, "Ready", "True", "Progressing");
    assert!(
        d.status.conditions.iter().all(|c| c.type_ != "InvalidSpec"),
        "{:?}",
        d.status.conditions
    );
}

// ----- T: time-only ramps ----------------------------------------------------------------

"T1" t1_ramp_starts_at_step_0 {
    let (_, d) = Sim::start(time_only());
    assert_eq!(d.status.phase, Phase::Progressing);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.status.percent, Some(10.0));
    assert_eq!(d.status.step_started_at, Some(Time(at(0))));
    assert_eq!(reasons(&d), ["RolloutStarted"]);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(600)));
    assert!(!d.analysis_due);
}

"T2" t2_waits_for_the_pause {
    let (mut sim, _) = Sim::start(time_only());
    sim.wait(4 * MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert!(d.events.is_empty());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(360)));
}

"T3" t3_advances_when_the_pause_ends {
    let (mut sim, _) = Sim::start(time_only());
    sim.wait(10 * MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
    assert_eq!(d.status.percent, Some(50.0));
    assert_eq!(d.status.step_started_at, Some(Time(sim.now)));
    assert_eq!(reasons(&d), ["StepAdvanced"]);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(600)));
}

"T4" t4_late_call_moves_one_step {
    let (mut sim, _) = Sim::start(time_only());
    sim.wait(10 * HOUR);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
    assert!(d.events.is_empty());
}

"T5" t5_analysis_without_metrics_is_time_only {
    let mut spec = guarded();
    analysis(&mut spec).metrics.clear();
    let (mut sim, d) = Sim::start(spec);
    assert!(!d.analysis_due);
    sim.wait(10 * MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
    assert!(d.status.analyses.is_empty());
}

"T6" t6_zero_pause_moves_one_step_per_call {
    let mut spec = time_only();
    for step in &mut spec.rollout.as_mut().unwrap().steps {
        step.pause = Some("0s".into());
    }
    let (mut sim, d) = Sim::start(spec);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.requeue_after, Some(Duration::ZERO));
    assert_eq!(sim.call(Observation::None).status.current_step, Some(1));
    assert_eq!(sim.call(Observation::None).status.phase, Phase::Complete);
}

// ----- R: guarded ramps ------------------------------------------------------------------

"R1" r1_first_analysis_waits_one_interval {
    let (mut sim, d) = Sim::start(guarded());
    assert!(!d.analysis_due);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(60)));
    sim.wait(59);
    assert!(!sim.peek(Observation::None).analysis_due);
    sim.wait(1);
    assert!(sim.peek(Observation::None).analysis_due);
}

"R2" r2_requeue_is_the_earliest_wake_up {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &pass());
    assert_eq!(sim.status.step_analyses, 1);
    sim.wait(30);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    // An interval longer than the rest of the pause: the pause end comes first.
    let mut spec = guarded();
    analysis(&mut spec).interval = "9m".into();
    let (mut sim, _) = Sim::start(spec);
    sim.run_for(9 * MIN, 9 * MIN, &pass());
    let d = sim.call(Observation::None);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(60)));
}

"R3" r3_advances_on_a_fresh_pass {
    let (mut sim, _) = Sim::start(guarded());
    sim.wait(30); // the controller runs 30s behind the schedule: analyses at 1m30s, 2m30s, …
    sim.run_for(9 * MIN, MIN, &pass());
    assert_eq!(sim.status.last_analysis_at, Some(Time(at(9 * MIN + 30))));
    sim.wait(30); // the pause is over; the next analysis is 30s away
    let d = sim.call(Observation::None);
    assert!(!d.analysis_due);
    assert_eq!(d.status.current_step, Some(1));
    assert_eq!(reasons(&d), ["StepAdvanced"]);
}

"R4" r4_due_analysis_blocks_the_advance {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(9 * MIN, MIN, &pass());
    sim.wait(MIN);
    let d = sim.peek(Observation::None);
    assert!(d.analysis_due);
    assert_eq!(d.requeue_after, Some(Duration::ZERO));
    assert_eq!(d.status.current_step, Some(0));
    assert!(d.events.is_empty());
}

"R5" r5_second_call_records_and_advances {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(9 * MIN, MIN, &pass());
    sim.wait(MIN);
    let d = sim.peek(pass());
    assert_eq!(d.status.analyses.last().unwrap().time, Time(sim.now));
    assert_eq!(d.status.current_step, Some(1));
    assert_eq!(d.status.step_analyses, 0);
    assert!(!d.analysis_due);
}

"R6" r6_no_analysis_in_the_step_no_advance {
    let mut spec = guarded();
    analysis(&mut spec).interval = "15m".into();
    let (mut sim, _) = Sim::start(spec);
    sim.wait(12 * MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(3 * 60)));
    sim.wait(3 * MIN);
    let d = sim.reconcile(&pass());
    assert_eq!(d.status.current_step, Some(1));
}

"R7" r7_last_step_completes {
    let mut sim = guarded_at_step_1();
    let events = sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!(sim.status.phase, Phase::Complete);
    assert_eq!(sim.percent(), 100.0);
    assert!(sim.status.completed_at.is_some());
    assert_eq!(events, ["StepAdvanced", "Completed"]);
    sim.wait(HOUR);
    let d = sim.call(pass());
    assert!(!d.analysis_due);
    assert_eq!(d.status.step_analyses, 0);
    assert_condition(&d.status, "Progressing", "False", "RolloutComplete");
}

"R8" r8_last_step_below_100 {
    let mut spec = guarded();
    spec.rollout.as_mut().unwrap().steps = vec![step(10.0, Some("10m")), step(50.0, None)];
    let (mut sim, _) = Sim::start(spec);
    sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!((sim.status.phase, sim.percent()), (Phase::Complete, 50.0));
}

"R9" r9_outage_never_skips_steps {
    let (mut sim, _) = Sim::start(four_steps(true));
    sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!(sim.step(), Some(1));
    sim.wait(10 * HOUR);
    // The last analysis is hours old: the call without observation must not advance.
    let first = sim.peek(Observation::None);
    assert!(first.analysis_due);
    assert_eq!(first.status.current_step, Some(1));
    let d = sim.reconcile(&pass());
    assert_eq!(d.status.current_step, Some(2));
    // Step 2 starts now: its own pause and its own analysis come first.
    let d = sim.reconcile(&pass());
    assert_eq!(d.status.current_step, Some(2));
    sim.wait(MIN);
    let d = sim.reconcile(&pass());
    assert_eq!((d.status.current_step, d.status.step_analyses), (Some(2), 1));
}

"R10" r10_single_step_completes_at_once {
    let mut spec = guarded();
    spec.rollout.as_mut().unwrap().steps = vec![step(100.0, None)];
    let (_, d) = Sim::start(spec);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Complete, 100.0));
    assert_eq!(reasons(&d), ["RolloutStarted", "Completed"]);
}

// ----- A: metric verdicts ----------------------------------------------------------------

"A1" a1_inside_bounds_passes {
    let check = MetricCheck { min: Some(0.0), ..error_rate() };
    let result = judge_metric(&check, Some(&value(0.01)));
    assert_eq!((result.verdict, result.value), (MetricVerdict::Pass, Some(0.01)));
}

"A2" a2_above_max_fails_with_bound {
    let result = judge_metric(&error_rate(), Some(&value(0.12)));
    assert_eq!(result.verdict, MetricVerdict::Fail);
    assert_eq!(result.message, "metric error-rate = 0.12 above max 0.05");
}

"A3" a3_below_min_fails_with_bound {
    let check = MetricCheck {
        name: "success-rate".into(),
        min: Some(0.99),
        max: None,
        ..error_rate()
    };
    let result = judge_metric(&check, Some(&value(0.9)));
    assert_eq!(result.verdict, MetricVerdict::Fail);
    assert_eq!(result.message, "metric success-rate = 0.9 below min 0.99");
}

"A4" a4_bounds_are_inclusive {
    let check = MetricCheck { min: Some(0.01), ..error_rate() };
    assert_eq!(judge_metric(&check, Some(&value(0.05))).verdict, MetricVerdict::Pass);
    assert_eq!(judge_metric(&check, Some(&value(0.01))).verdict, MetricVerdict::Pass);
}

"A5" a5_no_data_holds_by_default {
    let no_data = MetricOutcome::NoData { reason: "empty result".into() };
    let result = judge_metric(&error_rate(), Some(&no_data));
    assert_eq!((result.verdict, result.value), (MetricVerdict::Hold, None));
    assert!(result.message.contains("empty result"), "{}", result.message);
}

"A6" a6_no_data_can_fail {
    let check = MetricCheck { on_no_data: NoDataPolicy::Fail, ..error_rate() };
    let no_data = MetricOutcome::NoData { reason: "empty result".into() };
    assert_eq!(judge_metric(&check, Some(&no_data)).verdict, MetricVerdict::Fail);
}

"A7" a7_no_data_can_be_ignored {
    let check = MetricCheck { on_no_data: NoDataPolicy::Ignore, ..error_rate() };
    let no_data = MetricOutcome::NoData { reason: "empty result".into() };
    assert_eq!(judge_metric(&check, Some(&no_data)).verdict, MetricVerdict::Ignored);
}

"A8" a8_nan_and_inf_are_no_data {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let result = judge_metric(&error_rate(), Some(&value(v)));
        assert_eq!((result.verdict, result.value), (MetricVerdict::Hold, None), "{v}");
        let check = MetricCheck { on_no_data: NoDataPolicy::Fail, ..error_rate() };
        assert_eq!(judge_metric(&check, Some(&value(v))).verdict, MetricVerdict::Fail);
    }
}

"A9" a9_error_holds_by_default {
    let error = MetricOutcome::Error { message: "connection refused to prom:9090".into() };
    let result = judge_metric(&error_rate(), Some(&error));
    assert_eq!(result.verdict, MetricVerdict::Hold);
    assert!(result.message.contains("connection refused to prom:9090"));
}

"A10" a10_error_can_fail {
    let check = MetricCheck { on_error: ErrorPolicy::Fail, ..error_rate() };
    let error = MetricOutcome::Error { message: "timeout".into() };
    assert_eq!(judge_metric(&check, Some(&error)).verdict, MetricVerdict::Fail);
}

"A11" a11_missing_metric_is_an_error {
    assert_eq!(judge_metric(&error_rate(), None).verdict, MetricVerdict::Hold);
    let check = MetricCheck { on_error: ErrorPolicy::Fail, ..error_rate() };
    let judgement = judge(&[check], &[]);
    assert_eq!(judgement.verdict, Verdict::Fail);
    assert!(judgement.metrics[0].message.contains("no result"));
}

"A12" a12_run_verdict {
    let named = |name: &str, policy: NoDataPolicy| MetricCheck {
        name: name.into(),
        on_no_data: policy,
        ..error_rate()
    };
    let checks = [
        named("a", NoDataPolicy::Hold),
        named("b", NoDataPolicy::Ignore),
        named("c", NoDataPolicy::Hold),
    ];
    let run = |a: MetricOutcome, b: MetricOutcome, c: MetricOutcome| {
        let obs = [("a", a), ("b", b), ("c", c)]
            .map(|(name, outcome)| MetricObservation { name: name.into(), outcome });
        judge(&checks, &obs).verdict
    };
    let none = || MetricOutcome::NoData { reason: "empty result".into() };
    assert_eq!(run(value(0.0), value(0.0), value(0.0)), Verdict::Pass);
    assert_eq!(run(value(0.0), none(), value(0.0)), Verdict::Pass);
    assert_eq!(run(none(), value(0.0), value(0.0)), Verdict::Hold);
    assert_eq!(run(none(), value(0.0), value(0.9)), Verdict::Fail);
    assert_eq!(run(value(0.0), none(), value(0.9)), Verdict::Fail);
    let all_ignored = [named("b", NoDataPolicy::Ignore)];
    let obs = [MetricObservation { name: "b".into(), outcome: none() }];
    assert_eq!(judge(&all_ignored, &obs).verdict, Verdict::Pass);
    // Through the engine: the run records every metric with its verdict.
    let mut spec = guarded();
    analysis(&mut spec).metrics = checks.to_vec();
    let (mut sim, _) = Sim::start(spec);
    sim.wait(MIN);
    let obs = Observation::Analysis(
        [("a", value(0.01)), ("b", none()), ("c", value(0.5))]
            .map(|(name, outcome)| MetricObservation { name: name.into(), outcome })
            .to_vec(),
    );
    let d = sim.call(obs);
    let run = d.status.analyses.last().unwrap();
    assert_eq!(run.verdict, Verdict::Fail);
    let verdicts: Vec<_> = run.metrics.iter().map(|m| m.verdict).collect();
    assert_eq!(verdicts, [MetricVerdict::Pass, MetricVerdict::Ignored, MetricVerdict::Fail]);
}

"A13" a13_analysis_not_due_is_ignored {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &pass());
    sim.wait(30);
    let d = sim.call(fail());
    assert_eq!(d.status.analyses.len(), 1);
    assert_eq!(d.status.consecutive_failures, 0);
    assert!(d.events.is_empty());
}

"A14" a14_analysis_runs_while_paused {
    let (mut sim, _) = Sim::start(guarded());
    sim.request("pause/1");
    sim.call(Observation::None);
    assert_eq!(sim.status.phase, Phase::Paused);
    sim.wait(MIN);
    let d = sim.reconcile(&pass());
    assert_eq!(d.status.analyses.len(), 1);
    assert_eq!(d.status.phase, Phase::Paused);
}

"A15" a15_no_analysis_outside_a_ramp {
    let mut cases = vec![complete_at_100(), rolled_back()];
    let mut spec = static_at(40.0);
    spec.rollout = guarded().rollout.map(|r| Rollout { steps: vec![], ..r });
    cases.push(Sim::start(spec).0);
    let (mut killed, _) = Sim::start(guarded());
    killed.request("kill/1");
    killed.call(Observation::None);
    cases.push(killed);
    for mut sim in cases {
        let phase = sim.status.phase;
        let before = sim.status.analyses.len();
        sim.wait(HOUR);
        let d = sim.call(fail());
        assert!(!d.analysis_due, "{phase}");
        assert_eq!(d.status.analyses.len(), before, "{phase}");
    }
}

// ----- F: failures and rollback ----------------------------------------------------------

"F1" f1_failure_below_limit {
    let (mut sim, _) = Sim::start(guarded());
    sim.wait(MIN);
    let d = sim.call(fail());
    assert_eq!(d.status.consecutive_failures, 1);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.resolved.percent, 10.0);
    assert_condition(&d.status, "Progressing", "False", "AnalysisFailing");
    assert_eq!(d.events.len(), 1);
    assert_eq!(
        (d.events[0].type_(), d.events[0].reason.as_str()),
        (EventType::Warning, "AnalysisFailed")
    );
    assert!(d.events[0].message.contains("error-rate = 0.12 above max 0.05"));
}

"F2" f2_failure_at_limit_rolls_back_at_once {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &fail());
    sim.wait(MIN);
    let d = sim.call(fail());
    assert_eq!(d.status.phase, Phase::RolledBack);
    assert_eq!(d.status.percent, Some(0.0));
    assert_eq!((d.resolved.enabled, d.resolved.percent), (false, 0.0));
    assert_eq!(reasons(&d), ["RolledBack"]);
    assert_eq!(d.events[0].type_(), EventType::Warning);
    assert_condition(&d.status, "Degraded", "True", "AnalysisFailed");
    assert_condition(&d.status, "Ready", "False", "RolledBack");
    let message = &condition(&d.status, "Degraded").message;
    assert!(message.contains("metric error-rate = 0.12 above max 0.05"), "{message}");
    assert_eq!(d.status.rollback.as_ref().unwrap().reason, "AnalysisFailed");
}

"F3" f3_pass_resets_the_count {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &fail());
    sim.run_for(MIN, MIN, &pass());
    assert_eq!(sim.status.consecutive_failures, 0);
    sim.run_for(MIN, MIN, &fail());
    assert_eq!(sim.status.phase, Phase::Progressing);
}

"F4" f4_hold_keeps_the_count {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &fail());
    sim.run_for(3 * MIN, MIN, &hold());
    assert_eq!(sim.status.consecutive_failures, 1);
    sim.run_for(MIN, MIN, &fail());
    assert_eq!(sim.status.phase, Phase::RolledBack);
}

"F5" f5_failure_limit_1 {
    let mut spec = guarded();
    analysis(&mut spec).failure_limit = 1;
    let (mut sim, _) = Sim::start(spec);
    sim.wait(MIN);
    assert_eq!(sim.call(fail()).status.phase, Phase::RolledBack);
}

// ----- H: hold ---------------------------------------------------------------------------

"H1" h1_hold_keeps_step_and_names_the_cause {
    let mut sim = guarded_at_step_1();
    sim.wait(MIN);
    let d = sim.call(hold());
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(1)));
    assert_eq!(d.resolved.percent, 50.0);
    assert_condition(&d.status, "Progressing", "False", "AnalysisHeld");
    let message = &condition(&d.status, "Progressing").message;
    assert!(message.contains("error-rate") && message.contains("empty result"), "{message}");
    assert_eq!(reasons(&d), ["AnalysisHeld"]);
    assert_eq!(d.events[0].type_(), EventType::Warning);
    sim.wait(MIN);
    assert!(sim.call(hold()).events.is_empty(), "AnalysisHeld fires once");
}

"H2" h2_held_never_advances {
    let mut sim = guarded_at_step_1();
    sim.run_for(5 * HOUR, MIN, &hold());
    assert_eq!(sim.step(), Some(1));
    assert_eq!(sim.status.phase, Phase::Progressing);
}

"H3" h3_pass_after_hold_advances {
    let mut sim = guarded_at_step_1();
    sim.run_for(HOUR, MIN, &hold());
    sim.wait(MIN);
    let d = sim.reconcile(&pass());
    assert_eq!(d.status.phase, Phase::Complete);
}

// ----- B: sticky rollback ----------------------------------------------------------------

"B1" b1_rollback_is_sticky {
    let mut sim = rolled_back();
    for _ in 0..5 {
        sim.wait(DAY);
        let d = sim.reconcile(&pass());
        assert_eq!((d.status.phase, d.resolved.percent), (Phase::RolledBack, 0.0));
        assert!(!d.analysis_due);
        assert_eq!(d.requeue_after, None);
    }
}

"B2" b2_spec_edit_restarts_after_rollback {
    let mut sim = rolled_back();
    sim.edit(|s| analysis(s).metrics[0].max = Some(0.2));
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.status.consecutive_failures, 0);
    assert_eq!(d.status.rollback, None);
    assert_eq!(reasons(&d), ["RolloutRestarted"]);
    assert_condition(&d.status, "Degraded", "False", "AsExpected");
}

"B3" b3_retry_restarts_after_rollback {
    let mut sim = rolled_back();
    sim.request("retry/1");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.resolved.percent, 10.0);
    assert_eq!(reasons(&d), ["RetryStarted"]);
}

// ----- G: spec edits mid-ramp ------------------------------------------------------------

"G1" g1_step_change_restarts {
    for change in [
        (|s: &mut FeatureFlagSpec| s.rollout.as_mut().unwrap().steps[1].percent = 30.0)
            as fn(&mut FeatureFlagSpec),
        |s| s.rollout.as_mut().unwrap().steps[0].pause = Some("5m".into()),
    ] {
        let mut sim = at_step_2(true);
        sim.edit(change);
        let d = sim.call(Observation::None);
        assert_eq!(d.status.current_step, Some(0));
        assert_eq!(d.status.step_started_at, Some(Time(sim.now)));
        assert_eq!(reasons(&d), ["RolloutRestarted"]);
    }
}

"G2" g2_key_change_restarts {
    let mut sim = at_step_2(true);
    sim.edit(|s| s.key = Some("checkout-v2".into()));
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.resolved.key, "checkout-v2");
}

"G3" g3_reenabling_restarts {
    let mut sim = at_step_2(true);
    sim.edit(|s| s.enabled = false);
    sim.call(Observation::None);
    sim.wait(MIN);
    sim.edit(|s| s.enabled = true);
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(reasons(&d), ["RolloutStarted"]);
}

"G4" g4_threshold_change_continues {
    let mut sim = at_step_2(true);
    sim.run_for(2 * MIN, MIN, &pass());
    let before = sim.status.clone();
    sim.edit(|s| analysis(s).metrics[0].max = Some(0.02));
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(2));
    assert_eq!(d.status.step_started_at, before.step_started_at);
    assert_eq!(d.status.step_analyses, 2);
    assert!(d.events.is_empty());
}

"G5" g5_interval_or_limit_change_continues {
    let mut sim = at_step_2(true);
    sim.edit(|s| analysis(s).interval = "2m".into());
    assert_eq!(sim.call(Observation::None).status.current_step, Some(2));
    sim.edit(|s| analysis(s).failure_limit = 5);
    assert_eq!(sim.call(Observation::None).status.current_step, Some(2));
}

"G6" g6_metric_list_change_continues {
    let mut sim = at_step_2(true);
    sim.edit(|s| {
        analysis(s).metrics.push(MetricCheck { name: "latency".into(), ..error_rate() })
    });
    assert_eq!(sim.call(Observation::None).status.current_step, Some(2));
    sim.wait(MIN);
    sim.call(hold());
    sim.edit(|s| {
        analysis(s).metrics.clear();
    });
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(2));
    assert_condition(&d.status, "Progressing", "True", "RolloutProgressing");
    sim.wait(10 * MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(3), "time-only once no metric is left");
}

"G7" g7_description_or_users_change_continues {
    let mut sim = at_step_2(true);
    sim.edit(|s| s.description = Some("new words".into()));
    assert_eq!(sim.call(Observation::None).status.current_step, Some(2));
    sim.edit(|s| s.allowed_users = vec!["alice".into()]);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(2));
    assert_eq!(d.resolved.allowed_users, ["alice"]);
}

"G8" g8_complete_survives_threshold_change {
    let mut spec = guarded();
    spec.rollout.as_mut().unwrap().steps = vec![step(100.0, None)];
    let (mut sim, _) = Sim::start(spec);
    sim.edit(|s| analysis(s).metrics[0].max = Some(0.5));
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Complete, 100.0));
    assert!(d.events.is_empty());
}

"G9" g9_static_to_ramp_starts {
    let (mut sim, _) = Sim::start(static_at(30.0));
    sim.edit(|s| {
        s.percent = None;
        s.rollout = guarded().rollout;
    });
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.resolved.percent, 10.0);
}

"G10" g10_ramp_to_static {
    let mut sim = at_step_2(false);
    sim.edit(|s| {
        s.rollout = None;
        s.percent = Some(35.0);
    });
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Static, 35.0));
    assert_eq!(d.status.current_step, None);
}

"G11" g11_paused_survives_threshold_change {
    let mut sim = guarded_at_step_1();
    sim.request("pause/1");
    sim.call(Observation::None);
    sim.edit(|s| analysis(s).metrics[0].max = Some(0.5));
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Paused, Some(1)));
}

// ----- Q: manual requests ----------------------------------------------------------------

"Q1" q1_pause_holds {
    let (mut sim, _) = Sim::start(time_only());
    sim.wait(10 * MIN);
    sim.call(Observation::None);
    sim.request("pause/2025-01-01T00:10:00Z");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Paused, 50.0));
    assert_eq!(reasons(&d), ["Paused"]);
    let record = d.status.last_request.unwrap();
    assert_eq!(
        (record.verb.as_str(), record.id.as_str(), record.outcome),
        ("pause", "2025-01-01T00:10:00Z", RequestOutcome::Applied)
    );
    sim.wait(HOUR);
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Paused, Some(1)));
    assert_condition(&d.status, "Progressing", "False", "Paused");
    assert_eq!(d.requeue_after, None);
}

"Q2" q2_paused_still_rolls_back {
    let mut spec = guarded();
    analysis(&mut spec).failure_limit = 1;
    let (mut sim, _) = Sim::start(spec);
    sim.request("pause/1");
    sim.call(Observation::None);
    sim.wait(MIN);
    let d = sim.reconcile(&fail());
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::RolledBack, 0.0));
}

"Q3" q3_resume_continues {
    let (mut sim, _) = Sim::start(guarded());
    sim.request("pause/1");
    sim.call(Observation::None);
    sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!((sim.status.phase, sim.step()), (Phase::Paused, Some(0)));
    sim.request("resume/2");
    let d = sim.call(Observation::None);
    assert_eq!(d.status.phase, Phase::Progressing);
    assert_eq!(reasons(&d), ["Resumed", "StepAdvanced"]);
    assert_eq!(d.status.current_step, Some(1));
}

"Q4" q4_promote_skips_the_pause {
    for analyses in [0, 2] {
        let (mut sim, _) = Sim::start(guarded());
        sim.run_for(analyses * MIN, MIN, &pass());
        sim.request("promote/1");
        let d = sim.call(Observation::None);
        assert_eq!(d.status.current_step, Some(1));
        assert_eq!(d.status.step_started_at, Some(Time(sim.now)));
        assert_eq!(reasons(&d), ["Promoted"]);
        assert_eq!(d.status.last_request.unwrap().outcome, RequestOutcome::Applied);
    }
}

"Q5" q5_promote_refused_after_failure {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &fail());
    sim.request("promote/1");
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(reasons(&d), ["PromoteRefused"]);
    assert_eq!(d.events[0].type_(), EventType::Warning);
    assert!(d.events[0].message.contains("failed"), "{}", d.events[0].message);
    assert!(d.events[0].message.contains("error-rate = 0.12 above max 0.05"));
    assert_eq!(d.status.last_request.unwrap().outcome, RequestOutcome::Refused);
}

"Q6" q6_promote_refused_while_held {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &hold());
    sim.request("promote/1");
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(reasons(&d), ["PromoteRefused"]);
    assert!(d.events[0].message.contains("held"), "{}", d.events[0].message);
}

"Q7" q7_promote_while_paused_stays_paused {
    let (mut sim, _) = Sim::start(guarded());
    sim.request("pause/1");
    sim.call(Observation::None);
    sim.request("promote/2");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Paused, Some(1)));
    assert_eq!(d.resolved.percent, 50.0);
}

"Q8" q8_promote_full_completes {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(MIN, MIN, &fail());
    sim.request("promote-full/1");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Complete, 100.0));
    assert_eq!(d.status.completed_at, Some(Time(sim.now)));
    assert_eq!(reasons(&d), ["Promoted", "Completed"]);
}

"Q9" q9_abort_rolls_back {
    let mut paused = Sim::start(guarded()).0;
    paused.request("pause/0");
    paused.call(Observation::None);
    for mut sim in [Sim::start(guarded()).0, paused, complete_at_100()] {
        let phase = sim.status.phase;
        sim.request("abort/incident-42");
        let d = sim.call(Observation::None);
        assert_eq!((d.status.phase, d.resolved.percent), (Phase::RolledBack, 0.0), "{phase}");
        assert_condition(&d.status, "Degraded", "True", "ManualAbort");
        assert_eq!(reasons(&d), ["RolledBack"]);
        assert_eq!(d.events[0].type_(), EventType::Warning);
        assert!(d.events[0].message.contains("incident-42"));
    }
}

"Q10" q10_retry_restarts {
    let mut sim = rolled_back();
    sim.request("retry/2");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(d.status.last_request.unwrap().outcome, RequestOutcome::Applied);
}

"Q11" q11_kill_is_sticky {
    let mut sim = guarded_at_step_1();
    sim.request("kill/1");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.enabled, d.resolved.percent), (Phase::Killed, false, 0.0));
    assert_eq!(reasons(&d), ["Killed"]);
    assert_eq!(d.events[0].type_(), EventType::Warning);
    assert_condition(&d.status, "Ready", "False", "Killed");
    sim.edit(|s| s.rollout.as_mut().unwrap().steps[0].percent = 20.0);
    sim.wait(DAY);
    assert_eq!(sim.reconcile(&pass()).status.phase, Phase::Killed);
    sim.edit(|s| s.enabled = false);
    assert_eq!(sim.call(Observation::None).status.phase, Phase::Killed);
    sim.edit(|s| s.enabled = true);
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.resolved.percent), (Phase::Killed, 0.0));
    // A static flag can be killed too.
    let (mut sim, _) = Sim::start(static_at(100.0));
    sim.request("kill/1");
    assert_eq!(sim.call(Observation::None).resolved.percent, 0.0);
}

"Q12" q12_unkill_starts_afresh {
    let mut sim = guarded_at_step_1();
    sim.request("kill/1");
    sim.call(Observation::None);
    sim.request("unkill/2");
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.current_step), (Phase::Progressing, Some(0)));
    assert_eq!(reasons(&d), ["Unkilled", "RolloutStarted"]);
    let (mut sim, _) = Sim::start(static_at(30.0));
    sim.request("kill/1");
    sim.call(Observation::None);
    sim.request("unkill/2");
    assert_eq!(sim.call(Observation::None).resolved.percent, 30.0);
    let (mut sim, _) = Sim::start(static_at(30.0));
    sim.request("kill/1");
    sim.call(Observation::None);
    sim.edit(|s| s.enabled = false);
    sim.request("unkill/2");
    assert_eq!(sim.call(Observation::None).status.phase, Phase::Disabled);
}

"Q13" q13_repeated_id_does_nothing {
    let (mut sim, _) = Sim::start(time_only());
    sim.request("pause/1");
    sim.call(Observation::None);
    sim.request("resume/2");
    sim.call(Observation::None);
    let before = sim.status.clone();
    for value in ["resume/2", "pause/2", "kill/2"] {
        sim.request(value);
        let d = sim.call(Observation::None);
        assert!(d.events.is_empty(), "{value}");
        assert_eq!(d.status, before, "{value}");
    }
}

"Q14" q14_unknown_request_is_ignored {
    let (mut sim, _) = Sim::start(time_only());
    for value in ["explode/1", "promote", "Pause/3"] {
        sim.request(value);
        let d = sim.call(Observation::None);
        assert_eq!(reasons(&d), ["RequestIgnored"], "{value}");
        assert_eq!(d.events[0].type_(), EventType::Warning);
        assert_eq!(d.status.last_request.as_ref().unwrap().outcome, RequestOutcome::Ignored);
        assert_eq!(d.status.phase, Phase::Progressing);
        assert!(sim.call(Observation::None).events.is_empty(), "handled once: {value}");
    }
}

"Q15" q15_request_not_applicable_is_refused {
    let cases: [(FeatureFlagSpec, &str); 4] = [
        (static_at(30.0), "pause/1"),
        (time_only(), "retry/1"),
        (time_only(), "resume/1"),
        (time_only(), "unkill/1"),
    ];
    for (spec, value) in cases {
        let (mut sim, _) = Sim::start(spec);
        let before = sim.status.clone();
        sim.request(value);
        let d = sim.call(Observation::None);
        assert_eq!(reasons(&d), ["RequestRefused"], "{value}");
        assert_eq!(d.events[0].type_(), EventType::Warning);
        assert_eq!(d.status.last_request.as_ref().unwrap().outcome, RequestOutcome::Refused);
        assert_eq!(
            FeatureFlagStatus { last_request: None, ..d.status },
            before,
            "{value} changed more than lastRequest"
        );
    }
}

"Q16" q16_promote_waits_for_a_fresh_ramp {
    let mut sim = Sim::new(time_only());
    sim.request("promote/1");
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(0));
    assert_eq!(d.status.last_request, None);
    assert_eq!(d.requeue_after, Some(Duration::ZERO));
    assert_eq!(reasons(&d), ["RolloutStarted"]);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
    assert_eq!(reasons(&d), ["Promoted"]);
    // The same after a spec edit that restarts the ramp.
    let mut sim = at_step_2(false);
    sim.edit(|s| s.rollout.as_mut().unwrap().steps[0].percent = 5.0);
    sim.request("promote/2");
    assert_eq!(sim.call(Observation::None).status.current_step, Some(0));
    assert_eq!(sim.call(Observation::None).status.current_step, Some(1));
}

// ----- X: stale flags --------------------------------------------------------------------

"X1" x1_recently_complete {
    let mut sim = complete_at_100();
    let completed = sim.status.completed_at.clone().unwrap().0;
    sim.wait(13 * DAY);
    let d = sim.call(Observation::None);
    assert_condition(&d.status, "Stale", "False", "RecentlyCompleted");
    let stale_at = completed.as_second() + 14 * DAY;
    let expected = u64::try_from(stale_at - sim.now.as_second()).unwrap();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(expected)));
}

"X2" x2_stale_after_14_days {
    let mut sim = complete_at_100();
    sim.wait(14 * DAY);
    let d = sim.call(Observation::None);
    assert_condition(&d.status, "Stale", "True", "Stale");
    let message = &condition(&d.status, "Stale").message;
    assert!(message.contains("remove it from the code") && message.contains("delete"), "{message}");
    assert_eq!(reasons(&d), ["Stale"]);
    assert_eq!(d.events[0].type_(), EventType::Warning);
    sim.wait(DAY);
    let d = sim.call(Observation::None);
    assert!(d.events.is_empty());
    assert_eq!(d.requeue_after, None);
}

"X3" x3_custom_stale_after {
    let mut spec = time_only();
    spec.stale_after = Some("1h".into());
    let (mut sim, _) = Sim::start(spec);
    sim.run_for(20 * MIN, MIN, &Observation::None);
    sim.wait(HOUR);
    assert_condition(&sim.call(Observation::None).status, "Stale", "True", "Stale");
}

"X4" x4_below_100_or_static_never_stale {
    let mut spec = time_only();
    spec.rollout.as_mut().unwrap().steps = vec![step(10.0, Some("10m")), step(50.0, None)];
    let (mut sim, _) = Sim::start(spec);
    sim.run_for(10 * MIN, MIN, &Observation::None);
    assert_eq!(sim.status.phase, Phase::Complete);
    sim.wait(365 * DAY);
    assert_condition(&sim.call(Observation::None).status, "Stale", "False", "NotComplete");
    let (mut sim, _) = Sim::start(static_at(100.0));
    sim.wait(365 * DAY);
    assert_condition(&sim.call(Observation::None).status, "Stale", "False", "NotComplete");
}

// ----- Y: history and conditions --------------------------------------------------------

"Y1" y1_history_keeps_ten {
    let mut spec = guarded();
    spec.rollout.as_mut().unwrap().steps[0].pause = Some("1h".into());
    let (mut sim, _) = Sim::start(spec);
    sim.run_for(11 * MIN, MIN, &pass());
    let analyses = &sim.status.analyses;
    assert_eq!(analyses.len(), 10);
    assert_eq!(sim.status.step_analyses, 11);
    assert_eq!(analyses[0].time, Time(at(2 * MIN)));
    assert_eq!(analyses[9].time, Time(at(11 * MIN)));
    let run = &analyses[9];
    assert_eq!((run.step, run.verdict), (0, Verdict::Pass));
    assert_eq!(run.metrics[0].name, "error-rate");
    assert_eq!(run.metrics[0].value, Some(0.01));
    assert_eq!(run.metrics[0].verdict, MetricVerdict::Pass);
}

"Y2" y2_unflipped_condition_keeps_its_time {
    let (mut sim, _) = Sim::start(time_only());
    let started = condition(&sim.status, "Ready").last_transition_time.clone();
    sim.wait(10 * MIN);
    let d = sim.call(Observation::None);
    let ready = condition(&d.status, "Ready");
    assert!(ready.message.contains("step 1 of 0–2"), "{ready:?}");
    assert_eq!(ready.last_transition_time, started);
    assert_eq!(ready.observed_generation, Some(1));
}

"Y3" y3_flipped_condition_takes_now {
    let (mut sim, _) = Sim::start(guarded());
    sim.wait(MIN);
    let d = sim.call(hold());
    let progressing = condition(&d.status, "Progressing");
    assert_eq!(progressing.status, "False");
    assert_eq!(progressing.last_transition_time, Time(sim.now));
}

"Y4" y4_foreign_conditions_are_kept {
    let (mut sim, _) = Sim::start(time_only());
    let published = Condition {
        type_: "Published".into(),
        status: "True".into(),
        reason: "ConfigMapUpdated".into(),
        message: "flags.json written".into(),
        last_transition_time: Time(at(5)),
        observed_generation: Some(1),
    };
    sim.status.conditions.push(published.clone());
    sim.wait(10 * MIN);
    let d = sim.call(Observation::None);
    assert!(d.status.conditions.contains(&published));
    let types: Vec<_> = d.status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Ready", "Progressing", "Degraded", "Stale", "Published"]);
}

// ----- E: experiments --------------------------------------------------------------------

"E1" e1_an_experiment_starts_at_its_coverage {
    let (mut sim, d) = Sim::start(experiment(false));
    assert_eq!((d.status.phase, d.status.percent), (Phase::Progressing, Some(30.0)));
    let started = experiment_of(&d.status);
    assert_eq!(started.started_at, Time(at(0)));
    assert_eq!(started.decision, ExperimentDecision::Collecting);
    assert_eq!(reasons(&d), ["ExperimentStarted"]);
    assert!(d.events[0].message.contains("30% of users, split control 50 / treatment 50"));
    let entry = d.resolved.to_entry("");
    assert!(entry.enabled);
    assert_eq!(entry.percent, 30.0);
    assert_eq!(entry.variants.len(), 2);
    assert_eq!(entry.variants[0].name, "control");
    let assignment = entry.experiment.unwrap();
    assert_eq!((assignment.coverage, assignment.salt.as_str()), (30.0, "checkout"));
    assert_eq!(entry.shipped_variant, None);
    assert!(!d.analysis_due);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(60)));
    sim.wait(MIN);
    assert!(sim.peek(Observation::None).analysis_due);
}

"E2" e2_collecting_below_the_minimum_samples {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.run_for(MIN, MIN, &few());
    let status = experiment_of(&sim.status);
    assert_eq!(status.decision, ExperimentDecision::Collecting);
    assert_eq!(status.variants[1].exposures, 420);
    assert!(status.message.contains("400 of 1000"), "{}", status.message);
    assert_condition(&sim.status, "Progressing", "True", "ExperimentRunning");
    assert_condition(&sim.status, "ExperimentConcluded", "False", "Collecting");
    assert_condition(&sim.status, "SampleRatioMismatch", "False", "SampleRatioMatches");
    assert_eq!(sim.status.phase, Phase::Progressing);
}

"E3" e3_a_winner_is_declared_with_its_lift {
    let (mut sim, _) = Sim::start(experiment(false));
    let events = sim.run_for(MIN, MIN, &lift());
    assert_eq!(events, ["WinnerDeclared"]);
    let status = experiment_of(&sim.status);
    assert_eq!(status.decision, ExperimentDecision::Winner);
    let winner = status.winner.as_ref().unwrap();
    assert_eq!((winner.variant.as_str(), winner.control), ("treatment", false));
    assert!((winner.lift - 0.015).abs() < 1e-12);
    assert!(winner.interval.lower > 0.0 && winner.interval.upper > winner.lift);
    assert!(winner.p_value <= 0.05);
    assert!(status.message.contains("treatment beats control"), "{}", status.message);
    assert!(status.message.contains("lift +1.50 points"), "{}", status.message);
    assert_condition(&sim.status, "ExperimentConcluded", "True", "Winner");
    assert_condition(&sim.status, "Progressing", "False", "WinnerDeclared");
    assert_eq!((sim.status.phase, sim.percent()), (Phase::Progressing, 30.0));
    // Declared once; later looks keep the latched winner quietly.
    assert!(sim.run_for(5 * MIN, MIN, &lift()).is_empty());
    assert_eq!(sim.status.phase, Phase::Progressing);
}

"E4" e4_auto_ship_in_the_same_call {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.wait(MIN);
    let d = sim.reconcile(&lift());
    assert_eq!(reasons(&d), ["WinnerDeclared", "WinnerShipped"]);
    assert_eq!((d.status.phase, d.status.percent), (Phase::Complete, Some(100.0)));
    assert_eq!(d.status.completed_at, Some(Time(sim.now)));
    let status = experiment_of(&d.status);
    assert_eq!(status.shipped_variant.as_deref(), Some("treatment"));
    assert_eq!(status.shipped_at, Some(Time(sim.now)));
    let entry = d.resolved.to_entry("");
    assert_eq!(entry.shipped_variant.as_deref(), Some("treatment"));
    assert_eq!((entry.enabled, entry.percent), (true, 100.0));
    assert_condition(&d.status, "Progressing", "False", "WinnerShipped");
    assert_condition(&d.status, "Stale", "False", "RecentlyCompleted");
    assert!(condition(&d.status, "Ready").message.contains("winner treatment shipped"));
    assert!(!d.analysis_due);
    sim.wait(MIN);
    assert!(!sim.peek(Observation::None).analysis_due);
    // The stale clock runs from the ship.
    assert_eq!(sim.peek(Observation::None).requeue_after, Some(Duration::from_secs(14 * 86_400 - 60)));
}

"E5" e5_a_failing_guardrail_blocks_the_ship {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.wait(MIN);
    let d = sim.reconcile(&look(value(0.12), (20_000, 2_000), (20_000, 2_300)));
    assert_eq!(reasons(&d), ["AnalysisFailed", "WinnerDeclared"]);
    assert_eq!((d.status.phase, d.status.consecutive_failures), (Phase::Progressing, 1));
    assert_eq!(experiment_of(&d.status).shipped_variant, None);
    assert_eq!(d.resolved.shipped_variant, None);
    sim.wait(MIN);
    let d = sim.reconcile(&lift());
    assert_eq!(reasons(&d), ["WinnerShipped"]);
    assert_eq!(d.status.phase, Phase::Complete);
}

"E6" e6_held_guardrails_never_ship {
    let (mut sim, _) = Sim::start(experiment(true));
    let held = look(
        MetricOutcome::NoData {
            reason: "empty result".into(),
        },
        (20_000, 2_000),
        (20_000, 2_300),
    );
    let events = sim.run_for(30 * MIN, MIN, &held);
    assert_eq!(events, ["AnalysisHeld", "WinnerDeclared"]);
    assert_eq!(sim.status.phase, Phase::Progressing);
    assert_eq!(experiment_of(&sim.status).shipped_variant, None);
    assert_condition(&sim.status, "Progressing", "False", "AnalysisHeld");
}

"E7" e7_promote_ships_a_declared_winner {
    let (mut sim, _) = Sim::start(experiment(false));
    sim.run_for(MIN, MIN, &lift());
    sim.request("promote/ship-it");
    let d = sim.call(Observation::None);
    assert_eq!(reasons(&d), ["WinnerShipped"]);
    assert!(d.events[0].message.contains("by request ship-it"));
    assert_eq!(d.status.phase, Phase::Complete);
    assert_eq!(d.resolved.shipped_variant.as_deref(), Some("treatment"));
    assert_eq!(d.status.last_request.unwrap().outcome, RequestOutcome::Applied);
}

"E8" e8_promote_needs_a_winner_and_passing_guardrails {
    for verb in ["promote", "promote-full"] {
        let (mut sim, _) = Sim::start(experiment(false));
        sim.run_for(MIN, MIN, &flat());
        sim.request(&format!("{verb}/1"));
        let refused = if verb == "promote" { "PromoteRefused" } else { "RequestRefused" };
        let d = sim.call(Observation::None);
        assert_eq!(reasons(&d), [refused], "{verb}");
        assert!(d.events[0].message.contains("no winner to ship"), "{}", d.events[0].message);
        assert_eq!(d.status.phase, Phase::Progressing);
        assert_eq!(d.status.last_request.unwrap().outcome, RequestOutcome::Refused);

        let (mut sim, _) = Sim::start(experiment(false));
        sim.run_for(MIN, MIN, &look(value(0.12), (20_000, 2_000), (20_000, 2_300)));
        assert_eq!(experiment_of(&sim.status).decision, ExperimentDecision::Winner);
        sim.request(&format!("{verb}/2"));
        let d = sim.call(Observation::None);
        assert_eq!(reasons(&d), [refused], "{verb}");
        assert!(d.events[0].message.contains("never ships while its guardrails fail"));
        assert_eq!(d.status.phase, Phase::Progressing);
    }
}

"E9" e9_inconclusive_after_max_duration {
    let mut spec = experiment(true);
    exp(&mut spec).max_duration = Some("1h".into());
    let (mut sim, _) = Sim::start(spec);
    let events = sim.run_for(59 * MIN, MIN, &flat());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(experiment_of(&sim.status).decision, ExperimentDecision::Running);
    let events = sim.run_for(MIN, MIN, &flat());
    assert_eq!(events, ["Inconclusive"]);
    let status = experiment_of(&sim.status);
    assert_eq!(status.decision, ExperimentDecision::Inconclusive);
    assert!(status.message.contains("maxDuration 1h"), "{}", status.message);
    assert_condition(&sim.status, "ExperimentConcluded", "True", "Inconclusive");
    assert_condition(&sim.status, "Progressing", "False", "Inconclusive");
    // A lift that shows up later changes nothing: the conclusion is latched.
    assert!(sim.run_for(10 * MIN, MIN, &lift()).is_empty());
    assert_eq!((sim.status.phase, sim.percent()), (Phase::Progressing, 30.0));
    assert_eq!(sim.peek(Observation::None).resolved.shipped_variant, None);
}

"E10" e10_sample_ratio_mismatch_halts_for_good {
    let (mut sim, _) = Sim::start(experiment(true));
    let skewed = look(value(0.01), (20_000, 2_000), (23_000, 2_990));
    let events = sim.run_for(MIN, MIN, &skewed);
    assert_eq!(events, ["SampleRatioMismatch"]);
    let status = experiment_of(&sim.status);
    assert_eq!(status.decision, ExperimentDecision::SampleRatioMismatch);
    assert!(status.message.contains("never ships"), "{}", status.message);
    assert_condition(&sim.status, "SampleRatioMismatch", "True", "SampleRatioMismatch");
    assert_condition(&sim.status, "Degraded", "True", "SampleRatioMismatch");
    assert_condition(&sim.status, "ExperimentConcluded", "True", "SampleRatioMismatch");
    let events = sim.run_for(10 * MIN, MIN, &lift());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(experiment_of(&sim.status).decision, ExperimentDecision::SampleRatioMismatch);
    sim.request("promote/1");
    let d = sim.call(Observation::None);
    assert_eq!(reasons(&d), ["PromoteRefused"]);
    assert_eq!(d.status.phase, Phase::Progressing);
    assert_eq!(d.resolved.shipped_variant, None);
}

"E11" e11_a_failed_look_changes_nothing {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.run_for(MIN, MIN, &flat());
    let before = experiment_of(&sim.status).clone();
    let broken = Observation::Experiment {
        metrics: vec![MetricObservation {
            name: "error-rate".into(),
            outcome: value(0.01),
        }],
        experiment: ExperimentOutcome::Error {
            message: "experiment.metric.exposures of variant control: connection refused".into(),
        },
    };
    let events = sim.run_for(3 * MIN, MIN, &broken);
    assert_eq!(events, ["ExperimentLookFailed"]);
    let after = experiment_of(&sim.status);
    assert_eq!(after.state, before.state);
    assert_eq!(after.variants, before.variants);
    assert!(after.error.as_deref().unwrap().contains("connection refused"));
    let inconsistent = look(value(0.01), (20_000, 2_000), (20_000, 20_001));
    assert!(sim.run_for(MIN, MIN, &inconsistent).is_empty());
    assert!(experiment_of(&sim.status).error.as_deref().unwrap().contains("conversions"));
    sim.run_for(MIN, MIN, &flat());
    assert_eq!(experiment_of(&sim.status).error, None);
    assert_eq!(experiment_of(&sim.status).state.looks, before.state.looks + 1);
}

"E12" e12_failing_guardrails_roll_back {
    let (mut sim, _) = Sim::start(experiment(true));
    let failing = look(value(0.12), (20_000, 2_000), (20_000, 2_010));
    let events = sim.run_for(2 * MIN, MIN, &failing);
    assert_eq!(events, ["AnalysisFailed", "RolledBack"]);
    assert_eq!((sim.status.phase, sim.percent()), (Phase::RolledBack, 0.0));
    let d = sim.peek(Observation::None);
    assert!(!d.resolved.enabled);
    assert!(!d.analysis_due);
}

"E13" e13_raising_coverage_continues {
    let (mut sim, _) = Sim::start(experiment(false));
    sim.run_for(3 * MIN, MIN, &flat());
    let before = experiment_of(&sim.status).clone();
    sim.edit(|s| exp(s).coverage = 60.0);
    let d = sim.call(Observation::None);
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!((d.status.phase, d.status.percent), (Phase::Progressing, Some(60.0)));
    assert_eq!(d.resolved.to_entry("").experiment.unwrap().coverage, 60.0);
    let after = experiment_of(&d.status);
    assert_eq!((&after.started_at, &after.state), (&before.started_at, &before.state));
}

"E14" e14_a_new_salt_restarts_the_experiment {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.run_for(MIN, MIN, &lift());
    assert_eq!(sim.status.phase, Phase::Complete);
    sim.wait(MIN);
    sim.edit(|s| exp(s).salt = Some("round-2".into()));
    let d = sim.call(Observation::None);
    assert_eq!(reasons(&d), ["ExperimentRestarted"]);
    assert_eq!((d.status.phase, d.status.percent), (Phase::Progressing, Some(30.0)));
    let status = experiment_of(&d.status);
    assert_eq!(status.started_at, Time(sim.now));
    assert_eq!(status.decision, ExperimentDecision::Collecting);
    assert_eq!((status.shipped_variant.as_ref(), status.state.looks), (None, 0));
    let entry = d.resolved.to_entry("");
    assert_eq!(entry.experiment.unwrap().salt, "round-2");
    assert_eq!(entry.shipped_variant, None);
    // A variant or a query changes it the same way.
    sim.status = d.status;
    sim.wait(MIN);
    sim.edit(|s| exp(s).metric.conversions = "sum(orders_total{variant={{ variant }}})".into());
    assert_eq!(reasons(&sim.call(Observation::None)), ["ExperimentRestarted"]);
    sim.wait(MIN);
    sim.edit(|s| exp(s).variants[1].name = "treatment-b".into());
    assert_eq!(reasons(&sim.call(Observation::None)), ["ExperimentRestarted"]);
}

"E15" e15_removing_the_experiment_drops_its_status {
    let (mut sim, _) = Sim::start(experiment(false));
    sim.run_for(2 * MIN, MIN, &flat());
    assert!(sim.status.conditions.iter().any(|c| c.type_ == "ExperimentConcluded"));
    sim.edit(|s| {
        s.experiment = None;
        s.percent = Some(30.0);
        s.rollout = None;
    });
    let d = sim.call(Observation::None);
    assert_eq!((d.status.phase, d.status.percent), (Phase::Static, Some(30.0)));
    assert_eq!(d.status.experiment, None);
    let types: Vec<_> = d.status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Ready", "Progressing", "Degraded", "Stale"]);
    assert_eq!(d.resolved.to_entry("").experiment, None);
}

"E16" e16_experiment_with_percent_variants_or_steps_is_invalid {
    let edits: [fn(&mut FeatureFlagSpec); 3] = [
        |s| s.percent = Some(10.0),
        |s| s.variants = exp(s).variants.clone(),
        |s| s.rollout.as_mut().unwrap().steps = vec![step(100.0, None)],
    ];
    for edit in edits {
        let mut spec = experiment(true);
        edit(&mut spec);
        let (_, d) = Sim::start(spec);
        assert_eq!((d.status.phase, d.status.percent), (Phase::Invalid, Some(0.0)));
        assert!(!d.resolved.enabled);
        assert_condition(&d.status, "Ready", "False", "InvalidSpec");
        assert!(condition(&d.status, "Ready").message.contains("mutually exclusive"));
    }
}

"E17" e17_a_paused_experiment_ships_on_resume {
    let (mut sim, _) = Sim::start(experiment(true));
    sim.request("pause/1");
    sim.call(Observation::None);
    let events = sim.run_for(MIN, MIN, &lift());
    assert_eq!(events, ["WinnerDeclared"]);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(experiment_of(&sim.status).shipped_variant, None);
    sim.wait(10);
    sim.request("resume/2");
    let d = sim.call(Observation::None);
    assert_eq!(reasons(&d), ["Resumed", "WinnerShipped"]);
    assert_eq!(d.status.phase, Phase::Complete);
}

"E18" e18_a_better_control_ships_as_the_winner {
    let (mut sim, _) = Sim::start(experiment(true));
    let events = sim.run_for(MIN, MIN, &look(value(0.01), (20_000, 2_300), (20_000, 2_000)));
    assert_eq!(events, ["WinnerDeclared", "WinnerShipped"]);
    let status = experiment_of(&sim.status);
    assert!(status.winner.as_ref().unwrap().control);
    assert_eq!(status.shipped_variant.as_deref(), Some("control"));
    assert!(status.message.contains("control beats every treatment"), "{}", status.message);
    let d = sim.peek(Observation::None);
    assert_eq!(d.resolved.shipped_variant.as_deref(), Some("control"));
}

"E19" e19_experiment_status_survives_a_json_round_trip {
    // serde_json's default float parser may read the 17th significant digit back one unit
    // off (as the operator's client does); everything else must be exactly the same.
    fn rounded(value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap();
                serde_json::json!(format!("{x:.12e}"))
            }
            Value::Array(items) => Value::Array(items.into_iter().map(rounded).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, rounded(v))).collect()),
            other => other,
        }
    }
    let same = |a: &FeatureFlagStatus, b: &FeatureFlagStatus| {
        rounded(serde_json::to_value(a).unwrap()) == rounded(serde_json::to_value(b).unwrap())
    };
    let (mut sim, _) = Sim::start(experiment(false));
    sim.run_for(5 * MIN, MIN, &flat());
    assert!(experiment_of(&sim.status).state.looks > 0);
    let json = serde_json::to_string(&sim.status).unwrap();
    let read_back: FeatureFlagStatus = serde_json::from_str(&json).unwrap();
    assert!(same(&read_back, &sim.status));
    sim.wait(MIN);
    for observation in [flat(), lift()] {
        let direct = sim.peek(observation.clone());
        let via_json = decide(&sim.flag, &read_back, observation, sim.now);
        assert_eq!(direct.events, via_json.events);
        assert_eq!(direct.resolved, via_json.resolved);
        assert_eq!(direct.requeue_after, via_json.requeue_after);
        assert!(same(&direct.status, &via_json.status));
    }
}

// ----- P: restart safety and protocol ----------------------------------------------------

"P1" p1_json_round_trip_changes_nothing {
    let mut sim = guarded_at_step_1();
    sim.run_for(MIN, MIN, &fail());
    sim.run_for(MIN, MIN, &hold());
    sim.request("pause/9");
    for observation in [Observation::None, pass(), fail()] {
        sim.wait(MIN);
        let json = serde_json::to_string(&sim.status).unwrap();
        let read_back: FeatureFlagStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(read_back, sim.status);
        let direct = sim.peek(observation.clone());
        let via_json = decide(&sim.flag, &read_back, observation.clone(), sim.now);
        assert_eq!(direct, via_json);
        sim.call(observation);
    }
}

"P2" p2_protocol_two_calls {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(9 * MIN, MIN, &pass());
    sim.wait(MIN);
    let first = sim.peek(Observation::None);
    assert!(first.analysis_due);
    assert_eq!(first.status.current_step, Some(0));
    let second = sim.peek(pass());
    assert!(!second.analysis_due);
    assert_eq!(second.status.step_analyses, 0);
    assert_eq!(second.status.current_step, Some(1));
    assert_eq!(second.status.analyses.len(), 10);
    assert_eq!(second.status.analyses.last().unwrap().time, Time(sim.now));
}

"P3" p3_repeating_an_applied_call_is_idempotent {
    let (mut sim, _) = Sim::start(guarded());
    sim.request("pause/1");
    sim.wait(MIN);
    let applied = sim.call(fail());
    assert!(!applied.events.is_empty());
    let again = sim.peek(fail());
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(again.status, applied.status);
}

"P4" p4_times_are_whole_seconds {
    let (mut sim, _) = Sim::start(guarded());
    sim.now = Timestamp::new(sim.now.as_second() + 60, 999_000_000).unwrap();
    let d = sim.call(fail());
    let times = [
        d.status.step_started_at.clone(),
        d.status.last_analysis_at.clone(),
        Some(d.status.analyses[0].time.clone()),
        Some(d.status.conditions[1].last_transition_time.clone()),
    ];
    for time in times.into_iter().flatten() {
        assert_eq!(time.0.subsec_nanosecond(), 0, "{time:?}");
    }
    let json = serde_json::to_string(&d.status).unwrap();
    assert_eq!(serde_json::from_str::<FeatureFlagStatus>(&json).unwrap(), d.status);
}

"P5" p5_early_or_skewed_calls {
    let (mut sim, _) = Sim::start(guarded());
    sim.run_for(10 * MIN, MIN, &pass());
    assert_eq!(sim.step(), Some(1));
    sim.now = at(-HOUR);
    let d = sim.call(pass());
    assert_eq!(d.status.current_step, Some(1));
    assert!(!d.analysis_due);
    assert!(d.events.is_empty());
    assert!(d.requeue_after.is_some());
}

// ----- C: guardrails (treatment against control) -----------------------------------------

"C1" c1_a_regression_in_the_treatment_rolls_back_at_once {
    let (mut sim, _) = Sim::start(cohort_guarded());
    let mut traffic = Traffic::new(10_000.0, 0.005, 0.005);
    drive(&mut sim, &mut traffic, 10);
    assert_eq!(sim.step(), Some(1));
    // At 5% the treatment's users fail three times as often; the service-wide ratio moves
    // from 0.50% to 0.55%, which the absolute metric never sees.
    traffic.treatment_rate = 0.015;
    let reasons = drive(&mut sim, &mut traffic, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(sim.percent(), 0.0);
    assert!(reasons.contains(&"RolledBack".to_string()), "{reasons:?}");
    assert!(!reasons.contains(&"AnalysisFailed".to_string()), "no failureLimit: {reasons:?}");
    let rollback = sim.status.rollback.as_ref().unwrap();
    assert_eq!(rollback.reason, "GuardrailRegression");
    for part in ["step 1 of 0–3 (5%)", "guardrail errors", "regression", "treatment", "control", "maxRelativeIncrease 0.1", "entirely above 0"] {
        assert!(rollback.message.contains(part), "{part}: {}", rollback.message);
    }
    let degraded = condition(&sim.status, "Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "GuardrailRegression"));
    let run = sim.status.analyses.last().unwrap();
    assert_eq!(run.verdict, Verdict::Fail);
    assert_eq!(run.guardrails[0].verdict, GuardrailVerdict::Regression);
}

"C2" c2_equal_cohorts_pass_and_the_ramp_advances {
    let (mut sim, _) = Sim::start(cohort_guarded());
    let mut traffic = Traffic::new(10_000.0, 0.005, 0.005);
    let reasons = drive(&mut sim, &mut traffic, 31);
    assert_eq!(sim.status.phase, Phase::Complete, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| *r == "StepAdvanced").count(), 3);
}

"C3" c3_a_step_short_of_samples_is_extended {
    let (mut sim, _) = Sim::start(cohort_guarded());
    // 10 treatment requests a minute at 1%: 100 take ten minutes of this step, and the
    // first look's stratum is still open when the pause ends.
    let mut traffic = Traffic::new(600.0, 0.005, 0.005);
    drive(&mut sim, &mut traffic, 10);
    assert_eq!(sim.step(), Some(0), "extended, not passed");
    let progressing = condition(&sim.status, "Progressing");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "WaitingForSamples"));
    assert!(progressing.message.contains("guardrail errors has"), "{}", progressing.message);
    assert!(progressing.message.contains("100 each needed"), "{}", progressing.message);
    let reasons = drive(&mut sim, &mut traffic, 8);
    assert_eq!(sim.step(), Some(1), "{reasons:?}");
    assert_eq!(condition(&sim.status, "Progressing").reason, "RolloutProgressing");
}

"C4" c4_past_max_step_duration_the_ramp_is_held {
    let mut spec = cohort_guarded();
    analysis(&mut spec).max_step_duration = Some("15m".into());
    let (mut sim, _) = Sim::start(spec);
    // No treatment traffic at all.
    let mut traffic = Traffic::new(10_000.0, 0.005, 0.005);
    traffic.per_minute = 10_000.0;
    let mut reasons = Vec::new();
    for _ in 0..20 {
        sim.wait(MIN);
        traffic.counts.control.total += 10_000;
        let observation = traffic.observation();
        reasons.extend(sim.reconcile(&observation).events.iter().map(|e| e.reason.to_string()));
    }
    assert_eq!(sim.step(), Some(0));
    let progressing = condition(&sim.status, "Progressing");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "GuardrailStarved"));
    assert!(progressing.message.contains("maxStepDuration 15m"), "{}", progressing.message);
    assert_eq!(reasons.iter().filter(|r| *r == "GuardrailStarved").count(), 1, "{reasons:?}");
    assert_eq!(EventReason::GuardrailStarved.event_type(), EventType::Warning);
    sim.request("promote/p1");
    sim.wait(1);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.current_step, Some(1));
}

"C5" c5_a_failed_guardrail_query_holds_and_changes_no_statistics {
    let (mut sim, _) = Sim::start(cohort_guarded());
    let mut traffic = Traffic::new(10_000.0, 0.005, 0.005);
    drive(&mut sim, &mut traffic, 3);
    let before = sim.status.guardrails[0].state.clone();
    sim.wait(MIN);
    let broken = Observation::Guarded {
        metrics: vec![MetricObservation { name: "error-rate".into(), outcome: value(0.01) }],
        guardrails: vec![GuardrailObservation {
            name: "errors".into(),
            outcome: GuardrailOutcome::Error { message: "prometheus at http://127.0.0.1:9 refused the connection".into() },
        }],
    };
    let d = sim.reconcile(&broken);
    assert_eq!(d.status.analyses.last().unwrap().verdict, Verdict::Hold);
    assert_eq!(d.status.guardrails[0].verdict, GuardrailVerdict::Error);
    assert!(d.status.guardrails[0].message.contains("refused the connection"));
    assert_eq!(d.status.guardrails[0].state, before);
    assert!(d.events.iter().any(|e| e.reason.to_string() == "AnalysisHeld"));
    // A guardrail the provider does not mention is an error too.
    sim.wait(MIN);
    let d = sim.reconcile(&Observation::Analysis(vec![MetricObservation { name: "error-rate".into(), outcome: value(0.01) }]));
    assert_eq!(d.status.analyses.last().unwrap().verdict, Verdict::Hold);
}

"C6" c6_statistics_survive_a_restart_and_steps_reset_only_the_step_samples {
    let (mut sim, _) = Sim::start(cohort_guarded());
    let mut traffic = Traffic::new(10_000.0, 0.005, 0.005);
    drive(&mut sim, &mut traffic, 10);
    assert_eq!(sim.step(), Some(1));
    let status = &sim.status.guardrails[0];
    assert_eq!(status.step_samples, GuardrailCounts::default());
    assert!(status.state.treatment.total >= 900, "{:?}", status.state);
    let json = serde_json::to_string(&sim.status).unwrap();
    let restored: FeatureFlagStatus = serde_json::from_str(&json).unwrap();
    traffic.minute(5.0);
    sim.wait(MIN);
    let observation = traffic.observation();
    let fresh = decide(&sim.flag, &restored, observation.clone(), sim.now);
    let kept = decide(&sim.flag, &sim.status, observation, sim.now);
    assert_eq!(fresh, kept);
}

"C7" c7_retry_after_a_regression_starts_fresh_statistics {
    let (mut sim, _) = Sim::start(cohort_guarded());
    let mut traffic = Traffic::new(100_000.0, 0.005, 0.05);
    drive(&mut sim, &mut traffic, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    sim.request("retry/r1");
    sim.wait(MIN);
    let d = sim.call(Observation::None);
    assert_eq!(d.status.phase, Phase::Progressing);
    assert!(d.status.guardrails.is_empty());
    assert_eq!(d.status.ramp_started_at, Some(Time(sim.now)));
}

"C8" c8_guardrails_and_an_experiment_are_invalid {
    let mut spec = experiment(false);
    analysis(&mut spec).guardrails = cohort_guarded().rollout.unwrap().analysis.unwrap().guardrails;
    let (sim, d) = Sim::start(spec);
    assert_eq!(d.status.phase, Phase::Invalid);
    assert!(condition(&d.status, "InvalidSpec").message.contains("rollout.analysis.guardrails"));
    let violations = rollgate_core::validate::validate(&sim.flag);
    assert!(violations.iter().any(|v| v.path == "spec.rollout.analysis.guardrails"), "{violations:?}");
}

"C9" c9_too_few_events_are_not_judged {
    let (mut sim, _) = Sim::start(cohort_guarded());
    // 50 treatment events at ten times the control's rate: far from 100, so no verdict.
    let mut traffic = Traffic::new(500.0, 0.01, 0.1);
    drive(&mut sim, &mut traffic, 9);
    assert_eq!(sim.status.phase, Phase::Progressing);
    assert_eq!(sim.status.guardrails[0].verdict, GuardrailVerdict::Collecting);
    assert_eq!(sim.status.guardrails[0].interval, None);
}

}
