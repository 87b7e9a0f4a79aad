//! The simulation for people: a timeline, a chart and a summary line.
//!
//! - **Timeline.** One line per engine event, in the engine's own words (the message a
//!   `kubectl describe` would show), plus one line per run of analyses that passed or
//!   held in a row, with each metric's range against its bound. With guardrails, each
//!   guardrail's latest look follows on a line of its own (both rates, the bound, the
//!   tolerance and the interval), a run also ends when a guardrail's verdict changes, and
//!   the analysis that failed or held is shown too, so its metrics can be read beside the
//!   guardrail that decided it.
//! - **Chart.** Drawn by hand rather than with a plotting crate: the percent axis is the
//!   ramp's own steps (1% and 5% would be one row apart on a linear axis), the metric is
//!   drawn against its bound line on its own scale, and the text is the same on every
//!   terminal, so the golden tests can pin it. `textplots` draws braille dots with labels
//!   only at the axis ends, one scale per chart, and no threshold.
//! - **Summary.** Outcome, time to 100% or to the rollback, analyses and holds.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::driver::{guardrail_checks, metric_checks};
use super::trace::{GuardrailReading, Outcome, Tick, Trace};
use rollgate_core::crd::{AnalysisRun, FeatureFlag, MetricCheck, MetricVerdict, Verdict};
use rollgate_core::engine::judge::summarize;
use rollgate_core::engine::{EventReason, step_of};
use rollgate_core::guardrail::GuardrailVerdict;

/// Columns of the charts.
pub const CHART_WIDTH: usize = 60;
/// Rows of the metric chart.
const METRIC_ROWS: usize = 6;

/// How to show times and how wide to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Show calendar times next to elapsed ones (off when the history counts seconds from
    /// an arbitrary start).
    pub absolute_times: bool,
    pub chart_width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            absolute_times: true,
            chart_width: CHART_WIDTH,
        }
    }
}

/// Timeline, chart and summary, as `rollgate simulate` prints them after its header.
pub fn render_text(trace: &Trace, flag: &FeatureFlag, options: RenderOptions) -> String {
    let mut out = String::new();
    let mut timeline = Timeline::new(flag);
    for tick in &trace.ticks {
        for line in timeline.push(tick) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for line in timeline.finish() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&render_tail(trace, flag, options));
    out
}

/// What follows the timeline: the chart and the summary line, each after a blank line.
pub fn render_tail(trace: &Trace, flag: &FeatureFlag, options: RenderOptions) -> String {
    let mut out = String::new();
    let chart = chart(trace, flag, options.chart_width);
    if !chart.is_empty() {
        out.push('\n');
        out.push_str(&chart);
    }
    out.push('\n');
    out.push_str(&summary_line(trace, options));
    out.push('\n');
    out
}

/// `+1:06:00`, `+2d03:10:00`: time since the start.
pub fn elapsed(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "+" };
    let s = seconds.unsigned_abs();
    let (days, hours, minutes, secs) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{sign}{days}d{hours:02}:{minutes:02}:{secs:02}")
    } else {
        format!("{sign}{hours}:{minutes:02}:{secs:02}")
    }
}

/// A number with at most four significant digits, without trailing zeros.
pub fn short(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = usize::try_from((3 - magnitude).max(0)).unwrap_or(0);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn bounds(check: &MetricCheck) -> String {
    match (check.min, check.max) {
        (Some(min), Some(max)) => format!("[{min}, {max}]"),
        (Some(min), None) => format!("min {min}"),
        (None, Some(max)) => format!("max {max}"),
        (None, None) => "no bounds".to_string(),
    }
}

fn line(seconds: i64, label: &str, text: &str) -> String {
    format!("{:>11}  {label:<16}  {text}", elapsed(seconds))
}

/// A line that continues the one above it, under its text.
fn continuation(text: &str) -> String {
    format!("{:31}{text}", "")
}

/// `guardrail errors Pass: treatment 0.512% (41 of 8000) vs control …`: the engine's
/// message, with the verdict named once.
fn guardrail_text(reading: &GuardrailReading, at: Option<i64>) -> String {
    let verdict = reading.verdict.as_str();
    let prefix = format!("guardrail {}: ", reading.name);
    let message = reading
        .message
        .strip_prefix(&prefix)
        .unwrap_or(&reading.message);
    let lower = format!("{}: ", verdict.to_ascii_lowercase());
    let message = message.strip_prefix(&lower).unwrap_or(message);
    let at = at
        .map(|s| format!(" at {}", elapsed(s)))
        .unwrap_or_default();
    format!("guardrail {} {verdict}{at}: {message}", reading.name)
}

/// Builds the timeline tick by tick, so a paced run can print it as it goes.
pub struct Timeline<'a> {
    metrics: &'a [MetricCheck],
    /// Whether the flag has guardrails (then every analysis shows them).
    guarded: bool,
    group: Option<Group>,
}

