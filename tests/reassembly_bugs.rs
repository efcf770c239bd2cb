//! Probes of reassembly bugs (issue 8): each test failed on the reassembler
//! before the rewrite into `src/reassembly/` and passes now. The comment on
//! each test names the bug it reproduces.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use wsclose::Ts;
use wsclose::decode::{Endpoint, TcpSegment};
use wsclose::reassembly::{Dir, FlowKey, FlowTable, Limits, Release, StreamSink};

const C: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    port: 50000,
};
const S: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    port: 80,
};

/// What a flow's sink was handed.
#[derive(Debug, Default)]
struct Rec {
    data: [Vec<u8>; 2],
    gaps: Vec<(Dir, u64)>,
    fins: Vec<Dir>,
    packets: u64,
}

impl StreamSink for Rec {
    fn on_packet(&mut self, _: Dir, _: Ts, _: &TcpSegment<'_>) {
        self.packets += 1;
    }
    fn on_data(&mut self, dir: Dir, _: Ts, data: &[u8]) {
        self.data[dir.idx()].extend_from_slice(data);
    }
    fn on_gap(&mut self, dir: Dir, _: Ts, len: u64) {
        self.gaps.push((dir, len));
    }
    fn on_fin(&mut self, dir: Dir, _: Ts) {
        self.fins.push(dir);
    }
    fn on_rst(&mut self, _: Dir, _: Ts) {}
}

/// A segment from `src` to `dst`.
#[derive(Clone, Copy)]
struct Seg<'a> {
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    data: &'a [u8],
}

fn from_client(seq: u32, data: &[u8]) -> Seg<'_> {
    Seg {
        src: C,
        dst: S,
        seq,
        ack: None,
        syn: false,
        fin: false,
        data,
    }
}

fn from_server(seq: u32, data: &[u8]) -> Seg<'_> {
    Seg {
        src: S,
        dst: C,
        ..from_client(seq, data)
    }
}

/// A flow table and the sinks it handed back.
struct Table {
    t: FlowTable<Rec>,
    out: Vec<(Rec, Release)>,
    made: usize,
    clock: i64,
}

impl Table {
    fn new(limits: Limits) -> Self {
        Table {
            t: FlowTable::new(limits),
            out: Vec::new(),
            made: 0,
            clock: 0,
        }
    }

    fn feed(&mut self, s: Seg<'_>) {
        self.clock += 1;
        let seg = TcpSegment {
            src: s.src,
            dst: s.dst,
            seq: s.seq,
            ack_no: s.ack.unwrap_or(0),
            syn: s.syn,
            ack: s.ack.is_some(),
            fin: s.fin,
            rst: false,
            ttl: 64,
            cut: false,
            payload: s.data,
        };
        let Table { t, out, made, .. } = self;
        t.process(
            Ts(self.clock),
            &seg,
            &mut |_, _, _| {
                *made += 1;
                Rec::default()
            },
            &mut |r, why| out.push((r, why)),
        );
    }

    fn sink(&mut self) -> &mut Rec {
        self.t
            .get_mut(&FlowKey::of(C, S).0)
            .expect("the flow is tracked")
    }

    fn finish(
        self,
    ) -> (
        Vec<(Rec, Release)>,
        wsclose::reassembly::ReassemblyStats,
        usize,
    ) {
        let Table {
            t, mut out, made, ..
        } = self;
        let stats = t.finish(Ts(i64::MAX / 2), &mut |r, why| out.push((r, why)));
        (out, stats, made)
    }
}

fn cdir() -> usize {
    FlowKey::of(C, S).1.idx()
}

/// Bug "FIN offset": a FIN segment overlapping bytes already seen (here it
/// starts 2 bytes before the first byte captured) had its FIN placed at
/// `max(start, 0) + len` instead of `start + len`: 2 bytes too far, so the
/// FIN waited for bytes that never come, and was delivered only at the end
/// of the capture after a false 2-byte gap.
#[test]
fn fin_on_a_segment_overlapping_seen_bytes_is_at_its_end() {
    let mut t = Table::new(Limits::default());
    t.feed(from_client(100, b"cdef"));
    t.feed(Seg {
        fin: true,
        ..from_client(98, b"abcdef")
    });
    let rec = t.sink();
    assert_eq!(rec.fins.len(), 1, "the FIN is reached at once");
    assert!(rec.gaps.is_empty(), "no gap: {:?}", rec.gaps);
    let (out, stats, _) = t.finish();
    assert_eq!(out[0].0.data[cdir()], b"cdef");
    assert_eq!(out[0].0.fins.len(), 1);
    assert!(out[0].0.gaps.is_empty(), "no gap at the end either");
    assert_eq!(stats.gaps, 0);
}

