//! Each namespace's flag document, followed with the SDK's own sources: `Flags::watch_configmap`
//! (one API watch per namespace per relay process) or `Flags::load` (a mounted file). A
//! source that cannot load yet is retried with backoff; `/readyz` waits for all of them.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use kube::Client;
use rollgate_sdk::{FlagSnapshot, Flags};

use super::metrics::{ANSWER_LABELS, RelayMetrics};
use super::ofrep::BulkTemplate;

/// Where a namespace's flags come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The ConfigMap `name` in the namespace, through the API.
    ConfigMap { name: String },
    /// A mounted `flags.json`.
    File { path: PathBuf },
}

impl SourceSpec {
    fn label(&self) -> &'static str {
        match self {
            Self::ConfigMap { .. } => "configmap",
            Self::File { .. } => "file",
        }
    }
}

/// One served namespace.
pub struct Namespace {
    pub name: String,
    pub spec: SourceSpec,
    flags: OnceLock<Flags>,
    /// The bulk template of the newest document a request has seen.
    bulk_template: RwLock<Option<Arc<BulkTemplate>>>,
    /// `rollgate_relay_evaluations_total{namespace, reason}`, one per [`ANSWER_LABELS`].
    pub answers: [prometheus::IntCounter; ANSWER_LABELS.len()],
    pub sse_clients: prometheus::IntGauge,
    pub sse_events: prometheus::IntCounter,
    loaded_gauge: prometheus::IntGauge,
    /// `rollgate_relay_source_watches{namespace}`: the source's own watch, shared by every
    /// client of the namespace.
    watches_gauge: prometheus::IntGauge,
}

impl Namespace {
    pub fn new(name: String, spec: SourceSpec, metrics: &RelayMetrics) -> Self {
        let answers =
            ANSWER_LABELS.map(|label| metrics.evaluations.with_label_values(&[&name, label]));
        let loaded_gauge = metrics
            .source_loaded
            .with_label_values(&[&name, spec.label()]);
        loaded_gauge.set(0);
        let watches_gauge = metrics.source_watches.with_label_values(&[&name]);
        watches_gauge.set(0);
        Self {
            sse_clients: metrics.sse_clients.with_label_values(&[&name]),
            sse_events: metrics.sse_events.with_label_values(&[&name]),
            name,
            spec,
            flags: OnceLock::new(),
            bulk_template: RwLock::new(None),
            answers,
            loaded_gauge,
            watches_gauge,
        }
    }

    /// The live flags, once the source has loaded a first document.
    pub fn flags(&self) -> Option<&Flags> {
        self.flags.get()
    }

    /// The bulk template of `snapshot`, built by the first request that sees its document.
    pub fn bulk_template(&self, snapshot: &FlagSnapshot) -> Arc<BulkTemplate> {
        let current = self
            .bulk_template
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(template) = current.filter(|t| t.generation == snapshot.generation()) {
            return template;
        }
        let template = Arc::new(BulkTemplate::new(snapshot));
        let mut slot = self
            .bulk_template
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A request holding an older snapshot must not replace a newer template.
        if slot
            .as_ref()
            .is_none_or(|t| t.generation < template.generation)
        {
            *slot = Some(Arc::clone(&template));
        }
        template
    }

    /// Counts one answer by its label.
    pub fn count_answer(&self, label: &str) {
        if let Some(index) = ANSWER_LABELS.iter().position(|known| *known == label) {
            self.answers[index].inc();
        }
    }

    fn loaded(&self, flags: Flags) {
        tracing::info!(
            namespace = %self.name,
            origin = flags.origin(),
            flags = flags.snapshot().len(),
            "flag source loaded"
        );
        let _ = self.flags.set(flags);
        self.loaded_gauge.set(1);
        // `Flags::watch_configmap` runs one watch loop for as long as the `Flags` lives, and
        // the relay keeps it for good; a file source watches the file, not the API.
        if matches!(self.spec, SourceSpec::ConfigMap { .. }) {
            self.watches_gauge.set(1);
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX_FILE: Duration = Duration::from_secs(2);
const RETRY_MAX_API: Duration = Duration::from_secs(30);

/// Loads `namespace` until it succeeds, retrying with backoff (a file: up to every 2 s; the
/// API: up to every 30 s). Each distinct failure is logged once at warn level.
pub async fn follow(namespace: Arc<Namespace>, client: Option<Client>) {
    let mut delay = RETRY_FIRST;
    let mut last_error = String::new();
    loop {
        let result = match &namespace.spec {
            SourceSpec::File { path } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Flags::load(path))
                    .await
                    .map_err(|error| format!("the loading task failed: {error}"))
                    .and_then(|result| result.map_err(|error| error.to_string()))
            }
            SourceSpec::ConfigMap { name } => match &client {
                Some(client) => Flags::watch_configmap(client.clone(), &namespace.name, name)
                    .await
                    .map_err(|error| error.to_string()),
                None => Err("no Kubernetes client".to_owned()),
            },
        };
        match result {
            Ok(flags) => return namespace.loaded(flags),
            Err(error) => {
                if error != last_error {
                    tracing::warn!(namespace = %namespace.name, "flag source not loaded yet: {error}; retrying");
                    last_error = error;
                }
            }
        }
        tokio::time::sleep(delay).await;
        let ceiling = match namespace.spec {
            SourceSpec::File { .. } => RETRY_MAX_FILE,
            SourceSpec::ConfigMap { .. } => RETRY_MAX_API,
        };
        delay = (delay * 2).min(ceiling);
    }
}
