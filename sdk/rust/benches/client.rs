//! The workload client with the flags in memory (target: ≤ 70 ns per evaluation at 1,000 and
//! at 100,000 flags, with the lookup not dominating) and the parse time of a 1 MiB reload.
//!
//! Every iteration picks a flag key and a user id from pre-built lists with a xorshift step,
//! so lookups land all over the table as they would for a service with many flags.
//! Each iteration evaluates a different (flag, user) pair, so no answer can be reused.
//! The keys are slices of one buffer, as a service's flag keys are string literals side by
//! side in its binary, and so are the user ids; a `Vec<String>` would add a pointer chase to
//! a separate allocation per pick, which no caller pays.
//!
//! - `evaluate/{n}_flags/rollout`: every flag is a 50% rollout, so every evaluation hashes
//!   (SHA-256 of `key:user`); this is the cost of the common case.
//! - `evaluate/{n}_flags/mixed`: a spread of flags (off, 100%, rollouts, allow-lists, A/B)
//!   where about half of the evaluations need no hash.
//! - `evaluate/100000_flags/rollout_hot_1000`: 100,000 flags loaded, evaluations spread over
//!   1,000 of them (in cache), to separate the table's size from the machine's memory latency.
//! - `evaluate/{n}_flags/request_of_10` (and `_hot_1000`): a request's view: one user, ten
//!   flags evaluated for them (random keys over the whole table, or over the 1,000 in use),
//!   reported per evaluation. The user id is in cache, as it is for a service that has just
//!   parsed the request; the flags are not.
//! - `evaluate/1000_flags/rollout_uuid_users`: user ids shaped as UUIDs, so every `key:user`
//!   takes two SHA-256 blocks.
//! - `evaluate/{n}_flags/request_of_10_at_once` (and `_hot_1000`): the same requests, the ten
//!   flags asked in one `is_enabled_many` call; reported per evaluation.
//! - `lookup/{n}_flags/get`: only the key lookup; `rank_only`: only the SHA-256 rank of the
//!   same key and user; `pick_only`: only the loop's own work.
//! - `reload/1mib`: parse, check and compile a ~1 MiB document (what a reload costs the
//!   reload thread; evaluation never waits for it).
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rollgate_sdk::{FlagDocument, Flags, rollout_rank};
use serde_json::{Value, json};
use std::hint::black_box;

const USERS: usize = 10_000;
const HOT_KEYS: usize = 1_000;

/// `strings` laid out side by side in one buffer, and a slice of it per string.
struct Packed {
    buffer: String,
    ends: Vec<usize>,
}

impl Packed {
    fn new(strings: impl IntoIterator<Item = String>) -> Self {
        let mut buffer = String::new();
        let mut ends = Vec::new();
        for string in strings {
            buffer.push_str(&string);
            ends.push(buffer.len());
        }
        Self { buffer, ends }
    }

    fn slices(&self) -> Vec<&str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.buffer[start..*end])
            .collect()
    }
}

fn user_ids() -> Packed {
    Packed::new((0..USERS).map(|i| format!("user-{i:08}")))
}

/// User ids shaped as UUIDs (36 characters), as many services key users: `key:user` is then
/// longer than one SHA-256 block.
fn uuid_user_ids() -> Packed {
    Packed::new((0..USERS as u64).map(|i| {
        let mix = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            mix >> 32,
            (mix >> 16) & 0xffff,
            mix & 0xfff,
            (mix >> 12) & 0xfff,
            i
        )
    }))
}

/// Keys shaped like real ones (`team-17-checkout-v2-3fa9`), in an order unrelated to the
/// table's.
fn flag_key(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "checkout",
        "search",
        "recs",
        "pricing",
        "banner",
        "onboarding",
        "dark-mode",
        "cart",
    ];
    let mix = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "team-{}-{}-v{}-{:04x}",
        i % 97,
        WORDS[i % WORDS.len()],
        i % 5,
        mix >> 48
    )
}

#[derive(Clone, Copy)]
enum Mix {
    /// Every flag at 50%: every evaluation computes the rank.
    Rollout,
    /// 10% off, 30% at 100%, 40% rollouts, 10% allow-list + rollout, 10% A/B experiments.
    Mixed,
}

