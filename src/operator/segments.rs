//! The `Segment` status: `observedGeneration` and `Ready` (`False`, reason `Invalid`, with the
//! violations `rollgate validate` reports). Flags never wait on it: they check a segment
//! themselves (`SegmentCatalog`), so this only tells people.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::error::OperatorError;
use super::ownership::FIELD_MANAGER;
use rollgate_core::engine::{EngineEvent, EventReason, READY, set_condition};
use rollgate_core::segment::{Segment, SegmentStatus};
use rollgate_core::validate::validate_segment;

/// How soon a segment whose status write failed tries again.
const RETRY: Duration = Duration::from_secs(5);

/// One controller per watched scope, writing each segment's status.
pub async fn run_controller(
    client: Client,
    namespace: Option<String>,
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let segments: Api<Segment> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let became_leader = super::context::leadership_gained(&context);
    Controller::new(segments, watcher::Config::default())
        .reconcile_all_on(became_leader)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "segment reconcile failed");
            }
        })
        .await;
}

/// Checks the segment and applies its status when it changed; a Warning event when it
/// turns invalid.
pub async fn reconcile(
    segment: Arc<Segment>,
    context: Arc<Context>,
) -> Result<Action, OperatorError> {
    if !context.is_leader() {
        return Ok(Action::await_change());
    }
    let namespace = segment
        .namespace()
        .ok_or(OperatorError::MissingMetadata("metadata.namespace"))?;
    let name = segment.name_any();
    let violations = validate_segment(&segment);
    let current = segment.status.clone().unwrap_or_default();
    let status = wanted_status(&segment, &current, &violations, Timestamp::now());
    if status == current {
        return Ok(Action::await_change());
    }
    let api: Api<Segment> = Api::namespaced(context.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Segment",
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| OperatorError::SegmentStatusWrite {
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(source),
    })?;
    let was_invalid = current
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "False");
    if let Some(first) = violations.first()
        && !was_invalid
    {
        let event = EngineEvent::new(EventReason::InvalidSpec, first.to_string());
        super::reconcile::emit(&context, &*segment, &[event]).await;
    }
    Ok(Action::await_change())
}

/// `observedGeneration` and `Ready`: `True` (reason `Valid`), or `False` (reason `Invalid`)
/// with every violation.
pub fn wanted_status(
    segment: &Segment,
    current: &SegmentStatus,
    violations: &[rollgate_core::validate::Violation],
    now: Timestamp,
) -> SegmentStatus {
    let generation = segment.metadata.generation.unwrap_or_default();
    let (ready, reason, message) = if violations.is_empty() {
        (
            true,
            "Valid",
            "the segment is valid and published to the flags that name it".to_string(),
        )
    } else {
        let message = violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        (false, "Invalid", message)
    };
    SegmentStatus {
        observed_generation: segment.metadata.generation,
        conditions: set_condition(
            &current.conditions,
            READY,
            ready,
            reason,
            &message,
            now,
            generation,
        ),
    }
}

fn error_policy(segment: Arc<Segment>, error: &OperatorError, context: Arc<Context>) -> Action {
    context
        .metrics
        .reconcile_errors
        .with_label_values(&[error.category()])
        .inc();
    tracing::warn!(segment = %segment.name_any(), %error, "segment reconcile failed; retrying");
    Action::requeue(RETRY)
}
