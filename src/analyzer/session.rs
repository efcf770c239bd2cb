//! One flow's decoding state: what routes its reassembled bytes through the
//! HTTP upgrade parser, then a frame decoder per direction, into the close
//! tracker. Small until the flow turns out to be a WebSocket connection.

use crate::Ts;
use crate::close::{ConnMeta, ConnectionReport, Settings, Tracker};
use crate::decode::TcpSegment;
use crate::frame::{self, FrameDecoder, FrameEvent};
use crate::reassembly::{Dir, FlowKey, StreamSink};
use crate::timeline::{Selection, Tracer};
use crate::upgrade::{self, Head, MAX_HEAD_LEN, Request, Response};

/// Data segments of a flow picked up midstream that may be tried as frames
/// before the flow is taken as "not WebSocket".
const MIDSTREAM_TRIES: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing decided yet.
    Detecting,
    /// A WebSocket connection (upgrade request seen, or midstream frames).
    WebSocket,
    /// Not a WebSocket connection: its bytes are dropped.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expecting an HTTP head (request or response) in this direction.
    Head,
    /// Frames.
    Frames,
    /// Nothing more to decode here (a rejected upgrade's body).
    Skip,
}

#[derive(Debug)]
struct DirState {
    stage: Stage,
    dec: FrameDecoder,
}

impl Default for DirState {
    fn default() -> Self {
        DirState {
            stage: Stage::Head,
            dec: FrameDecoder::new(),
        }
    }
}

/// The state only a WebSocket connection needs, made when one is recognised.
#[derive(Debug, Default)]
struct Ws {
    dirs: [DirState; 2],
    tracker: Tracker,
}

/// One connection's decoding state. Small until the flow turns out to be a
/// WebSocket connection, so floods of other flows stay cheap.
#[derive(Debug)]
pub struct Session {
    pub meta: ConnMeta,
    mode: Mode,
    tries: u8,
    /// An HTTP head split across segments, per direction.
    head: [Vec<u8>; 2],
    ws: Option<Box<Ws>>,
    /// Live mode: the connection's number among listed ones (0: not yet).
    pub(super) seq: u64,
    /// Live mode: already reported as decided.
    pub(super) emitted: bool,
    /// Live mode: its close deadline is waiting in the timer queue.
    pub(super) deadline_queued: bool,
    /// `--connection`: this flow's events are recorded.
    trace: Option<Box<Tracer>>,
}

impl Session {
    pub fn new(key: &FlowKey, order: u64, ts: Ts, trace: Option<&Selection>) -> Self {
        Session {
            meta: ConnMeta::new(key.lo, key.hi, order, ts),
            mode: Mode::Detecting,
            tries: 0,
            head: Default::default(),
            ws: None,
            seq: 0,
            emitted: false,
            deadline_queued: false,
            trace: trace.and_then(|t| t.tracer(key, ts)),
        }
    }

    /// The WebSocket state, made on first use.
    fn ws(&mut self) -> &mut Ws {
        self.ws.get_or_insert_with(Box::default)
    }

    /// The connection's report as of `end` (`None` when not WebSocket).
    pub fn report(&self, end: Ts, settings: &Settings) -> Option<ConnectionReport> {
        self.ws.as_ref()?.tracker.report(&self.meta, end, settings)
    }

    /// Whether the report lists this connection (an upgrade or midstream).
    pub fn is_listed(&self) -> bool {
        self.ws.as_ref().is_some_and(|w| w.tracker.is_websocket())
    }

    /// The pending close deadline, when a close frame waits for its answer.
    pub fn close_deadline(&self, timeout: Ts) -> Option<Ts> {
        self.ws.as_ref()?.tracker.open_close_deadline(timeout)
    }

    fn start_frames(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        self.ws().dirs[dir.idx()].stage = Stage::Frames;
        self.frames(dir, ts, data);
    }

