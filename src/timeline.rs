//! The life of one connection (`wsclose analyze FILE --connection ID`).
//!
//! The normal analysis is the first pass: it gives the reports and their
//! ids. A second pass re-reads the files and feeds an [`Analyzer`] only the
//! packets of the selected connections (same 4-tuple, within the report's
//! `first_ts..=last_ts`, since 4-tuples are reused); the sessions it makes
//! for them carry a [`Tracer`] that records what they already see (upgrade
//! request and response, complete frames, gaps, FIN, RST). The driver adds
//! what only packets show (SYNs, silences), the report adds its findings at
//! their times, and runs of data frames are collapsed as they come, so
//! memory follows the lines printed, not the capture.

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::Ts;
use crate::analyzer::Analyzer;
use crate::capture::Merged;
use crate::close::{ConnectionReport, Settings};
use crate::decode::{Endpoint, TcpSegment};
use crate::error::Error;
use crate::frame::{FrameEvent, FrameHeader, OP_CLOSE};
use crate::pipeline;
use crate::reassembly::{Dir, FlowKey, Limits};
use crate::report::Connections;
use crate::upgrade::{Request, Response};

mod render;

use render::Builder;

/// Silences longer than this get their own line and end a run of frames.
const SILENCE: Ts = Ts(1_000_000_000);

/// Something that happened on the connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A SYN (`ack`: a SYN-ACK).
    Syn {
        ts: Ts,
        dir: Dir,
        ack: bool,
    },
    Request {
        ts: Ts,
        dir: Dir,
        req: Request,
    },
    Response {
        ts: Ts,
        dir: Dir,
        resp: Response,
    },
    /// A complete frame; `close` holds a close frame's (unmasked) payload.
    Frame {
        ts: Ts,
        dir: Dir,
        header: FrameHeader,
        close: Option<Box<[u8]>>,
    },
    /// Bytes that cannot be a frame: that direction is no longer decoded.
    Malformed {
        ts: Ts,
        dir: Dir,
    },
    /// `len` bytes of `dir` missing from the capture.
    Gap {
        ts: Ts,
        dir: Dir,
        len: u64,
    },
    Fin {
        ts: Ts,
        dir: Dir,
    },
    Rst {
        ts: Ts,
        dir: Dir,
    },
    /// No packet of the connection for `len` after `ts` (`to_end`: up to
    /// the capture's end).
    Silence {
        ts: Ts,
        len: Ts,
        to_end: bool,
    },
}

impl Event {
    pub fn ts(&self) -> Ts {
        match self {
            Event::Syn { ts, .. }
            | Event::Request { ts, .. }
            | Event::Response { ts, .. }
            | Event::Frame { ts, .. }
            | Event::Malformed { ts, .. }
            | Event::Gap { ts, .. }
            | Event::Fin { ts, .. }
            | Event::Rst { ts, .. }
            | Event::Silence { ts, .. } => *ts,
        }
    }
}

/// What a traced session reports its events through.
#[derive(Debug)]
pub struct Tracer {
    tx: Sender<Event>,
}

impl Tracer {
    fn send(&self, e: Event) {
        // The receiver lives as long as the second pass: nothing to do if not.
        let _ = self.tx.send(e);
    }

    pub fn request(&self, dir: Dir, ts: Ts, req: &Request) {
        let req = req.clone();
        self.send(Event::Request { ts, dir, req });
    }

    pub fn response(&self, dir: Dir, ts: Ts, resp: &Response) {
        let resp = resp.clone();
        self.send(Event::Response { ts, dir, resp });
    }

    pub fn frame(&self, dir: Dir, ts: Ts, e: &FrameEvent<'_>) {
        self.send(match e {
            FrameEvent::Frame {
                header,
                close_payload,
                ..
            } => Event::Frame {
                ts,
                dir,
                header: **header,
                close: (header.opcode == OP_CLOSE).then(|| Box::from(*close_payload)),
            },
            FrameEvent::Malformed(_) => Event::Malformed { ts, dir },
        });
    }

    pub fn gap(&self, dir: Dir, ts: Ts, len: u64) {
        self.send(Event::Gap { ts, dir, len });
    }

    pub fn fin(&self, dir: Dir, ts: Ts) {
        self.send(Event::Fin { ts, dir });
    }

    pub fn rst(&self, dir: Dir, ts: Ts) {
        self.send(Event::Rst { ts, dir });
    }
}

/// The connections an [`Analyzer`] traces: 4-tuple, time span (seconds, as
/// in the report) and where the events go.
#[derive(Debug, Default)]
pub struct Selection {
    flows: Vec<(FlowKey, f64, f64, Sender<Event>)>,
}

