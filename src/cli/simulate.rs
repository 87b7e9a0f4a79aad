//! `rollgate simulate`: what a flag's schedule and thresholds would have done on recorded
//! traffic, with the operator's own engine on a virtual clock. No cluster needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use serde::Serialize;

use crate::manifest::load_one_flag;
use crate::prometheus::PrometheusClient;
use crate::simulate::render::{RenderOptions, Timeline, render_tail, render_text};
use crate::simulate::{
    self, History, MetricSource, Outcome, PrometheusReplay, Scenario, ScheduledRequest, Trace,
    guardrail_checks, metric_checks, parse_guarded_history, parse_requests,
};
use rollgate_core::crd::FeatureFlag;
use rollgate_core::template::TemplateContext;

/// Exit code when the flag was rolled back (or killed by a replayed request).
pub const EXIT_ROLLED_BACK: u8 = 3;
/// Exit code when the data ended first: held, paused or simply unfinished.
pub const EXIT_UNFINISHED: u8 = 4;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the ramp completed; 2 bad input (unreadable or \
malformed file, invalid flag, bad option, Prometheus unreachable); 3 the flag was rolled back \
(or killed); 4 the data ended first: held, paused or unfinished."
)]
pub struct SimulateArgs {
    /// The FeatureFlag manifest (YAML or JSON) holding exactly one flag with rollout.steps.
    file: PathBuf,

    /// Metric history as CSV with the header `time,metric,value`, or
    /// `time,metric,value,cohort,bad,total` with guardrail counts (see docs/simulate.md).
    #[arg(
        long,
        value_name = "FILE.csv",
        conflicts_with = "prometheus",
        required_unless_present = "prometheus"
    )]
    metrics: Option<PathBuf>,

    /// Replay a real Prometheus: each metric's and guardrail's query at each analysis time,
    /// with `time=`.
    #[arg(long, value_name = "URL", requires_all = ["from", "to"])]
    prometheus: Option<String>,

    /// Start of the Prometheus window (RFC 3339).
    #[arg(long, value_name = "RFC3339", requires = "prometheus")]
    from: Option<Timestamp>,

    /// End of the Prometheus window (RFC 3339): the end of the data.
    #[arg(long, value_name = "RFC3339", requires = "prometheus")]
    to: Option<Timestamp>,

    /// When the flag is applied (RFC 3339). Default: the first time of the metrics file,
    /// or --from. Times written as seconds count from here.
    #[arg(long, value_name = "RFC3339")]
    start: Option<Timestamp>,

    /// Manual requests to replay, as CSV with the header `time,verb`.
    #[arg(long, value_name = "FILE.csv")]
    requests: Option<PathBuf>,

    /// Play the timeline as it happens, this many virtual seconds per real second (600
    /// plays ten minutes a second). Default: instant.
    #[arg(long, value_name = "FACTOR", value_parser = parse_speed)]
    speed: Option<f64>,

    /// `text` for the timeline, chart and summary; `json` for the full trace.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    /// Namespace for `{{ namespace }}` with --prometheus (default: the manifest's, else
    /// `default`).
    #[arg(long, requires = "prometheus")]
    namespace: Option<String>,

    #[command(flatten)]
    connection: super::prometheus_args::PrometheusClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err("expected a positive number of virtual seconds per second, e.g. 600".into()),
    }
}

/// Where the metrics come from, ready to run.
struct Source {
    source: Box<dyn MetricSource>,
    start: Timestamp,
    end: Timestamp,
    /// Whether times mean calendar times (not seconds from an arbitrary origin).
    absolute: bool,
    description: String,
    notes: Vec<String>,
}

/// The JSON document of `--output json`: where the data came from, then the trace.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    source: &'a str,
    notes: &'a [String],
    exit_code: u8,
    #[serde(flatten)]
    trace: &'a Trace,
}

pub fn run(args: &SimulateArgs) -> ExitCode {
    match prepare(args) {
        Ok((flag, source, requests)) => execute(args, &flag, source, &requests),
        Err(message) => super::exit::bad_input(message),
    }
}

