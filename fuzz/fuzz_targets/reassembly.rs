//! `wsclose::reassembly::FlowTable` fed a sequence of TCP segments decoded
//! from the input, under small buffer caps.
//!
//! Input layout (hand-decoded so short inputs mean something):
//! * byte 0: limits (per-direction cap 16..4096 bytes, total cap 1..4x that);
//! * byte 1: after how many packets a sink stops wanting data (0 = never;
//!   bit 7: the sink holds up to 512 of the bytes it was handed, as a
//!   partial HTTP head would, until the table has it shed them);
//! * byte 2: most flows tracked at once (1..8; there are at most 6 keys);
//! * then segments, each:
//!   - flags byte: src (bits 0-1) and dst (bits 2-3) among three endpoints
//!     (src == dst is allowed), SYN (4), ACK (5), FIN (6), RST (7);
//!   - mode byte: seq form (bits 0-1: next expected + i8 delta, delta x 64,
//!     absolute u32, near 2^32), ack form (bit 2: absolute), payload length
//!     (bits 3-7: 0..31, or 64 x n for the top values);
//!   - the operand bytes of those forms; ts step byte.
//!
//! A payload byte is the low byte of its own sequence number, so any
//! reassembled stream has to be a run of consecutive values, and a gap of L
//! bytes has to be followed by the value L further on. The sink checks this,
//! plus: no bytes delivered beyond what its flow's packets carried, no empty
//! deliveries or gaps, at most one FIN per direction, nothing after an RST
//! but the bytes its peer had in flight (data continuing the peer's stream
//! exactly: no gap, no FIN, nothing from the RST's sender),
//! and the table's buffered bytes (out-of-order bytes at their real cost,
//! plus what sinks hold) never exceed the total cap nor its flows
//! `max_flows`. A sink handed back as `Release::Ended` saw an RST or both
//! FINs. A packet of a flow evicted earlier makes a new flow only when it
//! is a fresh SYN (a new connection on the same 4-tuple).
#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use wsclose::Ts;
use wsclose::decode::{Endpoint, TcpSegment};
use wsclose::reassembly::{Dir, FlowKey, FlowTable, Limits, Release, StreamSink};

const EPS: [Endpoint; 3] = [
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 50000,
    },
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        port: 80,
    },
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 50001,
    },
];

#[derive(Default)]
struct DirCheck {
    /// Payload bytes of this flow's packets in this direction.
    sent: u64,
    delivered: u64,
    gap_bytes: u64,
    /// The value the next delivered byte must have, when known.
    next: Option<u8>,
    fins: u32,
}

struct Checker {
    key: FlowKey,
    dirs: [DirCheck; 2],
    /// The sender of the RST delivered.
    rst: Option<Dir>,
    packets: u32,
    stop_after: u32,
    /// Holds bytes (see `held`), and how many it holds now.
    holds: bool,
    held: usize,
}

impl Checker {
    fn new(key: FlowKey, stop_after: u8) -> Self {
        Checker {
            key,
            dirs: Default::default(),
            rst: None,
            packets: 0,
            stop_after: u32::from(stop_after & 0x7f),
            holds: stop_after & 0x80 != 0,
            held: 0,
        }
    }
}

impl StreamSink for Checker {
    fn on_packet(&mut self, dir: Dir, _: Ts, seg: &TcpSegment<'_>) {
        let (key, d) = FlowKey::of(seg.src, seg.dst);
        assert_eq!(key, self.key, "packet handed to another flow's sink");
        assert_eq!(d, dir);
        self.packets += 1;
        let dc = &mut self.dirs[dir.idx()];
        dc.sent += seg.payload.len() as u64;
        if seg.syn {
            // A SYN may move the stream's origin (a SYN seen after data).
            dc.next = None;
        }
    }

    fn on_data(&mut self, dir: Dir, _: Ts, data: &[u8]) {
        assert!(
            self.rst.is_none_or(|r| r != dir),
            "data from the RST's sender after it"
        );
        assert!(!data.is_empty(), "empty delivery");
        let dc = &mut self.dirs[dir.idx()];
        dc.delivered += data.len() as u64;
        assert!(
            dc.delivered <= dc.sent,
            "delivered {} > sent {}",
            dc.delivered,
            dc.sent
        );
        if let Some(n) = dc.next {
            assert_eq!(data[0], n, "stream discontinuity at delivery start");
        }
        for w in data.windows(2) {
            assert_eq!(
                w[1],
                w[0].wrapping_add(1),
                "discontinuity inside a delivery"
            );
        }
        dc.next = Some(data[data.len() - 1].wrapping_add(1));
        if self.holds {
            self.held = (self.held + data.len()).min(512);
        }
    }

    fn on_gap(&mut self, dir: Dir, _: Ts, len: u64) {
        assert!(self.rst.is_none(), "gap after RST");
        assert!(len > 0, "empty gap");
        let dc = &mut self.dirs[dir.idx()];
        dc.gap_bytes = dc.gap_bytes.saturating_add(len);
        dc.next = dc.next.map(|n| n.wrapping_add(len as u8));
    }

    fn on_fin(&mut self, dir: Dir, _: Ts) {
        assert!(self.rst.is_none(), "FIN delivered after RST");
        let dc = &mut self.dirs[dir.idx()];
        dc.fins += 1;
        assert!(dc.fins <= 1, "two FINs in one direction");
    }

    fn on_rst(&mut self, dir: Dir, _: Ts) {
        assert!(self.rst.is_none(), "two RSTs delivered");
        self.rst = Some(dir);
    }

    fn wants_data(&self) -> bool {
        self.stop_after == 0 || self.packets < self.stop_after
    }

    fn held(&self) -> usize {
        self.held
    }

