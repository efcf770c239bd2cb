//! Capture files: pcap (micro- and nanosecond, both byte orders) and pcapng
//! (several sections and interfaces, mixed link types), read with
//! pcap-parser over a memory map, or from a pipe (stdin) through a bounded
//! buffer. Several files are merged in timestamp order into one capture.
//!
//! A reader keeps its current packet in place (a slice of the map or of its
//! buffer), so merging files needs no copy of any packet.
//!
//! The parts: `source` (where the bytes come from: map, pipe), `pcap` and
//! `pcapng` (the two formats' records), `reader` (one input, packet by
//! packet), `resync` (reading on after a corrupt record), `merge` (several
//! inputs as one capture).

use pcap_parser::Linktype;

use crate::Ts;

mod merge;
mod pcap;
mod pcapng;
mod reader;
mod resync;
mod source;

#[cfg(test)]
mod fixtures;

pub(crate) use merge::Merged;
pub use reader::FileReader;

/// Largest record accepted: no link layer needs more, and a larger length
/// field means a corrupt file rather than a packet.
pub(crate) const MAX_RECORD: usize = 16 << 20;

/// One captured packet, borrowed from its reader.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub ts: Ts,
    pub linktype: Linktype,
    pub data: &'a [u8],
}

/// What an input delivered, file or interface: the packet counts of its
/// `sources` entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketCounts {
    /// Every packet record, decodable or not.
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    /// Packets of other protocols, skipped.
    pub not_tcp: u64,
    /// Packets that did not decode, skipped.
    pub undecodable: u64,
}

impl PacketCounts {
    /// A packet of `captured` bytes at `ts`.
    pub fn record(&mut self, ts: Ts, captured: usize) {
        self.packets += 1;
        self.bytes += captured as u64;
        self.first_ts.get_or_insert(ts);
        self.last_ts = Some(ts);
    }

    /// A packet that gave no TCP segment: of another protocol, or not
    /// decodable.
    pub fn skipped(&mut self, not_tcp: bool) {
        if not_tcp {
            self.not_tcp += 1;
        } else {
            self.undecodable += 1;
        }
    }
}

/// Counters of one input file, for the report's `sources`.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub counts: PacketCounts,
    pub link_types: Vec<Linktype>,
    /// A record was cut short at the end (what was read is analysed).
    pub truncated: bool,
    /// Why reading stopped early, when it did.
    pub stopped: Option<String>,
    /// Corrupt records skipped, reading resumed after each.
    pub corrupt_records: u64,
    /// What was skipped, where (the first few).
    pub notes: Vec<String>,
}

/// The packet a reader stands on: its place in the reader's window.
#[derive(Debug, Clone, Copy)]
struct Current {
    ts: Ts,
    linktype: Linktype,
    data_at: usize,
    data_len: usize,
    /// Bytes of the whole record, consumed when moving on.
    record_len: usize,
}

/// What the record at the start of a reader's window is.
enum Step {
    /// A packet, written to the reader's current packet by the parser:
    /// carried out in the step, it was built field by field and then
    /// copied in wide words, a store-forwarding stall on every packet.
    Packet,
    /// A block that is no packet (section header, interface, statistics):
    /// its length.
    Skip(usize),
    /// The record goes on past the window: at least this many more bytes.
    NeedMore(usize),
    End,
    /// Not a believable record: why.
    Corrupt(String),
}

/// How many more bytes nom asks for (at least one).
fn needed(n: nom::Needed) -> usize {
    match n {
        nom::Needed::Size(s) => s.get(),
        nom::Needed::Unknown => 1,
    }
}

/// A 32-bit field of `w` at `i` in the given byte order, `None` past its end.
fn u32_at(w: &[u8], i: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = w.get(i..i.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}
