//! Writes rendered flag documents into ConfigMaps with server-side apply, only when the
//! content differs from what the ConfigMap holds (hand edits included).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use rollgate_sdk::FlagDocument;
use serde_json::json;

use super::error::OperatorError;
use super::ownership::FIELD_MANAGER;
use rollgate_core::publish::{
    DOCUMENT_KEY, HASH_ANNOTATION, MANAGED_BY_LABEL, Rendered, content_hash,
};

/// What the current ConfigMap holds, as far as Rollgate cares.
#[derive(Debug, Default)]
pub struct Published {
    /// The parsed document, when the key exists and parses.
    pub document: Option<FlagDocument>,
    /// Hash of the bytes actually stored under `flags.json`.
    pub stored_hash: Option<String>,
    pub annotated_hash: Option<String>,
    /// The ConfigMap's resourceVersion; `None` when there is none.
    pub version: Option<String>,
}

/// Reads the ConfigMap; a missing one is an empty `Published`.
pub async fn read(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
) -> Result<Published, OperatorError> {
    let configmap = api
        .get_opt(name)
        .await
        .map_err(|source| OperatorError::ConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            action: "get",
            source: Box::new(source),
        })?;
    let Some(configmap) = configmap else {
        return Ok(Published::default());
    };
    let stored = configmap
        .data
        .as_ref()
        .and_then(|data| data.get(DOCUMENT_KEY));
    Ok(Published {
        document: stored.and_then(|json| FlagDocument::from_json(json.as_bytes()).ok()),
        stored_hash: stored.map(|json| content_hash(json)),
        annotated_hash: configmap
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(HASH_ANNOTATION).cloned()),
        version: configmap.metadata.resource_version,
    })
}

/// Whether `rendered` differs from what is stored (content or our annotation).
pub fn needs_write(published: &Published, rendered: &Rendered) -> bool {
    published.stored_hash.as_deref() != Some(rendered.hash.as_str())
        || published.annotated_hash.as_deref() != Some(rendered.hash.as_str())
}

/// Applies our key, label and annotation; other keys of the ConfigMap keep their owners.
/// Returns the resourceVersion written.
pub async fn write(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
    rendered: &Rendered,
) -> Result<Option<String>, OperatorError> {
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": BTreeMap::from([MANAGED_BY_LABEL]),
            "annotations": { HASH_ANNOTATION: rendered.hash },
        },
        "data": { DOCUMENT_KEY: rendered.json },
    });
    let written = api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| OperatorError::ConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            action: "server-side apply",
            source: Box::new(source),
        })?;
    Ok(written.metadata.resource_version)
}
