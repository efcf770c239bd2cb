//! The lines of a timeline: the report's findings placed among the events,
//! long runs of data frames collapsed as they come, and the text of each
//! line.

use std::fmt::Write as _;

use super::{Event, Timeline};
use crate::Ts;
use crate::close::{Finding, op_name};
use crate::decode::Endpoint;
use crate::frame::{self, FrameHeader, OP_BINARY, OP_CLOSE, OP_TEXT};
use crate::reassembly::Dir;
pub use crate::report::human::{fmt_duration, fmt_offset};
use crate::upgrade::{Request, Response};

/// Data frames in a row up to which each keeps its own line; more share one.
pub const RUN_MIN: u64 = 3;

impl Timeline<'_> {
    /// The timeline as text: the header, then one line per event.
    pub fn render(&self, out: &mut String) {
        let base = self.base.or(self.span.map(|s| s.0)).unwrap_or_default();
        let r = self.report;
        let _ = writeln!(
            out,
            "Connection {}: {} → {}, {}{}",
            r.id,
            r.client,
            r.server,
            r.close.outcome.name(),
            r.tls.as_deref().map_or(String::new(), tls_summary)
        );
        let _ = writeln!(out, "Display filter: {}", self.display_filter());
        let from = if self.base.is_some() {
            "the upgrade response"
        } else {
            "the first packet"
        };
        let span = self.span.map_or(Ts(0), |(a, b)| b.saturating_sub(a));
        let _ = writeln!(
            out,
            "{} over {}; 0 s is {from}, at {} UTC (epoch {})",
            match self.packets {
                1 => "1 packet".to_string(),
                n => format!("{n} packets"),
            },
            fmt_duration(span),
            utc(base),
            epoch(base),
        );
        out.push('\n');
        lines(
            self.builder.lines(),
            &r.findings,
            base,
            self.client_dir,
            out,
        );
    }

    /// A Wireshark/tshark display filter that selects exactly this
    /// connection's packets.
    pub fn display_filter(&self) -> String {
        let (c, s) = (self.client, self.server);
        let ip = if c.ip.is_ipv4() { "ip" } else { "ipv6" };
        let mut f = if self.crossed {
            let way = |a: Endpoint, b: Endpoint| {
                format!(
                    "({ip}.src=={} && tcp.srcport=={} && {ip}.dst=={} && tcp.dstport=={})",
                    a.ip, a.port, b.ip, b.port
                )
            };
            format!("({} || {})", way(c, s), way(s, c))
        } else {
            format!(
                "{ip}.addr=={} && tcp.port=={} && {ip}.addr=={} && tcp.port=={}",
                c.ip, c.port, s.ip, s.port
            )
        };
        if self.reused
            && let Some((first, last)) = self.span
        {
            let _ = write!(
                f,
                " && frame.time_epoch >= {} && frame.time_epoch <= {}",
                epoch(first),
                epoch(last)
            );
        }
        f
    }
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Event(Event),
    /// More than [`RUN_MIN`] data frames in a row.
    Run(Run),
    /// The report's finding of this index.
    Finding(usize),
}

/// Data frames from one side with nothing else between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub ts: Ts,
    pub last: Ts,
    pub dir: Dir,
    pub count: u64,
    /// Frames by opcode: text, binary, continuation.
    pub ops: [u64; 3],
    pub bytes: u64,
}

impl Run {
    fn new(ts: Ts, dir: Dir) -> Run {
        Run {
            ts,
            last: ts,
            dir,
            count: 0,
            ops: [0; 3],
            bytes: 0,
        }
    }

    fn add(&mut self, ts: Ts, h: &FrameHeader) {
        self.last = self.last.max(ts);
        self.count += 1;
        let i = match h.opcode {
            OP_TEXT => 0,
            OP_BINARY => 1,
            _ => 2,
        };
        self.ops[i] += 1;
        self.bytes = self.bytes.saturating_add(h.payload_len);
    }
}

/// Builds the lines from events in arrival order: places each finding
/// before the first event later than it, and collapses runs of data
/// frames. Holds at most [`RUN_MIN`] lines besides those made.
#[derive(Debug)]
pub struct Builder {
    /// Finding times (`None`: at the end) with their index, by time.
    findings: Vec<(f64, usize)>,
    next: usize,
    lines: Vec<Line>,
    run: Option<Run>,
    /// The current run's frames while it is too short to collapse.
    held: Vec<Line>,
}

