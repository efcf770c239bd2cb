//! Live capture on an interface through libpcap: the live counterpart of
//! [`crate::capture`], feeding the same analyzer.
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
use crate::analyzer::{Analyzer, Decided};
use crate::capture::{CaptureError, PacketCounts};
use crate::decode::{self, Skip};

/// How often the loop wakes up with no packet: the stop and timer latency.
const TICK: Duration = Duration::from_millis(100);

/// Packets handled before the clock is looked at again under load.
const BATCH: usize = 4096;

/// Kernel buffer: large enough not to drop at loopback rates.
const BUFFER_BYTES: i32 = 64 << 20;

/// What to capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
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
pub struct LiveStats {
    pub link_type: String,
    pub counts: PacketCounts,
    /// Packets the kernel delivered to the capture.
    pub received: u64,
    /// Dropped by the kernel (buffer full) and by the interface.
    pub dropped: u64,
    pub if_dropped: u64,
}

/// The current wall-clock time as a capture timestamp.
pub fn wall_clock() -> Ts {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ts(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn live_err(iface: &str, msg: impl Into<String>) -> CaptureError {
    CaptureError {
        name: iface.to_string(),
        msg: msg.into(),
    }
}

/// Turns libpcap's open errors into one line that says what to do.
fn open_error(iface: &str, e: pcap::Error) -> CaptureError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return live_err(
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
        return live_err(
            iface,
            format!(
                "no such interface; available: {} (see `wsclose interfaces`)",
                names.join(", ")
            ),
        );
    }
    live_err(iface, format!("cannot capture: {text}"))
}

/// Lists the capture devices (`wsclose interfaces`).
pub fn interfaces() -> Result<Vec<Device>, CaptureError> {
    Device::list().map_err(|e| live_err("interfaces", e.to_string()))
}

/// Installs the stop flag for SIGINT and SIGTERM. A second signal while
/// the summary is being written ends the process at once.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, CaptureError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| live_err("signals", e.to_string()))?;
    }
    Ok(stop)
}

/// Captures until stopped, feeding `analyzer`; `on_decided` receives the
/// connections decided along the way (for `--jsonl`), promptly.
pub fn run(
    opts: &LiveOptions,
    analyzer: &mut Analyzer,
    stop: &AtomicBool,
    on_ready: impl FnOnce(&str),
    mut on_decided: impl FnMut(Vec<Decided>) -> std::io::Result<()>,
) -> Result<LiveStats, CaptureError> {
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
        .map_err(|e| live_err(iface, format!("bad --filter {:?}: {}", opts.filter, e)))?;
    let mut cap = cap.setnonblock().map_err(|e| open_error(iface, e))?;
    let linktype = Linktype(cap.get_datalink().0);
    let mut stats = LiveStats {
        link_type: decode::link_name(linktype),
        ..LiveStats::default()
    };
    let mut save = match &opts.write {
        Some(p) => Some(
            cap.savefile(p)
                .map_err(|e| live_err(&p.display().to_string(), e.to_string()))?,
        ),
        None => None,
    };
    on_ready(&stats.link_type);

    let fd = cap.as_raw_fd();
    let started = Instant::now();
    let write_err = |e: std::io::Error| live_err("--jsonl", e.to_string());
    'capture: loop {
        if stop.load(Ordering::Relaxed) || opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let mut got = 0;
        while got < BATCH {
            match cap.next_packet() {
                Ok(p) => {
                    got += 1;
                    // time_t and suseconds_t are not i64 on every platform.
                    #[allow(clippy::useless_conversion)]
                    let ts = Ts(i64::from(p.header.ts.tv_sec) * 1_000_000_000
                        + i64::from(p.header.ts.tv_usec) * 1000);
                    if let Some(s) = save.as_mut() {
                        s.write(&p);
                    }
                    stats.counts.record(ts, p.data.len());
                    match decode::decode(linktype, p.data) {
                        Ok(seg) => analyzer.packet(ts, &seg),
                        Err(skip) => {
                            analyzer.note_time(ts);
                            stats.counts.skipped(skip == Skip::NotTcp);
                        }
                    }
                    if opts.count.is_some_and(|c| stats.counts.packets >= c) {
                        break 'capture;
                    }
                }
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => return Err(live_err(iface, format!("capture failed: {e}"))),
            }
        }
        analyzer.tick(wall_clock());
        on_decided(analyzer.take_decided()).map_err(write_err)?;
        if got == 0 {
            if let Some(s) = save.as_mut() {
                let _ = s.flush();
            }
            wait_readable(fd, TICK);
        }
    }
    if let Ok(st) = cap.stats() {
        stats.received = u64::from(st.received);
        stats.dropped = u64::from(st.dropped);
        stats.if_dropped = u64::from(st.if_dropped);
    }
    if let Some(s) = save.as_mut() {
        s.flush().map_err(|e| live_err("--write", e.to_string()))?;
    }
    analyzer.tick(wall_clock());
    on_decided(analyzer.take_decided()).map_err(write_err)?;
    Ok(stats)
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
