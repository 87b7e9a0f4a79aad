//! End-to-end tier, part 2: the `rollgate operator` binary as a process against a real API
//! server, with a real Prometheus scraping a target the test controls.
//!
//! Runs when `ROLLGATE_E2E_KUBECONFIG` points at a cluster (`scripts/test-e2e` starts the
//! local control plane and sets it) and Prometheus is installed
//! (`scripts/install-prometheus`); skipped with a printed reason otherwise, and failed
//! instead of skipped when `CI` is set. Run one test at a time:
//!
//! ```sh
//! ROLLGATE_E2E_KUBECONFIG=… cargo test --test e2e_operator -- --test-threads=1 --nocapture
//! ```
//!
//! Each test has its own namespace, its own operator(s) watching only that namespace, and,
//! where it needs metrics, its own Prometheus (scrape interval 1 s) and scrape target. The
//! target serves `http_requests_total{code="200"|"500"}` at 100 simulated requests per second
//! with an error fraction the test sets. Measured latencies are printed as
//! `LATENCY name_ms=…` lines.

mod support {
    pub mod cluster;
    pub mod operator;
    pub mod prometheus;
}

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{self, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollgate::prometheus::{PrometheusClient, PrometheusConfig, Sample};
use rollgate_core::crd::{FeatureFlag, Phase, Verdict};
use rollgate_sdk::{FlagDocument, FlagEntry};
use serde_json::{Value, json};

use support::cluster::{
    TestNamespace, install_crd, kubeconfig, kubectl_ok, runtime_and_client, wait_for,
};
use support::operator::{OperatorOptions, OperatorProcess};
use support::prometheus::{PrometheusServer, prometheus_or_skip};

/// The operator's default ConfigMap.
const CONFIGMAP: &str = "rollgate-flags";
/// How often the tests look at the ConfigMap when they measure a latency.
const POLL: Duration = Duration::from_millis(50);
/// The analysis interval of every ramp here: the CRD's minimum.
const INTERVAL: Duration = Duration::from_secs(10);
/// Prometheus' scrape interval (`PrometheusServer::start_scraping`).
const SCRAPE: Duration = Duration::from_secs(1);
/// The guardrail: the share of 5xx over a 5 s window (≥ 2 scrapes at 1 s).
const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{job="rollgate-e2e",code=~"5.."}[5s])) / sum(rate(http_requests_total{job="rollgate-e2e"}[5s]))"#;
const MAX_ERROR_RATIO: f64 = 0.05;
/// Lease duration of `src/operator/leader.rs`.
const LEASE_DURATION: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// A ramp of four steps (10 → 25 → 50 → 100%), 10 s pauses and a 10 s analysis interval,
/// walks to `Complete`: every step is published in order, each after a passing analysis.
#[test]
fn ramp_walks_four_steps_to_complete() {
    let Some(setup) = Setup::with_metrics("ramp_walks_four_steps_to_complete", "e2e-op-ramp")
    else {
        return;
    };
    let metrics = setup.metrics.as_ref().expect("metrics pipeline");
    let _operator = OperatorProcess::start(setup.operator().prometheus(metrics.prometheus.url()));
    let started = Instant::now();
    setup.create_flag(&ramp_flag("checkout", &[10.0, 25.0, 50.0, 100.0], "10s"));

    let trace = setup.follow_ramp("checkout", Duration::from_secs(120), |_| {});
    let took = started.elapsed();
    eprintln!(
        "ramp of 4 steps complete after {:.1} s; steps seen {:?}, published percents {:?}",
        took.as_secs_f64(),
        trace.steps(),
        trace.published()
    );
    trace.assert_walked(&[10.0, 25.0, 50.0, 100.0], Duration::from_secs(10));
    // Three advances, each gated by its own analysis: at least 3 intervals.
    assert!(took >= 3 * INTERVAL - Duration::from_secs(1), "{took:?}");

    let flag = setup.flag("checkout").expect("flag");
    let status = flag.status.expect("status");
    assert_eq!(status.phase, Phase::Complete);
    assert_eq!(status.percent, Some(100.0));
    assert!(status.completed_at.is_some(), "completedAt set");
    let passed = status
        .analyses
        .iter()
        .filter(|run| run.verdict == Verdict::Pass)
        .count();
    assert!(passed >= 3, "passing analyses in history: {passed}");
    setup.wait_events(
        "checkout",
        &[("RolloutStarted", 1), ("StepAdvanced", 3), ("Completed", 1)],
    );
}

