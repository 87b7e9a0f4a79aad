//! What the client and ratio benches share: flag documents, keys and user ids packed side by
//! side in one buffer, and the xorshift picks that spread evaluations over them.
//!
//! The keys are slices of one buffer, as a service's flag keys are string literals side by
//! side in its binary, and so are the user ids; a `Vec<String>` would add a pointer chase to
//! a separate allocation per pick, which no caller pays.

// Each bench uses part of this module.
#![allow(dead_code)]

use serde_json::{Value, json};

pub mod harness;

pub const USERS: usize = 10_000;
/// The flags a service with a large table actually evaluates.
pub const HOT_KEYS: usize = 1_000;
/// The xorshift state every measured loop starts from, so that cases see the same picks.
pub const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// `strings` laid out side by side in one buffer, and a slice of it per string.
pub struct Packed {
    buffer: String,
    ends: Vec<usize>,
}

impl Packed {
    pub fn new(strings: impl IntoIterator<Item = String>) -> Self {
        let mut buffer = String::new();
        let mut ends = Vec::new();
        for string in strings {
            buffer.push_str(&string);
            ends.push(buffer.len());
        }
        Self { buffer, ends }
    }

    pub fn slices(&self) -> Vec<&str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.buffer[start..*end])
            .collect()
    }
}

pub fn user_ids() -> Packed {
    Packed::new((0..USERS).map(|i| format!("user-{i:08}")))
}

/// User ids shaped as UUIDs (36 characters), as many services key users: `key:user` is then
/// longer than one SHA-256 block.
pub fn uuid_user_ids() -> Packed {
    Packed::new((0..USERS as u64).map(|i| {
        let mix = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            mix >> 32,
            (mix >> 16) & 0xffff,
            mix & 0xfff,
            (mix >> 12) & 0xfff,
            i
        )
    }))
}

/// A context per user of [`user_ids`], five attributes each, that no rule of
/// [`Mix::Targeted`] matches: countries outside the legal hold, plans other than enterprise,
/// app versions below 4.2 (parsed by the rule that reads them).
pub fn user_contexts() -> Vec<rollgate_sdk::Context> {
    const COUNTRIES: [&str; 5] = ["US", "GB", "ES", "JP", "BR"];
    const PLANS: [&str; 3] = ["free", "pro", "team"];
    (0..USERS)
        .map(|i| {
            rollgate_sdk::Context::new(format!("user-{i:08}"))
                .with("country", COUNTRIES[i % COUNTRIES.len()])
                .with("plan", PLANS[i % PLANS.len()])
                .with("appVersion", format!("4.{}.{}", i % 2, i % 13))
                .with("age", 18 + i % 60)
                .with("beta", i % 2 == 0)
        })
        .collect()
}

/// The rules of [`Mix::Targeted`] written by hand against [`Context::get`](rollgate_sdk::Context::get):
/// the index of the first rule that matches, or `None` to fall through to the flag's 50%.
/// The named baseline of what the rules' checks cost without the rules engine: the same
/// attribute reads and comparisons, with versions split on dots (laxer and cheaper than the
/// SDK's grammar).
#[inline(never)]
pub fn targeted_by_hand(context: &rollgate_sdk::Context) -> Option<usize> {
    let string = |name: &str| context.get(name).and_then(|value| value.as_str());
    if matches!(string("country"), Some("DE" | "FR" | "IT")) && string("plan") == Some("free") {
        return Some(0);
    }
    if string("plan") == Some("enterprise")
        && context
            .get("age")
            .and_then(|value| value.as_number())
            .is_some_and(|age| age >= 18.0)
    {
        return Some(1);
    }
    let version = string("appVersion").and_then(|text| {
        let mut parts = text.split('.').map(|part| part.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next().unwrap_or(Some(0))?;
        let patch = parts.next().unwrap_or(Some(0))?;
        Some((major, minor, patch))
    });
    if version.is_some_and(|version| version >= (4, 2, 0))
        && context.get("beta").and_then(|value| value.as_bool()) == Some(true)
    {
        return Some(2);
    }
    None
}

/// Keys shaped like real ones (`team-17-checkout-v2-3fa9`), in an order unrelated to the
/// table's.
pub fn flag_key(i: usize) -> String {
    const WORDS: [&str; 8] = [
        "checkout",
        "search",
        "recs",
        "pricing",
        "banner",
        "onboarding",
        "dark-mode",
        "cart",
    ];
    let mix = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "team-{}-{}-v{}-{:04x}",
        i % 97,
        WORDS[i % WORDS.len()],
        i % 5,
        mix >> 48
    )
}

