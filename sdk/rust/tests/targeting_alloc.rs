//! Evaluating a flag with targeting rules and segments allocates nothing: a counting global
//! allocator (this file's own, so no other test's allocations mix in) sees no allocation
//! during the calls, whichever rule or fallthrough row decides.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rollgate_sdk::{Context, FlagDocument, FlagSet, Reason};

struct Counting;

thread_local! {
    /// Allocations made by this thread; the test harness's threads count their own.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_during<R>(work: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = work();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

const DOCUMENT: &str = r#"{"schemaVersion": 2,
  "flags": {"checkout": {"key": "checkout", "enabled": true, "percent": 30,
    "allowedUsers": ["vip"],
    "variants": [{"name": "blue", "weight": 50}, {"name": "green", "weight": 50}],
    "targeting": [
      {"name": "legal-hold", "serve": {"enabled": false},
       "conditions": [{"attribute": "country", "operator": "In", "values": ["DE", "FR"]}]},
      {"name": "pro-blue", "serve": {"variant": "blue"},
       "conditions": [{"attribute": "plan", "operator": "In", "values": ["pro"]},
                      {"attribute": "age", "operator": "Gte", "values": ["18"]}]},
      {"name": "beta-on-new-app", "serve": {"percent": 50},
       "conditions": [{"operator": "InSegment", "values": ["beta"]},
                      {"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2-rc.1"]}]},
      {"name": "internal", "serve": {"enabled": true},
       "conditions": [{"attribute": "targetingKey", "operator": "StartsWith", "values": ["internal-"]},
                      {"attribute": "groups", "operator": "NotIn", "values": ["contractors"]}]}
    ]}},
  "segments": {"beta": {"included": ["alice"], "excluded": ["mallory"],
    "rules": [{"conditions": [{"attribute": "email", "operator": "EndsWith", "values": ["@example.com"]}]}]}}}"#;

#[test]
fn evaluating_rules_and_segments_allocates_nothing() {
    // The counter sees this thread's allocations.
    let (boxed, count) = allocations_during(|| Box::new(Context::new("x")));
    assert_eq!(count, 2, "{boxed:?}");
    let document = FlagDocument::from_json(DOCUMENT.as_bytes()).unwrap();
    let set = FlagSet::from_document(&document);
    let contexts = [
        Context::new("u1").with("country", "DE"),
        Context::new("u2").with("plan", "pro").with("age", 30),
        Context::new("alice").with("appVersion", "4.2.0"),
        Context::new("bob")
            .with("email", "bob@example.com")
            .with("appVersion", "4.10.1+build.7"),
        Context::anonymous()
            .with("email", "x@example.com")
            .with("appVersion", "5"),
        Context::new("mallory")
            .with("email", "m@example.com")
            .with("appVersion", "5"),
        Context::new("internal-3").with("groups", ["staff"]),
        Context::new("vip").with("plan", "free").with("beta", true),
        Context::new("u9")
            .with("age", 12.5)
            .with("appVersion", "not-a-version"),
        Context::anonymous(),
    ];
    let mut reasons = std::collections::HashSet::new();
    let mut answers = Vec::with_capacity(contexts.len() * 8);
    for context in &contexts {
        let (evaluation, count) = allocations_during(|| {
            (
                set.evaluate_with("checkout", context),
                set.is_enabled_with("checkout", context),
                set.variant_with("checkout", context),
                set.evaluate_many_with(["checkout", "missing"], context),
                set.evaluate("checkout", context.targeting_key()),
            )
        });
        assert_eq!(count, 0, "{context:?} allocated");
        answers.push(evaluation.0);
        reasons.insert((evaluation.0.reason, evaluation.0.rule.is_some()));
    }
    // Every row the document can reach was exercised.
    for row in [
        (Reason::TargetingMatch, true),
        (Reason::NoUser, true),
        (Reason::AllowList, false),
        (Reason::Percent, false),
        (Reason::NoUser, false),
    ] {
        assert!(
            reasons.contains(&row),
            "no case reached {row:?}: {answers:?}"
        );
    }
    let rules: std::collections::HashSet<_> = answers.iter().filter_map(|a| a.rule).collect();
    assert_eq!(rules.len(), 4, "{answers:?}");
}
