//! One connection's life as a script of timed steps, chosen by kind, and
//! what wsclose must conclude from it. A script is built whole when its
//! connection opens, so its packets, bytes, frames and the moment it is
//! cut are known before the first packet is written.

use crate::wire::header_len;

/// Time between the segments of one message, in microseconds.
pub const SEG_GAP: u64 = 20;
/// The idle timeout that cuts `IdleCut` connections, in microseconds.
pub const IDLE_US: u64 = 60_000_000;
/// wsclose's default close timeout, in microseconds.
pub const CLOSE_TIMEOUT_US: u64 = 5_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// A run of frames of one message: `frames` frames (the first `opcode`,
/// the rest continuations) carrying `len` payload bytes, FIN on the last
/// one when `fin`; a close frame carries its code and reason. A message
/// split by a control frame is two runs, the second starting `pat_off`
/// bytes into the message's payload.
#[derive(Clone, Copy, Debug)]
pub struct Msg {
    pub from: Side,
    pub opcode: u8,
    pub len: u64,
    pub frames: u32,
    pub fin: bool,
    pub pat_off: u64,
    pub close: Option<(u16, &'static str)>,
}

impl Default for Msg {
    fn default() -> Msg {
        Msg {
            from: Side::Client,
            opcode: 1,
            len: 0,
            frames: 1,
            fin: true,
            pat_off: 0,
            close: None,
        }
    }
}

impl Msg {
    /// Payload bytes of frame `i`: equal shares, the rest in the last.
    pub fn frame_len(&self, i: u32) -> u64 {
        let share = self.len / u64::from(self.frames);
        if i + 1 == self.frames {
            self.len - share * u64::from(self.frames - 1)
        } else {
            share
        }
    }

    /// Bytes on the wire, headers included.
    pub fn wire_len(&self) -> u64 {
        let masked = self.from == Side::Client;
        (0..self.frames)
            .map(|i| {
                let l = self.frame_len(i);
                l + header_len(l, masked)
            })
            .sum()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum What {
    Syn,
    SynAck,
    HsAck,
    /// The HTTP request (client) or response (server).
    Head(Side),
    Msg(Msg),
    Ack(Side),
    Fin(Side),
    Rst(Side),
}

/// A step: its first packet `at` microseconds after the connection's
/// start, `nseg` packets `SEG_GAP` apart.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub at: u64,
    pub nseg: u32,
    pub what: What,
}

/// How a connection lives and ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    CleanClient,
    CleanServer,
    CleanClientFinFirst,
    ServerError1011,
    RstAfterClose,
    Unanswered,
    Timeout,
    Abnormal,
    AbnormalRst,
    IdleCut,
    Rejected,
}

/// Kinds with their weights (percent).
pub const KINDS: [(Kind, u32); 11] = [
    (Kind::CleanClient, 40),
    (Kind::CleanServer, 15),
    (Kind::CleanClientFinFirst, 8),
    (Kind::ServerError1011, 3),
    (Kind::RstAfterClose, 4),
    (Kind::Unanswered, 6),
    (Kind::Timeout, 5),
    (Kind::Abnormal, 3),
    (Kind::AbnormalRst, 2),
    (Kind::IdleCut, 6),
    (Kind::Rejected, 8),
];

impl Kind {
    pub fn idx(self) -> usize {
        KINDS.iter().position(|k| k.0 == self).unwrap_or(0)
    }

    /// The outcome wsclose must give it (contract: Outcomes).
    pub fn outcome(self) -> &'static str {
        match self {
            Kind::CleanClient
            | Kind::CleanServer
            | Kind::CleanClientFinFirst
            | Kind::ServerError1011
            | Kind::RstAfterClose => "clean",
            Kind::Unanswered => "unanswered",
            Kind::Timeout => "timeout",
            Kind::Abnormal | Kind::AbnormalRst | Kind::IdleCut => "abnormal",
            Kind::Rejected => "rejected",
        }
    }

