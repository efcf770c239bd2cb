//! TCP flow table and per-direction stream reassembly.
//!
//! Each TCP direction becomes an ordered byte stream handed to a
//! [`StreamSink`]. In-order segments are passed through as slices of the
//! packet (no copy, no allocation); only out-of-order bytes are buffered,
//! under caps. A hole that cannot fill (the peer acknowledged bytes the
//! capture never saw, a cap is reached, the flow is reset or the capture
//! ends) is skipped and reported as a gap, so the sink can resynchronise.
//!
//! The parts, each in its file:
//! - `mod.rs` (here): the flow table, its caps and counters, the public API;
//! - `flow`: one connection, both directions and its sink;
//! - `stream`: one direction (sequence numbers to stream offsets, holes,
//!   ACKs, the FIN);
//! - `assembler`: the out-of-order store, its real cost and its invariants;
//! - `seq`: TCP sequence numbers with wrapping comparison;
//! - `sink`: what a flow's streams are handed to ([`StreamSink`]);
//! - `evicted`: flows recently evicted, so they do not come back as new.
//!
//! Memory: the table keeps one running total of everything the analysis
//! buffers (out-of-order bytes at their real cost, plus what each sink says
//! it holds, [`StreamSink::held`]), updated by difference after each
//! segment, and holds it under [`Limits::max_buffered_total`]: past it, the
//! flow that grew gives up its holes, then its sink sheds what it can.

mod assembler;
mod evicted;
mod flow;
mod key;
mod seq;
mod sink;
mod stream;

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::mem::size_of;

use hashbrown::HashTable;

use crate::decode::{Endpoint, TcpSegment};
use crate::{Ts, prefetch};
use evicted::Evicted;
use key::Tuple;

pub use assembler::{MAX_RUNS, SLOT};
pub use flow::Flow;
pub use key::symmetric_hash;
pub use seq::Seq;
pub use sink::StreamSink;

/// Direction within a flow: `Dir::A` goes from the lower endpoint to the
/// higher one (the flow key's order), `Dir::B` the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    A = 0,
    B = 1,
}

impl Dir {
    pub fn idx(self) -> usize {
        self as usize
    }
    pub fn other(self) -> Dir {
        match self {
            Dir::A => Dir::B,
            Dir::B => Dir::A,
        }
    }
}

/// A flow's key: both endpoints, the lower one first, so both directions of
/// a connection hash to the same entry (hashed once per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of a segment and the direction it travels in.
    pub fn of(src: Endpoint, dst: Endpoint) -> (FlowKey, Dir) {
        if src <= dst {
            (FlowKey { lo: src, hi: dst }, Dir::A)
        } else {
            (FlowKey { lo: dst, hi: src }, Dir::B)
        }
    }

    /// The sender of direction `d`.
    pub fn src(&self, d: Dir) -> Endpoint {
        match d {
            Dir::A => self.lo,
            Dir::B => self.hi,
        }
    }
}

/// Caps that keep memory bounded by live flows, whatever the capture holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Out-of-order bytes buffered for one direction, at their real cost
    /// (bytes, bookkeeping, allocator overhead); at most [`MAX_RUNS`]
    /// separate runs of them.
    pub max_buffered_per_dir: usize,
    /// All buffered bytes, across flows: out-of-order bytes at their real
    /// cost plus what every sink holds ([`StreamSink::held`]).
    pub max_buffered_total: usize,
    /// Capture time an ended flow stays in the table (for its last ACKs)
    /// before its sink is handed back.
    pub linger: Ts,
    /// Flows tracked at once; past it the least recently active are evicted
    /// (and as many evicted flows are remembered, so that their later
    /// packets are dropped rather than taken for new flows).
    pub max_flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_buffered_per_dir: 4 << 20,
            max_buffered_total: 256 << 20,
            linger: Ts::from_secs(30),
            max_flows: 262_144,
        }
    }
}

/// Counters of what reassembly did, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReassemblyStats {
    pub flows: u64,
    pub retransmitted_segments: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Packets of flows that had already ended (late ACKs, stray RSTs).
    pub packets_after_end: u64,
    /// Most flows tracked at once.
    pub peak_flows: u64,
    /// Most bytes buffered at once, across all flows: out-of-order bytes at
    /// their real cost plus what sinks held.
    pub peak_buffered: u64,
    /// Live flows dropped because `max_flows` was reached.
    pub flows_evicted: u64,
    /// Holes skipped because a cap was reached (per direction, all buffered
    /// bytes, or [`MAX_RUNS`]).
    pub holes_given_up: u64,
    /// Packets of flows evicted earlier, dropped (a fresh SYN on the same
    /// 4-tuple starts a new connection instead).
    pub packets_of_evicted_flows: u64,
    /// Bytes sinks dropped ([`StreamSink::shed`]) to stay under the cap of
    /// all buffered bytes.
    pub sink_bytes_shed: u64,
}

