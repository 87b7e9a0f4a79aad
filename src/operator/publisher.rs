//! Writes rendered flag documents into ConfigMaps with server-side apply, only when the
//! content differs from what the ConfigMap holds (hand edits included). A document over one
//! ConfigMap's limit goes out as shards and then their index (`rollgate_core::sharding`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rollgate_sdk::{FlagDocument, ShardIndex, Stored, parse_stored};
use serde_json::json;

use super::error::OperatorError;
use super::ownership::FIELD_MANAGER;
use rollgate_core::publish::{
    DOCUMENT_KEY, HASH_ANNOTATION, MANAGED_BY_LABEL, Rendered, content_hash,
};
use rollgate_core::sharding::{Layout, SHARD_OF_LABEL};

/// What the current ConfigMap holds, as far as Rollgate cares.
#[derive(Debug, Default)]
pub struct Published {
    /// The parsed document (put together from its shards when sharded), when the key exists,
    /// parses and, if sharded, every shard matches the index.
    pub document: Option<FlagDocument>,
    /// What `flags.json` of the ConfigMap holds (the document, or the index), as hashes.
    pub stored: StoredHashes,
    /// The ConfigMap's resourceVersion; `None` when there is none.
    pub version: Option<String>,
    /// The index, when the document is sharded.
    pub index: Option<ShardIndex>,
    /// Each shard the index names, by ConfigMap name.
    pub shards: HashMap<String, StoredHashes>,
}

/// The hash of the bytes actually stored under a key, and of our annotation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StoredHashes {
    pub stored: Option<String>,
    pub annotated: Option<String>,
}

impl StoredHashes {
    fn of(configmap: &ConfigMap, key: &str) -> (Self, Option<String>) {
        let data = configmap
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .cloned();
        let hashes = Self {
            stored: data.as_deref().map(content_hash),
            annotated: configmap
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HASH_ANNOTATION).cloned()),
        };
        (hashes, data)
    }

    /// Whether the stored bytes and our annotation both have `hash`.
    fn hold(&self, hash: &str) -> bool {
        self.stored.as_deref() == Some(hash) && self.annotated.as_deref() == Some(hash)
    }
}

async fn get(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
) -> Result<Option<ConfigMap>, OperatorError> {
    api.get_opt(name)
        .await
        .map_err(|source| OperatorError::ConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            action: "get",
            source: Box::new(source),
        })
}

/// Reads the ConfigMap, and the shards its index names; a missing one is an empty
/// `Published`.
pub async fn read(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
) -> Result<Published, OperatorError> {
    let Some(configmap) = get(api, namespace, name).await? else {
        return Ok(Published::default());
    };
    let (stored, data) = StoredHashes::of(&configmap, DOCUMENT_KEY);
    let mut published = Published {
        stored,
        version: configmap.metadata.resource_version,
        ..Published::default()
    };
    match data.as_deref().map(|json| parse_stored(json.as_bytes())) {
        Some(Ok(Stored::Document(document))) => published.document = Some(document),
        Some(Ok(Stored::Index(index))) => {
            let mut bytes = HashMap::new();
            for shard in &index.shards {
                if let Some(configmap) = get(api, namespace, &shard.config_map).await? {
                    let (hashes, data) = StoredHashes::of(&configmap, &shard.key);
                    published.shards.insert(shard.config_map.clone(), hashes);
                    bytes.extend(data.map(|data| (shard.config_map.clone(), data)));
                }
            }
            published.document = match index.assemble(|shard| bytes.get(&shard.config_map)) {
                Ok(document) => Some(document),
                Err(error) => {
                    tracing::warn!(configmap = %name, %error, "the published shards do not make a document; they will be rewritten");
                    // A publish that failed between two shard writes: readers keep their last
                    // good flags, and the entries an invalid flag keeps come from whatever
                    // the shards hold now, not from nothing.
                    Some(union_of(bytes.values()))
                }
            };
            published.index = Some(index);
        }
        Some(Err(_)) | None => {}
    }
    Ok(published)
}

/// Every entry of the shards that parse, whatever the index says.
fn union_of<'a>(shards: impl Iterator<Item = &'a String>) -> FlagDocument {
    let mut document = FlagDocument::new();
    for shard in shards {
        if let Ok(part) = FlagDocument::from_json(shard.as_bytes()) {
            document.flags.extend(part.flags);
        }
    }
    document
}

/// Writes what differs from `published`: the shards first, then the document or index under
/// `flags.json`, then deletes the shards no longer named. A reader that comes in between sees
/// an index whose shards do not match and keeps its last good flags. Returns whether anything
/// was written and the ConfigMap's resourceVersion afterwards.
pub async fn write(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
    rendered: &Rendered,
    layout: &Layout,
    published: &Published,
) -> Result<(bool, Option<String>), OperatorError> {
    // What goes under `flags.json` of the ConfigMap itself, and the shards written before it.
    let (json, hash, shards) = match layout {
        Layout::Single => (&rendered.json, &rendered.hash, &[][..]),
        Layout::Sharded {
            index_json,
            index_hash,
            shards,
            ..
        } => (index_json, index_hash, &shards[..]),
    };
    let mut wrote = false;
    for shard in shards {
        let holds = published
            .shards
            .get(&shard.configmap)
            .is_some_and(|hashes| hashes.hold(&shard.hash));
        if !holds {
            let part = Part {
                name: &shard.configmap,
                shard_of: Some(name),
                key: &shard.key,
                json: &shard.json,
                hash: &shard.hash,
            };
            apply(api, namespace, part).await?;
            wrote = true;
        }
    }
    let mut version = published.version.clone();
    if !published.stored.hold(hash) {
        let part = Part {
            name,
            shard_of: None,
            key: DOCUMENT_KEY,
            json,
            hash,
        };
        version = apply(api, namespace, part).await?;
        wrote = true;
    }
    let kept = layout.shard_configmaps();
    let retired = published
        .index
        .iter()
        .flat_map(|index| &index.shards)
        .filter(|shard| !kept.contains(&shard.config_map.as_str()));
    for shard in retired {
        delete(api, namespace, &shard.config_map).await?;
    }
    Ok((wrote, version))
}

/// One ConfigMap's share of a publish.
struct Part<'a> {
    name: &'a str,
    /// The ConfigMap of the index, for a shard.
    shard_of: Option<&'a str>,
    key: &'a str,
    json: &'a str,
    hash: &'a str,
}

/// Applies our key, labels and annotation; other keys of the ConfigMap keep their owners.
/// Returns the resourceVersion written.
async fn apply(
    api: &Api<ConfigMap>,
    namespace: &str,
    part: Part<'_>,
) -> Result<Option<String>, OperatorError> {
    let Part {
        name,
        shard_of,
        key,
        json,
        hash,
    } = part;
    let mut labels = BTreeMap::from([MANAGED_BY_LABEL]);
    if let Some(index) = shard_of {
        labels.insert(SHARD_OF_LABEL, index);
    }
    let patch = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": { HASH_ANNOTATION: hash },
        },
        "data": { key: json },
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

/// Deletes a shard the index no longer names; one already gone is fine.
async fn delete(api: &Api<ConfigMap>, namespace: &str, name: &str) -> Result<(), OperatorError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(OperatorError::ConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            action: "delete",
            source: Box::new(source),
        }),
    }
}
