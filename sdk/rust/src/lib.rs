//! `rollgate-sdk`: the Rollgate flag document and deterministic flag evaluation.
//!
//! This crate has no Kubernetes, async runtime or network dependency in its core. The
//! operator uses it for every bucketing decision, so exactly one implementation exists.
//!
//! Flags with targeting rules (`docs/targeting.md`) test the attributes of a [`Context`]: every
//! evaluation call has a `_with` form that takes one ([`FlagSet::evaluate_with`],
//! `Flags::is_enabled_with`, …).
//!
//! The core (`bucket`, `context`, `document`, `eval`) is always built. The workload client sits behind
//! cargo features (`docs/sdk.md`):
//!
//! - `reload` (default): [`Flags::load`] reads the mounted `flags.json` and reloads it on change;
//! - `kube`: `Flags::watch_configmap` follows the ConfigMap through the API;
//! - `openfeature`: `openfeature::RollgateProvider`, an OpenFeature provider over [`Flags`];
//! - `metrics`: `metrics::CohortMetrics` and its `tower` layer, request counters labelled with
//!   the cohort (variant, `on` or `off`) each request's flags put it in, for guarded rollouts;
//! - `sha-ni` (default): the rank hash in registers on x86-64 CPUs with the SHA extensions,
//!   the crate's one `unsafe` call (`docs/sdk.md`, "How a rank is hashed").
//!
//! Feature `schema` adds `document::json_schema`, the flag document's JSON Schema derived from
//! its types (committed as `sdk/flag-document.schema.json`).
//!
//! `--no-default-features` leaves only the core and its serde, serde_json and sha2 dependencies.
// `deny`, not `forbid`, only with the `sha-ni` feature: its one function that calls
// CPU-specific code, after checking the CPU, allows `unsafe` for that call.
#![cfg_attr(not(feature = "sha-ni"), forbid(unsafe_code))]
#![cfg_attr(feature = "sha-ni", deny(unsafe_code))]
// A failure is an error value with its context, never a panic; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]

pub mod bucket;
mod bytes;
#[cfg(feature = "client")]
pub mod client;
pub mod context;
pub mod document;
pub mod eval;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod shards;
mod targeting;
mod values;

pub use bucket::{
    RANK_SCALE, legacy_bucket, percent_threshold, rank_of_digest, rollout_rank, variant_rank,
};
pub use context::{AttributeRef, AttributeValue, Context, StringList};
pub use document::{
    Condition, DocumentError, ExperimentAssignment, FlagDocument, FlagEntry, Operator,
    READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, SegmentEntry, SegmentRule, Serve, TargetingRule,
    Variant,
};
pub use eval::{CompiledFlag, Evaluation, FlagSet, Reason};
pub use shards::{ShardError, ShardIndex, ShardRef, Stored, content_hash, parse_stored};

#[cfg(feature = "client")]
pub use client::{
    ClientFlagSet, DEFAULT_CONFIGMAP, FLAGS_KEY, FlagEvaluation, FlagSnapshot, Flags, FlagsChanged,
    FlagsError, SnapshotGuard,
};
#[cfg(feature = "reload")]
pub use client::{DEFAULT_FLAGS_PATH, DEFAULT_POLL_INTERVAL, FLAGS_PATH_ENV, LoadOptions};
#[cfg(feature = "metrics")]
pub use metrics::{
    CohortMetrics, CohortMetricsBuilder, CohortMetricsLayer, MetricsError, Outcome, RequestScope,
};
