//! What one WebSocket connection did, recorded per TCP direction while the
//! capture runs: frames, close frames, pings, the TCP end, and the first
//! occurrence of each finding (rule 6: one per kind and side).

use std::mem::{offset_of, size_of};

use super::{FrameCounts, Kind, TcpEndKind, op_name, rsv_names};
use crate::Ts;
use crate::decode::Endpoint;
use crate::frame::{self, CodeClass, FrameHeader, OP_CLOSE, OP_PING, OP_PONG};
use crate::message::MsgNotes;
use crate::reassembly::Dir;
use crate::upgrade::{Request, Response, RsvRules};

/// First occurrence and count of something, with the first one's details.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub kind: Kind,
    pub dir: Option<Dir>,
    pub ts: Ts,
    pub count: u64,
    /// Bytes concerned in all (capture gaps: bytes missing).
    pub bytes: u64,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub(super) struct CloseSeen {
    pub ts: Ts,
    pub payload: frame::ClosePayload,
    pub payload_len: u64,
    /// The other direction's largest message before this close frame.
    pub other_largest: u64,
}

/// Pings of one direction still waiting for a pong from the other.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Pings {
    /// The first ping no pong has followed.
    pub first: Option<Ts>,
    pub count: u64,
}

/// What one TCP direction did. Laid out in order (`repr(C)`): what every
/// data frame updates first (its counts, the largest message, the masking
/// tally, whether a close was sent), then the pings; the close frame's
/// details are boxed, being made once at most.
#[derive(Debug, Default)]
#[repr(C)]
pub(super) struct DirFacts {
    pub frames: FrameCounts,
    pub largest_message: u64,
    pub masked: Option<(Ts, u64)>,
    pub unmasked: Option<(Ts, u64)>,
    pub close: Option<Box<CloseSeen>>,
    pub pings: Pings,
}

/// How the upgrade went, as far as it was seen.
#[derive(Debug, Default)]
pub(super) struct Upgrade {
    pub request: Option<(Ts, Dir, Request)>,
    pub response: Option<(Ts, Dir, Response)>,
}

/// The first FIN or RST of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct End {
    pub kind: TcpEndKind,
    pub by: Dir,
    pub ts: Ts,
}

/// Distinct TTLs kept per direction: enough for a path change or two;
/// beyond that the direction's TTL says nothing.
const TTLS: usize = 4;

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
    /// TTLs (hop limits) each direction's packets carried, 0 for none; a
    /// full set means "too many to judge".
    ttls: [[u8; TTLS]; 2],
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
            ttls: [[0; TTLS]; 2],
        }
    }

    /// Any packet of the connection. `syn` is a SYN without ACK. Returns,
    /// for a packet whose TTL no earlier packet of `dir` had, the TTLs seen
    /// before (`None` when it is a known one, or nothing is known).
    pub fn packet(&mut self, dir: Dir, ts: Ts, syn: bool, ttl: u8) -> Option<[u8; TTLS]> {
        self.last_ts = self.last_ts.max(ts);
        if syn {
            self.syn[dir.idx()] = true;
        }
        let set = &mut self.ttls[dir.idx()];
        if ttl == 0 || set.contains(&ttl) || set[TTLS - 1] != 0 {
            return None;
        }
        let before = *set;
        if let Some(slot) = set.iter_mut().find(|t| **t == 0) {
            *slot = ttl;
        }
        (before[0] != 0).then_some(before)
    }

    /// The first TTL a direction used, if any.
    pub fn first_ttl(&self, dir: Dir) -> Option<u8> {
        let t = self.ttls[dir.idx()][0];
        (t != 0).then_some(t)
    }

    /// Whether the connection's start (a SYN) was seen.
    pub fn saw_syn(&self) -> bool {
        self.syn.iter().any(|s| *s)
    }

    /// Whether `dir` opened the connection (sent a SYN without ACK).
    pub fn opened(&self, dir: Dir) -> bool {
        self.syn[dir.idx()]
    }

    pub fn src(&self, d: Dir) -> Endpoint {
        match d {
            Dir::A => self.lo,
            Dir::B => self.hi,
        }
    }
}

