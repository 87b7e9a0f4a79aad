//! Rendering the flag document of one ConfigMap from the flags that publish into it.
//! Pure: the controller reads the flags from its store and writes the result.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

use rollgate_sdk::{FlagDocument, FlagEntry, SegmentEntry};

use crate::crd::{FeatureFlag, Phase};
use crate::engine;

/// ConfigMap key that holds the document.
pub const DOCUMENT_KEY: &str = "flags.json";
/// Annotation with the SHA-256 of the published document.
pub const HASH_ANNOTATION: &str = "rollgate.dev/content-hash";
/// Label on every ConfigMap Rollgate manages.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "rollgate");
/// Documents above this size are sharded (`crate::sharding`); ConfigMaps hold at most 1 MiB
/// in all.
pub const MAX_DOCUMENT_BYTES: usize = 900 * 1024;

/// Where a flag publishes: `spec.publish.configMap`, or else the operator's default.
pub fn configmap_name<'a>(flag: &'a FeatureFlag, default: &'a str) -> &'a str {
    flag.spec
        .publish
        .as_ref()
        .and_then(|publish| publish.config_map.as_deref())
        .unwrap_or(default)
}

/// The published entry of a reconciled flag; `None` until the engine has resolved it.
///
/// Everyone is off (`enabled: false`, 0%) when the spec disables the flag, after a
/// rollback and while a kill request holds.
///
/// An experiment publishes its arms as `variants`, `experiment: {coverage, salt}` (its
/// percent is the coverage, so users outside the experiment are off) and, once `Complete`,
/// the winner as `shippedVariant`, which every user gets.
pub fn entry_for(flag: &FeatureFlag) -> Option<FlagEntry> {
    let status = flag.status.as_ref()?;
    if matches!(status.phase, Phase::Pending | Phase::Invalid) {
        return None;
    }
    let updated_at = last_change(flag)
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let mut resolved = engine::resolved(
        flag,
        status,
        status.percent.unwrap_or(0.0),
        flag.metadata.generation.unwrap_or_default(),
    );
    // A spec just edited to `enabled: false` is off before its reconcile records Disabled.
    if !flag.spec.enabled {
        resolved.enabled = false;
        resolved.percent = 0.0;
    }
    Some(resolved.to_entry(&updated_at))
}

/// The newest status timestamp: it moves only when what is published may have changed,
/// so re-rendering an unchanged flag gives the same bytes.
fn last_change(flag: &FeatureFlag) -> Option<Time> {
    let status = flag.status.as_ref()?;
    status
        .conditions
        .iter()
        .map(|condition| condition.last_transition_time.clone())
        .chain(status.step_started_at.clone())
        .chain(
            status
                .experiment
                .as_ref()
                .and_then(|experiment| experiment.shipped_at.clone()),
        )
        .max_by_key(|time| time.0)
}

/// A rendered document: always complete, never cut down to fit. Where it goes is
/// `crate::sharding::lay_out`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub document: FlagDocument,
    pub json: String,
    /// Hex SHA-256 of `json`.
    pub hash: String,
}

impl Rendered {
    /// Bytes of `json`, what the ConfigMap would hold.
    pub fn size(&self) -> usize {
        self.json.len()
    }

    /// Whether the document is within [`MAX_DOCUMENT_BYTES`]; if not, it is sharded.
    pub fn fits(&self) -> bool {
        self.size() <= MAX_DOCUMENT_BYTES
    }

    /// The `count` largest entries as (key, bytes), largest first: what to trim when the
    /// document does not fit.
    pub fn largest_entries(&self, count: usize) -> Vec<(&str, usize)> {
        let mut sizes: Vec<(&str, usize)> = self
            .document
            .flags
            .iter()
            .map(|(key, entry)| {
                // The entry's JSON plus `"key":` and a comma.
                let bytes = serde_json::to_string(entry).map_or(0, |json| json.len());
                (key.as_str(), bytes + key.len() + 4)
            })
            .collect();
        sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        sizes.truncate(count);
        sizes
    }
}

