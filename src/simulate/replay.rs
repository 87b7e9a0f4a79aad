//! Replaying a real Prometheus: every metric's and guardrail's query, rendered as the
//! operator renders it, evaluated at the virtual analysis time with a pinned `time=`.

use futures::{StreamExt as _, stream};
use jiff::Timestamp;

use super::source::MetricSource;
use crate::prometheus::{
    DEFAULT_CONCURRENCY, PrometheusClient, PrometheusError, analyze, guardrail_counts, ramp_window,
};
use rollgate_core::crd::Analysis;
use rollgate_core::observation::{GuardrailObservation, MetricObservation};
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

    /// Each guardrail's `bad` and `total` at `time`, with `{{ since_ramp_start }}` the time
    /// from the simulated ramp's start to `time`, as the operator renders it.
    fn observe_guardrails(
        &mut self,
        analysis: &Analysis,
        ramp_started_at: Timestamp,
        time: Timestamp,
    ) -> Vec<GuardrailObservation> {
        let since_start =
            std::time::Duration::try_from(time.duration_since(ramp_started_at)).unwrap_or_default();
        let mut context = self.context.clone().with_interval_of(analysis);
        context.since_ramp_start = Some(ramp_window(since_start));
        self.queries += 2 * analysis.guardrails.len() as u64;
        // Spec order, at most DEFAULT_CONCURRENCY guardrails at once, as `analyze` does.
        let queries: Vec<_> = analysis
            .guardrails
            .iter()
            .map(|guardrail| guardrail_counts(&self.client, guardrail, &context, Some(time)))
            .collect();
        self.runtime.block_on(
            stream::iter(queries)
                .buffered(DEFAULT_CONCURRENCY)
                .collect(),
        )
    }
}
