//! Cohort-labelled request metrics (feature `metrics`), for guarded rollouts.
//!
//! The operator compares the requests of users who got a flag (the treatment) with those who
//! did not (the control). For that, each request counts once per flag it evaluated, labelled
//! with the answer it got:
//!
//! - a [`RequestScope`] remembers the flags a request evaluated and each one's *cohort*: the
//!   variant when the answer had one, else `on` or `off`; the first answer for a flag counts;
//! - [`CohortMetrics`] turns a finished scope into `rollgate_flag_requests_total{flag, cohort,
//!   outcome}` and, if asked for, `rollgate_flag_request_duration_seconds{flag, cohort}`;
//! - [`CohortMetricsLayer`] does both around every request of a `tower` HTTP service (axum,
//!   hyper, tonic).
//!
//! Cardinality: only flags that requests evaluate get series, each with the few cohorts it
//! answers (two for an on/off flag, one per variant plus `off` for an A/B flag), times two
//! outcomes; the histogram adds its buckets plus `_sum` and `_count` per (flag, cohort). Keys
//! that are not in the document are never recorded, nor are answers a targeting rule decided:
//! guardrails act on the ramp's users only (`docs/targeting.md`).

mod cohort_metrics;
mod layer;
mod scope;

pub use cohort_metrics::{
    CohortMetrics, CohortMetricsBuilder, DEFAULT_DURATION_BUCKETS, MetricsError, Outcome,
    REQUEST_DURATION_SECONDS, REQUESTS_TOTAL,
};
pub use layer::{CohortMetricsFuture, CohortMetricsLayer, CohortMetricsService};
pub use scope::RequestScope;
pub(crate) use scope::{record_current, scopes_in_use};
