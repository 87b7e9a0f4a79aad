//! The evaluation context: who is asking, for targeting rules (`docs/targeting.md`).
//!
//! ```
//! use rollgate_sdk::Context;
//!
//! let context = Context::new("user-1")
//!     .with("plan", "enterprise")
//!     .with("age", 42)
//!     .with("beta", true)
//!     .with("groups", ["admins", "staff"]);
//! assert_eq!(context.targeting_key(), Some("user-1"));
//! assert_eq!(context.get("age").and_then(|age| age.as_number()), Some(42.0));
//! assert_eq!(context.get("groups").map(|groups| groups.to_owned()),
//!            Some(vec!["admins".to_owned(), "staff".to_owned()].into()));
//! ```

use std::fmt;

use crate::bytes::same_bytes;

/// The attribute name rules use for the targeting key (the user id). A context attribute of
/// this name is never read: rules see the targeting key under it.
pub const TARGETING_KEY: &str = "targetingKey";

/// The value of one context attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    String(String),
    /// Every number is a double, as in JSON; integers beyond 2^53 lose precision.
    Number(f64),
    Bool(bool),
    /// A list of strings (groups, roles, tags): string operators hold when any element does.
    List(Vec<String>),
}

impl AttributeValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(value) => Some(value),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            Self::List(values) => Some(values),
            _ => None,
        }
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<&String> for AttributeValue {
    fn from(value: &String) -> Self {
        Self::String(value.clone())
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        Self::Number(value)
    }
}

/// Numbers convert to the nearest double (exact up to 2^53 in magnitude).
macro_rules! number_from {
    ($($type:ty),*) => {$(
        impl From<$type> for AttributeValue {
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn from(value: $type) -> Self {
                Self::Number(value as f64)
            }
        }
    )*};
}

number_from!(f32, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl From<Vec<String>> for AttributeValue {
    fn from(values: Vec<String>) -> Self {
        Self::List(values)
    }
}

impl From<Vec<&str>> for AttributeValue {
    fn from(values: Vec<&str>) -> Self {
        Self::List(values.into_iter().map(str::to_owned).collect())
    }
}

impl From<&[&str]> for AttributeValue {
    fn from(values: &[&str]) -> Self {
        Self::List(values.iter().map(|value| (*value).to_owned()).collect())
    }
}

impl<const N: usize> From<[&str; N]> for AttributeValue {
    fn from(values: [&str; N]) -> Self {
        Self::List(values.iter().map(|value| (*value).to_owned()).collect())
    }
}

/// An attribute as a [`Context`] holds it, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttributeRef<'a> {
    String(&'a str),
    Number(f64),
    Bool(bool),
    List(StringList<'a>),
}

impl<'a> AttributeRef<'a> {
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Self::String(value) => Some(value),
            _ => None,
        }
    }

    pub fn as_number(self) -> Option<f64> {
        match self {
            Self::Number(value) => Some(value),
            _ => None,
        }
    }

    pub fn as_bool(self) -> Option<bool> {
        match self {
            Self::Bool(value) => Some(value),
            _ => None,
        }
    }

    pub fn as_list(self) -> Option<StringList<'a>> {
        match self {
            Self::List(values) => Some(values),
            _ => None,
        }
    }

    /// The attribute as an owned value.
    pub fn to_owned(self) -> AttributeValue {
        match self {
            Self::String(value) => AttributeValue::String(value.to_owned()),
            Self::Number(value) => AttributeValue::Number(value),
            Self::Bool(value) => AttributeValue::Bool(value),
            Self::List(values) => AttributeValue::List(values.iter().map(str::to_owned).collect()),
        }
    }
}

/// A list attribute's strings, borrowed from the context.
#[derive(Clone, Copy)]
pub struct StringList<'a> {
    text: &'a str,
    items: &'a [Span],
}

impl<'a> StringList<'a> {
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        self.items.iter().map(move |span| span.of(self.text))
    }

    pub fn len(self) -> usize {
        self.items.len()
    }

    pub fn is_empty(self) -> bool {
        self.items.is_empty()
    }
}