/// A 5xx spike scraped by Prometheus rolls a ramp back to 0% at the next analysis; the time
/// from the spike becoming visible in Prometheus to the ConfigMap showing 0% is measured.
#[test]
fn error_spike_rolls_back_to_zero() {
    let Some(setup) = Setup::with_metrics("error_spike_rolls_back_to_zero", "e2e-op-spike") else {
        return;
    };
    let metrics = setup.metrics.as_ref().expect("metrics pipeline");
    let _operator = OperatorProcess::start(setup.operator().prometheus(metrics.prometheus.url()));
    setup.create_flag(&ramp_flag("search", &[20.0, 100.0], "10m"));

    // The pipeline works: an analysis has passed and 20% is published.
    setup.wait("a passing analysis at 20%", Duration::from_secs(60), || {
        let status = setup.flag("search")?.status?;
        let passed = status
            .analyses
            .iter()
            .any(|run| run.verdict == Verdict::Pass);
        let entry = setup.entry("search")?;
        (passed && entry.enabled && entry.percent == 20.0).then_some(())
    });

    let flipped = Instant::now();
    metrics.target.set_error_fraction(0.5);
    let mut visible = None;
    let (entry, zero) = setup.wait("0% after the spike", Duration::from_secs(60), || {
        if visible.is_none()
            && let Some(value) = metrics.value(&setup, ERROR_RATIO)
            && value > MAX_ERROR_RATIO
        {
            visible = Some(Instant::now());
        }
        let entry = setup.entry("search")?;
        (!entry.enabled && entry.percent == 0.0).then_some(entry)
    });
    let visible = visible.expect("the spike was seen in Prometheus before the rollback");
    let flip_to_visible = visible - flipped;
    let visible_to_zero = zero - visible;
    eprintln!(
        "LATENCY spike_flip_to_visible_ms={} spike_visible_to_configmap_zero_ms={} spike_flip_to_configmap_zero_ms={}",
        flip_to_visible.as_millis(),
        visible_to_zero.as_millis(),
        (zero - flipped).as_millis()
    );
    assert!(
        visible_to_zero < INTERVAL + SCRAPE + Duration::from_secs(10),
        "{visible_to_zero:?}"
    );
    assert_eq!(entry.phase, "RolledBack");

    let status = setup.flag("search").expect("flag").status.expect("status");
    assert_eq!(status.phase, Phase::RolledBack);
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded condition");
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "AnalysisFailed");
    assert!(
        degraded.message.contains("error-ratio") && degraded.message.contains("0.05"),
        "the message names the metric and its bound: {}",
        degraded.message
    );
    setup.wait_events("search", &[("RolledBack", 1)]);
    // Sticky: it stays at 0% through further analyses' worth of time.
    std::thread::sleep(INTERVAL + SCRAPE);
    let entry = setup.entry("search").expect("entry");
    assert!(!entry.enabled && entry.percent == 0.0, "{entry:?}");
}

/// `enabled: false` (the GitOps kill switch) and a `kill` request (`kubectl rollgate kill`)
/// reach the ConfigMap within a reconcile; both latencies are measured, the first three
/// times.
#[test]
fn kill_switch_reaches_the_configmap() {
    let Some(setup) = Setup::without_metrics("e2e-op-kill") else {
        return;
    };
    let _operator = OperatorProcess::start(setup.operator());
    setup.create_flag(&static_flag("banner", 100.0));
    setup.create_flag(&static_flag("recommendations", 100.0));
    setup.wait_published("banner", true, 100.0);
    setup.wait_published("recommendations", true, 100.0);

    let mut latencies = Vec::new();
    for round in 1..=3 {
        let (from_kubectl, from_write) = setup.measure_publish("banner", false, 0.0, || {
            setup.kubectl_ok(&[
                "patch",
                "ff",
                "banner",
                "--type=merge",
                "-p",
                r#"{"spec":{"enabled":false}}"#,
            ]);
        });
        eprintln!(
            "LATENCY kill_switch_ms={} kill_switch_after_api_write_ms={} (round {round})",
            from_kubectl.as_millis(),
            from_write.as_millis()
        );
        assert!(from_kubectl < Duration::from_secs(5), "{from_kubectl:?}");
        latencies.push(from_kubectl);
        // And back on, so the next round measures the same transition.
        setup.kubectl_ok(&[
            "patch",
            "ff",
            "banner",
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":true}}"#,
        ]);
        setup.wait_published("banner", true, 100.0);
    }
    latencies.sort();
    eprintln!(
        "LATENCY kill_switch_ms min={} median={} max={}",
        latencies[0].as_millis(),
        latencies[1].as_millis(),
        latencies[2].as_millis()
    );

    let (from_kubectl, from_write) = setup.measure_publish("recommendations", false, 0.0, || {
        setup.kubectl_ok(&[
            "annotate",
            "ff",
            "recommendations",
            "--overwrite",
            "rollgate.dev/request=kill/e2e-1",
        ]);
    });
    eprintln!(
        "LATENCY kill_request_ms={} kill_request_after_api_write_ms={}",
        from_kubectl.as_millis(),
        from_write.as_millis()
    );
    assert!(from_kubectl < Duration::from_secs(5), "{from_kubectl:?}");
    let status = setup.flag("recommendations").unwrap().status.unwrap();
    assert_eq!(status.phase, Phase::Killed);
    assert_eq!(
        setup.flag("banner").unwrap().status.unwrap().phase,
        Phase::Static
    );
}

