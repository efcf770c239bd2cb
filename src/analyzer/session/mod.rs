//! One flow's decoding state: what routes its reassembled bytes through the
//! HTTP upgrade parser, then a frame decoder per direction, into the close
//! tracker. Small until the flow turns out to be a WebSocket connection.

use std::mem::{offset_of, size_of};

use super::tls_layer::TlsLayer;

use crate::close::{ConnMeta, ConnectionReport, Outcome, Settings, Side, Tracker, Transport};
use crate::frame::{self, FrameDecoder, FrameEvent};
use crate::reassembly::{Dir, FlowKey};
use crate::timeline::{Selection, Tracer};
use crate::tls::{self, Event, NotDecrypted, SharedKeys};
use crate::upgrade::{self, Head, MAX_HEAD_LEN, Request, Response};
use crate::{Ts, prefetch};

mod sink;

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

/// The state only a WebSocket connection needs, made when one is
/// recognised (or a TLS connection that may carry one).
///
/// Laid out in order (`repr(C)`): `tls` is looked at for every packet, so
/// it shares the first cache line with the decoders; the tracker's fields
/// that frames touch come first in it.
#[derive(Debug, Default)]
#[repr(C)]
struct Ws {
    /// wss: the TLS layer the bytes go through first.
    tls: Option<Box<TlsLayer>>,
    dirs: [DirState; 2],
    tracker: Tracker,
}

impl Ws {
    /// Asks the cache for what a packet of `dir` touches of the `Ws` at
    /// `addr` (0: none): the TLS layer's pointer, the direction's decoder,
    /// the tracker's fields for frames.
    fn prefetch(addr: usize, dir: Dir) {
        if addr == 0 {
            return;
        }
        let dec = offset_of!(Ws, dirs) + dir.idx() * size_of::<DirState>();
        let tracker = addr + offset_of!(Ws, tracker);
        prefetch::range(addr, size_of::<usize>());
        prefetch::range(addr + dec, size_of::<DirState>());
        for (at, len) in Tracker::frame_fields(dir) {
            prefetch::range(tracker + at, len);
        }
    }
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
    /// A port of the flow was named with `--tls-port`.
    tls_port: bool,
    /// An HTTP request without an upgrade was seen (plain HTTP), for the
    /// explanation of a capture with no WebSocket connection.
    pub(super) plain_http: bool,
    /// Whether its TLS was decrypted, kept when the TLS state is dropped
    /// (decrypted traffic that is not WebSocket) for `analysis.tls`.
    tls_tally: Option<Result<(), NotDecrypted>>,
}