impl ReassemblyStats {
    /// Adds another table's counters (a sharded run's worker); see
    /// `AnalyzerStats::add` for the peaks.
    pub fn add(&mut self, o: &ReassemblyStats) {
        let ReassemblyStats {
            flows,
            retransmitted_segments,
            out_of_order_segments,
            gaps,
            gap_bytes,
            packets_after_end,
            peak_flows,
            peak_buffered,
            flows_evicted,
            holes_given_up,
            packets_of_evicted_flows,
            sink_bytes_shed,
        } = *o;
        self.flows += flows;
        self.retransmitted_segments += retransmitted_segments;
        self.out_of_order_segments += out_of_order_segments;
        self.gaps += gaps;
        self.gap_bytes += gap_bytes;
        self.packets_after_end += packets_after_end;
        self.peak_flows += peak_flows;
        self.peak_buffered += peak_buffered;
        self.flows_evicted += flows_evicted;
        self.holes_given_up += holes_given_up;
        self.packets_of_evicted_flows += packets_of_evicted_flows;
        self.sink_bytes_shed += sink_bytes_shed;
    }
}

/// Why a flow's sink is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The TCP connection ended (both FINs, or an RST) some time ago.
    Ended,
    /// A new connection (SYN) took over the same 4-tuple.
    Replaced,
    /// Evicted to stay under `max_flows`.
    Evicted,
    /// The capture ended.
    CaptureEnd,
}

/// One flow of the table.
struct Entry<S> {
    key: Tuple,
    /// Boxed: the table stays small when sparse, and a flow never moves
    /// once made.
    flow: Box<Flow<S>>,
    /// Where the flow's sink keeps the rest of its state
    /// ([`StreamSink::hot`]), as of the flow's last segment.
    hot: usize,
}

impl<S: StreamSink> Entry<S> {
    /// Asks the cache for the flow's box and its sink's state at once (see
    /// `prefetch`): reached one through the other, each would cost a full
    /// memory latency in turn.
    #[inline]
    fn prefetch(&self, dir: Dir) {
        prefetch::range(prefetch::addr_of(&*self.flow), size_of::<Flow<S>>());
        S::prefetch(self.hot, dir);
    }
}

/// The flow table: every live TCP connection of the capture.
pub struct FlowTable<S> {
    /// Flows by key (integers, see `key`), looked up with one hash per
    /// packet.
    map: HashTable<Entry<S>>,
    /// Flows whose TCP connection ended, in the order they ended, with
    /// their number (`Flow::id`: a flow replaced or evicted since is not
    /// the one that ended): released after `linger` from here rather than
    /// found by a scan of the whole table.
    ended: VecDeque<(Tuple, u64, Ts)>,
    /// The queue's end times never decrease from front to back: a purge
    /// then releases from the front and stops at the first flow not due.
    ended_in_order: bool,
    hasher: foldhash::fast::RandomState,
    evicted: Evicted,
    limits: Limits,
    /// Everything buffered, the sum of every flow's `charged`.
    buffered_total: usize,
    packets: u64,
    /// Purge every [`PURGE_EVERY`] segments: off in a sharded run's
    /// workers, which are told to purge where the whole run would.
    auto_purge: bool,
    /// What the last segment did to the peaks (a sharded run merges its
    /// workers' peaks from these).
    pub step: Step,
    /// See [`FlowTable::capped`].
    capped: bool,
    pub stats: ReassemblyStats,
}

/// What one segment did to the quantities whose peaks are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// All buffered bytes when the peak of them was taken (after the
    /// segment was buffered, before a cap gave anything up).
    pub settled: usize,
    /// The segment made a new flow (the peak of flows was taken).
    pub inserted: bool,
}

/// Segments between two purges of ended flows. Often, so that a purge
/// frees few sessions and the next flows reuse their memory while it is
/// still in the cache: at 65,536 a purge freed thousands of sessions at
/// once, and glibc's allocator then walked lists of cold chunks (a million
/// short connections took 37 % more time). A purge touches only the flows
/// it releases (see [`FlowTable::purge_now`]).
pub const PURGE_EVERY: u64 = 4096;

