//! End-to-end: a Segment edited with kubectl reaches the flag document of every flag naming
//! it, on the local control plane with `rollgate operator` as a process.
//!
//! A FeatureFlag at 0% serves its rule `beta` (`InSegment beta-testers` → on) first. The
//! segment starts without `carol`, so the document says she is off; `kubectl patch` adds her
//! to `included`, and the test measures the time from the patch to the ConfigMap holding the
//! new segment (`segment edit -> ConfigMap: N ms`). The answers are the Rust SDK's, evaluated
//! on the published document with a context (the segment also has a rule on `email`). A second flag names a
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
use rollgate_sdk::{Context, FlagDocument, FlagSet};
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
  rules:
    - conditions:
        - {{attribute: email, operator: EndsWith, values: ["@example.com"]}}
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

/// What the published document answers through the SDK: the deciding rule's name, or the
/// SDK's reason when no rule decided.
fn answer_with(document: &FlagDocument, key: &str, context: &Context) -> (bool, String) {
    let flags = FlagSet::from_document(document);
    let evaluation = flags.evaluate_with(key, context);
    let why = evaluation
        .rule
        .map_or_else(|| evaluation.reason.as_str().to_string(), str::to_string);
    (evaluation.enabled, why)
}

fn answer(document: &FlagDocument, key: &str, user: &str) -> (bool, String) {
    answer_with(document, key, &Context::new(user))
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
    // The segment's rule, on an attribute of the context; the exclusion wins over it.
    let by_email = |user: &str| Context::new(user).with("email", format!("{user}@example.com"));
    assert_eq!(
        answer_with(&before, FLAG, &by_email("dave")),
        (true, "beta".into())
    );
    assert_eq!(
        answer_with(&before, FLAG, &by_email("mallory")),
        (false, "percent".into())
    );
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
