//! The summary's compact JSON with its connections encoded by several
//! threads. A million connections take seconds to encode (serde_json, about
//! 15,000 instructions each), on one thread at the end of the run while the
//! others sit idle: here they are encoded in chunks by `threads` threads
//! and written in id order, the bytes exactly those of `serde_json`'s
//! encoding of the whole [`Summary`] (a test compares them).

use std::io::{self, Write};
use std::sync::mpsc::sync_channel;

use serde::Serialize;

use super::{AnalysisStats, Connections, LimitsOut, SettingsOut, Source, Summary, Tool, Totals};
use crate::diagnose::Diagnosis;

/// Connections encoded together, handed over as one buffer (about 230 KB).
pub(super) const CHUNK: usize = 256;

/// Chunks a helper thread may have encoded ahead of the writer.
const AHEAD: usize = 2;

/// The summary's fields before `connections`, as `Summary` names them.
#[derive(Serialize)]
struct Before<'a> {
    schema: &'a str,
    tool: &'a Tool,
    settings: &'a SettingsOut,
    sources: &'a [Source],
    totals: &'a Totals,
    diagnoses: &'a [Diagnosis],
}

/// The summary's fields after `connections`.
#[derive(Serialize)]
struct After<'a> {
    analysis: &'a AnalysisStats,
    limits: &'a LimitsOut,
}

/// Writes `s` as compact JSON (no final newline), its connections encoded
/// by `threads` threads, this one among them.
pub(super) fn write_compact(s: &Summary, out: &mut impl Write, threads: usize) -> io::Result<()> {
    write_compact_with(s, out, threads, CHUNK)
}

fn write_compact_with(
    s: &Summary,
    out: &mut impl Write,
    threads: usize,
    chunk: usize,
) -> io::Result<()> {
    let before = serde_json::to_vec(&Before {
        schema: s.schema,
        tool: &s.tool,
        settings: &s.settings,
        sources: &s.sources,
        totals: &s.totals,
        diagnoses: &s.diagnoses,
    })?;
    let after = serde_json::to_vec(&After {
        analysis: &s.analysis,
        limits: &s.limits,
    })?;
    // `{...}` and `{...}` around `"connections":[...]`.
    let (Some((b'}', before)), Some((b'{', after))) = (before.split_last(), after.split_first())
    else {
        return Err(io::Error::other("a summary field is not an object"));
    };
    out.write_all(before)?;
    out.write_all(b",\"connections\":[")?;
    write_connections(&s.connections, out, threads, chunk)?;
    out.write_all(b"],")?;
    out.write_all(after)
}

/// Every connection's JSON, comma-separated, in id order: chunk `k` (of
/// `chunk` connections) is encoded by thread `k % threads` (0 is this one,
/// which also writes).
fn write_connections(
    c: &Connections,
    out: &mut impl Write,
    threads: usize,
    chunk: usize,
) -> io::Result<()> {
    let chunks = c.len().div_ceil(chunk);
    let threads = threads.clamp(1, chunks.max(1));
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|first| {
                let (tx, rx) = sync_channel(AHEAD);
                scope.spawn(move || {
                    for k in (first..chunks).step_by(threads) {
                        let mut buf = Vec::new();
                        let done = encode_chunk(c, k * chunk, chunk, &mut buf).map(|()| buf);
                        // The writer stopped (an error): so do we.
                        if tx.send(done).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        let mut own = Vec::new();
        for k in 0..chunks {
            if k > 0 {
                out.write_all(b",")?;
            }
            match k % threads {
                0 => {
                    own.clear();
                    encode_chunk(c, k * chunk, chunk, &mut own)?;
                    out.write_all(&own)?;
                }
                h => {
                    let buf = helpers[h - 1]
                        .recv()
                        .map_err(|_| io::Error::other("a JSON thread ended early"))??;
                    out.write_all(&buf)?;
                }
            }
        }
        Ok(())
    })
}

/// Up to `n` connections from the `first`th (0-based), comma-separated,
/// appended to `buf`.
fn encode_chunk(c: &Connections, first: usize, n: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    for i in first..(first + n).min(c.len()) {
        if i > first {
            buf.push(b',');
        }
        let r = c.read(i).map_err(io::Error::other)?;
        serde_json::to_writer(&mut *buf, &r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::close::Settings;
    use crate::pipeline::{Hooks, analyze_files_with};
    use crate::reassembly::Limits;

    /// The summary's bytes whatever the threads and the chunks, a short
    /// last chunk and a single connection included, from memory and from
    /// the file; no connection, nothing between the brackets.
    #[test]
    fn the_same_bytes_as_one_encoding_of_the_whole() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        for (name, memory) in [
            ("many-connections.pcap", usize::MAX),
            ("rotated-1.pcap", 0),
            ("nanosecond.pcap", usize::MAX),
        ] {
            let names = [dir.join(name).to_str().expect("path").to_string()];
            let hooks = Hooks {
                spool_memory: Some(memory),
                ..Hooks::default()
            };
            let (s, _) = analyze_files_with(&names, Settings::default(), Limits::default(), hooks)
                .expect("analysis");
            let whole = serde_json::to_vec(&s).expect("json");
            for threads in [1, 2, 3, 8] {
                for chunk in [1, 2, 5, CHUNK] {
                    let mut out = Vec::new();
                    write_compact_with(&s, &mut out, threads, chunk).expect("json");
                    assert!(out == whole, "{name}: {threads} threads, chunks of {chunk}");
                }
            }
        }
        let mut out = Vec::new();
        write_connections(&Connections::default(), &mut out, 3, 2).expect("json");
        assert!(out.is_empty());
    }
}