impl PartialEq for StringList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for StringList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A range of a buffer: of a context's text, or of the compiled rules' lists.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The range from `start` to `end`, saturated as [`index`] does.
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Self {
            start: index(start),
            end: index(end),
        }
    }

    #[inline]
    pub(crate) fn of(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// The bytes of `text` in this range, without the character-boundary checks of
    /// [`Span::of`]: the compiled rules compare bytes.
    #[inline]
    pub(crate) fn bytes(self, text: &[u8]) -> &[u8] {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    /// The items of `list` in this range; none when it is out of bounds.
    #[inline]
    pub(crate) fn items<T>(self, list: &[T]) -> &[T] {
        list.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// An attribute as the compiled rules read it: strings as bytes, which they compare without
/// the character-boundary checks of `&str` ranges.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RawValue<'a> {
    Bytes(&'a [u8]),
    Number(f64),
    Bool(bool),
    /// A list's elements, as ranges of `text`.
    List {
        text: &'a [u8],
        items: &'a [Span],
    },
}

impl<'a> RawValue<'a> {
    /// The strings of a string or a list; none for other types.
    #[inline]
    pub(crate) fn strings(self) -> impl Iterator<Item = &'a [u8]> {
        let (one, text, items): (Option<&[u8]>, &[u8], &[Span]) = match self {
            Self::Bytes(bytes) => (Some(bytes), &[], &[]),
            Self::List { text, items } => (None, text, items),
            Self::Number(_) | Self::Bool(_) => (None, &[], &[]),
        };
        one.into_iter()
            .chain(items.iter().map(move |span| span.bytes(text)))
    }
}

/// Who is asking: a targeting key (the user id, absent for an anonymous caller) and named
/// attributes. Rules read attributes by name; the targeting key is the attribute
/// `targetingKey`.
///
/// Every string of a context (the key, the names, string values and list elements) is kept
/// in one buffer, and the attributes in one list, so evaluating reads a few adjacent cache
/// lines instead of one allocation per string. Attributes are found by a scan of a 32-bit
/// digest of each name (the rules digest theirs once, when compiled), comparing names only
/// when the digests agree: for the handful a request carries, that beats a hash map.
#[derive(Clone, Default)]
pub struct Context {
    text: String,
    targeting_key: Option<Span>,
    attributes: Vec<Slot>,
    /// The elements of list attributes, each list a run of them.
    list_items: Vec<Span>,
}

#[derive(Clone, Copy)]
struct Slot {
    digest: u32,
    name: Span,
    value: Stored,
}

#[derive(Clone, Copy)]
enum Stored {
    String(Span),
    Number(f64),
    Bool(bool),
    /// A range of `list_items`.
    List {
        start: u32,
        end: u32,
    },
}

/// FNV-1a over the name's bytes: a few cycles for an attribute name, and the same in the
/// compiled rules as in the context.
#[inline]
pub(crate) fn name_digest(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |digest: u32, byte| {
        (digest ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// A length or an index as the `u32` of a span; a context past 4 GiB saturates (and its spans
/// then read as empty strings) rather than panicking.
pub(crate) fn index(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Context {
    /// A context for the user `targeting_key`, without attributes.
    pub fn new(targeting_key: impl AsRef<str>) -> Self {
        let mut context = Self::default();
        context.set_targeting_key(Some(targeting_key.as_ref()));
        context
    }

    /// A context without a targeting key: only rules and 100% flags can turn a flag on.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// This context with `name` set to `value`, replacing an earlier value of that name.
    #[must_use]
    pub fn with(mut self, name: impl AsRef<str>, value: impl Into<AttributeValue>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an earlier value of that name (whose text stays in
    /// the buffer until the context is dropped).
    pub fn set(&mut self, name: impl AsRef<str>, value: impl Into<AttributeValue>) {
        let name = name.as_ref();
        let value = match value.into() {
            AttributeValue::String(text) => Stored::String(self.push(&text)),
            AttributeValue::Number(number) => Stored::Number(number),
            AttributeValue::Bool(flag) => Stored::Bool(flag),
            AttributeValue::List(items) => {
                let start = index(self.list_items.len());
                for item in &items {
                    let span = self.push(item);
                    self.list_items.push(span);
                }
                Stored::List {
                    start,
                    end: index(self.list_items.len()),
                }
            }
        };
        let digest = name_digest(name);
        match self.find(digest, name.as_bytes()) {
            Some(slot) => self.attributes[slot].value = value,
            None => {
                let name = self.push(name);
                self.attributes.push(Slot {
                    digest,
                    name,
                    value,
                });
            }
        }
    }

    /// Sets or clears the targeting key.
    pub fn set_targeting_key(&mut self, targeting_key: Option<&str>) {
        self.targeting_key = targeting_key.map(|key| self.push(key));
    }

    /// The user id, if any.
    #[inline]
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.map(|span| span.of(&self.text))
    }

    /// The attribute `name` as set (an attribute named `targetingKey` included, although rules
    /// do not read it).
    #[inline]
    pub fn get(&self, name: &str) -> Option<AttributeRef<'_>> {
        self.get_digested(name_digest(name), name.as_bytes())
    }

    /// [`Context::get`] with the name's [`name_digest`] computed by the caller.
    #[inline]
    pub(crate) fn get_digested(&self, digest: u32, name: &[u8]) -> Option<AttributeRef<'_>> {
        self.find(digest, name)
            .map(|slot| self.read(self.attributes[slot].value))
    }

    /// The attribute as the compiled rules read it ([`RawValue`]).
    #[inline]
    pub(crate) fn raw_digested(&self, digest: u32, name: &[u8]) -> Option<RawValue<'_>> {
        let slot = self.find(digest, name)?;
        let text = self.text.as_bytes();
        Some(match self.attributes[slot].value {
            Stored::String(span) => RawValue::Bytes(span.bytes(text)),
            Stored::Number(number) => RawValue::Number(number),
            Stored::Bool(flag) => RawValue::Bool(flag),
            Stored::List { start, end } => RawValue::List {
                text,
                items: Span { start, end }.items(&self.list_items),
            },
        })
    }

    /// Every attribute, in the order first set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, AttributeRef<'_>)> {
        self.attributes
            .iter()
            .map(|slot| (slot.name.of(&self.text), self.read(slot.value)))
    }

    #[inline]
    fn find(&self, digest: u32, name: &[u8]) -> Option<usize> {
        let text = self.text.as_bytes();
        self.attributes
            .iter()
            .position(|slot| slot.digest == digest && same_bytes(slot.name.bytes(text), name))
    }

    #[inline]
    fn read(&self, value: Stored) -> AttributeRef<'_> {
        match value {
            Stored::String(span) => AttributeRef::String(span.of(&self.text)),
            Stored::Number(number) => AttributeRef::Number(number),
            Stored::Bool(flag) => AttributeRef::Bool(flag),
            Stored::List { start, end } => AttributeRef::List(StringList {
                text: &self.text,
                items: self
                    .list_items
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            }),
        }
    }

    /// Appends `text` to the buffer, and returns where it is.
    fn push(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        Span::new(start, self.text.len())
    }
}

/// Same targeting key and same attributes in the same order.
impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.targeting_key() == other.targeting_key() && self.attributes().eq(other.attributes())
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("targeting_key", &self.targeting_key())
            .field("attributes", &DebugAttributes(self))
            .finish()
    }
}

