//! The guardrails of `rollgate analyze`: each guardrail's counts per cohort since the ramp
//! started, and the verdict of one look from a fresh state.
//!
//! One look from a fresh state is one stratum: the control's rate is not weighted to the
//! treatment's traffic over time, and the interval is this look's alone, where the
//! operator keeps the running intersection of every look since the ramp started.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use rollgate_core::crd::Guardrail;
use rollgate_core::experiment::Interval;
use rollgate_core::guardrail::{
    CohortCounts, GuardrailConfig, GuardrailCounts, GuardrailState, GuardrailVerdict, Tolerance,
    look,
};
use rollgate_core::observation::GuardrailOutcome;

/// `{{ since_ramp_start }}` when neither `--since-ramp-start` nor `status.rampStartedAt`
/// says when the ramp started.
pub const DEFAULT_SINCE_RAMP_START: Duration = Duration::from_secs(3600);

/// Where the `{{ since_ramp_start }}` window came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowSource {
    /// `--since-ramp-start`.
    Option,
    /// The manifest's `status.rampStartedAt` (a flag saved with `kubectl get -o yaml`).
    Status(Timestamp),
    /// Neither: [`DEFAULT_SINCE_RAMP_START`].
    Default,
}

impl WindowSource {
    pub fn describe(&self) -> String {
        match self {
            Self::Option => "--since-ramp-start".to_string(),
            Self::Status(started) => format!("status.rampStartedAt {started}"),
            Self::Default => {
                "default; give --since-ramp-start or a manifest with status.rampStartedAt"
                    .to_string()
            }
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Self::Option => "option",
            Self::Status(_) => "status.rampStartedAt",
            Self::Default => "default",
        }
    }
}

/// How long before `at` the ramp started: `--since-ramp-start` when given, else the time
/// since `status.rampStartedAt`, else [`DEFAULT_SINCE_RAMP_START`]. A ramp that starts after
/// `at` is an error naming both times.
pub fn since_ramp_start(
    option: Option<Duration>,
    ramp_started_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<(Duration, WindowSource), String> {
    if let Some(window) = option {
        return Ok((window, WindowSource::Option));
    }
    let Some(started) = ramp_started_at else {
        return Ok((DEFAULT_SINCE_RAMP_START, WindowSource::Default));
    };
    if started > at {
        return Err(format!(
            "status.rampStartedAt {started} is after the analysis time {at}: the ramp had not started; give --since-ramp-start or a later --time"
        ));
    }
    let window = Duration::try_from(at.duration_since(started)).unwrap_or_default();
    Ok((window, WindowSource::Status(started)))
}

/// A `--since-ramp-start` value: a duration in the CRD's syntax, at least one second.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let window =
        rollgate_core::duration::parse_duration(text).map_err(|error| error.to_string())?;
    if window < Duration::from_secs(1) {
        return Err("the window must be at least 1s".into());
    }
    Ok(window)
}

/// The guardrail's test settings, as the rollout engine reads them from the spec; an error
/// names the field under `path`.
pub fn config(guardrail: &Guardrail, path: &str) -> Result<GuardrailConfig, String> {
    guardrail
        .config()
        .map_err(|message| match message.split_once(": ") {
            Some((field, why)) if !field.contains(' ') => format!("{path}.{field}: {why}"),
            _ => format!("{path}: {message}"),
        })
}

/// One guardrail of a dry run: its queries as sent, its counts and one look's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailRun {
    pub name: String,
    /// The rendered `bad` query; `None` when the template could not be rendered.
    pub bad: Option<String>,
    /// The rendered `total` query; `None` when the template could not be rendered.
    pub total: Option<String>,
    #[serde(flatten)]
    pub tolerance: ToleranceView,
    pub alpha: f64,
    pub min_samples_per_cohort: u64,
    /// What Prometheus counted per cohort; `None` when a query failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<GuardrailCounts>,
    /// The treatment's rate of bad events, once the look counted both cohorts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treatment_rate: Option<f64>,
    /// The control's rate of bad events, once the look counted both cohorts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_rate: Option<f64>,
    /// The rate the treatment is held to: the control's, plus the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    /// The interval for `rate(treatment) − bound`, once judging started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    pub verdict: GuardrailVerdict,
    /// The look's own line (both rates, the interval and the tolerance), or why there is
    /// no look.
    pub message: String,
}

