//! Everything a reconcile needs besides the flag itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use super::backoff::{self, Backoff};
use super::commit::ConfigMapWriter;
use super::config::OperatorArgs;
use super::error::OperatorError;
use super::watched::WatchedFlag;
use crate::metrics::Metrics;
use crate::prometheus::{PrometheusClient, PrometheusConfig, QueryBudget};
use rollgate_core::crd::FeatureFlag;
use rollgate_core::segment::Segment;
use rollgate_core::segment_catalog::SegmentCatalog;
use rollgate_core::validate::Violation;

/// A published ConfigMap: (namespace, name).
type ConfigMapRef = (String, String);

/// A flag as its newest status write left it, and the cached version that write replaced.
struct WrittenFlag {
    replaced_version: Option<String>,
    flag: Arc<FeatureFlag>,
}

pub struct Context {
    pub client: Client,
    /// ConfigMap publishes and a kill switch's status write; see `operator::kube_clients`.
    pub priority_client: Client,
    /// Reconciles running at once; the others wait in the controller's queue.
    pub reconcile_concurrency: u16,
    /// How long a publish waits for more changes to join it (`--publish-window`).
    pub publish_window: Duration,
    /// `--max-shards`.
    pub max_shards: usize,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub is_leader: watch::Receiver<bool>,
    pub default_configmap: String,
    /// The only ConfigMap names the operator watches and writes (the default included).
    pub publishable_configmaps: Vec<String>,
    pub default_prometheus: Option<String>,
    pub analysis_concurrency: usize,
    /// Retries of transient errors off the publish path (`backoff::TRANSIENT`).
    pub backoff: Backoff,
    /// Retries of a failed status write or ConfigMap request (`backoff::PUBLISH_PATH`).
    pub publish_backoff: Backoff,
    /// Flips to true once every watched scope's store has synced (`/readyz`).
    pub ready: Arc<AtomicBool>,
    scopes_total: usize,
    scopes_ready: AtomicUsize,
    /// Template for per-address clients; only the address differs between flags.
    prometheus_template: PrometheusConfig,
    prometheus_clients: Mutex<HashMap<String, PrometheusClient>>,
    /// Every analysis query of every flag waits its turn here.
    query_budget: Arc<QueryBudget>,
    /// The controllers' caches of flags, one per watched scope.
    flag_stores: Mutex<Vec<Store<WatchedFlag>>>,
    /// The caches of segments, one per watched scope.
    segment_stores: Mutex<Vec<Store<Segment>>>,
    /// One writer per published ConfigMap (namespace, name).
    writers: Mutex<HashMap<ConfigMapRef, Arc<ConfigMapWriter>>>,
    /// Flags (by uid) being deleted: no render includes them, whatever the cache says yet.
    leaving: Mutex<HashSet<String>>,
    /// Flags (by uid) whose status this leader wrote and whose watch event the cache has
    /// not seen yet: until it has, a neighbour's render would publish the older status.
    /// Each entry goes once the cache moves past the version it was written over, so only
    /// writes in flight are held. Cleared when leadership is lost.
    written_flags: Mutex<HashMap<String, WrittenFlag>>,
}

impl Context {
    pub fn new(
        client: Client,
        args: &OperatorArgs,
        metrics: Metrics,
        is_leader: watch::Receiver<bool>,
    ) -> Result<Self, OperatorError> {
        let template_address = args
            .prometheus_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:9090".to_string());
        let prometheus_template = args
            .prometheus_config(&template_address)
            .map_err(OperatorError::KubeConfig)?;
        let reporter = Reporter {
            controller: "rollgate".into(),
            instance: args.identity.clone(),
        };
        Ok(Self {
            metrics: metrics.clone(),
            recorder: Recorder::new(client.clone(), reporter),
            priority_client: client.clone(),
            reconcile_concurrency: args.reconcile_concurrency,
            publish_window: args.publish_window,
            max_shards: usize::from(args.max_shards),
            client,
            is_leader,
            default_configmap: args.configmap_name.clone(),
            publishable_configmaps: args.publishable_configmaps(),
            default_prometheus: args.prometheus_url.clone(),
            analysis_concurrency: args.analysis_concurrency.max(1),
            backoff: Backoff::new(backoff::TRANSIENT),
            publish_backoff: Backoff::new(backoff::PUBLISH_PATH),
            ready: Arc::new(AtomicBool::new(false)),
            scopes_total: args.namespaces.len().max(1),
            scopes_ready: AtomicUsize::new(0),
            prometheus_template,
            prometheus_clients: Mutex::new(HashMap::new()),
            query_budget: Arc::new(
                QueryBudget::new(
                    usize::from(args.prometheus_concurrency),
                    f64::from(args.prometheus_qps),
                )
                .with_metrics(metrics.query_budget()),
            ),
            flag_stores: Mutex::new(Vec::new()),
            segment_stores: Mutex::new(Vec::new()),
            writers: Mutex::new(HashMap::new()),
            leaving: Mutex::new(HashSet::new()),
            written_flags: Mutex::new(HashMap::new()),
        })
    }

