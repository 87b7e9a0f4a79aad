//! `promote [--full]`, `pause`, `resume`, `abort`, `retry`, `kill`, `unkill`.
//!
//! Each writes `rollgate.dev/request: <verb>/<id>` with a merge patch, with a fresh id
//! (Unix time in milliseconds and the PID), then reads the flag until
//! `status.lastRequest.id` is that id, and reports the outcome the operator recorded:
//! applied (exit 0), refused or ignored (exit 1, with the operator's reason). The
//! plugin never judges a request itself: the engine is the one place that decides.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::args::{GlobalArgs, RequestArgs};
use super::client::{Cluster, Fetched};
use super::error::PluginError;
use super::output::print_output;
use super::render::{self, percent_text, step_text};
use rollgate_core::crd::{FeatureFlag, REQUEST_ANNOTATION, RequestOutcome, RequestRecord};
use rollgate_core::engine::{EventReason, Verb};

/// How often the flag is read while waiting for the outcome.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    cluster: &Cluster,
    global: &GlobalArgs,
    verb: Verb,
    args: &RequestArgs,
) -> Result<(), PluginError> {
    let namespace = cluster.namespace(global);
    let name = args.name.as_str();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let id = request_id(unix_ms, std::process::id());
    let value = format!("{verb}/{id}");
    // A missing flag fails here with the not-found sentence; nothing else is written.
    cluster.write_request(&namespace, name, &value).await?;

    let deadline = Instant::now() + args.timeout;
    let (Fetched { flag, raw }, record) = loop {
        let fetched = match cluster.get_flag(&namespace, name).await {
            Ok(fetched) => fetched,
            Err(PluginError::NotFound { name, namespace }) => {
                return Err(PluginError::Deleted { name, namespace });
            }
            Err(error) => return Err(error),
        };
        match request_state(&fetched.flag, &id, &value) {
            RequestState::Handled(record) => break (fetched, record),
            RequestState::Replaced(other) => {
                return Err(PluginError::Superseded {
                    request: value,
                    other,
                    name: name.to_string(),
                });
            }
            RequestState::Pending => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(PluginError::NotHandled {
                timeout: render::countdown(args.timeout),
                annotation: REQUEST_ANNOTATION,
                request: value,
                name: name.to_string(),
                namespace,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    };

    match record.outcome {
        RequestOutcome::Applied => print_output(
            global.output,
            || describe_applied(&flag, &record),
            || render::object_value(&raw),
        ),
        RequestOutcome::Refused => {
            let mut message = refusal_reason(&record);
            if message.is_empty() {
                message = reason_from_events(cluster, &flag).await;
            }
            Err(PluginError::Refused {
                verb: verb.to_string(),
                name: name.to_string(),
                namespace,
                message,
            })
        }
        RequestOutcome::Ignored => Err(PluginError::Ignored {
            request: value,
            name: name.to_string(),
            message: record.message.clone(),
        }),
    }
}

/// The message of the newest refusal event, for an operator that left
/// `status.lastRequest.message` empty.
async fn reason_from_events(cluster: &Cluster, flag: &FeatureFlag) -> String {
    let events = cluster.events_for(flag).await.unwrap_or_default();
    events
        .iter()
        .rev()
        .find(|e| {
            e.reason
                .as_deref()
                .and_then(|r| r.parse::<EventReason>().ok())
                .is_some_and(EventReason::is_refusal)
        })
        .and_then(|e| e.message.clone())
        .unwrap_or_else(|| "the operator gave no reason".to_string())
}

/// A fresh request id: Unix time in milliseconds and the PID, e.g. `1715000000000-4242`.
/// Two commands in the same millisecond on one machine have different PIDs.
pub fn request_id(unix_ms: u128, pid: u32) -> String {
    format!("{unix_ms}-{pid}")
}

/// Where a request stands on a flag read back from the API.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestState {
    /// `status.lastRequest.id` is ours: the operator recorded this outcome.
    Handled(RequestRecord),
    /// Not handled yet, and the annotation still holds our request.
    Pending,
    /// Someone wrote another request over ours before we saw ours handled.
    Replaced(String),
}

pub fn request_state(flag: &FeatureFlag, id: &str, value: &str) -> RequestState {
    let handled = flag
        .status
        .as_ref()
        .and_then(|s| s.last_request.as_ref())
        .filter(|r| r.id == id);
    if let Some(record) = handled {
        return RequestState::Handled(record.clone());
    }
    let annotation = flag
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUEST_ANNOTATION));
    match annotation {
        Some(current) if current.trim() != value => RequestState::Replaced(current.clone()),
        _ => RequestState::Pending,
    }
}

/// The operator's reason without its `<verb> refused: ` prefix.
pub fn refusal_reason(record: &RequestRecord) -> String {
    let prefix = format!("{} refused: ", record.verb);
    record
        .message
        .strip_prefix(&prefix)
        .unwrap_or(&record.message)
        .to_string()
}

/// What `promote`, `pause`, … print when the operator applied the request.
pub fn describe_applied(flag: &FeatureFlag, record: &RequestRecord) -> String {
    let name = flag.metadata.name.as_deref().unwrap_or_default();
    let namespace = flag.metadata.namespace.as_deref().unwrap_or_default();
    let mut text = format!(
        "{} applied to flag '{name}' in namespace '{namespace}'",
        record.verb
    );
    if !record.message.is_empty() {
        text.push_str(": ");
        text.push_str(&record.message);
    }
    text.push('\n');
    let step = step_text(flag);
    text.push_str(&format!(
        "now {} at {}",
        render::phase(flag),
        percent_text(flag)
    ));
    if step != "-" {
        text.push_str(&format!(" (step {step})"));
    }
    text.push('\n');
    text
}
