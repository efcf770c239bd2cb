//! The pcapng format: blocks, each with its type and length at both ends.
//! A section header starts each section and says the section's byte order;
//! interface descriptions give each interface its link type and timestamp
//! unit; enhanced and simple packet blocks carry the packets. Other blocks
//! (statistics, name resolution, custom) are skipped.

use pcap_parser::pcapng::{Block, EnhancedPacketBlock, SecretsType};
use pcap_parser::{Linktype, PcapError, parse_block_be, parse_block_le, parse_sectionheaderblock};

use super::{Current, MAX_RECORD, Step, needed, u32_at};
use crate::Ts;

/// A pcapng section header block's type: the same in either byte order.
pub(super) const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Where a section header's byte-order magic lies, and its big-endian form.
const BOM_AT: usize = 8;
const BOM_BE: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];

/// Block types a record may start with after resynchronising (besides a
/// section header, known by its magic): interface description, simple
/// packet, name resolution, interface statistics, enhanced packet, systemd
/// journal, decryption secrets, custom (copyable or not).
const KNOWN_BLOCKS: [u32; 9] = [1, 3, 4, 5, 6, 9, 10, 0xBAD, 0x4000_0BAD];

/// One interface of the current section.
#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: Linktype,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

/// The state of a pcapng file being read: the current section's byte
/// order and interfaces.
#[derive(Debug, Default)]
pub(super) struct PcapNg {
    big_endian: bool,
    ifaces: Vec<Iface>,
    /// TLS key log text of Decryption Secrets Blocks not yet taken (what
    /// `editcap --inject-secrets tls,KEYS` writes).
    pub(super) secrets: Vec<String>,
}

/// The byte order of a block at the start of `w`: a section header says its
/// own (its byte-order magic), other blocks follow their section's.
/// `None` while a section header's magic is not all there.
fn block_big_endian(w: &[u8], section_be: bool) -> Option<bool> {
    if w.get(..4)? == SHB_MAGIC {
        Some(w.get(BOM_AT..BOM_AT + 4)? == BOM_BE)
    } else {
        Some(section_be)
    }
}

/// An enhanced packet block's type.
const EPB: u32 = 6;

impl PcapNg {
    /// The block at the start of `w` when it is an enhanced packet block
    /// of a declared interface, whole in `w`: the reader's common case,
    /// kept apart from [`PcapNg::parse`] (which says what any other block
    /// is) so that it stays cheap on every packet. The same checks and the
    /// same result as `parse`, or `None`.
    #[inline]
    pub(super) fn record(&self, w: &[u8]) -> Option<Current> {
        let be = self.big_endian;
        let blen = u32_at(w, 4, be)? as usize;
        if u32_at(w, 0, be)? != EPB || !(12..=MAX_RECORD).contains(&blen) || blen % 4 != 0 {
            return None;
        }
        let (rest, block) = if be {
            parse_block_be(w)
        } else {
            parse_block_le(w)
        }
        .ok()?;
        match block {
            Block::EnhancedPacket(epb) => self.packet(w, w.len() - rest.len(), &epb),
            _ => None,
        }
    }

    /// The packet of enhanced packet block `epb`, `record_len` bytes at
    /// the start of `w`; `None` when its interface was not declared.
    #[inline]
    fn packet(
        &self,
        w: &[u8],
        record_len: usize,
        epb: &EnhancedPacketBlock<'_>,
    ) -> Option<Current> {
        let iface = self.ifaces.get(epb.if_id as usize)?;
        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
        Some(Current {
            ts: Ts(ts_from_units(units, iface.resolution, iface.offset_s)),
            linktype: iface.linktype,
            data_at: epb.data.as_ptr() as usize - w.as_ptr() as usize,
            data_len: (epb.caplen as usize).min(epb.data.len()),
            record_len,
        })
    }

