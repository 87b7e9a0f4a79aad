//! The `FeatureFlag` custom resource (`rollgate.dev/v1alpha1`): spec and status, no I/O.
//!
//! Bounds live in the schema; rules that cross fields are CEL (`x-kubernetes-validations`)
//! and are mirrored in [`crate::validate`] so offline validation gives the same answers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_core::CustomResourceExt;
use kube_derive::{CustomResource, KubeSchema};
use rollgate_sdk::Operator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::experiment::{ExperimentState, Interval, Method, SrmResult, VariantStats, Winner};
use crate::guardrail::{
    GuardrailConfig, GuardrailCounts, GuardrailState, GuardrailVerdict, Tolerance,
};

/// Pattern of a flag key; the same rule as a DNS-1123 subdomain label, plus `_` and `.`.
pub const KEY_PATTERN: &str = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$";
/// Duration strings: one or more `<number><unit>` with units ms, s, m, h, d.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";
/// Analysis intervals are parsed by CEL's `duration()`, which has no `d` unit.
pub const INTERVAL_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";
pub const MAX_ALLOWED_USERS: usize = 10_000;
pub const MAX_USER_ID_LEN: usize = 253;
pub const MAX_STEPS: usize = 20;
pub const MAX_METRICS: usize = 20;
pub const MAX_GUARDRAILS: usize = 10;
/// Default `guardrails[].alpha`.
pub const DEFAULT_GUARDRAIL_ALPHA: f64 = crate::guardrail::DEFAULT_GUARDRAIL_ALPHA;
/// Default `guardrails[].minSamplesPerCohort`.
pub const DEFAULT_MIN_SAMPLES_PER_COHORT: u64 = crate::guardrail::DEFAULT_MIN_SAMPLES_PER_COHORT;
pub const MAX_VARIANTS: usize = 26;
pub const DEFAULT_INTERVAL: &str = "1m";
pub const DEFAULT_FAILURE_LIMIT: u32 = 2;
pub const DEFAULT_STALE_AFTER: &str = "14d";
/// Default `experiment.alpha`.
pub const DEFAULT_ALPHA: f64 = crate::experiment::DEFAULT_ALPHA;
/// Default `experiment.minSamplesPerVariant`.
pub const DEFAULT_MIN_SAMPLES_PER_VARIANT: u64 = crate::experiment::DEFAULT_MIN_SAMPLES_PER_VARIANT;
/// Bounds of `experiment.alpha`.
pub const MIN_ALPHA: f64 = 0.0001;
pub const MAX_ALPHA: f64 = 0.5;
pub const MAX_SALT_LEN: usize = 253;
/// Targeting limits (`docs/targeting.md`).
pub const MAX_RULES: usize = 32;
pub const MAX_CONDITIONS: usize = 16;
pub const MAX_VALUES: usize = 100;
pub const MAX_SEGMENT_NAMES: usize = 10;
/// Pattern of a rule name: a DNS-1123 label.
pub const RULE_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// Messages of the targeting rules that CEL checks and `validate()` repeats word for word.
pub const ATTRIBUTE_MESSAGE: &str =
    "attribute is required for every operator but InSegment, which takes none";
pub const LIST_VALUES_MESSAGE: &str =
    "In, NotIn, StartsWith, EndsWith and Contains need 1–100 values";
pub const EMPTY_AFFIX_MESSAGE: &str = "StartsWith, EndsWith and Contains values must not be empty";
pub const ONE_VALUE_MESSAGE: &str =
    "Lt, Lte, Gt, Gte, SemverLt, SemverGte and SemverEq need exactly 1 value";
pub const EXISTS_VALUES_MESSAGE: &str = "Exists takes no values";
pub const SEGMENT_NAMES_MESSAGE: &str = "InSegment needs 1–10 segment names";
pub const SERVE_MESSAGE: &str = "serve needs exactly one of enabled, variant and percent";
pub const RULE_NAMES_MESSAGE: &str = "rule names must be unique";
pub const SERVE_VARIANT_MESSAGE: &str = "a rule serving a variant must name one of spec.variants";
/// At most this many ids in a segment's `included`, and in its `excluded`.
pub const MAX_SEGMENT_USERS: usize = 10_000;
pub const IN_SEGMENT_MESSAGE: &str =
    "InSegment is not allowed in a segment: segments cannot name segments";
