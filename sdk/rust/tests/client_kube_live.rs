//! A probe of `Flags::watch_configmap` against a live API server, for the numbers and the Role
//! in `docs/sdk.md`. Ignored by default; the end-to-end tier owns the full live tests.
//!
//! ```sh
//! scripts/local-cluster up          # Kubernetes 1.20 on 127.0.0.1
//! ROLLGATE_E2E_KUBECONFIG=$HOME/.cache/rollgate/cluster/kubeconfig \
//!   cargo test -p rollgate-sdk --test client_kube_live -- --ignored --nocapture
//! ```
//!
//! It creates a namespace with the ConfigMap, a service account bound to exactly the Role of
//! `docs/sdk.md` (`get` and `watch` on that one name, no `list`), watches the ConfigMap *as
//! that service account*, flips a flag 20 times through the admin client and reports
//! write-to-visible latency. It also checks that the Role is tight (no `list` at all, not even
//! with the name selector) and that it is enough (the name-selected watch is allowed), then
//! deletes and re-creates the ConfigMap. `scripts/test-e2e` runs it.
#![cfg(feature = "kube")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{
    DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchParams,
};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rollgate_sdk::{FLAGS_KEY, Flags};

const NAME: &str = "rollgate-flags";
const ACCOUNT: &str = "shop-web";

fn document(enabled: bool) -> String {
    format!(
        r#"{{"schemaVersion":1,"flags":{{"kill-switch":{{"key":"kill-switch","enabled":{enabled},"percent":100}}}}}}"#
    )
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn configmap(namespace: &str, enabled: bool) -> ConfigMap {
    ConfigMap {
        metadata: meta(NAME, Some(namespace)),
        data: Some(BTreeMap::from([(FLAGS_KEY.to_owned(), document(enabled))])),
        ..ConfigMap::default()
    }
}

/// The Role of `docs/sdk.md`.
fn role(namespace: &str) -> Role {
    Role {
        metadata: meta("rollgate-flags-reader", Some(namespace)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![NAME.into()]),
            verbs: vec!["get".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
    }
}

fn binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta("shop-web-reads-rollgate-flags", Some(namespace)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "rollgate-flags-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: ACCOUNT.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    }
}

async fn admin_config() -> Option<Config> {
    let Some(path) = std::env::var_os("ROLLGATE_E2E_KUBECONFIG") else {
        eprintln!("skipping: set ROLLGATE_E2E_KUBECONFIG to a cluster's kubeconfig");
        return None;
    };
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    Some(
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig"),
    )
}

/// Same cluster, authenticated as the service account through a TokenRequest.
async fn service_account_client(admin: &Client, base: &Config, namespace: &str) -> Client {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(Vec::new()),
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token: TokenRequest = accounts
        .create_subresource("token", ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("token request");
    let token = token
        .status
        .and_then(|status| status.token)
        .expect("token in the TokenRequest status");
    let mut config = base.clone();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("service account client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a live cluster: ROLLGATE_E2E_KUBECONFIG"]
async fn watch_configmap_with_the_minimal_role() {
    let Some(base) = admin_config().await else {
        return;
    };
    let admin = Client::try_from(base.clone()).expect("admin client");
    let namespace = format!("rollgate-sdk-live-{}", std::process::id());
    let post = PostParams::default();
    Api::<Namespace>::all(admin.clone())
        .create(
            &post,
            &Namespace {
                metadata: meta(&namespace, None),
                ..Namespace::default()
            },
        )
        .await
        .expect("namespace");
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), &namespace);
    configmaps
        .create(&post, &configmap(&namespace, true))
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
        .create(
            &post,
            &ServiceAccount {
                metadata: meta(ACCOUNT, Some(&namespace)),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&post, &role(&namespace))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
        .create(&post, &binding(&namespace))
        .await
        .unwrap();

    let workload = service_account_client(&admin, &base, &namespace).await;
    let as_workload = Api::<ConfigMap>::namespaced(workload.clone(), &namespace);
    // The Role is tight: no list, with or without the name selector.
    let by_name = format!("metadata.name={NAME}");
    for params in [
        ListParams::default(),
        ListParams::default().fields(&by_name),
    ] {
        let listed = as_workload.list(&params).await;
        assert!(
            matches!(&listed, Err(kube::Error::Api(status)) if status.is_forbidden()),
            "list {:?}: {listed:?}",
            params.field_selector
        );
    }
    // And enough: the name-selected watch the SDK sends is allowed.
    let watched = as_workload
        .watch(&WatchParams::default().fields(&by_name).timeout(1), "0")
        .await;
    assert!(
        watched.is_ok(),
        "watch with get+watch only: {:?}",
        watched.err()
    );

    let flags = Flags::watch_configmap(workload, &namespace, NAME)
        .await
        .expect("watch as the service account");
    assert!(flags.is_enabled("kill-switch", None));

    let mut latencies = Vec::new();
    for round in 0..20 {
        let enabled = round % 2 == 1;
        let patch = Patch::Merge(serde_json::json!({"data": {FLAGS_KEY: document(enabled)}}));
        let start = Instant::now();
        configmaps
            .patch(NAME, &PatchParams::default(), &patch)
            .await
            .unwrap();
        while flags.is_enabled("kill-switch", None) != enabled {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "change not seen in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    eprintln!(
        "API watch: patch → visible over {} patches: median {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(flags.reload_errors(), 0);
    assert_eq!(flags.generation(), 21);

    // Deleting the ConfigMap keeps the last good flags and counts one error.
    configmaps
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    let start = Instant::now();
    while flags.reload_errors() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "deletion not seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(flags.last_reload_error().unwrap().category(), "not-found");
    assert!(flags.is_enabled("kill-switch", None));

    // Re-created (killed): the same watch delivers it as ADDED.
    configmaps
        .create(&post, &configmap(&namespace, false))
        .await
        .unwrap();
    let start = Instant::now();
    while flags.is_enabled("kill-switch", None) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "re-creation not seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(flags.last_reload_error().is_none());
    assert_eq!(flags.reload_errors(), 1);

    Api::<Namespace>::all(admin)
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}
