//! The command line (see the contract's "Command line"): argument parsing,
//! the three commands, and where their output goes. The analysis itself is
//! in [`crate::pipeline`]; errors go back to `main` as [`Error`].

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use clap::{Parser, Subcommand, ValueEnum};

use crate::Ts;
use crate::close::{Settings, Severity};
use crate::error::Error;
use crate::live;
use crate::pipeline::{Hooks, OnDecided, analyze_files_with, readable_again};
use crate::reassembly::Limits;
use crate::report::jsonl::JsonLines;
use crate::report::{ColorChoice, Summary, TableOptions};
use crate::timeline;
use crate::tls::KeyLog;

/// The pipeline over readers already open, where the fuzz target and the
/// fuzz regression tests have always found it.
pub use crate::pipeline::analyze_readers;

#[derive(Debug, Parser)]
#[command(
    name = "wsclose",
    version,
    about = "Why did my WebSocket disconnect? Follows every WebSocket closing handshake in a packet capture."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Analyse capture files (pcap or pcapng; `-` reads stdin). Several files
    /// are one capture, merged in timestamp order.
    Analyze(AnalyzeArgs),
    /// Capture live on an interface and analyse as packets arrive; stops at
    /// --duration, --count, Ctrl-C or SIGTERM, then reports like `analyze`.
    Sniff(SniffArgs),
    /// List the interfaces that can be captured on (like `tcpdump -D`).
    Interfaces,
    /// Print a shell completion script: `wsclose completions bash >
    /// /etc/bash_completion.d/wsclose` (zsh, fish, elvish, powershell too).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `wsclose man > wsclose.1`.
    Man,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SniffArgs {
    /// Interface to capture on (`any` for all; see `wsclose interfaces`).
    #[arg(short, long, value_name = "NAME")]
    pub interface: String,
    /// BPF capture filter, as for tcpdump.
    #[arg(short, long, value_name = "BPF", default_value = "tcp")]
    pub filter: String,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "PACKETS")]
    pub count: Option<u64>,
    /// Also save the raw packets to PATH as a pcap file (like tcpdump -w).
    #[arg(short, long, value_name = "PATH")]
    pub write: Option<std::path::PathBuf>,
    /// Bytes captured per packet (1 to 262144; less cuts payloads, which the
    /// report then says).
    #[arg(short, long, value_name = "BYTES", default_value_t = 262_144,
          value_parser = clap::value_parser!(i32).range(1..=262_144),
          allow_negative_numbers = true)]
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    /// A command to run while capturing (after `--`): it starts once the
    /// capture is ready, and the capture stops when it exits. wsclose then
    /// exits with the command's status if it failed, else as --fail-on says.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// wss: keys to decrypt with, and ports to take as TLS that may carry
