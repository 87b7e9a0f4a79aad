//! The Prometheus metric provider: turns a flag's `rollout.analysis.metrics` into
//! [`MetricObservation`]s for the rollout engine.
//!
//! This layer does I/O and nothing else: it renders each query, asks Prometheus, and reports
//! a value, no data (with the reason) or an error (naming the address). Judging the values
//! against their bounds and policies is the engine's job.

mod auth;
mod budget;
mod client;
mod error;
mod experiment;
mod guardrail;
mod response;

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use jiff::Timestamp;

pub use auth::Auth;
pub use budget::{BudgetMetrics, QueryBudget, QueryTurn};
pub use client::{
    DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, PrometheusClient, PrometheusConfig, parse_header,
};
pub use error::PrometheusError;
pub use experiment::{count_from, experiment_counts, experiment_window};
pub use guardrail::{COHORT_LABEL, CONTROL_COHORT, guardrail_counts, ramp_window, split};
pub use response::{NoData, Sample};

use rollgate_core::crd::{Analysis, MetricCheck};
use rollgate_core::observation::{MetricObservation, MetricOutcome};
use rollgate_core::template::{TemplateContext, render_checked};

/// How many queries of one analysis run at once when the caller has no opinion.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The address an analysis queries: the flag's `prometheus.address`, else the operator's.
pub fn resolve_address<'a>(analysis: &'a Analysis, default: Option<&'a str>) -> Option<&'a str> {
    analysis
        .prometheus
        .as_ref()
        .and_then(|source| source.address.as_deref())
        .filter(|address| !address.trim().is_empty())
        .or(default)
}

/// One metric of an analysis: the query as sent (when it rendered) and what came back.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRun {
    pub name: String,
    /// The rendered PromQL; `None` when the template could not be rendered.
    pub query: Option<String>,
    pub outcome: MetricOutcome,
    /// How long the query took (zero when it was never sent).
    pub elapsed: Duration,
}

impl From<MetricRun> for MetricObservation {
    fn from(run: MetricRun) -> Self {
        Self {
            name: run.name,
            outcome: run.outcome,
        }
    }
}

/// Runs every metric of `analysis`, at most `concurrency` at once, and returns one
/// observation per metric in spec order. Never fails as a whole: a template that does not
/// render or parse, and any query error, become [`MetricOutcome::Error`].
pub async fn analyze(
    client: &PrometheusClient,
    analysis: &Analysis,
    context: &TemplateContext,
    time: Option<Timestamp>,
    concurrency: usize,
) -> Vec<MetricObservation> {
    analyze_detailed(client, analysis, context, time, concurrency)
        .await
        .into_iter()
        .map(MetricObservation::from)
        .collect()
}

/// [`analyze`], keeping each rendered query (for `rollgate analyze` and logs).
pub async fn analyze_detailed(
    client: &PrometheusClient,
    analysis: &Analysis,
    context: &TemplateContext,
    time: Option<Timestamp>,
    concurrency: usize,
) -> Vec<MetricRun> {
    // The futures are built before entering the stream: a closure inside the stream makes
    // the future's Send bound higher-ranked, which the controller's reconcile cannot meet.
    let queries: Vec<_> = analysis
        .metrics
        .iter()
        .map(|metric| run_metric(client, metric, context, time))
        .collect();
    // `buffered` keeps spec order while running up to `concurrency` queries at once.
    stream::iter(queries)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

async fn run_metric(
    client: &PrometheusClient,
    metric: &MetricCheck,
    context: &TemplateContext,
    time: Option<Timestamp>,
) -> MetricRun {
    let query = match render_checked(&metric.query, context) {
        Ok(query) => query,
        Err(error) => {
            return MetricRun {
                name: metric.name.clone(),
                query: None,
                outcome: MetricOutcome::Error {
                    message: format!("query template: {error}"),
                },
                elapsed: Duration::ZERO,
            };
        }
    };
    let started = Instant::now();
    let outcome = match client.query(&query, time).await {
        Ok(sample) => MetricOutcome::from(sample),
        Err(error) => {
            tracing::debug!(metric = %metric.name, category = error.category(), %error, "metric query failed");
            MetricOutcome::Error {
                message: error.to_string(),
            }
        }
    };
    MetricRun {
        name: metric.name.clone(),
        query: Some(query),
        outcome,
        elapsed: started.elapsed(),
    }
}
