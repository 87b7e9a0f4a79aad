//! Reading the answer of `/api/v1/query` into one number, or the reason there is none.

use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::error::PrometheusError;
use rollgate_core::observation::MetricOutcome;

/// What an instant query gave: one finite number, or no data and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    Value(f64),
    NoData(NoData),
}

/// Why a successful query gave no number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// An empty vector: no series matched.
    Empty,
    /// NaN, usually 0/0: a ratio over a window with no traffic.
    NaN,
    /// +Inf: a division by zero.
    PositiveInfinity,
    /// -Inf: a division by zero.
    NegativeInfinity,
}

impl fmt::Display for NoData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "query returned an empty vector: no series matched",
            Self::NaN => "query returned NaN (for a ratio usually 0/0: no traffic in the window)",
            Self::PositiveInfinity => "query returned +Inf (a division by zero)",
            Self::NegativeInfinity => "query returned -Inf (a division by zero)",
        })
    }
}

impl From<Sample> for MetricOutcome {
    fn from(sample: Sample) -> Self {
        match sample {
            Sample::Value(value) => Self::Value { value },
            Sample::NoData(reason) => Self::NoData {
                reason: reason.to_string(),
            },
        }
    }
}

impl Sample {
    fn from_value(value: f64) -> Self {
        if value.is_nan() {
            Self::NoData(NoData::NaN)
        } else if value == f64::INFINITY {
            Self::NoData(NoData::PositiveInfinity)
        } else if value == f64::NEG_INFINITY {
            Self::NoData(NoData::NegativeInfinity)
        } else {
            Self::Value(value)
        }
    }
}

/// The envelope of every Prometheus API answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub status: String,
    #[serde(default)]
    pub data: Option<QueryData>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(crate) enum QueryData {
    Vector(Vec<VectorSample>),
    Scalar(SamplePair),
    Matrix(Vec<IgnoredAny>),
    String(IgnoredAny),
}

#[derive(Deserialize)]
pub(crate) struct VectorSample {
    /// The series' labels.
    #[serde(default)]
    pub metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub value: Option<SamplePair>,
    #[serde(default)]
    pub histogram: Option<IgnoredAny>,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Deserialize)]
pub(crate) struct SamplePair(#[allow(dead_code)] pub f64, pub String);

/// What an answer body is, before the HTTP status is taken into account.
pub(crate) enum Parsed {
    Success {
        data: Option<QueryData>,
        warnings: Vec<String>,
    },
    ApiError {
        error_type: String,
        message: String,
    },
    NotPrometheus(String),
}

pub(crate) fn parse_body(body: &[u8]) -> Parsed {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) if envelope.status == "success" => Parsed::Success {
            data: envelope.data,
            warnings: envelope.warnings,
        },
        Ok(envelope) if envelope.status == "error" => Parsed::ApiError {
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope.error.unwrap_or_default(),
        },
        Ok(envelope) => Parsed::NotPrometheus(format!("unknown status {:?}", envelope.status)),
        Err(error) => Parsed::NotPrometheus(error.to_string()),
    }
}

