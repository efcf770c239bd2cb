//! Builders for crafted captures and helpers to run `wsclose` on them.
//!
//! * [`Conn`] plays a TCP conversation (IPv4 or IPv6, correct checksums via
//!   etherparse) with explicit timestamps and sequence numbers.
//! * [`Capture`] collects packets of one or more conversations (plus UDP,
//!   ARP or junk records) and writes them as pcap (µs or ns) or pcapng with
//!   an Ethernet, raw IP or Linux SLL2 link layer.
//! * `ws_frame`, `close_payload`, `upgrade_request`, `upgrade_response`
//!   produce WebSocket bytes.
//! * [`analyze_json`] runs `wsclose analyze FILE --json -`, validates the
//!   output against `tests/contract/summary.schema.json` and checks the
//!   contract's cross-field invariants.
//!
//! Set `WSCLOSE_KEEP_CAPTURES=DIR` to keep a copy of every written capture in
//! `DIR/<name>.<ext>` (e.g. to open it with tshark).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use etherparse::{PacketBuilder, TcpHeader};
use serde_json::Value;
use sha1::{Digest, Sha1};

/// A realistic epoch time all crafted captures start from.
pub const T0: f64 = 1_763_700_000.0;
/// Tolerance for comparing timestamps and durations.
pub const EPS: f64 = 1e-6;

pub const CLIENT_ADDR: &str = "10.0.0.1:51234";
pub const SERVER_ADDR: &str = "10.0.0.2:8765";

/// The sample key of RFC 6455 section 1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const KEY_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Offsets (from the SYN) used by [`Conn::open_ws`].
pub const REQ_AT: f64 = 0.001;
pub const RESP_AT: f64 = 0.002;

pub const CLIENT: Option<&str> = Some("client");
pub const SERVER: Option<&str> = Some("server");
pub const NO_SIDE: Option<&str> = None;

// ---------------------------------------------------------------------------
// WebSocket bytes
// ---------------------------------------------------------------------------

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

pub const RSV1: u8 = 0b100;
pub const RSV2: u8 = 0b010;
pub const RSV3: u8 = 0b001;

/// The masking key of RFC 6455 section 5.7's examples.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One WebSocket frame. `rsv` holds RSV1..RSV3 as bits 2..0. The length
/// uses the shortest form: 7-bit, 16-bit (126) or 64-bit (127).
pub fn ws_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    assert!(rsv <= 0b111 && opcode <= 0xf);
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(fin) << 7) | (rsv << 4) | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n <= 125 {
        out.push(mask_bit | n as u8);
    } else if let Ok(n16) = u16::try_from(n) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&n16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// How a frame header writes its payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenForm {
    /// The 7-bit length (payload of at most 125 bytes).
    Short,
    /// 126 followed by a 16-bit length.
    Ext16,
    /// 127 followed by a 64-bit length.
    Ext64,
}

/// [`ws_frame`] with the payload length written in the given form, minimal
/// or not (RFC 6455 5.2 requires the minimal one).
pub fn ws_frame_len_form(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    form: LenForm,
) -> Vec<u8> {
    assert!(rsv <= 0b111 && opcode <= 0xf);
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(fin) << 7) | (rsv << 4) | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    match form {
        LenForm::Short => {
            assert!(n <= 125, "7-bit length form holds at most 125");
            out.push(mask_bit | n as u8);
        }
        LenForm::Ext16 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&u16::try_from(n).expect("16-bit length").to_be_bytes());
        }
        LenForm::Ext64 => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A complete (FIN set) masked frame, as a client sends it.
pub fn cframe(opcode: u8, payload: &[u8]) -> Vec<u8> {
    ws_frame(true, 0, opcode, Some(MASK), payload)
}

/// A complete (FIN set) unmasked frame, as a server sends it.
pub fn sframe(opcode: u8, payload: &[u8]) -> Vec<u8> {
    ws_frame(true, 0, opcode, None, payload)
}

/// A close frame payload: the code in network byte order, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A masked client close frame.
pub fn cclose(code: u16, reason: &str) -> Vec<u8> {
    cframe(OP_CLOSE, &close_payload(code, reason.as_bytes()))
}

/// An unmasked server close frame.
pub fn sclose(code: u16, reason: &str) -> Vec<u8> {
    sframe(OP_CLOSE, &close_payload(code, reason.as_bytes()))
}

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2).
pub fn accept_for(key: &str) -> String {
    let digest = Sha1::digest(format!("{key}{WS_GUID}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn headers(extra: &[(&str, &str)]) -> String {
    extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect()
}

/// An HTTP/1.1 upgrade request.
pub fn upgrade_request(path: &str, host: &str, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: crafted\r\n{}\r\n",
        headers(extra)
    )
    .into_bytes()
}

/// An HTTP/1.1 response to an upgrade request. A 101 carries the upgrade
/// headers and, when `accept_for_key` is given, the Sec-WebSocket-Accept
/// computed for that key. Other statuses carry `Content-Length: 0` unless
/// `extra` has a Content-Length.
pub fn upgrade_response(
    status: u16,
    accept_for_key: Option<&str>,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let phrase = match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        _ => "Status",
    };
    let mut h = String::new();
    if status == 101 {
        h.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
    }
    if let Some(key) = accept_for_key {
        h.push_str(&format!("Sec-WebSocket-Accept: {}\r\n", accept_for(key)));
    }
    h.push_str(&headers(extra));
    if status != 101
        && !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        h.push_str("Content-Length: 0\r\n");
    }
    format!("HTTP/1.1 {status} {phrase}\r\n{h}\r\n").into_bytes()
}

// ---------------------------------------------------------------------------
// Packets and TCP conversations
// ---------------------------------------------------------------------------

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;

/// IP TTL / IPv6 hop limit of crafted packets unless [`Conn::set_ttl`] says
/// otherwise.
pub const DEFAULT_TTL: u8 = 64;

/// Largest TCP payload [`Conn::send`] puts in one segment.
pub const MSS: usize = 1448;

/// One packet record: a network-layer packet plus what the link layer needs.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub t: f64,
    pub ethertype: u16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// The network-layer bytes (IP header onwards, or an ARP body).
    pub l3: Vec<u8>,
    /// Captured length of the whole record, when shorter than the packet.
    pub snap: Option<usize>,
    /// pcapng interface index (pcap output needs 0).
    pub iface: usize,
}

fn mac_for(ip: IpAddr) -> [u8; 6] {
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let b = a.octets();
            [b[12], b[13], b[14], b[15]]
        }
    };
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

fn ethertype_of(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => ETHERTYPE_IPV4,
        IpAddr::V6(_) => ETHERTYPE_IPV6,
    }
}

/// Direction of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// client → server
    C2S,
    /// server → client
    S2C,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::C2S => 0,
            Dir::S2C => 1,
        }
    }
}