/// Everything recorded about one WebSocket connection while the capture runs.
///
/// Laid out in order (`repr(C)`): what every frame reads or writes comes
/// first, so that a frame touches few cache lines of it (with thousands of
/// connections at once, a packet's state is not in the cache).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Tracker {
    /// Time of the last frame before the first close frame.
    pub(super) last_frame: Option<Ts>,
    pub(super) first_close: Option<(Dir, Ts)>,
    rsv_rules: RsvRules,
    pub(super) midstream: bool,
    /// The response head was cut by a capture gap.
    pub(super) response_lost: bool,
    pub(super) dirs: [DirFacts; 2],
    pub(super) seen: Vec<Seen>,
    pub(super) upgrade: Upgrade,
    pub(super) tcp_end: Option<End>,
    pub(super) close_codes: super::CloseCodes,
}

impl Tracker {
    /// Where what a frame of `dir` reads or writes lies in a `Tracker`
    /// (offset, length): the fields ahead of the directions' facts, and the
    /// direction's up to its pings (see `DirFacts`), for prefetching.
    pub(crate) fn frame_fields(dir: Dir) -> [(usize, usize); 2] {
        let facts = offset_of!(Tracker, dirs) + dir.idx() * size_of::<DirFacts>();
        [
            (0, offset_of!(Tracker, dirs)),
            (facts, offset_of!(DirFacts, pings)),
        ]
    }

    pub fn request(&mut self, dir: Dir, ts: Ts, r: Request) {
        if self.upgrade.request.is_none() {
            self.upgrade.request = Some((ts, dir, r));
        }
    }

