//! One reconcile of one flag, as fixed named steps:
//! read → validate → analyse (if due) → decide (pure) → apply status → publish (one render
//! and one write shared with concurrent reconciles) → size condition → emit events →
//! requeue when the engine asked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument as _;

use super::commit::PublishOutcome;
use super::context::Context;
use super::error::OperatorError;
use super::ownership::FINALIZER;
use super::watched::WatchedFlag;
use super::{publisher, status};
use crate::prometheus::{self, PrometheusClient, resolve_address};
use rollgate_core::crd::{Analysis, Experiment, FeatureFlag, FeatureFlagStatus, Phase};
use rollgate_core::engine::{
    self, ANALYSIS_OVERDUE, AnalysisSchedule, Decision, EngineEvent, EventReason, PUBLISH_FAILED,
    analysis_slot, refused_spec_conditions, set_condition, until,
};
use rollgate_core::observation::{
    ExperimentOutcome, GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome,
    Observation,
};
use rollgate_core::publish::{self, Rendered, configmap_name};
use rollgate_core::segment_catalog::{SEGMENTS_RESOLVED, SegmentCatalog};
use rollgate_core::sharding;
use rollgate_core::template::TemplateContext;
use rollgate_core::validate::{Violation, validate};
use rollgate_sdk::SegmentEntry;

/// How soon a flag whose document was too large looks again: another flag may have shrunk
/// it meanwhile, and the condition should not outlive the problem.
const PUBLISH_RETRY: Duration = Duration::from_secs(60);

pub async fn reconcile(
    flag: Arc<WatchedFlag>,
    context: Arc<Context>,
) -> Result<Action, OperatorError> {
    let span = tracing::info_span!("reconcile", flag = %flag.name_any(), namespace = %flag.namespace().unwrap_or_default());
    reconcile_in_span(flag, context).instrument(span).await
}

/// The reconcile proper, inside its span so every log line names the flag and namespace.
async fn reconcile_in_span(
    flag: Arc<WatchedFlag>,
    context: Arc<Context>,
) -> Result<Action, OperatorError> {
    let started = std::time::Instant::now();
    let object = ObjectRef::from_obj(&*flag);
    if !context.is_leader() {
        // Followers keep their caches warm and write nothing; leadership triggers a full pass.
        // Another leader may have written since, so the remembered statuses are stale.
        context.forget_written(None);
        return Ok(Action::await_change());
    }
    let namespace = flag
        .namespace()
        .ok_or(OperatorError::MissingMetadata("metadata.namespace"))?;
    let api: Api<WatchedFlag> = Api::namespaced(context.client.clone(), &namespace);
    let result = run_with_finalizer(&api, flag, &context, &object).await;
    context
        .metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    context
        .metrics
        .reconcile_total
        .with_label_values(&[outcome])
        .inc();
    if result.is_ok() {
        context.backoff.reset(&object);
        context.publish_backoff.reset(&object);
    }
    result
}

/// Transient errors retry with backoff, fast on the publish path; an invalid spec waits for
/// the next change.
pub fn error_policy(
    flag: Arc<WatchedFlag>,
    error: &OperatorError,
    context: Arc<Context>,
) -> Action {
    context
        .metrics
        .reconcile_errors
        .with_label_values(&[error.category()])
        .inc();
    match retry_after(&flag, error, &context) {
        Some(delay) => {
            tracing::warn!(%error, retry_in = ?delay, "reconcile failed; retrying");
            Action::requeue(delay)
        }
        None => {
            tracing::warn!(%error, "reconcile failed; waiting for a change");
            Action::await_change()
        }
    }
}

/// When `error_policy` retries `flag` after `error`: `None` waits for a change.
pub fn retry_after(
    flag: &WatchedFlag,
    error: &OperatorError,
    context: &Context,
) -> Option<Duration> {
    if !error.is_transient() {
        return None;
    }
    let backoff = if error.is_on_publish_path() {
        &context.publish_backoff
    } else {
        &context.backoff
    };
    Some(backoff.next_delay(&ObjectRef::from_obj(flag)))
}

