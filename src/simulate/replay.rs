//! Replaying a real Prometheus: every metric's query, rendered as the operator renders it,
//! evaluated at the virtual analysis time with a pinned `time=`.

use jiff::Timestamp;

use super::source::MetricSource;
use crate::prometheus::{DEFAULT_CONCURRENCY, PrometheusClient, PrometheusError, analyze};
use rollgate_core::crd::Analysis;
use rollgate_core::observation::MetricObservation;
use rollgate_core::template::TemplateContext;

/// A [`MetricSource`] that asks Prometheus what each query gave at the analysis time.
///
/// It owns a single-threaded Tokio runtime and blocks on each analysis, so the driver stays
/// synchronous; do not use it from inside another runtime.
pub struct PrometheusReplay {
    client: PrometheusClient,
    context: TemplateContext,
    runtime: tokio::runtime::Runtime,
    queries: u64,
}

impl PrometheusReplay {
    /// A replay with `client`, rendering queries with `context` (see
    /// [`TemplateContext::for_flag`]).
    pub fn new(client: PrometheusClient, context: TemplateContext) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            client,
            context,
            runtime,
            queries: 0,
        })
    }

    /// Checks that Prometheus answers at all (`vector(1)` at `time`), so that a wrong
    /// address is bad input rather than a simulated outage.
    pub fn check(&self, time: Timestamp) -> Result<(), PrometheusError> {
        self.runtime
            .block_on(self.client.query("vector(1)", Some(time)))
            .map(|_| ())
    }

    /// Queries sent so far.
    pub fn queries(&self) -> u64 {
        self.queries
    }
}

impl MetricSource for PrometheusReplay {
    fn observe(&mut self, analysis: &Analysis, time: Timestamp) -> Vec<MetricObservation> {
        self.queries += analysis.metrics.len() as u64;
        self.runtime.block_on(analyze(
            &self.client,
            analysis,
            &self.context,
            Some(time),
            DEFAULT_CONCURRENCY,
        ))
    }
}
