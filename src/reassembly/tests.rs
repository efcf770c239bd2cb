//! Unit tests of the flow table: the behaviour the analyzer relies on.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Default, Debug)]
struct Rec {
    data: [Vec<u8>; 2],
    gaps: Vec<(Dir, u64)>,
    fins: Vec<Dir>,
    rsts: Vec<Dir>,
    ignore: bool,
}

impl StreamSink for Rec {
    fn on_packet(&mut self, _: Dir, _: Ts, _: &TcpSegment<'_>) {}
    fn on_data(&mut self, dir: Dir, _: Ts, data: &[u8]) {
        self.data[dir.idx()].extend_from_slice(data);
    }
    fn on_gap(&mut self, dir: Dir, _: Ts, len: u64) {
        self.gaps.push((dir, len));
    }
    fn on_fin(&mut self, dir: Dir, _: Ts) {
        self.fins.push(dir);
    }
    fn on_rst(&mut self, dir: Dir, _: Ts) {
        self.rsts.push(dir);
    }
    fn wants_data(&self) -> bool {
        !self.ignore
    }
}

const C: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    port: 50000,
};
const S: Endpoint = Endpoint {
    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    port: 80,
};

struct Seg {
    from_client: bool,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    data: Vec<u8>,
}

fn seg(from_client: bool, seq: u32, data: &[u8]) -> Seg {
    Seg {
        from_client,
        seq,
        ack: None,
        syn: false,
        fin: false,
        rst: false,
        data: data.to_vec(),
    }
}

fn run(segs: &[Seg]) -> Vec<Rec> {
    let mut table: FlowTable<Rec> = FlowTable::new(Limits::default());
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let (src, dst) = if s.from_client { (C, S) } else { (S, C) };
        let t = TcpSegment {
            src,
            dst,
            seq: s.seq,
            ack_no: s.ack.unwrap_or(0),
            syn: s.syn,
            ack: s.ack.is_some(),
            fin: s.fin,
            rst: s.rst,
            ttl: 64,
            cut: false,
            payload: &s.data,
        };
        table.process(
            Ts(i as i64),
            &t,
            &mut |_, _, _| Rec::default(),
            &mut |r, _| out.push(r),
        );
    }
    table.finish(Ts(1000), &mut |r, _| out.push(r));
    out
}

fn client_dir() -> usize {
    FlowKey::of(C, S).1.idx()
}

#[test]
fn in_order_and_out_of_order() {
    let base = 1000;
    let r = run(&[
        seg(true, base, b"hello "),
        seg(true, base + 12, b"!"),
        seg(true, base + 6, b"world "),
    ]);
    assert_eq!(r[0].data[client_dir()], b"hello world !");
    assert!(r[0].gaps.is_empty());
}

#[test]
fn retransmission_and_overlap_delivered_once() {
    let base = 5;
    let r = run(&[
        seg(true, base, b"abcd"),
        seg(true, base, b"abcd"),
        seg(true, base + 2, b"cdef"),
        seg(true, base + 10, b"kl"),
        seg(true, base + 8, b"ijk"),
        seg(true, base + 5, b"fgh"),
        seg(true, base + 1, b"bcdefghijklm"),
    ]);
    assert_eq!(r[0].data[client_dir()], b"abcdefghijklm");
}

#[test]
fn wraparound_at_2_32() {
    let base = u32::MAX - 3;
    let r = run(&[
        Seg {
            syn: true,
            ..seg(true, base, b"")
        },
        seg(true, base.wrapping_add(1), b"abc"),
        seg(true, base.wrapping_add(7), b"ghi"),
        seg(true, base.wrapping_add(4), b"def"),
    ]);
    assert_eq!(r[0].data[client_dir()], b"abcdefghi");
}

#[test]
fn hole_acked_by_peer_is_a_gap() {
    let r = run(&[
        seg(true, 100, b"aaaa"),
        seg(true, 108, b"cccc"),
        // The server acknowledged up to 112: bytes 104..108 were lost
        // from the capture, not from the network.
        Seg {
            ack: Some(112),
            ..seg(false, 9000, b"")
        },
        seg(true, 112, b"dd"),
    ]);
    assert_eq!(r[0].data[client_dir()], b"aaaaccccdd");
    assert_eq!(r[0].gaps.len(), 1);
    assert_eq!(r[0].gaps[0].1, 4);
}

