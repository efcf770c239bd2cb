//! Property tests (proptest) of the stages whose correctness does not depend
//! on how the network or the capture cut the bytes:
//!
//! 1. TCP reassembly (`wsclose::reassembly::FlowTable`): any permutation,
//!    duplication or overlap of both directions' segments, ISNs anywhere
//!    (wraparound at 2^32 included), gives back exactly the bytes sent, no
//!    gap, each FIN once and after the last byte; with segments lost by the
//!    capture, every byte captured once and a gap exactly at each loss; with
//!    the peer acknowledging lost bytes, or under caps, every byte delivered
//!    is the right one, once.
//! 2. The streaming frame decoder (`wsclose::frame::FrameDecoder`): any cut
//!    of a stream of frames gives the same headers and close payloads as
//!    feeding it whole, and those are the frames that were serialised.
//! 3. `wsclose::frame::parse_frame` inverts a frame serialiser written here
//!    (every length form, minimal or not, masked or not).
//! 4. End to end: `wsclose analyze --json -` reports the same conversation
//!    the same way whatever its segmentation (random segment sizes, segments
//!    reordered within a window).

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use wsclose::Ts;
use wsclose::decode::{Endpoint, TcpSegment};
use wsclose::frame::{FrameDecoder, FrameEvent, FrameHeader, parse_frame, parse_header};
use wsclose::reassembly::{Dir as RDir, FlowKey, FlowTable, Limits, StreamSink};

/// A small deterministic generator for permutations driven by a proptest seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Reassembly
// ---------------------------------------------------------------------------

/// What the flow table handed to a sink, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(RDir, Vec<u8>),
    Gap(RDir, u64),
    Fin(RDir),
    Rst(RDir),
}

#[derive(Debug, Default)]
struct Recorder {
    events: Vec<Ev>,
}

impl Recorder {
    fn bytes(&self, dir: RDir) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Ev::Data(d, b) = e
                && *d == dir
            {
                out.extend_from_slice(b);
            }
        }
        out
    }
}

impl StreamSink for Recorder {
    fn on_packet(&mut self, _: RDir, _: Ts, _: &TcpSegment<'_>) {}
    fn on_data(&mut self, dir: RDir, _: Ts, data: &[u8]) {
        self.events.push(Ev::Data(dir, data.to_vec()));
    }
    fn on_gap(&mut self, dir: RDir, _: Ts, len: u64) {
        self.events.push(Ev::Gap(dir, len));
    }
    fn on_fin(&mut self, dir: RDir, _: Ts) {
        self.events.push(Ev::Fin(dir));
    }
    fn on_rst(&mut self, dir: RDir, _: Ts) {
        self.events.push(Ev::Rst(dir));
    }
}

const EP_CLIENT: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    port: 50000,
};
const EP_SERVER: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    port: 80,
};

/// One segment of the test conversation. `off` is the stream offset of its
/// first byte (0 = the byte after the SYN).
#[derive(Debug, Clone)]
struct TSeg {
    from_client: bool,
    off: usize,
    len: usize,
    fin: bool,
    /// A retransmitted SYN (client) or SYN-ACK (server), no payload.
    syn: bool,
}

/// One direction of the conversation as generated.
#[derive(Debug, Clone)]
struct DirPlan {
    isn: u32,
    data: Vec<u8>,
    cuts: Vec<Index>,
    retrans: Vec<(Index, Index)>,
    dups: Vec<Index>,
    fin: bool,
    fin_with_data: bool,
}

fn isn_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        // Wraps within the first few KiB of the stream.
        (u32::MAX - 4096)..=u32::MAX,
        0u32..64,
    ]
}

fn dir_plan(max_len: usize) -> impl Strategy<Value = DirPlan> {
    (
        isn_strategy(),
        prop::collection::vec(any::<u8>(), 0..max_len),
        prop::collection::vec(any::<Index>(), 0..24),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..8),
        prop::collection::vec(any::<Index>(), 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(isn, data, cuts, retrans, dups, fin, fin_with_data)| DirPlan {
                isn,
                data,
                cuts,
                retrans,
                dups,
                fin,
                fin_with_data,
            },
        )
}

/// The segments of one direction: the stream cut at the chosen points, then
/// retransmitted sub-ranges (overlapping anything), then duplicates.
fn segments_of(p: &DirPlan, from_client: bool) -> Vec<TSeg> {
    let n = p.data.len();
    let mut out = Vec::new();
    if n > 0 {
        let mut points: Vec<usize> = p.cuts.iter().map(|i| i.index(n)).collect();
        points.push(0);
        points.push(n);
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            out.push(TSeg {
                from_client,
                off: w[0],
                len: w[1] - w[0],
                fin: false,
                syn: false,
            });
        }
        for (a, b) in &p.retrans {
            let (a, b) = (a.index(n), b.index(n));
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            out.push(TSeg {
                from_client,
                off: lo,
                len: hi - lo,
                fin: false,
                syn: false,
            });
        }
        let base = out.len();
        for d in &p.dups {
            let s = out[d.index(base)].clone();
            out.push(s);
        }
    }
    if p.fin {
        if p.fin_with_data && n > 0 {
            // The FIN rides on the last base segment (and on its duplicates).
            for s in &mut out {
                if s.off + s.len == n {
                    s.fin = true;
                }
            }
        } else {
            out.push(TSeg {
                from_client,
                off: n,
                len: 0,
                fin: true,
                syn: false,
            });
        }
    }
    out
}

