//! `Flags`, its snapshots and the shared reload state that the file and ConfigMap sources
//! feed (see the `client` module docs).

// With neither source compiled in (`openfeature` alone), only static `Flags` exist and the
// reload machinery is unused.
#![cfg_attr(not(any(feature = "reload", feature = "kube")), allow(dead_code))]

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::SystemTime;

use arc_swap::cache::Cache;
use arc_swap::{ArcSwap, Guard};
use sha2::{Digest, Sha256};
use thread_local::ThreadLocal;

use crate::context::Context;
use crate::document::{DocumentError, FlagDocument};
use crate::eval::{Evaluation, FlagSet, Reason};
use crate::shards::{ShardError, ShardRef, Stored, parse_stored};
use crate::targeting::Subject;

/// The ConfigMap key the operator publishes the document under.
pub const FLAGS_KEY: &str = "flags.json";
/// The operator's default ConfigMap name.
pub const DEFAULT_CONFIGMAP: &str = "rollgate-flags";

/// Why flags could not be loaded or reloaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagsError {
    /// The file could not be opened or read (a missing file at [`Flags::load`] is this).
    #[error("reading flag document {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid flag document; `origin` names the file or ConfigMap.
    #[error("{origin}: {error}")]
    Document {
        origin: String,
        #[source]
        error: DocumentError,
    },
    /// `flags.json` is the index of a sharded document and its shards do not make one:
    /// one is missing, or was written at another generation (a publish under way).
    #[error("{origin}: {error}")]
    Shard {
        origin: String,
        #[source]
        error: Box<ShardError>,
    },
    /// Neither the file watcher nor polling could be started.
    #[cfg(feature = "reload")]
    #[error("watching {path}: {source}")]
    Watch {
        path: std::path::PathBuf,
        #[source]
        source: notify::Error,
    },
    /// The background reload thread could not be started.
    #[error("starting the flag reload thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The ConfigMap does not exist (at start), or was deleted while watched.
    #[error("ConfigMap {namespace}/{name} not found")]
    ConfigMapNotFound { namespace: String, name: String },
    /// The ConfigMap exists but has no `flags.json` key in `data` or `binaryData`.
    #[error("ConfigMap {namespace}/{name} has no key \"flags.json\"")]
    MissingKey { namespace: String, name: String },
    /// The API server refused or failed the request (RBAC, network, …).
    #[cfg(feature = "kube")]
    #[error("reading ConfigMap {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: ::kube::Error,
    },
}

impl FlagsError {
    /// A short, stable label for metrics (`rollgate_sdk_reload_errors_total{category}`).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Document { .. } => "document",
            Self::Shard { .. } => "shard",
            #[cfg(feature = "reload")]
            Self::Watch { .. } => "watch",
            Self::Spawn(_) => "spawn",
            Self::ConfigMapNotFound { .. } => "not-found",
            Self::MissingKey { .. } => "missing-key",
            #[cfg(feature = "kube")]
            Self::Api { .. } => "api",
        }
    }
}

/// The client's flag set: the core [`FlagSet`] with its key index hashed by foldhash, which is
/// several times faster than SipHash on flag-key-sized strings. Flag keys come from the
/// operator's document, not from end users, so SipHash's flooding resistance buys nothing here;
/// foldhash is still seeded per process.
pub type ClientFlagSet = FlagSet<foldhash::fast::RandomState>;

/// Compiles a document for the client, on the thread that loads it (never a reader's).
pub(crate) fn compile(document: &FlagDocument) -> ClientFlagSet {
    ClientFlagSet::from_document_with_hasher(document)
}

/// One accepted flag document, compiled for evaluation. Immutable: a reload builds a new one.
///
/// Its evaluations (and those of [`Flags`] and [`SnapshotGuard`], which go through it) are
/// recorded into the current request scope under the `metrics` feature; those of
/// [`FlagSnapshot::flags`], the core set, are not.
#[derive(Debug)]
pub struct FlagSnapshot {
    flags: ClientFlagSet,
    generation: u64,
    loaded_at: SystemTime,
    digest: [u8; 32],
    #[cfg(feature = "document")]
    document: FlagDocument,
}

impl FlagSnapshot {
    /// Compiles `document` into a snapshot (keeping the document under the `document` feature).
    fn compile(document: FlagDocument, generation: u64, digest: [u8; 32]) -> Self {
        Self {
            flags: compile(&document),
            generation,
            loaded_at: SystemTime::now(),
            digest,
            #[cfg(feature = "document")]
            document,
        }
    }