/// The tolerance as the spec writes it, for JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToleranceView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_relative_increase: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_absolute_increase: Option<f64>,
}

impl From<Tolerance> for ToleranceView {
    fn from(tolerance: Tolerance) -> Self {
        match tolerance {
            Tolerance::Relative(r) => Self {
                max_relative_increase: Some(r),
                max_absolute_increase: None,
            },
            Tolerance::Absolute(a) => Self {
                max_relative_increase: None,
                max_absolute_increase: Some(a),
            },
        }
    }
}

/// Judges what the guardrail's queries gave with one look from a fresh state.
pub fn judge(
    name: &str,
    config: &GuardrailConfig,
    queries: (Option<String>, Option<String>),
    outcome: &GuardrailOutcome,
) -> GuardrailRun {
    let mut run = GuardrailRun {
        name: name.to_string(),
        bad: queries.0,
        total: queries.1,
        tolerance: config.tolerance.into(),
        alpha: config.alpha,
        min_samples_per_cohort: config.min_samples_per_cohort,
        counts: None,
        treatment_rate: None,
        control_rate: None,
        bound: None,
        interval: None,
        verdict: GuardrailVerdict::Error,
        message: String::new(),
    };
    let counts = match outcome {
        GuardrailOutcome::Error { message } => {
            run.message = message.clone();
            return run;
        }
        GuardrailOutcome::Counts { counts } => *counts,
    };
    run.counts = Some(counts);
    match look(config, &GuardrailState::default(), counts) {
        Err(error) => run.message = error.to_string(),
        Ok(look) => {
            // Without events in both cohorts the look closes no stratum: no rates yet.
            if look.state.treatment.total > 0 {
                run.treatment_rate = Some(look.treatment_rate);
                run.control_rate = Some(look.control_rate);
                run.bound = Some(config.tolerance.bound(look.control_rate));
            }
            run.interval = look.interval;
            run.verdict = look.verdict;
            run.message = look.message;
        }
    }
    run
}

/// How each verdict counts in `rollgate analyze`'s summary and exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuardrailTally {
    pub pass: usize,
    pub regression: usize,
    pub collecting: usize,
    pub error: usize,
}

impl GuardrailTally {
    pub fn of(runs: &[GuardrailRun]) -> Self {
        let mut tally = Self::default();
        for run in runs {
            match run.verdict {
                GuardrailVerdict::Pass => tally.pass += 1,
                GuardrailVerdict::Regression => tally.regression += 1,
                GuardrailVerdict::Collecting => tally.collecting += 1,
                GuardrailVerdict::Error => tally.error += 1,
            }
        }
        tally
    }
}

/// The window as JSON: the PromQL range and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    pub range: String,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_started_at: Option<Timestamp>,
}

impl WindowView {
    pub fn new(range: String, source: &WindowSource) -> Self {
        Self {
            range,
            source: source.key(),
            ramp_started_at: match source {
                WindowSource::Status(started) => Some(*started),
                _ => None,
            },
        }
    }
}