#[derive(Debug, Clone)]
struct ReassemblyCase {
    client: DirPlan,
    server: DirPlan,
    retransmit_syns: bool,
    seed: u64,
}

/// Plays the case through a flow table. Every segment acknowledges what the
/// capture has so far shown of the peer's stream without a hole (a peer
/// cannot acknowledge what it did not receive), so no hole is ever taken for
/// capture loss.
fn run_reassembly(case: &ReassemblyCase) -> (Vec<Recorder>, wsclose::reassembly::ReassemblyStats) {
    run_reassembly_with(case, Limits::default())
}

fn run_reassembly_with(
    case: &ReassemblyCase,
    limits: Limits,
) -> (Vec<Recorder>, wsclose::reassembly::ReassemblyStats) {
    run_reassembly_lossy(case, limits, &Loss::default()).0
}

/// Segments the capture loses (indices into the shuffled segments, SYNs
/// excepted), and whether the peer acknowledges them (it received them:
/// only the capture missed them) or only what the capture showed.
#[derive(Debug, Clone, Default)]
struct Loss {
    lost: Vec<Index>,
    acked: bool,
}

/// What a lossy run fed: per direction (client, server), the bytes the
/// capture carried and whether a FIN was captured.
type Fed = [(Vec<bool>, bool); 2];

fn run_reassembly_lossy(
    case: &ReassemblyCase,
    limits: Limits,
    loss: &Loss,
) -> ((Vec<Recorder>, wsclose::reassembly::ReassemblyStats), Fed) {
    let mut segs = segments_of(&case.client, true);
    segs.extend(segments_of(&case.server, false));
    if case.retransmit_syns {
        for from_client in [true, false] {
            segs.push(TSeg {
                from_client,
                off: 0,
                len: 0,
                fin: false,
                syn: true,
            });
        }
    }
    XorShift::new(case.seed).shuffle(&mut segs);
    let lost: std::collections::BTreeSet<usize> = loss
        .lost
        .iter()
        .map(|i| i.index(segs.len().max(1)))
        .collect();

    let plans = [&case.client, &case.server];
    // Bytes of each direction the capture has shown so far, and (for the
    // peer's ACKs) those sent so far, lost ones included.
    let mut seen: [Vec<bool>; 2] = [
        vec![false; case.client.data.len()],
        vec![false; case.server.data.len()],
    ];
    let mut sent = seen.clone();
    let mut fins = [false; 2];
    let prefix = |s: &Vec<bool>| s.iter().take_while(|b| **b).count() as u32;

    let mut table: FlowTable<Recorder> = FlowTable::new(limits);
    let mut out = Vec::new();
    let mut new_sink = |_: &FlowKey, _: RDir, _: Ts| Recorder::default();
    let mut t = 0i64;
    let mut feed = |table: &mut FlowTable<Recorder>,
                    out: &mut Vec<Recorder>,
                    from_client: bool,
                    seq: u32,
                    ack_no: Option<u32>,
                    syn: bool,
                    fin: bool,
                    payload: &[u8]| {
        let (src, dst) = if from_client {
            (EP_CLIENT, EP_SERVER)
        } else {
            (EP_SERVER, EP_CLIENT)
        };
        let seg = TcpSegment {
            src,
            dst,
            seq,
            ack_no: ack_no.unwrap_or(0),
            syn,
            ack: ack_no.is_some(),
            fin,
            rst: false,
            ttl: 64,
            cut: false,
            payload,
        };
        t += 1000;
        table.process(Ts(t), &seg, &mut new_sink, &mut |r, _| out.push(r));
    };

    let (ci, si) = (case.client.isn, case.server.isn);
    // The handshake first: SYN, SYN-ACK, ACK.
    feed(&mut table, &mut out, true, ci, None, true, false, &[]);
    feed(
        &mut table,
        &mut out,
        false,
        si,
        Some(ci.wrapping_add(1)),
        true,
        false,
        &[],
    );
    feed(
        &mut table,
        &mut out,
        true,
        ci.wrapping_add(1),
        Some(si.wrapping_add(1)),
        false,
        false,
        &[],
    );
    for (i, s) in segs.iter().enumerate() {
        let d = usize::from(!s.from_client);
        let plan = plans[d];
        let peer_isn = plans[1 - d].isn;
        let peer = if loss.acked {
            &sent[1 - d]
        } else {
            &seen[1 - d]
        };
        let ack = peer_isn.wrapping_add(1).wrapping_add(prefix(peer));
        if s.syn {
            // A retransmitted SYN (client: no ACK) or SYN-ACK (server).
            let ack_no = (!s.from_client).then_some(ci.wrapping_add(1));
            feed(
                &mut table,
                &mut out,
                s.from_client,
                plan.isn,
                ack_no,
                true,
                false,
                &[],
            );
            continue;
        }
        let seq = plan.isn.wrapping_add(1).wrapping_add(s.off as u32);
        let payload = &plan.data[s.off..s.off + s.len];
        for b in &mut sent[d][s.off..s.off + s.len] {
            *b = true;
        }
        if lost.contains(&i) {
            continue;
        }
        fins[d] |= s.fin;
        for b in &mut seen[d][s.off..s.off + s.len] {
            *b = true;
        }
        feed(
            &mut table,
            &mut out,
            s.from_client,
            seq,
            Some(ack),
            false,
            s.fin,
            payload,
        );
    }
    let stats = table.stats;
    table.finish(Ts(t + 1000), &mut |r, _| out.push(r));
    let [c, s] = seen;
    ((out, stats), [(c, fins[0]), (s, fins[1])])
}