impl Selection {
    /// The tracer for a new flow, when it is a selected one.
    pub fn tracer(&self, key: &FlowKey, ts: Ts) -> Option<Box<Tracer>> {
        let t = ts.as_secs_f64();
        self.flows
            .iter()
            .find(|(k, first, last, _)| k == key && (*first..=*last).contains(&t))
            .map(|(_, _, _, tx)| Box::new(Tracer { tx: tx.clone() }))
    }
}

/// How a packet stands to a selected connection.
enum Match {
    Mine(Dir),
    /// Same 4-tuple, outside the connection's time span.
    Reused,
    /// Same addresses and ports, paired the other way: the short display
    /// filter would take it.
    Crossed,
    Other,
}

/// One selected connection, followed through the second pass.
pub(crate) struct Timeline<'a> {
    report: &'a ConnectionReport,
    client: Endpoint,
    server: Endpoint,
    key: FlowKey,
    client_dir: Dir,
    rx: Receiver<Event>,
    tx: Sender<Event>,
    builder: Builder,
    packets: u64,
    span: Option<(Ts, Ts)>,
    /// Time 0 of the lines: the upgrade response, else the first packet.
    base: Option<Ts>,
    reused: bool,
    crossed: bool,
}

/// Whether `{a, b}` and `{x, y}` are the same pair.
fn pair<T: PartialEq>(a: T, b: T, x: T, y: T) -> bool {
    (a == x && b == y) || (a == y && b == x)
}

fn endpoint(s: &str) -> Result<Endpoint, Error> {
    let a: SocketAddr = s
        .parse()
        .map_err(|_| Error::Usage(format!("--connection: cannot read the address {s:?}")))?;
    Ok(Endpoint {
        ip: a.ip(),
        port: a.port(),
    })
}

impl<'a> Timeline<'a> {
    fn new(report: &'a ConnectionReport) -> Result<Self, Error> {
        let client = endpoint(&report.client)?;
        let server = endpoint(&report.server)?;
        let (key, client_dir) = FlowKey::of(client, server);
        let (tx, rx) = channel();
        Ok(Timeline {
            report,
            client,
            server,
            key,
            client_dir,
            rx,
            tx,
            builder: Builder::new(report.findings.iter().map(|f| f.ts)),
            packets: 0,
            span: None,
            base: None,
            reused: false,
            crossed: false,
        })
    }

    fn classify(&self, key: &FlowKey, dir: Dir, ts: Ts, seg: &TcpSegment<'_>) -> Match {
        if *key == self.key {
            let t = ts.as_secs_f64();
            return if (self.report.first_ts..=self.report.last_ts).contains(&t) {
                Match::Mine(dir)
            } else {
                Match::Reused
            };
        }
        if pair(
            seg.src.port,
            seg.dst.port,
            self.client.port,
            self.server.port,
        ) && pair(seg.src.ip, seg.dst.ip, self.client.ip, self.server.ip)
        {
            Match::Crossed
        } else {
            Match::Other
        }
    }

    /// A packet of the connection, before the analyzer sees it.
    fn packet(&mut self, ts: Ts, dir: Dir, seg: &TcpSegment<'_>) {
        self.packets += 1;
        if let Some((_, last)) = self.span
            && ts.saturating_sub(last) > SILENCE
        {
            let len = ts.saturating_sub(last);
            self.push(Event::Silence {
                ts: last,
                len,
                to_end: false,
            });
        }
        self.span = Some(match self.span {
            None => (ts, ts),
            Some((first, last)) => (first, last.max(ts)),
        });
        if seg.syn {
            self.push(Event::Syn {
                ts,
                dir,
                ack: seg.ack,
            });
        }
    }

    fn push(&mut self, e: Event) {
        if self.base.is_none()
            && let Event::Response { ts, .. } = e
        {
            self.base = Some(ts);
        }
        self.builder.push(e);
    }

    /// Takes what the analyzer traced so far.
    fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.push(e);
        }
    }

    /// The capture is over (its last packet at `end`).
    fn finish(&mut self, end: Ts) {
        self.drain();
        if let Some((_, last)) = self.span
            && self.report.close.tcp_end.kind == crate::close::TcpEndKind::None
            && end.saturating_sub(last) > SILENCE
        {
            self.push(Event::Silence {
                ts: last,
                len: end.saturating_sub(last),
                to_end: true,
            });
        }
        self.builder.finish();
    }
}

