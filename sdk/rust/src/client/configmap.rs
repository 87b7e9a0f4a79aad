//! The API source: `Flags::watch_configmap(client, namespace, name)`.
//!
//! Two verbs on one object, nothing else:
//!
//! - `GET /api/v1/namespaces/{ns}/configmaps/{name}` (`get`): loads the first document (and
//!   fails fast on RBAC, a wrong name or a bad document) and gives the `resourceVersion` to
//!   watch from;
//! - `GET …/configmaps?watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3D{name}&allowWatchBookmarks=true&resourceVersion=…`
//!   (`watch`): follows that one ConfigMap from that version.
//!
//! When `flags.json` holds the index of a sharded document, the first `get` and every event
//! of the index also `get` each shard the index names (`GET …/configmaps/{name}-shard-{i}`)
//! whose hash differs from the shard already held, and the snapshot is swapped only when
//! every shard matches the index. Shards are not
//! watched: the operator rewrites the index whenever a shard changes.
//!
//! There is no `list`. The API server turns a `list` or `watch` whose field selector pins
//! `metadata.name` into a request for that name (`RequestInfo.Name`; checked against 1.20), so a
//! Role with `resourceNames: [<name>]` and the verbs `get`, `watch` is enough
//! (`docs/sdk.md` has the Role).
//!
//! The watch loop:
//!
//! - `ADDED`/`MODIFIED`: parse `flags.json` and swap the snapshot; a missing key or a bad
//!   document is logged and counted and the last good flags stay;
//! - `DELETED`: counted once as `not-found`; the last good flags stay and the watch goes on,
//!   so a re-created ConfigMap arrives as `ADDED`;
//! - `BOOKMARK`: only moves the `resourceVersion` on;
//! - a stream the server closed (`timeoutSeconds`) resumes from the last `resourceVersion`;
//! - `410 Gone` (the version left the server's window) re-reads the object with `get` and
//!   watches from its version; a ConfigMap missing at that point is counted once and awaited
//!   with a watch from "now", which delivers it as `ADDED` once it exists;
//! - any other error (network, 403, 5xx) is logged and retried with exponential backoff and
//!   jitter (up to 30 s), resuming from the last `resourceVersion`.
//!
//! A changed ConfigMap reaches the process within the watch latency (a few milliseconds on
//! a local API server).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{WatchEvent, WatchParams};
use kube::{Api, Client};

use super::flags::{
    ClientFlagSet, FLAGS_KEY, Flags, FlagsError, Shared, SourceHandle, compile, shard_index,
};
use crate::document::FlagDocument;
use crate::shards::content_hash;

/// `timeoutSeconds` of each watch request; the server ends the stream after it and the loop
/// resumes from the last `resourceVersion`.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// No bytes for this long past the server's own timeout: the connection is dead.
const WATCH_IDLE_MARGIN: Duration = Duration::from_secs(10);
/// A watch that ends sooner than this without an event counts as a failure for the backoff.
const SHORT_WATCH: Duration = Duration::from_secs(1);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The `flags.json` bytes of a ConfigMap: `data` first, then `binaryData`.
fn document_bytes(configmap: &ConfigMap) -> Result<&[u8], FlagsError> {
    if let Some(text) = configmap.data.as_ref().and_then(|data| data.get(FLAGS_KEY)) {
        return Ok(text.as_bytes());
    }
    if let Some(bytes) = configmap
        .binary_data
        .as_ref()
        .and_then(|data| data.get(FLAGS_KEY))
    {
        return Ok(&bytes.0);
    }
    Err(FlagsError::MissingKey {
        namespace: configmap.metadata.namespace.clone().unwrap_or_default(),
        name: configmap.metadata.name.clone().unwrap_or_default(),
    })
}

fn origin(namespace: &str, name: &str) -> String {
    format!("ConfigMap {namespace}/{name}")
}

/// Parses the flag document of a ConfigMap as the operator publishes it.
pub fn document_from_configmap(configmap: &ConfigMap) -> Result<FlagDocument, FlagsError> {
    let bytes = document_bytes(configmap)?;
    FlagDocument::from_json(bytes).map_err(|error| FlagsError::Document {
        origin: origin(
            configmap.metadata.namespace.as_deref().unwrap_or_default(),
            configmap.metadata.name.as_deref().unwrap_or_default(),
        ),
        error,
    })
}

/// The compiled flags of a ConfigMap: what `watch_configmap` serves for it.
pub fn flag_set_from_configmap(configmap: &ConfigMap) -> Result<ClientFlagSet, FlagsError> {
    document_from_configmap(configmap).map(|document| compile(&document))
}

