//! The workload client: the flags a source keeps current, read without locks.
//!
//! One [`Flags`] handle holds an [`ArcSwap`] of an immutable [`FlagSnapshot`]. A source (the
//! mounted file of [`Flags::load`], or the ConfigMap watch of `Flags::watch_configmap` under
//! the `kube` feature) parses each new document off the evaluation path and swaps the pointer;
//! evaluation reads the current snapshot through this thread's arc-swap cache (plain loads,
//! never a lock) and runs the core rules of [`crate::eval`], so it never waits for a reload,
//! sees a swap on its very next call, and every source shares the same evaluation code.
//!
//! A document that fails to read or parse never replaces the last good one: the error is
//! logged through `tracing`, counted by [`Flags::reload_errors`] and kept in
//! [`Flags::last_reload_error`]. There is no state in which a `Flags` serves an empty set
//! because a reload failed: a `Flags` exists only once a first document has been accepted.

#[cfg(feature = "kube")]
mod configmap;
#[cfg(feature = "reload")]
mod file;
mod flags;

#[cfg(feature = "kube")]
pub use configmap::{document_from_configmap, flag_set_from_configmap};
#[cfg(feature = "reload")]
pub use file::{DEFAULT_FLAGS_PATH, DEFAULT_POLL_INTERVAL, FLAGS_PATH_ENV, LoadOptions};
pub use flags::{
    ClientFlagSet, DEFAULT_CONFIGMAP, FLAGS_KEY, FlagEvaluation, FlagSnapshot, Flags, FlagsChanged,
    FlagsError, SnapshotGuard,
};
