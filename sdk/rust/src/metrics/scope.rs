//! The request scope: which flags one request evaluated, and the cohort each put it in.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::futures::TaskLocalFuture;

use crate::eval::{Evaluation, Reason};

tokio::task_local! {
    /// The scope of the request the current task serves, set by [`RequestScope::run`].
    static CURRENT: RequestScope;
}

/// Set when the process first makes a [`RequestScope`] current, and never cleared. Until
/// then an evaluation looks at nothing but this flag, so a process that never opens a scope
/// pays one relaxed load per evaluation, and nothing more.
static SCOPES_IN_USE: AtomicBool = AtomicBool::new(false);

/// Whether an evaluation should look for a current scope (see [`SCOPES_IN_USE`]).
#[inline(always)]
pub(crate) fn scopes_in_use() -> bool {
    SCOPES_IN_USE.load(Ordering::Relaxed)
}

/// Records `evaluation` of `key` into the current task's scope, if there is one.
pub(crate) fn record_current(key: &str, evaluation: &Evaluation<'_>) {
    // Outside a scope (or outside a Tokio task) there is nothing to record into.
    let _ = CURRENT.try_with(|scope| scope.record(key, evaluation));
}

/// The cohort label of an answer: the variant when there is one, else `on` or `off`.
fn cohort_of(evaluation: &Evaluation<'_>) -> Cow<'static, str> {
    match (evaluation.variant, evaluation.enabled) {
        (Some(variant), _) => Cow::Owned(variant.to_owned()),
        (None, true) => Cow::Borrowed("on"),
        (None, false) => Cow::Borrowed("off"),
    }
}

/// The flags one request evaluated, each with the cohort of its first answer.
///
/// Evaluations through [`crate::Flags`], a [`crate::SnapshotGuard`] or the OpenFeature
/// provider are recorded into the scope that is current in the task that runs them: the one
/// [`RequestScope::run`] set, which stays current across `.await` points and thread hops of
/// that task. A task spawned from it starts without a scope; hand it one with
/// `RequestScope::current()` and [`RequestScope::run`]. Evaluations on the core
/// [`crate::FlagSet`] (`snapshot.flags()`) are not recorded.
///
/// A key that is not in the document is not recorded, so a key taken from user input cannot
/// add label values. Neither is an answer a targeting rule decided: the cohorts are the
/// users of the ramp and its experiment only. Once the request is counted ([`crate::CohortMetrics::finish`]), later
/// evaluations (a task that outlived the request) are not recorded either. Cloning gives
/// another handle to the same scope.
#[derive(Clone, Default)]
pub struct RequestScope {
    recorded: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    /// In the order the flags were first evaluated.
    evaluated: Vec<Evaluated>,
    /// Counted already: nothing more is recorded or counted.
    finished: bool,
}

/// A flag and the cohort its first evaluation in the scope gave.
struct Evaluated {
    flag: Box<str>,
    cohort: Cow<'static, str>,
}

impl RequestScope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// The scope of the current task, if it runs inside [`RequestScope::run`].
    pub fn current() -> Option<Self> {
        CURRENT.try_get().ok()
    }

    /// Runs `future` with this scope current: flag evaluations in it, across `.await`s,
    /// are recorded here.
    pub fn run<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        self.scoped(future)
    }

    /// As [`RequestScope::run`], for synchronous code on the current thread.
    pub fn run_sync<R>(&self, work: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.task_value(), work)
    }

    /// Records an answer obtained some other way (the core [`crate::FlagSet`], another
    /// thread); the first answer for a flag counts, and a missing flag is ignored, as for the
    /// evaluations recorded on their own. So is an answer a targeting rule decided: guardrails
    /// compare the users of the ramp (`docs/targeting.md`), and a rule's audience is not a
    /// random sample of them.
    pub fn record(&self, flag: &str, evaluation: &Evaluation<'_>) {
        if evaluation.reason == Reason::Missing || evaluation.rule.is_some() {
            return;
        }
        let mut recorded = self.lock();
        // A request evaluates a handful of flags: a scan beats hashing here.
        if recorded.finished || recorded.evaluated.iter().any(|seen| &*seen.flag == flag) {
            return;
        }
        recorded.evaluated.push(Evaluated {
            flag: flag.into(),
            cohort: cohort_of(evaluation),
        });
    }

    /// The cohort recorded for `flag`: its variant, `"on"` or `"off"`.
    pub fn cohort(&self, flag: &str) -> Option<String> {
        self.lock()
            .evaluated
            .iter()
            .find(|seen| &*seen.flag == flag)
            .map(|seen| seen.cohort.clone().into_owned())
    }

    /// Every (flag, cohort) recorded, in the order the flags were first evaluated.
    pub fn cohorts(&self) -> Vec<(String, String)> {
        self.lock()
            .evaluated
            .iter()
            .map(|seen| (seen.flag.to_string(), seen.cohort.clone().into_owned()))
            .collect()
    }

    /// Whether the request was counted already.
    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Marks the scope finished and calls `visit(flag, cohort)` for each recorded flag,
    /// unless it was finished before: a request is counted once.
    pub(crate) fn finish_with(&self, mut visit: impl FnMut(&str, &str)) {
        let mut recorded = self.lock();
        if std::mem::replace(&mut recorded.finished, true) {
            return;
        }
        for seen in &recorded.evaluated {
            visit(&seen.flag, &seen.cohort);
        }
    }

    /// `future` with this scope current, as a nameable type for the tower layer.
    pub(crate) fn scoped<F: Future>(&self, future: F) -> TaskLocalFuture<Self, F> {
        CURRENT.scope(self.task_value(), future)
    }

    /// The handle to make current. Evaluations look for a current scope from the first one
    /// made current on (checked first, so that busy servers do not keep writing the flag).
    fn task_value(&self) -> Self {
        if !SCOPES_IN_USE.load(Ordering::Relaxed) {
            SCOPES_IN_USE.store(true, Ordering::Relaxed);
        }
        self.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // The list stays consistent whatever panicked while it was held.
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.lock()
                    .evaluated
                    .iter()
                    .map(|seen| (&seen.flag, &seen.cohort)),
            )
            .finish()
    }
}
