//! One direction of a TCP connection: where its byte stream starts, how far
//! it has been delivered, what waits (out-of-order bytes, a FIN), and what
//! the peer acknowledged.
//!
//! Sequence numbers become 64-bit stream offsets here, relative to the next
//! byte expected (the nearest within 2 GiB), so nothing past this file
//! compares sequence numbers and wraparound needs no special case.
//!
//! A hole is skipped (a gap, with its size) when it cannot fill: the peer
//! acknowledged bytes the capture never saw (skipped up to the acknowledged
//! byte, not further), there is no room to wait (the first hole goes), the
//! flow is reset or over. Every skip is a loop step, never a recursion.

use super::assembler::{Assembler, Full, MAX_RUNS};
use super::seq::Seq;
use super::{Dir, ReassemblyStats, StreamSink};
use crate::Ts;
use crate::decode::TcpSegment;

/// What a direction's work needs from its flow.
pub(super) struct Cx<'a, S> {
    pub dir: Dir,
    pub sink: &'a mut S,
    pub stats: &'a mut ReassemblyStats,
    /// The sink wants no bytes: move past them, buffering nothing.
    pub ignored: bool,
}

/// Memory a direction may take for out-of-order bytes, its own included.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub per_dir: usize,
    /// The global cap less everything else buffered (other flows, the
    /// sink, the other direction).
    pub total_left: usize,
}

impl Budget {
    /// Room left for a store that already takes `cost`.
    fn room(self, cost: usize) -> usize {
        self.per_dir.min(self.total_left).saturating_sub(cost)
    }
}

/// Where a direction's FIN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Fin {
    #[default]
    NotSeen,
    /// Seen, waiting for the bytes before it.
    Waiting,
    Delivered,
}

/// One direction's reassembly state (kept small: a flow has two, and the
/// size of a flow bounds the memory of a SYN flood).
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Sequence number at stream offset 0 (`None` until the first segment).
    base: Option<Seq>,
    /// Stream offset of the next byte expected: everything before it was
    /// delivered or reported as a gap.
    off: u64,
    /// Out-of-order bytes; every run in it starts after `off`.
    store: Assembler,
    fin: Fin,
    /// Stream offset and time of the FIN, once seen.
    fin_off: u64,
    fin_ts: Ts,
    /// Highest offset the peer acknowledged.
    acked: u64,
    syn_seq: Option<Seq>,
}

impl Stream {
    pub fn cost(&self) -> usize {
        self.store.cost()
    }

    pub fn clear(&mut self) {
        self.store.clear();
    }

    pub fn fin_seen(&self) -> bool {
        self.fin != Fin::NotSeen
    }

    pub fn fin_done(&self) -> bool {
        self.fin == Fin::Delivered
    }

    pub fn syn_seq(&self) -> Option<Seq> {
        self.syn_seq
    }

    /// Stream offset of `seq`: the nearest (within 2 GiB) to the next
    /// expected byte. Negative for bytes before the stream as we know it.
    fn offset_of(&self, base: Seq, seq: Seq) -> i64 {
        let next = base.advanced(self.off);
        self.off as i64 + i64::from(seq - next)
    }

    /// The FIN's offset while it waits to be delivered.
    fn pending_fin(&self) -> Option<u64> {
        (self.fin == Fin::Waiting).then_some(self.fin_off)
    }

    /// The next thing held past a hole: a run, else a waiting FIN.
    fn next_held(&self) -> Option<u64> {
        self.store.first_start().or(self.pending_fin())
    }

