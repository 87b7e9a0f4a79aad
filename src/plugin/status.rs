//! `kubectl rollgate status NAME`: one flag in detail, in sections.
//!
//! [`render_status`] is pure and assembles the sections in a fixed order: the summary
//! (phase, progress bar, current step and the time left in its pause, analysis,
//! rollback, last request), the steps, the latest analyses with values against bounds,
//! the guardrails ([`guardrails_section`]), the experiment ([`experiment_section`]), the
//! targeting rules and the segments they use ([`targeting_section`]), conditions and events.

use std::io::IsTerminal;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use super::args::{GlobalArgs, OutputFormat, StatusArgs};
use super::client::{Cluster, Fetched};
use super::error::PluginError;
use super::list::structured;
use super::output::{print_output, render_output};
use super::render::{
    self, Table, age, countdown, event_time, format_bounds, format_interval, format_percent,
    format_rate, format_tolerance, format_value, human_duration, pause_of, progress_bar,
    reached_step, seconds_since, steps,
};
use crate::output::Printed;
use rollgate_core::crd::{Analysis, FeatureFlag, GuardrailStatus, MetricVerdict, Phase};
use rollgate_core::engine;
use rollgate_core::guardrail::GuardrailVerdict;

/// Analysis runs shown without `-o wide` (status keeps up to 10).
pub const DEFAULT_ANALYSES: usize = 5;
/// Events shown without `-o wide`.
pub const DEFAULT_EVENTS: usize = 10;
/// How often `--watch` redraws.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The events of the flag, or why they could not be read.
#[derive(Debug, Clone, Copy)]
pub enum EventsView<'a> {
    Listed(&'a [Event]),
    Unavailable(&'a str),
}

/// Everything `status` shows; the time is passed in, never read.
#[derive(Debug, Clone, Copy)]
pub struct StatusView<'a> {
    pub flag: &'a FeatureFlag,
    pub events: EventsView<'a>,
    pub now: Timestamp,
    /// `-o wide`: every analysis run and every event.
    pub wide: bool,
}

pub(crate) async fn run(
    cluster: &Cluster,
    global: &GlobalArgs,
    args: &StatusArgs,
) -> Result<(), PluginError> {
    let namespace = cluster.namespace(global);
    if args.watch {
        return tokio::select! {
            result = watch(cluster, global, &namespace, &args.name) => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
    }
    let Fetched { flag, raw } = cluster.get_flag(&namespace, &args.name).await?;
    let events = if structured(global.output) {
        Ok(Vec::new())
    } else {
        cluster.events_for(&flag).await
    };
    print_output(
        global.output,
        || render_status(&view(&flag, &events, global)),
        || render::object_value(&raw),
    )
}

fn view<'a>(
    flag: &'a FeatureFlag,
    events: &'a Result<Vec<Event>, String>,
    global: &GlobalArgs,
) -> StatusView<'a> {
    StatusView {
        flag,
        events: match events {
            Ok(events) => EventsView::Listed(events),
            Err(error) => EventsView::Unavailable(error),
        },
        now: Timestamp::now(),
        wide: global.output == Some(OutputFormat::Wide),
    }
}