#[test]
fn hole_at_end_of_capture_is_flushed() {
    let r = run(&[seg(true, 100, b"aaaa"), seg(true, 110, b"cc")]);
    assert_eq!(r[0].data[client_dir()], b"aaaacc");
    assert_eq!(r[0].gaps, vec![(FlowKey::of(C, S).1, 6)]);
}

#[test]
fn fin_after_hole_waits_then_both_fins_end_flow() {
    let r = run(&[
        Seg {
            syn: true,
            ..seg(true, 10, b"")
        },
        seg(true, 11, b"ab"),
        Seg {
            fin: true,
            ..seg(true, 15, b"e")
        },
        seg(true, 13, b"cd"),
        Seg {
            fin: true,
            ..seg(false, 500, b"")
        },
        // After both FINs the flow is over; a late ACK must not revive it.
        Seg {
            ack: Some(17),
            ..seg(false, 501, b"")
        },
    ]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].data[client_dir()], b"abcde");
    assert_eq!(r[0].fins.len(), 2);
}

#[test]
fn rst_flushes_and_ends() {
    let r = run(&[
        seg(true, 1, b"a"),
        seg(true, 3, b"c"),
        Seg {
            rst: true,
            ..seg(false, 77, b"")
        },
    ]);
    assert_eq!(r[0].data[client_dir()], b"ac");
    assert_eq!(r[0].gaps.len(), 1);
    assert_eq!(r[0].rsts.len(), 1);
}

/// The answer in flight as the peer's RST left is still delivered, in
/// order only; the RST's sender sends nothing more that counts.
#[test]
fn bytes_in_flight_after_an_rst_reach_the_sink() {
    let server_dir = if client_dir() == 0 { 1 } else { 0 };
    let r = run(&[
        seg(false, 500, b"hi"),
        seg(true, 1, b"bye"),
        Seg {
            rst: true,
            ..seg(true, 4, b"")
        },
        seg(false, 502, b"answer"),
        seg(false, 510, b"hole"),
        seg(true, 4, b"late"),
    ]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].data[server_dir], b"hianswer");
    assert_eq!(r[0].data[client_dir()], b"bye");
}

/// Found by fuzzing: a late segment carrying a SYN (nonsense, but captures
/// hold anything) was placed one byte early, its bytes delivered shifted.
#[test]
fn late_bytes_on_a_syn_segment_start_after_the_syn() {
    let server_dir = if client_dir() == 0 { 1 } else { 0 };
    let r = run(&[
        seg(false, 500, b"ab"),
        Seg {
            rst: true,
            ..seg(true, 1, b"")
        },
        Seg {
            syn: true,
            ack: Some(1),
            ..seg(false, 501, b"cd")
        },
    ]);
    assert_eq!(r[0].data[server_dir], b"abcd");
}

#[test]
fn new_syn_after_end_is_new_connection() {
    let r = run(&[
        Seg {
            syn: true,
            ..seg(true, 10, b"")
        },
        seg(true, 11, b"one"),
        Seg {
            rst: true,
            ..seg(true, 14, b"")
        },
        Seg {
            syn: true,
            ..seg(true, 90000, b"")
        },
        seg(true, 90001, b"two"),
    ]);
    assert_eq!(r.len(), 2);
    let all: Vec<&[u8]> = r.iter().map(|x| &x.data[client_dir()][..]).collect();
    assert!(all.contains(&&b"one"[..]) && all.contains(&&b"two"[..]));
}

#[test]
fn retransmitted_syn_is_same_connection() {
    let r = run(&[
        Seg {
            syn: true,
            ..seg(true, 10, b"")
        },
        Seg {
            syn: true,
            ..seg(true, 10, b"")
        },
        seg(true, 11, b"x"),
    ]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].data[client_dir()], b"x");
}

