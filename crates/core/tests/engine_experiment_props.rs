//! Property tests of experiments in the rollout engine (`docs/rollout.md`, table E): random
//! sequences of looks (with a clear lift, no difference, a sample-ratio mismatch, too few
//! users, a failed query), guardrail verdicts, requests, coverage edits and time jumps. After
//! every call:
//!
//! - the flag ships only a declared winner, never without one, never while the guardrails of
//!   the latest analysis failed or held, and never after a sample-ratio mismatch;
//! - what is published matches the phase: the coverage and no winner while the experiment
//!   runs, 100% and the winner once shipped, off when rolled back or killed;
//! - a declared winner never changes, and a mismatch is never cleared, until the experiment
//!   restarts.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use rollgate_core::crd::{
    Analysis, ErrorPolicy, Experiment, ExperimentDecision, ExperimentMetric, FeatureFlag,
    FeatureFlagSpec, FeatureFlagStatus, MetricCheck, NoDataPolicy, Phase, REQUEST_ANNOTATION,
    Variant, Verdict,
};
use rollgate_core::engine::{Decision, EventReason, decide};
use rollgate_core::experiment::{Method, VariantCounts};
use rollgate_core::observation::{
    ExperimentOutcome, MetricObservation, MetricOutcome, Observation,
};

const T0: i64 = 1_735_689_600;

fn spec(auto_ship: bool, failure_limit: u32, method: Method) -> FeatureFlagSpec {
    let json = serde_json::json!({
        "enabled": true,
        "rollout": {"analysis": {"interval": "1m", "failureLimit": failure_limit}},
    });
    let mut spec: FeatureFlagSpec = serde_json::from_value(json).expect("a spec");
    let analysis: &mut Analysis = spec.rollout.as_mut().unwrap().analysis.as_mut().unwrap();
    analysis.metrics = vec![MetricCheck {
        name: "error-rate".into(),
        query: "up".into(),
        min: None,
        max: Some(0.05),
        on_no_data: NoDataPolicy::Hold,
        on_error: ErrorPolicy::Hold,
    }];
    spec.experiment = Some(Experiment {
        variants: ["control", "treatment"]
            .map(|name| Variant {
                name: name.into(),
                weight: 50,
            })
            .to_vec(),
        coverage: 30.0,
        salt: None,
        metric: ExperimentMetric {
            exposures: "e{v={{ variant }}}".into(),
            conversions: "c{v={{ variant }}}".into(),
        },
        alpha: 0.05,
        min_samples_per_variant: 1000,
        method,
        planned_samples_per_variant: (method == Method::Fixed).then_some(10_000),
        auto_ship,
        max_duration: Some("2h".into()),
    });
    spec
}

#[derive(Clone, Debug)]
enum Counts {
    Lift,
    ControlBetter,
    Flat,
    Skewed,
    Few,
    Failed,
}

#[derive(Clone, Debug)]
enum Action {
    Wait(i64),
    Reconcile(MetricOutcome, Counts),
    Request(&'static str),
    Coverage(f64),
    NewSalt,
}

fn action() -> impl Strategy<Value = Action> {
    let guardrail = prop_oneof![
        4 => Just(MetricOutcome::Value { value: 0.01 }),
        1 => Just(MetricOutcome::Value { value: 0.2 }),
        1 => Just(MetricOutcome::NoData { reason: "empty".into() }),
    ];
    let counts = prop_oneof![
        Just(Counts::Lift),
        Just(Counts::ControlBetter),
        Just(Counts::Flat),
        Just(Counts::Skewed),
        Just(Counts::Few),
        Just(Counts::Failed),
    ];
    prop_oneof![
        6 => prop_oneof![Just(10i64), Just(60), Just(61), Just(600), Just(7200)].prop_map(Action::Wait),
        6 => (guardrail, counts).prop_map(|(g, c)| Action::Reconcile(g, c)),
        2 => prop::sample::select(vec!["promote", "promote-full", "pause", "resume", "abort", "retry", "kill", "unkill"])
            .prop_map(Action::Request),
        1 => prop::sample::select(vec![10.0, 30.0, 60.0, 100.0]).prop_map(Action::Coverage),
        1 => Just(Action::NewSalt),
    ]
}

fn observation(guardrail: MetricOutcome, counts: &Counts) -> Observation {
    let pair = |control: (u64, u64), treatment: (u64, u64)| ExperimentOutcome::Counts {
        variants: vec![
            VariantCounts::new("control", 50, control.0, control.1),
            VariantCounts::new("treatment", 50, treatment.0, treatment.1),
        ],
    };
    let experiment = match counts {
        Counts::Lift => pair((20_000, 2_000), (20_000, 2_400)),
        Counts::ControlBetter => pair((20_000, 2_400), (20_000, 2_000)),
        Counts::Flat => pair((20_000, 2_000), (20_000, 2_010)),
        Counts::Skewed => pair((20_000, 2_000), (24_000, 2_400)),
        Counts::Few => pair((300, 30), (310, 40)),
        Counts::Failed => ExperimentOutcome::Error {
            message: "timeout".into(),
        },
    };
    Observation::Experiment {
        metrics: vec![MetricObservation {
            name: "error-rate".into(),
            outcome: guardrail,
        }],
        experiment,
    }
}

struct World {
    flag: FeatureFlag,
    status: FeatureFlagStatus,
    now: Timestamp,
    next_id: u32,
    salts: u32,
}

impl World {
    fn act(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Wait(seconds) => {
                self.now = Timestamp::from_second(self.now.as_second() + seconds).unwrap();
            }
            Action::Reconcile(guardrail, counts) => {
                let first = self.call(Observation::None)?;
                let decision = if first.analysis_due {
                    prop_assert!(
                        !first
                            .events
                            .iter()
                            .any(|e| e.reason == EventReason::WinnerShipped),
                        "shipped in a call without observation while an analysis was due"
                    );
                    self.call(observation(guardrail, &counts))?
                } else {
                    first
                };
                self.status = decision.status;
            }
            Action::Request(verb) => {
                self.next_id += 1;
                self.flag
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(
                        REQUEST_ANNOTATION.into(),
                        format!("{verb}/{}", self.next_id),
                    );
                let decision = self.call(Observation::None)?;
                self.status = decision.status;
            }
            Action::Coverage(coverage) => {
                self.flag.spec.experiment.as_mut().unwrap().coverage = coverage;
                self.bump();
            }
            Action::NewSalt => {
                self.salts += 1;
                self.flag.spec.experiment.as_mut().unwrap().salt = Some(format!("s{}", self.salts));
                self.bump();
            }
        }
        Ok(())
    }

