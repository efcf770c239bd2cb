//! Cache prefetch hints for the per-packet path.
//!
//! With thousands of connections at once, a packet's flow state is not in
//! the cache, and it sits behind pointers: the table's entry, the flow's
//! box, the WebSocket state's box. Loaded one after the other, each costs a
//! full memory latency in turn; asked for together, as soon as their
//! addresses are known, the fetches overlap.

/// Cache lines, in bytes, on every machine this runs on (x86_64).
const LINE: usize = 64;

/// Asks for the cache lines that hold `len` bytes from `addr` on. A hint
/// only: it never reads the memory and never faults, so any address (even
/// one freed since) is fine; it does nothing where not supported.
#[inline(always)]
pub fn range(addr: usize, len: usize) {
    for line in lines(addr, len) {
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: PREFETCHT0 does not access memory architecturally: it
        // cannot fault, whatever the address, and SSE is part of x86_64.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(line * LINE));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = line;
    }
}

/// The cache lines (addresses divided by [`LINE`]) that `len` bytes from
/// `addr` touch; none past the top of memory.
#[inline(always)]
fn lines(addr: usize, len: usize) -> std::ops::Range<usize> {
    match len.checked_sub(1) {
        Some(more) => addr / LINE..addr.saturating_add(more) / LINE + 1,
        None => 0..0,
    }
}

/// The address of `r`, for [`range`].
pub fn addr_of<T>(r: &T) -> usize {
    std::ptr::from_ref(r).addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The addresses of the lines of a range.
    fn walk(addr: usize, len: usize) -> Vec<usize> {
        lines(addr, len).map(|l| l * LINE).collect()
    }

    #[test]
    fn every_line_touched_and_no_other() {
        assert_eq!(walk(0, 64), [0]);
        assert_eq!(walk(0, 65), [0, 64]);
        assert_eq!(walk(63, 2), [0, 64]);
        assert_eq!(walk(100, 120), [64, 128, 192]);
        assert_eq!(walk(128, 120), [128, 192]);
        assert!(walk(128, 0).is_empty());
        // Anything goes for a hint: no overflow at the top of memory.
        assert_eq!(walk(usize::MAX - 10, 100), [usize::MAX & !63]);
        range(usize::MAX - 10, 100);
        range(0, 200);
    }
}