/// WebSocket.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TlsArgs {
    /// A key log in the NSS format SSLKEYLOGFILE writes, to decrypt wss
    /// connections with (repeatable). `sniff` reads it again as it grows.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<std::path::PathBuf>,
    /// Connections on this port are TLS that may carry WebSocket, whatever
    /// their ClientHello offers (repeatable).
    #[arg(long, value_name = "PORT")]
    pub tls_port: Vec<u16>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// Capture files, `-` for stdin.
    #[arg(required_unless_present = "read", value_name = "FILE")]
    pub files: Vec<String>,
    /// A capture file, as tcpdump's and tshark's `-r` (repeatable).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<String>,
    /// Print the life of connection ID (the `#` of the tables) instead of
    /// the tables: its frames, silences, FIN/RST and findings in time order,
    /// and a display filter for Wireshark. Repeatable; files only (the
    /// capture is read twice).
    #[arg(long, value_name = "ID")]
    pub connection: Vec<u64>,
    /// Analysis threads: with N above 1 packets are shared out by
    /// connection among N flow tables, one on the reading thread, and the
    /// compact JSON's connections encoded by N threads, with the same
    /// output as one thread (see the README). Default: one per core
    /// (at most 8) for files, 1 for a pipe and with --jsonl (which takes no
    /// other).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Memory caps: memory stays bounded by these, whatever the capture holds.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// TCP flows tracked at once; past it the least recently active are
    /// evicted (and counted in the summary's `limits`).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_flows,
          value_parser = parse_cap, allow_negative_numbers = true)]
    pub max_flows: usize,
    /// Out-of-order bytes buffered per TCP direction before a hole is given up.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffered_per_dir,
          value_parser = parse_cap, allow_negative_numbers = true)]
    pub max_ooo_per_dir: usize,
    /// Every byte buffered across all flows (out-of-order segments at their
    /// real cost, partial HTTP heads, close payloads being read).
    #[arg(long, alias = "max-ooo-total", value_name = "BYTES",
          default_value_t = Limits::default().max_buffered_total,
          value_parser = parse_cap, allow_negative_numbers = true)]
    pub max_buffered: usize,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_flows: self.max_flows,
            max_buffered_per_dir: self.max_ooo_per_dir,
            max_buffered_total: self.max_buffered,
            ..Limits::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct OutputArgs {
    /// Write the JSON summary to PATH (`-`, or no PATH: stdout, instead of
    /// the tables).
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<String>,
    /// Write each connection as one JSON line as soon as it is decided
    /// (`-`: stdout; the tables then go to stderr).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<String>,
    /// Indent the JSON summary (it is written compact, about 60 % of the
    /// indented size; `jq .` indents it too).
    #[arg(long)]
    pub pretty: bool,
    /// Also write a self-contained HTML report to PATH (timeline,
    /// histograms, diagnoses, a table of connections).
    #[arg(long, value_name = "PATH")]
    pub html: Option<String>,
    /// Seconds the other side has to answer a close frame.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs,
          allow_negative_numbers = true)]
    pub close_timeout: f64,
    /// Exit with status 1 when a finding of this severity or worse is found.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
    /// Exit with status 1 when fewer WebSocket connections than this were
    /// found (a CI job whose capture saw nothing has not tested anything).
    #[arg(long, value_name = "N")]
    pub min_connections: Option<u64>,
    /// Colour outcomes and severities in the tables: `auto` when the output
    /// is a terminal and NO_COLOR is not set.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    /// Dates and times in UTC rather than local time.
    #[arg(long)]
    pub utc: bool,
    /// List every connection, even the clean ones past 50 connections.
    #[arg(long)]
    pub all: bool,
}

