//! Several inputs read as one capture: rotated files (`tcpdump -C`/`-G`)
//! given in any order, or captures of two interfaces, interleaved by
//! timestamp so a connection that spans files is followed across them.

use super::{FileReader, Packet, PacketCounts};
use crate::error::Error;

/// Several inputs read as one capture, packets in timestamp order.
pub(crate) struct Merged {
    readers: Vec<FileReader>,
    /// Index of the reader whose packet is current.
    current: Option<usize>,
    started: bool,
}

impl Merged {
    pub(crate) fn new(readers: Vec<FileReader>) -> Self {
        Merged {
            readers,
            current: None,
            started: false,
        }
    }

    /// Moves to the next packet of the whole capture.
    pub(crate) fn advance(&mut self) -> Result<bool, Error> {
        if !self.started {
            self.started = true;
            for r in &mut self.readers {
                r.advance()?;
            }
        } else if let Some(i) = self.current {
            self.readers[i].advance()?;
        }
        if let [only] = self.readers.as_slice() {
            // One input (the common case): nothing to compare.
            self.current = only.current_ts().map(|_| 0);
            return Ok(self.current.is_some());
        }
        // Earliest packet first; on a tie, the earlier input.
        self.current = self
            .readers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.current_ts().map(|ts| (ts, i)))
            .min()
            .map(|(_, i)| i);
        Ok(self.current.is_some())
    }

    /// The current packet and the counts of the input it came from.
    #[inline]
    pub(crate) fn current_mut(&mut self) -> Option<(Packet<'_>, &mut PacketCounts)> {
        self.readers[self.current?].current_mut()
    }

    /// Every input's map, in input order (`None` for a pipe).
    pub(crate) fn maps(&self) -> Vec<Option<std::sync::Arc<memmap2::Mmap>>> {
        self.readers.iter().map(|r| r.map().cloned()).collect()
    }

    /// Which input the current packet comes from.
    #[inline]
    pub(crate) fn current_input(&self) -> Option<usize> {
        self.current
    }

    /// Whether some input holds key log text not yet taken (asked after
    /// every packet, so only a flag is looked at).
    #[inline]
    pub(crate) fn has_secrets(&self) -> bool {
        self.readers.iter().any(FileReader::has_secrets)
    }

    /// Key log text of Decryption Secrets Blocks read since the last call.
    /// (Asked after every packet: a loop that moves empty vectors, not an
    /// iterator chain, costs next to nothing when there are none.)
    pub(crate) fn take_secrets(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.has_secrets() {
            return out;
        }
        for r in &mut self.readers {
            let mut s = r.take_secrets();
            if out.is_empty() {
                out = s;
            } else {
                out.append(&mut s);
            }
        }
        out
    }

    pub(crate) fn readers(&self) -> &[FileReader] {
        &self.readers
    }

    pub(crate) fn into_readers(self) -> Vec<FileReader> {
        self.readers
    }
}
