//! `rollgate analyze`: run one flag's analysis against Prometheus as a dry run and show, for
//! each metric, the query as sent, the value (or why there is none), the bounds and the
//! verdict. Nothing is written anywhere.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jiff::Timestamp;

use crate::manifest::load_one_flag;
use crate::prometheus::{
    DEFAULT_CONCURRENCY, MetricRun, PrometheusClient, analyze_detailed, resolve_address,
};
use rollgate_core::crd::{ErrorPolicy, MetricCheck, NoDataPolicy};
use rollgate_core::observation::MetricOutcome;
use rollgate_core::template::TemplateContext;

/// Exit code when at least one metric fails (as `simulate` exits when it rolls back).
pub const EXIT_FAILED: u8 = 3;
/// Exit code when no metric fails but at least one is held (no data or an error, with the
/// `Hold` policy): the analysis is inconclusive and a rollout would wait (as `simulate`
/// exits when it is held).
pub const EXIT_INCONCLUSIVE: u8 = 4;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every metric passed (or was ignored); 1 an internal error; \
2 bad input (unreadable file, invalid flag, bad option); 3 a metric failed; 4 nothing failed but \
a metric was held (no data or a query error under the Hold policy)."
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

    /// The FeatureFlag manifest (YAML or JSON) holding exactly one flag.
    file: PathBuf,
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
    let Some(analysis) = flag
        .spec
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.analysis.as_ref())
        .filter(|analysis| !analysis.metrics.is_empty())
    else {
        return super::exit::bad_input(format!(
            "{}: FeatureFlag/{name}: spec.rollout.analysis.metrics: no metrics to analyze",
            args.file.display()
        ));
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
            "{}: FeatureFlag/{name}: no Prometheus address: give --prometheus, set spec.rollout.analysis.prometheus.address or ROLLGATE_PROMETHEUS_URL",
            args.file.display()
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
    let runs = runtime.block_on(analyze_detailed(
        &client,
        analysis,
        &context,
        args.time,
        usize::from(args.concurrency),
    ));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "FeatureFlag {}/{name} (key {})",
        context.namespace, context.flag
    );
    let _ = writeln!(out, "  prometheus  {}", client.address());
    let time = args
        .time
        .map_or_else(|| "now (Prometheus' clock)".to_string(), |t| t.to_string());
    let _ = writeln!(out, "  time        {time}");
    let _ = writeln!(out, "  interval    {}", context.interval);
    let (mut passed, mut failed, mut held, mut ignored) = (0, 0, 0, 0);
    for (metric, run) in analysis.metrics.iter().zip(&runs) {
        let (verdict, why) = judge(metric, &run.outcome);
        match verdict {
            Verdict::Pass => passed += 1,
            Verdict::Fail => failed += 1,
            Verdict::Hold => held += 1,
            Verdict::Ignored => ignored += 1,
        }
        write_metric(&mut out, run, metric, verdict, &why);
    }
    let _ = writeln!(
        out,
        "\nsummary: {passed} pass, {failed} fail, {held} hold, {ignored} ignored"
    );
    let code = if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else if held > 0 {
        ExitCode::from(EXIT_INCONCLUSIVE)
    } else {
        ExitCode::SUCCESS
    };
    super::exit::print_then(&out, code)
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
