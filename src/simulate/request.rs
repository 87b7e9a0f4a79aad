//! Manual requests on a virtual clock: what a requests file parses into and the driver
//! replays.

use jiff::Timestamp;
use serde::Serialize;

use rollgate_core::engine::Verb;

/// A manual request replayed at a virtual time, as if someone had set the annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRequest {
    pub time: Timestamp,
    #[serde(serialize_with = "serialize_verb")]
    pub verb: Verb,
    /// The line of the requests file, for messages and the request's id; 0 when made in
    /// code.
    pub line: u64,
}

fn serialize_verb<S: serde::Serializer>(verb: &Verb, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(verb.as_str())
}
