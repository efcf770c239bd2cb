//! `wsclose sniff`: a live capture, reported like `analyze` when it stops;
//! connections written as JSON lines the moment they are decided; a status
//! line while a terminal watches; and `-- CMD`, a capture around a command
//! (a CI job's tests), which stops when the command exits.

use std::io::{self, IsTerminal, Write};
use std::process::{ExitCode, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::analyzer::Analyzer;
use crate::cli::{Human, SniffArgs, check_paths, emit, settings_of};
use crate::error::Error;
use crate::live::{self, LiveOptions, Progress};
use crate::pipeline::{source, summary_of};
use crate::report::jsonl::JsonLines;
use crate::report::{KernelStats, Source};

/// `wsclose sniff`: live capture, then the same summary as `analyze`.
pub(crate) fn sniff(args: &SniffArgs) -> Result<ExitCode, Error> {
    check_paths(&[], &args.output)?;
    let settings = settings_of(&args.output, &args.tls, true)?;
    let limits = args.limits.limits();
    let stop = live::stop_on_signals()?;
    let mut lines = JsonLines::open(args.output.jsonl.as_deref(), Arc::clone(&stop))?;
    let opts = LiveOptions {
        interface: live::resolve_interface(&args.interface)?,
        filter: args.filter.clone(),
        snaplen: args.snaplen,
        promisc: args.promisc,
        duration: args.duration.map(Duration::from_secs_f64),
        count: args.count,
        write: args.write.clone(),
    };
    let mut analyzer = Analyzer::new_live(settings.clone(), limits);
    let mut command: Option<Wrapped> = None;
    let ready = |lt: &str| {
        let what = match args.command.first() {
            Some(p) => format!("running {p}"),
            None => "Ctrl-C to stop".to_string(),
        };
        eprintln!(
            "wsclose: capturing on {} ({lt}), filter {:?}; {what}",
            opts.interface, opts.filter
        );
        if !args.command.is_empty() {
            // Stdout carrying JSON stays pure JSON: the command's own
            // output goes to stderr then.
            let json_out = args.output.jsonl.as_deref() == Some("-")
                || args.output.json.as_deref() == Some("-");
            command = Some(Wrapped::start(&args.command, json_out, Arc::clone(&stop))?);
        }
        Ok(())
    };
    // The command's own output owns the terminal while it runs.
    let mut status = StatusLine::new(args.command.is_empty() && io::stderr().is_terminal());
    let stats = live::run(&opts, &mut analyzer, &stop, ready, |d, p| {
        if !d.is_empty() {
            status.clear();
        }
        status.decided += d.len() as u64;
        lines.write(d)?;
        status.show(p);
        Ok(())
    })?;
    status.clear();
    let command_status = command.as_mut().map(Wrapped::finish);
    analyzer.tick(live::wall_clock());
    let (connections, astats, rest) = analyzer.finish_live();
    lines.write(rest)?;
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
            &opts.interface,
            &stats.link_type,
            &stats.counts,
        )
    };
    let summary = summary_of(&settings, &limits, vec![source], connections, &astats);
    let to_stderr = args.output.jsonl.as_deref() == Some("-");
    let code = emit(&summary, &args.output, Human::Tables { to_stderr })?;
    match command_status.and_then(failed_code) {
        Some(c) => Ok(ExitCode::from(c)),
        None => Ok(code),
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

/// `-- CMD`: the command the capture runs around. A thread waits for it
/// and stops the capture the moment it exits.
struct Wrapped {
    program: String,
    pid: libc::pid_t,
    /// Set once the command has exited (and been reaped).
    exited: Arc<AtomicBool>,
    waiter: Option<JoinHandle<io::Result<ExitStatus>>>,
}

/// How long a command stopped by SIGTERM (the capture ended first) gets
/// before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

impl Wrapped {
    fn start(
        argv: &[String],
        stdout_to_stderr: bool,
        stop: Arc<AtomicBool>,
    ) -> Result<Wrapped, Error> {
        use std::os::fd::AsFd as _;
        let program = argv.first().cloned().unwrap_or_default();
        let mut cmd = std::process::Command::new(&program);
        cmd.args(&argv[1..]);
        if stdout_to_stderr {
            let err = io::stderr().as_fd().try_clone_to_owned();
            let err = err.map_err(|e| Error::io("stderr", e))?;
            cmd.stdout(err);
        }
        let mut child = cmd.spawn().map_err(|source| Error::Command {
            program: program.clone(),
            source,
        })?;
        let pid = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
        let exited = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&exited);
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            flag.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            status
        });
        Ok(Wrapped {
            program,
            pid,
            exited,
            waiter: Some(waiter),
        })
    }

    /// The command's exit status. When the capture stopped first (a signal,
    /// `--duration`, `--count`), the command is stopped with SIGTERM, then
    /// SIGKILL after [`TERM_GRACE`].
    fn finish(&mut self) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt as _;
        let Some(waiter) = self.waiter.take() else {
            return ExitStatus::from_raw(0);
        };
        if !self.exited.load(Ordering::SeqCst) {
            eprintln!(
                "wsclose: the capture stopped first; stopping {}",
                self.program
            );
            self.signal(libc::SIGTERM);
            let asked = Instant::now();
            while !waiter.is_finished() && asked.elapsed() < TERM_GRACE {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !waiter.is_finished() {
                self.signal(libc::SIGKILL);
            }
        }
        match waiter.join() {
            Ok(Ok(status)) => status,
            // The wait itself failed, or its thread panicked: not a success.
            _ => ExitStatus::from_raw(1 << 8),
        }
    }

    /// Sends `sig` to the command while it has not been reaped (so its pid
    /// is still its own).
    fn signal(&self, sig: libc::c_int) {
        if self.exited.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: kill(2) with a pid and a signal number has no memory
        // effects; the pid is our unreaped child's.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid, sig);
        }
    }
}

impl Drop for Wrapped {
    /// A capture that failed while the command ran does not leave it behind.
    fn drop(&mut self) {
        if self.waiter.is_some() {
            self.finish();
        }
    }
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