/// The annotation that carries manual requests: `<verb>/<id>`.
pub const REQUEST_ANNOTATION: &str = "rollgate.dev/request";

/// A feature flag: who sees a feature, and how its exposure ramps up under metric guard.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[kube(
    group = "rollgate.dev",
    version = "v1alpha1",
    kind = "FeatureFlag",
    plural = "featureflags",
    shortname = "ff",
    namespaced,
    status = "FeatureFlagStatus",
    crates(kube_core = "::kube_core"),
    printcolumn = r#"{"name":"Enabled","type":"boolean","jsonPath":".spec.enabled"}"#,
    printcolumn = r#"{"name":"Percent","type":"number","jsonPath":".status.percent"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.currentStep"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = kube_core::Rule::new(
    "!(has(self.percent) && has(self.rollout) && has(self.rollout.steps) && size(self.rollout.steps) > 0)"
).message("percent and rollout.steps are mutually exclusive: use percent for a static flag or rollout.steps for a ramp"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.experiment) || !has(self.percent)"
).message("experiment and percent are mutually exclusive: an experiment's exposure is experiment.coverage"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.experiment) || !has(self.variants) || size(self.variants) == 0"
).message("experiment and variants are mutually exclusive: an experiment's arms are experiment.variants"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.experiment) || !has(self.rollout) || !has(self.rollout.steps) || size(self.rollout.steps) == 0"
).message("experiment and rollout.steps are mutually exclusive: raise experiment.coverage instead of ramping"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.experiment) || !has(self.rollout) || !has(self.rollout.analysis) || !has(self.rollout.analysis.guardrails) || size(self.rollout.analysis.guardrails) == 0"
).message("experiment and rollout.analysis.guardrails are mutually exclusive: an experiment compares its arms through experiment.metric"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.rollout) || !has(self.rollout.analysis) || !has(self.rollout.analysis.guardrails) || size(self.rollout.analysis.guardrails) == 0 || !has(self.variants) || !self.variants.exists(v, v.name == 'off')"
).message("a variant named off would count as the control of the guardrails: rename it"))]
#[x_kube(validation = kube_core::Rule::new(
    "!has(self.targeting) || self.targeting.all(r, !has(r.serve.variant) || (has(self.variants) && self.variants.exists(v, v.name == r.serve.variant)))"
).message(SERVE_VARIANT_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlagSpec {
    /// The key workloads evaluate; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"))]
    pub key: Option<String>,

    /// The declarative kill switch: `false` turns the flag off for everyone.
    #[serde(default)]
    pub enabled: bool,

    /// Free text on what the flag is for, shown by `kubectl rollgate status`; editing it never
    /// restarts a ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Who to ask before deleting the flag (a team or person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,

    /// Static exposure in percent (0–100, two decimals) when there is no rollout.
    // Two decimals are checked by `validate()`, not `multipleOf: 0.01`: that crashes 1.20
    // API servers on integer values (integer divide by zero) and is inexact in binary floats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<f64>,

    /// Users who always get the flag while it is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(max = 253)), extend("x-kubernetes-list-type" = "set"))]
    pub allowed_users: Vec<String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// Arms for A/B tests; weights (integers) sum to 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 26), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = kube_core::Rule::new("size(self) == 0 || self.map(v, v.weight).sum() == 100").message("variant weights must sum to 100"))]
    #[x_kube(validation = kube_core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("variant names must be unique"))]
    pub variants: Vec<Variant>,

    /// Ordered rules on the attributes of the user asking: the first whose conditions all
    /// hold serves its answer, after the kill switch and before the ramp, which only the
    /// users no rule matched see (`docs/targeting.md`).
    // Atomic, not a map keyed by name: the order decides, and merging two writers' lists
    // would interleave their rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube_core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message(RULE_NAMES_MESSAGE))]
    pub targeting: Vec<TargetingRule>,

    /// How long a flag may sit at 100% before it is reported stale (default `14d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h|d))+$"))]
    pub stale_after: Option<String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Publish>,

    /// An A/B/n experiment: splits `coverage` percent of users between its variants and ships
    /// the winner. `rollout.analysis` sets its interval and guards it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
}

/// One targeting rule: when every condition holds, `serve` decides the answer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct TargetingRule {
    /// Unique within the flag, 1–63 characters `[a-z0-9]([a-z0-9-]*[a-z0-9])?`; reported as
    /// the reason of every answer the rule decides.
    #[schemars(regex(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// 1–16 conditions; all must hold.
    #[schemars(length(min = 1, max = 16))]
    pub conditions: Vec<TargetingCondition>,
    pub serve: Serve,
}

