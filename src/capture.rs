//! Capture files: pcap (micro- and nanosecond, both byte orders) and pcapng
//! (several sections and interfaces, mixed link types), read with
//! pcap-parser over a memory map, or from a pipe (stdin) through a bounded
//! buffer. Several files are merged in timestamp order into one capture.
//!
//! A reader keeps its current packet in place (a slice of the map or of its
//! buffer), so merging files needs no copy of any packet.

use std::fs::File;
use std::io::{self, Read};

use memmap2::Mmap;
use pcap_parser::pcapng::Block;
use pcap_parser::{
    Linktype, PcapError, parse_block_be, parse_block_le, parse_pcap_frame, parse_pcap_frame_be,
    parse_pcap_frame_modified, parse_pcap_header, parse_sectionheaderblock,
};

use crate::Ts;

/// Largest record accepted: no link layer needs more, and a larger length
/// field means a corrupt file rather than a packet.
pub const MAX_RECORD: usize = 16 << 20;

/// Read size for pipes.
const CHUNK: usize = 256 << 10;

/// Longest run of bytes searched for the next record after a corrupt one.
const MAX_RESYNC: usize = 64 << 20;

/// Largest captured length libpcap accepts whatever the file header says.
const LIBPCAP_MAX_SNAPLEN: u32 = 262_144;

/// Corrupt-record messages kept per input (the rest are only counted).
const MAX_NOTES: usize = 10;

/// A pcapng section header block's type: the same in either byte order.
const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The byte order of a block at the start of `w`: a section header says its
/// own (its byte-order magic), other blocks follow their section's.
/// `None` while a section header's magic is not all there.
fn block_big_endian(w: &[u8], section_be: bool) -> Option<bool> {
    if w.get(..4)? == SHB_MAGIC {
        Some(w.get(8..12)? == [0x1a, 0x2b, 0x3c, 0x4d])
    } else {
        Some(section_be)
    }
}

/// An input that cannot be read. Its text is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {msg}")]
pub struct CaptureError {
    pub name: String,
    pub msg: String,
}

fn err(name: &str, msg: impl Into<String>) -> CaptureError {
    CaptureError {
        name: name.to_string(),
        msg: msg.into(),
    }
}

/// One captured packet, borrowed from its reader.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub ts: Ts,
    pub linktype: Linktype,
    pub data: &'a [u8],
}

/// Bytes of a mapped file read before the pages behind them are handed
/// back: RSS stays bounded whatever the file's size.
const RELEASE_EVERY: usize = 8 << 20;

