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

/// The time from `now` until `later`, zero if `later` has passed.
pub(crate) fn until(now: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

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