async fn apply(watched: Arc<WatchedFlag>, context: Arc<Context>) -> Result<Action, OperatorError> {
    let context = &*context;
    // 1. read
    let namespace = watched.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let flags: Api<WatchedFlag> = Api::namespaced(context.client.clone(), &namespace);
    let flag = match &*watched {
        WatchedFlag::Decoded(flag) => &**flag,
        // Nothing can be decided or published from a spec that does not decode.
        WatchedFlag::Undecodable(undecodable) => {
            let violation = Violation {
                path: undecodable.error.path.clone(),
                message: undecodable.error.message.clone(),
            };
            return invalid_spec(&watched, context, &flags, "DecodeFailed", &[violation], now)
                .await;
        }
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(context.priority_client.clone(), &namespace);
    let configmap = configmap_name(flag, &context.default_configmap).to_string();
    // Its RBAC names the ConfigMaps the operator may touch; any other is refused up front.
    if !context.may_publish(&configmap) {
        let violation = context.unpublishable(&configmap);
        return invalid_spec(
            &watched,
            context,
            &flags,
            "ConfigMapNotAllowed",
            &[violation],
            now,
        )
        .await;
    }
    let current_status = flag.status.clone().unwrap_or_default();
    // The kill switch just thrown: its writes take the priority lane.
    let kill = is_kill(flag, &current_status);
    let flags = if kill {
        Api::namespaced(context.priority_client.clone(), &namespace)
    } else {
        flags
    };

    // 2. validate
    let violations = validate(flag);
    if !violations.is_empty() {
        return invalid_spec(
            &watched,
            context,
            &flags,
            "ValidationFailed",
            &violations,
            now,
        )
        .await;
    }

    // The segments the rules name: a segment not cached yet would look missing.
    let segments_used = flag.spec.segments_used();
    if !segments_used.is_empty() {
        context.segments_synced().await;
    }
    let catalog = context.segment_catalog(&namespace, &segments_used);

    // 3. analyse (when due) and decide
    let mut decision = engine::decide(flag, &current_status, Observation::None, now);
    let mut finished_late = None;
    // A due analysis runs at the flag's slot on its grid, so flags due together spread
    // over their interval; until then the dry-run decision stands.
    let slot = decision.analysis_schedule.map(|schedule| AnalysisSchedule {
        due_at: analysis_slot(
            schedule.due_at,
            schedule.interval,
            &namespace,
            &flag.name_any(),
        ),
        ..schedule
    });
    let mut come_back_after = None;
    if decision.analysis_due {
        match slot {
            Some(slot) if slot.due_at > now => {
                come_back_after = Some(until(now, slot.due_at));
            }
            // The query queue already holds more than a second of work: come back instead
            // of holding one of the controller's slots while waiting in it.
            _ => match context.analysis_backlog() {
                Some(backlog) => {
                    context.metrics.analyses_deferred.inc();
                    come_back_after = Some(backlog);
                }
                None => {
                    let observation = analyse(flag, context, &current_status, now).await;
                    finished_late = slot.map(|slot| lateness(context, slot, Timestamp::now()));
                    decision = engine::decide(flag, &current_status, observation, now);
                }
            },
        }
    }

    // 4. apply status
    let mut new_status = decision.status.clone();
    set_overdue_condition(&mut new_status, flag, &decision, finished_late, now);
    let segments_event = set_segments_condition(&mut new_status, flag, &catalog, now);
    let status_written =
        status::apply(&flags, &flag.metadata, flag.status.as_ref(), &new_status).await?;
    if status_written {
        context.remember_written(flag, with_status(flag, new_status.clone()));
    }

    // 5. publish: one render and one write with every change made meanwhile; nothing when
    // the ConfigMap already holds this flag's entry as it is now
    let entry = entry_digest(&with_status(flag, new_status.clone()), &catalog.entries);
    let already_published = !status_written
        && entry.is_some_and(|digest| {
            context
                .existing_writer(&namespace, &configmap)
                .is_some_and(|writer| writer.holds(flag.key(), digest))
        });
    let outcome = if already_published {
        context
            .metrics
            .publishes
            .with_label_values(&["skipped"])
            .inc();
        PublishOutcome::default()
    } else {
        publish(context, &configmaps, &namespace, &configmap, kill).await?
    };

    // 6. `PublishFailed` follows what that publish found; a second status write only when
    // it changes
    let publish_failure = outcome.too_large;
    let mut checked = new_status.clone();
    set_publish_condition(&mut checked, flag, publish_failure.as_deref(), now);
    if checked != new_status {
        if status::apply(&flags, &flag.metadata, Some(&new_status), &checked).await? {
            context.remember_written(flag, with_status(flag, checked.clone()));
        }
        new_status = checked;
    }

    // 7. events and metrics
    let mut events = decision.events.clone();
    events.extend(segments_event);
    if let Some(message) = &publish_failure {
        events.push(EngineEvent::new(
            EventReason::PublishFailed,
            message.clone(),
        ));
    }
    emit(context, flag, &events).await;
    observe(context, &namespace, flag, &new_status, &decision);

    // 8. requeue when the engine asked (sooner while the document does not fit)
    let requeue = match publish_failure {
        Some(_) => Some(
            decision
                .requeue_after
                .map_or(PUBLISH_RETRY, |d| d.min(PUBLISH_RETRY)),
        ),
        None => come_back_after.or(decision.requeue_after),
    };
    Ok(match requeue {
        Some(delay) => Action::requeue(delay.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

/// A deleted flag leaves the document before its finalizer is removed. One that does not
/// decode leaves the ConfigMap its spec still names (else the default one).
async fn cleanup(
    watched: Arc<WatchedFlag>,
    context: Arc<Context>,
) -> Result<Action, OperatorError> {
    let context = &*context;
    let namespace = watched.namespace().unwrap_or_default();
    let configmaps: Api<ConfigMap> = Api::namespaced(context.priority_client.clone(), &namespace);
    let configmap = watched
        .configmap(&context.default_configmap)
        .unwrap_or(&context.default_configmap)
        .to_string();
    // Refused while it lived, so it never published there.
    if !context.may_publish(&configmap) {
        return Ok(Action::await_change());
    }
    if let Some(uid) = &watched.meta().uid {
        context.mark_leaving(uid);
    }
    match publish(context, &configmaps, &namespace, &configmap, false).await {
        Ok(_) => {}
        Err(error) if error.is_namespace_terminating() => {
            tracing::info!(%configmap, "namespace is being deleted; its ConfigMap goes with it");
        }
        Err(error) => return Err(error),
    }
    if let Some(uid) = &watched.meta().uid {
        context.forget_written(Some(uid));
    }
    if let Some(key) = watched.key() {
        context.metrics.forget_flag(&namespace, key);
    }
    if let Some(flag) = watched.decoded() {
        let arms: Vec<&str> = flag.arms().iter().map(|v| v.name.as_str()).collect();
        context
            .metrics
            .forget_experiment(&namespace, flag.key(), &arms);
    }
    tracing::info!(flag = %watched.name_any(), "flag deleted; removed from {configmap}");
    Ok(Action::await_change())
}

/// Renders the document of `configmap` from the store. Flags being deleted are left out.
/// Each flag carries the status this leader last wrote for it when the cache has not caught
/// up yet, so a render never publishes an older state.
fn render_for(
    context: &Context,
    namespace: &str,
    configmap: &str,
    previous: Option<&rollgate_sdk::FlagDocument>,
) -> Rendered {
    let cached = context.flags_in(namespace);
    let leaving = context.leaving();
    let is_leaving = |meta: &kube::api::ObjectMeta| {
        meta.deletion_timestamp.is_some()
            || meta.uid.as_ref().is_some_and(|uid| leaving.contains(uid))
    };
    let written: Vec<Option<Arc<FeatureFlag>>> = cached
        .iter()
        .map(|flag| {
            flag.decoded()
                .and_then(|flag| context.written_version_of(flag))
        })
        .collect();
    let mut members: Vec<&FeatureFlag> = Vec::new();
    let mut undecodable_keys: Vec<&str> = Vec::new();
    let live = cached
        .iter()
        .zip(&written)
        .filter(|(flag, _)| !is_leaving(flag.meta()));
    for (flag, written) in live {
        match &**flag {
            WatchedFlag::Decoded(flag) => {
                if configmap_name(flag, &context.default_configmap) == configmap {
                    members.push(written.as_deref().unwrap_or(flag));
                }
            }
            // Its entry cannot be rendered; `render` keeps the one already published.
            WatchedFlag::Undecodable(flag) => {
                if flag.configmap(&context.default_configmap) == Some(configmap) {
                    undecodable_keys.extend(flag.key());
                }
            }
        }
    }
    // What the document may name: the members' rules, and the entries kept from `previous`.
    let mut wanted: Vec<&str> = members
        .iter()
        .flat_map(|flag| flag.spec.segments_used())
        .collect();
    wanted.extend(
        previous
            .iter()
            .flat_map(|document| document.flags.values())
            .flat_map(rollgate_sdk::FlagEntry::segments_used),
    );
    wanted.sort_unstable();
    wanted.dedup();
    let segments = context.segment_catalog(namespace, &wanted);
    publish::render(&members, &undecodable_keys, previous, &segments.entries)
}

/// Publishes the document of `configmap` as the cache and this leader's own status writes
/// now have it. Concurrent requests share one render and one write (`ConfigMapWriter`); the
/// call returns what the publish that served it found, once a publish that began after the
/// call has succeeded.
async fn publish(
    context: &Context,
    configmaps: &Api<ConfigMap>,
    namespace: &str,
    configmap: &str,
    kill: bool,
) -> Result<PublishOutcome, OperatorError> {
    let writer = context.writer(namespace, configmap);
    let render_and_write = || async {
        let foreign_edits = writer.foreign_edits();
        let published = publisher::read(configmaps, namespace, configmap).await?;
        let rendered = render_for(context, namespace, configmap, published.document.as_ref());
        let layout = sharding::lay_out(
            &rendered,
            configmap,
            context.max_shards,
            published.index.as_ref(),
        );
        let (outcome, version) = match &layout {
            None => {
                tracing::warn!(%configmap, bytes = rendered.size(), "flag document over the size limit; not published");
                ("too_large", published.version.clone())
            }
            Some(layout) => match publisher::write(
                configmaps, namespace, configmap, &rendered, layout, &published,
            )
            .await?
            {
                (true, version) => {
                    tracing::info!(%configmap, bytes = rendered.size(), shards = layout.shard_configmaps().len(), "published flag document");
                    ("written", version)
                }
                (false, version) => ("unchanged", version),
            },
        };
        writer.remember_version(version);
        writer.remember_entries(
            foreign_edits,
            layout.is_some().then(|| {
                rendered
                    .document
                    .flags
                    .iter()
                    .map(|(key, entry)| {
                        (key.clone(), digest_of(entry, &rendered.document.segments))
                    })
                    .collect()
            }),
        );
        context
            .metrics
            .publishes
            .with_label_values(&[outcome])
            .inc();
        if let Some(layout) = &layout {
            let labels = [namespace, configmap];
            context
                .metrics
                .publish_bytes
                .with_label_values(&labels)
                .set(rendered.size() as i64);
            context
                .metrics
                .publish_shards
                .with_label_values(&labels)
                .set(layout.shard_configmaps().len() as i64);
        }
        Ok::<_, OperatorError>(PublishOutcome {
            too_large: layout
                .is_none()
                .then(|| too_large(&rendered, namespace, configmap, context.max_shards)),
        })
    };
    // A kill switch does not wait the publish window.
    let (outcome, covered) = if kill {
        writer.publish_now(render_and_write).await?
    } else {
        writer.publish(render_and_write).await?
    };
    if covered {
        context
            .metrics
            .publishes
            .with_label_values(&["coalesced"])
            .inc();
    }
    Ok(outcome)
}

/// What one analysis measures: the `rollout.analysis` metrics and, for an experiment, the
/// counts of every variant since it started.
async fn analyse(
    flag: &FeatureFlag,
    context: &Context,
    status: &FeatureFlagStatus,
    now: Timestamp,
) -> Observation {
    let since_ramp_start = status
        .ramp_started_at
        .as_ref()
        .map(|started| Duration::try_from(now.duration_since(started.0)).unwrap_or_default())
        .unwrap_or_default();
    let mut template = TemplateContext::for_flag(flag, None);
    template.since_ramp_start = Some(prometheus::ramp_window(since_ramp_start));
    let metrics = gate_metrics(flag, context, &template).await;
    let Some(experiment) = &flag.spec.experiment else {
        let guardrails = guardrail_counts(flag, context, &template).await;
        if guardrails.is_empty() {
            return Observation::Analysis(metrics);
        }
        return Observation::Guarded {
            metrics,
            guardrails,
        };
    };
    let experiment = experiment_counts(flag, experiment, context, status, now).await;
    Observation::Experiment {
        metrics,
        experiment,
    }
}

/// Exposures and conversions per variant. `{{ interval }}` in the queries is the time since
/// `status.experiment.startedAt`, so `increase(…[{{ interval }}])` counts the experiment.
async fn experiment_counts(
    flag: &FeatureFlag,
    experiment: &Experiment,
    context: &Context,
    status: &FeatureFlagStatus,
    now: Timestamp,
) -> ExperimentOutcome {
    let default = context.default_prometheus.as_deref();
    let address = match flag.spec.rollout.as_ref().and_then(|r| r.analysis.as_ref()) {
        Some(analysis) => resolve_address(analysis, default),
        None => default,
    };
    let Some(address) = address else {
        return ExperimentOutcome::Error {
            message: "no Prometheus address: set spec.rollout.analysis.prometheus.address or --prometheus-url".into(),
        };
    };
    let client = match context.prometheus(address) {
        Ok(client) => client,
        Err(error) => {
            return ExperimentOutcome::Error {
                message: error.to_string(),
            };
        }
    };
    let started = status
        .experiment
        .as_ref()
        .map_or(now, |experiment| experiment.started_at.0);
    let since_start = Duration::try_from(now.duration_since(started)).unwrap_or_default();
    let mut template = TemplateContext::for_flag(flag, None);
    template.interval = prometheus::experiment_window(since_start);
    let outcome = prometheus::experiment_counts(
        &client,
        experiment,
        &template,
        None,
        context.analysis_concurrency,
    )
    .await;
    if let ExperimentOutcome::Error { message } = &outcome {
        context.metrics.analysis_errors.inc();
        tracing::warn!(%message, "experiment counts unavailable; the look is skipped");
    }
    outcome
}

/// The Prometheus client of `analysis`: its own address, else the operator's; `Err` says why
/// there is none.
fn analysis_client(analysis: &Analysis, context: &Context) -> Result<PrometheusClient, String> {
    let address = resolve_address(analysis, context.default_prometheus.as_deref()).ok_or(
        "no Prometheus address: set spec.rollout.analysis.prometheus.address or --prometheus-url",
    )?;
    context
        .prometheus(address)
        .map_err(|error| error.to_string())
}

/// Each of `rollout.analysis.guardrails`: its cumulative counts per cohort since the ramp
/// started.
async fn guardrail_counts(
    flag: &FeatureFlag,
    context: &Context,
    template: &TemplateContext,
) -> Vec<GuardrailObservation> {
    let Some(analysis) = flag.spec.rollout.as_ref().and_then(|r| r.analysis.as_ref()) else {
        return Vec::new();
    };
    if analysis.guardrails.is_empty() {
        return Vec::new();
    }
    let client = match analysis_client(analysis, context) {
        Ok(client) => client,
        Err(message) => {
            return analysis
                .guardrails
                .iter()
                .map(|guardrail| GuardrailObservation {
                    name: guardrail.name.clone(),
                    outcome: GuardrailOutcome::Error {
                        message: message.clone(),
                    },
                })
                .collect();
        }
    };
    let template = template.clone().with_interval_of(analysis);
    let queries: Vec<_> = analysis
        .guardrails
        .iter()
        .map(|guardrail| prometheus::guardrail_counts(&client, guardrail, &template, None))
        .collect();
    use futures::StreamExt as _;
    let observations: Vec<GuardrailObservation> = futures::stream::iter(queries)
        .buffered(context.analysis_concurrency.max(1))
        .collect()
        .await;
    for observation in &observations {
        if let GuardrailOutcome::Error { message } = &observation.outcome {
            context.metrics.analysis_errors.inc();
            tracing::warn!(guardrail = %observation.name, %message, "guardrail counts unavailable; the analysis holds");
        }
    }
    observations
}

/// The `rollout.analysis` metrics: the ramp's gates, and the absolute checks beside an
/// experiment.
async fn gate_metrics(
    flag: &FeatureFlag,
    context: &Context,
    template: &TemplateContext,
) -> Vec<MetricObservation> {
    let Some(analysis) = flag.spec.rollout.as_ref().and_then(|r| r.analysis.as_ref()) else {
        return Vec::new();
    };
    let client = match analysis_client(analysis, context) {
        Ok(client) => client,
        Err(message) => {
            return analysis
                .metrics
                .iter()
                .map(|metric| MetricObservation {
                    name: metric.name.clone(),
                    outcome: MetricOutcome::Error {
                        message: message.clone(),
                    },
                })
                .collect();
        }
    };
    let template = template.clone().with_interval_of(analysis);
    let runs = prometheus::analyze_detailed(
        &client,
        analysis,
        &template,
        None,
        context.analysis_concurrency,
    )
    .await;
    runs.into_iter()
        .map(|run| {
            let outcome = match &run.outcome {
                MetricOutcome::Value { .. } => "value",
                MetricOutcome::NoData { .. } => "no_data",
                MetricOutcome::Error { .. } => {
                    context.metrics.analysis_errors.inc();
                    "error"
                }
            };
            context
                .metrics
                .analysis_query_duration
                .with_label_values(&[outcome])
                .observe(run.elapsed.as_secs_f64());
            MetricObservation::from(run)
        })
        .collect()
}

/// A spec that did not decode (`reason` `DecodeFailed`) or failed validation
/// (`ValidationFailed`): `InvalidSpec=True`, `Ready=False`, `Progressing=False` and
/// `Degraded=True`, as the engine reports an invalid spec; a Warning event naming the first
/// field; nothing published, so the flag keeps its last entry. The error makes
/// `error_policy` wait for the next change.
async fn invalid_spec(
    flag: &WatchedFlag,
    context: &Context,
    flags: &Api<WatchedFlag>,
    reason: &str,
    violations: &[Violation],
    now: Timestamp,
) -> Result<Action, OperatorError> {
    let message = violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let generation = flag.meta().generation;
    let mut new_status = flag.status().cloned().unwrap_or_default();
    new_status.conditions = refused_spec_conditions(
        &new_status.conditions,
        reason,
        &message,
        now,
        generation.unwrap_or_default(),
    );
    new_status.observed_generation = generation;
    status::apply(flags, flag.meta(), flag.status(), &new_status).await?;
    if let Some(first) = violations.first() {
        emit(
            context,
            flag,
            &[EngineEvent::new(
                EventReason::InvalidSpec,
                first.to_string(),
            )],
        )
        .await;
    }
    Err(OperatorError::InvalidSpec {
        namespace: flag.namespace().unwrap_or_default(),
        name: flag.name_any(),
        message,
    })
}

/// The digest of the entry `flag` publishes with the segments it names; `None` when it
/// publishes none.
fn entry_digest(flag: &FeatureFlag, segments: &BTreeMap<String, SegmentEntry>) -> Option<u64> {
    publish::entry_for(flag).map(|entry| digest_of(&entry, segments))
}

/// A digest of an entry's JSON and of each segment it names as `segments` has it (absent
/// ones too), to compare with what a publish left in the ConfigMap: a segment edit changes
/// the digest of every flag naming it, so their reconciles publish.
fn digest_of(entry: &rollgate_sdk::FlagEntry, segments: &BTreeMap<String, SegmentEntry>) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(entry)
        .unwrap_or_default()
        .hash(&mut hasher);
    for name in entry.segments_used() {
        name.hash(&mut hasher);
        serde_json::to_string(&segments.get(name))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// `SegmentsResolved` follows the segments the rules name: `True` when each is published,
/// `False` (reason `SegmentNotFound`) naming those missing or invalid, absent when the rules
/// name none. Returns a Warning event when it turns `False` or names other segments.
fn set_segments_condition(
    status: &mut FeatureFlagStatus,
    flag: &FeatureFlag,
    catalog: &SegmentCatalog,
    now: Timestamp,
) -> Option<EngineEvent> {
    let Some((resolved, reason, message)) = catalog.condition(&flag.spec) else {
        clear_condition(status, SEGMENTS_RESOLVED);
        return None;
    };
    let already_said = status
        .conditions
        .iter()
        .any(|c| c.type_ == SEGMENTS_RESOLVED && c.status == "False" && c.message == message);
    status.conditions = set_condition(
        &status.conditions,
        SEGMENTS_RESOLVED,
        resolved,
        reason,
        &message,
        now,
        flag.metadata.generation.unwrap_or_default(),
    );
    (!resolved && !already_said).then(|| EngineEvent::new(EventReason::SegmentNotFound, message))
}

fn with_status(flag: &FeatureFlag, status: FeatureFlagStatus) -> FeatureFlag {
    let mut updated = flag.clone();
    updated.status = Some(status);
    updated
}

/// Why a document over the size limit was not published: its size, the limit, and the
/// entries to trim.
fn too_large(rendered: &Rendered, namespace: &str, configmap: &str, max_shards: usize) -> String {
    let largest = rendered
        .largest_entries(3)
        .into_iter()
        .map(|(key, bytes)| format!("{key} ({} bytes)", with_thousands(bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the flag document for ConfigMap {namespace}/{configmap} would be {} bytes, over the \
         {}-byte limit, and {max_shards} shards (--max-shards) cannot hold it; no new version \
         was published (largest entries: {largest})",
        with_thousands(rendered.size()),
        with_thousands(publish::MAX_DOCUMENT_BYTES),
    )
}

/// `1048000` → `1,048,000`.
fn with_thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `PublishFailed=True` while the flag's document does not fit (`failure` says why);
/// removed once it publishes again.
fn set_publish_condition(
    status: &mut FeatureFlagStatus,
    flag: &FeatureFlag,
    failure: Option<&str>,
    now: Timestamp,
) {
    match failure {
        Some(message) => {
            status.conditions = set_condition(
                &status.conditions,
                PUBLISH_FAILED,
                true,
                "DocumentTooLarge",
                message,
                now,
                flag.metadata.generation.unwrap_or_default(),
            );
        }
        None => clear_condition(status, PUBLISH_FAILED),
    }
}

/// `enabled: false` not yet recorded: the status still has the flag on.
fn is_kill(flag: &FeatureFlag, status: &FeatureFlagStatus) -> bool {
    !flag.spec.enabled
        && matches!(
            status.phase,
            Phase::Static | Phase::Progressing | Phase::Paused | Phase::Complete
        )
}

/// How late an analysis finished after its slot, and whether that was more than its interval (counted).
fn lateness(context: &Context, schedule: AnalysisSchedule, finished: Timestamp) -> Late {
    let late = Duration::try_from(finished.duration_since(schedule.due_at)).unwrap_or_default();
    context
        .metrics
        .analysis_delay_seconds
        .observe(late.as_secs_f64());
    let overdue = late > schedule.interval;
    if overdue {
        context.metrics.analyses_overdue.inc();
        tracing::warn!(late = ?late, interval = ?schedule.interval, "analysis finished more than one interval after it was due");
    }
    Late {
        due_at: schedule.due_at,
        late,
        interval: schedule.interval,
        overdue,
    }
}

struct Late {
    due_at: Timestamp,
    late: Duration,
    interval: Duration,
    overdue: bool,
}

/// `AnalysisOverdue` follows the latest analysis: set when it finished more than one
/// interval late, cleared by one on time or when the flag no longer runs analyses.
fn set_overdue_condition(
    status: &mut FeatureFlagStatus,
    flag: &FeatureFlag,
    decision: &Decision,
    finished_late: Option<Late>,
    now: Timestamp,
) {
    if decision.analysis_schedule.is_none() {
        clear_condition(status, ANALYSIS_OVERDUE);
        return;
    }
    match finished_late {
        Some(late) if late.overdue => {
            let message = format!(
                "the analysis due at {} finished {} s late, more than its interval of {} s: the operator's query budget (--prometheus-qps, --prometheus-concurrency) or Prometheus cannot keep up",
                late.due_at,
                late.late.as_secs(),
                late.interval.as_secs()
            );
            status.conditions = set_condition(
                &status.conditions,
                ANALYSIS_OVERDUE,
                true,
                "QueriesQueued",
                &message,
                now,
                flag.metadata.generation.unwrap_or_default(),
            );
        }
        Some(_) => clear_condition(status, ANALYSIS_OVERDUE),
        None => {}
    }
}

fn clear_condition(status: &mut FeatureFlagStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}

pub(super) async fn emit(
    context: &Context,
    flag: &impl Resource<DynamicType = ()>,
    events: &[EngineEvent],
) {
    let reference = flag.object_ref(&());
    for event in events {
        let kube_event = KubeEvent {
            type_: if event.type_() == engine::EventType::Warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.to_string(),
            note: Some(event.message.chars().take(1000).collect()),
            action: event_action(event),
            secondary: None,
        };
        if let Err(error) = context.recorder.publish(&kube_event, &reference).await {
            tracing::warn!(%error, reason = %event.reason, "could not record event");
        }
    }
}

/// kube's recorder folds events with the same reason and action into one series that keeps
/// the first message, so the action carries a digest of the message: each distinct
/// transition (step 2, then step 3) gets its own event, and exact repeats still fold.
fn event_action(event: &EngineEvent) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(event.message.as_bytes());
    format!(
        "{}-{:02x}{:02x}{:02x}{:02x}",
        event.reason, digest[0], digest[1], digest[2], digest[3]
    )
}

fn observe(
    context: &Context,
    namespace: &str,
    flag: &FeatureFlag,
    status: &FeatureFlagStatus,
    decision: &Decision,
) {
    let percent = publish::entry_for(&with_status(flag, status.clone())).map_or(0.0, |e| e.percent);
    context
        .metrics
        .observe_flag(namespace, flag.key(), status.phase, percent);
    if let Some(experiment) = &status.experiment {
        context
            .metrics
            .observe_experiment(namespace, flag.key(), experiment);
    }
    for event in &decision.events {
        if event.reason.turns_flag_off() {
            context
                .metrics
                .rollbacks
                .with_label_values(&[namespace, flag.key(), event.reason.as_str()])
                .inc();
        }
    }
}

/// How often a finalizer patch that lost a race is retried against a fresh read before it
/// counts as an error.
const FINALIZER_CONFLICT_RETRIES: u32 = 3;

/// Runs `apply` or `cleanup` inside kube's finalizer helper. Its JSON patch of
/// `metadata.finalizers` carries a `test` of the cached value, so a cache one write behind
/// loses the race (409, or 422 from the `test`): that is retried at once against a fresh
/// read, not with backoff. A 404 while removing the finalizer means the object is already
/// gone, which is what removing it was for.
async fn run_with_finalizer(
    api: &Api<WatchedFlag>,
    mut flag: Arc<WatchedFlag>,
    context: &Arc<Context>,
    object: &ObjectRef<WatchedFlag>,
) -> Result<Action, OperatorError> {
    use kube::runtime::finalizer::Error;
    let mut conflicts = 0;
    loop {
        let handler_context = context.clone();
        let outcome = finalizer(api, FINALIZER, flag.clone(), move |event| {
            let context = handler_context.clone();
            async move {
                match event {
                    FinalizerEvent::Apply(flag) => apply(flag, context).await,
                    FinalizerEvent::Cleanup(flag) => cleanup(flag, context).await,
                }
            }
        })
        .await;
        match outcome {
            Err(Error::RemoveFinalizer(error)) if api_code(&error) == Some(404) => {
                tracing::debug!("flag gone before its finalizer was removed");
                return Ok(Action::await_change());
            }
            Err(
                ref outcome @ (Error::AddFinalizer(ref error) | Error::RemoveFinalizer(ref error)),
            ) if matches!(api_code(error), Some(409 | 422))
                && conflicts < FINALIZER_CONFLICT_RETRIES =>
            {
                let removing = matches!(outcome, Error::RemoveFinalizer(_));
                conflicts += 1;
                tracing::debug!(%error, conflicts, removing, "finalizer patch lost a race; retrying on a fresh read");
                context.metrics.finalizer_conflicts.inc();
                let cleaned_up = flag.meta().uid.clone();
                match api.get_opt(&object.name).await {
                    // The flag whose finalizer was being removed is gone; the name now
                    // belongs to a new object, which gets its own reconcile.
                    Ok(Some(fresh)) if removing && fresh.meta().uid != cleaned_up => {
                        return Ok(Action::await_change());
                    }
                    Ok(Some(fresh)) => flag = Arc::new(fresh),
                    Ok(None) => return Ok(Action::await_change()),
                    Err(error) => {
                        return Err(OperatorError::Finalizer {
                            namespace: object.namespace.clone().unwrap_or_default(),
                            name: object.name.clone(),
                            message: format!("re-reading after a conflict: {error}"),
                        });
                    }
                }
            }
            other => return other.map_err(|error| finalizer_error(error, object)),
        }
    }
}

/// The HTTP status of an error the API server answered.
fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn finalizer_error(
    error: kube::runtime::finalizer::Error<OperatorError>,
    object: &ObjectRef<WatchedFlag>,
) -> OperatorError {
    use kube::runtime::finalizer::Error;
    match error {
        Error::ApplyFailed(error) | Error::CleanupFailed(error) => error,
        other => OperatorError::Finalizer {
            namespace: object.namespace.clone().unwrap_or_default(),
            name: object.name.clone(),
            message: other.to_string(),
        },
    }
}