fn reassembly_case(max_len: usize) -> impl Strategy<Value = ReassemblyCase> {
    (
        dir_plan(max_len),
        dir_plan(max_len),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(client, server, retransmit_syns, seed)| ReassemblyCase {
            client,
            server,
            retransmit_syns,
            seed,
        })
}

fn check_reassembly(case: &ReassemblyCase) -> Result<(), TestCaseError> {
    let (out, stats) = run_reassembly(case);
    prop_assert_eq!(out.len(), 1, "one flow, one sink");
    let rec = &out[0];
    let (cdir, sdir) = {
        let (_, c) = FlowKey::of(EP_CLIENT, EP_SERVER);
        (c, c.other())
    };
    prop_assert!(
        !rec.events
            .iter()
            .any(|e| matches!(e, Ev::Gap(..) | Ev::Rst(..))),
        "no gap and no RST: {:?}",
        rec.events
            .iter()
            .filter(|e| !matches!(e, Ev::Data(..)))
            .collect::<Vec<_>>()
    );
    prop_assert_eq!(stats.gaps, 0);
    prop_assert_eq!(stats.gap_bytes, 0);
    for (dir, plan) in [(cdir, &case.client), (sdir, &case.server)] {
        prop_assert!(
            rec.bytes(dir) == plan.data,
            "{dir:?}: reassembled {} bytes, sent {}",
            rec.bytes(dir).len(),
            plan.data.len()
        );
        let fins: Vec<usize> = rec
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| **e == Ev::Fin(dir))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(fins.len(), usize::from(plan.fin), "{:?} FINs", dir);
        if let Some(&at) = fins.first() {
            // The FIN comes after the direction's last byte.
            let later_data = rec.events[at..]
                .iter()
                .any(|e| matches!(e, Ev::Data(d, b) if *d == dir && !b.is_empty()));
            prop_assert!(!later_data, "{dir:?}: data after its FIN");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any order, duplication and overlap of both directions' segments
    /// reassembles to the bytes sent, with no gap; ISNs anywhere in the
    /// sequence space (wrapping within the stream included).
    #[test]
    fn reassembly_is_order_and_duplication_independent(case in reassembly_case(3000)) {
        check_reassembly(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The same with short streams and many cuts: most segments overlap
    /// something, and ISNs a few bytes below 2^32.
    #[test]
    fn reassembly_short_streams_dense_overlap(
        mut case in reassembly_case(64),
        c_isn in (u32::MAX - 80)..=u32::MAX,
        s_isn in (u32::MAX - 80)..=u32::MAX,
    ) {
        case.client.isn = c_isn;
        case.server.isn = s_isn;
        check_reassembly(&case)?;
    }
}

/// Walks a direction's events: every byte delivered is the byte sent at
/// that offset, delivered once; data and gaps together cover the stream.
fn check_accounted(rec: &Recorder, dir: RDir, sent: &[u8]) -> Result<(), TestCaseError> {
    let mut off = 0usize;
    for e in &rec.events {
        match e {
            Ev::Data(d, b) if *d == dir => {
                prop_assert!(
                    off + b.len() <= sent.len() && b[..] == sent[off..off + b.len()],
                    "{:?}: {} bytes at offset {} are not the bytes sent there",
                    dir,
                    b.len(),
                    off
                );
                off += b.len();
            }
            Ev::Gap(d, n) if *d == dir => {
                prop_assert!(*n > 0, "empty gap");
                off += *n as usize;
            }
            _ => {}
        }
    }
    prop_assert_eq!(off, sent.len(), "{:?}: data and gaps cover the stream", dir);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Under tiny out-of-order caps, holes are given up, never memory: at
    /// most the caps are buffered, and what is delivered is still the right
    /// bytes at the right offsets, each once, gaps accounting for the rest.
    #[test]
    fn reassembly_under_caps_delivers_right_bytes_once(
        case in reassembly_case(3000),
        per_dir in 0usize..2000,
        total in 0usize..3000,
    ) {
        let limits = Limits {
            max_buffered_per_dir: per_dir,
            max_buffered_total: total,
            ..Limits::default()
        };
        let (out, stats) = run_reassembly_with(&case, limits);
        prop_assert_eq!(out.len(), 1);
        let rec = &out[0];
        let (_, cdir) = FlowKey::of(EP_CLIENT, EP_SERVER);
        check_accounted(rec, cdir, &case.client.data)?;
        check_accounted(rec, cdir.other(), &case.server.data)?;
        prop_assert!(
            stats.peak_buffered as usize <= total.min(2 * per_dir),
            "peak {} over the caps ({} per direction, {} in all)",
            stats.peak_buffered, per_dir, total
        );
        let gaps = rec.events.iter().filter(|e| matches!(e, Ev::Gap(..))).count() as u64;
        prop_assert!(stats.gaps <= gaps, "stats.gaps {} > gaps delivered {}", stats.gaps, gaps);
        for (dir, plan) in [(cdir, &case.client), (cdir.other(), &case.server)] {
            let fins = rec.events.iter().filter(|e| **e == Ev::Fin(dir)).count();
            prop_assert_eq!(fins, usize::from(plan.fin));
        }
    }
}

/// The gaps a direction should show when the capture carried `seen` (and a
/// FIN when `fin`): each stretch of bytes missing before the last byte
/// captured (before the FIN, when it was captured), at its offset.
fn expected_gaps(seen: &[bool], fin: bool) -> Vec<(usize, usize)> {
    let end = if fin {
        seen.len()
    } else {
        seen.iter().rposition(|b| *b).map_or(0, |p| p + 1)
    };
    let mut gaps = Vec::new();
    let mut i = 0;
    while i < end {
        if seen[i] {
            i += 1;
            continue;
        }
        let s = i;
        while i < end && !seen[i] {
            i += 1;
        }
        gaps.push((s, i - s));
    }
    gaps
}

/// The data and gap events of a direction, as (offset, gap length) for
/// gaps, checking the data on the way (as `check_accounted` does).
fn gaps_of(rec: &Recorder, dir: RDir, sent: &[u8]) -> Result<Vec<(usize, usize)>, TestCaseError> {
    let mut off = 0usize;
    let mut gaps = Vec::new();
    for e in &rec.events {
        match e {
            Ev::Data(d, b) if *d == dir => {
                prop_assert!(
                    off + b.len() <= sent.len() && b[..] == sent[off..off + b.len()],
                    "{:?}: wrong bytes at offset {}",
                    dir,
                    off
                );
                off += b.len();
            }
            Ev::Gap(d, n) if *d == dir => {
                gaps.push((off, *n as usize));
                off += *n as usize;
            }
            _ => {}
        }
    }
    Ok(gaps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Segments lost by the capture (the peer's ACKs show only what the
    /// capture saw, so no hole is skipped early): every byte captured is
    /// delivered once, in order, and each stretch of lost bytes before the
    /// last byte captured (or the FIN) is one gap of exactly its size.
    #[test]
    fn reassembly_with_loss_gaps_exactly_at_the_losses(
        case in reassembly_case(2000),
        lost in prop::collection::vec(any::<Index>(), 1..4),
    ) {
        let loss = Loss { lost, acked: false };
        let ((out, stats), fed) = run_reassembly_lossy(&case, Limits::default(), &loss);
        prop_assert_eq!(out.len(), 1);
        let rec = &out[0];
        let (_, cdir) = FlowKey::of(EP_CLIENT, EP_SERVER);
        let mut total = 0;
        for (dir, plan, (seen, fin)) in [(cdir, &case.client, &fed[0]), (cdir.other(), &case.server, &fed[1])] {
            let gaps = gaps_of(rec, dir, &plan.data)?;
            prop_assert_eq!(&gaps, &expected_gaps(seen, *fin), "{:?} gaps", dir);
            total += gaps.len() as u64;
            let fins = rec.events.iter().filter(|e| **e == Ev::Fin(dir)).count();
            prop_assert_eq!(fins, usize::from(*fin), "{:?} FINs", dir);
        }
        prop_assert_eq!(stats.gaps, 0, "no gap before the capture ends");
        prop_assert!(total >= stats.gaps);
    }

    /// The peer acknowledges the bytes the capture lost (it received them):
    /// holes are skipped up to the acknowledged byte as soon as something
    /// waits past them. Whatever the order, every byte delivered is the
    /// byte sent at its offset, once; data and gaps cover the stream.
    #[test]
    fn reassembly_with_acked_loss_delivers_right_bytes_once(
        case in reassembly_case(2000),
        lost in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let loss = Loss { lost, acked: true };
        let ((out, _), fed) = run_reassembly_lossy(&case, Limits::default(), &loss);
        prop_assert_eq!(out.len(), 1);
        let rec = &out[0];
        let (_, cdir) = FlowKey::of(EP_CLIENT, EP_SERVER);
        for (dir, plan, (seen, fin)) in [(cdir, &case.client, &fed[0]), (cdir.other(), &case.server, &fed[1])] {
            let gaps = gaps_of(rec, dir, &plan.data)?;
            let end = gaps.last().map_or(0, |g| g.0 + g.1).max(rec.bytes(dir).len());
            let covered = rec.bytes(dir).len() + gaps.iter().map(|g| g.1).sum::<usize>();
            prop_assert!(end <= plan.data.len());
            prop_assert!(gaps.iter().all(|g| g.1 > 0), "empty gap");
            // Everything captured up to the last byte (or FIN) is accounted.
            let last = if *fin { seen.len() } else { seen.iter().rposition(|b| *b).map_or(0, |p| p + 1) };
            prop_assert_eq!(covered, last, "{:?}: data and gaps cover the stream", dir);
        }
    }
}

// ---------------------------------------------------------------------------
// Frames: a serialiser, a frame generator
// ---------------------------------------------------------------------------

/// How the payload length is written: in 7 bits, in 16 bits (126) or in 64
/// bits (127). Non-minimal forms are valid to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LenForm {
    Short,
    Medium,
    Long,
}

#[derive(Debug, Clone)]
struct TFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Unmasked payload.
    payload: Vec<u8>,
    form: LenForm,
}

impl TFrame {
    fn header_len(&self) -> u8 {
        let len = match self.form {
            LenForm::Short => 0,
            LenForm::Medium => 2,
            LenForm::Long => 8,
        };
        2 + len + if self.mask.is_some() { 4 } else { 0 }
    }

    fn expected_header(&self) -> FrameHeader {
        FrameHeader {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            mask: self.mask,
            payload_len: self.payload.len() as u64,
            header_len: self.header_len(),
        }
    }

    /// The close payload the decoder keeps: the first MAX_CLOSE_KEEP bytes, unmasked.
    fn expected_close_payload(&self) -> Vec<u8> {
        if self.opcode == 0x8 {
            self.payload[..self.payload.len().min(wsclose::frame::MAX_CLOSE_KEEP)].to_vec()
        } else {
            Vec::new()
        }
    }

    fn serialise(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode];
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        let n = self.payload.len();
        match self.form {
            LenForm::Short => {
                assert!(n <= 125);
                out.push(m | n as u8);
            }
            LenForm::Medium => {
                out.push(m | 126);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            LenForm::Long => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match self.mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// A payload: mostly short (all of 0..=125 and the 16-bit range), sometimes
/// past 65535 so the 64-bit form is the minimal one.
fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..=125),
        3 => prop::collection::vec(any::<u8>(), 126..600),
        1 => (65_536usize..66_000).prop_map(|n| (0..n).map(|i| (i * 7 + 3) as u8).collect()),
    ]
}

/// A length form valid for `len`, chosen by `pick`.
fn form_for(len: usize, pick: Index) -> LenForm {
    let forms: &[LenForm] = if len <= 125 {
        &[LenForm::Short, LenForm::Medium, LenForm::Long]
    } else if len <= 0xffff {
        &[LenForm::Medium, LenForm::Long]
    } else {
        &[LenForm::Long]
    };
    // Minimal encoding most of the time.
    if pick.index(4) == 0 {
        forms[pick.index(forms.len())]
    } else {
        forms[0]
    }
}

fn frame_strategy(
    opcode: impl Strategy<Value = u8>,
    fin: impl Strategy<Value = bool>,
    payload: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = TFrame> {
    (
        opcode,
        fin,
        0u8..8,
        prop::option::of(any::<[u8; 4]>()),
        payload,
        any::<Index>(),
    )
        .prop_map(|(opcode, fin, rsv, mask, payload, pick)| {
            let form = form_for(payload.len(), pick);
            TFrame {
                fin,
                rsv,
                opcode,
                mask,
                payload,
                form,
            }
        })
}

/// A close payload: empty, one byte, a code with a reason (valid UTF-8 or
/// not), or longer than a control frame may be.
fn close_payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        any::<u8>().prop_map(|b| vec![b]),
        (any::<u16>(), "[a-zé✓]{0,40}").prop_map(|(c, r)| close_payload(c, r.as_bytes())),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..=123))
            .prop_map(|(c, r)| close_payload(c, &r)),
        prop::collection::vec(any::<u8>(), 126..300),
    ]
}

