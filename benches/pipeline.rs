//! Throughput of the analysis pipeline (capture parsing, decoding,
//! reassembly, upgrade and frame parsing, close analysis) on bundled
//! samples held in memory, so the figures exclude disk I/O.
//!
//! `cargo bench --bench pipeline`; the side-by-side comparison with tshark
//! and a bare read of the file is `benches/compare.sh`. The `diagnose`
//! group times the diagnoses alone on the same captures' reports, so the
//! two groups give what diagnoses add to a run.

use std::io::Cursor;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wsclose::analyzer::Analyzer;
use wsclose::capture::{FileReader, PacketCounts};
use wsclose::close::{ConnectionReport, Settings};
use wsclose::pipeline::feed;
use wsclose::reassembly::Limits;

fn analyse(bytes: &[u8]) -> Vec<ConnectionReport> {
    let Ok(mut r) = FileReader::from_reader("bench", Box::new(Cursor::new(bytes.to_vec()))) else {
        return Vec::new();
    };
    let mut a = Analyzer::new(Settings::default(), Limits::default());
    // The bench keeps its own counts: the reader's are borrowed by the packet.
    let mut counts = PacketCounts::default();
    while let Ok(true) = r.advance() {
        if let Some(p) = r.current() {
            feed(&mut a, p, &mut counts);
        }
    }
    a.finish().0
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut g = c.benchmark_group("pipeline");
    for name in ["many-connections.pcap", "large.pcap"] {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            eprintln!("{name} missing (samples/regen.sh large makes it): skipped");
            continue;
        };
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| b.iter(|| analyse(&bytes).len()));
    }
    g.finish();
    let mut g = c.benchmark_group("diagnose");
    for name in ["many-connections.pcap", "large.pcap"] {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let mut digests = wsclose::diagnose::Digests::default();
        for r in &analyse(&bytes) {
            digests.add(r);
        }
        let settings = Settings::default();
        g.bench_function(name, |b| {
            b.iter(|| wsclose::diagnose::diagnose(&digests, &settings).len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