/// An operator killed with SIGKILL at step 1 of a ramp stays down longer than the step's
/// pause and analysis interval, then a new process continues from `status`: step 1 keeps its
/// start time, the overdue analysis runs and advances exactly one step, the next step waits
/// its own pause, the observed step never goes back or jumps, and the ramp completes.
#[test]
fn restart_mid_ramp_continues_from_status() {
    let Some(setup) =
        Setup::with_metrics("restart_mid_ramp_continues_from_status", "e2e-op-restart")
    else {
        return;
    };
    let metrics = setup.metrics.as_ref().expect("metrics pipeline");
    let options = setup.operator().prometheus(metrics.prometheus.url());
    let mut operator = Some(OperatorProcess::start(options.clone()));
    setup.create_flag(&ramp_flag("payments", &[10.0, 25.0, 50.0, 100.0], "10s"));

    // Set by the hook: the sample at the kill, and the wall time of the restart.
    let mut killed: Option<RampSample> = None;
    let mut restarted_at = None;
    let trace = setup.follow_ramp("payments", Duration::from_secs(150), |seen| {
        // Killed once step 1 is published too: a sample can fall between the status write
        // and the publish, and the hook's wait would keep the trace from seeing the 25%.
        if killed.is_some() || seen.step != Some(1) || seen.published != Some((true, 25.0)) {
            return;
        }
        // The step's event is recorded after its status write. Killed in between, the process
        // takes the event with it (events are best-effort), and the count checked at the end
        // would be one short; the restart is what this test is about, so let the event land.
        setup.wait(
            "the StepAdvanced event of step 1 before the kill",
            Duration::from_secs(10),
            || (setup.event_count("payments", "StepAdvanced") >= 1).then_some(()),
        );
        let mut old = operator.take().expect("first operator");
        old.kill();
        eprintln!(
            "killed the operator (pid {}) at step 1, {:?} into the step",
            old.pid(),
            seen.since_step_started
        );
        drop(old);
        // Down past the end of the step's pause and its first analysis.
        std::thread::sleep(INTERVAL + Duration::from_secs(2));
        let frozen = setup
            .flag("payments")
            .and_then(|f| f.status)
            .expect("status");
        assert_eq!(frozen.current_step, Some(1), "moved with no operator");
        assert_eq!(
            frozen.step_started_at.map(|t| t.0),
            seen.step_started_at,
            "moved with no operator"
        );
        restarted_at = Some(Timestamp::now());
        operator = Some(OperatorProcess::start(options.clone()));
        killed = Some(seen.clone());
    });
    let killed = killed.expect("the ramp was seen at step 1 and the operator killed");
    let restarted_at = restarted_at.expect("restarted");
    eprintln!(
        "restart: steps seen {:?}, published percents {:?}, step starts {:?}",
        trace.steps(),
        trace.published(),
        trace.step_starts()
    );
    trace.assert_walked(&[10.0, 25.0, 50.0, 100.0], Duration::from_secs(10));
    // Step 1 kept its start time across the restart: continued, not started again.
    assert_eq!(
        trace.step_started(1),
        vec![killed.step_started_at.expect("stepStartedAt")]
    );
    // Step 2 started after the restart, not back-dated to when it was due: its pause was
    // served in full (`assert_walked` checked the spacing).
    let step2 = trace.step_started(2)[0];
    assert!(
        step2.as_second() >= restarted_at.as_second(),
        "step 2 started at {step2}, before the restart at {restarted_at}"
    );
    setup.wait_events(
        "payments",
        &[("RolloutStarted", 1), ("StepAdvanced", 3), ("Completed", 1)],
    );
}