/// The second pass: re-reads `names` and follows each of `conns`.
pub(crate) fn trace<'a>(
    names: &[String],
    settings: Settings,
    limits: Limits,
    conns: &[&'a ConnectionReport],
) -> Result<Vec<Timeline<'a>>, Error> {
    let mut tls = conns
        .iter()
        .map(|c| Timeline::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    let sel = Selection {
        flows: tls
            .iter()
            .map(|t| (t.key, t.report.first_ts, t.report.last_ts, t.tx.clone()))
            .collect(),
    };
    let mut merged = Merged::new(pipeline::open_all(names)?);
    let mut analyzer = Analyzer::new_traced(settings, limits, sel);
    let mut end = None;
    while merged.advance()? {
        let Some((pkt, counts)) = merged.current_mut() else {
            break;
        };
        end = Some(end.map_or(pkt.ts, |e: Ts| e.max(pkt.ts)));
        // Only the selected connections' packets reach the analyzer; every
        // packet moves its clock (close deadlines of the selected ones).
        let Some(seg) = pipeline::tcp_segment(&mut analyzer, pkt, counts) else {
            continue;
        };
        analyzer.note_time(pkt.ts);
        if follow(&mut tls, pkt.ts, &seg) {
            analyzer.packet(pkt.ts, &seg);
            tls.iter_mut().for_each(Timeline::drain);
        }
    }
    let _ = analyzer.finish();
    for t in &mut tls {
        t.finish(end.unwrap_or_default());
    }
    Ok(tls)
}