/// Bug "ACK past the start of a hole": the peer acknowledges 4 bytes of an
/// 8-byte hole (the capture lost them); the reassembler skipped the whole
/// hole, to the next segment held, so the other 4 bytes, captured later,
/// were thrown away as a retransmission and the gap was 8 bytes, not 4.
#[test]
fn ack_into_a_hole_skips_to_the_acknowledged_byte() {
    let mut t = Table::new(Limits::default());
    t.feed(from_client(100, b"aaaa"));
    // 104..108 lost by the capture; 108..112 not yet sent.
    t.feed(from_client(112, b"cccc"));
    t.feed(Seg {
        ack: Some(108),
        ..from_server(9000, b"")
    });
    t.feed(from_client(108, b"bbbb"));
    let rec = t.sink();
    assert_eq!(rec.data[cdir()], b"aaaabbbbcccc");
    assert_eq!(rec.gaps, vec![(FlowKey::of(C, S).1, 4)]);
    let (_, stats, _) = t.finish();
    assert_eq!((stats.gaps, stats.gap_bytes), (1, 4));
}

/// The per-entry cost the table charges, learned from the table itself: the
/// buffered bytes after one one-byte out-of-order segment (1 before the fix,
/// which counted payload only).
fn one_byte_entry_cost(limits: Limits) -> usize {
    let mut t = Table::new(limits);
    t.feed(from_client(0, b"x"));
    t.feed(from_client(2, b"x"));
    let one = t.t.buffered_bytes();
    t.feed(from_client(4, b"x"));
    t.t.buffered_bytes() - one
}

/// Bug "global cap against a stale total": with the total cap full of
/// one-byte holes, one 10-byte segment gave up every hole of the direction
/// (the cap was compared with the total before the segment, which giving up
/// holes never lowered), where one or two holes make room.
#[test]
fn total_cap_gives_up_only_the_holes_it_needs() {
    let unbounded = Limits {
        max_buffered_per_dir: usize::MAX / 4,
        max_buffered_total: usize::MAX / 4,
        ..Limits::default()
    };
    // A first byte, then 100 one-byte segments with a hole before each.
    let fill = |t: &mut Table| {
        t.feed(from_client(0, b"x"));
        for i in 0..100u32 {
            t.feed(from_client(2 + 2 * i, b"x"));
        }
    };
    let mut t = Table::new(unbounded);
    fill(&mut t);
    let held = t.t.buffered_bytes();
    // The same under a total cap they just fit in.
    let mut t = Table::new(Limits {
        max_buffered_total: held + 5,
        ..unbounded
    });
    fill(&mut t);
    assert_eq!(t.t.stats.holes_given_up, 0, "100 holes fit");
    t.feed(from_client(1000, &[b'y'; 10]));
    let given_up = t.t.stats.holes_given_up;
    assert!(
        (1..=2).contains(&given_up),
        "{given_up} holes given up for one 10-byte segment"
    );
    assert!(t.sink().gaps.len() <= 2, "the other holes are still held");
    assert!(t.t.buffered_bytes() <= held + 5);
    let (out, _, _) = t.finish();
    // Every byte still arrives once: 101 x's and the y's, gaps between.
    let d = &out[0].0.data[cdir()];
    assert_eq!(d.iter().filter(|b| **b == b'x').count(), 101);
    assert_eq!(d.iter().filter(|b| **b == b'y').count(), 10);
}