/// Two replicas with leader election on one Lease: exactly one writes (status, ConfigMap,
/// events, `rollgate_leader 1`); SIGKILL of the leader hands over to the other within the
/// lease duration, and the new leader reconciles a kill switch.
#[test]
fn two_replicas_have_exactly_one_writer() {
    let Some(setup) = Setup::without_metrics("e2e-op-ha") else {
        return;
    };
    let mut a = OperatorProcess::start(setup.operator().leader_election("e2e-a"));
    let mut b = OperatorProcess::start(setup.operator().leader_election("e2e-b"));
    let leader_of = |a: &OperatorProcess, b: &OperatorProcess| {
        let (la, lb) = (a.metric("rollgate_leader")?, b.metric("rollgate_leader")?);
        match (la, lb) {
            (1.0, 0.0) => Some("e2e-a"),
            (0.0, 1.0) => Some("e2e-b"),
            _ => None,
        }
    };
    let (leader, _) = setup.wait("exactly one leader", Duration::from_secs(40), || {
        leader_of(&a, &b)
    });
    assert_eq!(setup.lease_holder().as_deref(), Some(leader));
    let (leader_process, follower_process) = if leader == "e2e-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let follower = follower_process.name().to_string();

    // A time-only ramp: its start is an event, written by the leader only.
    setup.create_flag(&json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": "ha"},
        "spec": {"enabled": true, "rollout": {"steps": [
            {"percent": 50, "pause": "1h"}, {"percent": 100}
        ]}}
    }));
    setup.wait_published("ha", true, 50.0);
    setup.wait("the RolloutStarted event", Duration::from_secs(20), || {
        setup
            .event_reasons("ha")
            .contains(&"RolloutStarted".to_string())
            .then_some(())
    });

    assert_eq!(leader_of(leader_process, follower_process), Some(leader));
    let ok = r#"rollgate_reconcile_total{result="ok"}"#;
    assert!(leader_process.metric(ok).unwrap_or(0.0) >= 1.0);
    assert_eq!(
        follower_process.metric(ok).unwrap_or(0.0),
        0.0,
        "the follower reconciled"
    );
    assert_eq!(
        follower_process.series("rollgate_flag_percent"),
        Vec::new(),
        "the follower resolved a flag"
    );
    assert!(!leader_process.series("rollgate_flag_percent").is_empty());
    assert_eq!(setup.configmap_managers(), vec!["rollgate".to_string()]);
    assert_eq!(setup.status_managers("ha"), vec!["rollgate".to_string()]);
    assert_eq!(setup.event_instances("ha"), vec![leader.to_string()]);

    // The leader crashes; the follower takes over when the lease expires.
    let killed = Instant::now();
    leader_process.kill();
    let (_, took_over) = setup.wait(
        "the follower to become leader",
        LEASE_DURATION + Duration::from_secs(10),
        || (follower_process.metric("rollgate_leader")? == 1.0).then_some(()),
    );
    let failover = took_over - killed;
    assert_eq!(setup.lease_holder().as_deref(), Some(follower.as_str()));

    let (from_kubectl, _) = setup.measure_publish("ha", false, 0.0, || {
        setup.kubectl_ok(&[
            "patch",
            "ff",
            "ha",
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ]);
    });
    let failover_to_kill = killed.elapsed();
    eprintln!(
        "LATENCY failover_ms={} kill_switch_after_failover_ms={} leader_kill_to_configmap_ms={}",
        failover.as_millis(),
        from_kubectl.as_millis(),
        failover_to_kill.as_millis()
    );
    assert!(
        failover_to_kill < LEASE_DURATION + Duration::from_secs(10),
        "{failover_to_kill:?}"
    );
    assert_eq!(setup.configmap_managers(), vec!["rollgate".to_string()]);
    assert_eq!(setup.status_managers("ha"), vec!["rollgate".to_string()]);
    setup.wait_events("ha", &[("RolloutStarted", 1), ("Disabled", 1)]);
    let mut events = setup.events("ha");
    events.sort_by_key(|event| event.event_time.as_ref().map(|time| time.0));
    let by_reason: Vec<(String, String)> = events
        .into_iter()
        .map(|event| {
            let reason = event.reason.unwrap_or_default();
            (reason, event.reporting_instance.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        by_reason,
        vec![
            ("RolloutStarted".to_string(), leader.to_string()),
            ("Disabled".to_string(), follower.clone()),
        ],
        "each event from the replica that led at the time"
    );

    // The crashed replica comes back as a follower; SIGTERM on the leader releases the
    // Lease and the other takes over.
    *leader_process = OperatorProcess::start(setup.operator().leader_election(leader));
    let (is_leader, _) = setup.wait(
        "the restarted replica to serve its metrics",
        Duration::from_secs(10),
        || leader_process.metric("rollgate_leader"),
    );
    assert_eq!(is_leader, 0.0, "the restarted replica must follow");
    let terminated = Instant::now();
    follower_process.stop();
    let (_, took_over) = setup.wait(
        "the restarted replica to become leader",
        LEASE_DURATION + Duration::from_secs(10),
        || (leader_process.metric("rollgate_leader")? == 1.0).then_some(()),
    );
    eprintln!(
        "LATENCY graceful_handover_ms={}",
        (took_over - terminated).as_millis()
    );
    assert_eq!(setup.lease_holder().as_deref(), Some(leader));
}

/// Deleting a flag removes its entry from the document (finalizer), keeps the others, and
/// the object goes away.
#[test]
fn deleting_a_flag_removes_it_from_the_configmap() {
    let Some(setup) = Setup::without_metrics("e2e-op-delete") else {
        return;
    };
    let _operator = OperatorProcess::start(setup.operator());
    setup.create_flag(&static_flag("doomed", 30.0));
    setup.create_flag(&static_flag("kept", 40.0));
    setup.wait_published("doomed", true, 30.0);
    setup.wait_published("kept", true, 40.0);
    let finalizers = setup.flag("doomed").unwrap().metadata.finalizers;
    assert_eq!(finalizers, Some(vec!["rollgate.dev/unpublish".to_string()]));

    let deleted = Instant::now();
    setup.kubectl_ok(&["delete", "ff", "doomed", "--wait=false"]);
    let (_, gone) = setup.wait(
        "doomed to leave the document",
        Duration::from_secs(10),
        || {
            let document = setup.document()?;
            (!document.flags.contains_key("doomed")).then_some(())
        },
    );
    eprintln!(
        "LATENCY delete_to_configmap_ms={}",
        (gone - deleted).as_millis()
    );
    setup.wait(
        "the FeatureFlag object to be gone",
        Duration::from_secs(10),
        || setup.flag("doomed").is_none().then_some(()),
    );
    let kept = setup.entry("kept").expect("the other flag stays");
    assert!(kept.enabled && kept.percent == 40.0, "{kept:?}");
}

/// A hand edit of `flags.json` is reverted, a key someone else added stays; a ConfigMap
/// deleted by hand comes back.
#[test]
fn hand_edited_configmap_is_restored() {
    let Some(setup) = Setup::without_metrics("e2e-op-handedit") else {
        return;
    };
    let _operator = OperatorProcess::start(setup.operator());
    setup.create_flag(&static_flag("dark-mode", 25.0));
    setup.wait_published("dark-mode", true, 25.0);
    let original = setup.document_json().expect("flags.json");

    let edited = Instant::now();
    setup.kubectl_ok(&[
        "patch",
        "cm",
        CONFIGMAP,
        "--type=merge",
        "-p",
        r#"{"data":{"flags.json":"{}","other":"keep"}}"#,
    ]);
    let (_, restored) = setup.wait("flags.json to be restored", Duration::from_secs(10), || {
        (setup.document_json()? == original).then_some(())
    });
    eprintln!(
        "LATENCY hand_edit_restored_ms={}",
        (restored - edited).as_millis()
    );
    let configmap = setup.configmap().expect("ConfigMap");
    let data = configmap.data.expect("data");
    assert_eq!(data.get("other").map(String::as_str), Some("keep"));
    // The restore stays: no fight with the other key's owner.
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        assert_eq!(setup.document_json().as_deref(), Some(original.as_str()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = setup.configmap().unwrap().data.unwrap();
    assert_eq!(data.get("other").map(String::as_str), Some("keep"));

    let deleted = Instant::now();
    setup.kubectl_ok(&["delete", "cm", CONFIGMAP]);
    let (_, recreated) = setup.wait(
        "the ConfigMap to come back",
        Duration::from_secs(10),
        || (setup.document_json()? == original).then_some(()),
    );
    eprintln!(
        "LATENCY configmap_delete_restored_ms={}",
        (recreated - deleted).as_millis()
    );
}

// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------

fn static_flag(name: &str, percent: f64) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": name},
        "spec": {"enabled": true, "percent": percent}
    })
}

