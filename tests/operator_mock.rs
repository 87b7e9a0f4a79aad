//! Mock-API scenarios: the exact requests one reconcile sends, against a tower-test
//! service standing in for the API server (the kube-rs controller-rs fixture pattern).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use rollgate::metrics::Metrics;
use rollgate::operator::{Context, FINALIZER, OperatorArgs, WatchedFlag, reconcile};
use rollgate_core::crd::{
    FeatureFlag, FeatureFlagSpec, FeatureFlagStatus, MetricCheck, Publish, Rollout, Serve, Step,
    TargetingCondition, TargetingRule,
};
use rollgate_core::segment::{Segment, SegmentSpec};
use rollgate_sdk::Operator;
use serde_json::{Value, json};
use tokio::sync::watch;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    operator: OperatorArgs,
}

/// One request the reconcile sent.
#[derive(Debug, Clone)]
struct Sent {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Sent {
    fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The API server's side: answers by route and records every request.
struct FakeApiServer {
    sent: Arc<Mutex<Vec<Sent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApiServer {
    /// `flag` is what a PATCH of the flag answers with; `configmaps` are what a GET of a
    /// ConfigMap returns, by name (any other: 404). The first finalizer patches (JSON patches of the
    /// flag) are answered with the codes in `finalizer_codes` in turn; a GET of the flag
    /// returns `fresh` (`None`: 404); an apply of the ConfigMap fails with
    /// `configmap_apply_code` when set.
    fn start(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        flag: Value,
        configmaps: Vec<ConfigMap>,
        finalizer_codes: Vec<u16>,
        fresh: Option<Value>,
        configmap_apply_code: Option<u16>,
    ) -> Self {
        let mut finalizer_codes = std::collections::VecDeque::from(finalizer_codes);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        let task = tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                record.lock().unwrap().push(Sent {
                    method: method.clone(),
                    path: path.clone(),
                    query,
                    content_type: content_type.clone(),
                    body: body.clone(),
                });
                let (status, reply) = if path.contains("/configmaps/") && method == Method::GET {
                    let name = path.rsplit('/').next().unwrap_or_default();
                    match configmaps
                        .iter()
                        .find(|cm| cm.metadata.name.as_deref() == Some(name))
                    {
                        Some(cm) => (StatusCode::OK, serde_json::to_value(cm).unwrap()),
                        None => (StatusCode::NOT_FOUND, not_found("configmaps", name)),
                    }
                } else if path.contains("/featureflags/")
                    && method == Method::PATCH
                    && content_type == "application/json-patch+json"
                    && let Some(code) = finalizer_codes.pop_front()
                {
                    let code = StatusCode::from_u16(code).unwrap();
                    let reason = code.canonical_reason().unwrap_or_default();
                    let reply = json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": reason,
                            "message": format!("finalizer patch answered {code}"),
                            "code": code.as_u16()});
                    (code, reply)
                } else if path.contains("/configmaps/")
                    && method == Method::PATCH
                    && let Some(code) = configmap_apply_code
                {
                    let code = StatusCode::from_u16(code).unwrap();
                    let reply = if code == StatusCode::FORBIDDEN {
                        // What the API server answers in a namespace being deleted.
                        json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "Forbidden",
                            "message": "configmaps \"rollgate-flags\" is forbidden: unable to create new content in namespace shop because it is being terminated",
                            "details": {"name": "rollgate-flags", "kind": "configmaps",
                                "causes": [{"reason": "NamespaceTerminating",
                                    "message": "namespace shop is being terminated",
                                    "field": "metadata.namespace"}]},
                            "code": 403})
                    } else {
                        json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "Timeout",
                            "message": "the server was unable to return a response in the time allotted",
                            "code": code.as_u16()})
                    };
                    (code, reply)
                } else if path.contains("/featureflags/") && method == Method::GET {
                    match &fresh {
                        Some(object) => (StatusCode::OK, object.clone()),
                        None => (StatusCode::NOT_FOUND, not_found("featureflags", &path)),
                    }
                } else if path.contains("/featureflags/") && method == Method::PATCH {
                    let mut updated = flag.clone();
                    if let Some(status) = body.get("status") {
                        updated["status"] = status.clone();
                    }
                    (StatusCode::OK, updated)
                } else if method == Method::PATCH || method == Method::POST {
                    (StatusCode::OK, body)
                } else {
                    (StatusCode::NOT_FOUND, not_found("unknown", &path))
                };
                respond.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        Self { sent, task }
    }

    async fn finish(self) -> Vec<Sent> {
        // The handle ends when every client clone is dropped.
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the mock API server did not stop: a client is still alive")
            .unwrap();
        Arc::try_unwrap(self.sent).unwrap().into_inner().unwrap()
    }
}

fn not_found(kind: &str, name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "message": format!("{kind} \"{name}\" not found"), "code": 404})
}

fn flag(spec: FeatureFlagSpec, status: Option<FeatureFlagStatus>) -> FeatureFlag {
    let mut flag = FeatureFlag::new("checkout", spec);
    flag.metadata.namespace = Some("shop".into());
    flag.metadata.uid = Some("0b3e0c1e-0000-4000-8000-000000000001".into());
    flag.metadata.generation = Some(1);
    flag.metadata.resource_version = Some("100".into());
    flag.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    flag.status = status;
    flag
}

fn static_spec(enabled: bool, percent: f64) -> FeatureFlagSpec {
    FeatureFlagSpec {
        key: None,
        enabled,
        description: None,
        owner: None,
        percent: Some(percent),
        allowed_users: vec![],
        rollout: None,
        variants: vec![],
        targeting: vec![],
        stale_after: None,
        publish: None,
        experiment: None,
    }
}

/// A flag object as the API server stores it, bypassing the Rust types: for specs that do
/// not decode.
fn raw_flag(name: &str, spec: Value) -> WatchedFlag {
    let watched: WatchedFlag = serde_json::from_value(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {
            "name": name, "namespace": "shop", "generation": 1, "resourceVersion": "100",
            "uid": "0b3e0c1e-0000-4000-8000-000000000002", "finalizers": [FINALIZER],
        },
        "spec": spec,
    }))
    .unwrap();
    assert!(watched.decoded().is_none(), "{name} decoded");
    watched
}

fn store_with(flags: &[WatchedFlag]) -> Store<WatchedFlag> {
    synced_store(flags).0
}

/// A synced store holding `objects`, and its writer for later changes.
fn synced_store<K>(objects: &[K]) -> (Store<K>, reflector::store::Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    // As a watcher's initial list delivers them: the store swaps them in at `InitDone`.
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (reader, writer)
}

/// One reconcile against the fake API server.
struct Scenario {
    flag: WatchedFlag,
    /// The other flags in the controller's cache.
    neighbours: Vec<WatchedFlag>,
    /// The cache's version of the flag, when it is behind (default: the flag itself).
    cached_version: Option<WatchedFlag>,
    configmap: Option<ConfigMap>,
    /// More ConfigMaps the fake API server holds: shards of a sharded document.
    shards: Vec<ConfigMap>,
    prometheus_url: Option<String>,
    /// Codes that answer the first finalizer patches (none: they succeed).
    finalizer_codes: Vec<u16>,
    /// What a fresh GET of the flag returns (`None`: 404).
    fresh: Option<WatchedFlag>,
    /// The code a ConfigMap apply fails with (none: it succeeds).
    configmap_apply_code: Option<u16>,
    /// The namespace's segments, when the operator watches them.
    segments: Option<Vec<Segment>>,
}

