//! End-to-end tier, part 4: the operator under churn on a real API server. Bulk creates and
//! deletes, and a seeded storm of edits from concurrent clients; the published document must
//! follow the API server's live objects, fast, and go quiet once the edits stop.
//!
//! Runs when `ROLLGATE_E2E_KUBECONFIG` points at a cluster (`scripts/test-e2e` sets it):
//!
//! ```sh
//! ROLLGATE_E2E_KUBECONFIG=… cargo test --test e2e_churn -- --test-threads=1 --nocapture
//! ```
//!
//! `ROLLGATE_CHURN_SEED` replays a churn run; every run prints its seed. Measured figures are
//! printed as `LATENCY name_ms=…` and `CHURN …` lines.

mod support {
    pub mod cluster;
    pub mod operator;
}

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rollgate_core::crd::FeatureFlag;
use rollgate_sdk::FlagDocument;
use serde_json::{Value, json};

use support::cluster::{
    TestNamespace, install_crd, kubeconfig, kubectl_with_input, runtime_and_client, wait_for,
};
use support::operator::{OperatorOptions, OperatorProcess};

/// The operator's default ConfigMap.
const CONFIGMAP: &str = "rollgate-flags";
/// How often the tests read the ConfigMap while they measure.
const POLL: Duration = Duration::from_millis(20);

/// The issue's bounds: a bulk create of 40 is published within 2 s, a bulk delete of 20
/// leaves the document within 1 s, and after a churn the document matches within 5 s.
const BULK_CREATE_BOUND: Duration = Duration::from_secs(2);
const BULK_DELETE_BOUND: Duration = Duration::from_secs(1);
const SETTLE_BOUND: Duration = Duration::from_secs(5);
/// How long "at rest" is watched for writes.
const AT_REST: Duration = Duration::from_secs(5);

const CHURN_FLAGS: usize = 150;
const CHURN_EDITS: usize = 400;
const CHURN_CLIENTS: usize = 6;

/// 40 flags in one `kubectl apply` of a List are all published within 2 s of the apply
/// returning, with no reconcile error; deleting 20 of them in one DELETE of the collection takes
/// them all out of the document within 1 s, and the objects go.
#[test]
fn bulk_create_then_bulk_delete() {
    let Some(setup) = Setup::connect("e2e-churn-bulk") else {
        return;
    };
    let operator = OperatorProcess::start(setup.operator());
    let flags: Vec<Value> = (0..40)
        .map(|i| static_flag(&format!("bulk-{i:02}"), f64::from(i)))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": flags});

    let started = Instant::now();
    setup.kubectl_input(&["apply", "-f", "-"], &list.to_string());
    let applied = Instant::now();
    let (_, published) = setup.wait("all 40 flags published", Duration::from_secs(30), || {
        setup.document_matches_live().then_some(())
    });
    let document = setup.document().expect("flags.json");
    assert_eq!(document.flags.len(), 40, "{:?}", document.flags.keys());
    eprintln!(
        "LATENCY bulk_create_40_ms={} (from the start of kubectl apply: {} ms)",
        (published - applied).as_millis(),
        (published - started).as_millis()
    );
    assert!(
        published - applied <= BULK_CREATE_BOUND,
        "40 flags took {:?} to publish after the apply returned (bound {BULK_CREATE_BOUND:?})",
        published - applied
    );
    assert_eq!(
        operator.series("rollgate_reconcile_errors_total"),
        Vec::new(),
        "a bulk create is no error:\n{}",
        operator.log_tail(40)
    );
    eprintln!(
        "finalizer conflicts retried at once: {}",
        operator
            .metric("rollgate_finalizer_conflicts_total")
            .unwrap_or_default()
    );

    // One DELETE of the collection, so all 20 get their deletion timestamp at once.
    let doomed: Vec<String> = (0..20).map(|i| format!("bulk-{i:02}")).collect();
    let mut args = vec!["label", "featureflags"];
    args.extend(doomed.iter().map(String::as_str));
    args.push("batch=doomed");
    setup.kubectl_input(&args, "");
    let started = Instant::now();
    setup
        .runtime
        .block_on(setup.flags().delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("batch=doomed"),
        ))
        .expect("delete the collection");
    let deleted = Instant::now();
    let (_, gone) = setup.wait(
        "the 20 deleted flags to leave the document",
        Duration::from_secs(30),
        || {
            let document = setup.document()?;
            (!doomed.iter().any(|name| document.flags.contains_key(name))).then_some(())
        },
    );
    eprintln!(
        "LATENCY bulk_delete_20_ms={} (from the start of the delete: {} ms)",
        (gone - deleted).as_millis(),
        (gone - started).as_millis()
    );
    assert!(
        gone - deleted <= BULK_DELETE_BOUND,
        "20 deleted flags took {:?} to leave the document (bound {BULK_DELETE_BOUND:?})",
        gone - deleted
    );
    assert_eq!(setup.document().map(|d| d.flags.len()), Some(20));
    setup.wait("the deleted objects to go", Duration::from_secs(10), || {
        (setup.live_flags().len() == 20 && setup.terminating_flags().is_empty()).then_some(())
    });
    assert_eq!(
        operator.series("rollgate_reconcile_errors_total"),
        Vec::new(),
        "a bulk delete is no error:\n{}",
        operator.log_tail(40)
    );
}

