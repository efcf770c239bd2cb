//! The out-of-order store of one TCP direction: bytes captured after a hole,
//! kept until the hole fills or is given up.
//!
//! # Layout and what it costs
//!
//! Runs of contiguous bytes, sorted by stream offset, in one `VecDeque`. A
//! run holds its bytes, the capture time of its first byte, and the offsets
//! where bytes captured at another time begin (a frame's time is that of the
//! packet that carried it, so times survive merging). Segments that arrive
//! in order after a hole (the common case: one packet lost, the rest
//! following) append to one run, so a run's bytes grow by doubling and a
//! hole costs one entry, not one per segment.
//!
//! A deque rather than a B-tree: the number of runs is bounded
//! ([`MAX_RUNS`]), so an insertion in the middle moves at most
//! `MAX_RUNS / 2` slots of [`SLOT`] bytes (8 KiB), the ends (where runs come
//! and go in practice) cost O(1), and the memory is exactly what the
//! capacities say: no node layout to guess.
//!
//! Every entry is charged what it takes from the allocator ([`block`]): its
//! slot in the deque ([`SLOT`], the fixed per-entry cost, counted for every
//! slot of the deque's capacity), its byte buffer with malloc's header and
//! rounding, and its time stamps. A one-byte segment after a hole costs
//! 64 + 32 = 96 bytes, not 1: that is what the caps now count.
//!
//! # Invariants (checked by `check` after every step of the tests below)
//!
//! 1. Runs are sorted by start, non-empty and disjoint: each ends at or
//!    before the next one starts. Adjacent runs may stay apart: merging is
//!    an optimisation, never needed for correctness.
//! 2. A byte once stored is never replaced: an overlapping arrival only fills
//!    what is missing (the first capture of a byte wins, with its time).
//! 3. `cost` is exactly the heap the store holds as malloc counts it (deque
//!    capacity and every run's buffers), and an insertion never takes it
//!    past what the caller granted.
//! 4. At most `max_runs` runs (the caller's bound, [`MAX_RUNS`] in use).
//! 5. A run's stamps are at strictly increasing offsets inside the run, each
//!    with a time other than that of the piece before it.
//!
//! Every operation is a loop with at most one step per run; none recurses.

use std::collections::VecDeque;
use std::mem::size_of;

use crate::Ts;

/// Most runs held for one direction. Real captures rarely have more than a
/// few holes open at once (a lost packet's hole closes within a round trip,
/// when the peer's ACK shows it was sent); past this bound the first hole
/// is given up as a gap. It also bounds an insertion's work (see above).
pub const MAX_RUNS: usize = 256;

/// The fixed bookkeeping cost of one entry: its slot in the deque (start,
/// byte buffer, first time, stamp buffer). Measured as 64 bytes on 64-bit
/// targets; `tests/reassembly_bugs.rs` checks with a counting allocator that
/// what the store charges covers what it takes.
pub const SLOT: usize = size_of::<Run>();

/// Where, inside a run, bytes of another capture time begin.
type Stamp = (usize, Ts);

const STAMP: usize = size_of::<Stamp>();

/// What malloc takes for a block of `n` bytes: glibc's chunk, the request
/// plus an 8-byte header rounded up to 16, at least 32 (other allocators
/// differ by a few bytes).
pub const fn block(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let b = (n + 8 + 15) & !15;
    if b < 32 { 32 } else { b }
}

/// The capacity a buffer of `len` items in `cap` needs to take `add` more:
/// unchanged when they fit, else doubled (at least `min`, at least enough).
/// Buffers are grown to exactly this, so the cost of an insertion can be
/// known before it is made.
fn grown(cap: usize, len: usize, add: usize, min: usize) -> usize {
    let need = len.saturating_add(add);
    if need <= cap {
        cap
    } else {
        need.max(cap.saturating_mul(2)).max(min)
    }
}

/// Slots of the deque once it takes one more run: 4 more at a time up to
/// 16 (most stores hold a few runs, and a flood of flows with a few each
/// should not pay for doubling), then doubled.
fn deque_grown(cap: usize, len: usize) -> usize {
    match cap {
        _ if len < cap => cap,
        0..16 => cap + 4,
        _ => cap.saturating_mul(2),
    }
}

fn reserve_to<T>(v: &mut Vec<T>, cap: usize) {
    if cap > v.capacity() {
        v.reserve_exact(cap - v.len());
    }
}

/// Contiguous bytes of the stream, from `start`.
#[derive(Debug)]
pub struct Run {
    start: u64,
    data: Vec<u8>,
    /// Capture time of the first byte.
    ts: Ts,
    /// Later pieces captured at other times, by offset in the run.
    stamps: Vec<Stamp>,
}

