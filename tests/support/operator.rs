//! The operator binary as a process owned by a test: `rollgate operator` against the cluster
//! under test, its log in a file, stopped by PID when dropped.
//!
//! ```ignore
//! let operator = OperatorProcess::start(
//!     OperatorOptions::new(&kubeconfig, &namespace.name).prometheus(server.url()),
//! );
//! operator.metric("rollgate_leader");   // from its own /metrics
//! operator.kill();                      // SIGKILL, as a crash
//! ```
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the operator may take to sync its stores and answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before SIGKILL follows.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// How to start one operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub prometheus_url: Option<String>,
    /// `Some(identity)`: `--leader-election` on a Lease in `namespace` under this identity.
    pub leader_identity: Option<String>,
}

impl OperatorOptions {
    pub fn new(kubeconfig: &Path, namespace: &str) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
            prometheus_url: None,
            leader_identity: None,
        }
    }

    pub fn prometheus(mut self, url: &str) -> Self {
        self.prometheus_url = Some(url.to_string());
        self
    }

    pub fn leader_election(mut self, identity: &str) -> Self {
        self.leader_identity = Some(identity.to_string());
        self
    }
}

/// A running `rollgate operator`; SIGTERM (then SIGKILL) by PID when dropped. When the test
/// is failing, the drop prints the tail of the operator's log.
pub struct OperatorProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    name: String,
    // Removed after `Drop::drop` has stopped the process.
    _dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// Starts the operator and waits until `/readyz` answers 200 (its stores have synced).
    /// Panics, with the log, when it exits or is not ready in time.
    pub fn start(options: OperatorOptions) -> Self {
        let operator = Self::spawn(&options).expect("start rollgate operator");
        operator.wait_ready();
        operator
    }

    /// Starts the operator without waiting for readiness (a follower waits for nothing, but
    /// is ready too once its stores have synced).
    pub fn spawn(options: &OperatorOptions) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-operator-")
            .tempdir()?;
        let port = free_port()?;
        let name = options
            .leader_identity
            .clone()
            .unwrap_or_else(|| format!("operator-{port}"));
        let log = dir.path().join(format!("{name}.log"));
        let log_file = File::create(&log)?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        command
            .arg("operator")
            .arg("--kubeconfig")
            .arg(&options.kubeconfig)
            .args(["--namespace", &options.namespace])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("ROLLGATE_LOG", "info,rollgate=debug,kube=warn")
            // Nothing from the environment of the test run may change what is tested.
            .env_remove("ROLLGATE_PROMETHEUS_URL")
            .env_remove("ROLLGATE_NAMESPACES")
            .env_remove("ROLLGATE_LEADER_ELECTION")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE");
        if let Some(url) = &options.prometheus_url {
            command.args(["--prometheus-url", url]);
        }
        if let Some(identity) = &options.leader_identity {
            command
                .arg("--leader-election")
                .args(["--lease-namespace", &options.namespace])
                .args(["--identity", identity]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        Ok(Self {
            child,
            port,
            log,
            name,
            _dir: dir,
        })
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some((200, _)) = http_get(self.port, "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within {READY_TIMEOUT:?}:\n{}",
                self.name,
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The identity (with leader election) or a name made from the port.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The body of `/metrics`, or `None` when it does not answer.
    pub fn metrics(&self) -> Option<String> {
        match http_get(self.port, "/metrics")? {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// The value of the sample `series` (a name, or a name with its labels exactly as
    /// rendered, e.g. `rollgate_reconcile_total{result="ok"}`) on `/metrics`; `None` when
    /// it is absent or the endpoint does not answer.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = self.metrics()?;
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }

    /// Every sample of the metric family `name` on `/metrics`, as (series, value); empty
    /// when there is none or the endpoint does not answer.
    pub fn series(&self, name: &str) -> Vec<(String, f64)> {
        let Some(body) = self.metrics() else {
            return Vec::new();
        };
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let family = series.split('{').next()?;
                (family == name).then(|| Some((series.to_string(), value.parse().ok()?)))?
            })
            .collect()
    }

    /// SIGKILL by PID: a crash, with no chance to release the Lease or finish a write.
    pub fn kill(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM by PID, then SIGKILL if it has not exited within 10 s; always reaped.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `lines` lines of the operator's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Prints the log tail to stderr, headed by the operator's name.
    pub fn dump_log(&self, lines: usize) {
        let _ = writeln!(
            io::stderr(),
            "----- log of {} (pid {}), last {lines} lines -----\n{}\n----- end of log of {} -----",
            self.name,
            self.child.id(),
            self.log_tail(lines),
            self.name
        );
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            self.dump_log(80);
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` over HTTP/1.0 on 127.0.0.1; the status and body, or `None` without an answer.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
