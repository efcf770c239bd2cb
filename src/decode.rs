//! Link, IP and TCP decoding: from a captured frame to a TCP segment.
//!
//! pcap-parser strips the link layer (its `data` module knows Linux SLL and
//! SLL2, raw IP and Ethernet); etherparse's lax slicer does the rest (VLAN and
//! QinQ tags, IPv4 options, IPv6 extension headers), and still yields the
//! headers of a packet cut short by the snap length.
//!
//! Most packets are plain: Ethernet II or SLL, IPv4 unfragmented or IPv6
//! without extension headers, TCP, whole. Those take a fast path over
//! etherparse's header slices ([`fast_ip`]) that builds no `LaxSlicedPacket`
//! (a 328-byte value moved several times per packet); anything else (VLAN,
//! extension headers, fragments, a cut or odd length, an error) falls back
//! to the lax slicer, so both paths give the same answer.

use std::fmt;
use std::net::IpAddr;

use etherparse::{
    EtherType, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, LaxNetSlice, LaxSlicedPacket, TcpSlice,
    TransportSlice,
};
use pcap_parser::Linktype;
use pcap_parser::data::{PacketData, get_packetdata};

/// An IP address and a TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// `a.b.c.d:port` or `[v6]:port`. IPv4 is written digit by digit into
    /// a buffer: every report names two endpoints, and the formatter's
    /// five padded integers per address cost a million short connections
    /// about a twentieth of their time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(a) => {
                let mut buf = [0u8; 21];
                let mut n = 0;
                for (i, octet) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    n += decimal(u16::from(octet), &mut buf[n..]);
                }
                buf[n] = b':';
                n += 1;
                n += decimal(self.port, &mut buf[n..]);
                // Only ASCII digits, dots and a colon were written.
                f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
            }
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Writes `v` in decimal at the start of `out` (at least 5 bytes), returning
/// the digits written.
fn decimal(v: u16, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 5];
    let (mut v, mut n) = (v, 0);
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (o, d) in out.iter_mut().zip(digits[..n].iter().rev()) {
        *o = *d;
    }
    n
}

/// The parts of a TCP segment that reassembly and analysis need.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub seq: u32,
    pub ack_no: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// IPv4 TTL or IPv6 hop limit: an RST whose TTL no earlier packet of
    /// its sender had was injected on the path (`foreign_reset`).
    pub ttl: u8,
    /// The packet was cut short by the capture's snap length: its payload
    /// is shorter than what was sent.
    pub cut: bool,
    /// The payload as captured (shorter than sent when the snap length cut it).
    pub payload: &'a [u8],
}

/// Why a packet yields no TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A well-formed packet of another protocol (UDP, ARP, ICMP ...).
    NotTcp,
    /// An IP fragment: TCP over fragmented IP is not reassembled.
    Fragment,
    /// Bytes that do not decode (truncated headers, garbage).
    Undecodable,
    /// A link type we do not read.
    UnsupportedLink,
}

/// Whether a link type can be decoded.
pub fn link_supported(lt: Linktype) -> bool {
    matches!(
        lt,
        Linktype::NULL
            | Linktype::ETHERNET
            | Linktype::RAW
            | Linktype::LINUX_SLL
            | Linktype::LINUX_SLL2
            | Linktype::IPV4
            | Linktype::IPV6
            | Linktype::LOOP
    ) || lt.0 == 12
}

/// libpcap's name for a link type (what `tcpdump -L` prints).
pub fn link_name(lt: Linktype) -> String {
    match lt.0 {
        0 => "NULL".into(),
        1 => "EN10MB".into(),
        12 | 101 => "RAW".into(),
        108 => "LOOP".into(),
        113 => "LINUX_SLL".into(),
        228 => "IPV4".into(),
        229 => "IPV6".into(),
        276 => "LINUX_SLL2".into(),
        105 => "IEEE802_11".into(),
        127 => "IEEE802_11_RADIO".into(),
        n => format!("LINKTYPE_{n}"),
    }
}

/// Decodes one captured frame of link type `lt` down to TCP.
#[inline]
pub fn decode(lt: Linktype, data: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    if let Some(seg) = fast(lt, data) {
        return Ok(seg);
    }
    decode_lax(lt, data)
}