struct Outcome {
    result: Result<Action, String>,
    sent: Vec<Sent>,
    metrics: Metrics,
    /// When `error_policy` would retry after the error.
    retry_after: Option<Duration>,
}

impl Scenario {
    fn new(flag: impl Into<WatchedFlag>) -> Self {
        Self {
            flag: flag.into(),
            neighbours: Vec::new(),
            cached_version: None,
            configmap: None,
            shards: Vec::new(),
            prometheus_url: None,
            finalizer_codes: Vec::new(),
            fresh: None,
            configmap_apply_code: None,
            segments: None,
        }
    }

    async fn run(self) -> Outcome {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = FakeApiServer::start(
            handle,
            serde_json::to_value(&self.flag).unwrap(),
            self.configmap.into_iter().chain(self.shards).collect(),
            self.finalizer_codes,
            self.fresh.map(|fresh| serde_json::to_value(fresh).unwrap()),
            self.configmap_apply_code,
        );
        let client = Client::new(service, "default");
        let options: Vec<String> = self
            .prometheus_url
            .iter()
            .map(|url| format!("--prometheus-url={url}"))
            .collect();
        let metrics = Metrics::new().unwrap();
        let context = leading_context(client, &options, &metrics);
        let mut cached = self.neighbours;
        cached.push(self.cached_version.unwrap_or_else(|| self.flag.clone()));
        context.register_store(store_with(&cached));
        if let Some(segments) = &self.segments {
            context.register_segment_store(synced_store(segments).0);
        }
        let flag = Arc::new(self.flag);
        let result = reconcile::reconcile(flag.clone(), context.clone()).await;
        let retry_after = result
            .as_ref()
            .err()
            .and_then(|error| reconcile::retry_after(&flag, error, &context));
        drop(context);
        Outcome {
            result: result.map_err(|e| e.to_string()),
            sent: server.finish().await,
            metrics,
            retry_after,
        }
    }
}

/// Runs one reconcile of `flag` against the fake API server; returns the requests.
async fn reconcile_once(
    flag: FeatureFlag,
    configmap: Option<ConfigMap>,
    prometheus_url: Option<&str>,
) -> (Result<Action, String>, Vec<Sent>) {
    let outcome = Scenario {
        configmap,
        prometheus_url: prometheus_url.map(str::to_string),
        ..Scenario::new(flag)
    }
    .run()
    .await;
    (outcome.result, outcome.sent)
}

/// A leading operator's context on `client`, from `rollgate operator` and `options`.
fn leading_context(client: Client, options: &[String], metrics: &Metrics) -> Arc<Context> {
    let argv = std::iter::once("operator".to_string()).chain(options.iter().cloned());
    let args = Args::parse_from(argv).operator;
    // Dropping the sender keeps the last value: this operator leads.
    let (_leader_sender, is_leader) = watch::channel(true);
    Arc::new(Context::new(client, &args, metrics.clone(), is_leader).unwrap())
}

/// A fake API server whose flag PATCHes answer with `flag`, and a client of it.
fn fake_api(flag: &FeatureFlag) -> (Client, FakeApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = FakeApiServer::start(
        handle,
        serde_json::to_value(flag).unwrap(),
        Vec::new(),
        Vec::new(),
        None,
        None,
    );
    (Client::new(service, "default"), server)
}

fn routes(sent: &[Sent]) -> Vec<String> {
    sent.iter().map(Sent::route).collect()
}

fn events(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter()
        .filter(|s| s.route() == format!("POST {EVENTS_PATH}"))
        .collect()
}

fn published_document(sent: &[Sent]) -> Value {
    let apply = sent
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/configmaps/rollgate-flags"))
        .expect("a ConfigMap apply");
    assert!(
        apply.query.contains("fieldManager=rollgate"),
        "{}",
        apply.query
    );
    let json = apply.body["data"]["flags.json"]
        .as_str()
        .expect("flags.json");
    serde_json::from_str(json).unwrap()
}

fn status_apply(sent: &[Sent]) -> &Sent {
    sent.iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/featureflags/checkout/status"))
        .expect("a status apply")
}

const CM_PATH: &str = "/api/v1/namespaces/shop/configmaps/rollgate-flags";
const FLAG_PATH: &str = "/apis/rollgate.dev/v1alpha1/namespaces/shop/featureflags/checkout";
const STATUS_PATH: &str =
    "/apis/rollgate.dev/v1alpha1/namespaces/shop/featureflags/checkout/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

#[tokio::test]
async fn new_flag_without_the_finalizer_gets_it_first_and_nothing_else() {
    let mut new = flag(static_spec(true, 25.0), None);
    new.metadata.finalizers = None;
    let (result, sent) = reconcile_once(new, None, None).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(routes(&sent), [format!("PATCH {FLAG_PATH}")], "{sent:#?}");
    let patch = &sent[0];
    assert_eq!(patch.content_type, "application/json-patch+json");
    assert_eq!(
        patch.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    );
}

#[tokio::test]
async fn new_flag_applies_status_then_configmap() {
    let (result, sent) = reconcile_once(flag(static_spec(true, 25.0), None), None, None).await;
    result.unwrap();
    let routes: Vec<String> = sent.iter().map(Sent::route).collect();
    assert_eq!(routes[0], format!("PATCH {STATUS_PATH}"));
    assert_eq!(routes[1], format!("GET {CM_PATH}"));
    assert_eq!(routes[2], format!("PATCH {CM_PATH}"));
    assert!(
        routes[3..]
            .iter()
            .all(|r| r.starts_with("POST /apis/events.k8s.io/v1/namespaces/shop/events")),
        "{routes:#?}"
    );
    let status = status_apply(&sent);
    assert!(status.query.contains("fieldManager=rollgate") && status.query.contains("force=true"));
    assert_eq!(status.body["status"]["phase"], "Static");
    assert_eq!(status.body["status"]["percent"], 25.0);
    let document = published_document(&sent);
    assert_eq!(document["schemaVersion"], 2);
    assert_eq!(document["flags"]["checkout"]["percent"], 25.0);
    assert_eq!(document["flags"]["checkout"]["enabled"], true);
    let cm = sent
        .iter()
        .find(|s| s.route() == format!("PATCH {CM_PATH}"))
        .unwrap();
    assert_eq!(
        cm.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "rollgate"
    );
    assert!(cm.body["metadata"]["annotations"]["rollgate.dev/content-hash"].is_string());
}

/// A flag that was live at 25% (generation 1), edited to `enabled: false` (generation 2).
fn killed_at_25() -> FeatureFlag {
    let live = FeatureFlagStatus {
        phase: rollgate_core::crd::Phase::Static,
        percent: Some(25.0),
        observed_generation: Some(1),
        ..Default::default()
    };
    let mut killed = flag(static_spec(false, 25.0), Some(live));
    killed.metadata.generation = Some(2);
    killed
}

