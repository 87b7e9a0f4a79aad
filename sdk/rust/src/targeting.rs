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
use crate::bytes::{ShortStr, same_bytes};
use crate::context::{AttributeRef as Value, Context, Span, TARGETING_KEY, index, name_digest};
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
    fn attribute(&self, attribute: Attribute, values: &Values) -> Option<Value<'c>> {
        match attribute {
            Attribute::TargetingKey => self.user.map(Value::String),
            Attribute::Named { digest, name } => self
                .context?
                .get_digested(digest, values.text(name).as_bytes()),
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

/// A rule of a flag: its name and what it serves (its conditions are in [`CompiledRules`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompiledRule {
    pub(crate) name: Box<str>,
    pub(crate) serve: RuleServe,
}

/// What a matching rule serves; a percent as its rank threshold.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RuleServe {
    Enabled(bool),
    Variant(Box<str>),
    Percent(u32),
}

/// A flag's targeting rules in order, segments resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompiledRules {
    conditions: RuleConditions,
    rules: Box<[CompiledRule]>,
}

impl CompiledRules {
    pub(crate) fn new(rules: &[TargetingRule], segments: &SegmentIndex) -> Self {
        Self {
            conditions: RuleConditions::new(
                rules.iter().map(|rule| rule.conditions.as_slice()),
                segments,
            ),
            rules: rules
                .iter()
                .map(|rule| CompiledRule {
                    name: rule.name.as_str().into(),
                    serve: match &rule.serve {
                        Serve::Enabled(enabled) => RuleServe::Enabled(*enabled),
                        Serve::Variant(variant) => RuleServe::Variant(variant.as_str().into()),
                        Serve::Percent(percent) => RuleServe::Percent(percent_threshold(*percent)),
                    },
                })
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule whose conditions all hold for `subject`.
    #[inline]
    pub(crate) fn first_match(&self, subject: Subject<'_>) -> Option<&CompiledRule> {
        self.conditions
            .first_match(subject)
            .and_then(|rule| self.rules.get(rule))
    }
}

/// The conditions of a list of rules, rule after rule in one list, and the names and values
/// they compare in [`Values`]: checking a flag's rules reads a few adjacent cache lines,
/// not one allocation per rule, per condition and per value.
#[derive(Clone, Debug, PartialEq)]
struct RuleConditions {
    steps: Box<[RuleCondition]>,
    values: Values,
}

#[derive(Clone, Debug, PartialEq)]
struct RuleCondition {
    condition: CompiledCondition,
    /// The rule of this condition, and where the next rule's conditions start.
    rule: u32,
    next_rule: u32,
}

impl RuleConditions {
    fn new<'a>(rules: impl Iterator<Item = &'a [Condition]>, segments: &SegmentIndex) -> Self {
        let mut values = Values::default();
        let mut steps = Vec::new();
        for (rule, conditions) in rules.enumerate() {
            let next_rule = index(steps.len() + conditions.len());
            for condition in conditions {
                steps.push(RuleCondition {
                    condition: CompiledCondition::new(condition, segments, &mut values),
                    rule: index(rule),
                    next_rule,
                });
            }
        }
        values.text.shrink_to_fit();
        values.strings.shrink_to_fit();
        values.numbers.shrink_to_fit();
        Self {
            steps: steps.into(),
            values,
        }
    }

    /// The index of the first rule whose conditions all hold. A rule without conditions
    /// (only in unchecked documents) has none here, so it never matches: a rule cannot match
    /// everyone by accident. The first condition that fails ends its rule.
    #[inline]
    fn first_match(&self, subject: Subject<'_>) -> Option<usize> {
        let mut at = 0;
        while let Some(step) = self.steps.get(at) {
            let next_rule = step.next_rule as usize;
            if !step.condition.holds(subject, &self.values) {
                at = next_rule;
            } else if at + 1 == next_rule {
                return Some(step.rule as usize);
            } else {
                at += 1;
            }
        }
        None
    }
}

/// The attribute names and values of a list of rules, each kind in one buffer.
#[derive(Clone, Debug, Default, PartialEq)]
struct Values {
    /// Every name and string value, end to end.
    text: String,
    /// Lists of strings, each a run of ranges of `text`.
    strings: Vec<Span>,
    /// The numbers of `In` and `NotIn`, each condition's a run.
    numbers: Vec<f64>,
    /// The strings of `In` and `NotIn` conditions with many, hashed.
    sets: Vec<HashSet<Box<str>>>,
}

impl Values {
    fn push_text(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        Span::new(start, self.text.len())
    }