/// Ethernet II (no VLAN tag), SLL and SLL2, raw IP: the IP packet, when its
/// EtherType says IPv4 or IPv6. `None` sends the frame to the lax path.
#[inline(always)]
fn fast(lt: Linktype, data: &[u8]) -> Option<TcpSegment<'_>> {
    let ip = match lt.0 {
        1 if ip_ether_type(be16(data, 12)?) => data.get(14..)?,
        0 | 108 if matches!(bsd_af(lt, data)?, 2 | 24 | 28 | 30) => data.get(4..)?,
        12 | 101 | 228 | 229 => data,
        // SLL: ARPHRD type at 2, protocol at 14; SLL2: protocol at 0,
        // ARPHRD type at 8.
        113 => sll_ip(data, 2, 14, 16)?,
        276 => sll_ip(data, 8, 0, 20)?,
        _ => return None,
    };
    fast_ip(ip)
}

/// The address family of a BSD loopback frame: 4 bytes, host order for
/// NULL (either byte order, told by its size), network order for LOOP.
fn bsd_af(lt: Linktype, data: &[u8]) -> Option<u32> {
    let af: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some(if lt.0 == 108 {
        u32::from_be_bytes(af)
    } else {
        let le = u32::from_le_bytes(af);
        if le > 0xffff { le.swap_bytes() } else { le }
    })
}

fn ip_ether_type(et: u16) -> bool {
    et == EtherType::IPV4.0 || et == EtherType::IPV6.0
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// The IP packet of a Linux cooked frame whose device type pcap-parser
/// reads as layer 3 (not GRE, radiotap or netlink) and whose protocol is IP.
fn sll_ip(data: &[u8], arphrd_at: usize, proto_at: usize, len: usize) -> Option<&[u8]> {
    let arphrd = be16(data, arphrd_at)?;
    if matches!(arphrd, 778 | 803 | 824) || !ip_ether_type(be16(data, proto_at)?) {
        return None;
    }
    data.get(len..)
}

/// A whole IP packet carrying a whole TCP header, told by its version
/// nibble as etherparse's `slice_ip` does: IPv4 with its total length
/// inside the capture and no fragmentation, or IPv6 with TCP as its next
/// header (no extension headers) and a payload length inside the capture.
/// The payload ends where the IP length says (Ethernet padding dropped).
#[inline(always)]
fn fast_ip(ip: &[u8]) -> Option<TcpSegment<'_>> {
    let (src, dst, ttl, l4) = match ip.first()? >> 4 {
        4 => {
            let h = Ipv4HeaderSlice::from_slice(ip).ok()?;
            let total = usize::from(h.total_len());
            let hl = h.slice().len();
            if total < hl || h.is_fragmenting_payload() || h.protocol() != IpNumber::TCP {
                return None;
            }
            let l4 = ip.get(hl..total)?;
            let (s, d) = (h.source_addr(), h.destination_addr());
            (IpAddr::V4(s), IpAddr::V4(d), h.ttl(), l4)
        }
        6 => {
            let h = Ipv6HeaderSlice::from_slice(ip).ok()?;
            let len = usize::from(h.payload_length());
            if len == 0 || h.next_header() != IpNumber::TCP {
                return None;
            }
            let l4 = ip.get(40..40 + len)?;
            let (s, d) = (h.source_addr(), h.destination_addr());
            (IpAddr::V6(s), IpAddr::V6(d), h.hop_limit(), l4)
        }
        _ => return None,
    };
    let tcp = TcpSlice::from_slice(l4).ok()?;
    Some(tcp_segment(&tcp, src, dst, ttl, false))
}

/// The lax slicer, for every frame the fast path does not take.
#[cold]
fn decode_lax(lt: Linktype, data: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    let sliced = match lt.0 {
        // BSD loopback: a 4-byte address family, host order for NULL,
        // network order for LOOP.
        0 | 108 => match bsd_af(lt, data).ok_or(Skip::Undecodable)? {
            2 | 24 | 28 | 30 => from_ip(&data[4..])?,
            _ => return Err(Skip::NotTcp),
        },
        12 => from_ip(data)?,
        _ => match get_packetdata(data, lt, data.len()) {
            Some(PacketData::L2(l2)) => {
                LaxSlicedPacket::from_ethernet(l2).map_err(|_| Skip::Undecodable)?
            }
            Some(PacketData::L3(ethertype, l3)) => {
                LaxSlicedPacket::from_ether_type(EtherType(ethertype), l3)
            }
            Some(PacketData::L4(..)) => return Err(Skip::NotTcp),
            Some(PacketData::Unsupported(_)) => return Err(Skip::UnsupportedLink),
            None => return Err(Skip::Undecodable),
        },
    };
    segment(&sliced)
}

fn from_ip(data: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Undecodable)
}