/// 150 flags, then 400 seeded random edits from 6 concurrent clients: percent changes,
/// kill-switch toggles, allow-list changes, deletes and re-creates of just-deleted names.
/// Within 5 s of the last edit the document holds exactly the live objects' entries, no
/// object is left terminating, and then nothing is written for 5 s.
#[test]
fn seeded_churn_settles_to_the_live_objects_and_goes_quiet() {
    let Some(setup) = Setup::connect("e2e-churn-edits") else {
        return;
    };
    let seed = std::env::var("ROLLGATE_CHURN_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("CHURN seed={seed} (replay with ROLLGATE_CHURN_SEED={seed})");
    let operator = OperatorProcess::start(setup.operator());
    let flags: Vec<Value> = (0..CHURN_FLAGS)
        .map(|i| static_flag(&format!("f{i}"), 50.0))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": flags});
    setup.kubectl_input(&["apply", "-f", "-"], &list.to_string());
    setup.wait("the 150 flags published", Duration::from_secs(60), || {
        setup.document_matches_live().then_some(())
    });

    let started = Instant::now();
    let tallies: Vec<Tally> = setup.runtime.block_on(async {
        let clients = (0..CHURN_CLIENTS).map(|client| {
            let api = setup.flags();
            // Each client owns the names ≡ client (mod 6), so it knows which it deleted.
            let names: Vec<String> = (client..CHURN_FLAGS)
                .step_by(CHURN_CLIENTS)
                .map(|i| format!("f{i}"))
                .collect();
            let rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64));
            tokio::spawn(churn_client(
                api,
                names,
                CHURN_EDITS / CHURN_CLIENTS + usize::from(client < CHURN_EDITS % CHURN_CLIENTS),
                rng,
            ))
        });
        futures::future::join_all(clients)
            .await
            .into_iter()
            .map(|joined| joined.expect("churn client"))
            .collect()
    });
    let stopped = Instant::now();
    let total = tallies.iter().fold(Tally::default(), |sum, t| sum.plus(t));
    eprintln!(
        "CHURN {} edits in {:.1} s ({:.1}/s): {total:?}",
        total.edits(),
        (stopped - started).as_secs_f64(),
        total.edits() as f64 / (stopped - started).as_secs_f64()
    );
    assert_eq!(total.edits(), CHURN_EDITS, "every edit was made: {total:?}");

    let (_, settled) = setup.wait(
        "the document to equal the live objects",
        Duration::from_secs(60),
        || (setup.document_matches_live() && setup.terminating_flags().is_empty()).then_some(()),
    );
    eprintln!(
        "LATENCY churn_settled_ms={}",
        (settled - stopped).as_millis()
    );
    assert!(
        settled - stopped <= SETTLE_BOUND,
        "the document took {:?} to follow the live objects (bound {SETTLE_BOUND:?})",
        settled - stopped
    );

    let before = setup.resource_versions();
    std::thread::sleep(AT_REST);
    assert_unwritten_since(&before, &setup.resource_versions());
    eprintln!(
        "CHURN reconcile errors: {:?}; finalizer conflicts retried at once: {}",
        operator.series("rollgate_reconcile_errors_total"),
        operator
            .metric("rollgate_finalizer_conflicts_total")
            .unwrap_or_default()
    );
}

