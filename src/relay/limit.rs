//! The per-client request limit: `--rate-limit N/s` or `N/m`, a keyed GCRA from `governor`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Requests per client per period, with bursts of the same size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: NonZeroU32,
    pub per: Duration,
}

/// Parses `N/s`, `N/m` or a bare `N` (per second).
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (count, unit) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        other => {
            return Err(format!(
                "unknown period {other:?} in {text:?}; use N/s or N/m"
            ));
        }
    };
    let requests = count
        .trim()
        .parse::<NonZeroU32>()
        .map_err(|error| format!("{text:?}: the count must be a whole number above 0 ({error})"))?;
    Ok(RateLimit { requests, per })
}

/// The keyed limiter and its clock.
pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        let quota = if limit.per == Duration::from_secs(1) {
            Quota::per_second(limit.requests)
        } else {
            Quota::per_minute(limit.requests)
        };
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota.allow_burst(limit.requests)),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` if `key` may make a request now, else the whole seconds to wait (at least 1) for
    /// `Retry-After`.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(secs.max(1))
            }
        }
    }

    /// Forgets clients whose allowance is full again, so the key table stays bounded.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_per_second_and_minute() {
        let limit = parse_rate_limit("20/s").unwrap();
        assert_eq!(
            (limit.requests.get(), limit.per),
            (20, Duration::from_secs(1))
        );
        assert_eq!(parse_rate_limit("5").unwrap().per, Duration::from_secs(1));
        assert_eq!(
            parse_rate_limit("600/m").unwrap().per,
            Duration::from_secs(60)
        );
        assert!(parse_rate_limit("0/s").is_err());
        assert!(parse_rate_limit("x/s").is_err());
        assert!(
            parse_rate_limit("5/h")
                .unwrap_err()
                .contains("unknown period")
        );
    }

    #[test]
    fn a_client_over_its_burst_waits_and_others_do_not() {
        let limiter = Limiter::new(parse_rate_limit("3/m").unwrap());
        for _ in 0..3 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
        let wait = limiter.check("a").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limiter.check("b"), Ok(()));
        limiter.forget_idle();
    }
}
