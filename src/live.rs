//! Live capture on an interface through libpcap: the live counterpart of
//! [`crate::capture`], feeding the same analyzer through the same
//! per-packet step ([`crate::pipeline::feed`]) as files.
//!
//! The handle is non-blocking and polled with a short tick, so the capture
//! stops promptly on Ctrl-C, SIGTERM, `--duration` or `--count` even on an
//! idle interface (where libpcap's own read timeout does not fire), and so
//! close deadlines fire on wall-clock time while the capture runs.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap::{Capture, Device};
use pcap_parser::Linktype;

use crate::Ts;
use crate::analyzer::Analyzer;
use crate::capture::{Packet, PacketCounts};
use crate::decode;
use crate::error::Error;
use crate::pipeline;

/// How often the loop wakes up with no packet: the stop and timer latency.
const TICK: Duration = Duration::from_millis(100);

/// Packets handled before the clock is looked at again under load.
const BATCH: usize = 4096;

/// Kernel buffer: large enough not to drop at loopback rates.
const BUFFER_BYTES: i32 = 64 << 20;

/// What to capture.
#[derive(Debug, Clone)]
pub(crate) struct LiveOptions {
    pub interface: String,
    pub filter: String,
    pub snaplen: i32,
    pub promisc: bool,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Also save the raw packets here (pcap), like `tcpdump -w`.
    pub write: Option<PathBuf>,
}

/// What the capture saw, for the summary's `sources` entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveStats {
    pub link_type: String,
    pub counts: PacketCounts,
    /// Packets the kernel delivered to the capture.
    pub received: u64,
    /// Dropped by the kernel (buffer full) and by the interface.
    pub dropped: u64,
    pub if_dropped: u64,
}

/// The current wall-clock time as a capture timestamp.
pub(crate) fn wall_clock() -> Ts {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ts(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Turns libpcap's open errors into one line that says what to do.
fn open_error(iface: &str, e: pcap::Error) -> Error {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return Error::device(
            iface,
            format!(
                "no permission to capture ({text}): run as root, or give the binary the capability: sudo setcap cap_net_raw,cap_net_admin=eip \"$(command -v wsclose)\""
            ),
        );
    }
    if lower.contains("no such device") || lower.contains("doesn't exist") {
        let names: Vec<String> = Device::list()
            .map(|l| l.into_iter().map(|d| d.name).collect())
            .unwrap_or_default();
        return Error::device(
            iface,
            format!(
                "no such interface; available: {} (see `wsclose interfaces`)",
                names.join(", ")
            ),
        );
    }
    Error::device(iface, format!("cannot capture: {text}"))
}

/// Lists the capture devices (`wsclose interfaces`).
pub(crate) fn interfaces() -> Result<Vec<Device>, Error> {
    Device::list().map_err(|e| Error::device("interfaces", e.to_string()))
}

/// An interface by name, or by the number `wsclose interfaces` prints
/// (as tcpdump's `-i N` takes the numbers of `-D`).
pub(crate) fn resolve_interface(name: &str) -> Result<String, Error> {
    let Ok(n) = name.parse::<usize>() else {
        return Ok(name.to_string());
    };
    let all = interfaces()?;
    n.checked_sub(1)
        .and_then(|i| all.get(i))
        .map(|d| d.name.clone())
        .ok_or_else(|| {
            Error::device(
                name,
                format!(
                    "no interface number {n} (wsclose interfaces lists {})",
                    all.len()
                ),
            )
        })
}

/// Installs the stop flag for SIGINT and SIGTERM. A second signal while
/// the summary is being written ends the process at once.
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(Error::Signals)?;
    }
    Ok(stop)
}

/// A capture handle, open, filtered and non-blocking.
type Handle = Capture<pcap::Active>;

/// Opens the interface as `opts` say: the filter set, non-blocking.
fn open(opts: &LiveOptions) -> Result<Handle, Error> {
    let iface = opts.interface.as_str();
    let inactive = Capture::from_device(iface).map_err(|e| open_error(iface, e))?;
    let mut cap = inactive
        // Not immediate mode: with it libpcap falls back to TPACKET_V2,
        // whose ring slots are snaplen-sized (a 64 MB buffer holds ~250
        // packets) and dropped packets at 75k packets/s on lo here. Buffered
        // mode (TPACKET_V3) dropped none at tcpreplay's top speed; packets
        // then wait at most the block timeout (the tick) before delivery.
        .immediate_mode(false)
        .snaplen(opts.snaplen)
        .promisc(opts.promisc)
        .buffer_size(BUFFER_BYTES)
        .timeout(TICK.as_millis() as i32)
        .open()
        .map_err(|e| open_error(iface, e))?;
    cap.filter(&opts.filter, true)
        .map_err(|e| Error::device(iface, format!("bad --filter {:?}: {}", opts.filter, e)))?;
    cap.setnonblock().map_err(|e| open_error(iface, e))
}

/// Where the capture stands while it runs.
struct Run<'a> {
    opts: &'a LiveOptions,
    linktype: Linktype,
    save: Option<pcap::Savefile>,
    stats: LiveStats,
}

