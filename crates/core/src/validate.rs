//! Offline validation of a `FeatureFlag`: the schema's bounds and the CEL rules of
//! `crd.rs`, written once more in Rust so that `rollgate validate`, the controller and a
//! cluster too old to run CEL (1.20 drops it) all give the same answers.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use rollgate_sdk::Operator;

use crate::crd::{
    ATTRIBUTE_MESSAGE, Analysis, DEFAULT_INTERVAL, EMPTY_AFFIX_MESSAGE, EXISTS_VALUES_MESSAGE,
    Experiment, FeatureFlag, FeatureFlagSpec, Guardrail, LIST_VALUES_MESSAGE, MAX_ALLOWED_USERS,
    MAX_ALPHA, MAX_CONDITIONS, MAX_GUARDRAILS, MAX_METRICS, MAX_RULES, MAX_SALT_LEN,
    MAX_SEGMENT_NAMES, MAX_STEPS, MAX_USER_ID_LEN, MAX_VALUES, MAX_VARIANTS, MIN_ALPHA,
    MetricCheck, ONE_VALUE_MESSAGE, RULE_NAMES_MESSAGE, Rollout, SEGMENT_NAMES_MESSAGE,
    SERVE_MESSAGE, SERVE_VARIANT_MESSAGE, TargetingCondition, TargetingRule, Variant,
};
use crate::crd::{IN_SEGMENT_MESSAGE, MAX_SEGMENT_USERS};
use crate::duration::parse_duration;
use crate::experiment::Method;
use crate::segment::Segment;
use crate::template::{TemplateContext, render};
use crate::version::Version;

/// One broken rule, with the path of the field that breaks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// e.g. `spec.rollout.steps[1].percent`
    pub path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Every violation of the flag's spec, in field order; empty when the flag is valid.
pub fn validate(flag: &FeatureFlag) -> Vec<Violation> {
    let mut check = Checker::default();
    if flag.spec.key.is_none() {
        // The key defaults to metadata.name, which must then satisfy the key rule.
        if let Some(name) = &flag.metadata.name {
            check.key("metadata.name", name);
        }
    }
    check.spec(&flag.spec);
    check.violations
}

/// Every violation of the segment's spec, in field order; empty when the segment is valid.
pub fn validate_segment(segment: &Segment) -> Vec<Violation> {
    let mut check = Checker::default();
    let spec = &segment.spec;
    check.user_list("spec.included", &spec.included, MAX_SEGMENT_USERS);
    check.user_list("spec.excluded", &spec.excluded, MAX_SEGMENT_USERS);
    if spec.rules.len() > MAX_RULES {
        check.fail(
            "spec.rules",
            format!(
                "{} rules is more than the limit of {MAX_RULES}",
                spec.rules.len()
            ),
        );
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}].conditions");
        check.conditions(&path, &rule.conditions);
        for (j, condition) in rule.conditions.iter().enumerate() {
            if condition.operator == Operator::InSegment {
                check.fail(format!("{path}[{j}].operator"), IN_SEGMENT_MESSAGE);
            }
        }
    }
    check.violations
}

/// The `InSegment` values of `flag` that `exists` does not know, each as a violation naming
/// the rule and the segment: what offline validation reports when it is given the segments
/// beside the flags.
pub fn segment_references(flag: &FeatureFlag, exists: impl Fn(&str) -> bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, rule) in flag.spec.targeting.iter().enumerate() {
        for (j, condition) in rule.conditions.iter().enumerate() {
            if condition.operator != Operator::InSegment {
                continue;
            }
            for (k, name) in condition.values.iter().enumerate() {
                if !exists(name) {
                    violations.push(Violation {
                        path: format!("spec.targeting[{i}].conditions[{j}].values[{k}]"),
                        message: format!(
                            "rule {:?} names segment {name:?}, which is not among the given Segments",
                            rule.name
                        ),
                    });
                }
            }
        }
    }
    violations
}