/// A TCP conversation. Sequence numbers are tracked per direction; every
/// segment acknowledges all the peer has sent so far.
#[derive(Clone, Debug)]
pub struct Conn {
    pub client: SocketAddr,
    pub server: SocketAddr,
    isn: [u32; 2],
    /// Next sequence number to send, per direction.
    nxt: [u32; 2],
    /// IP TTL (IPv6 hop limit) of the packets each direction emits.
    ttl: [u8; 2],
    pub packets: Vec<Pkt>,
}

impl Conn {
    /// A conversation between two `ip:port` (IPv6: `[addr]:port`) endpoints.
    /// Data can be sent right away (a capture picked up midstream) or after
    /// [`Conn::handshake`].
    pub fn new(client: &str, server: &str) -> Self {
        let client: SocketAddr = client.parse().expect("client address");
        let server: SocketAddr = server.parse().expect("server address");
        assert_eq!(client.is_ipv4(), server.is_ipv4(), "mixed IP versions");
        Conn::with_isn_inner(client, server, [1_000_000, 2_000_000])
    }

    fn with_isn_inner(client: SocketAddr, server: SocketAddr, isn: [u32; 2]) -> Self {
        Conn {
            client,
            server,
            isn,
            nxt: [isn[0].wrapping_add(1), isn[1].wrapping_add(1)],
            ttl: [DEFAULT_TTL; 2],
            packets: Vec::new(),
        }
    }

    /// The standard client and server of these tests.
    pub fn standard() -> Self {
        Conn::new(CLIENT_ADDR, SERVER_ADDR)
    }

    /// Sets the initial sequence numbers (before anything is sent).
    pub fn isn(mut self, client: u32, server: u32) -> Self {
        assert!(self.packets.is_empty(), "set the ISNs before sending");
        self.isn = [client, server];
        self.nxt = [client.wrapping_add(1), server.wrapping_add(1)];
        self
    }

    fn endpoints(&self, dir: Dir) -> (SocketAddr, SocketAddr) {
        match dir {
            Dir::C2S => (self.client, self.server),
            Dir::S2C => (self.server, self.client),
        }
    }

    fn other(dir: Dir) -> Dir {
        match dir {
            Dir::C2S => Dir::S2C,
            Dir::S2C => Dir::C2S,
        }
    }

    /// Stream offset (bytes sent so far, SYN/FIN excluded-ish: relative to
    /// ISN + 1) of the next byte in `dir`.
    pub fn offset(&self, dir: Dir) -> u32 {
        self.nxt[dir.idx()].wrapping_sub(self.isn[dir.idx()].wrapping_add(1))
    }

    /// Sets the IP TTL (IPv6 hop limit) of the packets `dir` emits from now
    /// on (default [`DEFAULT_TTL`]): a path change, or different hop counts
    /// for the two directions as a capture point between them sees them.
    pub fn set_ttl(&mut self, dir: Dir, ttl: u8) -> &mut Self {
        self.ttl[dir.idx()] = ttl;
        self
    }

    /// The TTL (hop limit) `dir` emits with now.
    pub fn ttl(&self, dir: Dir) -> u8 {
        self.ttl[dir.idx()]
    }

    /// An RST in `dir` carrying `ttl` (e.g. injected by a middlebox that
    /// forges the endpoint's address); later packets keep the direction's
    /// TTL.
    pub fn rst_with_ttl(&mut self, dir: Dir, t: f64, ttl: u8) -> &mut Self {
        let keep = self.ttl(dir);
        self.set_ttl(dir, ttl);
        self.rst(dir, t);
        self.set_ttl(dir, keep)
    }

