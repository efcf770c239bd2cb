//! One TCP connection: both directions and the sink that follows it.

use super::seq::Seq;
use super::stream::{Budget, Cx, Stream};
use super::{Dir, Limits, ReassemblyStats, StreamSink};
use crate::Ts;
use crate::decode::TcpSegment;

/// One TCP connection: both directions and the sink that follows it.
#[derive(Debug)]
pub struct Flow<S> {
    halves: [Stream; 2],
    pub(super) sink: S,
    pub(super) last_ts: Ts,
    /// When the TCP connection ended (both FINs, or an RST). The flow stays
    /// a while so late packets (the last ACK) still count as its own.
    pub(super) ended_at: Option<Ts>,
    /// The sender of the RST that ended the connection.
    rst: Option<Dir>,
    ignored: bool,
    /// What this flow adds to the table's running total of buffered bytes
    /// (its out-of-order stores and its sink's `held`), as last counted.
    pub(super) charged: usize,
    /// The flow's number in the capture (1 for the first): tells a flow
    /// from a later one on the same 4-tuple.
    pub(super) id: u64,
}

impl<S: StreamSink> Flow<S> {
    pub(super) fn new(sink: S, id: u64) -> Self {
        Flow {
            id,
            halves: [Stream::default(), Stream::default()],
            sink,
            last_ts: Ts(0),
            ended_at: None,
            rst: None,
            ignored: false,
            charged: 0,
        }
    }

    /// Bytes buffered for this flow now: out-of-order stores at their real
    /// cost, and what the sink holds.
    pub(super) fn buffered(&self) -> usize {
        self.halves[0].cost() + self.halves[1].cost() + self.sink.held()
    }

    pub(super) fn drop_buffers(&mut self) {
        for h in &mut self.halves {
            h.clear();
        }
    }

    pub(super) fn ended(&self) -> bool {
        self.rst.is_some() || (self.halves[0].fin_done() && self.halves[1].fin_done())
    }

    /// A SYN without ACK starts a new connection on this 4-tuple when the old
    /// one ended (or began ending) and this is not a retransmitted SYN.
    pub(super) fn is_new_connection(&self, dir: Dir, seq: u32) -> bool {
        let h = &self.halves[dir.idx()];
        if h.syn_seq() == Some(Seq(seq)) {
            return false;
        }
        // An RST sets `ended_at` too.
        self.ended_at.is_some() || self.halves.iter().any(Stream::fin_seen) || h.syn_seq().is_some()
    }

    /// The context a direction works in.
    #[inline]
    fn cx<'a>(
        &'a mut self,
        dir: Dir,
        stats: &'a mut ReassemblyStats,
    ) -> (&'a mut Stream, Cx<'a, S>) {
        let cx = Cx {
            dir,
            sink: &mut self.sink,
            stats,
            ignored: self.ignored,
        };
        (&mut self.halves[dir.idx()], cx)
    }

    /// A segment after the connection ended: only bytes in flight as the
    /// peer's RST left still count (see [`Stream::late`]).
    pub(super) fn late_segment(
        &mut self,
        dir: Dir,
        ts: Ts,
        seg: &TcpSegment<'_>,
        stats: &mut ReassemblyStats,
    ) {
        self.sink.on_packet(dir, ts, seg);
        if self.ignored || self.rst != Some(dir.other()) || seg.payload.is_empty() {
            return;
        }
        let (half, mut cx) = self.cx(dir, stats);
        half.late(&mut cx, ts, seg);
    }

    /// One segment of a live connection. `total` is the table's running
    /// total of buffered bytes (this flow's included), for the global cap.
    #[inline]
    pub(super) fn segment(
        &mut self,
        dir: Dir,
        ts: Ts,
        seg: &TcpSegment<'_>,
        limits: &Limits,
        total: usize,
        stats: &mut ReassemblyStats,
    ) {
        self.sink.on_packet(dir, ts, seg);
        if !self.ignored && !self.sink.wants_data() {
            self.ignored = true;
            self.drop_buffers();
        }
        if seg.rst {
            // Whatever is still missing will not come: flush, then reset.
            self.flush(ts, stats);
            self.rst = Some(dir);
            self.sink.on_rst(dir, ts);
            return;
        }
        if seg.ack {
            // The peer's acknowledgement tells what it received.
            let (peer, mut cx) = self.cx(dir.other(), stats);
            peer.ack(&mut cx, ts, Seq(seg.ack_no));
        }
        let (half, mut cx) = self.cx(dir, stats);
        // Everything else buffered counts against the global cap.
        let others = total.saturating_sub(half.cost());
        let budget = Budget {
            per_dir: limits.max_buffered_per_dir,
            total_left: limits.max_buffered_total.saturating_sub(others),
        };
        half.segment(&mut cx, ts, seg, budget);
    }

    /// Gives up every hole of both directions (gaps) and delivers what was
    /// held behind them. Returns the number of holes given up.
    pub(super) fn give_up_holes(&mut self, ts: Ts, stats: &mut ReassemblyStats) -> u64 {
        let mut n = 0;
        for side in [Dir::A, Dir::B] {
            let (half, mut cx) = self.cx(side, stats);
            n += half.give_up_holes(&mut cx, ts);
        }
        n
    }

    /// Delivers everything pending in both directions, holes as gaps.
    fn flush(&mut self, ts: Ts, stats: &mut ReassemblyStats) {
        for side in [Dir::A, Dir::B] {
            let (half, mut cx) = self.cx(side, stats);
            half.flush(&mut cx, ts);
        }
    }

    /// The flow is over (capture end, eviction, replacement): flush what is
    /// pending, missing bytes as gaps, and return the sink.
    pub(super) fn finish(mut self, ts: Ts, stats: &mut ReassemblyStats) -> S {
        self.flush(ts, stats);
        self.sink
    }
}
