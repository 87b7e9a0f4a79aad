//! Equality of short byte strings, inline: flag keys, attribute names and condition values.

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