    /// Emits one segment with an absolute sequence number; nothing advances.
    pub fn raw_segment(
        &mut self,
        dir: Dir,
        t: f64,
        seq: u32,
        payload: &[u8],
        flags: u8,
    ) -> &mut Self {
        let (src, dst) = self.endpoints(dir);
        let mut tcp = TcpHeader::new(src.port(), dst.port(), seq, 64240);
        tcp.fin = flags & FIN != 0;
        tcp.syn = flags & SYN != 0;
        tcp.rst = flags & RST != 0;
        tcp.psh = flags & PSH != 0;
        if flags & ACK != 0 {
            tcp.ack = true;
            tcp.acknowledgment_number = self.nxt[Conn::other(dir).idx()];
        }
        let ttl = self.ttl[dir.idx()];
        let builder = match (src.ip(), dst.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), ttl),
            (IpAddr::V6(a), IpAddr::V6(b)) => PacketBuilder::ipv6(a.octets(), b.octets(), ttl),
            _ => unreachable!(),
        }
        .tcp_header(tcp);
        let mut l3 = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut l3, payload).expect("build TCP packet");
        self.packets.push(Pkt {
            t,
            ethertype: ethertype_of(src.ip()),
            src_mac: mac_for(src.ip()),
            dst_mac: mac_for(dst.ip()),
            l3,
            snap: None,
            iface: 0,
        });
        self
    }

    /// Emits one segment at stream offset `seq_offset` (0 = first byte after
    /// the SYN) without advancing the sender's sequence number: for
    /// out-of-order, retransmitted and overlapping segments.
    pub fn segment(
        &mut self,
        dir: Dir,
        t: f64,
        seq_offset: u32,
        payload: &[u8],
        flags: u8,
    ) -> &mut Self {
        let seq = self.isn[dir.idx()].wrapping_add(1).wrapping_add(seq_offset);
        self.raw_segment(dir, t, seq, payload, flags)
    }

    /// The client's SYN alone (e.g. to be refused with [`Conn::server_rst`]).
    pub fn syn(&mut self, t: f64) -> &mut Self {
        let ci = self.isn[0];
        self.raw_segment(Dir::C2S, t, ci, &[], SYN);
        self.nxt[0] = ci.wrapping_add(1);
        self
    }

    /// SYN at `t`, SYN-ACK at `t + 0.0001`, ACK at `t + 0.0002`.
    pub fn handshake(&mut self, t: f64) -> &mut Self {
        let si = self.isn[1];
        self.nxt[1] = si;
        self.syn(t);
        self.raw_segment(Dir::S2C, t + 0.0001, si, &[], SYN | ACK);
        self.nxt[1] = si.wrapping_add(1);
        self.raw_segment(Dir::C2S, t + 0.0002, self.nxt[0], &[], ACK)
    }

    /// Sends bytes in `dir` at `t` (several segments of at most [`MSS`]
    /// bytes, all at `t`, when longer), advancing the sequence number.
    pub fn send(&mut self, dir: Dir, t: f64, bytes: &[u8]) -> &mut Self {
        for chunk in bytes.chunks(MSS) {
            let seq = self.nxt[dir.idx()];
            self.raw_segment(dir, t, seq, chunk, PSH | ACK);
            self.nxt[dir.idx()] = seq.wrapping_add(chunk.len() as u32);
        }
        self
    }

    /// Sends bytes in segments of `chunk` bytes, the i-th at `t + i * dt`.
    /// Returns the time of the last segment.
    pub fn send_split(&mut self, dir: Dir, t: f64, bytes: &[u8], chunk: usize, dt: f64) -> f64 {
        let mut last = t;
        for (i, c) in bytes.chunks(chunk).enumerate() {
            last = t + i as f64 * dt;
            self.send(dir, last, c);
        }
        last
    }

    /// Advances the sequence number by `n` bytes without emitting anything
    /// (after crafting those bytes' segments by hand with [`Conn::segment`]).
    pub fn advance(&mut self, dir: Dir, n: usize) -> &mut Self {
        let i = dir.idx();
        self.nxt[i] = self.nxt[i].wrapping_add(n as u32);
        self
    }

    /// `bytes` were sent in `dir` but the capture lost them: the sequence
    /// number advances and nothing is emitted.
    pub fn lose(&mut self, dir: Dir, bytes: &[u8]) -> &mut Self {
        self.advance(dir, bytes.len())
    }

    pub fn fin(&mut self, dir: Dir, t: f64) -> &mut Self {
        let seq = self.nxt[dir.idx()];
        self.raw_segment(dir, t, seq, &[], FIN | ACK);
        self.nxt[dir.idx()] = seq.wrapping_add(1);
        self
    }

    pub fn rst(&mut self, dir: Dir, t: f64) -> &mut Self {
        let seq = self.nxt[dir.idx()];
        self.raw_segment(dir, t, seq, &[], RST | ACK)
    }

    /// A bare ACK (no payload).
    pub fn ack(&mut self, dir: Dir, t: f64) -> &mut Self {
        let seq = self.nxt[dir.idx()];
        self.raw_segment(dir, t, seq, &[], ACK)
    }

    pub fn client_send(&mut self, t: f64, bytes: &[u8]) -> &mut Self {
        self.send(Dir::C2S, t, bytes)
    }
    pub fn server_send(&mut self, t: f64, bytes: &[u8]) -> &mut Self {
        self.send(Dir::S2C, t, bytes)
    }
    pub fn client_fin(&mut self, t: f64) -> &mut Self {
        self.fin(Dir::C2S, t)
    }
    pub fn server_fin(&mut self, t: f64) -> &mut Self {
        self.fin(Dir::S2C, t)
    }
    pub fn client_rst(&mut self, t: f64) -> &mut Self {
        self.rst(Dir::C2S, t)
    }
    pub fn server_rst(&mut self, t: f64) -> &mut Self {
        self.rst(Dir::S2C, t)
    }
    pub fn client_ack(&mut self, t: f64) -> &mut Self {
        self.ack(Dir::C2S, t)
    }
    pub fn server_ack(&mut self, t: f64) -> &mut Self {
        self.ack(Dir::S2C, t)
    }

    /// `host:port` of the server as a Host header writes it.
    pub fn host(&self) -> String {
        self.server.to_string()
    }

    /// TCP handshake at `t`, upgrade request (path `/chat`, key [`KEY`]) at
    /// `t + REQ_AT`, 101 response with the right accept at `t + RESP_AT`.
    pub fn open_ws(&mut self, t: f64) -> &mut Self {
        self.open_ws_with(t, &[], &[])
    }

    /// [`Conn::open_ws`] with extra request and response headers.
    pub fn open_ws_with(
        &mut self,
        t: f64,
        req: &[(&str, &str)],
        resp: &[(&str, &str)],
    ) -> &mut Self {
        self.handshake(t);
        let host = self.host();
        self.client_send(t + REQ_AT, &upgrade_request("/chat", &host, KEY, req));
        self.server_send(t + RESP_AT, &upgrade_response(101, Some(KEY), resp))
    }

    /// The textbook ending at `t`: client close 1000 "bye", server close
    /// 1000 at `t + 0.001`, server FIN at `t + 0.002`, client FIN at
    /// `t + 0.003`, server ACK at `t + 0.004`.
    pub fn close_cleanly(&mut self, t: f64) -> &mut Self {
        self.client_send(t, &cclose(1000, "bye"));
        self.server_send(t + 0.001, &sclose(1000, ""));
        self.server_fin(t + 0.002);
        self.client_fin(t + 0.003);
        self.server_ack(t + 0.004)
    }
}

// ---------------------------------------------------------------------------
// Capture files
// ---------------------------------------------------------------------------

/// Link layer of a capture (or of one pcapng interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// LINKTYPE_ETHERNET (1), "EN10MB".
    Ethernet,
    /// LINKTYPE_RAW (101), "RAW": the IP packet alone.
    Raw,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// Any other link type number; records hold the IP packet alone.
    Other(u32),
}

impl Link {
    pub fn number(self) -> u32 {
        match self {
            Link::Ethernet => 1,
            Link::Raw => 101,
            Link::LinuxSll2 => 276,
            Link::Other(n) => n,
        }
    }

    fn frame(self, p: &Pkt) -> Vec<u8> {
        let mut out = Vec::with_capacity(p.l3.len() + 20);
        match self {
            Link::Ethernet => {
                out.extend_from_slice(&p.dst_mac);
                out.extend_from_slice(&p.src_mac);
                out.extend_from_slice(&p.ethertype.to_be_bytes());
            }
            Link::LinuxSll2 => {
                out.extend_from_slice(&p.ethertype.to_be_bytes()); // protocol type
                out.extend_from_slice(&[0, 0]); // reserved
                out.extend_from_slice(&1u32.to_be_bytes()); // interface index
                out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                out.push(0); // PACKET_HOST
                out.push(6); // address length
                out.extend_from_slice(&p.src_mac);
                out.extend_from_slice(&[0, 0]);
            }
            Link::Raw | Link::Other(_) => {
                assert_ne!(p.ethertype, ETHERTYPE_ARP, "ARP needs a link layer");
            }
        }
        out.extend_from_slice(&p.l3);
        out
    }
}

/// Captured records in the order they will be written.
#[derive(Clone, Debug)]
pub struct Capture {
    pub packets: Vec<Pkt>,
    /// Link type per interface; pcap output uses the first.
    pub links: Vec<Link>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

/// Seconds as integer microseconds.
pub fn micros(t: f64) -> u64 {
    (t * 1e6).round() as u64
}

/// Seconds rounded to the microsecond, as a reader of the capture sees them.
pub fn on_wire(t: f64) -> f64 {
    micros(t) as f64 / 1e6
}

impl Capture {
    /// An empty Ethernet capture.
    pub fn new() -> Self {
        Capture {
            packets: Vec::new(),
            links: vec![Link::Ethernet],
        }
    }

    /// The packets of `conn`, in the order they were made.
    pub fn of(conn: &Conn) -> Self {
        let mut c = Capture::new();
        c.add(conn);
        c
    }

    /// The packets of several conversations merged by time (stable).
    pub fn merge(conns: &[&Conn]) -> Self {
        let mut c = Capture::new();
        for conn in conns {
            c.add(conn);
        }
        c.sort_by_time();
        c
    }

    pub fn with_link(mut self, link: Link) -> Self {
        self.links = vec![link];
        self
    }

