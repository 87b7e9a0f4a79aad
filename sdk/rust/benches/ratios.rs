//! The SDK's speed as ratios to the hash alone, measured in one process (issue 20).
//!
//! Absolute nanoseconds move by 1.5× or more between VM types and between hours on a shared
//! host, so the claims are ratios against a baseline measured in the same run: every round
//! measures each case once, in turn, and a ratio is taken within each round before the median
//! over rounds. The cases, each in ns per evaluation:
//!
//! - `floor`: `rollout_rank(key, user)` alone, the hash and its reduction;
//! - `sha2`: `sha2::Sha256::digest` of the same `key:user` bytes, joined on the stack, then
//!   the same reduction (`rank_of_digest`): a plain implementation of the rank;
//! - `eval_1k`: `Flags::is_enabled` over 1,000 flags, each a 50% rollout;
//! - `eval_100k_hot`: the same with 100,000 flags loaded and 1,000 of them in use;
//! - `eval_uuid`: `eval_1k` with UUID-shaped user ids (two SHA-256 blocks);
//! - `eval_100k_uniform`: keys uniformly over 100,000 flags; memory-bound, so reported
//!   without a target;
//! - `eval_1k_ctx`: `eval_1k` through `Flags::is_enabled_with`, each user's id in a
//!   `Context` of five attributes (one per user, 10,000 of them, so reading one is a cache
//!   miss, as reading a packed user id is not);
//! - `eval_1k_rules`: `eval_1k_ctx` with three targeting rules of two conditions on every
//!   flag (`In` on strings, `Gte`, `SemverGte`) that the contexts never match: the rules'
//!   cost, against `eval_1k_ctx`, and with the contexts' misses, against `eval_1k`;
//! - `eval_1k_by_hand`: the same three rules written by hand in Rust over `Context::get`,
//!   then `eval_1k_ctx`'s flag: what reading and comparing the attributes costs without the
//!   rules engine, the baseline of its target.
//!
//! Every case draws the same (flag, user) picks from the same xorshift sequence, a new pair
//! each iteration, so no answer can be reused. Misses of a target are reported, not failed:
//! on a noisy host a single run is evidence, not a verdict.
//!
//! `cargo bench -p rollgate-sdk --bench ratios`; `ROLLGATE_RATIO_ROUNDS` (default 7) and
//! `ROLLGATE_RATIO_MILLIS` (per case and round, default 200) change the run's length.
use rollgate_sdk::{Context, Flags, rank_of_digest, rollout_rank};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::{Duration, Instant};

mod support;
use support::{
    HOT_KEYS, Mix, SEED, document, pick_indices, pick_pair, targeted_by_hand, user_contexts,
    user_ids, uuid_user_ids,
};

/// A measured loop: runs `iterations` evaluations and returns a value that depends on all.
type Run<'a> = Box<dyn FnMut(u64) -> u32 + 'a>;

struct Case<'a> {
    name: &'static str,
    run: Run<'a>,
    /// Iterations per round, calibrated once.
    iterations: u64,
    /// ns per evaluation, one per round.
    rounds: Vec<f64>,
}

/// The loop every case runs: `answer` on a new (key, user) pair per iteration, each answer
/// folded into the result so none can be skipped.
fn per_pair<'a, T: Into<u32>>(
    keys: &'a [&'a str],
    users: &'a [&'a str],
    answer: impl Fn(&str, &str) -> T + 'a,
) -> Run<'a> {
    Box::new(move |iterations| {
        let mut state = SEED;
        let mut folded = 0u32;
        for _ in 0..iterations {
            let (key, user) = pick_pair(&mut state, keys, users);
            folded = folded.wrapping_add(answer(black_box(key), black_box(user)).into());
        }
        folded
    })
}