/// Bug "hole-skipping recursion": giving up 200 000 holes in one go recursed
/// once per hole and overflowed the stack (of a debug build's test thread).
/// Now a loop, and the holes held are bounded anyway.
#[test]
fn giving_up_200k_holes_does_not_recurse() {
    let limits = Limits {
        max_buffered_per_dir: usize::MAX / 4,
        max_buffered_total: usize::MAX / 4,
        ..Limits::default()
    };
    let per_entry = one_byte_entry_cost(limits);
    let n = 200_000u32;
    let mut t = Table::new(Limits {
        max_buffered_total: per_entry * n as usize + 100,
        ..limits
    });
    t.feed(from_client(0, b"x"));
    for i in 0..n {
        t.feed(from_client(2 + 2 * i, b"x"));
    }
    // Over the total: holes are given up until there is room.
    t.feed(from_client(3 * n, &[b'y'; 1000]));
    let (out, stats, _) = t.finish();
    let d = &out[0].0.data[cdir()];
    assert_eq!(d.len(), n as usize + 1 + 1000, "every byte once");
    let gap_bytes: u64 = out[0].0.gaps.iter().map(|g| g.1).sum();
    assert_eq!(gap_bytes, stats.gap_bytes);
    assert_eq!(u64::from(3 * n) + 1000, d.len() as u64 + gap_bytes);
}

/// Bug "eviction under a tiny --max-flows": with `max_flows` 1, a second
/// connection evicts the first, whose next packets came back as a new flow
/// (a midstream duplicate of the same connection). Now they are dropped
/// (and counted), unless a fresh SYN starts a new connection.
#[test]
fn evicted_flow_does_not_come_back() {
    let other = Endpoint { port: 50001, ..C };
    let mut t = Table::new(Limits {
        max_flows: 1,
        ..Limits::default()
    });
    t.feed(Seg {
        syn: true,
        ..from_client(10, b"")
    });
    t.feed(from_client(11, b"first"));
    // A second connection: the first is evicted.
    t.feed(Seg {
        src: other,
        syn: true,
        ..from_client(500, b"")
    });
    // The first connection goes on: its packets must not make a new flow.
    t.feed(from_client(16, b"more"));
    t.feed(Seg {
        ack: Some(21),
        ..from_server(7000, b"")
    });
    let (out, stats, made) = t.finish();
    assert_eq!(made, 2, "two connections, two sinks");
    let evicted = out.iter().filter(|o| o.1 == Release::Evicted).count();
    assert_eq!(evicted, 1);
    assert_eq!(stats.packets_of_evicted_flows, 2, "dropped, and counted");
}

/// The same through the whole analysis: under `--max-flows 1`, two
/// interleaved WebSocket connections are listed once each (before, the
/// first came back as a midstream duplicate, evicting the second, which
/// came back in turn: four connections listed, each twice, `open` and then
/// `clean`).
#[test]
fn max_flows_1_lists_each_websocket_connection_once() {
    use common::{Capture, Conn, analyze_json, cframe};
    let mut a = Conn::new("10.0.0.1:40001", "10.0.0.2:8080");
    a.open_ws(1.0);
    let mut b = Conn::new("10.0.0.1:40002", "10.0.0.2:8080");
    b.open_ws(2.0);
    a.client_send(3.0, &cframe(1, b"still here"));
    a.close_cleanly(4.0);
    b.close_cleanly(5.0);
    let path = Capture::merge(&[&a, &b]).write("evicted-max-flows-1");
    let v = analyze_json(&path, &["--max-flows", "1"]);
    let conns = v["connections"].as_array().expect("connections");
    let clients: Vec<&str> = conns.iter().filter_map(|c| c["client"].as_str()).collect();
    assert_eq!(clients.len(), 2, "{clients:?}");
    assert!(clients.iter().any(|c| c.ends_with(":40001")));
    assert!(clients.iter().any(|c| c.ends_with(":40002")));
    assert_eq!(
        v["limits"]["flows_evicted"].as_u64(),
        Some(1),
        "{}",
        v["limits"]
    );
}

/// A fresh SYN on an evicted flow's 4-tuple is a new connection.
#[test]
fn fresh_syn_after_eviction_is_a_new_connection() {
    let other = Endpoint { port: 50001, ..C };
    let mut t = Table::new(Limits {
        max_flows: 1,
        ..Limits::default()
    });
    t.feed(Seg {
        syn: true,
        ..from_client(10, b"")
    });
    t.feed(Seg {
        src: other,
        syn: true,
        ..from_client(500, b"")
    });
    t.feed(Seg {
        syn: true,
        ..from_client(90_000, b"")
    });
    t.feed(from_client(90_001, b"again"));
    let (out, _, made) = t.finish();
    assert_eq!(made, 3);
    let again = out.iter().filter(|o| o.0.data[cdir()] == b"again").count();
    assert_eq!(again, 1);
}