#[tokio::test]
async fn kill_switch_publishes_zero_in_the_same_reconcile() {
    let killed = killed_at_25();
    let (result, sent) = reconcile_once(killed, None, None).await;
    assert_eq!(result.unwrap(), Action::await_change());
    // The status, then the publish, then the event; nothing waits for an interval.
    assert_eq!(
        routes(&sent),
        [
            format!("PATCH {STATUS_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
            format!("POST {EVENTS_PATH}"),
        ],
        "{sent:#?}"
    );
    let status = &status_apply(&sent).body["status"];
    assert_eq!(status["phase"], "Disabled");
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(condition(status, "Ready")["observedGeneration"], 2);
    let document = published_document(&sent);
    assert_eq!(document["flags"]["checkout"]["enabled"], false);
    assert_eq!(document["flags"]["checkout"]["percent"], 0.0);
    assert_eq!(document["flags"]["checkout"]["generation"], 2);
    let event = events(&sent)[0];
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["reason"], "Disabled");
    assert_eq!(event.body["regarding"]["name"], "checkout");
}

/// The kill's status write and its publish take the priority lane; only the event goes
/// through the main client, after them.
#[tokio::test]
async fn kill_switch_writes_through_the_priority_lane() {
    let killed = killed_at_25();
    let (main_client, main_server) = fake_api(&killed);
    let (priority_client, priority_server) = fake_api(&killed);
    let args = Args::parse_from(["operator"]).operator;
    let (_leader_sender, is_leader) = watch::channel(true);
    let context = Arc::new(
        Context::new(main_client, &args, Metrics::new().unwrap(), is_leader)
            .unwrap()
            .with_priority_client(priority_client),
    );
    context.register_store(store_with(&[WatchedFlag::from(killed.clone())]));
    let result = reconcile::reconcile(Arc::new(killed.into()), context.clone()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    drop(context);
    let (main, priority) = (main_server.finish().await, priority_server.finish().await);
    assert_eq!(
        routes(&priority),
        [
            format!("PATCH {STATUS_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
        ]
    );
    assert_eq!(routes(&main), [format!("POST {EVENTS_PATH}")]);
    assert_eq!(
        published_document(&priority)["flags"]["checkout"]["enabled"],
        false
    );
}

#[tokio::test]
async fn unchanged_content_writes_no_configmap() {
    let first = flag(static_spec(true, 25.0), None);
    let (_, sent) = reconcile_once(first.clone(), None, None).await;
    let status: FeatureFlagStatus =
        serde_json::from_value(status_apply(&sent).body["status"].clone()).unwrap();
    let configmap_body = sent
        .iter()
        .find(|s| s.route() == format!("PATCH {CM_PATH}"))
        .unwrap()
        .body
        .clone();
    let configmap: ConfigMap = serde_json::from_value(configmap_body).unwrap();

    let settled = flag(static_spec(true, 25.0), Some(status));
    let (result, sent) = reconcile_once(settled, Some(configmap), None).await;
    result.unwrap();
    let routes: Vec<String> = sent.iter().map(Sent::route).collect();
    assert_eq!(
        routes,
        vec![format!("GET {CM_PATH}")],
        "only the publish's ConfigMap read"
    );
}

/// A reconcile that changes nothing, for a flag whose entry the writer's last publish left
/// in the ConfigMap, sends no request at all. After an edit by someone else the next one
/// reads and writes again.
#[tokio::test]
async fn a_reconcile_that_changes_nothing_skips_the_publish_until_someone_else_edits() {
    let (_, sent) = reconcile_once(flag(static_spec(true, 25.0), None), None, None).await;
    let status: FeatureFlagStatus =
        serde_json::from_value(status_apply(&sent).body["status"].clone()).unwrap();
    let settled = flag(static_spec(true, 25.0), Some(status));
    let (client, server) = fake_api(&settled);
    let metrics = Metrics::new().unwrap();
    let context = leading_context(client, &[], &metrics);
    context.register_store(store_with(&[WatchedFlag::from(settled.clone())]));
    let reconcile = || reconcile::reconcile(Arc::new(settled.clone().into()), context.clone());
    reconcile().await.unwrap();
    reconcile().await.unwrap();
    let skipped = |metrics: &Metrics| metrics.publishes.with_label_values(&["skipped"]).get();
    assert_eq!(skipped(&metrics), 1);
    context
        .existing_writer("shop", "rollgate-flags")
        .expect("a writer")
        .forget_entries();
    reconcile().await.unwrap();
    assert_eq!(skipped(&metrics), 1);
    drop(context);
    let routes = routes(&server.finish().await);
    assert_eq!(
        routes,
        [
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
        ]
    );
}

#[tokio::test]
async fn bad_spec_sets_invalid_spec_and_publishes_nothing() {
    let mut bad = flag(static_spec(true, 25.0), None);
    bad.spec.rollout = Some(Rollout {
        steps: vec![Step {
            percent: 100.0,
            pause: None,
        }],
        analysis: None,
    });
    let (result, sent) = reconcile_once(bad, None, None).await;
    assert!(result.unwrap_err().contains("spec is invalid"));
    let status = status_apply(&sent);
    let conditions = status.body["status"]["conditions"].as_array().unwrap();
    let invalid = conditions
        .iter()
        .find(|c| c["type"] == "InvalidSpec")
        .unwrap();
    assert_eq!(invalid["status"], "True");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .contains("spec.percent")
    );
    assert!(
        !sent
            .iter()
            .any(|s| s.method == Method::PATCH && s.path == CM_PATH),
        "published despite an invalid spec"
    );
    let event = sent
        .iter()
        .find(|s| s.method == Method::POST && s.path.ends_with("/events"))
        .expect("a Warning event");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidSpec");
    let note = event.body["note"].as_str().unwrap();
    assert!(note.starts_with("spec.percent: "), "{note}");
    assert_eq!(
        condition(&status.body["status"], "Ready")["status"],
        "False"
    );
    assert_eq!(
        condition(&status.body["status"], "Degraded")["status"],
        "True"
    );
}

/// A flag whose spec does not decode (`percent: "lots"`) gets `InvalidSpec` naming the
/// field and a Warning event, and touches no ConfigMap.
#[tokio::test]
async fn undecodable_flag_sets_invalid_spec_and_writes_no_configmap() {
    let undecodable = raw_flag("checkout", json!({"enabled": true, "percent": "lots"}));
    let outcome = Scenario::new(undecodable).run().await;
    let error = outcome.result.unwrap_err();
    assert!(
        error.contains("spec is invalid") && error.contains("spec.percent"),
        "{error}"
    );
    let sent = &outcome.sent;
    assert_eq!(
        routes(sent),
        [
            format!("PATCH {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}")
        ],
        "{sent:#?}"
    );
    let apply = status_apply(sent);
    assert!(apply.query.contains("fieldManager=rollgate") && apply.query.contains("force=true"));
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert_eq!(apply.body["apiVersion"], "rollgate.dev/v1alpha1");
    assert_eq!(apply.body["kind"], "FeatureFlag");
    let status = &apply.body["status"];
    let invalid = condition(status, "InvalidSpec");
    assert_eq!(invalid["status"], "True");
    assert_eq!(invalid["reason"], "DecodeFailed");
    assert_eq!(invalid["observedGeneration"], 1);
    let message = invalid["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.percent: invalid type: string \"lots\""),
        "{message}"
    );
    for (type_, value) in [
        ("Ready", "False"),
        ("Progressing", "False"),
        ("Degraded", "True"),
    ] {
        assert_eq!(condition(status, type_)["status"], value, "{type_}");
        assert_eq!(condition(status, type_)["reason"], "InvalidSpec", "{type_}");
    }
    let event = events(sent)[0];
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidSpec");
    assert_eq!(event.body["regarding"]["name"], "checkout");
    let note = event.body["note"].as_str().unwrap();
    assert!(note.starts_with("spec.percent: "), "{note}");
}

