//! How the operator marks what it owns on the API server.

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "rollgate";
/// Finalizer that lets a deleted flag leave the published document first.
pub const FINALIZER: &str = "rollgate.dev/unpublish";
