//! TCP sequence numbers as a type, so that no code compares them as plain
//! integers by mistake.
//!
//! Sequence numbers live on a circle of 2^32 (RFC 9293 section 3.4): adding
//! wraps, and `a < b` means "b is ahead of a by less than half the circle"
//! (serial number arithmetic, RFC 1982). That order is only partial: two
//! numbers exactly 2^31 apart are neither before nor after each other, and
//! it is not transitive over more than half the circle, so [`Seq`] has
//! `PartialOrd` and no `Ord` (it must never key a sorted map). The
//! reassembler turns them into 64-bit stream offsets at the edge and
//! compares offsets inside.

use std::cmp::Ordering;
use std::ops::{Add, Sub};

/// A TCP sequence (or acknowledgement) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// The signed distance from `from` to `self`: positive when `self` is
    /// ahead. Exactly half the circle away reads as `i32::MIN` (behind).
    pub fn since(self, from: Seq) -> i32 {
        self.0.wrapping_sub(from.0) as i32
    }

    /// `self` moved `n` bytes ahead, modulo 2^32 (`n` is a stream length,
    /// which may exceed the circle: only its low 32 bits move the number).
    pub fn advanced(self, n: u64) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

/// `a - b` is the signed distance from `b` to `a` (see [`Seq::since`]).
impl Sub for Seq {
    type Output = i32;
    fn sub(self, from: Seq) -> i32 {
        self.since(from)
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        match self.since(*other) {
            0 => Some(Ordering::Equal),
            i32::MIN => None,
            d if d > 0 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_at_2_32() {
        let a = Seq(u32::MAX - 1);
        assert_eq!(a + 3, Seq(1));
        assert!(a < a + 3);
        assert_eq!((a + 3) - a, 3);
        assert_eq!(a - (a + 3), -3);
        assert_eq!(a.advanced((1 << 32) + 5), a + 5);
    }

    #[test]
    // What the test shows is exactly that `<` is false both ways.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn half_the_circle_apart_is_unordered() {
        let a = Seq(7);
        let b = a + (1 << 31);
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
        assert!(!(a < b) && !(b < a) && a != b);
    }

    proptest! {
        /// Within less than half the circle, the order is that of the
        /// integers the numbers stand for, wherever the circle wraps.
        #[test]
        fn order_is_that_of_the_unwrapped_numbers(
            base in any::<u32>(),
            x in 0u32..(1 << 30),
            y in 0u32..(1 << 30),
        ) {
            let (a, b) = (Seq(base) + x, Seq(base) + y);
            prop_assert_eq!(a.partial_cmp(&b), Some(x.cmp(&y)));
            prop_assert_eq!(b - a, y as i32 - x as i32);
            prop_assert_eq!(a + (y.wrapping_sub(x)), b);
        }

        /// Antisymmetric: a < b exactly when b > a, and never both.
        #[test]
        fn antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (Seq(a), Seq(b));
            prop_assert_eq!(a < b, b > a);
            prop_assert!(!(a < b && b < a));
            prop_assert_eq!(a - b, (b - a).wrapping_neg());
        }
    }
}
