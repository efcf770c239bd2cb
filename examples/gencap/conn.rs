//! One connection slot: its script, where it stands in it, its sequence
//! numbers, and the bytes of its packets. A slot is reused connection after
//! connection, so its buffers are allocated once.

use std::io::Write;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::script::{self, Kind, Msg, Rng, SEG_GAP, Shape, Side, Step, Tally, What};
use crate::wire::{self, ACK, Ends, FIN, PSH, PcapOut, RST, SYN};

const SERVER_IP: u32 = 0x0a00_0001;
const SERVER_PORT: u16 = 8080;
/// Connection `n` comes from `FIRST_CLIENT_IP + n / CLIENTS_PER_IP`, port
/// `FIRST_CLIENT_PORT + n % CLIENTS_PER_IP`: every 4-tuple is used once.
pub const FIRST_CLIENT_IP: u32 = 0x0a40_0000;
pub const CLIENTS_PER_IP: u64 = 50_000;
pub const FIRST_CLIENT_PORT: u16 = 10_000;
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Payload bytes of data frames: UTF-8 in 4-byte units (ASCII, and
/// characters of 2, 3 and 4 bytes), so a text message of whole units is
/// valid UTF-8, while frames and segments cut it anywhere.
const PATTERN_LEN: usize = 1 << 16;
static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn pattern() -> &'static [u8] {
    PATTERN.get_or_init(|| {
        let mut r = Rng(42);
        let mut p = Vec::with_capacity(PATTERN_LEN);
        while p.len() < PATTERN_LEN {
            let ascii = b'a' + (r.next() % 26) as u8;
            match r.next() % 4 {
                0 => p.extend_from_slice("é".as_bytes()),
                1 => p.extend_from_slice("€".as_bytes()),
                2 => p.extend_from_slice("😀".as_bytes()),
                _ => p.extend_from_slice(&[ascii, ascii]),
            }
            while p.len() % 4 != 0 {
                p.push(ascii);
            }
        }
        p
    })
}

/// Where the current message stands: its frame, the frame's header bytes
/// still to send, its payload bytes still to send.
#[derive(Default)]
struct Cursor {
    frame: u32,
    hdr: [u8; 14],
    hlen: usize,
    hpos: usize,
    off: u64,
    /// Offset of the frame's payload in its message's payload.
    msg_off: u64,
    left: u64,
    mask: Option<[u8; 4]>,
}

pub struct Conn {
    pub start: u64,
    steps: Vec<Step>,
    step: usize,
    seg: u32,
    /// Next sequence number of each side (client, server).
    next: [u32; 2],
    client_ip: u32,
    client_port: u16,
    heads: [Vec<u8>; 2],
    head_pos: usize,
    cur: Cursor,
    pat_base: u64,
    mss: usize,
}

impl Conn {
    pub fn new() -> Conn {
        Conn {
            start: 0,
            steps: Vec::with_capacity(256),
            step: 0,
            seg: 0,
            next: [0; 2],
            client_ip: 0,
            client_port: 0,
            heads: [Vec::with_capacity(256), Vec::with_capacity(256)],
            head_pos: 0,
            cur: Cursor::default(),
            pat_base: 0,
            mss: 1,
        }
    }

    /// Makes connection number `id` of `kind` in this slot: its heads, its
    /// script. Returns when its TCP first ends (from its start) and its tally.
    pub fn prepare(
        &mut self,
        id: u64,
        kind: Kind,
        rng: &mut Rng,
        shape: Shape,
    ) -> (Option<u64>, Tally) {
        self.client_ip = FIRST_CLIENT_IP + (id / CLIENTS_PER_IP) as u32;
        self.client_port = FIRST_CLIENT_PORT + (id % CLIENTS_PER_IP) as u16;
        self.next = [rng.next() as u32, rng.next() as u32];
        self.pat_base = (rng.next() % PATTERN_LEN as u64) & !3;
        self.step = 0;
        self.seg = 0;
        self.head_pos = 0;
        self.mss = shape.mss as usize;
        self.write_heads(id, kind, rng);
        let (req, resp) = (self.heads[0].len() as u64, self.heads[1].len() as u64);
        let b = script::build(kind, rng, shape, &mut self.steps, req, resp);
        (b.end_at, b.tally)
    }

