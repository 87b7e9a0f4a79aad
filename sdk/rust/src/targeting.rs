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
use crate::context::{Context, RawValue as Value, Span, TARGETING_KEY, index, name_digest};
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
            Attribute::TargetingKey => self.user.map(|user| Value::Bytes(user.as_bytes())),
            Attribute::Named { digest, name } => {
                self.context?.raw_digested(*digest, name.as_bytes())
            }
        }
    }
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

/// The conditions of a list of rules, rule after rule in one list, and the values they
/// compare in [`Values`]: checking a flag's rules reads a few adjacent cache lines,
/// not one allocation per rule, per condition and per value.
#[derive(Clone, Debug, PartialEq)]
struct RuleConditions {
    steps: Box<[Step]>,
    values: Values,
}

/// One condition of a rule: its attribute name and a number's bound inline, other values as
/// ranges of [`Values`].
#[derive(Clone, Debug, PartialEq)]
struct Step {
    attribute: Attribute,
    /// The rule of this condition, and where the next rule's conditions start.
    rule: u32,
    next_rule: u32,
    test: Test,
}

impl RuleConditions {
    fn new<'a>(rules: impl Iterator<Item = &'a [Condition]>, segments: &SegmentIndex) -> Self {
        let mut values = Values::default();
        let mut steps = Vec::new();
        for (rule, conditions) in rules.enumerate() {
            let next_rule = index(steps.len() + conditions.len());
            for condition in conditions {
                let (attribute, test) = compile(condition, segments, &mut values);
                steps.push(Step {
                    attribute,
                    rule: index(rule),
                    next_rule,
                    test,
                });
            }
        }
        values.text.shrink_to_fit();
        values.strings.shrink_to_fit();
        values.numbers.shrink_to_fit();
        values.words.shrink_to_fit();
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
            if !step.holds(subject, &self.values) {
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

/// The values of a list of rules, each kind in one buffer.
#[derive(Clone, Debug, Default, PartialEq)]
struct Values {
    /// Every string value (and each wanted version's parts), end to end.
    text: String,
    /// Lists of strings (prefixes, suffixes, substrings), each a run of ranges of `text`.
    strings: Vec<Span>,
    /// The numbers of `In` and `NotIn`, each condition's a run.
    numbers: Vec<f64>,
    /// The strings of `In` and `NotIn` conditions with a few short ones, as [`word`]s.
    words: Vec<u128>,
    /// The strings of `In` and `NotIn` conditions with many or long ones, hashed.
    sets: Vec<HashSet<Box<[u8]>>>,
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

    #[inline]
    fn bytes(&self, span: Span) -> &[u8] {
        span.bytes(self.text.as_bytes())
    }

    /// Whether `test(string, wanted)` holds for a string of `value` and one of the run `wanted`.
    #[inline]
    fn any_string(
        &self,
        value: Value<'_>,
        wanted: Span,
        test: impl Fn(&[u8], &[u8]) -> bool,
    ) -> bool {
        let wanted = wanted.items(&self.strings);
        value
            .strings()
            .any(|string| wanted.iter().any(|span| test(string, self.bytes(*span))))
    }
}

/// A string of at most [`WORD_LEN`] bytes as one number: its bytes, then its length plus one
/// in the top byte, so two words are equal exactly when the strings are (and no word is 0).
/// Longer strings have none. Read with two overlapping loads, as [`crate::bytes`] compares.
#[inline]
fn word(bytes: &[u8]) -> Option<u128> {
    let len = bytes.len();
    let low = |at: usize| u128::from(bytes[at]) << (8 * at);
    let value = match len {
        8..=WORD_LEN => {
            let first = u64::from_le_bytes(bytes[..8].try_into().ok()?);
            let last = u64::from_le_bytes(bytes[len - 8..].try_into().ok()?);
            u128::from(first) | u128::from(last) << (8 * (len - 8))
        }
        4..8 => {
            let first = u32::from_le_bytes(bytes[..4].try_into().ok()?);
            let last = u32::from_le_bytes(bytes[len - 4..].try_into().ok()?);
            u128::from(first) | u128::from(last) << (8 * (len - 4))
        }
        1..4 => low(0) | low(len / 2) | low(len - 1),
        0 => 0,
        _ => return None,
    };
    Some(value | (len as u128 + 1) << 120)
}

/// The longest string a [`word`] holds.
const WORD_LEN: usize = 15;

/// The attribute a condition reads: a name, inline when short, with its digest for the
/// context's lookup.
#[derive(Clone, Debug, PartialEq)]
enum Attribute {
    TargetingKey,
    Named { digest: u32, name: ShortStr },
}

/// An operator and its values.
#[derive(Clone, Debug, PartialEq)]
enum Test {
    /// `In`, and `NotIn` negated.
    Equals {
        equals: Equals,
        negated: bool,
    },
    /// A run of [`Values::strings`].
    StartsWith(Span),
    EndsWith(Span),
    Contains(Span),
    Number {
        order: Order,
        bound: f64,
    },
    Version {
        order: Order,
        wanted: VersionAt,
    },
    Exists,
    /// The user is in one of these segments; names the document does not carry are dropped,
    /// so with none left the condition is false.
    InSegment(Box<[Arc<CompiledSegment>]>),
    /// A condition an unchecked document got wrong: false for everyone.
    Never,
}

/// How a value compares with a condition's: the numeric and version operators.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Order {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Order {
    #[inline]
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Lt => ordering.is_lt(),
            Self::Lte => ordering.is_le(),
            Self::Gt => ordering.is_gt(),
            Self::Gte => ordering.is_ge(),
            Self::Eq => ordering.is_eq(),
        }
    }
}