impl Builder {
    pub fn new(finding_times: impl Iterator<Item = Option<f64>>) -> Builder {
        let mut findings: Vec<(f64, usize)> = finding_times
            .enumerate()
            .map(|(i, t)| (t.unwrap_or(f64::INFINITY), i))
            .collect();
        findings.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Builder {
            findings,
            next: 0,
            lines: Vec::new(),
            run: None,
            held: Vec::new(),
        }
    }

    /// The next event: the findings earlier than it go first.
    pub fn push(&mut self, e: Event) {
        let t = e.ts().as_secs_f64();
        while let Some(&(ft, i)) = self.findings.get(self.next)
            && ft < t
        {
            self.next += 1;
            self.add(Line::Finding(i));
        }
        self.add(Line::Event(e));
    }

    /// No more events: the findings left, and the last run.
    pub fn finish(&mut self) {
        while let Some(&(_, i)) = self.findings.get(self.next) {
            self.next += 1;
            self.add(Line::Finding(i));
        }
        self.flush();
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    fn add(&mut self, line: Line) {
        if let Line::Event(Event::Frame {
            ts, dir, header, ..
        }) = &line
            && header.is_data()
        {
            if self.run.as_ref().is_none_or(|r| r.dir != *dir) {
                self.flush();
            }
            let run = self.run.get_or_insert_with(|| Run::new(*ts, *dir));
            run.add(*ts, header);
            if run.count <= RUN_MIN {
                self.held.push(line);
            } else {
                self.held.clear();
            }
            return;
        }
        self.flush();
        self.lines.push(line);
    }

    fn flush(&mut self) {
        if let Some(run) = self.run.take() {
            if run.count > RUN_MIN {
                self.lines.push(Line::Run(run));
            } else {
                self.lines.append(&mut self.held);
            }
        }
        self.held.clear();
    }
}

/// Writes the lines, times relative to `base`, `C→S` for frames from the
/// client (its direction `client_dir`).
pub fn lines(lines: &[Line], findings: &[Finding], base: Ts, client_dir: Dir, out: &mut String) {
    let side = |d: Dir| {
        if d == client_dir {
            ("C→S", "client")
        } else {
            ("S→C", "server")
        }
    };
    // A finding's time is in seconds; its line goes by the nearest nanosecond.
    let offset = |l: &Line| match l {
        Line::Event(e) => Some(e.ts().saturating_sub(base)),
        Line::Run(r) => Some(r.ts.saturating_sub(base)),
        Line::Finding(i) => findings
            .get(*i)
            .and_then(|f| f.ts)
            .map(|t| Ts(((t - base.as_secs_f64()) * 1e9).round() as i64)),
    };
    // The time column is as wide as its widest entry.
    let width = lines
        .iter()
        .filter_map(|l| offset(l).map(|t| fmt_offset(t).chars().count()))
        .max()
        .unwrap_or(0);
    for l in lines {
        let (dir, text) = match l {
            Line::Event(e) => (event_dir(e), event_text(e, &side)),
            Line::Run(r) => (Some(r.dir), run_text(r)),
            Line::Finding(i) => match findings.get(*i) {
                Some(f) => (None, finding_text(f)),
                None => continue,
            },
        };
        let time = offset(l).map_or(String::new(), fmt_offset);
        let arrow = dir.map_or("   ", |d| side(d).0);
        let _ = writeln!(out, "  {time:>width$}  {arrow}  {text}");
    }
}

fn event_dir(e: &Event) -> Option<Dir> {
    match e {
        Event::Syn { dir, .. }
        | Event::Request { dir, .. }
        | Event::Response { dir, .. }
        | Event::Frame { dir, .. }
        | Event::Malformed { dir, .. }
        | Event::Gap { dir, .. }
        | Event::Fin { dir, .. }
        | Event::Rst { dir, .. } => Some(*dir),
        Event::Silence { .. } => None,
    }
}

fn event_text(e: &Event, side: &impl Fn(Dir) -> (&'static str, &'static str)) -> String {
    match e {
        Event::Syn { ack: false, .. } => "SYN".into(),
        Event::Syn { ack: true, .. } => "SYN-ACK".into(),
        Event::Request { req, .. } => request_text(req),
        Event::Response { resp, .. } => response_text(resp),
        Event::Frame {
            dir, header, close, ..
        } => frame_text(header, close.as_deref(), side(*dir).1 == "client"),
        Event::Malformed { .. } => {
            "bytes that cannot be a frame: no more frames decoded from this side".into()
        }
        Event::Gap { len, .. } => format!("capture gap: {} missing", bytes(*len)),
        Event::Fin { dir, .. } => format!("FIN from the {}", side(*dir).1),
        Event::Rst { dir, .. } => format!("RST from the {}", side(*dir).1),
        Event::Silence { len, to_end, .. } => format!(
            "{} without traffic{}",
            fmt_duration(*len),
            if *to_end {
                " until the capture ends"
            } else {
                ""
            }
        ),
    }
}

fn request_text(r: &Request) -> String {
    let mut s = format!("upgrade request: {} {}", r.method, r.path);
    if let Some(h) = &r.host {
        let _ = write!(s, ", Host: {h}");
    }
    s
}

fn response_text(r: &Response) -> String {
    let reason = match r.status {
        101 => " Switching Protocols",
        200 => " OK",
        301 => " Moved Permanently",
        302 => " Found",
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        426 => " Upgrade Required",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        _ => "",
    };
    let mut s = format!("upgrade response: {}{reason}", r.status);
    if let Some(p) = &r.protocol {
        let _ = write!(s, ", subprotocol: {p}");
    }
    if !r.extensions.is_empty() {
        let _ = write!(s, ", extensions: {}", r.extensions.join(", "));
    }
    s
}

fn bytes(n: u64) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

fn frame_text(h: &FrameHeader, close: Option<&[u8]>, from_client: bool) -> String {
    let mut s = format!("{}, {}", op_name(h.opcode), bytes(h.payload_len));
    if h.opcode == OP_CLOSE {
        let p = frame::parse_close_payload(close.unwrap_or_default());
        match p.code {
            Some(c) => {
                let _ = write!(s, ": {}", frame::CloseCode(c).describe());
            }
            None => s.push_str(": no code"),
        }
        if let Some(r) = p.reason.filter(|r| !r.is_empty()) {
            let _ = write!(s, " {r:?}");
        }
        if !p.reason_valid_utf8 {
            s.push_str(" (not valid UTF-8)");
        }
    }
    if !h.fin {
        s.push_str(", FIN clear");
    }
    for (bit, name) in [(0b100, "RSV1"), (0b010, "RSV2"), (0b001, "RSV3")] {
        if h.rsv & bit != 0 {
            let _ = write!(s, ", {name}");
        }
    }
    match (from_client, h.mask.is_some()) {
        (true, false) => s.push_str(", unmasked"),
        (false, true) => s.push_str(", masked"),
        _ => {}
    }
    s
}

fn run_text(r: &Run) -> String {
    let ops: Vec<String> = ["text", "binary", "continuation"]
        .iter()
        .zip(r.ops)
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{n} {op}"))
        .collect();
    format!(
        "{} data frames ({}), {} in all, over {}",
        r.count,
        ops.join(" + "),
        bytes(r.bytes),
        fmt_duration(r.last.saturating_sub(r.ts))
    )
}

fn finding_text(f: &Finding) -> String {
    let side = f.side.map_or(String::new(), |s| format!(" ({})", s.name()));
    format!(
        "[{}] {}{side}: {}",
        f.severity.name(),
        f.kind.name(),
        f.message
    )
}

/// The fraction of a second: 6 digits, 9 when the nanoseconds are used.
fn fraction(nanos: i64) -> String {
    if nanos % 1000 == 0 {
        format!("{:06}", nanos / 1000)
    } else {
        format!("{nanos:09}")
    }
}

/// Seconds since the epoch, exact: `1795301521.278073`.
pub fn epoch(t: Ts) -> String {
    let (secs, nanos) = (t.0.div_euclid(1_000_000_000), t.0.rem_euclid(1_000_000_000));
    format!("{secs}.{}", fraction(nanos))
}

/// UTC date and time: `2026-11-22 17:32:01.278073`.
pub fn utc(t: Ts) -> String {
    let (year, month, day, sod, nanos) = t.utc_parts();
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        fraction(nanos)
    )
}

/// ", over TLS 1.3 (TLS_AES_128_GCM_SHA256, SNI chat.example.com),
/// decrypted" for a wss connection.
pub fn tls_summary(t: &crate::close::TlsReport) -> String {
    let mut what = vec![];
    if let Some(c) = &t.cipher {
        what.push(c.to_string());
    }
    if let Some(sni) = &t.sni {
        what.push(format!("SNI {sni}"));
    }
    let detail = if what.is_empty() {
        String::new()
    } else {
        format!(" ({})", what.join(", "))
    };
    let state = match &t.not_decrypted_reason {
        None => "decrypted".to_string(),
        Some(r) => format!("not decrypted: {r}"),
    };
    format!(
        ", over {}{detail}, {state}",
        t.version.as_deref().unwrap_or("TLS")
    )
}
