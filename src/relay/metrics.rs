//! The relay's own Prometheus metrics, in one registry served on `/metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every answer label of `rollgate_relay_evaluations_total{reason}`: the four OFREP reasons,
/// then the two per-flag error codes.
pub const ANSWER_LABELS: [&str; 7] = [
    "STATIC",
    "DEFAULT",
    "TARGETING_MATCH",
    "SPLIT",
    "DISABLED",
    "TARGETING_KEY_MISSING",
    "FLAG_NOT_FOUND",
];

#[derive(Clone)]
pub struct RelayMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub evaluations: IntCounterVec,
    pub sse_clients: IntGaugeVec,
    pub sse_events: IntCounterVec,
    pub source_loaded: IntGaugeVec,
    pub source_watches: IntGaugeVec,
    pub source_generation: IntGaugeVec,
    pub source_reload_errors: IntGaugeVec,
    pub rate_limited: IntCounter,
    pub auth_refused: IntCounterVec,
    pub tokens_reload_errors: IntCounter,
}

impl RelayMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rollgate_relay_requests_total",
                "HTTP requests by route and status code",
            ),
            &["route", "code"],
        )?;
        let evaluations = IntCounterVec::new(
            Opts::new(
                "rollgate_relay_evaluations_total",
                "Flag answers by namespace and OFREP reason or per-flag error code",
            ),
            &["namespace", "reason"],
        )?;
        let sse_clients = IntGaugeVec::new(
            Opts::new(
                "rollgate_relay_sse_clients",
                "Connected SSE event-stream clients",
            ),
            &["namespace"],
        )?;
        let sse_events = IntCounterVec::new(
            Opts::new(
                "rollgate_relay_sse_events_total",
                "refetchEvaluation events sent, summed over clients",
            ),
            &["namespace"],
        )?;
        let source_loaded = IntGaugeVec::new(
            Opts::new(
                "rollgate_relay_source_loaded",
                "1 once the namespace's flag source has loaded a document",
            ),
            &["namespace", "source"],
        )?;
        let source_watches = IntGaugeVec::new(
            Opts::new(
                "rollgate_relay_source_watches",
                "API watches this relay holds for the namespace: 1 for a followed ConfigMap, 0 for a file; never one per client",
            ),
            &["namespace"],
        )?;
        let source_generation = IntGaugeVec::new(
            Opts::new(
                "rollgate_relay_source_generation",
                "Generation of the namespace's current document in this relay",
            ),
            &["namespace"],
        )?;
        let source_reload_errors = IntGaugeVec::new(
            Opts::new(
                "rollgate_relay_source_reload_errors",
                "Documents refused or source failures since the source loaded (the SDK's count)",
            ),
            &["namespace"],
        )?;
        let rate_limited = IntCounter::new(
            "rollgate_relay_rate_limited_total",
            "Requests refused with 429 by the per-client limit",
        )?;
        let auth_refused = IntCounterVec::new(
            Opts::new(
                "rollgate_relay_auth_refused_total",
                "Requests refused by the bearer tokens: missing, invalid or forbidden",
            ),
            &["result"],
        )?;
        let tokens_reload_errors = IntCounter::new(
            "rollgate_relay_tokens_reload_errors_total",
            "Tokens files refused on reload (the last good tokens stay)",
        )?;
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(evaluations.clone()),
            Box::new(sse_clients.clone()),
            Box::new(sse_events.clone()),
            Box::new(source_loaded.clone()),
            Box::new(source_watches.clone()),
            Box::new(source_generation.clone()),
            Box::new(source_reload_errors.clone()),
            Box::new(rate_limited.clone()),
            Box::new(auth_refused.clone()),
            Box::new(tokens_reload_errors.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            registry,
            requests,
            evaluations,
            sse_clients,
            sse_events,
            source_loaded,
            source_watches,
            source_generation,
            source_reload_errors,
            rate_limited,
            auth_refused,
            tokens_reload_errors,
        })
    }

    /// The Prometheus text format of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "encoding the relay's metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