    /// Appends the packets of `conn`.
    pub fn add(&mut self, conn: &Conn) -> &mut Self {
        self.packets.extend(conn.packets.iter().cloned());
        self
    }

    pub fn sort_by_time(&mut self) -> &mut Self {
        self.packets.sort_by(|a, b| a.t.total_cmp(&b.t));
        self
    }

    /// A UDP datagram between two `ip:port` endpoints.
    pub fn udp(&mut self, t: f64, src: &str, dst: &str, payload: &[u8]) -> &mut Self {
        let src: SocketAddr = src.parse().unwrap();
        let dst: SocketAddr = dst.parse().unwrap();
        let builder = match (src.ip(), dst.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), 64),
            (IpAddr::V6(a), IpAddr::V6(b)) => PacketBuilder::ipv6(a.octets(), b.octets(), 64),
            _ => panic!("mixed IP versions"),
        }
        .udp(src.port(), dst.port());
        let mut l3 = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut l3, payload).unwrap();
        self.packets.push(Pkt {
            t,
            ethertype: ethertype_of(src.ip()),
            src_mac: mac_for(src.ip()),
            dst_mac: mac_for(dst.ip()),
            l3,
            snap: None,
            iface: 0,
        });
        self
    }

    /// A UDP datagram between two hosts no test connection uses: it only
    /// makes the capture go on until `t`.
    pub fn filler(&mut self, t: f64) -> &mut Self {
        self.udp(t, "10.0.0.99:40000", "10.0.0.100:9", b"filler")
    }

    /// An ARP who-has request (Ethernet only).
    pub fn arp(&mut self, t: f64, sender: [u8; 4], target: [u8; 4]) -> &mut Self {
        let sha = mac_for(IpAddr::from(sender));
        let mut l3 = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        l3.extend_from_slice(&sha);
        l3.extend_from_slice(&sender);
        l3.extend_from_slice(&[0; 6]);
        l3.extend_from_slice(&target);
        self.packets.push(Pkt {
            t,
            ethertype: ETHERTYPE_ARP,
            src_mac: sha,
            dst_mac: [0xff; 6],
            l3,
            snap: None,
            iface: 0,
        });
        self
    }

    /// A record claiming to be IPv4 whose bytes are not a valid IP packet.
    pub fn junk(&mut self, t: f64, bytes: &[u8]) -> &mut Self {
        self.packets.push(Pkt {
            t,
            ethertype: ETHERTYPE_IPV4,
            src_mac: [0x02, 0, 0, 0, 0, 0xaa],
            dst_mac: [0x02, 0, 0, 0, 0, 0xbb],
            l3: bytes.to_vec(),
            snap: None,
            iface: 0,
        });
        self
    }

    /// Records `range` of this capture as a new capture (same links).
    pub fn slice(&self, range: Range<usize>) -> Capture {
        Capture {
            packets: self.packets[range].to_vec(),
            links: self.links.clone(),
        }
    }

    fn records(&self) -> Vec<(u64, Vec<u8>, u32, usize)> {
        self.packets
            .iter()
            .map(|p| {
                let link = self.links[p.iface];
                let mut data = link.frame(p);
                let orig = data.len() as u32;
                if let Some(snap) = p.snap {
                    data.truncate(snap);
                }
                (micros(p.t), data, orig, p.iface)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Sum of the records' captured lengths.
    pub fn captured_bytes(&self) -> u64 {
        self.records().iter().map(|r| r.1.len() as u64).sum()
    }

    pub fn first_ts(&self) -> f64 {
        on_wire(self.packets.first().expect("no packets").t)
    }

    pub fn last_ts(&self) -> f64 {
        on_wire(self.packets.last().expect("no packets").t)
    }

    fn pcap_with(&self, magic: u32, nanos: bool) -> Vec<u8> {
        assert!(
            self.packets.iter().all(|p| p.iface == 0),
            "pcap has one interface"
        );
        let mut out = Vec::new();
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        out.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
        out.extend_from_slice(&self.links[0].number().to_le_bytes());
        for (us, data, orig, _) in self.records() {
            let frac = if nanos {
                (us % 1_000_000) * 1000
            } else {
                us % 1_000_000
            };
            out.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(frac as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&orig.to_le_bytes());
            out.extend_from_slice(&data);
        }
        out
    }

    /// Classic pcap, microsecond timestamps, little-endian.
    pub fn pcap_bytes(&self) -> Vec<u8> {
        self.pcap_with(0xa1b2_c3d4, false)
    }

    /// Classic pcap, nanosecond timestamps.
    pub fn pcap_ns_bytes(&self) -> Vec<u8> {
        self.pcap_with(0xa1b2_3c4d, true)
    }

    /// pcapng: one section, one IDB per link (default µs resolution), EPBs.
    pub fn pcapng_bytes(&self) -> Vec<u8> {
        fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
            let len = 12 + body.len().next_multiple_of(4);
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(body);
            out.resize(out.len() + body.len().next_multiple_of(4) - body.len(), 0);
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
        let mut out = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        block(&mut out, 0x0a0d_0d0a, &shb);
        for link in &self.links {
            let mut idb = Vec::new();
            idb.extend_from_slice(&(link.number() as u16).to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&262_144u32.to_le_bytes());
            block(&mut out, 1, &idb);
        }
        for (us, data, orig, iface) in self.records() {
            let mut epb = Vec::new();
            epb.extend_from_slice(&(iface as u32).to_le_bytes());
            epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(us as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(&orig.to_le_bytes());
            epb.extend_from_slice(&data);
            block(&mut out, 6, &epb);
        }
        out
    }

    /// Writes a microsecond pcap file; returns its path.
    pub fn write(&self, name: &str) -> TempFile {
        write_file(name, "pcap", &self.pcap_bytes())
    }

    pub fn write_pcap_ns(&self, name: &str) -> TempFile {
        write_file(name, "pcap", &self.pcap_ns_bytes())
    }

    pub fn write_pcapng(&self, name: &str) -> TempFile {
        write_file(name, "pcapng", &self.pcapng_bytes())
    }
}

static FILE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A file a test wrote in the temp dir, removed when dropped (thousands of
/// captures a run would otherwise pile up there).
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    /// A fresh path in the temp dir for a file a test (or wsclose) writes,
    /// removed with the guard; nothing is created.
    pub fn named(name: &str) -> TempFile {
        let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = format!("wsclose-test-{}-{n}-{name}", std::process::id());
        TempFile(std::env::temp_dir().join(file))
    }
}

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempFile {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to a fresh file in the temp dir, removed when the
/// returned guard is dropped (and, with `WSCLOSE_KEEP_CAPTURES=DIR`, a copy
/// to `DIR/<name>.<ext>` that stays).
pub fn write_file(name: &str, ext: &str, bytes: &[u8]) -> TempFile {
    let path = TempFile::named(&format!("{name}.{ext}"));
    std::fs::write(&path, bytes).expect("write capture");
    if let Some(dir) = std::env::var_os("WSCLOSE_KEEP_CAPTURES") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create WSCLOSE_KEEP_CAPTURES dir");
        std::fs::write(dir.join(format!("{name}.{ext}")), bytes).expect("keep capture");
    }
    path
}

// ---------------------------------------------------------------------------
// Running wsclose
// ---------------------------------------------------------------------------

pub fn wsclose() -> assert_cmd::Command {
    assert_cmd::cargo::cargo_bin_cmd!("wsclose")
}

pub fn run(args: &[&str]) -> Output {
    wsclose().args(args).output().expect("run wsclose")
}

pub fn run_with_stdin(args: &[&str], stdin: Vec<u8>) -> Output {
    wsclose()
        .args(args)
        .write_stdin(stdin)
        .output()
        .expect("run wsclose")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `wsclose analyze PATH --json - EXTRA...`, exit status 0, validated.
pub fn analyze_json(path: &Path, extra: &[&str]) -> Value {
    analyze_files_json(&[path], extra, 0)
}

/// `wsclose analyze PATHS... --json - EXTRA...` with the expected exit status.
pub fn analyze_files_json(paths: &[&Path], extra: &[&str], status: i32) -> Value {
    let mut args = vec!["analyze"];
    args.extend(paths.iter().map(|p| path_str(p)));
    args.extend(["--json", "-"]);
    args.extend_from_slice(extra);
    summary_from(&run(&args), status)
}

fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the exit status, parses stdout as the summary, validates it.
pub fn summary_from(out: &Output, status: i32) -> Value {
    assert_eq!(
        out.status.code(),
        Some(status),
        "unexpected exit status\n{}",
        show(out)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", show(out)));
    validate_summary(&v);
    v
}

fn schema_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/summary.schema.json");
        let text = std::fs::read_to_string(&p).expect("read tests/contract/summary.schema.json");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    })
}

/// The severity the contract's findings tables give each kind (part 1 and
/// part 2's "New per-connection findings"). `close_timeout` is listed as
/// `warning`; it is `error` when the answer never came in the capture (see
/// [`finding_severity_ok`]).
pub fn severity_of(kind: &str) -> &'static str {
    match kind {
        "abnormal_closure"
        | "unanswered_close"
        | "reserved_close_code"
        | "invalid_close_code"
        | "invalid_close_payload"
        | "invalid_utf8_reason"
        | "control_frame_too_long"
        | "fragmented_control_frame"
        | "data_after_close"
        | "unmasked_client_frame"
        | "masked_server_frame"
        | "reserved_bits"
        | "unknown_opcode"
        | "malformed_frame"
        | "invalid_accept"
        | "invalid_utf8_text"
        | "orphan_continuation"
        | "interleaved_message"
        | "non_minimal_length" => "error",
        "close_timeout"
        | "reset_after_close"
        | "tcp_not_closed"
        | "error_close_code"
        | "handshake_rejected"
        | "capture_gap"
        | "closed_before_answer"
        | "foreign_reset"
        | "unanswered_ping" => "warning",
        "client_closed_tcp_first" | "midstream" => "info",
        other => panic!("unknown finding kind {other}"),
    }
}

/// Whether `severity` is one the findings tables allow for `kind`:
/// `close_timeout` is "warning, or error when the answer never came in the
/// capture" (contract part 1, as amended by issue 5/7); the others have one.
pub fn finding_severity_ok(kind: &str, severity: &str) -> bool {
    match kind {
        "close_timeout" => severity == "warning" || severity == "error",
        _ => severity == severity_of(kind),
    }
}

/// The non-zero entries of a JSON object of counts.
pub fn count_map(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .expect("object of counts")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Schema validation plus the contract's cross-field invariants, checked on
/// every summary any test reads.
pub fn validate_summary(v: &Value) {
    let pretty = || serde_json::to_string_pretty(v).unwrap();
    let errors: Vec<String> = schema_validator()
        .iter_errors(v)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary does not match the schema:\n{}\n{}",
        errors.join("\n"),
        pretty()
    );

    let conns = v["connections"].as_array().unwrap();
    let totals = &v["totals"];
    assert_eq!(
        totals["connections"].as_u64(),
        Some(conns.len() as u64),
        "totals.connections\n{}",
        pretty()
    );

    let mut outcomes = BTreeMap::new();
    let mut findings = BTreeMap::new();
    let mut severities = BTreeMap::new();
    let mut closes = 0;
    let mut prev_first = f64::MIN;
    for (i, c) in conns.iter().enumerate() {
        // id: 1-based in order of each connection's first packet.
        assert_eq!(
            c["id"].as_u64(),
            Some(i as u64 + 1),
            "ids are 1..n in order\n{}",
            pretty()
        );
        let first = c["first_ts"].as_f64().unwrap();
        assert!(
            first >= prev_first,
            "connections ordered by first packet\n{}",
            pretty()
        );
        prev_first = first;

        let outcome = c["close"]["outcome"].as_str().unwrap().to_string();
        *outcomes.entry(outcome.clone()).or_insert(0u64) += 1;
        let mut seen = std::collections::HashSet::new();
        for f in c["findings"].as_array().unwrap() {
            let kind = f["kind"].as_str().unwrap();
            assert!(
                finding_severity_ok(kind, f["severity"].as_str().unwrap()),
                "severity of {kind}\n{}",
                pretty()
            );
            // Rule 6: one finding per kind and side.
            assert!(
                seen.insert((kind.to_string(), f["side"].as_str().map(str::to_string))),
                "two {kind} findings for one side (rule 6)\n{}",
                pretty()
            );
            *findings.entry(kind.to_string()).or_insert(0u64) += 1;
            *severities
                .entry(f["severity"].as_str().unwrap().to_string())
                .or_insert(0u64) += 1;
        }
        let has = |k: &str| seen.iter().any(|(kind, _)| kind == k);
        for (o, k) in [
            ("abnormal", "abnormal_closure"),
            ("unanswered", "unanswered_close"),
            ("timeout", "close_timeout"),
            ("rejected", "handshake_rejected"),
        ] {
            assert_eq!(
                outcome == o,
                has(k),
                "outcome {o} goes with finding {k}\n{}",
                pretty()
            );
        }
        // An encrypted (undecrypted TLS) connection shows no handshake.
        assert_eq!(
            c["handshake"].is_null(),
            has("midstream") || outcome == "encrypted",
            "handshake null iff midstream or encrypted\n{}",
            pretty()
        );

        let close = &c["close"];
        let (cf, sf) = (&close["client_frame"], &close["server_frame"]);
        assert_eq!(
            close["initiator"].is_null(),
            cf.is_null() && sf.is_null(),
            "initiator\n{}",
            pretty()
        );
        assert_eq!(
            close["handshake_s"].is_null(),
            cf.is_null() || sf.is_null(),
            "handshake_s\n{}",
            pretty()
        );
        let end = &close["tcp_end"];
        let none = end["kind"] == "none";
        assert_eq!(none, end["by"].is_null(), "tcp_end.by\n{}", pretty());
        assert_eq!(none, end["ts"].is_null(), "tcp_end.ts\n{}", pretty());
        // Rule 11: idle_s is null without close frame and TCP end, and when rejected.
        if outcome == "rejected" || (close["initiator"].is_null() && none) {
            assert!(
                close["idle_s"].is_null(),
                "idle_s must be null (rule 11)\n{}",
                pretty()
            );
        } else {
            assert!(
                close["idle_s"].is_number(),
                "idle_s must be a number (rule 11)\n{}",
                pretty()
            );
        }
        // Rule 4: reason_valid_utf8 is true whenever reason is null.
        for f in [cf, sf] {
            if !f.is_null() && f["reason"].is_null() {
                assert_eq!(f["reason_valid_utf8"], true, "rule 4\n{}", pretty());
            }
        }
        closes += c["frames"]["client"]["close"].as_u64().unwrap()
            + c["frames"]["server"]["close"].as_u64().unwrap();
    }
    assert_eq!(
        count_map(&totals["outcomes"]),
        outcomes,
        "totals.outcomes\n{}",
        pretty()
    );
    assert_eq!(
        count_map(&totals["findings"]),
        findings,
        "totals.findings\n{}",
        pretty()
    );
    assert_eq!(
        count_map(&totals["severities"]),
        severities,
        "totals.severities\n{}",
        pretty()
    );
    let codes: u64 = count_map(&totals["close_codes"]).values().sum();
    assert_eq!(
        codes,
        closes,
        "totals.close_codes counts every close frame\n{}",
        pretty()
    );
}

// ---------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------

pub fn conns(s: &Value) -> &Vec<Value> {
    s["connections"].as_array().expect("connections")
}

/// The one connection of a summary.
pub fn only_conn(s: &Value) -> &Value {
    let c = conns(s);
    assert_eq!(
        c.len(),
        1,
        "expected exactly one connection:\n{}",
        serde_json::to_string_pretty(s).unwrap()
    );
    &c[0]
}

pub fn outcome(c: &Value) -> &str {
    c["close"]["outcome"].as_str().expect("outcome")
}

/// `(kind, side)` of a connection's findings, sorted.
pub fn findings(c: &Value) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = c["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["side"].as_str().map(str::to_string),
            )
        })
        .collect();
    v.sort();
    v
}

