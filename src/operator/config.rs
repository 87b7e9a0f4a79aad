//! `rollgate operator` settings: command-line flags with environment variables as fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::prometheus::{Auth, PrometheusConfig, parse_header};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Default Prometheus base URL for flags that do not set `rollout.analysis.prometheus.address`.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// Namespace to watch; repeat for several. Default: all namespaces.
    #[arg(long = "namespace", env = "ROLLGATE_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// ConfigMap that receives the flag document, unless a flag sets `spec.publish.configMap`.
    #[arg(
        long,
        env = "ROLLGATE_CONFIGMAP_NAME",
        default_value = "rollgate-flags"
    )]
    pub configmap_name: String,

    /// More ConfigMaps flags may publish to (`spec.publish.configMap`); repeat or separate
    /// with commas. The operator watches and writes ConfigMaps by these names only, so its
    /// RBAC can name them; a flag naming any other ConfigMap is refused.
    #[arg(
        long = "extra-configmap-name",
        env = "ROLLGATE_EXTRA_CONFIGMAP_NAMES",
        value_delimiter = ','
    )]
    pub extra_configmap_names: Vec<String>,

    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ROLLGATE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Elect a leader through a Lease so that only one replica writes.
    #[arg(long, env = "ROLLGATE_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Namespace of the leader Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "ROLLGATE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, env = "ROLLGATE_LEASE_NAME", default_value = "rollgate-leader")]
    pub lease_name: String,

    /// Identity in the Lease (default: $POD_NAME, else the host name and PID).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account, as kube's `Config::infer` tries them).
    #[arg(long, env = "ROLLGATE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    #[arg(long, env = "ROLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Timeout of one PromQL query.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_TIMEOUT", default_value = "10s", value_parser = parse_duration_arg)]
    pub prometheus_timeout: Duration,

    /// File holding a bearer token for Prometheus; re-read when it changes.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_BEARER_TOKEN_FILE")]
    pub prometheus_bearer_token_file: Option<PathBuf>,

    #[arg(
        long,
        env = "ROLLGATE_PROMETHEUS_BASIC_AUTH_USERNAME",
        requires = "prometheus_basic_auth_password_file"
    )]
    pub prometheus_basic_auth_username: Option<String>,

    #[arg(
        long,
        env = "ROLLGATE_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
        requires = "prometheus_basic_auth_username"
    )]
    pub prometheus_basic_auth_password_file: Option<PathBuf>,

    /// PEM bundle of CAs to trust for Prometheus.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_CA_FILE")]
    pub prometheus_ca_file: Option<PathBuf>,

    #[arg(long, env = "ROLLGATE_PROMETHEUS_INSECURE_SKIP_VERIFY")]
    pub prometheus_insecure_skip_verify: bool,

    /// Extra header for every query, `Name: value` or `Name=value` (e.g. a tenant header);
    /// repeatable.
    #[arg(long = "prometheus-header", env = "ROLLGATE_PROMETHEUS_HEADER", value_parser = parse_header)]
    pub prometheus_headers: Vec<(String, String)>,

    /// Queries of one analysis that may run at once.
    #[arg(long, env = "ROLLGATE_ANALYSIS_CONCURRENCY", default_value_t = 4)]
    pub analysis_concurrency: usize,

    /// Kubernetes API requests in flight at once; the others queue. Each one in flight can
    /// hold a connection, and a burst of thousands of reconciles would otherwise open
    /// hundreds of them and overload the API server. A watch counts only until its
    /// response starts.
    #[arg(long, env = "ROLLGATE_API_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub api_concurrency: u16,

    /// Reconciles running at once; the others wait their turn. Bounds the memory of a
    /// start with thousands of flags. A kill switch's own API requests go through a
    /// separate lane and never queue behind them.
    #[arg(long, env = "ROLLGATE_RECONCILE_CONCURRENCY", default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_concurrency: u16,

    /// How long a publish waits for more flag changes to join it before it renders and
    /// writes the ConfigMap once for all of them; at most 1s. A kill switch's own publish
    /// does not wait, but may be served by one of the same ConfigMap already waiting.
    #[arg(long, env = "ROLLGATE_PUBLISH_WINDOW", default_value = "20ms", value_parser = parse_publish_window)]
    pub publish_window: Duration,

    /// ConfigMaps one document may be split across when it passes one ConfigMap's limit
    /// (`<name>-shard-0` … `<name>-shard-<N-1>`, plus the index in `<name>`). The RBAC must
    /// grant these names; the chart's `maxShards` sets both.
    #[arg(long, env = "ROLLGATE_MAX_SHARDS", default_value_t = rollgate_core::sharding::DEFAULT_MAX_SHARDS as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_shards: u16,

    /// Analysis queries in flight at once, over all flags and Prometheus addresses; the
    /// others queue (`rollgate_prometheus_queue_seconds`).
    #[arg(long, env = "ROLLGATE_PROMETHEUS_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub prometheus_concurrency: u16,

    /// Analysis queries started per second at most, over all flags and Prometheus
    /// addresses, evenly spaced.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_QPS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub prometheus_qps: u32,
}