#[test]
fn per_direction_cap_gives_up_the_hole() {
    // Room for one run of 6 bytes (its slot in a deque of 4, its block).
    let one = super::assembler::block(4 * SLOT) + super::assembler::block(6);
    let mut table: FlowTable<Rec> = FlowTable::new(Limits {
        max_buffered_per_dir: one + 10,
        ..Limits::default()
    });
    let mut out = Vec::new();
    let mk = |seq: u32, data: &'static [u8]| TcpSegment {
        src: C,
        dst: S,
        seq,
        ack_no: 0,
        syn: false,
        ack: false,
        fin: false,
        rst: false,
        ttl: 64,
        cut: false,
        payload: data,
    };
    let mut new = |_: &FlowKey, _: Dir, _: Ts| Rec::default();
    let mut done = |r: Rec, _: Release| out.push(r);
    table.process(Ts(0), &mk(0, b"aa"), &mut new, &mut done);
    table.process(Ts(1), &mk(4, b"cccccc"), &mut new, &mut done);
    assert_eq!(table.buffered_bytes(), one);
    table.process(Ts(2), &mk(10, b"dddddd"), &mut new, &mut done);
    assert!(table.buffered_bytes() <= one + 10);
    assert_eq!(table.stats.holes_given_up, 1);
    table.finish(Ts(3), &mut done);
    assert_eq!(out[0].data[client_dir()], b"aaccccccdddddd");
    assert_eq!(out[0].gaps.len(), 1);
}

/// A direction's state is part of every flow, and the size of a flow bounds
/// the memory of a SYN flood (the analyzer's size test holds `Flow` to 400
/// bytes): keep it at 96.
#[test]
fn stream_state_is_small() {
    let s = std::mem::size_of::<super::stream::Stream>();
    eprintln!(
        "Stream {s} B, Flow<()> {} B",
        std::mem::size_of::<Flow<()>>()
    );
    assert!(s <= 96, "Stream is {s} bytes");
}

/// Flows that end at once (SYN then RST) faster than `linger` releases
/// them, under a small `max_flows`: evictions keep the table bounded, and
/// the queue of ended flows stays bounded with it; a flow still lingering
/// is released from the queue once its time has passed.
#[test]
fn ended_queue_bounded_by_the_table() {
    let limits = Limits {
        max_flows: 100,
        ..Limits::default()
    };
    let mut table: FlowTable<Rec> = FlowTable::new(limits);
    let mut released = 0;
    for i in 0..20_000u32 {
        let src = Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            port: 40000,
        };
        for (syn, rst) in [(true, false), (false, true)] {
            let t = TcpSegment {
                src,
                dst: S,
                seq: 1,
                ack_no: 0,
                syn,
                ack: false,
                fin: false,
                rst,
                ttl: 64,
                cut: false,
                payload: &[],
            };
            table.process(Ts(1), &t, &mut |_, _, _| Rec::default(), &mut |_, _| {
                released += 1
            });
        }
        assert!(table.len() <= 100);
        assert!(table.ended_queue_len() <= 2 * 100 + 64, "at flow {i}");
    }
    assert!(released > 19_000, "evicted as the table filled: {released}");
}

/// After a flood, the queue of ended flows gives its memory back once it is
/// short again; a queue in use keeps its room.
#[test]
fn ended_queue_gives_memory_back_after_a_flood() {
    let mut q: std::collections::VecDeque<u64> = (0..100_000).collect();
    q.truncate(10);
    super::give_back(&mut q);
    assert!(q.capacity() < 1024, "{}", q.capacity());
    let mut busy: std::collections::VecDeque<u64> = (0..100_000).collect();
    let before = busy.capacity();
    super::give_back(&mut busy);
    assert_eq!(busy.capacity(), before);
}

/// A segment of `src` → `dst` without payload.
fn bare(src: Endpoint, dst: Endpoint, seq: u32, rst: bool) -> TcpSegment<'static> {
    TcpSegment {
        src,
        dst,
        seq,
        ack_no: 0,
        syn: false,
        ack: false,
        fin: false,
        rst,
        ttl: 64,
        cut: false,
        payload: b"",
    }
}

