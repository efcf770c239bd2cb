//! The analyzer: TCP segments in, connection reports out, no I/O.
//!
//! Each flow gets a [`Session`] that routes its reassembled bytes: first
//! through the HTTP upgrade parser, then through a frame decoder per
//! direction, into the close [`Tracker`]. A file reader, a live capture or a
//! test feeds [`Analyzer::packet`] in capture order and calls
//! [`Analyzer::finish`] at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::Ts;
use crate::close::{ConnectionReport, Settings};
use crate::decode::TcpSegment;
use crate::reassembly::{FlowKey, FlowTable, Limits, ReassemblyStats, Release, Step};
use crate::timeline::Selection;
use crate::tls::{NotDecrypted, SharedKeys};

mod session;
mod tls_layer;

pub use session::Session;

/// Counters of the analysis, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyzerStats {
    pub tcp_segments: u64,
    pub reassembly: ReassemblyStats,
    /// WebSocket connections evicted under the flow cap (still reported).
    pub websocket_evicted: u64,
    /// TLS connections, listed or not.
    pub tls: TlsCounts,
    /// TCP segments cut short by the capture's snap length.
    pub cut_segments: u64,
    /// Flows that carried plain HTTP (a request without an upgrade).
    pub plain_http_flows: u64,
}

impl AnalyzerStats {
    /// Adds a sharded run's worker's counters. Peaks add up too: the sum
    /// of the workers' peaks, at least the run's (they need not fall at
    /// the same moment).
    pub fn add(&mut self, o: &AnalyzerStats) {
        self.tcp_segments += o.tcp_segments;
        self.reassembly.add(&o.reassembly);
        self.websocket_evicted += o.websocket_evicted;
        self.tls.seen += o.tls.seen;
        self.tls.decrypted += o.tls.decrypted;
        for (a, b) in self.tls.not_decrypted.iter_mut().zip(o.tls.not_decrypted) {
            *a += b;
        }
        self.cut_segments += o.cut_segments;
        self.plain_http_flows += o.plain_http_flows;
    }
}

/// TLS connections seen, decrypted, and why the others were not (the
/// contract's `analysis.tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounts {
    pub seen: u64,
    pub decrypted: u64,
    /// By reason, in the order of [`NotDecrypted::ALL`].
    pub not_decrypted: [u64; 5],
}

impl TlsCounts {
    fn add(&mut self, t: Result<(), NotDecrypted>) {
        self.seen += 1;
        match t {
            Ok(()) => self.decrypted += 1,
            Err(r) => self.not_decrypted[r as usize] += 1,
        }
    }

    pub fn undecrypted(&self) -> u64 {
        self.not_decrypted.iter().sum()
    }
}

/// A connection decided while the capture runs (for `--jsonl`), with the
/// number it is known by in the stream of decided connections.
pub type Decided = ConnectionReport;

/// The I/O-free analyzer: feed it TCP segments in capture order.
pub struct Analyzer {
    table: FlowTable<Session>,
    settings: Settings,
    reports: Vec<ConnectionReport>,
    /// Latest capture time seen.
    now: Option<Ts>,
    tcp_segments: u64,
    websocket_evicted: u64,
    /// Live mode: connections are also reported as soon as decided.
    live: Option<Live>,
    /// `--connection`: the flows whose events are recorded.
    trace: Option<Selection>,
    /// The run's key log (wss), handed to each TLS session.
    keys: SharedKeys,
    tls: TlsCounts,
    cut_segments: u64,
    plain_http_flows: u64,
}

/// What the analyzer keeps to report connections as soon as they are
/// decided (rule 20 of the contract).
#[derive(Default)]
struct Live {
    decided: Vec<Decided>,
    /// Close deadlines waiting for an answer: (deadline, flow, first-packet order).
    deadlines: BinaryHeap<Reverse<(Ts, FlowKey, u64)>>,
    /// Connections listed so far (numbers the decided ones).
    listed: u64,
}

impl Analyzer {
    pub fn new(settings: Settings, limits: Limits) -> Self {
        Analyzer {
            table: FlowTable::new(limits),
            reports: Vec::new(),
            now: None,
            tcp_segments: 0,
            websocket_evicted: 0,
            live: None,
            trace: None,
            keys: settings.keys.clone(),
            settings,
            tls: TlsCounts::default(),
            cut_segments: 0,
            plain_http_flows: 0,
        }
    }

    /// An analyzer that records the events of the selected flows (the
    /// second pass of `--connection`).
    pub fn new_traced(settings: Settings, limits: Limits, trace: Selection) -> Self {
        Analyzer {
            trace: Some(trace),
            ..Self::new(settings, limits)
        }
    }