#[derive(Clone, Copy)]
pub enum Mix {
    /// Every flag at 50%: every evaluation computes the rank.
    Rollout,
    /// 10% off, 30% at 100%, 40% rollouts, 10% allow-list + rollout, 10% A/B experiments.
    Mixed,
    /// Every flag at 50% with three targeting rules of two conditions each, which the
    /// contexts of [`user_contexts`] never match: every evaluation tests the rules, then
    /// computes the rank.
    Targeted,
}

fn entry(key: &str, i: usize, mix: Mix) -> Value {
    let base = json!({"key": key, "enabled": true, "percent": 50, "phase": "Progressing",
                      "generation": 3, "updatedAt": "2026-11-24T08:00:00Z"});
    let mut entry = base;
    if let Mix::Targeted = mix {
        entry["targeting"] = json!([
            {"name": "legal-hold", "serve": {"enabled": false}, "conditions": [
                {"attribute": "country", "operator": "In", "values": ["DE", "FR", "IT"]},
                {"attribute": "plan", "operator": "In", "values": ["free"]}]},
            {"name": "enterprise", "serve": {"enabled": true}, "conditions": [
                {"attribute": "plan", "operator": "In", "values": ["enterprise"]},
                {"attribute": "age", "operator": "Gte", "values": ["18"]}]},
            {"name": "new-app-beta", "serve": {"percent": 50}, "conditions": [
                {"attribute": "appVersion", "operator": "SemverGte", "values": ["4.2"]},
                {"attribute": "beta", "operator": "In", "values": ["true"]}]}
        ]);
    }
    let Mix::Mixed = mix else { return entry };
    match i % 10 {
        0 => entry["enabled"] = json!(false),
        1..=3 => entry["percent"] = json!(100),
        4..=7 => entry["percent"] = json!(5 + (i % 90)),
        8 => entry["allowedUsers"] = json!(["user-00000001", "user-00000002", "qa@example.com"]),
        _ => {
            entry["variants"] = json!([{"name": "control", "weight": 50},
                                       {"name": "treatment", "weight": 50}]);
            entry["experiment"] = json!({"coverage": 40, "salt": format!("exp-{i}")});
        }
    }
    entry
}

/// A document of `count` flags, and their keys packed.
pub fn document(count: usize, mix: Mix) -> (Packed, Vec<u8>) {
    let keys: Vec<String> = (0..count).map(flag_key).collect();
    let flags: serde_json::Map<String, Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.clone(), entry(key, i, mix)))
        .collect();
    let bytes = serde_json::to_vec(&json!({"schemaVersion": 2, "flags": flags})).unwrap();
    (Packed::new(keys), bytes)
}

/// xorshift64: a few cycles, no table, no allocation.
#[inline]
pub fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// An index below `len` from 64 random bits by a multiply and a shift (Lemire), not `%`: a
/// 64-bit division per pick would cost the loop more than the lookup it measures.
#[inline]
pub fn pick(random: u64, len: usize) -> usize {
    ((u128::from(random) * len as u128) >> 64) as usize
}

/// The key and the user of one evaluation: both from one xorshift step (its two halves), so
/// consecutive evaluations ask different (flag, user) pairs.
#[inline]
pub fn pick_pair<'a>(state: &mut u64, keys: &[&'a str], users: &[&'a str]) -> (&'a str, &'a str) {
    let (key, user) = pick_indices(state, keys.len(), users.len());
    (keys[key], users[user])
}

/// The indices [`pick_pair`] picks, for users kept as something else than `&str`.
#[inline]
pub fn pick_indices(state: &mut u64, keys: usize, users: usize) -> (usize, usize) {
    let r = next(state);
    (pick(r, keys), pick(r.rotate_left(32), users))
}