fn prepare(args: &SimulateArgs) -> Result<(FeatureFlag, Source, Vec<ScheduledRequest>), String> {
    let flag = load_one_flag(&args.file)?;
    let name = flag.metadata.name.clone().unwrap_or_default();
    let at = format!("{}: FeatureFlag/{name}", args.file.display());
    if !flag.spec.enabled {
        return Err(format!(
            "{at}: spec.enabled is false, so nothing ramps; set it to true to simulate"
        ));
    }
    if flag
        .spec
        .rollout
        .as_ref()
        .is_none_or(|r| r.steps.is_empty())
    {
        return Err(format!(
            "{at}: spec.rollout.steps is empty: a static flag has nothing to simulate"
        ));
    }
    let source = match (&args.metrics, &args.prometheus) {
        (Some(path), _) => history_source(args, &flag, path)?,
        (None, Some(url)) => prometheus_source(args, &flag, url)?,
        (None, None) => return Err("give --metrics FILE.csv or --prometheus URL".into()),
    };
    if args.metrics.is_some()
        && let Some(option) = args.connection.first_given()
    {
        return Err(format!(
            "{option} is a Prometheus connection option; --metrics replays a CSV file and sends no queries"
        ));
    }
    if args.speed.is_some() && args.output == OutputFormat::Json {
        return Err("--speed plays the text timeline as it happens; --output json prints the trace at the end".into());
    }
    if source.end < source.start {
        return Err(format!(
            "the start {} is after the end of the data {}",
            source.start, source.end
        ));
    }
    let requests = match &args.requests {
        Some(path) => {
            let text = read(path)?;
            let requests = parse_requests(&text, source.start)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            for request in &requests {
                let problem = if request.time < source.start {
                    Some(format!("is before the start {}", source.start))
                } else if request.time > source.end {
                    Some(format!("is after the end of the data {}", source.end))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(format!(
                        "{}: line {}: the {} request at {} {problem}",
                        path.display(),
                        request.line,
                        request.verb,
                        request.time
                    ));
                }
            }
            requests
        }
        None => Vec::new(),
    };
    Ok((flag, source, requests))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|error| format!("{}: cannot read file: {error}", path.display()))
}

fn history_source(args: &SimulateArgs, flag: &FeatureFlag, path: &Path) -> Result<Source, String> {
    let text = read(path)?;
    let checks = metric_checks(flag);
    let names: Vec<&str> = checks.iter().map(|check| check.name.as_str()).collect();
    let guardrails: Vec<&str> = guardrail_checks(flag)
        .iter()
        .map(|guardrail| guardrail.name.as_str())
        .collect();
    let history: History = parse_guarded_history(&text, &names, &guardrails, args.start)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let (Some(first), Some(last)) = (history.first_time(), history.last_time()) else {
        return Err(format!("{}: no rows", path.display()));
    };
    let start = match args.start {
        Some(start) => start,
        None if history.uses_offsets() => Timestamp::UNIX_EPOCH,
        None => first,
    };
    let absolute = !history.uses_offsets() || args.start.is_some();
    let span = if absolute {
        format!("{first} to {last}")
    } else {
        format!(
            "{} to {} (seconds from the start)",
            crate::simulate::render::elapsed(first.as_second() - start.as_second()),
            crate::simulate::render::elapsed(last.as_second() - start.as_second())
        )
    };
    let present: Vec<&str> = history.metrics().collect();
    let present_guardrails: Vec<&str> = history.guardrails().collect();
    let notes = checks
        .iter()
        .filter(|check| !present.contains(&check.name.as_str()))
        .map(|check| {
            format!(
                "note: the history has no rows for {}: every analysis sees no data for it (onNoData {:?})",
                check.name, check.on_no_data
            )
        })
        .chain(
            guardrails
                .iter()
                .filter(|name| !present_guardrails.contains(name))
                .map(|name| {
                    format!(
                        "note: the history has no rows for guardrail {name}: it cannot look, so every analysis holds"
                    )
                }),
        )
        .collect();
    Ok(Source {
        description: format!("{}, {} samples, {span}", path.display(), history.len()),
        source: Box::new(history),
        start,
        end: last,
        absolute,
        notes,
    })
}

fn prometheus_source(args: &SimulateArgs, flag: &FeatureFlag, url: &str) -> Result<Source, String> {
    let (Some(from), Some(to)) = (args.from, args.to) else {
        return Err("--prometheus needs --from and --to".into());
    };
    let client =
        PrometheusClient::new(args.connection.config(url)).map_err(|error| error.to_string())?;
    let mut context = TemplateContext::for_flag(flag, None);
    if let Some(namespace) = &args.namespace {
        context.namespace.clone_from(namespace);
    }
    let replay = PrometheusReplay::new(client, context)
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    replay.check(from).map_err(|error| error.to_string())?;
    Ok(Source {
        description: format!(
            "Prometheus at {url}, queried at each analysis time from {from} to {to}"
        ),
        source: Box::new(replay),
        start: args.start.unwrap_or(from),
        end: to,
        absolute: true,
        notes: Vec::new(),
    })
}

