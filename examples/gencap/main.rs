//! Benchmark capture generator: a protocol-correct classic pcap of many
//! interleaved WebSocket connections with a known mix of outcomes, and a
//! truth file of the totals wsclose's JSON summary must reproduce.
//!
//! ```sh
//! cargo run --release --example gencap -- --out a.pcap --truth a.json --size 1G \
//!     --concurrent 600 --packet 190 --seed 1
//! cargo run --release --example checktruth -- a.json summary.json
//! ```
//!
//! Each connection's whole life is scripted when it opens (`script`), so
//! its packets and what wsclose must say about it are known in advance
//! (`account`). Connections run side by side from a time-ordered queue;
//! packets are written in place into one large buffer (`wire`).

mod account;
mod conn;
mod script;
mod truth;
mod wire;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

use clap::Parser;

use account::Account;
use conn::Conn;
use script::{KINDS, Kind, Rng, Shape};

/// Minimum time between two cuts (connections ended without a close
/// frame): at most 4 fall in any second, so no `mass_disconnect` can form.
const CUT_SPACING_US: u64 = 260_000;
/// Cuts per second the time scale aims at (below the spacing's limit, so
/// cut connections rarely wait for their slot).
const CUT_RATE: f64 = 2.0;

#[derive(Parser, Debug)]
#[command(about = "Writes a pcap of many WebSocket connections and the truth wsclose must find")]
struct Args {
    /// The capture to write.
    #[arg(long)]
    out: String,
    /// The truth file (JSON) to write.
    #[arg(long)]
    truth: String,
    /// Approximate capture size: bytes, or with a suffix K, M, G (powers of 1024).
    #[arg(long, value_parser = parse_size, conflicts_with = "connections")]
    size: Option<u64>,
    /// Number of connections (instead of --size).
    #[arg(long)]
    connections: Option<u64>,
    /// Connections open at once.
    #[arg(long, default_value_t = 600)]
    concurrent: u32,
    /// Typical (largest) packet size on the wire, Ethernet header included.
    #[arg(long, default_value_t = 1400)]
    packet: u32,
    /// Short connections: the handshake, a message or two, the close.
    #[arg(long)]
    short: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(format!("not a positive size: {s}"));
    }
    Ok((n * mult as f64) as u64)
}

/// The generator's state: connection slots, the time queue, the output.
struct Gen {
    args: Args,
    shape: Shape,
    rng: Rng,
    conns: Vec<Conn>,
    queue: BinaryHeap<Reverse<(u64, u32)>>,
    out: wire::PcapOut,
    account: Account,
    opened: u64,
    /// File bytes of every connection opened so far (known in advance).
    committed: u64,
    last_cut: Option<u64>,
}

impl Gen {
    fn want_more(&self) -> bool {
        match (self.args.connections, self.args.size) {
            (Some(n), _) => self.opened < n,
            (None, Some(size)) => self.committed < size,
            (None, None) => self.opened < 1000,
        }
    }

    /// Opens a new connection in `slot`, starting at `now` or later (a
    /// cut connection starts so that its cut takes the next free cut slot).
    fn open(&mut self, slot: u32, now: u64) {
        if !self.want_more() {
            return;
        }
        let kind = if (self.opened as usize) < KINDS.len() {
            KINDS[self.opened as usize].0
        } else {
            pick_kind(&mut self.rng)
        };
        let id = self.opened;
        self.opened += 1;
        let c = &mut self.conns[slot as usize];
        let (end_at, tally) = c.prepare(id, kind, &mut self.rng, self.shape);
        let mut start = now;
        if kind.is_cut() {
            let cut_off = end_at.expect("a cut script ends TCP");
            if let Some(last) = self.last_cut {
                start = start.max((last + CUT_SPACING_US).saturating_sub(cut_off));
            }
            self.last_cut = Some(start + cut_off);
        }
        c.start = start;
        self.account.add(kind, &tally);
        self.committed += tally.bytes + tally.packets * wire::RECORD as u64;
        self.queue.push(Reverse((c.next_time(), slot)));
    }

