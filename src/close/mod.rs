//! Close analysis: follows one connection's closing handshake (RFC 6455
//! 5.5.1 and 7) on capture time and decides its outcome and findings.
//!
//! [`tracker`] records facts per TCP direction while the connection runs;
//! which direction is the client is settled only at the end (rule 12 of the
//! contract needs every frame's masking for midstream connections), and then
//! [`verdict`] turns the facts into the contract's connection object.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantArray};

use crate::Ts;
use crate::frame::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};

mod tracker;
mod verdict;

pub use tracker::{ConnMeta, Tracker};

/// How the closing handshake ended (the contract's `close.outcome`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Hash,
    PartialOrd,
    Ord,
    IntoStaticStr,
    VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Clean,
    Unanswered,
    Timeout,
    Abnormal,
    Pending,
    Open,
    Rejected,
    /// TLS that could not be decrypted: the closing handshake cannot be
    /// seen (the contract's TLS section).
    Encrypted,
}

impl Outcome {
    pub const ALL: &'static [Outcome] = Outcome::VARIANTS;

    /// The contract's name (the same as in the JSON).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// Index into per-side pairs: client 0, server 1.
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// The contract's finding kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    ClosedBeforeAnswer,
    ForeignReset,
    UnansweredPing,
    InvalidUtf8Text,
    OrphanContinuation,
    InterleavedMessage,
    NonMinimalLength,
}

impl Kind {
    /// The kind's usual severity (`close_timeout` is an error when the
    /// answer never came at all).
    pub fn severity(self) -> Severity {
        use Kind::*;
        match self {
            CloseTimeout | ResetAfterClose | TcpNotClosed | ErrorCloseCode | HandshakeRejected
            | CaptureGap | ClosedBeforeAnswer | ForeignReset | UnansweredPing => Severity::Warning,
            ClientClosedTcpFirst | Midstream => Severity::Info,
            _ => Severity::Error,
        }
    }

