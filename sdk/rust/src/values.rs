//! The two value syntaxes of targeting conditions (`docs/targeting.md`): decimal numbers and
//! versions. Shared by the document check, which refuses values that do not parse, and by
//! the compiled rules, which parse values once and context attributes on each evaluation
//! (without allocating).

use std::cmp::Ordering;

/// A decimal number `-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`, read as the nearest double.
///
/// The grammar is checked here because `f64::from_str` also takes `inf`, `NaN`, `+1`, `.5`
/// and `1.`, which another SDK's reader would not read alike.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at > start
    };
    if !digits(&mut at) {
        return None;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if !digits(&mut at) {
            return None;
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'-' | b'+')) {
            at += 1;
        }
        if !digits(&mut at) {
            return None;
        }
    }
    if at != bytes.len() {
        return None;
    }
    text.parse().ok()
}

/// A version `MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`, a missing minor or patch read as
/// `0`. The parts are kept as ASCII bytes: numbers of any length compare exactly, by length
/// and then digit by digit (they have no leading zeros). Build metadata is checked and then
/// dropped, as precedence ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version<'a> {
    pub(crate) major: &'a [u8],
    pub(crate) minor: &'a [u8],
    pub(crate) patch: &'a [u8],
    /// The dot-separated pre-release identifiers, or `None` for a release.
    pub(crate) pre: Option<&'a [u8]>,
}

impl<'a> Version<'a> {
    /// The version in `text`, or `None` when `text` is not one. One pass over the bytes: an
    /// attribute is parsed on every evaluation of a version condition. Inline, so that the
    /// parts stay in registers instead of a returned struct copied through the stack.
    #[inline]
    pub(crate) fn parse(text: &'a [u8]) -> Option<Self> {
        let bytes = text;
        let mut at = 0;
        // A number without a leading zero, ending at `.`, `-`, `+` or the end.
        let number = |at: &mut usize| {
            let start = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            let part = &text[start..*at];
            is_number(part).then_some(part)
        };
        let major = number(&mut at)?;
        let mut minor: &[u8] = b"0";
        let mut patch: &[u8] = b"0";
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            minor = number(&mut at)?;
            if bytes.get(at) == Some(&b'.') {
                at += 1;
                patch = number(&mut at)?;
            }
        }
        let mut pre = None;
        if bytes.get(at) == Some(&b'-') {
            let start = at + 1;
            at = start;
            while bytes.get(at).is_some_and(|&byte| byte != b'+') {
                at += 1;
            }
            let part = &text[start..at];
            if !part
                .split(|&byte| byte == b'.')
                .all(|id| is_identifier(id) && (!is_digits(id) || is_number(id)))
            {
                return None;
            }
            pre = Some(part);
        }
        match bytes.get(at) {
            None => {}
            Some(b'+')
                if text[at + 1..]
                    .split(|&byte| byte == b'.')
                    .all(is_identifier) => {}
            Some(_) => return None,
        }
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// Semantic Versioning 2.0.0 §11 precedence.
    #[inline]
    pub(crate) fn precedence(&self, other: &Version<'_>) -> Ordering {
        compare_numbers(self.major, other.major)
            .then_with(|| compare_numbers(self.minor, other.minor))
            .then_with(|| compare_numbers(self.patch, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                // A pre-release is lower than its release.
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(mine), Some(theirs)) => compare_pre_releases(mine, theirs),
            })
    }
}

/// Identifier by identifier; a shorter list is lower when all before it are equal.
fn compare_pre_releases(mine: &[u8], theirs: &[u8]) -> Ordering {
    let mut mine = mine.split(|&byte| byte == b'.');
    let mut theirs = theirs.split(|&byte| byte == b'.');
    loop {
        let ordering = match (mine.next(), theirs.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => match (is_digits(a), is_digits(b)) {
                (true, true) => compare_numbers(a, b),
                // Numeric identifiers are lower than alphanumeric ones.
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => a.cmp(b),
            },
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
}

/// Decimal numbers without leading zeros: the longer is larger, else the first digit that
/// differs decides.
/// A loop rather than `Ord` for slices, whose `memcmp` call costs more than the few digits.
#[inline]
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.cmp(y))
            .find(|ordering| ordering.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

fn is_digits(part: &[u8]) -> bool {
    !part.is_empty() && part.iter().all(u8::is_ascii_digit)
}

/// Digits with no leading zero (`0` alone is fine).
fn is_number(part: &[u8]) -> bool {
    is_digits(part) && (part == b"0" || part[0] != b'0')
}

fn is_identifier(part: &[u8]) -> bool {
    !part.is_empty()
        && part
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_grammar() {
        for (text, value) in [
            ("0", 0.0),
            ("-12", -12.0),
            ("3.25", 3.25),
            ("1e3", 1000.0),
            ("2.5E-1", 0.25),
            ("7e+2", 700.0),
            ("007", 7.0),
        ] {
            assert_eq!(parse_decimal(text), Some(value), "{text}");
        }
        for text in [
            "", "-", "+1", ".5", "1.", "1e", "1e+", "inf", "NaN", " 1", "1 ", "1_000", "0x10",
            "--1", "1.2.3",
        ] {
            assert_eq!(parse_decimal(text), None, "{text:?}");
        }
    }

    fn version(text: &str) -> Version<'_> {
        Version::parse(text.as_bytes()).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn versions_follow_the_grammar() {
        for text in [
            "4",
            "4.2",
            "4.2.1",
            "0.0.0",
            "4.2-rc.1",
            "1.0.0-alpha-1.0",
            "1.0.0+build.007",
            "1.0.0-0.3.7",
            "1.0.0--",
            "123456789012345678901234567890.0.0",
        ] {
            assert!(Version::parse(text.as_bytes()).is_some(), "{text}");
        }
        for text in [
            "",
            "v1.0.0",
            "1.",
            "1..0",
            "01.0.0",
            "1.02",
            "1.0.0.0",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0-a..b",
            "1.0.0+",
            "1.0.0+a_b",
            " 1.0.0",
            "1.0.0 ",
            "1.x",
            "-1.0.0",
        ] {
            assert!(Version::parse(text.as_bytes()).is_none(), "{text:?}");
        }
    }

    #[test]
    fn precedence_is_semver_section_11() {
        // The chain of §11's example, then the missing parts and huge numbers.
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1",
            "2",
            "2.0.1",
            "10.0.0",
            "99999999999999999999.0.0",
            "100000000000000000000.0.0",
        ];
        for pair in ascending.windows(2) {
            let (low, high) = (version(pair[0]), version(pair[1]));
            assert_eq!(low.precedence(&high), Ordering::Less, "{pair:?}");
            assert_eq!(high.precedence(&low), Ordering::Greater, "{pair:?}");
        }
        for (a, b) in [("4.2", "4.2.0"), ("4", "4.0.0"), ("4.2.0+abc", "4.2")] {
            assert_eq!(version(a).precedence(&version(b)), Ordering::Equal);
        }
        assert_eq!(version("4.2.0-rc.1+x"), version("4.2.0-rc.1"));
    }
}
