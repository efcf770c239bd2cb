//! Tests of the out-of-order store: its invariants after every step, and a
//! reader on top of it (as `stream.rs` uses it) that must give every byte
//! once, in order, with gaps at the right offsets and sizes.

use super::*;
use proptest::prelude::*;

const ANY: usize = usize::MAX / 4;

/// The byte sent at stream offset `off`.
fn byte(off: u64) -> u8 {
    (off.wrapping_mul(31) >> 2) as u8 ^ off as u8
}

fn bytes(start: u64, len: usize) -> Vec<u8> {
    (start..start + len as u64).map(byte).collect()
}

fn ins(a: &mut Assembler, start: u64, len: usize, ts: i64) -> Result<usize, Full> {
    let r = a.insert(start, &bytes(start, len), Ts(ts), ANY, MAX_RUNS);
    a.check(MAX_RUNS);
    r
}

#[test]
fn segments_in_order_after_a_hole_make_one_run() {
    let mut a = Assembler::default();
    for i in 0..10 {
        assert_eq!(ins(&mut a, 100 + 10 * i, 10, i as i64), Ok(10));
    }
    assert_eq!(a.len(), 1);
    let run = a.pop_reached(100).expect("reached");
    let pieces: Vec<(Ts, usize)> = run.pieces(100).map(|(t, b)| (t, b.len())).collect();
    assert_eq!(pieces, (0..10).map(|i| (Ts(i), 10)).collect::<Vec<_>>());
    assert_eq!((a.cost(), a.len()), (0, 0), "memory handed back");
}

#[test]
fn overlapping_arrivals_fill_only_what_is_missing() {
    let mut a = Assembler::default();
    ins(&mut a, 10, 5, 1).unwrap();
    ins(&mut a, 20, 5, 2).unwrap();
    // Covers both runs and the holes around them: only the holes are new.
    assert_eq!(ins(&mut a, 5, 25, 3), Ok(15));
    assert_eq!(ins(&mut a, 12, 10, 4), Ok(0), "all held already");
    let got = a.bytes();
    assert_eq!(got.len(), 25);
    for (off, b, ts) in got {
        assert_eq!(b, byte(off));
        let first = if (10..15).contains(&off) {
            1
        } else if (20..25).contains(&off) {
            2
        } else {
            3
        };
        assert_eq!(ts, Ts(first), "byte {off} keeps its first capture time");
    }
}

#[test]
fn a_filled_hole_joins_the_smaller_run_into_the_larger() {
    let mut a = Assembler::default();
    ins(&mut a, 0, 100, 1).unwrap();
    ins(&mut a, 110, 10, 2).unwrap();
    assert_eq!(a.len(), 2);
    ins(&mut a, 100, 10, 3).unwrap();
    assert_eq!(a.len(), 1, "the hole filled, one run");
    // Not when the run after is the longer: it would be copied.
    ins(&mut a, 200, 10, 4).unwrap();
    ins(&mut a, 215, 500, 5).unwrap();
    ins(&mut a, 210, 5, 6).unwrap();
    assert_eq!(a.len(), 3);
}

#[test]
fn a_one_byte_entry_costs_its_slot_and_its_block() {
    let mut a = Assembler::default();
    ins(&mut a, 5, 1, 0).unwrap();
    assert_eq!(a.cost(), block(4 * SLOT) + block(1));
    ins(&mut a, 7, 1, 0).unwrap();
    assert_eq!(a.cost(), block(4 * SLOT) + 2 * block(1));
    assert_eq!(SLOT, 64, "the figure the README and comments give");
}

#[test]
fn no_room_stores_what_fits_from_the_start() {
    let mut a = Assembler::default();
    ins(&mut a, 10, 10, 0).unwrap();
    let before = a.cost();
    // Room for one more 10-byte run, not for a second, nor for growing
    // the run held (its buffer and a stamp for the new time).
    let room = block(10) + 8;
    let r = a.insert(0, &bytes(0, 30), Ts(1), room, MAX_RUNS);
    assert_eq!(r, Err(Full));
    a.check(MAX_RUNS);
    assert!(a.cost() <= before + room);
    let held: Vec<u64> = a.bytes().iter().map(|b| b.0).collect();
    assert_eq!(held, (0..20).collect::<Vec<_>>(), "the first piece fitted");
    // Bounded runs: a third run is refused, the first two stay.
    let mut b = Assembler::default();
    assert_eq!(b.insert(0, &bytes(0, 1), Ts(0), ANY, 2), Ok(1));
    b.insert(2, &bytes(2, 1), Ts(0), ANY, 2).unwrap();
    assert_eq!(b.insert(4, &bytes(4, 1), Ts(0), ANY, 2), Err(Full));
    b.check(2);
    assert_eq!(b.len(), 2);
}

