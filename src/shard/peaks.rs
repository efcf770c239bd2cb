//! The peaks of a sharded run (`limits.peak_flows`, `peak_buffered`) as
//! one analyzer would have taken them. Both are sums over the workers
//! taken at the moment one worker's part rises, so each worker reports the
//! steps that changed its part ([`Change`]), and the reader replays them in
//! the capture's order: a rise counts with what every other worker held at
//! that moment. Steps that change nothing cannot make a peak (the sum only
//! rises inside a step), so they are not sent.

use std::collections::VecDeque;

/// Where a change falls in the capture: `2 i + 1` for the `i`th TCP
/// segment, `2 i` for the purge just before it.
pub type Clock = u64;

/// One worker's step that changed what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: Clock,
    /// Bytes buffered when the peak was taken (no more than it held
    /// before for a purge).
    pub settled: u64,
    /// Flows held once the new flow was made, when the step made one.
    pub inserted: Option<u64>,
    /// What it holds after the step.
    pub flows: u64,
    pub buffered: u64,
}

/// What a worker holds, and the changes it reported, as the reader knows.
#[derive(Default)]
struct Part {
    flows: u64,
    buffered: u64,
    pending: VecDeque<Change>,
    /// Every change up to here is in `pending` (or replayed).
    known_to: Clock,
}

/// The replay of the workers' changes.
pub struct Peaks {
    parts: Vec<Part>,
    flows: u64,
    buffered: u64,
    pub peak_flows: u64,
    pub peak_buffered: u64,
}

impl Peaks {
    pub fn new(workers: usize) -> Peaks {
        Peaks {
            parts: (0..workers).map(|_| Part::default()).collect(),
            flows: 0,
            buffered: 0,
            peak_flows: 0,
            peak_buffered: 0,
        }
    }

    /// Worker `w`'s changes (in its order), complete up to `known_to`.
    pub fn add(&mut self, w: usize, changes: &[Change], known_to: Clock) {
        let p = &mut self.parts[w];
        p.pending.extend(changes);
        p.known_to = p.known_to.max(known_to);
        self.replay();
    }

    /// Replays, in the capture's order, the changes every worker has
    /// reported up to.
    fn replay(&mut self) {
        let upto = self.parts.iter().map(|p| p.known_to).min().unwrap_or(0);
        loop {
            let next = self
                .parts
                .iter()
                .enumerate()
                .filter_map(|(w, p)| p.pending.front().map(|c| (c.at, w)))
                .filter(|&(at, _)| at <= upto)
                .min();
            let Some((_, w)) = next else {
                return;
            };
            if let Some(c) = self.parts[w].pending.pop_front() {
                self.apply(w, c);
            }
        }
    }

    fn apply(&mut self, w: usize, c: Change) {
        let p = &mut self.parts[w];
        let others_flows = self.flows - p.flows;
        let others_buffered = self.buffered - p.buffered;
        self.peak_buffered = self.peak_buffered.max(others_buffered + c.settled);
        if let Some(f) = c.inserted {
            self.peak_flows = self.peak_flows.max(others_flows + f);
        }
        p.flows = c.flows;
        p.buffered = c.buffered;
        self.flows = others_flows + c.flows;
        self.buffered = others_buffered + c.buffered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: Clock, settled: u64, inserted: Option<u64>, flows: u64, buffered: u64) -> Change {
        Change {
            at,
            settled,
            inserted,
            flows,
            buffered,
        }
    }

    /// Two workers whose rises interleave: each rise counts with what the
    /// other held at that moment, whatever order the reports come in.
    #[test]
    fn rises_count_with_what_the_others_held_then() {
        let a = [change(1, 100, Some(1), 1, 100), change(7, 0, None, 0, 0)];
        let b = [
            change(3, 50, Some(1), 1, 50),
            change(5, 80, Some(2), 2, 80),
            change(9, 500, None, 2, 20),
        ];
        for a_first in [true, false] {
            let mut p = Peaks::new(2);
            if a_first {
                p.add(0, &a, 100);
                p.add(1, &b, 100);
            } else {
                p.add(1, &b[..1], 4);
                p.add(0, &a[..1], 2);
                p.add(1, &b[1..], 100);
                p.add(0, &a[1..], 100);
            }
            // At 5: a holds 100, b rises to 80 and a second flow: 180, 3.
            // At 9: a holds nothing, b's 500 while settling: 500.
            assert_eq!(
                (p.peak_flows, p.peak_buffered),
                (3, 500),
                "a first: {a_first}"
            );
        }
    }

    /// A change is not replayed before every worker has reported up to it.
    #[test]
    fn waits_for_every_worker() {
        let mut p = Peaks::new(2);
        p.add(0, &[change(9, 40, Some(1), 1, 40)], 10);
        assert_eq!(p.peak_buffered, 0);
        p.add(1, &[change(3, 70, Some(1), 1, 70)], 10);
        assert_eq!((p.peak_flows, p.peak_buffered), (2, 110));
    }
}
