//! The analyzer: TCP segments in, connection reports out, no I/O.
//!
//! Each flow gets a [`Session`] that routes its reassembled bytes: first
//! through the HTTP upgrade parser, then through a frame decoder per
//! direction, into the close [`Tracker`]. A file reader, a live capture or a
//! test feeds [`Analyzer::packet`] in capture order and calls
//! [`Analyzer::finish`] at the end.

use crate::Ts;
use crate::close::{ConnectionReport, Settings, Tracker};
use crate::decode::TcpSegment;
use crate::frame::{self, FrameDecoder, FrameEvent};
use crate::reassembly::{Dir, FlowKey, FlowTable, Limits, ReassemblyStats, StreamSink};
use crate::upgrade::{self, MAX_HEAD_LEN};

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
    /// A head split across segments (only while `stage == Head`).
    head: Vec<u8>,
    dec: FrameDecoder,
}

impl Default for DirState {
    fn default() -> Self {
        DirState {
            stage: Stage::Head,
            head: Vec::new(),
            dec: FrameDecoder::new(),
        }
    }
}

/// One connection's decoding state.
#[derive(Debug)]
pub struct Session {
    mode: Mode,
    tries: u8,
    dirs: [DirState; 2],
    pub tracker: Tracker,
}

impl Session {
    pub fn new(key: &FlowKey, order: u64, ts: Ts) -> Self {
        Session {
            mode: Mode::Detecting,
            tries: 0,
            dirs: Default::default(),
            tracker: Tracker::new(key.lo, key.hi, order, ts),
        }
    }

    fn start_frames(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        self.dirs[dir.idx()].stage = Stage::Frames;
        self.frames(dir, ts, data);
    }

    fn frames(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let Session { dirs, tracker, .. } = self;
        let ds = &mut dirs[dir.idx()];
        if ds.stage != Stage::Frames || data.is_empty() {
            return;
        }
        ds.dec.feed(data, &mut |e| match e {
            FrameEvent::Frame {
                header,
                close_payload,
            } => tracker.frame(dir, ts, header, close_payload),
            FrameEvent::Malformed(frame::HeaderError::LengthTopBit) => {
                tracker.malformed(dir, ts, "a 64-bit payload length with its top bit set")
            }
        });
    }

    /// Bytes in `dir` while the connection is still unclassified.
    fn detect(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let buffered = !self.dirs[dir.idx()].head.is_empty();
        if buffered || upgrade::looks_like_request(data) || upgrade::looks_like_response(data) {
            self.head(dir, ts, data);
            return;
        }
        if self.tracker.saw_syn() {
            // The connection's start was seen and it is not an upgrade.
            self.mode = Mode::Ignored;
            return;
        }
        if plausible_frames(data) {
            self.mode = Mode::WebSocket;
            self.tracker.set_midstream();
            for d in &mut self.dirs {
                d.stage = Stage::Frames;
                d.dec = FrameDecoder::resyncing();
            }
            self.frames(dir, ts, data);
        } else {
            self.tries += 1;
            if self.tries >= MIDSTREAM_TRIES {
                self.mode = Mode::Ignored;
            }
        }
    }

