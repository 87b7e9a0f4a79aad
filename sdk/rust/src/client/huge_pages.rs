//! Backs a large compiled flag set with transparent huge pages (Linux).
//!
//! Why: a service evaluates a few hundred or thousand of its flags, and in a table of 100,000
//! they sit on as many different 4 KiB pages. That is more pages than the CPU's TLB holds
//! comfortably, so the cost of an evaluation came to depend on where the kernel (and, in a VM,
//! the hypervisor) placed the table: the client bench's 100,000-flag case measured anywhere
//! from 55 to 88 ns between runs of the same binary, against 55 to 58 ns with huge pages.
//!
//! How: after the table is built, and before any reader can see it, the reload thread asks the
//! kernel to move the whole 2 MiB pages inside it to huge pages (`MADV_COLLAPSE`, Linux 6.1),
//! or else to do so in the background (`MADV_HUGEPAGE`). Both are advice: the contents stay as
//! they are, and a kernel without transparent huge pages refuses them, which changes nothing.
//! Tables smaller than 2 MiB (about 30,000 flags) contain no whole huge page and are left as
//! they are.
//!
//! `unsafe` is needed for the one `madvise` call; no memory is read or written through it.
#![allow(unsafe_code)]

use std::ops::Range;

const HUGE_PAGE: usize = 2 << 20;

/// What the kernel did with the advice, for the reload log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backing {
    /// The range holds no whole 2 MiB page.
    TooSmall,
    /// Collapsed now; the count of huge pages.
    Collapsed(usize),
    /// Marked for the kernel's background collapse.
    Marked(usize),
    /// The kernel refused both (no transparent huge pages).
    Refused,
}

/// The whole 2 MiB pages inside `range`.
fn huge_pages_within(range: &Range<usize>) -> Option<Range<usize>> {
    let start = range.start.checked_next_multiple_of(HUGE_PAGE)?;
    let end = range.end - range.end % HUGE_PAGE;
    (start < end).then_some(start..end)
}

/// Advises the kernel to back the whole huge pages inside `range` (memory this process owns
/// and that no other thread uses yet) with huge pages.
pub(crate) fn back_with_huge_pages(range: Range<usize>) -> Backing {
    let Some(pages) = huge_pages_within(&range) else {
        return Backing::TooSmall;
    };
    let count = (pages.end - pages.start) / HUGE_PAGE;
    if advise(&pages, libc::MADV_COLLAPSE) {
        Backing::Collapsed(count)
    } else if advise(&pages, libc::MADV_HUGEPAGE) {
        Backing::Marked(count)
    } else {
        Backing::Refused
    }
}

fn advise(pages: &Range<usize>, advice: libc::c_int) -> bool {
    // SAFETY: `madvise` with MADV_COLLAPSE or MADV_HUGEPAGE changes only how the pages are
    // backed, never what they contain, so no Rust object's memory changes; an address range
    // that is not mapped makes the call fail with ENOMEM, which is reported as a refusal.
    let result = unsafe {
        libc::madvise(
            pages.start as *mut libc::c_void,
            pages.end - pages.start,
            advice,
        )
    };
    result == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_huge_pages_inside_the_range_are_advised() {
        assert_eq!(huge_pages_within(&(1..HUGE_PAGE)), None);
        assert_eq!(
            huge_pages_within(&(1..2 * HUGE_PAGE + 5)),
            Some(HUGE_PAGE..2 * HUGE_PAGE)
        );
        assert_eq!(
            huge_pages_within(&(0..3 * HUGE_PAGE)),
            Some(0..3 * HUGE_PAGE)
        );
        assert_eq!(huge_pages_within(&(usize::MAX - 3..usize::MAX)), None);
        assert_eq!(back_with_huge_pages(10..HUGE_PAGE + 9), Backing::TooSmall);
    }

    /// The `AnonHugePages` of the mapping that holds `address`, in KiB.
    fn anon_huge_kib_at(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                inside = (start..end).contains(&address);
            } else if inside && let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }

    #[test]
    fn advising_a_large_allocation_backs_it_and_keeps_its_contents() {
        let bytes: Vec<u8> = (0..6 * HUGE_PAGE).map(|i| (i % 251) as u8).collect();
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let whole_pages = (range.end / HUGE_PAGE) - range.start.div_ceil(HUGE_PAGE);
        let backing = back_with_huge_pages(range.clone());
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.contains("[always]") || thp.contains("[madvise]") {
            match backing {
                Backing::Collapsed(count) => {
                    assert_eq!(count, whole_pages);
                    let kib = anon_huge_kib_at(range.start).expect("the mapping in smaps");
                    assert!(kib >= 2048 * count as u64, "{kib} KiB of huge pages");
                }
                Backing::Marked(count) => assert_eq!(count, whole_pages),
                other => panic!("transparent huge pages are on, yet {other:?}"),
            }
        }
        assert!(
            bytes
                .iter()
                .enumerate()
                .all(|(i, byte)| *byte == (i % 251) as u8)
        );
    }
}
