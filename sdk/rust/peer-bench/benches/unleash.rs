//! Rollgate's targeting rules against Unleash's evaluation engine (`unleash-yggdrasil`, the
//! Rust core its Node, Python, Ruby, Java and .NET SDKs embed), on the same 1,000 flags, the
//! same 10,000 users and the same (flag, user) picks as the SDK's ratio bench:
//!
//! - `rollgate_plain`, `unleash_plain`: each flag a 50% rollout by user id;
//! - `rollgate_rules`, `unleash_rules`: the same with three rules of two conditions before
//!   it, which no user matches: `country` in DE, FR, IT and `plan` in free; `plan` in
//!   enterprise and `age` ≥ 18; `appVersion` ≥ 4.2 and `beta`. Unleash writes a rule as a
//!   strategy whose constraints must all hold (the version as an inverted `SEMVER_LT`),
//!   before the strategy that rolls out.
//!
//! Targets, with the peer as the baseline: Rollgate at most half of Unleash's time, with
//! rules and without.
//!
//! Each engine gets its own context, built before the run: Rollgate's `Context`, Unleash's
//! `Context` with the attributes as string properties (Unleash has no other type).
//! Before measuring, both rule sets are checked: no pick matches a rule (the rules engines
//! answer as their plain flags), and a user in the first rule's audience does match.
//!
//! `cargo bench --manifest-path sdk/rust/peer-bench/Cargo.toml` (`make bench-peers`).

use std::collections::HashMap;

use rollgate_sdk::{Context, Flags};
use serde_json::{Value, json};
use unleash_yggdrasil::{ClientFeatures, EngineState, UpdateMessage};

#[path = "../../benches/support/mod.rs"]
mod support;
use support::harness::{Case, Ratio, measure_and_report, per_user};
use support::{Mix, SEED, document, pick_indices, user_contexts};

type UnleashContext = unleash_yggdrasil::Context;

fn main() {
    let (packed_keys, plain_bytes) = document(1_000, Mix::Rollout);
    let keys = packed_keys.slices();
    let (_, targeted_bytes) = document(1_000, Mix::Targeted);
    let plain = Flags::from_json(&plain_bytes).expect("the plain document loads");
    let targeted = Flags::from_json(&targeted_bytes).expect("the targeted document loads");
    let contexts = user_contexts();

    let unleash_plain = unleash_engine(&keys, false);
    let unleash_targeted = unleash_engine(&keys, true);
    let unleash_contexts: Vec<UnleashContext> = contexts.iter().map(unleash_context).collect();
    let no_external = None;

    check_rules(&keys, &contexts, &plain, &targeted);
    check_unleash_rules(&keys, &unleash_contexts, &unleash_plain, &unleash_targeted);

    let mut cases: Vec<Case<'_>> = vec![
        Case::new(
            "rollgate_plain",
            per_user(&keys, &contexts, |key, context| {
                plain.is_enabled_with(key, context)
            }),
        ),
        Case::new(
            "rollgate_rules",
            per_user(&keys, &contexts, |key, context| {
                targeted.is_enabled_with(key, context)
            }),
        ),
        Case::new(
            "unleash_plain",
            per_user(&keys, &unleash_contexts, |key, context| {
                unleash_plain.is_enabled(key, context, &no_external)
            }),
        ),
        Case::new(
            "unleash_rules",
            per_user(&keys, &unleash_contexts, |key, context| {
                unleash_targeted.is_enabled(key, context, &no_external)
            }),
        ),
    ];
    // The peer is the baseline: Rollgate should cost at most half of what Unleash does.
    let ratios: [Ratio; 4] = [
        ("rollgate_rules", "unleash_rules", Some(0.5)),
        ("rollgate_plain", "unleash_plain", Some(0.5)),
        ("rollgate_rules", "rollgate_plain", None),
        ("unleash_rules", "unleash_plain", None),
    ];
    measure_and_report(&mut cases, &ratios);
}