    /// Bytes in `dir` while an HTTP head is expected there.
    fn head(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let ds = &mut self.dirs[dir.idx()];
        let prev = ds.head.len();
        let is_response = if prev > 0 {
            upgrade::looks_like_response(&ds.head)
        } else {
            upgrade::looks_like_response(data)
        };
        // Parse in place when the head is whole in this segment.
        let input: &[u8] = if prev == 0 {
            data
        } else {
            let room = MAX_HEAD_LEN.saturating_sub(prev);
            ds.head.extend_from_slice(&data[..data.len().min(room)]);
            &ds.head
        };
        let parsed = if is_response {
            upgrade::parse_response(input).map(|(rest, r)| (input.len() - rest.len(), Err(r)))
        } else {
            upgrade::parse_request(input).map(|(rest, r)| (input.len() - rest.len(), Ok(r)))
        };
        match parsed {
            Err(nom::Err::Incomplete(_)) => {
                if prev == 0 {
                    ds.head.extend_from_slice(data);
                }
            }
            Err(_) => {
                ds.head = Vec::new();
                if self.mode == Mode::Detecting {
                    self.mode = Mode::Ignored;
                } else {
                    ds.stage = Stage::Skip;
                }
            }
            Ok((used, head)) => {
                ds.head = Vec::new();
                // Bytes of this segment after the head.
                let rest = &data[used.saturating_sub(prev).min(data.len())..];
                match head {
                    Ok(req) => {
                        if !req.upgrade_websocket {
                            self.mode = Mode::Ignored;
                            return;
                        }
                        self.mode = Mode::WebSocket;
                        self.tracker.request(dir, ts, req);
                        self.start_frames(dir, ts, rest);
                    }
                    Err(resp) => {
                        let status = resp.status;
                        if self.mode == Mode::Detecting {
                            // A response with no request: picked up midstream.
                            if status != 101 {
                                self.mode = Mode::Ignored;
                                return;
                            }
                            self.mode = Mode::WebSocket;
                            self.tracker.set_midstream();
                            let other = &mut self.dirs[dir.other().idx()];
                            other.stage = Stage::Frames;
                            other.dec = FrameDecoder::resyncing();
                        }
                        self.tracker.response(dir, ts, resp);
                        if status == 101 {
                            self.start_frames(dir, ts, rest);
                        } else {
                            // A rejection: what follows is a body, not frames.
                            for d in &mut self.dirs {
                                d.stage = Stage::Skip;
                            }
                        }
                    }
                }
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
    fn on_packet(&mut self, dir: Dir, ts: Ts, seg: &TcpSegment<'_>) {
        self.tracker.packet(dir, ts, seg.syn && !seg.ack);
    }

    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        match self.mode {
            Mode::Ignored => {}
            Mode::Detecting => self.detect(dir, ts, data),
            Mode::WebSocket => match self.dirs[dir.idx()].stage {
                Stage::Head => self.head(dir, ts, data),
                Stage::Frames => self.frames(dir, ts, data),
                Stage::Skip => {}
            },
        }
    }

    fn on_gap(&mut self, dir: Dir, ts: Ts, len: u64) {
        if self.mode == Mode::Ignored {
            return;
        }
        self.tracker.gap(dir, ts, len);
        let ds = &mut self.dirs[dir.idx()];
        match ds.stage {
            Stage::Frames => {
                ds.dec.gap(len);
            }
            Stage::Head => {
                // The head is lost: look for frames after it.
                ds.head = Vec::new();
                if self.mode == Mode::WebSocket {
                    ds.stage = Stage::Frames;
                    ds.dec = FrameDecoder::resyncing();
                }
            }
            Stage::Skip => {}
        }
    }

    fn on_fin(&mut self, dir: Dir, ts: Ts) {
        self.tracker.fin(dir, ts);
    }

    fn on_rst(&mut self, dir: Dir, ts: Ts) {
        self.tracker.rst(dir, ts);
    }

    fn wants_data(&self) -> bool {
        self.mode != Mode::Ignored
    }
}

/// Counters of the analysis, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyzerStats {
    pub tcp_segments: u64,
    pub reassembly: ReassemblyStats,
}

/// The I/O-free analyzer: feed it TCP segments in capture order.
pub struct Analyzer {
    table: FlowTable<Session>,
    settings: Settings,
    reports: Vec<ConnectionReport>,
    next_order: u64,
    /// Latest capture time seen.
    now: Option<Ts>,
    tcp_segments: u64,
}

impl Analyzer {
    pub fn new(settings: Settings, limits: Limits) -> Self {
        Analyzer {
            table: FlowTable::new(limits),
            settings,
            reports: Vec::new(),
            next_order: 0,
            now: None,
            tcp_segments: 0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One TCP segment, captured at `ts`.
    pub fn packet(&mut self, ts: Ts, seg: &TcpSegment<'_>) {
        self.tcp_segments += 1;
        self.note_time(ts);
        let Analyzer {
            table,
            settings,
            reports,
            next_order,
            ..
        } = self;
        table.process(
            ts,
            seg,
            &mut |key, _, ts| {
                *next_order += 1;
                Session::new(key, *next_order, ts)
            },
            &mut |s: Session| {
                // The TCP connection is over: nothing can change its verdict.
                if let Some(r) = s.tracker.finish(ts, settings) {
                    reports.push(r);
                }
            },
        );
    }

    /// Any packet of the capture, TCP or not, moves the capture's clock.
    pub fn note_time(&mut self, ts: Ts) {
        self.now = Some(self.now.map_or(ts, |n| n.max(ts)));
    }

    /// Ends the capture: decides every connection still open and returns
    /// all listed connections, numbered in order of their first packet.
    pub fn finish(self) -> (Vec<ConnectionReport>, AnalyzerStats) {
        let Analyzer {
            table,
            settings,
            mut reports,
            now,
            tcp_segments,
            ..
        } = self;
        let end = now.unwrap_or_default();
        let stats = AnalyzerStats {
            tcp_segments,
            reassembly: table.stats,
        };
        table.finish(end, &mut |s: Session| {
            if let Some(r) = s.tracker.finish(end, &settings) {
                reports.push(r);
            }
        });
        reports.sort_by_key(|r| r.order);
        for (i, r) in reports.iter_mut().enumerate() {
            r.id = i as u64 + 1;
        }
        (reports, stats)
    }
}
