//! One flag at 50% over 1,000,000 distinct user ids (target: ≤ 70 ns per evaluation).
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollgate_sdk::{CompiledFlag, FlagEntry};
use std::hint::black_box;

const USERS: usize = 1_000_000;

fn user_ids() -> Vec<String> {
    (0..USERS).map(|i| format!("user-{i:014}")).collect()
}

fn flag_at_half() -> CompiledFlag {
    CompiledFlag::new(&FlagEntry {
        key: "new-checkout".into(),
        enabled: true,
        percent: 50.0,
        allowed_users: vec![],
        variants: vec![],
        experiment: None,
        shipped_variant: None,
        phase: "Static".into(),
        generation: 1,
        updated_at: String::new(),
    })
}

fn evaluate_one_flag(c: &mut Criterion) {
    let users = user_ids();
    let flag = flag_at_half();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(USERS as u64));
    group.sample_size(10);
    group.bench_function("one_flag_50pct_1M_users", |b| {
        b.iter(|| {
            let mut on = 0usize;
            for user in &users {
                on += usize::from(flag.evaluate(Some(black_box(user))).enabled);
            }
            black_box(on)
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate_one_flag);
criterion_main!(benches);