    fn run(&mut self) -> std::io::Result<()> {
        let n = self.args.concurrent.max(1);
        // Stagger the first connections over about one lifetime.
        let ramp = (1e6 * cut_share() / CUT_RATE) as u64;
        for slot in 0..n {
            self.open(slot, u64::from(slot) * ramp);
        }
        let mss = self.shape.mss as usize;
        while let Some(Reverse((t, slot))) = self.queue.pop() {
            self.out.reserve(mss)?;
            let c = &mut self.conns[slot as usize];
            let more = c.emit(&mut self.out, t, &mut self.rng);
            if more {
                self.queue.push(Reverse((c.next_time(), slot)));
            } else {
                let gap = self.rng.range(0, 1000);
                self.open(slot, t + gap);
            }
        }
        self.out.flush()
    }
}

/// The share of cut kinds in the mix.
fn cut_share() -> f64 {
    let total: u32 = KINDS.iter().map(|k| k.1).sum();
    let cut: u32 = KINDS.iter().filter(|k| k.0.is_cut()).map(|k| k.1).sum();
    f64::from(cut) / f64::from(total)
}

fn pick_kind(rng: &mut Rng) -> Kind {
    let total: u64 = KINDS.iter().map(|k| u64::from(k.1)).sum();
    let mut r = rng.next() % total;
    for (k, w) in KINDS {
        if r < u64::from(w) {
            return k;
        }
        r -= u64::from(w);
    }
    Kind::CleanClient
}

fn main() {
    let args = Args::parse();
    let mss = u64::from(args.packet.max(wire::HEADERS as u32 + 16)) - wire::HEADERS as u64;
    // Connections arrive at the rate that keeps cuts near CUT_RATE a
    // second; a connection's mean life is then concurrency / arrival rate.
    let life_us = f64::from(args.concurrent.max(1)) * 1e6 * cut_share() / CUT_RATE;
    let actions = if args.short { 1.5 } else { 22.0 };
    let shape = Shape {
        mss,
        gap_us: ((life_us / (actions + 1.0)) as u64).max(1000),
        short: args.short,
    };
    let out = wire::PcapOut::create(&args.out, 8 << 20)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", args.out));
    let conns = (0..args.concurrent.max(1)).map(|_| Conn::new()).collect();
    let mut g = Gen {
        rng: Rng(args.seed ^ 0x5eed_0000_0000_0000),
        shape,
        conns,
        queue: BinaryHeap::new(),
        out,
        account: Account::default(),
        opened: 0,
        committed: 0,
        last_cut: None,
        args,
    };
    let started = Instant::now();
    g.run()
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", g.args.out));
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        g.out.packets, g.account.packets,
        "packets written vs scripted"
    );
    assert_eq!(g.out.bytes, g.account.bytes, "bytes written vs scripted");
    let truth = g.account.truth(params(&g.args));
    let json = serde_json::to_string_pretty(&truth).expect("the truth serialises");
    std::fs::write(&g.args.truth, json + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", g.args.truth));
    let mb = g.out.file_bytes as f64 / 1e6;
    eprintln!(
        "gencap: {} connections, {} packets ({:.0} B average), {:.1} MB, {:.1} s of capture time, in {:.2} s: {:.0} MB/s",
        g.opened,
        g.out.packets,
        g.out.bytes as f64 / g.out.packets.max(1) as f64,
        mb,
        g.out.last_ts as f64 / 1e6,
        secs,
        mb / secs
    );
}

fn params(a: &Args) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("seed".into(), a.seed.to_string());
    p.insert("concurrent".into(), a.concurrent.to_string());
    p.insert("packet".into(), a.packet.to_string());
    p.insert("short".into(), a.short.to_string());
    if let Some(s) = a.size {
        p.insert("size".into(), s.to_string());
    }
    if let Some(n) = a.connections {
        p.insert("connections".into(), n.to_string());
    }
    p
}
