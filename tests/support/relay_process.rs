//! `rollgate relay` as a child process for the end-to-end tests: following a namespace's
//! ConfigMap on the cluster under test, on a free port of 127.0.0.1, logging into a file of
//! the test's directory; stopped by PID when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::cluster::eventually;

pub struct RelayProcess {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl RelayProcess {
    /// Starts the relay with `--namespace namespace` and waits for its port.
    pub fn follow(kubeconfig: &Path, namespace: &str, directory: &Path) -> Self {
        let port_file = directory.join("relay.port");
        let log_path = directory.join("relay.log");
        let log = std::fs::File::create(&log_path).expect("create the relay's log");
        let child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(["relay", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--namespace", namespace, "--port-file"])
            .arg(&port_file)
            .stdout(log.try_clone().expect("the relay's log"))
            .stderr(log)
            .spawn()
            .expect("start rollgate relay");
        let mut relay = Self {
            child,
            port: 0,
            log: log_path,
        };
        relay.port = eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("the relay never wrote its port\n{}", relay.log()));
        relay
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