/// Redraws every [`WATCH_INTERVAL`] until Ctrl-C: the whole screen on a terminal, one
/// frame after another otherwise. With `-o json|yaml` it prints the object each time it
/// changes.
async fn watch(
    cluster: &Cluster,
    global: &GlobalArgs,
    namespace: &str,
    name: &str,
) -> Result<(), PluginError> {
    let terminal = std::io::stdout().is_terminal();
    let structured = matches!(global.output, Some(OutputFormat::Json | OutputFormat::Yaml));
    let mut last_version = None;
    let mut first = true;
    loop {
        match cluster.get_flag(namespace, name).await {
            Ok(Fetched { flag, raw }) if structured => {
                if last_version != flag.metadata.resource_version {
                    last_version = flag.metadata.resource_version.clone();
                    let separator = if !first && global.output == Some(OutputFormat::Yaml) {
                        "---\n"
                    } else {
                        ""
                    };
                    let object =
                        render_output(global.output, String::new, || render::object_value(&raw))?;
                    if print(&format!("{separator}{object}"))? == Printed::ReaderGone {
                        return Ok(());
                    }
                }
            }
            Ok(Fetched { flag, .. }) => {
                let events = cluster.events_for(&flag).await;
                let view = view(&flag, &events, global);
                let frame = render_status(&view);
                let header = watch_header(namespace, name, view.now);
                if draw(terminal, first, &header, &frame)? == Printed::ReaderGone {
                    return Ok(());
                }
            }
            // A flag that is not there at the start is an error; later, keep watching.
            Err(error) if first => return Err(error),
            Err(error) => {
                let header = watch_header(namespace, name, Timestamp::now());
                let frame = format!("error: {error}\n");
                if draw(terminal, first, &header, &frame)? == Printed::ReaderGone {
                    return Ok(());
                }
            }
        }
        first = false;
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

fn watch_header(namespace: &str, name: &str, now: Timestamp) -> String {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    format!(
        "Every {}s: kubectl rollgate status {name} -n {namespace}    {now}\n\n",
        WATCH_INTERVAL.as_secs()
    )
}

fn draw(terminal: bool, first: bool, header: &str, frame: &str) -> Result<Printed, PluginError> {
    let text = if terminal {
        // Cursor home, then clear the screen.
        format!("\x1b[H\x1b[2J{header}{frame}")
    } else if first {
        format!("{header}{frame}")
    } else {
        format!("\n{header}{frame}")
    };
    print(&text)
}

/// [`crate::output::print`] with the plugin's error.
fn print(text: &str) -> Result<Printed, PluginError> {
    crate::output::print(text).map_err(PluginError::Stdout)
}

/// The whole `status` text.
pub fn render_status(view: &StatusView<'_>) -> String {
    let sections = [
        Some(summary_section(view)),
        steps_section(view),
        analyses_section(view),
        guardrails_section(view.flag, view.now),
        experiment_section(view.flag, view.now),
        targeting_section(view.flag),
        Some(conditions_section(view)),
        Some(events_section(view)),
    ];
    sections
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Aligned `Label:  value` lines, as `kubectl describe` prints them.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn add(&mut self, label: &'static str, value: impl Into<String>) {
        self.0.push((label, value.into()));
    }

    fn render(&self) -> String {
        let width = self.0.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0) + 2;
        self.0
            .iter()
            .map(|(label, value)| format!("{:<width$}{value}\n", format!("{label}:")))
            .collect()
    }
}

fn summary_section(view: &StatusView<'_>) -> String {
    let flag = view.flag;
    let now = view.now;
    let status = flag.status.as_ref();
    let mut fields = Fields::default();
    fields.add("Name", flag.metadata.name.clone().unwrap_or_default());
    fields.add(
        "Namespace",
        flag.metadata.namespace.clone().unwrap_or_default(),
    );
    fields.add("Key", flag.key());
    if let Some(owner) = flag.spec.owner.as_deref().filter(|o| !o.is_empty()) {
        fields.add("Owner", owner);
    }
    if let Some(description) = flag.spec.description.as_deref().filter(|d| !d.is_empty()) {
        fields.add("Description", description);
    }
    fields.add("Enabled", flag.spec.enabled.to_string());
    let phase = render::phase(flag);
    fields.add(
        "Phase",
        match status {
            None => format!("{phase} (no status yet: is rollgate operator running?)"),
            Some(_) => phase.to_string(),
        },
    );
    fields.add("Exposure", exposure(flag));
    if let Some(text) = current_step(flag, now) {
        fields.add("Step", text);
    }
    if let Some(text) = analysis_summary(flag, now) {
        fields.add("Analysis", text);
    }
    if let Some(status) = status {
        if let Some(completed) = &status.completed_at {
            fields.add("Completed", format!("{} ago", age(completed, now)));
        }
        if let Some(rollback) = &status.rollback {
            fields.add(
                "Rollback",
                format!(
                    "{} {} ago: {}",
                    rollback.reason,
                    age(&rollback.at, now),
                    rollback.message
                ),
            );
        }
        if let Some(request) = &status.last_request {
            let mut text = format!(
                "{}/{}: {} {} ago",
                request.verb,
                request.id,
                render::outcome_text(request.outcome),
                age(&request.handled_at, now)
            );
            if !request.message.is_empty() {
                text.push_str(": ");
                text.push_str(&request.message);
            }
            fields.add("Last request", text);
        }
        if let (Some(observed), Some(generation)) =
            (status.observed_generation, flag.metadata.generation)
            && observed < generation
        {
            fields.add(
                "Observed",
                format!(
                    "generation {observed} of {generation}: the operator has not caught up with the latest edit"
                ),
            );
        }
    }
    fields.render()
}

/// The progress bar of a ramp, or the percent of a flag without steps.
fn exposure(flag: &FeatureFlag) -> String {
    let percent = flag.status.as_ref().and_then(|s| s.percent);
    let total = steps(flag).len();
    let phase = render::phase(flag);
    if total > 0 {
        return progress_bar(reached_step(flag), total, percent.unwrap_or(0.0));
    }
    match (phase, percent) {
        (Phase::Static, Some(percent)) => format!("{} (static)", format_percent(percent)),
        (_, Some(percent)) => format_percent(percent),
        (_, None) => "-".to_string(),
    }
}

/// `2 of 0–4 at 25%, started 4m ago; 6m12s of 10m pause left` while ramping.
fn current_step(flag: &FeatureFlag, now: Timestamp) -> Option<String> {
    let status = flag.status.as_ref()?;
    if !matches!(status.phase, Phase::Progressing | Phase::Paused) {
        return None;
    }
    let all = steps(flag);
    let index = status.current_step? as usize;
    let step = all.get(index)?;
    let mut text = format!(
        "{} at {}",
        render::step_of(index, all.len()),
        format_percent(step.percent)
    );
    if let Some(started) = &status.step_started_at {
        text.push_str(&format!(", started {} ago", age(started, now)));
    }
    text.push_str("; ");
    text.push_str(&pause_state(flag, index, now));
    if status.phase == Phase::Paused {
        text.push_str("; held by a pause request: resume continues");
    }
    Some(text)
}

/// The pause of step `index` against `stepStartedAt`: `6m12s of 10m pause left`.
fn pause_state(flag: &FeatureFlag, index: usize, now: Timestamp) -> String {
    let all = steps(flag);
    let Some(step) = all.get(index) else {
        return String::new();
    };
    if pause_of(step).is_none() {
        return if index + 1 == all.len() {
            "last step".to_string()
        } else {
            "no pause".to_string()
        };
    }
    let label = step.pause.clone().unwrap_or_default();
    let pause_left = flag
        .status
        .as_ref()
        .and_then(|status| engine::schedule(flag, status, now).pause_left);
    match pause_left {
        Some(left) if !left.is_zero() => format!("{} of {label} pause left", countdown(left)),
        Some(_) if has_guardrails(flag) && render::phase(flag) == Phase::Progressing => {
            format!(
                "{label} pause over; advances after the next passed analysis with enough guardrail samples"
            )
        }
        Some(_) if has_analysis(flag) && render::phase(flag) == Phase::Progressing => {
            format!("{label} pause over; advances after the next passed analysis")
        }
        Some(_) => format!("{label} pause over"),
        None => format!("{label} pause"),
    }
}

fn analysis_spec(flag: &FeatureFlag) -> Option<&Analysis> {
    flag.spec.rollout.as_ref()?.analysis.as_ref()
}

/// The analysis that gates the ramp: one with metrics, guardrails or both.
fn gating_analysis(flag: &FeatureFlag) -> Option<&Analysis> {
    analysis_spec(flag).filter(|a| !a.metrics.is_empty() || !a.guardrails.is_empty())
}

fn has_analysis(flag: &FeatureFlag) -> bool {
    gating_analysis(flag).is_some()
}

fn has_guardrails(flag: &FeatureFlag) -> bool {
    analysis_spec(flag).is_some_and(|a| !a.guardrails.is_empty())
}

/// `every 1m, 2 metrics, 1 guardrail; 3 runs in this step; 1 of 2 failures before rollback;
/// next in 20s`.
fn analysis_summary(flag: &FeatureFlag, now: Timestamp) -> Option<String> {
    if steps(flag).is_empty() {
        return None;
    }
    let Some(analysis) = gating_analysis(flag) else {
        let ramping = matches!(
            render::phase(flag),
            Phase::Pending | Phase::Progressing | Phase::Paused
        );
        return ramping.then(|| "none: this ramp advances on time alone, nothing guards it".into());
    };
    let plural =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if !analysis.metrics.is_empty() {
        parts.push(plural(analysis.metrics.len(), "metric"));
    }
    if !analysis.guardrails.is_empty() {
        parts.push(plural(analysis.guardrails.len(), "guardrail"));
    }
    let mut text = format!("every {}, {}", analysis.interval, parts.join(", "));
    let status = flag.status.as_ref()?;
    if matches!(status.phase, Phase::Progressing | Phase::Paused) {
        text.push_str(&format!(
            "; {} run{} in this step; {} of {} failures before rollback",
            status.step_analyses,
            if status.step_analyses == 1 { "" } else { "s" },
            status.consecutive_failures,
            analysis.failure_limit
        ));
        match engine::schedule(flag, status, now).next_analysis_in {
            Some(left) if left.is_zero() => text.push_str("; next due now"),
            Some(left) => text.push_str(&format!("; next in {}", countdown(left))),
            None => {}
        }
    }
    Some(text)
}

fn steps_section(view: &StatusView<'_>) -> Option<String> {
    let flag = view.flag;
    let all = steps(flag);
    if all.is_empty() {
        return None;
    }
    let status = flag.status.as_ref();
    let phase = render::phase(flag);
    let current = status.and_then(|s| s.current_step).map(|i| i as usize);
    let mut table = Table::new(["STEP", "PERCENT", "PAUSE", "STATE"]);
    for (index, step) in all.iter().enumerate() {
        let state = match (phase, current) {
            (Phase::Progressing | Phase::Paused, Some(at)) if index < at => "done".to_string(),
            (Phase::Progressing, Some(at)) if index == at => {
                format!("current: {}", pause_state(flag, index, view.now))
            }
            (Phase::Paused, Some(at)) if index == at => {
                format!("current, paused: {}", pause_state(flag, index, view.now))
            }
            (Phase::Complete, _) if index + 1 < all.len() => "done".to_string(),
            (Phase::Complete, _) => "complete".to_string(),
            _ => String::new(),
        };
        table.row([
            index.to_string(),
            format_percent(step.percent),
            step.pause.clone().unwrap_or_else(|| "-".to_string()),
            state,
        ]);
    }
    Some(format!("Steps:\n{}", table.render("  ")))
}

fn analyses_section(view: &StatusView<'_>) -> Option<String> {
    let flag = view.flag;
    let analysis = gating_analysis(flag)?;
    let runs = flag
        .status
        .as_ref()
        .map(|s| s.analyses.as_slice())
        .unwrap_or_default();
    if runs.is_empty() {
        return Some("Analyses:  <none>\n".to_string());
    }
    let shown = if view.wide {
        runs.len()
    } else {
        runs.len().min(DEFAULT_ANALYSES)
    };
    let title = if shown < runs.len() {
        format!(
            "Analyses (latest {shown} of {}, newest first; -o wide shows all):",
            runs.len()
        )
    } else {
        "Analyses (newest first):".to_string()
    };
    let mut table = Table::new([
        "AGE", "STEP", "RUN", "METRIC", "VALUE", "BOUNDS", "RESULT", "MESSAGE",
    ]);
    for run in runs.iter().rev().take(shown) {
        let mut first = true;
        let lead = |first: bool| {
            if first {
                [
                    age(&run.time, view.now),
                    run.step.to_string(),
                    render::verdict_text(run.verdict).to_string(),
                ]
            } else {
                [String::new(), String::new(), String::new()]
            }
        };
        if run.metrics.is_empty() && run.guardrails.is_empty() {
            let [a, s, v] = lead(true);
            table.row([
                a,
                s,
                v,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "".into(),
            ]);
            continue;
        }
        for metric in &run.metrics {
            let [a, s, v] = lead(first);
            first = false;
            let bounds = analysis
                .metrics
                .iter()
                .find(|m| m.name == metric.name)
                .map(format_bounds)
                .unwrap_or_else(|| "-".to_string());
            let message = if metric.verdict == MetricVerdict::Pass {
                String::new()
            } else {
                metric.message.clone()
            };
            table.row([
                a,
                s,
                v,
                metric.name.clone(),
                metric
                    .value
                    .map(format_value)
                    .unwrap_or_else(|| "no data".to_string()),
                bounds,
                render::metric_verdict_text(metric.verdict).to_string(),
                message,
            ]);
        }
        for guardrail in &run.guardrails {
            let [a, s, v] = lead(first);
            first = false;
            table.row([
                a,
                s,
                v,
                format!("{} (guardrail)", guardrail.name),
                "-".into(),
                "-".into(),
                guardrail.verdict.as_str().to_string(),
                guardrail_message(guardrail.verdict, &guardrail.message),
            ]);
        }
    }
    Some(format!("{title}\n{}", table.render("  ")))
}

/// A guardrail's message where it explains a verdict that stops or holds the ramp.
fn guardrail_message(verdict: GuardrailVerdict, message: &str) -> String {
    match verdict {
        GuardrailVerdict::Regression | GuardrailVerdict::Error => message.to_string(),
        GuardrailVerdict::Pass | GuardrailVerdict::Collecting => String::new(),
    }
}

/// Treatment against control: one row per guardrail of the spec with its latest look
/// (verdict, both rates, the interval for `rate(treatment) − bound`, the tolerance, the
/// step's samples against `minSamplesPerCohort`, when it looked), then the message of each
/// guardrail in regression or in error.
pub fn guardrails_section(flag: &FeatureFlag, now: Timestamp) -> Option<String> {
    let analysis = analysis_spec(flag).filter(|a| !a.guardrails.is_empty())?;
    let status = flag.status.as_ref();
    let looked = status.map(|s| s.guardrails.as_slice()).unwrap_or_default();
    let title = match status.and_then(|s| s.ramp_started_at.as_ref()) {
        Some(started) => format!(
            "Guardrails (treatment against control since the ramp started {} ago):",
            age(started, now)
        ),
        None => "Guardrails (treatment against control):".to_string(),
    };
    let mut table = Table::new([
        "GUARDRAIL",
        "VERDICT",
        "TREATMENT",
        "CONTROL",
        "TREATMENT − BOUND",
        "TOLERANCE",
        "STEP SAMPLES (T / C)",
        "LOOKED",
    ]);
    let mut messages = Vec::new();
    for spec in &analysis.guardrails {
        let tolerance = format_tolerance(spec);
        let samples = |status: Option<&GuardrailStatus>| {
            let (treatment, control) = status.map_or((0, 0), |s| {
                (s.step_samples.treatment.total, s.step_samples.control.total)
            });
            format!(
                "{treatment} / {control} (min {})",
                spec.min_samples_per_cohort
            )
        };
        let Some(latest) = looked.iter().find(|s| s.name == spec.name) else {
            table.row([
                spec.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                tolerance,
                samples(None),
                "not yet".into(),
            ]);
            continue;
        };
        // Rates exist once a look counted events in both cohorts.
        let counted = latest.state.treatment.total > 0;
        let rate = |rate: f64| {
            if counted {
                format_rate(rate)
            } else {
                "-".to_string()
            }
        };
        table.row([
            spec.name.clone(),
            latest.verdict.as_str().to_string(),
            rate(latest.treatment_rate),
            rate(latest.control_rate),
            latest
                .interval
                .map(format_interval)
                .unwrap_or_else(|| "-".to_string()),
            tolerance,
            samples(Some(latest)),
            latest
                .last_look_at
                .as_ref()
                .map(|at| format!("{} ago", age(at, now)))
                .unwrap_or_else(|| "-".to_string()),
        ]);
        let message = guardrail_message(latest.verdict, &latest.message);
        if !message.is_empty() {
            messages.push(format!("  {message}\n"));
        }
    }
    Some(format!(
        "{title}\n{}{}",
        table.render("  "),
        messages.concat()
    ))
}

/// The place for experiments. Today it lists the variants and their weights; the
/// experiments work adds per-variant results (exposures, conversions, lift, interval,
/// p-value) as more columns of the same table, from the experiment's status.
pub fn experiment_section(flag: &FeatureFlag, _now: Timestamp) -> Option<String> {
    // An experiment that has looked at its counts shows the per-variant statistics.
    if let Some(experiment) = flag.status.as_ref().and_then(|s| s.experiment.as_ref()) {
        return Some(rollgate_core::experiment_status::render_experiment(
            experiment,
        ));
    }
    if flag.spec.variants.is_empty() {
        return None;
    }
    let mut table = Table::new(["VARIANT", "WEIGHT"]);
    for variant in &flag.spec.variants {
        table.row([variant.name.clone(), format!("{}%", variant.weight)]);
    }
    Some(format!("Variants:\n{}", table.render("  ")))
}

/// The rules in order, each with its conditions and what it serves, then the segments they
/// use and whether the operator found them (`SegmentsResolved`); `None` without rules.
pub fn targeting_section(flag: &FeatureFlag) -> Option<String> {
    if flag.spec.targeting.is_empty() {
        return None;
    }
    let mut table = Table::new(["RULE", "CONDITIONS", "SERVE"]);
    for rule in &flag.spec.targeting {
        let conditions = rule
            .conditions
            .iter()
            .map(condition_text)
            .collect::<Vec<_>>()
            .join(" and ");
        table.row([rule.name.clone(), conditions, serve_text(&rule.serve)]);
    }
    let mut text = format!(
        "Targeting (first match decides; everyone else gets the ramp):\n{}",
        table.render("  ")
    );
    let used = flag.spec.segments_used();
    if !used.is_empty() {
        let resolved = flag.status.as_ref().and_then(|status| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == rollgate_core::segment_catalog::SEGMENTS_RESOLVED)
        });
        let state = match resolved {
            Some(c) if c.status == "True" => "all found".to_string(),
            Some(c) => c.message.clone(),
            None => "not checked yet".to_string(),
        };
        text.push_str(&format!("  Segments: {} ({state})\n", used.join(", ")));
    }
    Some(text)
}

