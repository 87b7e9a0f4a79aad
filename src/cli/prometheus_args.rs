//! The Prometheus connection options shared by `rollgate analyze` and `rollgate simulate
//! --prometheus`: the same timeout, auth, TLS and header options as the operator's client.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::prometheus::{Auth, PrometheusConfig, parse_header};

#[derive(Debug, Args)]
pub struct PrometheusClientArgs {
    /// Time allowed for each Prometheus query.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// Send `Authorization: Bearer <token>` to Prometheus, with the token read from this file
    /// (re-read when it changes).
    #[arg(long, value_name = "PATH", conflicts_with = "username")]
    bearer_token_file: Option<PathBuf>,

    /// Basic-auth user name for Prometheus (the password comes from
    /// ROLLGATE_PROMETHEUS_PASSWORD).
    #[arg(long, env = "ROLLGATE_PROMETHEUS_USERNAME", requires = "password")]
    username: Option<String>,

    #[arg(
        long,
        env = "ROLLGATE_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    password: Option<String>,

    /// PEM file of CA certificates to trust for Prometheus instead of the system's.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,

    /// Accept any TLS certificate from Prometheus.
    #[arg(long)]
    insecure_skip_verify: bool,

    /// Extra header on every Prometheus query, `Name=value` or `Name: value` (as the
    /// operator's `--prometheus-header`), e.g. `X-Scope-OrgID=team-a`; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

impl PrometheusClientArgs {
    /// The client configuration for `address`; clap has already checked every option.
    pub fn config(&self, address: &str) -> PrometheusConfig {
        let auth = match (&self.bearer_token_file, &self.username, &self.password) {
            (Some(path), _, _) => Auth::BearerFile(path.clone()),
            (None, Some(username), Some(password)) => Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            _ => Auth::None,
        };
        PrometheusConfig {
            address: address.to_string(),
            timeout: self.timeout,
            auth,
            ca_bundle: self.ca_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            headers: self.headers.clone(),
        }
    }

    /// The first option given on the command line, for refusing options that a run would
    /// otherwise silently ignore (a CSV simulation sends no queries).
    pub fn first_given(&self) -> Option<&'static str> {
        if self.bearer_token_file.is_some() {
            Some("--bearer-token-file")
        } else if self.username.is_some() {
            Some("--username")
        } else if self.ca_file.is_some() {
            Some("--ca-file")
        } else if self.insecure_skip_verify {
            Some("--insecure-skip-verify")
        } else if !self.headers.is_empty() {
            Some("--header")
        } else {
            None
        }
    }
}

/// A duration in the CRD's syntax (`10s`, `1m30s`), more than zero.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration =
        rollgate_core::duration::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("the timeout must be more than zero".into());
    }
    Ok(duration)
}
