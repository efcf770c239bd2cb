//! The parsers one at a time (issue 11), with criterion throughputs so
//! per-byte and per-packet costs show: frame headers and the streaming
//! frame decoder (`src/frame/`), the HTTP upgrade heads (`src/upgrade.rs`),
//! reassembly (`src/reassembly/`) and link/IP/TCP decoding
//! (`src/decode.rs`). The whole pipeline is `benches/pipeline.rs`; the
//! end-to-end comparison on generated captures is `benches/e2e.sh`.
//!
//! `cargo bench --bench parsers`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use pcap_parser::Linktype;
use wsclose::Ts;
use wsclose::decode::{Endpoint, TcpSegment, decode};
use wsclose::frame::{FrameDecoder, FrameEvent, parse_header};
use wsclose::reassembly::{Dir, FlowKey, FlowTable, Limits, Release, StreamSink};
use wsclose::upgrade::{accept_for_key, parse_request, parse_response};

/// A frame as a client (masked) or a server sends it, minimal length form.
fn frame(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let m = if masked { 0x80 } else { 0 };
    match len {
        0..=125 => f.push(m | len as u8),
        126..=0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(m | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        f.extend_from_slice(&mask);
    }
    f.extend((0..len).map(|i| (b'a' + (i % 26) as u8) ^ if masked { mask[i % 4] } else { 0 }));
    f
}

/// Feeds `stream` to a fresh decoder in `seg`-byte pieces; counts frames.
fn decode_stream(stream: &[u8], seg: usize) -> usize {
    let mut d = FrameDecoder::new();
    let mut frames = 0;
    for piece in stream.chunks(seg) {
        d.feed(piece, &mut |e| {
            if let FrameEvent::Frame { .. } = e {
                frames += 1;
            }
        });
    }
    frames
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let headers: Vec<Vec<u8>> = [
        (1, 20, true),
        (2, 300, false),
        (1, 70_000, true),
        (9, 4, false),
    ]
    .iter()
    .map(|&(op, len, m)| {
        let f = frame(op, len, m);
        f[..14.min(f.len())].to_vec()
    })
    .collect();
    g.throughput(Throughput::Elements(headers.len() as u64));
    g.bench_function("parse_header x4", |b| {
        b.iter(|| {
            headers
                .iter()
                .map(|h| parse_header(black_box(h)).map_or(0, |(_, h)| h.payload_len))
                .sum::<u64>()
        })
    });
    // Many small masked text frames (chat traffic), and big binary frames
    // in full-size segments (bulk traffic): per-frame and per-byte costs.
    for (name, opcode, len, masked, seg) in [
        ("small masked text, 190 B segments", 1, 60, true, 136),
        ("large masked text, 1460 B segments", 1, 65_536, true, 1460),
        ("large binary, 1460 B segments", 2, 65_536, false, 1460),
    ] {
        let one = frame(opcode, len, masked);
        let stream = one.repeat(((1 << 20) / one.len()).max(1));
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(format!("decoder: {name}"), |b| {
            b.iter(|| decode_stream(black_box(&stream), seg))
        });
    }
    g.finish();
}

const REQUEST: &[u8] = b"GET /ws/12345 HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: bench\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

fn upgrade(c: &mut Criterion) {
    let mut g = c.benchmark_group("upgrade");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(REQUEST)).is_ok())
    });
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("parse_response", |b| {
        b.iter(|| parse_response(black_box(RESPONSE)).is_ok())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("accept_for_key", |b| {
        b.iter(|| accept_for_key(black_box("dGhlIHNhbXBsZSBub25jZQ==")))
    });
    g.finish();
}

/// A sink that only counts what reassembly hands it.
#[derive(Default)]
struct Count(u64);

impl StreamSink for Count {
    fn on_packet(&mut self, _: Dir, _: Ts, _: &TcpSegment<'_>) {}
    fn on_data(&mut self, _: Dir, _: Ts, data: &[u8]) {
        self.0 += data.len() as u64;
    }
    fn on_gap(&mut self, _: Dir, _: Ts, _: u64) {}
    fn on_fin(&mut self, _: Dir, _: Ts) {}
    fn on_rst(&mut self, _: Dir, _: Ts) {}
}

fn endpoint(ip: u32, port: u16) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::from(ip)),
        port,
    }
}