/// `country In [DE, FR]`, `InSegment [beta-testers]`, `plan Exists`.
fn condition_text(condition: &rollgate_core::crd::TargetingCondition) -> String {
    let subject = condition
        .attribute
        .as_deref()
        .map(|attribute| format!("{attribute} "))
        .unwrap_or_default();
    let values = match condition.values.as_slice() {
        [] => String::new(),
        [one] if condition.operator != rollgate_sdk::Operator::InSegment => format!(" {one}"),
        many => format!(" [{}]", many.join(", ")),
    };
    format!("{subject}{}{values}", condition.operator)
}

/// `on`, `off`, `variant blue` or `50%`.
fn serve_text(serve: &rollgate_core::crd::Serve) -> String {
    match (serve.enabled, &serve.variant, serve.percent) {
        (Some(true), None, None) => "on".into(),
        (Some(false), None, None) => "off".into(),
        (None, Some(variant), None) => format!("variant {variant}"),
        (None, None, Some(percent)) => format!("{} of them", format_percent(percent)),
        _ => "invalid: not exactly one of enabled, variant and percent".into(),
    }
}

fn conditions_section(view: &StatusView<'_>) -> String {
    let conditions = view
        .flag
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if conditions.is_empty() {
        return "Conditions:  <none>\n".to_string();
    }
    let mut table = Table::new(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]);
    for condition in conditions {
        table.row([
            condition.type_.clone(),
            condition.status.clone(),
            condition.reason.clone(),
            age(&condition.last_transition_time, view.now),
            condition.message.clone(),
        ]);
    }
    format!("Conditions:\n{}", table.render("  "))
}

