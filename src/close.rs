//! Close analysis: follows one connection's closing handshake (RFC 6455
//! 5.5.1 and 7) on capture time and decides its outcome and findings.
//!
//! Facts are recorded per TCP direction while the connection runs; which
//! direction is the client is settled only at the end (rule 12 of the
//! contract needs every frame's masking for midstream connections), and then
//! facts become the contract's connection object.

use serde::Serialize;

use crate::Ts;
use crate::decode::Endpoint;
use crate::frame::{
    self, CodeClass, FrameHeader, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};
use crate::reassembly::Dir;
use crate::upgrade::{Request, Response, accept_for_key};

/// How the closing handshake ended (the contract's `close.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Clean,
    Unanswered,
    Timeout,
    Abnormal,
    Pending,
    Open,
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Clean,
        Outcome::Unanswered,
        Outcome::Timeout,
        Outcome::Abnormal,
        Outcome::Pending,
        Outcome::Open,
        Outcome::Rejected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Unanswered => "unanswered",
            Outcome::Timeout => "timeout",
            Outcome::Abnormal => "abnormal",
            Outcome::Pending => "pending",
            Outcome::Open => "open",
            Outcome::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// The contract's finding kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    AbnormalClosure,
    UnansweredClose,
    CloseTimeout,
    ResetAfterClose,
    TcpNotClosed,
    ClientClosedTcpFirst,
    ErrorCloseCode,
    ReservedCloseCode,
    InvalidCloseCode,
    InvalidClosePayload,
    InvalidUtf8Reason,
    ControlFrameTooLong,
    FragmentedControlFrame,
    DataAfterClose,
    UnmaskedClientFrame,
    MaskedServerFrame,
    ReservedBits,
    UnknownOpcode,
    MalformedFrame,
    InvalidAccept,
    HandshakeRejected,
    CaptureGap,
    Midstream,
}

impl Kind {
    pub fn severity(self) -> Severity {
        use Kind::*;
        match self {
            CloseTimeout | ResetAfterClose | TcpNotClosed | ErrorCloseCode | HandshakeRejected
            | CaptureGap => Severity::Warning,
            ClientClosedTcpFirst | Midstream => Severity::Info,
            _ => Severity::Error,
        }
    }