/// One test on the evaluation context: `{attribute, operator, values}`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("self.operator == 'InSegment' ? !has(self.attribute) : has(self.attribute)").message(ATTRIBUTE_MESSAGE))]
#[x_kube(validation = kube_core::Rule::new("!(self.operator in ['In', 'NotIn', 'StartsWith', 'EndsWith', 'Contains']) || size(self.values) >= 1").message(LIST_VALUES_MESSAGE))]
#[x_kube(validation = kube_core::Rule::new("!(self.operator in ['StartsWith', 'EndsWith', 'Contains']) || self.values.all(v, size(v) > 0)").message(EMPTY_AFFIX_MESSAGE))]
#[x_kube(validation = kube_core::Rule::new("!(self.operator in ['Lt', 'Lte', 'Gt', 'Gte', 'SemverLt', 'SemverGte', 'SemverEq']) || size(self.values) == 1").message(ONE_VALUE_MESSAGE))]
#[x_kube(validation = kube_core::Rule::new("self.operator != 'Exists' || size(self.values) == 0").message(EXISTS_VALUES_MESSAGE))]
#[x_kube(validation = kube_core::Rule::new("self.operator != 'InSegment' || (size(self.values) >= 1 && size(self.values) <= 10)").message(SEGMENT_NAMES_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct TargetingCondition {
    /// The context attribute tested; `targetingKey` is the user id. Absent for `InSegment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub attribute: Option<String>,
    /// In, NotIn, StartsWith, EndsWith, Contains, Lt, Lte, Gt, Gte, SemverLt, SemverGte,
    /// SemverEq, Exists or InSegment.
    #[schemars(schema_with = "operator_schema")]
    pub operator: Operator,
    /// Strings, as in label selectors; numeric and version operators parse theirs. Segment
    /// names for `InSegment`, none for `Exists`.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 253)))]
    pub values: Vec<String>,
}

/// What a matching rule serves: exactly one of `enabled`, `variant` and `percent`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("(has(self.enabled) ? 1 : 0) + (has(self.variant) ? 1 : 0) + (has(self.percent) ? 1 : 0) == 1").message(SERVE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct Serve {
    /// On (`true`) or off (`false`) for every matching user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// On, with this variant, one of `spec.variants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// On for matching users whose rollout rank is below this percent (0–100, two
    /// decimals), the rank of the flag's own percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<f64>,
}

/// The operator as a string enum, the names `docs/targeting.md` lists.
fn operator_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Operator::ALL
        .iter()
        .map(|operator| operator.as_str())
        .collect();
    schemars::json_schema!({
        "type": "string",
        "enum": names
    })
}

impl TargetingRule {
    /// The rule as the flag document carries it; `None` when `serve` is not exactly one
    /// answer (which `validate()` refuses).
    pub fn to_document(&self) -> Option<rollgate_sdk::TargetingRule> {
        let serve = match (&self.serve.enabled, &self.serve.variant, self.serve.percent) {
            (Some(enabled), None, None) => rollgate_sdk::Serve::Enabled(*enabled),
            (None, Some(variant), None) => rollgate_sdk::Serve::Variant(variant.clone()),
            (None, None, Some(percent)) => rollgate_sdk::Serve::Percent(percent),
            _ => return None,
        };
        Some(rollgate_sdk::TargetingRule {
            name: self.name.clone(),
            conditions: self
                .conditions
                .iter()
                .map(TargetingCondition::to_document)
                .collect(),
            serve,
        })
    }
}

