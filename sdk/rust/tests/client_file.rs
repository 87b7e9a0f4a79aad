//! `Flags::load` against real files laid out exactly as the kubelet lays out a ConfigMap
//! volume, updated with the kubelet's atomic `..data` symlink swap.
//!
//! No fixed sleeps: every wait polls the observable state with a deadline.
#![cfg(all(unix, feature = "reload"))]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rollgate_sdk::{Flags, FlagsError, LoadOptions, Reason};

const DEADLINE: Duration = Duration::from_secs(10);

fn document(checkout_enabled: bool) -> String {
    format!(
        r#"{{"schemaVersion":1,"flags":{{
            "checkout":{{"key":"checkout","enabled":{checkout_enabled},"percent":100}},
            "search":{{"key":"search","enabled":true,"percent":0,"allowedUsers":["qa-1"]}}}}}}"#
    )
}

/// A ConfigMap volume as the kubelet's atomic writer maintains it:
///
/// ```text
/// dir/..2026_11_24_08_00_00.000000001/flags.json
/// dir/..data       -> ..2026_11_24_08_00_00.000000001
/// dir/flags.json   -> ..data/flags.json
/// ```
struct ConfigMapVolume {
    dir: tempfile::TempDir,
    version: u32,
}

impl ConfigMapVolume {
    fn new(content: impl AsRef<[u8]>) -> Self {
        let volume = Self {
            dir: tempfile::tempdir().unwrap(),
            version: 1,
        };
        let first = volume.write_version(1, content);
        symlink(&first, volume.dir.path().join("..data")).unwrap();
        symlink("..data/flags.json", volume.path()).unwrap();
        volume
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("flags.json")
    }

    fn version_dir(version: u32) -> String {
        format!("..2026_11_24_08_00_00.{version:09}")
    }

    fn write_version(&self, version: u32, content: impl AsRef<[u8]>) -> String {
        let name = Self::version_dir(version);
        std::fs::create_dir(self.dir.path().join(&name)).unwrap();
        std::fs::write(self.dir.path().join(&name).join("flags.json"), content).unwrap();
        name
    }