/// A ramp through `percents`, each step but the last held for `pause`, guarded by the
/// error ratio every 10 s; one failure rolls back, no data holds.
fn ramp_flag(name: &str, percents: &[f64], pause: &str) -> Value {
    let last = percents.len() - 1;
    let steps: Vec<Value> = percents
        .iter()
        .enumerate()
        .map(|(i, percent)| {
            if i == last {
                json!({"percent": percent})
            } else {
                json!({"percent": percent, "pause": pause})
            }
        })
        .collect();
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": name},
        "spec": {
            "enabled": true,
            "rollout": {
                "steps": steps,
                "analysis": {
                    "interval": format!("{}s", INTERVAL.as_secs()),
                    "failureLimit": 1,
                    "metrics": [{
                        "name": "error-ratio",
                        "query": ERROR_RATIO,
                        "max": MAX_ERROR_RATIO,
                        "onNoData": "Hold"
                    }]
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Harness: cluster access through the kube client, and the test's metrics pipeline
// ---------------------------------------------------------------------------------------

struct Setup {
    kubeconfig: PathBuf,
    namespace: TestNamespace,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    metrics: Option<MetricsPipeline>,
}

impl Drop for Setup {
    /// The operators are gone by now: take the finalizers off the flags that are left, so
    /// that the namespace (deleted next, by `TestNamespace`) does not hang in Terminating.
    fn drop(&mut self) {
        let flags = self
            .block_on(self.flags().list(&ListParams::default()))
            .map(|list| list.items)
            .unwrap_or_default();
        let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for flag in flags {
            let name = flag.metadata.name.unwrap_or_default();
            let _ = self.block_on(self.flags().patch(&name, &PatchParams::default(), &patch));
        }
    }
}

/// The scrape target and the Prometheus scraping it, with data flowing.
struct MetricsPipeline {
    target: ScrapeTarget,
    prometheus: PrometheusServer,
    client: PrometheusClient,
}

impl MetricsPipeline {
    /// The value of an instant query now, when there is one.
    fn value(&self, setup: &Setup, promql: &str) -> Option<f64> {
        match setup.block_on(self.client.query(promql, None)) {
            Ok(Sample::Value(value)) => Some(value),
            _ => None,
        }
    }
}

impl Setup {
    /// A namespace with the CRD installed, or `None` when the cluster tier is not configured.
    fn without_metrics(prefix: &str) -> Option<Self> {
        Some(Self::connect(kubeconfig()?, prefix))
    }

    fn connect(kubeconfig: PathBuf, prefix: &str) -> Self {
        install_crd(&kubeconfig);
        let namespace = TestNamespace::create(&kubeconfig, prefix);
        let (runtime, client) = runtime_and_client(&kubeconfig);
        Self {
            kubeconfig,
            namespace,
            runtime,
            client,
            metrics: None,
        }
    }

    /// As [`Setup::without_metrics`], plus a scrape target at 0% errors and a Prometheus
    /// scraping it every second, returned once the error ratio has a value; `None` also
    /// when Prometheus is not installed.
    fn with_metrics(test: &str, prefix: &str) -> Option<Self> {
        let kubeconfig = kubeconfig()?;
        if !prometheus_or_skip(test) {
            return None;
        }
        let mut setup = Self::connect(kubeconfig, prefix);
        let target = ScrapeTarget::start().expect("scrape target");
        let prometheus =
            PrometheusServer::start_scraping(&target.address()).expect("start Prometheus");
        let client =
            PrometheusClient::new(PrometheusConfig::new(prometheus.url())).expect("client");
        let pipeline = MetricsPipeline {
            target,
            prometheus,
            client,
        };
        let started = Instant::now();
        setup.wait(
            "the error ratio in Prometheus",
            Duration::from_secs(30),
            || pipeline.value(&setup, ERROR_RATIO),
        );
        eprintln!(
            "metrics pipeline ready after {:.1} s (Prometheus {})",
            started.elapsed().as_secs_f64(),
            pipeline.prometheus.url()
        );
        setup.metrics = Some(pipeline);
        Some(setup)
    }

    fn operator(&self) -> OperatorOptions {
        OperatorOptions::new(&self.kubeconfig, &self.namespace.name)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.namespace.name.as_str()];
        full.extend_from_slice(args);
        kubectl_ok(&self.kubeconfig, &full)
    }

    fn create_flag(&self, manifest: &Value) {
        let text = manifest.to_string();
        let output = support::cluster::kubectl_with_input(
            &self.kubeconfig,
            &["create", "-n", &self.namespace.name, "-f", "-"],
            Some(&text),
        );
        assert!(
            output.status.success(),
            "kubectl create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn flags(&self) -> Api<FeatureFlag> {
        Api::namespaced(self.client.clone(), &self.namespace.name)
    }

    fn flag(&self, name: &str) -> Option<FeatureFlag> {
        self.block_on(self.flags().get_opt(name)).ok().flatten()
    }

    fn configmap(&self) -> Option<ConfigMap> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace.name);
        self.block_on(api.get_opt(CONFIGMAP)).ok().flatten()
    }

    /// `flags.json` as stored.
    fn document_json(&self) -> Option<String> {
        self.configmap()?.data?.remove("flags.json")
    }

    fn document(&self) -> Option<FlagDocument> {
        FlagDocument::from_json(self.document_json()?.as_bytes()).ok()
    }

    fn entry(&self, key: &str) -> Option<FlagEntry> {
        self.document()?.flags.remove(key)
    }

    /// Polls `check` every 50 ms until it gives a value; returns it and when it was seen.
    /// On timeout, panics with the flags' status and the published document.
    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Option<T>,
    ) -> (T, Instant) {
        wait_for(what, timeout, POLL, check, || {
            format!(
                "flags: {}\nflags.json: {}",
                self.describe_flags(),
                self.document_json().unwrap_or_else(|| "(none)".into())
            )
        })
    }

    fn wait_published(&self, key: &str, enabled: bool, percent: f64) {
        self.wait(
            &format!("{key} published with enabled={enabled} percent={percent}"),
            Duration::from_secs(30),
            || {
                let entry = self.entry(key)?;
                (entry.enabled == enabled && entry.percent == percent).then_some(())
            },
        );
    }

    /// Runs `action` (a kubectl call) and measures until the ConfigMap shows `key` at
    /// `enabled`/`percent`: from the start of the call, and from its return (the API write).
    fn measure_publish(
        &self,
        key: &str,
        enabled: bool,
        percent: f64,
        action: impl FnOnce(),
    ) -> (Duration, Duration) {
        let started = Instant::now();
        action();
        let written = Instant::now();
        let (_, seen) = self.wait(
            &format!("{key} published with enabled={enabled} percent={percent}"),
            Duration::from_secs(30),
            || {
                let entry = self.entry(key)?;
                (entry.enabled == enabled && entry.percent == percent).then_some(())
            },
        );
        (seen - started, seen - written)
    }

    fn describe_flags(&self) -> String {
        let flags = self
            .block_on(self.flags().list(&ListParams::default()))
            .map(|list| list.items)
            .unwrap_or_default();
        flags
            .iter()
            .map(|flag| {
                format!(
                    "{}: {}",
                    flag.metadata.name.clone().unwrap_or_default(),
                    serde_json::to_string(&flag.status).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Events about the flag `name` (events.k8s.io/v1, as the operator records them).
    fn events(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace.name);
        self.block_on(api.list(&ListParams::default()))
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|event| {
                event
                    .regarding
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some(name))
            })
            .collect()
    }

    fn event_reasons(&self, name: &str) -> Vec<String> {
        self.events(name)
            .into_iter()
            .filter_map(|event| event.reason)
            .collect()
    }

    /// How many times an event of `reason` was recorded about `name` (a repeat the
    /// recorder folded into a series counts as many times as it happened).
    fn event_count(&self, name: &str, reason: &str) -> i32 {
        self.events(name)
            .into_iter()
            .filter(|event| event.reason.as_deref() == Some(reason))
            .map(|event| event.series.map_or(1, |series| series.count))
            .sum()
    }

    /// Waits until the flag's events are exactly `counts` for those reasons: they are
    /// recorded after the status and ConfigMap writes, so they may trail what the test saw.
    /// Then checks that the counts stay (an event recorded twice would show up late).
    fn wait_events(&self, name: &str, counts: &[(&str, i32)]) {
        let actual = || {
            counts
                .iter()
                .map(|(reason, _)| (reason.to_string(), self.event_count(name, reason)))
                .collect::<Vec<_>>()
        };
        let expected: Vec<(String, i32)> = counts
            .iter()
            .map(|(reason, count)| (reason.to_string(), *count))
            .collect();
        let seen = self.wait(
            &format!("events {expected:?} on {name}"),
            Duration::from_secs(10),
            || {
                let actual = actual();
                actual
                    .iter()
                    .zip(&expected)
                    .all(|(a, e)| a.1 >= e.1)
                    .then_some(actual)
            },
        );
        assert_eq!(seen.0, expected, "events on {name}");
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(actual(), expected, "events on {name}, a second later");
    }

    /// The distinct `reportingInstance`s of the flag's events.
    fn event_instances(&self, name: &str) -> Vec<String> {
        let mut instances: Vec<String> = self
            .events(name)
            .into_iter()
            .map(|event| event.reporting_instance.unwrap_or_default())
            .collect();
        instances.sort();
        instances.dedup();
        instances
    }

    fn lease_holder(&self) -> Option<String> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace.name);
        let lease = self.block_on(api.get_opt("rollgate-leader")).ok()??;
        lease.spec?.holder_identity
    }

    /// The field managers of the ConfigMap, sorted and distinct.
    fn configmap_managers(&self) -> Vec<String> {
        let configmap = self.configmap().expect("ConfigMap");
        let mut managers: Vec<String> = configmap
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| entry.manager)
            .collect();
        managers.sort();
        managers.dedup();
        managers
    }

    /// The field managers that own any field under `status` of the flag.
    fn status_managers(&self, name: &str) -> Vec<String> {
        let flag = self.flag(name).expect("flag");
        let mut managers: Vec<String> = flag
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| {
                entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|fields| fields.0.get("f:status").is_some())
            })
            .filter_map(|entry| entry.manager)
            .collect();
        managers.sort();
        managers.dedup();
        managers
    }

    /// Follows a ramp until it is `Complete` and published at its last percent, looking at
    /// the status and the ConfigMap every 50 ms; `on_sample` sees every change.
    fn follow_ramp(
        &self,
        name: &str,
        timeout: Duration,
        mut on_sample: impl FnMut(&RampSample),
    ) -> RampTrace {
        let mut trace = RampTrace::default();
        let deadline = Instant::now() + timeout;
        loop {
            let flag = self.flag(name);
            let status = flag.and_then(|flag| flag.status);
            let entry = self.entry(name);
            let sample = RampSample {
                step: status.as_ref().and_then(|s| s.current_step),
                step_started_at: status
                    .as_ref()
                    .and_then(|s| s.step_started_at.as_ref())
                    .map(|t| t.0),
                since_step_started: status
                    .as_ref()
                    .and_then(|s| s.step_started_at.as_ref())
                    .and_then(|t| {
                        let elapsed = Timestamp::now().duration_since(t.0);
                        Duration::try_from(elapsed).ok()
                    }),
                phase: status.as_ref().map(|s| s.phase),
                published: entry.as_ref().map(|e| (e.enabled, e.percent)),
            };
            let done =
                sample.phase == Some(Phase::Complete) && sample.published == Some((true, 100.0));
            if trace
                .samples
                .last()
                .is_none_or(|last| !last.same_state(&sample))
            {
                trace.samples.push(sample.clone());
                on_sample(&sample);
            }
            if done {
                return trace;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not complete within {timeout:?}; trace {:?}\nflags: {}",
                    trace.samples,
                    self.describe_flags()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// What one look at a ramp found.
#[derive(Clone, Debug)]
struct RampSample {
    step: Option<u32>,
    step_started_at: Option<Timestamp>,
    since_step_started: Option<Duration>,
    phase: Option<Phase>,
    /// `(enabled, percent)` in the ConfigMap.
    published: Option<(bool, f64)>,
}

impl RampSample {
    fn same_state(&self, other: &Self) -> bool {
        self.step == other.step
            && self.step_started_at == other.step_started_at
            && self.phase == other.phase
            && self.published == other.published
    }
}

/// The changes seen while following a ramp.
#[derive(Debug, Default)]
struct RampTrace {
    samples: Vec<RampSample>,
}

impl RampTrace {
    /// The observed `status.currentStep`s, consecutive repeats dropped.
    fn steps(&self) -> Vec<u32> {
        let mut steps: Vec<u32> = self.samples.iter().filter_map(|s| s.step).collect();
        steps.dedup();
        steps
    }

    /// The published percents while enabled, consecutive repeats dropped.
    fn published(&self) -> Vec<f64> {
        let mut percents: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| s.published)
            .map(|(enabled, percent)| if enabled { percent } else { 0.0 })
            .collect();
        percents.dedup();
        percents
    }

    /// The distinct `stepStartedAt` values seen while at `step`.
    fn step_started(&self, step: u32) -> Vec<Timestamp> {
        let mut starts: Vec<Timestamp> = self
            .samples
            .iter()
            .filter(|s| s.step == Some(step))
            .filter_map(|s| s.step_started_at)
            .collect();
        starts.dedup();
        starts
    }

    /// The first `stepStartedAt` of each step seen, in step order.
    fn step_starts(&self) -> Vec<(u32, Timestamp)> {
        self.steps()
            .into_iter()
            .filter_map(|step| Some((step, *self.step_started(step).first()?)))
            .collect()
    }

    /// Every step in order, none repeated or skipped, each started once and at least
    /// `pause` after the previous one, each percent published in order, ending `Complete`.
    fn assert_walked(&self, percents: &[f64], pause: Duration) {
        let observed: Vec<u32> = self.samples.iter().filter_map(|s| s.step).collect();
        for pair in observed.windows(2) {
            assert!(
                pair[1] == pair[0] || pair[1] == pair[0] + 1,
                "step went {} → {}: {observed:?}",
                pair[0],
                pair[1]
            );
        }
        let expected: Vec<u32> = (0..percents.len() as u32).collect();
        assert_eq!(self.steps(), expected, "every step once, in order");
        for step in expected {
            assert_eq!(
                self.step_started(step).len(),
                1,
                "step {step} started more than once: {:?}",
                self.samples
            );
        }
        for pair in self.step_starts().windows(2) {
            let ((a, started_a), (b, started_b)) = (pair[0], pair[1]);
            let held = started_b.duration_since(started_a);
            assert!(
                held >= jiff::SignedDuration::try_from(pause).unwrap(),
                "step {a} lasted only {held:?} before step {b}"
            );
        }
        assert_eq!(self.published(), percents, "published percents in order");
        assert_eq!(
            self.samples.last().and_then(|s| s.phase),
            Some(Phase::Complete)
        );
    }
}

// ---------------------------------------------------------------------------------------
// The scrape target
// ---------------------------------------------------------------------------------------

/// `/metrics` on 127.0.0.1 with `http_requests_total{code="200"}` and `{code="500"}`: each
/// scrape adds 100 requests per second elapsed since the previous one, a settable fraction
/// of them errors. Stopped (thread joined) when dropped.
struct ScrapeTarget {
    address: SocketAddr,
    error_fraction: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const REQUESTS_PER_SECOND: f64 = 100.0;

struct Counters {
    last: Instant,
    ok: f64,
    errors: f64,
}

impl ScrapeTarget {
    fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let error_fraction = Arc::new(AtomicU64::new(0f64.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Mutex::new(Counters {
            last: Instant::now(),
            ok: 0.0,
            errors: 0.0,
        });
        let (fraction, flag) = (Arc::clone(&error_fraction), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let fraction = f64::from_bits(fraction.load(Ordering::Relaxed));
                        let _ = serve_metrics(stream, &counters, fraction);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            address,
            error_fraction,
            stop,
            thread: Some(thread),
        })
    }

    /// `host:port`, as a Prometheus target.
    fn address(&self) -> String {
        self.address.to_string()
    }

    fn set_error_fraction(&self, fraction: f64) {
        self.error_fraction
            .store(fraction.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_metrics(
    mut stream: TcpStream,
    counters: &Mutex<Counters>,
    fraction: f64,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let (ok, errors) = {
        let mut counters = counters.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let requests = REQUESTS_PER_SECOND * (now - counters.last).as_secs_f64();
        counters.last = now;
        counters.errors += requests * fraction;
        counters.ok += requests * (1.0 - fraction);
        (counters.ok, counters.errors)
    };
    let body = format!(
        "# HELP http_requests_total Simulated requests.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{{code=\"200\"}} {ok}\n\
         http_requests_total{{code=\"500\"}} {errors}\n"
    );
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
