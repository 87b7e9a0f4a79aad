//! End-to-end: a workload SDK watching the published ConfigMap through the API sees the
//! kill switch. Measures the time from the spec edit to the SDK's answer changing.
//!
//! The SDK runs as a service account whose Role grants exactly `get` and `watch` on the one
//! ConfigMap name (`docs/sdk.md`), with no `list`: the test fails if that Role does not
//! suffice (a `403` on the watch) or if it grants more than it should.

mod support {
    pub mod cluster;
    pub mod operator;
}

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, ListParams, PostParams, WatchParams};
use rollgate_sdk::Flags;
use support::cluster::{
    TestNamespace, eventually, install_crd, kubeconfig, kubectl_ok, kubectl_with_input,
};
use support::operator::{OperatorOptions, OperatorProcess};

const FLAG: &str = "apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: sdk-kill
spec:
  enabled: true
  percent: 100
";

const CONFIGMAP: &str = "rollgate-flags";
const ACCOUNT: &str = "shop-web";

/// The workload's RBAC from `docs/sdk.md`: `get` and `watch` on one ConfigMap name.
fn workload_rbac(namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: ServiceAccount
metadata:
  name: {ACCOUNT}
  namespace: {namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: rollgate-flags-reader
  namespace: {namespace}
rules:
  - apiGroups: [\"\"]
    resources: [\"configmaps\"]
    resourceNames: [\"{CONFIGMAP}\"]
    verbs: [\"get\", \"watch\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: shop-web-reads-rollgate-flags
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: rollgate-flags-reader
subjects:
  - kind: ServiceAccount
    name: {ACCOUNT}
    namespace: {namespace}
"
    )
}

/// A client for the same cluster authenticated as the workload's service account, with a
/// token from the TokenRequest API (Kubernetes 1.20 has it; its kubectl has no `create token`).
async fn workload_client(admin_config: &kube::Config, namespace: &str) -> kube::Client {
    let admin = kube::Client::try_from(admin_config.clone()).unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(Vec::new()),
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token: TokenRequest = Api::<ServiceAccount>::namespaced(admin, namespace)
        .create_subresource("token", ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the workload's service account");
    let token = token
        .status
        .and_then(|status| status.token)
        .expect("token in the TokenRequest status");
    let mut config = admin_config.clone();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    kube::Client::try_from(config).unwrap()
}

/// The Role is exactly enough: `get` and the name-selected `watch` are allowed (after RBAC's
/// cache caught up), `list` is refused even with the name selector.
async fn assert_minimal_role(client: &kube::Client, namespace: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match api.get(CONFIGMAP).await {
            Ok(_) => break,
            Err(error) => assert!(
                Instant::now() < deadline,
                "get as {ACCOUNT} still fails after 10 s: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_name = format!("metadata.name={CONFIGMAP}");
    let watched = api
        .watch(&WatchParams::default().fields(&by_name).timeout(1), "0")
        .await;
    assert!(
        watched.is_ok(),
        "the name-selected watch must be allowed by get+watch: {:?}",
        watched.err()
    );
    for params in [
        ListParams::default(),
        ListParams::default().fields(&by_name),
    ] {
        let listed = api.list(&params).await;
        assert!(
            matches!(&listed, Err(kube::Error::Api(status)) if status.is_forbidden()),
            "the Role must not grant list ({:?}): {listed:?}",
            params.field_selector
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_api_watch_sees_the_kill_switch() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-sdk");
    let _operator = OperatorProcess::start(OperatorOptions::new(&kubeconfig, &namespace.name));
    let applied = kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "-"],
        Some(FLAG),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // The operator publishes the flag; then the SDK starts watching the ConfigMap.
    let published = eventually(Duration::from_secs(30), || {
        let output = support::cluster::kubectl(
            &kubeconfig,
            &[
                "get",
                "cm",
                CONFIGMAP,
                "-n",
                &namespace.name,
                "-o",
                "jsonpath={.data.flags\\.json}",
            ],
        );
        let json = String::from_utf8_lossy(&output.stdout).into_owned();
        json.contains("\"sdk-kill\"").then_some(json)
    });
    assert!(published.is_some(), "the operator never published the flag");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let rbac = kubectl_with_input(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&workload_rbac(&namespace.name)),
    );
    assert!(
        rbac.status.success(),
        "{}",
        String::from_utf8_lossy(&rbac.stderr)
    );
    let client = workload_client(&config, &namespace.name).await;
    assert_minimal_role(&client, &namespace.name).await;
    let flags = Flags::watch_configmap(client, &namespace.name, CONFIGMAP)
        .await
        .expect("watch the ConfigMap as the service account with get+watch only");
    assert!(flags.is_enabled("sdk-kill", Some("any-user")));

    // The kill switch: one spec edit, then poll the SDK's in-memory answer.
    let started = Instant::now();
    kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "ff",
            "sdk-kill",
            "-n",
            &namespace.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ],
    );
    let deadline = started + Duration::from_secs(10);
    while flags.is_enabled("sdk-kill", Some("any-user")) {
        assert!(
            Instant::now() < deadline,
            "the SDK still serves the flag 10 s after the kill switch"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latency = started.elapsed();
    eprintln!(
        "LATENCY kill_switch_spec_edit_to_sdk_ms={}",
        latency.as_millis()
    );
    assert_eq!(
        flags.evaluate("sdk-kill", Some("any-user")).reason.as_str(),
        "disabled"
    );
}
