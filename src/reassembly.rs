//! TCP flow table and per-direction stream reassembly.
//!
//! Each TCP direction becomes an ordered byte stream handed to a
//! [`StreamSink`]. In-order segments are passed through as slices of the
//! packet (no copy); only out-of-order bytes are buffered, under caps. A hole
//! that cannot fill (the peer acknowledged bytes the capture never saw, a cap
//! is reached, the flow is reset or the capture ends) is skipped and reported
//! as a gap, so the sink can resynchronise.
//!
//! Sequence numbers wrap at 2^32; each direction maps them onto a 64-bit
//! stream offset relative to the next expected byte, so wraparound needs no
//! special case.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::Ts;
use crate::decode::{Endpoint, TcpSegment};

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

/// Receives a flow's reassembled streams and TCP events, in order.
pub trait StreamSink {
    /// Every packet of the flow, before its bytes are delivered.
    fn on_packet(&mut self, dir: Dir, ts: Ts, seg: &TcpSegment<'_>);
    /// In-order bytes of one direction.
    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]);
    /// `len` bytes of one direction are missing from the capture.
    fn on_gap(&mut self, dir: Dir, ts: Ts, len: u64);
    /// The direction's FIN, in stream order; `ts` is the FIN packet's.
    fn on_fin(&mut self, dir: Dir, ts: Ts);
    /// An RST from this direction.
    fn on_rst(&mut self, dir: Dir, ts: Ts);
    /// False once the sink knows the flow is of no interest: its bytes are
    /// then neither buffered nor delivered (FIN and RST still are).
    fn wants_data(&self) -> bool {
        true
    }
}

/// Caps that keep memory bounded by live flows, whatever the capture holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Out-of-order bytes buffered for one direction.
    pub max_buffered_per_dir: usize,
    /// Out-of-order bytes buffered across all flows.
    pub max_buffered_total: usize,
    /// Capture time an ended flow stays in the table (for its last ACKs)
    /// before its sink is handed back.
    pub linger: Ts,
    /// Flows tracked at once; past it the least recently active are evicted.
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
    /// Most out-of-order bytes buffered at once, across all flows.
    pub peak_buffered: u64,
    /// Live flows dropped because `max_flows` was reached.
    pub flows_evicted: u64,
    /// Holes skipped because an out-of-order cap was reached.
    pub holes_given_up: u64,
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

#[derive(Debug)]
struct Pending {
    ts: Ts,
    data: Vec<u8>,
}

/// One direction's reassembly state.
#[derive(Debug, Default)]
struct Half {
    /// Sequence number at stream offset 0 (`None` until the first segment).
    base: Option<u32>,
    /// Stream offset of the next byte expected.
    off: u64,
    /// Out-of-order segments by stream offset.
    ooo: BTreeMap<u64, Pending>,
    ooo_bytes: usize,
    /// Stream offset and time of a FIN not yet reached.
    fin: Option<(u64, Ts)>,
    fin_done: bool,
    /// Highest offset the peer acknowledged (from its ACK numbers).
    acked: u64,
    syn_seq: Option<u32>,
}

impl Half {
    fn next_seq(&self, base: u32) -> u32 {
        base.wrapping_add(self.off as u32)
    }

    /// Stream offset of `seq`, taking the nearest (within 2 GiB) to the next
    /// expected byte. Never below 0.
    fn offset_of(&self, base: u32, seq: u32) -> i64 {
        let delta = seq.wrapping_sub(self.next_seq(base)) as i32;
        self.off as i64 + i64::from(delta)
    }

    fn has_pending(&self) -> bool {
        !self.ooo.is_empty() || (self.fin.is_some() && !self.fin_done)
    }
}

/// One TCP connection: both halves and the sink that follows it.
#[derive(Debug)]
pub struct Flow<S> {
    halves: [Half; 2],
    sink: S,
    last_ts: Ts,
    /// When the TCP connection ended (both FINs, or an RST). The flow stays
    /// a while so late packets (the last ACK) still count as its own.
    ended_at: Option<Ts>,
    /// The sender of the RST that ended the connection.
    rst: Option<Dir>,
    ignored: bool,
}

