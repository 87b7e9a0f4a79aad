//! `rollgate operator`: the Kubernetes shell around the rollout engine.
//!
//! A kube-runtime `Controller` over `FeatureFlag` runs [`reconcile::reconcile`] for every
//! flag. It watches them as [`WatchedFlag`]s, so one object that does not decode is
//! reconciled alone (`InvalidSpec`) instead of failing the whole watch. The ConfigMaps
//! Rollgate publishes to are watched by name, so that a hand edit or deletion is repaired
//! without the right to read any other ConfigMap. Only the leader (a Lease) writes.

pub mod backoff;
pub mod commit;
pub mod config;
pub mod context;
pub mod error;
pub mod leader;
pub mod ownership;
pub mod publisher;
pub mod reconcile;
pub mod segments;
pub mod status;
pub mod watched;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Config};
use tokio::sync::watch;

pub use config::{LogFormat, OperatorArgs};
pub use context::Context;
pub use error::OperatorError;
pub use ownership::{FIELD_MANAGER, FINALIZER};
pub use watched::WatchedFlag;

use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use rollgate_core::publish::{MANAGED_BY_LABEL, configmap_name};
use rollgate_core::segment::Segment;

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> Result<(), OperatorError> {
    let (client, priority_client) = kube_clients(&args).await?;
    let metrics = Metrics::new()?;
    let (shutdown_sender, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_sender.send(true);
    });

    let leadership = if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| client.default_namespace().to_string());
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        tracing::info!(%namespace, lease = %args.lease_name, %identity, "competing for leadership");
        leader::Leadership::elect(
            priority_client.clone(),
            &namespace,
            &args.lease_name,
            &identity,
        )
        .await?
    } else {
        leader::Leadership::always()
    };

    let leader_gauge = tokio::spawn(track_leadership(
        leadership.is_leader.clone(),
        metrics.is_leader.clone(),
        shutdown.clone(),
    ));
    let context = Arc::new(
        Context::new(
            client.clone(),
            &args,
            metrics.clone(),
            leadership.is_leader.clone(),
        )?
        .with_priority_client(priority_client),
    );
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: context.ready.clone(),
    };
    let http_server = tokio::spawn(http::serve(
        args.metrics_addr,
        http_state,
        wait_until(shutdown.clone()),
    ));

    let scopes: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let mut segment_scopes = Vec::new();
    for namespace in &scopes {
        if segments_served(&client, namespace.as_deref()).await {
            segment_scopes.push(namespace.clone());
        }
    }
    let controllers = scopes.into_iter().map(|namespace| {
        let watch_segments = segment_scopes.contains(&namespace);
        run_controller(
            client.clone(),
            namespace,
            watch_segments,
            context.clone(),
            shutdown.clone(),
        )
    });
    let segment_controllers = segment_scopes.clone().into_iter().map(|namespace| {
        segments::run_controller(
            client.clone(),
            namespace,
            context.clone(),
            wait_until(shutdown.clone()),
        )
    });
    futures::future::join(
        futures::future::join_all(controllers),
        futures::future::join_all(segment_controllers),
    )
    .await;
    drop(context);
    // Its receiver must be gone too: the lease is released when the last one closes.
    let _ = leader_gauge.await;
    leadership.release().await;
    match http_server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(OperatorError::Http {
            address: args.metrics_addr,
            source,
        }),
        Err(join) => Err(OperatorError::Http {
            address: args.metrics_addr,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

/// Whether Segments can be listed in the scope. An operator upgraded without the Segment
/// CRD (Helm installs CRDs only on first install) or its RBAC runs on without segments: a
/// watch that can never sync would hold every flag's reconcile.
async fn segments_served(client: &Client, namespace: Option<&str>) -> bool {
    let api: Api<Segment> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(
                namespace = namespace.unwrap_or("(all)"),
                %error,
                "cannot list Segments: apply crds/segment.yaml and the chart's RBAC, then restart; until then InSegment conditions match no one"
            );
            false
        }
    }
}

