//! A real Prometheus for tests, from Debian's `prometheus` package (`prometheus` and
//! `promtool`; `scripts/install-prometheus` installs them).
//!
//! ```ignore
//! #[path = "support/prometheus.rs"]
//! mod prometheus_support;
//! use prometheus_support::{OpenMetricsHistory, PrometheusServer, prometheus_or_skip};
//!
//! if !prometheus_or_skip("my_test") { return; }
//! let mut history = OpenMetricsHistory::new();
//! history
//!     .counter("http_requests_total", &[("code", "200")])
//!     .rate(START, START + 3600, 15, |_| 10.0);
//! let server = PrometheusServer::start_with_history(&history.render()).unwrap();
//! // query server.url() with a pinned `time=`; the server is stopped by PID on drop.
//! ```
//!
//! History is backfilled with `promtool tsdb create-blocks-from openmetrics` into a temporary
//! storage directory, and Prometheus runs on a free 127.0.0.1 port with
//! `--storage.tsdb.retention.time=100y` (retention counts from the newest block, so old
//! history is kept). Queries pinned with `time=` give exact, repeatable answers.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long Prometheus may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `prometheus` and `promtool` are both on PATH.
pub fn prometheus_available() -> bool {
    which("prometheus").is_some() && which("promtool").is_some()
}

