//! What can go wrong between Rollgate and Prometheus. Every variant names the address.

use std::path::PathBuf;
use std::time::Duration;

/// A failed Prometheus query or client setup.
///
/// The address in every variant is the one configured, with any password in it masked.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The address is not an `http://` or `https://` URL.
    #[error("invalid Prometheus address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },

    /// The client could not be built: a CA bundle, a header or a TLS setting is wrong.
    #[error("Prometheus client for {address}: {reason}")]
    Config { address: String, reason: String },

    /// The bearer token file could not be read, or is empty.
    #[error("Prometheus at {address}: cannot use bearer token file {}: {reason}", path.display())]
    TokenFile {
        address: String,
        path: PathBuf,
        reason: String,
    },

    /// No complete answer within the query timeout.
    #[error("Prometheus at {address} did not answer within {}", humanize(*timeout))]
    Timeout { address: String, timeout: Duration },

    /// The connection could not be made: refused, no route, DNS or TLS failure.
    #[error("cannot connect to Prometheus at {address}: {reason}")]
    Connect { address: String, reason: String },

    /// Some other transport failure while sending the request or reading the answer.
    #[error("request to Prometheus at {address} failed: {reason}")]
    Transport { address: String, reason: String },

    /// An HTTP error status without a Prometheus error body (for example from a proxy).
    #[error("Prometheus at {address} answered HTTP {status}: {body}")]
    Http {
        address: String,
        status: u16,
        body: String,
    },

    /// Prometheus answered `status: error`; `error_type` and `message` are as it gave them.
    #[error("Prometheus at {address} answered HTTP {status} {error_type}: {message}")]
    Api {
        address: String,
        status: u16,
        error_type: String,
        message: String,
        query: String,
    },

    /// The answer is not the JSON the query API documents, or is too large.
    #[error("Prometheus at {address} sent an answer that cannot be read: {reason}")]
    Decode { address: String, reason: String },

    /// The query returned more than one series; a gate needs a single number.
    #[error(
        "Prometheus at {address}: query returned {count} series, expected 1; aggregate with sum() or similar"
    )]
    TooManySeries {
        address: String,
        count: usize,
        query: String,
    },

    /// A guardrail query returned a series without the label that names its cohort.
    #[error(
        "Prometheus at {address}: a series has no {label:?} label; a guardrail query needs one series per cohort, e.g. sum by ({label}) (…)"
    )]
    MissingLabel {
        address: String,
        label: &'static str,
        query: String,
    },

    /// The query returned a range vector, a string or a native histogram instead of a number.
    #[error("Prometheus at {address}: query returned {found}, expected one number; {hint}")]
    UnsupportedResult {
        address: String,
        found: String,
        hint: &'static str,
        query: String,
    },
}

impl PrometheusError {
    /// A short label for the `category` field of a failed query's log line. A failed query
    /// is an analysis outcome (`onError`), not a reconcile error, so
    /// `rollgate_reconcile_errors_total` never carries it.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidAddress { .. } | Self::Config { .. } | Self::TokenFile { .. } => {
                "prometheus_config"
            }
            Self::Timeout { .. } => "prometheus_timeout",
            Self::Connect { .. } | Self::Transport { .. } => "prometheus_connect",
            Self::Http { .. } => "prometheus_http",
            Self::Api { .. } => "prometheus_api",
            Self::Decode { .. } => "prometheus_response",
            Self::TooManySeries { .. }
            | Self::UnsupportedResult { .. }
            | Self::MissingLabel { .. } => "prometheus_result",
        }
    }

    /// Whether asking again later may succeed without anyone changing the spec or the config.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connect { .. } | Self::Transport { .. } => true,
            // A token being rotated can be missing for a moment.
            Self::TokenFile { .. } => true,
            Self::Http { status, .. } | Self::Api { status, .. } => {
                *status >= 500 || *status == 429
            }
            Self::InvalidAddress { .. }
            | Self::Config { .. }
            | Self::Decode { .. }
            | Self::TooManySeries { .. }
            | Self::MissingLabel { .. }
            | Self::UnsupportedResult { .. } => false,
        }
    }

    /// The address the error is about, as shown in messages.
    pub fn address(&self) -> &str {
        match self {
            Self::InvalidAddress { address, .. }
            | Self::Config { address, .. }
            | Self::TokenFile { address, .. }
            | Self::Timeout { address, .. }
            | Self::Connect { address, .. }
            | Self::Transport { address, .. }
            | Self::Http { address, .. }
            | Self::Api { address, .. }
            | Self::Decode { address, .. }
            | Self::TooManySeries { address, .. }
            | Self::MissingLabel { address, .. }
            | Self::UnsupportedResult { address, .. } => address,
        }
    }
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