    /// A worker of a sharded run: it sees the segments of some flows only,
    /// numbered capture-wide ([`Analyzer::packet_numbered`]), and purges
    /// ended flows when told ([`Analyzer::purge`]), where one analyzer
    /// reading everything would.
    pub fn new_worker(settings: Settings, limits: Limits) -> Self {
        let a = Self::new(settings, limits);
        Analyzer {
            table: a.table.without_auto_purge(),
            ..a
        }
    }

    /// An analyzer that also reports each connection the moment it is
    /// decided (taken with [`Analyzer::take_decided`]).
    pub fn new_live(settings: Settings, limits: Limits) -> Self {
        Analyzer {
            live: Some(Live::default()),
            ..Self::new(settings, limits)
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One TCP segment, captured at `ts`.
    pub fn packet(&mut self, ts: Ts, seg: &TcpSegment<'_>) {
        let index = self.tcp_segments + 1;
        self.packet_numbered(ts, seg, index);
    }

    /// One TCP segment, `index` being its number among the capture's TCP
    /// segments (from 1): a connection's first one orders it among the
    /// others (its id). A worker of a sharded run sees some segments only,
    /// and is given the capture-wide number.
    pub fn packet_numbered(&mut self, ts: Ts, seg: &TcpSegment<'_>, index: u64) {
        self.tcp_segments += 1;
        self.cut_segments += u64::from(seg.cut);
        self.note_time(ts);
        let (table, mut released, trace, keys) = self.split();
        let mut out = table.process(
            ts,
            seg,
            &mut |key, _, ts| {
                let tls_port = [key.lo.port, key.hi.port]
                    .iter()
                    .any(|p| released.settings.tls_ports.contains(p));
                Session::new(key, index, ts, trace, tls_port)
            },
            &mut |s: Session, why: Release| released.take(s, why, ts),
        );
        let (live, settings) = (released.live, released.settings);
        if let Some((s, _)) = out.as_mut()
            && s.wants_keys()
        {
            s.attach_keys(keys);
        }
        let (Some(l), Some((s, ended_now))) = (live.as_mut(), out) else {
            return;
        };
        if s.seq == 0 && s.is_listed() {
            s.seq = l.number();
        }
        if s.emitted || s.seq == 0 {
            return;
        }
        if ended_now {
            // The TCP connection is over: decided.
            if let Some(r) = s.report(ts, settings) {
                s.emitted = true;
                l.decide(r, s.seq);
            }
        } else if !s.deadline_queued
            && let Some(d) = s.close_deadline(settings.close_timeout)
        {
            s.deadline_queued = true;
            l.deadlines
                .push(Reverse((d, FlowKey::of(seg.src, seg.dst).0, s.meta.order)));
        }
    }

    /// Wall-clock time passes in a live capture: a close left unanswered
    /// past its deadline becomes `timeout` now, not when the capture ends.
    pub fn tick(&mut self, now: Ts) {
        self.note_time(now);
        let Analyzer {
            table,
            settings,
            live,
            ..
        } = self;
        let Some(l) = live.as_mut() else {
            return;
        };
        // An answer stamped exactly at the deadline is still in time, so a
        // deadline is passed only once the clock is beyond it.
        while let Some(Reverse((d, key, order))) = l.deadlines.peek().copied() {
            if d >= now {
                break;
            }
            l.deadlines.pop();
            let Some(s) = table.get_mut(&key) else {
                continue;
            };
            if s.meta.order != order || s.emitted {
                continue;
            }
            if s.close_deadline(settings.close_timeout).is_some()
                && let Some(r) = s.report(now, settings)
            {
                s.emitted = true;
                l.decide(r, s.seq);
            }
        }
    }

    /// Flows tracked, bytes buffered, and what the last segment did to
    /// their peaks (a sharded run's workers report these).
    pub fn table_state(&self) -> (usize, usize, Step) {
        (
            self.table.len(),
            self.table.buffered_bytes(),
            self.table.step,
        )
    }

    /// A cap across flows was reached or nearly (see `FlowTable::capped`).
    pub fn capped(&self) -> bool {
        self.table.capped()
    }

    /// TCP flows tracked now (open, or lingering after their end).
    pub fn open_flows(&self) -> usize {
        self.table.len()
    }

    /// Connections over (released from the flow table) and not yet taken:
    /// the pipeline drains them into the summary's collector as it goes,
    /// so that none waits here till the end.
    pub fn reports_mut(&mut self) -> &mut Vec<ConnectionReport> {
        &mut self.reports
    }

    /// Connections decided since the last call (live mode), in order.
    pub fn take_decided(&mut self) -> Vec<Decided> {
        self.live
            .as_mut()
            .map(|l| std::mem::take(&mut l.decided))
            .unwrap_or_default()
    }

    /// Any packet of the capture, TCP or not, moves the capture's clock.
    pub fn note_time(&mut self, ts: Ts) {
        self.now = Some(self.now.map_or(ts, |n| n.max(ts)));
    }

    /// The flow table, where the sessions it lets go are taken, and what a
    /// new session needs: borrowed apart.
    fn split(
        &mut self,
    ) -> (
        &mut FlowTable<Session>,
        Released<'_>,
        Option<&Selection>,
        &SharedKeys,
    ) {
        let Analyzer {
            table,
            settings,
            reports,
            websocket_evicted,
            live,
            trace,
            keys,
            tls,
            plain_http_flows,
            ..
        } = self;
        let released = Released {
            settings,
            reports,
            websocket_evicted,
            live,
            tls,
            plain_http_flows,
        };
        (table, released, trace.as_ref(), keys)
    }

    /// Releases the flows that ended more than the linger time before `ts`
    /// (a sharded run's workers do it where the whole run would: see
    /// [`Analyzer::new_worker`]).
    pub fn purge(&mut self, ts: Ts) {
        let (table, mut released, _, _) = self.split();
        table.purge_now(ts, &mut |s: Session, why| released.take(s, why, ts));
    }

    /// Ends the capture: decides every connection still open and returns
    /// all listed connections, numbered in order of their first packet.
    /// (In live mode, [`Analyzer::finish_live`] also returns those not yet
    /// reported as decided.)
    pub fn finish(self) -> (Vec<ConnectionReport>, AnalyzerStats) {
        let (mut reports, stats, _) = self.finish_live();
        reports.sort_by_key(|r| r.order);
        for (i, r) in reports.iter_mut().enumerate() {
            r.id = i as u64 + 1;
        }
        (reports, stats)
    }

    /// Like [`Analyzer::finish`], also returning the connections that were
    /// not decided before the capture stopped (live mode); the reports are
    /// those not yet taken ([`Analyzer::reports_mut`]), not numbered.
    pub fn finish_live(self) -> (Vec<ConnectionReport>, AnalyzerStats, Vec<Decided>) {
        let Analyzer {
            table,
            settings,
            mut reports,
            now,
            tcp_segments,
            websocket_evicted,
            mut live,
            mut tls,
            cut_segments,
            mut plain_http_flows,
            ..
        } = self;
        let end = now.unwrap_or_default();
        let mut websocket_evicted = websocket_evicted;
        let mut released = Released {
            settings: &settings,
            reports: &mut reports,
            websocket_evicted: &mut websocket_evicted,
            live: &mut live,
            tls: &mut tls,
            plain_http_flows: &mut plain_http_flows,
        };
        let reassembly = table.finish(end, &mut |s: Session, why| released.take(s, why, end));
        let stats = AnalyzerStats {
            tcp_segments,
            reassembly,
            websocket_evicted,
            tls,
            cut_segments,
            plain_http_flows,
        };
        let mut rest = live.map(|l| l.decided).unwrap_or_default();
        rest.sort_by_key(|r| r.id);
        (reports, stats, rest)
    }
}

/// Where a flow's session goes when the flow table lets it go: its tallies,
/// and its report when it was a WebSocket connection.
struct Released<'a> {
    settings: &'a Settings,
    reports: &'a mut Vec<ConnectionReport>,
    websocket_evicted: &'a mut u64,
    live: &'a mut Option<Live>,
    tls: &'a mut TlsCounts,
    plain_http_flows: &'a mut u64,
}

impl Released<'_> {
    /// Over (or evicted, or the capture ended): nothing more will change
    /// its verdict.
    fn take(&mut self, s: Session, why: Release, ts: Ts) {
        if let Some(t) = s.tls_tally() {
            self.tls.add(t);
        }
        *self.plain_http_flows += u64::from(s.plain_http);
        if let Some(r) = s.report(ts, self.settings) {
            if why == Release::Evicted {
                *self.websocket_evicted += 1;
            }
            if let Some(l) = self.live.as_mut()
                && !s.emitted
            {
                l.decide(r.clone(), s.seq);
            }
            self.reports.push(r);
        }
    }
}

impl Live {
    /// The next number among listed connections.
    fn number(&mut self) -> u64 {
        self.listed += 1;
        self.listed
    }

    /// Reports a decided connection under its number (`seq`, or a new one
    /// for a connection that became listed only as it was released, when
    /// the last buffered bytes were flushed).
    fn decide(&mut self, mut r: ConnectionReport, seq: u64) {
        r.id = if seq == 0 { self.number() } else { seq };
        self.decided.push(r);
    }
}