fn entry(key: &str, i: usize, mix: Mix) -> Value {
    let base = json!({"key": key, "enabled": true, "percent": 50, "phase": "Progressing",
                      "generation": 3, "updatedAt": "2026-11-24T08:00:00Z"});
    let Mix::Mixed = mix else { return base };
    let mut entry = base;
    match i % 10 {
        0 => entry["enabled"] = json!(false),
        1..=3 => entry["percent"] = json!(100),
        4..=7 => entry["percent"] = json!(5 + (i % 90)),
        8 => entry["allowedUsers"] = json!(["user-00000001", "user-00000002", "qa@example.com"]),
        _ => {
            entry["variants"] = json!([{"name": "control", "weight": 50},
                                       {"name": "treatment", "weight": 50}]);
            entry["experiment"] = json!({"coverage": 40, "salt": format!("exp-{i}")});
        }
    }
    entry
}

fn document(count: usize, mix: Mix) -> (Packed, Vec<u8>) {
    let keys: Vec<String> = (0..count).map(flag_key).collect();
    let flags: serde_json::Map<String, Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.clone(), entry(key, i, mix)))
        .collect();
    let bytes = serde_json::to_vec(&json!({"schemaVersion": 1, "flags": flags})).unwrap();
    (Packed::new(keys), bytes)
}

/// xorshift64: a few cycles, no table, no allocation.
#[inline]
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// An index below `len` from 64 random bits by a multiply and a shift (Lemire), not `%`: a
/// 64-bit division per pick would cost the loop more than the lookup it measures.
#[inline]
fn pick(random: u64, len: usize) -> usize {
    ((u128::from(random) * len as u128) >> 64) as usize
}

/// Evaluations per request: one user, then [`PER_REQUEST`] flags drawn from `keys` for them;
/// criterion reports the time per evaluation.
const PER_REQUEST: usize = 10;

/// How a request asks for its flags.
#[derive(Clone, Copy)]
enum Ask {
    /// One `is_enabled` call per key.
    OneByOne,
    /// One `is_enabled_many` call for all of them.
    AtOnce,
}

fn bench_requests(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    flags: &Flags,
    keys: &[&str],
    users: &[&str],
    ask: Ask,
) {
    group.throughput(Throughput::Elements(PER_REQUEST as u64));
    group.bench_function(id, |b| {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        b.iter(|| {
            let user = Some(black_box(users[pick(next(&mut state), users.len())]));
            let request: [&str; PER_REQUEST] =
                std::array::from_fn(|_| keys[pick(next(&mut state), keys.len())]);
            let on = match ask {
                Ask::OneByOne => request.map(|key| flags.is_enabled(black_box(key), user)),
                Ask::AtOnce => flags.is_enabled_many(black_box(request), user),
            };
            on.iter().map(|&on| u32::from(on)).sum::<u32>()
        })
    });
    group.throughput(Throughput::Elements(1));
}