    /// Protocol violations (RFC 6455 says the receiver fails the
    /// connection, often with 1002 or 1007).
    pub fn is_protocol_violation(self) -> bool {
        use Kind::*;
        matches!(
            self,
            InvalidClosePayload
                | InvalidUtf8Reason
                | ControlFrameTooLong
                | FragmentedControlFrame
                | DataAfterClose
                | UnmaskedClientFrame
                | MaskedServerFrame
                | ReservedBits
                | UnknownOpcode
                | MalformedFrame
                | InvalidUtf8Text
                | OrphanContinuation
                | InterleavedMessage
                | NonMinimalLength
                | ReservedCloseCode
                | InvalidCloseCode
        )
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub side: Option<Side>,
    pub ts: Option<f64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrameCounts {
    pub text: u64,
    pub binary: u64,
    pub continuation: u64,
    pub ping: u64,
    pub pong: u64,
    pub close: u64,
    pub payload_bytes: u64,
}

impl FrameCounts {
    fn count(&mut self, opcode: u8, payload_len: u64) {
        self.payload_bytes = self.payload_bytes.saturating_add(payload_len);
        match opcode {
            OP_TEXT => self.text += 1,
            OP_BINARY => self.binary += 1,
            OP_CONTINUATION => self.continuation += 1,
            OP_PING => self.ping += 1,
            OP_PONG => self.pong += 1,
            OP_CLOSE => self.close += 1,
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FramesBySide {
    pub client: FrameCounts,
    pub server: FrameCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloseFrame {
    pub ts: f64,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub reason_valid_utf8: bool,
    pub payload_len: u64,
}

/// How a TCP connection ended: its first FIN or RST, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TcpEndKind {
    Fin,
    Rst,
    None,
}

impl TcpEndKind {
    /// As people write it: "FIN", "RST", "none".
    pub fn upper(self) -> &'static str {
        match self {
            TcpEndKind::Fin => "FIN",
            TcpEndKind::Rst => "RST",
            TcpEndKind::None => "none",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TcpEnd {
    pub kind: TcpEndKind,
    pub by: Option<Side>,
    pub ts: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloseReport {
    pub outcome: Outcome,
    pub initiator: Option<Side>,
    pub client_frame: Option<CloseFrame>,
    pub server_frame: Option<CloseFrame>,
    pub handshake_s: Option<f64>,
    pub idle_s: Option<f64>,
    pub tcp_end: TcpEnd,
}

impl CloseReport {
    /// The first close frame of the connection (the initiator's).
    pub fn first_frame(&self) -> Option<&CloseFrame> {
        match self.initiator? {
            Side::Client => self.client_frame.as_ref(),
            Side::Server => self.server_frame.as_ref(),
        }
    }

    pub fn frame_of(&self, side: Side) -> Option<&CloseFrame> {
        match side {
            Side::Client => self.client_frame.as_ref(),
            Side::Server => self.server_frame.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// What the diagnoses need beyond the contract's fields: a few numbers per
/// connection, kept as the flow went (no history of frames).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Where the connection's age counts from: the upgrade response, else
    /// (midstream) the first packet.
    pub start_ts: f64,
    /// Largest complete message each side sent, in payload bytes (client,
    /// server).
    pub largest_message: [u64; 2],
    /// For each side's first close frame: the other side's largest message
    /// before it (client, server).
    pub largest_before_close: [Option<u64>; 2],
    /// Pings of one side that no pong answered: the side that did not
    /// answer, the first such ping's time, how many.
    pub unanswered_ping: Option<(Side, f64, u64)>,
    /// IP TTL (hop limit) each side used first (client, server).
    pub ttl: [Option<u8>; 2],
}

/// Close frames on the wire by code (`None`: no code), counted in a map so
/// a hostile stream of distinct codes costs a lookup per frame, not a scan.
pub type CloseCodes = std::collections::BTreeMap<Option<u16>, u64>;

/// What carried the WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Tcp,
    Tls,
}

/// When each side's close_notify alert was seen.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct CloseNotify {
    pub client: Option<f64>,
    pub server: Option<f64>,
}

/// The contract's `tls` object: what the handshake showed, and whether the
/// connection could be decrypted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TlsReport {
    /// `Cow`: names from a table when built, owned when read back from
    /// the spilled list of connections.
    pub version: Option<Cow<'static, str>>,
    pub cipher: Option<Cow<'static, str>>,
    pub sni: Option<String>,
    /// The protocols the ClientHello offers.
    pub alpn: Vec<String>,
    pub decrypted: bool,
    pub not_decrypted_reason: Option<Cow<'static, str>>,
    pub close_notify: CloseNotify,
}

/// One connection as the contract lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionReport {
    pub id: u64,
    pub client: String,
    pub server: String,
    pub first_ts: f64,
    pub last_ts: f64,
    /// Boxed, like `tls`: a decided connection waits in memory until the
    /// end of the run, and these two are most of its size.
    pub handshake: Option<Box<Handshake>>,
    pub frames: FramesBySide,
    pub close: CloseReport,
    pub findings: Vec<Finding>,
    pub transport: Transport,
    pub tls: Option<Box<TlsReport>>,
    /// Every close frame's code on the wire (`None`: no code) and how many,
    /// for totals; by code, compact (a map's node is 200 bytes).
    #[serde(skip)]
    pub close_codes: Box<[(Option<u16>, u64)]>,
    /// Order of the connection's first packet in the capture.
    #[serde(skip)]
    pub order: u64,
    #[serde(skip)]
    pub evidence: Evidence,
}

impl ConnectionReport {
    /// The address of one side: `ip:port` for the server, the bare IP for
    /// a client (its port changes with every connection).
    pub fn address_of(&self, side: Side) -> String {
        match side {
            Side::Server => self.server.clone(),
            Side::Client => host_of(&self.client).to_string(),
        }
    }
}

/// The host part of `ip:port` or `[v6]:port`.
pub fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

/// Analysis settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub close_timeout: Ts,
    /// Ports whose connections are TLS that may carry WebSocket, whatever
    /// their ClientHello offers (`--tls-port`).
    pub tls_ports: Vec<u16>,
    /// The key log TLS connections are decrypted with (`--keylog`, a
    /// pcapng's secrets blocks).
    pub keys: crate::tls::SharedKeys,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            close_timeout: Ts::from_secs(5),
            tls_ports: Vec::new(),
            keys: Default::default(),
        }
    }
}

/// Seconds for a message: "0.0004 s", "7.2 s".
pub fn fmt_secs(s: f64) -> String {
    let t = format!("{s:.6}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t} s")
}

/// Seconds for a message, rounded to what a person reads: "412 µs",
/// "12.4 ms", "3.2 s", "60.0 s".
pub fn fmt_short(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// An opcode's name for messages and timelines.
pub fn op_name(op: u8) -> String {
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

#[cfg(test)]
mod tests;
