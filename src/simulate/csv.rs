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
//! A request schedule has the header `time,verb`, with the verbs of `rollgate.dev/request`.

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::request::ScheduledRequest;
use super::source::MetricSource;
use rollgate_core::crd::Analysis;
use rollgate_core::engine::Verb;
use rollgate_core::observation::{MetricObservation, MetricOutcome};

/// The reason given for an empty value.
pub const EMPTY_VALUE: &str = "empty value in the history";
/// The reason given before a metric's first sample.
pub const BEFORE_FIRST_SAMPLE: &str = "no sample yet in the history";
/// The reason given for a metric of the flag that the history does not have.
pub const NOT_IN_HISTORY: &str = "the history has no rows for this metric";

/// What is wrong with a CSV file, and on which line (1-based, counting every line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("line {line}: expected the header `{expected}`, found `{found}`")]
    Header {
        line: u64,
        expected: &'static str,
        found: String,
    },
    #[error("line {line}: expected {expected} columns ({header}), found {found}")]
    Columns {
        line: u64,
        expected: usize,
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
    #[error(
        "line {line}: unknown metric {name:?}: the flag's spec.rollout.analysis.metrics are {known}"
    )]
    UnknownMetric {
        line: u64,
        name: String,
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
    #[error("line {line}: unknown verb {text:?}: expected one of {verbs}")]
    Verb {
        line: u64,
        text: String,
        verbs: String,
    },
    #[error("no rows after the header `{header}`")]
    Empty { header: &'static str },
}

impl CsvError {
    /// A short label, as every error of the project has.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Malformed { .. } | Self::Columns { .. } | Self::Header { .. } => "csv_shape",
            Self::Time { .. } | Self::MixedTimes { .. } | Self::Unsorted { .. } => "csv_time",
            Self::UnknownMetric { .. } | Self::Duplicate { .. } => "csv_metric",
            Self::Value { .. } => "csv_value",
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

/// Per metric, the samples of a history in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    series: BTreeMap<String, Vec<(Timestamp, MetricOutcome)>>,
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
            offsets: false,
        }
    }

    /// The earliest sample time.
    pub fn first_time(&self) -> Option<Timestamp> {
        self.series
            .values()
            .filter_map(|s| s.first())
            .map(|(t, _)| *t)
            .min()
    }

    /// The latest sample time: the end of the data.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.series
            .values()
            .filter_map(|s| s.last())
            .map(|(t, _)| *t)
            .max()
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

    /// How many samples the history holds.
    pub fn len(&self) -> usize {
        self.series.values().map(Vec::len).sum()
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
        match samples.partition_point(|(at, _)| *at <= time) {
            0 => MetricOutcome::NoData {
                reason: BEFORE_FIRST_SAMPLE.to_string(),
            },
            after => samples[after - 1].1.clone(),
        }
    }

    /// The history as CSV with RFC 3339 times, sorted by time; parses back to the same
    /// samples (no-data reasons become the empty-value one).
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<(Timestamp, &str, &MetricOutcome)> = self
            .series
            .iter()
            .flat_map(|(metric, samples)| {
                samples
                    .iter()
                    .map(move |(time, outcome)| (*time, metric.as_str(), outcome))
            })
            .collect();
        rows.sort_by_key(|(time, _, _)| *time);
        let bytes = write_history(&rows).expect("writing CSV to memory cannot fail");
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
}

/// The header and `rows` as CSV.
fn write_history(rows: &[(Timestamp, &str, &MetricOutcome)]) -> ::csv::Result<Vec<u8>> {
    // The reader skips lines starting with `#`, so the writer quotes fields holding one.
    let mut writer = ::csv::WriterBuilder::new()
        .comment(Some(b'#'))
        .from_writer(Vec::new());
    writer.write_record(HISTORY_HEADER.split(','))?;
    for (time, metric, outcome) in rows {
        let value = match outcome {
            MetricOutcome::Value { value } => value.to_string(),
            MetricOutcome::NoData { .. } => String::new(),
            MetricOutcome::Error { message } => format!("error:{message}"),
        };
        writer.write_record([time.to_string().as_str(), *metric, value.as_str()])?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

const HISTORY_HEADER: &str = "time,metric,value";
const REQUESTS_HEADER: &str = "time,verb";

/// One data row: its line and fields.
struct Row {
    line: u64,
    fields: Vec<String>,
}

/// Reads the header and the rows, checking the header and the column count.
fn rows(text: &str, header: &'static str) -> Result<Vec<Row>, CsvError> {
    let columns: Vec<&str> = header.split(',').collect();
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut seen_header = false;
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
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(String::is_empty) {
            continue;
        }
        if !seen_header {
            let matches = fields.len() == columns.len()
                && fields
                    .iter()
                    .zip(&columns)
                    .all(|(field, column)| field.eq_ignore_ascii_case(column));
            if !matches {
                return Err(CsvError::Header {
                    line,
                    expected: header,
                    found: fields.join(","),
                });
            }
            seen_header = true;
            continue;
        }
        if fields.len() != columns.len() {
            return Err(CsvError::Columns {
                line,
                expected: columns.len(),
                header,
                found: fields.len(),
            });
        }
        out.push(Row { line, fields });
    }
    if out.is_empty() {
        return Err(CsvError::Empty { header });
    }
    Ok(out)
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

/// Parses a metric history. `metrics` are the flag's metric names; any other name is an
/// error. Offsets count from `start`; without one they count from the Unix epoch (and the
/// caller shows elapsed times only).
pub fn parse_history(
    text: &str,
    metrics: &[&str],
    start: Option<Timestamp>,
) -> Result<History, CsvError> {
    let origin = start.unwrap_or(Timestamp::UNIX_EPOCH);
    let mut times = TimeCheck::new();
    let mut last_line: BTreeMap<&str, (CsvTime, u64)> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut offsets = false;
    for row in rows(text, HISTORY_HEADER)? {
        let (time_text, metric, value) = (&row.fields[0], &row.fields[1], &row.fields[2]);
        let time = times.check(row.line, time_text)?;
        offsets = time.form() == TimeForm::Seconds;
        let Some(&name) = metrics.iter().find(|name| **name == metric.as_str()) else {
            return Err(CsvError::UnknownMetric {
                line: row.line,
                name: metric.clone(),
                known: if metrics.is_empty() {
                    "none (a time-only ramp reads no metrics)".to_string()
                } else {
                    metrics.join(", ")
                },
            });
        };
        if let Some((previous, first_line)) = last_line.get(name)
            && *previous == time
        {
            return Err(CsvError::Duplicate {
                line: row.line,
                metric: name.to_string(),
                time: time_text.clone(),
                first_line: *first_line,
            });
        }
        last_line.insert(name, (time, row.line));
        let outcome = parse_value(row.line, value)?;
        samples.push((name.to_string(), time.resolve(origin), outcome));
    }
    let mut history = History::from_samples(samples);
    history.offsets = offsets;
    Ok(history)
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
    for row in rows(text, REQUESTS_HEADER)? {
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
