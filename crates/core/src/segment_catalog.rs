//! The segments of one namespace as its flags see them: which are published, and the
//! `SegmentsResolved` condition of a flag whose rules name some that are not. Pure.

use std::collections::BTreeMap;

use rollgate_sdk::SegmentEntry;

use crate::crd::FeatureFlagSpec;
use crate::segment::Segment;
use crate::validate::validate_segment;

/// Condition type on a flag whose rules name segments: `True` when each exists and is valid.
pub const SEGMENTS_RESOLVED: &str = "SegmentsResolved";
/// Reason of `SegmentsResolved=False`: a named segment is missing or invalid.
pub const SEGMENT_NOT_FOUND: &str = "SegmentNotFound";

/// The segments of one namespace as flags see them: the valid ones as published, and why
/// each invalid one is not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentCatalog {
    pub namespace: String,
    pub entries: BTreeMap<String, SegmentEntry>,
    /// Each invalid segment's violations, joined.
    pub invalid: BTreeMap<String, String>,
}

/// Why a segment a flag names is not published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved<'a> {
    Missing(&'a str),
    Invalid { name: &'a str, violations: &'a str },
}

impl SegmentCatalog {
    /// Checks every segment of `namespace`; an invalid one counts as missing for flags.
    pub fn new<'a>(namespace: &str, segments: impl IntoIterator<Item = &'a Segment>) -> Self {
        let mut catalog = Self {
            namespace: namespace.to_string(),
            ..Self::default()
        };
        for segment in segments {
            let Some(name) = segment.metadata.name.clone() else {
                continue;
            };
            let violations = validate_segment(segment);
            if violations.is_empty() {
                catalog.entries.insert(name, segment.to_entry());
            } else {
                let text = violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                catalog.invalid.insert(name, text);
            }
        }
        catalog
    }

    /// The segments `spec` names that this catalog does not publish, in rule order.
    pub fn unresolved<'a>(&'a self, spec: &'a FeatureFlagSpec) -> Vec<Unresolved<'a>> {
        spec.segments_used()
            .into_iter()
            .filter(|name| !self.entries.contains_key(*name))
            .map(|name| match self.invalid.get(name) {
                Some(violations) => Unresolved::Invalid { name, violations },
                None => Unresolved::Missing(name),
            })
            .collect()
    }

    /// `SegmentsResolved` for a flag with this spec as (status, reason, message); `None`
    /// when its rules name no segment.
    pub fn condition(&self, spec: &FeatureFlagSpec) -> Option<(bool, &'static str, String)> {
        let used = spec.segments_used();
        if used.is_empty() {
            return None;
        }
        let unresolved = self.unresolved(spec);
        if unresolved.is_empty() {
            let names = used
                .iter()
                .map(|name| format!("{name:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Some((
                true,
                "SegmentsFound",
                format!("every segment the rules name is published: {names}"),
            ));
        }
        let namespace = &self.namespace;
        let mut parts: Vec<String> = unresolved
            .iter()
            .map(|unresolved| match unresolved {
                Unresolved::Missing(name) => {
                    format!("segment {name:?} does not exist in namespace {namespace}")
                }
                Unresolved::Invalid { name, violations } => {
                    format!("segment {name:?} in namespace {namespace} is invalid ({violations})")
                }
            })
            .collect();
        parts.push(if unresolved.len() == 1 {
            "InSegment conditions naming it match no one".to_string()
        } else {
            "InSegment conditions naming them match no one".to_string()
        });
        Some((false, SEGMENT_NOT_FOUND, parts.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TargetingCondition;
    use crate::segment::{SegmentRule, SegmentSpec};
    use rollgate_sdk::Operator;

    fn segment(name: &str, included: &[&str]) -> Segment {
        let mut segment = Segment::new(
            name,
            SegmentSpec {
                included: included.iter().map(|u| u.to_string()).collect(),
                ..SegmentSpec::default()
            },
        );
        segment.metadata.namespace = Some("shop".into());
        segment
    }

    fn naming(names: &[&str]) -> FeatureFlagSpec {
        let value = serde_json::json!({
            "enabled": true,
            "targeting": [{"name": "beta", "conditions": [
                {"operator": "InSegment", "values": names}], "serve": {"enabled": true}}]
        });
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_missing_segment_is_named_in_the_condition() {
        let catalog = SegmentCatalog::new("shop", [&segment("staff", &["ann"])]);
        let (status, reason, message) = catalog.condition(&naming(&["beta-testers"])).unwrap();
        assert!(!status);
        assert_eq!(reason, SEGMENT_NOT_FOUND);
        assert_eq!(
            message,
            "segment \"beta-testers\" does not exist in namespace shop; InSegment conditions naming it match no one"
        );
        let (status, _, message) = catalog.condition(&naming(&["staff"])).unwrap();
        assert!(status, "{message}");
        assert_eq!(catalog.condition(&naming(&[])), None);
    }

    #[test]
    fn an_invalid_segment_counts_as_missing() {
        let mut bad = segment("beta-testers", &["bob", "bob"]);
        bad.spec.rules.push(SegmentRule {
            conditions: vec![TargetingCondition {
                attribute: None,
                operator: Operator::InSegment,
                values: vec!["staff".into()],
            }],
        });
        let catalog = SegmentCatalog::new("shop", [&bad]);
        assert!(catalog.entries.is_empty());
        let (status, _, message) = catalog.condition(&naming(&["beta-testers"])).unwrap();
        assert!(!status);
        assert!(message.contains("is invalid (spec.included[1]: duplicate user \"bob\"; spec.rules[0].conditions[0].operator: InSegment is not allowed"), "{message}");
    }
}
