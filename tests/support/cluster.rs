//! Helpers for the end-to-end tier: a cluster from `ROLLGATE_E2E_KUBECONFIG` (the local
//! control plane of `scripts/local-cluster`, or kind/k3d), `kubectl`, and a namespace per
//! test that is deleted when the test ends.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const KUBECONFIG_ENV: &str = "ROLLGATE_E2E_KUBECONFIG";

/// The kubeconfig of the cluster under test, or `None` (with the reason printed) when the
/// tier is not configured, as in the plain `cargo test` pass. The tier cannot pass by
/// skipping in CI: `scripts/test-e2e` (called by `make test`) always starts a cluster and
/// sets the variable.
pub fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            eprintln!(
                "skipping end-to-end test: set {KUBECONFIG_ENV} to a kubeconfig (scripts/test-e2e does)"
            );
            None
        }
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs kubectl against the cluster under test.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_with_input(kubeconfig, args, None)
}

pub fn kubectl_with_input(kubeconfig: &Path, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(repo_root())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be installed for the end-to-end tier");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("wait for kubectl")
}

/// `kubectl apply --validate=false -n NAMESPACE -f -` of `manifests`, which must succeed
/// (`--validate=false`: see [`install_crd`]).
pub fn apply_manifests(kubeconfig: &Path, namespace: &str, manifests: &str) {
    let applied = kubectl_with_input(
        kubeconfig,
        &["apply", "--validate=false", "-n", namespace, "-f", "-"],
        Some(manifests),
    );
    assert!(
        applied.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// kubectl that must succeed; returns stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args);
    assert!(
        output.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Applies the committed CRDs and waits until they are Established. `--validate=false`: kubectl's
/// client-side validation against a 1.20 server refuses `x-kubernetes-validations`, and
/// 1.20's server-side apply refuses it as undeclared; a plain apply stores it and 1.20
/// drops the CEL rules while keeping every other bound.
/// Once per test process: two tests of one binary applying it at once on a fresh cluster
/// race to create it, and the loser fails with `AlreadyExists`.
pub fn install_crd(kubeconfig: &Path) {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *installed {
        return;
    }
    kubectl_ok(
        kubeconfig,
        &[
            "apply",
            "--validate=false",
            "-f",
            "crds/featureflag.yaml",
            "-f",
            "crds/segment.yaml",
        ],
    );
    kubectl_ok(
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd/featureflags.rollgate.dev",
            "crd/segments.rollgate.dev",
            "--timeout=60s",
        ],
    );
    *installed = true;
}

/// A namespace that exists for one test and is deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub fn create(kubeconfig: &Path, prefix: &str) -> Self {
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 1_000_000_000)
            .unwrap_or_default();
        let name = format!("{prefix}-{suffix}-{}", std::process::id() % 10_000);
        kubectl_ok(kubeconfig, &["create", "namespace", &name]);
        // The namespace controller creates the default ServiceAccount asynchronously.
        Self {
            name,
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            &["delete", "namespace", &self.name, "--wait=false"],
        );
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's minor version, e.g. 20 for v1.20.2.
pub fn server_minor_version(kubeconfig: &Path) -> u32 {
    let json = kubectl_ok(kubeconfig, &["version", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("kubectl version json");
    value["serverVersion"]["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .expect("server minor version")
}

/// A runtime for a test's API calls and a kube client for the cluster under test.
pub fn runtime_and_client(kubeconfig: &Path) -> (tokio::runtime::Runtime, kube::Client) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = runtime.block_on(async {
        let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    });
    (runtime, client)
}

/// Polls `check` every `poll` until it gives a value; returns it and when it was seen. On
/// timeout, panics naming `what`, with `describe()`: the state worth seeing.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl FnOnce() -> String,
) -> (T, Instant) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return (value, Instant::now());
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                describe()
            );
        }
        std::thread::sleep(poll);
    }
}