// ---------------------------------------------------------------------------
// Real memory against what the caps count
// ---------------------------------------------------------------------------

/// Counts, per thread, the heap bytes in use as glibc's malloc takes them
/// (the request plus an 8-byte header, rounded up to 16, at least 32), so a
/// test can compare what the flow table really holds with what it charges.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static IN_USE: Cell<isize> = const { Cell::new(0) };
    }

    fn block(size: usize) -> isize {
        ((size + 8 + 15) & !15).max(32) as isize
    }

    fn add(n: isize) {
        let _ = IN_USE.try_with(|c| c.set(c.get() + n));
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(block(l.size()));
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-block(l.size()));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            add(block(l.size()));
            unsafe { System.alloc_zeroed(l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(block(new) - block(l.size()));
            unsafe { System.realloc(p, l, new) }
        }
    }

    /// Heap bytes this thread has in use.
    pub fn in_use() -> isize {
        IN_USE.with(|c| c.get())
    }
}

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

/// A sink that keeps nothing (so the heap measured is the table's).
#[derive(Default)]
struct Tally {
    bytes: u64,
}

impl StreamSink for Tally {
    fn on_packet(&mut self, _: Dir, _: Ts, _: &TcpSegment<'_>) {}
    fn on_data(&mut self, _: Dir, _: Ts, data: &[u8]) {
        self.bytes += data.len() as u64;
    }
    fn on_gap(&mut self, _: Dir, _: Ts, _: u64) {}
    fn on_fin(&mut self, _: Dir, _: Ts) {}
    fn on_rst(&mut self, _: Dir, _: Ts) {}
}

/// Feeds `segs` (client port, sequence number, length) to a fresh table and
/// returns (heap bytes the table holds, bytes it says it buffers, flows).
fn measure(limits: Limits, segs: impl Iterator<Item = (u16, u32, usize)>) -> (isize, usize, usize) {
    let payload = vec![7u8; 2048];
    let mut table: FlowTable<Tally> = FlowTable::new(limits);
    let before = heap::in_use();
    let mut n = 0i64;
    for (port, seq, len) in segs {
        n += 1;
        let seg = TcpSegment {
            src: Endpoint { port, ..C },
            dst: S,
            seq,
            ack_no: 0,
            syn: false,
            ack: false,
            fin: false,
            rst: false,
            ttl: 64,
            cut: false,
            payload: &payload[..len],
        };
        table.process(Ts(n), &seg, &mut |_, _, _| Tally::default(), &mut |_, _| {});
    }
    let real = heap::in_use() - before;
    let flows = table.len();
    (real, table.buffered_bytes(), flows)
}

/// Bug "caps count payload bytes only": a one-byte out-of-order segment
/// took about 112 bytes of memory and was charged 1, so the 4 MiB cap per
/// direction let 100 000 of them take 11 MB (and the defaults about 450 MB
/// per direction, 28 GB in all). Now every entry is charged what it takes
/// (its bytes, its bookkeeping), and the store of one direction is bounded.
#[test]
fn one_byte_segments_are_charged_their_real_cost() {
    let limits = Limits::default();
    // One flow: a first byte, then 100 000 one-byte segments, a hole before each.
    let one_flow = std::iter::once((1u16, 0u32, 1usize))
        .chain((0..100_000u32).map(|i| (1u16, 2 + 2 * i, 1usize)));
    let (real, charged, _) = measure(limits, one_flow);
    eprintln!("one flow: {real} B of heap, {charged} B charged");
    // The table's own fixed state (the flow, the hash table) is not buffered
    // data: allow 64 KiB for it.
    let fixed = 64 << 10;
    assert!(
        real <= (charged + fixed) as isize,
        "{real} B of heap, {charged} B charged"
    );
    assert!(
        real <= (limits.max_buffered_per_dir + fixed) as isize,
        "{real} B of heap for one direction, cap {} B",
        limits.max_buffered_per_dir
    );
}

// ---------------------------------------------------------------------------
// Captures for measuring memory with /usr/bin/time -v
// ---------------------------------------------------------------------------

/// A little-endian microsecond Ethernet pcap, written record by record.
struct PcapOut(std::io::BufWriter<std::fs::File>);

impl PcapOut {
    fn create(path: &std::path::Path) -> PcapOut {
        use std::io::Write;
        let f = std::fs::File::create(path).expect("create capture");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
            w.write_all(&v.to_le_bytes()).expect("write");
        }
        PcapOut(w)
    }