    pub fn response(&mut self, dir: Dir, ts: Ts, r: Response) {
        if self.upgrade.response.is_none() {
            self.rsv_rules = r.rsv_rules();
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
        self.rsv_rules = RsvRules::MIDSTREAM;
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
        let i = match at {
            Some(i) => {
                self.seen[i].count += 1;
                i
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
                self.seen.len() - 1
            }
        };
        &mut self.seen[i]
    }

    /// A complete frame from `dir`, its last byte at `ts`.
    pub fn frame(
        &mut self,
        dir: Dir,
        ts: Ts,
        h: &FrameHeader,
        close_payload: &[u8],
        notes: MsgNotes,
    ) {
        let facts = &mut self.dirs[dir.idx()];
        facts.frames.count(h.opcode, h.payload_len);
        let m = if h.mask.is_some() {
            &mut facts.masked
        } else {
            &mut facts.unmasked
        };
        match m {
            Some((_, n)) => *n += 1,
            None => *m = Some((ts, 1)),
        }
        if let Some(len) = notes.message_len {
            facts.largest_message = facts.largest_message.max(len);
        }
        match h.opcode {
            OP_PING => {
                let p = &mut facts.pings;
                p.first.get_or_insert(ts);
                p.count += 1;
            }
            OP_PONG => self.dirs[dir.other().idx()].pings = Pings::default(),
            _ => {}
        }
        self.frame_rules(dir, ts, h, notes);
        if h.opcode == OP_CLOSE {
            self.close_frame(dir, ts, h, close_payload);
        } else if self.first_close.is_none() {
            self.last_frame = Some(ts);
        }
    }

    /// The rules a single frame can break (RFC 6455 5.2 to 5.5).
    fn frame_rules(&mut self, dir: Dir, ts: Ts, h: &FrameHeader, notes: MsgNotes) {
        let op = h.opcode;
        let len = h.payload_len;
        let check = |t: &mut Tracker, bad: bool, kind: Kind, what: &dyn Fn() -> String| {
            if bad {
                t.note(kind, Some(dir), ts, what);
            }
        };
        check(self, !h.known_opcode(), Kind::UnknownOpcode, &|| {
            format!("frame with opcode 0x{op:X}")
        });
        let control = h.is_control() && h.known_opcode();
        check(
            self,
            control && len > frame::MAX_CONTROL_PAYLOAD as u64,
            Kind::ControlFrameTooLong,
            &|| format!("{} frame with a {len}-byte payload", op_name(op)),
        );
        check(
            self,
            control && !h.fin,
            Kind::FragmentedControlFrame,
            &|| format!("{} frame with FIN clear", op_name(op)),
        );
        let rsv_ok = self.rsv_rules.allow(h.rsv, h.is_data());
        check(self, !rsv_ok, Kind::ReservedBits, &|| {
            format!("{} frame with {}", op_name(op), rsv_names(h.rsv))
        });
        let after_close = h.is_data() && self.dirs[dir.idx()].close.is_some();
        check(self, after_close, Kind::DataAfterClose, &|| {
            format!("{} frame after its sender's close frame", op_name(op))
        });
        check(self, !h.minimal_length(), Kind::NonMinimalLength, &|| {
            let mask_len = if h.mask.is_some() { 4 } else { 0 };
            let form = if h.header_len - mask_len == 10 {
                64
            } else {
                16
            };
            format!(
                "{} frame whose {len}-byte length took the {form}-bit form",
                op_name(op)
            )
        });
        check(
            self,
            notes.orphan_continuation,
            Kind::OrphanContinuation,
            &|| format!("continuation frame ({len} bytes) with no fragmented message in progress"),
        );
        check(self, notes.interleaved, Kind::InterleavedMessage, &|| {
            format!(
                "{} frame while a fragmented message was still in progress",
                op_name(op)
            )
        });
        check(self, notes.invalid_utf8, Kind::InvalidUtf8Text, &|| {
            "text message that is not valid UTF-8".to_string()
        });
    }

    fn close_frame(&mut self, dir: Dir, ts: Ts, h: &FrameHeader, payload: &[u8]) {
        let p = frame::parse_close_payload(payload);
        *self.close_codes.entry(p.code).or_insert(0) += 1;
        if p.one_byte {
            self.note(Kind::InvalidClosePayload, Some(dir), ts, || {
                "close frame with a 1-byte payload (a code takes 2)".to_string()
            });
        }
        if let Some(code) = p.code {
            let code = frame::CloseCode(code);
            let kind = match code.class() {
                CodeClass::Normal => None,
                CodeClass::Error => Some(Kind::ErrorCloseCode),
                CodeClass::Reserved => Some(Kind::ReservedCloseCode),
                CodeClass::Invalid => Some(Kind::InvalidCloseCode),
            };
            if let Some(kind) = kind {
                self.note(kind, Some(dir), ts, || {
                    format!("close frame with code {}", code.describe())
                });
            }
        }
        if !p.reason_valid_utf8 {
            self.note(Kind::InvalidUtf8Reason, Some(dir), ts, || {
                "close reason that is not valid UTF-8".to_string()
            });
        }
        let other_largest = self.dirs[dir.other().idx()].largest_message;
        let facts = &mut self.dirs[dir.idx()];
        if facts.close.is_none() {
            facts.close = Some(Box::new(CloseSeen {
                ts,
                payload: p,
                payload_len: h.payload_len,
                other_largest,
            }));
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

    fn end(&mut self, kind: TcpEndKind, by: Dir, ts: Ts) {
        self.tcp_end = Some(End { kind, by, ts });
    }

    pub fn fin(&mut self, dir: Dir, ts: Ts) {
        if self.tcp_end.is_none() {
            self.end(TcpEndKind::Fin, dir, ts);
        }
    }

    pub fn rst(&mut self, dir: Dir, ts: Ts) {
        if self.tcp_end.is_none() {
            self.end(TcpEndKind::Rst, dir, ts);
        }
        if self.first_close.is_some() {
            self.note(Kind::ResetAfterClose, Some(dir), ts, String::new);
        }
    }

    /// An RST from `dir` with a TTL that none of the direction's earlier
    /// packets had (`before`): injected on the path, not sent by the peer.
    pub fn foreign_rst(&mut self, dir: Dir, ts: Ts, ttl: u8, before: &[u8]) {
        // The message is made only for the first foreign RST of a side.
        self.note(Kind::ForeignReset, Some(dir), ts, || {
            let seen: Vec<String> = before
                .iter()
                .filter(|t| **t != 0)
                .map(u8::to_string)
                .collect();
            format!(
                "TTL {ttl}, while every earlier packet from that address had TTL {}",
                seen.join(" or ")
            )
        });
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

    /// The deadline of the first close frame, when one was sent and neither
    /// an answer nor the TCP end has come (what a live capture waits on).
    pub fn open_close_deadline(&self, timeout: Ts) -> Option<Ts> {
        let (d, c1) = self.first_close?;
        let answered = self.dirs[d.other().idx()].close.is_some();
        (!answered && self.tcp_end.is_none()).then(|| c1.saturating_add(timeout))
    }
}