/// A new flag whose finalizer patch loses a race (422 from the JSON patch's `test`) is
/// retried at once on a fresh read and then reconciled: no error, no backoff.
#[tokio::test]
async fn finalizer_conflict_is_retried_on_a_fresh_read_not_with_backoff() {
    let mut stale = flag(static_spec(true, 25.0), None);
    stale.metadata.finalizers = None;
    let fresh = flag(static_spec(true, 25.0), None);
    let outcome = Scenario {
        finalizer_codes: vec![422],
        fresh: Some(fresh.into()),
        ..Scenario::new(stale)
    }
    .run()
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    let routes = routes(&outcome.sent);
    assert_eq!(
        routes[..5],
        [
            format!("PATCH {FLAG_PATH}"),
            format!("GET {FLAG_PATH}"),
            format!("PATCH {STATUS_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
        ],
        "{routes:#?}"
    );
    assert_eq!(outcome.metrics.finalizer_conflicts.get(), 1);
}

/// A conflict that keeps happening is an error after a few fresh reads.
#[tokio::test]
async fn finalizer_conflicts_that_persist_become_an_error() {
    let mut stale = flag(static_spec(true, 25.0), None);
    stale.metadata.finalizers = None;
    let outcome = Scenario {
        finalizer_codes: vec![409; 4],
        fresh: Some(stale.clone().into()),
        ..Scenario::new(stale)
    }
    .run()
    .await;
    let error = outcome.result.unwrap_err();
    assert!(error.contains("finalizer"), "{error}");
    assert_eq!(outcome.metrics.finalizer_conflicts.get(), 3);
}

/// A deleted flag whose object is already gone when its finalizer is removed (404) has
/// done what the removal was for: success, not an error.
#[tokio::test]
async fn finalizer_removal_of_a_gone_flag_is_success() {
    let mut deleted = flag(static_spec(true, 25.0), None);
    deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let outcome = Scenario {
        finalizer_codes: vec![404],
        ..Scenario::new(deleted)
    }
    .run()
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    assert!(
        routes(&outcome.sent).contains(&format!("PATCH {FLAG_PATH}")),
        "{:#?}",
        outcome.sent
    );
    assert_eq!(outcome.metrics.finalizer_conflicts.get(), 0);
}

/// A publish that meets a 504 is retried within a tenth of a second (±20%), not with the
/// 5 s backoff of other transient errors: the document carries every kill switch.
#[tokio::test]
async fn failed_publish_is_retried_within_a_tenth_of_a_second() {
    let outcome = Scenario {
        configmap_apply_code: Some(504),
        ..Scenario::new(flag(static_spec(false, 25.0), None))
    }
    .run()
    .await;
    let error = outcome.result.unwrap_err();
    assert!(
        error.contains("ConfigMap shop/rollgate-flags: server-side apply failed"),
        "{error}"
    );
    let delay = outcome.retry_after.expect("a retry");
    assert!(
        (Duration::from_millis(80)..=Duration::from_millis(120)).contains(&delay),
        "{delay:?}"
    );
}

/// A flag deleted with its namespace: the ConfigMap cannot be written any more (403,
/// NamespaceTerminating) and goes with the namespace, so the finalizer comes off anyway.
/// Retrying would keep the namespace in Terminating for ever.
#[tokio::test]
async fn a_flag_in_a_namespace_being_deleted_lets_go_of_its_finalizer() {
    let live = FeatureFlagStatus {
        phase: rollgate_core::crd::Phase::Static,
        percent: Some(25.0),
        observed_generation: Some(1),
        ..Default::default()
    };
    let mut deleted = flag(static_spec(true, 25.0), Some(live));
    deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let outcome = Scenario {
        configmap_apply_code: Some(403),
        ..Scenario::new(deleted)
    }
    .run()
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    let routes = routes(&outcome.sent);
    assert!(routes.contains(&format!("PATCH {CM_PATH}")), "{routes:#?}");
    assert_eq!(
        routes.last(),
        Some(&format!("PATCH {FLAG_PATH}")),
        "{routes:#?}"
    );
}

/// A flag that names a ConfigMap outside the operator's list is refused before any
/// ConfigMap request: RBAC names only the listed ConfigMaps.
#[tokio::test]
async fn flag_publishing_to_an_unlisted_configmap_is_refused_without_touching_it() {
    let mut spec = static_spec(true, 10.0);
    spec.publish = Some(Publish {
        config_map: Some("other-flags".into()),
    });
    let outcome = Scenario::new(flag(spec, None)).run().await;
    let error = outcome.result.unwrap_err();
    assert!(error.contains("spec.publish.configMap"), "{error}");
    let sent = &outcome.sent;
    assert_eq!(
        routes(sent),
        [
            format!("PATCH {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}")
        ],
        "{sent:#?}"
    );
    let status = &status_apply(sent).body["status"];
    let invalid = condition(status, "InvalidSpec");
    assert_eq!(invalid["status"], "True");
    assert_eq!(invalid["reason"], "ConfigMapNotAllowed");
    let message = invalid["message"].as_str().unwrap();
    assert!(
        message.contains("\"other-flags\"")
            && message.contains("\"rollgate-flags\"")
            && message.contains("--extra-configmap-name"),
        "{message}"
    );
    assert_eq!(condition(status, "Ready")["status"], "False");
}

/// A neighbour that does not decode keeps its published entry while the others publish.
#[tokio::test]
async fn undecodable_neighbour_keeps_its_entry_when_another_flag_publishes() {
    let legacy_entry = json!({
        "key": "legacy", "enabled": true, "percent": 40.0, "allowedUsers": ["vip"],
        "variants": [], "phase": "Static", "generation": 3,
        "updatedAt": "2024-01-01T00:00:00Z",
    });
    let previous = json!({"schemaVersion": 1, "flags": {"legacy": legacy_entry}});
    let configmap: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "rollgate-flags", "namespace": "shop"},
        "data": {"flags.json": previous.to_string()},
    }))
    .unwrap();
    let outcome = Scenario {
        neighbours: vec![raw_flag(
            "legacy",
            json!({"enabled": true, "rollout": {"steps": [{"percent": {"value": 10}}]}}),
        )],
        configmap: Some(configmap),
        ..Scenario::new(flag(static_spec(true, 25.0), None))
    }
    .run()
    .await;
    outcome.result.unwrap();
    let document = published_document(&outcome.sent);
    assert_eq!(document["flags"]["checkout"]["percent"], 25.0);
    assert_eq!(
        document["flags"]["legacy"], previous["flags"]["legacy"],
        "{document:#}"
    );
}

