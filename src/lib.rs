//! Rollgate: a Kubernetes operator for metric-gated feature-flag rollouts.
#![forbid(unsafe_code)]

pub mod cli;
pub mod crd;
pub mod duration;
pub mod engine;
pub mod experiment;
pub mod manifest;
pub mod observation;
pub mod prometheus;
pub mod template;
pub mod validate;
