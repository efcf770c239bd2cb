//! The analysis pipeline without the command line: open the inputs, merge
//! them into one capture, feed every packet to the [`Analyzer`], and build
//! the summary with one `sources` entry per input. `analyze`, the second
//! pass of `--connection`, live capture, the benches and the fuzz targets
//! all feed packets through [`feed`] (or [`tcp_segment`]), so what counts
//! as skipped and what moves the capture's clock is decided once.

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Ts;
use crate::analyzer::{Analyzer, AnalyzerStats, Decided};
use crate::capture::{FileReader, Merged, Packet, PacketCounts};
use crate::close::Settings;
use crate::decode::{self, Skip, TcpSegment};
use crate::error::Error;
use crate::reassembly::Limits;
use crate::report::connections::SPOOL_MEMORY;
use crate::report::{AnalysisStats, Collector, LimitsOut, Source, Summary};
use crate::shard::{self, Sharded};

/// The TCP segment of a captured packet, for `analyzer`. A packet that
/// gives none (another protocol, undecodable, a link type not read) is
/// counted as skipped in `counts` and still moves the analyzer's clock: a
/// close deadline passes while only UDP or ARP is captured too.
#[inline]
pub fn tcp_segment<'p>(
    analyzer: &mut Analyzer,
    pkt: Packet<'p>,
    counts: &mut PacketCounts,
) -> Option<TcpSegment<'p>> {
    match decode::decode(pkt.linktype, pkt.data) {
        Ok(seg) => Some(seg),
        Err(skip) => {
            skipped(analyzer, pkt.ts, counts, skip);
            None
        }
    }
}

/// A packet that gave no TCP segment: counted, and the clock moved.
fn skipped(analyzer: &mut Analyzer, ts: Ts, counts: &mut PacketCounts, skip: Skip) {
    analyzer.note_time(ts);
    counts.skipped(skip == Skip::NotTcp);
}

/// One captured packet into the analysis: decoded, and its segment fed to
/// `analyzer` (see [`tcp_segment`] for the rest).
#[inline]
pub fn feed(analyzer: &mut Analyzer, pkt: Packet<'_>, counts: &mut PacketCounts) {
    // Matched by reference: the segment stays where it was decoded. Moved
    // out, it was copied in 8-byte words over fields just stored byte by
    // byte, a store-forwarding stall on every packet.
    match &decode::decode(pkt.linktype, pkt.data) {
        Ok(seg) => analyzer.packet(pkt.ts, seg),
        Err(skip) => skipped(analyzer, pkt.ts, counts, *skip),
    }
}

/// Runs the whole `analyze` pipeline over files (`-` for stdin) and
/// returns the summary and the warnings to print (damaged inputs).
pub fn analyze_files(
    names: &[String],
    settings: Settings,
    limits: Limits,
) -> Result<(Summary, Vec<String>), Error> {
    analyze_readers(open_all(names)?, settings, limits)
}

/// Receives the connections decided while the capture is read (`--jsonl`).
pub(crate) type OnDecided<'a> = &'a mut dyn FnMut(Vec<Decided>) -> Result<(), Error>;

/// What a run of [`analyze_files_with`] does besides the analysis.
#[derive(Default)]
pub(crate) struct Hooks<'a> {
    /// Stop reading when set (Ctrl-C while reading a pipe): what was read
    /// is reported.
    pub stop: Option<&'a AtomicBool>,
    /// Each connection the moment it is decided, in capture time.
    pub decided: Option<OnDecided<'a>>,
    /// Analysis threads (`--threads`; 0 or 1: the reading thread alone).
    /// With `decided` the run is on one thread.
    pub threads: usize,
    /// Bytes of decided connections kept in memory before they go to a
    /// temporary file (default [`SPOOL_MEMORY`]; tests set 0).
    pub spool_memory: Option<usize>,
}

/// Like [`analyze_files`], with [`Hooks`].
pub(crate) fn analyze_files_with(
    names: &[String],
    settings: Settings,
    limits: Limits,
    hooks: Hooks<'_>,
) -> Result<(Summary, Vec<String>), Error> {
    // A sharded run that reaches a cap reads the files again on one
    // thread; a pipe cannot be read again.
    let again = readable_again(names);
    run_readers(
        open_all(names)?,
        settings,
        limits,
        hooks,
        again.then_some(names),
    )
}

/// Whether every input is a regular file (not stdin, a FIFO or a device),
/// which a second pass can read again.
pub(crate) fn readable_again(names: &[String]) -> bool {
    names
        .iter()
        .all(|n| n != "-" && std::fs::metadata(n).is_ok_and(|m| m.is_file()))
}

