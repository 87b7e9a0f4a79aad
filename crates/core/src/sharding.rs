//! Laying a rendered document out over ConfigMaps: one when it fits, else shards and an index
//! (`rollgate_sdk::shards`, `docs/flag-document.md`). Pure: the controller writes the result.
//!
//! A flag's shard is `sha256(key) mod count`, and the count is the smallest power of two whose
//! shards all fit. Changing one flag rewrites its own shard and the index only, and doubling
//! the count splits each shard in two, as EndpointSlices keep most of their slices when an
//! endpoint changes.

use std::collections::BTreeMap;

use rollgate_sdk::{FlagDocument, FlagEntry, SCHEMA_VERSION, ShardIndex, ShardRef, content_hash};
use sha2::{Digest, Sha256};

use crate::publish::{MAX_DOCUMENT_BYTES, Rendered};

/// Shards per ConfigMap name unless `--max-shards` says otherwise: 16 × 900 KiB.
pub const DEFAULT_MAX_SHARDS: usize = 16;

/// Label on every shard, naming the ConfigMap of its index.
pub const SHARD_OF_LABEL: &str = "rollgate.dev/shard-of";

/// The ConfigMap of shard `index` of the document published as `configmap`.
pub fn shard_configmap(configmap: &str, index: usize) -> String {
    format!("{configmap}-shard-{index}")
}

/// The key of shard `index`: distinct per shard, so the index and every shard mounted in one
/// projected volume are files side by side.
pub fn shard_key(index: usize) -> String {
    format!("flags-shard-{index}.json")
}

/// The shard of `key` among `count`.
pub fn shard_of(key: &str, count: usize) -> usize {
    let digest = Sha256::digest(key.as_bytes());
    let mut leading = [0u8; 8];
    leading.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(leading) % count.max(1) as u64) as usize
}

/// One shard, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Shard {
    pub configmap: String,
    pub key: String,
    pub json: String,
    /// Hex SHA-256 of `json`.
    pub hash: String,
}

/// Where a rendered document goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// Whole, under `flags.json` of the ConfigMap: every document that fits.
    Single,
    /// Shards, then the index under `flags.json` of the ConfigMap.
    Sharded {
        index: ShardIndex,
        index_json: String,
        index_hash: String,
        shards: Vec<Shard>,
    },
}

impl Layout {
    /// Names of the shard ConfigMaps, none for a single document.
    pub fn shard_configmaps(&self) -> Vec<&str> {
        match self {
            Layout::Single => Vec::new(),
            Layout::Sharded { shards, .. } => shards
                .iter()
                .map(|shard| shard.configmap.as_str())
                .collect(),
        }
    }
}

/// Lays `rendered` out for `configmap`: whole when it fits, else over the fewest shards (a
/// power of two, at most `max_shards`) that each fit. `None` when no such split exists: an
/// entry alone over the limit, or more than `max_shards` shards' worth of flags.
///
/// `previous` is the index the ConfigMap holds now: when every shard is unchanged, the new
/// index is the same, generation included, so an unchanged document writes nothing.
pub fn lay_out(
    rendered: &Rendered,
    configmap: &str,
    max_shards: usize,
    previous: Option<&ShardIndex>,
) -> Option<Layout> {
    if rendered.fits() {
        return Some(Layout::Single);
    }
    let mut count = 2;
    while count <= max_shards {
        if let Some(shards) = split(&rendered.document, configmap, count) {
            let refs: Vec<ShardRef> = shards
                .iter()
                .map(|shard| ShardRef {
                    config_map: shard.configmap.clone(),
                    key: shard.key.clone(),
                    sha256: shard.hash.clone(),
                })
                .collect();
            let generation = match previous {
                Some(previous) if previous.shards == refs => previous.generation,
                Some(previous) => previous.generation + 1,
                None => 1,
            };
            let index = ShardIndex {
                schema_version: SCHEMA_VERSION,
                generation,
                shards: refs,
            };
            let index_json = index.to_json();
            let index_hash = content_hash(index_json.as_bytes());
            return Some(Layout::Sharded {
                index,
                index_json,
                index_hash,
                shards,
            });
        }
        count *= 2;
    }
    None
}