/// One segment at `ts` into `table`, noting why flows were released.
fn feed(table: &mut FlowTable<Rec>, released: &mut Vec<Release>, ts: i64, s: TcpSegment<'_>) {
    let mut done = |_, why| released.push(why);
    table.process(Ts(ts), &s, &mut |_, _, _| Rec::default(), &mut done);
}

/// Ended flows linger `limits.linger` (capture time), then a purge hands
/// them back as `Ended`, and only them: an open flow stays. Without a
/// purge (`without_auto_purge`) nothing goes; with one every
/// [`PURGE_EVERY`] segments, the segment that brings it releases them.
#[test]
fn purges_release_ended_flows_after_their_linger() {
    let linger = Limits::default().linger.0;
    let c2 = Endpoint { port: 50001, ..C };
    let t0 = 1_000_000_000_000;
    for auto in [false, true] {
        let table = FlowTable::<Rec>::new(Limits::default());
        let mut table = if auto {
            table
        } else {
            table.without_auto_purge()
        };
        let mut released: Vec<Release> = Vec::new();
        feed(&mut table, &mut released, t0, bare(C, S, 1, true));
        // The open flow's segments move the clock and count towards a purge.
        for i in 1..PURGE_EVERY - 1 {
            let ts = t0 + linger * i as i64 / PURGE_EVERY as i64;
            feed(
                &mut table,
                &mut released,
                ts,
                bare(c2, S, 1 + i as u32, false),
            );
        }
        assert_eq!(table.len(), 2, "auto {auto}: nothing purged yet");
        table.purge_now(Ts(t0 + linger - 1), &mut |_, why| released.push(why));
        assert_eq!(table.len(), 2, "auto {auto}: not before the linger");
        if auto {
            // The PURGE_EVERY-th segment purges.
            feed(
                &mut table,
                &mut released,
                t0 + linger,
                bare(c2, S, 1 << 20, false),
            );
        } else {
            table.purge_now(Ts(t0 + linger), &mut |_, why| released.push(why));
        }
        assert_eq!(table.len(), 1, "auto {auto}: the ended flow is gone");
        assert_eq!(released, [Release::Ended], "auto {auto}");
    }
}

/// Capture time that runs backwards puts a flow that ended earlier behind
/// one that ended later: a purge still releases every flow that is due,
/// wherever it stands in the queue, and the one not yet due stays until it
/// is.
#[test]
fn purges_release_due_flows_behind_ones_not_yet_due() {
    let linger = Limits::default().linger.0;
    let t0 = 1_000_000_000_000;
    let mut table = FlowTable::<Rec>::new(Limits::default()).without_auto_purge();
    let mut released: Vec<Release> = Vec::new();
    let port = |p| Endpoint { port: p, ..C };
    // Ends at t0 + 10 s, then (time ran backwards) at t0, then at t0 + 1 s.
    feed(
        &mut table,
        &mut released,
        t0 + 10_000_000_000,
        bare(port(1), S, 1, true),
    );
    feed(&mut table, &mut released, t0, bare(port(2), S, 1, true));
    feed(
        &mut table,
        &mut released,
        t0 + 1_000_000_000,
        bare(port(3), S, 1, true),
    );
    assert!(!table.ended_in_order);
    table.purge_now(Ts(t0 + linger), &mut |_, why| released.push(why));
    assert_eq!(released, [Release::Ended], "only the flow that ended at t0");
    assert_eq!(table.len(), 2);
    // What is left (t0 + 10 s, t0 + 1 s) is still out of order.
    assert!(!table.ended_in_order);
    table.purge_now(Ts(t0 + linger + 1_000_000_000), &mut |_, why| {
        released.push(why)
    });
    assert_eq!(released.len(), 2, "the flow behind the one not yet due");
    assert!(table.ended_in_order, "one flow left: in order again");
    table.purge_now(Ts(t0 + linger + 10_000_000_000), &mut |_, why| {
        released.push(why)
    });
    assert_eq!(released.len(), 3);
    assert!(table.is_empty());
}
