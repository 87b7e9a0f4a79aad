//! Metric verdicts: one metric's outcome against its bounds and policies, then the run.

use crate::crd::{
    AnalysisRun, ErrorPolicy, GuardrailResult, MetricCheck, MetricResult, MetricVerdict,
    NoDataPolicy, Verdict,
};
use crate::guardrail::GuardrailVerdict;
use crate::observation::{MetricObservation, MetricOutcome};

/// The verdict of one analysis run and what each metric of the spec gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub metrics: Vec<MetricResult>,
    pub guardrails: Vec<GuardrailResult>,
}

impl Judgement {
    /// The messages of the metrics and guardrails that decided the verdict (failed ones for
    /// a failure, held ones for a hold), joined for a condition or an event.
    pub fn summary(&self) -> String {
        summarize_parts(self.verdict, &self.metrics, &self.guardrails)
    }

    /// The run with its guardrails: a regression fails it, a guardrail that could not look
    /// holds it; a guardrail still collecting counts neither way.
    pub fn with_guardrails(mut self, guardrails: Vec<GuardrailResult>) -> Self {
        if guardrails
            .iter()
            .any(|g| g.verdict == GuardrailVerdict::Regression)
        {
            self.verdict = Verdict::Fail;
        } else if self.verdict == Verdict::Pass
            && guardrails
                .iter()
                .any(|g| g.verdict == GuardrailVerdict::Error)
        {
            self.verdict = Verdict::Hold;
        }
        self.guardrails = guardrails;
        self
    }

    /// Whether a guardrail declared a regression: the ramp rolls back at once.
    pub fn regression(&self) -> bool {
        self.guardrails
            .iter()
            .any(|g| g.verdict == GuardrailVerdict::Regression)
    }
}

/// The messages of a recorded run's metrics and guardrails that decided its verdict.
pub fn summarize_run(run: &AnalysisRun) -> String {
    summarize_parts(run.verdict, &run.metrics, &run.guardrails)
}

fn summarize_parts(
    verdict: Verdict,
    metrics: &[MetricResult],
    guardrails: &[GuardrailResult],
) -> String {
    let wanted = match verdict {
        Verdict::Pass => GuardrailVerdict::Pass,
        Verdict::Hold => GuardrailVerdict::Error,
        Verdict::Fail => GuardrailVerdict::Regression,
    };
    let metrics = summarize(verdict, metrics);
    let guardrails = guardrails
        .iter()
        .filter(|g| g.verdict == wanted)
        .map(|g| g.message.as_str());
    std::iter::once(metrics.as_str())
        .filter(|m| !m.is_empty())
        .chain(guardrails)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The messages of the metrics whose verdict matches `verdict`, joined by `; `.
pub fn summarize(verdict: Verdict, metrics: &[MetricResult]) -> String {
    let wanted = match verdict {
        Verdict::Pass => MetricVerdict::Pass,
        Verdict::Hold => MetricVerdict::Hold,
        Verdict::Fail => MetricVerdict::Fail,
    };
    metrics
        .iter()
        .filter(|m| m.verdict == wanted)
        .map(|m| m.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Judges every metric of the spec against what the provider saw. A metric the
/// observation does not mention counts as a query error; names the spec does not have
/// are ignored.
pub fn judge(checks: &[MetricCheck], observations: &[MetricObservation]) -> Judgement {
    let metrics: Vec<MetricResult> = checks
        .iter()
        .map(|check| {
            let outcome = observations
                .iter()
                .find(|o| o.name == check.name)
                .map(|o| &o.outcome);
            judge_metric(check, outcome)
        })
        .collect();
    Judgement {
        verdict: run_verdict(&metrics),
        metrics,
        guardrails: Vec::new(),
    }
}

/// Any failure fails the run; otherwise any hold holds it; otherwise it passes (ignored
/// metrics count neither way).
pub fn run_verdict(metrics: &[MetricResult]) -> Verdict {
    if metrics.iter().any(|m| m.verdict == MetricVerdict::Fail) {
        Verdict::Fail
    } else if metrics.iter().any(|m| m.verdict == MetricVerdict::Hold) {
        Verdict::Hold
    } else {
        Verdict::Pass
    }
}

/// One metric: a value inside `[min, max]` passes, outside fails; no data and errors
/// follow the metric's `onNoData` and `onError`.
pub fn judge_metric(check: &MetricCheck, outcome: Option<&MetricOutcome>) -> MetricResult {
    match outcome {
        Some(MetricOutcome::Value { value }) if value.is_finite() => judge_value(check, *value),
        Some(MetricOutcome::Value { value }) => no_data(check, &value.to_string()),
        Some(MetricOutcome::NoData { reason }) => no_data(check, reason),
        Some(MetricOutcome::Error { message }) => error(check, message),
        None => error(check, "the provider returned no result for this metric"),
    }
}

fn judge_value(check: &MetricCheck, value: f64) -> MetricResult {
    let name = &check.name;
    let (verdict, message) = match (check.min, check.max) {
        (Some(min), _) if value < min => (
            MetricVerdict::Fail,
            format!("metric {name} = {value} below min {min}"),
        ),
        (_, Some(max)) if value > max => (
            MetricVerdict::Fail,
            format!("metric {name} = {value} above max {max}"),
        ),
        (min, max) => (
            MetricVerdict::Pass,
            format!("metric {name} = {value} within {}", bounds(min, max)),
        ),
    };
    MetricResult {
        name: name.clone(),
        value: Some(value),
        verdict,
        message,
    }
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("[{min}, {max}]"),
        (Some(min), None) => format!("min {min}"),
        (None, Some(max)) => format!("max {max}"),
        (None, None) => "no bounds".to_string(),
    }
}

fn no_data(check: &MetricCheck, reason: &str) -> MetricResult {
    let (verdict, counted) = match check.on_no_data {
        NoDataPolicy::Fail => (MetricVerdict::Fail, "counted as a failure"),
        NoDataPolicy::Hold => (MetricVerdict::Hold, "holding"),
        NoDataPolicy::Ignore => (MetricVerdict::Ignored, "ignored"),
    };
    MetricResult {
        name: check.name.clone(),
        value: None,
        verdict,
        message: format!(
            "metric {} has no data ({reason}): onNoData {:?}, {counted}",
            check.name, check.on_no_data
        ),
    }
}

fn error(check: &MetricCheck, message: &str) -> MetricResult {
    let (verdict, counted) = match check.on_error {
        ErrorPolicy::Fail => (MetricVerdict::Fail, "counted as a failure"),
        ErrorPolicy::Hold => (MetricVerdict::Hold, "holding"),
    };
    MetricResult {
        name: check.name.clone(),
        value: None,
        verdict,
        message: format!(
            "metric {} query failed ({message}): onError {:?}, {counted}",
            check.name, check.on_error
        ),
    }
}