/// Shows a segment to every timeline: whether it belongs to one of them
/// (and so goes to the analyzer).
fn follow(tls: &mut [Timeline<'_>], ts: Ts, seg: &TcpSegment<'_>) -> bool {
    let (key, dir) = FlowKey::of(seg.src, seg.dst);
    let mut mine = false;
    for t in tls {
        match t.classify(&key, dir, ts, seg) {
            Match::Mine(dir) => {
                t.packet(ts, dir, seg);
                mine = true;
            }
            Match::Reused => t.reused = true,
            Match::Crossed => t.crossed = true,
            Match::Other => {}
        }
    }
    mine
}

/// `--connection` reads the inputs twice: only regular files can be.
pub(crate) fn check_inputs(names: &[String]) -> Result<(), Error> {
    for n in names {
        let regular = std::fs::metadata(n).map(|m| m.is_file());
        if n == "-" || matches!(regular, Ok(false)) {
            let what = if n == "-" { "stdin" } else { n.as_str() };
            return Err(Error::Usage(format!(
                "--connection reads the capture twice and {what} can be read only once: save it to a file first"
            )));
        }
    }
    Ok(())
}

/// The timelines of the connections `ids` (each once, in the order given),
/// or a one-line message: an unknown id, or an input that cannot be read.
pub(crate) fn timelines(
    names: &[String],
    ids: &[u64],
    conns: &Connections,
    settings: Settings,
    limits: Limits,
) -> Result<String, Error> {
    let mut chosen: Vec<ConnectionReport> = Vec::new();
    for id in ids {
        let Some(c) = conns.get(*id)? else {
            let has = match conns.len() {
                0 => "none".to_string(),
                n => n.to_string(),
            };
            return Err(Error::Usage(format!(
                "no connection {id} (the capture has {has})"
            )));
        };
        if !chosen.iter().any(|x| x.id == c.id) {
            chosen.push(c);
        }
    }
    let chosen: Vec<&ConnectionReport> = chosen.iter().collect();
    let tls = trace(names, settings, limits, &chosen)?;
    let mut out = String::new();
    for (i, t) in tls.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        t.render(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::render::{Line, RUN_MIN, fmt_duration, fmt_offset, utc};
    use super::*;
    use crate::frame::{OP_CONTINUATION, OP_PING, OP_TEXT};

    const MS: i64 = 1_000_000;

    fn frame(ms: i64, dir: Dir, opcode: u8, len: u64) -> Event {
        Event::Frame {
            ts: Ts(ms * MS),
            dir,
            header: FrameHeader {
                fin: true,
                opcode,
                payload_len: len,
                ..FrameHeader::default()
            },
            close: None,
        }
    }

    fn build(events: Vec<Event>, findings: &[Option<f64>]) -> Vec<Line> {
        let mut b = Builder::new(findings.iter().copied());
        for e in events {
            b.push(e);
        }
        b.finish();
        b.lines().to_vec()
    }

    /// A compact picture of the lines: `F` a frame, `R4` a run of 4, `!0`
    /// finding 0, `S` a silence, `P` a ping.
    fn shape(lines: &[Line]) -> String {
        let parts: Vec<String> = lines
            .iter()
            .map(|l| match l {
                Line::Run(r) => format!("R{}", r.count),
                Line::Finding(i) => format!("!{i}"),
                Line::Event(Event::Silence { .. }) => "S".into(),
                Line::Event(Event::Frame { header, .. }) if header.opcode == OP_PING => "P".into(),
                Line::Event(_) => "F".into(),
            })
            .collect();
        parts.join(" ")
    }

    #[test]
    fn runs_of_more_than_three_data_frames_collapse() {
        let a = |ms, op| frame(ms, Dir::A, op, 10);
        // Exactly RUN_MIN frames keep their lines.
        let three: Vec<Event> = (0..RUN_MIN as i64).map(|i| a(i, OP_TEXT)).collect();
        assert_eq!(shape(&build(three, &[])), "F F F");
        // One more, and they share one line with the counts and bytes.
        let mut four: Vec<Event> = (0..3).map(|i| a(i, OP_TEXT)).collect();
        four.push(a(7, OP_CONTINUATION));
        let lines = build(four, &[]);
        assert_eq!(shape(&lines), "R4");
        let Line::Run(r) = &lines[0] else {
            panic!("not a run: {lines:?}");
        };
        assert_eq!((r.ts, r.last, r.dir), (Ts(0), Ts(7 * MS), Dir::A));
        assert_eq!((r.ops, r.bytes), ([3, 0, 1], 40));
    }

    #[test]
    fn runs_end_at_any_other_line() {
        let a = |ms| frame(ms, Dir::A, OP_TEXT, 1);
        let b = |ms| frame(ms, Dir::B, OP_TEXT, 1);
        // The other direction, a control frame, a silence, a finding.
        let mut ev: Vec<Event> = (0..5).map(a).collect();
        ev.push(b(5));
        ev.extend((6..10).map(a));
        ev.push(frame(10, Dir::A, OP_PING, 0));
        ev.extend((11..15).map(a));
        ev.push(Event::Silence {
            ts: Ts(14 * MS),
            len: Ts(2_000 * MS),
            to_end: false,
        });
        ev.extend((2014..2019).map(a));
        // A finding between the 2nd and 3rd frame of the last batch.
        let lines = build(ev, &[Some(2.0155)]);
        assert_eq!(shape(&lines), "R5 F R4 P R4 S F F !0 F F F");
    }

    #[test]
    fn findings_go_before_the_first_later_event_and_untimed_ones_last() {
        let ev = vec![frame(1, Dir::A, OP_PING, 0), frame(3, Dir::B, OP_PING, 0)];
        // At the same time as an event: after it. None: at the end.
        let lines = build(ev, &[None, Some(0.001), Some(0.0005), Some(9.0)]);
        assert_eq!(shape(&lines), "!2 P !1 P !3 !0");
    }

    #[test]
    fn durations_take_the_unit_that_fits() {
        let cases = [
            (0, "0 s"),
            (412, "412 ns"),
            (1_000, "1 µs"),
            (30_000, "30 µs"),
            (412_000, "412 µs"),
            (999_400, "999 µs"),
            (999_600, "1 ms"),
            (1_250_000, "1.25 ms"),
            (12_400_000, "12.4 ms"),
            (12_440_000, "12.4 ms"),
            (100_000_000, "100 ms"),
            (999_700_000, "1.000 s"),
            (3_208_000_000, "3.208 s"),
            (59_999_400_000, "59.999 s"),
            (59_999_600_000, "1 min 00 s"),
            (60_000_000_000, "1 min 00 s"),
            (123_400_000_000, "2 min 03 s"),
            (123_600_000_000, "2 min 04 s"),
            (3_599_600_000_000, "1 h 00 min 00 s"),
            (3_723_000_000_000, "1 h 02 min 03 s"),
        ];
        for (ns, want) in cases {
            assert_eq!(fmt_duration(Ts(ns)), want, "{ns} ns");
        }
        assert_eq!(fmt_duration(Ts(-5)), "0 s");
        assert_eq!(fmt_offset(Ts(123_208_400_000)), "+2 min 03.208 s");
        assert_eq!(fmt_offset(Ts(59_999_600_000)), "+1 min 00.000 s");
        assert_eq!(fmt_offset(Ts(-3_723_000_000_000)), "-1 h 02 min 03.000 s");
        assert_eq!(fmt_offset(Ts(412_000)), "+412 µs");
        assert_eq!(fmt_offset(Ts(-1_150_000)), "-1.15 ms");
        assert_eq!(fmt_offset(Ts(0)), "0 s");
        assert_eq!(fmt_offset(Ts(i64::MIN)).chars().next(), Some('-'));
    }

    #[test]
    fn absolute_times_are_exact() {
        assert_eq!(
            utc(Ts(951_782_400 * 1_000_000_000)),
            "2000-02-29 00:00:00.000000"
        );
        let t = Ts(1_795_301_556_856_359_813);
        assert_eq!(utc(t), "2026-11-21 22:52:36.856359813");
        assert_eq!(render::epoch(t), "1795301556.856359813");
        assert_eq!(
            render::epoch(Ts(1_795_301_521_278_073_000)),
            "1795301521.278073"
        );
    }
}
