//! Flag evaluation: the reference rules of `docs/evaluation.md`, compiled for fast lookup.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::bucket::{RANK_SCALE, percent_threshold, rollout_rank, variant_rank};
use crate::bytes::ShortStr;
use crate::context::Context;
use crate::document::{FlagDocument, FlagEntry, SegmentEntry};
use crate::targeting::{CompiledRule, CompiledRules, RuleServe, SegmentIndex, Subject};

/// Why a flag resolved the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No flag with this key.
    Missing,
    /// The flag exists with `enabled: false`.
    Disabled,
    /// A targeting rule matched; [`Evaluation::rule`] names it.
    TargetingMatch,
    /// The user is in `allowedUsers`.
    AllowList,
    /// An experiment shipped its winner to everyone.
    Shipped,
    /// The flag is at 100%.
    FullRollout,
    /// The flag, or the percent of the rule that matched, is below 100% and no user id was
    /// given.
    NoUser,
    /// Decided by comparing the user's rank with the percent.
    Percent,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Disabled => "disabled",
            Self::TargetingMatch => "targeting-match",
            Self::AllowList => "allow-list",
            Self::Shipped => "shipped",
            Self::FullRollout => "full-rollout",
            Self::NoUser => "no-user",
            Self::Percent => "percent",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one (flag, user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation<'a> {
    pub enabled: bool,
    /// The variant, for flags with variants when the user is on.
    pub variant: Option<&'a str>,
    pub reason: Reason,
    /// The user's rollout rank (0..10000), when it was needed to decide.
    pub rank: Option<u16>,
    /// The targeting rule that decided: with [`Reason::TargetingMatch`], and with
    /// [`Reason::NoUser`] when the rule's percent needed a user id.
    pub rule: Option<&'a str>,
}

impl Evaluation<'_> {
    const fn off(reason: Reason) -> Self {
        Self {
            enabled: false,
            variant: None,
            reason,
            rank: None,
            rule: None,
        }
    }
}

/// A flag prepared for evaluation: thresholds precomputed, allow-list hashed.
/// Two compiled flags are equal when they answer every user alike.
///
/// Kept small (48 bytes) so that a set of 100,000 flags stays cache-friendly: what every
/// evaluation reads, the key included when it is short, is inline; the parts only some flags
/// have (allow-list, variants, experiment, shipped winner, targeting rules) sit behind one
/// pointer.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledFlag {
    key: ShortStr,
    threshold: u32,
    enabled: bool,
    extras: Option<Box<Extras>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Extras {
    allowed_users: HashSet<String>,
    /// (name, cumulative rank bound) in declaration order.
    variants: Vec<(String, u32)>,
    salt: String,
    /// Rank bound of experiment coverage; users at or above it are not assigned.
    coverage_threshold: u32,
    shipped_variant: Option<String>,
    /// Targeting rules in order, segments resolved.
    rules: CompiledRules,
    /// Only `rules` is set: the users no rule matches get the plain flag's answer.
    rules_only: bool,
}

impl CompiledFlag {
    /// The flag alone: its `InSegment` conditions hold for no one, as the segments come with
    /// the document ([`CompiledFlag::with_segments`], [`FlagSet::from_document`]).
    pub fn new(entry: &FlagEntry) -> Self {
        Self::compile(entry, &SegmentIndex::default())
    }

    /// The flag with the document's segments, which its `InSegment` conditions name.
    pub fn with_segments(entry: &FlagEntry, segments: &BTreeMap<String, SegmentEntry>) -> Self {
        Self::compile(entry, &SegmentIndex::new(segments))
    }