    /// Its findings: (kind, severity, side).
    pub fn findings(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Kind::CleanClient | Kind::CleanServer => &[],
            Kind::CleanClientFinFirst => &[("client_closed_tcp_first", "info", "client")],
            Kind::ServerError1011 => &[("error_close_code", "warning", "server")],
            Kind::RstAfterClose => &[
                ("client_closed_tcp_first", "info", "client"),
                ("reset_after_close", "warning", "client"),
            ],
            Kind::Unanswered => &[("unanswered_close", "error", "server")],
            Kind::Timeout => &[("close_timeout", "error", "server")],
            Kind::Abnormal | Kind::IdleCut => &[("abnormal_closure", "error", "server")],
            Kind::AbnormalRst => &[("abnormal_closure", "error", "client")],
            Kind::Rejected => &[("handshake_rejected", "warning", "server")],
        }
    }

    /// Its key in the truth's `kinds` and `per_connection`.
    pub fn letter(self) -> char {
        char::from(b'a' + self.idx() as u8)
    }

    /// What its connection object must say: close initiator, how and by
    /// whom TCP ended, the upgrade's status and whether its accept is valid.
    pub fn facts(self) -> [&'static str; 5] {
        const C: &str = "close.initiator=client";
        const S: &str = "close.initiator=server";
        const N: &str = "close.initiator=null";
        const FIN: &str = "close.tcp_end.kind=fin";
        const RST: &str = "close.tcp_end.kind=rst";
        const BY_C: &str = "close.tcp_end.by=client";
        const BY_S: &str = "close.tcp_end.by=server";
        let (initiator, end, by) = match self {
            Kind::CleanClient | Kind::Unanswered => (C, FIN, BY_S),
            Kind::CleanServer | Kind::ServerError1011 => (S, FIN, BY_S),
            Kind::CleanClientFinFirst | Kind::Timeout => (C, FIN, BY_C),
            Kind::RstAfterClose => (C, RST, BY_C),
            Kind::Abnormal | Kind::IdleCut | Kind::Rejected => (N, FIN, BY_S),
            Kind::AbnormalRst => (N, RST, BY_C),
        };
        let (status, accept) = match self {
            Kind::Rejected => ("handshake.status=403", "handshake.accept_valid=null"),
            _ => ("handshake.status=101", "handshake.accept_valid=true"),
        };
        [initiator, end, by, status, accept]
    }

    /// Cut in the sense of the diagnoses (outcome abnormal): its TCP end
    /// takes one of the spaced cut slots.
    pub fn is_cut(self) -> bool {
        matches!(self, Kind::Abnormal | Kind::AbnormalRst | Kind::IdleCut)
    }
}

/// A small, fast, seeded generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a script adds to the truth: frames per side (text, binary,
/// continuation, ping, pong, close, payload bytes), close codes on the
/// wire, packets and captured bytes.
#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub frames: [[u64; 7]; 2],
    pub codes: [Option<u16>; 2],
    pub packets: u64,
    pub bytes: u64,
}

/// Parameters shared by every script.
#[derive(Clone, Copy)]
pub struct Shape {
    pub mss: u64,
    /// Mean time between data actions, in microseconds.
    pub gap_us: u64,
    pub short: bool,
}

/// Builds a script step by step, keeping time and the tally.
pub struct Builder<'a> {
    pub steps: &'a mut Vec<Step>,
    pub tally: Tally,
    /// Time of the last packet so far.
    t: u64,
    /// Time of the last frame's last packet (or the upgrade response's).
    last_frame: u64,
    /// When the TCP connection first ends (FIN or RST).
    pub end_at: Option<u64>,
    mss: u64,
    req_len: u64,
    resp_len: u64,
}

impl Builder<'_> {
    fn push(&mut self, delay: u64, what: What) {
        let wire = match what {
            What::Head(Side::Client) => self.req_len,
            What::Head(Side::Server) => self.resp_len,
            What::Msg(m) => m.wire_len(),
            _ => 0,
        };
        let nseg = wire.div_ceil(self.mss).max(1) as u32;
        let at = self.t + delay;
        self.t = at + u64::from(nseg - 1) * SEG_GAP;
        self.tally.packets += u64::from(nseg);
        self.tally.bytes += u64::from(nseg) * crate::wire::HEADERS as u64 + wire;
        match what {
            What::Msg(m) => {
                self.count(&m);
                self.last_frame = self.t;
            }
            What::Head(Side::Server) => self.last_frame = self.t,
            What::Fin(_) | What::Rst(_) => {
                self.end_at.get_or_insert(at);
            }
            _ => {}
        }
        self.steps.push(Step { at, nseg, what });
        // The receiver acknowledges a message of several segments.
        if let What::Msg(m) = what
            && nseg > 1
        {
            self.push(40, What::Ack(m.from.other()));
        }
    }

    fn count(&mut self, m: &Msg) {
        let f = &mut self.tally.frames[m.from.idx()];
        let col = match m.opcode {
            0 => 2,
            1 => 0,
            2 => 1,
            9 => 3,
            10 => 4,
            _ => 5,
        };
        f[col] += 1;
        f[2] += u64::from(m.frames - 1);
        f[6] += m.len;
        if let Some((code, _)) = m.close {
            self.tally.codes[m.from.idx()] = Some(code);
        }
    }
}

