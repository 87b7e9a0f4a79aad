//! Pure formatting shared by the subcommands: kubectl-style tables and ages, percents,
//! metric values, the step progress bar, and JSON/YAML output. No I/O, no clock reads:
//! every function that needs the time takes `now`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use rollgate_core::crd::{
    FeatureFlag, Guardrail, MetricCheck, MetricVerdict, Phase, RequestOutcome, Step, Verdict,
};
use rollgate_core::duration::parse_duration;
use rollgate_core::experiment::Interval;

/// Filled and empty cells of the step progress bar.
const FILLED: char = '■';
const EMPTY: char = '□';

/// An age the way kubectl prints it (`45s`, `3m20s`, `15m`, `5h30m`, `20h`, `3d4h`, `30d`,
/// `2y10d`): precise when recent, coarse when old.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if days < 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if years < 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// Whole seconds from `then` to `now` (negative when `then` is in the future).
pub fn seconds_since(then: Timestamp, now: Timestamp) -> i64 {
    now.duration_since(then).as_secs()
}

/// kubectl's age of a timestamp: `human_duration(now − time)`.
pub fn age(time: &Time, now: Timestamp) -> String {
    human_duration(seconds_since(time.0, now))
}

/// An exact, compact duration for a countdown: `6m12s`, `1h`, `0s`.
pub fn countdown(duration: Duration) -> String {
    let whole = Duration::from_secs(duration.as_secs());
    if whole.is_zero() {
        "0s".to_string()
    } else {
        rollgate_core::duration::format_duration(whole)
    }
}

/// A percent with at most two decimals and no trailing zeros: `25%`, `2.5%`, `0.01%`.
pub fn format_percent(percent: f64) -> String {
    format!("{}%", trim_decimals(format!("{percent:.2}")))
}

/// A metric value or bound with four significant digits: `0.01235`, `1235`, `0.5`.
pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 12) as usize;
    trim_decimals(format!("{value:.decimals$}"))
}

fn trim_decimals(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The bounds of a metric check: `<= 0.05`, `>= 0.99`, `0.1..0.5`.
pub fn format_bounds(check: &MetricCheck) -> String {
    match (check.min, check.max) {
        (Some(min), Some(max)) => format!("{}..{}", format_value(min), format_value(max)),
        (Some(min), None) => format!(">= {}", format_value(min)),
        (None, Some(max)) => format!("<= {}", format_value(max)),
        (None, None) => "-".to_string(),
    }
}

/// A rate of bad events as a percent with three decimals, as the engine's guardrail
/// messages write it: `0.512%`.
pub fn format_rate(rate: f64) -> String {
    format!("{:.3}%", rate * 100.0)
}

/// A guardrail's interval for `rate(treatment) − bound` in percentage points, as the
/// engine's messages write it: `[-0.210%, +0.095%]`; `(-∞, +∞)` before it narrowed.
pub fn format_interval(interval: Interval) -> String {
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

/// How much worse the treatment may be: `+10% relative` for `maxRelativeIncrease: 0.1`,
/// `+0.2pp absolute` for `maxAbsoluteIncrease: 0.002`.
pub fn format_tolerance(guardrail: &Guardrail) -> String {
    match (
        guardrail.max_relative_increase,
        guardrail.max_absolute_increase,
    ) {
        (Some(r), _) => format!("+{}% relative", format_value(r * 100.0)),
        (None, Some(a)) => format!("+{}pp absolute", format_value(a * 100.0)),
        (None, None) => "-".to_string(),
    }
}

/// `[■■■□□] 25% (step 2 of 0–4)`: one cell per step, filled up to and including the step
/// the flag is at; `reached` is the step's index (0-based, as `status.currentStep`), `None`
/// when no step is reached.
pub fn progress_bar(reached: Option<usize>, total: usize, percent: f64) -> String {
    let reached = reached.map(|index| index.min(total.saturating_sub(1)));
    let filled = reached.map_or(0, |index| (index + 1).min(total));
    let cells: String = std::iter::repeat_n(FILLED, filled)
        .chain(std::iter::repeat_n(EMPTY, total - filled))
        .collect();
    let step = match reached {
        Some(index) if total > 0 => format!("step {}", step_of(index, total)),
        _ => "not ramping".to_string(),
    };
    format!("[{cells}] {} ({step})", format_percent(percent))
}

/// `2 of 0–4`: a step index the way every Rollgate output prints it after `step`.
pub fn step_of(index: usize, total: usize) -> String {
    rollgate_core::engine::step_of(u32::try_from(index).unwrap_or(u32::MAX), total)
}

/// The verdict of an analysis run, as status spells it.
pub fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "Pass",
        Verdict::Hold => "Hold",
        Verdict::Fail => "Fail",
    }
}

