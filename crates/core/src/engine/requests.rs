//! Manual requests: the annotation `rollgate.dev/request: <verb>/<id>`.

use std::collections::BTreeMap;
use std::fmt;

use crate::crd::REQUEST_ANNOTATION;

/// What a person can ask of a flag at runtime, without touching its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Pause,
    Resume,
    Promote,
    PromoteFull,
    Abort,
    Retry,
    Kill,
    Unkill,
}

impl Verb {
    pub const ALL: [Verb; 8] = [
        Verb::Pause,
        Verb::Resume,
        Verb::Promote,
        Verb::PromoteFull,
        Verb::Abort,
        Verb::Retry,
        Verb::Kill,
        Verb::Unkill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Promote => "promote",
            Self::PromoteFull => "promote-full",
            Self::Abort => "abort",
            Self::Retry => "retry",
            Self::Kill => "kill",
            Self::Unkill => "unkill",
        }
    }

    pub fn parse(text: &str) -> Option<Verb> {
        Self::ALL.into_iter().find(|verb| verb.as_str() == text)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request as written in the annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The part after the first `/`; the whole value when the value has no `/`.
    pub id: String,
    /// The part before the first `/` as written.
    pub verb_text: String,
    /// `None` for an unknown verb or a value that is not `<verb>/<id>`.
    pub verb: Option<Verb>,
}

/// The request in the annotations, if there is a non-empty one.
pub fn request_from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Option<Request> {
    annotations?
        .get(REQUEST_ANNOTATION)
        .and_then(|value| parse_request(value))
}

/// Parses `<verb>/<id>`. An empty value is no request; anything else is a request, so a
/// malformed one is handled once (and reported) instead of on every call.
pub fn parse_request(value: &str) -> Option<Request> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let request = match value.split_once('/') {
        Some((verb, id)) if !id.trim().is_empty() => Request {
            id: id.trim().to_string(),
            verb_text: verb.trim().to_string(),
            verb: Verb::parse(verb.trim()),
        },
        _ => Request {
            id: value.to_string(),
            verb_text: value.to_string(),
            verb: None,
        },
    };
    Some(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_verb_and_keeps_slashes_in_the_id() {
        for verb in Verb::ALL {
            let request = parse_request(&format!("{verb}/2024-05-01T10:00:00Z")).unwrap();
            assert_eq!(request.verb, Some(verb));
            assert_eq!(request.id, "2024-05-01T10:00:00Z");
        }
        let request = parse_request("promote/a/b").unwrap();
        assert_eq!(
            (request.verb, request.id.as_str()),
            (Some(Verb::Promote), "a/b")
        );
    }

    #[test]
    fn malformed_values_are_requests_with_no_verb() {
        assert_eq!(parse_request("  "), None);
        for value in ["promote", "promote/", "Promote/1", "explode/1"] {
            let request = parse_request(value).unwrap();
            assert_eq!(request.verb, None, "{value}");
            assert!(!request.id.is_empty(), "{value}");
        }
    }
}