/// A control frame: close, ping, pong, or an unknown control opcode.
fn control_frame() -> impl Strategy<Value = TFrame> {
    prop_oneof![
        frame_strategy(
            Just(0x8u8),
            prop::bool::weighted(0.9),
            close_payload_strategy()
        ),
        frame_strategy(
            prop::sample::select(vec![0x9u8, 0xA]),
            prop::bool::weighted(0.9),
            prop::collection::vec(any::<u8>(), 0..=130),
        ),
        frame_strategy(
            prop::sample::select(vec![0xBu8, 0xC, 0xD, 0xE, 0xF]),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..20),
        ),
    ]
}

/// A message: one data frame, or a fragmented message (first frame, then
/// continuations) with control frames between its fragments, or a frame of
/// an unknown data opcode.
fn message() -> impl Strategy<Value = Vec<TFrame>> {
    let single = frame_strategy(
        prop::sample::select(vec![0x1u8, 0x2]),
        Just(true),
        payload_strategy(),
    )
    .prop_map(|f| vec![f]);
    let fragmented = (
        frame_strategy(
            prop::sample::select(vec![0x1u8, 0x2]),
            Just(false),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
        prop::collection::vec(
            (
                frame_strategy(Just(0x0u8), Just(false), payload_strategy()),
                prop::option::of(control_frame()),
            ),
            0..6,
        ),
        frame_strategy(
            Just(0x0u8),
            Just(true),
            prop::collection::vec(any::<u8>(), 0..50),
        ),
        prop::option::of(control_frame()),
    )
        .prop_map(|(first, middle, last, ctl_before_last)| {
            let mut v = vec![first];
            for (f, ctl) in middle {
                v.push(f);
                v.extend(ctl);
            }
            v.extend(ctl_before_last);
            v.push(last);
            v
        });
    let unknown = frame_strategy(
        prop::sample::select(vec![0x3u8, 0x4, 0x5, 0x6, 0x7]),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
    .prop_map(|f| vec![f]);
    prop_oneof![
        4 => single,
        3 => fragmented,
        2 => control_frame().prop_map(|f| vec![f]),
        1 => unknown,
    ]
}

fn frame_stream() -> impl Strategy<Value = Vec<TFrame>> {
    prop::collection::vec(message(), 1..12).prop_map(|m| m.into_iter().flatten().collect())
}

type Decoded = Vec<(FrameHeader, Vec<u8>)>;

/// Feeds `stream` to a fresh decoder in the pieces `points` cut it into.
fn decode_pieces(stream: &[u8], points: &[usize]) -> (Decoded, bool) {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    let mut malformed = false;
    let mut prev = 0;
    for &p in points.iter().chain(std::iter::once(&stream.len())) {
        dec.feed(&stream[prev..p], &mut |e| match e {
            FrameEvent::Frame {
                header,
                close_payload,
                ..
            } => out.push((*header, close_payload.to_vec())),
            FrameEvent::Malformed(_) => malformed = true,
        });
        prev = p;
    }
    (out, malformed || dec.in_frame())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A stream of frames cut anywhere decodes to the same headers and close
    /// payloads as fed whole, and those are the frames serialised.
    #[test]
    fn frame_decoder_is_segmentation_independent(
        frames in frame_stream(),
        cuts in prop::collection::vec(any::<Index>(), 0..40),
        step in prop_oneof![Just(0usize), 1usize..16],
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(TFrame::serialise).collect();
        let expected: Decoded = frames
            .iter()
            .map(|f| (f.expected_header(), f.expected_close_payload()))
            .collect();

        let (whole, bad) = decode_pieces(&stream, &[]);
        prop_assert!(!bad, "whole stream left the decoder mid-frame or malformed");
        prop_assert!(whole == expected, "fed whole: {:?}\nexpected {:?}", whole.iter().map(|f| f.0).collect::<Vec<_>>(), expected.iter().map(|f| f.0).collect::<Vec<_>>());

        let n = stream.len();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(n + 1)).collect();
        if step > 0 {
            // Also cut every `step` bytes over the first few hundred bytes
            // (every header split in every way there).
            points.extend((0..n.min(600)).step_by(step));
        }
        points.sort_unstable();
        let (pieces, bad) = decode_pieces(&stream, &points);
        prop_assert!(!bad);
        prop_assert!(pieces == whole, "cut at {:?}", points);
    }

    /// One byte at a time, for streams of small frames only.
    #[test]
    fn frame_decoder_bytewise(
        frames in prop::collection::vec(
            prop_oneof![
                control_frame(),
                frame_strategy(0u8..16, any::<bool>(), prop::collection::vec(any::<u8>(), 0..140)),
            ],
            1..20,
        ),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(TFrame::serialise).collect();
        let expected: Decoded = frames
            .iter()
            .map(|f| (f.expected_header(), f.expected_close_payload()))
            .collect();
        let points: Vec<usize> = (1..stream.len()).collect();
        let (got, bad) = decode_pieces(&stream, &points);
        prop_assert!(!bad);
        prop_assert!(got == expected);
    }
}

// ---------------------------------------------------------------------------
// 3. Round trip through parse_frame
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Serialising a frame and parsing it gives back its fields and payload;
    /// what follows the frame is left alone; every strict prefix is
    /// incomplete.
    #[test]
    fn parse_frame_round_trip(
        f in frame_strategy(0u8..16, any::<bool>(), payload_strategy()),
        trailer in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let bytes = f.serialise();
        let mut input = bytes.clone();
        input.extend_from_slice(&trailer);
        let (rest, (h, payload)) = parse_frame(&input).expect("parses");
        prop_assert_eq!(rest, &trailer[..]);
        prop_assert_eq!(h, f.expected_header());
        prop_assert_eq!(h.is_control(), f.opcode >= 8);
        let mut p = payload.to_vec();
        if let Some(k) = h.mask {
            wsclose::frame::unmask(&mut p, k, 0);
        }
        prop_assert!(p == f.payload, "payload differs");

        // parse_header agrees and stops at the payload.
        let (after, h2) = parse_header(&bytes).expect("header parses");
        prop_assert_eq!(h2, h);
        prop_assert_eq!(after.len(), f.payload.len());

        // Strict prefixes: incomplete, never an error nor a frame.
        let prefixes: Vec<usize> = if bytes.len() <= 300 {
            (0..bytes.len()).collect()
        } else {
            (0..20).chain([bytes.len() - 2, bytes.len() - 1]).collect()
        };
        for n in prefixes {
            prop_assert!(
                matches!(parse_frame(&bytes[..n]), Err(nom::Err::Incomplete(_))),
                "prefix of {} bytes out of {}", n, bytes.len()
            );
        }
    }

    /// The 64-bit length: any value below 2^63 is a length, any value with the
    /// top bit set a failure (never `Incomplete`, never an allocation).
    #[test]
    fn long_length_top_bit(len in any::<u64>(), masked in any::<bool>(), op in 0u8..16) {
        let mut h = vec![0x80 | op, if masked { 0xFF } else { 0x7F }];
        h.extend_from_slice(&len.to_be_bytes());
        if masked {
            h.extend_from_slice(&MASK);
        }
        match parse_header(&h) {
            Ok((rest, hdr)) => {
                prop_assert!(len >> 63 == 0);
                prop_assert!(rest.is_empty());
                prop_assert_eq!(hdr.payload_len, len);
                prop_assert_eq!(hdr.header_len as usize, h.len());
                // parse_frame wants the payload: incomplete (a failure where
                // it does not fit a usize), never an attempt to allocate it.
                if len > 0 {
                    prop_assert!(parse_frame(&h).is_err());
                    if usize::try_from(len).is_ok() {
                        prop_assert!(matches!(parse_frame(&h), Err(nom::Err::Incomplete(_))));
                    }
                }
            }
            Err(nom::Err::Failure(_)) => prop_assert!(len >> 63 == 1),
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }
}

// ---------------------------------------------------------------------------
// 4. End to end: segmentation does not change the analysis
// ---------------------------------------------------------------------------

/// A burst: frames one side sends back to back.
#[derive(Debug, Clone)]
struct Burst {
    client: bool,
    frames: Vec<u8>,
}

/// How the conversation ends.
#[derive(Debug, Clone)]
enum Ending {
    /// Client closes, server answers, server FIN, client FIN.
    ClientClose(Vec<u8>, Vec<u8>),
    /// Server closes, client answers, client FIN, server FIN.
    ServerClose(Vec<u8>, Vec<u8>),
    /// Client closes, server FINs without answering, client FIN.
    Unanswered(Vec<u8>),
    /// Client closes, server resets.
    ResetAfterClose(Vec<u8>),
    /// Server FIN, client FIN, no close frame.
    Abnormal,
    /// Client close and nothing after it: pending at the capture's end.
    Pending(Vec<u8>),
    /// Nothing: open at the capture's end.
    Open,
}

#[derive(Debug, Clone)]
struct Conversation {
    bursts: Vec<Burst>,
    ending: Ending,
}

fn ws_data_frames(client: bool) -> impl Strategy<Value = Vec<u8>> {
    let mask = move |k: [u8; 4]| if client { Some(k) } else { None };
    let data = (
        prop::sample::select(vec![OP_TEXT, OP_BINARY]),
        prop::collection::vec(any::<u8>(), 0..3000),
        any::<[u8; 4]>(),
    )
        .prop_map(move |(op, p, k)| ws_frame(true, 0, op, mask(k), &p));
    let fragmented = (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 2..5),
        any::<[u8; 4]>(),
        any::<bool>(),
    )
        .prop_map(move |(parts, k, ping)| {
            let mut out = Vec::new();
            let last = parts.len() - 1;
            for (i, p) in parts.iter().enumerate() {
                let op = if i == 0 { OP_TEXT } else { OP_CONT };
                out.extend(ws_frame(i == last, 0, op, mask(k), p));
                if ping && i == 0 {
                    out.extend(ws_frame(true, 0, OP_PING, mask(k), b"are you there"));
                }
            }
            out
        });
    let control = (
        prop::sample::select(vec![OP_PING, OP_PONG]),
        prop::collection::vec(any::<u8>(), 0..=125),
        any::<[u8; 4]>(),
    )
        .prop_map(move |(op, p, k)| ws_frame(true, 0, op, mask(k), &p));
    prop::collection::vec(prop_oneof![3 => data, 2 => fragmented, 1 => control], 1..4)
        .prop_map(|v| v.concat())
}

