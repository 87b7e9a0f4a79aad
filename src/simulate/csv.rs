//! Metric histories and request schedules as CSV, with errors that name the line.
//!
//! A metric history has the header `time,metric,value`:
//!
//! ```text
//! # lines starting with # are comments
//! time,metric,value
//! 2025-03-11T09:00:00Z,error-ratio,0.0031
//! 2025-03-11T09:00:00Z,p99-latency-seconds,0.241
//! 2025-03-11T09:01:00Z,error-ratio,
//! 2025-03-11T09:01:00Z,p99-latency-seconds,"error:upstream timed out, retrying"
//! ```
//!
//! - `time` is RFC 3339, or seconds from the start (`0`, `90`, `12.5`, `-60`); one form per
//!   file. Rows are sorted by time.
//! - `metric` is the `name` of a metric of the flag's analysis.
//! - `value` is a number; empty for no data (as is `NaN` or `±Inf`); `error:<message>` for a
//!   failed query.
//!
//! A metric's value holds from its sample until its next sample: at time `t` the analysis
//! sees the metric's last sample at or before `t`, and no data before its first one.
//!
//! A history for a flag with guardrails has the header `time,metric,value,cohort,bad,total`.
//! A guardrail's row names it in `metric`, leaves `value` empty, and gives one cohort's
//! cumulative `bad` and `total` events since the start of the history; `cohort` is
//! `treatment` or `control`, or a label as Prometheus has it (`off` is the control, every
//! other label the treatment). `error:<message>` in `value`, with no counts, is a failed
//! query. Metric rows may leave the three guardrail columns out.
//!
//! ```text
//! time,metric,value,cohort,bad,total
//! 2025-03-11T09:00:00Z,error-ratio,0.0049
//! 2025-03-11T09:00:00Z,errors,,treatment,0,0
//! 2025-03-11T09:00:00Z,errors,,control,39,7968
//! 2025-03-11T09:01:00Z,errors,"error:query timed out"
//! ```
//!
//! At time `t` a guardrail's counts are each cohort's last row at or before `t`, less its
//! counts when the ramp started (the engine wants counts since then); a cohort without a
//! row yet has none. An error row holds until the guardrail's next row.
//!
//! A request schedule has the header `time,verb`, with the verbs of `rollgate.dev/request`.

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::request::ScheduledRequest;
use super::source::MetricSource;
use rollgate_core::crd::Analysis;
use rollgate_core::engine::Verb;
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts};
use rollgate_core::observation::{
    GuardrailObservation, GuardrailOutcome, MetricObservation, MetricOutcome,
};

/// The reason given for an empty value.
pub const EMPTY_VALUE: &str = "empty value in the history";
/// The reason given before a metric's first sample.
pub const BEFORE_FIRST_SAMPLE: &str = "no sample yet in the history";
/// The reason given for a metric of the flag that the history does not have.
pub const NOT_IN_HISTORY: &str = "the history has no rows for this metric";
/// The error given before a guardrail's first row.
pub const GUARDRAIL_BEFORE_FIRST_ROW: &str = "no row yet for this guardrail in the history";
/// The error given for a guardrail of the flag that the history does not have.
pub const GUARDRAIL_NOT_IN_HISTORY: &str = "the history has no rows for this guardrail";

/// The cohort names a history may use instead of the flag's own labels.
pub const TREATMENT: &str = "treatment";
pub const CONTROL: &str = "control";
/// The label of the users with the flag off, as the operator reads it from Prometheus.
pub const OFF: &str = "off";

/// What is wrong with a CSV file, and on which line (1-based, counting every line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error(
        "line {line}: expected the header {}, found `{found}`",
        one_of(expected)
    )]
    Header {
        line: u64,
        expected: &'static [&'static str],
        found: String,
    },
    #[error("line {line}: expected {expected} columns ({header}), found {found}")]
    Columns {
        line: u64,
        /// `3`, or `3 or 6` where the guardrail columns may be left out.
        expected: String,
        header: &'static str,
        found: usize,
    },
    #[error(
        "line {line}: bad time {text:?}: expected RFC 3339 (2025-03-11T09:00:00Z) or seconds from the start (90, 12.5)"
    )]
    Time { line: u64, text: String },
    #[error(
        "line {line}: time {text:?} is {found}, but line {first_line} used {expected}; use one form in a file"
    )]
    MixedTimes {
        line: u64,
        text: String,
        found: TimeForm,
        expected: TimeForm,
        first_line: u64,
    },
    #[error(
        "line {line}: rows must be sorted by time: {time} comes before {previous} on line {previous_line}"
    )]
    Unsorted {
        line: u64,
        time: String,
        previous: String,
        previous_line: u64,
    },
    #[error("line {line}: unknown {kind} {name:?}: {known}")]
    UnknownMetric {
        line: u64,
        /// `metric`, or `metric or guardrail` for a flag with guardrails.
        kind: &'static str,
        name: String,
        /// The names the flag has, e.g. `the flag's spec.rollout.analysis.metrics are a, b`.
        known: String,
    },
    #[error("line {line}: a second {metric} sample at {time} (the first is on line {first_line})")]
    Duplicate {
        line: u64,
        metric: String,
        time: String,
        first_line: u64,
    },
    #[error(
        "line {line}: bad value {text:?}: expected a number, nothing (no data) or error:<message>"
    )]
    Value { line: u64, text: String },
    #[error("line {line}: bad {field} count {text:?}: expected a number of events, 0 or more")]
    Count {
        line: u64,
        field: &'static str,
        text: String,
    },
    #[error("line {line}: guardrail {guardrail}: {message}")]
    Guardrail {
        line: u64,
        guardrail: String,
        message: String,
    },
    #[error("line {line}: {metric} is a metric: {message}")]
    MetricRow {
        line: u64,
        metric: String,
        message: String,
    },
    #[error("line {line}: unknown verb {text:?}: expected one of {verbs}")]
    Verb {
        line: u64,
        text: String,
        verbs: String,
    },
    #[error("no rows after the header `{header}`")]
    Empty { header: &'static str },
}