/// 500 flags (300 static, 100 with allowed users, 100 time-only ramps) exist before the
/// operator starts. All are published, with no reconcile error, and then the operator is
/// idle: for 10 s it reconciles nothing and writes no flag and no ConfigMap.
#[test]
fn five_hundred_flags_are_published_and_then_the_operator_is_idle() {
    let Some(setup) = Setup::connect("e2e-scale-500") else {
        return;
    };
    let flags: Vec<Value> = (0..SCALE_FLAGS).map(scale_flag).collect();
    setup.runtime.block_on(async {
        let api = setup.flags();
        futures::stream::iter(flags)
            .map(|flag| {
                let api = api.clone();
                async move {
                    let flag: FeatureFlag = serde_json::from_value(flag).expect("a FeatureFlag");
                    api.create(&PostParams::default(), &flag)
                        .await
                        .expect("create a flag");
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    });
    let started = Instant::now();
    let operator = OperatorProcess::start(setup.operator());
    let (_, published) = setup.wait("all 500 flags published", SCALE_PUBLISH_BOUND, || {
        let document = setup.document()?;
        let live = setup.live_flags();
        (live.len() == SCALE_FLAGS
            && document.flags.len() == SCALE_FLAGS
            && live
                .iter()
                .all(|flag| document.flags.contains_key(flag.key())))
        .then_some(())
    });
    eprintln!(
        "LATENCY scale_500_published_ms={}",
        (published - started).as_millis()
    );
    // The start's work (finalizers, first statuses) ends before "rest" begins: the count
    // of reconciles holds still for 2 s.
    let reconciles = || operator.metric("rollgate_reconcile_total{result=\"ok\"}");
    let mut last = reconciles();
    setup.wait(
        "the start's reconciles to end",
        Duration::from_secs(60),
        || {
            std::thread::sleep(Duration::from_secs(2));
            let now = reconciles();
            let still = now == last && now.is_some_and(|n| n >= SCALE_FLAGS as f64);
            last = now;
            still.then_some(())
        },
    );
    let (before, reconciled_before) = (setup.resource_versions(), reconciles());
    std::thread::sleep(SCALE_AT_REST);
    let (after, reconciled_after) = (setup.resource_versions(), reconciles());
    assert_unwritten_since(&before, &after);
    assert_eq!(
        reconciled_before, reconciled_after,
        "reconciles at rest, before and after {SCALE_AT_REST:?}"
    );
    assert!(
        operator
            .series("rollgate_reconcile_errors_total")
            .is_empty(),
        "reconcile errors: {:?}",
        operator.series("rollgate_reconcile_errors_total")
    );
}

/// No flag and no ConfigMap was written, created or deleted between the two readings of
/// `Setup::resource_versions`.
fn assert_unwritten_since(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    let changed: Vec<&String> = after
        .iter()
        .filter(|(name, version)| before.get(*name) != Some(*version))
        .map(|(name, _)| name)
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "written at rest: {changed:?}"
    );
}

const SCALE_FLAGS: usize = 500;
/// Generous for a loaded CI machine; the bench measures the real figure.
const SCALE_PUBLISH_BOUND: Duration = Duration::from_secs(60);
const SCALE_AT_REST: Duration = Duration::from_secs(10);

/// Flag `i` of the 500: 0–59 of every 100 static, 60–79 with 20 allowed users, 80–99 a
/// time-only ramp whose first pause outlasts the test.
fn scale_flag(i: usize) -> Value {
    let spec = match i % 100 {
        0..60 => json!({"enabled": true, "percent": (i * 7) % 101}),
        60..80 => json!({
            "enabled": true,
            "percent": 10,
            "allowedUsers": (0..20).map(|u| format!("user-{i}-{u}")).collect::<Vec<_>>(),
        }),
        _ => json!({
            "enabled": true,
            "rollout": {"steps": [{"percent": 1, "pause": "1h"}, {"percent": 100}]},
        }),
    };
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": format!("flag-{i:03}")},
        "spec": spec,
    })
}

