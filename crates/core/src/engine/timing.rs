//! Time arithmetic on the `now` the caller passes in; the engine never reads a clock.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// `now` rounded down to a whole second.
///
/// Status timestamps serialize with whole seconds, so the engine works in whole seconds:
/// otherwise a status that went through JSON would compare differently from the one it
/// came from.
pub(crate) fn whole_seconds(now: Timestamp) -> Timestamp {
    let mut second = now.as_second();
    if now.subsec_nanosecond() < 0 {
        second -= 1;
    }
    Timestamp::from_second(second).unwrap_or(now)
}

/// `at + duration`, saturating at the largest timestamp instead of failing.
pub(crate) fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at.saturating_add(duration).unwrap_or(Timestamp::MAX)
}

/// The first second at or after `earliest` on the flag's analysis grid: one point every
/// `interval` (whole seconds), offset from the Unix epoch by `seed % interval`. Flags with
/// the same interval get different offsets, so their analyses spread over the interval
/// instead of firing together; one flag's analyses stay exactly one interval apart.
pub fn on_grid(earliest: Timestamp, interval: Duration, seed: u64) -> Timestamp {
    let period = interval.as_secs();
    if period <= 1 {
        return earliest;
    }
    let offset = i64::try_from(seed % period).unwrap_or_default();
    let period = i64::try_from(period).unwrap_or(i64::MAX);
    let shift = offset
        .saturating_sub(earliest.as_second())
        .rem_euclid(period);
    after(earliest, Duration::from_secs(shift.unsigned_abs()))
}

/// The flag's slot for an analysis due at `due_at`: the first point at or after it on the
/// grid [`on_grid`] draws with a seed from `sha256("<namespace>/<name>")`. The controller
/// runs a due analysis at its slot, so flags that became due together query Prometheus
/// spread over their interval; the engine's own due times stay as `docs/rollout.md` says.
pub fn analysis_slot(
    due_at: Timestamp,
    interval: Duration,
    namespace: &str,
    name: &str,
) -> Timestamp {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(namespace.as_bytes())
        .chain_update(b"/")
        .chain_update(name.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    on_grid(due_at, interval, u64::from_be_bytes(first))
}

/// The time from `now` until `later`, zero if `later` has passed.
pub fn until(now: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_keeps_one_interval_between_analyses_and_spreads_flags() {
        let minute = Duration::from_secs(60);
        let start = Timestamp::from_second(1_800_000_000).expect("valid");
        // seed 7: points at …:07 of every minute (1_800_000_000 is …:00).
        let first = on_grid(start, minute, 7);
        assert_eq!(first.as_second(), 1_800_000_007);
        assert_eq!(on_grid(first, minute, 7), first);
        assert_eq!(
            on_grid(after(first, minute), minute, 7).as_second(),
            1_800_000_067
        );
        // A point just past the grid waits for the next one.
        assert_eq!(
            on_grid(
                Timestamp::from_second(1_800_000_008).expect("valid"),
                minute,
                7
            )
            .as_second(),
            1_800_000_067
        );
        // Every second of the minute is some seed's offset.
        let offsets: std::collections::BTreeSet<i64> = (0..600u64)
            .map(|seed| on_grid(start, minute, seed).as_second() - 1_800_000_000)
            .collect();
        assert_eq!(offsets.len(), 60);
        // One-second intervals have no grid.
        assert_eq!(on_grid(start, Duration::from_secs(1), 7), start);
    }

    #[test]
    fn rounds_down_on_both_sides_of_the_epoch() {
        let t = Timestamp::new(10, 600_000_000).unwrap();
        assert_eq!(whole_seconds(t), Timestamp::from_second(10).unwrap());
        let t = Timestamp::new(-10, -600_000_000).unwrap();
        assert_eq!(whole_seconds(t), Timestamp::from_second(-11).unwrap());
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_second(100).unwrap();
        assert_eq!(after(t, Duration::MAX), Timestamp::MAX);
        assert_eq!(
            until(t, Timestamp::from_second(40).unwrap()),
            Duration::ZERO
        );
        assert_eq!(
            until(t, Timestamp::from_second(160).unwrap()),
            Duration::from_secs(60)
        );
    }
}
