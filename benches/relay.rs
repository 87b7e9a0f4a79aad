//! `rollgate relay` under load (issue 22), the release build against a file of 50 flags:
//!
//! 1. **Bulk throughput**: `oha` (a load generator from crates.io) posts the bulk evaluation
//!    with 64 connections for `--seconds` (default 10), against the relay and against a bare
//!    hyper server (this binary, re-run as `--baseline-server`) that answers every request with
//!    a fixed body of the same size. Rounds alternate the two; the claim is the median of the
//!    per-round ratios, relay / baseline, target ≥ 0.5. The user is the same in every request
//!    (oha sends one body); the relay caches nothing, so every request evaluates every flag.
//! 2. **Idle fan-out**: `--clients` (default 1,000) SSE streams held open; the relay's RSS
//!    before and after gives the memory per connection (target ≤ 32 KiB). Then a kill is
//!    written to the file; the time until each client has the `refetchEvaluation` event gives
//!    p50 and p99 (target p99 ≤ 500 ms).
//!
//! ```sh
//! scripts/install-oha            # or: cargo install oha --locked
//! cargo bench --bench relay      # -- --seconds 10 --rounds 3 --clients 1000
//! ```
//!
//! Not part of `make test`: `cargo test` runs it without `--bench`, and it returns.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLAGS: usize = 50;
const BODY: &str = r#"{"context":{"targetingKey":"user-4242"}}"#;

struct Options {
    seconds: u64,
    rounds: usize,
    clients: usize,
}

fn value(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|i| args.get(i + 1))
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {text:?}"))
        })
        .unwrap_or(default)
}

