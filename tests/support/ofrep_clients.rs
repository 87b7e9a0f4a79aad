//! The official OpenFeature OFREP providers as processes: the harness in `tests/ofrep-clients/`
//! (JavaScript, Python and Rust), installed by `scripts/install-ofrep-clients`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Whether a missing client fails the test (`ROLLGATE_REQUIRE_OFREP_CLIENTS=1`, set by
/// `scripts/test-all`) instead of skipping it.
pub fn required() -> bool {
    std::env::var("ROLLGATE_REQUIRE_OFREP_CLIENTS").is_ok_and(|v| v == "1")
}

/// Every client, or why some cannot run here.
pub fn all_or_missing() -> Result<Vec<Client>, String> {
    let clients = Client::all();
    let missing: Vec<String> = clients
        .iter()
        .filter_map(|c| c.missing().map(|why| format!("{}: {why}", c.name)))
        .collect();
    if missing.is_empty() {
        Ok(clients)
    } else {
        Err(format!(
            "OFREP clients missing (run scripts/install-ofrep-clients): {}",
            missing.join("; ")
        ))
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn cache() -> PathBuf {
    std::env::var_os("ROLLGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rollgate")
        })
}

/// One client: a name and the command that runs the harness with `BASE_URL CASES.json`.
pub struct Client {
    pub name: &'static str,
    program: PathBuf,
    leading_args: Vec<PathBuf>,
}

impl Client {
    pub fn all() -> Vec<Client> {
        let clients = repo().join("tests/ofrep-clients");
        vec![
            Client {
                name: "javascript",
                program: PathBuf::from("node"),
                leading_args: vec![clients.join("evaluate.mjs")],
            },
            Client {
                name: "python",
                program: cache().join("venv/bin/python"),
                leading_args: vec![clients.join("evaluate.py")],
            },
            Client {
                name: "rust",
                program: cache().join("ofrep-rust-target/release/rollgate-ofrep-rust-client"),
                leading_args: vec![],
            },
        ]
    }

    /// Why this client cannot run here, if it cannot.
    pub fn missing(&self) -> Option<String> {
        let runs = Command::new(&self.program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let node_modules =
            repo().join("tests/ofrep-clients/node_modules/@openfeature/ofrep-provider");
        match self.name {
            "javascript" if !runs || !node_modules.exists() => {
                Some("node or tests/ofrep-clients/node_modules is missing".into())
            }
            "python"
                if !Command::new(&self.program)
                    .args(["-c", "import openfeature.contrib.provider.ofrep"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()) =>
            {
                Some(format!(
                    "{} cannot import openfeature-provider-ofrep",
                    self.program.display()
                ))
            }
            "rust" if !self.program.exists() => {
                Some(format!("{} is not built", self.program.display()))
            }
            _ => None,
        }
    }

    /// Runs the harness; one JSON answer per case, in order.
    pub fn evaluate(&self, base: &str, cases: &Path) -> Vec<Value> {
        let output = Command::new(&self.program)
            .args(&self.leading_args)
            .arg(base)
            .arg(cases)
            .output()
            .unwrap_or_else(|e| {
                panic!("{}: cannot run {}: {e}", self.name, self.program.display())
            });
        assert!(
            output.status.success(),
            "{} client failed: {}\n{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", self.name))
            })
            .collect()
    }
}