fn execute(
    args: &SimulateArgs,
    flag: &FeatureFlag,
    mut source: Source,
    requests: &[ScheduledRequest],
) -> ExitCode {
    let scenario = Scenario {
        flag,
        start: source.start,
        end: source.end,
        requests,
    };
    let options = RenderOptions {
        absolute_times: source.absolute,
        ..RenderOptions::default()
    };
    let mut stdout = std::io::stdout().lock();
    let text = args.output == OutputFormat::Text;
    if text {
        let _ = write!(stdout, "{}", header(flag, &source, options));
        let _ = stdout.flush();
    }
    let result = match args.speed.filter(|_| text) {
        Some(speed) => {
            let mut timeline = Timeline::new(flag);
            let mut previous: Option<i64> = None;
            let result =
                simulate::simulate_with(&scenario, source.source.as_mut(), &mut |tick, _| {
                    let gap = previous.map_or(0, |p| tick.elapsed_seconds - p).max(0);
                    previous = Some(tick.elapsed_seconds);
                    std::thread::sleep(Duration::from_secs_f64(gap as f64 / speed));
                    for line in timeline.push(tick) {
                        let _ = writeln!(stdout, "{line}");
                    }
                    let _ = stdout.flush();
                });
            for line in timeline.finish() {
                let _ = writeln!(stdout, "{line}");
            }
            result.inspect(|trace| {
                let _ = write!(stdout, "{}", render_tail(trace, flag, options));
            })
        }
        None => simulate::simulate(&scenario, source.source.as_mut()).inspect(|trace| {
            if text {
                let _ = write!(stdout, "{}", render_text(trace, flag, options));
            }
        }),
    };
    let trace = match result {
        Ok(trace) => trace,
        Err(error @ simulate::SimulateError::EndBeforeStart { .. }) => {
            return super::exit::bad_input(error);
        }
        Err(error) => {
            eprintln!("rollgate: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = exit_code(trace.summary.outcome);
    if !text {
        let report = Report {
            source: &source.description,
            notes: &source.notes,
            exit_code: code,
            trace: &trace,
        };
        if serde_json::to_writer_pretty(&mut stdout, &report).is_ok() {
            let _ = writeln!(stdout);
        }
    }
    let _ = stdout.flush();
    ExitCode::from(code)
}

/// The exit code of an outcome.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Completed => 0,
        Outcome::RolledBack | Outcome::Killed => EXIT_ROLLED_BACK,
        Outcome::Held | Outcome::Paused | Outcome::Unfinished => EXIT_UNFINISHED,
    }
}

fn header(flag: &FeatureFlag, source: &Source, options: RenderOptions) -> String {
    let rollout = flag.spec.rollout.as_ref();
    let steps: Vec<String> = rollout
        .map(|r| r.steps.iter().map(|s| format!("{}%", s.percent)).collect())
        .unwrap_or_default();
    let analysis = rollout
        .and_then(|r| r.analysis.as_ref())
        .filter(|a| !a.metrics.is_empty() || !a.guardrails.is_empty())
        .map_or_else(
            || "no analysis: a time-only ramp".to_string(),
            |a| {
                format!(
                    "analysis every {}, failureLimit {}",
                    a.interval, a.failure_limit
                )
            },
        );
    let start = if options.absolute_times {
        source.start.to_string()
    } else {
        "0 (the history counts seconds from it)".to_string()
    };
    let mut out = format!(
        "FeatureFlag {}: {}; {analysis}\n",
        flag.key(),
        steps.join(" → ")
    );
    for guardrail in guardrail_checks(flag) {
        let tolerance = match (
            guardrail.max_relative_increase,
            guardrail.max_absolute_increase,
        ) {
            (Some(relative), _) => format!("maxRelativeIncrease {relative}"),
            (None, Some(absolute)) => format!("maxAbsoluteIncrease {absolute}"),
            (None, None) => "no tolerance".to_string(),
        };
        out.push_str(&format!(
            "guardrail {}: treatment against control, {tolerance}, minSamplesPerCohort {}, alpha {}\n",
            guardrail.name, guardrail.min_samples_per_cohort, guardrail.alpha
        ));
    }
    out.push_str(&format!(
        "metrics: {}\nstart: {start}\n",
        source.description
    ));
    for note in &source.notes {
        out.push_str(note);
        out.push('\n');
    }
    out.push('\n');
    out
}