    /// The block at the start of `w`. Section headers and interface
    /// descriptions update the state (new link types go to `link_types`);
    /// a simple packet block, which has no time, takes `last_ts`.
    pub(super) fn parse(
        &mut self,
        w: &[u8],
        last_ts: Ts,
        link_types: &mut Vec<Linktype>,
        cur: &mut Option<Current>,
    ) -> Step {
        let is_shb = w.len() >= 4 && w[..4] == SHB_MAGIC;
        if w.len() >= 8 {
            // A section header's byte order is in its bytes 8..12: until
            // they are there (a pipe read may stop short of them), its
            // length cannot be read.
            let Some(be) = block_big_endian(w, self.big_endian) else {
                return Step::NeedMore(BOM_AT + 4 - w.len());
            };
            let blen = u32_at(w, 4, be).unwrap_or_default() as usize;
            if blen > MAX_RECORD {
                return Step::Corrupt(format!("block claims {blen} bytes"));
            }
            if blen < 12 || blen % 4 != 0 {
                return Step::Corrupt(format!("block length {blen} is invalid"));
            }
        }
        let res = if is_shb {
            parse_sectionheaderblock(w).map(|(r, b)| (r, Block::SectionHeader(b)))
        } else if self.big_endian {
            parse_block_be(w)
        } else {
            parse_block_le(w)
        };
        match res {
            Ok((rest, block)) => {
                let record_len = w.len() - rest.len();
                self.block(w, record_len, block, last_ts, link_types, cur)
            }
            Err(nom::Err::Incomplete(n)) => Step::NeedMore(needed(n)),
            Err(e) => Step::Corrupt(format!("unreadable pcapng block ({})", describe(&e))),
        }
    }

    /// What a parsed block of `record_len` bytes at the start of `w` means.
    fn block(
        &mut self,
        w: &[u8],
        record_len: usize,
        block: Block<'_>,
        last_ts: Ts,
        link_types: &mut Vec<Linktype>,
        cur: &mut Option<Current>,
    ) -> Step {
        let base = w.as_ptr() as usize;
        match block {
            Block::SectionHeader(shb) => {
                self.big_endian = shb.big_endian();
                self.ifaces.clear();
                Step::Skip(record_len)
            }
            Block::InterfaceDescription(idb) => {
                let lt = idb.linktype;
                self.ifaces.push(Iface {
                    linktype: lt,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000),
                    offset_s: idb.ts_offset(),
                });
                if !link_types.contains(&lt) {
                    link_types.push(lt);
                }
                Step::Skip(record_len)
            }
            Block::EnhancedPacket(epb) => match self.packet(w, record_len, &epb) {
                Some(c) => {
                    *cur = Some(c);
                    Step::Packet
                }
                None => Step::Corrupt(format!("packet of undeclared interface {}", epb.if_id)),
            },
            Block::SimplePacket(spb) => {
                let Some(iface) = self.ifaces.first().copied() else {
                    return Step::Corrupt("packet before any interface".into());
                };
                *cur = Some(Current {
                    ts: last_ts,
                    linktype: iface.linktype,
                    data_at: spb.data.as_ptr() as usize - base,
                    data_len: (spb.origlen as usize).min(spb.data.len()),
                    record_len,
                });
                Step::Packet
            }
            Block::DecryptionSecrets(dsb) if dsb.secrets_type == SecretsType::TlsKeyLog => {
                let len = (dsb.secrets_len as usize).min(dsb.data.len());
                self.secrets
                    .push(String::from_utf8_lossy(&dsb.data[..len]).into_owned());
                Step::Skip(record_len)
            }
            _ => Step::Skip(record_len),
        }
    }

    /// The length of the block at the start of `w` when its header is
    /// believable: a known type, a sane length that its trailing copy
    /// repeats, and a declared interface for a packet.
    pub(super) fn plausible(&self, w: &[u8]) -> Option<usize> {
        let shb = w.get(..4)? == SHB_MAGIC;
        let be = block_big_endian(w, self.big_endian)?;
        let kind = u32_at(w, 0, be)?;
        let len = u32_at(w, 4, be)? as usize;
        let known = shb || KNOWN_BLOCKS.contains(&kind);
        let sane = (12..=MAX_RECORD).contains(&len) && len % 4 == 0;
        if !(known && sane) || u32_at(w, len - 4, be)? as usize != len {
            return None;
        }
        if kind == 6 && !shb && u32_at(w, 8, be)? as usize >= self.ifaces.len() {
            return None;
        }
        Some(len)
    }
}

