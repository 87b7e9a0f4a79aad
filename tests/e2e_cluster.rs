//! End-to-end tier, part 1: the CRD and examples against a real API server.
//! Runs when `ROLLGATE_E2E_KUBECONFIG` points at a cluster (`scripts/test-e2e` starts the
//! local control plane and sets it); skipped with a printed reason otherwise.

mod support {
    pub mod cluster;
}

use std::time::Duration;

use support::cluster::{
    TestNamespace, eventually, install_crd, kubeconfig, kubectl, kubectl_ok, kubectl_with_input,
    server_minor_version,
};

#[test]
fn crd_applies_and_becomes_established() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let columns = kubectl_ok(
        &kubeconfig,
        &[
            "get",
            "crd",
            "featureflags.rollgate.dev",
            "-o",
            "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}",
        ],
    );
    assert_eq!(columns, "Enabled Percent Phase Step Age");
}

#[test]
fn examples_create_feature_flags() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-examples");
    kubectl_ok(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "examples/"],
    );
    let names = kubectl_ok(
        &kubeconfig,
        &[
            "get",
            "ff",
            "-n",
            &namespace.name,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort_unstable();
    let expected = support::cluster::repo_root().join("examples");
    let flag_files = std::fs::read_dir(&expected)
        .unwrap()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
            text.contains("kind: FeatureFlag").then_some(())
        })
        .count();
    assert!(
        names.len() >= flag_files,
        "created {names:?}, expected {flag_files} flags"
    );
    assert!(names.contains(&"new-checkout"), "{names:?}");
}

#[test]
fn schema_bounds_reject_percent_101() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-bounds");
    let manifest = std::fs::read_to_string(
        support::cluster::repo_root().join("tests/fixtures/invalid/percent-101.yaml"),
    )
    .unwrap();
    let output = kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "-"],
        Some(&manifest),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "percent 101 was accepted");
    assert!(stderr.contains("spec.percent"), "{stderr}");
}

/// Cross-field rules are CEL, which Kubernetes enforces from 1.25 (beta) and 1.20 silently
/// drops. On an old server the manifest is admitted and only `rollgate validate` and the
/// operator's own `validate()` refuse it; on a new server the API refuses it too.
#[test]
fn cel_rules_are_enforced_only_by_newer_servers() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-cel");
    let manifest = std::fs::read_to_string(
        support::cluster::repo_root().join("tests/fixtures/invalid/decreasing-steps.yaml"),
    )
    .unwrap();
    let output = kubectl_with_input(
        &kubeconfig,
        &["apply", "-n", &namespace.name, "-f", "-"],
        Some(&manifest),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    if server_minor_version(&kubeconfig) >= 25 {
        assert!(
            !output.status.success(),
            "CEL did not reject decreasing steps"
        );
        assert!(
            stderr.contains("step percents must strictly increase"),
            "{stderr}"
        );
    } else {
        assert!(output.status.success(), "{stderr}");
        eprintln!("server < 1.25: CEL rule not enforced by the API server (covered by validate())");
    }
}

#[test]
fn deleting_the_namespace_removes_its_flags() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-nsdel");
    kubectl_ok(
        &kubeconfig,
        &[
            "apply",
            "-n",
            &namespace.name,
            "-f",
            "examples/static-flag.yaml",
        ],
    );
    kubectl_ok(
        &kubeconfig,
        &["delete", "namespace", &namespace.name, "--wait=false"],
    );
    let gone = eventually(Duration::from_secs(60), || {
        let output = kubectl(&kubeconfig, &["get", "namespace", &namespace.name]);
        (!output.status.success()).then_some(())
    });
    assert!(
        gone.is_some(),
        "namespace {} was not deleted",
        namespace.name
    );
}