impl TargetingCondition {
    /// The condition as the flag document carries it.
    pub fn to_document(&self) -> rollgate_sdk::Condition {
        rollgate_sdk::Condition {
            attribute: self.attribute.clone(),
            operator: self.operator,
            values: self.values.clone(),
        }
    }
}

impl FeatureFlagSpec {
    /// The segments the rules' `InSegment` conditions name, each once, in rule order.
    pub fn segments_used(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let named = self
            .targeting
            .iter()
            .flat_map(|rule| &rule.conditions)
            .filter(|condition| condition.operator == Operator::InSegment)
            .flat_map(|condition| condition.values.iter().map(String::as_str));
        for name in named {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// A schedule of steps and the analysis that gates each one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The exposure ramp, percents strictly increasing: the flag enters step 0, advances one
    /// step at a time and completes at the last; without steps or an experiment, `spec.percent`
    /// applies.
    #[serde(default)]
    #[schemars(length(max = 20))]
    #[x_kube(validation = kube_core::Rule::new("self.map(s, s.percent).isSorted() && self.all(a, self.exists_one(b, b.percent == a.percent))").message("step percents must strictly increase"))]
    #[x_kube(validation = kube_core::Rule::new("size(self) == 0 || self.all(s, has(s.pause) || s.percent == self[size(self) - 1].percent)").message("every step but the last needs a pause"))]
    pub steps: Vec<Step>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Exposure at this step, in percent (0 < p ≤ 100, two decimals).
    #[schemars(range(min = 0.01, max = 100))]
    pub percent: f64,
    /// How long to hold this step before advancing, e.g. `30s`, `10m`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h|d))+$"))]
    pub pause: Option<String>,
}

/// Metric analysis that gates every step of the ramp.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Time between analyses (default `1m`, minimum `10s`).
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    #[x_kube(validation = kube_core::Rule::new("duration(self) >= duration('10s')").message("interval must be at least 10s"))]
    pub interval: String,

    /// Failed analyses in a row that roll the flag back (default 2).
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_limit: u32,

    /// The Prometheus the metric queries go to (default: the operator's `--prometheus-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,

    #[serde(default)]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = kube_core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("metric names must be unique"))]
    pub metrics: Vec<MetricCheck>,

    /// Treatment against control: each compares the users with the flag on with the users
    /// with it off, and rolls back at once when the treatment is worse beyond its tolerance
    /// (see `docs/guardrails.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = kube_core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("guardrail names must be unique"))]
    pub guardrails: Vec<Guardrail>,

    /// How long a step may wait for its guardrails' samples once its pause has elapsed,
    /// counted from the step's start, e.g. `2h`; past it the ramp is held with
    /// `Progressing=False` (reason `GuardrailStarved`) until the samples arrive or a person
    /// promotes. Without it a step waits as long as it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h|d))+$"))]
    pub max_step_duration: Option<String>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            failure_limit: default_failure_limit(),
            prometheus: None,
            metrics: Vec::new(),
            guardrails: Vec::new(),
            max_step_duration: None,
        }
    }
}

/// One treatment-against-control check on cumulative counters split by cohort.
///
/// `bad` and `total` are PromQL returning one series per cohort (`by (cohort)`), counted since
/// the ramp started: `{{ since_ramp_start }}` is that time as a range, e.g.
/// `sum by (cohort) (increase(rollgate_flag_requests_total{flag={{ flag }},outcome="error"}[{{ since_ramp_start }}]))`.
/// The series with `cohort="off"` is the control; every other series is the treatment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("has(self.maxRelativeIncrease) != has(self.maxAbsoluteIncrease)").message("a guardrail needs exactly one of maxRelativeIncrease and maxAbsoluteIncrease"))]
#[serde(rename_all = "camelCase")]
pub struct Guardrail {
    /// Names the guardrail in status, events and rollback messages; unique within the analysis.
    #[schemars(regex(pattern = "^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"))]
    pub name: String,
    /// PromQL: bad events per cohort since the ramp started.
    #[schemars(length(min = 1))]
    pub bad: String,
    /// PromQL: all events per cohort since the ramp started.
    #[schemars(length(min = 1))]
    pub total: String,
    /// Regression when the treatment's rate exceeds the control's times `1 + this`,
    /// e.g. `0.1` for 10% worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_relative_increase: Option<f64>,
    /// Regression when the treatment's rate exceeds the control's plus this, as a fraction,
    /// e.g. `0.002` for 0.2 percentage points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub max_absolute_increase: Option<f64>,
    /// No judgement until each cohort has this many events since the ramp started, and no
    /// step passes until each cohort has this many in the step (default 1000).
    #[serde(default = "default_min_samples_per_cohort")]
    #[schemars(range(min = 1))]
    pub min_samples_per_cohort: u64,
    /// The chance of a false rollback over the whole ramp, however often it looks
    /// (default 0.05).
    #[serde(default = "default_guardrail_alpha")]
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: f64,
}