/// Renders the document of one ConfigMap.
///
/// `flags` are the flags that publish into it. A flag whose spec is currently invalid keeps
/// the entry it had in `previous`, so a bad edit never silently turns a feature off; so do
/// `undecodable_keys`, the keys of flags whose objects did not decode at all.
///
/// `segments` are the valid segments of the namespace by name. The document carries each one
/// its flags name, once; a segment not among them is left out, so `InSegment` naming it is
/// false (fail closed).
pub fn render(
    flags: &[&FeatureFlag],
    undecodable_keys: &[&str],
    previous: Option<&FlagDocument>,
    segments: &BTreeMap<String, SegmentEntry>,
) -> Rendered {
    let previous_entry = |key: &str| previous.and_then(|document| document.flags.get(key).cloned());
    let mut document = FlagDocument::new();
    for key in undecodable_keys {
        if let Some(entry) = previous_entry(key) {
            document.flags.insert(key.to_string(), entry);
        }
    }
    for flag in flags {
        let key = flag.key();
        let entry = if is_invalid(flag) {
            previous_entry(key)
        } else {
            entry_for(flag)
        };
        if let Some(entry) = entry {
            document.flags.insert(key.to_string(), entry);
        }
    }
    document.segments = document
        .flags
        .values()
        .flat_map(FlagEntry::segments_used)
        .filter_map(|name| Some((name.to_string(), segments.get(name)?.clone())))
        .collect();
    let json = document.to_json();
    let hash = content_hash(&json);
    Rendered {
        document,
        json,
        hash,
    }
}

/// Hex SHA-256 of a document's bytes.
pub fn content_hash(json: &str) -> String {
    rollgate_sdk::content_hash(json.as_bytes())
}