    /// How long a due analysis should wait before it queues: `Some` while the query budget
    /// holds more than a second of queries (see `QueryBudget::backlog`).
    pub fn analysis_backlog(&self) -> Option<Duration> {
        self.query_budget.backlog()
    }

    /// Sends ConfigMap publishes and kill-switch status writes through `client` (by default
    /// the main client).
    pub fn with_priority_client(mut self, client: Client) -> Self {
        self.priority_client = client;
        self
    }

    /// Whether flags may publish into the ConfigMap `name` (RBAC grants only these names).
    pub fn may_publish(&self, name: &str) -> bool {
        self.publishable_configmaps
            .iter()
            .any(|known| known == name)
    }

    /// Why a flag that publishes into `name` is refused, as a violation of its spec.
    pub fn unpublishable(&self, name: &str) -> Violation {
        Violation {
            path: "spec.publish.configMap".into(),
            message: format!(
                "ConfigMap {name:?} is not one this operator may publish to (it may publish to {}); \
                 add it to the chart's extraConfigMapNames (--extra-configmap-name) or remove \
                 spec.publish.configMap",
                self.publishable_configmaps
                    .iter()
                    .map(|known| format!("{known:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }

    pub fn register_store(&self, store: Store<WatchedFlag>) {
        self.flag_stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(store);
    }

    /// Every cached flag of `namespace`, undecodable ones included.
    pub fn flags_in(&self, namespace: &str) -> Vec<Arc<WatchedFlag>> {
        let stores = self
            .flag_stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stores
            .iter()
            .flat_map(|store| store.state())
            .filter(|flag| flag.namespace().as_deref() == Some(namespace))
            .collect()
    }

    pub fn register_segment_store(&self, store: Store<Segment>) {
        self.segment_stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(store);
    }

    /// Waits until every segment cache has its initial list: before that, a segment that
    /// exists would look missing and its flags would publish without it. The wait is bounded
    /// so that a segment list that never succeeds cannot hold a flag (a kill switch
    /// included): past it, the flag's segments count as missing, which fails closed.
    pub async fn segments_synced(&self) {
        let stores = self
            .segment_stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let all_synced = async {
            for store in stores {
                wait_for_store(&store).await;
            }
        };
        if tokio::time::timeout(SEGMENT_SYNC_WAIT, all_synced)
            .await
            .is_err()
        {
            tracing::warn!(
                "the segment cache has not synced within {SEGMENT_SYNC_WAIT:?}; \
                 the segments this flag names count as missing until it does"
            );
        }
    }

    /// The segments of `namespace` named in `wanted`, as its flags see them. Only those are
    /// checked and copied: a namespace's other segments may hold thousands of ids.
    pub fn segment_catalog(&self, namespace: &str, wanted: &[&str]) -> SegmentCatalog {
        if wanted.is_empty() {
            return SegmentCatalog::new(namespace, []);
        }
        let stores = self
            .segment_stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let segments: Vec<Arc<Segment>> = stores
            .iter()
            .flat_map(|store| store.state())
            .filter(|segment| {
                segment.namespace().as_deref() == Some(namespace)
                    && wanted.contains(&segment.name_any().as_str())
            })
            .collect();
        SegmentCatalog::new(namespace, segments.iter().map(|segment| &**segment))
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// The writer of the ConfigMap `namespace/name`.
    pub fn writer(&self, namespace: &str, name: &str) -> Arc<ConfigMapWriter> {
        self.writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(|| Arc::new(ConfigMapWriter::new(self.publish_window)))
            .clone()
    }

    /// The writer of `namespace/name` when one has published there.
    pub fn existing_writer(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMapWriter>> {
        self.writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Marks the flag `uid` as being deleted: renders leave it out from now on.
    pub fn mark_leaving(&self, uid: &str) {
        self.leaving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uid.to_string());
    }

    /// The uids being deleted, after forgetting those no cache holds any more.
    pub fn leaving(&self) -> HashSet<String> {
        let mut leaving = self
            .leaving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !leaving.is_empty() {
            let stores = self
                .flag_stores
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let cached: HashSet<String> = stores
                .iter()
                .flat_map(|store| store.state())
                .filter_map(|flag| flag.meta().uid.clone())
                .collect();
            leaving.retain(|uid| cached.contains(uid));
        }
        leaving.clone()
    }

    /// Remembers `written`, the flag with the status just written over the cached
    /// `replaced` version.
    pub fn remember_written(&self, replaced: &FeatureFlag, written: FeatureFlag) {
        if let Some(uid) = replaced.metadata.uid.clone() {
            self.written_flags
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(
                    uid,
                    WrittenFlag {
                        replaced_version: replaced.metadata.resource_version.clone(),
                        flag: Arc::new(written),
                    },
                );
        }
    }

    /// Forgets a flag's written status (it is gone), or every one (`None`: leadership
    /// lost, so another leader may write next).
    pub fn forget_written(&self, uid: Option<&str>) {
        let mut written = self
            .written_flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match uid {
            Some(uid) => {
                written.remove(uid);
            }
            None => written.clear(),
        }
    }

    /// `cached` as this leader last wrote its status, while the cache still holds the
    /// version that write replaced; `None` once the cache has moved on (it is then newest).
    pub fn written_version_of(&self, cached: &FeatureFlag) -> Option<Arc<FeatureFlag>> {
        let uid = cached.metadata.uid.as_deref()?;
        let mut written = self
            .written_flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = written.get(uid)?;
        if entry.replaced_version == cached.metadata.resource_version {
            return Some(entry.flag.clone());
        }
        written.remove(uid);
        None
    }

    pub fn mark_scope_ready(&self) {
        let ready = self.scopes_ready.fetch_add(1, Ordering::AcqRel) + 1;
        if ready >= self.scopes_total {
            self.ready.store(true, Ordering::Release);
            tracing::info!("stores synced; ready");
        }
    }

    /// The client for `address`, built once and reused (connection pool, token cache).
    /// Only the operator's own `--prometheus-url` gets its credentials and headers: a flag
    /// that names another address must not be able to collect the operator's token.
    pub fn prometheus(&self, address: &str) -> Result<PrometheusClient, OperatorError> {
        let mut clients = self
            .prometheus_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let error = |source| OperatorError::Prometheus {
            address: address.to_string(),
            source: Box::new(source),
        };
        let mut config = self.prometheus_template.clone();
        config.address = address.to_string();
        if self.default_prometheus.as_deref() != Some(address) {
            config.auth = crate::prometheus::Auth::None;
            config.headers.clear();
        }
        let client = PrometheusClient::new(config)
            .map_err(error)?
            .with_budget(Some(self.query_budget.clone()));
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }
}

/// One item each time this operator becomes the leader.
pub fn leadership_gained(context: &Context) -> impl futures::Stream<Item = ()> + use<> {
    futures::stream::unfold(context.is_leader.clone(), |mut receiver| async move {
        loop {
            receiver.changed().await.ok()?;
            if *receiver.borrow_and_update() {
                return Some(((), receiver));
            }
        }
    })
}

/// Waits until `store` holds its initial list; `false` when its writer is gone first.
/// Re-polls: kube-runtime's readiness latch wakes only its most recent waiter, and the
/// controller waits on the same store.
/// How long a reconcile waits for the segment cache's first list (`segments_synced`).
const SEGMENT_SYNC_WAIT: Duration = Duration::from_secs(10);

pub async fn wait_for_store<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => {
                tracing::error!(%error, "a store never synced");
                return false;
            }
            Err(_still_waiting) => continue,
        }
    }
}