impl Guardrail {
    /// The test settings the engine runs. `Err` starts with the field, relative to the
    /// guardrail (`maxRelativeIncrease: …`), or is about the guardrail as a whole.
    pub fn config(&self) -> Result<GuardrailConfig, String> {
        let tolerance = match (self.max_relative_increase, self.max_absolute_increase) {
            (Some(r), None) if r.is_finite() && r >= 0.0 => Tolerance::Relative(r),
            (None, Some(a)) if a.is_finite() && (0.0..=1.0).contains(&a) => Tolerance::Absolute(a),
            (Some(_), None) => return Err("maxRelativeIncrease: must be 0 or more".into()),
            (None, Some(_)) => return Err("maxAbsoluteIncrease: must be between 0 and 1".into()),
            _ => {
                return Err(
                    "a guardrail needs exactly one of maxRelativeIncrease and maxAbsoluteIncrease"
                        .into(),
                );
            }
        };
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err("alpha: must be between 0 and 1".into());
        }
        Ok(GuardrailConfig {
            tolerance,
            alpha: self.alpha,
            min_samples_per_cohort: self.min_samples_per_cohort.max(1),
        })
    }
}

fn default_min_samples_per_cohort() -> u64 {
    DEFAULT_MIN_SAMPLES_PER_COHORT
}

fn default_guardrail_alpha() -> f64 {
    DEFAULT_GUARDRAIL_ALPHA
}

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_string()
}

fn default_failure_limit() -> u32 {
    DEFAULT_FAILURE_LIMIT
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API; defaults to the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One PromQL query and the bounds its value must stay within.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("has(self.min) || has(self.max)").message("a metric needs min, max or both"))]
#[x_kube(validation = kube_core::Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("min must not exceed max"))]
#[serde(rename_all = "camelCase")]
pub struct MetricCheck {
    /// Names the metric in `status.analyses`, events and rollback messages; unique within
    /// the analysis.
    #[schemars(regex(pattern = "^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"))]
    pub name: String,
    /// PromQL; `{{ flag }}`, `{{ namespace }}`, `{{ interval }}` and `{{ variant }}` are substituted.
    #[schemars(length(min = 1))]
    pub query: String,
    /// The lowest passing value, inclusive, in the query's unit; a lower value fails the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest passing value, inclusive, in the query's unit; a higher value fails the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default)]
    pub on_no_data: NoDataPolicy,
    #[serde(default)]
    pub on_error: ErrorPolicy,
}

/// What an empty, NaN or infinite result counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoDataPolicy {
    Fail,
    #[default]
    Hold,
    Ignore,
}

/// What a failed query counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    Fail,
    #[default]
    Hold,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// What the SDKs return as the variant for users in this arm (and, in an experiment, the
    /// value of `{{ variant }}` in its queries).
    #[schemars(regex(pattern = "^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"))]
    pub name: String,
    /// This arm's share of the users that get a variant, in whole percent; a list's weights
    /// sum to 100.
    #[schemars(range(min = 0, max = 100))]
    pub weight: u32,
}

