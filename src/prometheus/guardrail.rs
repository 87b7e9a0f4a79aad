//! A guardrail's counts: its `bad` and `total` queries, each one series per cohort, summed
//! into the treatment (every cohort but `off`) and the control (`off`).

use futures::future;
use jiff::Timestamp;

use super::client::PrometheusClient;
use rollgate_core::crd::Guardrail;
use rollgate_core::guardrail::{CohortCounts, GuardrailCounts};
use rollgate_core::observation::{GuardrailObservation, GuardrailOutcome};
use rollgate_core::template::{TemplateContext, render_checked};

/// The label that names a series' cohort: the flag's answer, `on`, `off` or a variant.
pub const COHORT_LABEL: &str = "cohort";
/// The cohort of users who have the flag off: the control.
pub const CONTROL_COHORT: &str = "off";

/// The `{{ since_ramp_start }}` of guardrail queries: whole seconds since the ramp started
/// (at least one).
pub fn ramp_window(since_start: std::time::Duration) -> String {
    format!("{}s", since_start.as_secs().max(1))
}

/// Queries both of the guardrail's counters and sums them per side. Any failure makes the
/// whole outcome an error naming the query, so the look is skipped rather than judged on
/// partial counts.
pub async fn guardrail_counts(
    client: &PrometheusClient,
    guardrail: &Guardrail,
    context: &TemplateContext,
    time: Option<Timestamp>,
) -> GuardrailObservation {
    let (bad, total) = future::join(
        side_counts(client, "bad", &guardrail.bad, context, time),
        side_counts(client, "total", &guardrail.total, context, time),
    )
    .await;
    let outcome = match (bad, total) {
        (Ok(bad), Ok(total)) => GuardrailOutcome::Counts {
            counts: GuardrailCounts {
                treatment: CohortCounts::new(bad.0, total.0),
                control: CohortCounts::new(bad.1, total.1),
            },
        },
        (Err(message), _) | (_, Err(message)) => GuardrailOutcome::Error { message },
    };
    GuardrailObservation {
        name: guardrail.name.clone(),
        outcome,
    }
}

/// (treatment, control) of one query.
async fn side_counts(
    client: &PrometheusClient,
    field: &str,
    query: &str,
    context: &TemplateContext,
    time: Option<Timestamp>,
) -> Result<(u64, u64), String> {
    let promql = render_checked(query, context).map_err(|e| format!("{field}: {e}"))?;
    let series = client
        .query_by_label(&promql, time, COHORT_LABEL)
        .await
        .map_err(|error| {
            tracing::debug!(field, category = error.category(), %error, "guardrail query failed");
            format!("{field}: {error}")
        })?;
    Ok(split(&series))
}

/// Sums the series into (treatment, control); counts are rounded to whole numbers
/// (`increase()` extrapolates) and never negative.
pub fn split(series: &[(String, f64)]) -> (u64, u64) {
    let mut treatment = 0.0;
    let mut control = 0.0;
    for (cohort, value) in series {
        if cohort == CONTROL_COHORT {
            control += value.max(0.0);
        } else {
            treatment += value.max(0.0);
        }
    }
    // `as` saturates; counts beyond u64 do not occur.
    (treatment.round() as u64, control.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cohort_but_off_is_the_treatment() {
        let series = [
            ("on".to_string(), 10.4),
            ("off".to_string(), 990.0),
            ("blue".to_string(), 5.2),
            ("green".to_string(), -1.0),
        ];
        assert_eq!(split(&series), (16, 990));
        assert_eq!(split(&[]), (0, 0));
    }

    #[test]
    fn the_window_is_whole_seconds_since_the_ramp_started() {
        assert_eq!(
            ramp_window(std::time::Duration::from_millis(3_725_900)),
            "3725s"
        );
        assert_eq!(ramp_window(std::time::Duration::ZERO), "1s");
    }
}