/// The text block of one guardrail.
pub fn write_text(out: &mut String, run: &GuardrailRun) {
    let _ = writeln!(out, "\nguardrail {}", run.name);
    for (label, query) in [("bad", &run.bad), ("total", &run.total)] {
        match query {
            Some(query) => {
                let mut lines = query.trim().lines();
                let _ = writeln!(out, "  {label:<10} {}", lines.next().unwrap_or_default());
                for line in lines {
                    let _ = writeln!(out, "  {:<10} {line}", "");
                }
            }
            None => {
                let _ = writeln!(out, "  {label:<10} (not rendered)");
            }
        }
    }
    match &run.counts {
        Some(counts) => {
            let _ = writeln!(out, "  treatment  {}", cohort_text(counts.treatment));
            let _ = writeln!(out, "  control    {}", cohort_text(counts.control));
        }
        None => {
            let _ = writeln!(out, "  counts     none");
        }
    }
    let tolerance = match (run.tolerance.max_relative_increase, run.bound) {
        (Some(r), Some(bound)) => format!(
            "maxRelativeIncrease {r}: treatment at most {}",
            percent(bound)
        ),
        (Some(r), None) => format!(
            "maxRelativeIncrease {r}: treatment at most control × {}",
            1.0 + r
        ),
        (None, _) => {
            let a = run.tolerance.max_absolute_increase.unwrap_or_default();
            match run.bound {
                Some(bound) => format!(
                    "maxAbsoluteIncrease {a}: treatment at most {}",
                    percent(bound)
                ),
                None => format!("maxAbsoluteIncrease {a}: treatment at most control + {a}"),
            }
        }
    };
    let _ = writeln!(
        out,
        "  tolerance  {tolerance}; alpha {}; minSamplesPerCohort {}",
        run.alpha, run.min_samples_per_cohort
    );
    let interval = match run.interval {
        Some(interval) => format!("{} for treatment − bound", interval_text(interval)),
        None => "none: not judged".to_string(),
    };
    let _ = writeln!(out, "  interval   {interval}");
    let why = match run.verdict {
        GuardrailVerdict::Pass => {
            "the interval does not lie entirely above 0: no regression".to_string()
        }
        GuardrailVerdict::Regression => {
            "the interval lies entirely above 0: the treatment is worse than the control beyond the tolerance".to_string()
        }
        GuardrailVerdict::Collecting => format!(
            "judging starts at {} events in each cohort",
            run.min_samples_per_cohort
        ),
        GuardrailVerdict::Error => run.message.clone(),
    };
    let _ = writeln!(out, "  verdict    {} ({why})", verdict_text(run.verdict));
}

/// The verdict as `rollgate analyze` prints it: a regression stands out as a failure does.
pub fn verdict_text(verdict: GuardrailVerdict) -> &'static str {
    match verdict {
        GuardrailVerdict::Pass => "pass",
        GuardrailVerdict::Regression => "REGRESSION",
        GuardrailVerdict::Collecting => "collecting",
        GuardrailVerdict::Error => "error",
    }
}

/// `150 bad of 10000 (1.500%)`.
fn cohort_text(counts: CohortCounts) -> String {
    if counts.total == 0 {
        return format!("{} bad of 0 (no events)", counts.bad);
    }
    format!(
        "{} bad of {} ({})",
        counts.bad,
        counts.total,
        percent(counts.rate())
    )
}

/// A rate as a percent with three decimals, as the engine's messages write it.
fn percent(rate: f64) -> String {
    format!("{:.3}%", rate * 100.0)
}