/// What one churn client did.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    percent: usize,
    toggle: usize,
    allow_list: usize,
    delete: usize,
    recreate: usize,
}

impl Tally {
    fn edits(&self) -> usize {
        self.percent + self.toggle + self.allow_list + self.delete + self.recreate
    }

    fn plus(self, other: &Tally) -> Tally {
        Tally {
            percent: self.percent + other.percent,
            toggle: self.toggle + other.toggle,
            allow_list: self.allow_list + other.allow_list,
            delete: self.delete + other.delete,
            recreate: self.recreate + other.recreate,
        }
    }
}

/// Makes `edits` random edits to `names`, 0–250 ms apart (about 30 edits per second from 6 clients). A deleted name is re-created as
/// soon as the API server takes it (its old object may still be terminating); a write the
/// API server refuses for a moment (conflict, timeout, name still taken) is tried again.
async fn churn_client(
    api: Api<FeatureFlag>,
    names: Vec<String>,
    edits: usize,
    mut rng: StdRng,
) -> Tally {
    let mut deleted: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    while tally.edits() < edits {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
        let roll = rng.random_range(0..100);
        if (8..16).contains(&roll) && !deleted.is_empty() {
            let name = deleted.swap_remove(rng.random_range(0..deleted.len()));
            let percent = f64::from(rng.random_range(0..=100));
            let flag: FeatureFlag =
                serde_json::from_value(static_flag(&name, percent)).expect("flag manifest");
            if api.create(&PostParams::default(), &flag).await.is_ok() {
                tally.recreate += 1;
            } else {
                // Its old object is still terminating; try again later.
                deleted.push(name);
            }
            continue;
        }
        let live: Vec<&String> = names.iter().filter(|n| !deleted.contains(n)).collect();
        let Some(name) = live.get(rng.random_range(0..live.len().max(1))).copied() else {
            continue;
        };
        let patch = match roll {
            // A delete (or a re-create the roll wanted, with nothing deleted yet).
            0..16 => {
                if api.delete(name, &DeleteParams::default()).await.is_ok() {
                    deleted.push(name.clone());
                    tally.delete += 1;
                }
                continue;
            }
            16..55 => {
                tally.percent += 1;
                json!({"spec": {"percent": rng.random_range(0..=100)}})
            }
            55..80 => {
                tally.toggle += 1;
                json!({"spec": {"enabled": rng.random_bool(0.5)}})
            }
            _ => {
                tally.allow_list += 1;
                let users: BTreeSet<String> = (0..rng.random_range(0..4))
                    .map(|_| format!("user-{}", rng.random_range(0..1000)))
                    .collect();
                json!({"spec": {"allowedUsers": users}})
            }
        };
        let params = PatchParams::default();
        for _attempt in 0..5 {
            if api
                .patch(name, &params, &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tally
}

fn static_flag(name: &str, percent: f64) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "FeatureFlag",
        "metadata": {"name": name},
        "spec": {"enabled": true, "percent": percent}
    })
}

/// One test's namespace, a kube client and an operator's options.
struct Setup {
    kubeconfig: PathBuf,
    namespace: TestNamespace,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

impl Drop for Setup {
    /// The operator is gone by now: take the finalizers off the flags that are left, so that
    /// the namespace (deleted next) does not hang in Terminating.
    fn drop(&mut self) {
        let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for flag in self.all_flags() {
            let name = flag.metadata.name.unwrap_or_default();
            let _ =
                self.runtime
                    .block_on(self.flags().patch(&name, &PatchParams::default(), &patch));
        }
    }
}

impl Setup {
    fn connect(prefix: &str) -> Option<Self> {
        let kubeconfig = kubeconfig()?;
        install_crd(&kubeconfig);
        let namespace = TestNamespace::create(&kubeconfig, prefix);
        let (runtime, client) = runtime_and_client(&kubeconfig);
        Some(Self {
            kubeconfig,
            namespace,
            runtime,
            client,
        })
    }