/// A wanted version, parsed when compiled: its parts as ranges of [`Values::text`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct VersionAt {
    major: Span,
    minor: Span,
    patch: Span,
    pre: Option<Span>,
}

impl VersionAt {
    /// `text` as a version, its text (with a missing minor or patch as `0`) in `values`.
    fn new(text: &str, values: &mut Values) -> Option<Self> {
        let version = Version::parse(text.as_bytes())?;
        let mut push = |part: &[u8]| values.push_text(std::str::from_utf8(part).unwrap_or("0"));
        Some(Self {
            major: push(version.major),
            minor: push(version.minor),
            patch: push(version.patch),
            pre: version.pre.map(push),
        })
    }

    #[inline]
    fn version<'a>(&self, values: &'a Values) -> Version<'a> {
        Version {
            major: values.bytes(self.major),
            minor: values.bytes(self.minor),
            patch: values.bytes(self.patch),
            pre: self.pre.map(|pre| values.bytes(pre)),
        }
    }
}

/// A condition as its attribute and test.
fn compile(
    condition: &Condition,
    segments: &SegmentIndex,
    values: &mut Values,
) -> (Attribute, Test) {
    let wanted = &condition.values;
    if condition.operator == Operator::InSegment {
        let found: Box<[Arc<CompiledSegment>]> = wanted
            .iter()
            .filter_map(|name| segments.segments.get(name).cloned())
            .collect();
        return (Attribute::TargetingKey, Test::InSegment(found));
    }
    let Some(name) = condition.attribute.as_deref() else {
        return (Attribute::TargetingKey, Test::Never);
    };
    let attribute = if name == TARGETING_KEY {
        Attribute::TargetingKey
    } else {
        Attribute::Named {
            digest: name_digest(name),
            name: ShortStr::new(name),
        }
    };
    let one = match wanted.as_slice() {
        [value] => Some(value.as_str()),
        _ => None,
    };
    let number = |order| {
        one.and_then(parse_decimal)
            .map(|bound| Test::Number { order, bound })
    };
    let mut version = |order| {
        one.and_then(|text| VersionAt::new(text, values))
            .map(|wanted| Test::Version { order, wanted })
    };
    let test = match condition.operator {
        Operator::In | Operator::NotIn => Some(Test::Equals {
            equals: Equals::new(wanted, values),
            negated: condition.operator == Operator::NotIn,
        }),
        Operator::StartsWith => Some(Test::StartsWith(values.push_strings(wanted.iter()))),
        Operator::EndsWith => Some(Test::EndsWith(values.push_strings(wanted.iter()))),
        Operator::Contains => Some(Test::Contains(values.push_strings(wanted.iter()))),
        Operator::Lt => number(Order::Lt),
        Operator::Lte => number(Order::Lte),
        Operator::Gt => number(Order::Gt),
        Operator::Gte => number(Order::Gte),
        Operator::SemverLt => version(Order::Lt),
        Operator::SemverGte => version(Order::Gte),
        Operator::SemverEq => version(Order::Eq),
        Operator::Exists => Some(Test::Exists),
        Operator::InSegment => None,
    };
    (attribute, test.unwrap_or(Test::Never))
}

