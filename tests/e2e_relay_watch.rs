//! End-to-end: one API watch per relay, whatever the number of its clients.
//!
//! On the cluster of `ROLLGATE_E2E_KUBECONFIG`, `rollgate relay --namespace` follows a
//! ConfigMap. The kube-apiserver's own `/metrics` count the ConfigMap watches it serves
//! (`apiserver_registered_watchers{kind="ConfigMap"}` and
//! `apiserver_longrunning_gauge{resource="configmaps",verb="WATCH"}`): they must rise by
//! exactly one when the relay starts, stay there while 200 SSE clients and 200 bulk requests
//! use it, and fall back when it stops. The relay's `rollgate_relay_source_watches` says the
//! same from its side, and one ConfigMap change reaches all 200 streams through that one watch.
//!
//! In a file of its own so that no other test's watches run in the same process meanwhile;
//! the cluster must not be shared with other tests while it runs.

mod support {
    pub mod cluster;
    pub mod http1;
    pub mod relay_process;
}

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::cluster::{TestNamespace, eventually, kubeconfig, kubectl_ok, kubectl_with_input};
use support::http1::request;
use support::relay_process::RelayProcess;

const SSE_CLIENTS: usize = 200;
const BULK_REQUESTS: usize = 200;

fn configmap(namespace: &str, enabled: bool) -> String {
    let document = format!(
        r#"{{"schemaVersion":1,"flags":{{"checkout":{{"key":"checkout","enabled":{enabled},"percent":50}}}}}}"#
    );
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "rollgate-flags", "namespace": namespace},
        "data": {"flags.json": document},
    })
    .to_string()
}

fn apply(kubeconfig: &Path, manifest: &str) {
    let applied = kubectl_with_input(kubeconfig, &["apply", "-f", "-"], Some(manifest));
    assert!(
        applied.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// ConfigMap watches as the API server counts them, per metric it exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ApiWatches {
    registered: Option<u64>,
    longrunning: Option<u64>,
}

/// Sums the samples of `metric` whose labels contain every one of `labels`.
fn sum_samples(text: &str, metric: &str, labels: &[&str]) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        if !series.starts_with('{') || !labels.iter().all(|label| series.contains(label)) {
            continue;
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{metric}: not a number in {line:?}"));
        *found.get_or_insert(0) += value as u64;
    }
    found
}