/// The verdict of one metric, as status spells it.
pub fn metric_verdict_text(verdict: MetricVerdict) -> &'static str {
    match verdict {
        MetricVerdict::Pass => "Pass",
        MetricVerdict::Fail => "Fail",
        MetricVerdict::Hold => "Hold",
        MetricVerdict::Ignored => "Ignored",
    }
}

/// What became of a request, as status spells it.
pub fn outcome_text(outcome: RequestOutcome) -> &'static str {
    match outcome {
        RequestOutcome::Applied => "Applied",
        RequestOutcome::Refused => "Refused",
        RequestOutcome::Ignored => "Ignored",
    }
}

/// The phase, `Pending` when the operator has not written a status yet.
pub fn phase(flag: &FeatureFlag) -> Phase {
    flag.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The resolved percent as the operator reported it, else `-`.
pub fn percent_text(flag: &FeatureFlag) -> String {
    flag.status
        .as_ref()
        .and_then(|s| s.percent)
        .map(format_percent)
        .unwrap_or_else(|| "-".to_string())
}

/// The steps of the ramp, empty for a static flag.
pub fn steps(flag: &FeatureFlag) -> &[Step] {
    flag.spec
        .rollout
        .as_ref()
        .map(|r| r.steps.as_slice())
        .unwrap_or_default()
}

/// The index of the step the flag is at (0-based, as `status.currentStep`), in a phase
/// where a step applies.
pub fn reached_step(flag: &FeatureFlag) -> Option<usize> {
    let status = flag.status.as_ref()?;
    let last = steps(flag).len().checked_sub(1)?;
    match status.phase {
        Phase::Progressing | Phase::Paused => status.current_step.map(|i| (i as usize).min(last)),
        Phase::Complete => Some(status.current_step.map_or(last, |i| (i as usize).min(last))),
        _ => None,
    }
}

/// `2 of 0–4` while ramping or complete, else `-`.
pub fn step_text(flag: &FeatureFlag) -> String {
    match reached_step(flag) {
        Some(step) => step_of(step, steps(flag).len()),
        None => "-".to_string(),
    }
}

/// The pause of a step as a duration; `None` without a pause or when it cannot be parsed.
pub fn pause_of(step: &Step) -> Option<Duration> {
    step.pause.as_deref().and_then(|p| parse_duration(p).ok())
}

/// `spec.owner`, or `-` when it is not set.
pub fn owner_text(flag: &FeatureFlag) -> String {
    flag.spec
        .owner
        .clone()
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| "-".to_string())
}

/// A condition of the flag's status by type.
pub fn condition<'a>(
    flag: &'a FeatureFlag,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    flag.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// A kubectl-style table: upper-case headers, columns padded by three spaces, the last
/// column unpadded, no trailing whitespace.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Space between columns, and the smallest column, as kubectl's tab writer has them.
const COLUMN_PADDING: usize = 3;
const MIN_COLUMN_WIDTH: usize = 6;

