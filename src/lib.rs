//! Rollgate: a Kubernetes operator for metric-gated feature-flag rollouts.
#![forbid(unsafe_code)]

pub mod cli;
pub mod crd;
pub mod duration;
pub mod engine;
pub mod experiment;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod observation;
pub mod operator;
pub mod output;
pub mod plugin;
pub mod prometheus;
pub mod publish;
pub mod simulate;
pub mod template;
pub mod validate;
