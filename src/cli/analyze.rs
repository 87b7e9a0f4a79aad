//! `rollgate analyze`: run one flag's analysis against Prometheus as a dry run and show, for
//! each metric, the query as sent, the value (or why there is none), the bounds and the
//! verdict; and for each guardrail, its queries, the counts and rates of both cohorts, and
//! the verdict of one look from a fresh state. Nothing is written anywhere.

mod guardrail;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::StreamExt as _;
use jiff::Timestamp;
use serde::Serialize;

use crate::manifest::load_one_flag;
use crate::prometheus::{
    DEFAULT_CONCURRENCY, MetricRun, PrometheusClient, analyze_detailed, guardrail_counts,
    ramp_window, resolve_address,
};
use guardrail::{GuardrailRun, GuardrailTally, WindowSource, WindowView};
use rollgate_core::crd::{ErrorPolicy, MetricCheck, MetricVerdict, NoDataPolicy};
use rollgate_core::observation::MetricOutcome;
use rollgate_core::template::{TemplateContext, render_checked};

/// Exit code when at least one metric fails or a guardrail finds a regression (as
/// `simulate` exits when it rolls back).
pub const EXIT_FAILED: u8 = 3;
/// Exit code when nothing fails but at least one metric is held (no data or an error, with
/// the `Hold` policy) or a guardrail is collecting or in error: the analysis is inconclusive
/// and a rollout would wait (as `simulate` exits when it is held).
pub const EXIT_INCONCLUSIVE: u8 = 4;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every metric passed (or was ignored) and every guardrail passed; \
1 an internal error; 2 bad input (unreadable file, invalid flag, bad option); 3 a metric failed \
or a guardrail found a regression; 4 nothing failed but a metric was held (no data or a query \
error under the Hold policy) or a guardrail is collecting samples or in error."
)]
pub struct AnalyzeArgs {
    /// Prometheus base URL. Overrides the flag's `spec.rollout.analysis.prometheus.address`;
    /// without either, ROLLGATE_PROMETHEUS_URL (the operator's default) is used, in the
    /// operator's order: the flag's own address wins over the default.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,

    /// Evaluate the queries at this instant (RFC 3339) instead of now, to replay history.
    #[arg(long, value_name = "RFC3339")]
    time: Option<Timestamp>,

    #[command(flatten)]
    connection: super::prometheus_args::PrometheusClientArgs,

    /// Namespace for `{{ namespace }}` (default: the manifest's, else `default`).
    #[arg(long)]
    namespace: Option<String>,

    /// Variant for `{{ variant }}`, for experiments.
    #[arg(long)]
    variant: Option<String>,

    /// How many queries run at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,

    /// How long before the analysis time the ramp started: `{{ since_ramp_start }}` of the
    /// guardrail queries, e.g. `2h`. Default: the time since the manifest's
    /// `status.rampStartedAt` (a flag saved with `kubectl get -o yaml`), else 1h.
    #[arg(long, value_name = "DURATION", value_parser = guardrail::parse_window)]
    since_ramp_start: Option<Duration>,

    /// `text` for the report; `json` for the same as one JSON document.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    /// The FeatureFlag manifest (YAML or JSON) holding exactly one flag.
    file: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// What one metric's outcome means for the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Neither pass nor fail: the rollout would wait (no data or error, policy `Hold`).
    Hold,
    /// No data with policy `Ignore`: the metric does not count.
    Ignored,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Hold => "hold",
            Self::Ignored => "ignored",
        }
    }

    /// The verdict as `status.analyses[].metrics[].verdict` spells it.
    fn status_verdict(self) -> MetricVerdict {
        match self {
            Self::Pass => MetricVerdict::Pass,
            Self::Fail => MetricVerdict::Fail,
            Self::Hold => MetricVerdict::Hold,
            Self::Ignored => MetricVerdict::Ignored,
        }
    }
}