/// A publish that failed between two shard writes left shard 1 not matching the index. The
/// next publish still keeps the entry of a neighbour that does not decode, from what shard 1
/// holds, and the document, small again, goes back into one ConfigMap.
#[tokio::test]
async fn an_undecodable_neighbour_keeps_its_entry_from_a_shard_that_does_not_match() {
    let entry = |key: &str, percent: f64| {
        json!({"key": key, "enabled": true, "percent": percent, "allowedUsers": [],
            "variants": [], "phase": "Static", "generation": 3,
            "updatedAt": "2024-01-01T00:00:00Z"})
    };
    let shard_zero =
        json!({"schemaVersion": 1, "flags": {"checkout": entry("checkout", 10.0)}}).to_string();
    let shard_one =
        json!({"schemaVersion": 1, "flags": {"legacy": entry("legacy", 40.0)}}).to_string();
    let index = json!({"schemaVersion": 1, "generation": 4, "shards": [
        {"configMap": "rollgate-flags-shard-0", "key": "flags-shard-0.json",
            "sha256": rollgate_sdk::content_hash(shard_zero.as_bytes())},
        {"configMap": "rollgate-flags-shard-1", "key": "flags-shard-1.json",
            "sha256": rollgate_sdk::content_hash(b"what generation 4 wrote")},
    ]});
    let configmap = |name: &str, key: &str, data: String| -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "data": {key: data},
        }))
        .unwrap()
    };
    let outcome = Scenario {
        neighbours: vec![raw_flag(
            "legacy",
            json!({"enabled": true, "rollout": {"steps": [{"percent": {"value": 10}}]}}),
        )],
        configmap: Some(configmap("rollgate-flags", "flags.json", index.to_string())),
        shards: vec![
            configmap("rollgate-flags-shard-0", "flags-shard-0.json", shard_zero),
            configmap("rollgate-flags-shard-1", "flags-shard-1.json", shard_one),
        ],
        ..Scenario::new(flag(static_spec(true, 25.0), None))
    }
    .run()
    .await;
    outcome.result.unwrap();
    let document = published_document(&outcome.sent);
    assert_eq!(document["flags"]["checkout"]["percent"], 25.0);
    assert_eq!(
        document["flags"]["legacy"],
        entry("legacy", 40.0),
        "{document:#}"
    );
    // Back in one ConfigMap, and both shards deleted.
    let deletes: Vec<String> = routes(&outcome.sent)
        .into_iter()
        .filter(|route| route.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        [
            format!("DELETE {CM_PATH}-shard-0"),
            format!("DELETE {CM_PATH}-shard-1")
        ]
    );
}

/// One flag whose allowedUsers alone pass 900 KiB, so no shard can hold it: `PublishFailed`
/// with the size and the limit, a Warning event, and no ConfigMap write (nothing truncated).
#[tokio::test]
async fn oversized_document_sets_publish_failed_and_writes_no_configmap() {
    let mut big = flag(static_spec(true, 25.0), None);
    big.spec.allowed_users = (0..4_000).map(|i| format!("{i:0>250}")).collect();
    let outcome = Scenario::new(big).run().await;
    assert_eq!(
        outcome.result.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    let sent = &outcome.sent;
    let routes = routes(sent);
    // The status, the publish that finds the document too large and writes nothing, then
    // the status again with the condition.
    assert_eq!(
        routes[..3],
        [
            format!("PATCH {STATUS_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {STATUS_PATH}"),
        ]
    );
    assert!(
        routes[3..]
            .iter()
            .all(|r| *r == format!("POST {EVENTS_PATH}")),
        "only events after the status: {routes:#?}"
    );
    let last_status = sent
        .iter()
        .rev()
        .find(|s| s.method == Method::PATCH && s.path == STATUS_PATH)
        .unwrap();
    let failed = condition(&last_status.body["status"], "PublishFailed");
    assert_eq!(failed["status"], "True");
    assert_eq!(failed["reason"], "DocumentTooLarge");
    let message = failed["message"].as_str().unwrap();
    let size: usize = message
        .strip_prefix("the flag document for ConfigMap shop/rollgate-flags would be ")
        .and_then(|rest| rest.split(' ').next())
        .map(|digits| digits.replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("{message}"));
    // 4,000 quoted ids of 250 characters, plus commas and the rest of the entry.
    assert!(
        (4_000 * 253..4_000 * 253 + 1_000).contains(&size),
        "{message}"
    );
    assert!(
        message.contains(
            "bytes, over the 921,600-byte limit, and 16 shards (--max-shards) cannot hold it; \
             no new version was published"
        ),
        "{message}"
    );
    assert!(message.contains("largest entries: checkout ("), "{message}");
    let warning = events(sent)
        .into_iter()
        .find(|event| event.body["reason"] == "PublishFailed")
        .expect("a PublishFailed event");
    assert_eq!(warning.body["type"], "Warning");
    assert_eq!(warning.body["note"], message);
}

/// Six flags of about 190 KB each make a 1.1 MB document: two shards are written first, then
/// the index in the ConfigMap itself, which names both with their hashes.
#[tokio::test]
async fn a_document_over_the_limit_writes_its_shards_before_the_index() {
    let live = FeatureFlagStatus {
        phase: rollgate_core::crd::Phase::Static,
        percent: Some(0.0),
        observed_generation: Some(1),
        ..Default::default()
    };
    let big = |name: &str, uid: u32| {
        let mut big = flag(static_spec(true, 0.0), Some(live.clone()));
        big.metadata.name = Some(name.into());
        big.metadata.uid = Some(format!("0b3e0c1e-0000-4000-8000-{uid:012}"));
        big.spec.allowed_users = (0..1_500).map(|u| format!("{name}-{u:0>113}")).collect();
        big
    };
    let neighbours = (0..5)
        .map(|i| big(&format!("big-{i}"), 10 + i).into())
        .collect();
    let outcome = Scenario {
        neighbours,
        ..Scenario::new(big("checkout", 1))
    }
    .run()
    .await;
    outcome.result.unwrap();
    let configmap_routes: Vec<String> = routes(&outcome.sent)
        .into_iter()
        .filter(|route| route.contains("/configmaps/"))
        .collect();
    assert_eq!(
        configmap_routes,
        [
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}-shard-0"),
            format!("PATCH {CM_PATH}-shard-1"),
            format!("PATCH {CM_PATH}"),
        ]
    );
    let body = |path: String| {
        outcome
            .sent
            .iter()
            .find(|s| s.method == Method::PATCH && s.path == path)
            .unwrap()
            .body
            .clone()
    };
    let index = body(CM_PATH.to_string());
    let rollgate_sdk::Stored::Index(index) =
        rollgate_sdk::parse_stored(index["data"]["flags.json"].as_str().unwrap().as_bytes())
            .unwrap()
    else {
        panic!("the ConfigMap does not hold an index");
    };
    assert_eq!(index.generation, 1);
    let document = index
        .assemble(|shard| {
            let patch = body(format!(
                "/api/v1/namespaces/shop/configmaps/{}",
                shard.config_map
            ));
            assert_eq!(
                patch["metadata"]["labels"]["rollgate.dev/shard-of"],
                "rollgate-flags"
            );
            patch["data"][&shard.key].as_str().map(str::to_string)
        })
        .unwrap();
    assert_eq!(document.flags.len(), 6);
}