    /// Writes (and forgets) the packets `conn` made so far.
    fn drain(&mut self, conn: &mut common::Conn) {
        use std::io::Write;
        for p in conn.packets.drain(..) {
            let us = common::micros(p.t);
            let len = (14 + p.l3.len()) as u32;
            let mut rec = Vec::with_capacity(16 + len as usize);
            rec.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
            rec.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
            rec.extend_from_slice(&len.to_le_bytes());
            rec.extend_from_slice(&len.to_le_bytes());
            rec.extend_from_slice(&p.dst_mac);
            rec.extend_from_slice(&p.src_mac);
            rec.extend_from_slice(&p.ethertype.to_be_bytes());
            rec.extend_from_slice(&p.l3);
            self.0.write_all(&rec).expect("write");
        }
    }
}

/// `segs` one-byte segments spread round-robin over `flows` WebSocket
/// connections, each byte after a one-byte hole nobody fills or
/// acknowledges (a binary frame announcing 2^40 bytes makes the bytes its
/// payload, so the analysis keeps wanting them).
fn ooo_capture(path: &std::path::Path, flows: u32, segs: u32) {
    use common::{Conn, PSH};
    let mut out = PcapOut::create(path);
    let mut conns: Vec<Conn> = (0..flows)
        .map(|i| {
            let client = format!("10.{}.{}.{}:40000", 1 + i / 65536, (i / 256) % 256, i % 256);
            let mut c = Conn::new(&client, "10.255.0.1:8080");
            c.open_ws(1.0 + f64::from(i) * 1e-6);
            let mut first = vec![0x82, 0xFF];
            first.extend_from_slice(&(1u64 << 40).to_be_bytes());
            first.extend_from_slice(&[1, 2, 3, 4]);
            c.client_send(2.0, &first);
            out.drain(&mut c);
            c
        })
        .collect();
    let per_flow = segs / flows;
    for k in 0..per_flow {
        for c in &mut conns {
            let base = c.offset(common::Dir::C2S);
            let t = 3.0 + f64::from(k) * 1e-4;
            c.segment(
                common::Dir::C2S,
                t,
                base + 2 * k + 1,
                &[0x5a],
                common::ACK | PSH,
            );
            out.drain(c);
        }
    }
    use std::io::Write;
    out.0.flush().expect("flush");
}

/// Writes the captures of the memory measurements (README, issue 8) to
/// `$WSCLOSE_MEASURE_DIR`: 1 million one-byte out-of-order segments in one
/// flow, over 1 000 flows and over 100 000 flows, 4 million in one flow,
/// and the 100 000 connections alone. Then, e.g.: `/usr/bin/time -v wsclose analyze DIR/ooo-1m-1.pcap
/// --json /dev/null`.
#[test]
#[ignore = "writes large captures; run by hand to measure memory"]
fn generate_memory_captures() {
    let Some(dir) = std::env::var_os("WSCLOSE_MEASURE_DIR") else {
        eprintln!("set WSCLOSE_MEASURE_DIR");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create dir");
    for (name, flows, segs) in [
        ("ooo-1m-1", 1, 1_000_000),
        ("ooo-1m-1k", 1_000, 1_000_000),
        ("ooo-1m-100k", 100_000, 1_000_000),
        ("ooo-4m-1", 1, 4_000_000),
        // The same 100 000 connections without out-of-order bytes: what
        // the analysis itself takes for them.
        ("ws-100k", 100_000, 0),
    ] {
        ooo_capture(&dir.join(format!("{name}.pcap")), flows, segs);
    }
}
