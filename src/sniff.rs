//! `wsclose sniff`: a live capture, reported like `analyze` when it stops;
//! connections written as JSON lines the moment they are decided; a status
//! line while a terminal watches; and `-- CMD`, a capture around a command
//! (a CI job's tests), which stops when the command exits.

use std::io::{self, IsTerminal, Write};
use std::process::{ExitCode, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::analyzer::Analyzer;
use crate::cli::{Human, SniffArgs, check_paths, emit, settings_of};
use crate::error::Error;
use crate::live::{self, LiveOptions, Progress};
use crate::pipeline::{source, summary_of};
use crate::report::jsonl::JsonLines;
use crate::report::{Collector, KernelStats, Source};

mod command;
use command::Wrapped;

/// `wsclose sniff`: live capture, then the same summary as `analyze`.
pub(crate) fn sniff(args: &SniffArgs) -> Result<ExitCode, Error> {
    check_paths(&[], &args.output, args.write.as_deref())?;
    let settings = settings_of(&args.output, &args.tls, true)?;
    let limits = args.limits.limits();
    let wrapping = !args.command.is_empty();
    // Without a command, Ctrl-C and SIGTERM stop the capture, and a reader
    // gone from `--jsonl -` too. With one, the capture stops when it exits:
    // signals are the command's (see `command`), and its tests go on
    // whoever reads the JSON lines.
    let stop = if wrapping {
        Arc::new(AtomicBool::new(false))
    } else {
        live::stop_on_signals()?
    };
    let lines_stop = if wrapping {
        Arc::default()
    } else {
        Arc::clone(&stop)
    };
    let mut lines = JsonLines::open(args.output.jsonl.as_deref(), lines_stop)?;
    let opts = live_options(args)?;
    let mut analyzer = Analyzer::new_live(settings.clone(), limits);
    let mut command: Option<Wrapped> = None;
    let ready = |lt: &str| {
        if wrapping {
            // Stdout carrying JSON stays pure JSON: the command's own
            // output goes to stderr then.
            let json_out = args.output.jsonl.as_deref() == Some("-")
                || args.output.json.as_deref() == Some("-");
            command = Some(Wrapped::start(&args.command, json_out, Arc::clone(&stop))?);
        }
        let what = match args.command.first() {
            Some(p) => format!("running {p}"),
            None => "Ctrl-C to stop".to_string(),
        };
        eprintln!(
            "wsclose: capturing on {} ({lt}), filter {:?}; {what}",
            opts.interface, opts.filter
        );
        Ok(())
    };
    // The command's own output owns the terminal while it runs.
    let mut status = StatusLine::new(!wrapping && StatusLine::wanted());
    let mut collector = Collector::default();
    let stats = live::run(&opts, &mut analyzer, &stop, ready, |a, p| {
        collector.take_from(a)?;
        let d = a.take_decided();
        if !d.is_empty() {
            status.clear();
        }
        status.decided += d.len() as u64;
        lines.write(d)?;
        status.show(p);
        Ok(())
    });
    status.clear();
    let stats = stats?;
    let command_status = command.as_mut().map(Wrapped::finish);
    analyzer.tick(live::wall_clock());
    let (astats, rest) = collector.finish_from(analyzer)?;
    lines.write(rest)?;
    eprintln!(
        "wsclose: {} packets captured, {} received by filter, {} dropped by kernel, {} dropped by interface",
        stats.counts.packets, stats.received, stats.dropped, stats.if_dropped
    );
    let sources = vec![live_source(&opts, &stats)];
    let summary = summary_of(&settings, &limits, sources, collector, &astats)?;
    let to_stderr = args.output.jsonl.as_deref() == Some("-");
    let code = emit(&summary, &args.output, Human::Tables { to_stderr })?;
    match command_status.and_then(failed_code) {
        Some(c) => Ok(ExitCode::from(c)),
        None => Ok(code),
    }
}

fn live_options(args: &SniffArgs) -> Result<LiveOptions, Error> {
    Ok(LiveOptions {
        interface: live::resolve_interface(&args.interface)?,
        filter: args.filter.clone(),
        snaplen: args.snaplen,
        promisc: args.promisc,
        duration: args.duration.map(Duration::from_secs_f64),
        count: args.count,
        write: args.write.clone(),
    })
}

/// The summary's `sources` entry of the capture, with the kernel's counts.
fn live_source(opts: &LiveOptions, stats: &live::LiveStats) -> Source {
    Source {
        dropped: Some(stats.dropped + stats.if_dropped),
        kernel: Some(KernelStats {
            received: stats.received,
            dropped: stats.dropped,
            if_dropped: stats.if_dropped,
        }),
        ..source(
            "interface",
            &opts.interface,
            &stats.link_type,
            &stats.counts,
        )
    }
}

/// The exit status a failed command gives wsclose (None when it succeeded):
/// its own, or 128 + the signal that ended it, as the shells say.
fn failed_code(status: ExitStatus) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt as _;
    if status.success() {
        return None;
    }
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    // A status is 1..=255 once it failed; anything else still fails.
    Some(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1))
}

/// One line on stderr, redrawn in place while a terminal watches the capture:
/// packets, open flows, connections decided.
struct StatusLine {
    on: bool,
    shown: bool,
    last: Option<Instant>,
    decided: u64,
}

/// How often the status line is redrawn.
const STATUS_EVERY: Duration = Duration::from_millis(250);

impl StatusLine {
    /// Stderr is a terminal that understands the escape that clears a line.
    fn wanted() -> bool {
        io::stderr().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb")
    }

    fn new(on: bool) -> StatusLine {
        StatusLine {
            on,
            shown: false,
            last: None,
            decided: 0,
        }
    }

    fn show(&mut self, p: Progress) {
        if !self.on || self.last.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let mut e = io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2Kwsclose: {} packets, {} TCP flows tracked, {} connections decided",
            p.packets, p.flows, self.decided
        );
        let _ = e.flush();
    }

    /// Takes the line away, before other output (JSON lines on the same
    /// terminal, the closing messages).
    fn clear(&mut self) {
        if self.shown {
            self.shown = false;
            self.last = None;
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

impl Drop for StatusLine {
    /// An error ends the run on a line of its own.
    fn drop(&mut self) {
        self.clear();
    }
}