fn is_invalid(flag: &FeatureFlag) -> bool {
    flag.status.as_ref().is_some_and(|status| {
        status.phase == Phase::Invalid
            || status
                .conditions
                .iter()
                .any(|c| c.type_ == engine::INVALID_SPEC && c.status == "True")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{FeatureFlagSpec, FeatureFlagStatus, Publish};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn flag(name: &str, enabled: bool, phase: Phase, percent: f64) -> FeatureFlag {
        let mut flag = FeatureFlag::new(
            name,
            FeatureFlagSpec {
                key: None,
                enabled,
                description: None,
                owner: None,
                percent: Some(percent),
                allowed_users: vec!["vip".into()],
                rollout: None,
                variants: vec![],
                targeting: vec![],
                stale_after: None,
                publish: None,
                experiment: None,
            },
        );
        flag.metadata.namespace = Some("shop".into());
        flag.metadata.generation = Some(3);
        flag.status = Some(FeatureFlagStatus {
            phase,
            percent: Some(percent),
            ..Default::default()
        });
        flag
    }

    #[test]
    fn off_phases_publish_disabled_at_zero() {
        for phase in [Phase::Disabled, Phase::RolledBack, Phase::Killed] {
            let entry = entry_for(&flag("a", true, phase, 40.0)).unwrap();
            assert!(!entry.enabled, "{phase}");
            assert_eq!(entry.percent, 0.0, "{phase}");
        }
        let entry = entry_for(&flag("a", false, Phase::Static, 40.0)).unwrap();
        assert!(!entry.enabled);
        let entry = entry_for(&flag("a", true, Phase::Progressing, 5.0)).unwrap();
        assert!(entry.enabled);
        assert_eq!(entry.percent, 5.0);
        assert_eq!(entry.generation, 3);
        assert_eq!(entry.allowed_users, vec!["vip".to_string()]);
    }

    #[test]
    fn unreconciled_flags_are_not_published() {
        let mut pending = flag("a", true, Phase::Pending, 10.0);
        assert!(entry_for(&pending).is_none());
        pending.status = None;
        assert!(entry_for(&pending).is_none());
    }

    #[test]
    fn rendering_is_deterministic_and_sorted() {
        let b = flag("b", true, Phase::Static, 10.0);
        let a = flag("a", true, Phase::Static, 20.0);
        let first = render(&[&b, &a], &[], None, &BTreeMap::new());
        let second = render(&[&a, &b], &[], None, &BTreeMap::new());
        assert_eq!(first.json, second.json);
        assert_eq!(first.hash, second.hash);
        assert_eq!(first.hash.len(), 64);
        assert!(first.json.find("\"a\"").unwrap() < first.json.find("\"b\"").unwrap());
        assert!(FlagDocument::from_json(first.json.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_flags_keep_their_previous_entry() {
        let good = flag("a", true, Phase::Static, 20.0);
        let previous = render(&[&good], &[], None, &BTreeMap::new()).document;
        let mut broken = flag("a", true, Phase::Static, 99.0);
        broken.status.as_mut().unwrap().conditions.push(Condition {
            type_: "InvalidSpec".into(),
            status: "True".into(),
            reason: "ValidationFailed".into(),
            message: "spec.percent: bad".into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(4),
        });
        let rendered = render(&[&broken], &[], Some(&previous), &BTreeMap::new());
        assert_eq!(rendered.document.flags["a"].percent, 20.0);
        let without_history = render(&[&broken], &[], None, &BTreeMap::new());
        assert!(without_history.document.flags.is_empty());
    }

    #[test]
    fn undecodable_flags_keep_their_previous_entry_beside_the_others() {
        let a = flag("a", true, Phase::Static, 20.0);
        let b = flag("b", true, Phase::Static, 30.0);
        let previous = render(&[&a, &b], &[], None, &BTreeMap::new()).document;
        let moved = flag("b", true, Phase::Static, 40.0);
        let rendered = render(&[&moved], &["a", "gone"], Some(&previous), &BTreeMap::new());
        let keys: Vec<&str> = rendered.document.flags.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(rendered.document.flags["a"].percent, 20.0);
        assert_eq!(rendered.document.flags["b"].percent, 40.0);
        assert!(
            !render(&[&moved], &["a"], None, &BTreeMap::new())
                .document
                .flags
                .contains_key("a")
        );
    }

    #[test]
    fn oversized_documents_are_complete_and_do_not_fit() {
        let mut flags = Vec::new();
        for i in 0..40 {
            let mut f = flag(&format!("flag-{i:02}"), true, Phase::Static, 50.0);
            let users = if i == 7 { 3_000 } else { 1_000 };
            f.spec.allowed_users = (0..users).map(|u| format!("user-{i}-{u:020}")).collect();
            flags.push(f);
        }
        let refs: Vec<&FeatureFlag> = flags.iter().collect();
        let rendered = render(&refs, &[], None, &BTreeMap::new());
        assert!(!rendered.fits());
        assert!(rendered.size() > MAX_DOCUMENT_BYTES, "{}", rendered.size());
        // Nothing was left out to make it fit.
        assert_eq!(rendered.document.flags.len(), flags.len());
        assert!(FlagDocument::from_json(rendered.json.as_bytes()).is_ok());
        let largest = rendered.largest_entries(2);
        assert_eq!(largest[0].0, "flag-07");
        assert!(largest[0].1 > 2 * largest[1].1, "{largest:?}");
        let total: usize = rendered
            .largest_entries(usize::MAX)
            .iter()
            .map(|(_, bytes)| bytes)
            .sum();
        // The estimate counts one comma too many.
        let empty = FlagDocument::new().to_json().len();
        assert_eq!(total + empty - 1, rendered.size());
    }

    fn experiment_flag(phase: Phase, percent: f64, shipped: Option<&str>) -> FeatureFlag {
        use crate::crd::{Experiment, ExperimentMetric, ExperimentStatus, Variant};
        let mut f = flag("button", true, phase, percent);
        f.spec.percent = None;
        f.spec.experiment = Some(Experiment {
            variants: ["control", "treatment"]
                .map(|name| Variant {
                    name: name.into(),
                    weight: 50,
                })
                .to_vec(),
            coverage: 20.0,
            salt: None,
            metric: ExperimentMetric {
                exposures: "e{v={{ variant }}}".into(),
                conversions: "c{v={{ variant }}}".into(),
            },
            alpha: 0.05,
            min_samples_per_variant: 1000,
            method: crate::experiment::Method::Sequential,
            planned_samples_per_variant: None,
            auto_ship: true,
            max_duration: None,
        });
        let mut experiment =
            ExperimentStatus::started(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        experiment.shipped_variant = shipped.map(str::to_string);
        f.status.as_mut().unwrap().experiment = Some(experiment);
        f
    }

    #[test]
    fn experiments_publish_their_arms_coverage_salt_and_winner() {
        let entry = entry_for(&experiment_flag(Phase::Progressing, 20.0, None)).unwrap();
        assert_eq!((entry.enabled, entry.percent), (true, 20.0));
        let names: Vec<&str> = entry.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["control", "treatment"]);
        let assignment = entry.experiment.unwrap();
        assert_eq!(
            (assignment.coverage, assignment.salt.as_str()),
            (20.0, "button")
        );
        assert_eq!(entry.shipped_variant, None);

        let shipped = experiment_flag(Phase::Complete, 100.0, Some("treatment"));
        let entry = entry_for(&shipped).unwrap();
        assert_eq!(entry.shipped_variant.as_deref(), Some("treatment"));
        assert_eq!(entry.percent, 100.0);
        let json = render(&[&shipped], &[], None, &BTreeMap::new()).json;
        assert!(FlagDocument::from_json(json.as_bytes()).is_ok(), "{json}");
        assert!(json.contains(r#""shippedVariant":"treatment""#), "{json}");

        // Off phases publish no winner; a name that is not an arm is never published.
        let entry = entry_for(&experiment_flag(Phase::RolledBack, 0.0, Some("treatment"))).unwrap();
        assert_eq!((entry.enabled, entry.shipped_variant), (false, None));
        let entry = entry_for(&experiment_flag(Phase::Complete, 100.0, Some("gone"))).unwrap();
        assert_eq!(entry.shipped_variant, None);
    }

    #[test]
    fn rules_are_published_with_each_used_segment_once_and_missing_ones_left_out() {
        use crate::crd::{Serve, TargetingCondition, TargetingRule};
        use rollgate_sdk::Operator;
        let in_segments = |names: &[&str]| TargetingRule {
            name: "beta".into(),
            conditions: vec![TargetingCondition {
                attribute: None,
                operator: Operator::InSegment,
                values: names.iter().map(|n| n.to_string()).collect(),
            }],
            serve: Serve {
                percent: Some(50.0),
                ..Serve::default()
            },
        };
        let mut a = flag("a", true, Phase::Progressing, 5.0);
        a.spec.targeting = vec![in_segments(&["beta-testers", "gone"])];
        let mut b = flag("b", true, Phase::Static, 10.0);
        b.spec.targeting = vec![in_segments(&["beta-testers"])];
        let plain = flag("c", true, Phase::Static, 10.0);
        let segments = BTreeMap::from([
            (
                "beta-testers".to_string(),
                SegmentEntry {
                    included: vec!["alice".into()],
                    ..SegmentEntry::default()
                },
            ),
            ("unused".to_string(), SegmentEntry::default()),
        ]);
        let rendered = render(&[&a, &b, &plain], &[], None, &segments);
        let document = &rendered.document;
        assert_eq!(document.flags["a"].targeting.len(), 1);
        assert_eq!(
            document.flags["a"].targeting[0].serve,
            rollgate_sdk::Serve::Percent(50.0)
        );
        // The ramp is untouched by the rules.
        assert_eq!(document.flags["a"].percent, 5.0);
        assert!(document.flags["c"].targeting.is_empty());
        let names: Vec<&str> = document.segments.keys().map(String::as_str).collect();
        assert_eq!(names, ["beta-testers"]);
        assert_eq!(
            rendered.json.matches("\"alice\"").count(),
            1,
            "{}",
            rendered.json
        );
        assert!(
            !rendered.json.contains("\"targeting\":[]"),
            "{}",
            rendered.json
        );
        let parsed = FlagDocument::from_json(rendered.json.as_bytes()).unwrap();
        assert_eq!(&parsed, document);
        // Without rules that name a segment, the document has no segments at all.
        let plain_only = render(&[&plain], &[], None, &segments);
        assert!(!plain_only.json.contains("segments"), "{}", plain_only.json);
    }

    #[test]
    fn configmap_name_defaults_and_overrides() {
        let mut f = flag("a", true, Phase::Static, 1.0);
        assert_eq!(configmap_name(&f, "rollgate-flags"), "rollgate-flags");
        f.spec.publish = Some(Publish {
            config_map: Some("team-flags".into()),
        });
        assert_eq!(configmap_name(&f, "rollgate-flags"), "team-flags");
    }
}
