//! The densest time windows of a set of events, taken one after the other:
//! the mass-disconnect search (D2) without rescanning every event for each
//! group found. Rescanning made it quadratic: 20,000 cut connections took
//! 3.9 s, a million would take hours.
//!
//! Counts only fall as events are claimed, so a max-heap of window counts
//! checked lazily (a popped count that changed goes back with its new value)
//! gives the same windows, in the same order, as a full rescan: the most
//! events, the earliest start among equals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Events still unclaimed, counted over index ranges (a Fenwick tree).
struct Alive {
    tree: Vec<u32>,
}

impl Alive {
    fn all(n: usize) -> Alive {
        let mut tree = vec![0u32; n + 1];
        for i in 1..=n {
            tree[i] += 1;
            let up = i + (i & i.wrapping_neg());
            if up <= n {
                tree[up] += tree[i];
            }
        }
        Alive { tree }
    }

    /// Unclaimed events among the first `end`.
    fn prefix(&self, end: usize) -> u32 {
        let (mut i, mut sum) = (end, 0);
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }

    fn claim(&mut self, index: usize) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] -= 1;
            i += i & i.wrapping_neg();
        }
    }
}

/// Skips claimed events: `next(i)` is the first unclaimed index at or
/// after `i` (union-find with path halving).
struct NextAlive {
    next: Vec<usize>,
}

impl NextAlive {
    fn find(&mut self, mut i: usize) -> usize {
        while self.next[i] != i {
            self.next[i] = self.next[self.next[i]];
            i = self.next[i];
        }
        i
    }
}

/// Groups of `times` (sorted, ascending) that fall within `width` of their
/// first, densest first: each time the window holding the most unclaimed
/// events (the earliest among equals), as long as `keep(count)` says so.
/// Returns the indices of each group, in the order found.
pub fn densest_windows(
    times: &[f64],
    width: f64,
    mut keep: impl FnMut(usize) -> bool,
) -> Vec<Vec<usize>> {
    let n = times.len();
    // One past the last event within `width` of event i.
    let mut end = vec![0usize; n];
    let mut j = 0;
    for i in 0..n {
        j = j.max(i);
        while j + 1 < n && times[j + 1] - times[i] <= width {
            j += 1;
        }
        end[i] = j + 1;
    }
    let mut alive = Alive::all(n);
    let mut skip = NextAlive {
        next: (0..=n).collect(),
    };
    let mut heap: BinaryHeap<(u32, Reverse<usize>)> =
        (0..n).map(|i| ((end[i] - i) as u32, Reverse(i))).collect();
    let mut out = Vec::new();
    while let Some((count, Reverse(i))) = heap.pop() {
        // Claimed: the next unclaimed event is a later one.
        if skip.find(i) != i {
            continue;
        }
        let now = alive.prefix(end[i]) - alive.prefix(i);
        if now != count {
            heap.push((now, Reverse(i)));
            continue;
        }
        if !keep(now as usize) {
            break;
        }
        let mut group = Vec::with_capacity(now as usize);
        let mut k = skip.find(i);
        while k < end[i] {
            group.push(k);
            alive.claim(k);
            skip.next[k] = k + 1;
            k = skip.find(k + 1);
        }
        out.push(group);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain search: rescan every event for each group.
    fn rescanning(times: &[f64], width: f64, keep: impl Fn(usize) -> bool) -> Vec<Vec<usize>> {
        let mut left: Vec<usize> = (0..times.len()).collect();
        let mut out = Vec::new();
        loop {
            let (mut best, mut j) = ((0, 0), 0);
            for i in 0..left.len() {
                j = j.max(i);
                while j + 1 < left.len() && times[left[j + 1]] - times[left[i]] <= width {
                    j += 1;
                }
                if j + 1 - i > best.1 - best.0 {
                    best = (i, j + 1);
                }
            }
            let k = best.1 - best.0;
            if k == 0 || !keep(k) {
                break;
            }
            out.push(left.drain(best.0..best.1).collect());
        }
        out
    }

    fn times(n: usize, span: f64, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Whole milliseconds, so equal times and exact edges occur.
                ((s % 1_000_000) as f64 / 1e6 * span * 1000.0).round() / 1000.0
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn the_same_groups_as_a_full_rescan() {
        for seed in 1..200u64 {
            let n = (seed as usize * 7) % 300;
            let span = 1.0 + (seed % 13) as f64 * 3.0;
            let t = times(n, span, seed);
            for min in [1, 2, 3, 5] {
                let fast = densest_windows(&t, 1.0, |k| k >= min);
                let slow = rescanning(&t, 1.0, |k| k >= min);
                assert_eq!(fast, slow, "seed {seed}, n {n}, min {min}");
            }
        }
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(densest_windows(&[], 1.0, |_| true).is_empty());
        assert_eq!(densest_windows(&[3.0], 1.0, |_| true), vec![vec![0]]);
    }

    #[test]
    fn a_hundred_thousand_events_quickly() {
        // Groups of 5 every 2 s: 20,000 groups, each found without a rescan.
        let t: Vec<f64> = (0..100_000)
            .map(|i| (i / 5) as f64 * 2.0 + (i % 5) as f64 * 0.01)
            .collect();
        let groups = densest_windows(&t, 1.0, |k| k >= 5);
        assert_eq!(groups.len(), 20_000);
        assert!(groups.iter().all(|g| g.len() == 5));
    }
}
