//! An experiment's counts: `experiment.metric.exposures` and `.conversions`, queried once per
//! variant, as the cumulative counts the statistics need.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use jiff::Timestamp;

use super::client::PrometheusClient;
use super::response::{NoData, Sample};
use rollgate_core::crd::Experiment;
use rollgate_core::experiment::VariantCounts;
use rollgate_core::observation::ExperimentOutcome;
use rollgate_core::template::{TemplateContext, render_checked};

/// The `{{ interval }}` of the counting queries: the time since the experiment started, in
/// whole seconds (at least one), so `increase(…[{{ interval }}])` covers the experiment.
pub fn experiment_window(since_start: Duration) -> String {
    format!("{}s", since_start.as_secs().max(1))
}

/// A query's value as a count: rounded to the nearest whole number (`increase()`
/// extrapolates), never negative, and 0 for an empty result (no series yet means nothing
/// was counted). NaN and ±Inf are not counts.
pub fn count_from(sample: Sample) -> Result<u64, NoData> {
    match sample {
        // `as` saturates; counts beyond u64 do not occur.
        Sample::Value(value) => Ok(value.max(0.0).round() as u64),
        Sample::NoData(NoData::Empty) => Ok(0),
        Sample::NoData(other) => Err(other),
    }
}

/// Queries exposures and conversions of every variant, at most `concurrency` at once.
/// `context` carries the flag, the namespace and the window as `interval`; its variant is
/// replaced for each query. Any failure makes the whole outcome an error that names the
/// query, so the engine skips the look rather than judge partial counts.
pub async fn experiment_counts(
    client: &PrometheusClient,
    experiment: &Experiment,
    context: &TemplateContext,
    time: Option<Timestamp>,
    concurrency: usize,
) -> ExperimentOutcome {
    let queries: Vec<_> = experiment
        .variants
        .iter()
        .flat_map(|variant| {
            [
                ("exposures", &experiment.metric.exposures),
                ("conversions", &experiment.metric.conversions),
            ]
            .map(|(field, query)| count(client, &variant.name, field, query, context, time))
        })
        .collect();
    let results: Vec<Result<u64, String>> = stream::iter(queries)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut variants = Vec::with_capacity(experiment.variants.len());
    for (variant, pair) in experiment.variants.iter().zip(results.chunks(2)) {
        let (exposures, conversions) = match pair {
            [Ok(exposures), Ok(conversions)] => (*exposures, *conversions),
            [Err(message), _] | [_, Err(message)] => {
                return ExperimentOutcome::Error {
                    message: message.clone(),
                };
            }
            _ => {
                return ExperimentOutcome::Error {
                    message: format!("no counts for variant {:?}", variant.name),
                };
            }
        };
        variants.push(VariantCounts::new(
            variant.name.clone(),
            variant.weight,
            exposures,
            conversions,
        ));
    }
    ExperimentOutcome::Counts { variants }
}

async fn count(
    client: &PrometheusClient,
    variant: &str,
    field: &str,
    query: &str,
    context: &TemplateContext,
    time: Option<Timestamp>,
) -> Result<u64, String> {
    let context = TemplateContext {
        variant: Some(variant.to_string()),
        ..context.clone()
    };
    let what = format!("experiment.metric.{field} of variant {variant}");
    let promql = render_checked(query, &context).map_err(|e| format!("{what}: {e}"))?;
    let sample = client.query(&promql, time).await.map_err(|error| {
        tracing::debug!(%variant, field, category = error.category(), %error, "experiment query failed");
        format!("{what}: {error}")
    })?;
    count_from(sample).map_err(|reason| format!("{what}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rounded_whole_and_never_negative() {
        assert_eq!(count_from(Sample::Value(1234.49)), Ok(1234));
        assert_eq!(count_from(Sample::Value(1234.5)), Ok(1235));
        assert_eq!(count_from(Sample::Value(-0.7)), Ok(0));
        assert_eq!(count_from(Sample::NoData(NoData::Empty)), Ok(0));
        assert_eq!(count_from(Sample::NoData(NoData::NaN)), Err(NoData::NaN));
    }

    #[test]
    fn the_window_is_whole_seconds_since_the_start() {
        assert_eq!(experiment_window(Duration::from_millis(3_600_900)), "3600s");
        assert_eq!(experiment_window(Duration::ZERO), "1s");
    }
}
