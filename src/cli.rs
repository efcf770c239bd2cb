//! The command line (see the contract's "Command line"): argument parsing,
//! and the file pipeline that drives the analyzer.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Ts;
use crate::analyzer::{Analyzer, AnalyzerStats};
use crate::capture::{CaptureError, FileReader, Merged, PacketCounts};
use crate::close::{Settings, Severity};
use crate::decode::{self, Skip};
use crate::live::{self, LiveOptions};
use crate::reassembly::Limits;
use crate::report::{AnalysisStats, KernelStats, LimitsOut, Source, Summary};
use crate::timeline;

#[derive(Debug, Parser)]
#[command(
    name = "wsclose",
    version,
    about = "Why did my WebSocket disconnect? Follows every WebSocket closing handshake in a packet capture."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse capture files (pcap or pcapng; `-` reads stdin). Several files
    /// are one capture, merged in timestamp order.
    Analyze(AnalyzeArgs),
    /// Capture live on an interface and analyse as packets arrive; stops at
    /// --duration, --count, Ctrl-C or SIGTERM, then reports like `analyze`.
    Sniff(SniffArgs),
    /// List the interfaces that can be captured on (like `tcpdump -D`).
    Interfaces,
}

#[derive(Debug, clap::Args)]
pub struct SniffArgs {
    /// Interface to capture on (`any` for all; see `wsclose interfaces`).
    #[arg(short, long, value_name = "NAME")]
    pub interface: String,
    /// BPF capture filter, as for tcpdump.
    #[arg(short, long, value_name = "BPF", default_value = "tcp")]
    pub filter: String,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "PACKETS")]
    pub count: Option<u64>,
    /// Write each connection as one JSON line as soon as it is decided
    /// (`-`: stdout; the tables then go to stderr).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<String>,
    /// Also save the raw packets to PATH as a pcap file (like tcpdump -w).
    #[arg(short, long, value_name = "PATH")]
    pub write: Option<std::path::PathBuf>,
    /// Bytes captured per packet.
    #[arg(short, long, value_name = "BYTES", default_value_t = 262_144)]
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Capture files, `-` for stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Print the life of connection ID (the `#` of the tables) instead of
    /// the tables: its frames, silences, FIN/RST and findings in time order,
    /// and a display filter for Wireshark. Repeatable; files only (the
    /// capture is read twice).
    #[arg(long, value_name = "ID")]
    pub connection: Vec<u64>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Memory caps: memory stays bounded by these, whatever the capture holds.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// TCP flows tracked at once; past it the least recently active are
    /// evicted (and counted in the summary's `limits`).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_flows)]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per TCP direction before a hole is given up.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffered_per_dir)]
    pub max_ooo_per_dir: usize,
    /// Out-of-order bytes buffered across all flows.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffered_total)]
    pub max_ooo_total: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_flows: self.max_flows.max(1),
            max_buffered_per_dir: self.max_ooo_per_dir,
            max_buffered_total: self.max_ooo_total,
            ..Limits::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Write the JSON summary to PATH (`-`: stdout, instead of the tables).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// Seconds the other side has to answer a close frame.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub close_timeout: f64,
    /// Exit with status 1 when a finding of this severity or worse is found.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
}