    /// The parsed document this snapshot was compiled from (sharded documents put together):
    /// the per-flag fields evaluation does not read, such as `phase`, `percent` and
    /// `generation`. Feature `document`.
    #[cfg(feature = "document")]
    pub fn document(&self) -> &FlagDocument {
        &self.document
    }

    /// The compiled flags of this document.
    pub fn flags(&self) -> &ClientFlagSet {
        &self.flags
    }

    /// 1 for the first document, +1 for each accepted document with different content.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When this document was accepted.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// SHA-256 of the document bytes (the operator's `rollgate.dev/content-hash`).
    pub fn content_hash(&self) -> String {
        self.digest
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    // Under the `metrics` feature each evaluation first checks whether the process uses
    // request scopes (one relaxed load), and if so takes the out-of-line recording path, so
    // that the path without scopes stays as small as without the feature. Each call has a
    // form for a user id and one for a [`Context`] (`_with`); both go through the same code.

    /// Full evaluation, borrowing the variant name from this snapshot.
    #[inline]
    pub fn evaluate(&self, key: &str, user: Option<&str>) -> Evaluation<'_> {
        self.evaluate_for(key, Subject::user(user))
    }

    /// [`FlagSnapshot::evaluate`] for a context, whose attributes the targeting rules test.
    #[inline]
    pub fn evaluate_with(&self, key: &str, context: &Context) -> Evaluation<'_> {
        self.evaluate_for(key, Subject::context(context))
    }

    #[inline]
    pub fn is_enabled(&self, key: &str, user: Option<&str>) -> bool {
        self.is_enabled_for(key, Subject::user(user))
    }

    #[inline]
    pub fn is_enabled_with(&self, key: &str, context: &Context) -> bool {
        self.is_enabled_for(key, Subject::context(context))
    }

    #[inline]
    pub fn variant(&self, key: &str, user: Option<&str>) -> Option<&str> {
        self.evaluate(key, user).variant
    }

    #[inline]
    pub fn variant_with(&self, key: &str, context: &Context) -> Option<&str> {
        self.evaluate_with(key, context).variant
    }

    /// Several flags for one user at once (see [`crate::FlagSet::evaluate_many`]).
    #[inline]
    pub fn evaluate_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [Evaluation<'_>; N] {
        self.evaluate_many_for(keys, Subject::user(user))
    }

    /// [`FlagSnapshot::evaluate_many`] for a context.
    #[inline]
    pub fn evaluate_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [Evaluation<'_>; N] {
        self.evaluate_many_for(keys, Subject::context(context))
    }

    /// [`FlagSnapshot::evaluate_many`], on or off only.
    #[inline]
    pub fn is_enabled_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [bool; N] {
        self.is_enabled_many_for(keys, Subject::user(user))
    }

    /// [`FlagSnapshot::evaluate_many_with`], on or off only.
    #[inline]
    pub fn is_enabled_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [bool; N] {
        self.is_enabled_many_for(keys, Subject::context(context))
    }

    #[inline(always)]
    fn evaluate_for(&self, key: &str, subject: Subject<'_>) -> Evaluation<'_> {
        #[cfg(feature = "metrics")]
        if crate::metrics::scopes_in_use() {
            return self.evaluate_recorded(key, subject);
        }
        self.flags.evaluate_for(key, subject)
    }

    #[inline(always)]
    fn is_enabled_for(&self, key: &str, subject: Subject<'_>) -> bool {
        // Recorded through `evaluate`: the cohort of a flag with variants is its variant.
        #[cfg(feature = "metrics")]
        if crate::metrics::scopes_in_use() {
            return self.evaluate_recorded(key, subject).enabled;
        }
        self.flags.evaluate_for(key, subject).enabled
    }

    #[inline(always)]
    fn evaluate_many_for<const N: usize>(
        &self,
        keys: [&str; N],
        subject: Subject<'_>,
    ) -> [Evaluation<'_>; N] {
        #[cfg(feature = "metrics")]
        if crate::metrics::scopes_in_use() {
            return self.evaluate_many_recorded(keys, subject);
        }
        self.flags.evaluate_many_for(keys, subject)
    }

    #[inline(always)]
    fn is_enabled_many_for<const N: usize>(
        &self,
        keys: [&str; N],
        subject: Subject<'_>,
    ) -> [bool; N] {
        self.evaluate_many_for(keys, subject)
            .map(|answer| answer.enabled)
    }

    /// An evaluation recorded into the current request scope, if there is one.
    #[cfg(feature = "metrics")]
    #[inline(never)]
    fn evaluate_recorded(&self, key: &str, subject: Subject<'_>) -> Evaluation<'_> {
        let evaluation = self.flags.evaluate_for(key, subject);
        crate::metrics::record_current(key, &evaluation);
        evaluation
    }

    #[cfg(feature = "metrics")]
    #[inline(never)]
    fn evaluate_many_recorded<const N: usize>(
        &self,
        keys: [&str; N],
        subject: Subject<'_>,
    ) -> [Evaluation<'_>; N] {
        let answers = self.flags.evaluate_many_for(keys, subject);
        for (key, answer) in keys.iter().zip(&answers) {
            crate::metrics::record_current(key, answer);
        }
        answers
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

/// A lock-free borrow of the current snapshot ([`Flags::snapshot`]).
///
/// Cheap to take (no reference-count traffic in the common case) and meant to be short-lived:
/// take one per request to evaluate several flags against one consistent document, then drop
/// it. A reload that happens meanwhile does not affect it. To keep a snapshot for long, use
/// [`Flags::snapshot_arc`].
pub struct SnapshotGuard(Guard<Arc<FlagSnapshot>>);

impl Deref for SnapshotGuard {
    type Target = FlagSnapshot;

    #[inline]
    fn deref(&self) -> &FlagSnapshot {
        &self.0
    }
}

impl fmt::Debug for SnapshotGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SnapshotGuard")
            .field(&self.generation())
            .finish()
    }
}

/// An evaluation that owns its variant name, so it can outlive the snapshot it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagEvaluation {
    pub enabled: bool,
    pub variant: Option<String>,
    pub reason: Reason,
    /// The user's rollout rank (0..10000), when it was needed to decide.
    pub rank: Option<u16>,
    /// The targeting rule that decided, as [`Evaluation::rule`].
    pub rule: Option<String>,
}