/// Where a reader's bytes come from.
enum Bytes {
    /// A mapped file and how far its pages were handed back.
    Map(Mmap, usize),
    Empty,
    Stream {
        reader: Box<dyn Read + Send>,
        buf: Vec<u8>,
        /// Valid bytes are `buf[start..end]`.
        start: usize,
        end: usize,
        eof: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: Linktype,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        modified: bool,
        nanos: bool,
        linktype: Linktype,
        /// Largest plausible captured length (snap length, at least libpcap's).
        max_caplen: u32,
    },
    PcapNg {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
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

/// A reader of one capture file (or stdin).
pub struct FileReader {
    pub name: String,
    bytes: Bytes,
    /// Offset of the window's start in the file (for messages).
    file_off: u64,
    /// For maps: the read position.
    pos: usize,
    format: Format,
    cur: Option<Current>,
    last_ts: Ts,
    pub stats: SourceStats,
}

impl FileReader {
    /// Opens `name` (`-` for stdin) and reads its file header.
    pub fn open(name: &str) -> Result<FileReader, CaptureError> {
        let bytes = if name == "-" {
            Bytes::Stream {
                reader: Box::new(io::stdin()),
                buf: vec![0; CHUNK],
                start: 0,
                end: 0,
                eof: false,
            }
        } else {
            let file = File::open(name).map_err(|e| err(name, e.to_string()))?;
            let meta = file.metadata().map_err(|e| err(name, e.to_string()))?;
            if meta.is_dir() {
                return Err(err(name, "is a directory"));
            }
            if meta.is_file() {
                if meta.len() == 0 {
                    Bytes::Empty
                } else {
                    // SAFETY: the map is read-only; a capture file that is
                    // truncated while being read is the documented risk of
                    // reading files by map (tcpdump rotating in place does not
                    // truncate).
                    #[allow(unsafe_code)]
                    let map = unsafe { Mmap::map(&file) }.map_err(|e| err(name, e.to_string()))?;
                    let _ = map.advise(memmap2::Advice::Sequential);
                    Bytes::Map(map, 0)
                }
            } else {
                // A FIFO or character device: read as a stream.
                Bytes::Stream {
                    reader: Box::new(file),
                    buf: vec![0; CHUNK],
                    start: 0,
                    end: 0,
                    eof: false,
                }
            }
        };
        Self::from_bytes(name, bytes)
    }

    /// A reader over any byte stream (tests, fuzzing).
    pub fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<FileReader, CaptureError> {
        Self::from_bytes(
            name,
            Bytes::Stream {
                reader,
                buf: vec![0; CHUNK],
                start: 0,
                end: 0,
                eof: false,
            },
        )
    }

    fn from_bytes(name: &str, bytes: Bytes) -> Result<FileReader, CaptureError> {
        let mut r = FileReader {
            name: name.to_string(),
            bytes,
            file_off: 0,
            pos: 0,
            format: Format::Pcap {
                big_endian: false,
                modified: false,
                nanos: false,
                linktype: Linktype(0),
                max_caplen: LIBPCAP_MAX_SNAPLEN,
            },
            cur: None,
            last_ts: Ts(0),
            stats: SourceStats::default(),
        };
        r.fill(24).map_err(|e| err(name, e.to_string()))?;
        let w = r.window();
        if w.is_empty() {
            return Err(err(name, "empty file"));
        }
        if w.len() >= 4 && w[..4] == SHB_MAGIC {
            r.format = Format::PcapNg {
                big_endian: false,
                ifaces: Vec::new(),
            };
            // The section header is read like any block.
            return Ok(r);
        }
        match parse_pcap_header(w) {
            Ok((_, h)) => {
                let linktype = h.network;
                r.format = Format::Pcap {
                    big_endian: h.is_bigendian(),
                    modified: h.is_modified_format(),
                    nanos: h.is_nanosecond_precision(),
                    linktype,
                    max_caplen: h.snaplen.clamp(LIBPCAP_MAX_SNAPLEN, MAX_RECORD as u32),
                };
                if !crate::decode::link_supported(linktype) {
                    return Err(err(
                        name,
                        format!(
                            "unsupported link type {} ({})",
                            crate::decode::link_name(linktype),
                            linktype.0
                        ),
                    ));
                }
                r.stats.link_types.push(linktype);
                r.consume(24);
                Ok(r)
            }
            Err(nom::Err::Incomplete(_)) => Err(err(name, "not a pcap or pcapng file (too short)")),
            Err(_) => Err(err(name, "not a pcap or pcapng file")),
        }
    }

    /// Bytes of the input read so far.
    pub fn offset(&self) -> u64 {
        self.file_off
    }

    /// The input's size, when known (a regular file).
    pub fn size(&self) -> Option<u64> {
        match &self.bytes {
            Bytes::Map(m, _) => Some(m.len() as u64),
            Bytes::Empty => Some(0),
            Bytes::Stream { .. } => None,
        }
    }

    fn window(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Map(m, _) => &m[self.pos.min(m.len())..],
            Bytes::Empty => &[],
            Bytes::Stream {
                buf, start, end, ..
            } => &buf[*start..*end],
        }
    }

    fn consume(&mut self, n: usize) {
        self.file_off += n as u64;
        match &mut self.bytes {
            Bytes::Map(m, released) => {
                self.pos += n;
                if self.pos - *released >= RELEASE_EVERY {
                    let upto = self.pos & !0xfff;
                    // SAFETY: a read-only shared file mapping; the pages
                    // released lie wholly before the read position, and no
                    // borrow of them is alive (the reader is borrowed mutably
                    // here, and packets borrow only the current record).
                    // Touching them again would just fault them back in.
                    #[allow(unsafe_code)]
                    let _ = unsafe {
                        m.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            *released,
                            upto - *released,
                        )
                    };
                    *released = upto;
                }
            }
            Bytes::Empty => {}
            Bytes::Stream { start, end, .. } => *start = (*start + n).min(*end),
        }
    }