/// [`per_pair`] with each user's [`Context`] in place of its id: the same picks.
fn per_context<'a>(
    keys: &'a [&'a str],
    contexts: &'a [Context],
    answer: impl Fn(&str, &Context) -> bool + 'a,
) -> Run<'a> {
    Box::new(move |iterations| {
        let mut state = SEED;
        let mut folded = 0u32;
        for _ in 0..iterations {
            let (key, user) = pick_indices(&mut state, keys.len(), contexts.len());
            let answer = answer(black_box(keys[key]), black_box(&contexts[user]));
            folded = folded.wrapping_add(answer.into());
        }
        folded
    })
}

/// [`targeted_by_hand`], falling through to `plain`, the flag without rules (whose 50% the
/// third rule serves as well).
#[inline(always)]
fn by_hand(plain: &Flags, key: &str, context: &Context) -> bool {
    match targeted_by_hand(context) {
        Some(0) => false,
        Some(1) => true,
        _ => plain.is_enabled_with(key, context),
    }
}

/// The rank by `sha2`'s one-shot digest of `key:user`, joined in a stack buffer.
#[inline(always)]
fn sha2_rank(key: &str, user: &str) -> u16 {
    let mut message = [0u8; 256];
    let len = key.len() + 1 + user.len();
    message[..key.len()].copy_from_slice(key.as_bytes());
    message[key.len()] = b':';
    message[key.len() + 1..len].copy_from_slice(user.as_bytes());
    rank_of_digest(&Sha256::digest(&message[..len]).into())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn sha_extensions_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Iterations that take about `target` on this host, from a short timed run.
fn calibrate(run: &mut Run<'_>, target: Duration) -> u64 {
    let mut iterations = 1_000u64;
    loop {
        let start = Instant::now();
        black_box(run(iterations));
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_millis(20) {
            let per_iteration = elapsed.as_secs_f64() / iterations as f64;
            return ((target.as_secs_f64() / per_iteration) as u64).max(1_000);
        }
        iterations *= 4;
    }
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) one short round
    // only checks that every case runs.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let rounds = if quick {
        1
    } else {
        env_number("ROLLGATE_RATIO_ROUNDS", 7).max(5) as usize
    };
    let target = Duration::from_millis(if quick {
        5
    } else {
        env_number("ROLLGATE_RATIO_MILLIS", 200)
    });

    let packed_users = user_ids();
    let users = packed_users.slices();
    let packed_uuids = uuid_user_ids();
    let uuids = packed_uuids.slices();
    let (packed_small, small_bytes) = document(1_000, Mix::Rollout);
    let small_keys = packed_small.slices();
    let (packed_large, large_bytes) = document(100_000, Mix::Rollout);
    let large_keys = packed_large.slices();
    let hot_keys = &large_keys[..HOT_KEYS];
    let small = Flags::from_json(&small_bytes).unwrap();
    let contexts = user_contexts();
    let (_, targeted_bytes) = document(1_000, Mix::Targeted);
    let targeted = Flags::from_json(&targeted_bytes).unwrap();
    let large = Flags::from_json(&large_bytes).unwrap();

    let mut cases: Vec<Case<'_>> = [
        ("floor", per_pair(&small_keys, &users, rollout_rank)),
        ("sha2", per_pair(&small_keys, &users, sha2_rank)),
        (
            "eval_1k",
            per_pair(&small_keys, &users, |key, user| {
                small.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_100k_hot",
            per_pair(hot_keys, &users, |key, user| {
                large.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_uuid",
            per_pair(&small_keys, &uuids, |key, user| {
                small.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_100k_uniform",
            per_pair(&large_keys, &users, |key, user| {
                large.is_enabled(key, Some(user))
            }),
        ),
        (
            "eval_1k_ctx",
            per_context(&small_keys, &contexts, |key, context| {
                small.is_enabled_with(key, context)
            }),
        ),
        (
            "eval_1k_rules",
            per_context(&small_keys, &contexts, |key, context| {
                targeted.is_enabled_with(key, context)
            }),
        ),
        (
            "eval_1k_by_hand",
            per_context(&small_keys, &contexts, |key, context| {
                by_hand(&small, key, context)
            }),
        ),
    ]
    .into_iter()
    .map(|(name, run)| Case {
        name,
        run,
        iterations: 0,
        rounds: Vec::new(),
    })
    .collect();

    // The hand-written baseline must answer as the rules do, or it measures something else.
    let mut state = SEED;
    for _ in 0..20_000 {
        let (key, user) = pick_indices(&mut state, small_keys.len(), contexts.len());
        let (key, context) = (small_keys[key], &contexts[user]);
        assert_eq!(
            by_hand(&small, key, context),
            targeted.is_enabled_with(key, context),
            "{key} for {context:?}"
        );
    }

    println!("cpu: {} ({} logical)", cpu_model(), available_cpus());
    println!(
        "sha-ni path: compiled in: {}, CPU has the SHA extensions: {}",
        cfg!(all(feature = "sha-ni", target_arch = "x86_64")),
        sha_extensions_detected()
    );
    for case in &mut cases {
        case.iterations = calibrate(&mut case.run, target);
    }
    for _ in 0..rounds {
        for case in &mut cases {
            let start = Instant::now();
            black_box((case.run)(case.iterations));
            let elapsed = start.elapsed();
            case.rounds
                .push(elapsed.as_nanos() as f64 / case.iterations as f64);
        }
    }

    println!(
        "{rounds} interleaved rounds, about {} ms per case and round",
        target.as_millis()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "case (ns per evaluation)", "median", "min", "max"
    );
    for case in &cases {
        let (min, max) = min_max(&case.rounds);
        println!(
            "{:<28} {:>10.1} {:>10.1} {:>10.1}",
            case.name,
            median(&case.rounds),
            min,
            max
        );
    }

    let rounds_of = |name: &str| {
        &cases
            .iter()
            .find(|case| case.name == name)
            .expect("a case of that name")
            .rounds
    };
    println!(
        "{:<40} {:>8} {:>16} {:>8}  verdict",
        "ratio (median of per-round ratios)", "median", "min-max", "target"
    );
    // Against `sha2` too: it does not change with the `sha-ni` feature, so these compare
    // builds with and without it.
    let ratios: [(&str, &str, Option<f64>); 13] = [
        ("eval_1k", "floor", Some(1.25)),
        ("eval_1k_rules", "eval_1k_by_hand", Some(1.25)),
        ("eval_1k_by_hand", "eval_1k_ctx", None),
        ("eval_1k_rules", "eval_1k_ctx", None),
        ("eval_1k_rules", "eval_1k", None),
        ("eval_1k_ctx", "eval_1k", None),
        ("eval_100k_hot", "floor", Some(1.5)),
        ("eval_uuid", "floor", None),
        ("sha2", "floor", None),
        ("eval_100k_uniform", "floor", None),
        ("eval_1k", "sha2", None),
        ("eval_100k_hot", "sha2", None),
        ("eval_uuid", "sha2", None),
    ];
    for (numerator, denominator, target) in ratios {
        let per_round: Vec<f64> = rounds_of(numerator)
            .iter()
            .zip(rounds_of(denominator))
            .map(|(n, d)| n / d)
            .collect();
        let ratio = median(&per_round);
        let (min, max) = min_max(&per_round);
        let (target_text, verdict) = match target {
            Some(target) if ratio <= target => (format!("≤ {target:.2}"), "pass"),
            Some(target) => (format!("≤ {target:.2}"), "MISS"),
            None => ("-".to_owned(), "reported"),
        };
        println!(
            "{:<40} {:>8.3} {:>16} {:>8}  {verdict}",
            format!("{numerator} / {denominator}"),
            ratio,
            format!("{min:.3}-{max:.3}"),
            target_text
        );
    }
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
}
