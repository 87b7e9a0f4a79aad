//! What can go wrong in `kubectl rollgate`, as plain sentences, and the exit code of each.

/// Exit code when a request was refused, ignored or not handled in time, or the API failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad input: arguments, kubeconfig, context, or a flag that does not exist.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    BadInput(String),

    /// The kubeconfig or its credentials; the text is a whole sentence.
    #[error("{0}")]
    Kubeconfig(String),

    #[error("context '{0}' not found in the kubeconfig")]
    ContextNotFound(String),

    #[error("flag '{name}' not found in namespace '{namespace}'")]
    NotFound { name: String, namespace: String },

    #[error(
        "the FeatureFlag CRD (featureflags.rollgate.dev) is not installed in this cluster; \
         install Rollgate first (docs/install.md)"
    )]
    CrdMissing,

    #[error("you are not allowed to {verb} {what}: {message}")]
    Forbidden {
        verb: &'static str,
        what: String,
        message: String,
    },

    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(String),

    #[error("the Kubernetes API server refused to {verb} {what}: {message}")]
    Api {
        verb: &'static str,
        what: String,
        message: String,
    },

    #[error("{verb} was refused for flag '{name}' in namespace '{namespace}': {message}")]
    Refused {
        verb: String,
        name: String,
        namespace: String,
        message: String,
    },

    #[error("the operator ignored the request {request} on flag '{name}': {message}")]
    Ignored {
        request: String,
        name: String,
        message: String,
    },

    #[error(
        "no operator handled the request within {timeout}; is rollgate operator running?\n\
         The annotation {annotation}={request} stays on flag '{name}' in namespace \
         '{namespace}': an operator that starts later still acts on it."
    )]
    NotHandled {
        timeout: String,
        annotation: &'static str,
        request: String,
        name: String,
        namespace: String,
    },

    #[error(
        "the request {request} was replaced by {other} on flag '{name}' before an operator \
         handled it; check `kubectl rollgate status {name}`"
    )]
    Superseded {
        request: String,
        other: String,
        name: String,
    },

    #[error("flag '{name}' was deleted from namespace '{namespace}' while waiting")]
    Deleted { name: String, namespace: String },

    #[error(
        "flag '{name}' in namespace '{namespace}' cannot be read by this plugin: {message}; \
         is kubectl-rollgate older than the CRD?"
    )]
    Unreadable {
        name: String,
        namespace: String,
        message: String,
    },

    #[error("cannot print the output: {0}")]
    Output(String),

    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
}

impl PluginError {
    /// A short label for logs and scripts, as every error of the project has.
    pub fn category(&self) -> &'static str {
        match self {
            Self::BadInput(_) => "bad_input",
            Self::Kubeconfig(_) => "kubeconfig",
            Self::ContextNotFound(_) => "context_not_found",
            Self::NotFound { .. } => "not_found",
            Self::CrdMissing => "crd_missing",
            Self::Forbidden { .. } => "forbidden",
            Self::Unreachable(_) => "unreachable",
            Self::Api { .. } => "api",
            Self::Refused { .. } => "request_refused",
            Self::Ignored { .. } => "request_ignored",
            Self::NotHandled { .. } => "request_not_handled",
            Self::Superseded { .. } => "request_superseded",
            Self::Deleted { .. } => "deleted",
            Self::Unreadable { .. } => "unreadable",
            Self::Output(_) => "output",
            Self::Stdout(_) => "stdout",
        }
    }

    /// 2 for bad input and a flag that is not there; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_)
            | Self::Kubeconfig(_)
            | Self::ContextNotFound(_)
            | Self::NotFound { .. }
            | Self::CrdMissing => EXIT_BAD_INPUT,
            _ => EXIT_FAILED,
        }
    }
}