impl Flags {
    /// Loads the flag document from the ConfigMap `namespace/name` through the API and keeps
    /// it current with a watch on that one object. Must be called inside a Tokio runtime; the
    /// watch runs as a task on it until the last `Flags` clone is dropped.
    ///
    /// Fails if the ConfigMap cannot be read (RBAC, not found), has no `flags.json` key or
    /// holds an invalid document. The `client` decides TLS and credentials: in a pod,
    /// `kube::Client::try_default()` uses the service account, which needs `get` and `watch`
    /// on this one ConfigMap (no `list`).
    pub async fn watch_configmap(
        client: Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, FlagsError> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let configmap = api.get_opt(name).await.map_err(|source| FlagsError::Api {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
        let Some(configmap) = configmap else {
            return Err(FlagsError::ConfigMapNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        };
        let bytes = document_bytes(&configmap)?;
        let mut shards = ShardCache::new();
        fetch_shards(&api, namespace, bytes, &mut shards).await?;
        let shared = Arc::new(Shared::from_stored(
            origin(namespace, name),
            bytes,
            |shard| shards.get(&shard.config_map).map(|(_, bytes)| bytes),
        )?);
        let follower = Follower {
            api,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            shared: Arc::clone(&shared),
            missing_reported: false,
            backoff: Backoff::default(),
            shards,
        };
        let task = tokio::spawn(follower.run(resource_version(&configmap)));
        let abort = task.abort_handle();
        Ok(Self::with_source(
            shared,
            Some(SourceHandle::new(move || abort.abort())),
        ))
    }
}

/// The watch request: one object by name, from a known `resourceVersion`, with bookmarks.
fn watch_params(name: &str) -> WatchParams {
    WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(WATCH_TIMEOUT_SECS)
}

/// The object's `resourceVersion`; empty (watch from "now", current state first) if unset.
fn resource_version(configmap: &ConfigMap) -> String {
    configmap
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
}

/// How one watch request ended.
#[derive(Debug)]
enum WatchEnd {
    /// The server closed the stream (its `timeoutSeconds`, a restart): resume from here.
    Closed { events: u64, elapsed: Duration },
    /// `410 Gone`: the version is too old to resume from; read the object again.
    Expired,
    /// The request or the stream failed: back off, then resume from the last version.
    Failed(String),
}

/// The task behind `watch_configmap`: applies every version of the ConfigMap until aborted.
struct Follower {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    shared: Arc<Shared>,
    /// The ConfigMap is known to be gone and that was counted once.
    missing_reported: bool,
    backoff: Backoff,
    /// The shards of the current index, when the document is sharded.
    shards: ShardCache,
}

impl Follower {
    async fn run(mut self, resource_version: String) {
        // `None`: the version is unknown or expired, `get` the object first.
        let mut resource_version = Some(resource_version);
        loop {
            let mut version = match resource_version.take() {
                Some(version) => version,
                None => match self.resync().await {
                    Some(version) => version,
                    None => {
                        self.pause().await;
                        continue;
                    }
                },
            };
            match self.watch_from(&mut version).await {
                WatchEnd::Closed { events, elapsed } => {
                    tracing::debug!(
                        origin = self.shared.origin(),
                        events,
                        "ConfigMap watch closed by the server; resuming at resourceVersion {version}"
                    );
                    if events == 0 && elapsed < SHORT_WATCH {
                        self.pause().await;
                    } else {
                        self.backoff.reset();
                    }
                    resource_version = Some(version);
                }
                WatchEnd::Expired => {
                    tracing::info!(
                        origin = self.shared.origin(),
                        "ConfigMap watch: resourceVersion {version} expired (410 Gone); reading the ConfigMap again"
                    );
                    self.pause().await;
                }
                WatchEnd::Failed(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        origin = self.shared.origin(),
                        "ConfigMap watch: {error}; retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    resource_version = Some(version);
                }
            }
        }
    }

    /// Sleeps for the next backoff step (the first one is immediate).
    async fn pause(&mut self) {
        let delay = self.backoff.next_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// `get`s the ConfigMap, applies it and returns the version to watch from. A missing
    /// ConfigMap is counted once and awaited by a watch from "now" (empty version); `None`
    /// means the request failed (logged) and the caller backs off.
    async fn resync(&mut self) -> Option<String> {
        match self.api.get_opt(&self.name).await {
            Ok(Some(configmap)) => {
                self.present(&configmap).await;
                Some(resource_version(&configmap))
            }
            Ok(None) => {
                self.missing();
                tracing::info!(
                    origin = self.shared.origin(),
                    "ConfigMap not found; keeping the last good flags and waiting for it to be created"
                );
                Some(String::new())
            }
            Err(error) => {
                tracing::warn!(
                    origin = self.shared.origin(),
                    "ConfigMap get: {error}{}; retrying with backoff",
                    forbidden_hint(&error)
                );
                None
            }
        }
    }

    /// One watch request from `version`, applying its events; `version` follows them.
    async fn watch_from(&mut self, version: &mut String) -> WatchEnd {
        let started = Instant::now();
        let mut stream = match self.api.watch(&watch_params(&self.name), version).await {
            Ok(stream) => stream.boxed(),
            Err(kube::Error::Api(status)) if status.code == 410 => return WatchEnd::Expired,
            Err(error) => {
                return WatchEnd::Failed(format!(
                    "starting the watch: {error}{}",
                    forbidden_hint(&error)
                ));
            }
        };
        let idle = Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS)) + WATCH_IDLE_MARGIN;
        let mut events = 0;
        loop {
            let event = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => return WatchEnd::Failed(format!("no data for {idle:?}")),
                Ok(None) => {
                    return WatchEnd::Closed {
                        events,
                        elapsed: started.elapsed(),
                    };
                }
                Ok(Some(Err(error))) => return WatchEnd::Failed(error.to_string()),
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(configmap) | WatchEvent::Modified(configmap) => {
                    self.present(&configmap).await;
                    advance(version, resource_version(&configmap));
                }
                WatchEvent::Deleted(configmap) => {
                    self.missing();
                    advance(version, resource_version(&configmap));
                }
                WatchEvent::Bookmark(bookmark) => {
                    advance(version, bookmark.metadata.resource_version);
                }
                WatchEvent::Error(status) if status.code == 410 => return WatchEnd::Expired,
                WatchEvent::Error(status) => {
                    return WatchEnd::Failed(format!(
                        "error event {} {}: {}",
                        status.code, status.reason, status.message
                    ));
                }
            }
            events += 1;
            self.backoff.reset();
        }
    }

    async fn present(&mut self, configmap: &ConfigMap) {
        self.missing_reported = false;
        let bytes = match document_bytes(configmap) {
            Ok(bytes) => bytes,
            Err(error) => return drop(self.shared.record_failure(error)),
        };
        match fetch_shards(&self.api, &self.namespace, bytes, &mut self.shards).await {
            Ok(()) => apply_configmap(&self.shared, configmap, &self.shards),
            Err(error) => drop(self.shared.record_failure(error)),
        }
    }

    fn missing(&mut self) {
        if !self.missing_reported {
            self.missing_reported = true;
            self.shared.record_failure(FlagsError::ConfigMapNotFound {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            });
        }
    }
}

/// Moves the watch position on; an event without a version leaves it where it was.
fn advance(version: &mut String, next: String) {
    if !next.is_empty() {
        *version = next;
    }
}

fn forbidden_hint(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => {
            " (the service account needs get and watch on this ConfigMap)"
        }
        _ => "",
    }
}

