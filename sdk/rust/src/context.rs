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

/// Who is asking: a targeting key (the user id, absent for an anonymous caller) and named
/// attributes. Rules read attributes by name; the targeting key is the attribute
/// `targetingKey`.
///
/// Attributes are kept in insertion order and looked up by a scan of a 32-bit digest of each
/// name (the rules digest theirs once, when compiled), so a lookup compares names only when
/// the digests agree. For the handful of attributes a request carries this beats a hash map.
#[derive(Clone, Default, PartialEq)]
pub struct Context {
    targeting_key: Option<String>,
    attributes: Vec<Attribute>,
}

#[derive(Clone, PartialEq)]
struct Attribute {
    digest: u32,
    name: String,
    value: AttributeValue,
}

/// FNV-1a over the name's bytes: a few cycles for an attribute name, and the same in the
/// compiled rules as in the context.
#[inline]
pub(crate) fn name_digest(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |digest: u32, byte| {
        (digest ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

impl Context {
    /// A context for the user `targeting_key`, without attributes.
    pub fn new(targeting_key: impl Into<String>) -> Self {
        Self {
            targeting_key: Some(targeting_key.into()),
            attributes: Vec::new(),
        }
    }

    /// A context without a targeting key: only rules and 100% flags can turn a flag on.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// This context with `name` set to `value`, replacing an earlier value of that name.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an earlier value of that name.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<AttributeValue>) {
        let name = name.into();
        let value = value.into();
        let digest = name_digest(&name);
        match self
            .attributes
            .iter_mut()
            .find(|attribute| attribute.digest == digest && attribute.name == name)
        {
            Some(attribute) => attribute.value = value,
            None => self.attributes.push(Attribute {
                digest,
                name,
                value,
            }),
        }
    }

    /// Sets or clears the targeting key.
    pub fn set_targeting_key(&mut self, targeting_key: Option<String>) {
        self.targeting_key = targeting_key;
    }

    /// The user id, if any.
    #[inline]
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// The attribute `name` as set (an attribute named `targetingKey` included, although rules
    /// do not read it).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.get_digested(name_digest(name), name)
    }

    /// [`Context::get`] with the name's [`name_digest`] computed by the caller.
    #[inline]
    pub(crate) fn get_digested(&self, digest: u32, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|attribute| {
                attribute.digest == digest && same_bytes(attribute.name.as_bytes(), name.as_bytes())
            })
            .map(|attribute| &attribute.value)
    }

    /// Every attribute, in the order first set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes
            .iter()
            .map(|attribute| (attribute.name.as_str(), &attribute.value))
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("targeting_key", &self.targeting_key)
            .field("attributes", &DebugAttributes(&self.attributes))
            .finish()
    }
}

struct DebugAttributes<'a>(&'a [Attribute]);

impl fmt::Debug for DebugAttributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|attribute| (&attribute.name, &attribute.value)),
            )
            .finish()
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
        Self {
            targeting_key: targeting_key.map(str::to_owned),
            attributes: Vec::new(),
        }
    }
}

impl<N: Into<String>, V: Into<AttributeValue>> Extend<(N, V)> for Context {
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
            Some(&AttributeValue::String("enterprise".into()))
        );
        assert_eq!(
            context.get("age").and_then(AttributeValue::as_number),
            Some(42.0)
        );
        assert!(context.get("missing").is_none());
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