fn api_watches(kubeconfig: &Path) -> ApiWatches {
    let text = kubectl_ok(kubeconfig, &["get", "--raw", "/metrics"]);
    let watches = ApiWatches {
        registered: sum_samples(
            &text,
            "apiserver_registered_watchers",
            &[r#"group="""#, r#"kind="ConfigMap""#, r#"version="v1""#],
        ),
        longrunning: sum_samples(
            &text,
            "apiserver_longrunning_gauge",
            &[r#"resource="configmaps""#, r#"verb="WATCH""#],
        ),
    };
    assert!(
        watches.registered.is_some() || watches.longrunning.is_some(),
        "the API server's /metrics has neither apiserver_registered_watchers nor apiserver_longrunning_gauge for ConfigMaps"
    );
    watches
}

fn plus(watches: ApiWatches, n: u64) -> ApiWatches {
    ApiWatches {
        registered: watches.registered.map(|count| count + n),
        longrunning: watches.longrunning.map(|count| count + n),
    }
}

fn relay_metric(port: u16, series: &str) -> Option<i64> {
    let (_, text) = request(port, "GET", "/metrics", "");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn one_api_watch_per_relay_whatever_the_number_of_clients() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("skipped: ROLLGATE_E2E_KUBECONFIG is not set");
        return;
    };
    let namespace = TestNamespace::create(&kubeconfig, "e2e-relay-watch");
    apply(&kubeconfig, &configmap(&namespace.name, true));

    // Watches of an earlier test's processes may still be closing: start from a steady count.
    let before = eventually(Duration::from_secs(30), || {
        let first = api_watches(&kubeconfig);
        std::thread::sleep(Duration::from_secs(1));
        (api_watches(&kubeconfig) == first).then_some(first)
    })
    .expect("the API server's ConfigMap watch count never held still for a second");
    let directory = tempfile::tempdir().unwrap();
    let relay = RelayProcess::follow(&kubeconfig, &namespace.name, directory.path());
    let port = relay.port;
    let relay_log = || relay.log();
    assert!(
        eventually(Duration::from_secs(30), || {
            request(port, "GET", "/readyz", "")
                .0
                .contains(" 200")
                .then_some(())
        })
        .is_some(),
        "the relay never became ready\n{}",
        relay_log()
    );
    let with_relay = eventually(Duration::from_secs(15), || {
        let now = api_watches(&kubeconfig);
        (now == plus(before, 1)).then_some(now)
    })
    .unwrap_or_else(|| {
        panic!(
            "the API server's ConfigMap watches did not rise by 1 with the relay: before {before:?}, now {:?}\n{}",
            api_watches(&kubeconfig),
            relay_log()
        )
    });

    // 200 event streams, each on its own connection, read by its own thread.
    let events_path = format!("/ns/{}/ofrep/v1/events", namespace.name);
    let (opened_sender, opened) = std::sync::mpsc::channel::<()>();
    let (event_sender, events) = std::sync::mpsc::channel::<()>();
    let readers: Vec<_> = (0..SSE_CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            write!(
                stream,
                "GET {events_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            )
            .unwrap();
            let opened_sender = opened_sender.clone();
            let event_sender = event_sender.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    let (mut seen, mut buffer, mut announced) = (String::new(), [0u8; 2048], false);
                    while let Ok(n @ 1..) = stream.read(&mut buffer) {
                        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
                        if !announced && seen.contains(": rollgate relay") {
                            announced = true;
                            let _ = opened_sender.send(());
                        }
                        if seen.contains("refetchEvaluation") {
                            let _ = event_sender.send(());
                            return;
                        }
                    }
                })
                .expect("reader thread")
        })
        .collect();
    for _ in 0..SSE_CLIENTS {
        opened
            .recv_timeout(Duration::from_secs(30))
            .expect("every event stream opens");
    }
    // 200 bulk evaluations, each a different user, 8 at a time.
    let bulk_path = format!("/ns/{}/ofrep/v1/evaluate/flags", namespace.name);
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let bulk_path = &bulk_path;
            scope.spawn(move || {
                for i in (worker..BULK_REQUESTS).step_by(8) {
                    let body = format!(r#"{{"context":{{"targetingKey":"user-{i}"}}}}"#);
                    let (status, answer) = request(port, "POST", bulk_path, &body);
                    assert!(
                        status.contains(" 200") && answer.contains(r#""key":"checkout""#),
                        "bulk {i}: {status} {answer}"
                    );
                }
            });
        }
    });
    let sse_clients = relay_metric(
        port,
        &format!(
            r#"rollgate_relay_sse_clients{{namespace="{}"}}"#,
            namespace.name
        ),
    );
    let relay_watches = relay_metric(
        port,
        &format!(
            r#"rollgate_relay_source_watches{{namespace="{}"}}"#,
            namespace.name
        ),
    );
    let with_clients = api_watches(&kubeconfig);
    assert_eq!(sse_clients, Some(SSE_CLIENTS as i64), "{}", relay_log());
    assert_eq!(relay_watches, Some(1));
    assert_eq!(
        with_clients, with_relay,
        "the API server's ConfigMap watches moved with the relay's clients"
    );

    // One change through that one watch reaches every stream.
    let changed = Instant::now();
    apply(&kubeconfig, &configmap(&namespace.name, false));
    for _ in 0..SSE_CLIENTS {
        events
            .recv_timeout(Duration::from_secs(30))
            .expect("every stream gets refetchEvaluation");
    }
    let fan_out = changed.elapsed();
    for reader in readers {
        let _ = reader.join();
    }

    drop(relay);
    let after = eventually(Duration::from_secs(15), || {
        let now = api_watches(&kubeconfig);
        (now == before).then_some(now)
    })
    .unwrap_or_else(|| {
        panic!(
            "the relay's watch outlived it: before {before:?}, after {:?}",
            api_watches(&kubeconfig)
        )
    });
    println!(
        "API server ConfigMap watches (registered_watchers, longrunning WATCH): before the relay {before:?}; \
         relay ready {with_relay:?}; with {SSE_CLIENTS} SSE clients and {BULK_REQUESTS} bulk requests {with_clients:?}; \
         relay stopped {after:?}. rollgate_relay_source_watches {relay_watches:?}, rollgate_relay_sse_clients {sse_clients:?}; \
         kubectl apply → refetchEvaluation at all {SSE_CLIENTS} streams: {} ms",
        fan_out.as_millis()
    );
}
