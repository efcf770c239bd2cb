//! The summary's list of connections, kept out of memory. Each connection
//! is encoded (postcard) into a spool the moment it is decided: in memory
//! up to [`SPOOL_MEMORY`] bytes, then in an unnamed temporary file (in
//! `$TMPDIR`, gone when the run ends). It is read back, one at a time and
//! in id order, when the summary is written. What stays in memory is an
//! [`Entry`] a connection (24 bytes): where its record lies, and the order
//! of its first packet, which gives its id.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};

use crate::close::{ConnectionReport, Outcome};
use crate::error::Error;

/// Encoded connections kept in memory before the spool moves to a file:
/// about 80,000 connections, so that most captures never touch the disk.
pub const SPOOL_MEMORY: usize = 16 << 20;

/// Where one connection's record lies, and what the tables select on.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Order of the connection's first packet (ids follow it).
    order: u64,
    offset: u64,
    len: u32,
    unclean: bool,
}

enum Spool {
    Memory(Vec<u8>),
    /// Being written.
    File(BufWriter<File>),
    /// Flushed, read back through a map (no system call a record).
    Sealed(memmap2::Mmap),
}

/// The connections of a run, in id order once [`Connections::seal`]ed.
pub struct Connections {
    spool: Spool,
    /// Memory past which the spool moves to a file.
    memory: usize,
    written: u64,
    index: Vec<Entry>,
    scratch: Vec<u8>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::with_memory(SPOOL_MEMORY)
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connections({})", self.index.len())
    }
}

/// Errors of the spool name it: a full disk is the likely one.
fn spool_error(e: io::Error) -> Error {
    Error::io("the temporary file of decided connections ($TMPDIR)", e)
}