/// Analyses in a row with the same verdict at the same step, the same guardrail verdicts,
/// and no event between them.
struct Group {
    verdict: Verdict,
    step: u32,
    guardrails: Vec<GuardrailVerdict>,
    /// The guardrails after the latest run.
    readings: Vec<GuardrailReading>,
    /// The run failed or held on its guardrails, not on a metric.
    by_guardrails: bool,
    first: i64,
    last: i64,
    count: u32,
    /// Per metric of the spec: the lowest and highest value seen.
    ranges: Vec<Option<(f64, f64)>>,
    /// For holds: what held the first run.
    why: String,
}

impl<'a> Timeline<'a> {
    pub fn new(flag: &'a FeatureFlag) -> Self {
        Self {
            metrics: metric_checks(flag),
            guarded: !guardrail_checks(flag).is_empty(),
            group: None,
        }
    }

    /// The lines this tick completes (a run of analyses is printed when it ends).
    pub fn push(&mut self, tick: &Tick) -> Vec<String> {
        // A replayed request shows as the engine's event for it ("paused by request …").
        let mut lines = Vec::new();
        if let Some(run) = &tick.analysis {
            // A failed run always comes with an AnalysisFailed or RolledBack event, and the
            // first held run of a streak with AnalysisHeld: the event tells it.
            let told = tick.events.iter().any(|e| {
                matches!(
                    e.reason,
                    EventReason::AnalysisFailed | EventReason::AnalysisHeld
                )
            }) || run.verdict == Verdict::Fail;
            if told {
                lines.extend(self.finish());
                if self.guarded {
                    // The run itself, before the event that tells what it did; a guardrail
                    // the event names is left to the event.
                    lines.extend(self.add(tick, run));
                    if let Some(group) = self.group.as_mut() {
                        group.readings.retain(|reading| {
                            !tick
                                .events
                                .iter()
                                .any(|e| e.message.contains(&reading.message))
                        });
                    }
                    lines.extend(self.finish());
                }
            } else {
                lines.extend(self.add(tick, run));
            }
        }
        if let Some(waiting) = &tick.waiting {
            lines.extend(self.finish());
            lines.push(line(tick.elapsed_seconds, "WaitingForSamples", waiting));
        }
        if !tick.events.is_empty() {
            lines.extend(self.finish());
            for event in &tick.events {
                lines.push(line(
                    tick.elapsed_seconds,
                    event.reason.as_str(),
                    &event.message,
                ));
            }
        }
        lines
    }

    /// The lines of a run of analyses still open.
    pub fn finish(&mut self) -> Vec<String> {
        self.group
            .take()
            .map(|group| self.group_lines(&group))
            .unwrap_or_default()
    }

    fn add(&mut self, tick: &Tick, run: &AnalysisRun) -> Vec<String> {
        let seconds = tick.elapsed_seconds;
        let guardrails: Vec<GuardrailVerdict> = run.guardrails.iter().map(|g| g.verdict).collect();
        let same = self.group.as_ref().is_some_and(|g| {
            g.verdict == run.verdict && g.step == run.step && g.guardrails == guardrails
        });
        let mut lines = Vec::new();
        if !same {
            lines.extend(self.finish());
            let deciding = match run.verdict {
                Verdict::Pass => None,
                Verdict::Hold => Some(MetricVerdict::Hold),
                Verdict::Fail => Some(MetricVerdict::Fail),
            };
            self.group = Some(Group {
                verdict: run.verdict,
                step: run.step,
                guardrails,
                readings: Vec::new(),
                by_guardrails: deciding
                    .is_some_and(|verdict| run.metrics.iter().all(|m| m.verdict != verdict)),
                first: seconds,
                last: seconds,
                count: 0,
                ranges: vec![None; self.metrics.len()],
                why: summarize(run.verdict, &run.metrics),
            });
        }
        if let Some(group) = self.group.as_mut() {
            group.last = seconds;
            group.count += 1;
            group.readings.clone_from(&tick.guardrails);
            for (range, check) in group.ranges.iter_mut().zip(self.metrics) {
                let value = run
                    .metrics
                    .iter()
                    .find(|m| m.name == check.name)
                    .and_then(|m| m.value);
                if let Some(value) = value {
                    *range = Some(
                        range.map_or((value, value), |(lo, hi)| (lo.min(value), hi.max(value))),
                    );
                }
            }
        }
        lines
    }