/// Flows from which a packet's state is prefetched. A WebSocket flow's
/// state is about 1.3 KB (the flow's box and the sink's): below about a
/// thousand flows it stays in a core's L2 cache (1 MB here), where the
/// prefetches would only cost instructions (about 110 a packet).
const PREFETCH_FROM: usize = 1024;

impl<S: StreamSink> FlowTable<S> {
    pub fn new(limits: Limits) -> Self {
        FlowTable {
            map: HashTable::new(),
            ended: VecDeque::new(),
            ended_in_order: true,
            hasher: foldhash::fast::RandomState::default(),
            evicted: Evicted::new(limits.max_flows),
            limits,
            buffered_total: 0,
            packets: 0,
            auto_purge: true,
            step: Step::default(),
            capped: false,
            stats: ReassemblyStats::default(),
        }
    }

    /// A table that purges ended flows only when told ([`FlowTable::purge_now`]).
    pub fn without_auto_purge(self) -> Self {
        FlowTable {
            auto_purge: false,
            ..self
        }
    }

    /// Number of flows currently tracked (live or lingering after their end).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries in the queue of ended flows (for the tests of its bound).
    #[cfg(test)]
    fn ended_queue_len(&self) -> usize {
        self.ended.len()
    }

    /// Bytes buffered across all flows: out-of-order bytes at their real
    /// cost plus what sinks hold.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Processes one TCP segment. `new_sink` makes the sink of a new flow;
    /// `done` receives the sink of a flow that is over (see [`Release`]).
    /// Returns the segment's flow sink, and whether its TCP connection ended
    /// with this segment (`None` for packets of a flow already over, or of
    /// a flow evicted before).
    pub fn process(
        &mut self,
        ts: Ts,
        seg: &TcpSegment<'_>,
        new_sink: &mut impl FnMut(&FlowKey, Dir, Ts) -> S,
        done: &mut impl FnMut(S, Release),
    ) -> Option<(&mut S, bool)> {
        self.start_segment(ts, done);
        let (key, dir) = Tuple::of(&seg.src, &seg.dst);
        let hash = self.hasher.hash_one(key);
        let fresh_syn = seg.syn && !seg.ack;
        // A packet of an evicted flow is dropped unless a fresh SYN starts
        // a new connection on its 4-tuple.
        let evicted = self.evicted.contains(hash);
        if fresh_syn || !evicted {
            self.make_room(hash, &key, ts, done);
        }
        // Flows that ended linger untouched: they do not count.
        let fetch_ahead = self.map.len().saturating_sub(self.ended.len()) >= PREFETCH_FROM;
        let entry: &mut Entry<S> = match self.map.find_entry(hash, |e| e.key == key) {
            Ok(e) => {
                let entry = e.into_mut();
                if fetch_ahead {
                    entry.prefetch(dir);
                }
                let flow = &mut *entry.flow;
                if fresh_syn && flow.is_new_connection(dir, seg.seq) {
                    self.stats.flows += 1;
                    let sink = new_sink(&FlowKey::of(seg.src, seg.dst).0, dir, ts);
                    let old = std::mem::replace(flow, Flow::new(sink, self.stats.flows));
                    self.buffered_total -= old.charged;
                    done(old.finish(ts, &mut self.stats), Release::Replaced);
                } else if flow.ended_at.is_some() {
                    self.stats.packets_after_end += 1;
                    flow.last_ts = ts;
                    flow.late_segment(dir, ts, seg, &mut self.stats);
                    let total = &mut self.buffered_total;
                    self.step.settled = settle(flow, ts, total, &self.limits, &mut self.stats);
                    self.capped |= near_buffer_cap(&self.limits, self.step.settled);
                    return None;
                }
                entry
            }
            Err(absent) => {
                if evicted {
                    if !fresh_syn {
                        self.stats.packets_of_evicted_flows += 1;
                        return None;
                    }
                    self.evicted.forget(hash);
                }
                let table = absent.into_table();
                self.stats.flows += 1;
                self.stats.peak_flows = self.stats.peak_flows.max(table.len() as u64 + 1);
                self.step.inserted = true;
                let hasher = &self.hasher;
                let sink = new_sink(&FlowKey::of(seg.src, seg.dst).0, dir, ts);
                let flow = Box::new(Flow::new(sink, self.stats.flows));
                let entry = Entry { key, flow, hot: 0 };
                table
                    .insert_unique(hash, entry, |e| hasher.hash_one(e.key))
                    .into_mut()
            }
        };
        let flow = &mut *entry.flow;
        flow.last_ts = ts;
        flow.segment(
            dir,
            ts,
            seg,
            &self.limits,
            self.buffered_total,
            &mut self.stats,
        );
        let total = &mut self.buffered_total;
        self.step.settled = settle(flow, ts, total, &self.limits, &mut self.stats);
        self.capped |= near_buffer_cap(&self.limits, self.step.settled);
        entry.hot = flow.sink.hot();
        let ended_now = flow.ended() && flow.ended_at.is_none();
        if ended_now {
            flow.ended_at = Some(ts);
            flow.drop_buffers();
            charge(flow, total);
            if self.ended.back().is_some_and(|&(_, _, last)| ts < last) {
                self.ended_in_order = false;
            }
            self.ended.push_back((key, flow.id, ts));
        }
        Some((&mut flow.sink, ended_now))
    }

