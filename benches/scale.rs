//! The operator at scale on a real API server (issue 25): `--flags N` FeatureFlags across
//! N/100 namespaces, created before the operator starts, then the release build of the
//! operator watching every namespace. Prints a Markdown table for `docs/performance.md`.
//!
//! ```sh
//! scripts/local-cluster up && export ROLLGATE_E2E_KUBECONFIG=~/.cache/rollgate/cluster/kubeconfig
//! cargo bench --bench scale -- --flags 1000
//! ```
//!
//! Per 20 flags of a namespace: 12 static, 4 static with 20 allowed users, 3 ramps with an
//! analysis every minute against a real Prometheus, 1 experiment (two arms, counts queried
//! every minute). Measured: the time from the operator's start until every flag is
//! published; its peak and steady RSS; API requests and writes per minute at rest (the API
//! server's `apiserver_request_total`); Prometheus queries per second; the kill switch
//! (p50, p99) over `--kills` flags; a full resync (a restarted operator reconciling every
//! flag). Not part of `make test`: `cargo test` runs it without `--bench`, and it returns.

#[path = "../tests/support/cluster.rs"]
mod cluster;
#[path = "../tests/support/operator.rs"]
mod operator;
// Its unit tests' imports go unused in a target built without the test harness.
#[allow(unused_imports)]
#[path = "../tests/support/prometheus.rs"]
mod prometheus_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollgate_core::crd::FeatureFlag;
use rollgate_sdk::FlagDocument;
use serde_json::{Value, json};

use cluster::{install_crd, kubeconfig, runtime_and_client};
use operator::{free_port, http_get};
use prometheus_support::{PrometheusServer, prometheus_or_skip};

const FLAGS_PER_NAMESPACE: usize = 100;
const CONFIGMAP: &str = "rollgate-flags";
/// How long the operator is left alone before the at-rest window, and that window.
const SETTLE: Duration = Duration::from_secs(30);
const AT_REST: Duration = Duration::from_secs(60);
/// How long every flag may take to be published before the bench gives up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1800);

struct Options {
    flags: usize,
    kills: usize,
}

fn options() -> Option<Options> {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs bench binaries without `--bench`.
    if !args.iter().any(|arg| arg == "--bench") {
        eprintln!("scale bench: run it with `cargo bench --bench scale -- --flags N`");
        return None;
    }
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|i| args.get(i + 1))
            .map(|text| {
                text.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number, not {text:?}"))
            })
            .unwrap_or(default)
    };
    let flags = value("--flags", 10_000);
    assert!(
        flags >= FLAGS_PER_NAMESPACE && flags.is_multiple_of(FLAGS_PER_NAMESPACE),
        "--flags must be a multiple of {FLAGS_PER_NAMESPACE}"
    );
    Some(Options {
        flags,
        kills: value("--kills", 50),
    })
}

fn main() {
    let Some(options) = options() else { return };
    let Some(kubeconfig) = kubeconfig() else {
        panic!("the scale bench needs a cluster: set ROLLGATE_E2E_KUBECONFIG");
    };
    assert!(
        prometheus_or_skip("scale bench"),
        "the scale bench needs Prometheus (scripts/install-prometheus)"
    );
    install_crd(&kubeconfig);
    let prometheus = PrometheusServer::start_empty().expect("start Prometheus");
    let (runtime, client) = runtime_and_client(&kubeconfig);
    let run = std::process::id();
    let namespaces: Vec<String> = (0..options.flags / FLAGS_PER_NAMESPACE)
        .map(|i| format!("scale-{run}-{i:03}"))
        .collect();
    let report = runtime.block_on(bench(
        &client,
        &kubeconfig,
        prometheus.url(),
        &namespaces,
        &options,
    ));
    println!("{report}");
    eprintln!("deleting the {} namespaces", namespaces.len());
    runtime.block_on(teardown(&client, &namespaces));
}