/// A close payload for the conversation: common codes, reasons valid or not.
fn conv_close_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            prop::sample::select(vec![1000u16, 1001, 1006, 1011, 3000, 4001, 999, 2000]),
            "[a-z ]{0,20}"
        )
            .prop_map(|(c, r)| close_payload(c, r.as_bytes())),
        Just(Vec::new()),
        Just(vec![0x03]),
        (Just(1000u16), prop::collection::vec(128u8..=255, 1..=123))
            .prop_map(|(c, r)| close_payload(c, &r)),
    ]
}

fn conversation() -> impl Strategy<Value = Conversation> {
    let burst = any::<bool>().prop_flat_map(|client| {
        ws_data_frames(client).prop_map(move |frames| Burst { client, frames })
    });
    let cp = conv_close_payload;
    let ending = prop_oneof![
        (cp(), cp()).prop_map(|(a, b)| Ending::ClientClose(a, b)),
        (cp(), cp()).prop_map(|(a, b)| Ending::ServerClose(a, b)),
        cp().prop_map(Ending::Unanswered),
        cp().prop_map(Ending::ResetAfterClose),
        Just(Ending::Abnormal),
        cp().prop_map(Ending::Pending),
        Just(Ending::Open),
    ];
    (prop::collection::vec(burst, 0..6), ending)
        .prop_map(|(bursts, ending)| Conversation { bursts, ending })
}

