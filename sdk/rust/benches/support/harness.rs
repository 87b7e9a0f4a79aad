//! The ratio benches' harness: cases calibrated to a length, run in interleaved rounds, and
//! reported as medians and as ratios of per-round medians against named baselines.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A measured loop: runs `iterations` evaluations and returns a value that depends on all.
pub type Run<'a> = Box<dyn FnMut(u64) -> u32 + 'a>;

pub struct Case<'a> {
    pub name: &'static str,
    run: Run<'a>,
    /// Iterations per round, calibrated once.
    iterations: u64,
    /// ns per evaluation, one per round.
    rounds: Vec<f64>,
}

impl<'a> Case<'a> {
    pub fn new(name: &'static str, run: Run<'a>) -> Self {
        Self {
            name,
            run,
            iterations: 0,
            rounds: Vec::new(),
        }
    }
}

/// A ratio to report: numerator case, denominator case (the baseline), and its target.
pub type Ratio = (&'static str, &'static str, Option<f64>);

/// The rounds and their length: `cargo bench` passes `--bench`; without it (`cargo test
/// --all-targets`) one short round only checks that every case runs. `ROLLGATE_RATIO_ROUNDS`
/// (default 7) and `ROLLGATE_RATIO_MILLIS` (per case and round, default 200) change them.
pub fn rounds_and_length() -> (usize, Duration) {
    if quick() {
        return (1, Duration::from_millis(5));
    }
    let rounds = env_number("ROLLGATE_RATIO_ROUNDS", 7).max(5) as usize;
    (
        rounds,
        Duration::from_millis(env_number("ROLLGATE_RATIO_MILLIS", 200)),
    )
}

/// Whether this is the one short round of `cargo test`, not a measurement.
fn quick() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

/// Runs every case `rounds` times, interleaved, then prints each case's medians and each
/// ratio with its verdict.
pub fn measure_and_report(cases: &mut [Case<'_>], ratios: &[Ratio]) {
    let (rounds, target) = rounds_and_length();
    println!(
        "cpu: {} ({} logical)",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
    );
    for case in cases.iter_mut() {
        case.iterations = calibrate(&mut case.run, target);
    }
    for _ in 0..rounds {
        for case in cases.iter_mut() {
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
    for case in cases.iter() {
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
        "{:<44} {:>8} {:>16} {:>8}  verdict",
        "ratio (median of per-round ratios)", "median", "min-max", "target"
    );
    for &(numerator, denominator, target) in ratios {
        let per_round: Vec<f64> = rounds_of(numerator)
            .iter()
            .zip(rounds_of(denominator))
            .map(|(n, d)| n / d)
            .collect();
        let ratio = median(&per_round);
        let (min, max) = min_max(&per_round);
        // One short round of an unoptimized build says nothing of a target.
        let (target_text, verdict) = match target {
            Some(target) if quick() => (format!("≤ {target:.2}"), "not judged"),
            Some(target) if ratio <= target => (format!("≤ {target:.2}"), "pass"),
            Some(target) => (format!("≤ {target:.2}"), "MISS"),
            None => ("-".to_owned(), "reported"),
        };
        println!(
            "{:<44} {:>8.3} {:>16} {:>8}  {verdict}",
            format!("{numerator} / {denominator}"),
            ratio,
            format!("{min:.3}-{max:.3}"),
            target_text
        );
    }
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

/// The loop of a case: `answer` on a new (key, user) pair per iteration, each answer folded
/// into the result so none can be skipped.
pub fn per_pair<'a, T: Into<u32>>(
    keys: &'a [&'a str],
    users: &'a [&'a str],
    answer: impl Fn(&str, &str) -> T + 'a,
) -> Run<'a> {
    Box::new(move |iterations| {
        let mut state = super::SEED;
        let mut folded = 0u32;
        for _ in 0..iterations {
            let (key, user) = super::pick_pair(&mut state, keys, users);
            folded = folded.wrapping_add(answer(black_box(key), black_box(user)).into());
        }
        folded
    })
}

/// [`per_pair`] with each user as something else than an id (a context, a peer's context):
/// the same picks.
pub fn per_user<'a, U>(
    keys: &'a [&'a str],
    users: &'a [U],
    answer: impl Fn(&str, &U) -> bool + 'a,
) -> Run<'a> {
    Box::new(move |iterations| {
        let mut state = super::SEED;
        let mut folded = 0u32;
        for _ in 0..iterations {
            let (key, user) = super::pick_indices(&mut state, keys.len(), users.len());
            let answer = answer(black_box(keys[key]), black_box(&users[user]));
            folded = folded.wrapping_add(answer.into());
        }
        folded
    })
}