/// pcap-parser's error, short enough for a one-line note.
fn describe(e: &nom::Err<PcapError<&[u8]>>) -> String {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            format!("{e:?}").chars().take(60).collect::<String>()
        }
        nom::Err::Incomplete(_) => "incomplete".into(),
    }
}

/// Nanoseconds since the epoch from pcapng timestamp units.
fn ts_from_units(units: u64, resolution: u64, offset_s: i64) -> i64 {
    let res = u128::from(resolution.max(1));
    let ns = u128::from(units) * 1_000_000_000 / res;
    (ns.min(i64::MAX as u128) as i64).saturating_add(offset_s.saturating_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::super::FileReader;
    use super::super::fixtures::{Cuts, fast_agrees, pcapng_section, put_u32};
    use super::*;

    /// The reader's common case ([`PcapNg::record`]) reads every enhanced
    /// packet block as [`PcapNg::parse`] does, and leaves every other
    /// block to it: a block cut anywhere, an undeclared interface, a bad
    /// length, section headers and interface descriptions, in both byte
    /// orders.
    #[test]
    fn record_reads_what_parse_reads_and_nothing_else() {
        for be in [false, true] {
            let file = pcapng_section(be, &[(1_500_000, b"abcde"), (2_000_000, b"")]);
            let put = |w: &mut Vec<u8>, at: usize, v: u32| put_u32(w, at, v, be);
            let (mut p, mut types, mut pos) = (PcapNg::default(), Vec::new(), 0);
            // The section header and the interface: not packets.
            loop {
                let fast = p.record(&file[pos..]);
                match p.parse(&file[pos..], Ts(0), &mut types, &mut None) {
                    Step::Skip(n) => {
                        assert!(fast.is_none(), "block at {pos}: {fast:?}");
                        pos += n;
                    }
                    Step::Packet => break,
                    _ => panic!("the section's head at {pos} does not read"),
                }
            }
            let body = &file[pos..];
            let blen = u32_at(body, 4, be).expect("a block length") as usize;
            let mut windows: Vec<Vec<u8>> = (0..=body.len()).map(|n| body[..n].to_vec()).collect();
            let mut stranger = body.to_vec();
            put(&mut stranger, 8, 5);
            windows.push(stranger);
            let mut odd = body.to_vec();
            put(&mut odd, 4, blen as u32 + 2);
            windows.push(odd);
            let mut packets = 0;
            for w in &windows {
                let mut cur = None;
                let step = p.parse(w, Ts(0), &mut types, &mut cur);
                packets += usize::from(fast_agrees(p.record(w), &step, cur, w));
            }
            assert_eq!(packets, body.len() - blen + 1, "{be}");
        }
    }

    #[test]
    fn pcapng_ts_units() {
        assert_eq!(ts_from_units(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(ts_from_units(3, 1_000_000_000, 10), 10_000_000_003);
    }

    #[test]
    fn pcapng_big_endian_section_split_by_a_pipe_read() {
        let mut bytes = pcapng_section(false, &[(1_000_000, b"little"), (2_000_000, b"endian")]);
        let second = bytes.len();
        bytes.extend(pcapng_section(
            true,
            &[(3_000_000, b"big"), (4_000_000, b"endian!")],
        ));
        for split in 8..=11 {
            let pipe = Cuts {
                data: bytes.clone(),
                cuts: vec![second + split],
                pos: 0,
            };
            let mut r = FileReader::from_reader("pipe", Box::new(pipe)).unwrap();
            let mut got = Vec::new();
            while r.advance().unwrap() {
                let p = r.current().unwrap();
                got.push((p.ts, p.data.to_vec()));
            }
            let st = &r.stats;
            assert_eq!(
                (st.corrupt_records, st.truncated, &st.stopped),
                (0, false, &None),
                "split {split} bytes into the section header: {:?}",
                st.notes
            );
            let datas: Vec<&[u8]> = got.iter().map(|(_, d)| &d[..]).collect();
            assert_eq!(
                datas,
                [&b"little"[..], b"endian", b"big", b"endian!"],
                "split {split}"
            );
            assert_eq!(got[2].0, Ts(3_000_000_000), "split {split}");
        }
    }
}