    fn frames(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let Some(ws) = self.ws.as_deref_mut() else {
            return;
        };
        let Ws { dirs, tracker } = ws;
        let ds = &mut dirs[dir.idx()];
        if ds.stage != Stage::Frames || data.is_empty() {
            return;
        }
        let mut on_event = |e: FrameEvent<'_>| match e {
            FrameEvent::Frame {
                header,
                close_payload,
                notes,
            } => tracker.frame(dir, ts, header, close_payload, notes),
            FrameEvent::Malformed(frame::HeaderError::LengthTopBit) => {
                tracker.malformed(dir, ts, "a 64-bit payload length with its top bit set")
            }
        };
        // One branch per segment: untraced flows feed as before.
        match self.trace.as_deref() {
            None => ds.dec.feed(data, &mut on_event),
            Some(t) => ds.dec.feed(data, &mut |e| {
                t.frame(dir, ts, &e);
                on_event(e)
            }),
        }
    }

    /// Becomes a WebSocket connection picked up midstream: both directions
    /// look for a frame boundary.
    fn become_midstream(&mut self) {
        self.mode = Mode::WebSocket;
        let ws = self.ws();
        ws.tracker.set_midstream();
        for d in &mut ws.dirs {
            d.stage = Stage::Frames;
            d.dec = FrameDecoder::resyncing();
        }
    }

    /// Bytes in `dir` while the connection is still unclassified.
    fn detect(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let buffered = !self.head[dir.idx()].is_empty();
        if self.meta.saw_syn() && !self.meta.opened(dir) && !buffered {
            // The server spoke first (a banner, an early error): what
            // decides is the start of the client's stream (rule 8). Only a
            // 101 (its request lost to a gap) is read here.
            if !upgrade::looks_like_switching(data) {
                return;
            }
        }
        if buffered || upgrade::looks_like_request(data) || upgrade::looks_like_response(data) {
            self.head(dir, ts, data);
            return;
        }
        if self.meta.saw_syn() {
            // The connection's start was seen and it is not an upgrade.
            self.ignore();
            return;
        }
        if plausible_frames(data) {
            self.become_midstream();
            self.frames(dir, ts, data);
        } else {
            self.tries += 1;
            if self.tries >= MIDSTREAM_TRIES {
                self.ignore();
            }
        }
    }

    fn ignore(&mut self) {
        self.mode = Mode::Ignored;
        self.head = Default::default();
        self.ws = None;
    }

    /// Bytes in `dir` while an HTTP head is expected there.
    fn head(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let buf = &mut self.head[dir.idx()];
        let prev = buf.len();
        // Parse in place when the head is whole in this segment.
        let input: &[u8] = if prev == 0 {
            data
        } else {
            let room = MAX_HEAD_LEN.saturating_sub(prev);
            buf.extend_from_slice(&data[..data.len().min(room)]);
            buf
        };
        match upgrade::parse_head(input) {
            Err(nom::Err::Incomplete(_)) => {
                if prev == 0 {
                    buf.extend_from_slice(data);
                }
            }
            Err(_) => {
                *buf = Vec::new();
                if self.mode == Mode::Detecting {
                    self.ignore();
                } else {
                    self.ws().dirs[dir.idx()].stage = Stage::Skip;
                }
            }
            Ok((used, head)) => {
                *buf = Vec::new();
                // Bytes of this segment after the head.
                let rest = &data[used.saturating_sub(prev).min(data.len())..];
                match head {
                    Head::Request(req) => self.got_request(dir, ts, req, rest),
                    Head::Response(resp) => self.got_response(dir, ts, resp, rest),
                }
            }
        }
    }

    /// An upgrade request (anything else: not a WebSocket connection).
    fn got_request(&mut self, dir: Dir, ts: Ts, req: Request, rest: &[u8]) {
        if !req.upgrade_websocket {
            self.ignore();
            return;
        }
        self.mode = Mode::WebSocket;
        if let Some(t) = &self.trace {
            t.request(dir, ts, &req);
        }
        self.ws().tracker.request(dir, ts, req);
        self.start_frames(dir, ts, rest);
    }

    /// The upgrade's response: frames follow a 101, a body anything else.
    fn got_response(&mut self, dir: Dir, ts: Ts, resp: Response, rest: &[u8]) {
        let status = resp.status;
        if self.mode == Mode::Detecting {
            // A response with no request: picked up midstream.
            if status != 101 {
                self.ignore();
                return;
            }
            self.become_midstream();
        }
        if let Some(t) = &self.trace {
            t.response(dir, ts, &resp);
        }
        let ws = self.ws();
        ws.tracker.response(dir, ts, resp);
        if status == 101 {
            self.start_frames(dir, ts, rest);
        } else {
            // A rejection: what follows is a body, not frames.
            for d in &mut ws.dirs {
                d.stage = Stage::Skip;
            }
        }
    }
}

