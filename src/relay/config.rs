//! `rollgate relay` settings and the checked list of sources.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::auth::TokensError;
use super::limit::{RateLimit, parse_rate_limit};
use super::source::SourceSpec;

/// `rollgate relay` settings: command-line flags with environment variables as fallback.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Namespace whose published ConfigMap to serve, followed through the API (get and watch
    /// on that ConfigMap only); repeat or separate with commas.
    #[arg(
        long = "namespace",
        env = "ROLLGATE_RELAY_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// The ConfigMap the operator publishes to in each `--namespace`.
    #[arg(long, env = "ROLLGATE_CONFIGMAP_NAME", default_value = rollgate_sdk::DEFAULT_CONFIGMAP)]
    pub configmap_name: String,

    /// `NAMESPACE=PATH`: serve a mounted flags.json under that namespace's URL, reloaded on
    /// change; repeatable.
    #[arg(long = "flags-file", value_parser = parse_flags_file)]
    pub flags_files: Vec<(String, PathBuf)>,

    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account), as the operator takes it.
    #[arg(long, env = "ROLLGATE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port (logged, and written to --port-file).
    #[arg(long, env = "ROLLGATE_RELAY_LISTEN", default_value = "127.0.0.1:8016")]
    pub listen: SocketAddr,

    /// Write the bound port to this file once listening.
    #[arg(long)]
    pub port_file: Option<PathBuf>,

    /// Bearer tokens, one per line: `token` or `token ns1,ns2`; reloaded when it changes.
    /// Without it every request is allowed.
    #[arg(long, env = "ROLLGATE_RELAY_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Browser origin allowed by CORS (e.g. `https://app.example.com`); repeatable. `*`
    /// allows every origin, only when given explicitly. None: no CORS headers.
    #[arg(
        long = "cors-origin",
        env = "ROLLGATE_RELAY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Requests per client (bearer token, else IP address), as `N/s` or `N/m`, with bursts of
    /// N; over it, 429 with Retry-After. None: no limit.
    #[arg(long, env = "ROLLGATE_RELAY_RATE_LIMIT", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,

    /// Largest request body; larger ones get 413.
    #[arg(long, env = "ROLLGATE_RELAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Most attributes in one evaluation context (nested ones and list items count).
    #[arg(long, default_value_t = 100)]
    pub max_context_attributes: usize,

    /// Longest string in a context, `targetingKey` included, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub max_context_string_bytes: usize,

    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "ROLLGATE_RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROLLGATE_RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Interval of the SSE keep-alive comment.
    #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
    pub sse_keep_alive: Duration,

    #[arg(long, env = "ROLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::operator::LogFormat,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    rollgate_core::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_flags_file(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((namespace, path)) if !namespace.is_empty() && !path.is_empty() => {
            Ok((namespace.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAMESPACE=PATH, got {value:?}")),
    }
}

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("kubeconfig: {0}")]
    KubeConfig(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    Tokens {
        path: PathBuf,
        #[source]
        error: TokensError,
    },
    #[error("TLS certificate {cert} / key {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl RelayError {
    /// A short, stable label for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::KubeConfig(_) => "kubeconfig",
            Self::Read { .. } => "read",
            Self::Tokens { .. } => "tokens",
            Self::Tls { .. } => "tls",
            Self::Listen { .. } => "listen",
            Self::Metrics(_) => "metrics",
        }
    }
}

/// Whether `name` can be a namespace: a DNS-1123 label (what Kubernetes allows), so it is
/// also safe in a URL path as it is.
pub fn valid_namespace(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Each configured namespace and where its flags come from, checked: at least one, valid
/// names, none twice.
pub fn sources(args: &RelayArgs) -> Result<Vec<(String, SourceSpec)>, RelayError> {
    let mut sources: Vec<(String, SourceSpec)> = Vec::new();
    let configmaps = args.namespaces.iter().map(|namespace| {
        (
            namespace.clone(),
            SourceSpec::ConfigMap {
                name: args.configmap_name.clone(),
            },
        )
    });
    let files = args
        .flags_files
        .iter()
        .map(|(namespace, path)| (namespace.clone(), SourceSpec::File { path: path.clone() }));
    for (namespace, spec) in configmaps.chain(files) {
        if !valid_namespace(&namespace) {
            return Err(RelayError::Config(format!(
                "namespace {namespace:?} is not a DNS-1123 label (a-z, 0-9 and '-', at most 63)"
            )));
        }
        if sources.iter().any(|(seen, _)| *seen == namespace) {
            return Err(RelayError::Config(format!(
                "namespace {namespace:?} is configured twice; one source per namespace"
            )));
        }
        sources.push((namespace, spec));
    }
    if sources.is_empty() {
        return Err(RelayError::Config(
            "no source: give --namespace NS (ConfigMap through the API) or --flags-file NS=PATH"
                .into(),
        ));
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RelayArgs,
    }

    fn args(argv: &[&str]) -> RelayArgs {
        Cli::try_parse_from(std::iter::once("relay").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn sources_come_from_namespaces_and_files_and_are_checked() {
        let parsed = args(&[
            "--namespace",
            "shop,web",
            "--flags-file",
            "local=/tmp/f.json",
        ]);
        let found = sources(&parsed).unwrap();
        let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["shop", "web", "local"]);
        assert_eq!(parsed.max_body_bytes, 65536);
        assert_eq!(parsed.listen.to_string(), "127.0.0.1:8016");
        assert_eq!(parsed.sse_keep_alive, Duration::from_secs(15));

        let error = |argv: &[&str]| sources(&args(argv)).unwrap_err().to_string();
        assert!(error(&[]).contains("no source"));
        assert!(error(&["--namespace", "a", "--flags-file", "a=/x"]).contains("configured twice"));
        assert!(error(&["--namespace", "Shop"]).contains("DNS-1123"));
        assert!(Cli::try_parse_from(["relay", "--flags-file", "nopath"]).is_err());
        assert!(Cli::try_parse_from(["relay", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        for good in ["a", "shop", "team-1", &"a".repeat(63)] {
            assert!(valid_namespace(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a/b", "a_b", &"a".repeat(64)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }
}