    pub fn name(self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{self:?}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub side: Option<Side>,
    pub ts: Option<f64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FrameCounts {
    pub text: u64,
    pub binary: u64,
    pub continuation: u64,
    pub ping: u64,
    pub pong: u64,
    pub close: u64,
    pub payload_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FramesBySide {
    pub client: FrameCounts,
    pub server: FrameCounts,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CloseFrame {
    pub ts: f64,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub reason_valid_utf8: bool,
    pub payload_len: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TcpEnd {
    pub kind: &'static str,
    pub by: Option<Side>,
    pub ts: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CloseReport {
    pub outcome: Outcome,
    pub initiator: Option<Side>,
    pub client_frame: Option<CloseFrame>,
    pub server_frame: Option<CloseFrame>,
    pub handshake_s: Option<f64>,
    pub idle_s: Option<f64>,
    pub tcp_end: TcpEnd,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Handshake {
    pub request_ts: Option<f64>,
    pub response_ts: Option<f64>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub status: Option<u16>,
    pub accept_valid: Option<bool>,
    pub subprotocol: Option<String>,
    pub extensions: Vec<String>,
}

/// One connection as the contract lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionReport {
    pub id: u64,
    pub client: String,
    pub server: String,
    pub first_ts: f64,
    pub last_ts: f64,
    pub handshake: Option<Handshake>,
    pub frames: FramesBySide,
    pub close: CloseReport,
    pub findings: Vec<Finding>,
    /// Every close frame's code on the wire (`None`: no code), for totals.
    #[serde(skip)]
    pub close_codes: Vec<(Option<u16>, u64)>,
    /// Order of the connection's first packet in the capture.
    #[serde(skip)]
    pub order: u64,
}

/// Analysis settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub close_timeout: Ts,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            close_timeout: Ts::from_secs(5),
        }
    }
}

/// First occurrence and count of something, with the first one's details.
#[derive(Debug, Clone)]
struct Seen {
    kind: Kind,
    dir: Option<Dir>,
    ts: Ts,
    count: u64,
    /// Bytes concerned in all (capture gaps: bytes missing).
    bytes: u64,
    detail: String,
}

#[derive(Debug, Clone)]
struct CloseSeen {
    ts: Ts,
    payload: frame::ClosePayload,
    payload_len: u64,
}

/// What one TCP direction did.
#[derive(Debug, Default)]
struct DirFacts {
    frames: FrameCounts,
    close: Option<CloseSeen>,
    masked: Option<(Ts, u64)>,
    unmasked: Option<(Ts, u64)>,
}

/// How the upgrade went, as far as it was seen.
#[derive(Debug, Default)]
struct Upgrade {
    request: Option<(Ts, Dir, Request)>,
    response: Option<(Ts, Dir, Response)>,
}

/// What every flow knows about itself, WebSocket or not (kept small: a
/// flood of non-WebSocket flows costs only this and the TCP state).
#[derive(Debug, Clone, Copy)]
pub struct ConnMeta {
    pub lo: Endpoint,
    pub hi: Endpoint,
    /// Order of the connection's first packet in the capture.
    pub order: u64,
    pub first_ts: Ts,
    pub last_ts: Ts,
    /// A SYN without ACK was seen from each direction.
    pub syn: [bool; 2],
}

impl ConnMeta {
    pub fn new(lo: Endpoint, hi: Endpoint, order: u64, ts: Ts) -> Self {
        ConnMeta {
            lo,
            hi,
            order,
            first_ts: ts,
            last_ts: ts,
            syn: [false; 2],
        }
    }

    /// Any packet of the connection. `syn` is a SYN without ACK.
    pub fn packet(&mut self, dir: Dir, ts: Ts, syn: bool) {
        self.last_ts = self.last_ts.max(ts);
        if syn {
            self.syn[dir.idx()] = true;
        }
    }

    /// Whether the connection's start (a SYN) was seen.
    pub fn saw_syn(&self) -> bool {
        self.syn.iter().any(|s| *s)
    }

    fn src(&self, d: Dir) -> Endpoint {
        match d {
            Dir::A => self.lo,
            Dir::B => self.hi,
        }
    }
}

/// Everything recorded about one WebSocket connection while the capture runs.
#[derive(Debug, Default)]
pub struct Tracker {
    dirs: [DirFacts; 2],
    upgrade: Upgrade,
    midstream: bool,
    /// Time of the last frame before the first close frame.
    last_frame: Option<Ts>,
    first_close: Option<(Dir, Ts)>,
    /// First FIN or RST: kind ("fin"/"rst"), sender, time.
    tcp_end: Option<(&'static str, Dir, Ts)>,
    seen: Vec<Seen>,
    close_codes: Vec<(Option<u16>, u64)>,
    /// Extension rules for RSV bits: (RSV1 allowed, anything allowed).
    rsv_rules: (bool, bool),
    /// The response head was cut by a capture gap.
    response_lost: bool,
}

impl Tracker {
    pub fn request(&mut self, dir: Dir, ts: Ts, r: Request) {
        if self.upgrade.request.is_none() {
            self.upgrade.request = Some((ts, dir, r));
        }
    }

    pub fn response(&mut self, dir: Dir, ts: Ts, r: Response) {
        if self.upgrade.response.is_none() {
            self.rsv_rules = (r.allows_rsv1(), r.has_unknown_extension());
            self.upgrade.response = Some((ts, dir, r));
        }
    }

    /// The upgrade response was lost in a capture gap.
    pub fn set_response_lost(&mut self) {
        self.response_lost = true;
    }

    /// The connection was picked up without its handshake.
    pub fn set_midstream(&mut self) {
        self.midstream = true;
        // The negotiation was not seen: RSV1 may be permessage-deflate.
        self.rsv_rules = (true, false);
    }

    /// Records one occurrence: the first keeps its time and details, the
    /// others are counted (one finding per kind and side, rule 6).
    fn note(
        &mut self,
        kind: Kind,
        dir: Option<Dir>,
        ts: Ts,
        detail: impl FnOnce() -> String,
    ) -> &mut Seen {
        let at = self
            .seen
            .iter()
            .position(|s| s.kind == kind && s.dir == dir);
        match at {
            Some(i) => {
                let s = &mut self.seen[i];
                s.count += 1;
                s
            }
            None => {
                self.seen.push(Seen {
                    kind,
                    dir,
                    ts,
                    count: 1,
                    bytes: 0,
                    detail: detail(),
                });
                let last = self.seen.len() - 1;
                &mut self.seen[last]
            }
        }
    }

    /// A complete frame from `dir`, its last byte at `ts`.
    pub fn frame(&mut self, dir: Dir, ts: Ts, h: &FrameHeader, close_payload: &[u8]) {
        let d = dir.idx();
        let f = &mut self.dirs[d].frames;
        f.payload_bytes = f.payload_bytes.saturating_add(h.payload_len);
        match h.opcode {
            OP_TEXT => f.text += 1,
            OP_BINARY => f.binary += 1,
            OP_CONTINUATION => f.continuation += 1,
            OP_PING => f.ping += 1,
            OP_PONG => f.pong += 1,
            OP_CLOSE => f.close += 1,
            _ => {}
        }
        let m = if h.mask.is_some() {
            &mut self.dirs[d].masked
        } else {
            &mut self.dirs[d].unmasked
        };
        match m {
            Some((_, n)) => *n += 1,
            None => *m = Some((ts, 1)),
        }

        let op = h.opcode;
        if !h.known_opcode() {
            self.note(Kind::UnknownOpcode, Some(dir), ts, || {
                format!("opcode 0x{op:X}")
            });
        }
        if h.is_control() && h.known_opcode() {
            if h.payload_len > frame::MAX_CONTROL_PAYLOAD as u64 {
                let len = h.payload_len;
                self.note(Kind::ControlFrameTooLong, Some(dir), ts, || {
                    format!("{} frame with a {len}-byte payload", op_name(op))
                });
            }
            if !h.fin {
                self.note(Kind::FragmentedControlFrame, Some(dir), ts, || {
                    format!("{} frame with FIN clear", op_name(op))
                });
            }
        }
        if h.rsv != 0 {
            let (rsv1_ok, any_ok) = self.rsv_rules;
            let allowed = h.is_data() && (any_ok || (rsv1_ok && h.rsv == 0b100));
            if !allowed {
                let rsv = h.rsv;
                self.note(Kind::ReservedBits, Some(dir), ts, || {
                    format!("{} frame with {}", op_name(op), rsv_names(rsv))
                });
            }
        }
        if h.is_data() && self.dirs[d].close.is_some() {
            self.note(Kind::DataAfterClose, Some(dir), ts, || {
                format!("{} frame after its sender's close frame", op_name(op))
            });
        }
        if op == OP_CLOSE {
            self.close_frame(dir, ts, h, close_payload);
        } else if self.first_close.is_none() {
            self.last_frame = Some(ts);
        }
    }

    fn close_frame(&mut self, dir: Dir, ts: Ts, h: &FrameHeader, payload: &[u8]) {
        let p = frame::parse_close_payload(payload);
        match self.close_codes.iter_mut().find(|(c, _)| *c == p.code) {
            Some((_, n)) => *n += 1,
            None => self.close_codes.push((p.code, 1)),
        }
        if p.one_byte {
            self.note(Kind::InvalidClosePayload, Some(dir), ts, || {
                "close frame with a 1-byte payload (a code takes 2)".to_string()
            });
        }
        if let Some(code) = p.code {
            let kind = match frame::classify_code(code) {
                CodeClass::Normal => None,
                CodeClass::Error => Some(Kind::ErrorCloseCode),
                CodeClass::Reserved => Some(Kind::ReservedCloseCode),
                CodeClass::Invalid => Some(Kind::InvalidCloseCode),
            };
            if let Some(kind) = kind {
                self.note(kind, Some(dir), ts, || {
                    format!("close frame with code {code}{}", code_meaning(code))
                });
            }
        }
        if !p.reason_valid_utf8 {
            self.note(Kind::InvalidUtf8Reason, Some(dir), ts, || {
                "close reason that is not valid UTF-8".to_string()
            });
        }
        let facts = &mut self.dirs[dir.idx()];
        if facts.close.is_none() {
            facts.close = Some(CloseSeen {
                ts,
                payload: p,
                payload_len: h.payload_len,
            });
        }
        if self.first_close.is_none() {
            self.first_close = Some((dir, ts));
        }
    }

    /// Bytes that cannot be a frame: the direction is no longer decoded.
    pub fn malformed(&mut self, dir: Dir, ts: Ts, what: &str) {
        self.note(Kind::MalformedFrame, Some(dir), ts, || what.to_string());
    }

    /// `len` bytes of `dir` missing from the capture.
    pub fn gap(&mut self, dir: Dir, ts: Ts, len: u64) {
        let s = self.note(Kind::CaptureGap, Some(dir), ts, String::new);
        s.bytes = s.bytes.saturating_add(len);
    }

    pub fn fin(&mut self, dir: Dir, ts: Ts) {
        if self.tcp_end.is_none() {
            self.tcp_end = Some(("fin", dir, ts));
        }
    }

    pub fn rst(&mut self, dir: Dir, ts: Ts) {
        if self.tcp_end.is_none() {
            self.tcp_end = Some(("rst", dir, ts));
        }
        if self.first_close.is_some() {
            self.note(Kind::ResetAfterClose, Some(dir), ts, String::new);
        }
    }

    /// Which direction is the client (contract: SYN sender, else request
    /// sender, else the side with masked frames, else the higher port).
    fn client_dir(&self, meta: &ConnMeta) -> Dir {
        if let Some(d) = [Dir::A, Dir::B].into_iter().find(|d| meta.syn[d.idx()]) {
            return d;
        }
        if let Some((_, d, _)) = &self.upgrade.request {
            return *d;
        }
        if let Some((_, d, _)) = &self.upgrade.response {
            return d.other();
        }
        let masked = |d: Dir| self.dirs[d.idx()].masked.is_some();
        match (masked(Dir::A), masked(Dir::B)) {
            (true, false) => Dir::A,
            (false, true) => Dir::B,
            _ => {
                if meta.lo.port >= meta.hi.port {
                    Dir::A
                } else {
                    Dir::B
                }
            }
        }
    }

    /// Whether the connection is one the report lists (rule 7).
    pub fn is_websocket(&self) -> bool {
        self.midstream
            || self
                .upgrade
                .request
                .as_ref()
                .is_some_and(|(_, _, r)| r.upgrade_websocket)
    }

    /// Decides the outcome and findings. `end` is the capture's end (or, for
    /// a connection whose TCP ended, any time after it: nothing can change).
    /// The deadline of the first close frame, when one was sent and neither
    /// an answer nor the TCP end has come (what a live capture waits on).
    pub fn open_close_deadline(&self, timeout: Ts) -> Option<Ts> {
        let (d, c1) = self.first_close?;
        let answered = self.dirs[d.other().idx()].close.is_some();
        (!answered && self.tcp_end.is_none()).then(|| c1.saturating_add(timeout))
    }

    /// The connection's report as of `end`: the outcome and findings the
    /// capture gives if it ends then. `None` for a connection that is not
    /// WebSocket.
    pub fn report(
        &self,
        meta: &ConnMeta,
        end: Ts,
        settings: &Settings,
    ) -> Option<ConnectionReport> {
        if !self.is_websocket() {
            return None;
        }
        let timeout = settings.close_timeout;
        let cd = self.client_dir(meta);
        let side = |d: Dir| if d == cd { Side::Client } else { Side::Server };
        let mut findings: Vec<Finding> = Vec::new();
        let mut add = |kind: Kind, side: Option<Side>, ts: Option<Ts>, message: String| {
            findings.push(Finding {
                kind,
                severity: kind.severity(),
                side,
                ts: ts.map(Ts::as_secs_f64),
                message,
            });
        };
        let secs = |t: Ts| t.as_secs_f64();
        let tcp_end_desc = |(kind, d, _): (&str, Dir, Ts)| {
            format!("{} from the {}", kind.to_uppercase(), side(d).name())
        };

        // The handshake.
        let resp_status = self.upgrade.response.as_ref().map(|(_, _, r)| r.status);
        // A response lost to a capture gap, with frames after it: the
        // upgrade evidently went through.
        let frames_seen = self
            .dirs
            .iter()
            .any(|d| d.masked.is_some() || d.unmasked.is_some());
        let upgraded = resp_status == Some(101)
            || (self.midstream && resp_status.is_none())
            || (self.response_lost && resp_status.is_none() && frames_seen);
        // With no request seen the capture started after the upgrade began:
        // midstream, and no handshake to report (a 101 seen alone still
        // sets the RSV rules).
        let handshake = if self.upgrade.request.is_none() {
            None
        } else {
            let req = self.upgrade.request.as_ref();
            let resp = self.upgrade.response.as_ref();
            let want = req
                .and_then(|(_, _, r)| r.key.as_deref())
                .map(accept_for_key);
            let got = resp.and_then(|(_, _, r)| r.accept.as_deref());
            let accept_valid = match (&want, got) {
                (Some(w), Some(g)) => Some(w == g.trim()),
                _ => None,
            };
            if let (Some(false), Some((ts, _, r)), Some(got), Some(want)) =
                (accept_valid, resp, got, &want)
                && r.status == 101
            {
                add(
                    Kind::InvalidAccept,
                    Some(Side::Server),
                    Some(*ts),
                    format!("Sec-WebSocket-Accept is {got:?} but the key requires {want:?}"),
                );
            }
            Some(Handshake {
                request_ts: req.map(|(t, _, _)| secs(*t)),
                response_ts: resp.map(|(t, _, _)| secs(*t)),
                path: req.map(|(_, _, r)| r.path.clone()),
                host: req.and_then(|(_, _, r)| r.host.clone()),
                status: resp.map(|(_, _, r)| r.status),
                accept_valid,
                subprotocol: resp.and_then(|(_, _, r)| r.protocol.clone()),
                extensions: resp
                    .map(|(_, _, r)| r.extensions.clone())
                    .unwrap_or_default(),
            })
        };
        if self.midstream {
            add(
                Kind::Midstream,
                None,
                Some(meta.first_ts),
                "the capture starts after the upgrade handshake: no handshake to check".into(),
            );
        }

        let client_close = self.dirs[cd.idx()].close.as_ref();
        let server_close = self.dirs[cd.other().idx()].close.as_ref();
        let tcp_end = self.tcp_end;
        // Rule 11: idle time up to the first close frame, else the TCP end;
        // measured from the last frame before it, else the upgrade response,
        // else (midstream) the first packet.
        let idle_from = self
            .last_frame
            .or(self.upgrade.response.as_ref().map(|(t, _, _)| *t))
            .or(self.upgrade.request.as_ref().map(|(t, _, _)| *t))
            .unwrap_or(meta.first_ts);
        let idle_to = self.first_close.map(|(_, t)| t).or(tcp_end.map(|e| e.2));
        let idle_s = idle_to.map(|t| t.secs_since(idle_from));
        let handshake_s = self.first_close.and_then(|(d, c1)| {
            self.dirs[d.other().idx()]
                .close
                .as_ref()
                .map(|c| c.ts.secs_since(c1))
        });

        let outcome = if !upgraded {
            match (&self.upgrade.response, tcp_end) {
                (Some((ts, _, r)), _) => {
                    add(
                        Kind::HandshakeRejected,
                        Some(Side::Server),
                        Some(*ts),
                        format!("the server answered the upgrade with HTTP {}", r.status),
                    );
                    Outcome::Rejected
                }
                (None, Some(e)) => {
                    add(
                        Kind::HandshakeRejected,
                        Some(Side::Server),
                        Some(e.2),
                        format!(
                            "no response came to the upgrade request before the TCP connection ended ({})",
                            tcp_end_desc(e)
                        ),
                    );
                    Outcome::Rejected
                }
                (None, None) => Outcome::Open,
            }
        } else {
            match self.first_close {
                None => {
                    if let Some(e) = tcp_end {
                        let idle = e.2.secs_since(idle_from);
                        add(
                            Kind::AbnormalClosure,
                            Some(side(e.1)),
                            Some(e.2),
                            format!(
                                "the TCP connection ended ({}) without a close frame from either side, {} after the last activity (browsers report 1006)",
                                tcp_end_desc(e),
                                fmt_secs(idle)
                            ),
                        );
                        Outcome::Abnormal
                    } else {
                        Outcome::Open
                    }
                }
                Some((d, c1)) => {
                    let deadline = c1.saturating_add(timeout);
                    let answer = self.dirs[d.other().idx()].close.as_ref().map(|c| c.ts);
                    let silent = side(d.other());
                    if answer.is_some_and(|a| a <= deadline) {
                        Outcome::Clean
                    } else if let Some(e) = tcp_end.filter(|e| e.2 < deadline) {
                        add(
                            Kind::UnansweredClose,
                            Some(silent),
                            Some(e.2),
                            format!(
                                "the {} sent a close frame but the {} never answered it; the TCP connection ended ({}) {} later",
                                side(d).name(),
                                silent.name(),
                                tcp_end_desc(e),
                                fmt_secs(e.2.secs_since(c1))
                            ),
                        );
                        Outcome::Unanswered
                    } else if end >= deadline {
                        let msg = match answer {
                            Some(a) => format!(
                                "the {} answered the {}'s close frame after {}, later than the close timeout of {}",
                                silent.name(),
                                side(d).name(),
                                fmt_secs(a.secs_since(c1)),
                                fmt_secs(timeout.as_secs_f64())
                            ),
                            None => format!(
                                "the {} did not answer the {}'s close frame within the close timeout of {}",
                                silent.name(),
                                side(d).name(),
                                fmt_secs(timeout.as_secs_f64())
                            ),
                        };
                        add(Kind::CloseTimeout, Some(silent), Some(deadline), msg);
                        Outcome::Timeout
                    } else {
                        Outcome::Pending
                    }
                }
            }
        };

        // After both close frames: how TCP went down.
        if let (Some(cc), Some(sc)) = (client_close, server_close) {
            let later = cc.ts.max(sc.ts);
            let limit = later.saturating_add(timeout);
            let ended_in_time = tcp_end.is_some_and(|e| e.2 <= limit);
            if !ended_in_time && end >= limit {
                add(
                    Kind::TcpNotClosed,
                    Some(Side::Server),
                    Some(limit),
                    format!(
                        "both close frames were exchanged but no FIN or RST came within {} of the last one",
                        fmt_secs(timeout.as_secs_f64())
                    ),
                );
            }
            if let Some(e) = tcp_end.filter(|e| side(e.1) == Side::Client && e.2 >= later) {
                add(
                    Kind::ClientClosedTcpFirst,
                    Some(Side::Client),
                    Some(e.2),
                    format!(
                        "after the close handshake the client ended TCP first ({}, {} after the last close frame); RFC 6455 7.1.1 says the server should",
                        e.0.to_uppercase(),
                        fmt_secs(e.2.secs_since(later))
                    ),
                );
            }
        }

        // Masking (RFC 6455 5.1), judged now that the client is known.
        if let Some((ts, n)) = self.dirs[cd.idx()].unmasked {
            add(
                Kind::UnmaskedClientFrame,
                Some(Side::Client),
                Some(ts),
                counted(
                    n,
                    "unmasked frame from the client",
                    "unmasked frames from the client",
                    ts,
                ),
            );
        }
        if let Some((ts, n)) = self.dirs[cd.other().idx()].masked {
            add(
                Kind::MaskedServerFrame,
                Some(Side::Server),
                Some(ts),
                counted(
                    n,
                    "masked frame from the server",
                    "masked frames from the server",
                    ts,
                ),
            );
        }

        // Per-frame and per-direction findings.
        for s in &self.seen {
            let sd = s.dir.map(side);
            let who = sd.map(Side::name).unwrap_or("connection");
            let msg = match s.kind {
                Kind::CaptureGap => format!(
                    "{} byte(s) sent by the {} are missing from the capture ({} gap(s), first at {:.6}); the analysis after it may be incomplete",
                    s.bytes,
                    who,
                    s.count,
                    secs(s.ts)
                ),
                Kind::ResetAfterClose => format!(
                    "the {} reset the TCP connection (RST) after the closing handshake began{}",
                    who,
                    if s.count > 1 {
                        format!(" ({} RSTs)", s.count)
                    } else {
                        String::new()
                    }
                ),
                Kind::MalformedFrame => format!(
                    "bytes from the {} cannot be a frame ({}); that direction is no longer decoded",
                    who, s.detail
                ),
                _ => {
                    if s.count > 1 {
                        format!(
                            "{} frames from the {} broke this rule, the first at {:.6}: {}",
                            s.count,
                            who,
                            secs(s.ts),
                            s.detail
                        )
                    } else {
                        format!("{} from the {}", capitalise(&s.detail), who)
                    }
                }
            };
            add(s.kind, sd, Some(s.ts), msg);
        }

        findings.sort_by(|a, b| {
            let ta = a.ts.unwrap_or(f64::MAX);
            let tb = b.ts.unwrap_or(f64::MAX);
            ta.total_cmp(&tb).then(a.kind.cmp(&b.kind))
        });

        let close_frame = |c: Option<&CloseSeen>| {
            c.map(|c| CloseFrame {
                ts: secs(c.ts),
                code: c.payload.code,
                reason: c.payload.reason.clone(),
                reason_valid_utf8: c.payload.reason_valid_utf8,
                payload_len: c.payload_len,
            })
        };
        let close = CloseReport {
            outcome,
            initiator: self.first_close.map(|(d, _)| side(d)),
            client_frame: close_frame(client_close),
            server_frame: close_frame(server_close),
            handshake_s,
            idle_s: if outcome == Outcome::Rejected {
                None
            } else {
                idle_s
            },
            tcp_end: match tcp_end {
                Some((kind, d, ts)) => TcpEnd {
                    kind,
                    by: Some(side(d)),
                    ts: Some(secs(ts)),
                },
                None => TcpEnd {
                    kind: "none",
                    by: None,
                    ts: None,
                },
            },
        };
        Some(ConnectionReport {
            id: 0,
            client: meta.src(cd).to_string(),
            server: meta.src(cd.other()).to_string(),
            first_ts: secs(meta.first_ts),
            last_ts: secs(meta.last_ts),
            handshake,
            frames: FramesBySide {
                client: self.dirs[cd.idx()].frames,
                server: self.dirs[cd.other().idx()].frames,
            },
            close,
            findings,
            close_codes: self.close_codes.clone(),
            order: meta.order,
        })
    }
}

fn counted(n: u64, one: &str, many: &str, ts: Ts) -> String {
    if n == 1 {
        format!("1 {one}, at {:.6}", ts.as_secs_f64())
    } else {
        format!("{n} {many}, first at {:.6}", ts.as_secs_f64())
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Seconds for a message: "0.0004 s", "7.2 s".
pub fn fmt_secs(s: f64) -> String {
    let t = format!("{s:.6}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t} s")
}

fn op_name(op: u8) -> String {
    match op {
        OP_CONTINUATION => "continuation".into(),
        OP_TEXT => "text".into(),
        OP_BINARY => "binary".into(),
        OP_CLOSE => "close".into(),
        OP_PING => "ping".into(),
        OP_PONG => "pong".into(),
        n => format!("opcode 0x{n:X}"),
    }
}

fn rsv_names(rsv: u8) -> String {
    let names: Vec<&str> = [(0b100, "RSV1"), (0b010, "RSV2"), (0b001, "RSV3")]
        .into_iter()
        .filter(|(b, _)| rsv & b != 0)
        .map(|(_, n)| n)
        .collect();
    format!("{} set", names.join("+"))
}

/// A close code's registered meaning, for messages.
pub fn code_meaning(code: u16) -> &'static str {
    match code {
        1000 => " (normal closure)",
        1001 => " (going away)",
        1002 => " (protocol error)",
        1003 => " (unsupported data)",
        1005 => " (no status received: never sent on the wire)",
        1006 => " (abnormal closure: never sent on the wire)",
        1007 => " (invalid frame payload data)",
        1008 => " (policy violation)",
        1009 => " (message too big)",
        1010 => " (mandatory extension)",
        1011 => " (internal error)",
        1012 => " (service restart)",
        1013 => " (try again later)",
        1014 => " (bad gateway)",
        1015 => " (TLS handshake failure: never sent on the wire)",
        _ => "",
    }
}
