//! What a flow's reassembled streams are handed to.

use super::Dir;
use crate::Ts;
use crate::decode::TcpSegment;

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
    /// Bytes the sink itself holds (partial HTTP heads, split frame headers,
    /// close payloads): they count against [`super::Limits::max_buffered_total`]
    /// with the out-of-order bytes. Asked after every segment of the flow,
    /// so it should be cheap (a few lengths added up).
    fn held(&self) -> usize {
        0
    }
    /// Drops what the sink holds that it can do without (the global cap is
    /// reached and this flow's holes are already given up); returns the
    /// bytes freed.
    fn shed(&mut self) -> usize {
        0
    }
    /// Where the sink keeps state outside the flow (the address of a box;
    /// 0 for none). The table keeps it beside the flow's key, so that
    /// [`StreamSink::prefetch`] can ask for that state together with the
    /// flow instead of after it. Asked after every segment of the flow.
    fn hot(&self) -> usize {
        0
    }
    /// Asks the cache for what a packet of `dir` will touch at `hot` (an
    /// address [`StreamSink::hot`] gave, perhaps stale: see
    /// `prefetch::range`).
    fn prefetch(_hot: usize, _dir: Dir) {}
}
