//! End-to-end tier, the kubectl plugin: `kubectl-rollgate` against a real API server with
//! `rollgate operator` running as a child process. Runs when `ROLLGATE_E2E_KUBECONFIG`
//! points at a cluster (`scripts/test-e2e` starts the local control plane and sets it);
//! skipped with a printed reason otherwise.
//!
//! The flags here have no metric analysis (there is no Prometheus): time-only ramps with
//! long pauses, so that only the plugin's requests move them.

mod support {
    pub mod cluster;
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::cluster::{
    TestNamespace, eventually, install_crd, kubeconfig, kubectl, kubectl_ok, kubectl_with_input,
};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-rollgate");
const ROLLGATE: &str = env!("CARGO_BIN_EXE_rollgate");

/// `rollgate operator` as a child process on one namespace. When dropped it deletes that
/// namespace's flags while the operator still runs (their `rollgate.dev/unpublish`
/// finalizer needs it; without this the namespace would hang in Terminating), then kills
/// the operator by PID.
struct Operator {
    child: Child,
    log: tempfile::NamedTempFile,
    metrics_port: u16,
    kubeconfig: PathBuf,
    namespace: String,
}

impl Operator {
    /// Starts the operator on one namespace and waits until `/readyz` answers 200.
    fn start(kubeconfig: &Path, namespace: &str) -> Self {
        let help = Command::new(ROLLGATE)
            .args(["operator", "--help"])
            .output()
            .expect("run rollgate operator --help");
        assert!(
            help.status.success(),
            "{ROLLGATE} has no working `operator` subcommand (`rollgate operator --help` failed: {}); \
             the plugin's end-to-end test needs the operator to handle requests",
            String::from_utf8_lossy(&help.stderr)
        );
        let metrics_port = free_port();
        let log = tempfile::NamedTempFile::new().expect("operator log file");
        let child = Command::new(ROLLGATE)
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--namespace", namespace])
            .env("ROLLGATE_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("operator log"))
            .stderr(log.reopen().expect("operator log"))
            .spawn()
            .expect("start rollgate operator");
        let operator = Self {
            child,
            log,
            metrics_port,
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
        };
        let ready = eventually(Duration::from_secs(60), || operator.ready().then_some(()));
        assert!(
            ready.is_some(),
            "rollgate operator did not become ready on port {metrics_port}:\n{}",
            operator.log_tail()
        );
        operator
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut response = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && (response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            &[
                "delete",
                "featureflags",
                "--all",
                "-n",
                &self.namespace,
                "--timeout=30s",
            ],
        );
        // `Child::kill` signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl-rollgate status NAME --watch` running in the background, its output (not a
/// terminal, so one frame after another) going to a file. Killed by PID when dropped.
struct StatusWatch {
    child: Child,
    output: tempfile::NamedTempFile,
}

impl StatusWatch {
    fn start(kubeconfig: &Path, namespace: &str, name: &str) -> Self {
        let output = tempfile::NamedTempFile::new().expect("watch output file");
        let child = Command::new(PLUGIN)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["status", name, "-n", namespace, "--watch"])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(output.reopen().expect("watch output"))
            .stderr(output.reopen().expect("watch output"))
            .spawn()
            .expect("start kubectl-rollgate status --watch");
        Self { child, output }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// The frames drawn so far, each starting with the `Every 2s:` header.
    fn frames(&self) -> Vec<String> {
        self.text()
            .split("Every ")
            .filter(|frame| frame.starts_with("2s: kubectl rollgate status"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

/// Runs the plugin binary with `--kubeconfig` and the given arguments.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-rollgate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The plugin must exit with `code`; returns stdout.
#[track_caller]
fn plugin_exits(kubeconfig: &Path, args: &[&str], code: i32, operator: &Operator) -> String {
    let output = plugin(kubeconfig, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "kubectl-rollgate {}\nstdout:\n{}\nstderr:\n{}\noperator log:\n{}",
        args.join(" "),
        stdout(&output),
        stderr(&output),
        operator.log_tail()
    );
    stdout(&output)
}

/// A jsonpath of one flag, read with kubectl (not the plugin under test).
fn jsonpath(kubeconfig: &Path, namespace: &str, name: &str, path: &str) -> String {
    kubectl_ok(
        kubeconfig,
        &[
            "get",
            "featureflag",
            name,
            "-n",
            namespace,
            "-o",
            &format!("jsonpath={path}"),
        ],
    )
}

/// The whitespace-separated cells of the table row whose first cell is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"))
}

/// The value of a `Label:  value` line of `status`.
fn field(status: &str, label: &str) -> String {
    let prefix = format!("{label}:");
    status
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| panic!("no {label} in:\n{status}"))
}

const RAMP: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: checkout
spec:
  enabled: true
  owner: team-payments
  rollout:
    steps:
      - percent: 10
        pause: 1h
      - percent: 50
        pause: 1h
      - percent: 100
---
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: banner
spec:
  enabled: true
  percent: 30
"#;

const STALE: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: old-banner
spec:
  enabled: true
  owner: team-web
  staleAfter: 2s
  rollout:
    steps:
      - percent: 100
"#;

fn apply(kubeconfig: &Path, namespace: &str, manifest: &str) {
    let output = kubectl_with_input(
        kubeconfig,
        &["apply", "-n", namespace, "-f", "-"],
        Some(manifest),
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

fn wait_for_phase(kubeconfig: &Path, namespace: &str, name: &str, phase: &str, op: &Operator) {
    let seen = eventually(Duration::from_secs(60), || {
        (jsonpath(kubeconfig, namespace, name, "{.status.phase}") == phase).then_some(())
    });
    assert!(
        seen.is_some(),
        "flag {name} never reached {phase}; status: {}\noperator log:\n{}",
        jsonpath(kubeconfig, namespace, name, "{.status}"),
        op.log_tail()
    );
}

#[test]
fn plugin_lists_shows_and_steers_flags_through_the_operator() {
    let Some(kc) = kubeconfig() else {
        return;
    };
    install_crd(&kc);
    let namespace = TestNamespace::create(&kc, "e2e-plugin");
    let ns = namespace.name.as_str();
    apply(&kc, ns, RAMP);
    let operator = Operator::start(&kc, ns);
    wait_for_phase(&kc, ns, "checkout", "Progressing", &operator);
    wait_for_phase(&kc, ns, "banner", "Static", &operator);
    let op = &operator;

    // list: phase, percent, step, last analysis, age.
    let list = plugin_exits(&kc, &["list", "-n", ns], 0, op);
    assert!(
        list.starts_with("NAME   ") && list.contains("LAST ANALYSIS"),
        "{list}"
    );
    // The step is `0 of 0–2`: three cells once split on whitespace.
    assert_eq!(
        row(&list, "checkout")[1..7],
        ["Progressing", "10%", "0", "of", "0–2", "-"]
    );
    assert_eq!(row(&list, "banner")[1..4], ["Static", "30%", "-"]);

    // status: progress bar, time left in the pause, conditions, events.
    let status = plugin_exits(&kc, &["status", "checkout", "-n", ns], 0, op);
    assert_eq!(field(&status, "Phase"), "Progressing");
    assert_eq!(field(&status, "Exposure"), "[■□□] 10% (step 0 of 0–2)");
    assert!(
        field(&status, "Step").ends_with("of 1h pause left"),
        "{status}"
    );
    assert!(field(&status, "Analysis").starts_with("none: this ramp advances on time alone"));
    for expected in ["Conditions:", "Ready         True", "RolloutStarted"] {
        assert!(
            status.contains(expected),
            "{expected:?} missing in:\n{status}"
        );
    }

    // status --watch redraws as the flag changes: a pause shows up in a later frame.
    let watch = StatusWatch::start(&kc, ns, "checkout");
    let first = eventually(Duration::from_secs(30), || watch.frames().first().cloned());
    let first = first.unwrap_or_else(|| panic!("no frame from --watch:\n{}", watch.text()));
    assert!(
        first.contains(&format!("kubectl rollgate status checkout -n {ns}")),
        "{first}"
    );
    assert!(first.contains("Progressing"), "{first}");

    // pause, then a second pause that the engine refuses.
    let paused = plugin_exits(&kc, &["pause", "checkout", "-n", ns], 0, op);
    let redrawn = eventually(Duration::from_secs(30), || {
        watch
            .frames()
            .into_iter()
            .skip(1)
            .find(|frame| frame.contains("Paused"))
    });
    assert!(
        redrawn.is_some(),
        "--watch never showed the pause:\n{}",
        watch.text()
    );
    drop(watch);
    assert!(
        paused.starts_with(&format!(
            "pause applied to flag 'checkout' in namespace '{ns}'"
        )),
        "{paused}"
    );
    assert!(
        paused.contains("now Paused at 10% (step 0 of 0–2)"),
        "{paused}"
    );
    assert_eq!(jsonpath(&kc, ns, "checkout", "{.status.phase}"), "Paused");
    assert_eq!(
        jsonpath(&kc, ns, "checkout", "{.status.lastRequest.outcome}"),
        "Applied"
    );
    let again = plugin(&kc, &["pause", "checkout", "-n", ns]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert_eq!(
        stderr(&again),
        format!(
            "error: pause was refused for flag 'checkout' in namespace '{ns}': the ramp is already paused\n"
        )
    );

    let resumed = plugin_exits(&kc, &["resume", "checkout", "-n", ns], 0, op);
    assert!(
        resumed.contains("now Progressing at 10% (step 0 of 0–2)"),
        "{resumed}"
    );

    let promoted = plugin_exits(&kc, &["promote", "checkout", "-n", ns], 0, op);
    assert!(
        promoted.contains("now Progressing at 50% (step 1 of 0–2)"),
        "{promoted}"
    );
    assert_eq!(jsonpath(&kc, ns, "checkout", "{.status.percent}"), "50");

    let killed = plugin_exits(&kc, &["kill", "checkout", "-n", ns], 0, op);
    assert!(killed.contains("now Killed at 0%"), "{killed}");
    let unkilled = plugin_exits(&kc, &["unkill", "checkout", "-n", ns], 0, op);
    assert!(
        unkilled.contains("now Progressing at 10% (step 0 of 0–2)"),
        "{unkilled}"
    );

    // retry only applies to a rolled-back ramp.
    let early_retry = plugin(&kc, &["retry", "checkout", "-n", ns]);
    assert_eq!(early_retry.status.code(), Some(1));
    assert!(
        stderr(&early_retry).contains("only a rolled-back flag can be retried"),
        "{}",
        stderr(&early_retry)
    );
    let aborted = plugin_exits(&kc, &["abort", "checkout", "-n", ns], 0, op);
    assert!(aborted.contains("now RolledBack at 0%"), "{aborted}");
    let status = plugin_exits(&kc, &["status", "checkout", "-n", ns], 0, op);
    assert!(
        field(&status, "Rollback").starts_with("ManualAbort"),
        "{status}"
    );
    let retried = plugin_exits(&kc, &["retry", "checkout", "-n", ns], 0, op);
    assert!(
        retried.contains("now Progressing at 10% (step 0 of 0–2)"),
        "{retried}"
    );

    let full = plugin_exits(&kc, &["promote", "--full", "checkout", "-n", ns], 0, op);
    assert!(full.starts_with("promote-full applied"), "{full}");
    assert!(
        full.contains("now Complete at 100% (step 2 of 0–2)"),
        "{full}"
    );

    // Every request left its verb in status.lastRequest and an event on the flag.
    assert_eq!(
        jsonpath(&kc, ns, "checkout", "{.status.lastRequest.verb}"),
        "promote-full"
    );
    let status = plugin_exits(&kc, &["status", "checkout", "-n", ns, "-o", "wide"], 0, op);
    for reason in [
        "Paused",
        "Resumed",
        "Promoted",
        "Killed",
        "Unkilled",
        "RolledBack",
        "RetryStarted",
    ] {
        assert!(
            status.contains(reason),
            "event {reason} missing in:\n{status}"
        );
    }

    // -o json and -o yaml print the objects as the API server has them.
    let json = plugin_exits(&kc, &["status", "checkout", "-n", ns, "-o", "json"], 0, op);
    let object: serde_json::Value = serde_json::from_str(&json).expect("status -o json");
    assert_eq!(object["kind"], "FeatureFlag");
    assert_eq!(object["status"]["phase"], "Complete");
    assert_eq!(object["spec"]["rollout"]["steps"][0]["percent"], 10);
    assert!(object["metadata"].get("managedFields").is_none());
    let json = plugin_exits(&kc, &["list", "-n", ns, "-o", "json"], 0, op);
    let list: serde_json::Value = serde_json::from_str(&json).expect("list -o json");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let yaml = plugin_exits(&kc, &["list", "-n", ns, "-o", "yaml"], 0, op);
    assert!(
        yaml.contains("kind: List\n") && yaml.contains("name: checkout\n"),
        "{yaml}"
    );

    // -A adds the NAMESPACE column; -o wide the key, owner, failures and last request.
    let all = plugin_exits(&kc, &["list", "-A", "-o", "wide"], 0, op);
    let cells = row(&all, ns);
    assert_eq!(cells[1..5], ["banner", "Static", "30%", "-"]);
    assert!(all.contains("promote-full Applied"), "{all}");

    // Not found, in the words of the issue, with exit code 2.
    for args in [
        &["status", "nope", "-n", ns][..],
        &["promote", "nope", "-n", ns],
    ] {
        let missing = plugin(&kc, args);
        assert_eq!(missing.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&missing),
            format!("error: flag 'nope' not found in namespace '{ns}'\n")
        );
    }

    // stale: complete at 100% for longer than staleAfter.
    apply(&kc, ns, STALE);
    let listed = eventually(Duration::from_secs(60), || {
        let output = plugin(&kc, &["stale", "-n", ns]);
        stdout(&output)
            .contains("old-banner")
            .then(|| stdout(&output))
    });
    let stale = listed.unwrap_or_else(|| panic!("old-banner never stale:\n{}", op.log_tail()));
    let cells = row(&stale, "old-banner");
    assert_eq!(cells[1..3], ["old-banner", "team-web"]);
    assert_eq!(cells.last().map(String::as_str), Some("2s"));
    assert!(!stale.contains("checkout"), "{stale}");
}

#[test]
fn plugin_follows_the_kubeconfig_context_and_explains_an_absent_operator() {
    let Some(kc) = kubeconfig() else {
        return;
    };
    install_crd(&kc);
    // No operator watches this namespace.
    let namespace = TestNamespace::create(&kc, "e2e-plugin-idle");
    let ns = namespace.name.as_str();
    apply(&kc, ns, RAMP);

    // A copy of the kubeconfig whose context defaults to the test namespace.
    let dir = tempfile::tempdir().expect("temp dir");
    let context_kc: PathBuf = dir.path().join("kubeconfig");
    std::fs::copy(&kc, &context_kc).expect("copy kubeconfig");
    kubectl_ok(
        &context_kc,
        &[
            "config",
            "set-context",
            "--current",
            &format!("--namespace={ns}"),
        ],
    );
    let output = plugin(&context_kc, &["list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(row(&stdout(&output), "checkout")[1], "Pending");

    let missing = plugin(&kc, &["--context", "no-such-context", "list"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        stderr(&missing),
        "error: context 'no-such-context' not found in the kubeconfig\n"
    );

    let started = std::time::Instant::now();
    let output = plugin(&context_kc, &["pause", "checkout", "--timeout", "2s"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with(
            "error: no operator handled the request within 2s; is rollgate operator running?\n"
        ),
        "{}",
        stderr(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The request stays on the flag for an operator that starts later.
    let annotation = kubectl_ok(
        &kc,
        &[
            "get",
            "featureflag",
            "checkout",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.annotations.rollgate\\.dev/request}",
        ],
    );
    assert!(annotation.starts_with("pause/"), "{annotation}");

    // kubectl finds the plugin on the PATH: `kubectl rollgate …`.
    let bin_dir = Path::new(PLUGIN).parent().expect("plugin directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let output = Command::new("kubectl")
        .args(["rollgate", "--kubeconfig"])
        .arg(&kc)
        .args(["status", "checkout", "-n", ns])
        .env("PATH", path)
        .output()
        .expect("kubectl rollgate");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Name:"), "{}", stdout(&output));
}
