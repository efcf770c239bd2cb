//! The classic pcap format: a 24-byte file header (byte order, micro- or
//! nanosecond timestamps, the link type of every packet, the snap length),
//! then records of a 16-byte header (24 in Kuznetzov's modified format) and
//! the captured bytes.

use pcap_parser::{
    LegacyPcapBlock, Linktype, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified,
    parse_pcap_header,
};

use super::{Current, MAX_RECORD, Step, needed, u32_at};
use crate::Ts;
use crate::error::Error;

/// Largest captured length libpcap accepts whatever the file header says.
const LIBPCAP_MAX_SNAPLEN: u32 = 262_144;

/// Bytes of the file header.
pub(super) const HEADER_LEN: usize = 24;

/// A pcap file's header: how to read its records.
#[derive(Debug)]
pub(super) struct Pcap {
    big_endian: bool,
    modified: bool,
    nanos: bool,
    pub(super) linktype: Linktype,
    /// Largest plausible captured length (snap length, at least libpcap's).
    max_caplen: u32,
}

impl Pcap {
    /// Reads the file header at the start of `w` (of input `name`).
    pub(super) fn from_header(name: &str, w: &[u8]) -> Result<Pcap, Error> {
        let h = match parse_pcap_header(w) {
            Ok((_, h)) => h,
            Err(nom::Err::Incomplete(_)) => {
                return Err(Error::input(name, "not a pcap or pcapng file (too short)"));
            }
            Err(_) => return Err(Error::input(name, "not a pcap or pcapng file")),
        };
        let linktype = h.network;
        if !crate::decode::link_supported(linktype) {
            return Err(Error::input(
                name,
                format!(
                    "unsupported link type {} ({})",
                    crate::decode::link_name(linktype),
                    linktype.0
                ),
            ));
        }
        Ok(Pcap {
            big_endian: h.is_bigendian(),
            modified: h.is_modified_format(),
            nanos: h.is_nanosecond_precision(),
            linktype,
            max_caplen: h.snaplen.clamp(LIBPCAP_MAX_SNAPLEN, MAX_RECORD as u32),
        })
    }

    /// Timestamp fractions must stay below this.
    fn frac_max(&self) -> u32 {
        if self.nanos { 1_000_000_000 } else { 1_000_000 }
    }

    /// The record at the start of `w` when it is an ordinary one, whole in
    /// `w`: the reader's common case, kept apart from [`Pcap::parse`] (which
    /// says what any other record is) so that it stays small enough to be
    /// cheap on every packet. The same checks and the same result as
    /// `parse`, or `None`.
    #[inline]
    pub(super) fn record(&self, w: &[u8]) -> Option<Current> {
        if self.modified {
            return None;
        }
        let (frac, caplen) = (
            u32_at(w, 4, self.big_endian)?,
            u32_at(w, 8, self.big_endian)?,
        );
        if caplen > self.max_caplen || frac >= self.frac_max() {
            return None;
        }
        let res = if self.big_endian {
            parse_pcap_frame_be(w)
        } else {
            parse_pcap_frame(w)
        };
        let (rest, b) = res.ok()?;
        Some(self.current(w, rest, &b))
    }

    /// The packet `b`, parsed from `w` with `rest` left after it.
    #[inline]
    fn current(&self, w: &[u8], rest: &[u8], b: &LegacyPcapBlock<'_>) -> Current {
        let frac = if self.nanos {
            i64::from(b.ts_usec)
        } else {
            i64::from(b.ts_usec) * 1000
        };
        let record_len = w.len() - rest.len();
        Current {
            ts: Ts(i64::from(b.ts_sec) * 1_000_000_000 + frac),
            linktype: self.linktype,
            data_at: record_len - b.data.len(),
            data_len: b.data.len(),
            record_len,
        }
    }

    /// The record at the start of `w`. Its header's lengths and time are
    /// checked before pcap-parser sees it, so a corrupt length is reported
    /// as such rather than waited for (or allocated).
    pub(super) fn parse(&self, w: &[u8], cur: &mut Option<Current>) -> Step {
        if w.len() >= 16
            && let (Some(frac), Some(caplen)) =
                (u32_at(w, 4, self.big_endian), u32_at(w, 8, self.big_endian))
        {
            if caplen > self.max_caplen {
                return Step::Corrupt(format!("it claims {caplen} captured bytes"));
            }
            if frac >= self.frac_max() {
                return Step::Corrupt(format!("its timestamp fraction {frac} is out of range"));
            }
        }
        let res = if self.modified {
            parse_pcap_frame_modified(w)
        } else if self.big_endian {
            parse_pcap_frame_be(w)
        } else {
            parse_pcap_frame(w)
        };
        match res {
            Ok((rest, b)) => {
                *cur = Some(self.current(w, rest, &b));
                Step::Packet
            }
            Err(nom::Err::Incomplete(n)) => Step::NeedMore(needed(n)),
            Err(_) => Step::Corrupt("unreadable pcap record".into()),
        }
    }

    /// The length of the record at the start of `w` when its header is
    /// believable: sane lengths, and a time within a day of `last_ts` (the
    /// last good packet's, 0 before any).
    pub(super) fn plausible(&self, w: &[u8], last_ts: Ts) -> Option<usize> {
        let be = self.big_endian;
        let (sec, frac) = (u32_at(w, 0, be)?, u32_at(w, 4, be)?);
        let (caplen, origlen) = (u32_at(w, 8, be)?, u32_at(w, 12, be)?);
        let last = last_ts.0 / 1_000_000_000;
        let near = last == 0 || (i64::from(sec) - last).abs() <= 86_400;
        let ok = frac < self.frac_max()
            && caplen <= self.max_caplen
            && origlen >= caplen
            && origlen as usize <= MAX_RECORD
            && near;
        ok.then_some(if self.modified { 24 } else { 16 } + caplen as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{fast_agrees, pcap_bytes, put_u32};
    use super::*;

    /// The reader's common case ([`Pcap::record`]) reads every ordinary
    /// record as [`Pcap::parse`] does, and leaves every other one to it: a
    /// record cut anywhere, a corrupt length, a timestamp out of range, in
    /// both byte orders and both time units.
    #[test]
    fn record_reads_what_parse_reads_and_nothing_else() {
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let file = pcap_bytes(nanos, be, &[(10, 5, b"abc"), (11, 7, b"")]);
            let p = Pcap::from_header("t", &file).expect("a pcap header");
            let body = &file[HEADER_LEN..];
            let put = |w: &mut Vec<u8>, at: usize, v: u32| put_u32(w, at, v, be);
            let mut windows: Vec<Vec<u8>> = (0..=body.len()).map(|n| body[..n].to_vec()).collect();
            let mut long = body.to_vec();
            put(&mut long, 8, p.max_caplen + 1);
            windows.push(long);
            let mut late = body.to_vec();
            put(&mut late, 4, p.frac_max());
            windows.push(late);
            let mut packets = 0;
            for w in &windows {
                let mut cur = None;
                let step = p.parse(w, &mut cur);
                packets += usize::from(fast_agrees(p.record(w), &step, cur, w));
            }
            // The whole first record, in every window that holds it.
            assert_eq!(packets, body.len() - (16 + 3) + 1);
        }
    }
}