/// Judges one outcome by the metric's bounds and policies: a value passes inside
/// `[min, max]` (inclusive); no data and errors count as the metric's `onNoData` / `onError`
/// policy says. Returns the verdict and why.
pub fn judge(metric: &MetricCheck, outcome: &MetricOutcome) -> (Verdict, String) {
    match outcome {
        MetricOutcome::Value { value } => {
            if let Some(min) = metric.min.filter(|min| value < min) {
                (Verdict::Fail, format!("{value} is below min {min}"))
            } else if let Some(max) = metric.max.filter(|max| value > max) {
                (Verdict::Fail, format!("{value} is above max {max}"))
            } else {
                (Verdict::Pass, "within bounds".into())
            }
        }
        MetricOutcome::NoData { .. } => match metric.on_no_data {
            NoDataPolicy::Fail => (Verdict::Fail, "no data, and onNoData is Fail".into()),
            NoDataPolicy::Hold => (Verdict::Hold, "no data, and onNoData is Hold".into()),
            NoDataPolicy::Ignore => (Verdict::Ignored, "no data, and onNoData is Ignore".into()),
        },
        MetricOutcome::Error { .. } => match metric.on_error {
            ErrorPolicy::Fail => (Verdict::Fail, "query error, and onError is Fail".into()),
            ErrorPolicy::Hold => (Verdict::Hold, "query error, and onError is Hold".into()),
        },
    }
}

fn bounds(metric: &MetricCheck) -> String {
    match (metric.min, metric.max) {
        (Some(min), Some(max)) => format!("min {min}, max {max}"),
        (Some(min), None) => format!("min {min}"),
        (None, Some(max)) => format!("max {max}"),
        (None, None) => "none".into(),
    }
}

