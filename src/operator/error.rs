//! Errors of the operator layer. Each names what failed; `category()` labels the
//! `rollgate_reconcile_errors_total` metric, and `is_transient()` drives the retry policy.

use crate::prometheus::PrometheusError;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("FeatureFlag {namespace}/{name}: spec is invalid: {message}")]
    InvalidSpec {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("FeatureFlag {namespace}/{name}: writing status failed: {source}")]
    StatusWrite {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("Segment {namespace}/{name}: writing status failed: {source}")]
    SegmentStatusWrite {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("ConfigMap {namespace}/{name}: {action} failed: {source}")]
    ConfigMap {
        namespace: String,
        name: String,
        action: &'static str,
        source: Box<kube::Error>,
    },
    #[error("FeatureFlag {namespace}/{name}: finalizer: {message}")]
    Finalizer {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("Prometheus client for {address}: {source}")]
    Prometheus {
        address: String,
        source: Box<PrometheusError>,
    },
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("Kubernetes client setup: {0}")]
    KubeConfig(String),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("HTTP server on {address}: {source}")]
    Http {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election on Lease {namespace}/{name}: {message}")]
    LeaderElection {
        namespace: String,
        name: String,
        message: String,
    },
}

impl OperatorError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidSpec { .. } => "invalid_spec",
            Self::StatusWrite { .. } => "status_write",
            Self::SegmentStatusWrite { .. } => "segment_status_write",
            Self::ConfigMap { .. } => "configmap",
            Self::Finalizer { .. } => "finalizer",
            Self::Prometheus { .. } => "prometheus",
            Self::MissingMetadata(_) => "metadata",
            Self::KubeConfig(_) => "kubeconfig",
            Self::Metrics(_) => "metrics",
            Self::Http { .. } => "http",
            Self::LeaderElection { .. } => "leader_election",
        }
    }

    /// A failed step that the flag's publish waits on: the status write or a ConfigMap
    /// request. These retry within seconds, the others with the slower backoff.
    pub fn is_on_publish_path(&self) -> bool {
        matches!(self, Self::StatusWrite { .. } | Self::ConfigMap { .. })
    }

    /// The API server refused a ConfigMap write because the namespace is being deleted:
    /// the ConfigMap goes with it, so there is nothing left to publish.
    pub fn is_namespace_terminating(&self) -> bool {
        let Self::ConfigMap { source, .. } = self else {
            return false;
        };
        let kube::Error::Api(status) = &**source else {
            return false;
        };
        status.code == 403
            && status.details.as_ref().is_some_and(|details| {
                details
                    .causes
                    .iter()
                    .any(|cause| cause.reason == "NamespaceTerminating")
            })
    }

    /// Worth retrying with backoff; the others wait for the object to change.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::InvalidSpec { .. } | Self::MissingMetadata(_))
    }
}