/// Whether bytes at a segment start decode as a run of plausible frames
/// (complete ones, except possibly the last).
fn plausible_frames(mut data: &[u8]) -> bool {
    let mut n = 0;
    while !data.is_empty() {
        match frame::parse_header(data) {
            Ok((rest, h)) if frame::plausible(&h) => {
                n += 1;
                let len = usize::try_from(h.payload_len).unwrap_or(usize::MAX);
                if len >= rest.len() {
                    return true;
                }
                data = &rest[len..];
            }
            Err(nom::Err::Incomplete(_)) => return n > 0,
            _ => return false,
        }
    }
    n > 0
}

impl StreamSink for Session {
    /// Heap bytes this flow buffers: partial HTTP heads and close payloads
    /// being read (charged to the global memory cap).
    fn held(&self) -> usize {
        let heads: usize = self.head.iter().map(Vec::capacity).sum();
        let frames: usize = self
            .ws
            .as_ref()
            .map_or(0, |w| w.dirs.iter().map(|d| d.dec.held()).sum());
        heads + frames
    }

    /// Gives up partial HTTP heads when the global memory cap is reached
    /// (counted in `limits`): a request that cannot be read leaves the flow
    /// unrecognised; a lost response is handled as one lost to a capture
    /// gap (frames are looked for after it). Returns the bytes freed.
    fn shed(&mut self) -> usize {
        let mut freed = 0;
        for dir in [Dir::A, Dir::B] {
            let n = std::mem::take(&mut self.head[dir.idx()]).capacity();
            if n == 0 {
                continue;
            }
            freed += n;
            match self.mode {
                Mode::Detecting => self.ignore(),
                Mode::WebSocket => {
                    let ws = self.ws();
                    let ds = &mut ws.dirs[dir.idx()];
                    if ds.stage == Stage::Head {
                        ds.stage = Stage::Frames;
                        ds.dec = FrameDecoder::resyncing();
                        ws.tracker.set_response_lost();
                    }
                }
                Mode::Ignored => {}
            }
        }
        freed
    }

    fn on_packet(&mut self, dir: Dir, ts: Ts, seg: &TcpSegment<'_>) {
        let new_ttl = self.meta.packet(dir, ts, seg.syn && !seg.ack, seg.ttl);
        if seg.rst
            && let (Some(before), Some(ws)) = (new_ttl, self.ws.as_deref_mut())
        {
            ws.tracker.foreign_rst(dir, ts, seg.ttl, &before);
        }
    }

    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        match self.mode {
            Mode::Ignored => {}
            Mode::Detecting => self.detect(dir, ts, data),
            Mode::WebSocket => match self.ws().dirs[dir.idx()].stage {
                Stage::Head => self.head(dir, ts, data),
                Stage::Frames => self.frames(dir, ts, data),
                Stage::Skip => {}
            },
        }
    }

    fn on_gap(&mut self, dir: Dir, ts: Ts, len: u64) {
        if let Some(t) = &self.trace {
            t.gap(dir, ts, len);
        }
        // A head cut by a gap cannot be read: start over on what follows.
        self.head[dir.idx()] = Vec::new();
        if self.mode != Mode::WebSocket {
            return;
        }
        let ws = self.ws();
        ws.tracker.gap(dir, ts, len);
        let ds = &mut ws.dirs[dir.idx()];
        match ds.stage {
            Stage::Frames => {
                ds.dec.gap(len);
            }
            Stage::Head => {
                // The head is lost: look for frames after it.
                ds.stage = Stage::Frames;
                ds.dec = FrameDecoder::resyncing();
                ws.tracker.set_response_lost();
            }
            Stage::Skip => {}
        }
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

#[cfg(test)]
mod size_tests {
    /// A flow that is not WebSocket (a SYN flood) must stay small: the
    /// README's memory bound per flow rests on it.
    #[test]
    fn non_websocket_flow_state_is_small() {
        use std::mem::size_of;
        let flow = size_of::<crate::reassembly::Flow<super::Session>>();
        assert!(flow <= 400, "Flow<Session> is {flow} bytes");
        assert!(size_of::<super::Session>() <= 160);
    }

    /// The inline state a WebSocket connection adds (its decoders and
    /// tracker): the README's per-connection figure rests on it.
    #[test]
    fn websocket_state_is_bounded() {
        use std::mem::size_of;
        let ws = size_of::<super::Ws>();
        eprintln!(
            "Ws {ws} B (Tracker {} B, FrameDecoder {} B), report {} B",
            size_of::<crate::close::Tracker>(),
            size_of::<crate::frame::FrameDecoder>(),
            size_of::<crate::close::ConnectionReport>()
        );
        assert!(ws <= 1024, "Ws is {ws} bytes");
    }
}
