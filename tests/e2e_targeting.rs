//! End-to-end: a Segment edited with kubectl reaches the flag document of every flag naming
//! it, on the local control plane with `rollgate operator` as a process.
//!
//! A FeatureFlag at 0% serves its rule `beta` (`InSegment beta-testers` → on) first. The
//! segment starts without `carol`, so the document says she is off; `kubectl patch` adds her
//! to `included`, and the test measures the time from the patch to the ConfigMap holding the
//! new segment (`segment edit -> ConfigMap: N ms`). The answers are read from the published
//! document: the rule, the segment's lists and the fallthrough percent. A second flag names a
//! segment that does not exist: it is published without it, and its `SegmentsResolved`
//! condition names it.
//!
//! Run: `scripts/test-e2e` (or `ROLLGATE_E2E_KUBECONFIG=… cargo test --test e2e_targeting`).
//! Skipped, with the reason printed, when the variable is unset.

mod support {
    pub mod cluster;
    pub mod operator;
}

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rollgate_sdk::{FlagDocument, Operator, Serve};
use support::cluster::{
    TestNamespace, apply_manifests, install_crd, kubeconfig, kubectl_ok, runtime_and_client,
    wait_for,
};
use support::operator::{OperatorOptions, OperatorProcess};

const FLAG: &str = "new-pricing";
const GHOST_FLAG: &str = "ghost-pricing";
const SEGMENT: &str = "beta-testers";
const CONFIGMAP: &str = "rollgate-flags";

fn manifests() -> String {
    format!(
        r#"apiVersion: rollgate.dev/v1alpha1
kind: Segment
metadata:
  name: {SEGMENT}
spec:
  included: [alice]
  excluded: [mallory]
---
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: {FLAG}
spec:
  enabled: true
  percent: 0
  targeting:
    - name: beta
      conditions:
        - {{operator: InSegment, values: [{SEGMENT}]}}
      serve: {{enabled: true}}
---
apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: {GHOST_FLAG}
spec:
  enabled: true
  percent: 0
  targeting:
    - name: ghosts
      conditions:
        - {{operator: InSegment, values: [nobody-made-this]}}
      serve: {{enabled: true}}
"#
    )
}

/// What the published document answers for `user` on `key`, as far as this test's flags go:
/// the first rule whose `InSegment` holds serves its answer; otherwise the 0% fallthrough is
/// off. A segment the document does not carry matches no one.
fn answer(document: &FlagDocument, key: &str, user: &str) -> (bool, String) {
    let entry = &document.flags[key];
    for rule in &entry.targeting {
        let holds = rule.conditions.iter().all(|condition| {
            assert_eq!(condition.operator, Operator::InSegment, "{condition:?}");
            condition.values.iter().any(|name| {
                document.segments.get(name).is_some_and(|segment| {
                    !segment.excluded.iter().any(|u| u == user)
                        && segment.included.iter().any(|u| u == user)
                })
            })
        });
        if holds {
            let Serve::Enabled(on) = rule.serve else {
                panic!("{rule:?} serves no on/off answer");
            };
            return (on && entry.enabled, rule.name.clone());
        }
    }
    assert_eq!(entry.percent, 0.0, "the fallthrough of {key}");
    (false, "percent".into())
}

/// The document in the ConfigMap, when there is one.
fn document_of(configmap: Option<ConfigMap>) -> Option<FlagDocument> {
    let json = configmap?.data?.remove("flags.json")?;
    Some(FlagDocument::from_json(json.as_bytes()).expect("the published document parses"))
}

fn condition(kubeconfig: &Path, namespace: &str, flag: &str, type_: &str) -> String {
    kubectl_ok(
        kubeconfig,
        &[
            "get",
            "ff",
            flag,
            "-n",
            namespace,
            "-o",
            &format!(
                "jsonpath={{.status.conditions[?(@.type==\"{type_}\")].status}}/{{.status.conditions[?(@.type==\"{type_}\")].reason}}/{{.status.conditions[?(@.type==\"{type_}\")].message}}"
            ),
        ],
    )
}