    fn group_lines(&self, group: &Group) -> Vec<String> {
        let through = if group.count > 1 {
            format!(" through {}", elapsed(group.last))
        } else {
            String::new()
        };
        let by = if group.by_guardrails {
            " by its guardrails"
        } else {
            ""
        };
        let text = match group.verdict {
            // Held on a metric: what held it. Held on its guardrails: the metrics' values.
            Verdict::Hold if !group.by_guardrails => {
                format!("{} held{through}: {}", group.count, group.why)
            }
            Verdict::Pass | Verdict::Fail | Verdict::Hold => {
                let verb = match group.verdict {
                    Verdict::Pass => "passed",
                    Verdict::Fail => "failed",
                    Verdict::Hold => "held",
                };
                let metrics: Vec<String> = self
                    .metrics
                    .iter()
                    .zip(&group.ranges)
                    .map(|(check, range)| match range {
                        Some((lo, hi)) if lo == hi => {
                            format!("{} {} ({})", check.name, short(*lo), bounds(check))
                        }
                        Some((lo, hi)) => format!(
                            "{} {}–{} ({})",
                            check.name,
                            short(*lo),
                            short(*hi),
                            bounds(check)
                        ),
                        None => format!("{} no data (ignored)", check.name),
                    })
                    .collect();
                if metrics.is_empty() {
                    format!("{} {verb}{through}{by}", group.count)
                } else {
                    format!(
                        "{} {verb}{through}{by}: {}",
                        group.count,
                        metrics.join(", ")
                    )
                }
            }
        };
        let at = (group.count > 1).then_some(group.last);
        std::iter::once(line(group.first, "Analysis", &text))
            .chain(
                group
                    .readings
                    .iter()
                    .map(|reading| continuation(&guardrail_text(reading, at))),
            )
            .collect()
    }
}

/// The percent chart, then the chart of the metric nearest to (or past) its bound. Empty
/// when no time passed.
pub fn chart(trace: &Trace, flag: &FeatureFlag, width: usize) -> String {
    let Some(last) = trace.ticks.last() else {
        return String::new();
    };
    let span = trace
        .summary
        .elapsed_seconds
        .max(last.elapsed_seconds)
        .max(0);
    let columns = usize::try_from(span)
        .unwrap_or(usize::MAX)
        .min(width.max(1));
    if span == 0 || columns == 0 {
        return String::new();
    }
    // Column c covers elapsed seconds [c·span/columns, (c+1)·span/columns); the last one
    // includes the end.
    let column_of = |seconds: i64| -> usize {
        let c = i128::from(seconds) * columns as i128 / i128::from(span);
        usize::try_from(c.max(0)).unwrap_or(0).min(columns - 1)
    };
    let mut out = String::new();
    out.push_str(&percent_chart(trace, flag, columns, &column_of));
    out.push_str(&metric_chart(trace, flag, columns, &column_of));
    let pad = " ".repeat(LABEL_WIDTH + 1);
    let start = elapsed(0);
    let end = elapsed(span);
    let gap = (columns + 1).saturating_sub(start.len() + end.len()).max(1);
    let _ = writeln!(out, "{pad}{start}{}{end}", " ".repeat(gap));
    out
}

const LABEL_WIDTH: usize = 9;