/// Opens every input, failing on the first that cannot be read: a run
/// with a missing file reports nothing rather than half a capture.
pub(crate) fn open_all(names: &[String]) -> Result<Vec<FileReader>, Error> {
    names.iter().map(|n| FileReader::open(n)).collect()
}

/// The pipeline over readers already open (files, stdin, or bytes in
/// memory for tests and fuzzing).
pub fn analyze_readers(
    readers: Vec<FileReader>,
    settings: Settings,
    limits: Limits,
) -> Result<(Summary, Vec<String>), Error> {
    run_readers(readers, settings, limits, Hooks::default(), None)
}

/// Like [`analyze_readers`], with `threads` flow tables (`--threads`): the
/// same summary unless a memory cap was reached, which a warning then says
/// (readers cannot be read again).
pub fn analyze_readers_threaded(
    readers: Vec<FileReader>,
    settings: Settings,
    limits: Limits,
    threads: usize,
) -> Result<(Summary, Vec<String>), Error> {
    let hooks = Hooks {
        threads,
        ..Hooks::default()
    };
    run_readers(readers, settings, limits, hooks, None)
}

/// Packets between two hand-overs of connections to the collector: the
/// reports waiting in the analyzer stay few.
const COLLECT_EVERY: u64 = 1024;

/// Packets between two hand-overs of decided connections (`--jsonl`).
const DECIDED_EVERY: u64 = 256;

/// The pipeline over `readers`; `again`: the files they read, when a
/// sharded run that reaches a cap may read them again on one thread.
fn run_readers(
    readers: Vec<FileReader>,
    settings: Settings,
    limits: Limits,
    hooks: Hooks<'_>,
    again: Option<&[String]>,
) -> Result<(Summary, Vec<String>), Error> {
    let progress = Progress::new(&readers);
    let mut merged = Merged::new(readers);
    let mut collector = Collector::with_memory(hooks.spool_memory.unwrap_or(SPOOL_MEMORY));
    let (mut capped, threads) = (false, hooks.threads);
    let stats = if threads > 1 && hooks.decided.is_none() {
        let on_packet = |n: u64, m: &Merged| {
            if n % PROGRESS_EVERY == 0 {
                progress.update(m.readers());
            }
        };
        let plan = shard::Plan {
            threads,
            settings: &settings,
            limits,
            stop: hooks.stop,
            stop_at_cap: again.is_some(),
        };
        match shard::run(&mut merged, &plan, on_packet, &mut collector)? {
            Sharded::Done(stats) => stats,
            Sharded::Capped(Some(stats)) => {
                capped = true;
                stats
            }
            Sharded::Capped(None) => {
                progress.done();
                let names = again.unwrap_or_default();
                let one = Hooks {
                    threads: 1,
                    ..hooks
                };
                return run_readers(open_all(names)?, settings, limits, one, None);
            }
        }
    } else {
        let run = One {
            merged: &mut merged,
            settings: &settings,
            limits,
            progress: &progress,
            collector: &mut collector,
        };
        run.run(hooks)?
    };
    progress.done();
    let (sources, mut warnings) = file_sources(merged.into_readers())?;
    if capped {
        warnings.push(format!(
            "a memory cap (--max-flows or --max-buffered) was reached with --threads {}: what was evicted or given up may differ from a run on one thread (a pipe cannot be read again; --threads 1 decides as one table)",
            threads
        ));
    }
    Ok((
        summary_of(&settings, &limits, sources, collector, &stats)?,
        warnings,
    ))
}

/// A run on one thread.
struct One<'a> {
    merged: &'a mut Merged,
    settings: &'a Settings,
    limits: Limits,
    progress: &'a Progress,
    collector: &'a mut Collector,
}

impl One<'_> {
    fn run(self, mut hooks: Hooks<'_>) -> Result<AnalyzerStats, Error> {
        let One {
            merged,
            settings,
            limits,
            progress,
            collector,
        } = self;
        let mut analyzer = match hooks.decided {
            Some(_) => Analyzer::new_live(settings.clone(), limits),
            None => Analyzer::new(settings.clone(), limits),
        };
        let mut n: u64 = 0;
        let stop = hooks.stop;
        while !stop.is_some_and(|s| s.load(Ordering::Relaxed)) && merged.advance()? {
            n += 1;
            if merged.has_secrets() {
                for text in merged.take_secrets() {
                    if let Ok(mut k) = settings.keys.write() {
                        k.add_text(&text);
                    }
                }
            }
            if n % PROGRESS_EVERY == 0 {
                progress.update(merged.readers());
            }
            let Some((pkt, counts)) = merged.current_mut() else {
                break;
            };
            let ts = pkt.ts;
            feed(&mut analyzer, pkt, counts);
            if n % COLLECT_EVERY == 0 {
                collector.take_from(&mut analyzer)?;
            }
            if let Some(on) = hooks.decided.as_mut() {
                // Close deadlines pass on capture time here.
                analyzer.tick(ts);
                if n % DECIDED_EVERY == 0 {
                    on(analyzer.take_decided())?;
                }
            }
        }
        let (stats, rest) = collector.finish_from(analyzer)?;
        if let Some(on) = hooks.decided.as_mut() {
            on(rest)?;
        }
        Ok(stats)
    }
}