/// A flag document of 50 flags: on/off at several percents, some with variants.
fn document() -> String {
    let flags: Vec<String> = (0..FLAGS)
        .map(|i| {
            let key = format!("flag-{i:02}");
            let percent = [100, 50, 25, 5, 0][i % 5];
            if i % 4 == 0 {
                format!(
                    r#""{key}":{{"key":"{key}","enabled":true,"percent":{percent},"variants":[{{"name":"a","weight":50}},{{"name":"b","weight":50}}]}}"#
                )
            } else {
                format!(r#""{key}":{{"key":"{key}","enabled":{},"percent":{percent}}}"#, i % 7 != 3)
            }
        })
        .collect();
    format!(r#"{{"schemaVersion":1,"flags":{{{}}}}}"#, flags.join(","))
}

/// Stopped by PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(file: &Path, child: &mut Child) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(port) = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited with {status}", file.display());
        }
        assert!(Instant::now() < deadline, "no port in {}", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.0 request; the response's body.
fn request(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_default()
}

fn oha() -> PathBuf {
    let cached = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/rollgate/oha/bin/oha");
    if cached.is_file() {
        cached
    } else {
        PathBuf::from("oha")
    }
}

/// Requests per second that oha measured against `url`.
fn load(url: &str, seconds: u64) -> f64 {
    let output = Command::new(oha())
        .args(["--no-tui", "--output-format", "json", "-c", "64", "-z"])
        .arg(format!("{seconds}s"))
        .args([
            "-m",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            BODY,
        ])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run oha ({e}); run scripts/install-oha"));
    assert!(
        output.status.success(),
        "oha failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("oha's JSON report");
    let success = report["summary"]["successRate"]
        .as_f64()
        .unwrap_or_default();
    assert!(success > 0.999, "oha saw failures: {}", report["summary"]);
    report["summary"]["requestsPerSec"]
        .as_f64()
        .expect("requestsPerSec")
}

/// The baseline: a bare hyper server answering every request with `size` fixed bytes.
fn baseline_server(size: usize, port_file: &str) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        std::fs::write(port_file, listener.local_addr().unwrap().port().to_string()).unwrap();
        let body = bytes::Bytes::from(vec![b'x'; size]);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let _ = request.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|arg| arg == "--baseline-server") {
        let size = value(&args, "--size", 0) as usize;
        baseline_server(size, &args[i + 1]);
        return;
    }
    if !args.iter().any(|arg| arg == "--bench") {
        eprintln!("relay bench: run it with `cargo bench --bench relay`");
        return;
    }
    let options = Options {
        seconds: value(&args, "--seconds", 10),
        rounds: value(&args, "--rounds", 3) as usize,
        clients: value(&args, "--clients", 1000) as usize,
    };
    let directory = tempfile::tempdir().unwrap();
    let flags_file = directory.path().join("flags.json");
    std::fs::write(&flags_file, document()).unwrap();
    let relay_port_file = directory.path().join("relay.port");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["relay", "--listen", "127.0.0.1:0", "--flags-file"])
        .arg(format!("shop={}", flags_file.display()))
        .arg("--port-file")
        .arg(&relay_port_file)
        .env("ROLLGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rollgate relay");
    let relay_port = wait_for_port(&relay_port_file, &mut relay);
    let relay = Process(relay);
    let bulk_path = "/ns/shop/ofrep/v1/evaluate/flags";
    let bulk = request(relay_port, "POST", bulk_path, BODY);
    assert!(bulk.contains("flag-49"), "the bulk answer: {bulk}");

    let baseline_port_file = directory.path().join("baseline.port");
    let mut baseline = Command::new(std::env::current_exe().unwrap())
        .arg("--baseline-server")
        .arg(&baseline_port_file)
        .args(["--size", &bulk.len().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the baseline server");
    let baseline_port = wait_for_port(&baseline_port_file, &mut baseline);
    let _baseline = Process(baseline);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    println!(
        "cpu: {cpu} ({} logical); bulk answer {} bytes for {FLAGS} flags",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bulk.len()
    );
    let (mut relay_rates, mut baseline_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let base = load(
            &format!("http://127.0.0.1:{baseline_port}/"),
            options.seconds,
        );
        let ours = load(
            &format!("http://127.0.0.1:{relay_port}{bulk_path}"),
            options.seconds,
        );
        println!("round {round}: baseline {base:.0} req/s, relay {ours:.0} req/s");
        baseline_rates.push(base);
        relay_rates.push(ours);
        ratios.push(ours / base);
    }
    let ratio = median(&mut ratios);

    // Idle SSE clients, then one change.
    let idle_before = rss_kib(relay.0.id());
    let (sender, receiver) = std::sync::mpsc::channel::<Duration>();
    let started = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut streams = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        let mut stream = TcpStream::connect(("127.0.0.1", relay_port)).expect("connect");
        write!(
            stream,
            "GET /ns/shop/ofrep/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        streams.push(stream);
    }
    // Every stream has its headers and opening comment before the memory is read.
    let mut readers = Vec::with_capacity(options.clients);
    let (opened_sender, opened) = std::sync::mpsc::channel::<()>();
    for mut stream in streams {
        let sender = sender.clone();
        let opened_sender = opened_sender.clone();
        let started = started.clone();
        readers.push(
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut seen = String::new();
                    let mut buffer = [0u8; 4096];
                    let mut announced = false;
                    loop {
                        let Ok(n) = stream.read(&mut buffer) else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
                        if !announced && seen.contains("\r\n\r\n") {
                            announced = true;
                            let _ = opened_sender.send(());
                        }
                        if seen.contains("refetchEvaluation") {
                            if let Some(at) = started.get() {
                                let _ = sender.send(at.elapsed());
                            }
                            return;
                        }
                    }
                })
                .expect("reader thread"),
        );
    }
    for _ in 0..options.clients {
        opened
            .recv_timeout(Duration::from_secs(30))
            .expect("every SSE stream opens");
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_after = rss_kib(relay.0.id());
    let per_connection = (idle_after.saturating_sub(idle_before)) as f64 / options.clients as f64;

    let changed = document().replacen(r#""enabled":true"#, r#""enabled":false"#, 1);
    let temporary = flags_file.with_extension("tmp");
    std::fs::write(&temporary, changed).unwrap();
    started.set(Instant::now()).unwrap();
    std::fs::rename(&temporary, &flags_file).unwrap();
    let mut latencies: Vec<Duration> = (0..options.clients)
        .map(|_| {
            receiver
                .recv_timeout(Duration::from_secs(30))
                .expect("every client gets refetchEvaluation")
        })
        .collect();
    latencies.sort();
    drop(relay);
    for reader in readers {
        let _ = reader.join();
    }

    let verdict = |ok: bool| if ok { "met" } else { "MISS" };
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| bulk, 50 flags, 64 connections: relay / bare hyper (median of {} rounds of {} s) | {ratio:.2} (relay {:.0} req/s, baseline {:.0} req/s, medians) | ≥ 0.50 {} |",
        options.rounds,
        options.seconds,
        median(&mut relay_rates),
        median(&mut baseline_rates),
        verdict(ratio >= 0.5)
    );
    println!(
        "| relay RSS per idle SSE connection ({} clients) | {per_connection:.1} KiB ({idle_before} → {idle_after} KiB) | ≤ 32 KiB {} |",
        options.clients,
        verdict(per_connection <= 32.0)
    );
    let p99 = percentile(&latencies, 0.99);
    println!(
        "| file change → refetchEvaluation at every client: p50 / p99 / max | {} / {} / {} ms | p99 ≤ 500 ms {} |",
        percentile(&latencies, 0.5).as_millis(),
        p99.as_millis(),
        latencies.last().map_or(0, |d| d.as_millis()),
        verdict(p99 <= Duration::from_millis(500))
    );
}
