//! The versions `SemverLt`, `SemverGte` and `SemverEq` compare (`docs/targeting.md`,
//! "Versions"): Semantic Versioning 2.0.0, except that a missing minor or patch reads as 0.

use std::cmp::Ordering;
use std::fmt;

/// A parsed version. Build metadata is checked but not kept: it never affects precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre_release: Vec<Identifier>,
}

/// One dot-separated pre-release identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identifier {
    Numeric(u64),
    Alphanumeric(String),
}

/// Why a string is not a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a version (MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]): {}",
            self.text, self.reason
        )
    }
}

impl std::error::Error for VersionError {}

impl Version {
    /// Parses `MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let error = |reason| VersionError {
            text: text.to_string(),
            reason,
        };
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        if let Some(build) = build
            && !build.split('.').all(is_identifier)
        {
            return Err(error(
                "build identifiers are non-empty runs of 0-9, A-Z, a-z or '-'",
            ));
        }
        let (core, pre_release) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut numbers = [0u64; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 {
            return Err(error("at most three numeric parts"));
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            *slot = numeric(part)
                .ok_or_else(|| error("numeric parts are ASCII digits with no leading zero"))?;
        }
        let pre_release = match pre_release {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|part| {
                    if !is_identifier(part) {
                        Err(error(
                            "pre-release identifiers are non-empty runs of 0-9, A-Z, a-z or '-'",
                        ))
                    } else if part.bytes().all(|b| b.is_ascii_digit()) {
                        numeric(part).map(Identifier::Numeric).ok_or_else(|| {
                            error("a numeric pre-release identifier has no leading zero")
                        })
                    } else {
                        Ok(Identifier::Alphanumeric(part.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        let [major, minor, patch] = numbers;
        Ok(Self {
            major,
            minor,
            patch,
            pre_release,
        })
    }
}

/// ASCII digits with no leading zero (`0` alone is fine), within `u64`.
fn numeric(part: &str) -> Option<u64> {
    let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = part.len() > 1 && part.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    part.parse().ok()
}

fn is_identifier(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Ord for Identifier {
    /// Numeric identifiers compare numerically and below alphanumeric ones, which compare
    /// in ASCII order.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Numeric(a), Self::Numeric(b)) => a.cmp(b),
            (Self::Numeric(_), Self::Alphanumeric(_)) => Ordering::Less,
            (Self::Alphanumeric(_), Self::Numeric(_)) => Ordering::Greater,
            (Self::Alphanumeric(a), Self::Alphanumeric(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// SemVer 2.0.0 §11 precedence.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| {
                match (self.pre_release.is_empty(), other.pre_release.is_empty()) {
                    (true, true) => Ordering::Equal,
                    // A pre-release is lower than its release.
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    // Element by element; a shorter list is lower when all before it agree.
                    (false, false) => self.pre_release.cmp(&other.pre_release),
                }
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn missing_parts_read_as_zero_and_build_is_ignored() {
        assert_eq!(v("4"), v("4.0.0"));
        assert_eq!(v("4.2"), v("4.2.0"));
        assert_eq!(v("4.2.0+abc").cmp(&v("4.2")), Ordering::Equal);
    }

    #[test]
    fn precedence_follows_semver_section_11() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.2",
            "1.10.0",
            "2",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert!(v("4.2.0-rc.1") < v("4.2"));
    }

    #[test]
    fn malformed_versions_are_refused_with_the_reason() {
        for text in [
            "",
            "v1.2",
            "1.2.3.4",
            "01.2",
            "1.02",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "1..2",
            "1.2 ",
            "1.2.3-a_b",
            "1.x",
            "99999999999999999999",
        ] {
            let error = Version::parse(text).unwrap_err();
            assert!(error.to_string().contains("is not a version"), "{text}");
        }
        assert!(Version::parse("1.0.0-0.3.7").is_ok());
        assert!(Version::parse("1.0.0-x-y-z.--+b.2-x").is_ok());
    }
}