    fn compile(entry: &FlagEntry, segments: &SegmentIndex) -> Self {
        let mut cumulative = 0.0;
        let variants: Vec<(String, u32)> = entry
            .variants
            .iter()
            .map(|variant| {
                cumulative += variant.weight;
                (variant.name.clone(), percent_threshold(cumulative))
            })
            .collect();
        let plain = entry.allowed_users.is_empty()
            && variants.is_empty()
            && entry.experiment.is_none()
            && entry.shipped_variant.is_none()
            && entry.targeting.is_empty();
        let extras = (!plain).then(|| {
            let (salt, coverage_threshold) = match &entry.experiment {
                Some(experiment) => (
                    experiment.salt.clone(),
                    percent_threshold(experiment.coverage),
                ),
                None => (entry.key.clone(), RANK_SCALE),
            };
            Box::new(Extras {
                allowed_users: entry.allowed_users.iter().cloned().collect(),
                variants,
                salt,
                coverage_threshold,
                shipped_variant: entry.shipped_variant.clone(),
                rules: CompiledRules::new(&entry.targeting, segments),
                rules_only: entry.allowed_users.is_empty()
                    && entry.variants.is_empty()
                    && entry.experiment.is_none()
                    && entry.shipped_variant.is_none(),
            })
        });
        Self {
            key: ShortStr::new(&entry.key),
            threshold: percent_threshold(entry.percent),
            enabled: entry.enabled,
            extras,
        }
    }

    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Whether the flag assigns variants (an A/B test), as opposed to plain on/off.
    pub fn has_variants(&self) -> bool {
        self.extras
            .as_ref()
            .is_some_and(|extras| !extras.variants.is_empty())
    }

    /// Whether the flag has targeting rules.
    pub fn has_rules(&self) -> bool {
        self.extras
            .as_ref()
            .is_some_and(|extras| !extras.rules.is_empty())
    }

    /// Evaluates the reference rules for a user id alone, in order: disabled → off; the first
    /// targeting rule that matches → its answer; shipped winner → on; allow-listed → on;
    /// 100% → on; no user → off; else on iff rank < round(percent·100). Rules on attributes
    /// other than `targetingKey` see none here: use [`CompiledFlag::evaluate_with`].
    #[inline]
    pub fn evaluate(&self, user: Option<&str>) -> Evaluation<'_> {
        self.evaluate_as(self.key(), Subject::user(user))
    }

    /// [`CompiledFlag::evaluate`] for a context: its targeting key is the user id and its
    /// attributes are what the targeting rules test.
    #[inline]
    pub fn evaluate_with(&self, context: &Context) -> Evaluation<'_> {
        self.evaluate_as(self.key(), Subject::context(context))
    }

    /// [`CompiledFlag::evaluate`] with `key`, equal to this flag's key, as the hash input: a
    /// caller that found the flag by `key` passes its own copy, which is already in cache.
    #[inline]
    fn evaluate_as(&self, key: &str, subject: Subject<'_>) -> Evaluation<'_> {
        match self.extras.as_deref() {
            // The common flag: the rules below, specialized for no extras and inlined into
            // the caller, so `is_enabled` compiles to the lookup, two compares and the hash.
            None => self.decide(None, key, subject.user),
            Some(extras) => self.decide_with_extras(extras, key, subject),
        }
    }

    /// Flags with targeting rules, an allow-list, variants or a shipped winner: out of line,
    /// so the plain path stays small enough to inline.
    #[inline(never)]
    fn decide_with_extras<'a>(
        &'a self,
        extras: &'a Extras,
        key: &str,
        subject: Subject<'_>,
    ) -> Evaluation<'a> {
        // The kill switch comes before every rule.
        if self.enabled
            && let Some(rule) = extras.rules.first_match(subject)
        {
            return serve(extras, rule, key, subject.user);
        }
        if extras.rules_only {
            // Nothing else of `extras` applies to the fallthrough: the plain rules.
            return self.decide(None, key, subject.user);
        }
        self.decide(Some(extras), key, subject.user)
    }

    /// The reference rules after the targeting rules (the fallthrough) over this flag and its
    /// `extras` (`self.extras`, passed in so that the plain path sees a constant `None`).
    #[inline(always)]
    fn decide<'a>(
        &'a self,
        extras: Option<&'a Extras>,
        key: &str,
        user: Option<&str>,
    ) -> Evaluation<'a> {
        if !self.enabled {
            return Evaluation::off(Reason::Disabled);
        }
        if let Some(shipped) = extras.and_then(|extras| extras.shipped_variant.as_deref()) {
            return Evaluation {
                enabled: true,
                variant: Some(shipped),
                reason: Reason::Shipped,
                rank: None,
                rule: None,
            };
        }
        let Some(user) = user else {
            return if self.threshold >= RANK_SCALE {
                on(extras, key, Reason::FullRollout, None, None)
            } else {
                Evaluation::off(Reason::NoUser)
            };
        };
        // Checked for emptiness first: a lookup in an empty set still hashes the user id.
        if extras.is_some_and(|extras| {
            !extras.allowed_users.is_empty() && extras.allowed_users.contains(user)
        }) {
            return on(extras, key, Reason::AllowList, None, Some(user));
        }
        if self.threshold >= RANK_SCALE {
            return on(extras, key, Reason::FullRollout, None, Some(user));
        }
        by_rank(extras, key, user, self.threshold, Reason::Percent)
    }
}