/// The flow table: every live TCP connection of the capture.
pub struct FlowTable<S> {
    /// Flows are boxed: the table stays small when sparse, and a flow never
    /// moves once made.
    map: HashMap<FlowKey, Box<Flow<S>>, foldhash::fast::RandomState>,
    limits: Limits,
    buffered_total: usize,
    packets: u64,
    pub stats: ReassemblyStats,
}

impl<S: StreamSink> FlowTable<S> {
    pub fn new(limits: Limits) -> Self {
        FlowTable {
            map: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            limits,
            buffered_total: 0,
            packets: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Number of flows currently tracked (live or lingering after their end).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes buffered out of order across all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Processes one TCP segment. `new_sink` makes the sink of a new flow;
    /// `done` receives the sink of a flow that is over (see [`Release`]).
    /// Returns the segment's flow sink, and whether its TCP connection ended
    /// with this segment (`None` for packets of a flow already over).
    pub fn process(
        &mut self,
        ts: Ts,
        seg: &TcpSegment<'_>,
        new_sink: &mut impl FnMut(&FlowKey, Dir, Ts) -> S,
        done: &mut impl FnMut(S, Release),
    ) -> Option<(&mut S, bool)> {
        self.packets += 1;
        if self.packets % 65536 == 0 {
            self.purge(ts, done);
        }
        let (key, dir) = FlowKey::of(seg.src, seg.dst);
        if self.map.len() >= self.limits.max_flows && !self.map.contains_key(&key) {
            self.evict(ts, done);
        }
        let fresh_syn = seg.syn && !seg.ack;
        let tracked = self.map.len() as u64;
        let flow = match self.map.entry(key) {
            Entry::Occupied(e) => {
                let flow = e.into_mut();
                if fresh_syn && flow.is_new_connection(dir, seg.seq) {
                    let old = std::mem::replace(flow, Box::new(Flow::new(new_sink(&key, dir, ts))));
                    self.stats.flows += 1;
                    self.buffered_total -= old.buffered();
                    done(old.finish(ts, &mut self.stats), Release::Replaced);
                } else if flow.ended_at.is_some() {
                    self.stats.packets_after_end += 1;
                    flow.last_ts = ts;
                    flow.late_segment(dir, ts, seg);
                    return None;
                }
                flow
            }
            Entry::Vacant(e) => {
                self.stats.flows += 1;
                self.stats.peak_flows = self.stats.peak_flows.max(tracked + 1);
                e.insert(Box::new(Flow::new(new_sink(&key, dir, ts))))
            }
        };
        flow.last_ts = ts;
        let before = flow.buffered();
        flow.segment(
            dir,
            ts,
            seg,
            &self.limits,
            self.buffered_total,
            &mut self.stats,
        );
        let after = flow.buffered();
        self.buffered_total = self.buffered_total + after - before;
        self.stats.peak_buffered = self.stats.peak_buffered.max(self.buffered_total as u64);
        let ended_now = flow.ended() && flow.ended_at.is_none();
        if ended_now {
            flow.ended_at = Some(ts);
            self.buffered_total -= flow.buffered();
            flow.drop_buffers();
        }
        Some((&mut flow.sink, ended_now))
    }

    /// The sink of a live flow, by key (for timers).
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut S> {
        self.map.get_mut(key).map(|f| &mut f.sink)
    }

    /// Hands back the sinks of flows that ended more than `limits.linger`
    /// ago, and forgets them.
    fn purge(&mut self, now: Ts, done: &mut impl FnMut(S, Release)) {
        let linger = self.limits.linger;
        for (_, flow) in self
            .map
            .extract_if(|_, f| f.ended_at.is_some_and(|e| now.saturating_sub(e) >= linger))
        {
            done(flow.sink, Release::Ended);
        }
    }

    /// Makes room under `max_flows`: hands back a sixteenth of the table,
    /// ended flows first, then the least recently active. The O(flows) scan
    /// is paid once per max_flows/16 new flows.
    fn evict(&mut self, now: Ts, done: &mut impl FnMut(S, Release)) {
        let want = (self.limits.max_flows / 16).max(1).min(self.map.len());
        if want == 0 {
            return;
        }
        // Live flows sort after ended ones, then by last activity.
        let rank = |f: &Flow<S>| (f.ended_at.is_none(), f.last_ts);
        let mut ranks: Vec<(bool, Ts)> = self.map.values().map(|f| rank(f)).collect();
        let (_, cutoff, _) = ranks.select_nth_unstable(want - 1);
        let cutoff = *cutoff;
        let mut left = want;
        let evicted: Vec<Box<Flow<S>>> = self
            .map
            .extract_if(|_, f| {
                let take = left > 0 && rank(f) <= cutoff;
                left -= usize::from(take);
                take
            })
            .map(|(_, f)| f)
            .collect();
        for flow in evicted {
            self.buffered_total -= flow.buffered();
            let live = flow.ended_at.is_none();
            if live {
                self.stats.flows_evicted += 1;
            }
            let why = if live {
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
        for (_, flow) in map {
            done(flow.finish(ts, &mut stats), Release::CaptureEnd);
        }
        stats
    }
}

impl<S: StreamSink> Flow<S> {
    fn new(sink: S) -> Self {
        Flow {
            halves: [Half::default(), Half::default()],
            sink,
            last_ts: Ts(0),
            ended_at: None,
            rst: None,
            ignored: false,
        }
    }

    fn buffered(&self) -> usize {
        self.halves[0].ooo_bytes + self.halves[1].ooo_bytes
    }

    fn drop_buffers(&mut self) {
        for h in &mut self.halves {
            h.ooo.clear();
            h.ooo_bytes = 0;
        }
    }

    fn ended(&self) -> bool {
        self.rst.is_some() || (self.halves[0].fin_done && self.halves[1].fin_done)
    }

    /// A SYN without ACK starts a new connection on this 4-tuple when the old
    /// one ended (or began ending) and this is not a retransmitted SYN.
    fn is_new_connection(&self, dir: Dir, seq: u32) -> bool {
        let h = &self.halves[dir.idx()];
        if h.syn_seq == Some(seq) {
            return false;
        }
        // An RST sets `ended_at` too.
        self.ended_at.is_some()
            || self.halves.iter().any(|h| h.fin.is_some())
            || h.syn_seq.is_some()
    }

    /// A segment after the connection ended. Bytes the peer of an RST had
    /// already sent (in flight as the RST left: often the answer to a close
    /// frame) still reach the sink when they continue its stream exactly.
    fn late_segment(&mut self, dir: Dir, ts: Ts, seg: &TcpSegment<'_>) {
        self.sink.on_packet(dir, ts, seg);
        if self.ignored || self.rst != Some(dir.other()) || seg.payload.is_empty() {
            return;
        }
        let half = &mut self.halves[dir.idx()];
        let Some(base) = half.base else {
            return;
        };
        let start = half.offset_of(base, seg.seq);
        let end = start + seg.payload.len() as i64;
        if start < 0 || start as u64 > half.off || end as u64 <= half.off {
            return;
        }
        let skip = (half.off - start as u64) as usize;
        self.sink.on_data(dir, ts, &seg.payload[skip..]);
        half.off = end as u64;
    }

    fn segment(
        &mut self,
        dir: Dir,
        ts: Ts,
        seg: &TcpSegment<'_>,
        limits: &Limits,
        buffered_total: usize,
        stats: &mut ReassemblyStats,
    ) {
        self.sink.on_packet(dir, ts, seg);
        if !self.ignored && !self.sink.wants_data() {
            self.ignored = true;
            self.drop_buffers();
        }
        let sink = &mut self.sink;
        let d = dir.idx();

        if seg.rst {
            // Whatever is still missing will not come: flush, then reset.
            for side in [Dir::A, Dir::B] {
                flush(
                    &mut self.halves[side.idx()],
                    side,
                    ts,
                    sink,
                    stats,
                    self.ignored,
                );
            }
            self.rst = Some(dir);
            sink.on_rst(dir, ts);
            return;
        }

        // The peer's acknowledgement tells what it received.
        if seg.ack {
            let peer = &mut self.halves[dir.other().idx()];
            if let Some(base) = peer.base {
                let a = peer.offset_of(base, seg.ack_no);
                if a > 0 && a as u64 > peer.acked {
                    peer.acked = a as u64;
                }
                if peer.has_pending() && peer.acked > peer.off {
                    skip_hole(peer, dir.other(), ts, sink, stats, self.ignored);
                }
            }
        }

        let half = &mut self.halves[d];
        let mut seq = seg.seq;
        if seg.syn {
            half.syn_seq.get_or_insert(seg.seq);
            // The SYN fixes where the stream starts, unless bytes of it were
            // already taken (a SYN-ACK captured after the first data): then
            // the stream keeps its place.
            if half.off == 0 && half.ooo.is_empty() {
                half.base = Some(seg.seq.wrapping_add(1));
            }
            seq = seq.wrapping_add(1);
        }
        let base = *half.base.get_or_insert(seq);
        let start = half.offset_of(base, seq);
        let len = seg.payload.len() as u64;
        if start < 0 {
            // Starts before the stream we know (a retransmission of bytes
            // older than the first segment we saw): keep what is new.
            let cut = start.unsigned_abs();
            if cut < len {
                let payload = &seg.payload[cut as usize..];
                accept(
                    half,
                    dir,
                    ts,
                    0,
                    payload,
                    sink,
                    limits,
                    buffered_total,
                    stats,
                    self.ignored,
                );
            } else if len > 0 {
                stats.retransmitted_segments += 1;
            }
        } else if len > 0 {
            if start as u64 > half.off {
                stats.out_of_order_segments += 1;
            }
            accept(
                half,
                dir,
                ts,
                start as u64,
                seg.payload,
                sink,
                limits,
                buffered_total,
                stats,
                self.ignored,
            );
        }
        if seg.fin && half.fin.is_none() {
            let fin_off = (start.max(0) as u64) + len;
            half.fin = Some((fin_off, ts));
            deliver_fin(half, dir, sink);
            if half.has_pending() && half.acked > half.off {
                skip_hole(half, dir, ts, sink, stats, self.ignored);
            }
        }
    }

    /// The flow is over (capture end, eviction, replacement): flush what is
    /// pending, missing bytes as gaps, and return the sink.
    fn finish(mut self, ts: Ts, stats: &mut ReassemblyStats) -> S {
        for side in [Dir::A, Dir::B] {
            flush(
                &mut self.halves[side.idx()],
                side,
                ts,
                &mut self.sink,
                stats,
                self.ignored,
            );
        }
        self.sink
    }
}

/// Takes a segment's bytes at stream offset `start`.
#[allow(clippy::too_many_arguments)]
fn accept<S: StreamSink>(
    half: &mut Half,
    dir: Dir,
    ts: Ts,
    start: u64,
    payload: &[u8],
    sink: &mut S,
    limits: &Limits,
    buffered_total: usize,
    stats: &mut ReassemblyStats,
    ignored: bool,
) {
    let end = start + payload.len() as u64;
    if end <= half.off {
        stats.retransmitted_segments += 1;
        return;
    }
    if start <= half.off {
        let skip = (half.off - start) as usize;
        if !ignored {
            sink.on_data(dir, ts, &payload[skip..]);
        }
        half.off = end;
        drain(half, dir, sink, ignored);
        return;
    }
    // Out of order: a hole before it. (Counted by the caller, once.)
    if ignored {
        // Nobody reads these bytes: just move past the hole.
        half.off = end;
        return;
    }
    // Give the hole up when the peer already acknowledged it (the capture
    // lost those bytes) or when there is no room to wait for it.
    let skip_target = if half.acked >= start {
        Some(start)
    } else if half.ooo_bytes + payload.len() > limits.max_buffered_per_dir
        || buffered_total + payload.len() > limits.max_buffered_total
    {
        stats.holes_given_up += 1;
        Some(half.ooo.keys().next().copied().unwrap_or(start).min(start))
    } else {
        None
    };
    if let Some(target) = skip_target {
        skip_to(half, dir, ts, target, sink, stats, ignored);
        accept(
            half,
            dir,
            ts,
            start,
            payload,
            sink,
            limits,
            buffered_total,
            stats,
            ignored,
        );
        return;
    }
    match half.ooo.get_mut(&start) {
        Some(p) if p.data.len() >= payload.len() => {
            stats.retransmitted_segments += 1;
        }
        Some(p) => {
            half.ooo_bytes += payload.len() - p.data.len();
            p.data.clear();
            p.data.extend_from_slice(payload);
            p.ts = ts;
        }
        None => {
            half.ooo_bytes += payload.len();
            half.ooo.insert(
                start,
                Pending {
                    ts,
                    data: payload.to_vec(),
                },
            );
        }
    }
}

/// Delivers buffered segments that have become contiguous, then a FIN that
/// has been reached.
fn drain<S: StreamSink>(half: &mut Half, dir: Dir, sink: &mut S, ignored: bool) {
    while let Some(entry) = half.ooo.first_entry() {
        let start = *entry.key();
        if start > half.off {
            break;
        }
        let p = entry.remove();
        half.ooo_bytes -= p.data.len();
        let end = start + p.data.len() as u64;
        if end > half.off {
            let skip = (half.off - start) as usize;
            if !ignored {
                // Rule 3: a frame's time is that of the packet carrying it.
                sink.on_data(dir, p.ts, &p.data[skip..]);
            }
            half.off = end;
        }
    }
    deliver_fin(half, dir, sink);
}

fn deliver_fin<S: StreamSink>(half: &mut Half, dir: Dir, sink: &mut S) {
    if let Some((fin_off, fin_ts)) = half.fin
        && !half.fin_done
        && fin_off <= half.off
    {
        half.fin_done = true;
        sink.on_fin(dir, fin_ts);
    }
}

/// Skips the missing bytes up to `target` (a gap), then drains.
fn skip_to<S: StreamSink>(
    half: &mut Half,
    dir: Dir,
    ts: Ts,
    target: u64,
    sink: &mut S,
    stats: &mut ReassemblyStats,
    ignored: bool,
) {
    if target > half.off {
        let len = target - half.off;
        stats.gaps += 1;
        stats.gap_bytes += len;
        if !ignored {
            // The hole shows where the bytes after it were captured.
            let at = half.ooo.get(&target).map_or(ts, |p| p.ts);
            sink.on_gap(dir, at, len);
        }
        half.off = target;
    }
    drain(half, dir, sink, ignored);
}

/// The peer acknowledged past the hole: skip to the next thing we hold.
fn skip_hole<S: StreamSink>(
    half: &mut Half,
    dir: Dir,
    ts: Ts,
    sink: &mut S,
    stats: &mut ReassemblyStats,
    ignored: bool,
) {
    let next = half
        .ooo
        .keys()
        .next()
        .copied()
        .or(half.fin.map(|(o, _)| o))
        .unwrap_or(half.off);
    skip_to(half, dir, ts, next, sink, stats, ignored);
}

/// Delivers everything held, skipping every hole.
fn flush<S: StreamSink>(
    half: &mut Half,
    dir: Dir,
    ts: Ts,
    sink: &mut S,
    stats: &mut ReassemblyStats,
    ignored: bool,
) {
    while half.has_pending() {
        let before = (half.off, half.ooo.len(), half.fin_done);
        skip_hole(half, dir, ts, sink, stats, ignored);
        if (half.off, half.ooo.len(), half.fin_done) == before {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[derive(Default, Debug)]
    struct Rec {
        data: [Vec<u8>; 2],
        gaps: Vec<(Dir, u64)>,
        fins: Vec<Dir>,
        rsts: Vec<Dir>,
        ignore: bool,
    }

    impl StreamSink for Rec {
        fn on_packet(&mut self, _: Dir, _: Ts, _: &TcpSegment<'_>) {}
        fn on_data(&mut self, dir: Dir, _: Ts, data: &[u8]) {
            self.data[dir.idx()].extend_from_slice(data);
        }
        fn on_gap(&mut self, dir: Dir, _: Ts, len: u64) {
            self.gaps.push((dir, len));
        }
        fn on_fin(&mut self, dir: Dir, _: Ts) {
            self.fins.push(dir);
        }
        fn on_rst(&mut self, dir: Dir, _: Ts) {
            self.rsts.push(dir);
        }
        fn wants_data(&self) -> bool {
            !self.ignore
        }
    }

    const C: Endpoint = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 50000,
    };
    const S: Endpoint = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        port: 80,
    };

    struct Seg {
        from_client: bool,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        fin: bool,
        rst: bool,
        data: Vec<u8>,
    }

    fn seg(from_client: bool, seq: u32, data: &[u8]) -> Seg {
        Seg {
            from_client,
            seq,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            data: data.to_vec(),
        }
    }

    fn run(segs: &[Seg]) -> Vec<Rec> {
        let mut table: FlowTable<Rec> = FlowTable::new(Limits::default());
        let mut out = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let (src, dst) = if s.from_client { (C, S) } else { (S, C) };
            let t = TcpSegment {
                src,
                dst,
                seq: s.seq,
                ack_no: s.ack.unwrap_or(0),
                syn: s.syn,
                ack: s.ack.is_some(),
                fin: s.fin,
                rst: s.rst,
                ttl: 64,
                payload: &s.data,
            };
            table.process(
                Ts(i as i64),
                &t,
                &mut |_, _, _| Rec::default(),
                &mut |r, _| out.push(r),
            );
        }
        table.finish(Ts(1000), &mut |r, _| out.push(r));
        out
    }

    fn client_dir() -> usize {
        FlowKey::of(C, S).1.idx()
    }

    #[test]
    fn in_order_and_out_of_order() {
        let base = 1000;
        let r = run(&[
            seg(true, base, b"hello "),
            seg(true, base + 12, b"!"),
            seg(true, base + 6, b"world "),
        ]);
        assert_eq!(r[0].data[client_dir()], b"hello world !");
        assert!(r[0].gaps.is_empty());
    }

    #[test]
    fn retransmission_and_overlap_delivered_once() {
        let base = 5;
        let r = run(&[
            seg(true, base, b"abcd"),
            seg(true, base, b"abcd"),
            seg(true, base + 2, b"cdef"),
            seg(true, base + 10, b"kl"),
            seg(true, base + 8, b"ijk"),
            seg(true, base + 5, b"fgh"),
            seg(true, base + 1, b"bcdefghijklm"),
        ]);
        assert_eq!(r[0].data[client_dir()], b"abcdefghijklm");
    }

    #[test]
    fn wraparound_at_2_32() {
        let base = u32::MAX - 3;
        let r = run(&[
            Seg {
                syn: true,
                ..seg(true, base, b"")
            },
            seg(true, base.wrapping_add(1), b"abc"),
            seg(true, base.wrapping_add(7), b"ghi"),
            seg(true, base.wrapping_add(4), b"def"),
        ]);
        assert_eq!(r[0].data[client_dir()], b"abcdefghi");
    }

    #[test]
    fn hole_acked_by_peer_is_a_gap() {
        let r = run(&[
            seg(true, 100, b"aaaa"),
            seg(true, 108, b"cccc"),
            // The server acknowledged up to 112: bytes 104..108 were lost
            // from the capture, not from the network.
            Seg {
                ack: Some(112),
                ..seg(false, 9000, b"")
            },
            seg(true, 112, b"dd"),
        ]);
        assert_eq!(r[0].data[client_dir()], b"aaaaccccdd");
        assert_eq!(r[0].gaps.len(), 1);
        assert_eq!(r[0].gaps[0].1, 4);
    }

    #[test]
    fn hole_at_end_of_capture_is_flushed() {
        let r = run(&[seg(true, 100, b"aaaa"), seg(true, 110, b"cc")]);
        assert_eq!(r[0].data[client_dir()], b"aaaacc");
        assert_eq!(r[0].gaps, vec![(FlowKey::of(C, S).1, 6)]);
    }

    #[test]
    fn fin_after_hole_waits_then_both_fins_end_flow() {
        let r = run(&[
            Seg {
                syn: true,
                ..seg(true, 10, b"")
            },
            seg(true, 11, b"ab"),
            Seg {
                fin: true,
                ..seg(true, 15, b"e")
            },
            seg(true, 13, b"cd"),
            Seg {
                fin: true,
                ..seg(false, 500, b"")
            },
            // After both FINs the flow is over; a late ACK must not revive it.
            Seg {
                ack: Some(17),
                ..seg(false, 501, b"")
            },
        ]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data[client_dir()], b"abcde");
        assert_eq!(r[0].fins.len(), 2);
    }

    #[test]
    fn rst_flushes_and_ends() {
        let r = run(&[
            seg(true, 1, b"a"),
            seg(true, 3, b"c"),
            Seg {
                rst: true,
                ..seg(false, 77, b"")
            },
        ]);
        assert_eq!(r[0].data[client_dir()], b"ac");
        assert_eq!(r[0].gaps.len(), 1);
        assert_eq!(r[0].rsts.len(), 1);
    }

    /// The answer in flight as the peer's RST left is still delivered, in
    /// order only; the RST's sender sends nothing more that counts.
    #[test]
    fn bytes_in_flight_after_an_rst_reach_the_sink() {
        let server_dir = if client_dir() == 0 { 1 } else { 0 };
        let r = run(&[
            seg(false, 500, b"hi"),
            seg(true, 1, b"bye"),
            Seg {
                rst: true,
                ..seg(true, 4, b"")
            },
            seg(false, 502, b"answer"),
            seg(false, 510, b"hole"),
            seg(true, 4, b"late"),
        ]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data[server_dir], b"hianswer");
        assert_eq!(r[0].data[client_dir()], b"bye");
    }

    #[test]
    fn new_syn_after_end_is_new_connection() {
        let r = run(&[
            Seg {
                syn: true,
                ..seg(true, 10, b"")
            },
            seg(true, 11, b"one"),
            Seg {
                rst: true,
                ..seg(true, 14, b"")
            },
            Seg {
                syn: true,
                ..seg(true, 90000, b"")
            },
            seg(true, 90001, b"two"),
        ]);
        assert_eq!(r.len(), 2);
        let all: Vec<&[u8]> = r.iter().map(|x| &x.data[client_dir()][..]).collect();
        assert!(all.contains(&&b"one"[..]) && all.contains(&&b"two"[..]));
    }

    #[test]
    fn retransmitted_syn_is_same_connection() {
        let r = run(&[
            Seg {
                syn: true,
                ..seg(true, 10, b"")
            },
            Seg {
                syn: true,
                ..seg(true, 10, b"")
            },
            seg(true, 11, b"x"),
        ]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].data[client_dir()], b"x");
    }

    #[test]
    fn per_direction_cap_gives_up_the_hole() {
        let mut table: FlowTable<Rec> = FlowTable::new(Limits {
            max_buffered_per_dir: 10,
            ..Limits::default()
        });
        let mut out = Vec::new();
        let mk = |seq: u32, data: &'static [u8]| TcpSegment {
            src: C,
            dst: S,
            seq,
            ack_no: 0,
            syn: false,
            ack: false,
            fin: false,
            rst: false,
            ttl: 64,
            payload: data,
        };
        let mut new = |_: &FlowKey, _: Dir, _: Ts| Rec::default();
        let mut done = |r: Rec, _: Release| out.push(r);
        table.process(Ts(0), &mk(0, b"aa"), &mut new, &mut done);
        table.process(Ts(1), &mk(4, b"cccccc"), &mut new, &mut done);
        assert_eq!(table.buffered_bytes(), 6);
        table.process(Ts(2), &mk(10, b"dddddd"), &mut new, &mut done);
        assert!(table.buffered_bytes() <= 10);
        table.finish(Ts(3), &mut done);
        assert_eq!(out[0].data[client_dir()], b"aaccccccdddddd");
        assert_eq!(out[0].gaps.len(), 1);
    }
}