#[derive(Default)]
struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn spec(&mut self, spec: &FeatureFlagSpec) {
        if let Some(key) = &spec.key {
            self.key("spec.key", key);
        }
        if let Some(percent) = spec.percent {
            self.percent("spec.percent", percent, false);
        }
        self.user_list("spec.allowedUsers", &spec.allowed_users, MAX_ALLOWED_USERS);
        if let Some(rollout) = &spec.rollout {
            if spec.percent.is_some() && !rollout.steps.is_empty() {
                self.fail(
                    "spec.percent",
                    "percent and rollout.steps are mutually exclusive: use percent for a static flag or rollout.steps for a ramp",
                );
            }
            self.rollout(rollout);
        }
        self.variants(&spec.variants);
        self.targeting(spec);
        let guarded = spec
            .rollout
            .as_ref()
            .and_then(|r| r.analysis.as_ref())
            .is_some_and(|a| !a.guardrails.is_empty());
        if guarded && let Some(i) = spec.variants.iter().position(|v| v.name == "off") {
            self.fail(
                format!("spec.variants[{i}].name"),
                "a variant named off would count as the control of the guardrails: rename it",
            );
        }
        if let Some(experiment) = &spec.experiment {
            self.experiment_conflicts(spec);
            self.experiment(experiment);
        }
        if let Some(stale_after) = &spec.stale_after
            && let Err(error) = parse_duration(stale_after)
        {
            self.fail("spec.staleAfter", error.to_string());
        }
        if let Some(name) = spec.publish.as_ref().and_then(|p| p.config_map.as_ref())
            && !is_dns_subdomain(name)
        {
            self.fail(
                "spec.publish.configMap",
                format!("{name:?} is not a valid ConfigMap name (lowercase DNS subdomain, at most 253 characters)"),
            );
        }
    }

    fn key(&mut self, path: &str, key: &str) {
        if !is_flag_key(key) {
            self.fail(
                path,
                format!(
                    "{key:?} is not a valid flag key: 1–63 characters of a-z, 0-9, '.', '_' or '-', starting and ending with a letter or digit"
                ),
            );
        }
    }

    fn percent(&mut self, path: &str, percent: f64, exclusive_zero: bool) {
        let low_ok = if exclusive_zero {
            percent > 0.0
        } else {
            percent >= 0.0
        };
        if !percent.is_finite() || !low_ok || percent > 100.0 {
            let range = if exclusive_zero {
                "0 < p ≤ 100"
            } else {
                "0–100"
            };
            self.fail(path, format!("{percent} is outside {range}"));
        } else if !has_at_most_two_decimals(percent) {
            self.fail(path, format!("{percent} has more than two decimals"));
        }
    }

    /// A list of user ids: at most `limit`, each at most 253 characters, no repeats.
    fn user_list(&mut self, path: &str, users: &[String], limit: usize) {
        if users.len() > limit {
            self.fail(
                path,
                format!("{} users is more than the limit of {limit}", users.len()),
            );
        }
        let mut seen = HashSet::with_capacity(users.len());
        for (i, user) in users.iter().enumerate() {
            if user.chars().count() > MAX_USER_ID_LEN {
                self.fail(
                    format!("{path}[{i}]"),
                    format!("user id is longer than {MAX_USER_ID_LEN} characters"),
                );
            }
            if !seen.insert(user.as_str()) {
                self.fail(format!("{path}[{i}]"), format!("duplicate user {user:?}"));
            }
        }
    }

    fn targeting(&mut self, spec: &FeatureFlagSpec) {
        let rules = &spec.targeting;
        if rules.len() > MAX_RULES {
            self.fail(
                "spec.targeting",
                format!(
                    "{} rules is more than the limit of {MAX_RULES}",
                    rules.len()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.targeting[{i}]");
            if !is_dns_label(&rule.name) {
                self.fail(
                    format!("{path}.name"),
                    format!(
                        "{:?} is not a valid rule name: 1–63 characters of a-z, 0-9 or '-', starting and ending with a letter or digit",
                        rule.name
                    ),
                );
            }
            if !names.insert(rule.name.as_str()) {
                self.fail(
                    format!("{path}.name"),
                    format!("{RULE_NAMES_MESSAGE}: {:?} repeats", rule.name),
                );
            }
            self.conditions(&format!("{path}.conditions"), &rule.conditions);
            self.serve(&path, rule, &spec.variants);
        }
    }

    fn serve(&mut self, path: &str, rule: &TargetingRule, variants: &[Variant]) {
        let serve = &rule.serve;
        let answers = [
            serve.enabled.is_some(),
            serve.variant.is_some(),
            serve.percent.is_some(),
        ];
        if answers.iter().filter(|given| **given).count() != 1 {
            self.fail(format!("{path}.serve"), SERVE_MESSAGE);
        }
        if let Some(percent) = serve.percent {
            self.percent(&format!("{path}.serve.percent"), percent, false);
        }
        if let Some(variant) = &serve.variant
            && !variants.iter().any(|v| &v.name == variant)
        {
            self.fail(
                format!("{path}.serve.variant"),
                format!("{SERVE_VARIANT_MESSAGE}: {variant:?} is not one"),
            );
        }
    }

    /// The conditions of one rule, of a flag or of a segment.
    fn conditions(&mut self, path: &str, conditions: &[TargetingCondition]) {
        if conditions.is_empty() || conditions.len() > MAX_CONDITIONS {
            self.fail(
                path,
                format!(
                    "a rule needs 1–{MAX_CONDITIONS} conditions, got {}",
                    conditions.len()
                ),
            );
        }
        for (i, condition) in conditions.iter().enumerate() {
            self.condition(&format!("{path}[{i}]"), condition);
        }
    }

    fn condition(&mut self, path: &str, condition: &TargetingCondition) {
        use Operator::*;
        let operator = condition.operator;
        let in_segment = operator == InSegment;
        if condition.attribute.is_some() == in_segment {
            self.fail(format!("{path}.attribute"), ATTRIBUTE_MESSAGE);
        }
        if condition.attribute.as_deref() == Some("") {
            self.fail(format!("{path}.attribute"), "attribute must not be empty");
        }
        let values = &condition.values;
        let count = values.len();
        let values_path = format!("{path}.values");
        match operator {
            In | NotIn | StartsWith | EndsWith | Contains if !(1..=MAX_VALUES).contains(&count) => {
                self.fail(&values_path, LIST_VALUES_MESSAGE)
            }
            StartsWith | EndsWith | Contains if values.iter().any(String::is_empty) => {
                self.fail(&values_path, EMPTY_AFFIX_MESSAGE)
            }
            Lt | Lte | Gt | Gte | SemverLt | SemverGte | SemverEq if count != 1 => {
                self.fail(&values_path, ONE_VALUE_MESSAGE)
            }
            Exists if count != 0 => self.fail(&values_path, EXISTS_VALUES_MESSAGE),
            InSegment if !(1..=MAX_SEGMENT_NAMES).contains(&count) => {
                self.fail(&values_path, SEGMENT_NAMES_MESSAGE)
            }
            _ => {}
        }
        for (i, value) in values.iter().enumerate() {
            let value_path = format!("{values_path}[{i}]");
            match operator {
                Lt | Lte | Gt | Gte if !is_decimal_number(value) => self.fail(
                    value_path,
                    format!(
                        "{value:?} is not a decimal number (-?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?)"
                    ),
                ),
                SemverLt | SemverGte | SemverEq => {
                    if let Err(error) = Version::parse(value) {
                        self.fail(value_path, error.to_string());
                    }
                }
                InSegment if !is_dns_subdomain(value) => self.fail(
                    value_path,
                    format!("{value:?} is not a valid Segment name (lowercase DNS subdomain)"),
                ),
                _ => {}
            }
        }
    }

    fn rollout(&mut self, rollout: &Rollout) {
        if rollout.steps.len() > MAX_STEPS {
            self.fail(
                "spec.rollout.steps",
                format!(
                    "{} steps is more than the limit of {MAX_STEPS}",
                    rollout.steps.len()
                ),
            );
        }
        let last = rollout.steps.len().saturating_sub(1);
        let mut previous: Option<f64> = None;
        for (i, step) in rollout.steps.iter().enumerate() {
            let path = format!("spec.rollout.steps[{i}]");
            self.percent(&format!("{path}.percent"), step.percent, true);
            if let Some(previous) = previous
                && step.percent <= previous
            {
                self.fail(
                    format!("{path}.percent"),
                    format!(
                        "step percents must strictly increase: {} follows {previous}",
                        step.percent
                    ),
                );
            }
            previous = Some(step.percent);
            match &step.pause {
                Some(pause) => {
                    if let Err(error) = parse_duration(pause) {
                        self.fail(format!("{path}.pause"), error.to_string());
                    }
                }
                None if i != last => self.fail(
                    format!("{path}.pause"),
                    "every step but the last needs a pause",
                ),
                None => {}
            }
        }
        if let Some(analysis) = &rollout.analysis {
            self.analysis(analysis);
        }
    }

    fn analysis(&mut self, analysis: &Analysis) {
        let path = "spec.rollout.analysis";
        let interval_has_days = analysis.interval.contains('d');
        match parse_duration(&analysis.interval) {
            Ok(_) if interval_has_days => self.fail(
                format!("{path}.interval"),
                format!(
                    "invalid duration {:?}: use h, m or s (e.g. {DEFAULT_INTERVAL})",
                    analysis.interval
                ),
            ),
            Ok(interval) if interval < MIN_INTERVAL => self.fail(
                format!("{path}.interval"),
                format!("interval must be at least 10s, got {}", analysis.interval),
            ),
            Ok(_) => {}
            Err(error) => self.fail(format!("{path}.interval"), error.to_string()),
        }
        if !(1..=100).contains(&analysis.failure_limit) {
            self.fail(
                format!("{path}.failureLimit"),
                format!("{} is outside 1–100", analysis.failure_limit),
            );
        }
        if let Some(address) = analysis
            .prometheus
            .as_ref()
            .and_then(|p| p.address.as_ref())
            && !(address.starts_with("http://") || address.starts_with("https://"))
        {
            self.fail(
                format!("{path}.prometheus.address"),
                format!("{address:?} must be an http:// or https:// URL"),
            );
        }
        if analysis.metrics.len() > MAX_METRICS {
            self.fail(
                format!("{path}.metrics"),
                format!(
                    "{} metrics is more than the limit of {MAX_METRICS}",
                    analysis.metrics.len()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, metric) in analysis.metrics.iter().enumerate() {
            let metric_path = format!("{path}.metrics[{i}]");
            if !names.insert(metric.name.as_str()) {
                self.fail(
                    format!("{metric_path}.name"),
                    format!("metric names must be unique: {:?} repeats", metric.name),
                );
            }
            self.metric(&metric_path, metric);
        }
        if analysis.guardrails.len() > MAX_GUARDRAILS {
            self.fail(
                format!("{path}.guardrails"),
                format!(
                    "{} guardrails is more than the limit of {MAX_GUARDRAILS}",
                    analysis.guardrails.len()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, guardrail) in analysis.guardrails.iter().enumerate() {
            let guardrail_path = format!("{path}.guardrails[{i}]");
            if !names.insert(guardrail.name.as_str()) {
                self.fail(
                    format!("{guardrail_path}.name"),
                    format!(
                        "guardrail names must be unique: {:?} repeats",
                        guardrail.name
                    ),
                );
            }
            self.guardrail(&guardrail_path, guardrail);
        }
        if let Some(max) = &analysis.max_step_duration
            && let Err(error) = parse_duration(max)
        {
            self.fail(format!("{path}.maxStepDuration"), error.to_string());
        }
    }

    fn guardrail(&mut self, path: &str, guardrail: &Guardrail) {
        if !is_object_name(&guardrail.name) {
            self.fail(
                format!("{path}.name"),
                format!("{:?} is not a valid guardrail name: 1–63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit", guardrail.name),
            );
        }
        for (field, query) in [("bad", &guardrail.bad), ("total", &guardrail.total)] {
            let rendered = render(
                query,
                &TemplateContext {
                    variant: None,
                    ..TemplateContext::sample()
                },
            );
            if query.trim().is_empty() {
                self.fail(format!("{path}.{field}"), "query is empty");
            } else if let Err(crate::template::TemplateError::MissingValue { .. }) = rendered {
                self.fail(
                    format!("{path}.{field}"),
                    "{{ variant }} has no value in a guardrail: it splits by the cohort label instead",
                );
            } else if let Err(error) = crate::template::check_query(query) {
                self.fail(format!("{path}.{field}"), error.to_string());
            }
        }
        match (
            guardrail.max_relative_increase,
            guardrail.max_absolute_increase,
        ) {
            (Some(_), Some(_)) | (None, None) => self.fail(
                path,
                "a guardrail needs exactly one of maxRelativeIncrease and maxAbsoluteIncrease",
            ),
            (Some(r), None) if !(r.is_finite() && (0.0..=100.0).contains(&r)) => self.fail(
                format!("{path}.maxRelativeIncrease"),
                format!("{r} is outside 0–100"),
            ),
            (None, Some(a)) if !(a.is_finite() && (0.0..=1.0).contains(&a)) => self.fail(
                format!("{path}.maxAbsoluteIncrease"),
                format!("{a} is outside 0–1"),
            ),
            _ => {}
        }
        if guardrail.min_samples_per_cohort == 0 {
            self.fail(format!("{path}.minSamplesPerCohort"), "must be at least 1");
        }
        if !(MIN_ALPHA..=MAX_ALPHA).contains(&guardrail.alpha) {
            self.fail(
                format!("{path}.alpha"),
                format!("{} is outside {MIN_ALPHA}–{MAX_ALPHA}", guardrail.alpha),
            );
        }
    }

    fn metric(&mut self, path: &str, metric: &MetricCheck) {
        if !is_object_name(&metric.name) {
            self.fail(
                format!("{path}.name"),
                format!("{:?} is not a valid metric name: 1–63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit", metric.name),
            );
        }
        if metric.query.trim().is_empty() {
            self.fail(format!("{path}.query"), "query is empty");
        } else if let Err(error) = crate::template::check_query(&metric.query) {
            self.fail(format!("{path}.query"), error.to_string());
        }
        match (metric.min, metric.max) {
            (None, None) => self.fail(path, "a metric needs min, max or both"),
            (Some(min), Some(max)) if min > max => self.fail(
                path,
                format!("min must not exceed max: min {min} > max {max}"),
            ),
            _ => {}
        }
        for (bound, value) in [("min", metric.min), ("max", metric.max)] {
            if value.is_some_and(|v| !v.is_finite()) {
                self.fail(format!("{path}.{bound}"), "bound must be a finite number");
            }
        }
    }

    /// An experiment's exposure is its coverage and its arms are its own; it has no steps.
    /// Guardrail metrics are queried once for the whole flag, so `{{ variant }}` has no value.
    fn experiment_conflicts(&mut self, spec: &FeatureFlagSpec) {
        if spec.percent.is_some() {
            self.fail(
                "spec.percent",
                "experiment and percent are mutually exclusive: an experiment's exposure is experiment.coverage",
            );
        }
        if !spec.variants.is_empty() {
            self.fail(
                "spec.variants",
                "experiment and variants are mutually exclusive: an experiment's arms are experiment.variants",
            );
        }
        let Some(rollout) = &spec.rollout else { return };
        if !rollout.steps.is_empty() {
            self.fail(
                "spec.rollout.steps",
                "experiment and rollout.steps are mutually exclusive: raise experiment.coverage instead of ramping",
            );
        }
        if rollout
            .analysis
            .as_ref()
            .is_some_and(|a| !a.guardrails.is_empty())
        {
            self.fail(
                "spec.rollout.analysis.guardrails",
                "experiment and rollout.analysis.guardrails are mutually exclusive: an experiment compares its arms through experiment.metric",
            );
        }
        let metrics = rollout.analysis.iter().flat_map(|a| a.metrics.iter());
        for (i, metric) in metrics.enumerate() {
            if let Err(crate::template::TemplateError::MissingValue { .. }) = render(
                &metric.query,
                &TemplateContext {
                    variant: None,
                    ..TemplateContext::sample()
                },
            ) {
                self.fail(
                    format!("spec.rollout.analysis.metrics[{i}].query"),
                    "a guardrail metric is queried once for the whole flag and cannot use {{ variant }}; per-variant counts belong in experiment.metric",
                );
            }
        }
    }

    fn experiment(&mut self, experiment: &Experiment) {
        let path = "spec.experiment";
        let variants = &experiment.variants;
        if variants.len() < 2 {
            self.fail(
                format!("{path}.variants"),
                format!(
                    "an experiment needs a control and at least one treatment, got {} variants",
                    variants.len()
                ),
            );
        }
        if variants.len() > MAX_VARIANTS {
            self.fail(
                format!("{path}.variants"),
                format!(
                    "{} variants is more than the limit of {MAX_VARIANTS}",
                    variants.len()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, variant) in variants.iter().enumerate() {
            let variant_path = format!("{path}.variants[{i}]");
            if !is_object_name(&variant.name) {
                self.fail(
                    format!("{variant_path}.name"),
                    format!("{:?} is not a valid variant name", variant.name),
                );
            }
            if !names.insert(variant.name.as_str()) {
                self.fail(
                    format!("{variant_path}.name"),
                    format!(
                        "experiment variant names must be unique: {:?} repeats",
                        variant.name
                    ),
                );
            }
            if variant.weight == 0 || variant.weight > 100 {
                self.fail(
                    format!("{variant_path}.weight"),
                    format!(
                        "{} is outside 1–100: every experiment variant needs a positive weight",
                        variant.weight
                    ),
                );
            }
        }
        let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
        if total != 100 {
            self.fail(
                format!("{path}.variants"),
                format!("experiment variant weights must sum to 100, got {total}"),
            );
        }
        self.percent(&format!("{path}.coverage"), experiment.coverage, false);
        if let Some(salt) = &experiment.salt
            && salt.chars().count() > MAX_SALT_LEN
        {
            self.fail(
                format!("{path}.salt"),
                format!("salt is longer than {MAX_SALT_LEN} characters"),
            );
        }
        for (field, query) in [
            ("exposures", &experiment.metric.exposures),
            ("conversions", &experiment.metric.conversions),
        ] {
            self.experiment_query(&format!("{path}.metric.{field}"), query);
        }
        if !(MIN_ALPHA..=MAX_ALPHA).contains(&experiment.alpha) {
            self.fail(
                format!("{path}.alpha"),
                format!("{} is outside {MIN_ALPHA}–{MAX_ALPHA}", experiment.alpha),
            );
        }
        if experiment.min_samples_per_variant == 0 {
            self.fail(format!("{path}.minSamplesPerVariant"), "must be at least 1");
        }
        match experiment.planned_samples_per_variant {
            None if experiment.method == Method::Fixed => self.fail(
                format!("{path}.plannedSamplesPerVariant"),
                "method fixed needs plannedSamplesPerVariant",
            ),
            Some(0) => self.fail(
                format!("{path}.plannedSamplesPerVariant"),
                "must be at least 1",
            ),
            _ => {}
        }
        if let Some(max_duration) = &experiment.max_duration
            && let Err(error) = parse_duration(max_duration)
        {
            self.fail(format!("{path}.maxDuration"), error.to_string());
        }
    }

    /// A counting query parses, and names `{{ variant }}` so each arm gets its own count.
    fn experiment_query(&mut self, path: &str, query: &str) {
        if query.trim().is_empty() {
            self.fail(path, "query is empty");
            return;
        }
        if let Err(error) = crate::template::check_query(query) {
            self.fail(path, error.to_string());
            return;
        }
        let for_variant = |variant: &str| {
            let mut context = TemplateContext::sample();
            context.variant = Some(variant.to_string());
            render(query, &context).ok()
        };
        if for_variant("control") == for_variant("treatment") {
            self.fail(
                path,
                "the query must use {{ variant }}, or every variant gets the same count",
            );
        }
    }

    fn variants(&mut self, variants: &[Variant]) {
        if variants.is_empty() {
            return;
        }
        if variants.len() > MAX_VARIANTS {
            self.fail(
                "spec.variants",
                format!(
                    "{} variants is more than the limit of {MAX_VARIANTS}",
                    variants.len()
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, variant) in variants.iter().enumerate() {
            if !is_object_name(&variant.name) {
                self.fail(
                    format!("spec.variants[{i}].name"),
                    format!("{:?} is not a valid variant name", variant.name),
                );
            }
            if !names.insert(variant.name.as_str()) {
                self.fail(
                    format!("spec.variants[{i}].name"),
                    format!("variant names must be unique: {:?} repeats", variant.name),
                );
            }
            if variant.weight > 100 {
                self.fail(
                    format!("spec.variants[{i}].weight"),
                    format!("{} is outside 0–100", variant.weight),
                );
            }
        }
        let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
        if total != 100 {
            self.fail(
                "spec.variants",
                format!("variant weights must sum to 100, got {total}"),
            );
        }
    }
}

/// `^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`
pub fn is_flag_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| edge(b) || matches!(b, b'.' | b'_' | b'-'))
}

/// `^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`
fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_dns_subdomain(name) && !name.contains('.')
}

/// `-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`, the numbers `Lt`, `Lte`, `Gt` and `Gte` take.
pub fn is_decimal_number(text: &str) -> bool {
    fn digits(text: &str) -> (usize, &str) {
        let count = text.bytes().take_while(u8::is_ascii_digit).count();
        (count, &text[count..])
    }
    let rest = text.strip_prefix('-').unwrap_or(text);
    let (whole, mut rest) = digits(rest);
    if whole == 0 {
        return false;
    }
    if let Some(fraction) = rest.strip_prefix('.') {
        let (count, after) = digits(fraction);
        if count == 0 {
            return false;
        }
        rest = after;
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        let (count, after) = digits(exponent);
        if count == 0 {
            return false;
        }
        rest = after;
    }
    rest.is_empty()
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            !bytes.is_empty()
                && bytes.first().is_some_and(edge)
                && bytes.last().is_some_and(edge)
                && bytes.iter().all(|b| edge(b) || *b == b'-')
        })
}

/// At most two decimals, with a tolerance for binary floating point. Offline only: the schema
/// has no `multipleOf: 0.01`, which crashes 1.20 API servers on integer percents.
fn has_at_most_two_decimals(value: f64) -> bool {
    let scaled = value * 100.0;
    (scaled - scaled.round()).abs() < 1e-6
}