/// An engine holding a toggle per key: a 50% rollout by user id, after the three rules when
/// `with_rules`.
fn unleash_engine(keys: &[&str], with_rules: bool) -> EngineState {
    let features: Vec<Value> = keys
        .iter()
        .map(|key| {
            let rollout = json!({"name": "flexibleRollout", "constraints": [], "parameters": {
                "rollout": "50", "stickiness": "userId", "groupId": key}});
            let mut strategies = if with_rules { unleash_rules() } else { vec![] };
            strategies.push(rollout);
            json!({"name": key, "enabled": true, "strategies": strategies})
        })
        .collect();
    let state: ClientFeatures = serde_json::from_value(json!({"version": 2, "features": features}))
        .expect("the Unleash features parse");
    let engine = EngineState::default();
    let warnings = engine.take_state(UpdateMessage::FullResponse(state));
    assert!(
        warnings.as_ref().is_none_or(Vec::is_empty),
        "Unleash warned: {warnings:?}"
    );
    engine
}

/// The three rules of [`Mix::Targeted`] as Unleash strategies.
fn unleash_rules() -> Vec<Value> {
    let rule = |constraints: Value| json!({"name": "default", "parameters": {}, "constraints": constraints});
    vec![
        rule(json!([
            {"contextName": "country", "operator": "IN", "values": ["DE", "FR", "IT"]},
            {"contextName": "plan", "operator": "IN", "values": ["free"]}])),
        rule(json!([
            {"contextName": "plan", "operator": "IN", "values": ["enterprise"]},
            {"contextName": "age", "operator": "NUM_GTE", "value": "18"}])),
        rule(json!([
            {"contextName": "appVersion", "operator": "SEMVER_LT", "value": "4.2.0",
             "inverted": true},
            {"contextName": "beta", "operator": "IN", "values": ["true"]}])),
    ]
}

/// A Rollgate context as Unleash takes it: the user id, and each attribute as a string.
fn unleash_context(context: &Context) -> UnleashContext {
    let properties: HashMap<String, String> = context
        .attributes()
        .map(|(name, value)| {
            let text = match value.to_owned() {
                rollgate_sdk::AttributeValue::String(text) => text,
                rollgate_sdk::AttributeValue::Number(number) => number.to_string(),
                rollgate_sdk::AttributeValue::Bool(flag) => flag.to_string(),
                rollgate_sdk::AttributeValue::List(items) => items.join(","),
            };
            (name.to_owned(), text)
        })
        .collect();
    UnleashContext {
        user_id: context.targeting_key().map(str::to_owned),
        properties: Some(properties),
        ..UnleashContext::default()
    }
}

/// The picks the bench makes, for the checks.
fn picks(keys: usize, users: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut state = SEED;
    (0..20_000).map(move |_| pick_indices(&mut state, keys, users))
}

fn check_rules(keys: &[&str], contexts: &[Context], plain: &Flags, targeted: &Flags) {
    for (key, user) in picks(keys.len(), contexts.len()) {
        let (key, context) = (keys[key], &contexts[user]);
        assert_eq!(
            targeted.evaluate_with(key, context).rule,
            None,
            "{key} for {context:?}: no rule should match"
        );
        assert_eq!(
            targeted.is_enabled_with(key, context),
            plain.is_enabled_with(key, context)
        );
    }
    let in_legal_hold = Context::new("user-1")
        .with("country", "DE")
        .with("plan", "free");
    assert_eq!(
        targeted
            .evaluate_with(keys[0], &in_legal_hold)
            .rule
            .as_deref(),
        Some("legal-hold")
    );
}

fn check_unleash_rules(
    keys: &[&str],
    contexts: &[UnleashContext],
    plain: &EngineState,
    targeted: &EngineState,
) {
    let mut enabled = 0;
    for (key, user) in picks(keys.len(), contexts.len()) {
        let (key, context) = (keys[key], &contexts[user]);
        let answer = targeted.is_enabled(key, context, &None);
        assert_eq!(answer, plain.is_enabled(key, context, &None), "{key}");
        enabled += usize::from(answer);
    }
    assert!(
        (8_000..12_000).contains(&enabled),
        "about half of 20,000 picks should be on, got {enabled}"
    );
    // A user in the first rule's audience is enabled by it, whatever the rollout says: the
    // constraints are evaluated, not skipped.
    let mut in_first_rule = unleash_context(
        &Context::new("user-1")
            .with("country", "DE")
            .with("plan", "free"),
    );
    for key in keys.iter().take(100) {
        assert!(targeted.is_enabled(key, &in_first_rule, &None), "{key}");
    }
    in_first_rule.properties = None;
    let on = keys
        .iter()
        .take(100)
        .filter(|key| targeted.is_enabled(key, &in_first_rule, &None))
        .count();
    assert!(on < 100, "without the attributes only the rollout decides");
}
