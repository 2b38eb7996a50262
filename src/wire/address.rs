//! Mbus addresses: sets of `tag:value` elements (RFC 3259 §4, §4.1).

use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest address tag (RFC 3259 §4: `1*32(ALPHA)`).
pub const MAX_TAG_LEN: usize = 32;
/// Longest address value (RFC 3259 §4: `1*64(...)`).
pub const MAX_VALUE_LEN: usize = 64;

/// An Mbus address: a set of `tag:value` elements, each tag at most once
/// (RFC 3259 §4).
///
/// Equality is set equality (element order does not matter, values compare
/// byte for byte); the written order is kept for encoding. An address is valid
/// by construction: [`Address::new`] and [`Address::parse`] check the grammar.
#[derive(Clone, Default)]
pub struct Address {
    /// The elements as `tag:value`, joined by single spaces, in written order.
    text: String,
    /// How many elements `text` holds.
    len: usize,
}

/// One `tag:value` element of an [`Address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Element<'a> {
    /// 1–32 ASCII letters.
    pub tag: &'a str,
    /// 1–64 printable ASCII characters other than space, `(` and `)`.
    pub value: &'a str,
}

/// Why an address could not be built (RFC 3259 §4 grammar).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// A tag that is not 1–32 ASCII letters.
    #[error("address tag {0:?} is not 1 to 32 ASCII letters")]
    BadTag(String),
    /// A value that is not 1–64 printable ASCII characters other than space, `(`, `)`.
    #[error("address value {0:?} is not 1 to 64 printable ASCII characters other than space, '(' and ')'")]
    BadValue(String),
    /// The same tag twice.
    #[error("address tag {0:?} appears twice")]
    DuplicateTag(String),
    /// Text that is not an address at all.
    #[error("not an address: {0}")]
    Syntax(String),
}

/// True if `tag` is a valid address tag.
pub(crate) fn is_tag(tag: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&tag.len()) && tag.bytes().all(|c| c.is_ascii_alphabetic())
}

/// True if `c` may appear in an address value: %x21-27 / %x2A-7E.
pub(crate) fn is_value_byte(c: u8) -> bool {
    matches!(c, 0x21..=0x27 | 0x2A..=0x7E)
}

/// True if `value` is a valid address value.
pub(crate) fn is_value(value: &str) -> bool {
    (1..=MAX_VALUE_LEN).contains(&value.len()) && value.bytes().all(is_value_byte)
}

impl Address {
    /// The empty address `()`, which every entity matches.
    pub fn empty() -> Address {
        Address::default()
    }

    /// Builds an address from `(tag, value)` pairs, checking the grammar and that
    /// no tag repeats.
    pub fn new<T: AsRef<str>, V: AsRef<str>>(
        elements: impl IntoIterator<Item = (T, V)>,
    ) -> Result<Address, AddressError> {
        let mut addr = Address::empty();
        for (tag, value) in elements {
            addr.push(tag.as_ref(), value.as_ref())?;
        }
        Ok(addr)
    }