pub fn run(args: &AnalyzeArgs) -> ExitCode {
    let flag = match load_one_flag(&args.file) {
        Ok(flag) => flag,
        Err(message) => return super::exit::bad_input(message),
    };
    let name = flag.metadata.name.clone().unwrap_or_default();
    let at = format!("{}: FeatureFlag/{name}", args.file.display());
    let Some(analysis) = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.analysis.as_ref())
        .filter(|analysis| !analysis.metrics.is_empty() || !analysis.guardrails.is_empty())
    else {
        return super::exit::bad_input(format!(
            "{at}: spec.rollout.analysis: no metrics and no guardrails to analyze"
        ));
    };
    let configs = match analysis
        .guardrails
        .iter()
        .enumerate()
        .map(|(i, g)| guardrail::config(g, &format!("spec.rollout.analysis.guardrails[{i}]")))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(configs) => configs,
        Err(message) => return super::exit::bad_input(format!("{at}: {message}")),
    };
    let ramp_started_at = flag
        .status
        .as_ref()
        .and_then(|status| status.ramp_started_at.as_ref())
        .map(|time| time.0);
    let (window, window_source) = match guardrail::since_ramp_start(
        args.since_ramp_start,
        ramp_started_at,
        args.time.unwrap_or_else(Timestamp::now),
    ) {
        Ok(window) => window,
        Err(message) => return super::exit::bad_input(format!("{at}: {message}")),
    };
    let operator_default = std::env::var("ROLLGATE_PROMETHEUS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(address) = args
        .prometheus
        .as_deref()
        .or_else(|| resolve_address(analysis, operator_default.as_deref()))
    else {
        return super::exit::bad_input(format!(
            "{at}: no Prometheus address: give --prometheus, set spec.rollout.analysis.prometheus.address or ROLLGATE_PROMETHEUS_URL"
        ));
    };
    let client = match PrometheusClient::new(args.connection.config(address)) {
        Ok(client) => client,
        Err(error) => return super::exit::bad_input(error),
    };
    let mut context = TemplateContext::for_flag(&flag, args.variant.as_deref());
    if let Some(namespace) = &args.namespace {
        context.namespace.clone_from(namespace);
    }
    // As in the operator, every query of the analysis has `{{ since_ramp_start }}`.
    context.since_ramp_start = Some(ramp_window(window));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rollgate: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let concurrency = usize::from(args.concurrency);
    let (runs, observations) = runtime.block_on(async {
        let runs = analyze_detailed(&client, analysis, &context, args.time, concurrency).await;
        let queries: Vec<_> = analysis
            .guardrails
            .iter()
            .map(|g| guardrail_counts(&client, g, &context, args.time))
            .collect();
        let observations: Vec<_> = futures::stream::iter(queries)
            .buffered(concurrency)
            .collect()
            .await;
        (runs, observations)
    });

    let metrics: Vec<MetricReport<'_>> = analysis
        .metrics
        .iter()
        .zip(&runs)
        .map(|(metric, run)| {
            let (verdict, reason) = judge(metric, &run.outcome);
            MetricReport {
                check: metric,
                run,
                verdict,
                reason,
            }
        })
        .collect();
    let guardrails: Vec<GuardrailRun> = analysis
        .guardrails
        .iter()
        .zip(&configs)
        .zip(&observations)
        .map(|((spec, config), observation)| {
            let queries = (
                render_checked(&spec.bad, &context).ok(),
                render_checked(&spec.total, &context).ok(),
            );
            guardrail::judge(&spec.name, config, queries, &observation.outcome)
        })
        .collect();
    let tally = Tally::of(&metrics);
    let guardrail_tally = GuardrailTally::of(&guardrails);
    let code = if tally.fail > 0 || guardrail_tally.regression > 0 {
        EXIT_FAILED
    } else if tally.hold > 0 || guardrail_tally.collecting > 0 || guardrail_tally.error > 0 {
        EXIT_INCONCLUSIVE
    } else {
        0
    };
    let report = Report {
        name: &name,
        namespace: &context.namespace,
        flag: &context.flag,
        prometheus: client.address(),
        time: args.time,
        interval: &context.interval,
        since_ramp_start: (!guardrails.is_empty())
            .then(|| WindowView::new(ramp_window(window), &window_source)),
        metrics: metrics.iter().map(MetricReport::json).collect(),
        guardrails: &guardrails,
        summary: Summary {
            metrics: tally,
            guardrails: guardrail_tally,
        },
        exit_code: code,
    };
    let out = match args.output {
        OutputFormat::Text => text_report(&report, &metrics, &window_source),
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(error) => {
                eprintln!("rollgate: cannot write the report as JSON: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    super::exit::print_then(&out, ExitCode::from(code))
}

/// One metric of the run, judged.
struct MetricReport<'a> {
    check: &'a MetricCheck,
    run: &'a MetricRun,
    verdict: Verdict,
    reason: String,
}

impl MetricReport<'_> {
    fn json(&self) -> MetricJson<'_> {
        MetricJson {
            name: &self.run.name,
            query: self.run.query.as_deref(),
            outcome: &self.run.outcome,
            min: self.check.min,
            max: self.check.max,
            verdict: self.verdict.status_verdict(),
            reason: &self.reason,
        }
    }
}

/// How many metrics came out which way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
struct Tally {
    pass: usize,
    fail: usize,
    hold: usize,
    ignored: usize,
}

impl Tally {
    fn of(metrics: &[MetricReport<'_>]) -> Self {
        let mut tally = Self::default();
        for metric in metrics {
            match metric.verdict {
                Verdict::Pass => tally.pass += 1,
                Verdict::Fail => tally.fail += 1,
                Verdict::Hold => tally.hold += 1,
                Verdict::Ignored => tally.ignored += 1,
            }
        }
        tally
    }
}

/// The JSON document of `--output json`; the text report shows the same.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    name: &'a str,
    namespace: &'a str,
    /// The flag's key.
    flag: &'a str,
    prometheus: &'a str,
    /// `None`: now, by Prometheus' clock.
    time: Option<Timestamp>,
    interval: &'a str,
    /// Only with guardrails.
    #[serde(skip_serializing_if = "Option::is_none")]
    since_ramp_start: Option<WindowView>,
    metrics: Vec<MetricJson<'a>>,
    guardrails: &'a [GuardrailRun],
    summary: Summary,
    exit_code: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricJson<'a> {
    name: &'a str,
    /// `None` when the template could not be rendered.
    query: Option<&'a str>,
    outcome: &'a MetricOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    verdict: MetricVerdict,
    reason: &'a str,
}

#[derive(Serialize)]
struct Summary {
    metrics: Tally,
    guardrails: GuardrailTally,
}