/// Exponential backoff with jitter: immediately, then 250 ms doubling up to 30 s, each delay
/// drawn uniformly from its upper half.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let failures = self.failures;
        self.failures = self.failures.saturating_add(1);
        if failures == 0 {
            return Duration::ZERO;
        }
        let ceiling = BACKOFF_FIRST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(BACKOFF_MAX);
        // Each `RandomState` has fresh keys: enough randomness for spreading reconnects.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let fraction = 0.5 + (random % 1024) as f64 / 2048.0;
        ceiling.mul_f64(fraction)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Applies a ConfigMap's document, its shards (if any) already fetched. A refused document is
/// counted and logged inside `apply_stored`. Shards that do not match the index yet belong to
/// a publish under way; its index arrives as the next event.
fn apply_configmap(shared: &Shared, configmap: &ConfigMap, shards: &ShardCache) {
    match document_bytes(configmap) {
        Ok(bytes) => drop(shared.apply_stored(bytes, |shard| {
            shards.get(&shard.config_map).map(|(_, bytes)| bytes)
        })),
        Err(error) => drop(shared.record_failure(error)),
    }
}

/// Shard bytes and their hash by ConfigMap name, for the shards of the current index.
type ShardCache = HashMap<String, (String, Vec<u8>)>;

/// When `bytes` is the index of a sharded document, returns the bytes of each shard it names
/// by ConfigMap name, `get`ting only those whose hash differs from what `cache` holds (an
/// index change usually rewrites one shard). A missing ConfigMap or key is left out, and
/// named when the shards are put together. Nothing for a whole document.
async fn fetch_shards(
    api: &Api<ConfigMap>,
    namespace: &str,
    bytes: &[u8],
    cache: &mut ShardCache,
) -> Result<(), FlagsError> {
    let Some(index) = shard_index(bytes) else {
        cache.clear();
        return Ok(());
    };
    cache.retain(|name, _| index.shards.iter().any(|shard| &shard.config_map == name));
    for shard in &index.shards {
        let cached = cache
            .get(&shard.config_map)
            .is_some_and(|(hash, _)| *hash == shard.sha256);
        if cached {
            continue;
        }
        let configmap = api
            .get_opt(&shard.config_map)
            .await
            .map_err(|source| FlagsError::Api {
                namespace: namespace.to_owned(),
                name: shard.config_map.clone(),
                source,
            })?;
        let data = configmap.as_ref().and_then(|configmap| {
            let text = configmap
                .data
                .as_ref()
                .and_then(|data| data.get(&shard.key));
            let binary = configmap
                .binary_data
                .as_ref()
                .and_then(|data| data.get(&shard.key));
            text.map(|text| text.as_bytes().to_vec())
                .or_else(|| binary.map(|bytes| bytes.0.clone()))
        });
        match data {
            Some(data) => cache.insert(shard.config_map.clone(), (content_hash(&data), data)),
            None => cache.remove(&shard.config_map),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::eval::Reason;

    fn configmap(data: Option<&str>, binary: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("rollgate-flags".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            data: data.map(|text| BTreeMap::from([(FLAGS_KEY.to_owned(), text.to_owned())])),
            binary_data: binary.map(|text| {
                BTreeMap::from([(FLAGS_KEY.to_owned(), ByteString(text.as_bytes().to_vec()))])
            }),
            ..ConfigMap::default()
        }
    }

    const DOC: &str = r#"{"schemaVersion":1,"flags":{"checkout":{"key":"checkout","enabled":true,"percent":100},"old":{"key":"old","enabled":false,"percent":100}}}"#;

    #[test]
    fn configmap_data_becomes_a_flag_set() {
        let flags = flag_set_from_configmap(&configmap(Some(DOC), None)).unwrap();
        assert_eq!(flags.len(), 2);
        assert_eq!(flags.evaluate("checkout", None).reason, Reason::FullRollout);
        assert_eq!(flags.evaluate("old", Some("u")).reason, Reason::Disabled);
        let binary = flag_set_from_configmap(&configmap(None, Some(DOC))).unwrap();
        assert_eq!(binary.len(), 2);
    }

    #[test]
    fn missing_key_and_bad_document_name_the_configmap() {
        let error = flag_set_from_configmap(&configmap(None, None)).unwrap_err();
        assert_eq!(error.category(), "missing-key");
        assert!(error.to_string().contains("shop/rollgate-flags"), "{error}");
        let error =
            flag_set_from_configmap(&configmap(Some("{\"schemaVersion\":7}"), None)).unwrap_err();
        assert_eq!(error.category(), "document");
        assert!(
            error.to_string().contains("ConfigMap shop/rollgate-flags"),
            "{error}"
        );
        assert!(error.to_string().contains("schemaVersion 7"), "{error}");
    }

    #[test]
    fn configmap_updates_go_through_the_shared_snapshot() {
        let shared =
            Arc::new(Shared::from_bytes(origin("shop", "rollgate-flags"), DOC.as_bytes()).unwrap());
        let flags = Flags::with_source(Arc::clone(&shared), None);
        apply_configmap(&shared, &configmap(None, None), &ShardCache::new());
        apply_configmap(
            &shared,
            &configmap(Some("garbage"), None),
            &ShardCache::new(),
        );
        assert_eq!(flags.reload_errors(), 2);
        assert!(flags.is_enabled("checkout", None));
        let killed = DOC.replace(
            r#""checkout","enabled":true"#,
            r#""checkout","enabled":false"#,
        );
        apply_configmap(&shared, &configmap(Some(&killed), None), &ShardCache::new());
        assert!(!flags.is_enabled("checkout", None));
        assert_eq!(flags.generation(), 2);
    }

    #[test]
    fn the_watch_pins_one_name_from_a_version_with_bookmarks() {
        let request = kube::api::Request::new("/api/v1/namespaces/shop/configmaps")
            .watch(&watch_params("rollgate-flags"), "4711")
            .unwrap();
        let uri = request.uri();
        assert_eq!(uri.path(), "/api/v1/namespaces/shop/configmaps");
        let query: Vec<&str> = uri
            .query()
            .unwrap()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .collect();
        assert_eq!(
            query,
            [
                "watch=true",
                "timeoutSeconds=290",
                "fieldSelector=metadata.name%3Drollgate-flags",
                "allowWatchBookmarks=true",
                "resourceVersion=4711",
            ]
        );
    }

    #[test]
    fn backoff_starts_immediately_doubles_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
        for ceiling_ms in [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000] {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
    }

    #[test]
    fn events_without_a_version_keep_the_position() {
        let mut version = "10".to_owned();
        advance(&mut version, String::new());
        assert_eq!(version, "10");
        advance(&mut version, "12".into());
        assert_eq!(version, "12");
    }
}