    fn shed(&mut self) -> usize {
        std::mem::take(&mut self.held)
    }
}

/// The flows the table remembers as evicted, kept the way it keeps them:
/// the last `cap` evictions, oldest forgotten first, a key evicted again
/// taking a new place. (Within 512 packets the table never purges, so every
/// flow handed back as `Ended` or `Evicted` before the end was evicted.)
struct Evicted {
    order: VecDeque<(FlowKey, u64)>,
    live: HashMap<FlowKey, u64>,
    cap: usize,
    stamp: u64,
}

impl Evicted {
    fn remember(&mut self, k: FlowKey) {
        self.stamp += 1;
        self.live.insert(k, self.stamp);
        self.order.push_back((k, self.stamp));
        while self.order.len() > self.cap {
            if let Some((k, g)) = self.order.pop_front()
                && self.live.get(&k) == Some(&g)
            {
                self.live.remove(&k);
            }
        }
    }
}

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.data.get(..4)?;
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        self.data = &self.data[4..];
        Some(v)
    }
}

/// Decodes segments from the input (see the layout above), keeping the
/// sequence numbers each endpoint pair has reached.
struct Segments {
    /// Highest sequence number sent so far per (src, dst) pair, for deltas.
    next_seq: [[u32; 3]; 3],
    ts: i64,
    payload: Vec<u8>,
}

impl Segments {
    /// The next segment and its capture time.
    fn next(&mut self, inp: &mut Input<'_>) -> Option<(Ts, TcpSegment<'_>)> {
        let (flags, mode) = (inp.u8()?, inp.u8()?);
        let s = (flags & 3) as usize % 3;
        let t = ((flags >> 2) & 3) as usize % 3;
        let base = self.next_seq[s][t];
        let seq = match mode & 3 {
            0 => base.wrapping_add(inp.u8().unwrap_or(0) as i8 as i32 as u32),
            1 => base.wrapping_add((inp.u8().unwrap_or(0) as i8 as i32 * 64) as u32),
            2 => inp.u32().unwrap_or(0),
            _ => u32::MAX - u32::from(inp.u8().unwrap_or(0) & 0x3f),
        };
        let peer = self.next_seq[t][s];
        let ack_no = if mode & 4 != 0 {
            inp.u32().unwrap_or(0)
        } else {
            peer.wrapping_add(inp.u8().unwrap_or(0) as i8 as i32 as u32)
        };
        let lenf = mode >> 3;
        let len = if lenf >= 28 {
            64 * usize::from(lenf - 27) * 16
        } else {
            usize::from(lenf)
        };
        let syn = flags & 0x10 != 0;
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        self.payload.clear();
        self.payload
            .extend((0..len).map(|i| data_seq.wrapping_add(i as u32) as u8));
        self.ts += i64::from(inp.u8().unwrap_or(1)) - 16;
        let end = data_seq.wrapping_add(len as u32);
        if (end.wrapping_sub(base) as i32) > 0 {
            self.next_seq[s][t] = end;
        }
        let seg = TcpSegment {
            src: EPS[s],
            dst: EPS[t],
            seq,
            ack_no,
            syn,
            ack: flags & 0x20 != 0,
            fin: flags & 0x40 != 0,
            rst: flags & 0x80 != 0,
            ttl: 64,
            cut: false,
            payload: &self.payload,
        };
        Some((Ts(self.ts), seg))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { data };
    let Some(lb) = inp.u8() else { return };
    let per_dir = 16usize << (2 * (lb & 3)); // 16, 64, 256, 1024
    let per_dir = if lb & 0x80 != 0 { 4096 } else { per_dir };
    let stop_after = inp.u8().unwrap_or(0);
    let limits = Limits {
        max_buffered_per_dir: per_dir,
        max_buffered_total: per_dir * (1 + ((lb >> 2) & 3) as usize),
        linger: Ts(i64::from((lb >> 4) & 7)),
        max_flows: 1 + usize::from(inp.u8().unwrap_or(7) & 7),
    };

    let mut table: FlowTable<Checker> = FlowTable::new(limits);
    let mut segs = Segments {
        next_seq: [[1000u32; 3]; 3],
        ts: 0,
        payload: Vec::with_capacity(64 * 31),
    };
    let evicted = RefCell::new(Evicted {
        order: VecDeque::new(),
        live: HashMap::new(),
        cap: limits.max_flows,
        stamp: 0,
    });
    let mut done = |c: Checker, why: Release| {
        for d in &c.dirs {
            assert!(d.delivered <= d.sent);
        }
        if matches!(why, Release::Ended | Release::Evicted) {
            evicted.borrow_mut().remember(c.key);
        }
        if why == Release::Ended {
            assert!(
                c.rst.is_some() || c.dirs.iter().all(|d| d.fins == 1),
                "released as ended without an RST or both FINs"
            );
        }
    };

    for _ in 0..512 {
        let Some((ts, seg)) = segs.next(&mut inp) else {
            break;
        };
        let fresh_syn = seg.syn && !seg.ack;
        let mut new_sink = |k: &FlowKey, _: Dir, _: Ts| {
            if evicted.borrow_mut().live.remove(k).is_some() {
                assert!(fresh_syn, "a packet of an evicted flow made a new flow");
            }
            Checker::new(*k, stop_after)
        };
        table.process(ts, &seg, &mut new_sink, &mut done);
        assert!(
            table.buffered_bytes() <= limits.max_buffered_total,
            "buffered {} > total cap {}",
            table.buffered_bytes(),
            limits.max_buffered_total
        );
        assert!(
            table.len() <= limits.max_flows.min(6),
            "{} flows",
            table.len()
        );
    }
    table.finish(Ts(segs.ts), &mut done);
});