/// Expected findings: `(kind, side)` pairs.
pub type Expected<'a> = [(&'a str, Option<&'a str>)];

/// Asserts a connection has exactly these findings (any order).
#[track_caller]
pub fn assert_findings(c: &Value, expected: &Expected) {
    let mut exp: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(k, s)| (k.to_string(), s.map(str::to_string)))
        .collect();
    exp.sort();
    assert_eq!(
        findings(c),
        exp,
        "findings of\n{}",
        serde_json::to_string_pretty(c).unwrap()
    );
}

/// The finding of `kind` for `side`.
#[track_caller]
pub fn finding<'a>(c: &'a Value, kind: &str, side: Option<&str>) -> &'a Value {
    c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["side"].as_str() == side)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} finding for {side:?} in\n{}",
                serde_json::to_string_pretty(c).unwrap()
            )
        })
}

/// Asserts a JSON number is within [`EPS`] of `expected`.
#[track_caller]
pub fn assert_num(actual: &Value, expected: f64) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number near {expected}, got {actual}"));
    assert!(
        (a - expected).abs() <= EPS,
        "expected {expected:.6}, got {a:.6} (diff {:e})",
        a - expected
    );
}

/// Asserts the outcome, with the connection in the message when it differs.
#[track_caller]
pub fn assert_outcome(c: &Value, expected: &str) {
    assert_eq!(
        outcome(c),
        expected,
        "outcome of\n{}",
        serde_json::to_string_pretty(c).unwrap()
    );
}