    fn push_strings<'a>(&mut self, strings: impl Iterator<Item = &'a String>) -> Span {
        let start = self.strings.len();
        for string in strings {
            let span = self.push_text(string);
            self.strings.push(span);
        }
        Span::new(start, self.strings.len())
    }

    fn push_numbers(&mut self, numbers: impl Iterator<Item = f64>) -> Span {
        let start = self.numbers.len();
        self.numbers.extend(numbers);
        Span::new(start, self.numbers.len())
    }

    #[inline]
    fn text(&self, span: Span) -> &str {
        span.of(&self.text)
    }

    /// Whether `string` is one of the run `strings`, compared in place ([`same_bytes`]).
    #[inline]
    fn has_string(&self, strings: Span, string: &str) -> bool {
        strings
            .items(&self.strings)
            .iter()
            .any(|span| same_bytes(self.text(*span).as_bytes(), string.as_bytes()))
    }

    /// Whether `test(string, wanted)` holds for a string of `value` and one of the run `wanted`.
    #[inline]
    fn any_string(
        &self,
        value: Value<'_>,
        wanted: Span,
        test: impl Fn(&str, &str) -> bool,
    ) -> bool {
        let wanted = wanted.items(&self.strings);
        strings(value).any(|string| wanted.iter().any(|span| test(string, self.text(*span))))
    }
}

/// A segment: excluded wins over included, included over rules.
#[derive(Debug, PartialEq)]
pub(crate) struct CompiledSegment {
    included: StringSet,
    excluded: StringSet,
    rules: RuleConditions,
}

