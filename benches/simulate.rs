//! `rollgate simulate` at scale: 30 days of history at a 1-minute analysis interval.
//!
//! `simulate/30d_1m_interval` is the driver and the engine: 43,200 analyses, one a minute for
//! 30 days, over a ramp whose steps pause 7, 7, 8 and 8 days, reading two metrics from an
//! in-memory history of 30 days and an hour (86,522 samples). `parse_csv/30d_1m` is reading that history
//! from CSV text (5 MB). The target is under one second for the simulation in a release
//! build. Run with `cargo bench --bench simulate`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use rollgate::simulate::{History, Outcome, Scenario, parse_history, simulate};
use rollgate_core::crd::FeatureFlag;
use rollgate_core::observation::MetricOutcome;
use serde_json::json;

const DAYS: i64 = 30;
const NAMES: [&str; 2] = ["error-ratio", "p99-latency-seconds"];

fn flag() -> FeatureFlag {
    let metric = |name: &str, max: f64| json!({"name": name, "query": "up", "max": max});
    serde_json::from_value(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": "month-long-ramp"},
        "spec": {
            "enabled": true,
            "rollout": {
                "steps": [
                    {"percent": 1, "pause": "7d"},
                    {"percent": 5, "pause": "7d"},
                    {"percent": 25, "pause": "8d"},
                    {"percent": 50, "pause": "8d"},
                    {"percent": 100}
                ],
                "analysis": {
                    "interval": "1m",
                    "failureLimit": 2,
                    "metrics": [metric(NAMES[0], 0.01), metric(NAMES[1], 0.5)]
                }
            }
        }
    }))
    .expect("a valid FeatureFlag")
}

/// One sample a minute per metric, healthy with deterministic noise.
fn history(start: Timestamp) -> History {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = move || {
        // xorshift64: no dependency, the same numbers every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // An hour past the 30 days, so the data outlasts the ramp.
    let minutes = DAYS * 24 * 60 + 60;
    let mut samples = Vec::with_capacity(usize::try_from(minutes * 2 + 2).unwrap_or(0));
    for minute in 0..=minutes {
        let at = start
            .saturating_add(SignedDuration::from_mins(minute))
            .expect("time in range");
        let error = 0.002 + 0.003 * noise();
        let p99 = 0.2 + 0.1 * noise();
        samples.push((
            NAMES[0].to_string(),
            at,
            MetricOutcome::Value { value: error },
        ));
        samples.push((
            NAMES[1].to_string(),
            at,
            MetricOutcome::Value { value: p99 },
        ));
    }
    History::from_samples(samples)
}

fn bench(c: &mut Criterion) {
    let start: Timestamp = "2025-01-01T00:00:00Z".parse().expect("time");
    let end = start
        .saturating_add(SignedDuration::from_hours(DAYS * 24 + 1))
        .expect("time in range");
    let flag = flag();
    let mut history = history(start);
    let scenario = Scenario {
        flag: &flag,
        start,
        end,
        requests: &[],
    };
    let trace = simulate(&scenario, &mut history).expect("runs");
    assert_eq!(trace.summary.outcome, Outcome::Completed);
    assert_eq!(
        trace.summary.analyses,
        u32::try_from(DAYS * 24 * 60).unwrap()
    );

    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.bench_function("30d_1m_interval", |b| {
        b.iter(|| simulate(black_box(&scenario), &mut history).expect("runs"));
    });
    group.finish();

    let text = history.to_csv();
    let mut group = c.benchmark_group("parse_csv");
    group.sample_size(10);
    group.bench_function("30d_1m", |b| {
        b.iter(|| parse_history(black_box(&text), &NAMES, None).expect("parses"));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