    /// Parses an address written in Mbus syntax, e.g. `(app:rat module:engine)`.
    /// Surrounding whitespace is allowed.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        super::parse::parse_address_text(text.as_bytes())
            .map_err(|e| AddressError::Syntax(e.to_string()))
    }

    /// Adds an element at the end; fails if the tag is already present or the
    /// element is not valid.
    pub fn push(&mut self, tag: &str, value: &str) -> Result<(), AddressError> {
        if !is_tag(tag) {
            return Err(AddressError::BadTag(tag.to_owned()));
        }
        if !is_value(value) {
            return Err(AddressError::BadValue(value.to_owned()));
        }
        if self.get(tag).is_some() {
            return Err(AddressError::DuplicateTag(tag.to_owned()));
        }
        self.push_unchecked(tag, value);
        Ok(())
    }

    /// Adds an element the caller has already validated (the parser).
    pub(crate) fn push_unchecked(&mut self, tag: &str, value: &str) {
        if self.len > 0 {
            self.text.push(' ');
        }
        self.text.push_str(tag);
        self.text.push(':');
        self.text.push_str(value);
        self.len += 1;
    }

    /// An address from text the parser has validated and found canonical
    /// (`tag:value` elements joined by single spaces).
    pub(crate) fn from_canonical(text: String, len: usize) -> Address {
        Address { text, len }
    }

    /// Reserves room for `additional` bytes of element text.
    pub(crate) fn with_capacity(additional: usize) -> Address {
        Address {
            text: String::with_capacity(additional),
            len: 0,
        }
    }

    /// The elements in written order.
    pub fn elements(&self) -> impl Iterator<Item = Element<'_>> + '_ {
        self.text
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once(':') {
                Some((tag, value)) => Element { tag, value },
                // Unreachable by construction: every element holds a ':'.
                None => Element { tag: s, value: "" },
            })
    }

    /// The value of the element with this tag.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.elements().find(|e| e.tag == tag).map(|e| e.value)
    }

    /// The value of the mandatory `id` element (RFC 3259 §4.1), opaque.
    pub fn id(&self) -> Option<&str> {
        self.get("id")
    }

    /// How many elements the address has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for `()`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if the element is one of this address's (tag and value byte-equal).
    pub fn contains(&self, element: Element<'_>) -> bool {
        let (tag, value) = (element.tag.as_bytes(), element.value.as_bytes());
        self.element_bytes().any(|e| {
            e.len() == tag.len() + 1 + value.len()
                && e.starts_with(tag)
                && e[tag.len()] == b':'
                && e.ends_with(value)
        })
    }

    /// The elements as `tag:value` bytes, in written order.
    fn element_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.text
            .as_bytes()
            .split(|&b| b == b' ')
            .filter(|s| !s.is_empty())
    }

    /// True if every element of `self` is an element of `other` (`self ⊆ other`).
    ///
    /// This is RFC 3259 §4's delivery rule: an entity whose own address is `S`
    /// processes a message sent to `D` iff `D.is_subset_of(&S)`.
    pub fn is_subset_of(&self, other: &Address) -> bool {
        // The common case first: a message sent to exactly this address,
        // written the same way. Elements compare as whole `tag:value` bytes.
        self.len <= other.len
            && (self.text == other.text
                || self
                    .element_bytes()
                    .all(|e| other.element_bytes().any(|o| o == e)))
    }

    /// The elements present in both addresses, in `self`'s order (the guidelines'
    /// address aggregation).
    pub fn intersection(&self, other: &Address) -> Address {
        let mut out = Address::empty();
        for e in self.elements().filter(|e| other.contains(*e)) {
            out.push_unchecked(e.tag, e.value);
        }
        out
    }
}

impl PartialEq for Address {
    /// Set equality: the same elements, in any order.
    fn eq(&self, other: &Address) -> bool {
        self.len == other.len && (self.text == other.text || self.is_subset_of(other))
    }
}

impl Eq for Address {}

impl Hash for Address {
    /// Order-independent, consistent with set equality: the elements' own
    /// (FNV-1a) hashes are summed, and the sum goes to `state`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        let (mut sum, mut h, mut any) = (0u64, BASIS, false);
        for b in self.text.bytes() {
            if b == b' ' {
                if any {
                    sum = sum.wrapping_add(h);
                }
                (h, any) = (BASIS, false);
            } else {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                any = true;
            }
        }
        if any {
            sum = sum.wrapping_add(h);
        }
        self.len.hash(state);
        sum.hash(state);
    }
}

impl fmt::Display for Address {
    /// Mbus syntax: `(tag:value tag:value)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.text)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl Address {
    /// The element text without parentheses (for the encoder).
    pub(crate) fn inner_text(&self) -> &str {
        &self.text
    }
}