impl FailOn {
    fn severity(self) -> Severity {
        match self {
            FailOn::Error => Severity::Error,
            FailOn::Warning => Severity::Warning,
            FailOn::Info => Severity::Info,
        }
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// Runs the whole `analyze` pipeline over files and returns the summary and
/// the warnings to print (truncated inputs).
pub fn analyze_files(
    names: &[String],
    settings: Settings,
    limits: Limits,
) -> Result<(Summary, Vec<String>), CaptureError> {
    let readers = names
        .iter()
        .map(|n| FileReader::open(n))
        .collect::<Result<Vec<_>, _>>()?;
    analyze_readers(readers, settings, limits)
}

/// The pipeline over readers already open (files, stdin, or bytes in
/// memory for tests and fuzzing).
pub fn analyze_readers(
    readers: Vec<FileReader>,
    settings: Settings,
    limits: Limits,
) -> Result<(Summary, Vec<String>), CaptureError> {
    let progress = Progress::new(&readers);
    let mut merged = Merged::new(readers);
    let mut analyzer = Analyzer::new(settings, limits);
    let mut n: u64 = 0;
    while merged.advance()? {
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            progress.update(merged.readers());
        }
        let (Some(src), Some(pkt)) = (merged.current_source(), merged.current()) else {
            break;
        };
        let skip = match decode::decode(pkt.linktype, pkt.data) {
            Ok(seg) => {
                analyzer.packet(pkt.ts, &seg);
                continue;
            }
            Err(skip) => {
                // Other packets move the capture's clock too.
                analyzer.note_time(pkt.ts);
                skip
            }
        };
        if let Some(c) = merged.counts_mut(src) {
            c.skipped(skip == Skip::NotTcp);
        }
    }
    progress.done();
    let (connections, stats) = analyzer.finish();
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    for r in merged.into_readers() {
        let st = &r.stats;
        if !st.link_types.is_empty() && !st.link_types.iter().any(|l| decode::link_supported(*l)) {
            let names: Vec<String> = st
                .link_types
                .iter()
                .map(|l| decode::link_name(*l))
                .collect();
            return Err(CaptureError {
                name: r.name.clone(),
                msg: format!("unsupported link type {}", names.join(",")),
            });
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
        let link_types: Vec<String> = st
            .link_types
            .iter()
            .map(|l| decode::link_name(*l))
            .collect();
        sources.push(Source {
            truncated: st.truncated,
            corrupt_records: st.corrupt_records,
            ..source("file", &r.name, &link_types.join(","), &st.counts)
        });
    }
    Ok((
        summary_of(&settings, &limits, sources, connections, &stats),
        warnings,
    ))
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
fn source(kind: &'static str, name: &str, link_type: &str, c: &PacketCounts) -> Source {
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

/// The summary of a run, whatever fed it.
fn summary_of(
    settings: &Settings,
    limits: &Limits,
    sources: Vec<Source>,
    connections: Vec<crate::close::ConnectionReport>,
    stats: &AnalyzerStats,
) -> Summary {
    let analysis = AnalysisStats {
        tcp_segments: stats.tcp_segments,
        tcp_flows: stats.reassembly.flows,
        out_of_order_segments: stats.reassembly.out_of_order_segments,
        retransmitted_segments: stats.reassembly.retransmitted_segments,
        gaps: stats.reassembly.gaps,
        gap_bytes: stats.reassembly.gap_bytes,
    };
    let r = &stats.reassembly;
    let limits_out = LimitsOut {
        max_flows: limits.max_flows as u64,
        max_ooo_per_dir: limits.max_buffered_per_dir as u64,
        max_ooo_total: limits.max_buffered_total as u64,
        peak_flows: r.peak_flows,
        peak_ooo_bytes: r.peak_buffered,
        flows_evicted: r.flows_evicted,
        websocket_flows_evicted: stats.websocket_evicted,
        holes_given_up: r.holes_given_up,
    };
    Summary::new(settings, sources, connections, analysis, limits_out)
}

/// What a run writes for people besides the JSON.
#[derive(Clone, Copy)]
enum Human<'a> {
    /// The tables; `to_stderr` when stdout carries a JSON-lines stream.
    Tables { to_stderr: bool },
    /// `analyze --connection`: timelines instead of the tables, to stderr
    /// when `--json -` holds stdout.
    Timelines(&'a str),
}

/// Writes the summary as the options ask, then decides the exit status.
fn emit(summary: &Summary, out: &OutputArgs, human: Human<'_>) -> io::Result<ExitCode> {
    let stdout = io::stdout();
    let mut so = BufWriter::new(stdout.lock());
    let tables = |so: &mut BufWriter<io::StdoutLock<'_>>| match human {
        Human::Tables { to_stderr: true } => summary.write_tables(&mut io::stderr().lock()),
        Human::Tables { to_stderr: false } => summary.write_tables(so),
        Human::Timelines(t) => so.write_all(t.as_bytes()),
    };
    match out.json.as_deref() {
        Some("-") => {
            if let Human::Timelines(t) = human {
                io::stderr().lock().write_all(t.as_bytes())?;
            }
            summary.write_json(&mut so)?
        }
        Some(path) => {
            let f =
                File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            let mut w = BufWriter::new(f);
            summary.write_json(&mut w)?;
            w.flush()?;
            tables(&mut so)?;
        }
        None => tables(&mut so)?,
    }
    so.flush()?;
    let fail = out
        .fail_on
        .is_some_and(|f| summary.worst().is_some_and(|w| w >= f.severity()));
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn settings_of(out: &OutputArgs) -> Settings {
    Settings {
        close_timeout: Ts::from_secs_f64(out.close_timeout),
    }
}

/// The program.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Analyze(args) => {
            if !args.connection.is_empty()
                && let Err(msg) = timeline::check_inputs(&args.files)
            {
                eprintln!("wsclose: {msg}");
                return ExitCode::from(2);
            }
            let settings = settings_of(&args.output);
            let (summary, warnings) =
                match analyze_files(&args.files, settings, args.limits.limits()) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("wsclose: {e}");
                        return ExitCode::from(2);
                    }
                };
            for w in &warnings {
                eprintln!("wsclose: warning: {w}");
            }
            if args.connection.is_empty() {
                return finish(emit(
                    &summary,
                    &args.output,
                    Human::Tables { to_stderr: false },
                ));
            }
            let limits = args.limits.limits();
            let conns = &summary.connections;
            match timeline::timelines(&args.files, &args.connection, conns, settings, limits) {
                Ok(text) => finish(emit(&summary, &args.output, Human::Timelines(&text))),
                Err(msg) => {
                    eprintln!("wsclose: {msg}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Sniff(args) => match sniff(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("wsclose: {e}");
                ExitCode::from(2)
            }
        },
        Command::Interfaces => match list_interfaces() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsclose: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// `wsclose sniff`: live capture, then the same summary as `analyze`.
fn sniff(args: &SniffArgs) -> Result<ExitCode, CaptureError> {
    let usage = |msg: &str| CaptureError {
        name: "sniff".into(),
        msg: msg.into(),
    };
    if args.jsonl.as_deref() == Some("-") && args.output.json.as_deref() == Some("-") {
        return Err(usage("--jsonl - and --json - cannot both write to stdout"));
    }
    let settings = settings_of(&args.output);
    let limits = args.limits.limits();
    let stop = live::stop_on_signals()?;
    let mut jsonl: Option<Box<dyn Write>> = match args.jsonl.as_deref() {
        None => None,
        Some("-") => Some(Box::new(io::stdout())),
        Some(p) => Some(Box::new(File::create(p).map_err(|e| CaptureError {
            name: p.to_string(),
            msg: e.to_string(),
        })?)),
    };
    let opts = LiveOptions {
        interface: args.interface.clone(),
        filter: args.filter.clone(),
        snaplen: args.snaplen,
        promisc: args.promisc,
        duration: args.duration.map(std::time::Duration::from_secs_f64),
        count: args.count,
        write: args.write.clone(),
    };
    let mut analyzer = Analyzer::new_live(settings, limits);
    let stop_writer = std::sync::Arc::clone(&stop);
    let mut write_lines = move |decided: Vec<crate::analyzer::Decided>| -> io::Result<()> {
        let Some(w) = jsonl.as_mut() else {
            return Ok(());
        };
        let mut put = || -> io::Result<()> {
            for c in &decided {
                // One write per line, so a reader (`tail -f`, jq) never
                // sees half a line.
                let mut line = serde_json::to_vec(c)?;
                line.push(b'\n');
                w.write_all(&line)?;
            }
            if !decided.is_empty() {
                w.flush()?;
            }
            Ok(())
        };
        match put() {
            // `--jsonl - | head`: the reader is gone; stop capturing and
            // finish quietly, like a closed stdout does for `analyze`.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                jsonl = None;
                stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            r => r,
        }
    };
    let stats = live::run(
        &opts,
        &mut analyzer,
        &stop,
        |lt| {
            eprintln!(
                "wsclose: capturing on {} ({lt}), filter {:?}; Ctrl-C to stop",
                opts.interface, opts.filter
            )
        },
        &mut write_lines,
    )?;
    analyzer.tick(live::wall_clock());
    let (connections, astats, rest) = analyzer.finish_live();
    write_lines(rest).map_err(|e| CaptureError {
        name: "--jsonl".into(),
        msg: e.to_string(),
    })?;
    eprintln!(
        "wsclose: {} packets captured, {} received by filter, {} dropped by kernel, {} dropped by interface",
        stats.counts.packets, stats.received, stats.dropped, stats.if_dropped
    );
    let source = Source {
        dropped: Some(stats.dropped + stats.if_dropped),
        kernel: Some(KernelStats {
            received: stats.received,
            dropped: stats.dropped,
            if_dropped: stats.if_dropped,
        }),
        ..source(
            "interface",
            &args.interface,
            &stats.link_type,
            &stats.counts,
        )
    };
    let summary = summary_of(&settings, &limits, vec![source], connections, &astats);
    let to_stderr = args.jsonl.as_deref() == Some("-") && args.output.json.is_none();
    Ok(finish(emit(
        &summary,
        &args.output,
        Human::Tables { to_stderr },
    )))
}

/// `wsclose interfaces`: one line per device, like `tcpdump -D`.
fn list_interfaces() -> Result<(), CaptureError> {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec!["#", "interface", "flags", "addresses", "description"]);
    for (i, d) in live::interfaces()?.iter().enumerate() {
        let mut flags = Vec::new();
        if d.flags.is_up() {
            flags.push("up");
        }
        if d.flags.is_running() {
            flags.push("running");
        }
        if d.flags.is_loopback() {
            flags.push("loopback");
        }
        let addrs: Vec<String> = d.addresses.iter().map(|a| a.addr.to_string()).collect();
        t.add_row(vec![
            (i + 1).to_string(),
            d.name.clone(),
            flags.join(", "),
            addrs.join(", "),
            d.desc.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn finish(r: io::Result<ExitCode>) -> ExitCode {
    match r {
        Ok(c) => c,
        // `wsclose ... | head`: the reader went away, nothing more to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsclose: {e}");
            ExitCode::from(2)
        }
    }
}