    fn operator(&self) -> OperatorOptions {
        OperatorOptions::new(&self.kubeconfig, &self.namespace.name)
    }

    fn kubectl_input(&self, args: &[&str], input: &str) {
        let mut full = vec!["-n", self.namespace.name.as_str()];
        full.extend_from_slice(args);
        let output = kubectl_with_input(&self.kubeconfig, &full, Some(input));
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn flags(&self) -> Api<FeatureFlag> {
        Api::namespaced(self.client.clone(), &self.namespace.name)
    }

    fn all_flags(&self) -> Vec<FeatureFlag> {
        self.runtime
            .block_on(self.flags().list(&ListParams::default()))
            .map(|list| list.items)
            .unwrap_or_default()
    }

    /// The flags without a deletion timestamp.
    fn live_flags(&self) -> Vec<FeatureFlag> {
        let mut flags = self.all_flags();
        flags.retain(|flag| flag.metadata.deletion_timestamp.is_none());
        flags
    }

    fn terminating_flags(&self) -> Vec<String> {
        self.all_flags()
            .into_iter()
            .filter(|flag| flag.metadata.deletion_timestamp.is_some())
            .filter_map(|flag| flag.metadata.name)
            .collect()
    }

    fn configmap(&self) -> Option<ConfigMap> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace.name);
        self.runtime.block_on(api.get_opt(CONFIGMAP)).ok().flatten()
    }

    fn document(&self) -> Option<FlagDocument> {
        let json = self.configmap()?.data?.remove("flags.json")?;
        FlagDocument::from_json(json.as_bytes()).ok()
    }

    /// Whether the document holds exactly one entry per live flag, each with its spec's
    /// kill switch, percent and allowed users.
    fn document_matches_live(&self) -> bool {
        let Some(document) = self.document() else {
            return false;
        };
        let live = self.live_flags();
        live.len() == document.flags.len()
            && live.iter().all(|flag| {
                let Some(entry) = document.flags.get(flag.key()) else {
                    return false;
                };
                let allowed: BTreeSet<&String> = flag.spec.allowed_users.iter().collect();
                let published: BTreeSet<&String> = entry.allowed_users.iter().collect();
                // A flag switched off publishes 0%.
                let percent = if flag.spec.enabled {
                    flag.spec.percent
                } else {
                    Some(0.0)
                };
                entry.enabled == flag.spec.enabled
                    && Some(entry.percent) == percent
                    && allowed == published
            })
    }

    /// The resourceVersion of the ConfigMap and of every flag, by name.
    fn resource_versions(&self) -> BTreeMap<String, String> {
        let mut versions: BTreeMap<String, String> = self
            .all_flags()
            .into_iter()
            .filter_map(|flag| Some((flag.metadata.name?, flag.metadata.resource_version?)))
            .collect();
        if let Some(version) = self.configmap().and_then(|cm| cm.metadata.resource_version) {
            versions.insert(format!("configmap/{CONFIGMAP}"), version);
        }
        versions
    }

    /// Polls `check` until it gives a value; returns it and when it was seen. On timeout,
    /// panics with the live flags and the document.
    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Option<T>,
    ) -> (T, Instant) {
        wait_for(what, timeout, POLL, check, || {
            let live: Vec<String> = self
                .live_flags()
                .into_iter()
                .filter_map(|flag| flag.metadata.name)
                .collect();
            let published: Vec<String> = self
                .document()
                .map(|d| d.flags.into_keys().collect())
                .unwrap_or_default();
            format!(
                "live: {live:?}\npublished: {published:?}\nterminating: {:?}",
                self.terminating_flags()
            )
        })
    }
}
