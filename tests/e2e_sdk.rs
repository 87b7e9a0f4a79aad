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

/// `count` flags `big-<i>`, each allow-listing 1,500 users of 120 characters (about 190 KB of
/// document each), as one `kubectl apply` list.
fn allow_listed_flags(count: usize) -> String {
    let items: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let users: Vec<String> = (0..1_500).map(|u| format!("user-{i}-{u:0>113}")).collect();
            serde_json::json!({
                "apiVersion": "rollgate.dev/v1alpha1",
                "kind": "FeatureFlag",
                "metadata": {"name": format!("big-{i}")},
                "spec": {"enabled": true, "percent": 0, "allowedUsers": users},
            })
        })
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// `data` of the ConfigMap `name`, `None` when it does not exist.
fn configmap_data(
    kubeconfig: &std::path::Path,
    namespace: &str,
    name: &str,
) -> Option<serde_json::Value> {
    let output = support::cluster::kubectl(
        kubeconfig,
        &["get", "cm", name, "-n", namespace, "-o", "json"],
    );
    output.status.success().then(|| {
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["data"].clone()
    })
}

/// The Python SDK over the ConfigMaps laid out as a projected volume mounts them: every key
/// of the index and of each shard a file in one directory. Prints how many flags it read
/// and whether the last user of `big-<i>` is on for each flag.
fn python_reads(
    kubeconfig: &std::path::Path,
    namespace: &str,
    shards: &[String],
    flags: usize,
) -> String {
    let volume = tempfile::tempdir().unwrap();
    for name in std::iter::once(CONFIGMAP).chain(shards.iter().map(String::as_str)) {
        let data = configmap_data(kubeconfig, namespace, name).expect("ConfigMap exists");
        for (key, value) in data.as_object().unwrap() {
            std::fs::write(volume.path().join(key), value.as_str().unwrap()).unwrap();
        }
    }
    let script = format!(
        "import rollgate\n\
         flags = rollgate.Flags({path:?})\n\
         answers = [flags.flag_enabled(f'big-{{i}}', f'user-{{i}}-' + '1499'.rjust(113, '0')) for i in range({flags})]\n\
         print(len(flags.flags), answers, flags.last_error)\n",
        path = volume.path().join("flags.json"),
    );
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env(
            "PYTHONPATH",
            support::cluster::repo_root().join("sdk/python/src"),
        )
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Six allow-listed flags make a 1.1 MB document: the operator publishes it as an index and
/// shards. The Rust SDK (ConfigMap watch) and the Python SDK (files) read it back as one,
/// the Rust SDK follows a kill switch through the shards, and once flags are deleted the
/// document fits again: one ConfigMap, and the shards are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_limit_is_sharded_and_the_sdks_read_it_back() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-shards");
    let _operator = OperatorProcess::start(OperatorOptions::new(&kubeconfig, &namespace.name));
    let applied = kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "-"],
        Some(&allow_listed_flags(6)),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let index_of = |data: &serde_json::Value| -> Option<rollgate_sdk::ShardIndex> {
        match rollgate_sdk::parse_stored(data["flags.json"].as_str()?.as_bytes()).ok()? {
            rollgate_sdk::Stored::Index(index) => Some(index),
            rollgate_sdk::Stored::Document(_) => None,
        }
    };
    let index = eventually(Duration::from_secs(60), || {
        let index = index_of(&configmap_data(&kubeconfig, &namespace.name, CONFIGMAP)?)?;
        // Every flag is in; a publish before the last one was created may have fit whole.
        let total: usize = index
            .shards
            .iter()
            .filter_map(|shard| {
                let data = configmap_data(&kubeconfig, &namespace.name, &shard.config_map)?;
                let document =
                    rollgate_sdk::FlagDocument::from_json(data[&shard.key].as_str()?.as_bytes())
                        .ok()?;
                Some(document.flags.len())
            })
            .sum();
        (total == 6).then_some(index)
    })
    .expect("the operator never published the six flags as shards");
    let shards: Vec<String> = index
        .shards
        .iter()
        .map(|shard| shard.config_map.clone())
        .collect();
    assert_eq!(
        shards,
        [
            format!("{CONFIGMAP}-shard-0"),
            format!("{CONFIGMAP}-shard-1")
        ]
    );
    let labels = kubectl_ok(
        &kubeconfig,
        &[
            "get",
            "cm",
            &shards[1],
            "-n",
            &namespace.name,
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    );
    assert!(
        labels.contains(r#""rollgate.dev/shard-of":"rollgate-flags""#),
        "{labels}"
    );

    // The Rust SDK through the API: one snapshot with all six flags.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let flags = Flags::watch_configmap(client, &namespace.name, CONFIGMAP)
        .await
        .expect("read the sharded document through the API");
    let last_user = |i: usize| format!("user-{i}-{:0>113}", 1_499);
    assert_eq!(flags.snapshot().len(), 6);
    for i in 0..6 {
        assert!(
            flags.is_enabled(&format!("big-{i}"), Some(&last_user(i))),
            "big-{i}"
        );
        assert!(!flags.is_enabled(&format!("big-{i}"), Some("someone-else")));
    }
    // The Python SDK from the same ConfigMaps as files.
    assert_eq!(
        python_reads(&kubeconfig, &namespace.name, &shards, 6),
        "6 [True, True, True, True, True, True] None"
    );

    // A kill switch reaches the SDK through the shards.
    let started = Instant::now();
    kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "ff",
            "big-3",
            "-n",
            &namespace.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ],
    );
    while flags.is_enabled("big-3", Some(&last_user(3))) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the kill switch never reached the SDK"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "LATENCY sharded_kill_switch_spec_edit_to_sdk_ms={}",
        started.elapsed().as_millis()
    );
    assert!(flags.is_enabled("big-0", Some(&last_user(0))));
    assert!(
        flags.last_reload_error().is_none(),
        "{:?}",
        flags.last_reload_error()
    );

    // Down to two flags: one ConfigMap again, and the shards are gone.
    kubectl_ok(
        &kubeconfig,
        &[
            "delete",
            "ff",
            "big-2",
            "big-3",
            "big-4",
            "big-5",
            "-n",
            &namespace.name,
        ],
    );
    let whole = eventually(Duration::from_secs(30), || {
        let data = configmap_data(&kubeconfig, &namespace.name, CONFIGMAP)?;
        let document =
            rollgate_sdk::FlagDocument::from_json(data["flags.json"].as_str()?.as_bytes()).ok()?;
        (document.flags.len() == 2).then_some(document)
    });
    assert!(
        whole.is_some(),
        "the document never fit one ConfigMap again"
    );
    for shard in &shards {
        let gone = eventually(Duration::from_secs(10), || {
            configmap_data(&kubeconfig, &namespace.name, shard)
                .is_none()
                .then_some(())
        });
        assert!(gone.is_some(), "{shard} was not deleted");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while flags.snapshot().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the SDK never saw the whole document"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        python_reads(&kubeconfig, &namespace.name, &[], 2),
        "2 [True, True] None"
    );
}
