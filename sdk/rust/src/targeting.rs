//! Targeting rules and segments compiled for evaluation (`docs/targeting.md`).
//!
//! Values are parsed once, here: numbers, versions, and the string lists each operator scans.
//! Matching then reads the context without allocating. A condition this crate cannot compile
//! (in a document built in code that [`crate::FlagDocument::check`] would refuse) never holds,
//! so a malformed rule fails closed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::bucket::percent_threshold;
use crate::bytes::ShortStr;
use crate::context::{AttributeRef as Value, Context, TARGETING_KEY, name_digest};
use crate::document::{Condition, Operator, SegmentEntry, Serve, TargetingRule};
use crate::values::{Version, parse_decimal};

/// Who an evaluation is for: the user id, and the context's attributes when the caller gave
/// one (the calls without a context have only the user id).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'c> {
    pub(crate) user: Option<&'c str>,
    pub(crate) context: Option<&'c Context>,
}

impl<'c> Subject<'c> {
    #[inline]
    pub(crate) fn user(user: Option<&'c str>) -> Self {
        Self {
            user,
            context: None,
        }
    }

    #[inline]
    pub(crate) fn context(context: &'c Context) -> Self {
        Self {
            user: context.targeting_key(),
            context: Some(context),
        }
    }

    /// The attribute a condition reads, if the subject has it; the targeting key is a string.
    #[inline]
    fn attribute(&self, attribute: &Attribute) -> Option<Value<'c>> {
        match attribute {
            Attribute::TargetingKey => self.user.map(Value::String),
            Attribute::Named { digest, name } => {
                self.context?.get_digested(*digest, name.as_bytes())
            }
        }
    }
}

/// The strings of a string or string list attribute; none for other types.
fn strings(value: Value<'_>) -> impl Iterator<Item = &str> {
    let (one, many) = match value {
        Value::String(value) => (Some(value), None),
        Value::List(values) => (None, Some(values.iter())),
        Value::Number(_) | Value::Bool(_) => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// A rule of a flag: its name, its conditions, what it serves.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompiledRule {
    pub(crate) name: Box<str>,
    conditions: Box<[CompiledCondition]>,
    pub(crate) serve: RuleServe,
}

/// What a matching rule serves; a percent as its rank threshold.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RuleServe {
    Enabled(bool),
    Variant(Box<str>),
    Percent(u32),
}

impl CompiledRule {
    pub(crate) fn new(rule: &TargetingRule, segments: &SegmentIndex) -> Self {
        Self {
            name: rule.name.as_str().into(),
            conditions: compile_conditions(&rule.conditions, segments),
            serve: match &rule.serve {
                Serve::Enabled(enabled) => RuleServe::Enabled(*enabled),
                Serve::Variant(variant) => RuleServe::Variant(variant.as_str().into()),
                Serve::Percent(percent) => RuleServe::Percent(percent_threshold(*percent)),
            },
        }
    }
}

/// The first of `rules` whose conditions all hold for `subject`.
#[inline]
pub(crate) fn first_match<'r>(
    rules: &'r [CompiledRule],
    subject: Subject<'_>,
) -> Option<&'r CompiledRule> {
    rules
        .iter()
        .find(|rule| all_hold(&rule.conditions, subject))
}

/// Whether every condition holds; an empty list (only in unchecked documents) never does, so
/// that a rule cannot match everyone by accident.
fn all_hold(conditions: &[CompiledCondition], subject: Subject<'_>) -> bool {
    !conditions.is_empty() && conditions.iter().all(|condition| condition.holds(subject))
}

fn compile_conditions(
    conditions: &[Condition],
    segments: &SegmentIndex,
) -> Box<[CompiledCondition]> {
    conditions
        .iter()
        .map(|condition| CompiledCondition::new(condition, segments))
        .collect()
}

/// A segment: excluded wins over included, included over rules.
#[derive(Debug, PartialEq)]
pub(crate) struct CompiledSegment {
    included: StringSet,
    excluded: StringSet,
    rules: Box<[Box<[CompiledCondition]>]>,
}

impl CompiledSegment {
    /// `InSegment` inside a segment is refused by the document check; compiled here it holds
    /// for no one (no segment is visible from a segment), so segments never recurse.
    fn new(segment: &SegmentEntry) -> Self {
        let no_segments = SegmentIndex::default();
        Self {
            included: StringSet::new(&segment.included),
            excluded: StringSet::new(&segment.excluded),
            rules: segment
                .rules
                .iter()
                .map(|rule| compile_conditions(&rule.conditions, &no_segments))
                .collect(),
        }
    }

