//! The operator's own Prometheus metrics, in one registry served on `/metrics`.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use rollgate_core::crd::{ExperimentStatus, Phase};

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: IntCounterVec,
    pub flag_percent: GaugeVec,
    pub flag_info: IntGaugeVec,
    pub rollbacks: IntCounterVec,
    pub analysis_query_duration: HistogramVec,
    pub analysis_errors: IntCounter,
    pub finalizer_conflicts: IntCounter,
    pub publish_bytes: IntGaugeVec,
    pub publish_shards: IntGaugeVec,
    pub publishes: IntCounterVec,
    pub experiment_exposures: GaugeVec,
    pub experiment_conversions: GaugeVec,
    pub experiment_p_value: GaugeVec,
    pub is_leader: prometheus::IntGauge,
    pub query_queue_seconds: Histogram,
    pub queries_queued: prometheus::IntGauge,
    pub analysis_delay_seconds: Histogram,
    pub analyses_overdue: IntCounter,
    pub analyses_deferred: IntCounter,
}

const PHASES: [Phase; 9] = [
    Phase::Pending,
    Phase::Disabled,
    Phase::Static,
    Phase::Progressing,
    Phase::Paused,
    Phase::Complete,
    Phase::RolledBack,
    Phase::Killed,
    Phase::Invalid,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconcile_total = IntCounterVec::new(
            Opts::new("rollgate_reconcile_total", "Reconciles by result"),
            &["result"],
        )?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "rollgate_reconcile_duration_seconds",
                "Time spent in one reconcile, analysis queries included",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "rollgate_reconcile_errors_total",
                "Reconcile errors by category",
            ),
            &["category"],
        )?;
        let flag_percent = GaugeVec::new(
            Opts::new(
                "rollgate_flag_percent",
                "Resolved exposure of each flag, in percent",
            ),
            &["namespace", "flag"],
        )?;
        let flag_info = IntGaugeVec::new(
            Opts::new(
                "rollgate_flag_info",
                "1, labelled with the current phase of each flag; one series per flag",
            ),
            &["namespace", "flag", "phase"],
        )?;
        let rollbacks = IntCounterVec::new(
            Opts::new("rollgate_rollbacks_total", "Rollbacks to 0% by reason"),
            &["namespace", "flag", "reason"],
        )?;
        let analysis_query_duration = HistogramVec::new(
            HistogramOpts::new(
                "rollgate_analysis_query_duration_seconds",
                "Duration of one PromQL query",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["outcome"],
        )?;
        let analysis_errors = IntCounter::new(
            "rollgate_analysis_errors_total",
            "Metric queries that failed (HTTP, timeout, Prometheus error, too many series)",
        )?;
        let finalizer_conflicts = IntCounter::new(
            "rollgate_finalizer_conflicts_total",
            "Finalizer patches that lost a race with another write and were retried at once on a fresh read",
        )?;
        let publish_bytes = IntGaugeVec::new(
            Opts::new(
                "rollgate_publish_bytes",
                "Size of the published flag document, all shards together",
            ),
            &["namespace", "configmap"],
        )?;
        let publish_shards = IntGaugeVec::new(
            Opts::new(
                "rollgate_publish_shards",
                "Shards the published flag document is split across; 0 when it fits one ConfigMap",
            ),
            &["namespace", "configmap"],
        )?;
        let publishes = IntCounterVec::new(
            Opts::new(
                "rollgate_publishes_total",
                "Publish requests by outcome: written, unchanged (the ConfigMap already held the document), coalesced (served by a concurrent write), skipped (nothing changed), too_large",
            ),
            &["outcome"],
        )?;
        let experiment_exposures = GaugeVec::new(
            Opts::new(
                "rollgate_experiment_exposures",
                "Exposures per experiment arm",
            ),
            &["namespace", "flag", "variant"],
        )?;
        let experiment_conversions = GaugeVec::new(
            Opts::new(
                "rollgate_experiment_conversions",
                "Conversions per experiment arm",
            ),
            &["namespace", "flag", "variant"],
        )?;
        let experiment_p_value = GaugeVec::new(
            Opts::new(
                "rollgate_experiment_p_value",
                "Always-valid (sequential) or fixed-horizon p-value of each arm against control",
            ),
            &["namespace", "flag", "variant"],
        )?;
        let is_leader = prometheus::IntGauge::new(
            "rollgate_leader",
            "1 while this replica holds the leader lease and writes",
        )?;
        let query_queue_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "rollgate_prometheus_queue_seconds",
                "Time an analysis query waited for the query budget (--prometheus-concurrency, --prometheus-qps)",
            )
            .buckets(vec![
                0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        let queries_queued = prometheus::IntGauge::new(
            "rollgate_prometheus_queries_queued",
            "Analysis queries waiting for the query budget now",
        )?;
        let analysis_delay_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "rollgate_analysis_delay_seconds",
                "How long after it was due an analysis finished",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
            ]),
        )?;
        let analyses_overdue = IntCounter::new(
            "rollgate_analyses_overdue_total",
            "Analyses that finished more than one interval after they were due (condition AnalysisOverdue)",
        )?;
        let analyses_deferred = IntCounter::new(
            "rollgate_analyses_deferred_total",
            "Due analyses put off because the query budget already held more than a second of queries",
        )?;
        registry.register(Box::new(analyses_deferred.clone()))?;
        registry.register(Box::new(query_queue_seconds.clone()))?;
        registry.register(Box::new(queries_queued.clone()))?;
        registry.register(Box::new(analysis_delay_seconds.clone()))?;
        registry.register(Box::new(analyses_overdue.clone()))?;
        registry.register(Box::new(reconcile_total.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(flag_percent.clone()))?;
        registry.register(Box::new(flag_info.clone()))?;
        registry.register(Box::new(rollbacks.clone()))?;
        registry.register(Box::new(analysis_query_duration.clone()))?;
        registry.register(Box::new(analysis_errors.clone()))?;
        registry.register(Box::new(finalizer_conflicts.clone()))?;
        registry.register(Box::new(publish_bytes.clone()))?;
        registry.register(Box::new(publish_shards.clone()))?;
        registry.register(Box::new(publishes.clone()))?;
        registry.register(Box::new(experiment_exposures.clone()))?;
        registry.register(Box::new(experiment_conversions.clone()))?;
        registry.register(Box::new(experiment_p_value.clone()))?;
        registry.register(Box::new(is_leader.clone()))?;
        Ok(Self {
            registry,
            reconcile_total,
            reconcile_duration,
            reconcile_errors,
            flag_percent,
            flag_info,
            rollbacks,
            analysis_query_duration,
            analysis_errors,
            finalizer_conflicts,
            publish_bytes,
            publish_shards,
            publishes,
            experiment_exposures,
            experiment_conversions,
            experiment_p_value,
            is_leader,
            query_queue_seconds,
            queries_queued,
            analysis_delay_seconds,
            analyses_overdue,
            analyses_deferred,
        })
    }

    /// The series the shared query budget reports into.
    pub fn query_budget(&self) -> crate::prometheus::BudgetMetrics {
        crate::prometheus::BudgetMetrics {
            queue_seconds: self.query_queue_seconds.clone(),
            queued: self.queries_queued.clone(),
        }
    }

    /// Records a flag's resolved percent and phase (the old phase's series drops to 0).
    pub fn observe_flag(&self, namespace: &str, flag: &str, phase: Phase, percent: f64) {
        self.flag_percent
            .with_label_values(&[namespace, flag])
            .set(percent);
        // One series per flag, for its current phase: a 0 for each of the other eight phases
        // was 80% of the operator's series and of its metrics memory at 3,000 flags.
        for candidate in PHASES {
            let labels = [namespace, flag, candidate.as_str()];
            if candidate == phase {
                self.flag_info.with_label_values(&labels).set(1);
            } else {
                let _ = self.flag_info.remove_label_values(&labels);
            }
        }
    }

    /// Drops the series of a deleted flag.
    pub fn forget_flag(&self, namespace: &str, flag: &str) {
        let _ = self.flag_percent.remove_label_values(&[namespace, flag]);
        for candidate in PHASES {
            let _ = self
                .flag_info
                .remove_label_values(&[namespace, flag, candidate.as_str()]);
        }
    }

    /// Records an experiment's latest counts and p-values, one series per variant (the
    /// control has no p-value).
    pub fn observe_experiment(&self, namespace: &str, flag: &str, experiment: &ExperimentStatus) {
        for variant in &experiment.variants {
            let labels = [namespace, flag, variant.name.as_str()];
            self.experiment_exposures
                .with_label_values(&labels)
                .set(variant.exposures as f64);
            self.experiment_conversions
                .with_label_values(&labels)
                .set(variant.conversions as f64);
            if let Some(p_value) = variant.p_value {
                self.experiment_p_value
                    .with_label_values(&labels)
                    .set(p_value);
            }
        }
    }

    /// Drops the experiment series of a deleted flag.
    pub fn forget_experiment(&self, namespace: &str, flag: &str, variants: &[&str]) {
        for variant in variants {
            let labels = [namespace, flag, *variant];
            let _ = self.experiment_exposures.remove_label_values(&labels);
            let _ = self.experiment_conversions.remove_label_values(&labels);
            let _ = self.experiment_p_value.remove_label_values(&labels);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric data, which registration rules out.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flag has one `rollgate_flag_info` series, for its current phase; a phase change
    /// replaces it and a deleted flag has none.
    #[test]
    fn a_flag_has_one_info_series_for_its_current_phase() {
        let metrics = Metrics::new().unwrap();
        let info_lines = |metrics: &Metrics| -> Vec<String> {
            metrics
                .render()
                .lines()
                .filter(|line| line.starts_with("rollgate_flag_info{"))
                .map(str::to_string)
                .collect()
        };
        metrics.observe_flag("shop", "checkout", Phase::Progressing, 5.0);
        assert_eq!(
            info_lines(&metrics),
            [r#"rollgate_flag_info{flag="checkout",namespace="shop",phase="Progressing"} 1"#]
        );
        metrics.observe_flag("shop", "checkout", Phase::RolledBack, 0.0);
        assert_eq!(
            info_lines(&metrics),
            [r#"rollgate_flag_info{flag="checkout",namespace="shop",phase="RolledBack"} 1"#]
        );
        metrics.forget_flag("shop", "checkout");
        assert!(info_lines(&metrics).is_empty());
    }
}