/// Turns the `data` of a successful answer into a [`Sample`].
pub(crate) fn sample_of(
    data: Option<QueryData>,
    address: &str,
    query: &str,
) -> Result<Sample, PrometheusError> {
    let unsupported = |found: String, hint: &'static str| PrometheusError::UnsupportedResult {
        address: address.to_string(),
        found,
        hint,
        query: query.to_string(),
    };
    let pair = match data {
        None => {
            return Err(PrometheusError::Decode {
                address: address.to_string(),
                reason: "status is success but there is no data".into(),
            });
        }
        Some(QueryData::Scalar(pair)) => pair,
        Some(QueryData::Vector(mut samples)) => match samples.len() {
            0 => return Ok(Sample::NoData(NoData::Empty)),
            1 => {
                let sample = samples.remove(0);
                match (sample.value, sample.histogram) {
                    (Some(pair), _) => pair,
                    (None, Some(_)) => {
                        return Err(unsupported(
                            "a native histogram".into(),
                            "reduce it with histogram_quantile(), histogram_count() or histogram_sum()",
                        ));
                    }
                    (None, None) => {
                        return Err(PrometheusError::Decode {
                            address: address.to_string(),
                            reason: "a vector sample has neither value nor histogram".into(),
                        });
                    }
                }
            }
            count => {
                return Err(PrometheusError::TooManySeries {
                    address: address.to_string(),
                    count,
                    query: query.to_string(),
                });
            }
        },
        Some(QueryData::Matrix(series)) => {
            return Err(unsupported(
                format!("a range vector of {} series", series.len()),
                "wrap the range selector in a function such as rate() or avg_over_time()",
            ));
        }
        Some(QueryData::String(_)) => {
            return Err(unsupported("a string".into(), "query a number instead"));
        }
    };
    parse_value(&pair.1)
        .map(Sample::from_value)
        .ok_or_else(|| PrometheusError::Decode {
            address: address.to_string(),
            reason: format!("sample value {:?} is not a number", pair.1),
        })
}

/// Turns the `data` of a successful answer into one value per value of `label`, for queries
/// aggregated `by (label)`. An empty vector is no series, not an error; a series without the
/// label, a scalar, a range vector and a value that is not a finite number are errors.
pub(crate) fn values_by_label(
    data: Option<QueryData>,
    address: &str,
    query: &str,
    label: &'static str,
) -> Result<Vec<(String, f64)>, PrometheusError> {
    let unsupported = |found: String, hint: &'static str| PrometheusError::UnsupportedResult {
        address: address.to_string(),
        found,
        hint,
        query: query.to_string(),
    };
    let samples = match data {
        None => {
            return Err(PrometheusError::Decode {
                address: address.to_string(),
                reason: "status is success but there is no data".into(),
            });
        }
        Some(QueryData::Vector(samples)) => samples,
        Some(QueryData::Scalar(_)) => {
            return Err(unsupported(
                "a scalar".into(),
                "return one series per cohort, e.g. sum by (cohort) (…)",
            ));
        }
        Some(QueryData::Matrix(series)) => {
            return Err(unsupported(
                format!("a range vector of {} series", series.len()),
                "wrap the range selector in a function such as increase()",
            ));
        }
        Some(QueryData::String(_)) => {
            return Err(unsupported("a string".into(), "query a number instead"));
        }
    };
    samples
        .into_iter()
        .map(|mut sample| {
            let key = sample
                .metric
                .remove(label)
                .ok_or_else(|| PrometheusError::MissingLabel {
                    address: address.to_string(),
                    label,
                    query: query.to_string(),
                })?;
            let Some(pair) = sample.value else {
                return Err(unsupported(
                    "a native histogram".into(),
                    "reduce it with histogram_count() or histogram_sum()",
                ));
            };
            match parse_value(&pair.1) {
                Some(value) if value.is_finite() => Ok((key, value)),
                _ => Err(PrometheusError::Decode {
                    address: address.to_string(),
                    reason: format!(
                        "sample value {:?} of {label}={key:?} is not a finite number",
                        pair.1
                    ),
                }),
            }
        })
        .collect()
}

