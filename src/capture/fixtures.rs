//! Captures built byte by byte for the tests of the capture readers.

use std::io::{self, Read};

use super::{Current, FileReader, SourceStats, Step};
use crate::Ts;

pub(super) fn pcap_bytes(nanos: bool, be: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
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

pub(super) fn read_all(bytes: Vec<u8>) -> (Vec<(Ts, Vec<u8>)>, SourceStats) {
    let mut r = FileReader::from_reader("t", Box::new(io::Cursor::new(bytes))).unwrap();
    let mut out = Vec::new();
    while r.advance().unwrap() {
        let p = r.current().unwrap();
        out.push((p.ts, p.data.to_vec()));
    }
    (out, r.stats.clone())
}

/// A pcapng section in either byte order: header, one Ethernet
/// interface (microsecond timestamps), one packet per `(ts_us, data)`.
pub(super) fn pcapng_section(be: bool, packets: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    let w32 =
        |v: &mut Vec<u8>, x: u32| v.extend(if be { x.to_be_bytes() } else { x.to_le_bytes() });
    let w16 =
        |v: &mut Vec<u8>, x: u16| v.extend(if be { x.to_be_bytes() } else { x.to_le_bytes() });
    w32(&mut v, 0x0a0d_0d0a);
    w32(&mut v, 28);
    w32(&mut v, 0x1a2b_3c4d);
    w16(&mut v, 1);
    w16(&mut v, 0);
    v.extend([0xff; 8]);
    w32(&mut v, 28);
    w32(&mut v, 1);
    w32(&mut v, 20);
    w16(&mut v, 1);
    w16(&mut v, 0);
    w32(&mut v, 65535);
    w32(&mut v, 20);
    for (ts, data) in packets {
        let padded = data.len().div_ceil(4) * 4;
        let len = 32 + padded as u32;
        w32(&mut v, 6);
        w32(&mut v, len);
        w32(&mut v, 0);
        w32(&mut v, (ts >> 32) as u32);
        w32(&mut v, *ts as u32);
        w32(&mut v, data.len() as u32);
        w32(&mut v, data.len() as u32);
        v.extend_from_slice(data);
        v.resize(v.len() + padded - data.len(), 0);
        w32(&mut v, len);
    }
    v
}

/// A pipe that hands out its bytes up to each cut in turn, as a read
/// of a pipe returns what the writer had written so far.
pub(super) struct Cuts {
    pub(super) data: Vec<u8>,
    pub(super) cuts: Vec<usize>,
    pub(super) pos: usize,
}

impl Read for Cuts {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let upto = self
            .cuts
            .iter()
            .copied()
            .find(|&c| c > self.pos)
            .unwrap_or(self.data.len());
        let n = (upto - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether a reader's common case (`fast`, a `record` function) agrees
/// with the general parse of window `w` (`step`, and the packet it wrote:
/// `slow`): true when both read the same packet, false when neither reads
/// one; it panics when they differ.
pub(super) fn fast_agrees(
    fast: Option<Current>,
    step: &Step,
    slow: Option<Current>,
    w: &[u8],
) -> bool {
    match (fast, step, slow) {
        (Some(fast), Step::Packet, Some(slow)) => {
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
            true
        }
        (None, Step::Packet, _) => panic!("a packet left out: {w:?}"),
        (Some(fast), _, _) => panic!("{fast:?} read where parse says no: {w:?}"),
        (None, _, _) => false,
    }
}

/// Writes `v` at `at` of `w`, in the given byte order.
pub(super) fn put_u32(w: &mut [u8], at: usize, v: u32, be: bool) {
    let b = if be { v.to_be_bytes() } else { v.to_le_bytes() };
    w[at..at + 4].copy_from_slice(&b);
}