/// The document in `count` shards, `None` when one of them is over the limit.
fn split(document: &FlagDocument, configmap: &str, count: usize) -> Option<Vec<Shard>> {
    let mut parts: Vec<BTreeMap<String, _>> = vec![BTreeMap::new(); count];
    for (key, entry) in &document.flags {
        parts[shard_of(key, count)].insert(key.clone(), entry.clone());
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(index, flags)| {
            let segments = flags
                .values()
                .flat_map(FlagEntry::segments_used)
                .filter_map(|name| {
                    let segment = document.segments.get(name)?;
                    Some((name.to_string(), segment.clone()))
                })
                .collect();
            let json = FlagDocument {
                schema_version: SCHEMA_VERSION,
                flags,
                segments,
            }
            .to_json();
            (json.len() <= MAX_DOCUMENT_BYTES).then(|| Shard {
                configmap: shard_configmap(configmap, index),
                key: shard_key(index),
                hash: content_hash(json.as_bytes()),
                json,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rollgate_sdk::{FlagEntry, Stored, parse_stored};

    use super::*;
    use crate::publish::Rendered;

    fn entry(key: &str, users: usize) -> FlagEntry {
        FlagEntry {
            key: key.into(),
            enabled: true,
            percent: 50.0,
            allowed_users: (0..users).map(|u| format!("user-{key}-{u:040}")).collect(),
            variants: vec![],
            experiment: None,
            shipped_variant: None,
            phase: "Static".into(),
            generation: 1,
            updated_at: String::new(),
            targeting: Vec::new(),
        }
    }

    fn rendered(flags: impl IntoIterator<Item = FlagEntry>) -> Rendered {
        let mut document = FlagDocument::new();
        for flag in flags {
            document.flags.insert(flag.key.clone(), flag);
        }
        let json = document.to_json();
        let hash = content_hash(json.as_bytes());
        Rendered {
            document,
            json,
            hash,
        }
    }

    /// 2.6 MB of flags: four shards, each a valid document under the limit, and read back
    /// through the index they are the whole document.
    #[test]
    fn a_document_over_the_limit_is_sharded_and_reads_back_whole() {
        let big = rendered((0..200).map(|i| entry(&format!("flag-{i:03}"), 200)));
        assert!(big.size() > 2 * MAX_DOCUMENT_BYTES, "{}", big.size());
        let Some(Layout::Sharded {
            index,
            index_json,
            shards,
            ..
        }) = lay_out(&big, "rollgate-flags", DEFAULT_MAX_SHARDS, None)
        else {
            panic!("not sharded");
        };
        assert_eq!(shards.len(), 4);
        assert_eq!(index.generation, 1);
        assert_eq!(shards[3].configmap, "rollgate-flags-shard-3");
        assert_eq!(shards[3].key, "flags-shard-3.json");
        assert!(shards.iter().all(|s| s.json.len() <= MAX_DOCUMENT_BYTES));
        let Stored::Index(parsed) = parse_stored(index_json.as_bytes()).unwrap() else {
            panic!("flags.json is not an index");
        };
        let whole = parsed
            .assemble(|shard| {
                shards
                    .iter()
                    .find(|s| s.configmap == shard.config_map)
                    .map(|s| s.json.clone())
            })
            .unwrap();
        assert_eq!(whole, big.document);
    }

    /// A change to one flag rewrites its shard and the index; the others keep their bytes.
    /// An unchanged document keeps the index, generation included.
    #[test]
    fn one_changed_flag_rewrites_one_shard_and_bumps_the_generation() {
        let flags: Vec<FlagEntry> = (0..200)
            .map(|i| entry(&format!("flag-{i:03}"), 200))
            .collect();
        let Some(Layout::Sharded {
            index: first,
            shards: before,
            ..
        }) = lay_out(&rendered(flags.clone()), "f", DEFAULT_MAX_SHARDS, None)
        else {
            panic!("not sharded");
        };
        let same = lay_out(
            &rendered(flags.clone()),
            "f",
            DEFAULT_MAX_SHARDS,
            Some(&first),
        );
        assert!(matches!(same, Some(Layout::Sharded { index, .. }) if index == first));

        let mut changed = flags;
        changed[17].percent = 60.0;
        let Some(Layout::Sharded {
            index: second,
            shards: after,
            ..
        }) = lay_out(&rendered(changed), "f", DEFAULT_MAX_SHARDS, Some(&first))
        else {
            panic!("not sharded");
        };
        assert_eq!(second.generation, 2);
        let rewritten: Vec<usize> = (0..after.len())
            .filter(|&i| after[i].hash != before[i].hash)
            .collect();
        assert_eq!(rewritten, [shard_of("flag-017", after.len())]);
    }

    #[test]
    fn a_document_that_fits_stays_whole_and_one_too_large_for_every_split_is_refused() {
        let small = rendered((0..10).map(|i| entry(&format!("f{i}"), 2)));
        assert_eq!(
            lay_out(&small, "f", DEFAULT_MAX_SHARDS, None),
            Some(Layout::Single)
        );
        // One entry alone over the limit: no split helps.
        let huge = rendered([entry("huge", 20_000), entry("small", 1)]);
        assert_eq!(lay_out(&huge, "f", DEFAULT_MAX_SHARDS, None), None);
        // 2.6 MB in at most two shards.
        let big = rendered((0..200).map(|i| entry(&format!("flag-{i:03}"), 200)));
        assert_eq!(lay_out(&big, "f", 2, None), None);
    }

    /// Doubling the count only splits shards: a flag in shard i of n is in i or i+n of 2n.
    #[test]
    fn doubling_the_count_splits_each_shard_in_two() {
        for i in 0..1_000 {
            let key = format!("flag-{i}");
            let (of_four, of_eight) = (shard_of(&key, 4), shard_of(&key, 8));
            assert!(of_eight == of_four || of_eight == of_four + 4, "{key}");
        }
    }
}