/// `[+0.512%, +1.388%]`, as the engine's messages write it.
fn interval_text(interval: Interval) -> String {
    if interval.lower.is_finite() && interval.upper.is_finite() {
        format!(
            "[{:+.3}%, {:+.3}%]",
            interval.lower * 100.0,
            interval.upper * 100.0
        )
    } else {
        "(-∞, +∞)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrail() -> Guardrail {
        Guardrail {
            name: "errors".into(),
            bad: "b".into(),
            total: "t".into(),
            max_relative_increase: Some(0.1),
            max_absolute_increase: None,
            min_samples_per_cohort: 1000,
            alpha: 0.05,
        }
    }

    fn counts(bad_t: u64, total_t: u64, bad_c: u64, total_c: u64) -> GuardrailOutcome {
        GuardrailOutcome::Counts {
            counts: GuardrailCounts {
                treatment: CohortCounts::new(bad_t, total_t),
                control: CohortCounts::new(bad_c, total_c),
            },
        }
    }

    fn run_of(outcome: &GuardrailOutcome) -> GuardrailRun {
        let config = config(&guardrail(), "g").unwrap();
        judge(
            "errors",
            &config,
            (Some("b".into()), Some("t".into())),
            outcome,
        )
    }

    #[test]
    fn a_tripled_rate_is_a_regression_and_an_equal_one_passes() {
        let bad = run_of(&counts(150, 10_000, 500, 100_000));
        assert_eq!(bad.verdict, GuardrailVerdict::Regression, "{}", bad.message);
        assert_eq!(bad.treatment_rate, Some(0.015));
        assert_eq!(bad.control_rate, Some(0.005));
        let bound = bad.bound.unwrap();
        assert!((bound - 0.0055).abs() < 1e-12, "{bound}");
        assert!(bad.interval.unwrap().lower > 0.0);

        let fine = run_of(&counts(50, 10_000, 500, 100_000));
        assert_eq!(fine.verdict, GuardrailVerdict::Pass, "{}", fine.message);
        assert!(fine.interval.unwrap().lower <= 0.0);
    }

    #[test]
    fn too_few_events_collect_and_errors_keep_their_message() {
        let few = run_of(&counts(9, 900, 500, 100_000));
        assert_eq!(few.verdict, GuardrailVerdict::Collecting);
        assert_eq!(few.interval, None);

        // No treatment events at all: counted, but no rates.
        let none = run_of(&counts(0, 0, 500, 100_000));
        assert_eq!(none.verdict, GuardrailVerdict::Collecting);
        assert_eq!(none.treatment_rate, None);
        assert!(none.counts.is_some());

        let failed = run_of(&GuardrailOutcome::Error {
            message: "bad: Prometheus at http://x did not answer within 10s".into(),
        });
        assert_eq!(failed.verdict, GuardrailVerdict::Error);
        assert_eq!(failed.counts, None);
        assert!(failed.message.starts_with("bad: "), "{}", failed.message);

        let impossible = run_of(&counts(500, 400, 5, 100_000));
        assert_eq!(impossible.verdict, GuardrailVerdict::Error);
        assert!(
            impossible
                .message
                .contains("treatment cohort has 500 bad events out of 400"),
            "{}",
            impossible.message
        );
    }

    #[test]
    fn the_tally_counts_each_verdict() {
        let runs = [
            run_of(&counts(150, 10_000, 500, 100_000)),
            run_of(&counts(50, 10_000, 500, 100_000)),
            run_of(&counts(1, 10, 500, 100_000)),
            run_of(&GuardrailOutcome::Error {
                message: "x".into(),
            }),
        ];
        assert_eq!(
            GuardrailTally::of(&runs),
            GuardrailTally {
                pass: 1,
                regression: 1,
                collecting: 1,
                error: 1
            }
        );
    }

    #[test]
    fn the_window_comes_from_the_option_the_status_or_the_default() {
        let at: Timestamp = "2024-01-15T13:00:00Z".parse().unwrap();
        let started: Timestamp = "2024-01-15T12:00:00Z".parse().unwrap();
        let option = Some(Duration::from_secs(600));
        assert_eq!(
            since_ramp_start(option, Some(started), at).unwrap(),
            (Duration::from_secs(600), WindowSource::Option)
        );
        assert_eq!(
            since_ramp_start(None, Some(started), at).unwrap(),
            (Duration::from_secs(3600), WindowSource::Status(started))
        );
        assert_eq!(
            since_ramp_start(None, None, at).unwrap(),
            (DEFAULT_SINCE_RAMP_START, WindowSource::Default)
        );
        let error = since_ramp_start(None, Some(at), started).unwrap_err();
        assert!(
            error.starts_with("status.rampStartedAt 2024-01-15T13:00:00Z is after"),
            "{error}"
        );
        assert_eq!(parse_window("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_window("500ms").is_err());
        assert!(parse_window("soon").is_err());
    }

    #[test]
    fn a_config_names_the_field_it_cannot_use() {
        let mut both = guardrail();
        both.max_absolute_increase = Some(0.01);
        assert_eq!(
            config(&both, "spec.rollout.analysis.guardrails[0]").unwrap_err(),
            "spec.rollout.analysis.guardrails[0]: a guardrail needs exactly one of maxRelativeIncrease and maxAbsoluteIncrease"
        );
        let mut negative = guardrail();
        negative.max_relative_increase = Some(-1.0);
        assert!(
            config(&negative, "g")
                .unwrap_err()
                .starts_with("g.maxRelativeIncrease")
        );
    }

    #[test]
    fn the_text_block_shows_counts_rates_interval_and_verdict() {
        let mut out = String::new();
        write_text(&mut out, &run_of(&counts(150, 10_000, 500, 100_000)));
        assert!(
            out.starts_with("\nguardrail errors\n  bad        b\n  total      t\n"),
            "{out}"
        );
        assert!(
            out.contains("  treatment  150 bad of 10000 (1.500%)\n"),
            "{out}"
        );
        assert!(
            out.contains("  control    500 bad of 100000 (0.500%)\n"),
            "{out}"
        );
        assert!(
            out.contains("  tolerance  maxRelativeIncrease 0.1: treatment at most 0.550%; alpha 0.05; minSamplesPerCohort 1000\n"),
            "{out}"
        );
        assert!(
            out.contains("  verdict    REGRESSION (the interval lies entirely above 0"),
            "{out}"
        );
    }
}