    /// Makes at least `want` bytes available in the window, if the input has
    /// them. Returns whether more bytes may still come.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        let Bytes::Stream {
            reader,
            buf,
            start,
            end,
            eof,
        } = &mut self.bytes
        else {
            return Ok(());
        };
        while *end - *start < want && !*eof {
            let missing = want - (*end - *start);
            if buf.len() - *end < missing.max(4096) {
                // Move the unread bytes to the front, grow if a record needs it.
                buf.copy_within(*start..*end, 0);
                *end -= *start;
                *start = 0;
                if buf.len() < want.max(CHUNK) {
                    buf.resize(want.max(CHUNK), 0);
                }
            }
            match reader.read(&mut buf[*end..]) {
                Ok(0) => *eof = true,
                Ok(n) => *end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn more_may_come(&self) -> bool {
        matches!(&self.bytes, Bytes::Stream { eof: false, .. })
    }

    /// The packet the reader stands on.
    pub fn current(&self) -> Option<Packet<'_>> {
        let c = self.cur?;
        let w = self.window();
        Some(Packet {
            ts: c.ts,
            linktype: c.linktype,
            data: &w[c.data_at..c.data_at + c.data_len],
        })
    }

    /// Moves to the next packet. `Ok(false)` at the end of the input; a
    /// truncated or corrupt tail ends the input too (noted in `stats`).
    pub fn advance(&mut self) -> Result<bool, CaptureError> {
        if let Some(c) = self.cur.take() {
            self.consume(c.record_len);
        }
        loop {
            match self.parse_next() {
                Step::Packet(c) => {
                    let ts = c.ts;
                    self.last_ts = ts;
                    self.stats.counts.record(ts, c.data_len);
                    self.cur = Some(c);
                    return Ok(true);
                }
                Step::Skip(n) => self.consume(n),
                Step::NeedMore(n) => {
                    if self.more_may_come() {
                        let want = self.window().len() + n.max(1);
                        if want > MAX_RECORD + 64 {
                            self.stop(format!(
                                "record at byte offset {} is larger than {} bytes: corrupt file",
                                self.file_off, MAX_RECORD
                            ));
                            return Ok(false);
                        }
                        self.fill(want)
                            .map_err(|e| err(&self.name, e.to_string()))?;
                        continue;
                    }
                    if !self.window().is_empty() {
                        let (at, rest) = (self.file_off, self.window().len());
                        self.stats.truncated = true;
                        // A record claiming more than the input holds: the
                        // file's end, or a corrupt length mid-file with good
                        // records after it.
                        if self.skip_corrupt(at, "claims more bytes than the input holds")? {
                            continue;
                        }
                        self.stats.stopped = Some(format!(
                            "the last record (at byte offset {at}) is cut short: {rest} byte(s) ignored"
                        ));
                    }
                    return Ok(false);
                }
                Step::End => return Ok(false),
                Step::Corrupt(why) => {
                    let at = self.file_off;
                    if self.skip_corrupt(at, &format!("is corrupt: {why}"))? {
                        continue;
                    }
                    self.stop(format!(
                        "corrupt record at byte offset {at} ({why}) and no readable record after it"
                    ));
                    return Ok(false);
                }
            }
        }
    }

    /// Skips the bad record at `at` (`what` says what is wrong with it) by
    /// resynchronising; counts and notes it. False when no good record
    /// follows.
    fn skip_corrupt(&mut self, at: u64, what: &str) -> Result<bool, CaptureError> {
        if !self.resync().map_err(|e| err(&self.name, e.to_string()))? {
            return Ok(false);
        }
        self.stats.corrupt_records += 1;
        self.stats.truncated = true;
        if self.stats.notes.len() < MAX_NOTES {
            self.stats.notes.push(format!(
                "the record at byte offset {at} {what}: skipped {} byte(s), reading on from byte offset {}",
                self.file_off - at,
                self.file_off
            ));
        }
        Ok(true)
    }

    /// After a corrupt record: moves on to the next place where a record
    /// (and the one after it, or the end of the input) looks right.
    fn resync(&mut self) -> io::Result<bool> {
        let step = match self.format {
            Format::Pcap { .. } => 1,
            Format::PcapNg { .. } => 4,
        };
        let mut scanned = 0;
        while scanned < MAX_RESYNC {
            let n = step.min(self.window().len());
            if n == 0 {
                return Ok(false);
            }
            self.consume(n);
            scanned += n;
            self.fill(64)?;
            let Some(len) = self.plausible_record(self.window()) else {
                continue;
            };
            self.fill(len + 64)?;
            let w = self.window();
            let next_ok = match w.len().checked_sub(len) {
                None => false,
                Some(0) => true,
                Some(rest) => {
                    self.plausible_record(&w[len..]).is_some()
                        || (rest < 16 && !self.more_may_come())
                }
            };
            if next_ok {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The length of the record at the start of `w` when its header is
    /// believable (sane lengths, time near the last packet's, a known block
    /// type whose two length fields agree).
    fn plausible_record(&self, w: &[u8]) -> Option<usize> {
        let u32_at = |i: usize, be: bool| -> Option<u32> {
            let b: [u8; 4] = w.get(i..i + 4)?.try_into().ok()?;
            Some(if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        match &self.format {
            Format::Pcap {
                big_endian,
                nanos,
                max_caplen,
                modified,
                ..
            } => {
                let be = *big_endian;
                let (sec, frac) = (u32_at(0, be)?, u32_at(4, be)?);
                let (caplen, origlen) = (u32_at(8, be)?, u32_at(12, be)?);
                let frac_max = if *nanos { 1_000_000_000 } else { 1_000_000 };
                let last = self.last_ts.0 / 1_000_000_000;
                let near = last == 0 || (i64::from(sec) - last).abs() <= 86_400;
                let ok = frac < frac_max
                    && caplen <= *max_caplen
                    && origlen >= caplen
                    && origlen as usize <= MAX_RECORD
                    && near;
                ok.then_some(if *modified { 24 } else { 16 } + caplen as usize)
            }
            Format::PcapNg { big_endian, ifaces } => {
                let shb = w.get(..4)? == SHB_MAGIC;
                let be = block_big_endian(w, *big_endian)?;
                let kind = u32_at(0, be)?;
                let len = u32_at(4, be)? as usize;
                let known = shb || matches!(kind, 1 | 3 | 4 | 5 | 6 | 9 | 10 | 0xBAD | 0x4000_0BAD);
                let sane = (12..=MAX_RECORD).contains(&len) && len % 4 == 0;
                if !(known && sane) || u32_at(len - 4, be)? as usize != len {
                    return None;
                }
                if kind == 6 && !shb && u32_at(8, be)? as usize >= ifaces.len() {
                    return None;
                }
                Some(len)
            }
        }
    }

    fn stop(&mut self, why: String) {
        self.stats.stopped = Some(why);
        self.stats.truncated = true;
    }

    fn parse_next(&mut self) -> Step {
        let file_off = self.file_off;
        let last_ts = self.last_ts;
        let w = match &self.bytes {
            Bytes::Map(m, _) => &m[self.pos.min(m.len())..],
            Bytes::Empty => &[][..],
            Bytes::Stream {
                buf, start, end, ..
            } => &buf[*start..*end],
        };
        if w.is_empty() {
            return if self.more_may_come() {
                Step::NeedMore(1)
            } else {
                Step::End
            };
        }
        match &mut self.format {
            Format::Pcap {
                big_endian,
                modified,
                nanos,
                linktype,
                max_caplen,
            } => {
                if w.len() >= 16 {
                    let field = |i: usize| {
                        let b = [w[i], w[i + 1], w[i + 2], w[i + 3]];
                        if *big_endian {
                            u32::from_be_bytes(b)
                        } else {
                            u32::from_le_bytes(b)
                        }
                    };
                    let (frac, caplen) = (field(4), field(8));
                    if caplen > *max_caplen {
                        return Step::Corrupt(format!("it claims {caplen} captured bytes"));
                    }
                    let frac_max = if *nanos { 1_000_000_000 } else { 1_000_000 };
                    if frac >= frac_max {
                        return Step::Corrupt(format!(
                            "its timestamp fraction {frac} is out of range"
                        ));
                    }
                }
                let res = if *modified {
                    parse_pcap_frame_modified(w)
                } else if *big_endian {
                    parse_pcap_frame_be(w)
                } else {
                    parse_pcap_frame(w)
                };
                match res {
                    Ok((rest, b)) => {
                        let frac = if *nanos {
                            i64::from(b.ts_usec)
                        } else {
                            i64::from(b.ts_usec) * 1000
                        };
                        let ts = Ts(i64::from(b.ts_sec) * 1_000_000_000 + frac);
                        let record_len = w.len() - rest.len();
                        Step::Packet(Current {
                            ts,
                            linktype: *linktype,
                            data_at: record_len - b.data.len(),
                            data_len: b.data.len(),
                            record_len,
                        })
                    }
                    Err(nom::Err::Incomplete(n)) => Step::NeedMore(needed(n)),
                    Err(_) => Step::Corrupt("unreadable pcap record".into()),
                }
            }
            Format::PcapNg { big_endian, ifaces } => {
                let is_shb = w.len() >= 4 && w[..4] == SHB_MAGIC;
                if w.len() >= 8 {
                    let be = block_big_endian(w, *big_endian).unwrap_or(false);
                    let blen = if be {
                        u32::from_be_bytes([w[4], w[5], w[6], w[7]])
                    } else {
                        u32::from_le_bytes([w[4], w[5], w[6], w[7]])
                    } as usize;
                    if blen > MAX_RECORD {
                        return Step::Corrupt(format!("block claims {blen} bytes"));
                    }
                    if blen < 12 || blen % 4 != 0 {
                        return Step::Corrupt(format!("block length {blen} is invalid"));
                    }
                }
                let res = if is_shb {
                    parse_sectionheaderblock(w).map(|(r, b)| (r, Block::SectionHeader(b)))
                } else if *big_endian {
                    parse_block_be(w)
                } else {
                    parse_block_le(w)
                };
                match res {
                    Ok((rest, block)) => {
                        let record_len = w.len() - rest.len();
                        let base = w.as_ptr() as usize;
                        match block {
                            Block::SectionHeader(shb) => {
                                *big_endian = shb.big_endian();
                                ifaces.clear();
                                Step::Skip(record_len)
                            }
                            Block::InterfaceDescription(idb) => {
                                let lt = idb.linktype;
                                ifaces.push(Iface {
                                    linktype: lt,
                                    resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                    offset_s: idb.ts_offset(),
                                });
                                if !self.stats.link_types.contains(&lt) {
                                    self.stats.link_types.push(lt);
                                }
                                Step::Skip(record_len)
                            }
                            Block::EnhancedPacket(epb) => {
                                let Some(iface) = ifaces.get(epb.if_id as usize).copied() else {
                                    return Step::Corrupt(format!(
                                        "packet of undeclared interface {}",
                                        epb.if_id
                                    ));
                                };
                                let caplen = (epb.caplen as usize).min(epb.data.len());
                                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let ns = ts_from_units(units, iface.resolution, iface.offset_s);
                                Step::Packet(Current {
                                    ts: Ts(ns),
                                    linktype: iface.linktype,
                                    data_at: epb.data.as_ptr() as usize - base,
                                    data_len: caplen,
                                    record_len,
                                })
                            }
                            Block::SimplePacket(spb) => {
                                let Some(iface) = ifaces.first().copied() else {
                                    return Step::Corrupt("packet before any interface".into());
                                };
                                let caplen = (spb.origlen as usize).min(spb.data.len());
                                Step::Packet(Current {
                                    ts: last_ts,
                                    linktype: iface.linktype,
                                    data_at: spb.data.as_ptr() as usize - base,
                                    data_len: caplen,
                                    record_len,
                                })
                            }
                            _ => Step::Skip(record_len),
                        }
                    }
                    Err(nom::Err::Incomplete(n)) => Step::NeedMore(needed(n)),
                    Err(e) => {
                        let _ = file_off;
                        Step::Corrupt(format!("unreadable pcapng block ({})", describe(&e)))
                    }
                }
            }
        }
    }
}

fn describe(e: &nom::Err<PcapError<&[u8]>>) -> String {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            format!("{e:?}").chars().take(60).collect::<String>()
        }
        nom::Err::Incomplete(_) => "incomplete".into(),
    }
}

fn needed(n: nom::Needed) -> usize {
    match n {
        nom::Needed::Size(s) => s.get(),
        nom::Needed::Unknown => 1,
    }
}

/// Nanoseconds since the epoch from pcapng timestamp units.
fn ts_from_units(units: u64, resolution: u64, offset_s: i64) -> i64 {
    let res = u128::from(resolution.max(1));
    let ns = u128::from(units) * 1_000_000_000 / res;
    (ns.min(i64::MAX as u128) as i64).saturating_add(offset_s.saturating_mul(1_000_000_000))
}

enum Step {
    Packet(Current),
    Skip(usize),
    NeedMore(usize),
    End,
    Corrupt(String),
}

/// Several inputs read as one capture, packets in timestamp order.
pub struct Merged {
    readers: Vec<FileReader>,
    /// Index of the reader whose packet is current.
    current: Option<usize>,
    started: bool,
}

impl Merged {
    pub fn new(readers: Vec<FileReader>) -> Self {
        Merged {
            readers,
            current: None,
            started: false,
        }
    }

    /// Moves to the next packet of the whole capture.
    pub fn advance(&mut self) -> Result<bool, CaptureError> {
        if !self.started {
            self.started = true;
            for r in &mut self.readers {
                r.advance()?;
            }
        } else if let Some(i) = self.current {
            self.readers[i].advance()?;
        }
        // Earliest packet first; on a tie, the earlier input.
        self.current = self
            .readers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.cur.map(|c| (c.ts, i)))
            .min()
            .map(|(_, i)| i);
        Ok(self.current.is_some())
    }

    pub fn current(&self) -> Option<Packet<'_>> {
        self.readers[self.current?].current()
    }

    /// Index of the input the current packet came from.
    pub fn current_source(&self) -> Option<usize> {
        self.current
    }

    /// The counts of input `i` (to note a packet that gave no segment).
    pub fn counts_mut(&mut self, i: usize) -> Option<&mut PacketCounts> {
        self.readers.get_mut(i).map(|r| &mut r.stats.counts)
    }

    pub fn readers(&self) -> &[FileReader] {
        &self.readers
    }

    pub fn into_readers(self) -> Vec<FileReader> {
        self.readers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_bytes(nanos: bool, be: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            if be {
                v.extend(x.to_be_bytes())
            } else {
                v.extend(x.to_le_bytes())
            }
        };
        let mut v = Vec::new();
        w32(&mut v, if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 });
        let (maj, min) = if be {
            ([0, 2], [0, 4])
        } else {
            ([2, 0], [4, 0])
        };
        v.extend(maj);
        v.extend(min);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, 101);
        for (s, f, d) in records {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32);
            v.extend_from_slice(d);
        }
        v
    }

    fn read_all(bytes: Vec<u8>) -> (Vec<(Ts, Vec<u8>)>, SourceStats) {
        let mut r = FileReader::from_reader("t", Box::new(io::Cursor::new(bytes))).unwrap();
        let mut out = Vec::new();
        while r.advance().unwrap() {
            let p = r.current().unwrap();
            out.push((p.ts, p.data.to_vec()));
        }
        (out, r.stats.clone())
    }

    #[test]
    fn pcap_micro_nano_both_orders() {
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let b = pcap_bytes(nanos, be, &[(10, 5, b"ab"), (11, 7, b"cde")]);
            let (pk, st) = read_all(b);
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(pk.len(), 2);
            assert_eq!(pk[0].0, Ts(10_000_000_000 + 5 * unit));
            assert_eq!(pk[1].1, b"cde");
            assert_eq!(
                (st.counts.packets, st.counts.bytes, st.truncated),
                (2, 5, false)
            );
        }
    }

    #[test]
    fn truncated_last_record() {
        let mut b = pcap_bytes(false, false, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        b.truncate(b.len() - 2);
        let (pk, st) = read_all(b);
        assert_eq!(pk.len(), 1);
        assert!(st.truncated);
        assert!(st.stopped.unwrap().contains("cut short"));
    }

    #[test]
    fn not_a_capture() {
        let e = FileReader::from_reader(
            "x.txt",
            Box::new(io::Cursor::new(b"hello world, this is text".to_vec())),
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "x.txt: not a pcap or pcapng file");
        let e = FileReader::from_reader("e", Box::new(io::Cursor::new(Vec::new())))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "e: empty file");
    }

    #[test]
    fn huge_caplen_is_corrupt_not_allocated() {
        let mut b = pcap_bytes(false, false, &[(1, 0, b"ok")]);
        b.extend(1u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(u32::MAX.to_le_bytes());
        b.extend(u32::MAX.to_le_bytes());
        let (pk, st) = read_all(b);
        assert_eq!(pk.len(), 1);
        assert!(st.stopped.unwrap().contains("byte offset 42"));
    }

    #[test]
    fn corrupt_record_mid_file_is_skipped_and_reading_resumes() {
        let recs: Vec<(u32, u32, &[u8])> =
            (0..6).map(|i| (100 + i, 5, &b"packet-data"[..])).collect();
        let mut b = pcap_bytes(false, false, &recs);
        // Overwrite the third record's header (24 + 2 * 27) with garbage.
        let at = 24 + 2 * 27;
        b[at..at + 16].copy_from_slice(&[0xff; 16]);
        let (pk, st) = read_all(b);
        assert_eq!(pk.len(), 5, "the records after the corrupt one are read");
        assert_eq!(pk[2].0, Ts(103_000_005_000));
        assert_eq!(st.corrupt_records, 1);
        assert!(st.notes[0].contains("byte offset 78"), "{:?}", st.notes);
        assert!(st.stopped.is_none());
    }

    #[test]
    fn pcapng_corrupt_block_mid_file_is_skipped() {
        let good = include_bytes!("../samples/node-ping-pong.pcapng").to_vec();
        let (all, _) = read_all(good.clone());
        // Find the 10th enhanced packet block and break its length field.
        let mut at = 0;
        let mut epbs = 0;
        while at + 8 <= good.len() {
            let kind = u32::from_le_bytes(good[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(good[at + 4..at + 8].try_into().unwrap()) as usize;
            if kind == 6 {
                epbs += 1;
                if epbs == 10 {
                    break;
                }
            }
            at += len;
        }
        let mut bad = good;
        bad[at + 4..at + 8].copy_from_slice(&7u32.to_le_bytes());
        let (pk, st) = read_all(bad);
        assert_eq!(pk.len(), all.len() - 1);
        assert_eq!(pk[9].1, all[10].1);
        assert_eq!(st.corrupt_records, 1);
        assert!(
            st.notes[0].contains(&format!("byte offset {at}")),
            "{:?}",
            st.notes
        );
    }

    #[test]
    fn pcapng_ts_units() {
        assert_eq!(ts_from_units(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(ts_from_units(3, 1_000_000_000, 10), 10_000_000_003);
    }
}
