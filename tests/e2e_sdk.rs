//! End-to-end: a workload SDK watching the published ConfigMap through the API sees the
//! kill switch. Measures the time from the spec edit to the SDK's answer changing.

mod support {
    pub mod cluster;
    pub mod operator;
}

use std::time::{Duration, Instant};

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
                "rollgate-flags",
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
    let client = kube::Client::try_from(config).unwrap();
    let flags = Flags::watch_configmap(client, &namespace.name, "rollgate-flags")
        .await
        .expect("watch the ConfigMap");
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
