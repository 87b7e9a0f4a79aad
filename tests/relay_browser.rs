//! A browser client of `rollgate relay`: OpenFeature's web SDK with the official
//! `@openfeature/ofrep-web-provider` (npm), loaded by headless Chromium (Debian) from a test
//! server on another origin, so CORS decides whether it works at all.
//!
//! The page (`tests/ofrep-clients/browser.html`) reports to the test server what it sees:
//! - its first answers, which must equal the Rust SDK's;
//! - the answers after the test turns a flag off in the relay's file, which arrive through the
//!   relay's SSE stream (`refetchEvaluation`) and a new bulk evaluation; the time is printed;
//! - meanwhile the provider's 1 s polls revalidate with `If-None-Match` and get `304`s, read
//!   from the relay's `/metrics`.
//!
//! Needs `chromium` and `tests/ofrep-clients/node_modules` (`scripts/install-ofrep-clients`);
//! skipped with the reason without them, unless `ROLLGATE_REQUIRE_OFREP_CLIENTS=1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rollgate_sdk::Flags;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const DOCUMENT: &str = r#"{"schemaVersion":1,"flags":{
  "checkout":{"key":"checkout","enabled":true,"percent":100,"phase":"Complete"},
  "button":{"key":"button","enabled":true,"percent":100,
            "variants":[{"name":"blue","weight":50},{"name":"green","weight":50}]}}}"#;
const USER: &str = "browser-user-1";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ofrep-clients")
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        })
}

/// Stopped by PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone)]
struct Page {
    results: mpsc::UnboundedSender<Value>,
}

async fn page() -> Response {
    match tokio::fs::read(clients_dir().join("browser.html")).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// The ES modules of `node_modules`, and nothing outside it.
async fn module(uri: Uri) -> Response {
    let relative = uri.path().trim_start_matches('/');
    if relative
        .split('/')
        .any(|part| part == ".." || part.is_empty())
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    match tokio::fs::read(clients_dir().join(relative)).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/javascript")], body).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn result(State(page): State<Page>, body: Bytes) -> StatusCode {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => {
            let _ = page.results.send(value);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn write_document(path: &Path, document: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, document).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn start_relay(path: &Path, directory: &Path, origin: &str) -> (Process, u16) {
    let port_file = directory.join("relay.port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["relay", "--listen", "127.0.0.1:0", "--flags-file"])
        .arg(format!("shop={}", path.display()))
        .args(["--cors-origin", origin, "--port-file"])
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rollgate relay");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return (Process(child), port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("rollgate relay exited with {status}");
        }
        assert!(Instant::now() < deadline, "no relay port file within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next report of the page, or a panic naming what was awaited.
async fn next(results: &mut mpsc::UnboundedReceiver<Value>, what: &str) -> Value {
    match tokio::time::timeout(Duration::from_secs(60), results.recv()).await {
        Ok(Some(value)) if value["phase"] == "error" => panic!("the page failed: {value}"),
        Ok(Some(value)) => value,
        _ => panic!("no report from the page within 60 s while waiting for {what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_provider_reads_the_relay_across_origins_and_follows_a_kill() {
    let required = std::env::var("ROLLGATE_REQUIRE_OFREP_CLIENTS").is_ok_and(|v| v == "1");
    let node_modules = clients_dir().join("node_modules/@openfeature/ofrep-web-provider");
    let Some(chromium) = chromium().filter(|_| node_modules.exists()) else {
        let message = "chromium or tests/ofrep-clients/node_modules is missing (run scripts/install-ofrep-clients)";
        assert!(!required, "{message}");
        eprintln!("skipped: {message}");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().unwrap();

    // The page's own origin.
    let (sender, mut results) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/", get(page))
        .route("/result", post(result))
        .fallback(get(module))
        .with_state(Page { results: sender });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let origin = format!("http://{address}");

    let flags_file = directory.path().join("flags.json");
    write_document(&flags_file, DOCUMENT);
    let (_relay, relay_port) = start_relay(&flags_file, directory.path(), &origin);
    let relay = format!("http://127.0.0.1:{relay_port}/ns/shop");

    let url = format!("{origin}/?relay={relay}&users={USER}");
    let _browser = Process(
        Command::new(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--remote-debugging-port=0",
            ])
            .arg(format!(
                "--user-data-dir={}",
                directory.path().join("chromium").display()
            ))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );

    let flags = Flags::from_json(DOCUMENT.as_bytes()).unwrap();
    let initial = next(&mut results, "the first answers").await;
    assert_eq!(initial["phase"], "initial", "{initial}");
    let want = json!({
        "checkout": flags.is_enabled("checkout", Some(USER)),
        "button": flags.variant("button", Some(USER)).unwrap_or_default(),
    });
    assert_eq!(
        initial["values"], want,
        "the browser's answers differ from the SDK's"
    );
    assert_eq!(
        initial["polling"], want,
        "the polling provider's answers differ"
    );

    // Let the polls revalidate, then turn `checkout` off.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let killed = DOCUMENT.replacen(
        r#""checkout":{"key":"checkout","enabled":true"#,
        r#""checkout":{"key":"checkout","enabled":false"#,
        1,
    );
    let changed_at = Instant::now();
    write_document(&flags_file, &killed);
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 2 {
        let report = next(&mut results, "the answers after the kill").await;
        if report["phase"] == "changed" && report["values"]["checkout"] == false {
            assert_eq!(report["values"]["button"], want["button"], "{report}");
            let mode = report["mode"].as_str().unwrap_or_default().to_string();
            seen.entry(mode).or_insert_with(|| changed_at.elapsed());
        }
    }

    let metrics = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{relay_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let revalidated: f64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("rollgate_relay_requests_total{") && line.contains("code=\"304\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        revalidated >= 1.0,
        "no 304 from the provider's polls:\n{metrics}"
    );
    let sse_events: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("rollgate_relay_sse_events_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "web provider in headless Chromium: answers equal the SDK's; {revalidated} bulk polls answered 304; \
         {sse_events} SSE events sent; from the kill in the relay's file to the page's changed answer: \
         {} ms through SSE, {} ms by polling every 500 ms",
        seen["sse"].as_millis(),
        seen["polling"].as_millis()
    );
}