/// Asserts `close.tcp_end`.
#[track_caller]
pub fn assert_tcp_end(c: &Value, kind: &str, by: Option<&str>, ts: Option<f64>) {
    let e = &c["close"]["tcp_end"];
    assert_eq!(
        e["kind"],
        kind,
        "tcp_end.kind of\n{}",
        serde_json::to_string_pretty(c).unwrap()
    );
    assert_eq!(e["by"].as_str(), by, "tcp_end.by");
    match ts {
        Some(t) => assert_num(&e["ts"], t),
        None => assert!(e["ts"].is_null(), "tcp_end.ts should be null"),
    }
}

/// Asserts a `close.client_frame` / `close.server_frame` object.
#[track_caller]
pub fn assert_close_frame(
    f: &Value,
    ts: f64,
    code: Option<u64>,
    reason: Option<&str>,
    valid: bool,
    len: u64,
) {
    assert!(f.is_object(), "expected a close frame, got {f}");
    assert_num(&f["ts"], ts);
    assert_eq!(f["code"].as_u64(), code, "code in {f}");
    assert_eq!(f["reason"].as_str(), reason, "reason in {f}");
    assert_eq!(f["reason_valid_utf8"], valid, "reason_valid_utf8 in {f}");
    assert_eq!(f["payload_len"].as_u64(), Some(len), "payload_len in {f}");
}

/// Asserts one side's frame counters:
/// `[text, binary, continuation, ping, pong, close, payload_bytes]`.
#[track_caller]
pub fn assert_frames(c: &Value, side: &str, counts: [u64; 7]) {
    let f = &c["frames"][side];
    let keys = [
        "text",
        "binary",
        "continuation",
        "ping",
        "pong",
        "close",
        "payload_bytes",
    ];
    let got: Vec<u64> = keys.iter().map(|k| f[k].as_u64().unwrap()).collect();
    assert_eq!(
        got,
        counts.to_vec(),
        "{side} frames {keys:?} of\n{}",
        serde_json::to_string_pretty(c).unwrap()
    );
}

// ---------------------------------------------------------------------------
// Segmentation helpers (tests/properties.rs, tests/adversarial.rs)
// ---------------------------------------------------------------------------

/// Sends `bytes` in `dir` as segments of the given sizes (used in turn,
/// cycling; 0 counts as 1), reordered within consecutive windows of `window`
/// segments (a seeded shuffle; 1 keeps the order), the k-th emitted of n at
/// `t + span * k / n`. The sequence number advances past all of `bytes`.
/// Each segment acknowledges everything the peer sent.
#[allow(clippy::too_many_arguments)]
pub fn send_segments(
    conn: &mut Conn,
    dir: Dir,
    t: f64,
    span: f64,
    bytes: &[u8],
    sizes: &[usize],
    window: usize,
    seed: u64,
) -> f64 {
    assert!(!sizes.is_empty());
    let base = conn.offset(dir);
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < bytes.len() {
        let n = sizes[k % sizes.len()].max(1).min(bytes.len() - at);
        chunks.push((at, n));
        at += n;
        k += 1;
    }
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for w in chunks.chunks_mut(window.max(1)) {
        for i in (1..w.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            w.swap(i, j);
        }
    }
    let n = chunks.len().max(1);
    let mut last = t;
    for (i, (off, len)) in chunks.iter().enumerate() {
        last = t + span * i as f64 / n as f64;
        conn.segment(
            dir,
            last,
            base.wrapping_add(*off as u32),
            &bytes[*off..*off + len],
            PSH | ACK,
        );
    }
    conn.advance(dir, bytes.len());
    last
}

