//! `rollgate relay` under load (issue 22), the release build against a file of 50 flags:
//!
//! 1. **Bulk throughput**: `oha` (a load generator from crates.io) posts the bulk evaluation
//!    with 64 connections for `--seconds` (default 10), against the relay and against a bare
//!    hyper server (this binary, re-run as `--baseline-server`) that answers every request with
//!    a fixed body of the same size. Rounds alternate the two; the claim is the median of the
//!    per-round ratios, relay / baseline, target ≥ 0.5. The bodies are the lines of a file
//!    of 10,000 users (`oha -Z`), so requests are for many users, as in production; the relay
//!    caches no answer, so every request evaluates every flag.
//! 2. **Idle fan-out**: `--clients` (default 1,000) SSE streams held open; the relay's RSS
//!    before and after gives the memory per connection (target ≤ 32 KiB). Then a kill is
//!    written to the file; the time until each client has the `refetchEvaluation` event gives
//!    p50 and p99 (target p99 ≤ 500 ms).
//!
//! The cores: on a host with at least two, oha runs on CPU 0 and the server under test (relay
//! or baseline alike) on CPU 1 (`taskset`), so each server has one core of its own and the
//! load generator the other; `--shared` lets all three share every core instead. Each round
//! also reads the server's CPU time (`/proc/PID/stat`), giving its CPU microseconds per
//! request: the cost of a request without the load generator's share in it.
//!
//! ```sh
//! scripts/install-oha            # or: cargo install oha --locked
//! cargo bench --bench relay      # -- --seconds 10 --rounds 3 --clients 1000 [--shared]
//! ```
//!
//! Not part of `make test`: `cargo test` runs it without `--bench`, and it returns.

#[path = "../tests/support/http1.rs"]
mod http1;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLAGS: usize = 50;
const BODY: &str = r#"{"context":{"targetingKey":"user-4242"}}"#;
/// Distinct users in the load's request bodies.
const USERS: usize = 10_000;

struct Options {
    seconds: u64,
    rounds: usize,
    clients: usize,
    /// oha on CPU 0 and the server on CPU 1; `None` with `--shared` or on one core.
    pinning: Option<Pinning>,
}

#[derive(Clone, Copy)]
struct Pinning {
    load: &'static str,
    server: &'static str,
}

/// `program` run under `taskset -c cpus` when pinned (the PID stays the program's: taskset
/// execs it).
fn command(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus]).arg(program);
            command
        }
        None => Command::new(program),
    }
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_default()
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks =
        |index: usize| -> u64 { fields.get(index).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .expect("getconf CLK_TCK")
    })
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

/// What one oha run measured against one server.
struct Run {
    per_second: f64,
    /// The server's CPU microseconds per request over the run.
    cpu_us: f64,
}

/// Loads `url` (served by process `server`) with oha for `seconds`.
fn load(url: &str, bodies: &Path, seconds: u64, server: u32, pinning: Option<Pinning>) -> Run {
    let cpu_before = cpu_time(server);
    let output = command(oha(), pinning.map(|pin| pin.load))
        .args(["--no-tui", "--output-format", "json", "-c", "64", "-z"])
        .arg(format!("{seconds}s"))
        .args(["-m", "POST", "-H", "Content-Type: application/json", "-Z"])
        .arg(bodies)
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
    let cpu = cpu_time(server).saturating_sub(cpu_before);
    let per_second = report["summary"]["requestsPerSec"]
        .as_f64()
        .expect("requestsPerSec");
    let requests = per_second * report["summary"]["total"].as_f64().expect("total");
    Run {
        per_second,
        cpu_us: cpu.as_secs_f64() * 1e6 / requests.max(1.0),
    }
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = Options {
        seconds: value(&args, "--seconds", 10),
        rounds: value(&args, "--rounds", 3) as usize,
        clients: value(&args, "--clients", 1000) as usize,
        pinning: (cpus >= 2 && !args.iter().any(|arg| arg == "--shared")).then_some(Pinning {
            load: "0",
            server: "1",
        }),
    };
    let server_cpus = options.pinning.map(|pin| pin.server);
    let directory = tempfile::tempdir().unwrap();
    let flags_file = directory.path().join("flags.json");
    std::fs::write(&flags_file, document()).unwrap();
    let relay_port_file = directory.path().join("relay.port");
    let mut relay = command(env!("CARGO_BIN_EXE_rollgate"), server_cpus)
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
    let (_, bulk) = http1::request(relay_port, "POST", bulk_path, BODY);
    assert!(bulk.contains("flag-49"), "the bulk answer: {bulk}");

    let baseline_port_file = directory.path().join("baseline.port");
    let mut baseline = command(std::env::current_exe().unwrap(), server_cpus)
        .arg("--baseline-server")
        .arg(&baseline_port_file)
        .args(["--size", &bulk.len().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the baseline server");
    let baseline_port = wait_for_port(&baseline_port_file, &mut baseline);
    let baseline = Process(baseline);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let bodies = directory.path().join("bodies.txt");
    let users: Vec<String> = (0..USERS)
        .map(|i| format!(r#"{{"context":{{"targetingKey":"user-{i}"}}}}"#))
        .collect();
    std::fs::write(&bodies, users.join("\n")).unwrap();
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cpu: {cpu} ({cpus} logical); bulk answer {} bytes for {FLAGS} flags; {}; load average at start: {}",
        bulk.len(),
        match options.pinning {
            Some(pin) => format!("oha on CPU {}, server on CPU {}", pin.load, pin.server),
            None => "oha and server share every CPU".to_string(),
        },
        load_average.trim()
    );
    let (mut relay_rates, mut baseline_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut relay_cpu, mut baseline_cpu) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let base = load(
            &format!("http://127.0.0.1:{baseline_port}/"),
            &bodies,
            options.seconds,
            baseline.0.id(),
            options.pinning,
        );
        let ours = load(
            &format!("http://127.0.0.1:{relay_port}{bulk_path}"),
            &bodies,
            options.seconds,
            relay.0.id(),
            options.pinning,
        );
        println!(
            "round {round}: baseline {:.0} req/s ({:.1} µs CPU each), relay {:.0} req/s ({:.1} µs CPU each)",
            base.per_second, base.cpu_us, ours.per_second, ours.cpu_us
        );
        baseline_rates.push(base.per_second);
        relay_rates.push(ours.per_second);
        baseline_cpu.push(base.cpu_us);
        relay_cpu.push(ours.cpu_us);
        ratios.push(ours.per_second / base.per_second);
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
        "| server CPU per bulk request: relay / baseline (medians) | {:.1} / {:.1} µs | |",
        median(&mut relay_cpu),
        median(&mut baseline_cpu)
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