    /// The kubelet's update: new timestamped directory, `..data_tmp` pointing at it, one
    /// atomic rename over `..data`, then the old directory is removed.
    fn update(&mut self, content: impl AsRef<[u8]>) {
        let old = Self::version_dir(self.version);
        self.version += 1;
        let new = self.write_version(self.version, content);
        let tmp = self.dir.path().join("..data_tmp");
        symlink(&new, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
    }
}

/// Polls `condition` until it holds; returns how long that took.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

fn events_only() -> LoadOptions {
    LoadOptions::new().poll_interval(None)
}

#[test]
fn initial_load_reads_the_mounted_file_through_its_symlinks() {
    let volume = ConfigMapVolume::new(document(true));
    let flags = Flags::load(volume.path()).unwrap();
    assert!(flags.is_enabled("checkout", Some("anyone")));
    assert!(flags.is_enabled("search", Some("qa-1")));
    assert!(!flags.is_enabled("search", Some("someone-else")));
    assert_eq!(flags.evaluate("nope", None).reason, Reason::Missing);
    assert_eq!(flags.generation(), 1);
    assert_eq!(flags.reload_errors(), 0);
    assert!(flags.last_reload_error().is_none());
    assert!(flags.origin().ends_with("flags.json"), "{}", flags.origin());
}

#[test]
fn symlink_swap_is_seen_by_the_watcher() {
    let mut volume = ConfigMapVolume::new(document(true));
    // Polling off: only file events can deliver the change.
    let flags = Flags::load_with(volume.path(), events_only()).unwrap();
    let changes = flags.subscribe();
    volume.update(document(false));
    let latency = wait_until("the swap to be seen", || {
        !flags.is_enabled("checkout", None)
    });
    eprintln!("symlink swap visible after {latency:?}");
    assert_eq!(flags.generation(), 2);
    let change = changes.recv_timeout(DEADLINE).unwrap();
    assert_eq!(change.generation, 2);
    assert_eq!(change.changed, ["checkout"]);
    // And again: the watch survives the swap (it is on the directory, not the old inode).
    volume.update(document(true));
    wait_until("the second swap", || flags.is_enabled("checkout", None));
    assert_eq!(flags.generation(), 3);
    assert_eq!(flags.reload_errors(), 0);
}

#[test]
fn polling_alone_sees_the_swap() {
    let mut volume = ConfigMapVolume::new(document(true));
    let options = LoadOptions::new()
        .watch(false)
        .poll_interval(Some(Duration::from_millis(20)));
    let flags = Flags::load_with(volume.path(), options).unwrap();
    volume.update(document(false));
    wait_until("the poll to see the swap", || {
        !flags.is_enabled("checkout", None)
    });
    assert_eq!(flags.generation(), 2);
}

#[test]
fn broken_new_file_keeps_the_last_good_flags_and_counts_the_error() {
    let mut volume = ConfigMapVolume::new(document(true));
    let flags = Flags::load_with(volume.path(), events_only()).unwrap();
    volume.update(r#"{"schemaVersion":1,"flags":{"checkout":{"key":"checkout","#);
    wait_until("the error to be counted", || flags.reload_errors() == 1);
    assert!(
        flags.is_enabled("checkout", None),
        "still the last good flags"
    );
    assert_eq!(flags.snapshot().len(), 2, "never empty");
    assert_eq!(flags.generation(), 1);
    let error = flags.last_reload_error().unwrap();
    assert!(matches!(*error, FlagsError::Document { .. }), "{error}");
    assert!(error.to_string().contains("flags.json"), "{error}");

    volume.update(r#"{"schemaVersion":3,"flags":{}}"#);
    wait_until("the second error", || flags.reload_errors() == 2);
    let error = flags.last_reload_error().unwrap();
    assert!(error.to_string().contains("schemaVersion 3"), "{error}");
    assert!(flags.is_enabled("checkout", None));

    volume.update(document(false));
    wait_until("recovery", || !flags.is_enabled("checkout", None));
    assert!(flags.last_reload_error().is_none());
    assert_eq!(flags.reload_errors(), 2);
    assert_eq!(flags.generation(), 2);
}

#[test]
fn missing_or_invalid_file_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("flags.json");
    match Flags::load(&missing) {
        Err(FlagsError::Read { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    std::fs::write(&missing, "[]").unwrap();
    let error = Flags::load(&missing).unwrap_err();
    assert_eq!(error.category(), "document", "{error}");
}

#[test]
fn garbage_never_panics_and_never_empties_the_flags() {
    let mut volume = ConfigMapVolume::new(document(true));
    let flags = Flags::load_with(volume.path(), events_only()).unwrap();
    let deep = "[".repeat(100_000);
    let garbage: [&[u8]; 8] = [
        b"",
        b"\xff\xfe\x00garbage",
        b"null",
        br#"{"schemaVersion":1}"#,
        br#"{"schemaVersion":1,"flags":{"a":{"key":"b","enabled":true,"percent":1}}}"#,
        br#"{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1e999}}}"#,
        br#"{"schemaVersion":-1,"flags":{}}"#,
        deep.as_bytes(),
    ];
    for (index, bytes) in garbage.iter().enumerate() {
        volume.update(bytes);
        wait_until(&format!("garbage #{index} to be refused"), || {
            flags.reload_errors() == index as u64 + 1
        });
        assert!(flags.is_enabled("checkout", None));
        assert_eq!(flags.snapshot().len(), 2);
    }
    assert_eq!(flags.generation(), 1);
}

#[test]
fn deleted_file_keeps_the_flags_until_it_returns() {
    let volume = ConfigMapVolume::new(document(true));
    let options = LoadOptions::new().poll_interval(Some(Duration::from_millis(20)));
    let flags = Flags::load_with(volume.path(), options).unwrap();
    std::fs::remove_file(volume.path()).unwrap();
    wait_until("the missing file to be counted", || {
        flags.reload_errors() == 1
    });
    assert_eq!(flags.last_reload_error().unwrap().category(), "read");
    assert!(flags.is_enabled("checkout", None));
    symlink("..data/flags.json", volume.path()).unwrap();
    wait_until("the error to clear", || flags.last_reload_error().is_none());
    assert_eq!(flags.generation(), 1, "same content: no new generation");
    assert_eq!(flags.reload_errors(), 1, "counted once, not once per poll");
}

#[test]
fn plain_file_replaced_by_rename_is_seen() {
    // Not a ConfigMap volume: a regular file replaced atomically (write + rename), as a
    // sidecar or `kubectl cp` would do.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    std::fs::write(&path, document(true)).unwrap();
    let flags = Flags::load_with(&path, events_only()).unwrap();
    replace(&path, &document(false));
    wait_until("the rename to be seen", || {
        !flags.is_enabled("checkout", None)
    });
    assert_eq!(flags.generation(), 2);
}

fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn clones_share_one_source_and_dropped_subscribers_are_pruned() {
    let mut volume = ConfigMapVolume::new(document(true));
    let flags = Flags::load_with(volume.path(), events_only()).unwrap();
    let clone = flags.clone();
    drop(flags.subscribe());
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        wait_until("the clone to see the swap", || {
            !clone.is_enabled("checkout", None)
        });
        tx.send(clone.generation()).unwrap();
    });
    volume.update(document(false));
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), 2);
    reader.join().unwrap();
    assert!(!flags.is_enabled("checkout", None));
}

/// Write-to-visible latency of the symlink swap through file events, for `docs/sdk.md`.
/// Run with `--nocapture` to see the numbers.
#[test]
fn swap_latency_through_file_events() {
    let mut volume = ConfigMapVolume::new(document(true));
    let flags = Flags::load_with(volume.path(), events_only()).unwrap();
    let mut latencies = Vec::new();
    for round in 0..20 {
        let enabled = round % 2 == 1;
        let start = Instant::now();
        volume.update(document(enabled));
        wait_until("the swap", || flags.is_enabled("checkout", None) == enabled);
        latencies.push(start.elapsed());
    }
    latencies.sort();
    eprintln!(
        "symlink swap → visible over {} swaps: median {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(flags.generation(), 21);
}

/// Writes a sharded document as a projected volume of the index and shard ConfigMaps lays it
/// out: `flags.json` (the index) beside `flags-shard-<i>.json`. Returns the index bytes.
fn sharded_index(generation: u64, shards: &[String]) -> String {
    let index = rollgate_sdk::ShardIndex {
        schema_version: 1,
        generation,
        shards: shards
            .iter()
            .enumerate()
            .map(|(i, bytes)| rollgate_sdk::ShardRef {
                config_map: format!("rollgate-flags-shard-{i}"),
                key: format!("flags-shard-{i}.json"),
                sha256: rollgate_sdk::content_hash(bytes.as_bytes()),
            })
            .collect(),
    };
    index.to_json()
}

fn one_flag(key: &str, enabled: bool) -> String {
    format!(
        r#"{{"schemaVersion":1,"flags":{{"{key}":{{"key":"{key}","enabled":{enabled},"percent":100}}}}}}"#
    )
}

/// A sharded document reads as one. An index that names a shard not written yet keeps the
/// last good flags (category `shard`), and the reader looks again until the shard arrives.
#[test]
fn a_sharded_document_reads_as_one_and_never_mixes_generations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let shard = |i: usize| dir.path().join(format!("flags-shard-{i}.json"));
    let first = [one_flag("checkout", true), one_flag("search", true)];
    for (i, bytes) in first.iter().enumerate() {
        std::fs::write(shard(i), bytes).unwrap();
    }
    std::fs::write(&path, sharded_index(1, &first)).unwrap();
    let options = LoadOptions::new()
        .watch(false)
        .poll_interval(Some(Duration::from_millis(20)));
    let flags = Flags::load_with(&path, options).unwrap();
    assert!(flags.is_enabled("checkout", None));
    assert!(flags.is_enabled("search", None));

    // The index of generation 2 lands before its shard 1.
    let second = [one_flag("checkout", true), one_flag("search", false)];
    replace(&path, &sharded_index(2, &second));
    wait_until("the mismatch to be seen", || flags.reload_errors() > 0);
    let error = flags.last_reload_error().unwrap();
    assert_eq!(error.category(), "shard");
    assert!(
        error.to_string().contains("rollgate-flags-shard-1"),
        "{error}"
    );
    assert!(error.to_string().contains("generation 2"), "{error}");
    assert!(
        flags.is_enabled("search", None),
        "generation 1 is kept whole"
    );
    // Read again at every poll while it waits, and counted once.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(flags.reload_errors(), 1);

    // The shard arrives; the index itself does not change again.
    replace(&shard(1), &second[1]);
    wait_until("generation 2", || !flags.is_enabled("search", None));
    assert!(flags.is_enabled("checkout", None));
    assert!(flags.last_reload_error().is_none());
    assert_eq!(flags.generation(), 2);

    // A missing shard is named, and the flags stay.
    std::fs::remove_file(shard(0)).unwrap();
    let third = [one_flag("checkout", false), second[1].clone()];
    replace(&path, &sharded_index(3, &third));
    wait_until("the missing shard", || {
        flags
            .last_reload_error()
            .is_some_and(|error| error.to_string().contains("is missing"))
    });
    assert!(flags.is_enabled("checkout", None));
}