/// A ramp 10% → 100% gated by `metrics`, one `interval` into its first step, so that its
/// next reconcile analyses.
async fn due_for_analysis(metrics: Vec<MetricCheck>, prometheus: &FakePrometheus) -> FeatureFlag {
    let mut ramping = flag(
        FeatureFlagSpec {
            percent: None,
            rollout: Some(Rollout {
                steps: vec![
                    Step {
                        percent: 10.0,
                        pause: Some("1m".into()),
                    },
                    Step {
                        percent: 100.0,
                        pause: None,
                    },
                ],
                analysis: Some(rollgate_core::crd::Analysis {
                    interval: "10s".into(),
                    failure_limit: 1,
                    prometheus: None,
                    metrics,
                    ..Default::default()
                }),
            }),
            ..static_spec(true, 0.0)
        },
        None,
    );
    // The first reconcile starts the ramp at step 0 and queries nothing.
    let queries_before = prometheus.queries();
    let (result, sent) = reconcile_once(ramping.clone(), None, Some(&prometheus.url)).await;
    result.unwrap();
    assert_eq!(prometheus.queries(), queries_before);
    let mut status: FeatureFlagStatus =
        serde_json::from_value(status_apply(&sent).body["status"].clone()).unwrap();
    assert_eq!(status.percent, Some(10.0));
    // Move the step start back so the analysis is due now.
    let started = status.step_started_at.clone().unwrap();
    status.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        started.0 - jiff::SignedDuration::from_secs(30),
    ));
    ramping.status = Some(status);
    ramping
}

fn error_ratio(name: &str, query: &str) -> MetricCheck {
    MetricCheck {
        name: name.into(),
        query: query.into(),
        min: None,
        max: Some(0.05),
        on_no_data: Default::default(),
        on_error: Default::default(),
    }
}

/// A metric breach rolls back: the status says RolledBack, a Warning event names the
/// metric, and 0% is published — all in one reconcile. The metric comes from a real HTTP
/// server on 127.0.0.1 that answers like Prometheus.
#[tokio::test]
async fn metric_breach_rolls_back_with_warning_and_publishes_zero() {
    let prometheus = FakePrometheus::start(0.5).await;
    let ramping =
        due_for_analysis(vec![error_ratio("error-ratio", "vector(0.5)")], &prometheus).await;
    let queries_before = prometheus.queries();
    let (result, sent) = reconcile_once(ramping, None, Some(&prometheus.url)).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(
        prometheus.queries() - queries_before,
        1,
        "one query per metric"
    );
    assert_eq!(
        routes(&sent),
        [
            format!("PATCH {STATUS_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
            format!("POST {EVENTS_PATH}"),
        ],
        "{sent:#?}"
    );
    let status = &status_apply(&sent).body["status"];
    assert_eq!(status["phase"], "RolledBack", "{status:#}");
    assert_eq!(status["percent"], 0.0);
    let degraded = condition(status, "Degraded");
    assert_eq!(degraded["status"], "True");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("error-ratio") && message.contains("0.5") && message.contains("0.05"),
        "{message}"
    );
    let document = published_document(&sent);
    assert_eq!(document["flags"]["checkout"]["percent"], 0.0);
    assert_eq!(document["flags"]["checkout"]["enabled"], false);
    let warning = events(&sent)[0];
    assert_eq!(warning.body["type"], "Warning");
    assert_eq!(warning.body["reason"], "RolledBack");
    let note = warning.body["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("error-ratio") && note.contains("0.5") && note.contains("0.05"),
        "{note}"
    );
}

/// `rollgate_analysis_query_duration_seconds` times each query on its own: a slow metric
/// does not make the fast one beside it look slow.
#[tokio::test]
async fn analysis_query_duration_is_observed_per_query() {
    let prometheus = FakePrometheus::start(0.01).await;
    let metrics = vec![
        error_ratio("fast", "fast_errors"),
        error_ratio("slow", "slow_errors"),
    ];
    let ramping = due_for_analysis(metrics, &prometheus).await;
    let outcome = Scenario {
        prometheus_url: Some(prometheus.url.clone()),
        ..Scenario::new(ramping)
    }
    .run()
    .await;
    outcome.result.unwrap();
    let durations = outcome
        .metrics
        .analysis_query_duration
        .with_label_values(&["value"]);
    assert_eq!(durations.get_sample_count(), 2);
    // Timing the whole analysis would give each query the slow one's time: twice as much.
    let total = durations.get_sample_sum();
    let slow = SLOW_QUERY.as_secs_f64();
    assert!((slow..slow * 1.8).contains(&total), "{total}");
}

/// A tiny Prometheus stand-in: answers every instant query with one sample, each
/// connection on its own task; a query that mentions `slow` is answered after `SLOW_QUERY`.
struct FakePrometheus {
    url: String,
    hits: Arc<Mutex<u32>>,
}

const SLOW_QUERY: Duration = Duration::from_millis(500);

impl FakePrometheus {
    async fn start(value: f64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                *counter.lock().unwrap() += 1;
                tokio::spawn(Self::answer(socket, value));
            }
        });
        Self { url, hits }
    }

    async fn answer(mut socket: tokio::net::TcpStream, value: f64) {
        use tokio::io::AsyncWriteExt;
        let request = Self::read_request(&mut socket).await;
        if request.contains("slow") {
            tokio::time::sleep(SLOW_QUERY).await;
        }
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{value}"]}}]}}}}"#
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
    }

    /// Headers and body (the query is form-encoded in a POST).
    async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut request = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(read @ 1..) = socket.read(&mut chunk).await {
            request.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&request);
            let Some(header_end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length = text[..header_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if request.len() >= header_end + 4 + length {
                break;
            }
        }
        String::from_utf8_lossy(&request).into_owned()
    }

    fn queries(&self) -> u32 {
        *self.hits.lock().unwrap()
    }
}