/// The `sources` entries of the inputs read, and the warnings about them
/// (corrupt records skipped, a cut-short end). An input none of whose link
/// types can be decoded is an error: nothing of it was analysed.
fn file_sources(readers: Vec<FileReader>) -> Result<(Vec<Source>, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    for r in readers {
        let st = &r.stats;
        let link_types: Vec<String> = st
            .link_types
            .iter()
            .map(|l| decode::link_name(*l))
            .collect();
        if !st.link_types.is_empty() && !st.link_types.iter().any(|l| decode::link_supported(*l)) {
            return Err(Error::input(
                &r.name,
                format!("unsupported link type {}", link_types.join(",")),
            ));
        }
        for note in &st.notes {
            warnings.push(format!("{}: {note}", r.name));
        }
        if st.corrupt_records > st.notes.len() as u64 {
            warnings.push(format!(
                "{}: {} more corrupt record(s) skipped",
                r.name,
                st.corrupt_records - st.notes.len() as u64
            ));
        }
        if let Some(why) = &st.stopped {
            warnings.push(format!("{}: {why}; what was read is analysed", r.name));
        }
        sources.push(Source {
            truncated: st.truncated,
            corrupt_records: st.corrupt_records,
            ..source("file", &r.name, &link_types.join(","), &st.counts)
        });
    }
    Ok((sources, warnings))
}

/// Packets between two progress updates.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 256 << 20;

/// A progress bar on stderr for long runs over big files, shown only when
/// stderr is a terminal (never in scripts or CI logs).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(readers: &[FileReader]) -> Progress {
        let total: Option<u64> = readers.iter().map(FileReader::size).sum();
        let show = io::stderr().is_terminal() && total.is_some_and(|t| t >= PROGRESS_MIN_BYTES);
        Progress(show.then(|| {
            let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }))
    }

    fn update(&self, readers: &[FileReader]) {
        if let Some(bar) = &self.0 {
            bar.set_position(readers.iter().map(FileReader::offset).sum());
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A `sources` entry from an input's counts (nothing dropped, truncated or
/// corrupt: callers set what applies).
pub(crate) fn source(kind: &'static str, name: &str, link_type: &str, c: &PacketCounts) -> Source {
    Source {
        kind,
        name: name.to_string(),
        link_type: link_type.to_string(),
        packets: c.packets,
        bytes: c.bytes,
        first_ts: c.first_ts.map(Ts::as_secs_f64),
        last_ts: c.last_ts.map(Ts::as_secs_f64),
        dropped: None,
        not_tcp: c.not_tcp,
        undecodable: c.undecodable,
        truncated: false,
        corrupt_records: 0,
        kernel: None,
    }
}

/// The summary of a run, whatever fed it (files or an interface).
pub(crate) fn summary_of(
    settings: &Settings,
    limits: &Limits,
    sources: Vec<Source>,
    collector: Collector,
    stats: &AnalyzerStats,
) -> Result<Summary, Error> {
    let r = &stats.reassembly;
    let analysis = AnalysisStats {
        tcp_segments: stats.tcp_segments,
        tcp_flows: r.flows,
        out_of_order_segments: r.out_of_order_segments,
        retransmitted_segments: r.retransmitted_segments,
        gaps: r.gaps,
        gap_bytes: r.gap_bytes,
        tls: stats.tls.into(),
        cut_segments: stats.cut_segments,
        plain_http_flows: stats.plain_http_flows,
    };
    let limits_out = LimitsOut {
        max_flows: limits.max_flows as u64,
        max_ooo_per_dir: limits.max_buffered_per_dir as u64,
        max_buffered: limits.max_buffered_total as u64,
        peak_flows: r.peak_flows,
        peak_buffered: r.peak_buffered,
        flows_evicted: r.flows_evicted,
        websocket_flows_evicted: stats.websocket_evicted,
        packets_of_evicted_flows: r.packets_of_evicted_flows,
        holes_given_up: r.holes_given_up,
        buffered_bytes_shed: r.sink_bytes_shed,
    };
    let collected = collector.finish(settings)?;
    Ok(Summary::new(
        settings, sources, collected, analysis, limits_out,
    ))
}
