//! [`CohortMetrics`]: the Prometheus metrics a finished [`RequestScope`] is counted into.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::scope::RequestScope;

/// The counter of requests per flag, cohort and outcome.
pub const REQUESTS_TOTAL: &str = "rollgate_flag_requests_total";
/// The optional latency histogram per flag and cohort.
pub const REQUEST_DURATION_SECONDS: &str = "rollgate_flag_request_duration_seconds";

/// Latency buckets, in seconds, when [`CohortMetricsBuilder::with_duration`] is used without
/// [`CohortMetricsBuilder::duration_buckets`]: 5 ms to 10 s, Prometheus's usual request
/// buckets.
pub const DEFAULT_DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a request ended, the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// A server error: a 5xx response, or a service that failed.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Why the cohort metrics could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The latency buckets are not increasing numbers.
    #[error("{REQUEST_DURATION_SECONDS} buckets must be increasing numbers, got {buckets:?}")]
    Buckets { buckets: Vec<f64> },
    /// The metric could not be built or registered (a metric of that name is already in the
    /// registry).
    #[error("registering metric {metric}: {source}")]
    Register {
        metric: &'static str,
        #[source]
        source: prometheus::Error,
    },
}

impl MetricsError {
    /// A short, stable label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Buckets { .. } => "buckets",
            Self::Register { .. } => "register",
        }
    }
}

/// The cohort metrics, registered on the application's registry. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CohortMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: IntCounterVec,
    duration: Option<HistogramVec>,
}

impl CohortMetrics {
    /// Registers the request counter alone on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        Self::builder().register(registry)
    }

    /// Options: the latency histogram and its buckets.
    pub fn builder() -> CohortMetricsBuilder {
        CohortMetricsBuilder::default()
    }

    /// Counts one request per flag evaluated in `scope`, with that flag's cohort and
    /// `outcome`, and observes `elapsed` if the histogram is enabled. Call it when the
    /// request is over: the scope then records nothing more, and finishing it again counts
    /// nothing. A scope with no flags counts nothing.
    pub fn finish(&self, scope: &RequestScope, outcome: Outcome, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        scope.finish_with(|flag, cohort| {
            // Both vectors were built with exactly these labels, so the lookups cannot fail.
            if let Ok(counter) =
                self.inner
                    .requests
                    .get_metric_with_label_values(&[flag, cohort, outcome.as_str()])
            {
                counter.inc();
            }
            if let Some(Ok(histogram)) = self
                .inner
                .duration
                .as_ref()
                .map(|duration| duration.get_metric_with_label_values(&[flag, cohort]))
            {
                histogram.observe(seconds);
            }
        });
    }
}

/// Builds [`CohortMetrics`]: `CohortMetrics::builder().with_duration().register(&registry)`.
#[derive(Clone, Debug, Default)]
pub struct CohortMetricsBuilder {
    duration_buckets: Option<Vec<f64>>,
}

impl CohortMetricsBuilder {
    /// Also records `rollgate_flag_request_duration_seconds{flag, cohort}`, with
    /// [`DEFAULT_DURATION_BUCKETS`] unless [`Self::duration_buckets`] sets others.
    pub fn with_duration(mut self) -> Self {
        self.duration_buckets
            .get_or_insert_with(|| DEFAULT_DURATION_BUCKETS.to_vec());
        self
    }

    /// Records the latency histogram with these bucket bounds, in seconds, increasing. Each
    /// bucket is one more series per (flag, cohort).
    pub fn duration_buckets(mut self, buckets: Vec<f64>) -> Self {
        self.duration_buckets = Some(buckets);
        self
    }

    /// Creates the metrics and registers them on `registry`.
    pub fn register(self, registry: &Registry) -> Result<CohortMetrics, MetricsError> {
        let register_error = |metric| move |source| MetricsError::Register { metric, source };
        let requests = IntCounterVec::new(
            Opts::new(
                REQUESTS_TOTAL,
                "Requests that evaluated a flag, by flag, cohort (the variant, else on or off) \
                 and outcome (error: a 5xx response or a failed request)",
            ),
            &["flag", "cohort", "outcome"],
        )
        .map_err(register_error(REQUESTS_TOTAL))?;
        if let Some(buckets) = &self.duration_buckets {
            // The histogram would only refuse them at the first observation.
            let increasing = buckets.windows(2).all(|pair| pair[0] < pair[1]);
            if !increasing || buckets.iter().any(|bound| bound.is_nan()) {
                return Err(MetricsError::Buckets {
                    buckets: buckets.clone(),
                });
            }
        }
        let duration = self
            .duration_buckets
            .map(|buckets| {
                HistogramVec::new(
                    HistogramOpts::new(
                        REQUEST_DURATION_SECONDS,
                        "Latency of requests that evaluated a flag, by flag and cohort",
                    )
                    .buckets(buckets),
                    &["flag", "cohort"],
                )
                .map_err(register_error(REQUEST_DURATION_SECONDS))
            })
            .transpose()?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(register_error(REQUESTS_TOTAL))?;
        if let Some(duration) = &duration
            && let Err(source) = registry.register(Box::new(duration.clone()))
        {
            // Leave the registry as it was, so the caller can retry with other options.
            let _ = registry.unregister(Box::new(requests.clone()));
            return Err(register_error(REQUEST_DURATION_SECONDS)(source));
        }
        Ok(CohortMetrics {
            inner: Arc::new(Inner { requests, duration }),
        })
    }
}