/// Two reconciles in one operator: `banner` writes its status, then `checkout` renders the
/// document while the cache still holds `banner` without it (its watch event has not
/// arrived). The document must carry `banner` as last written, not its older state.
#[tokio::test]
async fn a_render_uses_the_status_this_leader_last_wrote_not_the_older_cache() {
    let checkout = flag(static_spec(true, 25.0), None);
    let (client, server) = fake_api(&checkout);
    let mut banner = FeatureFlag::new("banner", static_spec(true, 40.0));
    banner.metadata = checkout.metadata.clone();
    banner.metadata.name = Some("banner".into());
    banner.metadata.uid = Some("0b3e0c1e-0000-4000-8000-000000000003".into());
    let context = leading_context(client, &[], &Metrics::new().unwrap());
    // The cache never sees banner's status: as if its watch event were still on its way.
    let cached: Vec<WatchedFlag> = vec![banner.clone().into(), checkout.clone().into()];
    context.register_store(store_with(&cached));
    reconcile::reconcile(Arc::new(banner.into()), context.clone())
        .await
        .unwrap();
    reconcile::reconcile(Arc::new(checkout.into()), context.clone())
        .await
        .unwrap();
    drop(context);
    let sent = server.finish().await;
    let last_publish = sent
        .iter()
        .rev()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/configmaps/rollgate-flags"))
        .expect("a ConfigMap apply");
    let document: Value =
        serde_json::from_str(last_publish.body["data"]["flags.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        document["flags"]["checkout"]["percent"], 25.0,
        "{document:#}"
    );
    assert_eq!(document["flags"]["banner"]["percent"], 40.0, "{document:#}");
}

/// A flag being deleted leaves the document even while the cache still holds it without
/// its deletion timestamp (the reconcile read a fresher object); its neighbour stays.
#[tokio::test]
async fn a_deleted_flag_leaves_the_document_before_the_cache_sees_the_deletion() {
    let live = |percent| FeatureFlagStatus {
        phase: rollgate_core::crd::Phase::Static,
        percent: Some(percent),
        observed_generation: Some(1),
        ..Default::default()
    };
    let mut deleted = flag(static_spec(true, 25.0), Some(live(25.0)));
    deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let mut cached_version = deleted.clone();
    cached_version.metadata.deletion_timestamp = None;
    let mut banner = flag(static_spec(true, 40.0), Some(live(40.0)));
    banner.metadata.name = Some("banner".into());
    banner.metadata.uid = Some("0b3e0c1e-0000-4000-8000-000000000003".into());
    let outcome = Scenario {
        neighbours: vec![banner.into()],
        cached_version: Some(cached_version.into()),
        ..Scenario::new(deleted)
    }
    .run()
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    let document = published_document(&outcome.sent);
    assert!(document["flags"].get("checkout").is_none(), "{document:#}");
    assert_eq!(document["flags"]["banner"]["percent"], 40.0, "{document:#}");
}

/// A burst: 100 flags of one ConfigMap reconciled at once, as after a bulk apply, with no
/// publish window. Every status is written, and the publishes share their reads and
/// writes: exactly two of each (the first request's, then one for every request made
/// while it ran), not 100.
#[tokio::test]
async fn a_burst_of_100_reconciles_shares_two_configmap_writes() {
    let burst = burst_of_100("0s").await;
    assert_eq!((burst.reads, burst.writes), (2, 2), "{:#?}", burst.routes);
    assert_eq!(
        (burst.written, burst.coalesced),
        (2, 98),
        "written, coalesced"
    );
}

/// The same burst with a publish window longer than the burst: one read, one write.
#[tokio::test]
async fn a_publish_window_gathers_a_burst_of_100_into_one_write() {
    let burst = burst_of_100("500ms").await;
    assert_eq!((burst.reads, burst.writes), (1, 1), "{:#?}", burst.routes);
    assert_eq!(
        (burst.written, burst.coalesced),
        (1, 99),
        "written, coalesced"
    );
}

struct Burst {
    reads: usize,
    writes: usize,
    written: u64,
    coalesced: u64,
    routes: Vec<String>,
}

/// Reconciles 100 static flags of one ConfigMap at once with `--publish-window <window>`;
/// checks that every status was written and the last document holds all 100.
async fn burst_of_100(window: &str) -> Burst {
    let template = flag(static_spec(true, 25.0), None);
    let (client, server) = fake_api(&template);
    let flags: Vec<FeatureFlag> = (0..100)
        .map(|i| {
            let mut flag = template.clone();
            flag.metadata.name = Some(format!("flag-{i:03}"));
            flag.metadata.uid = Some(format!("0b3e0c1e-0000-4000-8000-{i:012}"));
            flag
        })
        .collect();
    let metrics = Metrics::new().unwrap();
    let context = leading_context(client, &[format!("--publish-window={window}")], &metrics);
    let cached: Vec<WatchedFlag> = flags.iter().cloned().map(WatchedFlag::from).collect();
    context.register_store(store_with(&cached));
    let reconciles = flags
        .into_iter()
        .map(|flag| reconcile::reconcile(Arc::new(flag.into()), context.clone()));
    for result in futures::future::join_all(reconciles).await {
        result.unwrap();
    }
    drop(context);
    let sent = server.finish().await;
    let count = |route: &str| sent.iter().filter(|s| s.route() == route).count();
    let status_writes = sent
        .iter()
        .filter(|s| s.method == Method::PATCH && s.path.ends_with("/status"))
        .count();
    assert_eq!(status_writes, 100);
    let document = published_document_last(&sent);
    assert_eq!(document["flags"].as_object().unwrap().len(), 100);
    let publishes = |outcome: &str| metrics.publishes.with_label_values(&[outcome]).get();
    Burst {
        reads: count(&format!("GET {CM_PATH}")),
        writes: count(&format!("PATCH {CM_PATH}")),
        written: publishes("written"),
        coalesced: publishes("coalesced"),
        routes: routes(&sent),
    }
}

/// The document of the last ConfigMap apply.
fn published_document_last(sent: &[Sent]) -> Value {
    let apply = sent
        .iter()
        .rev()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/configmaps/rollgate-flags"))
        .expect("a ConfigMap apply");
    serde_json::from_str(apply.body["data"]["flags.json"].as_str().unwrap()).unwrap()
}

/// `checkout` on for the users of `segment`, 10% for everyone else.
fn targeted(segment: &str, status: Option<FeatureFlagStatus>) -> FeatureFlag {
    let mut spec = static_spec(true, 10.0);
    spec.targeting = vec![TargetingRule {
        name: "beta".into(),
        conditions: vec![TargetingCondition {
            attribute: None,
            operator: Operator::InSegment,
            values: vec![segment.into()],
        }],
        serve: Serve {
            enabled: Some(true),
            ..Serve::default()
        },
    }];
    flag(spec, status)
}

fn segment(name: &str, included: &[&str]) -> Segment {
    let mut segment = Segment::new(
        name,
        SegmentSpec {
            included: included.iter().map(|user| user.to_string()).collect(),
            ..SegmentSpec::default()
        },
    );
    segment.metadata.namespace = Some("shop".into());
    segment.metadata.resource_version = Some(format!("{}", 200 + included.len()));
    segment
}

/// A segment edit reaches the flags naming it: the watch maps it to them, and their next
/// reconcile publishes the new segment although the flag itself did not change (the same
/// reconcile without the edit sends nothing).
#[tokio::test]
async fn a_segment_edit_republishes_the_flags_naming_it() {
    let first = Scenario {
        segments: Some(vec![segment("beta-testers", &["alice"])]),
        ..Scenario::new(targeted("beta-testers", None))
    }
    .run()
    .await;
    first.result.unwrap();
    let status: FeatureFlagStatus =
        serde_json::from_value(status_apply(&first.sent).body["status"].clone()).unwrap();
    let resolved = status
        .conditions
        .iter()
        .find(|c| c.type_ == "SegmentsResolved")
        .expect("SegmentsResolved");
    assert_eq!(resolved.status, "True", "{resolved:?}");
    let document = published_document(&first.sent);
    assert_eq!(
        document["flags"]["checkout"]["targeting"][0]["name"],
        "beta"
    );
    assert_eq!(
        document["segments"]["beta-testers"]["included"],
        json!(["alice"])
    );

    let settled = targeted("beta-testers", Some(status));
    let neighbour = {
        let mut other = flag(static_spec(true, 5.0), None);
        other.metadata.name = Some("search".into());
        WatchedFlag::from(other)
    };
    let (client, server) = fake_api(&settled);
    let metrics = Metrics::new().unwrap();
    let context = leading_context(client, &[], &metrics);
    let flags = store_with(&[WatchedFlag::from(settled.clone()), neighbour]);
    context.register_store(flags.clone());
    let (segments, mut segment_writer) = synced_store(&[segment("beta-testers", &["alice"])]);
    context.register_segment_store(segments);
    let reconcile = || reconcile::reconcile(Arc::new(settled.clone().into()), context.clone());
    reconcile().await.unwrap();
    reconcile().await.unwrap();
    let skipped = |metrics: &Metrics| metrics.publishes.with_label_values(&["skipped"]).get();
    assert_eq!(skipped(&metrics), 1);

    let edited = segment("beta-testers", &["alice", "bob"]);
    segment_writer.apply_watcher_event(&watcher::Event::Apply(edited.clone()));
    let woken = rollgate::operator::flags_naming(&edited, &flags.state());
    let names: Vec<&str> = woken.iter().map(|object| object.name.as_str()).collect();
    assert_eq!(names, ["checkout"], "only the flag naming the segment");
    reconcile().await.unwrap();
    assert_eq!(skipped(&metrics), 1, "the edit is published, not skipped");
    drop(context);
    let sent = server.finish().await;
    assert_eq!(
        routes(&sent),
        [
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
            format!("GET {CM_PATH}"),
            format!("PATCH {CM_PATH}"),
        ],
        "no status write: the flag did not change"
    );
    let last = sent.last().unwrap();
    let document: Value =
        serde_json::from_str(last.body["data"]["flags.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        document["segments"]["beta-testers"]["included"],
        json!(["alice", "bob"])
    );
    // The neighbour's entry carries no rules and the document no segment of its own.
    assert!(document["flags"]["search"].get("targeting").is_none());
    assert_eq!(document["segments"].as_object().unwrap().len(), 1);
}

/// A flag naming a segment that does not exist publishes without it (its `InSegment` is
/// false for everyone), says which in `SegmentsResolved`, and warns once; an invalid segment
/// counts as missing.
#[tokio::test]
async fn a_missing_segment_is_left_out_and_named_in_a_condition() {
    let outcome = Scenario {
        segments: Some(vec![segment("staff", &["ann"])]),
        ..Scenario::new(targeted("beta-testers", None))
    }
    .run()
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    let status = &status_apply(&outcome.sent).body["status"];
    let resolved = condition(status, "SegmentsResolved");
    assert_eq!(resolved["status"], "False");
    assert_eq!(resolved["reason"], "SegmentNotFound");
    assert_eq!(
        resolved["message"],
        "segment \"beta-testers\" does not exist in namespace shop; InSegment conditions naming it match no one"
    );
    // Everything else about the flag goes on as usual.
    assert_eq!(condition(status, "Ready")["status"], "True");
    let document = published_document(&outcome.sent);
    assert_eq!(document["flags"]["checkout"]["percent"], json!(10.0));
    assert_eq!(
        document["flags"]["checkout"]["targeting"][0]["name"],
        "beta"
    );
    assert!(document.get("segments").is_none(), "{document:#}");
    let warnings = events(&outcome.sent);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].body["reason"], "SegmentNotFound");
    assert_eq!(warnings[0].body["type"], "Warning");

    // Once said, not said again.
    let said: FeatureFlagStatus = serde_json::from_value(status.clone()).unwrap();
    let again = Scenario {
        segments: Some(vec![segment("staff", &["ann"])]),
        ..Scenario::new(targeted("beta-testers", Some(said)))
    }
    .run()
    .await;
    again.result.unwrap();
    assert!(events(&again.sent).is_empty(), "{:#?}", again.sent);

    // An invalid segment is as good as missing.
    let mut invalid = segment("beta-testers", &["bob", "bob"]);
    invalid.metadata.generation = Some(2);
    let outcome = Scenario {
        segments: Some(vec![invalid]),
        ..Scenario::new(targeted("beta-testers", None))
    }
    .run()
    .await;
    let status = &status_apply(&outcome.sent).body["status"];
    let message = condition(status, "SegmentsResolved")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("segment \"beta-testers\" in namespace shop is invalid (spec.included[1]: duplicate user \"bob\")"),
        "{message}"
    );
    assert!(published_document(&outcome.sent).get("segments").is_none());
}