/// How the segmented build cuts and orders each burst.
#[derive(Debug, Clone)]
struct Segmentation {
    sizes: Vec<usize>,
    window: usize,
    seed: u64,
}

fn segmentation() -> impl Strategy<Value = Segmentation> {
    (
        prop::collection::vec(prop_oneof![1usize..8, 8usize..200, 200usize..=MSS], 1..16),
        1usize..=4,
        any::<u64>(),
    )
        .prop_map(|(sizes, window, seed)| Segmentation {
            sizes,
            window,
            seed,
        })
}

/// Builds the conversation; `seg` None: the builder's own segmentation
/// (MSS-sized segments, in order).
fn build(conv: &Conversation, seg: Option<&Segmentation>) -> Conn {
    let mut c = Conn::standard();
    let mut t = T0;
    let mut rng = XorShift::new(seg.map_or(1, |s| s.seed));
    let mut send = |c: &mut Conn, t: f64, dir: Dir, bytes: &[u8]| match seg {
        None => {
            c.send(dir, t, bytes);
        }
        Some(s) => {
            let off = rng.below(s.sizes.len());
            let sizes: Vec<usize> = s.sizes[off..]
                .iter()
                .chain(&s.sizes[..off])
                .copied()
                .collect();
            send_segments(c, dir, t, 0.05, bytes, &sizes, s.window, rng.next());
        }
    };
    c.handshake(t);
    let host = c.host();
    send(
        &mut c,
        t + REQ_AT,
        Dir::C2S,
        &upgrade_request("/chat", &host, KEY, &[]),
    );
    c.server_ack(t + REQ_AT + 0.0005);
    t += 0.1;
    send(&mut c, t, Dir::S2C, &upgrade_response(101, Some(KEY), &[]));
    c.client_ack(t + 0.06);
    for b in &conv.bursts {
        t += 0.1;
        let dir = if b.client { Dir::C2S } else { Dir::S2C };
        send(&mut c, t, dir, &b.frames);
        // The peer acknowledges the burst once all of it was sent.
        c.ack(if b.client { Dir::S2C } else { Dir::C2S }, t + 0.06);
    }
    let cclose = |p: &[u8]| ws_frame(true, 0, OP_CLOSE, Some(MASK), p);
    let sclose = |p: &[u8]| ws_frame(true, 0, OP_CLOSE, None, p);
    match &conv.ending {
        Ending::ClientClose(a, b) => {
            send(&mut c, t + 0.1, Dir::C2S, &cclose(a));
            send(&mut c, t + 0.2, Dir::S2C, &sclose(b));
            c.server_fin(t + 0.3);
            c.client_fin(t + 0.4);
            c.server_ack(t + 0.5);
        }
        Ending::ServerClose(a, b) => {
            send(&mut c, t + 0.1, Dir::S2C, &sclose(a));
            send(&mut c, t + 0.2, Dir::C2S, &cclose(b));
            c.client_fin(t + 0.3);
            c.server_fin(t + 0.4);
            c.client_ack(t + 0.5);
        }
        Ending::Unanswered(a) => {
            send(&mut c, t + 0.1, Dir::C2S, &cclose(a));
            c.server_fin(t + 0.3);
            c.client_fin(t + 0.4);
            c.server_ack(t + 0.5);
        }
        Ending::ResetAfterClose(a) => {
            send(&mut c, t + 0.1, Dir::C2S, &cclose(a));
            c.server_rst(t + 0.3);
        }
        Ending::Abnormal => {
            c.server_fin(t + 0.3);
            c.client_fin(t + 0.4);
            c.server_ack(t + 0.5);
        }
        Ending::Pending(a) => {
            send(&mut c, t + 0.1, Dir::C2S, &cclose(a));
            c.server_ack(t + 0.2);
        }
        Ending::Open => {
            c.server_ack(t + 0.2);
        }
    }
    c
}

