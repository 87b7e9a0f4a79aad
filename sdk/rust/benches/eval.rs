//! One flag at 50% over 1,000,000 distinct user ids (target: ≤ 70 ns per evaluation).
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollgate_sdk::{CompiledFlag, FlagEntry};
use sha2::{Digest, Sha256};
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
        targeting: Vec::new(),
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
    // Baseline: the SHA-256 alone over the same bytes, to show what evaluation adds.
    let messages: Vec<String> = users.iter().map(|u| format!("new-checkout:{u}")).collect();
    group.bench_function("sha256_only_1M_messages", |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for message in &messages {
                acc ^= Sha256::digest(black_box(message.as_bytes()))[0];
            }
            black_box(acc)
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate_one_flag);
criterion_main!(benches);
