//! One capture input read packet by packet: the file header decides the
//! format, then each step parses the record at the window's start, asks
//! the source for more bytes when a record goes on past it, and hands a
//! corrupt record to `resync`.

use std::io::Read;

use super::pcap::{self, Pcap};
use super::pcapng::{PcapNg, SHB_MAGIC};
use super::source::Source;
use super::{Current, MAX_RECORD, Packet, PacketCounts, SourceStats, Step};
use crate::Ts;
use crate::error::Error;

/// How the records of an input are read.
#[derive(Debug)]
pub(super) enum Format {
    Pcap(Pcap),
    PcapNg(PcapNg),
}

/// A reader of one capture file (or stdin).
pub struct FileReader {
    pub name: String,
    pub(super) src: Source,
    pub(super) format: Format,
    cur: Option<Current>,
    /// The last packet's time (resynchronising checks times against it).
    pub(super) last_ts: Ts,
    pub stats: SourceStats,
}

impl FileReader {
    /// TLS key log text from the pcapng's Decryption Secrets Blocks read
    /// since the last call.
    pub fn take_secrets(&mut self) -> Vec<String> {
        match &mut self.format {
            Format::PcapNg(p) => std::mem::take(&mut p.secrets),
            Format::Pcap(_) => Vec::new(),
        }
    }

    /// Whether key log text waits to be taken (asked after every packet).
    #[inline]
    pub fn has_secrets(&self) -> bool {
        matches!(&self.format, Format::PcapNg(p) if !p.secrets.is_empty())
    }

    /// The mapped file its packets lie in (`None` for a pipe).
    pub(crate) fn map(&self) -> Option<&std::sync::Arc<memmap2::Mmap>> {
        self.src.map()
    }

    /// Opens `name` (`-` for stdin) and reads its file header.
    pub fn open(name: &str) -> Result<FileReader, Error> {
        Self::from_source(name, Source::open(name)?)
    }

    /// A reader over any byte stream (tests, fuzzing).
    pub fn from_reader(name: &str, reader: Box<dyn Read + Send>) -> Result<FileReader, Error> {
        Self::from_source(name, Source::stream(reader))
    }

    /// Reads the file header: pcapng (its section header is then read like
    /// any block) or pcap.
    fn from_source(name: &str, mut src: Source) -> Result<FileReader, Error> {
        src.fill(pcap::HEADER_LEN).map_err(|e| Error::io(name, e))?;
        let w = src.window();
        if w.is_empty() {
            return Err(Error::input(name, "empty file"));
        }
        let mut stats = SourceStats::default();
        let format = if w.len() >= 4 && w[..4] == SHB_MAGIC {
            Format::PcapNg(PcapNg::default())
        } else {
            let p = Pcap::from_header(name, w)?;
            stats.link_types.push(p.linktype);
            src.consume(pcap::HEADER_LEN);
            Format::Pcap(p)
        };
        Ok(FileReader {
            name: name.to_string(),
            src,
            format,
            cur: None,
            last_ts: Ts(0),
            stats,
        })
    }

    /// Bytes of the input read so far.
    pub(crate) fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// The input's size, when known (a regular file).
    pub(crate) fn size(&self) -> Option<u64> {
        self.src.size()
    }