/// Builds the script of a connection of `kind` into `steps` (cleared);
/// `req_len` and `resp_len` are its HTTP heads' lengths.
pub fn build<'a>(
    kind: Kind,
    rng: &mut Rng,
    shape: Shape,
    steps: &'a mut Vec<Step>,
    req_len: u64,
    resp_len: u64,
) -> Builder<'a> {
    steps.clear();
    let mut b = Builder {
        steps,
        tally: Tally::default(),
        t: 0,
        last_frame: 0,
        end_at: None,
        mss: shape.mss,
        req_len,
        resp_len,
    };
    let rtt = rng.range(100, 2000);
    b.push(0, What::Syn);
    b.push(rtt, What::SynAck);
    b.push(5, What::HsAck);
    b.push(20, What::Head(Side::Client));
    b.push(rtt, What::Head(Side::Server));
    if kind == Kind::Rejected {
        fin_exchange(&mut b, Side::Server, rtt, rtt);
        return b;
    }
    let (actions, gap) = data_plan(kind, rng, shape);
    for _ in 0..actions {
        let delay = rng.range(gap / 4, gap * 7 / 4);
        data_action(&mut b, rng, shape, delay, rtt);
    }
    ending(kind, &mut b, rng, gap, rtt);
    b
}

/// How many data actions and how far apart: the cut kinds that are not
/// idle cuts live less than a second after the upgrade (so no lifetime or
/// idle pattern can form among them); idle cuts are busy for at most half
/// the idle timeout (so they are no lifetime pattern either).
fn data_plan(kind: Kind, rng: &mut Rng, shape: Shape) -> (u64, u64) {
    let n = if shape.short {
        rng.range(1, 2)
    } else {
        rng.range(4, 40)
    };
    match kind {
        Kind::Abnormal | Kind::AbnormalRst => (rng.range(0, 2), 100_000),
        Kind::IdleCut => (n, shape.gap_us.min(IDLE_US / 2 / (n * 7 / 4 + 1))),
        _ => (n, shape.gap_us),
    }
}

/// One data action: a message from either side (sometimes fragmented,
/// sometimes with a ping between its fragments, RFC 6455 5.4), or a ping
/// answered by a pong. Text lengths are whole 4-byte units of the payload
/// pattern, so every text message is valid UTF-8 wherever frames and
/// segments cut its characters.
fn data_action(b: &mut Builder<'_>, rng: &mut Rng, shape: Shape, delay: u64, rtt: u64) {
    let r = rng.next() % 100;
    let from = if rng.chance(45) {
        Side::Client
    } else {
        Side::Server
    };
    let opcode = if rng.chance(60) { 1 } else { 2 };
    let whole = |len: u64| if opcode == 1 { len & !3 } else { len };
    let msg = Msg {
        from,
        opcode,
        ..Msg::default()
    };
    match r {
        0..=84 => {
            let len = whole(message_len(rng, shape.mss));
            b.push(delay, What::Msg(Msg { len, ..msg }));
        }
        85..=94 => ping_pong(b, from, rng.range(0, 16), delay, rtt),
        _ => {
            let frames = rng.range(2, 5) as u32;
            let len = whole(rng.range(u64::from(frames), 4 * shape.mss.max(200)));
            if rng.chance(50) {
                b.push(delay, What::Msg(Msg { len, frames, ..msg }));
                return;
            }
            // The first `a` frames, a ping and its pong, the rest.
            let a = rng.range(1, u64::from(frames) - 1) as u32;
            let first = len / u64::from(frames) * u64::from(a);
            let head = Msg {
                len: first,
                frames: a,
                fin: false,
                ..msg
            };
            b.push(delay, What::Msg(head));
            ping_pong(b, from, rng.range(0, 8), 100, rtt);
            let tail = Msg {
                opcode: 0,
                len: len - first,
                frames: frames - a,
                pat_off: first,
                ..msg
            };
            b.push(100, What::Msg(tail));
        }
    }
}