fn percent_chart(
    trace: &Trace,
    flag: &FeatureFlag,
    columns: usize,
    column_of: &dyn Fn(i64) -> usize,
) -> String {
    let mut levels: Vec<f64> = vec![0.0];
    if let Some(rollout) = &flag.spec.rollout {
        levels.extend(rollout.steps.iter().map(|step| step.percent));
    }
    levels.extend(trace.ticks.iter().map(|tick| tick.percent));
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let level_of = |percent: f64| levels.iter().position(|l| *l == percent).unwrap_or(0);
    // The percent at the end of each column: the last tick in or before it.
    let mut at_column: Vec<Option<usize>> = vec![None; columns];
    for tick in &trace.ticks {
        at_column[column_of(tick.elapsed_seconds)] = Some(level_of(tick.percent));
    }
    let mut grid = vec![vec![' '; columns]; levels.len()];
    let mut previous: Option<usize> = None;
    for (column, level) in at_column.iter().enumerate() {
        let Some(level) = level.or(previous) else {
            continue;
        };
        let from = previous.unwrap_or(level);
        if level == from {
            grid[level][column] = '─';
        } else if level > from {
            grid[level][column] = '╭';
            grid[from][column] = '╯';
            for row in grid.iter_mut().take(level).skip(from + 1) {
                row[column] = '│';
            }
        } else {
            grid[from][column] = '╮';
            grid[level][column] = '╰';
            for row in grid.iter_mut().take(from).skip(level + 1) {
                row[column] = '│';
            }
        }
        previous = Some(level);
    }
    let mut out = String::from("percent\n");
    for (index, row) in grid.iter().enumerate().rev() {
        let label = format!("{}%", levels[index]);
        let _ = writeln!(
            out,
            "{label:>LABEL_WIDTH$}┤{}",
            row.iter().collect::<String>().trim_end()
        );
    }
    let _ = writeln!(out, "{}└{}", " ".repeat(LABEL_WIDTH), "─".repeat(columns));
    out
}

/// The metric to draw: the one that rolled the flag back, else the one that came nearest
/// to its bound.
fn chosen_metric<'f>(trace: &Trace, flag: &'f FeatureFlag) -> Option<&'f MetricCheck> {
    let checks = metric_checks(flag);
    if let Some(breach) = &trace.summary.breach {
        return checks.iter().find(|check| check.name == breach.metric);
    }
    let pressure = |check: &MetricCheck| -> f64 {
        values(trace, &check.name)
            .map(|(_, value)| match (check.max, check.min) {
                (Some(max), _) if max > 0.0 => value / max,
                (_, Some(min)) if value > 0.0 => min / value,
                _ => 0.0,
            })
            .fold(f64::NEG_INFINITY, f64::max)
    };
    checks
        .iter()
        .filter(|check| values(trace, &check.name).next().is_some())
        .max_by(|a, b| pressure(a).total_cmp(&pressure(b)))
}

fn values<'t>(trace: &'t Trace, name: &'t str) -> impl Iterator<Item = (i64, f64)> + 't {
    trace.ticks.iter().filter_map(move |tick| {
        let run = tick.analysis.as_ref()?;
        let metric = run.metrics.iter().find(|m| m.name == name)?;
        metric.value.map(|value| (tick.elapsed_seconds, value))
    })
}