#[test]
fn ts_at_finds_a_run_start_only() {
    let mut a = Assembler::default();
    ins(&mut a, 10, 5, 7).unwrap();
    ins(&mut a, 30, 5, 8).unwrap();
    assert_eq!(a.ts_at(10), Some(Ts(7)));
    assert_eq!(a.ts_at(30), Some(Ts(8)));
    assert_eq!(a.ts_at(12), None);
    assert_eq!(a.ts_at(20), None);
}

/// 100 000 one-byte runs in reverse order (each insertion at the front):
/// bounded by the run limit, and quick.
#[test]
fn many_runs_at_the_front_stay_bounded() {
    let mut a = Assembler::default();
    let mut refused = 0;
    for i in (0..100_000u64).rev() {
        if a.insert(2 * i + 1, &[1], Ts(0), ANY, MAX_RUNS).is_err() {
            refused += 1;
        }
    }
    a.check(MAX_RUNS);
    assert_eq!(a.len(), MAX_RUNS);
    assert_eq!(refused, 100_000 - MAX_RUNS);
    assert!(a.cost() <= block(MAX_RUNS * SLOT) + MAX_RUNS * block(1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of insertions (overlapping, duplicated, under any room
    /// and run bound) keeps the invariants; an insertion that succeeds
    /// stores its whole range; nothing stored is lost or changed, and each
    /// byte keeps the time of the insertion that first stored it.
    #[test]
    fn insertions_keep_the_invariants(
        ops in prop::collection::vec((0u64..400, 1usize..40, 0usize..3000), 1..60),
        max_runs in prop_oneof![Just(MAX_RUNS), 1usize..6],
    ) {
        let mut a = Assembler::default();
        let mut first: std::collections::BTreeMap<u64, Ts> = Default::default();
        for (k, &(start, len, room)) in ops.iter().enumerate() {
            let ts = Ts(k as i64);
            let before = a.cost();
            let r = a.insert(start, &bytes(start, len), ts, room, max_runs);
            a.check(max_runs);
            prop_assert!(a.cost() <= before + room, "over the room granted");
            let now = a.bytes();
            for &(off, b, t) in &now {
                prop_assert_eq!(b, byte(off));
                let want = *first.entry(off).or_insert(ts);
                prop_assert!(t == want, "byte {} stamped {:?}, first stored at {:?}", off, t, want);
                prop_assert!(t != ts || (start..start + len as u64).contains(&off));
            }
            prop_assert_eq!(now.len(), first.len(), "a byte disappeared");
            if r.is_ok() {
                for off in start..start + len as u64 {
                    prop_assert!(first.contains_key(&off), "byte {} not stored", off);
                }
            }
        }
    }
}

/// What a reader of the store delivered.
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
}

/// A stream reader over the store, as `stream.rs` does it: in-order bytes
/// go straight out, the rest waits; with no room, the first hole is given
/// up. `flush` gives every hole up.
struct Reader {
    off: u64,
    store: Assembler,
    out: Vec<Ev>,
    room: usize,
    max_runs: usize,
}

impl Reader {
    fn new(room: usize, max_runs: usize) -> Self {
        Reader {
            off: 0,
            store: Assembler::default(),
            out: Vec::new(),
            room,
            max_runs,
        }
    }

    fn drain(&mut self) {
        while let Some(run) = self.store.pop_reached(self.off) {
            for (_, b) in run.pieces(self.off) {
                self.out.push(Ev::Data(self.off, b.to_vec()));
                self.off += b.len() as u64;
            }
            self.off = self.off.max(run.end());
        }
    }

    fn skip_to(&mut self, target: u64) {
        if target > self.off {
            self.out.push(Ev::Gap(self.off, target - self.off));
            self.off = target;
        }
        self.drain();
    }

    fn feed(&mut self, start: u64, data: &[u8], ts: Ts) {
        let end = start + data.len() as u64;
        loop {
            if end <= self.off {
                return;
            }
            if start <= self.off {
                let b = &data[(self.off - start) as usize..];
                self.out.push(Ev::Data(self.off, b.to_vec()));
                self.off = end;
                self.drain();
                return;
            }
            let room = self.room.saturating_sub(self.store.cost());
            match self.store.insert(start, data, ts, room, self.max_runs) {
                Ok(_) => return,
                Err(Full) => {
                    let target = self.store.first_start().map_or(start, |s| s.min(start));
                    self.skip_to(target);
                }
            }
            self.store.check(self.max_runs);
        }
    }

    fn flush(&mut self) {
        while let Some(next) = self.store.first_start() {
            self.skip_to(next);
        }
    }
}

/// A stream of `n` bytes cut into segments at `cuts`, plus overlapping
/// retransmissions, minus the segments at `lost`, in the order `order`.
fn segments(
    n: u64,
    cuts: &[u64],
    retrans: &[(u64, u64)],
    lost: &[usize],
    seed: u64,
) -> Vec<(u64, u64)> {
    let mut points: Vec<u64> = cuts.iter().map(|c| c % n).collect();
    points.extend([0, n]);
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<(u64, u64)> = points.windows(2).map(|w| (w[0], w[1])).collect();
    for &(a, b) in retrans {
        let (a, b) = (a % n, b % n);
        segs.push((a.min(b), a.max(b) + 1));
    }
    let mut lost: Vec<usize> = lost.iter().map(|l| l % segs.len()).collect();
    lost.sort_unstable();
    lost.dedup();
    for l in lost.into_iter().rev() {
        segs.remove(l);
    }
    // A fixed-seed shuffle.
    let mut x = seed | 1;
    for i in (1..segs.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        segs.swap(i, (x % (i as u64 + 1)) as usize);
    }
    segs
}

/// Walks the events: data is the bytes sent at its offset, each once and in
/// order, gaps in between; returns the covered extent and the gaps.
fn walk(out: &[Ev]) -> Result<(u64, Vec<(u64, u64)>), TestCaseError> {
    let mut off = 0;
    let mut gaps = Vec::new();
    for e in out {
        match e {
            Ev::Data(at, b) => {
                prop_assert_eq!(*at, off, "data out of order");
                prop_assert!(!b.is_empty());
                prop_assert_eq!(b, &bytes(off, b.len()), "wrong bytes at {}", off);
                off += b.len() as u64;
            }
            Ev::Gap(at, len) => {
                prop_assert_eq!(*at, off);
                prop_assert!(*len > 0);
                gaps.push((off, *len));
                off += len;
            }
        }
    }
    Ok((off, gaps))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Without caps: any permutation, duplication, overlap and loss of
    /// segments gives every byte that was captured, once, in order, and a
    /// gap exactly where no segment covered the stream (up to the last byte
    /// captured), of exactly that size.
    #[test]
    fn every_captured_byte_once_gaps_exactly_at_the_losses(
        n in 1u64..2000,
        cuts in prop::collection::vec(any::<u64>(), 0..30),
        retrans in prop::collection::vec((any::<u64>(), any::<u64>()), 0..8),
        lost in prop::collection::vec(any::<usize>(), 0..4),
        seed in any::<u64>(),
    ) {
        let segs = segments(n, &cuts, &retrans, &lost, seed);
        let mut r = Reader::new(ANY, MAX_RUNS);
        for (i, &(a, b)) in segs.iter().enumerate() {
            r.feed(a, &bytes(a, (b - a) as usize), Ts(i as i64));
        }
        r.flush();
        let (end, gaps) = walk(&r.out)?;
        // What the segments covered, and the holes before its end.
        let mut covered = vec![false; n as usize];
        for &(a, b) in &segs {
            covered[a as usize..b as usize].iter_mut().for_each(|c| *c = true);
        }
        let last = covered.iter().rposition(|c| *c).map_or(0, |p| p as u64 + 1);
        prop_assert_eq!(end, last, "delivered up to the last byte captured");
        let mut want = Vec::new();
        let mut i = 0;
        while i < last {
            if covered[i as usize] {
                i += 1;
                continue;
            }
            let s = i;
            while !covered[i as usize] {
                i += 1;
            }
            want.push((s, i - s));
        }
        prop_assert_eq!(gaps, want);
        prop_assert_eq!(r.store.cost(), 0);
    }

    /// Under any room and run bound: every byte delivered is the byte sent
    /// at its offset, delivered once, in order; data and gaps account for
    /// the stream up to where the reader got; memory stays within the room.
    #[test]
    fn under_caps_every_delivered_byte_is_right_and_once(
        n in 1u64..3000,
        cuts in prop::collection::vec(any::<u64>(), 0..40),
        retrans in prop::collection::vec((any::<u64>(), any::<u64>()), 0..8),
        lost in prop::collection::vec(any::<usize>(), 0..3),
        seed in any::<u64>(),
        room in 0usize..3000,
        max_runs in 1usize..8,
    ) {
        let segs = segments(n, &cuts, &retrans, &lost, seed);
        let mut r = Reader::new(room, max_runs);
        for (i, &(a, b)) in segs.iter().enumerate() {
            r.feed(a, &bytes(a, (b - a) as usize), Ts(i as i64));
            prop_assert!(r.store.cost() <= room, "cost {} over room {}", r.store.cost(), room);
        }
        r.flush();
        let (end, _) = walk(&r.out)?;
        prop_assert_eq!(end, r.off);
        let last = segs.iter().map(|s| s.1).max().unwrap_or(0);
        prop_assert_eq!(end, last, "everything captured was delivered or given up");
    }
}
