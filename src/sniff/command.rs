//! `sniff -- CMD`: the command the capture runs around. One thread owns the
//! child: it reaps it (so a signal never reaches a pid the system reused),
//! passes wsclose's signals on, and stops the capture when the child exits.
//!
//! Signals while the command runs do not cut the capture short: they are
//! the command's to act on, and the capture goes on until it exits, so the
//! report holds everything up to its end.
//! - Ctrl-C reaches the command too (one process group, the terminal's);
//!   if it is still running [`INT_GRACE`] later (a `kill -INT` aimed at
//!   wsclose alone), SIGINT is passed on once.
//! - SIGTERM is passed on (a CI runner's or `kill`'s, aimed at wsclose).
//! - A second signal: SIGTERM to the command, SIGKILL [`TERM_GRACE`] later;
//!   a third: SIGKILL now.
//! - The capture stopping first (`--duration`, `--count`): SIGTERM, then
//!   SIGKILL after [`TERM_GRACE`].

use std::io;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGKILL, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::Error;

/// How long a command has to end on a Ctrl-C before SIGINT is passed on.
const INT_GRACE: Duration = Duration::from_secs(2);

/// How long a command asked to stop with SIGTERM gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// How often the supervisor looks at the child and the signals.
const POLL: Duration = Duration::from_millis(20);

/// The running command.
pub(super) struct Wrapped {
    program: String,
    /// Set by wsclose when the capture stopped first.
    finish: Arc<AtomicBool>,
    supervisor: Option<JoinHandle<ExitStatus>>,
}

impl Wrapped {
    /// Starts `argv` (its stdout on wsclose's stderr when `stdout_to_stderr`);
    /// `stop` is set when it exits.
    pub(super) fn start(
        argv: &[String],
        stdout_to_stderr: bool,
        stop: Arc<AtomicBool>,
    ) -> Result<Wrapped, Error> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| Error::Usage("no command after --".into()))?;
        // Taken before the child starts, so none is lost.
        let signals = Signals::new([SIGINT, SIGTERM]).map_err(Error::Signals)?;
        let child = spawn(program, rest, stdout_to_stderr)?;
        let finish = Arc::new(AtomicBool::new(false));
        let sup = Supervisor {
            child,
            program: program.clone(),
            signals,
            finish: Arc::clone(&finish),
            term_at: None,
            int_at: None,
            killed: false,
            seen: 0,
        };
        let supervisor = std::thread::spawn(move || {
            let status = sup.run();
            stop.store(true, Ordering::SeqCst);
            status
        });
        Ok(Wrapped {
            program: program.clone(),
            finish,
            supervisor: Some(supervisor),
        })
    }

    /// The command's exit status, once it has exited (asked to stop when the
    /// capture stopped first).
    pub(super) fn finish(&mut self) -> ExitStatus {
        let Some(sup) = self.supervisor.take() else {
            return ExitStatus::from_raw(0);
        };
        self.finish.store(true, Ordering::SeqCst);
        // The supervisor only ends with the child, which SIGKILL ends.
        let status = sup.join().unwrap_or_else(|_| ExitStatus::from_raw(1 << 8));
        if !status.success() {
            eprintln!("wsclose: {} {}", self.program, describe(status));
        }
        status
    }
}

impl Drop for Wrapped {
    /// A capture that failed while the command ran does not leave it behind.
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            self.finish();
        }
    }
}

/// "exited with status 3", "was killed by signal 15".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was ended by signal {s}"),
        (None, None) => "ended".to_string(),
    }
}

/// Starts the command with the capture's own descriptors kept from it: the
/// packet socket (a raw socket a setcap'd wsclose holds and the command must
/// not) and the `--write` file would otherwise outlive wsclose in whatever
/// the command leaves running.
fn spawn(program: &str, args: &[String], stdout_to_stderr: bool) -> Result<Child, Error> {
    use std::os::fd::AsFd as _;
    close_on_exec_from(3);
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    crate::allocator::restore_environment(&mut cmd);
    if stdout_to_stderr {
        let err = io::stderr().as_fd().try_clone_to_owned();
        cmd.stdout(Stdio::from(err.map_err(|e| Error::io("stderr", e))?));
    }
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours;
    // it runs in the child between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            // wsclose killed (a CI timeout) takes the command with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| Error::Command {
        program: program.to_string(),
        source,
    })
}

/// Marks every open descriptor from `first` on close-on-exec.
fn close_on_exec_from(first: i32) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if fd < first {
            continue;
        }
        // SAFETY: fcntl(2) on a descriptor number; a closed one (the
        // directory's own) fails with EBADF, which changes nothing.
        #[allow(unsafe_code)]
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// The thread that owns the child.
struct Supervisor {
    child: Child,
    program: String,
    signals: Signals,
    finish: Arc<AtomicBool>,
    /// When SIGTERM went to the child.
    term_at: Option<Instant>,
    /// When the first Ctrl-C came (None once passed on).
    int_at: Option<Instant>,
    killed: bool,
    /// Signals wsclose received.
    seen: u32,
}

impl Supervisor {
    fn run(mut self) -> ExitStatus {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => {}
                Err(_) => return self.child.wait().unwrap_or(ExitStatus::from_raw(1 << 8)),
            }
            let pending: Vec<i32> = self.signals.pending().collect();
            for sig in pending {
                self.on_signal(sig);
            }
            if self.int_at.is_some_and(|t| t.elapsed() >= INT_GRACE) {
                self.int_at = None;
                self.send(SIGINT);
            }
            if self.finish.load(Ordering::SeqCst) && self.term_at.is_none() {
                eprintln!(
                    "wsclose: the capture stopped first; stopping {}",
                    self.program
                );
                self.terminate();
            }
            if self.term_at.is_some_and(|t| t.elapsed() >= TERM_GRACE) {
                self.kill();
            }
            std::thread::sleep(POLL);
        }
    }

    fn on_signal(&mut self, sig: i32) {
        self.seen += 1;
        match self.seen {
            1 if sig == SIGINT => self.int_at = Some(Instant::now()),
            1 | 2 => {
                if self.term_at.is_none() {
                    self.terminate();
                }
            }
            _ => self.kill(),
        }
    }

    fn terminate(&mut self) {
        self.int_at = None;
        self.term_at = Some(Instant::now());
        self.send(SIGTERM);
    }

    fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            self.send(SIGKILL);
        }
    }

    /// Sends `sig` to the child, which this thread has not reaped yet (so
    /// its pid is still its own).
    fn send(&self, sig: i32) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
