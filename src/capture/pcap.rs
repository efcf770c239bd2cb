//! The classic pcap format: a 24-byte file header (byte order, micro- or
//! nanosecond timestamps, the link type of every packet, the snap length),
//! then records of a 16-byte header (24 in Kuznetzov's modified format) and
//! the captured bytes.

use pcap_parser::{
    Linktype, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
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

    /// The record at the start of `w`. Its header's lengths and time are
    /// checked before pcap-parser sees it, so a corrupt length is reported
    /// as such rather than waited for (or allocated).
    #[inline]
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
                let frac = if self.nanos {
                    i64::from(b.ts_usec)
                } else {
                    i64::from(b.ts_usec) * 1000
                };
                let ts = Ts(i64::from(b.ts_sec) * 1_000_000_000 + frac);
                let record_len = w.len() - rest.len();
                *cur = Some(Current {
                    ts,
                    linktype: self.linktype,
                    data_at: record_len - b.data.len(),
                    data_len: b.data.len(),
                    record_len,
                });
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