/// An A/B/n experiment on conversion counters (see `docs/experiments.md`).
///
/// Users whose rollout rank is below `coverage` are in the experiment; everyone else gets the
/// flag off. The arm comes from a second hash salted with `salt`, so raising `coverage` never
/// moves a user between arms.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[x_kube(validation = kube_core::Rule::new("self.method != 'fixed' || has(self.plannedSamplesPerVariant)").message("method fixed needs plannedSamplesPerVariant"))]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// Arms, control first; integer weights sum to 100.
    #[schemars(length(min = 2, max = 26), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = kube_core::Rule::new("self.map(v, v.weight).sum() == 100").message("experiment variant weights must sum to 100"))]
    #[x_kube(validation = kube_core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("experiment variant names must be unique"))]
    #[x_kube(validation = kube_core::Rule::new("self.all(v, v.weight > 0)").message("every experiment variant needs a positive weight"))]
    pub variants: Vec<Variant>,

    /// Percent of users in the experiment (0–100, two decimals); the others get the flag off.
    #[schemars(range(min = 0, max = 100))]
    pub coverage: f64,

    /// Seeds the arm hash; defaults to the flag key. A new salt re-randomises the arms and
    /// restarts the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub salt: Option<String>,

    /// The PromQL that counts exposures and conversions per variant.
    pub metric: ExperimentMetric,

    /// Significance level, family-wise across the treatments (default 0.05).
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: f64,

    /// No decision until every variant has this many exposures (default 1000).
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples_per_variant: u64,

    /// `sequential` (default): look at every analysis interval; `fixed`: one test at
    /// `plannedSamplesPerVariant`.
    #[serde(default)]
    pub method: Method,

    /// Exposures per variant at which a `fixed` experiment is analysed, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub planned_samples_per_variant: Option<u64>,

    /// Ship a winner to every user as soon as it is declared and the guardrails pass.
    #[serde(default)]
    pub auto_ship: bool,

    /// Past this without a winner the experiment is `Inconclusive`, e.g. `14d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h|d))+$"))]
    pub max_duration: Option<String>,
}

/// Two PromQL queries, rendered once per variant: `{{ variant }}` is the arm, and
/// `{{ interval }}` the time since the experiment started, so
/// `sum(increase(exposures_total{variant={{ variant }}}[{{ interval }}]))` counts the
/// experiment's exposures. Values are rounded to whole numbers; an empty result counts 0.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentMetric {
    /// Users exposed to `{{ variant }}` since the experiment started.
    #[schemars(length(min = 1))]
    pub exposures: String,
    /// Exposed users of `{{ variant }}` who converted since the experiment started.
    #[schemars(length(min = 1))]
    pub conversions: String,
}

fn default_alpha() -> f64 {
    DEFAULT_ALPHA
}

fn default_min_samples() -> u64 {
    DEFAULT_MIN_SAMPLES_PER_VARIANT
}

/// Where the resolved flag is published.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// ConfigMap name in the flag's namespace (default: the operator's `--configmap-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    pub config_map: Option<String>,
}

/// Where a flag is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Phase {
    /// Not yet reconciled.
    #[default]
    Pending,
    /// `enabled: false`: off for everyone.
    Disabled,
    /// No schedule: `spec.percent` applies.
    Static,
    /// Ramping through `rollout.steps`.
    Progressing,
    /// Ramp held by a `pause` request.
    Paused,
    /// The last step (100%) reached.
    Complete,
    /// Analysis failed or an abort was requested: 0% until the spec changes or a retry.
    RolledBack,
    /// Runtime kill request: 0% until `unkill`.
    Killed,
    /// The spec failed validation; nothing is published for it.
    Invalid,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Disabled => "Disabled",
            Self::Static => "Static",
            Self::Progressing => "Progressing",
            Self::Paused => "Paused",
            Self::Complete => "Complete",
            Self::RolledBack => "RolledBack",
            Self::Killed => "Killed",
            Self::Invalid => "Invalid",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many analysis runs `status.analyses` keeps.
pub const MAX_ANALYSIS_HISTORY: usize = 10;