fn one_of(headers: &[&str]) -> String {
    headers
        .iter()
        .map(|header| format!("`{header}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl CsvError {
    /// A short label, as every error of the project has.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Malformed { .. } | Self::Columns { .. } | Self::Header { .. } => "csv_shape",
            Self::Time { .. } | Self::MixedTimes { .. } | Self::Unsorted { .. } => "csv_time",
            Self::UnknownMetric { .. } | Self::Duplicate { .. } | Self::MetricRow { .. } => {
                "csv_metric"
            }
            Self::Value { .. } | Self::Count { .. } => "csv_value",
            Self::Guardrail { .. } => "csv_guardrail",
            Self::Verb { .. } => "csv_verb",
            Self::Empty { .. } => "csv_empty",
        }
    }

    /// The line the error is on, when it is on one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Malformed { line, .. }
            | Self::Header { line, .. }
            | Self::Columns { line, .. }
            | Self::Time { line, .. }
            | Self::MixedTimes { line, .. }
            | Self::Unsorted { line, .. }
            | Self::UnknownMetric { line, .. }
            | Self::Duplicate { line, .. }
            | Self::Value { line, .. }
            | Self::Count { line, .. }
            | Self::Guardrail { line, .. }
            | Self::MetricRow { line, .. }
            | Self::Verb { line, .. } => Some(*line),
            Self::Empty { .. } => None,
        }
    }
}

/// How a file writes its times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeForm {
    Rfc3339,
    Seconds,
}

impl fmt::Display for TimeForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rfc3339 => "RFC 3339",
            Self::Seconds => "seconds from the start",
        })
    }
}

/// A time as a row writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CsvTime {
    At(Timestamp),
    /// Seconds from the start.
    Offset(SignedDuration),
}

impl CsvTime {
    /// Parses RFC 3339 or a decimal number of seconds.
    pub fn parse(text: &str) -> Option<Self> {
        let number = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
        let is_number = !whole.is_empty()
            && !fraction.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit());
        if is_number {
            let seconds: f64 = text.parse().ok()?;
            return SignedDuration::try_from_secs_f64(seconds)
                .ok()
                .map(Self::Offset);
        }
        text.parse::<Timestamp>().ok().map(Self::At)
    }

    pub fn form(self) -> TimeForm {
        match self {
            Self::At(_) => TimeForm::Rfc3339,
            Self::Offset(_) => TimeForm::Seconds,
        }
    }

    /// The instant, with offsets counted from `start`.
    pub fn resolve(self, start: Timestamp) -> Timestamp {
        match self {
            Self::At(at) => at,
            Self::Offset(offset) => {
                start
                    .saturating_add(offset)
                    .unwrap_or(if offset.is_negative() {
                        Timestamp::MIN
                    } else {
                        Timestamp::MAX
                    })
            }
        }
    }
}

/// One row of a guardrail.
#[derive(Clone, Debug, PartialEq)]
pub enum GuardrailSample {
    /// One cohort's cumulative counts since the start of the history. `cohort` is
    /// `treatment`, `control`, or a label as Prometheus has it (`off` is the control).
    Counts {
        cohort: String,
        counts: CohortCounts,
    },
    /// The guardrail's queries failed; its counts are unknown until its next row.
    Error { message: String },
}

/// Whether a cohort of a history is the control: `control`, or the label `off`.
pub fn is_control(cohort: &str) -> bool {
    cohort == CONTROL || cohort == OFF
}

/// One guardrail's rows, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
struct GuardrailSeries {
    /// Per cohort, its cumulative counts since the start of the history.
    cohorts: BTreeMap<String, Vec<(Timestamp, CohortCounts)>>,
    /// Failed queries.
    errors: Vec<(Timestamp, String)>,
}

impl GuardrailSeries {
    fn len(&self) -> usize {
        self.cohorts.values().map(Vec::len).sum::<usize>() + self.errors.len()
    }

    fn times(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.cohorts
            .values()
            .flat_map(|rows| rows.iter().map(|(time, _)| *time))
            .chain(self.errors.iter().map(|(time, _)| *time))
    }

    /// Each side's counts at `time`: every cohort's last row at or before it, and the time
    /// of the latest of those rows.
    fn counts_at(&self, time: Timestamp) -> (GuardrailCounts, Option<Timestamp>) {
        let mut counts = GuardrailCounts::default();
        let mut latest = None;
        for (cohort, rows) in &self.cohorts {
            let Some((at, row)) = last_at_or_before(rows, time) else {
                continue;
            };
            latest = latest.max(Some(*at));
            let side = if is_control(cohort) {
                &mut counts.control
            } else {
                &mut counts.treatment
            };
            side.bad = side.bad.saturating_add(row.bad);
            side.total = side.total.saturating_add(row.total);
        }
        (counts, latest)
    }

    /// The counts since `since`, as the engine wants them at `time`.
    fn outcome(&self, since: Timestamp, time: Timestamp) -> GuardrailOutcome {
        let (now, latest_counts) = self.counts_at(time);
        let latest_error = last_at_or_before(&self.errors, time);
        match (latest_counts, latest_error) {
            (None, None) => GuardrailOutcome::Error {
                message: GUARDRAIL_BEFORE_FIRST_ROW.to_string(),
            },
            (counted, Some((at, message))) if counted.is_none_or(|c| c < *at) => {
                GuardrailOutcome::Error {
                    message: message.clone(),
                }
            }
            _ => {
                let (base, _) = self.counts_at(since.min(time));
                GuardrailOutcome::Counts {
                    counts: GuardrailCounts {
                        treatment: rebase(now.treatment, base.treatment),
                        control: rebase(now.control, base.control),
                    },
                }
            }
        }
    }
}

fn last_at_or_before<T>(rows: &[(Timestamp, T)], time: Timestamp) -> Option<&(Timestamp, T)> {
    match rows.partition_point(|(at, _)| *at <= time) {
        0 => None,
        after => rows.get(after - 1),
    }
}

/// The events between `base` and `now` of cumulative counts.
fn rebase(now: CohortCounts, base: CohortCounts) -> CohortCounts {
    let total = now.total.saturating_sub(base.total);
    let bad = now.bad.saturating_sub(base.bad).min(total);
    CohortCounts { bad, total }
}

/// Per metric and per guardrail, the samples of a history in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    series: BTreeMap<String, Vec<(Timestamp, MetricOutcome)>>,
    guardrails: BTreeMap<String, GuardrailSeries>,
    /// Whether the file wrote seconds from the start rather than RFC 3339 times.
    offsets: bool,
}

impl History {
    /// A history from samples in any order; a metric's samples are sorted by time, ties
    /// keeping their order (the later one wins a lookup).
    pub fn from_samples(
        samples: impl IntoIterator<Item = (String, Timestamp, MetricOutcome)>,
    ) -> Self {
        let mut series: BTreeMap<String, Vec<(Timestamp, MetricOutcome)>> = BTreeMap::new();
        for (metric, time, outcome) in samples {
            series.entry(metric).or_default().push((time, outcome));
        }
        for samples in series.values_mut() {
            samples.sort_by_key(|(time, _)| *time);
        }
        Self {
            series,
            guardrails: BTreeMap::new(),
            offsets: false,
        }
    }

