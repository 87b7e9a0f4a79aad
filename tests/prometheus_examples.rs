//! The PromQL users copy from `examples/` is known to be right: every rule test in
//! `examples/promql-tests/` passes under `promtool test rules`, and every metric query of
//! every example flag, rendered for that flag, is the expression of at least one of them
//! (an experiment's counting queries once per variant, over a one-hour window; a guardrail's
//! `bad` and `total` with `{{ since_ramp_start }}` one hour).

#[path = "support/prometheus.rs"]
mod prometheus_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prometheus_support::{prometheus_or_skip, promtool_test_rules};
use rollgate::manifest::{ManifestDocument, load_file};
use rollgate_core::template::{TemplateContext, render};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

/// PromQL in one canonical spelling, so formatting does not matter.
fn normalize(query: &str) -> String {
    promql_parser::parser::parse(query)
        .unwrap_or_else(|error| panic!("does not parse: {query}: {error}"))
        .to_string()
}

fn rule_test_files() -> Vec<PathBuf> {
    let files = files_in(&root().join("examples/promql-tests"));
    assert!(
        !files.is_empty(),
        "examples/promql-tests/ holds no rule tests"
    );
    files
}

#[test]
fn promtool_rule_tests_pass() {
    if !prometheus_or_skip("promtool_rule_tests_pass") {
        return;
    }
    let files = rule_test_files();
    let output = promtool_test_rules(&files).expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{text}"
    );
    assert_eq!(
        text.matches("SUCCESS").count(),
        files.len(),
        "every file must report SUCCESS:\n{text}"
    );
}

#[test]
fn every_example_query_has_a_rule_test() {
    let mut tested = BTreeSet::new();
    for file in rule_test_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let tests = doc["tests"].as_array().cloned().unwrap_or_default();
        for test in tests {
            for case in test["promql_expr_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if let Some(expr) = case["expr"].as_str() {
                    tested.insert(normalize(expr));
                }
            }
        }
    }
    assert!(
        !tested.is_empty(),
        "the rule tests hold no promql_expr_test"
    );

    let mut checked = 0;
    let mut missing = Vec::new();
    for file in files_in(&root().join("examples")) {
        let Ok(manifest) = load_file(&file) else {
            continue;
        };
        for document in &manifest.documents {
            let ManifestDocument::Flag { flag, .. } = document else {
                continue;
            };
            // An experiment's counting queries, once per variant. Their `{{ interval }}` is the
            // time since the experiment started; the rule tests use one hour.
            if let Some(experiment) = &flag.spec.experiment {
                for variant in &experiment.variants {
                    let mut context = TemplateContext::for_flag(flag, Some(&variant.name));
                    context.interval = "1h".into();
                    for (name, query) in [
                        ("exposures", &experiment.metric.exposures),
                        ("conversions", &experiment.metric.conversions),
                    ] {
                        let rendered = render(query, &context).unwrap_or_else(|error| {
                            panic!("{}: experiment.metric.{name}: {error}", file.display())
                        });
                        checked += 1;
                        if !tested.contains(&normalize(&rendered)) {
                            missing.push(format!(
                                "{}: experiment.metric.{name} (variant {}, interval 1h):\n{rendered}",
                                file.display(),
                                variant.name
                            ));
                        }
                    }
                }
            }
            let Some(analysis) = flag.spec.rollout.as_ref().and_then(|r| r.analysis.as_ref())
            else {
                continue;
            };
            // Experiments render once per variant; other flags have none.
            let variants: Vec<Option<&str>> = if flag.spec.variants.is_empty() {
                vec![None]
            } else {
                flag.spec
                    .variants
                    .iter()
                    .map(|v| Some(v.name.as_str()))
                    .collect()
            };
            // A guardrail's counters since the ramp started; the rule tests use one hour.
            let mut context = TemplateContext::for_flag(flag, None);
            context.since_ramp_start = Some("1h".into());
            for guardrail in &analysis.guardrails {
                for (field, query) in [("bad", &guardrail.bad), ("total", &guardrail.total)] {
                    let rendered = render(query, &context).unwrap_or_else(|error| {
                        panic!(
                            "{}: guardrail {}: {field}: {error}",
                            file.display(),
                            guardrail.name
                        )
                    });
                    checked += 1;
                    if !tested.contains(&normalize(&rendered)) {
                        missing.push(format!(
                            "{}: guardrail {} {field} (since_ramp_start 1h):\n{rendered}",
                            file.display(),
                            guardrail.name
                        ));
                    }
                }
            }
            for variant in variants {
                let context = TemplateContext::for_flag(flag, variant);
                for metric in &analysis.metrics {
                    let rendered = render(&metric.query, &context).unwrap_or_else(|error| {
                        panic!("{}: {}: {error}", file.display(), metric.name)
                    });
                    checked += 1;
                    if !tested.contains(&normalize(&rendered)) {
                        missing.push(format!(
                            "{}: metric {} (variant {variant:?}):\n{rendered}",
                            file.display(),
                            metric.name
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no example flag has analysis metrics to check");
    assert!(
        missing.is_empty(),
        "these example queries have no `promtool test rules` case in examples/promql-tests/ \
         (add one whose expr is the rendered query):\n\n{}",
        missing.join("\n\n")
    );
}
