//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): only the holder
//! writes status, ConfigMaps and events.

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::OperatorError;

/// Seconds a lease stays valid after its last renewal; a crashed leader is replaced after it.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry at which the holder renews.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// Whether this replica may write, as a channel that changes when leadership does.
pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    /// The lease task; `None` when leader election is off.
    task: Option<JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
    /// Kept so that the constant "leader" channel of a single replica never closes.
    _always: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// A single replica without election: always the leader.
    pub fn always() -> Self {
        let (sender, receiver) = watch::channel(true);
        Self {
            is_leader: receiver,
            task: None,
            _always: Some(sender),
        }
    }

    /// Starts competing for the Lease `namespace/name` as `identity`.
    pub async fn elect(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> Result<Self, OperatorError> {
        let error = |message: String| OperatorError::LeaderElection {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message,
        };
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .with_field_manager(format!("rollgate-lease-{identity}"))
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .build()
            .await
            .map_err(|e| error(e.to_string()))?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self {
            is_leader,
            task: Some(task),
            _always: None,
        })
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// Gives the lease up so another replica takes over at once instead of after expiry.
    pub async fn release(self) {
        let Self {
            is_leader, task, ..
        } = self;
        // Closing the last receiver makes the lease task release the lock and finish.
        drop(is_leader);
        if let Some(task) = task {
            match task.await {
                Ok(Ok(_)) => tracing::info!("released the leader lease"),
                Ok(Err(error)) => tracing::warn!(%error, "releasing the leader lease failed"),
                Err(error) => tracing::warn!(%error, "lease task ended abnormally"),
            }
        }
    }
}