/// The answer of a matching rule (`docs/targeting.md`, "Rules"). Its percent is the
/// fallthrough's percent with the same rank, so a user in at p is in at every higher p.
fn serve<'a>(
    extras: &'a Extras,
    rule: &'a CompiledRule,
    key: &str,
    user: Option<&str>,
) -> Evaluation<'a> {
    let extras_found = Some(extras);
    let answer = match &rule.serve {
        RuleServe::Enabled(false) => Evaluation::off(Reason::TargetingMatch),
        RuleServe::Enabled(true) => on(extras_found, key, Reason::TargetingMatch, None, user),
        RuleServe::Variant(variant) => Evaluation {
            enabled: true,
            variant: Some(variant),
            reason: Reason::TargetingMatch,
            rank: None,
            rule: None,
        },
        RuleServe::Percent(threshold) if *threshold >= RANK_SCALE => {
            on(extras_found, key, Reason::TargetingMatch, None, user)
        }
        RuleServe::Percent(threshold) => match user {
            Some(user) => by_rank(extras_found, key, user, *threshold, Reason::TargetingMatch),
            None => Evaluation::off(Reason::NoUser),
        },
    };
    Evaluation {
        rule: Some(&rule.name),
        ..answer
    }
}

/// On iff the user's rollout rank is below `threshold`, with the user's variant when on.
#[inline(always)]
fn by_rank<'a>(
    extras: Option<&'a Extras>,
    key: &str,
    user: &str,
    threshold: u32,
    reason: Reason,
) -> Evaluation<'a> {
    let rank = rollout_rank(key, user);
    // Decided without a branch on the answer: for a partial rollout it is a coin flip per
    // user, and a mispredicted branch there would throw away the work of the calls after
    // it. For a plain flag `extras` is `None` here, so the variant below compiles away.
    let enabled = u32::from(rank) < threshold;
    Evaluation {
        enabled,
        variant: if enabled {
            variant_of(extras, key, Some(rank), Some(user))
        } else {
            None
        },
        reason,
        rank: Some(rank),
        rule: None,
    }
}

/// An "on" answer, with the user's variant when the flag has variants.
#[inline]
fn on<'a>(
    extras: Option<&'a Extras>,
    key: &str,
    reason: Reason,
    rank: Option<u16>,
    user: Option<&str>,
) -> Evaluation<'a> {
    Evaluation {
        enabled: true,
        variant: variant_of(extras, key, rank, user),
        reason,
        rank,
        rule: None,
    }
}

