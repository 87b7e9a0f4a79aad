//! A flag document split across ConfigMaps (`docs/flag-document.md`, "Sharded documents").
//!
//! A document over one ConfigMap's limit is published as shards: ConfigMaps `<name>-shard-<i>`,
//! each holding an ordinary version-1 document with some of the flags under the key
//! `flags-shard-<i>.json`, and an index under `flags.json` of `<name>` that names every shard
//! with the SHA-256 of its bytes and one generation. A reader takes a shard only when its
//! bytes hash to what the index says, so it never mixes shards of two generations; a shard
//! that is missing or does not match fails the read, and the reader keeps its last good
//! flags. Pure: the caller fetches the bytes (files, or the API).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::document::{DocumentError, FlagDocument, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION};

/// The index of a sharded document: `{"schemaVersion": 1, "generation": 7, "shards": […]}`.
/// It has no `flags`, so a reader that predates sharding refuses it and keeps its last good
/// document instead of reading an empty one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardIndex {
    pub schema_version: u32,
    /// Grows by one each time the set of shards or any shard's content changes.
    pub generation: u64,
    pub shards: Vec<ShardRef>,
}

/// One shard as the index names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// The ConfigMap that holds it, in the index's namespace.
    pub config_map: String,
    /// Its key in that ConfigMap, also its file name when the ConfigMaps are mounted together.
    pub key: String,
    /// Hex SHA-256 of the shard's bytes.
    pub sha256: String,
}

/// What `flags.json` holds: a whole document, or the index of a sharded one.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    Document(FlagDocument),
    Index(ShardIndex),
}

/// Why the shards named by an index could not be put together.
#[derive(Debug)]
pub enum ShardError {
    /// The shard's ConfigMap or key (or file) does not exist.
    Missing { config_map: String, key: String },
    /// The shard's bytes are not the ones the index names: written at another generation.
    Mismatch {
        config_map: String,
        key: String,
        generation: u64,
    },
    /// The shard matches the index but is not a valid document.
    Document {
        config_map: String,
        key: String,
        source: DocumentError,
    },
    /// Two shards carry the same flag.
    DuplicateFlag { flag: String, config_map: String },
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { config_map, key } => write!(
                f,
                "shard {config_map} (key {key}) named by the index is missing; keeping the last good flags"
            ),
            Self::Mismatch {
                config_map,
                key,
                generation,
            } => write!(
                f,
                "shard {config_map} (key {key}) does not match index generation {generation} \
                 (a publish is under way, or the shard was edited); keeping the last good flags"
            ),
            Self::Document {
                config_map,
                key,
                source,
            } => write!(f, "shard {config_map} (key {key}): {source}"),
            Self::DuplicateFlag { flag, config_map } => write!(
                f,
                "flag {flag} is in two shards, the second in {config_map}"
            ),
        }
    }
}