impl CompiledSegment {
    /// `InSegment` inside a segment is refused by the document check; compiled here it holds
    /// for no one (no segment is visible from a segment), so segments never recurse.
    fn new(segment: &SegmentEntry) -> Self {
        let no_segments = SegmentIndex::default();
        Self {
            included: StringSet::new(&segment.included),
            excluded: StringSet::new(&segment.excluded),
            rules: RuleConditions::new(
                segment.rules.iter().map(|rule| rule.conditions.as_slice()),
                &no_segments,
            ),
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
        self.rules.first_match(subject).is_some()
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

/// The attribute a condition reads: a name (in [`Values`]) with its digest for the
/// context's lookup.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Attribute {
    TargetingKey,
    Named { digest: u32, name: Span },
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

/// An operator and its values: string lists as runs of [`Values::strings`], a version as a
/// range of [`Values::text`].
#[derive(Clone, Debug, PartialEq)]
enum Test {
    In(Equals),
    NotIn(Equals),
    StartsWith(Span),
    EndsWith(Span),
    Contains(Span),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    /// The value's text, parsed again on use (it parsed when compiled): a few cycles, where
    /// its parts kept apart would be more memory to read.
    SemverLt(Span),
    SemverGte(Span),
    SemverEq(Span),
    Exists,
}

impl CompiledCondition {
    fn new(condition: &Condition, segments: &SegmentIndex, values: &mut Values) -> Self {
        let wanted = &condition.values;
        if condition.operator == Operator::InSegment {
            let found: Box<[Arc<CompiledSegment>]> = wanted
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
                name: values.push_text(name),
            }
        };
        let number = match wanted.as_slice() {
            [value] => parse_decimal(value),
            _ => None,
        };
        let version = match wanted.as_slice() {
            [value] if Version::parse(value.as_bytes()).is_some() => Some(value.as_str()),
            _ => None,
        };
        let test = match condition.operator {
            Operator::In => Some(Test::In(Equals::new(wanted, values))),
            Operator::NotIn => Some(Test::NotIn(Equals::new(wanted, values))),
            Operator::StartsWith => Some(Test::StartsWith(values.push_strings(wanted.iter()))),
            Operator::EndsWith => Some(Test::EndsWith(values.push_strings(wanted.iter()))),
            Operator::Contains => Some(Test::Contains(values.push_strings(wanted.iter()))),
            Operator::Lt => number.map(Test::Lt),
            Operator::Lte => number.map(Test::Lte),
            Operator::Gt => number.map(Test::Gt),
            Operator::Gte => number.map(Test::Gte),
            Operator::SemverLt => version.map(|text| Test::SemverLt(values.push_text(text))),
            Operator::SemverGte => version.map(|text| Test::SemverGte(values.push_text(text))),
            Operator::SemverEq => version.map(|text| Test::SemverEq(values.push_text(text))),
            Operator::Exists => Some(Test::Exists),
            Operator::InSegment => None,
        };
        match test {
            Some(test) => Self::Test { attribute, test },
            None => Self::Never,
        }
    }

    #[inline]
    fn holds(&self, subject: Subject<'_>, values: &Values) -> bool {
        match self {
            Self::InSegment(segments) => segments.iter().any(|segment| segment.contains(subject)),
            // A missing attribute makes every test false, `NotIn` included.
            Self::Test { attribute, test } => subject
                .attribute(*attribute, values)
                .is_some_and(|value| test.holds(value, values)),
            Self::Never => false,
        }
    }
}

impl Test {
    fn holds(&self, value: Value<'_>, values: &Values) -> bool {
        match *self {
            Self::In(ref equals) => equals.holds(value, values),
            Self::NotIn(ref equals) => !equals.holds(value, values),
            Self::StartsWith(run) => values.any_string(value, run, |s, v| s.starts_with(v)),
            Self::EndsWith(run) => values.any_string(value, run, |s, v| s.ends_with(v)),
            Self::Contains(run) => values.any_string(value, run, |s, v| s.contains(v)),
            Self::Lt(bound) => number(value).is_some_and(|number| number < bound),
            Self::Lte(bound) => number(value).is_some_and(|number| number <= bound),
            Self::Gt(bound) => number(value).is_some_and(|number| number > bound),
            Self::Gte(bound) => number(value).is_some_and(|number| number >= bound),
            Self::SemverLt(wanted) => {
                precedence(value, values.text(wanted)).is_some_and(Ordering::is_lt)
            }
            Self::SemverGte(wanted) => {
                precedence(value, values.text(wanted)).is_some_and(Ordering::is_ge)
            }
            Self::SemverEq(wanted) => {
                precedence(value, values.text(wanted)).is_some_and(Ordering::is_eq)
            }
            Self::Exists => true,
        }
    }
}

fn number(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Number(number) => Some(number),
        _ => None,
    }
}

/// How a string attribute compares with `wanted`, when it is a version.
fn precedence(value: Value<'_>, wanted: &str) -> Option<Ordering> {
    let Value::String(text) = value else {
        return None;
    };
    let version = Version::parse(text.as_bytes())?;
    Version::parse(wanted.as_bytes()).map(|wanted| version.precedence(&wanted))
}

/// The values of `In` and `NotIn`, read for each attribute type: strings as given, numbers
/// by the decimal grammar (a run of [`Values::numbers`]), booleans as `true` and `false`.
#[derive(Clone, Debug, PartialEq)]
struct Equals {
    strings: EqualStrings,
    numbers: Span,
    has_true: bool,
    has_false: bool,
}

/// A few strings, scanned in place as a run of [`Values::strings`]; many, hashed.
#[derive(Clone, Debug, PartialEq)]
enum EqualStrings {
    Scanned(Span),
    /// An index of [`Values::sets`].
    Hashed(usize),
}

impl Equals {
    fn new(wanted: &[String], values: &mut Values) -> Self {
        let strings = if wanted.len() > SCANNED_LIMIT {
            values
                .sets
                .push(wanted.iter().map(|string| string.as_str().into()).collect());
            EqualStrings::Hashed(values.sets.len() - 1)
        } else {
            EqualStrings::Scanned(values.push_strings(wanted.iter()))
        };
        Self {
            strings,
            numbers: values.push_numbers(wanted.iter().filter_map(|value| parse_decimal(value))),
            has_true: wanted.iter().any(|value| value == "true"),
            has_false: wanted.iter().any(|value| value == "false"),
        }
    }

    fn holds(&self, value: Value<'_>, values: &Values) -> bool {
        match value {
            Value::String(string) => self.has_string(string, values),
            Value::List(strings) => strings.iter().any(|string| self.has_string(string, values)),
            Value::Number(number) => self.numbers.items(&values.numbers).contains(&number),
            Value::Bool(true) => self.has_true,
            Value::Bool(false) => self.has_false,
        }
    }

    #[inline]
    fn has_string(&self, string: &str, values: &Values) -> bool {
        match &self.strings {
            EqualStrings::Scanned(run) => values.has_string(*run, string),
            EqualStrings::Hashed(set) => values
                .sets
                .get(*set)
                .is_some_and(|set| set.contains(string)),
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