impl OutputArgs {
    /// How the tables are laid out, for stdout (or stderr).
    fn table_options(&self, stderr: bool) -> TableOptions {
        TableOptions::detect(stderr, self.color, self.utc, self.all)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FailOn {
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

/// Seconds: a finite number, 0 or more (negative numbers reach here, to be
/// refused with the flag's name, rather than taken for options).
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// A memory cap: 1 or more. A cap of 0 would track no flow or buffer no
/// byte, which is no analysis at all, so it is refused rather than
/// quietly raised.
fn parse_cap(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("{s:?} is not a whole number of 1 or more")),
    }
}

/// What a run writes for people besides the JSON.
#[derive(Clone, Copy)]
pub(crate) enum Human<'a> {
    /// The tables; `to_stderr` when stdout carries a JSON-lines stream.
    Tables { to_stderr: bool },
    /// `analyze --connection`: timelines instead of the tables, to stderr
    /// when `--json -` holds stdout.
    Timelines(&'a str),
}

/// Writes the summary as the options ask, then decides the exit status.
pub(crate) fn emit(
    summary: &Summary,
    out: &OutputArgs,
    human: Human<'_>,
) -> Result<ExitCode, Error> {
    if let Some(hint) = summary.tls_hint() {
        eprintln!("wsclose: {hint}");
    }
    let stdout = io::stdout();
    let mut so = BufWriter::new(stdout.lock());
    let to_stdout = |e| Error::io("stdout", e);
    let tables = |so: &mut BufWriter<io::StdoutLock<'_>>| match human {
        Human::Tables { to_stderr: true } => summary
            .write_tables_with(&mut io::stderr().lock(), &out.table_options(true))
            .map_err(|e| Error::io("stderr", e)),
        Human::Tables { to_stderr: false } => summary
            .write_tables_with(so, &out.table_options(false))
            .map_err(to_stdout),
        Human::Timelines(t) => so.write_all(t.as_bytes()).map_err(to_stdout),
    };
    if let Some(path) = out.html.as_deref() {
        summary.write_html_file(path)?;
    }
    match out.json.as_deref() {
        Some("-") => {
            if let Human::Timelines(t) = human {
                io::stderr()
                    .lock()
                    .write_all(t.as_bytes())
                    .map_err(|e| Error::io("stderr", e))?;
            }
            summary.write_json(&mut so, out.pretty).map_err(to_stdout)?
        }
        Some(path) => {
            let json_err = |e| Error::io(path, e);
            let mut w = BufWriter::new(File::create(path).map_err(json_err)?);
            summary.write_json(&mut w, out.pretty).map_err(json_err)?;
            w.flush().map_err(json_err)?;
            tables(&mut so)?;
        }
        None => tables(&mut so)?,
    }
    so.flush().map_err(to_stdout)?;
    let too_few = out
        .min_connections
        .is_some_and(|n| summary.totals.connections < n);
    let fail = too_few
        || out
            .fail_on
            .is_some_and(|f| summary.worst().is_some_and(|w| w >= f.severity()));
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The analysis settings; key logs are read now (an unreadable one, or one
/// with no valid line, is an error naming it). `follow`: a live capture
/// reads them again as they grow, and may start before they have a line.
pub(crate) fn settings_of(
    out: &OutputArgs,
    tls: &TlsArgs,
    follow: bool,
) -> Result<Settings, Error> {
    let mut keys = KeyLog::new();
    for path in &tls.keylog {
        if follow {
            keys.follow(path)?;
        } else {
            keys.load(path)?;
        }
    }
    Ok(Settings {
        close_timeout: Ts::from_secs_f64(out.close_timeout),
        tls_ports: tls.tls_port.clone(),
        keys: Arc::new(RwLock::new(keys)),
    })
}

/// The program: parses the command line and runs the command. Whatever
/// goes wrong comes back as the one [`Error`], for `main` to print.
pub fn run() -> Result<ExitCode, Error> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version: clap prints them, on stdout.
        Err(e) if !e.use_stderr() => {
            e.print().map_err(|e| Error::io("stdout", e))?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    match cli.command {
        Command::Analyze(args) => analyze(&args),
        Command::Sniff(args) => crate::sniff::sniff(&args),
        Command::Interfaces => list_interfaces(),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "wsclose", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut io::stdout())
                .map_err(|e| Error::io("stdout", e))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `path` is an existing capture (pcap, pcapng, or compressed).
fn is_capture(path: &Path) -> bool {
    use std::io::Read as _;
    const MAGICS: [&[u8]; 7] = [
        &[0xd4, 0xc3, 0xb2, 0xa1],
        &[0xa1, 0xb2, 0xc3, 0xd4],
        &[0x4d, 0x3c, 0xb2, 0xa1],
        &[0xa1, 0xb2, 0x3c, 0x4d],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        &[0x1f, 0x8b],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    // Only a regular file can be a capture to protect: opening a pipe or a
    // terminal (`--json /dev/stdout`) to read it would block.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    MAGICS.iter().any(|m| n >= m.len() && head.starts_with(m))
}

/// No traps: an output that would overwrite an input, or an input given
/// twice (its packets would count twice), is a usage error.
pub(crate) fn check_paths(
    files: &[String],
    out: &OutputArgs,
    write: Option<&Path>,
) -> Result<(), Error> {
    use crate::report::html::same_file;
    if out.jsonl.as_deref() == Some("-") && out.json.as_deref() == Some("-") {
        return Err(Error::Usage(
            "--jsonl - and --json - cannot both write to stdout".into(),
        ));
    }
    let outputs = [
        ("--json", &out.json),
        ("--html", &out.html),
        ("--jsonl", &out.jsonl),
    ];
    for (flag, path) in outputs {
        let Some(p) = path.as_deref().filter(|p| *p != "-") else {
            continue;
        };
        if files
            .iter()
            .any(|f| f != "-" && same_file(Path::new(p), Path::new(f)))
        {
            return Err(Error::Usage(format!(
                "{flag} {p} is one of the inputs; give another path for the output"
            )));
        }
        // `--json a.pcap b.pcap` takes a.pcap as the JSON's path: never
        // write over a capture.
        if is_capture(Path::new(p)) {
            return Err(Error::Usage(format!(
                "{flag} {p} is a capture file, not written over; give another path (or put {flag} after the files)"
            )));
        }
    }
    // One output over another (`--write x.pcap --json x.pcap` would replace
    // the evidence with the JSON).
    let write = write.map(|w| w.to_string_lossy().into_owned());
    let named: Vec<(&str, &String)> = outputs
        .iter()
        .map(|(f, p)| (*f, *p))
        .chain([("--write", &write)])
        .filter_map(|(f, p)| Some((f, p.as_ref().filter(|p| *p != "-")?)))
        .collect();
    for (i, (fa, a)) in named.iter().enumerate() {
        for (fb, b) in &named[i + 1..] {
            if a == b || same_file(Path::new(a.as_str()), Path::new(b.as_str())) {
                return Err(Error::Usage(format!(
                    "{fa} {a} and {fb} {b} are the same file; give each output its own path"
                )));
            }
        }
    }
    for (i, a) in files.iter().enumerate() {
        let twice = files[i + 1..].iter().any(|b| {
            (a == "-" && b == "-")
                || (a != "-" && b != "-" && same_file(Path::new(a), Path::new(b)))
        });
        if twice {
            return Err(Error::Usage(format!("{a} is given twice")));
        }
    }
    Ok(())
}

/// `wsclose analyze`: the tables (or the timelines of `--connection`) and
/// the JSON summary of the files.
fn analyze(args: &AnalyzeArgs) -> Result<ExitCode, Error> {
    let mut args = args.clone();
    args.files.append(&mut args.read);
    let args = &args;
    if !args.connection.is_empty() {
        timeline::check_inputs(&args.files)?;
        if args.output.jsonl.as_deref() == Some("-") {
            return Err(Error::Usage(
                "--connection prints timelines, --jsonl - JSON lines: not both on stdout".into(),
            ));
        }
    }
    if args.threads.is_some_and(|t| t > 1) && args.output.jsonl.is_some() {
        return Err(Error::Usage(
            "--jsonl reports connections as the capture is read, on one thread: not with --threads"
                .into(),
        ));
    }
    check_paths(&args.files, &args.output, None)?;
    let settings = settings_of(&args.output, &args.tls, false)?;
    let limits = args.limits.limits();
    // Ctrl-C while reading a pipe (`tcpdump -w - | wsclose analyze -`):
    // stop reading and report what was read; a second one quits at once.
    let reads_a_pipe = args
        .files
        .iter()
        .any(|f| f == "-" || std::fs::metadata(f).is_ok_and(|m| !m.is_file()));
    let stop = if reads_a_pipe {
        live::stop_on_signals()?
    } else {
        Arc::default()
    };
    // `--jsonl - | head`: the reader went away, reading stops too.
    let mut lines = JsonLines::open(args.output.jsonl.as_deref(), Arc::clone(&stop))?;
    let mut write_lines = |d| lines.write(d);
    let watch = reads_a_pipe || args.output.jsonl.is_some();
    let threads = threads_for(args);
    let hooks = Hooks {
        spool_memory: None,
        threads,
        stop: watch.then_some(&*stop),
        decided: args
            .output
            .jsonl
            .is_some()
            .then_some(&mut write_lines as OnDecided<'_>),
    };
    let (mut summary, warnings) = analyze_files_with(&args.files, settings.clone(), limits, hooks)?;
    summary.json_threads = threads;
    // `--jsonl - | head`: the reader took what it wanted; a summary of part
    // of the capture would pass for all of it.
    if lines.reader_gone() {
        return Ok(ExitCode::SUCCESS);
    }
    for w in &warnings {
        eprintln!("wsclose: warning: {w}");
    }
    if args.connection.is_empty() {
        let to_stderr = args.output.jsonl.as_deref() == Some("-");
        return emit(&summary, &args.output, Human::Tables { to_stderr });
    }
    let conns = &summary.connections;
    let text = timeline::timelines(&args.files, &args.connection, conns, settings, limits)?;
    emit(&summary, &args.output, Human::Timelines(&text))
}

/// `--threads`, or its default: a thread per core (at most 8) when every
/// input is a file (a run that reaches a memory cap reads them again on
/// one thread, so that the output never depends on the threads), one for a
/// pipe and with `--jsonl`.
fn threads_for(args: &AnalyzeArgs) -> usize {
    if let Some(n) = args.threads {
        return usize::from(n);
    }
    if !readable_again(&args.files) || args.output.jsonl.is_some() {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `wsclose interfaces`: one line per device, like `tcpdump -D`.
fn list_interfaces() -> Result<ExitCode, Error> {
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
    writeln!(io::stdout(), "{t}").map_err(|e| Error::io("stdout", e))?;
    Ok(ExitCode::SUCCESS)
}