/// A Segment's status: `observedGeneration` and `Ready`, `False` with reason `Invalid` and
/// every violation while its spec breaks a rule (the only place a 1.20 API server, which
/// drops CEL, shows it), with one Warning event; nothing is written when it is unchanged.
#[tokio::test]
async fn an_invalid_segment_gets_ready_false_with_its_violations() {
    let mut invalid = segment("beta-testers", &["bob", "bob"]);
    invalid.metadata.generation = Some(3);
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let answer = serde_json::to_value(&invalid).unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    let server = tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let route = format!("{} {}", request.method(), request.uri().path());
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            record.lock().unwrap().push((route, body.clone()));
            let mut reply = answer.clone();
            if let Some(status) = body.get("status") {
                reply["status"] = status.clone();
            }
            respond.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    let metrics = Metrics::new().unwrap();
    let context = leading_context(Client::new(service, "default"), &[], &metrics);
    let action =
        rollgate::operator::segments::reconcile(Arc::new(invalid.clone()), context.clone())
            .await
            .unwrap();
    assert_eq!(action, Action::await_change());

    // The same segment with that status: nothing to write, nothing to say.
    let (route, body) = sent.lock().unwrap()[0].clone();
    assert_eq!(
        route,
        "PATCH /apis/rollgate.dev/v1alpha1/namespaces/shop/segments/beta-testers/status"
    );
    let mut settled = invalid.clone();
    settled.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
    rollgate::operator::segments::reconcile(Arc::new(settled), context.clone())
        .await
        .unwrap();
    drop(context);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    let sent = sent.lock().unwrap().clone();
    let routes: Vec<&str> = sent.iter().map(|(route, _)| route.as_str()).collect();
    assert_eq!(
        routes,
        [
            "PATCH /apis/rollgate.dev/v1alpha1/namespaces/shop/segments/beta-testers/status",
            "POST /apis/events.k8s.io/v1/namespaces/shop/events",
        ]
    );
    let status = &sent[0].1["status"];
    assert_eq!(status["observedGeneration"], 3);
    let ready = condition(status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"], &ready["message"]),
        (
            &json!("False"),
            &json!("Invalid"),
            &json!("spec.included[1]: duplicate user \"bob\"")
        )
    );
    assert_eq!(sent[1].1["reason"], "InvalidSpec");
    assert_eq!(sent[1].1["type"], "Warning");
}