/// The variant of a user who is on: only flags with variants have one. Once an experiment
/// shipped, every user who is on gets the winner (a rule's answer comes before the shipped
/// row, so this is where a rule's "on" meets it).
#[inline]
fn variant_of<'a>(
    extras: Option<&'a Extras>,
    key: &str,
    rank: Option<u16>,
    user: Option<&str>,
) -> Option<&'a str> {
    match (extras, user) {
        (
            Some(Extras {
                shipped_variant: Some(shipped),
                ..
            }),
            _,
        ) => Some(shipped),
        (Some(extras), Some(user)) if !extras.variants.is_empty() => {
            assign_variant(key, extras, rank, user)
        }
        _ => None,
    }
}

/// Experiment membership reuses the rollout rank; the arm comes from an independent hash over
/// fixed cumulative ranges, so coverage changes never move a user between arms.
fn assign_variant<'a>(
    key: &str,
    extras: &'a Extras,
    rank: Option<u16>,
    user: &str,
) -> Option<&'a str> {
    if extras.coverage_threshold < RANK_SCALE {
        let rank = rank.unwrap_or_else(|| rollout_rank(key, user));
        if u32::from(rank) >= extras.coverage_threshold {
            return None;
        }
    }
    let arm_rank = u32::from(variant_rank(key, &extras.salt, user));
    extras
        .variants
        .iter()
        .find(|(_, bound)| arm_rank < *bound)
        .or(extras.variants.last())
        .map(|(name, _)| name.as_str())
}

/// Every flag of a document, indexed by key.
///
/// `S` is the hasher of the key index. The core uses std's `RandomState` (SipHash), so it
/// needs no hasher crate; the workload client picks a faster one for its hot path, the way
/// `HashMap<K, V, S>` does. The index is hashbrown's `HashTable` (the table behind std's
/// `HashMap`) so that a probe compares keys with `ShortStr::matches`, inline, instead of a
/// `memcmp` call that spills the probe's registers around it.
#[derive(Clone)]
pub struct FlagSet<S = RandomState> {
    flags: HashTable<CompiledFlag>,
    hasher: S,
}

impl<S> fmt::Debug for FlagSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.flags.iter()).finish()
    }
}

impl Default for FlagSet {
    fn default() -> Self {
        Self {
            flags: HashTable::new(),
            hasher: RandomState::default(),
        }
    }
}

impl FlagSet {
    pub fn from_document(document: &FlagDocument) -> Self {
        Self::from_document_with_hasher(document)
    }
}

impl<S: BuildHasher + Default> FlagSet<S> {
    /// [`FlagSet::from_document`] with the key index hashed by `S`. Each segment is compiled
    /// once, shared by the flags that name it.
    pub fn from_document_with_hasher(document: &FlagDocument) -> Self {
        let hasher = S::default();
        let segments = SegmentIndex::new(&document.segments);
        let mut flags = HashTable::with_capacity(document.flags.len());
        for entry in document.flags.values() {
            let hash = hasher.hash_one(entry.key.as_bytes());
            // A document that passed `validate` has one entry per key; of an unvalidated one
            // built in code with two entries of the same key, the first is kept.
            if let Entry::Vacant(slot) = flags.entry(
                hash,
                |flag: &CompiledFlag| flag.key.matches(entry.key.as_bytes()),
                |flag| hasher.hash_one(flag.key.as_bytes()),
            ) {
                slot.insert(CompiledFlag::compile(entry, &segments));
            }
        }
        Self { flags, hasher }
    }
}

/// Every evaluation call comes in two forms: for a user id alone (`evaluate`, …), and for a
/// [`Context`] (`evaluate_with`, …), whose attributes the targeting rules test. Neither
/// allocates.
impl<S: BuildHasher> FlagSet<S> {
    #[inline]
    pub fn get(&self, key: &str) -> Option<&CompiledFlag> {
        let key = key.as_bytes();
        self.flags
            .find(self.hasher.hash_one(key), |flag| flag.key.matches(key))
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Every flag, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CompiledFlag> {
        self.flags.iter()
    }

    #[inline(always)]
    pub fn evaluate(&self, key: &str, user: Option<&str>) -> Evaluation<'_> {
        self.evaluate_for(key, Subject::user(user))
    }