fn evaluation(c: &mut Criterion) {
    let packed_users = user_ids();
    let users = packed_users.slices();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for count in [1_000usize, 100_000] {
        for (mix, name) in [(Mix::Rollout, "rollout"), (Mix::Mixed, "mixed")] {
            let (packed_keys, bytes) = document(count, mix);
            let keys = packed_keys.slices();
            let flags = Flags::from_json(&bytes).unwrap();
            assert_eq!(flags.snapshot().len(), count);
            let id = BenchmarkId::new(format!("{count}_flags"), name);
            group.bench_function(id, |b| {
                let mut state = 0x2545_f491_4f6c_dd1d_u64;
                b.iter(|| {
                    let r = next(&mut state);
                    let key = keys[pick(r, keys.len())];
                    let user = users[pick(r.rotate_left(32), users.len())];
                    flags.is_enabled(black_box(key), Some(black_box(user)))
                })
            });
            if matches!(mix, Mix::Rollout) {
                let id = BenchmarkId::new(format!("{count}_flags"), "request_of_10");
                bench_requests(&mut group, id, &flags, &keys, &users, Ask::OneByOne);
                let id = BenchmarkId::new(format!("{count}_flags"), "request_of_10_at_once");
                bench_requests(&mut group, id, &flags, &keys, &users, Ask::AtOnce);
                if count > HOT_KEYS {
                    let hot = &keys[..HOT_KEYS];
                    let id = BenchmarkId::new(format!("{count}_flags"), "request_of_10_hot_1000");
                    bench_requests(&mut group, id, &flags, hot, &users, Ask::OneByOne);
                    let id = BenchmarkId::new(
                        format!("{count}_flags"),
                        "request_of_10_at_once_hot_1000",
                    );
                    bench_requests(&mut group, id, &flags, hot, &users, Ask::AtOnce);
                }
            }
            if count == HOT_KEYS && matches!(mix, Mix::Rollout) {
                let packed_uuids = uuid_user_ids();
                let uuids = packed_uuids.slices();
                let id = BenchmarkId::new(format!("{count}_flags"), "rollout_uuid_users");
                group.bench_function(id, |b| {
                    let mut state = 0x2545_f491_4f6c_dd1d_u64;
                    b.iter(|| {
                        let r = next(&mut state);
                        let key = keys[pick(r, keys.len())];
                        let user = uuids[pick(r.rotate_left(32), uuids.len())];
                        flags.is_enabled(black_box(key), Some(black_box(user)))
                    })
                });
            }
            if count > HOT_KEYS && matches!(mix, Mix::Rollout) {
                // All flags loaded, but the evaluations go to a hot subset (spread over the
                // whole table), as a service that has many flags but uses some per request.
                let hot = &keys[..HOT_KEYS];
                let id = BenchmarkId::new(format!("{count}_flags"), "rollout_hot_1000");
                group.bench_function(id, |b| {
                    let mut state = 0x2545_f491_4f6c_dd1d_u64;
                    b.iter(|| {
                        let r = next(&mut state);
                        let key = hot[pick(r, hot.len())];
                        let user = users[pick(r.rotate_left(32), users.len())];
                        flags.is_enabled(black_box(key), Some(black_box(user)))
                    })
                });
            }
        }
    }
    group.finish();

    // The same loop without evaluation: the key lookup alone, and the loop's own overhead
    // (picking a key and a user, and reading the key's bytes, which a real caller holding a
    // string literal gets for free).
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(1));
    for count in [1_000usize, 100_000] {
        let (packed_keys, bytes) = document(count, Mix::Rollout);
        let keys = packed_keys.slices();
        let flags = Flags::from_json(&bytes).unwrap();
        group.bench_function(format!("{count}_flags/pick_only"), |b| {
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            b.iter(|| {
                let r = next(&mut state);
                let key = black_box(keys[pick(r, keys.len())]);
                let user = black_box(users[pick(r.rotate_left(32), users.len())]);
                key.as_bytes().last().copied().unwrap_or_default() ^ user.as_bytes()[0]
            })
        });
        // The rank alone (SHA-256 of `key:user` and its reduction) over the same picks: the
        // floor that an evaluation adds the lookup and the rules to.
        group.bench_function(format!("{count}_flags/rank_only"), |b| {
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            b.iter(|| {
                let r = next(&mut state);
                let key = keys[pick(r, keys.len())];
                let user = users[pick(r.rotate_left(32), users.len())];
                rollout_rank(black_box(key), black_box(user))
            })
        });
        group.bench_function(format!("{count}_flags/get"), |b| {
            let snapshot = flags.snapshot_arc();
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            b.iter(|| {
                let r = next(&mut state);
                let key = keys[pick(r, keys.len())];
                let _user = users[pick(r.rotate_left(32), users.len())];
                snapshot.flags().get(black_box(key)).is_some()
            })
        });
    }
    group.finish();
}

fn reload(c: &mut Criterion) {
    // ~1 MiB, the ConfigMap limit: mixed flags with allow-lists of a few users each.
    let mut count = 4_000;
    let bytes = loop {
        let (_, bytes) = document(count, Mix::Mixed);
        if bytes.len() >= 1 << 20 {
            break bytes;
        }
        count += 250;
    };
    let mut group = c.benchmark_group("reload");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(30);
    group.bench_function("1mib", |b| {
        b.iter(|| Flags::from_json(black_box(&bytes)).unwrap())
    });
    group.bench_function("1mib_parse_only", |b| {
        b.iter(|| FlagDocument::from_json(black_box(&bytes)).unwrap())
    });
    group.finish();
    eprintln!("reload/1mib document: {} bytes, {count} flags", bytes.len());
}

criterion_group!(benches, evaluation, reload);
criterion_main!(benches);
