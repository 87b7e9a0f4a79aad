//! The `Segment` custom resource (`rollgate.dev/v1alpha1`): a reusable audience that flags of
//! its namespace name in `InSegment` conditions (`docs/targeting.md`, "Segments"). Spec and
//! status, no I/O; [`crate::validate::validate_segment`] mirrors its CEL rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_core::CustomResourceExt;
use kube_derive::{CustomResource, KubeSchema};
use rollgate_sdk::{SegmentEntry, SegmentRule as PublishedRule};
use serde::{Deserialize, Serialize};

use crate::crd::{IN_SEGMENT_MESSAGE, TargetingCondition};

/// An audience: a user is in when not `excluded` and either `included` or matched by one of
/// `rules`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[kube(
    group = "rollgate.dev",
    version = "v1alpha1",
    kind = "Segment",
    plural = "segments",
    shortname = "seg",
    namespaced,
    status = "SegmentStatus",
    crates(kube_core = "::kube_core"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SegmentSpec {
    /// User ids that are always in (at most 10,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(max = 253)), extend("x-kubernetes-list-type" = "set"))]
    pub included: Vec<String>,
    /// User ids that are never in; wins over `included` and `rules` (at most 10,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(max = 253)), extend("x-kubernetes-list-type" = "set"))]
    pub excluded: Vec<String>,
    /// A user matching every condition of any one rule is in (at most 32 rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rules: Vec<SegmentRule>,
}

/// One segment rule: 1–16 conditions, all of which must hold; no `InSegment`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct SegmentRule {
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = kube_core::Rule::new("self.all(c, c.operator != 'InSegment')").message(IN_SEGMENT_MESSAGE))]
    pub conditions: Vec<TargetingCondition>,
}

/// Observed state: whether the operator accepted the spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct SegmentStatus {
    /// The `metadata.generation` the operator last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (`True`, or `False` with reason `Invalid` and the violations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl Segment {
    /// The segment as the flag document carries it.
    pub fn to_entry(&self) -> SegmentEntry {
        SegmentEntry {
            included: self.spec.included.clone(),
            excluded: self.spec.excluded.clone(),
            rules: self
                .spec
                .rules
                .iter()
                .map(|rule| PublishedRule {
                    conditions: rule
                        .conditions
                        .iter()
                        .map(TargetingCondition::to_document)
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The CRD as YAML, exactly as `rollgate crd` prints it and `crds/segment.yaml` holds it.
pub fn crd_yaml() -> String {
    crate::crd::render_crd(&Segment::crd())
}