struct DebugAttributes<'a>(&'a Context);

impl fmt::Debug for DebugAttributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.attributes()).finish()
    }
}

impl From<&str> for Context {
    fn from(targeting_key: &str) -> Self {
        Self::new(targeting_key)
    }
}

impl From<String> for Context {
    fn from(targeting_key: String) -> Self {
        Self::new(targeting_key)
    }
}

/// A context for an optional user id, as the calls without a context take it.
impl From<Option<&str>> for Context {
    fn from(targeting_key: Option<&str>) -> Self {
        let mut context = Self::default();
        context.set_targeting_key(targeting_key);
        context
    }
}

impl<N: AsRef<str>, V: Into<AttributeValue>> Extend<(N, V)> for Context {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, attributes: I) {
        for (name, value) in attributes {
            self.set(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_replaces_and_keeps_order() {
        let mut context = Context::new("u")
            .with("plan", "free")
            .with("age", 42)
            .with("plan", "enterprise");
        context.extend([("country", "DE")]);
        let names: Vec<_> = context.attributes().map(|(name, _)| name).collect();
        assert_eq!(names, ["plan", "age", "country"]);
        assert_eq!(
            context.get("plan"),
            Some(AttributeRef::String("enterprise"))
        );
        assert_eq!(
            context.get("age").and_then(AttributeRef::as_number),
            Some(42.0)
        );
        assert!(context.get("missing").is_none());
        let mut keyed = context.clone();
        keyed.set_targeting_key(Some("v"));
        assert_eq!(keyed.targeting_key(), Some("v"));
        assert_ne!(keyed, context);
        keyed.set_targeting_key(Some("u"));
        assert_eq!(
            keyed, context,
            "equal by content, whatever the buffer holds"
        );
        let listed = Context::anonymous().with("groups", ["a", "b"]).with("n", 1);
        let groups = listed
            .get("groups")
            .and_then(AttributeRef::as_list)
            .unwrap();
        assert_eq!(groups.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            listed.get("groups").map(AttributeRef::to_owned),
            Some(AttributeValue::List(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn conversions_give_the_documented_types() {
        assert_eq!(AttributeValue::from(7u64), AttributeValue::Number(7.0));
        assert_eq!(AttributeValue::from(-1.5f32), AttributeValue::Number(-1.5));
        assert_eq!(AttributeValue::from(false).as_bool(), Some(false));
        assert_eq!(
            AttributeValue::from(["a", "b"]).as_list(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(Context::from(None::<&str>).targeting_key(), None);
        assert_eq!(Context::from("u").targeting_key(), Some("u"));
        assert_eq!(Context::anonymous(), Context::default());
    }
}