fn text_report(
    report: &Report<'_>,
    metrics: &[MetricReport<'_>],
    window_source: &WindowSource,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "FeatureFlag {}/{} (key {})",
        report.namespace, report.name, report.flag
    );
    let _ = writeln!(out, "  prometheus  {}", report.prometheus);
    let time = report
        .time
        .map_or_else(|| "now (Prometheus' clock)".to_string(), |t| t.to_string());
    let _ = writeln!(out, "  time        {time}");
    let _ = writeln!(out, "  interval    {}", report.interval);
    if let Some(window) = &report.since_ramp_start {
        let _ = writeln!(
            out,
            "  since ramp  {} ({})",
            window.range,
            window_source.describe()
        );
    }
    for metric in metrics {
        write_metric(
            &mut out,
            metric.run,
            metric.check,
            metric.verdict,
            &metric.reason,
        );
    }
    for run in report.guardrails {
        guardrail::write_text(&mut out, run);
    }
    out.push('\n');
    let tally = report.summary.metrics;
    if !metrics.is_empty() {
        let _ = writeln!(
            out,
            "summary: {} pass, {} fail, {} hold, {} ignored",
            tally.pass, tally.fail, tally.hold, tally.ignored
        );
    }
    if !report.guardrails.is_empty() {
        let g = report.summary.guardrails;
        let _ = writeln!(
            out,
            "guardrails: {} pass, {} regression, {} collecting, {} error",
            g.pass, g.regression, g.collecting, g.error
        );
    }
    out
}

fn write_metric(
    out: &mut String,
    run: &MetricRun,
    metric: &MetricCheck,
    verdict: Verdict,
    why: &str,
) {
    let _ = writeln!(out, "\n{}", run.name);
    match &run.query {
        Some(query) => {
            let mut lines = query.trim().lines();
            let _ = writeln!(out, "  query    {}", lines.next().unwrap_or_default());
            for line in lines {
                let _ = writeln!(out, "           {line}");
            }
        }
        None => {
            let _ = writeln!(out, "  query    (not rendered)");
        }
    }
    let value = match &run.outcome {
        MetricOutcome::Value { value } => value.to_string(),
        MetricOutcome::NoData { reason } => format!("no data: {reason}"),
        MetricOutcome::Error { message } => format!("error: {message}"),
    };
    let _ = writeln!(out, "  value    {value}");
    let _ = writeln!(out, "  bounds   {}", bounds(metric));
    let _ = writeln!(out, "  verdict  {} ({why})", verdict.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(min: Option<f64>, max: Option<f64>) -> MetricCheck {
        MetricCheck {
            name: "m".into(),
            query: "x".into(),
            min,
            max,
            on_no_data: NoDataPolicy::Hold,
            on_error: ErrorPolicy::Hold,
        }
    }

    #[test]
    fn values_pass_inside_inclusive_bounds() {
        let m = metric(Some(1.0), Some(2.0));
        for (value, verdict) in [
            (0.5, Verdict::Fail),
            (1.0, Verdict::Pass),
            (2.0, Verdict::Pass),
            (2.5, Verdict::Fail),
        ] {
            assert_eq!(
                judge(&m, &MetricOutcome::Value { value }).0,
                verdict,
                "{value}"
            );
        }
    }

    #[test]
    fn no_data_and_errors_follow_the_policies() {
        let no_data = MetricOutcome::NoData { reason: "x".into() };
        let error = MetricOutcome::Error {
            message: "x".into(),
        };
        let mut m = metric(None, Some(1.0));
        assert_eq!(judge(&m, &no_data).0, Verdict::Hold);
        assert_eq!(judge(&m, &error).0, Verdict::Hold);
        m.on_no_data = NoDataPolicy::Fail;
        m.on_error = ErrorPolicy::Fail;
        assert_eq!(judge(&m, &no_data).0, Verdict::Fail);
        assert_eq!(judge(&m, &error).0, Verdict::Fail);
        m.on_no_data = NoDataPolicy::Ignore;
        assert_eq!(judge(&m, &no_data).0, Verdict::Ignored);
    }
}