    /// What comes before a segment's flow is looked up: the step's
    /// counters, the caps, the purges that are due.
    fn start_segment(&mut self, ts: Ts, done: &mut impl FnMut(S, Release)) {
        self.packets += 1;
        self.step = Step {
            settled: self.buffered_total,
            inserted: false,
        };
        self.capped |= self.near_caps();
        if self.auto_purge && self.packets % PURGE_EVERY == 0 {
            self.purge_now(ts, done);
        }
        if self.ended.len() > 2 * self.map.len() + 64 {
            self.compact_ended();
        }
    }

    /// Whether a cap across flows binds now or may at the next segment: as
    /// many flows as `max_flows`, or buffered bytes near `max_buffered_total`.
    fn near_caps(&self) -> bool {
        self.map.len() >= self.limits.max_flows
            || near_buffer_cap(&self.limits, self.buffered_total)
    }

    /// A cap across flows was reached, or nearly, during the run or now:
    /// what was evicted or given up depended on every flow of the table (a
    /// sharded run's worker then cannot stand for its share of one table).
    pub fn capped(&self) -> bool {
        self.capped || self.near_caps()
    }

    /// Evicts flows when the table is full and `key` (of hash `hash`) is
    /// not in it: it is about to be.
    fn make_room(&mut self, hash: u64, key: &Tuple, ts: Ts, done: &mut impl FnMut(S, Release)) {
        if self.map.len() >= self.limits.max_flows
            && self.map.find(hash, |e| e.key == *key).is_none()
        {
            self.evict(ts, done);
        }
    }

    /// The sink of a live flow, by key (for timers).
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut S> {
        let key = Tuple::of(&key.lo, &key.hi).0;
        let hash = self.hasher.hash_one(key);
        self.map
            .find_mut(hash, |e| e.key == key)
            .map(|e| &mut e.flow.sink)
    }

    /// Hands back the sinks of flows that ended more than `limits.linger`
    /// ago, in the order they ended, and forgets them. While the queue is
    /// in end-time order only its due front is touched; once capture time
    /// ran backwards (one not yet due may stand before one that is) all of
    /// it is walked, until it is in order again.
    pub fn purge_now(&mut self, now: Ts, done: &mut impl FnMut(S, Release)) {
        let linger = self.limits.linger;
        let FlowTable {
            map,
            ended,
            ended_in_order,
            hasher,
            buffered_total,
            ..
        } = self;
        let due = |at: Ts| now.saturating_sub(at) >= linger;
        let mut release = |key: Tuple, id: u64| {
            // Gone (evicted) or another connection on the 4-tuple since.
            if let Ok(e) = map.find_entry(hasher.hash_one(key), |e| e.key == key && e.flow.id == id)
            {
                let (Entry { flow, .. }, _) = e.remove();
                *buffered_total -= flow.charged;
                done(flow.sink, Release::Ended);
            }
        };
        if *ended_in_order {
            while let Some(&(key, id, at)) = ended.front()
                && due(at)
            {
                ended.pop_front();
                release(key, id);
            }
        } else {
            ended.retain(|&(key, id, at)| {
                if !due(at) {
                    return true;
                }
                release(key, id);
                false
            });
            *ended_in_order = in_order(ended);
        }
        give_back(ended);
    }