    /// The history with guardrail rows added, in any order: (guardrail, time, row). A
    /// cohort's rows are sorted by time, ties keeping their order (the later one wins).
    pub fn with_guardrail_samples(
        mut self,
        samples: impl IntoIterator<Item = (String, Timestamp, GuardrailSample)>,
    ) -> Self {
        for (guardrail, time, sample) in samples {
            let series = self.guardrails.entry(guardrail).or_default();
            match sample {
                GuardrailSample::Counts { cohort, counts } => {
                    series
                        .cohorts
                        .entry(cohort)
                        .or_default()
                        .push((time, counts));
                }
                GuardrailSample::Error { message } => series.errors.push((time, message)),
            }
        }
        for series in self.guardrails.values_mut() {
            for rows in series.cohorts.values_mut() {
                rows.sort_by_key(|(time, _)| *time);
            }
            series.errors.sort_by_key(|(time, _)| *time);
        }
        self
    }

    fn all_times(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.series
            .values()
            .flat_map(|samples| samples.iter().map(|(time, _)| *time))
            .chain(self.guardrails.values().flat_map(GuardrailSeries::times))
    }

    /// The earliest sample time.
    pub fn first_time(&self) -> Option<Timestamp> {
        self.all_times().min()
    }

    /// The latest sample time: the end of the data.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.all_times().max()
    }

    /// Whether the file wrote seconds from the start (then its times have no calendar
    /// meaning unless a start was given).
    pub fn uses_offsets(&self) -> bool {
        self.offsets
    }

    /// The metric names the history has.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }

    /// The guardrail names the history has.
    pub fn guardrails(&self) -> impl Iterator<Item = &str> {
        self.guardrails.keys().map(String::as_str)
    }

    /// How many samples (rows) the history holds.
    pub fn len(&self) -> usize {
        self.series.values().map(Vec::len).sum::<usize>()
            + self
                .guardrails
                .values()
                .map(GuardrailSeries::len)
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `metric` gave at `time`: its last sample at or before `time`.
    pub fn outcome_at(&self, metric: &str, time: Timestamp) -> MetricOutcome {
        let Some(samples) = self.series.get(metric) else {
            return MetricOutcome::NoData {
                reason: NOT_IN_HISTORY.to_string(),
            };
        };
        match last_at_or_before(samples, time) {
            None => MetricOutcome::NoData {
                reason: BEFORE_FIRST_SAMPLE.to_string(),
            },
            Some((_, outcome)) => outcome.clone(),
        }
    }

    /// What `guardrail`'s queries gave at `time` for a ramp that started at `since`: each
    /// cohort's counts at `time` less those at `since`; or the error of its latest row.
    pub fn guardrail_at(
        &self,
        guardrail: &str,
        since: Timestamp,
        time: Timestamp,
    ) -> GuardrailOutcome {
        match self.guardrails.get(guardrail) {
            None => GuardrailOutcome::Error {
                message: GUARDRAIL_NOT_IN_HISTORY.to_string(),
            },
            Some(series) => series.outcome(since, time),
        }
    }

    /// The history as CSV with RFC 3339 times, sorted by time; parses back to the same
    /// samples (no-data reasons become the empty-value one). Without guardrail rows, the
    /// header is `time,metric,value`.
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<(Timestamp, &str, CsvRow<'_>)> = self
            .series
            .iter()
            .flat_map(|(metric, samples)| {
                samples
                    .iter()
                    .map(move |(time, outcome)| (*time, metric.as_str(), CsvRow::Metric(outcome)))
            })
            .collect();
        for (guardrail, series) in &self.guardrails {
            for (cohort, samples) in &series.cohorts {
                rows.extend(samples.iter().map(|(time, counts)| {
                    (
                        *time,
                        guardrail.as_str(),
                        CsvRow::Counts(cohort.as_str(), *counts),
                    )
                }));
            }
            rows.extend(series.errors.iter().map(|(time, message)| {
                (*time, guardrail.as_str(), CsvRow::Error(message.as_str()))
            }));
        }
        rows.sort_by_key(|(time, _, _)| *time);
        let guarded = !self.guardrails.is_empty();
        let bytes = write_history(&rows, guarded).expect("writing CSV to memory cannot fail");
        String::from_utf8(bytes).expect("CSV written from strings is UTF-8")
    }
}

impl MetricSource for History {
    fn observe(&mut self, analysis: &Analysis, time: Timestamp) -> Vec<MetricObservation> {
        analysis
            .metrics
            .iter()
            .map(|metric| MetricObservation {
                name: metric.name.clone(),
                outcome: self.outcome_at(&metric.name, time),
            })
            .collect()
    }

    fn observe_guardrails(
        &mut self,
        analysis: &Analysis,
        ramp_started_at: Timestamp,
        time: Timestamp,
    ) -> Vec<GuardrailObservation> {
        analysis
            .guardrails
            .iter()
            .map(|guardrail| GuardrailObservation {
                name: guardrail.name.clone(),
                outcome: self.guardrail_at(&guardrail.name, ramp_started_at, time),
            })
            .collect()
    }
}

