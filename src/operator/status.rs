//! Writing `FeatureFlag` status with server-side apply on `/status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::error::OperatorError;
use super::ownership::FIELD_MANAGER;
use super::watched::WatchedFlag;
use rollgate_core::crd::FeatureFlagStatus;

/// Applies `status` to the flag `metadata` names unless it equals `current`, what the flag
/// already has. Returns whether it wrote. Takes the metadata rather than the flag, and reads
/// the answer as a [`WatchedFlag`], so that a flag whose spec does not decode can still be
/// given its condition.
pub async fn apply(
    api: &Api<WatchedFlag>,
    metadata: &ObjectMeta,
    current: Option<&FeatureFlagStatus>,
    status: &FeatureFlagStatus,
) -> Result<bool, OperatorError> {
    let status = &without_empty_condition_messages(status);
    if current == Some(status) {
        return Ok(false);
    }
    let name = metadata
        .name
        .as_deref()
        .ok_or(OperatorError::MissingMetadata("metadata.name"))?;
    let patch = json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| OperatorError::StatusWrite {
        namespace: metadata.namespace.clone().unwrap_or_default(),
        name: name.to_string(),
        source: Box::new(source),
    })?;
    Ok(true)
}

/// A 1.20 API server reads an empty string nested in status as null and refuses the whole
/// write, so an empty condition message is replaced by its reason.
fn without_empty_condition_messages(status: &FeatureFlagStatus) -> FeatureFlagStatus {
    let mut status = status.clone();
    for condition in &mut status.conditions {
        if condition.message.is_empty() {
            condition.message = condition.reason.clone();
        }
    }
    status
}