    /// Drops the queue's entries for flows no longer in the table (evicted,
    /// or replaced by a new connection on the 4-tuple): the queue then
    /// holds at most one entry per flow in the table, so it stays bounded by
    /// `max_flows` whatever the capture holds (a flood of SYN and RST pairs
    /// ends flows faster than `linger` releases them). Called when the
    /// queue reaches twice the table: amortised O(1) per flow.
    fn compact_ended(&mut self) {
        let FlowTable {
            map, ended, hasher, ..
        } = self;
        ended.retain(|&(key, id, _)| {
            map.find(hasher.hash_one(key), |e| e.key == key && e.flow.id == id)
                .is_some()
        });
        give_back(ended);
    }

    /// Makes room under `max_flows`: hands back a sixteenth of the table,
    /// ended flows first, then the least recently active, and remembers
    /// them (see `evicted`). The O(flows) scan is paid once per
    /// max_flows/16 new flows.
    fn evict(&mut self, now: Ts, done: &mut impl FnMut(S, Release)) {
        let want = (self.limits.max_flows / 16).max(1).min(self.map.len());
        if want == 0 {
            return;
        }
        // Live flows sort after ended ones, then by last activity.
        let rank = |f: &Flow<S>| (f.ended_at.is_none(), f.last_ts);
        let mut ranks: Vec<(bool, Ts)> = self.map.iter().map(|e| rank(&e.flow)).collect();
        let (_, cutoff, _) = ranks.select_nth_unstable(want - 1);
        let cutoff = *cutoff;
        let mut left = want;
        let evicted: Vec<Entry<S>> = self
            .map
            .extract_if(|e| {
                let take = left > 0 && rank(&e.flow) <= cutoff;
                left -= usize::from(take);
                take
            })
            .collect();
        for Entry { key, flow, .. } in evicted {
            self.buffered_total -= flow.charged;
            self.evicted.remember(self.hasher.hash_one(key));
            let live = flow.ended_at.is_none();
            let why = if live {
                self.stats.flows_evicted += 1;
                Release::Evicted
            } else {
                Release::Ended
            };
            done(flow.finish(now, &mut self.stats), why);
        }
    }

    /// Ends the capture: flushes every live flow (missing bytes become gaps)
    /// and hands back every sink, in no particular order. Returns the final
    /// counters (the flush may add gaps).
    pub fn finish(self, ts: Ts, done: &mut impl FnMut(S, Release)) -> ReassemblyStats {
        let FlowTable { map, mut stats, .. } = self;
        for Entry { flow, .. } in map {
            done(flow.finish(ts, &mut stats), Release::CaptureEnd);
        }
        stats
    }
}

/// `buffered` bytes within one direction's cap of the cap on them all,
/// where the total, not the direction's own cap, may decide what a segment
/// can buffer.
fn near_buffer_cap(limits: &Limits, buffered: usize) -> bool {
    buffered.saturating_add(limits.max_buffered_per_dir) > limits.max_buffered_total
}

/// Brings the running total up to date with `flow`'s buffers.
fn charge<S: StreamSink>(flow: &mut Flow<S>, total: &mut usize) {
    let now = flow.buffered();
    *total = (*total + now).saturating_sub(flow.charged);
    flow.charged = now;
}

/// After a segment of `flow`: counts what it buffers now, and when all
/// buffered bytes exceed the cap, gives up the flow's holes (gaps), then
/// has its sink shed what it can.
fn settle<S: StreamSink>(
    flow: &mut Flow<S>,
    ts: Ts,
    total: &mut usize,
    limits: &Limits,
    stats: &mut ReassemblyStats,
) -> usize {
    charge(flow, total);
    let settled = *total;
    stats.peak_buffered = stats.peak_buffered.max(settled as u64);
    if *total <= limits.max_buffered_total {
        return settled;
    }
    stats.holes_given_up += flow.give_up_holes(ts, stats);
    charge(flow, total);
    if *total <= limits.max_buffered_total {
        return settled;
    }
    stats.sink_bytes_shed += flow.sink.shed() as u64;
    charge(flow, total);
    settled
}

/// Whether the queue's end times never decrease from front to back.
fn in_order(q: &VecDeque<(Tuple, u64, Ts)>) -> bool {
    q.iter().zip(q.iter().skip(1)).all(|(a, b)| a.2 <= b.2)
}

/// A flood of short flows grew the queue of ended flows; once it has been
/// released or compacted, its memory goes back (a `VecDeque` keeps it).
fn give_back<T>(q: &mut VecDeque<T>) {
    if q.capacity() > 4 * q.len() + 1024 {
        q.shrink_to(2 * q.len() + 64);
    }
}

#[cfg(test)]
mod tests;