/// For tests that need a real Prometheus: `true` when they can run. When the binaries are
/// missing it prints why and returns `false` so the test can return early, except when `CI`
/// is set: there a missing Prometheus fails the test, so CI never passes by skipping.
pub fn prometheus_or_skip(test: &str) -> bool {
    if prometheus_available() {
        return true;
    }
    let reason = "`prometheus`/`promtool` not on PATH; run scripts/install-prometheus";
    if std::env::var_os("CI").is_some() {
        panic!("{test}: CI is set and {reason}");
    }
    // Straight to stderr: the test harness captures `eprintln!`, and a skip must be seen.
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {reason}");
    false
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A Prometheus server owned by the test; stopped by PID when dropped.
pub struct PrometheusServer {
    child: Child,
    url: String,
    log: PathBuf,
    // Dropped after `Drop::drop` has stopped the process.
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Backfills `openmetrics` (text ending in `# EOF`, timestamps in seconds) and starts
    /// Prometheus on it.
    pub fn start_with_history(openmetrics: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-prometheus-")
            .tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let input = dir.path().join("history.om.txt");
        std::fs::write(&input, openmetrics)?;
        let output = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .map_err(|error| io::Error::other(format!("cannot run promtool: {error}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "promtool tsdb create-blocks-from openmetrics failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Self::start_in(dir)
    }

    /// Starts Prometheus with empty storage.
    pub fn start_empty() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-prometheus-")
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        Self::start_in(dir)
    }

    /// Starts Prometheus with empty storage, scraping `target` (`127.0.0.1:port`, path
    /// `/metrics`) every second, as job `rollgate-e2e`: for tests that drive the metrics live.
    pub fn start_scraping(target: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-prometheus-")
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: rollgate-e2e\n    static_configs:\n      - targets: ['{target}']\n"
        );
        Self::start_with_config(dir, &config)
    }

    fn start_in(dir: tempfile::TempDir) -> io::Result<Self> {
        // No scrape targets: the only data is the backfilled history.
        Self::start_with_config(dir, "global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    }

    fn start_with_config(dir: tempfile::TempDir, config_text: &str) -> io::Result<Self> {
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text)?;
        let mut last_error = None;
        // A free port can be taken between choosing and binding it; try a few.
        for _ in 0..3 {
            match Self::spawn(&dir, &config) {
                Ok((child, url, log)) => {
                    return Ok(Self {
                        child,
                        url,
                        log,
                        dir,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("Prometheus did not start")))
    }

    fn spawn(dir: &tempfile::TempDir, config: &Path) -> io::Result<(Child, String, PathBuf)> {
        let port = free_port()?;
        let log = dir.path().join(format!("prometheus-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|error| io::Error::other(format!("cannot run prometheus: {error}")))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "prometheus exited with {status} before it was ready:\n{}",
                    tail(&log)
                )));
            }
            if http_get_status(port, "/-/ready") == Some(200) {
                return Ok((child, url, log));
            }
            if Instant::now() > deadline {
                stop_child(&mut child);
                return Err(io::Error::other(format!(
                    "prometheus was not ready within {READY_TIMEOUT:?}:\n{}",
                    tail(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        tail(&self.log)
    }

    /// The storage directory, for tests that look at blocks.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// SIGTERM by PID, then SIGKILL if it has not exited within 5 s; always reaped.
fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A URL where nothing listens: connections are refused.
pub fn refused_url() -> io::Result<String> {
    Ok(format!("http://127.0.0.1:{}", free_port()?))
}

/// `GET path` over HTTP/1.0; the status code, or `None` when there is no answer yet.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = String::new();
    stream.take(64).read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs `promtool test rules` on `files`.
pub fn promtool_test_rules(files: &[PathBuf]) -> io::Result<Output> {
    Command::new("promtool")
        .args(["test", "rules"])
        .args(files)
        .output()
}

/// A listener that accepts connections and never answers, for timeout tests. Connections
/// are held until it is dropped.
pub struct SilentListener {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentListener {
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request a [`RecordingServer`] received.
#[derive(Clone, Debug, Default)]
pub struct RecordedRequest {
    /// The request line, e.g. `POST /api/v1/query HTTP/1.1`.
    pub line: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP server that answers every request with one canned response and records what
/// it received: for checking headers and auth, and answers Prometheus would not give.
pub struct RecordingServer {
    address: SocketAddr,
    requests: Arc<std::sync::Mutex<Vec<RecordedRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingServer {
    pub fn start(status: u16, content_type: &str, body: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let response = format!(
            "HTTP/1.1 {status} Canned\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (flag, log) = (Arc::clone(&stop), Arc::clone(&requests));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        serve_one(stream, response.as_bytes(), &log);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            address,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, records it, then answers: recording first means a client that has its
/// answer always finds its request in the log.
fn serve_one(
    mut stream: TcpStream,
    response: &[u8],
    log: &std::sync::Mutex<Vec<RecordedRequest>>,
) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(index) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break index;
        }
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedRequest {
            line,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        });
    stream.write_all(response).ok()?;
    stream.flush().ok()
}

/// The kinds of metric family the history builder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// OpenMetrics text for backfilling: families of counters, gauges and classic histograms
/// with labelled series and timestamped samples (timestamps in Unix seconds).
#[derive(Clone, Debug, Default)]
pub struct OpenMetricsHistory {
    families: Vec<Family>,
}

#[derive(Clone, Debug)]
struct Family {
    /// The family name: for a counter, the sample name without `_total`; for a histogram,
    /// without `_bucket`.
    name: String,
    kind: MetricKind,
    /// Upper bounds of a histogram's finite buckets, ascending.
    bounds: Vec<f64>,
    series: Vec<Series>,
}

#[derive(Clone, Debug)]
struct Series {
    labels: Vec<(String, String)>,
    /// One value for counters and gauges; for histograms the cumulative bucket counts
    /// (finite bounds, then +Inf), then the sum.
    points: Vec<(i64, Vec<f64>)>,
}

impl OpenMetricsHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter series. `name` is the sample name and must end in `_total`
    /// (`http_requests_total`); the `# TYPE` line names the family without the suffix, as
    /// OpenMetrics requires.
    pub fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> SeriesBuilder<'_> {
        let family = name.strip_suffix("_total").unwrap_or_else(|| {
            panic!("counter sample names end in _total in OpenMetrics; got {name}")
        });
        self.series(family, MetricKind::Counter, &[], labels)
    }

    /// A gauge series.
    pub fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> SeriesBuilder<'_> {
        self.series(name, MetricKind::Gauge, &[], labels)
    }

    /// A classic histogram series: `family` is the name without `_bucket`
    /// (`http_request_duration_seconds`), `bounds` the finite upper bounds, ascending. Fill
    /// it with [`SeriesBuilder::histogram_rate`].
    pub fn histogram(
        &mut self,
        family: &str,
        bounds: &[f64],
        labels: &[(&str, &str)],
    ) -> SeriesBuilder<'_> {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| b.is_finite()),
            "histogram bounds must be finite and ascending"
        );
        self.series(family, MetricKind::Histogram, bounds, labels)
    }

    fn series(
        &mut self,
        family: &str,
        kind: MetricKind,
        bounds: &[f64],
        labels: &[(&str, &str)],
    ) -> SeriesBuilder<'_> {
        let index = match self.families.iter().position(|f| f.name == family) {
            Some(index) => {
                let existing = &self.families[index];
                assert_eq!(
                    existing.kind, kind,
                    "family {family} is a {:?}",
                    existing.kind
                );
                assert_eq!(existing.bounds, bounds, "family {family} has other bounds");
                index
            }
            None => {
                self.families.push(Family {
                    name: family.to_string(),
                    kind,
                    bounds: bounds.to_vec(),
                    series: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let family = &mut self.families[index];
        family.series.push(Series {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            points: Vec::new(),
        });
        SeriesBuilder {
            bounds: family.bounds.clone(),
            series: family.series.last_mut().expect("just pushed"),
            kind,
        }
    }

    /// The OpenMetrics text, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in &self.families {
            let kind = match family.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {} Test history.", family.name);
            let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            for series in &family.series {
                for (time, values) in &series.points {
                    match family.kind {
                        MetricKind::Counter => {
                            let labels = label_text(&series.labels, None);
                            let value = format_value(values[0]);
                            let _ = writeln!(out, "{}_total{labels} {value} {time}", family.name);
                        }
                        MetricKind::Gauge => {
                            let labels = label_text(&series.labels, None);
                            let value = format_value(values[0]);
                            let _ = writeln!(out, "{}{labels} {value} {time}", family.name);
                        }
                        MetricKind::Histogram => {
                            let les = family
                                .bounds
                                .iter()
                                .map(|b| format_value(*b))
                                .chain(["+Inf".to_string()]);
                            for (le, count) in les.zip(values) {
                                let labels = label_text(&series.labels, Some(&le));
                                let count = format_value(*count);
                                let _ =
                                    writeln!(out, "{}_bucket{labels} {count} {time}", family.name);
                            }
                            let labels = label_text(&series.labels, None);
                            let total = format_value(values[family.bounds.len()]);
                            let sum = format_value(values[family.bounds.len() + 1]);
                            let _ = writeln!(out, "{}_count{labels} {total} {time}", family.name);
                            let _ = writeln!(out, "{}_sum{labels} {sum} {time}", family.name);
                        }
                    }
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Adds samples to one series.
pub struct SeriesBuilder<'a> {
    series: &'a mut Series,
    bounds: Vec<f64>,
    kind: MetricKind,
}

impl SeriesBuilder<'_> {
    /// One counter or gauge sample at `time` (Unix seconds). Times must increase.
    pub fn point(self, time: i64, value: f64) -> Self {
        assert_ne!(self.kind, MetricKind::Histogram, "use histogram_rate()");
        self.push(time, vec![value])
    }

    fn push(self, time: i64, values: Vec<f64>) -> Self {
        if let Some((last, _)) = self.series.points.last() {
            assert!(
                time > *last,
                "sample times must increase: {time} after {last}"
            );
        }
        self.series.points.push((time, values));
        self
    }

    /// Samples every `step` seconds from `start` to `end` inclusive, valued `value(t)`.
    pub fn values(mut self, start: i64, end: i64, step: i64, value: impl Fn(i64) -> f64) -> Self {
        let mut time = start;
        while time <= end {
            self = self.point(time, value(time));
            time += step;
        }
        self
    }

    /// Counter samples every `step` seconds from `start` to `end` inclusive, increasing by
    /// `per_second(t) * step` between `t - step` and `t`, so `rate()` over whole steps gives
    /// `per_second` back. A new series starts at 0 at `start`; otherwise it continues from
    /// its last value.
    pub fn rate(
        mut self,
        start: i64,
        end: i64,
        step: i64,
        per_second: impl Fn(i64) -> f64,
    ) -> Self {
        assert_eq!(self.kind, MetricKind::Counter, "rate() is for counters");
        let mut total = self.series.points.last().map_or(0.0, |(_, v)| v[0]);
        let mut time = start;
        if self.series.points.is_empty() {
            self = self.point(time, total);
            time += step;
        }
        while time <= end {
            total += per_second(time) * step as f64;
            self = self.point(time, total);
            time += step;
        }
        self
    }

    /// Histogram samples every `step` seconds from `start` to `end` inclusive.
    /// `per_second(t)` gives the observations per second that fall into each bucket
    /// (not cumulative): one entry per finite bound, then one for +Inf. Each observation
    /// adds its bucket's upper bound (the last finite bound for +Inf) to `_sum`.
    pub fn histogram_rate(
        mut self,
        start: i64,
        end: i64,
        step: i64,
        per_second: impl Fn(i64) -> Vec<f64>,
    ) -> Self {
        assert_eq!(
            self.kind,
            MetricKind::Histogram,
            "histogram_rate() is for histograms"
        );
        let buckets = self.bounds.len() + 1;
        let mut state = self
            .series
            .points
            .last()
            .map_or_else(|| vec![0.0; buckets + 1], |(_, v)| v.clone());
        let mut time = start;
        if self.series.points.is_empty() {
            self = self.push(time, state.clone());
            time += step;
        }
        while time <= end {
            let rates = per_second(time);
            assert_eq!(rates.len(), buckets, "one rate per bucket, +Inf included");
            let mut cumulative = 0.0;
            for (i, rate) in rates.iter().enumerate() {
                let added = rate * step as f64;
                cumulative += added;
                state[i] += cumulative;
                let representative = self
                    .bounds
                    .get(i)
                    .or(self.bounds.last())
                    .copied()
                    .unwrap_or(0.0);
                state[buckets] += added * representative;
            }
            self = self.push(time, state.clone());
            time += step;
        }
        self
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_family_names_and_eof() {
        let mut history = OpenMetricsHistory::new();
        history
            .counter("http_requests_total", &[("code", "200"), ("path", "a\"b")])
            .rate(100, 130, 15, |_| 2.0);
        history.gauge("queue_depth", &[]).point(100, f64::NAN);
        history
            .histogram("latency_seconds", &[0.1, 1.0], &[("job", "a")])
            .histogram_rate(100, 115, 15, |_| vec![1.0, 2.0, 0.0]);
        let text = history.render();
        assert_eq!(
            text,
            "# HELP http_requests Test history.\n\
             # TYPE http_requests counter\n\
             http_requests_total{code=\"200\",path=\"a\\\"b\"} 0 100\n\
             http_requests_total{code=\"200\",path=\"a\\\"b\"} 30 115\n\
             http_requests_total{code=\"200\",path=\"a\\\"b\"} 60 130\n\
             # HELP queue_depth Test history.\n\
             # TYPE queue_depth gauge\n\
             queue_depth NaN 100\n\
             # HELP latency_seconds Test history.\n\
             # TYPE latency_seconds histogram\n\
             latency_seconds_bucket{job=\"a\",le=\"0.1\"} 0 100\n\
             latency_seconds_bucket{job=\"a\",le=\"1\"} 0 100\n\
             latency_seconds_bucket{job=\"a\",le=\"+Inf\"} 0 100\n\
             latency_seconds_count{job=\"a\"} 0 100\n\
             latency_seconds_sum{job=\"a\"} 0 100\n\
             latency_seconds_bucket{job=\"a\",le=\"0.1\"} 15 115\n\
             latency_seconds_bucket{job=\"a\",le=\"1\"} 45 115\n\
             latency_seconds_bucket{job=\"a\",le=\"+Inf\"} 45 115\n\
             latency_seconds_count{job=\"a\"} 45 115\n\
             latency_seconds_sum{job=\"a\"} 31.5 115\n\
             # EOF\n"
        );
    }
}
