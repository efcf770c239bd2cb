//! Reading on after a corrupt record: a capture damaged in the middle
//! (a bad disk block, a crashed writer, a flipped length) still has good
//! records after the damage. The reader scans forward for the next place
//! where a record, and the one after it, look right, and notes what it
//! skipped, so one bad record does not cost the rest of the file.

use std::io;

use super::reader::{FileReader, Format};
use crate::error::Error;

/// Longest run of bytes searched for the next record after a corrupt one.
const MAX_RESYNC: usize = 64 << 20;

/// Corrupt-record messages kept per input (the rest are only counted).
const MAX_NOTES: usize = 10;

/// Bytes read ahead to judge a record's header.
const LOOKAHEAD: usize = 64;

impl FileReader {
    /// Skips the bad record at `at` (`what` says what is wrong with it) by
    /// resynchronising; counts and notes it. False when no good record
    /// follows.
    pub(super) fn skip_corrupt(&mut self, at: u64, what: &str) -> Result<bool, Error> {
        if !self.resync().map_err(|e| Error::io(&self.name, e))? {
            return Ok(false);
        }
        let now = self.src.offset();
        self.stats.corrupt_records += 1;
        self.stats.truncated = true;
        if self.stats.notes.len() < MAX_NOTES {
            self.stats.notes.push(format!(
                "the record at byte offset {at} {what}: skipped {} byte(s), reading on from byte offset {now}",
                now - at,
            ));
        }
        Ok(true)
    }

    /// After a corrupt record: moves on to the next place where a record
    /// (and the one after it, or the end of the input) looks right. pcap
    /// records may start at any byte; pcapng blocks are 4-byte aligned.
    fn resync(&mut self) -> io::Result<bool> {
        let step = match self.format {
            Format::Pcap(_) => 1,
            Format::PcapNg(_) => 4,
        };
        let mut scanned = 0;
        while scanned < MAX_RESYNC {
            let n = step.min(self.src.window().len());
            if n == 0 {
                return Ok(false);
            }
            self.src.consume(n);
            scanned += n;
            self.src.fill(LOOKAHEAD)?;
            let Some(len) = self.plausible_record(self.src.window()) else {
                continue;
            };
            self.src.fill(len + LOOKAHEAD)?;
            let w = self.src.window();
            let next_ok = match w.len().checked_sub(len) {
                None => false,
                Some(0) => true,
                Some(rest) => {
                    self.plausible_record(&w[len..]).is_some()
                        || (rest < 16 && !self.src.more_may_come())
                }
            };
            if next_ok {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The length of the record at the start of `w` when its header is
    /// believable.
    fn plausible_record(&self, w: &[u8]) -> Option<usize> {
        match &self.format {
            Format::Pcap(p) => p.plausible(w, self.last_ts),
            Format::PcapNg(p) => p.plausible(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{pcap_bytes, read_all};
    use crate::Ts;

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
        let good = include_bytes!("../../samples/node-ping-pong.pcapng").to_vec();
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
}