/// One row to write.
enum CsvRow<'a> {
    Metric(&'a MetricOutcome),
    Counts(&'a str, CohortCounts),
    Error(&'a str),
}

/// The header and `rows` as CSV; with `guarded`, the header has the guardrail columns and
/// every row all six fields.
fn write_history(rows: &[(Timestamp, &str, CsvRow<'_>)], guarded: bool) -> ::csv::Result<Vec<u8>> {
    // The reader skips lines starting with `#`, so the writer quotes fields holding one.
    let mut writer = ::csv::WriterBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .from_writer(Vec::new());
    let header = if guarded {
        GUARDED_HEADER
    } else {
        HISTORY_HEADER
    };
    writer.write_record(header.split(','))?;
    for (time, name, row) in rows {
        let time = time.to_string();
        let (value, cohort, bad, total) = match row {
            CsvRow::Metric(MetricOutcome::Value { value }) => {
                (value.to_string(), "", String::new(), String::new())
            }
            CsvRow::Metric(MetricOutcome::NoData { .. }) => {
                (String::new(), "", String::new(), String::new())
            }
            CsvRow::Metric(MetricOutcome::Error { message }) => {
                (format!("error:{message}"), "", String::new(), String::new())
            }
            CsvRow::Error(message) => {
                (format!("error:{message}"), "", String::new(), String::new())
            }
            CsvRow::Counts(cohort, counts) => (
                String::new(),
                *cohort,
                counts.bad.to_string(),
                counts.total.to_string(),
            ),
        };
        if guarded {
            writer.write_record([
                time.as_str(),
                name,
                value.as_str(),
                cohort,
                bad.as_str(),
                total.as_str(),
            ])?;
        } else {
            writer.write_record([time.as_str(), name, value.as_str()])?;
        }
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

const HISTORY_HEADER: &str = "time,metric,value";
const GUARDED_HEADER: &str = "time,metric,value,cohort,bad,total";
const HISTORY_HEADERS: &[&str] = &[HISTORY_HEADER, GUARDED_HEADER];
const REQUESTS_HEADER: &str = "time,verb";
const REQUESTS_HEADERS: &[&str] = &[REQUESTS_HEADER];

/// One data row: its line and fields, as many as the header has (columns a row leaves
/// out are empty).
struct Row {
    line: u64,
    fields: Vec<String>,
}

/// Reads the header and the rows, checking the header and the column count. The header is
/// one of `headers`; a row may leave out the trailing columns of a longer header down to a
/// shorter one that it starts with.
fn rows(text: &str, headers: &'static [&'static str]) -> Result<Vec<Row>, CsvError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut header: Option<&'static str> = None;
    // Records come in order, so count newlines from the previous record on: (byte, line).
    let mut counted = (0usize, 1u64);
    let mut line_at = |position: Option<&::csv::Position>| {
        let byte = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let at = record_start(text, byte);
        let (from, line) = if at >= counted.0 { counted } else { (0, 1) };
        let newlines = text.as_bytes()[from..at]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        let line = line + newlines as u64;
        counted = (at, line);
        line
    };
    for record in reader.records() {
        let record = record.map_err(|error| CsvError::Malformed {
            line: line_at(error.position()),
            message: error.to_string(),
        })?;
        let line = line_at(record.position());
        let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(String::is_empty) {
            continue;
        }
        let Some(columns) = header else {
            let found = headers.iter().find(|candidate| {
                let columns: Vec<&str> = candidate.split(',').collect();
                fields.len() == columns.len()
                    && fields
                        .iter()
                        .zip(&columns)
                        .all(|(field, column)| field.eq_ignore_ascii_case(column))
            });
            let Some(found) = found else {
                return Err(CsvError::Header {
                    line,
                    expected: headers,
                    found: fields.join(","),
                });
            };
            header = Some(found);
            continue;
        };
        let allowed = column_counts(headers, columns);
        let width = allowed.last().copied().unwrap_or(0);
        if !allowed.contains(&fields.len()) {
            return Err(CsvError::Columns {
                line,
                expected: allowed
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                header: columns,
                found: fields.len(),
            });
        }
        fields.resize(width, String::new());
        out.push(Row { line, fields });
    }
    if out.is_empty() {
        return Err(CsvError::Empty {
            header: header.or(headers.first().copied()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The column counts rows under `header` may have: its own, and those of the shorter
/// headers it starts with, smallest first.
fn column_counts(headers: &[&str], header: &str) -> Vec<usize> {
    let mut counts: Vec<usize> = headers
        .iter()
        .filter(|shorter| {
            header == **shorter
                || header
                    .strip_prefix(**shorter)
                    .is_some_and(|rest| rest.starts_with(','))
        })
        .map(|shorter| shorter.split(',').count())
        .collect();
    counts.sort_unstable();
    counts
}

/// Where the record the reader reports at `byte` starts. The reader's position is where it
/// started reading, before the blank and comment lines it skipped (and its own line count
/// leaves blank lines out), so skip those lines.
fn record_start(text: &str, byte: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = byte.min(bytes.len());
    loop {
        let rest = &bytes[at..];
        let end = rest.iter().position(|b| *b == b'\n');
        let line = &rest[..end.unwrap_or(rest.len())];
        let skipped = line.is_empty() || line == b"\r" || line.first() == Some(&b'#');
        match end {
            Some(end) if skipped => at += end + 1,
            _ => break,
        }
    }
    at
}

/// Checks one file's times: one form, sorted. Remembers the previous row.
struct TimeCheck {
    first: Option<(TimeForm, u64)>,
    previous: Option<(CsvTime, String, u64)>,
}

impl TimeCheck {
    fn new() -> Self {
        Self {
            first: None,
            previous: None,
        }
    }

    fn check(&mut self, line: u64, text: &str) -> Result<CsvTime, CsvError> {
        let time = CsvTime::parse(text).ok_or_else(|| CsvError::Time {
            line,
            text: text.to_string(),
        })?;
        match self.first {
            None => self.first = Some((time.form(), line)),
            Some((form, first_line)) if form != time.form() => {
                return Err(CsvError::MixedTimes {
                    line,
                    text: text.to_string(),
                    found: time.form(),
                    expected: form,
                    first_line,
                });
            }
            Some(_) => {}
        }
        if let Some((previous, previous_text, previous_line)) = &self.previous {
            let earlier = match (time, previous) {
                (CsvTime::At(a), CsvTime::At(b)) => a < *b,
                (CsvTime::Offset(a), CsvTime::Offset(b)) => a < *b,
                _ => false,
            };
            if earlier {
                return Err(CsvError::Unsorted {
                    line,
                    time: text.to_string(),
                    previous: previous_text.clone(),
                    previous_line: *previous_line,
                });
            }
        }
        self.previous = Some((time, text.to_string(), line));
        Ok(time)
    }
}

/// Parses a metric history for a flag without guardrails. `metrics` are the flag's metric
/// names; any other name is an error. Offsets count from `start`; without one they count
/// from the Unix epoch (and the caller shows elapsed times only).
pub fn parse_history(
    text: &str,
    metrics: &[&str],
    start: Option<Timestamp>,
) -> Result<History, CsvError> {
    parse_guarded_history(text, metrics, &[], start)
}

/// Parses a history of metrics and guardrails: `metrics` and `guardrails` are the flag's
/// names, and any other name is an error.
pub fn parse_guarded_history(
    text: &str,
    metrics: &[&str],
    guardrails: &[&str],
    start: Option<Timestamp>,
) -> Result<History, CsvError> {
    let origin = start.unwrap_or(Timestamp::UNIX_EPOCH);
    let mut times = TimeCheck::new();
    let mut last_line: BTreeMap<&str, (CsvTime, u64)> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut guarded = GuardrailRows::default();
    let mut offsets = false;
    for row in rows(text, HISTORY_HEADERS)? {
        let line = row.line;
        let fields = |i: usize| row.fields.get(i).map_or("", String::as_str);
        let (time_text, name, value) = (fields(0), fields(1), fields(2));
        let counts = CountFields {
            cohort: fields(3),
            bad: fields(4),
            total: fields(5),
        };
        let time = times.check(line, time_text)?;
        offsets = time.form() == TimeForm::Seconds;
        if let Some(&metric) = metrics.iter().find(|m| **m == name) {
            if !counts.is_empty() {
                return Err(CsvError::MetricRow {
                    line,
                    metric: metric.to_string(),
                    message: "cohort, bad and total are for guardrails; leave them empty"
                        .to_string(),
                });
            }
            if let Some((previous, first_line)) = last_line.get(metric)
                && *previous == time
            {
                return Err(CsvError::Duplicate {
                    line,
                    metric: metric.to_string(),
                    time: time_text.to_string(),
                    first_line: *first_line,
                });
            }
            last_line.insert(metric, (time, line));
            let outcome = parse_value(line, value)?;
            samples.push((metric.to_string(), time.resolve(origin), outcome));
        } else if let Some(&guardrail) = guardrails.iter().find(|g| **g == name) {
            let sample = guarded.check(line, guardrail, (time, time_text), value, &counts)?;
            guarded
                .samples
                .push((guardrail.to_string(), time.resolve(origin), sample));
        } else {
            return Err(unknown_name(line, name, metrics, guardrails));
        }
    }
    guarded.check_sides()?;
    let mut history = History::from_samples(samples).with_guardrail_samples(guarded.samples);
    history.offsets = offsets;
    Ok(history)
}

fn unknown_name(line: u64, name: &str, metrics: &[&str], guardrails: &[&str]) -> CsvError {
    let listed = match (metrics.is_empty(), guardrails.is_empty()) {
        (true, true) => "none (a time-only ramp reads no metrics)".to_string(),
        (true, false) => "none".to_string(),
        (false, _) => metrics.join(", "),
    };
    let (kind, known) = if guardrails.is_empty() {
        (
            "metric",
            format!("the flag's spec.rollout.analysis.metrics are {listed}"),
        )
    } else {
        (
            "metric or guardrail",
            format!(
                "the flag's spec.rollout.analysis.metrics are {listed}, and its guardrails are {}",
                guardrails.join(", ")
            ),
        )
    };
    CsvError::UnknownMetric {
        line,
        kind,
        name: name.to_string(),
        known,
    }
}

/// The guardrail columns of a row.
struct CountFields<'a> {
    cohort: &'a str,
    bad: &'a str,
    total: &'a str,
}

impl CountFields<'_> {
    fn is_empty(&self) -> bool {
        self.cohort.is_empty() && self.bad.is_empty() && self.total.is_empty()
    }
}

/// How a guardrail's rows name cohorts: `treatment` and `control`, or the labels
/// Prometheus has (`off`, and `on` or variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CohortNames {
    Sides,
    Labels,
}

impl CohortNames {
    fn of(cohort: &str) -> Self {
        if cohort == TREATMENT || cohort == CONTROL {
            Self::Sides
        } else {
            Self::Labels
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Sides => "treatment and control",
            Self::Labels => "the flag's cohort labels (off, and on or the variants)",
        }
    }
}

/// What the checks of a history's guardrail rows remember.
#[derive(Default)]
struct GuardrailRows {
    samples: Vec<(String, Timestamp, GuardrailSample)>,
    /// Per guardrail: how its cohorts are named, and the line that set it.
    names: BTreeMap<String, (CohortNames, u64)>,
    /// Per guardrail and cohort: its latest counts, their line and their time.
    last: BTreeMap<(String, String), (CohortCounts, u64, CsvTime)>,
    /// Per guardrail: the time of its latest row, that row's line, and whether a row at
    /// that time was an error.
    latest: BTreeMap<String, (CsvTime, u64, bool)>,
    /// Per guardrail: the line of its first counts, and whether it has treatment and
    /// control rows.
    sides: BTreeMap<String, (u64, bool, bool)>,
}

impl GuardrailRows {
    /// Checks one row of `guardrail` against the rows before it.
    fn check(
        &mut self,
        line: u64,
        guardrail: &str,
        (time, time_text): (CsvTime, &str),
        value: &str,
        columns: &CountFields<'_>,
    ) -> Result<GuardrailSample, CsvError> {
        let fail = |message: String| CsvError::Guardrail {
            line,
            guardrail: guardrail.to_string(),
            message,
        };
        let sample = if let Some(message) = value.strip_prefix("error:") {
            if !columns.is_empty() {
                return Err(fail(
                    "a row gives either error:<message> in value, or cohort, bad and total"
                        .to_string(),
                ));
            }
            GuardrailSample::Error {
                message: message.trim().to_string(),
            }
        } else if !value.is_empty() {
            return Err(fail(format!(
                "value {value:?} must be empty: a guardrail's row gives cohort, bad and total, or error:<message> in value"
            )));
        } else if columns.cohort.is_empty() || columns.bad.is_empty() || columns.total.is_empty() {
            return Err(fail(format!(
                "a row needs cohort, bad and total (the header `{GUARDED_HEADER}`), or error:<message> in value"
            )));
        } else {
            self.check_counts(line, guardrail, (time, time_text), columns)?
        };
        let error = matches!(sample, GuardrailSample::Error { .. });
        match self.latest.get_mut(guardrail) {
            Some((at, first_line, had_error)) if *at == time => {
                // An error stands for the whole guardrail at its time.
                if error || *had_error {
                    return Err(CsvError::Duplicate {
                        line,
                        metric: guardrail.to_string(),
                        time: time_text.to_string(),
                        first_line: *first_line,
                    });
                }
            }
            _ => {
                self.latest
                    .insert(guardrail.to_string(), (time, line, error));
            }
        }
        Ok(sample)
    }

    fn check_counts(
        &mut self,
        line: u64,
        guardrail: &str,
        (time, time_text): (CsvTime, &str),
        columns: &CountFields<'_>,
    ) -> Result<GuardrailSample, CsvError> {
        let fail = |message: String| CsvError::Guardrail {
            line,
            guardrail: guardrail.to_string(),
            message,
        };
        let cohort = columns.cohort;
        let counts = CohortCounts {
            bad: parse_count(line, "bad", columns.bad)?,
            total: parse_count(line, "total", columns.total)?,
        };
        if counts.bad > counts.total {
            return Err(fail(format!(
                "cohort {cohort} has more bad events ({}) than events ({})",
                counts.bad, counts.total
            )));
        }
        let names = CohortNames::of(cohort);
        let (used, since) = *self
            .names
            .entry(guardrail.to_string())
            .or_insert((names, line));
        if used != names {
            return Err(fail(format!(
                "cohort {cohort:?}: line {since} names the cohorts {}; use one way in a guardrail's rows",
                used.describe()
            )));
        }
        let key = (guardrail.to_string(), cohort.to_string());
        if let Some((previous, previous_line, previous_time)) = self.last.get(&key) {
            if *previous_time == time {
                return Err(CsvError::Duplicate {
                    line,
                    metric: format!("{guardrail} {cohort}"),
                    time: time_text.to_string(),
                    first_line: *previous_line,
                });
            }
            if counts.total < previous.total || counts.bad < previous.bad {
                return Err(fail(format!(
                    "cohort {cohort} went down to {} bad of {} from {} bad of {} on line {previous_line}; the counts are cumulative since the start of the history",
                    counts.bad, counts.total, previous.bad, previous.total
                )));
            }
            let (bad, total) = (counts.bad - previous.bad, counts.total - previous.total);
            if bad > total {
                return Err(fail(format!(
                    "cohort {cohort} gained {bad} bad events but only {total} events since line {previous_line}"
                )));
            }
        }
        self.last.insert(key, (counts, line, time));
        let sides = self
            .sides
            .entry(guardrail.to_string())
            .or_insert((line, false, false));
        if is_control(cohort) {
            sides.2 = true;
        } else {
            sides.1 = true;
        }
        Ok(GuardrailSample::Counts {
            cohort: cohort.to_string(),
            counts,
        })
    }

    /// Every guardrail with counts has both sides.
    fn check_sides(&self) -> Result<(), CsvError> {
        for (guardrail, (line, treatment, control)) in &self.sides {
            let missing = match (treatment, control) {
                (true, true) => continue,
                (false, _) => "the treatment's",
                (_, false) => "the control's",
            };
            return Err(CsvError::Guardrail {
                line: *line,
                guardrail: guardrail.clone(),
                message: format!(
                    "the file has no rows with {missing} counts; add them (0,0 while it has no events)"
                ),
            });
        }
        Ok(())
    }
}

/// A count of events: a number, 0 or more, rounded to a whole one (as the operator rounds
/// what `increase()` extrapolates).
fn parse_count(line: u64, field: &'static str, text: &str) -> Result<u64, CsvError> {
    let error = || CsvError::Count {
        line,
        field,
        text: text.to_string(),
    };
    let value: f64 = text.parse().map_err(|_| error())?;
    // Up to 2^64, the first float that does not fit (NaN is in no range).
    if !(0.0..18_446_744_073_709_551_616.0).contains(&value) {
        return Err(error());
    }
    // `as` saturates, and the value is in range.
    Ok(value.round() as u64)
}

fn parse_value(line: u64, text: &str) -> Result<MetricOutcome, CsvError> {
    if text.is_empty() {
        return Ok(MetricOutcome::NoData {
            reason: EMPTY_VALUE.to_string(),
        });
    }
    if let Some(message) = text.strip_prefix("error:") {
        return Ok(MetricOutcome::Error {
            message: message.trim().to_string(),
        });
    }
    let value: f64 = text.parse().map_err(|_| CsvError::Value {
        line,
        text: text.to_string(),
    })?;
    Ok(if value.is_finite() {
        MetricOutcome::Value { value }
    } else {
        MetricOutcome::NoData {
            reason: format!("{value} in the history"),
        }
    })
}

/// Parses a request schedule; offsets count from `start`.
pub fn parse_requests(text: &str, start: Timestamp) -> Result<Vec<ScheduledRequest>, CsvError> {
    let mut times = TimeCheck::new();
    let mut requests = Vec::new();
    for row in rows(text, REQUESTS_HEADERS)? {
        let time = times.check(row.line, &row.fields[0])?;
        let verb = Verb::parse(&row.fields[1]).ok_or_else(|| CsvError::Verb {
            line: row.line,
            text: row.fields[1].clone(),
            verbs: Verb::ALL.map(Verb::as_str).join(", "),
        })?;
        requests.push(ScheduledRequest {
            time: time.resolve(start),
            verb,
            line: row.line,
        });
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: [&str; 2] = ["error-ratio", "p99"];

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_values_no_data_and_errors() {
        let text = "# a comment\ntime,metric,value\n\
            2025-03-11T09:00:00Z,error-ratio,0.003\n\
            2025-03-11T09:00:00Z,p99,\n\
            2025-03-11T09:01:00Z,error-ratio,\"error:timeout, retrying\"\n\
            2025-03-11T09:02:00Z,p99,NaN\n";
        let history = parse_history(text, &METRICS, None).unwrap();
        assert!(!history.uses_offsets());
        assert_eq!(history.len(), 4);
        assert_eq!(history.first_time(), Some(ts("2025-03-11T09:00:00Z")));
        assert_eq!(history.last_time(), Some(ts("2025-03-11T09:02:00Z")));
        assert_eq!(
            history.outcome_at("error-ratio", ts("2025-03-11T09:00:59Z")),
            MetricOutcome::Value { value: 0.003 }
        );
        assert_eq!(
            history.outcome_at("error-ratio", ts("2025-03-11T09:05:00Z")),
            MetricOutcome::Error {
                message: "timeout, retrying".into()
            }
        );
        assert!(matches!(
            history.outcome_at("p99", ts("2025-03-11T09:03:00Z")),
            MetricOutcome::NoData { .. }
        ));
        assert_eq!(
            history.outcome_at("error-ratio", ts("2025-03-11T08:59:59Z")),
            MetricOutcome::NoData {
                reason: BEFORE_FIRST_SAMPLE.into()
            }
        );
        assert_eq!(
            history.outcome_at("other", ts("2025-03-11T09:00:00Z")),
            MetricOutcome::NoData {
                reason: NOT_IN_HISTORY.into()
            }
        );
    }

    #[test]
    fn offsets_count_from_the_start() {
        let text = "time,metric,value\n0,p99,0.2\n90.5,p99,0.3\n";
        let start = ts("2025-03-11T09:00:00Z");
        let history = parse_history(text, &METRICS, Some(start)).unwrap();
        assert!(history.uses_offsets());
        assert_eq!(history.first_time(), Some(start));
        assert_eq!(history.last_time(), Some(ts("2025-03-11T09:01:30.5Z")));
        let unanchored = parse_history(text, &METRICS, None).unwrap();
        assert_eq!(unanchored.first_time(), Some(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "time,metric,value\n2025-03-11T09:00:00Z,p99,1\nyesterday,p99,1\n",
                3,
                "bad time \"yesterday\"",
            ),
            (
                "time,metric,value\n2025-03-11T09:00:00Z,p99,1\n2025-03-11T09:01:00Z,p95,1\n",
                3,
                "unknown metric \"p95\": the flag's spec.rollout.analysis.metrics are error-ratio, p99",
            ),
            (
                "time,metric,value\n2025-03-11T09:05:00Z,p99,1\n\n2025-03-11T09:01:00Z,p99,1\n",
                4,
                "rows must be sorted by time: 2025-03-11T09:01:00Z comes before 2025-03-11T09:05:00Z on line 2",
            ),
            (
                "time,metric,value\n0,p99,1\n2025-03-11T09:01:00Z,p99,1\n",
                3,
                "use one form in a file",
            ),
            (
                "time,metric,value\n0,p99,1\n0,p99,2\n",
                3,
                "a second p99 sample at 0 (the first is on line 2)",
            ),
            ("time,metric,value\n0,p99,fast\n", 2, "bad value \"fast\""),
            (
                "time,metric,value\n# a\n0,p99,1\n\n# b\n\r\n60,p99,x\n",
                7,
                "bad value \"x\"",
            ),
            ("time,metric,value\n0,p99\n", 2, "expected 3 columns"),
            (
                "# header next\ntime,metric\n",
                2,
                "expected the header `time,metric,value`",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse_history(text, &METRICS, None).unwrap_err();
            assert_eq!(error.line(), Some(line), "{text}: {error}");
            let shown = error.to_string();
            assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown}");
        }
        assert!(matches!(
            parse_history("time,metric,value\n", &METRICS, None),
            Err(CsvError::Empty { .. })
        ));
    }

    #[test]
    fn round_trips_through_csv() {
        let start = ts("2025-03-11T09:00:00Z");
        let history = History::from_samples([
            (
                "p99".to_string(),
                start,
                MetricOutcome::Value { value: 0.1 + 0.2 },
            ),
            (
                "error-ratio".to_string(),
                start,
                MetricOutcome::Error {
                    message: "a \"quoted\", message".into(),
                },
            ),
            (
                "p99".to_string(),
                ts("2025-03-11T09:00:30.25Z"),
                MetricOutcome::NoData {
                    reason: EMPTY_VALUE.into(),
                },
            ),
        ]);
        let text = history.to_csv();
        assert_eq!(parse_history(&text, &METRICS, None).unwrap(), history);
    }

    #[test]
    fn writes_quotes_only_where_a_reader_needs_them() {
        let start = ts("2025-03-11T09:00:00Z");
        let history = History::from_samples([
            (
                "p99".to_string(),
                start,
                MetricOutcome::Value { value: 0.25 },
            ),
            (
                "error-ratio".to_string(),
                start,
                MetricOutcome::Error {
                    message: "a \"quoted\", message".into(),
                },
            ),
            (
                "p99".to_string(),
                ts("2025-03-11T09:01:00Z"),
                MetricOutcome::Error {
                    message: "#2".into(),
                },
            ),
            (
                "p99".to_string(),
                ts("2025-03-11T09:02:00Z"),
                MetricOutcome::NoData {
                    reason: EMPTY_VALUE.into(),
                },
            ),
        ]);
        assert_eq!(
            history.to_csv(),
            "time,metric,value\n\
             2025-03-11T09:00:00Z,error-ratio,\"error:a \"\"quoted\"\", message\"\n\
             2025-03-11T09:00:00Z,p99,0.25\n\
             2025-03-11T09:01:00Z,p99,\"error:#2\"\n\
             2025-03-11T09:02:00Z,p99,\n"
        );
    }

    const GUARDRAILS: [&str; 1] = ["errors"];

    fn counts(bad_t: u64, total_t: u64, bad_c: u64, total_c: u64) -> GuardrailOutcome {
        GuardrailOutcome::Counts {
            counts: GuardrailCounts {
                treatment: CohortCounts::new(bad_t, total_t),
                control: CohortCounts::new(bad_c, total_c),
            },
        }
    }

    #[test]
    fn guardrail_counts_are_rebased_to_the_ramp_start() {
        let text = "time,metric,value,cohort,bad,total\n\
            0,error-ratio,0.004\n\
            0,errors,,treatment,0,0\n\
            0,errors,,control,4,1000\n\
            60,errors,,treatment,1,10\n\
            60,errors,,control,9,2000\n\
            120,errors,\"error:query timed out, after 10s\"\n\
            180,errors,,treatment,3,30\n\
            240,errors,,control,15,3000\n";
        let start = ts("2025-03-11T09:00:00Z");
        let history = parse_guarded_history(text, &METRICS, &GUARDRAILS, Some(start)).unwrap();
        let at = |s: i64| start.saturating_add(SignedDuration::from_secs(s)).unwrap();
        assert_eq!(history.len(), 8);
        assert_eq!(history.guardrails().collect::<Vec<_>>(), ["errors"]);
        assert_eq!(history.metrics().collect::<Vec<_>>(), ["error-ratio"]);
        assert_eq!(history.last_time(), Some(at(240)));
        // Since the start: the counts at the start are taken off.
        assert_eq!(
            history.guardrail_at("errors", at(0), at(0)),
            counts(0, 0, 0, 0)
        );
        assert_eq!(
            history.guardrail_at("errors", at(0), at(90)),
            counts(1, 10, 5, 1000)
        );
        // A ramp that started between rows counts from the rows before it.
        assert_eq!(
            history.guardrail_at("errors", at(30), at(90)),
            counts(1, 10, 5, 1000)
        );
        assert_eq!(
            history.guardrail_at("errors", at(60), at(90)),
            counts(0, 0, 0, 0)
        );
        // An error holds until the guardrail's next row, whichever cohort it gives.
        assert_eq!(
            history.guardrail_at("errors", at(0), at(150)),
            GuardrailOutcome::Error {
                message: "query timed out, after 10s".into()
            }
        );
        // The control holds its last row.
        assert_eq!(
            history.guardrail_at("errors", at(0), at(180)),
            counts(3, 30, 5, 1000)
        );
        assert_eq!(
            history.guardrail_at("errors", at(60), at(300)),
            counts(2, 20, 6, 1000)
        );
        assert_eq!(
            history.guardrail_at("errors", at(-60), at(-1)),
            GuardrailOutcome::Error {
                message: GUARDRAIL_BEFORE_FIRST_ROW.into()
            }
        );
        assert_eq!(
            history.guardrail_at("latency", at(0), at(60)),
            GuardrailOutcome::Error {
                message: GUARDRAIL_NOT_IN_HISTORY.into()
            }
        );
    }

    #[test]
    fn cohort_labels_off_is_the_control_and_the_rest_the_treatment() {
        let text = "time,metric,value,cohort,bad,total\n\
            0,errors,,off,10,1000\n\
            0,errors,,on,1,50\n\
            0,errors,,blue,2,40.4\n";
        let history = parse_guarded_history(text, &METRICS, &GUARDRAILS, None).unwrap();
        let epoch = Timestamp::UNIX_EPOCH;
        assert_eq!(
            history.guardrail_at("errors", epoch - SignedDuration::from_secs(1), epoch),
            counts(3, 90, 10, 1000)
        );
    }

    #[test]
    fn old_histories_parse_the_same_for_a_flag_with_guardrails() {
        let text = "time,metric,value\n0,p99,0.2\n60,error-ratio,0.1\n";
        let with = parse_guarded_history(text, &METRICS, &GUARDRAILS, None).unwrap();
        assert_eq!(with, parse_history(text, &METRICS, None).unwrap());
        assert_eq!(
            with.to_csv(),
            parse_history(text, &METRICS, None).unwrap().to_csv()
        );
    }

    #[test]
    fn guardrail_errors_name_the_line() {
        let header = "time,metric,value,cohort,bad,total\n";
        let both = "0,errors,,treatment,0,0\n0,errors,,control,0,0\n";
        let cases = [
            (
                format!("{header}{both}60,error,,treatment,1,10\n"),
                4,
                "unknown metric or guardrail \"error\": the flag's spec.rollout.analysis.metrics are error-ratio, p99, and its guardrails are errors",
            ),
            (
                format!("{header}{both}60,p99,0.2,treatment,1,10\n"),
                4,
                "p99 is a metric: cohort, bad and total are for guardrails; leave them empty",
            ),
            (
                format!("{header}{both}60,errors,0.2,treatment,1,10\n"),
                4,
                "guardrail errors: value \"0.2\" must be empty",
            ),
            (
                format!("{header}{both}60,errors,,treatment,1\n"),
                4,
                "expected 3 or 6 columns (time,metric,value,cohort,bad,total), found 5",
            ),
            (
                format!("{header}{both}60,errors,,treatment,,10\n"),
                4,
                "guardrail errors: a row needs cohort, bad and total (the header `time,metric,value,cohort,bad,total`), or error:<message> in value",
            ),
            (
                "time,metric,value\n0,errors,\n".to_string(),
                2,
                "guardrail errors: a row needs cohort, bad and total",
            ),
            (
                format!("{header}{both}60,errors,error:down,treatment,1,10\n"),
                4,
                "a row gives either error:<message> in value, or cohort, bad and total",
            ),
            (
                format!("{header}{both}60,errors,,treatment,-1,10\n"),
                4,
                "bad bad count \"-1\": expected a number of events, 0 or more",
            ),
            (
                format!("{header}{both}60,errors,,treatment,1,many\n"),
                4,
                "bad total count \"many\"",
            ),
            (
                format!("{header}{both}60,errors,,treatment,NaN,inf\n"),
                4,
                "bad bad count \"NaN\"",
            ),
            (
                format!("{header}{both}60,errors,,treatment,11,10\n"),
                4,
                "guardrail errors: cohort treatment has more bad events (11) than events (10)",
            ),
            (
                format!("{header}{both}60,errors,,control,5,100\n120,errors,,control,5,90\n"),
                5,
                "cohort control went down to 5 bad of 90 from 5 bad of 100 on line 4",
            ),
            (
                format!("{header}{both}60,errors,,control,5,100\n120,errors,,control,9,102\n"),
                5,
                "cohort control gained 4 bad events but only 2 events since line 4",
            ),
            (
                format!("{header}{both}60,errors,,off,1,10\n"),
                4,
                "cohort \"off\": line 2 names the cohorts treatment and control; use one way",
            ),
            (
                format!("{header}0,errors,,on,0,0\n0,errors,,control,0,0\n"),
                3,
                "cohort \"control\": line 2 names the cohorts the flag's cohort labels",
            ),
            (
                format!("{header}{both}0,errors,,control,0,0\n"),
                4,
                "a second errors control sample at 0 (the first is on line 3)",
            ),
            (
                format!("{header}{both}0,errors,error:down\n"),
                4,
                "a second errors sample at 0 (the first is on line 2)",
            ),
            (
                format!("{header}0,errors,error:down\n0,errors,,treatment,0,0\n"),
                3,
                "a second errors sample at 0 (the first is on line 2)",
            ),
            (
                format!("{header}0,errors,,on,0,0\n60,errors,,blue,1,10\n"),
                2,
                "guardrail errors: the file has no rows with the control's counts; add them (0,0 while it has no events)",
            ),
            (
                "time,metric\n".to_string(),
                1,
                "expected the header `time,metric,value` or `time,metric,value,cohort,bad,total`, found `time,metric`",
            ),
        ];
        for (text, line, message) in cases {
            let error = parse_guarded_history(&text, &METRICS, &GUARDRAILS, None).unwrap_err();
            assert_eq!(error.line(), Some(line), "{text}: {error}");
            let shown = error.to_string();
            assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
            assert!(shown.contains(message), "{shown}\n  wanted: {message}");
        }
        // A flag without guardrails knows no guardrail rows.
        let error = parse_history(&format!("{header}{both}"), &METRICS, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: unknown metric \"errors\": the flag's spec.rollout.analysis.metrics are error-ratio, p99"
        );
    }

    #[test]
    fn guardrails_round_trip_through_csv() {
        let start = ts("2025-03-11T09:00:00Z");
        let later = ts("2025-03-11T09:01:00Z");
        let counts = |cohort: &str, bad, total| GuardrailSample::Counts {
            cohort: cohort.to_string(),
            counts: CohortCounts::new(bad, total),
        };
        let history = History::from_samples([(
            "p99".to_string(),
            start,
            MetricOutcome::Value { value: 0.25 },
        )])
        .with_guardrail_samples([
            ("errors".to_string(), later, counts("on", 2, 20)),
            ("errors".to_string(), start, counts("on", 0, 0)),
            ("errors".to_string(), start, counts("off", 3, 300)),
            (
                "errors".to_string(),
                ts("2025-03-11T09:02:00Z"),
                GuardrailSample::Error {
                    message: "a, b".into(),
                },
            ),
        ]);
        let text = history.to_csv();
        assert_eq!(
            text,
            "time,metric,value,cohort,bad,total\n\
             2025-03-11T09:00:00Z,p99,0.25,,,\n\
             2025-03-11T09:00:00Z,errors,,off,3,300\n\
             2025-03-11T09:00:00Z,errors,,on,0,0\n\
             2025-03-11T09:01:00Z,errors,,on,2,20\n\
             2025-03-11T09:02:00Z,errors,\"error:a, b\",,,\n"
        );
        assert_eq!(
            parse_guarded_history(&text, &METRICS, &GUARDRAILS, None).unwrap(),
            history
        );
    }

    #[test]
    fn requests_parse_verbs_and_offsets() {
        let start = ts("2025-03-11T09:00:00Z");
        let requests = parse_requests("time,verb\n600,promote\n900,pause\n", start).unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].time, ts("2025-03-11T09:10:00Z"));
        assert_eq!((requests[1].verb, requests[1].line), (Verb::Pause, 3));
        let error = parse_requests("time,verb\n600,promot\n", start).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: unknown verb \"promot\": expected one of pause, resume, promote, promote-full, abort, retry, kill, unkill"
        );
    }
}
