//! Exponential backoff with jitter for transient reconcile errors, per object, in memory.
//! Losing it on restart only resets the delay, never any rollout state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::watched::WatchedFlag;

pub const MIN_DELAY: Duration = Duration::from_secs(5);
pub const MAX_DELAY: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Backoff {
    attempts: Mutex<HashMap<ObjectRef<WatchedFlag>, u32>>,
}

impl Backoff {
    /// The delay before the next retry of `object`: 5 s, 10 s, 20 s … capped at 5 min, with
    /// ±20% jitter so that flags failing together do not retry together.
    pub fn next_delay(&self, object: &ObjectRef<WatchedFlag>) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = attempts.entry(object.clone()).or_insert(0);
        let delay = delay_for(*attempt, jitter_fraction(object, *attempt));
        *attempt = attempt.saturating_add(1);
        delay
    }

    /// Forgets the failures of `object` after a successful reconcile.
    pub fn reset(&self, object: &ObjectRef<WatchedFlag>) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(object);
    }
}

/// `MIN_DELAY · 2^attempt`, capped, scaled by `1 + jitter` with jitter in [-0.2, 0.2].
pub fn delay_for(attempt: u32, jitter: f64) -> Duration {
    let base = MIN_DELAY.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
    let capped = base.min(MAX_DELAY.as_secs_f64());
    Duration::from_secs_f64((capped * (1.0 + jitter.clamp(-0.2, 0.2))).max(1.0))
}

/// Deterministic per-object jitter from a hash of the object and the attempt, so the policy
/// needs no random number generator and tests can predict it.
fn jitter_fraction(object: &ObjectRef<WatchedFlag>, attempt: u32) -> f64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    object.hash(&mut hasher);
    attempt.hash(&mut hasher);
    (hasher.finish() % 4001) as f64 / 10_000.0 - 0.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_to_five_minutes() {
        assert_eq!(delay_for(0, 0.0), Duration::from_secs(5));
        assert_eq!(delay_for(1, 0.0), Duration::from_secs(10));
        assert_eq!(delay_for(5, 0.0), Duration::from_secs(160));
        assert_eq!(delay_for(6, 0.0), Duration::from_secs(300));
        assert_eq!(delay_for(40, 0.0), Duration::from_secs(300));
        assert_eq!(delay_for(0, 0.2), Duration::from_secs(6));
        assert_eq!(delay_for(6, -0.2), Duration::from_secs(240));
    }

    #[test]
    fn attempts_grow_per_object_and_reset() {
        let backoff = Backoff::default();
        let a = ObjectRef::new("a").within("ns");
        let b = ObjectRef::new("b").within("ns");
        let first = backoff.next_delay(&a);
        let second = backoff.next_delay(&a);
        assert!(second > first, "{first:?} then {second:?}");
        assert!(backoff.next_delay(&b) < Duration::from_secs(7));
        backoff.reset(&a);
        assert!(backoff.next_delay(&a) < Duration::from_secs(7));
    }
}