    #[inline]
    pub fn evaluate_with(&self, key: &str, context: &Context) -> Evaluation<'_> {
        self.evaluate_for(key, Subject::context(context))
    }

    #[inline(always)]
    pub(crate) fn evaluate_for(&self, key: &str, subject: Subject<'_>) -> Evaluation<'_> {
        match self.get(key) {
            Some(flag) => flag.evaluate_as(key, subject),
            None => Evaluation::off(Reason::Missing),
        }
    }

    #[inline]
    pub fn is_enabled(&self, key: &str, user: Option<&str>) -> bool {
        self.evaluate(key, user).enabled
    }

    #[inline]
    pub fn is_enabled_with(&self, key: &str, context: &Context) -> bool {
        self.evaluate_with(key, context).enabled
    }

    /// [`FlagSet::evaluate`] of each of `keys` for one user, in the order of `keys`: the
    /// flags a request needs, asked at once. The answers are those of one call per key, for
    /// less time when the table is larger than the cache: every key is looked up before any
    /// rule runs, so the table reads overlap instead of each waiting behind the hash before it.
    ///
    /// The answers live on the stack (40 bytes each on 64-bit targets), as the keys do: this
    /// is for the handful of flags a request needs, not for thousands at once.
    #[inline]
    pub fn evaluate_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [Evaluation<'_>; N] {
        self.evaluate_many_for(keys, Subject::user(user))
    }

    /// [`FlagSet::evaluate_many`] for a context.
    #[inline]
    pub fn evaluate_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [Evaluation<'_>; N] {
        self.evaluate_many_for(keys, Subject::context(context))
    }

    #[inline(always)]
    pub(crate) fn evaluate_many_for<const N: usize>(
        &self,
        keys: [&str; N],
        subject: Subject<'_>,
    ) -> [Evaluation<'_>; N] {
        let found = keys.map(|key| self.get(key));
        let mut answers = [Evaluation::off(Reason::Missing); N];
        for ((answer, flag), key) in answers.iter_mut().zip(found).zip(keys) {
            if let Some(flag) = flag {
                *answer = flag.evaluate_as(key, subject);
            }
        }
        answers
    }

    /// [`FlagSet::evaluate_many`], on or off only.
    #[inline]
    pub fn is_enabled_many<const N: usize>(
        &self,
        keys: [&str; N],
        user: Option<&str>,
    ) -> [bool; N] {
        self.evaluate_many(keys, user).map(|answer| answer.enabled)
    }

    /// [`FlagSet::evaluate_many_with`], on or off only.
    #[inline]
    pub fn is_enabled_many_with<const N: usize>(
        &self,
        keys: [&str; N],
        context: &Context,
    ) -> [bool; N] {
        self.evaluate_many_with(keys, context)
            .map(|answer| answer.enabled)
    }

    #[inline]
    pub fn variant(&self, key: &str, user: Option<&str>) -> Option<&str> {
        self.evaluate(key, user).variant
    }

    #[inline]
    pub fn variant_with(&self, key: &str, context: &Context) -> Option<&str> {
        self.evaluate_with(key, context).variant
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bytes::INLINE_LEN;
    use crate::document::{ExperimentAssignment, Variant};

    fn entry(percent: f64) -> FlagEntry {
        FlagEntry {
            key: "checkout".into(),
            enabled: true,
            percent,
            allowed_users: vec!["vip".into()],
            variants: vec![],
            experiment: None,
            shipped_variant: None,
            phase: "Static".into(),
            generation: 1,
            updated_at: String::new(),
            targeting: Vec::new(),
        }
    }

    #[test]
    fn reference_order_of_rules() {
        let flag = CompiledFlag::new(&entry(0.0));
        assert_eq!(flag.evaluate(Some("vip")).reason, Reason::AllowList);
        assert_eq!(flag.evaluate(None).reason, Reason::NoUser);
        assert_eq!(flag.evaluate(Some("bob")).reason, Reason::Percent);
        assert!(!flag.evaluate(Some("bob")).enabled);
        let full = CompiledFlag::new(&entry(100.0));
        assert_eq!(full.evaluate(None).reason, Reason::FullRollout);
        let disabled = CompiledFlag::new(&FlagEntry {
            enabled: false,
            ..entry(100.0)
        });
        assert_eq!(disabled.evaluate(Some("vip")).reason, Reason::Disabled);
        assert_eq!(
            FlagSet::default().evaluate("nope", Some("a")).reason,
            Reason::Missing
        );
    }

    /// Two arms, 50/50.
    fn control_and_treatment() -> Vec<Variant> {
        ["control", "treatment"]
            .map(|name| Variant {
                name: name.into(),
                weight: 50.0,
            })
            .into()
    }

    #[test]
    fn variants_respect_coverage_and_shipping() {
        let mut experiment = entry(30.0);
        experiment.variants = control_and_treatment();
        experiment.experiment = Some(ExperimentAssignment {
            coverage: 30.0,
            salt: "s1".into(),
        });
        let flag = CompiledFlag::new(&experiment);
        let mut arms = HashMap::new();
        for user in 0..10_000 {
            let user = user.to_string();
            let evaluation = flag.evaluate(Some(&user));
            assert_eq!(evaluation.enabled, evaluation.variant.is_some(), "{user}");
            *arms.entry(evaluation.variant).or_insert(0) += 1;
        }
        assert!((2_700..3_300).contains(&(arms[&Some("control")] + arms[&Some("treatment")])));
        experiment.shipped_variant = Some("treatment".into());
        let shipped = CompiledFlag::new(&experiment);
        assert_eq!(shipped.evaluate(None).variant, Some("treatment"));
    }

    /// A document with one flag of every kind the rules tell apart, and a key longer than one
    /// hash block, under keys `k0`, `k1`, ….
    fn document_of_every_kind() -> FlagDocument {
        let mut kinds = vec![
            entry(0.0),
            entry(0.01),
            entry(37.5),
            entry(50.0),
            entry(100.0),
        ];
        kinds.push(FlagEntry {
            enabled: false,
            ..entry(50.0)
        });
        kinds.push(FlagEntry {
            allowed_users: vec![],
            ..entry(42.0)
        });
        let mut experiment = entry(60.0);
        experiment.variants = control_and_treatment();
        kinds.push(experiment.clone());
        experiment.shipped_variant = Some("treatment".into());
        kinds.push(experiment);
        let mut document = FlagDocument::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let key = format!("k{i}");
            document
                .flags
                .insert(key.clone(), FlagEntry { key, ..kind });
        }
        let long = format!("k-{}", "long".repeat(14));
        document.flags.insert(
            long.clone(),
            FlagEntry {
                key: long,
                allowed_users: vec![],
                ..entry(50.0)
            },
        );
        document
    }

    #[test]
    fn evaluating_many_answers_as_one_call_per_key() {
        let document = document_of_every_kind();
        let set = FlagSet::from_document(&document);
        let mut keys: Vec<&str> = document.flags.keys().map(String::as_str).collect();
        keys.extend(["missing", "k3", "k3"]);
        // Keys repeated and missing; every user id, including none, the allow-listed one and
        // one long enough to take the hash's two-block path.
        let long_user = "u".repeat(60);
        let users = (0..300)
            .map(|i| format!("user-{i}"))
            .chain(["vip".to_owned(), long_user]);
        for user in users {
            for user in [Some(user.as_str()), None] {
                let twelve: [&str; 12] = std::array::from_fn(|i| keys[i % keys.len()]);
                let many = set.evaluate_many(twelve, user);
                for (key, answer) in twelve.iter().zip(many) {
                    assert_eq!(answer, set.evaluate(key, user), "{key} for {user:?}");
                }
                let doubled: [&str; 24] = std::array::from_fn(|i| keys[(i * 7) % keys.len()]);
                let on = set.is_enabled_many(doubled, user);
                for (key, on) in doubled.iter().zip(on) {
                    assert_eq!(on, set.is_enabled(key, user), "{key} for {user:?}");
                }
            }
        }
        assert_eq!(set.evaluate_many([], Some("u")), []);
    }

    #[test]
    fn compiled_flags_stay_small() {
        // Inline fields of the hot path only; 100,000 flags then fit in a few MiB.
        assert!(std::mem::size_of::<CompiledFlag>() <= 48);
    }

    #[test]
    fn set_finds_flags_by_str_and_compares_rules() {
        let mut document = FlagDocument::new();
        document.flags.insert("checkout".into(), entry(30.0));
        let set = FlagSet::from_document(&document);
        assert_eq!(set.get("checkout").map(CompiledFlag::key), Some("checkout"));
        assert!(set.get("checkou").is_none());
        assert_eq!(set.iter().count(), 1);
        assert_eq!(set.get("checkout"), Some(&CompiledFlag::new(&entry(30.0))));
        assert_ne!(set.get("checkout"), Some(&CompiledFlag::new(&entry(31.0))));
    }

    #[test]
    fn key_compare_sees_every_byte_at_every_length() {
        // Every length through both inline-compare widths and past the inline limit. The
        // compare is checked directly: through the table, a key one byte off usually hashes
        // elsewhere and is never compared at all.
        for len in 0..=40usize {
            let key: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let stored = ShortStr::new(std::str::from_utf8(&key).unwrap());
            assert!(stored.matches(&key), "length {len}");
            for at in 0..len {
                let mut near = key.clone();
                near[at] = b'Z';
                assert!(!stored.matches(&near), "length {len}, byte {at}");
            }
            if len > 0 {
                assert!(!stored.matches(&key[..len - 1]), "length {len}, one short");
            }
            assert!(!stored.matches(&[key.as_slice(), b"a"].concat()));
        }
        let mut document = FlagDocument::new();
        let long = "k".repeat(40);
        for key in ["a", "sixteen-bytes-ok", long.as_str()] {
            document.flags.insert(
                key.to_owned(),
                FlagEntry {
                    key: key.to_owned(),
                    ..entry(50.0)
                },
            );
        }
        let set = FlagSet::from_document(&document);
        for key in ["a", "sixteen-bytes-ok", long.as_str()] {
            assert_eq!(set.get(key).map(CompiledFlag::key), Some(key));
        }
    }

    #[test]
    fn short_and_long_keys_evaluate_alike() {
        let mut document = FlagDocument::new();
        let keys = [
            "a".to_owned(),
            "x".repeat(INLINE_LEN),
            "y".repeat(INLINE_LEN + 1),
            "ключ-é".to_owned(),
        ];
        for key in &keys {
            document.flags.insert(
                key.clone(),
                FlagEntry {
                    key: key.clone(),
                    ..entry(50.0)
                },
            );
        }
        let set = FlagSet::from_document(&document);
        for key in &keys {
            let flag = set.get(key).unwrap();
            assert_eq!(flag.key(), key);
            let standalone = CompiledFlag::new(&document.flags[key]);
            for user in ["u1", "u2", "u3", "vip"] {
                let expected = standalone.evaluate(Some(user));
                assert_eq!(set.evaluate(key, Some(user)), expected, "{key} {user}");
                assert_eq!(
                    expected
                        .rank
                        .is_some_and(|rank| rank == rollout_rank(key, user)),
                    user != "vip"
                );
            }
        }
        assert!(set.get(&"x".repeat(INLINE_LEN - 1)).is_none());
    }
}
