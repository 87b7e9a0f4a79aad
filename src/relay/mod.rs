//! `rollgate relay`: Rollgate's flags over OFREP v1 (the OpenFeature Remote Evaluation
//! Protocol), so that any OpenFeature client gets the SDK's exact answers (`docs/relay.md`).
//!
//! Layers, one direction:
//!
//! - `config`: the settings and the checked list of sources;
//! - `ofrep`: the wire types and the pure mapping (context parsing, SDK answer → OFREP
//!   answer, ETag, SSE event); `auth`: the tokens file and its checks, pure; `limit`: the
//!   request-rate setting;
//! - `source`: each namespace's flag document, followed with the SDK's own sources
//!   (`Flags::watch_configmap`, `Flags::load`);
//! - `server`: the axum shell (routes, guards, SSE fan-out, TLS, metrics).

pub mod auth;
pub mod config;
pub mod limit;
pub mod metrics;
pub mod ofrep;
pub mod server;
pub mod source;

pub use config::{RelayArgs, RelayError};
pub use limit::RateLimit;
pub use server::{Relay, RelayHandle};