    fn write_heads(&mut self, id: u64, kind: Kind, rng: &mut Rng) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&rng.next().to_le_bytes());
        raw[8..].copy_from_slice(&rng.next().to_le_bytes());
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut key = [0u8; 24];
        let n = b64.encode_slice(raw, &mut key).expect("16 bytes fit 24");
        let mut sha = Sha1::new();
        sha.update(&key[..n]);
        sha.update(WS_GUID);
        let mut accept = [0u8; 28];
        let m = b64
            .encode_slice(sha.finalize(), &mut accept)
            .expect("20 bytes fit 28");
        let key = std::str::from_utf8(&key[..n]).expect("base64 is ASCII");
        let accept = std::str::from_utf8(&accept[..m]).expect("base64 is ASCII");
        let [req, resp] = &mut self.heads;
        req.clear();
        resp.clear();
        write!(
            req,
            "GET /ws/{id} HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: gencap\r\n\r\n"
        )
        .expect("writing to a Vec");
        if kind == Kind::Rejected {
            resp.extend_from_slice(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        } else {
            write!(
                resp,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .expect("writing to a Vec");
        }
    }

    /// Capture time of the next packet.
    pub fn next_time(&self) -> u64 {
        let s = &self.steps[self.step];
        self.start + s.at + u64::from(self.seg) * SEG_GAP
    }

    fn ends(&self, from: Side) -> Ends {
        match from {
            Side::Client => Ends {
                src_ip: self.client_ip,
                dst_ip: SERVER_IP,
                src_port: self.client_port,
                dst_port: SERVER_PORT,
                src_mac_last: 1,
            },
            Side::Server => Ends {
                src_ip: SERVER_IP,
                dst_ip: self.client_ip,
                src_port: SERVER_PORT,
                dst_port: self.client_port,
                src_mac_last: 2,
            },
        }
    }

    /// Writes the next packet at `t`; false when the script is done.
    pub fn emit(&mut self, out: &mut PcapOut, t: u64, rng: &mut Rng) -> bool {
        let step = self.steps[self.step];
        let (from, flags, len) = match step.what {
            What::Syn => (Side::Client, SYN, 0),
            What::SynAck => (Side::Server, SYN | ACK, 0),
            What::HsAck => (Side::Client, ACK, 0),
            What::Ack(s) => (s, ACK, 0),
            What::Fin(s) => (s, FIN | ACK, 0),
            What::Rst(s) => (s, RST | ACK, 0),
            What::Head(s) => {
                let head = &self.heads[s.idx()];
                let area = out.payload_area();
                let n = (head.len() - self.head_pos).min(self.mss);
                area[..n].copy_from_slice(&head[self.head_pos..self.head_pos + n]);
                self.head_pos += n;
                if self.head_pos == head.len() {
                    self.head_pos = 0;
                }
                (s, PSH | ACK, n)
            }
            What::Msg(m) => {
                if self.seg == 0 {
                    self.start_frame(&m, 0, rng);
                }
                let n = self.fill(&m, &mut out.payload_area()[..self.mss], rng);
                (m.from, PSH | ACK, n)
            }
        };
        let (me, peer) = (from.idx(), from.other().idx());
        let seq = self.next[me];
        let ack = self.next[peer];
        out.finish(t, &self.ends(from), seq, ack, flags, len);
        let advance = len as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.next[me] = seq.wrapping_add(advance);
        self.seg += 1;
        if self.seg == step.nseg {
            self.seg = 0;
            self.step += 1;
        }
        self.step < self.steps.len()
    }

    fn start_frame(&mut self, m: &Msg, i: u32, rng: &mut Rng) {
        let len = m.frame_len(i);
        let mask = (m.from == Side::Client).then(|| (rng.next() as u32).to_be_bytes());
        let opcode = if i == 0 { m.opcode } else { 0 };
        let fin = m.fin && i + 1 == m.frames;
        let c = &mut self.cur;
        c.frame = i;
        c.msg_off = m.pat_off + m.len / u64::from(m.frames) * u64::from(i);
        c.hlen = wire::frame_header(&mut c.hdr, fin, opcode, len, mask);
        c.hpos = 0;
        c.off = 0;
        c.left = len;
        c.mask = mask;
    }

    /// Fills `area` (one segment's room) with the message's next bytes;
    /// returns how many.
    fn fill(&mut self, m: &Msg, area: &mut [u8], rng: &mut Rng) -> usize {
        let mut n = 0;
        loop {
            let c = &mut self.cur;
            if c.hpos < c.hlen {
                let k = (c.hlen - c.hpos).min(area.len() - n);
                area[n..n + k].copy_from_slice(&c.hdr[c.hpos..c.hpos + k]);
                c.hpos += k;
                n += k;
            }
            if c.hpos == c.hlen && c.left > 0 && n < area.len() {
                let k = (c.left as usize).min(area.len() - n);
                let at = if m.close.is_some() {
                    c.off
                } else {
                    c.msg_off + c.off
                };
                payload(m, at, self.pat_base, &mut area[n..n + k]);
                if let Some(mask) = c.mask {
                    wire::apply_mask(&mut area[n..n + k], mask, c.off);
                }
                c.off += k as u64;
                c.left -= k as u64;
                n += k;
            }
            if c.hpos == c.hlen && c.left == 0 {
                if c.frame + 1 == m.frames {
                    return n;
                }
                let next = c.frame + 1;
                self.start_frame(m, next, rng);
            }
            if n == area.len() {
                return n;
            }
        }
    }
}

/// Payload bytes at offset `off` of a message's frame: a close frame's code
/// and reason, else the pattern.
fn payload(m: &Msg, off: u64, base: u64, out: &mut [u8]) {
    if let Some((code, reason)) = m.close {
        let mut all = [0u8; 127];
        all[..2].copy_from_slice(&code.to_be_bytes());
        all[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        let off = off as usize;
        out.copy_from_slice(&all[off..off + out.len()]);
        return;
    }
    let pat = pattern();
    let mut done = 0;
    let mut at = ((base + off) % PATTERN_LEN as u64) as usize;
    while done < out.len() {
        let k = (out.len() - done).min(PATTERN_LEN - at);
        out[done..done + k].copy_from_slice(&pat[at..at + k]);
        done += k;
        at = 0;
    }
}
