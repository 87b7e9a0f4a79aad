//! Exponential backoff with jitter for transient reconcile errors, per object, in memory.
//! Losing it on restart only resets the delay, never any rollout state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::watched::WatchedFlag;

/// Delays for the other transient reconcile errors (today the finalizer patch): 5 s
/// doubling to 5 min.
pub const TRANSIENT: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(300));

/// Delays for a failed step a publish waits on (the status write, the ConfigMap read or
/// write): 100 ms doubling to 5 s. The published document carries every flag's kill
/// switch, so a request that met one 504 must not wait as long as a broken setup.
pub const PUBLISH_PATH: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

pub struct Backoff {
    min: Duration,
    max: Duration,
    attempts: Mutex<HashMap<ObjectRef<WatchedFlag>, u32>>,
}

impl Backoff {
    /// Delays from `min`, doubling per attempt, capped at `max`.
    pub fn new((min, max): (Duration, Duration)) -> Self {
        Self {
            min,
            max,
            attempts: Mutex::default(),
        }
    }

    /// The delay before the next retry of `object`: `min`, `2·min`, `4·min` … capped at
    /// `max`, with ±20% jitter so that flags failing together do not retry together.
    pub fn next_delay(&self, object: &ObjectRef<WatchedFlag>) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = attempts.entry(object.clone()).or_insert(0);
        let delay = delay_for(
            self.min,
            self.max,
            *attempt,
            jitter_fraction(object, *attempt),
        );
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

/// `min · 2^attempt`, capped at `max`, scaled by `1 + jitter` with jitter in [-0.2, 0.2].
pub fn delay_for(min: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let base = min.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
    let capped = base.min(max.as_secs_f64());
    Duration::from_secs_f64(capped * (1.0 + jitter.clamp(-0.2, 0.2)))
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

    fn transient(attempt: u32, jitter: f64) -> Duration {
        delay_for(TRANSIENT.0, TRANSIENT.1, attempt, jitter)
    }

    fn publish_path(attempt: u32, jitter: f64) -> Duration {
        delay_for(PUBLISH_PATH.0, PUBLISH_PATH.1, attempt, jitter)
    }

    #[test]
    fn transient_doubles_from_five_seconds_to_five_minutes() {
        assert_eq!(transient(0, 0.0), Duration::from_secs(5));
        assert_eq!(transient(1, 0.0), Duration::from_secs(10));
        assert_eq!(transient(5, 0.0), Duration::from_secs(160));
        assert_eq!(transient(6, 0.0), Duration::from_secs(300));
        assert_eq!(transient(40, 0.0), Duration::from_secs(300));
        assert_eq!(transient(0, 0.2), Duration::from_secs(6));
        assert_eq!(transient(6, -0.2), Duration::from_secs(240));
    }

    #[test]
    fn publish_path_doubles_from_a_tenth_of_a_second_to_five_seconds() {
        assert_eq!(publish_path(0, 0.0), Duration::from_millis(100));
        assert_eq!(publish_path(1, 0.0), Duration::from_millis(200));
        assert_eq!(publish_path(5, 0.0), Duration::from_millis(3200));
        assert_eq!(publish_path(6, 0.0), Duration::from_secs(5));
        assert_eq!(publish_path(40, 0.3), Duration::from_secs(6));
        assert_eq!(publish_path(0, -0.2), Duration::from_millis(80));
    }

    #[test]
    fn attempts_grow_per_object_and_reset() {
        let backoff = Backoff::new(TRANSIENT);
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