impl Run<'_> {
    /// Handles the packets libpcap has ready, at most [`BATCH`]: how many
    /// there were, and whether to stop: `--count` is reached, or (on stop)
    /// a packet came after `until`, which is left out.
    fn batch(
        &mut self,
        cap: &mut Handle,
        analyzer: &mut Analyzer,
        until: Option<Ts>,
    ) -> Result<(usize, bool), Error> {
        let mut got = 0;
        while got < BATCH {
            match cap.next_packet() {
                Ok(p) => {
                    got += 1;
                    // time_t and suseconds_t are not i64 on every platform.
                    #[allow(clippy::useless_conversion)]
                    let ts = Ts(i64::from(p.header.ts.tv_sec) * 1_000_000_000
                        + i64::from(p.header.ts.tv_usec) * 1000);
                    if until.is_some_and(|u| ts > u) {
                        return Ok((got, true));
                    }
                    if let Some(s) = self.save.as_mut() {
                        s.write(&p);
                    }
                    let counts = &mut self.stats.counts;
                    counts.record(ts, p.data.len());
                    let pkt = Packet {
                        ts,
                        linktype: self.linktype,
                        data: p.data,
                    };
                    pipeline::feed(analyzer, pkt, counts);
                    if self.opts.count.is_some_and(|c| counts.packets >= c) {
                        return Ok((got, true));
                    }
                }
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => {
                    let why = format!("capture failed: {e}");
                    return Err(Error::device(&self.opts.interface, why));
                }
            }
        }
        Ok((got, false))
    }

    /// The capture stopped: the kernel's counts, the saved file flushed.
    fn finish(mut self, cap: &mut Handle) -> Result<LiveStats, Error> {
        if let Ok(st) = cap.stats() {
            self.stats.received = u64::from(st.received);
            self.stats.dropped = u64::from(st.dropped);
            self.stats.if_dropped = u64::from(st.if_dropped);
        }
        if let (Some(s), Some(path)) = (self.save.as_mut(), &self.opts.write) {
            s.flush()
                .map_err(|e| Error::io(path.display().to_string(), io_error(e)))?;
        }
        Ok(self.stats)
    }
}

/// On stop, the packets captured before it: libpcap hands a block of the
/// kernel's ring over only when it is full or its timeout (a tick) passed,
/// so the last packets wait up to a tick, and under load a backlog waits
/// behind them. Reads until a packet stamped after the stop comes (traffic
/// that goes on does not hold the stop up) or a tick and a half went by
/// with nothing new; [`DRAIN_MAX`] at most. (A stop right after the traffic
/// lost up to all of its packets before.)
fn drain(run: &mut Run, cap: &mut Handle, analyzer: &mut Analyzer, fd: i32) -> Result<(), Error> {
    let stopped = Instant::now();
    let until = wall_clock();
    let mut quiet_since = stopped;
    while stopped.elapsed() < DRAIN_MAX {
        let (got, done) = run.batch(cap, analyzer, Some(until))?;
        if done {
            break;
        }
        if got > 0 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > TICK + TICK / 2 {
            break;
        } else {
            wait_readable(fd, TICK / 4);
        }
    }
    Ok(())
}

/// The longest drain on stop (a backlog of seconds under load).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How far the capture got, after each batch of packets (for a status line).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    pub packets: u64,
    /// TCP flows tracked now.
    pub flows: usize,
}

/// Captures until stopped, feeding `analyzer`. `on_ready` runs once the
/// capture sees packets (its error ends the capture); `on_batch` runs after
/// every batch of packets, to take the connections decided along the way
/// (for `--jsonl`, promptly) and those over (for the summary).
pub(crate) fn run(
    opts: &LiveOptions,
    analyzer: &mut Analyzer,
    stop: &AtomicBool,
    on_ready: impl FnOnce(&str) -> Result<(), Error>,
    mut on_batch: impl FnMut(&mut Analyzer, Progress) -> Result<(), Error>,
) -> Result<LiveStats, Error> {
    let mut cap = open(opts)?;
    let linktype = Linktype(cap.get_datalink().0);
    let save = match &opts.write {
        Some(p) => Some(
            cap.savefile(p)
                .map_err(|e| Error::io(p.display().to_string(), io_error(e)))?,
        ),
        None => None,
    };
    let mut run = Run {
        opts,
        linktype,
        save,
        stats: LiveStats {
            link_type: decode::link_name(linktype),
            ..LiveStats::default()
        },
    };
    on_ready(&run.stats.link_type)?;
    let fd = cap.as_raw_fd();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && opts.duration.is_none_or(|d| started.elapsed() < d) {
        // A key log written while the capture runs (a browser's, a test's):
        // what was appended, read before every batch of packets, which may
        // hold a whole short connection that needs it (a stat and a read of
        // the new bytes).
        if let Ok(mut keys) = analyzer.settings().keys.write() {
            let _ = keys.reload();
        }
        let (got, done) = run.batch(&mut cap, analyzer, None)?;
        if done {
            break;
        }
        analyzer.tick(wall_clock());
        on_batch(analyzer, progress_of(&run.stats, analyzer))?;
        if got == 0 {
            if let Some(s) = run.save.as_mut() {
                let _ = s.flush();
            }
            wait_readable(fd, TICK);
        }
    }
    drain(&mut run, &mut cap, analyzer, fd)?;
    let stats = run.finish(&mut cap)?;
    analyzer.tick(wall_clock());
    on_batch(analyzer, progress_of(&stats, analyzer))?;
    Ok(stats)
}

fn progress_of(stats: &LiveStats, analyzer: &Analyzer) -> Progress {
    Progress {
        packets: stats.counts.packets,
        flows: analyzer.open_flows(),
    }
}

/// libpcap's error as an I/O error, for a message with the file's path.
fn io_error(e: pcap::Error) -> std::io::Error {
    match e {
        pcap::Error::IoError(kind) => kind.into(),
        e => std::io::Error::other(e.to_string()),
    }
}

/// Waits until the capture has packets or `tick` passed (or a signal came).
fn wait_readable(fd: i32, tick: Duration) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    #[allow(unsafe_code)]
    unsafe {
        libc::poll(&mut p, 1, tick.as_millis() as i32);
    }
}
