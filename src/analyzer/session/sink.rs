//! A session as its flow's sink: the TCP events and bytes reassembly hands
//! it, and what it tells reassembly back (what it buffers, where its state
//! is).

use super::{Mode, Session, Ws};
use crate::Ts;
use crate::decode::TcpSegment;
use crate::prefetch;
use crate::reassembly::{Dir, StreamSink};

impl StreamSink for Session {
    fn hot(&self) -> usize {
        self.ws.as_deref().map_or(0, prefetch::addr_of)
    }

    fn prefetch(hot: usize, dir: Dir) {
        Ws::prefetch(hot, dir);
    }

    /// Heap bytes this flow buffers: partial HTTP heads and close payloads
    /// being read (charged to the global memory cap).
    fn held(&self) -> usize {
        let heads: usize = self.head.iter().map(Vec::capacity).sum();
        let frames: usize = self.ws.as_ref().map_or(0, |w| {
            let tls = w.tls.as_ref().map_or(0, |t| t.conn.held());
            tls + w.dirs.iter().map(|d| d.dec.held()).sum::<usize>()
        });
        heads + frames
    }

    /// Gives up partial HTTP heads when the global memory cap is reached
    /// (counted in `limits`): a request that cannot be read leaves the flow
    /// unrecognised; a lost response is handled as one lost to a capture
    /// gap (frames are looked for after it). TLS gives back only the
    /// buffers that hold nothing: dropping a partial record would stop
    /// decryption and turn verdicts wrong without a trace. Returns the
    /// bytes freed.
    fn shed(&mut self) -> usize {
        let mut freed = self
            .ws
            .as_mut()
            .and_then(|w| w.tls.as_mut())
            .map_or(0, |t| t.conn.trim());
        for dir in [Dir::A, Dir::B] {
            let n = std::mem::take(&mut self.head[dir.idx()]).capacity();
            if n == 0 {
                continue;
            }
            freed += n;
            match self.mode {
                Mode::Detecting => self.ignore(),
                Mode::WebSocket => self.head_lost(dir),
                Mode::Ignored => {}
            }
        }
        freed
    }

    fn on_packet(&mut self, dir: Dir, ts: Ts, seg: &TcpSegment<'_>) {
        let new_ttl = self.meta.packet(dir, ts, seg.syn && !seg.ack, seg.ttl);
        if let Some(t) = self.ws.as_mut().and_then(|w| w.tls.as_mut())
            && (!seg.payload.is_empty() || seg.fin || seg.rst)
        {
            t.burst.packet(ts, !seg.payload.is_empty());
        }
        if seg.rst
            && let (Some(before), Some(ws)) = (new_ttl, self.ws.as_deref_mut())
        {
            ws.tracker.foreign_rst(dir, ts, seg.ttl, &before);
        }
    }

    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        match self.ws.as_mut().and_then(|w| w.tls.take()) {
            Some(layer) => self.tls_data(layer, dir, ts, data),
            None if self.starts_tls(dir, data) => self.start_tls(dir, ts, data),
            None => self.plain_data(dir, ts, data),
        }
    }

    fn on_gap(&mut self, dir: Dir, ts: Ts, len: u64) {
        if let Some(t) = self.ws.as_mut().and_then(|w| w.tls.as_mut()) {
            // The records of that direction can no longer be told apart.
            let td = t.tls_dir(dir);
            t.conn.gap(td);
            if let Some(ws) = self.ws.as_deref_mut() {
                ws.tracker.gap(dir, ts, len);
            }
            return;
        }
        self.plain_gap(dir, ts, len);
    }

    fn on_fin(&mut self, dir: Dir, ts: Ts) {
        if let Some(t) = &self.trace {
            t.fin(dir, ts);
        }
        if let Some(ws) = self.ws.as_deref_mut() {
            ws.tracker.fin(dir, ts);
        }
    }

    fn on_rst(&mut self, dir: Dir, ts: Ts) {
        if let Some(t) = &self.trace {
            t.rst(dir, ts);
        }
        if let Some(ws) = self.ws.as_deref_mut() {
            ws.tracker.rst(dir, ts);
        }
    }

    fn wants_data(&self) -> bool {
        self.mode != Mode::Ignored
    }
}
