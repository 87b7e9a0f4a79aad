//! Duration strings of the spec (`30s`, `10m`, `1h30m`, `14d`).

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 30s, 10m, 1h30m, 14d)")]
pub struct DurationError {
    pub input: String,
    pub reason: String,
}

/// Parses `<number><unit>` groups with units ms, s, m, h, d: exactly the CRD's pattern
/// `^([0-9]+(ms|s|m|h|d))+$`, so offline checks and the API server agree.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let error = |reason: &str| DurationError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(error("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(error("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| error("number too large"))?;
        rest = &rest[digits..];
        let (unit, millis) = [
            ("ms", 1u64),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .ok_or_else(|| error("unknown or missing unit; use ms, s, m, h or d"))?;
        rest = &rest[unit.len()..];
        let part = number
            .checked_mul(millis)
            .ok_or_else(|| error("duration too large"))?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(|| error("duration too large"))?;
    }
    Ok(total)
}

/// Formats a duration compactly (`1h30m`, `45s`), the inverse of [`parse_duration`] for whole seconds.
pub fn format_duration(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if seconds == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_examples() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(
            parse_duration("14d").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        for bad in ["", "10", "1 h", "-5m", "5x", "1.5h", "5min", "h"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["30s", "10m", "1h30m", "14d", "1d2h3m4s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
