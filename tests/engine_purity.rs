//! The rollout engine stays a pure function of (spec, status, observation, now): no client,
//! no runtime, no HTTP, no clock and no randomness, in the engine or in the modules it reads.
//! This reads the sources, so a new import of any of those fails the normal test run.

use std::path::{Path, PathBuf};

/// Text that would bring I/O, a clock or randomness into the decision.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "axum",
    "hyper",
    "kube::Api",
    "kube::Client",
    "kube::api",
    "kube::runtime",
    "kube::client",
    "std::fs",
    "std::net",
    "std::thread",
    "std::env",
    "std::process",
    "SystemTime",
    "Instant::now",
    "Timestamp::now",
    "Utc::now",
    "rand::",
    "thread_rng",
];

/// The engine and every module of the crate it depends on.
const PURE_SOURCES: &[&str] = &[
    "src/engine",
    "src/experiment",
    "src/observation.rs",
    "src/crd.rs",
    "src/duration.rs",
];

fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), found);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        found.push(path.to_path_buf());
    }
}

#[test]
fn the_engine_and_what_it_reads_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for source in PURE_SOURCES {
        rust_files(&root.join(source), &mut files);
    }
    assert!(files.len() >= 8, "found only {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may use anything; only the code above them counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            for needle in FORBIDDEN {
                if line.contains(needle) {
                    offences.push(format!("{}:{}: {needle}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(offences.is_empty(), "impure code:\n{}", offences.join("\n"));
}

#[test]
fn the_engine_imports_only_pure_crate_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/engine"), &mut files);
    let allowed = [
        "crate::crd",
        "crate::duration",
        "crate::engine",
        "crate::experiment",
        "crate::observation",
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            assert!(
                allowed.iter().any(|module| path.starts_with(module)),
                "{}: {path} is outside the pure modules {allowed:?}",
                file.display()
            );
        }
    }
}
