//! Bytes on the wire: the pcap file and record headers, Ethernet/IPv4/TCP
//! headers with correct checksums, WebSocket frame headers, masking. Every
//! packet is written in place into one large output buffer (no per-packet
//! allocation); the buffer goes to the file when full.

use std::fs::File;
use std::io::{self, Write};

/// Ethernet + IPv4 + TCP header bytes (no IP or TCP options).
pub const HEADERS: usize = 14 + 20 + 20;
/// pcap record header bytes.
pub const RECORD: usize = 16;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

/// Seconds of the first packet's timestamp (2027-01-15, a fixed epoch so
/// the same seed gives the same bytes).
pub const EPOCH_S: u64 = 1_800_000_000;

/// The addresses and ports of one packet.
#[derive(Clone, Copy)]
pub struct Ends {
    pub src_ip: u32,
    pub dst_ip: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub src_mac_last: u8,
}

/// A pcap file being written through one large buffer.
pub struct PcapOut {
    file: File,
    buf: Vec<u8>,
    used: usize,
    ip_id: u16,
    pub packets: u64,
    /// Captured bytes of all packets (the summary's `sources[].bytes`).
    pub bytes: u64,
    /// Bytes of the file written so far, headers included.
    pub file_bytes: u64,
    pub last_ts: u64,
    pub first_ts: Option<u64>,
}

impl PcapOut {
    /// Creates `path` and writes the file header (microsecond pcap,
    /// Ethernet). `buf_size` must hold the largest packet.
    pub fn create(path: &str, buf_size: usize) -> io::Result<PcapOut> {
        let mut out = PcapOut {
            file: File::create(path)?,
            buf: vec![0; buf_size],
            used: 0,
            ip_id: 1,
            packets: 0,
            bytes: 0,
            file_bytes: 24,
            last_ts: 0,
            first_ts: None,
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&262_144u32.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        out.file.write_all(&h)?;
        Ok(out)
    }

    /// Room for one packet of up to `payload_max` TCP payload bytes: the
    /// buffer is flushed first when it could not hold it.
    pub fn reserve(&mut self, payload_max: usize) -> io::Result<()> {
        if self.used + RECORD + HEADERS + payload_max > self.buf.len() {
            self.flush()?;
        }
        Ok(())
    }

    /// The payload area of the packet being built (call after `reserve`).
    pub fn payload_area(&mut self) -> &mut [u8] {
        let at = self.used + RECORD + HEADERS;
        &mut self.buf[at..]
    }

    /// Completes the packet whose payload (`len` bytes) was written into
    /// `payload_area`: record header, Ethernet, IPv4 and TCP headers.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(&mut self, ts_us: u64, e: &Ends, seq: u32, ack: u32, flags: u8, len: usize) {
        debug_assert!(ts_us >= self.last_ts, "time must not go backwards");
        self.last_ts = ts_us;
        self.first_ts.get_or_insert(ts_us);
        let caplen = (HEADERS + len) as u32;
        let ts_s = EPOCH_S + ts_us / 1_000_000;
        let b = &mut self.buf[self.used..self.used + RECORD + HEADERS + len];
        b[0..4].copy_from_slice(&(ts_s as u32).to_le_bytes());
        b[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        b[8..12].copy_from_slice(&caplen.to_le_bytes());
        b[12..16].copy_from_slice(&caplen.to_le_bytes());
        let p = &mut b[RECORD..];
        // Ethernet: locally administered MACs, the last byte telling the host.
        let dst_mac_last = if e.src_mac_last == 1 { 2 } else { 1 };
        p[0..6].copy_from_slice(&[2, 0, 0, 0, 0, dst_mac_last]);
        p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, e.src_mac_last]);
        p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4_header(&mut p[14..34], e, self.ip_id, (20 + 20 + len) as u16);
        self.ip_id = self.ip_id.wrapping_add(1);
        let t = &mut p[34..54];
        t[0..2].copy_from_slice(&e.src_port.to_be_bytes());
        t[2..4].copy_from_slice(&e.dst_port.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        let ack_no = if flags & ACK != 0 { ack } else { 0 };
        t[8..12].copy_from_slice(&ack_no.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64_240u16.to_be_bytes());
        t[16..20].fill(0);
        let tcp_len = 20 + len;
        let mut sum = pseudo_sum(e, tcp_len);
        sum = ones_sum(sum, &p[34..34 + tcp_len]);
        let ck = !fold(sum);
        p[50..52].copy_from_slice(&ck.to_be_bytes());
        self.used += RECORD + HEADERS + len;
        self.packets += 1;
        self.bytes += u64::from(caplen);
        self.file_bytes += u64::from(caplen) + RECORD as u64;
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf[..self.used])?;
        self.used = 0;
        Ok(())
    }
}

fn ipv4_header(h: &mut [u8], e: &Ends, id: u16, total: u16) {
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    h[8] = 64;
    h[9] = 6;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&e.src_ip.to_be_bytes());
    h[16..20].copy_from_slice(&e.dst_ip.to_be_bytes());
    let ck = !fold(ones_sum(0, h));
    h[10..12].copy_from_slice(&ck.to_be_bytes());
}

fn pseudo_sum(e: &Ends, tcp_len: usize) -> u64 {
    u64::from(e.src_ip >> 16)
        + u64::from(e.src_ip & 0xffff)
        + u64::from(e.dst_ip >> 16)
        + u64::from(e.dst_ip & 0xffff)
        + 6
        + tcp_len as u64
}

/// Ones' complement sum of `data` as big-endian 16-bit words, eight bytes
/// at a time (a 32-bit word sum folds to the same 16-bit sum).
fn ones_sum(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A WebSocket frame header (RFC 6455 5.2) with the minimal length form;
/// returns its length.
pub fn frame_header(
    out: &mut [u8; 14],
    fin: bool,
    opcode: u8,
    len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = (u8::from(fin) << 7) | opcode;
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = 2;
    if len < 126 {
        out[1] = mbit | len as u8;
    } else if len <= 0xffff {
        out[1] = mbit | 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        n = 4;
    } else {
        out[1] = mbit | 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        n = 10;
    }
    if let Some(m) = mask {
        out[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    n
}

/// Length of the frame header for a payload of `len` bytes.
pub fn header_len(len: u64, masked: bool) -> u64 {
    let base = if len < 126 {
        2
    } else if len <= 0xffff {
        4
    } else {
        10
    };
    base + if masked { 4 } else { 0 }
}

/// XORs `data`, which starts at payload offset `off`, with `mask`, eight
/// bytes at a time.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], off: u64) {
    let s = (off % 4) as usize;
    let r: [u8; 8] = std::array::from_fn(|j| mask[(s + j) % 4]);
    let m = u64::from_ne_bytes(r);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ m;
        c.copy_from_slice(&w.to_ne_bytes());
    }
    for (j, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= r[j % 8];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // Wikipedia's example header: checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!fold(ones_sum(0, &h)), 0xb861);
    }
}