    /// The peer acknowledged this stream up to `ack_no`.
    pub fn ack<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts, ack_no: Seq) {
        let Some(base) = self.base else {
            return;
        };
        let a = self.offset_of(base, ack_no);
        if a > 0 && a as u64 > self.acked {
            self.acked = a as u64;
        }
        self.skip_acked(cx, ts);
    }

    /// The peer has bytes the capture lost: skip them (a gap) up to the
    /// acknowledged byte, no further (what lies between it and the next
    /// byte held may still be captured), while something waits past them.
    fn skip_acked<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts) {
        while self.off < self.acked {
            let Some(next) = self.next_held() else {
                return;
            };
            let target = next.min(self.acked);
            if target <= self.off {
                return;
            }
            self.skip_to(cx, ts, target);
        }
    }

    /// One segment of this direction (not an RST).
    #[inline]
    pub fn segment<S: StreamSink>(
        &mut self,
        cx: &mut Cx<'_, S>,
        ts: Ts,
        seg: &TcpSegment<'_>,
        budget: Budget,
    ) {
        if self.in_order(cx, ts, seg) {
            return;
        }
        let mut seq = Seq(seg.seq);
        if seg.syn {
            self.syn_seq.get_or_insert(seq);
            // The SYN fixes where the stream starts, unless bytes of it were
            // already taken (a SYN-ACK captured after the first data): then
            // the stream keeps its place.
            if self.off == 0 && self.store.is_empty() {
                self.base = Some(seq + 1);
            }
            seq = seq + 1;
        }
        let base = *self.base.get_or_insert(seq);
        let start = self.offset_of(base, seq);
        let len = seg.payload.len() as u64;
        if start < 0 {
            // Starts before the stream we know (a retransmission of bytes
            // older than the first segment we saw): keep what is new.
            let rest = usize::try_from(start.unsigned_abs())
                .ok()
                .and_then(|cut| seg.payload.get(cut..))
                .filter(|r| !r.is_empty());
            match rest {
                Some(rest) => self.accept(cx, ts, 0, rest, budget),
                None if len > 0 => cx.stats.retransmitted_segments += 1,
                None => {}
            }
        } else if len > 0 {
            if start as u64 > self.off {
                cx.stats.out_of_order_segments += 1;
            }
            self.accept(cx, ts, start as u64, seg.payload, budget);
        }
        if seg.fin && self.fin == Fin::NotSeen {
            // The FIN takes the sequence number after the segment's last
            // byte, wherever the segment starts.
            self.fin_off = (start + len as i64).max(0) as u64;
            self.fin_ts = ts;
            self.fin = Fin::Waiting;
            self.deliver_fin(cx);
            self.skip_acked(cx, ts);
        }
    }

    /// Most segments: exactly the next bytes expected, no SYN or FIN,
    /// nothing held or waiting. They go straight to the sink as they are
    /// (what [`Stream::segment`] would do, without its offset arithmetic).
    /// Returns false, having done nothing, for any other segment.
    #[inline]
    fn in_order<S: StreamSink>(
        &mut self,
        cx: &mut Cx<'_, S>,
        ts: Ts,
        seg: &TcpSegment<'_>,
    ) -> bool {
        let next = match self.base {
            Some(base) if !seg.syn && !seg.fin => base.advanced(self.off),
            _ => return false,
        };
        if Seq(seg.seq) != next || self.fin != Fin::NotSeen || !self.store.is_empty() {
            return false;
        }
        if !seg.payload.is_empty() {
            if !cx.ignored {
                cx.sink.on_data(cx.dir, ts, seg.payload);
            }
            self.off += seg.payload.len() as u64;
        }
        true
    }

    /// Takes a segment's bytes at stream offset `start`.
    #[inline]
    fn accept<S: StreamSink>(
        &mut self,
        cx: &mut Cx<'_, S>,
        ts: Ts,
        start: u64,
        payload: &[u8],
        budget: Budget,
    ) {
        let end = start + payload.len() as u64;
        loop {
            if end <= self.off {
                cx.stats.retransmitted_segments += 1;
                return;
            }
            if start <= self.off {
                if !cx.ignored {
                    let skip = (self.off - start) as usize;
                    cx.sink.on_data(cx.dir, ts, &payload[skip..]);
                }
                self.off = end;
                self.drain(cx);
                return;
            }
            // Out of order: a hole before it.
            if cx.ignored {
                // Nobody reads these bytes: just move past the hole.
                self.off = end;
                return;
            }
            if self.acked >= start {
                // The peer already has the whole hole: the capture lost it.
                // (Part of it acknowledged: skipped at the peer's next ACK,
                // which repeats it, once this segment waits past the hole.)
                self.skip_to(cx, ts, start);
                continue;
            }
            let room = budget.room(self.store.cost());
            match self.store.insert(start, payload, ts, room, MAX_RUNS) {
                Ok(0) => cx.stats.retransmitted_segments += 1,
                Ok(_) => {}
                Err(Full) => {
                    // No room to wait for the hole: give it up, take what
                    // it held back, and try again with the room that frees.
                    cx.stats.holes_given_up += 1;
                    let target = self.store.first_start().map_or(start, |s| s.min(start));
                    self.skip_to(cx, ts, target);
                    continue;
                }
            }
            return;
        }
    }

    /// Delivers the runs that have become contiguous, then a FIN reached.
    /// (Inline: called for every in-order segment, mostly with nothing held.)
    #[inline]
    fn drain<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>) {
        if self.store.is_empty() {
            self.deliver_fin(cx);
            return;
        }
        while let Some(run) = self.store.pop_reached(self.off) {
            if run.end() > self.off {
                if !cx.ignored {
                    // A frame's time is that of the packet carrying it.
                    for (ts, bytes) in run.pieces(self.off) {
                        cx.sink.on_data(cx.dir, ts, bytes);
                    }
                }
                self.off = run.end();
            }
        }
        self.deliver_fin(cx);
    }

    #[inline]
    fn deliver_fin<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>) {
        if self.fin == Fin::Waiting && self.fin_off <= self.off {
            self.fin = Fin::Delivered;
            cx.sink.on_fin(cx.dir, self.fin_ts);
        }
    }

    /// Skips the missing bytes up to `target` (a gap), then drains.
    fn skip_to<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts, target: u64) {
        if target > self.off {
            let len = target - self.off;
            cx.stats.gaps += 1;
            cx.stats.gap_bytes += len;
            if !cx.ignored {
                // The hole shows where the bytes after it were captured.
                let at = self.store.ts_at(target).unwrap_or(ts);
                cx.sink.on_gap(cx.dir, at, len);
            }
            self.off = target;
        }
        self.drain(cx);
    }

    /// Gives up every hole before bytes held (each a gap) and delivers
    /// them; a FIN past a last hole keeps waiting (it costs nothing).
    /// Returns the number of holes given up.
    pub fn give_up_holes<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts) -> u64 {
        let mut n = 0;
        while let Some(next) = self.store.first_start() {
            n += 1;
            self.skip_to(cx, ts, next);
        }
        n
    }

    /// Delivers everything held, skipping every hole, and the FIN.
    pub fn flush<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts) {
        while let Some(next) = self.next_held() {
            let before = (self.off, self.store.len(), self.fin);
            self.skip_to(cx, ts, next);
            if (self.off, self.store.len(), self.fin) == before {
                return;
            }
        }
    }

    /// A segment after the peer's RST ended the connection: bytes it had
    /// already sent (in flight as the RST left: often the answer to a close
    /// frame) still reach the sink when they continue the stream exactly.
    pub fn late<S: StreamSink>(&mut self, cx: &mut Cx<'_, S>, ts: Ts, seg: &TcpSegment<'_>) {
        let Some(base) = self.base else {
            return;
        };
        // A SYN takes a sequence number: the payload starts after it.
        let seq = Seq(seg.seq) + u32::from(seg.syn);
        let start = self.offset_of(base, seq);
        let end = start + seg.payload.len() as i64;
        if start < 0 || start as u64 > self.off || end as u64 <= self.off {
            return;
        }
        let skip = (self.off - start as u64) as usize;
        if let Some(rest) = seg.payload.get(skip..) {
            cx.sink.on_data(cx.dir, ts, rest);
        }
        self.off = end as u64;
    }
}
