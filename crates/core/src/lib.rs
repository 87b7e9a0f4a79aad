//! `rollgate-core`: the pure core of Rollgate.
//!
//! - [`crd`]: the `FeatureFlag` custom resource, spec and status;
//! - [`segment`]: the `Segment` custom resource, an audience flags target, and
//!   [`segment_catalog`]: a namespace's segments as its flags see them;
//! - [`validate`]: offline validation, mirroring the CRDs' CEL rules;
//! - [`version`]: the versions of the `Semver*` targeting operators;
//! - [`engine`]: the rollout engine, a pure function of (spec, status, observations, now);
//! - [`experiment`]: the experiment statistics (mSPRT, SRM, Holm), which know nothing of the CRD;
//! - [`experiment_status`]: a verdict of those statistics as status, messages and a table;
//! - [`publish`]: the flag document a ConfigMap carries, rendered from flags;
//! - [`duration`], [`observation`], [`template`]: the values those pass around.
//!
//! Nothing here can reach the network, the API server or a clock: the crate depends on no
//! Kubernetes client, HTTP client or async runtime, so the compiler keeps it pure.
#![forbid(unsafe_code)]
// A failure is an error value with its context, never a panic; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]

pub mod crd;
pub mod duration;
pub mod engine;
pub mod experiment;
pub mod experiment_status;
pub mod guardrail;
pub mod observation;
pub mod publish;
pub mod segment;
pub mod segment_catalog;
pub mod sharding;
pub mod template;
pub mod validate;
pub mod version;
