//! Mock-API scenarios: the exact requests one reconcile sends, against a tower-test
//! service standing in for the API server (the kube-rs controller-rs fixture pattern).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use rollgate::crd::{FeatureFlag, FeatureFlagSpec, FeatureFlagStatus, MetricCheck, Rollout, Step};
use rollgate::metrics::Metrics;
use rollgate::operator::{Context, FINALIZER, OperatorArgs, reconcile};
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
    /// `configmap` is what a GET of the ConfigMap returns (`None`: 404).
    fn start(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        flag: FeatureFlag,
        configmap: Option<ConfigMap>,
    ) -> Self {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        let task = tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                record.lock().unwrap().push(Sent {
                    method: method.clone(),
                    path: path.clone(),
                    query,
                    body: body.clone(),
                });
                let (status, reply) =
                    if path.ends_with("/configmaps/rollgate-flags") && method == Method::GET {
                        match &configmap {
                            Some(cm) => (StatusCode::OK, serde_json::to_value(cm).unwrap()),
                            None => (
                                StatusCode::NOT_FOUND,
                                not_found("configmaps", "rollgate-flags"),
                            ),
                        }
                    } else if path.contains("/featureflags/") && method == Method::PATCH {
                        let mut updated = serde_json::to_value(&flag).unwrap();
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
        stale_after: None,
        publish: None,
        experiment: None,
    }
}

fn store_with(flags: &[FeatureFlag]) -> Store<FeatureFlag> {
    let (reader, mut writer) = reflector::store();
    for flag in flags {
        writer.apply_watcher_event(&watcher::Event::Apply(flag.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

/// Runs one reconcile of `flag` against the fake API server; returns the requests.
async fn reconcile_once(
    flag: FeatureFlag,
    configmap: Option<ConfigMap>,
    prometheus_url: Option<&str>,
) -> (Result<kube::runtime::controller::Action, String>, Vec<Sent>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = FakeApiServer::start(handle, flag.clone(), configmap);
    let client = Client::new(service, "default");
    let mut argv = vec!["operator".to_string()];
    if let Some(url) = prometheus_url {
        argv.push(format!("--prometheus-url={url}"));
    }
    let args = Args::parse_from(argv).operator;
    let (_leader_sender, is_leader) = watch::channel(true);
    let context =
        Arc::new(Context::new(client, &args, Metrics::new().unwrap(), is_leader).unwrap());
    context.register_store(store_with(std::slice::from_ref(&flag)));
    let result = reconcile::reconcile(Arc::new(flag), context.clone())
        .await
        .map_err(|e| e.to_string());
    drop(context);
    (result, server.finish().await)
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
const STATUS_PATH: &str =
    "/apis/rollgate.dev/v1alpha1/namespaces/shop/featureflags/checkout/status";

#[tokio::test]
async fn new_flag_applies_status_then_configmap() {
    let (result, sent) = reconcile_once(flag(static_spec(true, 25.0), None), None, None).await;
    result.unwrap();
    let routes: Vec<String> = sent.iter().map(Sent::route).collect();
    assert_eq!(routes[0], format!("GET {CM_PATH}"));
    assert_eq!(routes[1], format!("PATCH {STATUS_PATH}"));
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
    assert_eq!(document["schemaVersion"], 1);
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

#[tokio::test]
async fn kill_switch_publishes_zero_in_the_same_reconcile() {
    // A flag that was live at 25% is edited to enabled: false.
    let live = FeatureFlagStatus {
        phase: rollgate::crd::Phase::Static,
        percent: Some(25.0),
        observed_generation: Some(1),
        ..Default::default()
    };
    let mut killed = flag(static_spec(false, 25.0), Some(live));
    killed.metadata.generation = Some(2);
    let (result, sent) = reconcile_once(killed, None, None).await;
    result.unwrap();
    assert_eq!(status_apply(&sent).body["status"]["phase"], "Disabled");
    let document = published_document(&sent);
    assert_eq!(document["flags"]["checkout"]["enabled"], false);
    assert_eq!(document["flags"]["checkout"]["percent"], 0.0);
    let writes = sent.iter().filter(|s| s.method == Method::PATCH).count();
    assert_eq!(
        writes, 2,
        "one status write and one ConfigMap write: {sent:#?}"
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
        "only the ConfigMap read"
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
}

/// A metric breach rolls back: the status says RolledBack, a Warning event names the
/// metric, and 0% is published — all in one reconcile. The metric comes from a real HTTP
/// server on 127.0.0.1 that answers like Prometheus.
#[tokio::test]
async fn metric_breach_rolls_back_with_warning_and_publishes_zero() {
    let prometheus = FakePrometheus::start(0.5).await;
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
                analysis: Some(rollgate::crd::Analysis {
                    interval: "10s".into(),
                    failure_limit: 1,
                    prometheus: None,
                    metrics: vec![MetricCheck {
                        name: "error-ratio".into(),
                        query: "vector(0.5)".into(),
                        min: None,
                        max: Some(0.05),
                        on_no_data: Default::default(),
                        on_error: Default::default(),
                    }],
                }),
            }),
            ..static_spec(true, 0.0)
        },
        None,
    );
    // First reconcile starts the ramp at step 0; the second, an interval later, analyses.
    let (result, sent) = reconcile_once(ramping.clone(), None, Some(&prometheus.url)).await;
    result.unwrap();
    let mut status: FeatureFlagStatus =
        serde_json::from_value(status_apply(&sent).body["status"].clone()).unwrap();
    assert_eq!(status.percent, Some(10.0));
    // Move the step start back so the analysis is due now.
    let started = status.step_started_at.clone().unwrap();
    status.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        started.0 - jiff::SignedDuration::from_secs(30),
    ));
    ramping.status = Some(status);
    let (result, sent) = reconcile_once(ramping, None, Some(&prometheus.url)).await;
    result.unwrap();
    let status = &status_apply(&sent).body["status"];
    assert_eq!(status["phase"], "RolledBack", "{status:#}");
    let document = published_document(&sent);
    assert_eq!(document["flags"]["checkout"]["percent"], 0.0);
    assert_eq!(document["flags"]["checkout"]["enabled"], false);
    let warning = sent
        .iter()
        .filter(|s| s.method == Method::POST && s.path.ends_with("/events"))
        .find(|s| s.body["type"] == "Warning")
        .expect("a Warning event");
    let note = warning.body["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("error-ratio") && note.contains("0.5"),
        "{note}"
    );
    assert!(prometheus.queries() >= 1);
}

/// A tiny Prometheus stand-in: answers every instant query with one sample.
struct FakePrometheus {
    url: String,
    hits: Arc<Mutex<u32>>,
}

impl FakePrometheus {
    async fn start(value: f64) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                *counter.lock().unwrap() += 1;
                let mut buffer = vec![0u8; 8192];
                let _ = socket.read(&mut buffer).await;
                let body = format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{value}"]}}]}}}}"#
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        Self { url, hits }
    }

    fn queries(&self) -> u32 {
        *self.hits.lock().unwrap()
    }
}

#[allow(dead_code)]
fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