impl Session {
    pub fn new(
        key: &FlowKey,
        order: u64,
        ts: Ts,
        trace: Option<&Selection>,
        tls_port: bool,
    ) -> Self {
        Session {
            tls_port,
            plain_http: false,
            tls_tally: None,
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

    /// The connection's report as of `end` (`None` when not WebSocket,
    /// nor TLS that may carry it).
    pub fn report(&self, end: Ts, settings: &Settings) -> Option<ConnectionReport> {
        let ws = self.ws.as_ref()?;
        let tls = ws.tls.as_deref();
        let mut r = match (ws.tracker.report(&self.meta, end, settings), tls) {
            (Some(r), _) => r,
            // No WebSocket seen in it (undecrypted, or keys for the
            // handshake only): listed as encrypted when it may carry one.
            (None, Some(t)) if t.listed_encrypted(self.tls_port) => {
                let ended = ws.tracker.ended();
                let idle = t.idle_s(&self.meta, ended);
                ws.tracker
                    .encrypted_report(&self.meta, end, settings, t.client, idle)
            }
            (None, _) => return None,
        };
        if let Some(t) = tls {
            let client_side = if r.client == self.meta.src(t.client).to_string() {
                Side::Client
            } else {
                Side::Server
            };
            r.transport = Transport::Tls;
            let mut tls = t.report(client_side);
            if r.close.outcome == Outcome::Encrypted && tls.decrypted {
                // Keys opened the handshake but no application data: what
                // matters, the WebSocket inside, was not decrypted.
                tls.decrypted = false;
                tls.not_decrypted_reason = Some(NotDecrypted::NoKey.as_str().into());
            }
            r.tls = Some(Box::new(tls));
        }
        Some(r)
    }

    /// Whether the report lists this connection (an upgrade or midstream,
    /// or TLS that may carry one).
    pub fn is_listed(&self) -> bool {
        self.ws.as_ref().is_some_and(|w| {
            w.tracker.is_websocket()
                || w.tls
                    .as_ref()
                    .is_some_and(|t| t.listed_encrypted(self.tls_port))
        })
    }

    /// Whether a TLS connection still waits for the run's key log.
    pub fn wants_keys(&self) -> bool {
        self.ws
            .as_ref()
            .and_then(|w| w.tls.as_ref())
            .is_some_and(|t| t.keys.is_none())
    }

    pub fn attach_keys(&mut self, keys: &SharedKeys) {
        if let Some(t) = self.ws.as_mut().and_then(|w| w.tls.as_mut()) {
            t.keys = Some(keys.clone());
        }
    }

    /// TLS seen on this flow: decrypted, or why not.
    pub fn tls_tally(&self) -> Option<Result<(), NotDecrypted>> {
        let live = self.ws.as_ref().and_then(|w| w.tls.as_ref());
        live.map(|t| t.tally()).or(self.tls_tally)
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
        let Ws { dirs, tracker, .. } = ws;
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

    /// Plaintext bytes of `dir`: from TCP, or decrypted from TLS.
    fn plain_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
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

    /// Bytes of the plaintext stream are missing.
    fn plain_gap(&mut self, dir: Dir, ts: Ts, len: u64) {
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
            Stage::Head => self.head_lost(dir),
            Stage::Skip => {}
        }
    }

    /// The head expected in `dir` is lost (a gap, or given up under the
    /// memory cap): frames are looked for after it.
    fn head_lost(&mut self, dir: Dir) {
        let ws = self.ws();
        let ds = &mut ws.dirs[dir.idx()];
        if ds.stage == Stage::Head {
            ds.stage = Stage::Frames;
            ds.dec = FrameDecoder::resyncing();
            ws.tracker.set_response_lost();
        }
    }

    /// Whether TCP bytes of an unclassified flow start TLS: a ClientHello
    /// at the start of the client's stream, or anything on a `--tls-port`.
    /// (Decrypted bytes never come this way.)
    fn starts_tls(&self, dir: Dir, data: &[u8]) -> bool {
        let client_start = !self.meta.saw_syn() || self.meta.opened(dir);
        self.mode == Mode::Detecting
            && self.head[dir.idx()].is_empty()
            && ((client_start && tls::looks_like_client_hello(data)) || self.tls_port)
    }

    /// A ClientHello at the start of the client's stream (or any bytes on a
    /// `--tls-port`): the flow's bytes go through TLS from now on.
    fn start_tls(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let client = if self.meta.saw_syn() {
            [Dir::A, Dir::B]
                .into_iter()
                .find(|d| self.meta.opened(*d))
                .unwrap_or(dir)
        } else {
            dir
        };
        let mut layer = Box::new(TlsLayer::new(client));
        // The packet carrying the ClientHello is a record of the final
        // burst too (it was seen before the layer existed).
        layer.burst.packet(ts, true);
        self.tls_data(layer, dir, ts, data);
    }

    /// Bytes of `dir` through the TLS layer, taken out of the session while
    /// its plaintext flows back in.
    fn tls_data(&mut self, mut layer: Box<TlsLayer>, dir: Dir, ts: Ts, data: &[u8]) {
        let client = layer.client;
        let fed = layer.feed(dir, ts, data, &mut |ev| self.tls_event(client, ev));
        if fed.is_err() {
            if !layer.conn.facts().client_hello_seen() {
                // Not TLS after all (a `--tls-port` carrying plaintext):
                // the bytes take the plaintext path.
                self.plain_data(dir, ts, data);
                return;
            }
            // Garbage inside a TLS connection: that direction's records
            // can no longer be read, like after a gap; the rest stands.
            let td = layer.tls_dir(dir);
            layer.conn.gap(td);
            if let Some(ws) = self.ws.as_deref_mut() {
                ws.tracker.gap(dir, ts, 0);
            }
        }
        if self.mode == Mode::Ignored {
            // Decrypted, but not WebSocket: only the tally is kept.
            self.tls_tally = Some(layer.tally());
            return;
        }
        self.ws().tls = Some(layer);
    }

    fn tls_event(&mut self, client: Dir, ev: Event<'_>) {
        match ev {
            Event::Plaintext { dir, ts, data } => {
                self.plain_data(TlsLayer::dir_of(client, dir), ts, data);
            }
            Event::PlaintextLost { dir, ts } => {
                // Application data went by before its keys: like a gap of
                // unknown size in the plaintext.
                self.plain_gap(TlsLayer::dir_of(client, dir), ts, u64::MAX);
            }
            _ => {}
        }
    }

    fn ignore(&mut self) {
        self.tls_tally = self.tls_tally();
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
            self.plain_http = true;
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
        // Looked at for every packet: in the first line, by the decoders.
        assert_eq!(std::mem::offset_of!(super::Ws, tls), 0);
    }
}
