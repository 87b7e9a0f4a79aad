//! Rollgate: the Kubernetes operator, its metric provider, the CLI and the kubectl plugin,
//! around the pure core in `rollgate-core`.
#![forbid(unsafe_code)]
// A failure is an error value with its context, never a panic; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]

pub mod cli;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod operator;
pub mod output;
pub mod plugin;
pub mod prometheus;
pub mod reference;
pub mod relay;
pub mod simulate;