/// Schema validation alone, for summaries where a cross-field invariant of
/// [`validate_summary`] does not hold by design (time running backwards:
/// connections are numbered in order of arrival, not of timestamp).
pub fn validate_schema(v: &Value) {
    let errors: Vec<String> = schema_validator()
        .iter_errors(v)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary does not match the schema:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(v).unwrap()
    );
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// The decimal numbers written in a message ("60.0 s", "3 frames", "1009"),
/// in order. A run like `1.2.3` gives its longest parsable prefix.
pub fn numbers_in(message: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<f64>| {
        let t = cur.trim_end_matches('.');
        let mut best = None;
        for end in (1..=t.len()).rev() {
            if let Ok(x) = t[..end].parse::<f64>() {
                best = Some(x);
                break;
            }
        }
        if let Some(x) = best {
            out.push(x);
        }
        cur.clear();
    };
    for ch in message.chars() {
        if ch.is_ascii_digit() || (ch == '.' && !cur.is_empty()) {
            cur.push(ch);
        } else if !cur.is_empty() {
            flush(&mut cur, &mut out);
        }
    }
    if !cur.is_empty() {
        flush(&mut cur, &mut out);
    }
    out
}

/// Whether a message mentions the integer `n` as a number of its own.
pub fn mentions_number(message: &str, n: u64) -> bool {
    message
        .split(|c: char| !c.is_ascii_digit())
        .any(|tok| tok == n.to_string())
}

/// Whether a message mentions a number within `tol` of `x` (so "60.0 s" and
/// "60.05 s" both mention 60.05 with `tol` 0.05).
pub fn mentions_value(message: &str, x: f64, tol: f64) -> bool {
    numbers_in(message).iter().any(|y| (y - x).abs() <= tol)
}

/// Asserts that no finding message holds a raw epoch time: no number of
/// 1e9 or more (the captures of these tests start at [`T0`]).
#[track_caller]
pub fn assert_no_epoch_in_findings(s: &Value) {
    for c in conns(s) {
        for f in c["findings"].as_array().unwrap() {
            let msg = f["message"].as_str().unwrap();
            assert!(
                numbers_in(msg).iter().all(|x| *x < 1e9),
                "{} message holds an epoch time: {msg:?}",
                f["kind"]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Diagnoses (contract part 2, DIAGNOSES.md)
// ---------------------------------------------------------------------------

/// The severity the contract's diagnoses table gives each kind.
pub fn diagnosis_severity(kind: &str) -> &'static str {
    match kind {
        "idle_timeout" | "max_lifetime" | "never_answers_close" | "heartbeat_lost" => "error",
        "mass_disconnect" | "closes_without_waiting" | "error_close_codes" | "foreign_resets" => {
            "warning"
        }
        other => panic!("unknown diagnosis kind {other}"),
    }
}

/// Kinds whose `value_s`, `min_s`, `max_s` are `null` (D3).
pub const NO_VALUE_KINDS: [&str; 5] = [
    "mass_disconnect",
    "never_answers_close",
    "closes_without_waiting",
    "error_close_codes",
    "foreign_resets",
];

/// The codes of `error_close_code`, hence of `error_close_codes`.
pub const ERROR_CODES: [u64; 8] = [1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014];

fn severity_rank(s: &str) -> u8 {
    match s {
        "error" => 0,
        "warning" => 1,
        _ => 2,
    }
}

/// The top-level `diagnoses` array (always present).
#[track_caller]
pub fn diagnoses(s: &Value) -> &Vec<Value> {
    s["diagnoses"].as_array().unwrap_or_else(|| {
        panic!(
            "`diagnoses` must always be present as an array, got {}",
            s["diagnoses"]
        )
    })
}

/// The diagnoses of one kind, in output order.
pub fn diags_of<'a>(s: &'a Value, kind: &str) -> Vec<&'a Value> {
    diagnoses(s).iter().filter(|d| d["kind"] == kind).collect()
}

/// The one diagnosis of `kind`.
#[track_caller]
pub fn only_diag<'a>(s: &'a Value, kind: &str) -> &'a Value {
    let d = diags_of(s, kind);
    assert_eq!(
        d.len(),
        1,
        "expected exactly one {kind} diagnosis in\n{}",
        serde_json::to_string_pretty(&s["diagnoses"]).unwrap()
    );
    d[0]
}

/// Asserts there is no diagnosis of `kind`.
#[track_caller]
pub fn assert_no_diag(s: &Value, kind: &str) {
    assert!(
        diags_of(s, kind).is_empty(),
        "expected no {kind} diagnosis in\n{}",
        serde_json::to_string_pretty(&s["diagnoses"]).unwrap()
    );
}

/// A diagnosis' connection ids.
pub fn diag_ids(d: &Value) -> Vec<u64> {
    d["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|v| v.as_u64().expect("connection id"))
        .collect()
}

/// `ip` of an `ip:port` / `[ip]:port` address.
pub fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').expect("ip:port").0
}

/// The address the contract's `peer` names for `side` of a connection: the
/// server's `ip:port`, the client's `ip` without port.
fn side_address(c: &Value, side: &str) -> String {
    match side {
        "server" => c["server"].as_str().unwrap().to_string(),
        _ => ip_of(c["client"].as_str().unwrap()).to_string(),
    }
}