/// One controller per watched scope (a namespace, or the whole cluster), watching the
/// scope's Segments too when `watch_segments`.
async fn run_controller(
    client: Client,
    namespace: Option<String>,
    watch_segments: bool,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
) {
    let (flags, configmaps, segments): (Api<WatchedFlag>, Api<ConfigMap>, Api<Segment>) =
        match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client),
            ),
        };
    let controller = Controller::new(flags, watcher::Config::default());
    let store = controller.store();
    context.register_store(store.clone());
    // The segments' cache stores each change before the flags naming the segment are
    // reconciled, so their publish renders the new segment.
    let (segment_store, segment_writer) = reflector::store();
    let segment_changes = watch_segments.then(|| {
        context.register_segment_store(segment_store.clone());
        reflector::reflector(
            segment_writer,
            watcher(segments, watcher::Config::default()).default_backoff(),
        )
        .touched_objects()
    });
    let flags_of_segment = {
        let store = store.clone();
        move |segment: Segment| flags_naming(&segment, &store.state())
    };
    let default_configmap = context.default_configmap.clone();
    let managed = format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1);

    // A ConfigMap edited or deleted by hand → reconcile the flags that publish into it (their
    // publishes coalesce into one write). Its own writes are not news: without this, every
    // write would reconcile every flag of the ConfigMap again. An undecodable flag publishes
    // nothing, so it has nothing to repair.
    let flags_of_configmap = {
        let store = store.clone();
        let context = context.clone();
        move |configmap: ConfigMap| {
            let namespace = configmap.metadata.namespace.clone();
            let name = configmap.metadata.name.clone().unwrap_or_default();
            let version = configmap.metadata.resource_version.as_deref();
            let writer = context.existing_writer(namespace.as_deref().unwrap_or_default(), &name);
            if writer
                .as_ref()
                .is_some_and(|writer| writer.is_own_version(version))
            {
                return Vec::new();
            }
            // Someone else changed it: the next reconciles must publish, not trust what the
            // writer last left there.
            if let Some(writer) = writer {
                writer.forget_entries();
            }
            store
                .state()
                .into_iter()
                .filter(|watched| {
                    watched.decoded().is_some_and(|flag| {
                        flag.metadata.namespace == namespace
                            && configmap_name(flag, &default_configmap) == name
                    })
                })
                .map(|watched| ObjectRef::from_obj(&*watched))
                .collect::<Vec<_>>()
        }
    };
    // Leadership gained → reconcile everything once, so nothing waits for its next event.
    let became_leader = context::leadership_gained(&context);

    let readiness = {
        let store = store.clone();
        let context = context.clone();
        async move {
            if context::wait_for_store(&store).await
                && (!watch_segments || context::wait_for_store(&segment_store).await)
            {
                context.mark_scope_ready();
            }
        }
    };
    tokio::spawn(readiness);

    // One watch per ConfigMap name, so that RBAC can grant list/watch by resourceNames
    // instead of reading every ConfigMap in the scope.
    let controller = context
        .publishable_configmaps
        .iter()
        .fold(controller, |controller, name| {
            controller.watches(
                configmaps.clone(),
                watcher::Config::default()
                    .fields(&format!("metadata.name={name}"))
                    .labels(&managed),
                flags_of_configmap.clone(),
            )
        });
    let controller = match segment_changes {
        Some(changes) => controller.watches_stream(changes, flags_of_segment),
        None => controller,
    };
    controller
        .with_config(
            kube::runtime::controller::Config::default().concurrency(context.reconcile_concurrency),
        )
        .reconcile_all_on(became_leader)
        .graceful_shutdown_on(wait_until(shutdown))
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::trace!(flag = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile failed"),
            }
        })
        .await;
}

/// The flags of `segment`'s namespace whose rules name it: a change to the segment (or its
/// deletion) republishes them.
pub fn flags_naming(segment: &Segment, flags: &[Arc<WatchedFlag>]) -> Vec<ObjectRef<WatchedFlag>> {
    let name = segment.metadata.name.as_deref().unwrap_or_default();
    flags
        .iter()
        .filter(|watched| {
            watched.decoded().is_some_and(|flag| {
                flag.metadata.namespace == segment.metadata.namespace
                    && flag.spec.segments_used().contains(&name)
            })
        })
        .map(|watched| ObjectRef::from_obj(&**watched))
        .collect()
}

/// Two clients on one connection config, each with its own limit on requests in flight:
/// the main lane (watches, status writes, finalizers, events; `--api-concurrency`) and the
/// priority lane (ConfigMap publishes, a kill switch's status write, the leader lease), so
/// a backlog of ordinary writes never queues a kill or a lease renewal behind it.
async fn kube_clients(args: &OperatorArgs) -> Result<(Client, Client), OperatorError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| OperatorError::KubeConfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| OperatorError::KubeConfig(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| OperatorError::KubeConfig(e.to_string()))?,
    };
    let limited = |config: Config, in_flight: usize| {
        let limit = tower::limit::ConcurrencyLimitLayer::new(in_flight);
        Ok::<_, OperatorError>(
            kube::client::ClientBuilder::try_from(config)
                .map_err(|e| OperatorError::KubeConfig(e.to_string()))?
                .with_layer(&limit)
                .build(),
        )
    };
    Ok((
        limited(config.clone(), usize::from(args.api_concurrency))?,
        limited(config, PRIORITY_LANE_CONCURRENCY)?,
    ))
}

/// Requests in flight on the priority lane: publishes are coalesced per ConfigMap, so a
/// few suffice.
const PRIORITY_LANE_CONCURRENCY: usize = 8;

/// Mirrors leadership into the `rollgate_leader` gauge until shutdown.
async fn track_leadership(
    mut is_leader: watch::Receiver<bool>,
    gauge: prometheus::IntGauge,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        gauge.set(i64::from(*is_leader.borrow_and_update()));
        tokio::select! {
            changed = is_leader.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rollgate".into());
    format!("{host}-{}", std::process::id())
}

async fn wait_until(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether every watched scope has synced its store.
pub fn is_ready(context: &Context) -> bool {
    context.ready.load(Ordering::Acquire)
}