fn parse_publish_window(text: &str) -> Result<Duration, String> {
    let window = parse_duration_arg(text)?;
    if window > Duration::from_secs(1) {
        return Err(format!(
            "{text} is longer than 1s: every publish waits this long, and a kill switch may wait for one"
        ));
    }
    Ok(window)
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    rollgate_core::duration::parse_duration(text).map_err(|e| e.to_string())
}

impl OperatorArgs {
    /// Every ConfigMap name flags may publish to: the default first, then the extras.
    pub fn publishable_configmaps(&self) -> Vec<String> {
        let mut names = vec![self.configmap_name.clone()];
        for name in &self.extra_configmap_names {
            let name = name.trim();
            if !name.is_empty() && !names.iter().any(|known| known == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    /// The Prometheus settings shared by every flag; flags may only change the address.
    pub fn prometheus_config(&self, address: &str) -> Result<PrometheusConfig, String> {
        let auth = match (
            &self.prometheus_bearer_token_file,
            &self.prometheus_basic_auth_username,
            &self.prometheus_basic_auth_password_file,
        ) {
            (Some(_), Some(_), _) => {
                return Err(
                    "give either a bearer token file or basic auth for Prometheus, not both".into(),
                );
            }
            (Some(path), None, _) => Auth::BearerFile(path.clone()),
            (None, Some(username), Some(password_file)) => {
                let password = std::fs::read_to_string(password_file).map_err(|e| {
                    format!(
                        "cannot read Prometheus password file {}: {e}",
                        password_file.display()
                    )
                })?;
                Auth::Basic {
                    username: username.clone(),
                    password: password.trim_end_matches(['\n', '\r']).to_string(),
                }
            }
            _ => Auth::None,
        };
        let mut config = PrometheusConfig::new(address);
        config.timeout = self.prometheus_timeout;
        config.auth = auth;
        config.ca_bundle = self.prometheus_ca_file.clone();
        config.insecure_skip_verify = self.prometheus_insecure_skip_verify;
        config.headers = self.prometheus_headers.clone();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::OperatorArgs;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        operator: OperatorArgs,
    }

    #[test]
    fn prometheus_headers_take_both_syntaxes_and_refuse_a_bad_name() {
        let command = Command::try_parse_from([
            "rollgate",
            "--prometheus-header=X-Scope-OrgID: team-a",
            "--prometheus-header=X-Tenant=b=c",
        ])
        .unwrap();
        let config = command.operator.prometheus_config("http://p").unwrap();
        assert_eq!(
            config.headers,
            [
                ("X-Scope-OrgID".to_string(), "team-a".to_string()),
                ("X-Tenant".to_string(), "b=c".to_string()),
            ]
        );
        let error = Command::try_parse_from(["rollgate", "--prometheus-header=bad name: x"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("--prometheus-header"), "{error}");
    }

    #[test]
    fn publishable_configmaps_list_the_default_first_without_repeats() {
        let command = Command::try_parse_from([
            "rollgate",
            "--extra-configmap-name=team-flags,rollgate-flags",
            "--extra-configmap-name=team-flags",
        ])
        .unwrap();
        assert_eq!(
            command.operator.publishable_configmaps(),
            ["rollgate-flags", "team-flags"]
        );
    }
}
