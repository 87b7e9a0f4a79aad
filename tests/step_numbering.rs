//! One step numbering wherever a person reads it. `kubectl get ff` shows
//! `status.currentStep`, an index into `spec.rollout.steps`; the engine's events and
//! conditions, `kubectl rollgate` and `rollgate simulate` print that same index, as
//! `step 1 of 0–2`.

use jiff::Timestamp;
use rollgate::plugin::list::{ListOptions, render_list};
use rollgate::plugin::render;
use rollgate::plugin::status::{EventsView, StatusView, render_status};
use rollgate::simulate::render::{RenderOptions, summary_line};
use rollgate::simulate::{Outcome, Scenario, parse_history, simulate_with};
use rollgate_core::crd::{FeatureFlag, FeatureFlagStatus, Phase};
use rollgate_core::engine::{EventReason, step_of};

/// Three steps; the analysis fails during step 1 (50%), which rolls the flag back.
const FLAG: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: checkout
  namespace: shop
spec:
  enabled: true
  rollout:
    steps:
      - percent: 10
        pause: 2m
      - percent: 50
        pause: 10m
      - percent: 100
    analysis:
      interval: 1m
      failureLimit: 1
      metrics:
        - name: errors
          query: sum(rate(errors_total[{{ interval }}]))
          max: 0.01
"#;

const HISTORY: &str = "time,metric,value
2025-03-11T09:00:00Z,errors,0.001
2025-03-11T09:05:00Z,errors,0.5
2025-03-11T09:30:00Z,errors,0.5
";

#[test]
fn plugin_simulate_and_engine_print_status_current_step() {
    let flag: FeatureFlag = serde_saphyr::from_str(FLAG).expect("the flag parses");
    let start: Timestamp = "2025-03-11T09:00:00Z".parse().unwrap();
    let mut history = parse_history(HISTORY, &["errors"], Some(start)).expect("history");
    let end = history.last_time().unwrap();
    let scenario = Scenario {
        flag: &flag,
        start,
        end,
        requests: &[],
    };
    // The status in the middle of step 1, as the operator would have written it.
    let mut at_step_one: Option<(Timestamp, FeatureFlagStatus)> = None;
    let trace = simulate_with(&scenario, &mut history, &mut |tick, status| {
        if status.phase == Phase::Progressing && status.current_step == Some(1) {
            at_step_one.get_or_insert((tick.time, status.clone()));
        }
    })
    .expect("the simulation runs");

    // Events name the step the tick ended at, by its index.
    let mut advanced = 0;
    for tick in &trace.ticks {
        for event in &tick.events {
            if matches!(
                event.reason,
                EventReason::RolloutStarted | EventReason::StepAdvanced
            ) {
                let index = tick.step.expect("a ramping tick has a step");
                let text = format!("step {} (", step_of(index, 3));
                assert!(event.message.contains(&text), "{}", event.message);
                advanced += 1;
            }
        }
    }
    assert_eq!(advanced, 2, "started at 0, advanced to 1");
    assert_eq!(
        trace
            .ticks
            .iter()
            .find(|t| t
                .events
                .iter()
                .any(|e| e.reason == EventReason::StepAdvanced))
            .and_then(|t| t.events.first())
            .map(|e| e.message.as_str()),
        Some("advanced to step 1 of 0–2 (50%): pause elapsed and the analysis passed")
    );

    // The simulation's summary names the step it rolled back from, as status had it.
    assert_eq!(trace.summary.outcome, Outcome::RolledBack);
    assert_eq!(trace.summary.from_step, Some(1));
    let summary = summary_line(&trace, RenderOptions::default());
    assert!(
        summary.starts_with("rolled back: 50% (step 1 of 0–2) → 0%"),
        "{summary}"
    );

    // The plugin shows that status' currentStep as is.
    let (now, status) = at_step_one.expect("the ramp reached step 1");
    assert_eq!(status.current_step, Some(1));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready.message, "ramping: step 1 of 0–2 at 50%");
    let mut flag = flag.clone();
    flag.status = Some(status);
    assert_eq!(render::reached_step(&flag), Some(1));
    assert_eq!(render::step_text(&flag), "1 of 0–2");
    let text = render_status(&StatusView {
        flag: &flag,
        events: EventsView::Listed(&[]),
        now,
        wide: false,
    });
    assert!(text.contains("[■■□] 50% (step 1 of 0–2)"), "{text}");
    let step_field = text
        .lines()
        .find_map(|line| line.strip_prefix("Step:"))
        .map(str::trim_start);
    assert!(
        step_field.is_some_and(|field| field.starts_with("1 of 0–2 at 50%")),
        "{text}"
    );
    assert!(
        text.contains("  1      50%       10m     current:"),
        "the steps table numbers rows by index: {text}"
    );
    let list = render_list(
        std::slice::from_ref(&flag),
        now,
        ListOptions {
            wide: false,
            all_namespaces: false,
        },
    );
    assert!(list.contains(" 1 of 0–2 "), "{list}");
}
