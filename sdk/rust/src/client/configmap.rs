//! The API source: `Flags::watch_configmap(client, namespace, name)`.
//!
//! One `get` loads the first document (and fails fast on RBAC, a wrong name or a bad
//! document). Then a kube-runtime `watcher` follows that one ConfigMap:
//!
//! - `GET /api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3D{name}&limit=500`
//!   (a plain list: the `ListWatch` initial strategy, which every API server supports; no
//!   streaming lists, so Kubernetes 1.20 works);
//! - `GET …/configmaps?watch=true&fieldSelector=metadata.name%3D{name}&allowWatchBookmarks=true&resourceVersion=…`,
//!   re-listing after a `410 Gone` and backing off exponentially on errors.
//!
//! The API server authorizes a list or watch whose field selector pins `metadata.name` as a
//! request for that name, so a Role with `resourceNames: [<name>]` and the verbs
//! `get`, `list`, `watch` is enough (`docs/sdk.md` has the Role).
//!
//! A changed ConfigMap reaches the process within the watch latency (well under a second);
//! a deleted ConfigMap, a missing key or a bad document is logged and counted, and the last
//! good flags stay.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, InitialListStrategy};
use kube::{Api, Client};

use super::{ClientFlagSet, FLAGS_KEY, Flags, FlagsError, Shared, SourceHandle};
use crate::document::FlagDocument;

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
    document_from_configmap(configmap)
        .map(|document| ClientFlagSet::from_document_with_hasher(&document))
}

impl Flags {
    /// Loads the flag document from the ConfigMap `namespace/name` through the API and keeps
    /// it current with a watch on that one object. Must be called inside a Tokio runtime; the
    /// watch runs as a task on it until the last `Flags` clone is dropped.
    ///
    /// Fails if the ConfigMap cannot be read (RBAC, not found), has no `flags.json` key or
    /// holds an invalid document. The `client` decides TLS and credentials: in a pod,
    /// `kube::Client::try_default()` uses the service account.
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
        let shared = Arc::new(Shared::from_bytes(
            origin(namespace, name),
            document_bytes(&configmap)?,
        )?);
        let task = tokio::spawn(follow(
            api,
            namespace.to_owned(),
            name.to_owned(),
            Arc::clone(&shared),
        ));
        let abort = task.abort_handle();
        Ok(Self::with_source(
            shared,
            Some(SourceHandle::new(move || abort.abort())),
        ))
    }
}

/// The watcher configuration: one object by name, plain list then watch.
fn watcher_config(name: &str) -> watcher::Config {
    let mut config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // Explicit, because it is what makes Kubernetes < 1.27 work: no `sendInitialEvents`.
    config.initial_list_strategy = InitialListStrategy::ListWatch;
    config
}

/// Applies every version of the ConfigMap the watch delivers until the task is aborted.
async fn follow(api: Api<ConfigMap>, namespace: String, name: String, shared: Arc<Shared>) {
    let mut events = watcher::watcher(api, watcher_config(&name))
        .default_backoff()
        .boxed();
    // Whether the object appeared in the current (re)list; absent at `InitDone` = deleted.
    let mut seen_in_list = false;
    let mut missing_reported = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => seen_in_list = false,
            Ok(Event::InitApply(configmap) | Event::Apply(configmap)) => {
                seen_in_list = true;
                missing_reported = false;
                apply_configmap(&shared, &configmap);
            }
            Ok(Event::InitDone) if seen_in_list => {}
            Ok(Event::InitDone | Event::Delete(_)) => {
                if !missing_reported {
                    missing_reported = true;
                    shared.record_failure(FlagsError::ConfigMapNotFound {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    });
                }
            }
            Err(error) => {
                // Disconnects and 410s are routine; the watcher re-lists with backoff.
                tracing::warn!(origin = shared.origin(), "ConfigMap watch: {error}");
            }
        }
    }
}

fn apply_configmap(shared: &Shared, configmap: &ConfigMap) {
    match document_bytes(configmap) {
        // A refused document is counted and logged inside `apply`.
        Ok(bytes) => drop(shared.apply(bytes)),
        Err(error) => drop(shared.record_failure(error)),
    }
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
        apply_configmap(&shared, &configmap(None, None));
        apply_configmap(&shared, &configmap(Some("garbage"), None));
        assert_eq!(flags.reload_errors(), 2);
        assert!(flags.is_enabled("checkout", None));
        let killed = DOC.replace(
            r#""checkout","enabled":true"#,
            r#""checkout","enabled":false"#,
        );
        apply_configmap(&shared, &configmap(Some(&killed), None));
        assert!(!flags.is_enabled("checkout", None));
        assert_eq!(flags.generation(), 2);
    }

    #[test]
    fn watcher_selects_one_object_with_a_plain_list() {
        let config = watcher_config("rollgate-flags");
        assert_eq!(
            config.field_selector.as_deref(),
            Some("metadata.name=rollgate-flags")
        );
        assert_eq!(config.initial_list_strategy, InitialListStrategy::ListWatch);
    }
}