    fn contains(&self, subject: Subject<'_>) -> bool {
        if let Some(user) = subject.user {
            if self.excluded.contains(user) {
                return false;
            }
            if self.included.contains(user) {
                return true;
            }
        }
        self.rules
            .iter()
            .any(|conditions| all_hold(conditions, subject))
    }
}

/// A document's segments, each compiled once and shared by every flag that names it.
#[derive(Default)]
pub(crate) struct SegmentIndex {
    segments: BTreeMap<String, Arc<CompiledSegment>>,
}

impl SegmentIndex {
    pub(crate) fn new(segments: &BTreeMap<String, SegmentEntry>) -> Self {
        Self {
            segments: segments
                .iter()
                .map(|(name, segment)| (name.clone(), Arc::new(CompiledSegment::new(segment))))
                .collect(),
        }
    }
}

/// The attribute a condition reads, a name with its digest for the context's lookup.
#[derive(Clone, Debug, PartialEq)]
enum Attribute {
    TargetingKey,
    Named { digest: u32, name: ShortStr },
}

#[derive(Clone, Debug, PartialEq)]
enum CompiledCondition {
    /// The user is in one of these segments; names the document does not carry are dropped,
    /// so with none left the condition is false.
    InSegment(Box<[Arc<CompiledSegment>]>),
    Test {
        attribute: Attribute,
        test: Test,
    },
    /// A condition an unchecked document got wrong: false for everyone.
    Never,
}

#[derive(Clone, Debug, PartialEq)]
enum Test {
    In(Equals),
    NotIn(Equals),
    StartsWith(Box<[ShortStr]>),
    EndsWith(Box<[ShortStr]>),
    Contains(Box<[ShortStr]>),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    /// The value's text, kept inline and parsed again on use (it parsed when compiled): a
    /// few cycles, where its parts on the heap would be cache misses.
    SemverLt(ShortStr),
    SemverGte(ShortStr),
    SemverEq(ShortStr),
    Exists,
}

impl CompiledCondition {
    fn new(condition: &Condition, segments: &SegmentIndex) -> Self {
        let values = &condition.values;
        if condition.operator == Operator::InSegment {
            let found: Box<[Arc<CompiledSegment>]> = values
                .iter()
                .filter_map(|name| segments.segments.get(name).cloned())
                .collect();
            return Self::InSegment(found);
        }
        let Some(name) = condition.attribute.as_deref() else {
            return Self::Never;
        };
        let attribute = if name == TARGETING_KEY {
            Attribute::TargetingKey
        } else {
            Attribute::Named {
                digest: name_digest(name),
                name: ShortStr::new(name),
            }
        };
        let strings = || values.iter().map(|value| ShortStr::new(value)).collect();
        let number = || match values.as_slice() {
            [value] => parse_decimal(value),
            _ => None,
        };
        let version = || match values.as_slice() {
            [value] => Version::parse(value.as_bytes()).map(|_| ShortStr::new(value)),
            _ => None,
        };
        let test = match condition.operator {
            Operator::In => Some(Test::In(Equals::new(values))),
            Operator::NotIn => Some(Test::NotIn(Equals::new(values))),
            Operator::StartsWith => Some(Test::StartsWith(strings())),
            Operator::EndsWith => Some(Test::EndsWith(strings())),
            Operator::Contains => Some(Test::Contains(strings())),
            Operator::Lt => number().map(Test::Lt),
            Operator::Lte => number().map(Test::Lte),
            Operator::Gt => number().map(Test::Gt),
            Operator::Gte => number().map(Test::Gte),
            Operator::SemverLt => version().map(Test::SemverLt),
            Operator::SemverGte => version().map(Test::SemverGte),
            Operator::SemverEq => version().map(Test::SemverEq),
            Operator::Exists => Some(Test::Exists),
            Operator::InSegment => None,
        };
        match test {
            Some(test) => Self::Test { attribute, test },
            None => Self::Never,
        }
    }

    #[inline]
    fn holds(&self, subject: Subject<'_>) -> bool {
        match self {
            Self::InSegment(segments) => segments.iter().any(|segment| segment.contains(subject)),
            // A missing attribute makes every test false, `NotIn` included.
            Self::Test { attribute, test } => subject
                .attribute(attribute)
                .is_some_and(|value| test.holds(value)),
            Self::Never => false,
        }
    }
}