/// A record that does not encode or decode: a bug, or a damaged file.
fn corrupt(what: impl std::fmt::Display) -> Error {
    spool_error(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
}

impl Connections {
    /// A list that keeps up to `memory` bytes of encoded connections in
    /// memory (0: every one goes to the file).
    pub fn with_memory(memory: usize) -> Connections {
        Connections {
            spool: Spool::Memory(Vec::new()),
            memory,
            written: 0,
            index: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds a decided connection (its id is given at [`Connections::seal`]).
    pub fn push(&mut self, r: &ConnectionReport) -> Result<(), Error> {
        self.scratch.clear();
        let encoded = postcard::to_extend(r, std::mem::take(&mut self.scratch))
            .map_err(|e| corrupt(format_args!("encoding a connection: {e}")))?;
        self.scratch = encoded;
        let len = u32::try_from(self.scratch.len())
            .map_err(|_| corrupt("a connection's record over 4 GiB"))?;
        if let Spool::Memory(m) = &self.spool
            && m.len() + self.scratch.len() > self.memory
        {
            self.move_to_file()?;
        }
        match &mut self.spool {
            Spool::Memory(m) => m.extend_from_slice(&self.scratch),
            Spool::File(w) => w.write_all(&self.scratch).map_err(spool_error)?,
            Spool::Sealed(_) => return Err(corrupt("a connection added after the end")),
        }
        self.index.push(Entry {
            order: r.order,
            offset: self.written,
            len,
            unclean: r.close.outcome != Outcome::Clean,
        });
        self.written += u64::from(len);
        Ok(())
    }

    /// Moves what is in memory to a temporary file.
    fn move_to_file(&mut self) -> Result<(), Error> {
        let mut w = BufWriter::with_capacity(1 << 16, tempfile::tempfile().map_err(spool_error)?);
        if let Spool::Memory(m) = &self.spool {
            w.write_all(m).map_err(spool_error)?;
        }
        self.spool = Spool::File(w);
        Ok(())
    }

    /// Ends the writing: connections in order of their first packet, which
    /// makes their ids (1, 2, ...; see [`Connections::id_of`]).
    pub fn seal(&mut self) -> Result<(), Error> {
        match std::mem::replace(&mut self.spool, Spool::Memory(Vec::new())) {
            Spool::File(w) => {
                let file = w.into_inner().map_err(|e| spool_error(e.into_error()))?;
                // SAFETY: the file is unnamed (no other process can open
                // it) and no longer written; the map is read-only.
                #[allow(unsafe_code)]
                let map = unsafe { memmap2::Mmap::map(&file) }.map_err(spool_error)?;
                self.spool = Spool::Sealed(map);
            }
            Spool::Memory(mut m) => {
                m.shrink_to_fit();
                self.spool = Spool::Memory(m);
            }
            sealed @ Spool::Sealed(_) => self.spool = sealed,
        }
        self.index.sort_unstable_by_key(|e| e.order);
        self.index.shrink_to_fit();
        Ok(())
    }

    /// The id of the connection whose first packet had `order` (after
    /// [`Connections::seal`]).
    pub fn id_of(&self, order: u64) -> Option<u64> {
        let i = self.index.binary_search_by_key(&order, |e| e.order).ok()?;
        Some(i as u64 + 1)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Connections whose outcome is not `clean`.
    pub fn unclean(&self) -> usize {
        self.index.iter().filter(|e| e.unclean).count()
    }

    /// The connection with `id`, read back.
    pub fn get(&self, id: u64) -> Result<Option<ConnectionReport>, Error> {
        let Some(i) = id.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return Ok(None);
        };
        if i >= self.index.len() {
            return Ok(None);
        }
        self.read(i).map(Some)
    }

    /// Every connection in id order, read back one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Result<ConnectionReport, Error>> + '_ {
        (0..self.index.len()).map(move |i| self.read(i))
    }

    /// The connections not clean, in id order, read back one at a time.
    pub fn iter_unclean(&self) -> impl Iterator<Item = Result<ConnectionReport, Error>> + '_ {
        (0..self.index.len())
            .filter(|&i| self.index[i].unclean)
            .map(move |i| self.read(i))
    }

    /// Every connection, in memory (the HTML report and tests).
    pub fn to_vec(&self) -> Result<Vec<ConnectionReport>, Error> {
        self.iter().collect()
    }

    /// The `i`th connection (0-based), decoded, with its id.
    pub(super) fn read(&self, i: usize) -> Result<ConnectionReport, Error> {
        let e = self.index[i];
        let spool: &[u8] = match &self.spool {
            Spool::Memory(m) => m,
            Spool::Sealed(map) => map,
            Spool::File(_) => return Err(corrupt("connections read before the end")),
        };
        let bytes = usize::try_from(e.offset)
            .ok()
            .and_then(|o| spool.get(o..o.checked_add(e.len as usize)?))
            .ok_or_else(|| corrupt("a record out of the spool"))?;
        let mut r: ConnectionReport = postcard::from_bytes(bytes)
            .map_err(|e| corrupt(format_args!("decoding a connection: {e}")))?;
        r.id = i as u64 + 1;
        r.order = e.order;
        Ok(r)
    }
}

impl Serialize for Connections {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for r in self.iter() {
            seq.serialize_element(&r.map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection as `analyze` writes it (python-clean-client-close.pcap).
    const ONE: &str = r#"{"id": 1, "client": "127.0.0.1:39606", "server": "127.0.0.1:18710", "first_ts": 1795301553.649679, "last_ts": 1795301553.953614, "handshake": {"request_ts": 1795301553.65013, "response_ts": 1795301553.65082, "path": "/chat", "host": "127.0.0.1:18710", "status": 101, "accept_valid": true, "subprotocol": null, "extensions": ["permessage-deflate"]}, "frames": {"client": {"text": 3, "binary": 0, "continuation": 0, "ping": 0, "pong": 0, "close": 1, "payload_bytes": 25}, "server": {"text": 3, "binary": 0, "continuation": 0, "ping": 0, "pong": 0, "close": 1, "payload_bytes": 25}}, "close": {"outcome": "clean", "initiator": "client", "client_frame": {"ts": 1795301553.952878, "code": 1000, "reason": "bye", "reason_valid_utf8": true, "payload_len": 5}, "server_frame": {"ts": 1795301553.953263, "code": 1000, "reason": "bye", "reason_valid_utf8": true, "payload_len": 5}, "handshake_s": 0.000385, "idle_s": 0.300814, "tcp_end": {"kind": "fin", "by": "server", "ts": 1795301553.95345}}, "findings": [], "transport": "tcp", "tls": null}"#;

    fn report(order: u64, client: &str) -> ConnectionReport {
        let mut r: ConnectionReport = serde_json::from_str(ONE).expect("report");
        r.order = order;
        r.client = client.to_string();
        r
    }

    #[test]
    fn read_back_in_order_from_memory_and_from_file() {
        for memory in [usize::MAX, 0, 300] {
            let mut c = Connections::with_memory(memory);
            for (order, name) in [(7, "c"), (2, "a"), (5, "b")] {
                c.push(&report(order, name)).expect("push");
            }
            c.seal().expect("seal");
            let back = c.to_vec().expect("read");
            let names: Vec<_> = back.iter().map(|r| (r.id, r.client.as_str())).collect();
            assert_eq!(names, [(1, "a"), (2, "b"), (3, "c")], "memory {memory}");
            assert_eq!(c.id_of(5), Some(2));
            assert_eq!(c.get(3).expect("get").map(|r| r.client), Some("c".into()));
            assert!(c.get(0).expect("get").is_none() && c.get(4).expect("get").is_none());
            let on_file = matches!(c.spool, Spool::Sealed(_));
            assert_eq!(on_file, memory != usize::MAX, "memory {memory}");
        }
    }
}