/// `flows` connections each sending `per_flow` segments of `payload`
/// bytes client to server, interleaved; with `swap`, every pair of a
/// flow's segments arrives the wrong way round (out of order).
fn run_flows(payload: &[u8], flows: u32, per_flow: u32, swap: bool) -> u64 {
    let mut table: FlowTable<Count> = FlowTable::new(Limits::default());
    let server = endpoint(0x0a00_0001, 8080);
    let mut delivered = 0;
    let mut done = |s: Count, _: Release| delivered += s.0;
    let mut new_sink = |_: &FlowKey, _: Dir, _: Ts| Count::default();
    for f in 0..flows {
        let syn = TcpSegment {
            src: endpoint(0x0a40_0000 + f, 10_000),
            dst: server,
            seq: 999,
            ack_no: 0,
            syn: true,
            ack: false,
            fin: false,
            rst: false,
            ttl: 64,
            cut: false,
            payload: &[],
        };
        table.process(Ts(0), &syn, &mut new_sink, &mut done);
    }
    for k in 0..per_flow {
        let k = if swap { k ^ 1 } else { k };
        for f in 0..flows {
            let seg = TcpSegment {
                src: endpoint(0x0a40_0000 + f, 10_000),
                dst: server,
                seq: 1000u32.wrapping_add(k * payload.len() as u32),
                ack_no: 1,
                syn: false,
                ack: true,
                fin: false,
                rst: false,
                ttl: 64,
                cut: false,
                payload,
            };
            table.process(Ts(i64::from(k) * 1000), &seg, &mut new_sink, &mut done);
        }
    }
    table.finish(Ts(i64::MAX / 2), &mut done);
    delivered
}

fn reassembly(c: &mut Criterion) {
    let mut g = c.benchmark_group("reassembly");
    for (name, len, swap) in [
        ("in order, 136 B segments", 136, false),
        ("in order, 1446 B segments", 1446, false),
        ("pairs swapped, 136 B segments", 136, true),
    ] {
        let payload = vec![b'x'; len];
        let (flows, per_flow) = (600u32, 64u32);
        let segments = u64::from(flows * per_flow);
        g.throughput(Throughput::Elements(segments));
        g.bench_function(format!("{name}, segments"), |b| {
            b.iter(|| run_flows(black_box(&payload), flows, per_flow, swap))
        });
        g.throughput(Throughput::Bytes(segments * len as u64));
        g.bench_function(format!("{name}, bytes"), |b| {
            b.iter(|| run_flows(black_box(&payload), flows, per_flow, swap))
        });
    }
    g.finish();
}

fn decoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for len in [136usize, 1446] {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 64, 0, 1], [10, 0, 0, 1], 64)
            .tcp(10_000, 8080, 1000, 64_240)
            .ack(1);
        let payload = vec![b'x'; len];
        let mut pkt = Vec::with_capacity(builder.size(len));
        builder.write(&mut pkt, &payload).expect("a packet");
        let packets = vec![pkt; 64];
        g.throughput(Throughput::Elements(packets.len() as u64));
        g.bench_function(
            format!("ethernet/ipv4/tcp, {} B packets", packets[0].len()),
            |b| {
                b.iter(|| {
                    packets
                        .iter()
                        .map(|p| {
                            decode(Linktype::ETHERNET, black_box(p)).map_or(0, |s| s.payload.len())
                        })
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the figures are steady well within them, and the bench
    // builds in CI (`cargo bench --no-run`) and runs by hand.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = frames, upgrade, reassembly, decoding
}
criterion_main!(benches);