impl Step {
    #[inline]
    fn holds(&self, subject: Subject<'_>, values: &Values) -> bool {
        // Segments and broken conditions read no attribute (theirs is the targeting key,
        // a field read).
        let value = subject.attribute(&self.attribute);
        match self.test {
            Test::InSegment(ref segments) => {
                segments.iter().any(|segment| segment.contains(subject))
            }
            Test::Never => false,
            // A missing attribute makes every test false, `NotIn` included.
            ref test => value.is_some_and(|value| test.holds(value, values)),
        }
    }
}

impl Test {
    #[inline]
    fn holds(&self, value: Value<'_>, values: &Values) -> bool {
        match *self {
            Self::Equals {
                ref equals,
                negated,
            } => equals.holds(value, values) != negated,
            Self::StartsWith(run) => values.any_string(value, run, <[u8]>::starts_with),
            Self::EndsWith(run) => values.any_string(value, run, <[u8]>::ends_with),
            Self::Contains(run) => values.any_string(value, run, contains),
            Self::Number { order, bound } => match value {
                Value::Number(number) => number
                    .partial_cmp(&bound)
                    .is_some_and(|ordering| order.holds(ordering)),
                _ => false,
            },
            Self::Version { order, ref wanted } => match value {
                Value::Bytes(text) => Version::parse(text).is_some_and(|version| {
                    order.holds(version.precedence(&wanted.version(values)))
                }),
                _ => false,
            },
            Self::Exists => true,
            Self::InSegment(_) | Self::Never => false,
        }
    }
}

/// Whether `needle` occurs in `haystack`. Both are whole UTF-8 strings, so a match of
/// bytes is a match of characters.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
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

/// A few short strings as a run of [`Values::words`], compared one number at a time; many
/// or long ones, hashed.
#[derive(Clone, Debug, PartialEq)]
enum EqualStrings {
    Words(Span),
    /// An index of [`Values::sets`].
    Hashed(u32),
}

impl Equals {
    fn new(wanted: &[String], values: &mut Values) -> Self {
        let words: Option<Vec<u128>> = if wanted.len() > SCANNED_LIMIT {
            None
        } else {
            wanted.iter().map(|value| word(value.as_bytes())).collect()
        };
        let strings = match words {
            Some(words) => {
                let start = values.words.len();
                values.words.extend(words);
                EqualStrings::Words(Span::new(start, values.words.len()))
            }
            None => {
                values.sets.push(
                    wanted
                        .iter()
                        .map(|string| string.as_bytes().into())
                        .collect(),
                );
                EqualStrings::Hashed(index(values.sets.len() - 1))
            }
        };
        let start = values.numbers.len();
        values
            .numbers
            .extend(wanted.iter().filter_map(|value| parse_decimal(value)));
        Self {
            strings,
            numbers: Span::new(start, values.numbers.len()),
            has_true: wanted.iter().any(|value| value == "true"),
            has_false: wanted.iter().any(|value| value == "false"),
        }
    }

    #[inline]
    fn holds(&self, value: Value<'_>, values: &Values) -> bool {
        match value {
            Value::Bytes(string) => self.has_string(string, values),
            Value::List { .. } => value
                .strings()
                .any(|string| self.has_string(string, values)),
            Value::Number(number) => self.numbers.items(&values.numbers).contains(&number),
            Value::Bool(true) => self.has_true,
            Value::Bool(false) => self.has_false,
        }
    }

    #[inline]
    fn has_string(&self, string: &[u8], values: &Values) -> bool {
        match self.strings {
            EqualStrings::Words(run) => {
                word(string).is_some_and(|word| run.items(&values.words).contains(&word))
            }
            EqualStrings::Hashed(set) => values
                .sets
                .get(set as usize)
                .is_some_and(|set| set.contains(string)),
        }
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