fn segment<'a>(p: &LaxSlicedPacket<'a>) -> Result<TcpSegment<'a>, Skip> {
    let (src, dst, ttl, fragmented, cut) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                v4.payload().fragmented,
                v4.payload().incomplete,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                v6.payload().fragmented,
                v6.payload().incomplete,
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Err(Skip::NotTcp),
        None => {
            return Err(if p.stop_err.is_some() {
                Skip::Undecodable
            } else {
                Skip::NotTcp
            });
        }
    };
    if fragmented {
        return Err(Skip::Fragment);
    }
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(tcp_segment(tcp, src, dst, ttl, cut)),
        Some(_) => Err(Skip::NotTcp),
        None => {
            let tcp_number = match &p.net {
                Some(LaxNetSlice::Ipv4(v4)) => v4.payload().ip_number,
                Some(LaxNetSlice::Ipv6(v6)) => v6.payload().ip_number,
                _ => return Err(Skip::NotTcp),
            };
            if tcp_number == etherparse::IpNumber::TCP {
                Err(Skip::Undecodable)
            } else {
                Err(Skip::NotTcp)
            }
        }
    }
}

/// The segment of a TCP slice, with what its IP header said.
#[inline]
fn tcp_segment<'a>(
    tcp: &TcpSlice<'a>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    cut: bool,
) -> TcpSegment<'a> {
    TcpSegment {
        src: Endpoint {
            ip: src,
            port: tcp.source_port(),
        },
        dst: Endpoint {
            ip: dst,
            port: tcp.destination_port(),
        },
        seq: tcp.sequence_number(),
        ack_no: tcp.acknowledgment_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        ttl,
        cut,
        payload: tcp.payload(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        tcp_builder(false).psh().write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn endpoints_read_as_std_writes_socket_addresses() {
        let ips = [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 9, 100],
            [1, 20, 199, 7],
        ];
        for ip in ips {
            for port in [0, 9, 10, 99, 100, 8080, 9999, 10000, 65535] {
                let ip = IpAddr::from(ip);
                let e = Endpoint { ip, port };
                let std = std::net::SocketAddr::new(ip, port).to_string();
                assert_eq!(e.to_string(), std);
                assert_eq!(format!("{e:>30}"), std, "width is not padding");
            }
        }
        let v6 = Endpoint {
            ip: IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            port: 443,
        };
        assert_eq!(v6.to_string(), "[2001:db8::1]:443");
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let pkt = tcp_v4(b"hi");
        let s = decode(Linktype::ETHERNET, &pkt).unwrap();
        assert_eq!(s.src.to_string(), "10.0.0.1:1234");
        assert_eq!(s.dst.to_string(), "10.0.0.2:80");
        assert_eq!((s.seq, s.ack_no, s.ack, s.syn), (7, 9, true, false));
        assert_eq!(s.ttl, 64);
        assert_eq!(s.payload, b"hi");
    }

    #[test]
    fn vlan_tagged() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        let s = decode(Linktype::ETHERNET, &v).unwrap();
        assert_eq!(s.payload, b"x");
        assert!(s.src.to_string().starts_with("[101:101:"));
    }

    #[test]
    fn snaplen_cut_payload_still_decodes() {
        let pkt = tcp_v4(&[7u8; 100]);
        let s = decode(Linktype::ETHERNET, &pkt[..pkt.len() - 40]).unwrap();
        assert_eq!(s.payload.len(), 60);
        assert!(s.cut, "the snap length cut it");
        assert!(!decode(Linktype::ETHERNET, &pkt).unwrap().cut);
    }

    #[test]
    fn raw_and_null_and_sll2() {
        let pkt = tcp_v4(b"abc");
        let ip = &pkt[14..];
        assert_eq!(decode(Linktype::RAW, ip).unwrap().payload, b"abc");
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        assert_eq!(decode(Linktype::NULL, &null).unwrap().payload, b"abc");
        let mut lp = 2u32.to_be_bytes().to_vec();
        lp.extend_from_slice(ip);
        assert_eq!(decode(Linktype::LOOP, &lp).unwrap().payload, b"abc");
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6];
        sll2.extend([0u8; 8]);
        sll2.extend_from_slice(ip);
        assert_eq!(decode(Linktype::LINUX_SLL2, &sll2).unwrap().payload, b"abc");
    }

    /// Ethernet, IPv4 or IPv6, TCP from 1234 to 80 (seq 7, ack 9).
    fn tcp_builder(v6: bool) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let b = if v6 {
            b.ipv6([1; 16], [2; 16], 60)
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        b.tcp(1234, 80, 7, 1024).ack(9)
    }

    /// Frames off the common shape, each also cut and changed byte by byte
    /// by the test: TCP options (NOP, NOP, timestamps), IPv4 options, and
    /// an IPv6 payload length of 0 (as captures of TSO or jumbograms show).
    fn odd_frames() -> Vec<(Linktype, Vec<u8>)> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
            let b = tcp_builder(v6).options_raw(&ts).unwrap();
            let mut f = Vec::new();
            b.write(&mut f, b"hello").unwrap();
            if v6 {
                let mut zero = f.clone();
                zero[18..20].copy_from_slice(&[0, 0]);
                out.push((Linktype::ETHERNET, zero));
            }
            out.push((Linktype::ETHERNET, f));
        }
        // Four bytes of IPv4 options (NOP, NOP, NOP, end), the header's
        // length, total length and checksum made right.
        let mut f = tcp_v4(b"hello");
        f.splice(34..34, [1, 1, 1, 0]);
        f[14] = 0x46;
        let total = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let sum: u32 = f[14..38]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        let check = !((folded & 0xffff) + (folded >> 16)) as u16;
        f[24..26].copy_from_slice(&check.to_be_bytes());
        out.push((Linktype::ETHERNET, f));
        out
    }

    /// Options and a zero IPv6 payload length decode as they should: the
    /// payload and the ports come through.
    #[test]
    fn options_and_a_zero_ipv6_payload_length() {
        for (lt, f) in odd_frames() {
            let s = decode(lt, &f).unwrap();
            assert_eq!((s.src.port, s.dst.port, s.seq), (1234, 80, 7), "{f:?}");
            assert_eq!(s.payload, b"hello", "{f:?}");
        }
    }

    /// Frames of every link type the fast path takes, IPv4 and IPv6.
    fn frames() -> Vec<(Linktype, Vec<u8>)> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            let b = tcp_builder(v6).psh();
            let mut eth = Vec::new();
            b.write(&mut eth, b"hello").unwrap();
            let ip = eth[14..].to_vec();
            let et = [eth[12], eth[13]];
            let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
            sll.extend(et);
            sll.extend(&ip);
            let mut sll2 = vec![et[0], et[1], 0, 0, 0, 0, 0, 1, 0, 1, 0, 6];
            sll2.extend([0u8; 8]);
            sll2.extend(&ip);
            let mut null = (if v6 { 30u32 } else { 2 }).to_le_bytes().to_vec();
            null.extend(&ip);
            let mut lp = (if v6 { 30u32 } else { 2 }).to_be_bytes().to_vec();
            lp.extend(&ip);
            let mut padded = eth.clone();
            padded.extend([0u8; 6]);
            out.extend([
                (Linktype::ETHERNET, eth),
                (Linktype::ETHERNET, padded),
                (Linktype::LINUX_SLL, sll),
                (Linktype::LINUX_SLL2, sll2),
                (Linktype::NULL, null),
                (Linktype::LOOP, lp),
                (Linktype::RAW, ip.clone()),
                (Linktype(12), ip.clone()),
                (Linktype::IPV4, ip.clone()),
                (Linktype::IPV6, ip),
            ]);
        }
        out
    }

    /// The fast path answers exactly as the lax slicer would, for whole
    /// frames, every truncation, and every byte of the headers changed.
    #[test]
    fn fast_path_agrees_with_lax() {
        let same = |lt: Linktype, f: &[u8]| {
            let (a, b) = (decode(lt, f), decode_lax(lt, f));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{lt:?} {f:?}");
        };
        let mut fast_taken = 0;
        let plain = frames().len();
        for (i, (lt, f)) in frames().into_iter().chain(odd_frames()).enumerate() {
            fast_taken += usize::from(i < plain && fast(lt, &f).is_some());
            for cut in 0..=f.len() {
                same(lt, &f[..cut]);
            }
            for i in 0..f.len().min(80) {
                for v in [
                    0u8, 1, 4, 5, 6, 0x11, 0x20, 0x2c, 0x40, 0x45, 0x60, 0x81, 0xff,
                ] {
                    let mut g = f.clone();
                    g[i] = v;
                    same(lt, &g);
                    g[i] = f[i] ^ v;
                    same(lt, &g);
                }
            }
        }
        assert_eq!(fast_taken, 20, "every sample frame takes the fast path");
    }

    #[test]
    fn not_tcp_and_garbage() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(1, 2);
        let mut v = Vec::new();
        b.write(&mut v, b"u").unwrap();
        assert_eq!(decode(Linktype::ETHERNET, &v).unwrap_err(), Skip::NotTcp);
        assert!(decode(Linktype::ETHERNET, &[1, 2, 3]).is_err());
        assert!(decode(Linktype::RAW, &[0x45, 0, 0]).is_err());
        assert!(decode(Linktype(147), &[0x45, 0, 0]).is_err());
    }
}
