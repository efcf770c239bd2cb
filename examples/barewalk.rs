//! The bare walk over a classic pcap: what wsclose's reader and decoder do
//! per packet and nothing else, the floor its analysis is measured against
//! (benches/e2e.sh). The same crates and access pattern as `src/capture/`
//! and `src/decode.rs`: a read-only memory map advised sequential, pages
//! behind the read position handed back every 8 MiB, pcap-parser for each
//! record, pcap-parser's link layer and etherparse's lax slicer down to
//! TCP. Prints the packets, TCP segments and TCP payload bytes.
//!
//! `--floor` adds the least that any per-connection analysis of WebSocket
//! payloads must do on top of the walk, to show how far below wsclose the
//! floor lies: each TCP segment's connection found in a hash table (both
//! directions to one entry, foldhash as in src/reassembly/) and its counts
//! updated, and every payload byte read once, as a UTF-8 check does
//! (simdutf8, as text messages are checked; no unmasking, no frames).
//! A floor of time only: its table keeps every connection to the end.
//!
//! ```sh
//! cargo run --release --example barewalk -- FILE.pcap
//! cargo run --release --example barewalk -- --floor FILE.pcap
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::process::ExitCode;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use memmap2::{Advice, Mmap, UncheckedAdvice};
use pcap_parser::data::{PacketData, get_packetdata};
use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};

/// As `RELEASE_EVERY` in src/capture/source.rs.
const RELEASE_EVERY: usize = 8 << 20;

#[derive(Default)]
struct Walk {
    packets: u64,
    tcp: u64,
    payload: u64,
    /// With `--floor`: the connections seen, and the segments whose
    /// payload read as valid UTF-8.
    floor: Option<Floor>,
}

/// A connection's endpoints as integers (IPv4 as IPv4-mapped IPv6), the
/// lower one first, so that both directions find one entry: compared and
/// hashed word by word, as src/reassembly/key.rs does.
type Key = (u128, u128, u32);

#[derive(Default)]
struct Floor {
    flows: HashMap<Key, [u64; 2], foldhash::fast::RandomState>,
    utf8: u64,
}

impl Floor {
    /// Finds the segment's connection, counts its bytes and reads them.
    fn segment(&mut self, src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) {
        let word = |ip: IpAddr| match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        let (s, d) = ((word(src.0), src.1), (word(dst.0), dst.1));
        let (lo, hi, side) = if s <= d { (s, d, 0) } else { (d, s, 1) };
        let key = (lo.0, hi.0, u32::from(lo.1) << 16 | u32::from(hi.1));
        let counts = self.flows.entry(key).or_default();
        counts[side] += payload.len() as u64;
        if simdutf8::basic::from_utf8(payload).is_ok() {
            self.utf8 += 1;
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let floor = args.first().is_some_and(|a| a == "--floor");
    if floor {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        eprintln!("usage: barewalk [--floor] FILE.pcap");
        return ExitCode::from(2);
    };
    match walk(path, floor) {
        Ok(w) => {
            println!(
                "{} packets, {} TCP segments, {} TCP payload bytes",
                w.packets, w.tcp, w.payload
            );
            if let Some(f) = w.floor {
                println!(
                    "{} connections, {} segments valid UTF-8",
                    f.flows.len(),
                    f.utf8
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("barewalk: {path}: {e}");
            ExitCode::from(2)
        }
    }
}

fn walk(path: &str, floor: bool) -> Result<Walk, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: a read-only map of a capture nobody truncates while it is read.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let _ = map.advise(Advice::Sequential);
    let (rest, header) = parse_pcap_header(&map).map_err(|_| "not a classic pcap file")?;
    let (big_endian, linktype) = (header.is_bigendian(), header.network);
    let mut pos = map.len() - rest.len();
    let mut released = 0;
    let mut w = Walk {
        floor: floor.then(Floor::default),
        ..Walk::default()
    };
    while pos < map.len() {
        let window = &map[pos..];
        let parsed = if big_endian {
            parse_pcap_frame_be(window)
        } else {
            parse_pcap_frame(window)
        };
        let (rest, block) = match parsed {
            Ok(ok) => ok,
            Err(nom::Err::Incomplete(_)) => break,
            Err(_) => return Err(format!("unreadable record at byte {pos}")),
        };
        w.packets += 1;
        if let Some(f) = &mut w.floor {
            if let Some((src, dst, payload)) = tcp_segment(linktype, block.data) {
                w.tcp += 1;
                w.payload += payload.len() as u64;
                f.segment(src, dst, payload);
            }
        } else if let Some(len) = tcp_payload(linktype, block.data) {
            w.tcp += 1;
            w.payload += len as u64;
        }
        pos = map.len() - rest.len();
        if pos - released >= RELEASE_EVERY {
            released = release(&map, pos, released);
        }
    }
    Ok(w)
}

/// The TCP payload length of a packet, as src/decode.rs slices it.
fn tcp_payload(linktype: pcap_parser::Linktype, data: &[u8]) -> Option<usize> {
    match slice(linktype, data)?.transport {
        Some(TransportSlice::Tcp(tcp)) => Some(tcp.payload().len()),
        _ => None,
    }
}

/// A TCP segment's endpoints and payload.
type Segment<'a> = ((IpAddr, u16), (IpAddr, u16), &'a [u8]);

/// The TCP segment in a packet, as src/decode.rs slices it.
fn tcp_segment(linktype: pcap_parser::Linktype, data: &[u8]) -> Option<Segment<'_>> {
    let sliced = slice(linktype, data)?;
    let (src, dst) = match sliced.net? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        LaxNetSlice::Ipv6(ip) => {
            let h = ip.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        _ => return None,
    };
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Some((
            (src, tcp.source_port()),
            (dst, tcp.destination_port()),
            tcp.payload(),
        )),
        _ => None,
    }
}

/// A packet sliced down to its transport layer.
fn slice(linktype: pcap_parser::Linktype, data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    Some(match get_packetdata(data, linktype, data.len())? {
        PacketData::L2(l2) => LaxSlicedPacket::from_ethernet(l2).ok()?,
        PacketData::L3(ethertype, l3) => LaxSlicedPacket::from_ether_type(EtherType(ethertype), l3),
        _ => return None,
    })
}

/// Hands back the whole pages behind `pos` (as src/capture/source.rs).
fn release(map: &Mmap, pos: usize, released: usize) -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let page = if page.is_power_of_two() { page } else { 4096 };
    let upto = pos & !(page - 1);
    if upto <= released {
        return released;
    }
    // SAFETY: the pages lie wholly before the read position and nothing
    // borrows them any more; touching them again would fault them back in.
    let res =
        unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, released, upto - released) };
    if res.is_ok() { upto } else { released }
}