fn events_section(view: &StatusView<'_>) -> String {
    let events = match view.events {
        EventsView::Unavailable(why) => return format!("Events:  cannot be shown: {why}\n"),
        EventsView::Listed(events) => events,
    };
    if events.is_empty() {
        return "Events:  <none>\n".to_string();
    }
    let skip = if view.wide {
        0
    } else {
        events.len().saturating_sub(DEFAULT_EVENTS)
    };
    let mut table = Table::new(["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]);
    for event in &events[skip..] {
        table.row([
            event.type_.clone().unwrap_or_default(),
            event.reason.clone().unwrap_or_default(),
            event_age(event, view.now),
            event
                .reporting_component
                .clone()
                .filter(|c| !c.is_empty())
                .or_else(|| event.source.as_ref().and_then(|s| s.component.clone()))
                .unwrap_or_default(),
            event.message.clone().unwrap_or_default().replace('\n', " "),
        ]);
    }
    let title = if skip > 0 {
        format!(
            "Events (latest {} of {}; -o wide shows all):",
            events.len() - skip,
            events.len()
        )
    } else {
        "Events:".to_string()
    };
    format!("{title}\n{}", table.render("  "))
}

/// kubectl's event age: `4m`, or `30s (x3 over 10m)` for a repeated event.
fn event_age(event: &Event, now: Timestamp) -> String {
    let last = human_duration(seconds_since(event_time(event), now));
    let count = event
        .series
        .as_ref()
        .and_then(|s| s.count)
        .or(event.count)
        .unwrap_or(1);
    let first = event
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0));
    match first {
        Some(first) if count > 1 => format!(
            "{last} (x{count} over {})",
            human_duration(seconds_since(first, now))
        ),
        _ => last,
    }
}