impl Test {
    fn holds(&self, value: Value<'_>) -> bool {
        match self {
            Self::In(equals) => equals.holds(value),
            Self::NotIn(equals) => !equals.holds(value),
            Self::StartsWith(values) => any_string(value, values, |s, v| s.starts_with(v)),
            Self::EndsWith(values) => any_string(value, values, |s, v| s.ends_with(v)),
            Self::Contains(values) => any_string(value, values, |s, v| s.contains(v)),
            Self::Lt(bound) => number(value).is_some_and(|number| number < *bound),
            Self::Lte(bound) => number(value).is_some_and(|number| number <= *bound),
            Self::Gt(bound) => number(value).is_some_and(|number| number > *bound),
            Self::Gte(bound) => number(value).is_some_and(|number| number >= *bound),
            Self::SemverLt(wanted) => precedence(value, wanted).is_some_and(Ordering::is_lt),
            Self::SemverGte(wanted) => precedence(value, wanted).is_some_and(Ordering::is_ge),
            Self::SemverEq(wanted) => precedence(value, wanted).is_some_and(Ordering::is_eq),
            Self::Exists => true,
        }
    }
}

/// Whether `test(string, wanted)` holds for a string of `value` and one of `wanted`.
#[inline]
fn any_string(value: Value<'_>, wanted: &[ShortStr], test: impl Fn(&str, &str) -> bool) -> bool {
    strings(value).any(|string| wanted.iter().any(|wanted| test(string, wanted.as_str())))
}

fn number(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Number(number) => Some(number),
        _ => None,
    }
}

/// How a string attribute compares with `wanted`, when it is a version.
fn precedence(value: Value<'_>, wanted: &ShortStr) -> Option<Ordering> {
    let Value::String(text) = value else {
        return None;
    };
    let version = Version::parse(text.as_bytes())?;
    Version::parse(wanted.as_bytes()).map(|wanted| version.precedence(&wanted))
}

/// The values of `In` and `NotIn`, read for each attribute type: strings as given, numbers
/// by the decimal grammar, booleans as `true` and `false`.
#[derive(Clone, Debug, PartialEq)]
struct Equals {
    strings: StringSet,
    numbers: Box<[f64]>,
    has_true: bool,
    has_false: bool,
}

impl Equals {
    fn new(values: &[String]) -> Self {
        Self {
            strings: StringSet::new(values),
            numbers: values
                .iter()
                .filter_map(|value| parse_decimal(value))
                .collect(),
            has_true: values.iter().any(|value| value == "true"),
            has_false: values.iter().any(|value| value == "false"),
        }
    }

    fn holds(&self, value: Value<'_>) -> bool {
        match value {
            Value::String(string) => self.strings.contains(string),
            Value::List(strings) => strings.iter().any(|string| self.strings.contains(string)),
            Value::Number(number) => self.numbers.contains(&number),
            Value::Bool(true) => self.has_true,
            Value::Bool(false) => self.has_false,
        }
    }
}

/// Up to this many strings are compared one by one; more are hashed.
const SCANNED_LIMIT: usize = 16;

/// A set of strings for membership tests: a few scanned in place, many hashed.
#[derive(Clone, Debug, PartialEq)]
enum StringSet {
    /// One value, the common case, inline.
    One(ShortStr),
    Scanned(Box<[ShortStr]>),
    Hashed(HashSet<Box<str>>),
}

impl StringSet {
    fn new(strings: &[String]) -> Self {
        if strings.len() > SCANNED_LIMIT {
            return Self::Hashed(
                strings
                    .iter()
                    .map(|string| string.as_str().into())
                    .collect(),
            );
        }
        let mut unique: Vec<ShortStr> = Vec::with_capacity(strings.len());
        for string in strings {
            if !unique.iter().any(|seen| seen.matches(string.as_bytes())) {
                unique.push(ShortStr::new(string));
            }
        }
        match <[ShortStr; 1]>::try_from(unique) {
            Ok([one]) => Self::One(one),
            Err(unique) => Self::Scanned(unique.into()),
        }
    }

    #[inline]
    fn contains(&self, string: &str) -> bool {
        match self {
            Self::One(stored) => stored.matches(string.as_bytes()),
            Self::Scanned(strings) => strings
                .iter()
                .any(|stored| stored.matches(string.as_bytes())),
            Self::Hashed(strings) => strings.contains(string),
        }
    }
}