/// Observed state. Everything the engine needs to resume lives here, never in memory.
///
/// Every field has a default, so a status written by an older operator still parses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct FeatureFlagStatus {
    #[serde(default)]
    pub phase: Phase,
    /// Resolved exposure in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Index into `rollout.steps` while ramping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<u32>,
    /// When the current step was entered; its `pause` and its first analysis count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// The `metadata.generation` the operator last reconciled, including one it refused as
    /// invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Failed analyses since the last passed one; holds neither add nor reset.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Analyses that ran during the current step.
    #[serde(default)]
    pub step_analyses: u32,
    /// When the latest analysis ran; the next is due one `interval` after this or
    /// `stepStartedAt`, whichever is later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis_at: Option<Time>,
    /// The latest analysis runs, oldest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub analyses: Vec<AnalysisRun>,
    /// When the ramp reached its last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Why the flag was rolled back, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
    /// The last `rollgate.dev/request` handled; a request with the same id is not handled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request: Option<RequestRecord>,
    /// Digest of what defines the ramp (key and steps): a new generation that changes it
    /// restarts at step 0, any other edit continues at the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_fingerprint: Option<String>,
    /// The experiment's progress and result, for flags with `spec.experiment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentStatus>,
    /// When the ramp started at step 0; guardrails count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_started_at: Option<Time>,
    /// Each guardrail's latest look and running statistics, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub guardrails: Vec<GuardrailStatus>,
}

/// Where one guardrail stands. `state` is what the statistics need at the next look.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailStatus {
    /// The guardrail's name, as in `spec.rollout.analysis.guardrails`.
    pub name: String,
    pub verdict: GuardrailVerdict,
    /// Both rates, the interval and the tolerance, or why the look failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub message: String,
    /// The treatment's rate of bad events since the ramp started.
    #[serde(default)]
    pub treatment_rate: f64,
    /// The control's rate, weighted to the treatment's traffic over time.
    #[serde(default)]
    pub control_rate: f64,
    /// The running always-valid interval for `rate(treatment) − bound`; a regression once
    /// it lies above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Events per cohort during the current step.
    #[serde(default)]
    pub step_samples: GuardrailCounts,
    /// When the latest look ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look_at: Option<Time>,
    /// Digest of the guardrail's queries and test; a change starts its statistics again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub fingerprint: String,
    /// The running sums, passed back at every look.
    #[serde(default)]
    #[schemars(schema_with = "opaque_object", transform = without_default)]
    pub state: GuardrailState,
}

/// One analysis: what every metric gave, and the verdict.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRun {
    /// When the analysis ran.
    pub time: Time,
    /// The step the analysis gated.
    #[serde(default)]
    pub step: u32,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailResult>,
}

/// One guardrail of an analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailResult {
    pub name: String,
    pub verdict: GuardrailVerdict,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub message: String,
}

/// The verdict of one analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every metric passed or was ignored.
    Pass,
    /// No metric failed, but at least one held (no data or query error).
    Hold,
    /// At least one metric failed.
    Fail,
}

/// One metric of an analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name, as in `spec.rollout.analysis.metrics`.
    pub name: String,
    /// The value, when the query gave a finite one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub verdict: MetricVerdict,
    /// e.g. `metric error-rate = 0.12 above max 0.05`.
    // Omitted when empty: a 1.20 API server reads an empty string nested in status as null
    // and refuses the whole status write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub message: String,
}

/// How one metric counted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricVerdict {
    Pass,
    Fail,
    Hold,
    /// No data with `onNoData: Ignore`: counts neither way.
    Ignored,
}

/// Why and when the flag was rolled back.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    /// `AnalysisFailed` or `ManualAbort`.
    pub reason: String,
    /// What happened, e.g. the failing metrics with their values and bounds, or the request
    /// that aborted the ramp.
    pub message: String,
    /// When the flag was rolled back.
    pub at: Time,
}

/// A handled `rollgate.dev/request`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// The request's id, the annotation value after the first `/`; only a request with a
    /// different id is handled next.
    pub id: String,
    /// The verb as written, the annotation value before the first `/`, e.g. `pause`.
    pub verb: String,
    /// When the operator handled the request.
    pub handled_at: Time,
    pub outcome: RequestOutcome,
    /// What the request did, or why it was refused or ignored.
    // Omitted when empty: a 1.20 API server reads an empty string nested in status as null
    // and refuses the whole status write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub message: String,
}

/// What became of a request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    Applied,
    /// A known verb that does not apply now, e.g. `promote` while the latest analysis failed.
    Refused,
    /// An unknown verb or a malformed annotation.
    Ignored,
}