/// A ping from `from` and the other side's pong with the same payload.
fn ping_pong(b: &mut Builder<'_>, from: Side, len: u64, delay: u64, rtt: u64) {
    let ping = Msg {
        from,
        opcode: 9,
        len,
        ..Msg::default()
    };
    b.push(delay, What::Msg(ping));
    let pong = Msg {
        from: from.other(),
        opcode: 10,
        ..ping
    };
    b.push(rtt, What::Msg(pong));
}

/// A payload length: mostly the 7-bit form, some 16-bit (up to four
/// segments), a few 64-bit (over 64 KiB).
fn message_len(rng: &mut Rng, mss: u64) -> u64 {
    match rng.next() % 1000 {
        0..=699 => rng.range(0, 125),
        700..=994 => rng.range(126, (4 * mss).clamp(200, 0xffff)),
        _ => rng.range(0x10000, 0x10000 + 16 * mss),
    }
}

fn close(from: Side, code: u16, reason: &'static str) -> What {
    What::Msg(Msg {
        from,
        opcode: 8,
        len: 2 + reason.len() as u64,
        close: Some((code, reason)),
        ..Msg::default()
    })
}

/// FIN from `first`, FIN from the other side, the last ACK.
fn fin_exchange(b: &mut Builder<'_>, first: Side, delay: u64, rtt: u64) {
    b.push(delay, What::Fin(first));
    b.push(rtt, What::Fin(first.other()));
    b.push(rtt, What::Ack(first));
}

/// The closing of each kind (see `Kind::outcome` and `Kind::findings`).
fn ending(kind: Kind, b: &mut Builder<'_>, rng: &mut Rng, gap: u64, rtt: u64) {
    use Side::{Client, Server};
    let delay = rng.range(gap / 4, gap * 7 / 4);
    match kind {
        Kind::CleanClient => {
            b.push(delay, close(Client, 1000, "bye"));
            b.push(rtt, close(Server, 1000, "bye"));
            fin_exchange(b, Server, 100, rtt);
        }
        Kind::CleanServer => {
            let (code, reason) =
                [(1000, ""), (4000, "délai dépassé ✓"), (3000, "moved")][rng.range(0, 2) as usize];
            b.push(delay, close(Server, code, reason));
            b.push(rtt, close(Client, code, ""));
            fin_exchange(b, Server, rtt, rtt);
        }
        Kind::CleanClientFinFirst => {
            b.push(delay, close(Client, 1000, "done"));
            b.push(rtt, close(Server, 1000, ""));
            fin_exchange(b, Client, rtt, rtt);
        }
        Kind::ServerError1011 => {
            b.push(delay, close(Server, 1011, "internal error"));
            b.push(rtt, close(Client, 1000, ""));
            fin_exchange(b, Server, rtt, rtt);
        }
        Kind::RstAfterClose => {
            b.push(delay, close(Client, 1000, "bye"));
            b.push(rtt, close(Server, 1000, "bye"));
            b.push(50, What::Rst(Client));
        }
        Kind::Unanswered => {
            b.push(delay, close(Client, 1000, "bye"));
            fin_exchange(b, Server, 200_000, rtt);
        }
        Kind::Timeout => {
            b.push(delay, close(Client, 1000, "bye"));
            fin_exchange(b, Client, CLOSE_TIMEOUT_US + 1_000_000, rtt);
        }
        Kind::Abnormal => fin_exchange(b, Server, rng.range(10_000, 100_000), rtt),
        Kind::AbnormalRst => b.push(rng.range(10_000, 100_000), What::Rst(Client)),
        Kind::IdleCut => {
            let wait = (b.last_frame + IDLE_US) - b.t;
            fin_exchange(b, Server, wait, rtt);
        }
        Kind::Rejected => {}
    }
}