impl std::error::Error for ShardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Document { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Hex SHA-256 of published bytes: the operator's content-hash annotation and the index's
/// `sha256`.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Reads `flags.json`: a document, or the index of a sharded one.
pub fn parse_stored(bytes: &[u8]) -> Result<Stored, DocumentError> {
    #[derive(Deserialize)]
    struct ShapeProbe {
        shards: Option<serde::de::IgnoredAny>,
    }
    let probe: ShapeProbe =
        serde_json::from_slice(bytes).map_err(|error| DocumentError::Malformed {
            path: String::new(),
            message: error.to_string(),
        })?;
    if probe.shards.is_none() {
        return FlagDocument::from_json(bytes).map(Stored::Document);
    }
    let index: ShardIndex =
        serde_json::from_slice(bytes).map_err(|error| DocumentError::Malformed {
            path: "shards".into(),
            message: error.to_string(),
        })?;
    if !READABLE_SCHEMA_VERSIONS.contains(&index.schema_version) {
        return Err(DocumentError::UnsupportedSchemaVersion {
            found: u64::from(index.schema_version),
        });
    }
    Ok(Stored::Index(index))
}

impl ShardIndex {
    /// Serializes compactly; the same index always gives the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Puts the shards together into one document. `read` returns a shard's bytes, `None`
    /// when its ConfigMap, key or file does not exist.
    pub fn assemble<B: AsRef<[u8]>>(
        &self,
        mut read: impl FnMut(&ShardRef) -> Option<B>,
    ) -> Result<FlagDocument, ShardError> {
        let mut flags = BTreeMap::new();
        // Each shard carries the segments its own flags use; shards agree on a segment's
        // content because they are cut from one resolved namespace.
        let mut segments = BTreeMap::new();
        for shard in &self.shards {
            let bytes = read(shard).ok_or_else(|| ShardError::Missing {
                config_map: shard.config_map.clone(),
                key: shard.key.clone(),
            })?;
            let bytes = bytes.as_ref();
            if content_hash(bytes) != shard.sha256 {
                return Err(ShardError::Mismatch {
                    config_map: shard.config_map.clone(),
                    key: shard.key.clone(),
                    generation: self.generation,
                });
            }
            let part = FlagDocument::from_json(bytes).map_err(|source| ShardError::Document {
                config_map: shard.config_map.clone(),
                key: shard.key.clone(),
                source,
            })?;
            segments.extend(part.segments);
            for (key, entry) in part.flags {
                if flags.insert(key.clone(), entry).is_some() {
                    return Err(ShardError::DuplicateFlag {
                        flag: key,
                        config_map: shard.config_map.clone(),
                    });
                }
            }
        }
        Ok(FlagDocument {
            schema_version: SCHEMA_VERSION,
            flags,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn shard_bytes(keys: &[&str]) -> String {
        let flags: Vec<String> = keys
            .iter()
            .map(|key| format!(r#""{key}":{{"key":"{key}","enabled":true,"percent":50}}"#))
            .collect();
        format!(r#"{{"schemaVersion":1,"flags":{{{}}}}}"#, flags.join(","))
    }

    fn index_of(generation: u64, shards: &[(&str, &str, &str)]) -> ShardIndex {
        ShardIndex {
            schema_version: SCHEMA_VERSION,
            generation,
            shards: shards
                .iter()
                .map(|(config_map, key, bytes)| ShardRef {
                    config_map: config_map.to_string(),
                    key: key.to_string(),
                    sha256: content_hash(bytes.as_bytes()),
                })
                .collect(),
        }
    }

    #[test]
    fn an_index_and_a_document_are_told_apart() {
        let index = index_of(3, &[("f-shard-0", "flags-shard-0.json", "{}")]);
        let parsed = parse_stored(index.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, Stored::Index(index));
        let document = shard_bytes(&["a"]);
        assert!(matches!(
            parse_stored(document.as_bytes()).unwrap(),
            Stored::Document(d) if d.flags.len() == 1
        ));
        // An index is not a document to a reader that only knows documents.
        assert!(
            FlagDocument::from_json(br#"{"schemaVersion":1,"generation":1,"shards":[]}"#).is_err()
        );
        let error = parse_stored(br#"{"schemaVersion":1,"generation":1,"shards":[{"key":1}]}"#)
            .unwrap_err();
        assert!(error.to_string().contains("at shards"), "{error}");
    }

    #[test]
    fn matching_shards_make_one_document() {
        let (zero, one) = (shard_bytes(&["a", "c"]), shard_bytes(&["b"]));
        let index = index_of(2, &[("f-shard-0", "k0", &zero), ("f-shard-1", "k1", &one)]);
        let files = HashMap::from([("k0", zero.clone()), ("k1", one.clone())]);
        let document = index
            .assemble(|shard| files.get(shard.key.as_str()))
            .unwrap();
        let keys: Vec<&str> = document.flags.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn a_missing_stale_or_overlapping_shard_is_named() {
        let (zero, one) = (shard_bytes(&["a"]), shard_bytes(&["b"]));
        let index = index_of(4, &[("f-shard-0", "k0", &zero), ("f-shard-1", "k1", &one)]);
        let missing = index
            .assemble(|shard| (shard.key == "k0").then(|| zero.clone()))
            .unwrap_err();
        assert!(
            matches!(&missing, ShardError::Missing { config_map, .. } if config_map == "f-shard-1")
        );
        // Shard 1 already rewritten for the next generation, the index not yet.
        let newer = shard_bytes(&["b", "d"]);
        let stale = index
            .assemble(|shard| {
                Some(if shard.key == "k0" {
                    zero.clone()
                } else {
                    newer.clone()
                })
            })
            .unwrap_err();
        assert!(
            stale
                .to_string()
                .contains("does not match index generation 4"),
            "{stale}"
        );
        let twice = index_of(5, &[("f-shard-0", "k0", &zero), ("f-shard-1", "k1", &zero)]);
        let duplicate = twice.assemble(|_| Some(zero.clone())).unwrap_err();
        assert!(matches!(duplicate, ShardError::DuplicateFlag { flag, .. } if flag == "a"));
    }
}