    fn bump(&mut self) {
        self.flag.metadata.generation = self.flag.metadata.generation.map(|g| g + 1);
    }

    fn call(&self, observation: Observation) -> Result<Decision, TestCaseError> {
        let decision = decide(&self.flag, &self.status, observation, self.now);
        check(self, &decision)?;
        Ok(decision)
    }
}

fn check(world: &World, decision: &Decision) -> Result<(), TestCaseError> {
    let before = &world.status;
    let after = &decision.status;
    let coverage = world.flag.spec.experiment.as_ref().unwrap().coverage;
    let experiment = after.experiment.as_ref();
    let restarted = decision.events.iter().any(|e| {
        matches!(
            e.reason.as_str(),
            "ExperimentStarted" | "ExperimentRestarted" | "RetryStarted"
        )
    });
    let same_experiment = !restarted
        && before.experiment.as_ref().map(|e| &e.started_at) == experiment.map(|e| &e.started_at);
    let shipped = decision
        .events
        .iter()
        .any(|e| e.reason == EventReason::WinnerShipped);

    // Shipping: only a declared winner, with the latest guardrail analysis passed.
    if shipped {
        let experiment = experiment.expect("status.experiment when shipping");
        prop_assert_eq!(experiment.decision, ExperimentDecision::Winner);
        let winner = experiment.winner.as_ref().expect("a winner when shipping");
        prop_assert_eq!(experiment.shipped_variant.as_ref(), Some(&winner.variant));
        prop_assert_eq!(after.phase, Phase::Complete);
        let latest = after.analyses.last().map(|run| run.verdict);
        prop_assert_eq!(
            latest,
            Some(Verdict::Pass),
            "shipped after a failed or held analysis"
        );
        prop_assert!(
            before
                .experiment
                .as_ref()
                .is_none_or(|e| e.decision != ExperimentDecision::SampleRatioMismatch),
            "shipped after a sample-ratio mismatch"
        );
    }
    if after.phase == Phase::Complete {
        let experiment = experiment.expect("status.experiment when complete");
        prop_assert!(
            experiment.shipped_variant.is_some(),
            "Complete without a shipped winner"
        );
        prop_assert_eq!(experiment.decision, ExperimentDecision::Winner);
    }

    // What workloads see.
    let resolved = &decision.resolved;
    match after.phase {
        Phase::Progressing | Phase::Paused => {
            prop_assert!(resolved.enabled);
            prop_assert_eq!(resolved.percent, coverage);
            prop_assert_eq!(&resolved.shipped_variant, &None);
        }
        Phase::Complete => {
            prop_assert!(resolved.enabled);
            prop_assert_eq!(resolved.percent, 100.0);
            prop_assert_eq!(
                resolved.shipped_variant.as_ref(),
                experiment.and_then(|e| e.shipped_variant.as_ref())
            );
        }
        Phase::RolledBack | Phase::Killed => {
            prop_assert!(!resolved.enabled);
            prop_assert_eq!(resolved.percent, 0.0);
            prop_assert_eq!(&resolved.shipped_variant, &None);
        }
        other => prop_assert!(false, "unexpected phase {}", other),
    }
    let assignment = resolved
        .experiment
        .as_ref()
        .expect("an experiment is published");
    prop_assert_eq!(assignment.coverage, coverage);
    prop_assert_eq!(resolved.variants.len(), 2);

    // Latched conclusions, within one experiment.
    if let (Some(old), Some(new), true) = (before.experiment.as_ref(), experiment, same_experiment)
    {
        if old.decision == ExperimentDecision::SampleRatioMismatch {
            prop_assert_eq!(new.decision, ExperimentDecision::SampleRatioMismatch);
        }
        if let (Some(old_winner), Some(new_winner)) = (&old.winner, &new.winner) {
            prop_assert_eq!(
                &old_winner.variant,
                &new_winner.variant,
                "the winner changed"
            );
        }
        if old.decision.is_final() && old.decision != ExperimentDecision::Winner {
            prop_assert!(new.decision.is_final());
            prop_assert!(new.shipped_variant.is_none());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn experiments_ship_only_a_winner_with_passing_guardrails(
        auto_ship in any::<bool>(),
        failure_limit in 1u32..=3,
        method in prop::sample::select(vec![Method::Sequential, Method::Fixed]),
        actions in prop::collection::vec(action(), 1..=40),
    ) {
        let mut flag = FeatureFlag::new("checkout", spec(auto_ship, failure_limit, method));
        flag.metadata.generation = Some(1);
        let mut world = World {
            flag,
            status: FeatureFlagStatus::default(),
            now: Timestamp::from_second(T0).unwrap(),
            next_id: 0,
            salts: 0,
        };
        let first = world.call(Observation::None)?;
        world.status = first.status;
        for action in actions {
            world.act(action)?;
        }
    }
}