impl Run {
    fn new(start: u64, bytes: &[u8], ts: Ts) -> Run {
        let mut data = Vec::with_capacity(bytes.len());
        data.extend_from_slice(bytes);
        Run {
            start,
            data,
            ts,
            stamps: Vec::new(),
        }
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    fn last_ts(&self) -> Ts {
        self.stamps.last().map_or(self.ts, |s| s.1)
    }

    /// Heap taken by the run's buffers (its slot is the deque's).
    fn heap(&self) -> usize {
        block(self.data.capacity()) + block(self.stamps.capacity() * STAMP)
    }

    /// [`Run::heap`] once `bytes` more bytes and `stamps` more stamps are in.
    fn heap_after(&self, bytes: usize, stamps: usize) -> usize {
        let data = grown(self.data.capacity(), self.data.len(), bytes, 1);
        let st = grown(self.stamps.capacity(), self.stamps.len(), stamps, 4);
        block(data) + block(st * STAMP)
    }

    /// Stamps that appending bytes captured at `ts` adds.
    fn stamps_for(&self, ts: Ts) -> usize {
        usize::from(ts != self.last_ts())
    }

    fn append(&mut self, bytes: &[u8], ts: Ts) {
        let at = self.data.len();
        if ts != self.last_ts() {
            let cap = grown(self.stamps.capacity(), self.stamps.len(), 1, 4);
            reserve_to(&mut self.stamps, cap);
            self.stamps.push((at, ts));
        }
        let cap = grown(self.data.capacity(), at, bytes.len(), 1);
        reserve_to(&mut self.data, cap);
        self.data.extend_from_slice(bytes);
    }

    /// Takes in the run that starts where this one ends.
    fn absorb(&mut self, next: Run) {
        let at = self.data.len();
        let fresh = next.ts != self.last_ts();
        let add = next.stamps.len() + usize::from(fresh);
        let cap = grown(self.stamps.capacity(), self.stamps.len(), add, 4);
        reserve_to(&mut self.stamps, cap);
        if fresh {
            self.stamps.push((at, next.ts));
        }
        self.stamps
            .extend(next.stamps.iter().map(|&(o, t)| (at + o, t)));
        let cap = grown(self.data.capacity(), at, next.data.len(), 1);
        reserve_to(&mut self.data, cap);
        self.data.extend_from_slice(&next.data);
    }

    /// The run's bytes from stream offset `from` on, cut where their capture
    /// time changes.
    pub fn pieces(&self, from: u64) -> impl Iterator<Item = (Ts, &[u8])> {
        let skip = usize::try_from(from.saturating_sub(self.start)).unwrap_or(usize::MAX);
        let starts = std::iter::once((0, self.ts)).chain(self.stamps.iter().copied());
        let ends = self
            .stamps
            .iter()
            .map(|s| s.0)
            .chain(std::iter::once(self.data.len()));
        starts.zip(ends).filter_map(move |((s, ts), e)| {
            let s = s.max(skip);
            (s < e)
                .then(|| self.data.get(s..e))
                .flatten()
                .map(|b| (ts, b))
        })
    }
}

/// An insertion that needed more room than granted (or one run more than
/// allowed). What fitted of the segment, from its start, was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The out-of-order store of one direction (see the module documentation).
#[derive(Debug, Default)]
pub struct Assembler {
    runs: VecDeque<Run>,
    /// Heap held, as malloc counts it (invariant 3).
    cost: usize,
}

impl Assembler {
    pub fn cost(&self) -> usize {
        self.cost
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Where the first run starts.
    pub fn first_start(&self) -> Option<u64> {
        self.runs.front().map(Run::start)
    }

    /// Capture time of the run that starts exactly at `off`.
    pub fn ts_at(&self, off: u64) -> Option<Ts> {
        let i = self.runs.partition_point(|r| r.start < off);
        self.runs.get(i).filter(|r| r.start == off).map(|r| r.ts)
    }

    /// Forgets everything, and hands the memory back.
    pub fn clear(&mut self) {
        self.runs = VecDeque::new();
        self.cost = 0;
    }

    fn deque_heap(&self) -> usize {
        block(self.runs.capacity() * SLOT)
    }

    /// Removes and returns the first run when it starts at or before `off`
    /// (the next byte the reader expects): its bytes from `off` on are due.
    pub fn pop_reached(&mut self, off: u64) -> Option<Run> {
        if self.runs.front()?.start > off {
            return None;
        }
        let run = self.runs.pop_front()?;
        self.cost -= run.heap();
        if self.runs.is_empty() {
            // No hole left: hand the deque's memory back too.
            self.cost -= self.deque_heap();
            self.runs = VecDeque::new();
        }
        Some(run)
    }

    /// Stores `bytes` (stream offsets `start..`), captured at `ts`: the parts
    /// not stored yet, appended to the run they continue or as runs of their
    /// own, within `room` more bytes of cost and `max_runs` runs. Returns how
    /// many bytes were new (0: a retransmission of bytes held).
    pub fn insert(
        &mut self,
        start: u64,
        bytes: &[u8],
        ts: Ts,
        room: usize,
        max_runs: usize,
    ) -> Result<usize, Full> {
        let limit = self.cost.saturating_add(room);
        let end = start + bytes.len() as u64;
        let mut pos = start;
        let mut stored = 0;
        while pos < end {
            // Runs before `i` start at or before `pos`.
            let i = self.runs.partition_point(|r| r.start <= pos);
            if let Some(held) = i.checked_sub(1).and_then(|j| self.runs.get(j))
                && held.end() > pos
            {
                pos = held.end();
                continue;
            }
            // `pos` is missing: store up to the next run, or to the end.
            let stop = self.runs.get(i).map_or(end, |r| r.start.min(end));
            let from = (pos - start) as usize;
            let piece = &bytes[from..from + (stop - pos) as usize];
            let at = self.place(i, pos, piece, ts, limit, max_runs)?;
            stored += piece.len();
            // When the piece filled a hole up to the next run: one run.
            self.join(at, limit);
            pos = stop;
        }
        Ok(stored)
    }

    /// Puts `piece` (at `pos`, where run `i` is the first after it): at the
    /// end of the run that ends at `pos` when its growth fits, else as a new
    /// run. Returns the index of the run holding it.
    fn place(
        &mut self,
        i: usize,
        pos: u64,
        piece: &[u8],
        ts: Ts,
        limit: usize,
        max_runs: usize,
    ) -> Result<usize, Full> {
        if let Some(j) = i.checked_sub(1)
            && let Some(left) = self.runs.get_mut(j)
            && left.end() == pos
        {
            let before = left.heap();
            let after = left.heap_after(piece.len(), left.stamps_for(ts));
            if self.cost - before + after <= limit {
                left.append(piece, ts);
                self.cost = self.cost - before + left.heap();
                return Ok(j);
            }
        }
        let (len, cap) = (self.runs.len(), self.runs.capacity());
        if len >= max_runs {
            return Err(Full);
        }
        let slots = deque_grown(cap, len).min(max_runs);
        let need = block(slots * SLOT) - block(cap * SLOT) + block(piece.len());
        if self.cost + need > limit {
            return Err(Full);
        }
        let before = self.deque_heap();
        if slots > cap {
            self.runs.reserve_exact(slots - len);
        }
        let run = Run::new(pos, piece, ts);
        self.cost = self.cost - before + self.deque_heap() + run.heap();
        self.runs.insert(i, run);
        Ok(i)
    }

    /// Merges run `i + 1` into run `i` when they touch, the second is not
    /// the longer (so a byte is copied by merges at most log2(n) times), and
    /// the merge fits in `limit`. Optional: runs that stay apart are fine.
    fn join(&mut self, i: usize, limit: usize) {
        let (Some(l), Some(r)) = (self.runs.get(i), self.runs.get(i + 1)) else {
            return;
        };
        if l.end() != r.start || r.data.len() > l.data.len() {
            return;
        }
        let stamps = r.stamps.len() + l.stamps_for(r.ts);
        let after = l.heap_after(r.data.len(), stamps);
        if self.cost - l.heap() - r.heap() + after > limit {
            return;
        }
        let Some(r) = self.runs.remove(i + 1) else {
            return;
        };
        let Some(l) = self.runs.get_mut(i) else {
            return;
        };
        let before = l.heap() + r.heap();
        l.absorb(r);
        self.cost = self.cost - before + l.heap();
    }

    /// The store's bytes and their times, byte by byte (tests only).
    #[cfg(test)]
    pub fn bytes(&self) -> Vec<(u64, u8, Ts)> {
        let mut out = Vec::new();
        for r in &self.runs {
            let mut off = r.start;
            for (ts, b) in r.pieces(r.start) {
                for &x in b {
                    out.push((off, x, ts));
                    off += 1;
                }
            }
        }
        out
    }

    /// Checks invariants 1, 3, 4 and 5 (tests only).
    #[cfg(test)]
    pub fn check(&self, max_runs: usize) {
        assert!(self.runs.len() <= max_runs, "{} runs", self.runs.len());
        let mut heap = if self.runs.is_empty() {
            0
        } else {
            self.deque_heap()
        };
        let mut prev_end = None;
        for r in &self.runs {
            assert!(!r.data.is_empty(), "empty run");
            assert!(prev_end.is_none_or(|e| e <= r.start), "overlapping runs");
            prev_end = Some(r.end());
            let mut last = (0, r.ts);
            for &(o, t) in &r.stamps {
                assert!(o > last.0 && o < r.data.len(), "stamp offsets");
                assert_ne!(t, last.1, "a stamp repeats its piece's time");
                last = (o, t);
            }
            heap += r.heap();
        }
        assert_eq!(self.cost, heap, "cost is what the buffers take");
    }
}

#[cfg(test)]
#[path = "assembler_tests.rs"]
mod tests;