impl From<Evaluation<'_>> for FlagEvaluation {
    fn from(evaluation: Evaluation<'_>) -> Self {
        Self {
            enabled: evaluation.enabled,
            variant: evaluation.variant.map(str::to_owned),
            reason: evaluation.reason,
            rank: evaluation.rank,
            rule: evaluation.rule.map(str::to_owned),
        }
    }
}

/// Sent to every [`Flags::subscribe`] receiver when a new document is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagsChanged {
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// Keys added, removed, or whose evaluation rules changed, sorted. Changes that cannot
    /// change an answer (`phase`, `generation`, `updatedAt`) are not listed; such a document
    /// still gets a new generation.
    pub changed: Vec<String>,
}

/// What a source did with new bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Same content as the current snapshot.
    Unchanged,
    /// A new snapshot with this generation is live.
    Updated(u64),
    /// Refused again: the same bytes were refused before, so nothing was counted.
    RefusedAgain,
}

/// State shared by the `Flags` handles and the one source task that updates it.
pub(crate) struct Shared {
    /// Shared with each thread's cache of it.
    current: Arc<ArcSwap<FlagSnapshot>>,
    /// Each thread's cache of `current`, see [`Shared::with_current`].
    thread_caches: ThreadLocal<RefCell<SnapshotCache>>,
    origin: String,
    reload_errors: AtomicU64,
    /// Failure bookkeeping, touched only by the source task and by error readers.
    failures: Mutex<Failures>,
    subscribers: Mutex<Vec<mpsc::Sender<FlagsChanged>>>,
    #[cfg(feature = "kube")]
    generation_tx: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Failures {
    last: Option<Arc<FlagsError>>,
    /// Digest of the last refused document, so a source that hands the same bad bytes again
    /// (a relist, a poll) does not count it twice.
    refused_digest: Option<[u8; 32]>,
    /// Digest of an index whose shards did not match yet. The source reads it again until
    /// they do; the wait counts as one failure, not one per read.
    waiting_digest: Option<[u8; 32]>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The protected data stays consistent across a panic in a subscriber's send, so a
    // poisoned lock is still usable; flags must keep working.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The document in `bytes`, or put together from the shards its index names.
fn parse<B: AsRef<[u8]>>(
    origin: &str,
    bytes: &[u8],
    read_shard: impl FnMut(&ShardRef) -> Option<B>,
) -> Result<FlagDocument, FlagsError> {
    let document_error = |error| FlagsError::Document {
        origin: origin.to_owned(),
        error,
    };
    match parse_stored(bytes).map_err(document_error)? {
        Stored::Document(document) => Ok(document),
        Stored::Index(index) => index
            .assemble(read_shard)
            .map_err(|error| FlagsError::Shard {
                origin: origin.to_owned(),
                error: Box::new(error),
            }),
    }
}

/// Whether `bytes` hold the index of a sharded document (the API source then fetches its
/// shards).
#[cfg(feature = "kube")]
pub(crate) fn shard_index(bytes: &[u8]) -> Option<crate::shards::ShardIndex> {
    match parse_stored(bytes) {
        Ok(Stored::Index(index)) => Some(index),
        _ => None,
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Shared {
    /// Parses the first document; a source exists only once this has succeeded.
    pub(crate) fn from_bytes(origin: String, bytes: &[u8]) -> Result<Self, FlagsError> {
        Self::from_stored(origin, bytes, |_| None::<Vec<u8>>)
    }

    /// As [`Self::from_bytes`], reading the shards when `bytes` is an index.
    pub(crate) fn from_stored<B: AsRef<[u8]>>(
        origin: String,
        bytes: &[u8],
        read_shard: impl FnMut(&ShardRef) -> Option<B>,
    ) -> Result<Self, FlagsError> {
        let document = parse(&origin, bytes, read_shard)?;
        let snapshot = FlagSnapshot::compile(document, 1, digest(bytes));
        Ok(Self::from_snapshot(origin, snapshot))
    }

    fn from_snapshot(origin: String, snapshot: FlagSnapshot) -> Self {
        Self {
            thread_caches: ThreadLocal::new(),
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            origin,
            reload_errors: AtomicU64::new(0),
            failures: Mutex::new(Failures::default()),
            subscribers: Mutex::new(Vec::new()),
            #[cfg(feature = "kube")]
            generation_tx: tokio::sync::watch::Sender::new(1),
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Offers new document bytes. Only the source task calls this, so generations are
    /// assigned without races. On any error the current snapshot stays.
    #[cfg(test)]
    pub(crate) fn apply(&self, bytes: &[u8]) -> Result<Applied, Arc<FlagsError>> {
        self.apply_stored(bytes, |_| None::<Vec<u8>>)
    }

    /// As [`Self::apply`], reading the shards when `bytes` is an index. The index names
    /// every shard's hash, so its bytes alone tell whether anything changed. Shards that do
    /// not match are not remembered as refused: the source offers the same index again once
    /// they may have caught up.
    pub(crate) fn apply_stored<B: AsRef<[u8]>>(
        &self,
        bytes: &[u8],
        read_shard: impl FnMut(&ShardRef) -> Option<B>,
    ) -> Result<Applied, Arc<FlagsError>> {
        let digest = digest(bytes);
        let current = self.current.load_full();
        if current.digest == digest {
            self.clear_failure();
            return Ok(Applied::Unchanged);
        }
        if lock(&self.failures).refused_digest == Some(digest) {
            return Ok(Applied::RefusedAgain);
        }
        let document = match parse(&self.origin, bytes, read_shard) {
            Ok(document) => document,
            Err(error) => {
                if !matches!(error, FlagsError::Shard { .. }) {
                    let error = self.record_failure(error);
                    lock(&self.failures).refused_digest = Some(digest);
                    return Err(error);
                }
                let counted = {
                    let failures = lock(&self.failures);
                    (failures.waiting_digest == Some(digest))
                        .then(|| failures.last.clone())
                        .flatten()
                };
                if let Some(counted) = counted {
                    return Err(counted);
                }
                let error = self.record_failure(error);
                lock(&self.failures).waiting_digest = Some(digest);
                return Err(error);
            }
        };
        let generation = current.generation + 1;
        let snapshot = Arc::new(FlagSnapshot::compile(document, generation, digest));
        let changed = changed_keys(current.flags(), snapshot.flags());
        let loaded_at = snapshot.loaded_at;
        self.current.store(snapshot);
        self.clear_failure();
        tracing::info!(
            origin = %self.origin,
            generation,
            changed = changed.len(),
            "loaded flag document"
        );
        self.notify(FlagsChanged {
            generation,
            loaded_at,
            changed,
        });
        Ok(Applied::Updated(generation))
    }

    /// Counts and logs a failure; the current snapshot stays.
    pub(crate) fn record_failure(&self, error: FlagsError) -> Arc<FlagsError> {
        let error = Arc::new(error);
        self.reload_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            origin = %self.origin,
            category = error.category(),
            generation = self.current.load().generation,
            "{error}; keeping the last good flags"
        );
        lock(&self.failures).last = Some(Arc::clone(&error));
        error
    }

    /// The source is healthy again: forget the last error (the counter stays).
    pub(crate) fn clear_failure(&self) {
        let mut failures = lock(&self.failures);
        failures.last = None;
        failures.refused_digest = None;
        failures.waiting_digest = None;
    }

    fn notify(&self, change: FlagsChanged) {
        lock(&self.subscribers).retain(|subscriber| subscriber.send(change.clone()).is_ok());
        #[cfg(feature = "kube")]
        self.generation_tx.send_replace(change.generation);
    }
}

/// One thread's handle on the current snapshot: arc-swap's cache, which keeps the snapshot the
/// thread last read and compares its address with the current one on each read.
type SnapshotCache = Cache<Arc<ArcSwap<FlagSnapshot>>, Arc<FlagSnapshot>>;

impl Shared {
    /// Runs `read` on the current snapshot.
    ///
    /// Through the calling thread's cache while the snapshot is unchanged: a read is then a
    /// few plain loads, where arc-swap's `load` does two read-modify-writes, which also keep
    /// the CPU from overlapping consecutive evaluations. A reload is still seen by the next
    /// call on every thread: the cache compares its snapshot with the current pointer on every
    /// read.
    ///
    /// The cost is memory: each thread that evaluated keeps the snapshot it last used until it
    /// evaluates again, so an idle thread can hold one superseded document alive; all of them
    /// go when the last `Flags` handle of this source is dropped.
    #[inline(always)]
    fn with_current<R>(&self, read: impl FnOnce(&FlagSnapshot) -> R) -> R {
        match self.thread_caches.get().map(RefCell::try_borrow_mut) {
            Some(Ok(mut cache)) => read(cache.load()),
            _ => self.with_current_slow(read),
        }
    }

    /// This thread's first read of this source makes its cache. Should the cache ever be
    /// borrowed already (a read nested in a read, which evaluation never does), arc-swap
    /// serves the read instead of a panic.
    #[cold]
    #[inline(never)]
    fn with_current_slow<R>(&self, read: impl FnOnce(&FlagSnapshot) -> R) -> R {
        let cell = self
            .thread_caches
            .get_or(|| RefCell::new(Cache::new(Arc::clone(&self.current))));
        match cell.try_borrow_mut() {
            Ok(mut cache) => read(cache.load()),
            Err(_) => read(&self.current.load()),
        }
    }
}

/// Keys whose compiled rules differ between two flag sets, sorted.
fn changed_keys(old: &ClientFlagSet, new: &ClientFlagSet) -> Vec<String> {
    let mut changed: HashSet<&str> = HashSet::new();
    for flag in new.iter() {
        if old.get(flag.key()) != Some(flag) {
            changed.insert(flag.key());
        }
    }
    for flag in old.iter() {
        if new.get(flag.key()).is_none() {
            changed.insert(flag.key());
        }
    }
    let mut changed: Vec<String> = changed.into_iter().map(str::to_owned).collect();
    changed.sort_unstable();
    changed
}

/// Stops a source's background work when the last `Flags` clone is dropped.
pub(crate) struct SourceHandle {
    stop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl SourceHandle {
    pub(crate) fn new(stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            stop: Some(Box::new(stop)),
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// Flags kept current by a source, evaluated without locks. Cheap to clone; clones share the
/// snapshot and the source. The source stops when the last clone is dropped.
#[derive(Clone)]
pub struct Flags {
    shared: Arc<Shared>,
    _source: Option<Arc<SourceHandle>>,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("Flags")
            .field("origin", &self.shared.origin)
            .field("generation", &snapshot.generation())
            .field("flags", &snapshot.len())
            .field("reload_errors", &self.reload_errors())
            .finish()
    }
}

impl Flags {
    pub(crate) fn with_source(shared: Arc<Shared>, source: Option<SourceHandle>) -> Self {
        Self {
            shared,
            _source: source.map(Arc::new),
        }
    }

    /// Fixed flags from document bytes, with no source: for tests, and for a process that
    /// reads its flags once.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FlagsError> {
        let shared = Shared::from_bytes("static document".into(), bytes)?;
        Ok(Self::with_source(Arc::new(shared), None))
    }

    /// Fixed flags from a parsed document, with no source.
    pub fn from_document(document: &FlagDocument) -> Self {
        let bytes = document.to_json();
        let snapshot = FlagSnapshot::compile(document.clone(), 1, digest(bytes.as_bytes()));
        let shared = Shared::from_snapshot("static document".into(), snapshot);
        Self::with_source(Arc::new(shared), None)
    }

    /// Borrows the current snapshot without locking. Evaluate every flag of one request
    /// through one snapshot to see one consistent document.
    #[inline]
    pub fn snapshot(&self) -> SnapshotGuard {
        SnapshotGuard(self.shared.current.load())
    }

    /// The current snapshot as an owned `Arc`, for keeping across a long operation.
    pub fn snapshot_arc(&self) -> Arc<FlagSnapshot> {
        self.shared.current.load_full()
    }

    /// Whether `key` is on for `user` (`None`: no user id, only 100% flags are on).
    /// A key that is not in the document is off.
    #[inline]
    pub fn is_enabled(&self, key: &str, user: Option<&str>) -> bool {
        self.shared
            .with_current(|snapshot| snapshot.is_enabled(key, user))
    }

    /// [`Flags::is_enabled`] for a context: its targeting key is the user id, and targeting
    /// rules test its attributes.
    #[inline]
    pub fn is_enabled_with(&self, key: &str, context: &Context) -> bool {
        self.shared
            .with_current(|snapshot| snapshot.is_enabled_with(key, context))
    }

    /// The user's variant of an A/B flag, owned. Allocates only when a variant is assigned;
    /// `snapshot().variant(..)` borrows instead.
    #[inline]
    pub fn variant(&self, key: &str, user: Option<&str>) -> Option<String> {
        self.shared
            .with_current(|snapshot| snapshot.variant(key, user).map(str::to_owned))
    }

    /// [`Flags::variant`] for a context.
    #[inline]
    pub fn variant_with(&self, key: &str, context: &Context) -> Option<String> {
        self.shared
            .with_current(|snapshot| snapshot.variant_with(key, context).map(str::to_owned))
    }

    /// The full answer: on or off, variant, reason, rank and the rule that decided.
    #[inline]
    pub fn evaluate(&self, key: &str, user: Option<&str>) -> FlagEvaluation {
        self.shared
            .with_current(|snapshot| snapshot.evaluate(key, user).into())
    }

    /// [`Flags::evaluate`] for a context.
    #[inline]
    pub fn evaluate_with(&self, key: &str, context: &Context) -> FlagEvaluation {
        self.shared
            .with_current(|snapshot| snapshot.evaluate_with(key, context).into())
    }

    /// Whether each of `keys` is on for `user`, in the order of `keys`:
    /// `let [checkout, search] = flags.is_enabled_many(["new-checkout", "new-search"], user);`
    ///
    /// The answers are those of [`Flags::is_enabled`] per key, all from one document even if
    /// a reload lands meanwhile. With a flag table larger than the cache they cost less than
    /// one call per key, because the lookups overlap (see `docs/sdk.md`).
    #[inline]
    pub fn is_enabled_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [bool; N] {
        self.shared
            .with_current(|snapshot| snapshot.is_enabled_many(keys, user))
    }

    /// [`Flags::is_enabled_many`] for a context.
    #[inline]
    pub fn is_enabled_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [bool; N] {
        self.shared
            .with_current(|snapshot| snapshot.is_enabled_many_with(keys, context))
    }

    /// [`Flags::evaluate`] of each of `keys`, as [`Flags::is_enabled_many`].
    pub fn evaluate_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [FlagEvaluation; N] {
        self.shared
            .with_current(|snapshot| snapshot.evaluate_many(keys, user).map(FlagEvaluation::from))
    }

    /// [`Flags::evaluate_many`] for a context.
    pub fn evaluate_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [FlagEvaluation; N] {
        self.shared.with_current(|snapshot| {
            snapshot
                .evaluate_many_with(keys, context)
                .map(FlagEvaluation::from)
        })
    }

    /// Generation of the current snapshot (1 for the first document).
    pub fn generation(&self) -> u64 {
        self.shared.current.load().generation()
    }

    /// When the current snapshot was accepted.
    pub fn loaded_at(&self) -> SystemTime {
        self.shared.current.load().loaded_at()
    }

    /// Documents refused or sources that failed since start (never reset).
    pub fn reload_errors(&self) -> u64 {
        self.shared.reload_errors.load(Ordering::Relaxed)
    }

    /// The most recent failure, or `None` once a later reload succeeded (or the source
    /// returned to the current content).
    pub fn last_reload_error(&self) -> Option<Arc<FlagsError>> {
        lock(&self.shared.failures).last.clone()
    }

    /// Where the flags come from: `file <path>`, `ConfigMap <ns>/<name>` or `static document`.
    pub fn origin(&self) -> &str {
        self.shared.origin()
    }

    /// A channel that receives a [`FlagsChanged`] for every accepted document after this
    /// call. Unbounded: drain it, or drop the receiver to unsubscribe.
    pub fn subscribe(&self) -> mpsc::Receiver<FlagsChanged> {
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// The current generation as a `tokio::sync::watch`, for async code: `changed().await`
    /// wakes on every accepted document.
    #[cfg(feature = "kube")]
    pub fn subscribe_async(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.generation_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_A: &[u8] = br#"{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":100},"b":{"key":"b","enabled":true,"percent":0}}}"#;
    const DOC_B: &[u8] = br#"{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":false,"percent":100},"c":{"key":"c","enabled":true,"percent":0}}}"#;

    fn percent_document(percent: u32) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":1,"flags":{{"f":{{"key":"f","enabled":true,"percent":{percent},
            "phase":"Static","generation":1,"updatedAt":"2026-11-24T08:00:00Z"}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn flags_asked_at_once_answer_as_one_by_one_from_one_document() {
        let flags = Flags::from_json(&percent_document(50)).unwrap();
        for user in (0..200).map(|i| format!("user-{i}")) {
            let user = Some(user.as_str());
            let keys = ["f", "missing", "f"];
            let on = flags.is_enabled_many(keys, user);
            assert_eq!(on, keys.map(|key| flags.is_enabled(key, user)));
            let full = flags.evaluate_many(keys, user);
            assert_eq!(full, keys.map(|key| flags.evaluate(key, user)));
            assert_eq!(full[1].reason, Reason::Missing);
        }
        // After a reload every answer of a batch comes from the new document.
        flags.shared.apply(&percent_document(100)).unwrap();
        assert_eq!(flags.is_enabled_many(["f", "f"], Some("u")), [true, true]);
    }

    #[test]
    fn threads_evaluating_in_a_loop_see_a_reload_on_their_next_call() {
        let shared = Arc::new(Shared::from_bytes("test".into(), &percent_document(100)).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let applied = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        // Calls that began after the apply returned and still saw the old
                        // document.
                        let mut stale_after_apply = 0u32;
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(10);
                        loop {
                            let was_applied = applied.load(Ordering::Acquire);
                            if !flags.is_enabled("f", None) {
                                return Ok(stale_after_apply);
                            }
                            if was_applied {
                                stale_after_apply += 1;
                            }
                            if std::time::Instant::now() > deadline {
                                return Err("the reload was never seen");
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(20));
            shared.apply(&percent_document(0)).unwrap();
            applied.store(true, Ordering::Release);
            for reader in readers {
                assert_eq!(reader.join().unwrap(), Ok(0));
            }
        });
        assert_eq!(flags.generation(), 2);
    }

    #[test]
    fn two_sources_read_on_one_thread_keep_their_own_answers() {
        let first = Flags::from_json(DOC_A).unwrap();
        let second = Flags::from_json(DOC_B).unwrap();
        for _ in 0..3 {
            assert!(first.is_enabled("a", None));
            assert!(!second.is_enabled("a", None));
            assert_eq!(first.evaluate("c", None).reason, Reason::Missing);
            assert_eq!(second.evaluate("b", None).reason, Reason::Missing);
        }
    }

    #[test]
    fn a_thread_cache_lets_go_of_a_superseded_snapshot() {
        let shared = Arc::new(Shared::from_bytes("test".into(), DOC_A).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let first = Arc::downgrade(&flags.snapshot_arc());
        assert!(flags.is_enabled("a", None));
        shared.apply(DOC_B).unwrap();
        assert!(
            first.upgrade().is_some(),
            "this thread's cache still holds it"
        );
        assert!(!flags.is_enabled("a", None));
        assert!(
            first.upgrade().is_none(),
            "the next read replaced the cached snapshot"
        );

        let second = Arc::downgrade(&flags.snapshot_arc());
        let reader = Flags::clone(&flags);
        std::thread::spawn(move || assert!(!reader.is_enabled("a", None)))
            .join()
            .unwrap();
        drop((flags, shared));
        assert!(
            second.upgrade().is_none(),
            "the last handle freed every cache"
        );
    }

    #[test]
    fn apply_swaps_counts_and_notifies() {
        let shared = Arc::new(Shared::from_bytes("test".into(), DOC_A).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let changes = flags.subscribe();
        assert!(flags.is_enabled("a", None));
        assert_eq!(shared.apply(DOC_A).unwrap(), Applied::Unchanged);
        assert!(shared.apply(b"{not json").is_err());
        assert_eq!(shared.apply(b"{not json").unwrap(), Applied::RefusedAgain);
        assert_eq!(flags.reload_errors(), 1);
        assert_eq!(flags.last_reload_error().unwrap().category(), "document");
        assert!(flags.is_enabled("a", None), "kept the last good flags");
        assert_eq!(shared.apply(DOC_B).unwrap(), Applied::Updated(2));
        assert!(!flags.is_enabled("a", None));
        assert!(flags.last_reload_error().is_none());
        let change = changes.try_recv().unwrap();
        assert_eq!(change.generation, 2);
        assert_eq!(change.changed, ["a", "b", "c"]);
    }

    #[test]
    fn a_document_with_a_malformed_rule_keeps_the_last_good_flags() {
        let rule = |value: &str| {
            format!(
                r#"{{"schemaVersion":2,"flags":{{"f":{{"key":"f","enabled":true,"percent":0,
                "targeting":[{{"name":"adults","serve":{{"enabled":true}},
                "conditions":[{{"attribute":"age","operator":"Gte","values":["{value}"]}}]}}]}}}}}}"#
            )
            .into_bytes()
        };
        let shared = Arc::new(Shared::from_bytes("test".into(), &rule("18")).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let adult = Context::new("u").with("age", 30);
        assert!(flags.is_enabled_with("f", &adult));
        let error = shared.apply(&rule("eighteen")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("flags.f.targeting[0].conditions[0].values[0]"),
            "{error}"
        );
        assert!(
            flags.is_enabled_with("f", &adult),
            "kept the last good flags"
        );
        assert_eq!(shared.apply(&rule("40")).unwrap(), Applied::Updated(2));
        assert!(!flags.is_enabled_with("f", &adult));
        let answer = flags.evaluate_with("f", &Context::new("u").with("age", 41));
        assert_eq!(
            (answer.reason, answer.rule.as_deref()),
            (Reason::TargetingMatch, Some("adults"))
        );
    }

    #[test]
    fn metadata_only_changes_are_not_listed() {
        let shared = Arc::new(Shared::from_bytes("test".into(), DOC_A).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let changes = flags.subscribe();
        let touched = br#"{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":100,"phase":"Complete"},"b":{"key":"b","enabled":true,"percent":0}}}"#;
        assert_eq!(shared.apply(touched).unwrap(), Applied::Updated(2));
        assert!(changes.try_recv().unwrap().changed.is_empty());
    }

    #[cfg(feature = "document")]
    #[test]
    fn each_snapshot_keeps_the_document_it_was_compiled_from() {
        let shared = Arc::new(Shared::from_bytes("test".into(), &percent_document(50)).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        let first = flags.snapshot_arc();
        let entry = &first.document().flags["f"];
        assert_eq!((entry.percent, entry.phase.as_str()), (50.0, "Static"));
        shared.apply(&percent_document(75)).unwrap();
        assert_eq!(flags.snapshot().document().flags["f"].percent, 75.0);
        assert_eq!(
            first.document().flags["f"].percent,
            50.0,
            "an old snapshot keeps its own"
        );
        let fixed = Flags::from_json(DOC_A).unwrap();
        assert_eq!(fixed.snapshot().document().flags.len(), 2);
    }

    #[test]
    fn owned_evaluation_matches_borrowed() {
        let flags = Flags::from_json(DOC_A).unwrap();
        let owned = flags.evaluate("a", Some("u"));
        let snapshot = flags.snapshot();
        let borrowed = snapshot.evaluate("a", Some("u"));
        assert_eq!(owned, FlagEvaluation::from(borrowed));
        assert_eq!(owned.reason, Reason::FullRollout);
        assert_eq!(flags.evaluate("zz", None).reason, Reason::Missing);
        assert_eq!(snapshot.content_hash().len(), 64);
    }
}
