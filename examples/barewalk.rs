//! The bare walk over a classic pcap: what wsclose's reader and decoder do
//! per packet and nothing else, the floor its analysis is measured against
//! (benches/e2e.sh). The same crates and access pattern as `src/capture/`
//! and `src/decode.rs`: a read-only memory map advised sequential, pages
//! behind the read position handed back every 8 MiB, pcap-parser for each
//! record, pcap-parser's link layer and etherparse's lax slicer down to
//! TCP. Prints the packets, TCP segments and TCP payload bytes.
//!
//! ```sh
//! cargo run --release --example barewalk -- FILE.pcap
//! ```

use std::fs::File;
use std::process::ExitCode;

use etherparse::{EtherType, LaxSlicedPacket, TransportSlice};
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
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: barewalk FILE.pcap");
        return ExitCode::from(2);
    };
    match walk(&path) {
        Ok(w) => {
            println!(
                "{} packets, {} TCP segments, {} TCP payload bytes",
                w.packets, w.tcp, w.payload
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("barewalk: {path}: {e}");
            ExitCode::from(2)
        }
    }
}

fn walk(path: &str) -> Result<Walk, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: a read-only map of a capture nobody truncates while it is read.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let _ = map.advise(Advice::Sequential);
    let (rest, header) = parse_pcap_header(&map).map_err(|_| "not a classic pcap file")?;
    let (big_endian, linktype) = (header.is_bigendian(), header.network);
    let mut pos = map.len() - rest.len();
    let mut released = 0;
    let mut w = Walk::default();
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
        if let Some(len) = tcp_payload(linktype, block.data) {
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
    let sliced = match get_packetdata(data, linktype, data.len())? {
        PacketData::L2(l2) => LaxSlicedPacket::from_ethernet(l2).ok()?,
        PacketData::L3(ethertype, l3) => LaxSlicedPacket::from_ether_type(EtherType(ethertype), l3),
        _ => return None,
    };
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Some(tcp.payload().len()),
        _ => None,
    }
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