/// The summary without anything that depends on timestamps or on how the
/// bytes were segmented (times, durations, messages, segment counters).
fn timeless(v: &Value) -> Value {
    let conns: Vec<Value> = conns(v)
        .iter()
        .map(|c| {
            let close = &c["close"];
            let frame = |f: &Value| {
                if f.is_null() {
                    Value::Null
                } else {
                    json!({
                        "code": f["code"], "reason": f["reason"],
                        "reason_valid_utf8": f["reason_valid_utf8"],
                        "payload_len": f["payload_len"],
                    })
                }
            };
            let hs = &c["handshake"];
            let findings: Vec<Value> = c["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| json!([f["kind"], f["severity"], f["side"]]))
                .collect();
            json!({
                "client": c["client"], "server": c["server"],
                "handshake": if hs.is_null() { Value::Null } else { json!({
                    "path": hs["path"], "host": hs["host"], "status": hs["status"],
                    "accept_valid": hs["accept_valid"], "subprotocol": hs["subprotocol"],
                    "extensions": hs["extensions"],
                    "has_request": !hs["request_ts"].is_null(),
                    "has_response": !hs["response_ts"].is_null(),
                })},
                "frames": c["frames"],
                "outcome": close["outcome"],
                "initiator": close["initiator"],
                "client_frame": frame(&close["client_frame"]),
                "server_frame": frame(&close["server_frame"]),
                "handshake_s_null": close["handshake_s"].is_null(),
                "idle_s_null": close["idle_s"].is_null(),
                "tcp_end": [close["tcp_end"]["kind"], close["tcp_end"]["by"]],
                "findings": findings,
            })
        })
        .collect();
    json!({
        "totals": v["totals"],
        "connections": conns,
        "gaps": [v["analysis"]["gaps"], v["analysis"]["gap_bytes"]],
    })
}

fn analyze_conn(conn: &Conn, name: &str) -> Value {
    let path = Capture::of(conn).write(name);
    let v = analyze_json(&path, &[]);
    let _ = std::fs::remove_file(&path);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the segment sizes (1 byte to a full MSS, cutting HTTP heads
    /// and frame headers anywhere) and however segments are reordered within
    /// a small window, the report says the same.
    #[test]
    fn analysis_is_segmentation_independent(conv in conversation(), seg in segmentation()) {
        let plain = analyze_conn(&build(&conv, None), "prop-plain");
        let cut = analyze_conn(&build(&conv, Some(&seg)), "prop-segmented");
        let (a, b) = (timeless(&plain), timeless(&cut));
        prop_assert_eq!(&a["gaps"], &json!([0, 0]), "no gap expected");
        prop_assert!(
            a == b,
            "plain:\n{}\nsegmented:\n{}",
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap()
        );
        // And the plain run says what was built.
        let c = only_conn(&plain);
        let expect = match &conv.ending {
            Ending::ClientClose(..) | Ending::ServerClose(..) => "clean",
            Ending::Unanswered(_) | Ending::ResetAfterClose(_) => "unanswered",
            Ending::Abnormal => "abnormal",
            Ending::Pending(_) => "pending",
            Ending::Open => "open",
        };
        prop_assert_eq!(outcome(c), expect);
    }
}