async fn bench(
    client: &kube::Client,
    kubeconfig: &Path,
    prometheus_url: &str,
    namespaces: &[String],
    options: &Options,
) -> String {
    let mut rows = Rows::default();
    let created = Instant::now();
    create_flags(client, namespaces).await;
    rows.push((
        "flags created (before the operator starts)".into(),
        format!(
            "{} in {} namespaces, in {:.1} s",
            options.flags,
            namespaces.len(),
            created.elapsed().as_secs_f64()
        ),
    ));

    // 1. start until every flag is published
    let mut operator = Operator::start(kubeconfig, prometheus_url, true);
    let started = Instant::now();
    wait_all_published(client, namespaces, started).await;
    let published = started.elapsed();
    rows.push((
        "start → every flag published".into(),
        format!("{:.1} s", published.as_secs_f64()),
    ));
    rows.push(("RSS peak while publishing".into(), mib(operator.rss.peak())));

    // 2. at rest
    tokio::time::sleep(SETTLE).await;
    let api_before = api_requests(client).await;
    let operator_before = operator.counters();
    let prometheus_before = prometheus_queries(prometheus_url);
    tokio::time::sleep(AT_REST).await;
    let api_after = api_requests(client).await;
    let operator_after = operator.counters();
    let prometheus_after = prometheus_queries(prometheus_url);
    let minutes = AT_REST.as_secs_f64() / 60.0;
    let (reads, writes) = request_delta(&api_before, &api_after);
    rows.push((
        "API requests per minute at rest, every client".into(),
        format!(
            "{:.0} reads, {:.0} writes",
            reads / minutes,
            (writes.values().sum::<f64>() + 0.0) / minutes
        ),
    ));
    let operator_writes: Vec<String> = writes
        .iter()
        .filter(|((resource, _), _)| {
            matches!(resource.as_str(), "configmaps" | "featureflags" | "events")
        })
        .map(|((resource, verb), count)| format!("{verb} {resource}: {:.0}/min", count / minutes))
        .collect();
    rows.push((
        "writes per minute at rest to configmaps, featureflags, events".into(),
        if operator_writes.is_empty() {
            "0".into()
        } else {
            operator_writes.join(", ")
        },
    ));
    rows.push((
        "operator at rest: reconciles, documents written per minute".into(),
        format!(
            "{:.0}, {:.0}",
            (operator_after.reconciles - operator_before.reconciles) / minutes,
            (operator_after.written - operator_before.written) / minutes
        ),
    ));
    rows.push((
        "Prometheus queries per second".into(),
        format!(
            "{:.1}",
            (prometheus_after - prometheus_before) / AT_REST.as_secs_f64()
        ),
    ));
    rows.push(("RSS at rest".into(), mib(operator.rss.current())));
    rows.push((
        "RSS at rest per 1,000 flags".into(),
        mib(operator.rss.current() * 1000 / options.flags as u64),
    ));

    // 3. the kill switch
    let kills = kill_switch_latencies(client, namespaces, options.kills).await;
    rows.push((
        format!("kill switch, {} kills: p50, p99, max", kills.len()),
        format!(
            "{} ms, {} ms, {} ms",
            percentile(&kills, 50),
            percentile(&kills, 99),
            kills.last().copied().unwrap_or_default()
        ),
    ));

    // 4. a full resync: a new operator reconciles every flag, finding them up to date
    operator.stop();
    let api_before = api_requests(client).await;
    let mut operator = Operator::start(kubeconfig, prometheus_url, false);
    let restarted = Instant::now();
    loop {
        let counters = operator.counters();
        if counters.reconciles >= options.flags as f64 {
            let (_, writes) = request_delta(&api_before, &api_requests(client).await);
            rows.push((
                "full resync: restart → every flag reconciled".into(),
                format!(
                    "{:.1} s, {:.0} documents written, {:.0} API writes",
                    restarted.elapsed().as_secs_f64(),
                    counters.written,
                    writes.values().sum::<f64>() + 0.0
                ),
            ));
            break;
        }
        assert!(
            restarted.elapsed() < PUBLISH_TIMEOUT,
            "the resync did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.stop();

    let mut table = format!(
        "`cargo bench --bench scale -- --flags {} --kills {}`\n\n| measure | value |\n|---|---|\n",
        options.flags, options.kills
    );
    for (measure, value) in rows.0 {
        table.push_str(&format!("| {measure} | {value} |\n"));
    }
    table
}

/// The table's rows, each also printed as it is measured: a later failure keeps them.
#[derive(Default)]
struct Rows(Vec<(String, String)>);

impl Rows {
    fn push(&mut self, (measure, value): (String, String)) {
        eprintln!("MEASURED {measure}: {value}");
        self.0.push((measure, value));
    }
}

/// The namespaces, then every flag, 32 requests at a time.
async fn create_flags(client: &kube::Client, namespaces: &[String]) {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in namespaces {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("create namespace {name}: {error}"));
    }
    let flags = namespaces
        .iter()
        .flat_map(|namespace| (0..FLAGS_PER_NAMESPACE).map(move |i| (namespace.clone(), flag(i))));
    futures::stream::iter(flags)
        .map(|(namespace, flag)| {
            let api: Api<FeatureFlag> = Api::namespaced(client.clone(), &namespace);
            async move {
                let flag: FeatureFlag = serde_json::from_value(flag).expect("flag");
                for attempt in 0..5 {
                    match api.create(&PostParams::default(), &flag).await {
                        Ok(_) => return,
                        Err(kube::Error::Api(status)) if status.code == 409 => return,
                        Err(error) if attempt == 4 => panic!("create a flag: {error}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// Flag `i` of a namespace, by the mix of the module docs.
fn flag(i: usize) -> Value {
    let name = format!("flag-{i:03}");
    let analysis = json!({
        "interval": "1m",
        "metrics": [{"name": "error-ratio", "query": "vector(0.001)", "max": 0.01, "onNoData": "Hold"}]
    });
    let spec = match i % 20 {
        0..12 => json!({"enabled": true, "percent": (i * 7) % 101}),
        12..16 => json!({
            "enabled": true,
            "percent": 10,
            "allowedUsers": (0..20).map(|u| format!("user-{i}-{u}")).collect::<Vec<_>>(),
        }),
        16..19 => json!({
            "enabled": true,
            "rollout": {
                "steps": [
                    {"percent": 1, "pause": "10m"}, {"percent": 5, "pause": "10m"},
                    {"percent": 25, "pause": "10m"}, {"percent": 50, "pause": "10m"},
                    {"percent": 100}
                ],
                "analysis": analysis,
            }
        }),
        _ => json!({
            "enabled": true,
            "experiment": {
                "variants": [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}],
                "coverage": 20,
                "metric": {
                    "exposures": r#"label_replace(vector(100), "variant", {{ variant }}, "", "")"#,
                    "conversions": r#"label_replace(vector(10), "variant", {{ variant }}, "", "")"#,
                },
                "minSamplesPerVariant": 1000,
            },
            "rollout": {"analysis": analysis},
        }),
    };
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Waits until every namespace's document holds all its flags; prints progress.
async fn wait_all_published(client: &kube::Client, namespaces: &[String], started: Instant) {
    let total = namespaces.len() * FLAGS_PER_NAMESPACE;
    let mut last_report = Instant::now();
    loop {
        let published: usize = documents(client, namespaces)
            .await
            .values()
            .map(|document| document.flags.len())
            .sum();
        if published >= total {
            return;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{:>5.0} s: {published} of {total} published",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < PUBLISH_TIMEOUT,
            "only {published} of {total} flags were published within {PUBLISH_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every bench namespace's published document, by namespace.
async fn documents(client: &kube::Client, namespaces: &[String]) -> BTreeMap<String, FlagDocument> {
    let api: Api<ConfigMap> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=rollgate"))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|cm| cm.metadata.name.as_deref() == Some(CONFIGMAP))
        .filter_map(|cm| {
            let namespace = cm.metadata.namespace.clone()?;
            if !namespaces.contains(&namespace) {
                return None;
            }
            let json = cm.data?.remove("flags.json")?;
            Some((namespace, FlagDocument::from_json(json.as_bytes()).ok()?))
        })
        .collect()
}

/// Kills `count` static flags one after another (each in another namespace where it can),
/// timing each from the start of its patch until its ConfigMap holds it off; sorted, in ms.
async fn kill_switch_latencies(
    client: &kube::Client,
    namespaces: &[String],
    count: usize,
) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(count);
    for k in 0..count {
        let namespace = &namespaces[k % namespaces.len()];
        // Static flags are 0–11 of every 20.
        let name = format!("flag-{:03}", (k / namespaces.len()) * 20 + 1);
        let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), namespace);
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let started = Instant::now();
        flags
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"enabled": false}})),
            )
            .await
            .unwrap_or_else(|error| panic!("kill {namespace}/{name}: {error}"));
        loop {
            let off = configmaps
                .get_opt(CONFIGMAP)
                .await
                .ok()
                .flatten()
                .and_then(|cm| cm.data?.remove("flags.json"))
                .and_then(|json| FlagDocument::from_json(json.as_bytes()).ok())
                .and_then(|document| document.flags.get(&name).map(|entry| !entry.enabled));
            if off == Some(true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{namespace}/{name} was not published off within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed().as_millis() as u64);
    }
    latencies.sort_unstable();
    latencies
}

/// The `p`th percentile of sorted values (nearest rank).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `apiserver_request_total` summed by (resource, verb).
async fn api_requests(client: &kube::Client) -> BTreeMap<(String, String), f64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("metrics request");
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|value| value.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        *totals
            .entry((label("resource"), label("verb")))
            .or_insert(0.0) += value.parse::<f64>().unwrap_or_default();
    }
    totals
}

/// Reads, and writes by (resource, verb), between two `api_requests` samples.
fn request_delta(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> (f64, BTreeMap<(String, String), f64>) {
    let mut reads = 0.0;
    let mut writes = BTreeMap::new();
    for (key, value) in after {
        let delta = value - before.get(key).copied().unwrap_or_default();
        if delta <= 0.0 {
            continue;
        }
        match key.1.as_str() {
            "GET" | "LIST" | "WATCH" | "CONNECT" => reads += delta,
            _ => {
                writes.insert(key.clone(), delta);
            }
        }
    }
    (reads, writes)
}

/// Queries Prometheus has answered on its query endpoints.
fn prometheus_queries(url: &str) -> f64 {
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .expect("Prometheus port");
    let (_, body) = http_get(port, "/metrics").expect("Prometheus /metrics");
    body.lines()
        .filter(|line| line.starts_with("prometheus_http_requests_total{"))
        .filter(|line| line.contains("handler=\"/api/v1/query\""))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The operator's release build watching every namespace, its RSS sampled every 100 ms.
struct Operator {
    child: Child,
    port: u16,
    rss: Arc<RssSampler>,
}

struct Counters {
    reconciles: f64,
    written: f64,
}

impl Operator {
    /// `profiled`: under `ROLLGATE_SCALE_PROFILER` when it is set.
    fn start(kubeconfig: &Path, prometheus_url: &str, profiled: bool) -> Self {
        let port = free_port().expect("a free port");
        // `ROLLGATE_SCALE_PROFILER="heaptrack --output /tmp/rollgate"` runs the first
        // operator under a profiler; the RSS figures are then the profiler's.
        let mut command = match std::env::var("ROLLGATE_SCALE_PROFILER") {
            Ok(profiler) if profiled && !profiler.trim().is_empty() => {
                let mut words = profiler.split_whitespace();
                let mut command = Command::new(words.next().expect("a profiler command"));
                command.args(words).arg(env!("CARGO_BIN_EXE_rollgate"));
                command
            }
            _ => Command::new(env!("CARGO_BIN_EXE_rollgate")),
        };
        // Its own process group, so that stopping it stops a profiler's child too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--prometheus-url", prometheus_url])
            .env(
                "ROLLGATE_LOG",
                std::env::var("ROLLGATE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("ROLLGATE_NAMESPACES")
            .env_remove("ROLLGATE_LEADER_ELECTION")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rollgate operator");
        let rss = RssSampler::start(child.id());
        Self { child, port, rss }
    }

    fn counters(&self) -> Counters {
        let body = http_get(self.port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let sum = |prefix: &str| -> f64 {
            body.lines()
                .filter(|line| line.starts_with(prefix))
                .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        // `+ 0.0`: an empty f64 sum is -0.0.
        Counters {
            reconciles: sum("rollgate_reconcile_total{") + 0.0,
            written: sum("rollgate_publishes_total{outcome=\"written\"}") + 0.0,
        }
    }

    /// SIGTERM to its process group by PID, then SIGKILL after 10 s; always reaped.
    fn stop(&mut self) {
        self.rss.stop();
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmRSS` of a process, sampled on a thread; the peak is the kernel's `VmHWM`.
struct RssSampler {
    pid: u32,
    current: AtomicU64,
    peak: AtomicU64,
    stopped: AtomicBool,
}

impl RssSampler {
    fn start(pid: u32) -> Arc<Self> {
        let sampler = Arc::new(Self {
            pid,
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let thread = sampler.clone();
        std::thread::spawn(move || {
            while !thread.stopped.load(Ordering::Relaxed) && thread.sample() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        sampler
    }

    /// Reads `/proc/PID/status`; false once the process is gone.
    fn sample(&self) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return false;
        };
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| kib * 1024)
        };
        if let Some(rss) = kib("VmRSS:") {
            self.current.store(rss, Ordering::Relaxed);
        }
        if let Some(peak) = kib("VmHWM:") {
            self.peak.store(peak, Ordering::Relaxed);
        }
        true
    }

    fn current(&self) -> u64 {
        self.sample();
        self.current.load(Ordering::Relaxed)
    }

    fn peak(&self) -> u64 {
        self.sample();
        self.peak.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Deletes the bench's namespaces; their flags' finalizers are taken off first, since the
/// operator is gone.
async fn teardown(client: &kube::Client, namespaces: &[String]) {
    let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    for namespace in namespaces {
        let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), namespace);
        let names: Vec<String> = flags
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|flag| flag.metadata.name)
            .collect();
        futures::stream::iter(names)
            .map(|name| {
                let flags = flags.clone();
                let patch = patch.clone();
                async move {
                    let _ = flags.patch(&name, &PatchParams::default(), &patch).await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.delete(namespace, &Default::default()).await;
    }
}