/// Where an experiment stands. `state` is what the statistics need at the next look.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// When the experiment (re)started: the counts cover the time since.
    pub started_at: Time,
    pub decision: ExperimentDecision,
    /// One line on the decision, e.g. the winner with its lift and interval.
    // Omitted when empty: a 1.20 API server reads an empty string nested in status as null
    // and refuses the whole status write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = without_default)]
    pub message: String,
    /// The declared winner, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Winner>,
    /// The variant every user gets since the winner shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_variant: Option<String>,
    /// When the winner shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<Time>,
    /// The latest statistics per variant, control first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 26))]
    pub variants: Vec<VariantStats>,
    /// The latest sample-ratio check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srm: Option<SrmResult>,
    /// When the counts were last looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look_at: Option<Time>,
    /// Why the latest look could not be evaluated (a query failed, inconsistent counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The running statistics and the latched conclusion, passed back at every look.
    #[serde(default)]
    #[schemars(schema_with = "opaque_object", transform = without_default)]
    pub state: ExperimentState,
}

impl ExperimentStatus {
    /// A fresh experiment starting at `at`.
    pub fn started(at: Time) -> Self {
        Self {
            started_at: at,
            decision: ExperimentDecision::Collecting,
            message: String::new(),
            winner: None,
            shipped_variant: None,
            shipped_at: None,
            variants: Vec::new(),
            srm: None,
            last_look_at: None,
            error: None,
            state: ExperimentState::default(),
        }
    }
}

/// The statistics' decision (see `docs/experiments.md`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ExperimentDecision {
    /// Some variant has fewer than `minSamplesPerVariant` exposures.
    #[default]
    Collecting,
    /// Analysed; nothing significant yet.
    Running,
    /// Significant: `winner` names the variant.
    Winner,
    /// `fixed` only: the planned test found no difference.
    NoDifference,
    /// `maxDuration` passed without a winner.
    Inconclusive,
    /// Exposures do not match the weights: halted, never ships.
    SampleRatioMismatch,
}

impl ExperimentDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collecting => "Collecting",
            Self::Running => "Running",
            Self::Winner => "Winner",
            Self::NoDifference => "NoDifference",
            Self::Inconclusive => "Inconclusive",
            Self::SampleRatioMismatch => "SampleRatioMismatch",
        }
    }

    /// Whether the experiment reached a conclusion (it is latched).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Collecting | Self::Running)
    }
}

impl std::fmt::Display for ExperimentDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object whose fields the API server keeps as they are: internal state that only the
/// operator reads.
fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

impl FeatureFlag {
    /// The key workloads evaluate: `spec.key`, or else `metadata.name`.
    pub fn key(&self) -> &str {
        self.spec
            .key
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The variants workloads are split between: `experiment.variants` for an experiment,
    /// else `spec.variants`.
    pub fn arms(&self) -> &[Variant] {
        match &self.spec.experiment {
            Some(experiment) => &experiment.variants,
            None => &self.spec.variants,
        }
    }

    /// The salt of an experiment's arm hash: `experiment.salt`, or else the key.
    pub fn experiment_salt(&self) -> Option<&str> {
        let experiment = self.spec.experiment.as_ref()?;
        Some(experiment.salt.as_deref().unwrap_or(self.key()))
    }
}

/// Drops a schema's `default`: Kubernetes 1.20 reads `default: ""` as null and refuses the
/// whole CRD ("must be of type string"), and defaults in status serve no purpose.
fn without_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// The CRD as YAML, exactly as `rollgate crd` prints it and `crds/featureflag.yaml` holds it.
pub fn crd_yaml() -> String {
    render_crd(&FeatureFlag::crd())
}

/// A CRD as YAML with the header every generated CRD file carries.
pub fn render_crd(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    let body = serde_saphyr::to_string(crd).unwrap_or_else(|error| {
        // The CRD is built from static Rust types; failing here is a programming error.
        panic!(
            "the {} CRD cannot be rendered as YAML: {error}",
            crd.spec.names.kind
        )
    });
    format!("# Generated by `rollgate crd`; do not edit.\n{body}")
}