/// The diagnoses' contract invariants, on top of [`validate_summary`]:
/// the array is present and ordered (severity, then number of connections,
/// most first); each entry's severity follows the table; ids are ascending,
/// never empty, and name listed connections; `peer` is the address of `side`
/// exactly when all connections share it; `value_s`/`min_s`/`max_s` are
/// null for the D3 kinds, else `min_s <= value_s <= max_s`; `matches` is
/// `[]` without a value; `error_close_codes` carries an error `code`;
/// `mass_disconnect` entries share no connection.
pub fn validate_diagnoses(s: &Value) {
    let pretty = || serde_json::to_string_pretty(&s["diagnoses"]).unwrap();
    let ds = diagnoses(s);
    let by_id: BTreeMap<u64, &Value> = conns(s)
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c))
        .collect();
    let mut prev: Option<(u8, usize)> = None;
    let mut in_mass = std::collections::HashSet::new();
    for d in ds {
        let kind = d["kind"].as_str().expect("kind");
        assert_eq!(
            d["severity"].as_str(),
            Some(diagnosis_severity(kind)),
            "severity of {kind}\n{}",
            pretty()
        );
        let ids = diag_ids(d);
        assert!(!ids.is_empty(), "connections never empty\n{}", pretty());
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "connections ascending\n{}",
            pretty()
        );
        for id in &ids {
            assert!(
                by_id.contains_key(id),
                "diagnosis names unknown connection {id}\n{}",
                pretty()
            );
        }
        let key = (severity_rank(d["severity"].as_str().unwrap()), ids.len());
        if let Some((rank, n)) = prev {
            assert!(
                rank < key.0 || (rank == key.0 && n >= key.1),
                "diagnoses ordered by severity, then number of connections\n{}",
                pretty()
            );
        }
        prev = Some(key);

        match d["side"].as_str() {
            None => assert!(d["peer"].is_null(), "peer null without side\n{}", pretty()),
            Some(side) => {
                let addrs: std::collections::BTreeSet<String> =
                    ids.iter().map(|id| side_address(by_id[id], side)).collect();
                if addrs.len() == 1 {
                    let want = addrs.iter().next().unwrap();
                    let got = d["peer"].as_str().unwrap_or("<null>");
                    // Reading: `foreign_resets` names "the address the
                    // resets claim to come from", which for a client may
                    // also be written with its port.
                    let full_client = side == "client"
                        && kind == "foreign_resets"
                        && ids
                            .iter()
                            .all(|id| by_id[id]["client"].as_str() == Some(got));
                    assert!(
                        got == want
                            || got == want.trim_matches(|c| c == '[' || c == ']')
                            || full_client,
                        "peer of {kind} should be {want}, got {got}\n{}",
                        pretty()
                    );
                } else {
                    assert!(
                        d["peer"].is_null(),
                        "peer null when addresses differ\n{}",
                        pretty()
                    );
                }
            }
        }

        let (v, lo, hi) = (&d["value_s"], &d["min_s"], &d["max_s"]);
        if NO_VALUE_KINDS.contains(&kind) {
            assert!(
                v.is_null() && lo.is_null() && hi.is_null(),
                "value_s/min_s/max_s null for {kind} (D3)\n{}",
                pretty()
            );
            assert_eq!(
                d["matches"].as_array().map(Vec::len),
                Some(0),
                "no matches without a value\n{}",
                pretty()
            );
        } else {
            let (v, lo, hi) = (
                v.as_f64().expect("value_s"),
                lo.as_f64().expect("min_s"),
                hi.as_f64().expect("max_s"),
            );
            assert!(
                lo <= v + EPS && v <= hi + EPS,
                "min_s <= value_s <= max_s\n{}",
                pretty()
            );
        }
        if kind == "error_close_codes" {
            let code = d["code"].as_u64().expect("error_close_codes carries code");
            assert!(ERROR_CODES.contains(&code), "code {code}\n{}", pretty());
        }
        if kind == "mass_disconnect" {
            for id in &ids {
                assert!(
                    in_mass.insert(*id),
                    "connection {id} in two mass_disconnect entries (D3)\n{}",
                    pretty()
                );
            }
        }
        assert!(
            d["advice"].is_null() || d["advice"].is_string(),
            "advice\n{}",
            pretty()
        );
    }
}

/// [`analyze_json`] plus [`validate_diagnoses`].
pub fn analyze_diag(path: &Path, extra: &[&str]) -> Value {
    let s = analyze_json(path, extra);
    validate_diagnoses(&s);
    s
}

/// Asserts a diagnosis' `value_s`, `min_s`, `max_s` (within 1 ms: they are
/// durations between microsecond timestamps).
#[track_caller]
pub fn assert_values(d: &Value, value: f64, min: f64, max: f64) {
    for (k, want) in [("value_s", value), ("min_s", min), ("max_s", max)] {
        let got = d[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} should be a number in {d}"));
        assert!(
            (got - want).abs() <= 1e-3,
            "{k}: expected {want}, got {got} in\n{}",
            serde_json::to_string_pretty(d).unwrap()
        );
    }
}

/// A small fixed-seed PRNG (xorshift64*) for reproducible "random" captures.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

// ---------------------------------------------------------------------------
// Connections for diagnoses (times are offsets from T0)
// ---------------------------------------------------------------------------

/// How a connection's TCP ends: who sends the FIN (the peer answers with
/// its own FIN 1 ms later, then an ACK) or the RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Fin(Dir),
    Rst(Dir),
}

/// The `i`-th client of these tests: `10.0.0.1:(40000 + i)`.
pub fn client_no(i: usize) -> String {
    format!("10.0.0.1:{}", 40000 + i)
}

/// Ends `c`'s TCP connection at `T0 + at`.
pub fn end_tcp(c: &mut Conn, end: End, at: f64) {
    match end {
        End::Fin(d) => {
            let other = if d == Dir::C2S { Dir::S2C } else { Dir::C2S };
            c.fin(d, T0 + at);
            c.fin(other, T0 + at + 0.001);
            c.ack(d, T0 + at + 0.002);
        }
        End::Rst(d) => {
            c.rst(d, T0 + at);
        }
    }
}

/// A WebSocket connection upgraded at `T0 + start` (101 at `+ RESP_AT`),
/// a text frame from the client at each of `frames`, then no close frame:
/// its TCP connection ends by `end` at `end_at`, a *cut* (outcome
/// `abnormal`). Its `idle_s` is `end_at` minus the last of `frames`.
pub fn cut_conn(
    client: &str,
    server: &str,
    start: f64,
    frames: &[f64],
    end: End,
    end_at: f64,
) -> Conn {
    let mut c = Conn::new(client, server);
    c.open_ws(T0 + start);
    for (i, at) in frames.iter().enumerate() {
        c.client_send(T0 + at, &cframe(OP_TEXT, format!("m{i}").as_bytes()));
        c.server_ack(T0 + at + 0.0001);
    }
    end_tcp(&mut c, end, end_at);
    c
}

/// A connection the server cuts (FIN) after `idle` s without traffic: one
/// client frame at `start + 1`, the FIN at `start + 1 + idle`.
pub fn idle_cut(client: &str, start: f64, idle: f64) -> Conn {
    cut_conn(
        client,
        SERVER_ADDR,
        start,
        &[start + 1.0],
        End::Fin(Dir::S2C),
        start + 1.0 + idle,
    )
}

/// A connection the server cuts (FIN) at age `age` (from the 101 response)
/// with `idle` s of silence before it: frames every 2 s, the last one at
/// `age - idle`.
pub fn age_cut(client: &str, start: f64, age: f64, idle: f64) -> Conn {
    let resp = start + RESP_AT;
    let last = resp + age - idle;
    let mut frames = Vec::new();
    let mut at = resp + 0.5;
    while at < last - 1.0 {
        frames.push(at);
        at += 2.0;
    }
    frames.push(last);
    cut_conn(
        client,
        SERVER_ADDR,
        start,
        &frames,
        End::Fin(Dir::S2C),
        resp + age,
    )
}

/// The first line `child` writes to its stdout (a pipe); the pipe is then
/// closed, as a reader like `head -1` would close it.
pub fn first_stdout_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead as _;
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .lines()
        .next()
        .expect("a line")
        .expect("read")
}
