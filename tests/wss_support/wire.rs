//! The capture's wire facts, read without wsclose: a small reader of
//! classic pcap files (Ethernet, IPv4, TCP) for the TCP ends and the
//! contract's final-burst rule of `encrypted` connections.

use std::path::Path;

use serde_json::Value;

use super::assert_ts;

/// One TCP connection of a capture as the packets show it.
#[derive(Debug, Clone)]
pub struct Wire {
    pub client: String,
    pub server: String,
    pub first_ts: f64,
    pub last_ts: f64,
    /// The first FIN or RST: ("fin" | "rst", "client" | "server", ts).
    pub end: Option<(&'static str, &'static str, f64)>,
    /// (ts, carries payload, FIN, RST) of every packet.
    pub packets: Vec<(f64, bool, bool, bool)>,
}

impl Wire {
    /// The contract's `idle_s` of a connection that was not decrypted: the
    /// final burst is the run of trailing packets (records, FIN, RST) each
    /// less than 1 s after the one before; `idle_s` runs from the last record
    /// before it (else the connection's first packet) to its first packet;
    /// `None` while open.
    pub fn burst_idle(&self) -> Option<f64> {
        self.end?;
        let ev: Vec<(f64, bool)> = self
            .packets
            .iter()
            .filter(|p| p.1 || p.2 || p.3)
            .map(|p| (p.0, p.1))
            .collect();
        let mut i = ev.len() - 1;
        while i > 0 && ev[i].0 - ev[i - 1].0 < 1.0 {
            i -= 1;
        }
        let from = ev[..i]
            .iter()
            .rev()
            .find(|e| e.1)
            .map_or(self.first_ts, |e| e.0);
        Some(ev[i].0 - from)
    }
}

/// The TCP connections of a classic pcap (Ethernet, IPv4), in order of
/// first packet; the client is the sender of the SYN.
pub fn read_wire(path: &Path) -> Vec<Wire> {
    let b = std::fs::read(path).expect("read capture");
    assert_eq!(
        &b[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap: {path:?}"
    );
    assert_eq!(
        u32::from_le_bytes(b[20..24].try_into().unwrap()),
        1,
        "EN10MB"
    );
    let mut out: Vec<Wire> = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let u = |o: usize| u32::from_le_bytes(b[at + o..at + o + 4].try_into().unwrap());
        let ts = f64::from(u(0)) + f64::from(u(4)) / 1e6;
        let (caplen, len) = (u(8) as usize, u(12) as usize);
        assert_eq!(caplen, len, "no packet cut short in {path:?}");
        let p = &b[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        if p.len() < 14 + 20 || p[12..14] != [0x08, 0x00] || p[14 + 9] != 6 {
            continue;
        }
        let ip = &p[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[ihl..];
        let addr = |o: usize, port: &[u8]| {
            format!(
                "{}.{}.{}.{}:{}",
                ip[o],
                ip[o + 1],
                ip[o + 2],
                ip[o + 3],
                u16::from_be_bytes([port[0], port[1]])
            )
        };
        let (src, dst) = (addr(12, &tcp[0..2]), addr(16, &tcp[2..4]));
        let flags = tcp[13];
        let (fin, syn, rst, ack) = (
            flags & 1 != 0,
            flags & 2 != 0,
            flags & 4 != 0,
            flags & 16 != 0,
        );
        let payload = total - ihl - usize::from(tcp[12] >> 4) * 4;
        let found = out.iter().position(|w| {
            (w.client == src && w.server == dst) || (w.client == dst && w.server == src)
        });
        let i = match found {
            // A new SYN on an ended 4-tuple would start a new connection; the
            // samples have none.
            Some(i) => i,
            None => {
                let (client, server) = if syn && ack {
                    (dst, src.clone())
                } else {
                    (src.clone(), dst)
                };
                out.push(Wire {
                    client,
                    server,
                    first_ts: ts,
                    last_ts: ts,
                    end: None,
                    packets: Vec::new(),
                });
                out.len() - 1
            }
        };
        let w = &mut out[i];
        w.last_ts = ts;
        w.packets.push((ts, payload > 0, fin, rst));
        if (fin || rst) && w.end.is_none() {
            let by = if src == w.client { "client" } else { "server" };
            w.end = Some((if rst { "rst" } else { "fin" }, by, ts));
        }
    }
    out
}

/// Asserts the TCP-level facts every listed connection shares with the wire:
/// addresses, first/last packet, `tcp_end`.
#[track_caller]
pub fn assert_wire(c: &Value, w: &Wire) {
    assert_eq!(c["server"], w.server.as_str(), "server of {}", w.client);
    assert_ts(&c["first_ts"], w.first_ts, "first_ts");
    assert_ts(&c["last_ts"], w.last_ts, "last_ts");
    let e = &c["close"]["tcp_end"];
    match w.end {
        Some((kind, by, ts)) => {
            assert_eq!(e["kind"], kind, "tcp_end.kind of {}", w.client);
            assert_eq!(e["by"], by, "tcp_end.by of {}", w.client);
            assert_ts(&e["ts"], ts, "tcp_end.ts");
        }
        None => assert_eq!(e["kind"], "none"),
    }
}