/// Prometheus writes sample values as Go's `strconv.FormatFloat(v, 'f', -1, 64)`, with
/// `NaN`, `+Inf` and `-Inf` for the special values.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust would also read `inf` and `nan`; Prometheus never sends them, so refuse them.
        _ if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "http://prometheus:9090";

    fn sample(body: &str) -> Result<Sample, PrometheusError> {
        match parse_body(body.as_bytes()) {
            Parsed::Success { data, .. } => sample_of(data, ADDRESS, "q"),
            Parsed::ApiError {
                error_type,
                message,
            } => panic!("api error {error_type}: {message}"),
            Parsed::NotPrometheus(reason) => panic!("not prometheus: {reason}"),
        }
    }

    fn vector(values: &[&str]) -> String {
        let samples: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#"{{"metric":{{"i":"{i}"}},"value":[1700000000.5,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            samples.join(",")
        )
    }

    #[test]
    fn one_sample_or_a_scalar_is_a_value() {
        assert_eq!(sample(&vector(&["0.25"])).unwrap(), Sample::Value(0.25));
        assert_eq!(sample(&vector(&["1e-3"])).unwrap(), Sample::Value(0.001));
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#;
        assert_eq!(sample(scalar).unwrap(), Sample::Value(42.0));
    }

    #[test]
    fn empty_nan_and_infinities_are_no_data_with_the_reason() {
        assert_eq!(sample(&vector(&[])).unwrap(), Sample::NoData(NoData::Empty));
        assert_eq!(
            sample(&vector(&["NaN"])).unwrap(),
            Sample::NoData(NoData::NaN)
        );
        assert_eq!(
            sample(&vector(&["+Inf"])).unwrap(),
            Sample::NoData(NoData::PositiveInfinity)
        );
        assert_eq!(
            sample(&vector(&["-Inf"])).unwrap(),
            Sample::NoData(NoData::NegativeInfinity)
        );
        let outcome = MetricOutcome::from(Sample::NoData(NoData::NaN));
        assert!(matches!(outcome, MetricOutcome::NoData { reason } if reason.contains("NaN")));
    }

    #[test]
    fn several_series_are_an_error_that_says_how_many() {
        let error = sample(&vector(&["1", "2", "3"])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Prometheus at http://prometheus:9090: query returned 3 series, expected 1; aggregate with sum() or similar"
        );
    }

    #[test]
    fn other_result_types_are_errors() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
        assert!(matches!(
            sample(matrix),
            Err(PrometheusError::UnsupportedResult { .. })
        ));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            sample(string),
            Err(PrometheusError::UnsupportedResult { .. })
        ));
        let histogram = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"1"}]}]}}"#;
        assert!(matches!(
            sample(histogram),
            Err(PrometheusError::UnsupportedResult { .. })
        ));
        for bad in ["inf", "nan", "x", ""] {
            assert!(
                matches!(sample(&vector(&[bad])), Err(PrometheusError::Decode { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_by_label_keep_every_series_and_name_a_missing_label() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"cohort":"on"},"value":[1,"12"]},
            {"metric":{"cohort":"off"},"value":[1,"340.5"]}]}}"#;
        let Parsed::Success { data, .. } = parse_body(body.as_bytes()) else {
            panic!("success expected")
        };
        assert_eq!(
            values_by_label(data, ADDRESS, "q", "cohort").unwrap(),
            vec![("on".to_string(), 12.0), ("off".to_string(), 340.5)]
        );
        let Parsed::Success { data, .. } = parse_body(vector(&["1"]).as_bytes()) else {
            panic!("success expected")
        };
        assert_eq!(
            values_by_label(data, ADDRESS, "q", "cohort")
                .unwrap_err()
                .to_string(),
            "Prometheus at http://prometheus:9090: a series has no \"cohort\" label; a guardrail query needs one series per cohort, e.g. sum by (cohort) (…)"
        );
        let Parsed::Success { data, .. } = parse_body(vector(&[]).as_bytes()) else {
            panic!("success expected")
        };
        assert_eq!(
            values_by_label(data, ADDRESS, "q", "cohort").unwrap(),
            vec![]
        );
    }

    #[test]
    fn api_errors_keep_type_and_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
        match parse_body(body.as_bytes()) {
            Parsed::ApiError {
                error_type,
                message,
            } => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(message, "1:5: parse error: unexpected end of input");
            }
            _ => panic!("expected an API error"),
        }
        assert!(matches!(
            parse_body(b"<html>502 Bad Gateway</html>"),
            Parsed::NotPrometheus(_)
        ));
    }
}
