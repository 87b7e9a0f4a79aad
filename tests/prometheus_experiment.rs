//! An experiment's counts from a real Prometheus (Debian's package) with backfilled counters:
//! the queries of `examples/experiment.yaml`, rendered once per variant over the window since
//! the experiment started, rounded to whole counts; an absent counter counts 0; a failure
//! names the variant and the query, so the engine skips the look.

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::time::Duration;

use jiff::Timestamp;
use prometheus_support::{OpenMetricsHistory, PrometheusServer, prometheus_or_skip, refused_url};
use rollgate::manifest::load_file;
use rollgate::prometheus::{
    PrometheusClient, PrometheusConfig, experiment_counts, experiment_window,
};
use rollgate_core::crd::{Experiment, FeatureFlag};
use rollgate_core::experiment::VariantCounts;
use rollgate_core::observation::ExperimentOutcome;
use rollgate_core::template::TemplateContext;

/// 2024-01-15T12:00:00Z: the experiment starts here and runs for two hours.
const START: i64 = 1_705_320_000;
const END: i64 = START + 2 * 3600;
const STEP: i64 = 15;

/// The example flag, in namespace `shop`.
fn example() -> FeatureFlag {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/experiment.yaml");
    let file = load_file(std::path::Path::new(path)).unwrap();
    let mut flag = file.valid_flags().next().expect("a valid flag").clone();
    flag.metadata.namespace = Some("shop".into());
    flag
}

/// 1.5 users a second see each arm; 10% of control and 12.5% of treatment convert. Only
/// treatment's conversions before the start (a previous experiment) must not count.
fn history() -> String {
    let mut history = OpenMetricsHistory::new();
    let labels = |variant| {
        [
            ("namespace", "shop"),
            ("flag", "checkout-button"),
            ("variant", variant),
        ]
    };
    for (variant, conversion) in [("control", 0.10), ("treatment", 0.125)] {
        history
            .counter("exposures_total", &labels(variant))
            .rate(START, END, STEP, |_| 1.5);
        history.counter("conversions_total", &labels(variant)).rate(
            START - 3600,
            END,
            STEP,
            move |t| {
                if t <= START { 0.7 } else { 1.5 * conversion }
            },
        );
    }
    history.render()
}

fn client(address: &str) -> PrometheusClient {
    PrometheusClient::new(PrometheusConfig::new(address)).expect("valid config")
}

fn window_context(flag: &FeatureFlag, since_start: Duration) -> TemplateContext {
    let mut context = TemplateContext::for_flag(flag, None);
    context.interval = experiment_window(since_start);
    context
}

fn experiment(flag: &FeatureFlag) -> &Experiment {
    flag.spec.experiment.as_ref().unwrap()
}

#[tokio::test]
async fn counts_cover_the_experiment_and_are_whole_numbers() {
    if !prometheus_or_skip("counts_cover_the_experiment_and_are_whole_numbers") {
        return;
    }
    let server = PrometheusServer::start_with_history(&history()).expect("Prometheus starts");
    let flag = example();
    let one_hour = Duration::from_secs(3600);
    let outcome = experiment_counts(
        &client(server.url()),
        experiment(&flag),
        &window_context(&flag, one_hour),
        Timestamp::from_second(START + 3600).ok(),
        3,
    )
    .await;
    let ExperimentOutcome::Counts { variants } = outcome else {
        panic!("{outcome:?}\n{}", server.log());
    };
    // One hour: 5,400 exposures per arm; 540 and 675 conversions. `increase()` extrapolates
    // at the edges of the window, so allow a little, but every count is a whole number.
    let expect = [("control", 5_400, 540), ("treatment", 5_400, 675)];
    assert_eq!(variants.len(), 2);
    for (counts, (name, exposures, conversions)) in variants.iter().zip(expect) {
        let VariantCounts {
            name: got,
            weight,
            exposures: got_exposures,
            conversions: got_conversions,
        } = counts;
        assert_eq!((got.as_str(), *weight), (name, 50));
        assert!(
            got_exposures.abs_diff(exposures) <= exposures / 100,
            "{counts:?}"
        );
        assert!(
            got_conversions.abs_diff(conversions) <= conversions / 50,
            "{counts:?}"
        );
    }
}

#[tokio::test]
async fn an_absent_counter_counts_zero_and_failures_name_the_query() {
    if !prometheus_or_skip("an_absent_counter_counts_zero_and_failures_name_the_query") {
        return;
    }
    let server = PrometheusServer::start_with_history(&history()).expect("Prometheus starts");
    let mut flag = example();
    // A variant no counter mentions yet.
    flag.spec.experiment.as_mut().unwrap().variants[1].name = "fresh".into();
    let outcome = experiment_counts(
        &client(server.url()),
        experiment(&flag),
        &window_context(&flag, Duration::from_secs(600)),
        Timestamp::from_second(START + 600).ok(),
        4,
    )
    .await;
    let ExperimentOutcome::Counts { variants } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!((variants[1].exposures, variants[1].conversions), (0, 0));
    assert!(variants[0].exposures > 800, "{variants:?}");

    let outcome = experiment_counts(
        &client(&refused_url().unwrap()),
        experiment(&flag),
        &window_context(&flag, Duration::from_secs(600)),
        None,
        4,
    )
    .await;
    let ExperimentOutcome::Error { message } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        message.starts_with("experiment.metric.exposures of variant control: "),
        "{message}"
    );
}