fn metric_chart(
    trace: &Trace,
    flag: &FeatureFlag,
    columns: usize,
    column_of: &dyn Fn(i64) -> usize,
) -> String {
    let Some(check) = chosen_metric(trace, flag) else {
        return String::new();
    };
    // Against `max` the highest value of a column counts, against `min` alone the lowest.
    let (bound, worst_is_high) = match (check.max, check.min) {
        (Some(max), _) => (max, true),
        (None, Some(min)) => (min, false),
        (None, None) => return String::new(),
    };
    let mut cells: Vec<Option<f64>> = vec![None; columns];
    let mut analysed = vec![false; columns];
    for tick in &trace.ticks {
        let Some(run) = &tick.analysis else { continue };
        let column = column_of(tick.elapsed_seconds);
        analysed[column] = true;
        let value = run
            .metrics
            .iter()
            .find(|m| m.name == check.name)
            .and_then(|m| m.value);
        if let Some(value) = value {
            cells[column] = Some(cells[column].map_or(value, |old| {
                if worst_is_high {
                    old.max(value)
                } else {
                    old.min(value)
                }
            }));
        }
    }
    let highest = cells.iter().flatten().copied().fold(0.0_f64, f64::max);
    let top = highest.max(bound * 1.25);
    if top <= 0.0 || !top.is_finite() {
        return String::new();
    }
    let eighths: Vec<Option<i64>> = cells
        .iter()
        .map(|cell| {
            cell.map(|value| {
                let e = (value.max(0.0) / top * (METRIC_ROWS * 8) as f64).round() as i64;
                if value > 0.0 { e.max(1) } else { e }
            })
        })
        .collect();
    let bound_row = ((bound / top * METRIC_ROWS as f64).floor() as usize).min(METRIC_ROWS - 1);
    let blocks = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let worst = if worst_is_high { "highest" } else { "lowest" };
    let mut out = format!(
        "{}: {worst} value per column; ┈ is its bound, {}\n",
        check.name,
        bounds(check)
    );
    for row in (0..METRIC_ROWS).rev() {
        let mut text = String::new();
        for column in 0..columns {
            let fill = eighths[column].map_or(0, |e| (e - row as i64 * 8).clamp(0, 8));
            let c = if fill > 0 {
                blocks[usize::try_from(fill).unwrap_or(0)]
            } else if row == 0 && analysed[column] && cells[column].is_none() {
                '·'
            } else if row == bound_row {
                '┈'
            } else {
                ' '
            };
            text.push(c);
        }
        let label = if row == METRIC_ROWS - 1 {
            short(top)
        } else if row == bound_row {
            short(bound)
        } else if row == 0 {
            "0".to_string()
        } else {
            String::new()
        };
        let _ = writeln!(out, "{label:>LABEL_WIDTH$}┤{}", text.trim_end());
    }
    let _ = writeln!(out, "{}└{}", " ".repeat(LABEL_WIDTH), "─".repeat(columns));
    out
}

/// One line: the outcome, when, how far the ramp got, and the analyses.
pub fn summary_line(trace: &Trace, options: RenderOptions) -> String {
    let summary = &trace.summary;
    let when = |at: Timestamp| {
        let after = elapsed(summary.elapsed_seconds);
        let after = after.trim_start_matches('+');
        if options.absolute_times {
            format!("{at}, {after} after the start")
        } else {
            format!("{after} after the start")
        }
    };
    let step = |step: Option<u32>| {
        step.map(|s| format!(" (step {})", step_of(s, summary.steps as usize)))
            .unwrap_or_default()
    };
    let counts = format!(
        "{} analyses: {} passed, {} failed, {} held",
        summary.analyses, summary.passed, summary.failed, summary.held
    );
    let head = match summary.outcome {
        Outcome::Completed => format!("completed: {}% at {}", summary.percent, when(summary.at)),
        Outcome::RolledBack | Outcome::Killed => {
            let from = summary
                .from_percent
                .map(|p| format!("{p}%{} → ", step(summary.from_step)))
                .unwrap_or_default();
            let why = summary
                .breach
                .as_ref()
                .map(|b| b.message.clone())
                .or_else(|| summary.guardrail_breach.as_ref().map(|g| g.message.clone()))
                .or_else(|| summary.reason.clone())
                .map(|why| format!(": {why}"))
                .unwrap_or_default();
            format!(
                "{}: {from}0% at {}{why}",
                summary.outcome.as_str(),
                when(summary.at)
            )
        }
        Outcome::Held | Outcome::Paused | Outcome::Unfinished => {
            let why = summary
                .reason
                .as_ref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default();
            format!(
                "{}: at {}%{} when the data ended at {}{why}",
                summary.outcome.as_str(),
                summary.percent,
                step(summary.step),
                when(summary.at)
            )
        }
    };
    format!("{head}; {counts}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times_read_as_clock_times() {
        assert_eq!(elapsed(0), "+0:00:00");
        assert_eq!(elapsed(3960), "+1:06:00");
        assert_eq!(elapsed(2 * 86_400 + 3 * 3600 + 61), "+2d03:01:01");
        assert_eq!(elapsed(-90), "-0:01:30");
    }

    #[test]
    fn short_numbers_keep_four_significant_digits() {
        assert_eq!(short(0.041_83), "0.04183");
        assert_eq!(short(0.01), "0.01");
        assert_eq!(short(0.500_000_1), "0.5");
        assert_eq!(short(1234.6), "1235");
        assert_eq!(short(0.0030000000000000005), "0.003");
        assert_eq!(short(0.0), "0");
    }
}
