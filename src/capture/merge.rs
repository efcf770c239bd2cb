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

    /// Key log text of Decryption Secrets Blocks read since the last call.
    pub(crate) fn take_secrets(&mut self) -> Vec<String> {
        self.readers
            .iter_mut()
            .flat_map(FileReader::take_secrets)
            .collect()
    }

    pub(crate) fn readers(&self) -> &[FileReader] {
        &self.readers
    }

    pub(crate) fn into_readers(self) -> Vec<FileReader> {
        self.readers
    }
}
