//! `rollgate simulate`: the rollout engine on a virtual clock.
//!
//! The driver calls the very same [`engine::decide`](rollgate_core::engine::decide) the operator calls, with the same
//! protocol, but the clock is virtual and the metrics come from a [`MetricSource`]: a
//! recorded history ([`History`], from CSV) or a real Prometheus replayed at pinned times
//! ([`PrometheusReplay`]). It never sleeps and never reads a clock; pacing a run for
//! people to watch is the caller's business (see [`simulate_with`]).
//!
//! One loop, from the start until the flag settles or the data ends:
//!
//! 1. If a scheduled request is due, put it on the flag's `rollgate.dev/request`
//!    annotation (one request per call, as a watch event would deliver it).
//! 2. `decide(flag, status, Observation::None, now)`; if it says `analysis_due`, ask the
//!    source for every metric at `now` (and every guardrail's counts since the ramp
//!    started) and call `decide` again from the *same* status.
//! 3. Keep the second decision's status, and record the call as a [`Tick`].
//! 4. Stop when the flag has settled (complete, rolled back, killed) and no request is
//!    left; otherwise jump to `now + requeue_after` or the next request, whichever comes
//!    first, and stop when that is past the end of the data.

pub mod csv;
mod driver;
pub mod render;
mod replay;
mod request;
mod source;
mod trace;

pub use csv::{
    CsvError, GuardrailSample, History, parse_guarded_history, parse_history, parse_requests,
};
pub use driver::{
    Scenario, SimulateError, guardrail_checks, metric_checks, simulate, simulate_with,
    whole_second_floor,
};
pub use replay::PrometheusReplay;
pub use request::ScheduledRequest;
pub use source::MetricSource;
pub use trace::{Breach, GuardrailReading, Outcome, Summary, Tick, Trace, TraceEvent};
