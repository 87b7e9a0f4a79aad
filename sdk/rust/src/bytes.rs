//! Short strings stored and compared inline: flag keys, attribute names and condition values.

/// Longest string stored inline; longer ones live on the heap.
pub(crate) const INLINE_LEN: usize = 30;

/// A string, inline when it is at most [`INLINE_LEN`] bytes (nearly all flag keys, attribute
/// names and condition values), so that reading it reads no other memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShortStr {
    Inline { len: u8, bytes: [u8; INLINE_LEN] },
    Heap(Box<str>),
}

impl ShortStr {
    pub(crate) fn new(text: &str) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_LEN => {
                let mut bytes = [0; INLINE_LEN];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(text.into()),
        }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(text) => text.as_bytes(),
        }
    }

    /// Whether this is `text`, compared in place ([`same_bytes`]).
    #[inline]
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        same_bytes(self.as_bytes(), text)
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so always valid UTF-8.
            Self::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Self::Heap(text) => text,
        }
    }
}

/// Whether `a` and `b` are the same bytes. Up to 32 bytes they are compared with two
/// fixed-size, overlapping reads per side, which the compiler emits in place instead of a
/// `memcmp` call; a length mismatch answers before any byte is read.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = b.len();
    if a.len() != n {
        return false;
    }
    match n {
        16..=32 => a[..16] == b[..16] && a[n - 16..] == b[n - 16..],
        8..16 => a[..8] == b[..8] && a[n - 8..] == b[n - 8..],
        4..8 => a[..4] == b[..4] && a[n - 4..] == b[n - 4..],
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        0 => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_at_every_length_counts() {
        for len in 0..=40usize {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_bytes(&text, &text.clone()), "length {len}");
            for at in 0..len {
                let mut near = text.clone();
                near[at] = b'Z';
                assert!(!same_bytes(&text, &near), "length {len}, byte {at}");
            }
            if len > 0 {
                assert!(
                    !same_bytes(&text, &text[..len - 1]),
                    "length {len}, one short"
                );
            }
        }
    }
}
