//! The workload client with the flags in memory, case by case, and the parse time of a 1 MiB
//! reload. The SDK's speed targets are ratios, measured by `benches/ratios.rs`.
//!
//! Every iteration picks a flag key and a user id from pre-built lists with a xorshift step,
//! so lookups land all over the table as they would for a service with many flags.
//! Each iteration evaluates a different (flag, user) pair, so no answer can be reused.
//! The keys and user ids are packed as in `support`.
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
use std::hint::black_box;

mod support;
use support::{HOT_KEYS, Mix, SEED, document, next, pick, user_ids, uuid_user_ids};

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
        let mut state = SEED;
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
                let mut state = SEED;
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
                    let mut state = SEED;
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
                    let mut state = SEED;
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
            let mut state = SEED;
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
            let mut state = SEED;
            b.iter(|| {
                let r = next(&mut state);
                let key = keys[pick(r, keys.len())];
                let user = users[pick(r.rotate_left(32), users.len())];
                rollout_rank(black_box(key), black_box(user))
            })
        });
        group.bench_function(format!("{count}_flags/get"), |b| {
            let snapshot = flags.snapshot_arc();
            let mut state = SEED;
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