impl Table {
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, each line prefixed by `indent` and ended by a newline.
    pub fn render(&self, indent: &str) -> String {
        let columns = self.headers.len();
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::from(indent);
            for (index, cell) in line.iter().enumerate().take(columns) {
                text.push_str(cell);
                if index + 1 < columns {
                    let width = (widths[index] + COLUMN_PADDING).max(MIN_COLUMN_WIDTH);
                    let pad = width.saturating_sub(cell.chars().count());
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// One object as JSON or YAML the way kubectl prints it: `managedFields` left out.
pub fn object_value(raw: &Value) -> Value {
    let mut value = raw.clone();
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    value
}

/// Several objects as kubectl prints them: a `v1` `List`.
pub fn list_value<'a>(raw: impl IntoIterator<Item = &'a Value>) -> Value {
    let items: Vec<Value> = raw.into_iter().map(object_value).collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items,
    })
}

/// Pretty JSON with a final newline.
pub fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| e.to_string())
}

/// YAML with a final newline.
pub fn to_yaml(value: &impl Serialize) -> Result<String, String> {
    serde_saphyr::to_string(value)
        .map(|text| {
            if text.ends_with('\n') {
                text
            } else {
                text + "\n"
            }
        })
        .map_err(|e| e.to_string())
}

/// When an event last happened: its series, `lastTimestamp`, `eventTime`, or creation.
pub fn event_time(event: &Event) -> Timestamp {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_follow_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 30 * 60, "5h30m"),
            (20 * 3600, "20h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (30 * 86_400, "30d"),
            (800 * 86_400, "2y70d"),
            (3000 * 86_400, "8y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn percents_and_values_are_short() {
        assert_eq!(format_percent(25.0), "25%");
        assert_eq!(format_percent(2.5), "2.5%");
        assert_eq!(format_percent(0.01), "0.01%");
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_value(0.012345), "0.01235");
        assert_eq!(format_value(1234.5678), "1235");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.25), "-0.25");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn guardrail_rates_intervals_and_tolerances() {
        assert_eq!(format_rate(0.00512), "0.512%");
        assert_eq!(format_rate(0.0), "0.000%");
        let interval = Interval {
            lower: -0.0021,
            upper: 0.00095,
        };
        assert_eq!(format_interval(interval), "[-0.210%, +0.095%]");
        let open = Interval {
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
        };
        assert_eq!(format_interval(open), "(-∞, +∞)");
        let mut guardrail = Guardrail {
            name: "errors".into(),
            bad: "b".into(),
            total: "t".into(),
            max_relative_increase: Some(0.1),
            max_absolute_increase: None,
            min_samples_per_cohort: 1000,
            alpha: 0.05,
        };
        assert_eq!(format_tolerance(&guardrail), "+10% relative");
        guardrail.max_relative_increase = None;
        guardrail.max_absolute_increase = Some(0.002);
        assert_eq!(format_tolerance(&guardrail), "+0.2pp absolute");
    }

    #[test]
    fn progress_bar_counts_steps() {
        assert_eq!(
            progress_bar(Some(2), 5, 25.0),
            "[■■■□□] 25% (step 2 of 0–4)"
        );
        assert_eq!(progress_bar(Some(0), 3, 1.0), "[■□□] 1% (step 0 of 0–2)");
        assert_eq!(progress_bar(None, 3, 0.0), "[□□□] 0% (not ramping)");
        assert_eq!(progress_bar(Some(9), 2, 100.0), "[■■] 100% (step 1 of 0–1)");
    }

    #[test]
    fn tables_pad_like_kubectl() {
        let mut table = Table::new(["NAME", "PHASE", "AGE"]);
        table.row(["a", "Progressing", "5m"]);
        table.row(["checkout", "Static", ""]);
        assert_eq!(
            table.render(""),
            "NAME       PHASE         AGE\n\
             a          Progressing   5m\n\
             checkout   Static\n"
        );
    }
}