#[test]
fn a_segment_edit_reaches_the_document_of_the_flags_naming_it() {
    let Some(kubeconfig) = kubeconfig() else {
        eprintln!("skipped: ROLLGATE_E2E_KUBECONFIG is not set");
        return;
    };
    install_crd(&kubeconfig);
    let namespace = TestNamespace::create(&kubeconfig, "e2e-targeting");
    let (runtime, client) = runtime_and_client(&kubeconfig);
    let configmaps: Api<ConfigMap> = Api::namespaced(client, &namespace.name);
    let read = || {
        document_of(
            runtime
                .block_on(configmaps.get_opt(CONFIGMAP))
                .expect("read the ConfigMap"),
        )
    };
    let operator = OperatorProcess::start(OperatorOptions::new(&kubeconfig, &namespace.name));
    apply_manifests(&kubeconfig, &namespace.name, &manifests());

    let (before, _) = wait_for(
        "both flags and the segment published",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            read().filter(|document| {
                document.flags.contains_key(FLAG)
                    && document.flags.contains_key(GHOST_FLAG)
                    && document.segments.contains_key(SEGMENT)
            })
        },
        || operator.log_tail(40),
    );
    assert_eq!(answer(&before, FLAG, "alice"), (true, "beta".into()));
    assert_eq!(answer(&before, FLAG, "carol"), (false, "percent".into()));
    assert_eq!(answer(&before, FLAG, "mallory"), (false, "percent".into()));
    // Only the segments a flag names are published, each once; the missing one is absent.
    let names: Vec<&str> = before.segments.keys().map(String::as_str).collect();
    assert_eq!(names, [SEGMENT]);
    assert_eq!(
        answer(&before, GHOST_FLAG, "alice"),
        (false, "percent".into())
    );
    wait_for(
        "SegmentsResolved on both flags, Ready on the segment",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let found = condition(&kubeconfig, &namespace.name, FLAG, "SegmentsResolved");
            let ghost = condition(&kubeconfig, &namespace.name, GHOST_FLAG, "SegmentsResolved");
            let segment = kubectl_ok(
                &kubeconfig,
                &[
                    "get",
                    "segment",
                    SEGMENT,
                    "-n",
                    &namespace.name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            );
            (found.starts_with("True/SegmentsFound/") && segment == "True")
                .then_some(ghost)
                .filter(|ghost| {
                    ghost
                        == &format!(
                            "False/SegmentNotFound/segment \"nobody-made-this\" does not exist in namespace {}; InSegment conditions naming it match no one",
                            namespace.name
                        )
                })
        },
        || operator.log_tail(40),
    );

    // The edit: carol joins the segment.
    let edit_started = Instant::now();
    kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "segment",
            SEGMENT,
            "-n",
            &namespace.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"included":["alice","carol"]}}"#,
        ],
    );
    let edited = Instant::now();
    let (after, seen) = wait_for(
        "carol in the published segment",
        Duration::from_secs(30),
        Duration::from_millis(5),
        || {
            read().filter(|document| {
                document.segments[SEGMENT]
                    .included
                    .iter()
                    .any(|u| u == "carol")
            })
        },
        || operator.log_tail(40),
    );
    println!(
        "segment edit -> ConfigMap: {} ms (kubectl patch itself took {} ms)",
        seen.duration_since(edited).as_millis(),
        edited.duration_since(edit_started).as_millis()
    );
    assert_eq!(answer(&after, FLAG, "carol"), (true, "beta".into()));
    assert_eq!(answer(&after, FLAG, "alice"), (true, "beta".into()));
    assert_eq!(answer(&after, FLAG, "mallory"), (false, "percent".into()));
    // The flags themselves did not change: only the segment did.
    assert_eq!(
        after.flags[FLAG].generation, before.flags[FLAG].generation,
        "{:?}",
        after.flags[FLAG]
    );
    assert_eq!(after.flags[GHOST_FLAG], before.flags[GHOST_FLAG]);
}