    /// The packet the reader stands on.
    #[inline]
    pub fn current(&self) -> Option<Packet<'_>> {
        let c = self.cur?;
        Some(packet_at(self.src.window(), c))
    }

    /// The packet the reader stands on, and the counts of its input (to
    /// note a packet that gave no TCP segment).
    #[inline]
    pub(crate) fn current_mut(&mut self) -> Option<(Packet<'_>, &mut PacketCounts)> {
        let c = self.cur?;
        Some((packet_at(self.src.window(), c), &mut self.stats.counts))
    }

    /// The time of the packet the reader stands on.
    pub(super) fn current_ts(&self) -> Option<Ts> {
        self.cur.map(|c| c.ts)
    }

    /// Moves to the next packet. `Ok(false)` at the end of the input; a
    /// truncated or corrupt tail ends the input too (noted in `stats`).
    #[inline]
    pub fn advance(&mut self) -> Result<bool, Error> {
        if let Some(c) = self.cur.take() {
            self.src.consume(c.record_len);
        }
        // The common case: the next packet record, whole in the window.
        // Everything else (other pcapng blocks, a pipe to read on, a
        // corrupt or cut-short record) goes the general way, out of line:
        // inlined, it made every packet pay for a large stack frame and
        // its spills.
        let w = self.src.window();
        let fast = match &self.format {
            Format::Pcap(p) => p.record(w),
            Format::PcapNg(p) => p.record(w),
        };
        match fast {
            Some(c) => {
                self.cur = Some(c);
                self.note(c);
                Ok(true)
            }
            None => self.advance_generally(),
        }
    }

    /// Notes the packet `c` the reader now stands on.
    #[inline]
    fn note(&mut self, c: Current) {
        self.last_ts = c.ts;
        self.stats.counts.record(c.ts, c.data_len);
    }

    /// [`FileReader::advance`] for any record of any input.
    #[inline(never)]
    fn advance_generally(&mut self) -> Result<bool, Error> {
        loop {
            match self.parse_next() {
                Step::Packet => {
                    if let Some(c) = self.cur {
                        self.note(c);
                    }
                    return Ok(true);
                }
                Step::Skip(n) => self.src.consume(n),
                Step::NeedMore(n) => {
                    if !self.need_more(n)? {
                        return Ok(false);
                    }
                }
                Step::End => return Ok(false),
                Step::Corrupt(why) => {
                    let at = self.src.offset();
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

    /// The record at the window's start goes on past it by at least `n`
    /// bytes: reads them from a pipe, or, at the input's end, skips a
    /// corrupt length or notes the cut-short last record. False when
    /// reading is over.
    fn need_more(&mut self, n: usize) -> Result<bool, Error> {
        if self.src.more_may_come() {
            let want = self.src.window().len() + n.max(1);
            if want > MAX_RECORD + 64 {
                self.stop(format!(
                    "record at byte offset {} is larger than {} bytes: corrupt file",
                    self.src.offset(),
                    MAX_RECORD
                ));
                return Ok(false);
            }
            self.src.fill(want).map_err(|e| Error::io(&self.name, e))?;
            return Ok(true);
        }
        if self.src.window().is_empty() {
            return Ok(false);
        }
        let (at, rest) = (self.src.offset(), self.src.window().len());
        self.stats.truncated = true;
        // A record claiming more than the input holds: the file's end, or
        // a corrupt length mid-file with good records after it.
        if self.skip_corrupt(at, "claims more bytes than the input holds")? {
            return Ok(true);
        }
        self.stats.stopped = Some(format!(
            "the last record (at byte offset {at}) is cut short: {rest} byte(s) ignored"
        ));
        Ok(false)
    }

    /// Reading stops early, for `why`.
    pub(super) fn stop(&mut self, why: String) {
        self.stats.stopped = Some(why);
        self.stats.truncated = true;
    }

    /// What the record at the window's start is.
    #[inline]
    fn parse_next(&mut self) -> Step {
        let w = self.src.window();
        if w.is_empty() {
            return if self.src.more_may_come() {
                Step::NeedMore(1)
            } else {
                Step::End
            };
        }
        match &mut self.format {
            Format::Pcap(p) => p.parse(w, &mut self.cur),
            Format::PcapNg(p) => {
                p.parse(w, self.last_ts, &mut self.stats.link_types, &mut self.cur)
            }
        }
    }
}

/// The packet `c` in `window`.
#[inline]
fn packet_at(window: &[u8], c: Current) -> Packet<'_> {
    Packet {
        ts: c.ts,
        linktype: c.linktype,
        data: &window[c.data_at..c.data_at + c.data_len],
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::super::fixtures::{pcap_bytes, read_all};
    use super::*;

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
}
