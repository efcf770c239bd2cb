//! Diagnoses: why connections ended, from patterns across them (part 2 of
//! the contract). A stage of its own after the per-connection verdicts: it
//! reads connection reports and writes `diagnoses`; nothing depends on it.

use serde::Serialize;
use strum::IntoStaticStr;

use crate::close::{Kind, Outcome, Settings, Severity, Side, fmt_short};
use crate::frame::{CloseCode, CodeClass};

pub use digest::{Digest, Digests};

pub mod defaults;
mod digest;
mod evidence;
pub mod timing;
mod windows;

/// The contract's diagnosis kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DiagnosisKind {
    IdleTimeout,
    MaxLifetime,
    MassDisconnect,
    NeverAnswersClose,
    ClosesWithoutWaiting,
    HeartbeatLost,
    ErrorCloseCodes,
    ForeignResets,
}

impl DiagnosisKind {
    pub fn severity(self) -> Severity {
        use DiagnosisKind::*;
        match self {
            IdleTimeout | MaxLifetime | NeverAnswersClose | HeartbeatLost => Severity::Error,
            MassDisconnect | ClosesWithoutWaiting | ErrorCloseCodes | ForeignResets => {
                Severity::Warning
            }
        }
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One pattern across connections, with its evidence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnosis {
    pub kind: DiagnosisKind,
    pub severity: Severity,
    pub side: Option<Side>,
    pub peer: Option<String>,
    pub connections: Vec<u64>,
    pub value_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    pub matches: Vec<String>,
    pub message: String,
    pub advice: Option<String>,
    /// `error_close_codes`: the close code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Median, minimum and maximum of a pattern's times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Of a non-empty list (the median of an even count is the mean of the
    /// two middle values).
    pub fn of(values: &[f64]) -> Stats {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Stats {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// How a connection was cut (contract: outcome `abnormal`, or a first close
/// frame with 1001): by which side, and when.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    pub side: Side,
    pub instant: f64,
}

pub fn cut_of(c: &Digest) -> Option<Cut> {
    let close = &c.close;
    // Encrypted connections: whether close frames were exchanged cannot be
    // seen; an end after a silence of 1 s or more counts as a cut.
    let encrypted_cut =
        close.outcome == Outcome::Encrypted && close.idle_s.is_some_and(|i| i >= 1.0);
    if close.outcome == Outcome::Abnormal || encrypted_cut {
        return Some(Cut {
            side: close.tcp_end.by?,
            instant: close.tcp_end.ts?,
        });
    }
    let first = close.first_frame().filter(|f| f.code == Some(1001))?;
    Some(Cut {
        side: close.initiator?,
        instant: first.ts,
    })
}

/// The address of `side` when every connection shares it.
fn shared_peer(side: Option<Side>, members: &[&Digest]) -> Option<String> {
    let side = side?;
    let first = members.first()?.address_of(side);
    members
        .iter()
        .all(|c| c.address_of(side) == first)
        .then_some(first)
}

/// A diagnosis over `members`, with the fields every kind fills the same way.
pub(crate) fn entry(
    kind: DiagnosisKind,
    side: Option<Side>,
    members: &[&Digest],
    stats: Option<Stats>,
    message: String,
    advice: Option<String>,
) -> Diagnosis {
    let mut connections: Vec<u64> = members.iter().map(|c| c.id).collect();
    connections.sort_unstable();
    connections.dedup();
    Diagnosis {
        kind,
        severity: kind.severity(),
        side,
        peer: shared_peer(side, members),
        connections,
        value_s: stats.map(|s| s.median),
        min_s: stats.map(|s| s.min),
        max_s: stats.map(|s| s.max),
        matches: Vec::new(),
        message,
        advice,
        code: None,
    }
}

/// Every diagnosis of a capture, ordered by severity (error first), then by
/// number of connections (most first).
pub fn diagnose(digests: &Digests, settings: &Settings) -> Vec<Diagnosis> {
    let conns = &digests.conns[..];
    let mut out = timing::idle_timeouts(conns);
    out.extend(timing::max_lifetimes(conns));
    out.extend(timing::mass_disconnects(conns, digests.span));
    out.extend(evidence::never_answers_close(conns, &digests.answered));
    out.extend(evidence::closes_without_waiting(conns));
    out.extend(evidence::heartbeat_lost(conns, settings));
    out.extend(evidence::error_close_codes(conns));
    out.extend(evidence::foreign_resets(conns));
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.connections.len().cmp(&a.connections.len()))
            .then(a.kind.cmp(&b.kind))
            .then(a.connections.first().cmp(&b.connections.first()))
    });
    out
}

/// Whether a connection can count in some diagnosis: the union of what
/// each of them selects. The others leave only their span and their
/// answered close frames ([`Digests`]).
fn counts(c: &Digest) -> bool {
    let close = &c.close;
    let code_class = |s: Side| {
        close
            .frame_of(s)
            .and_then(|f| f.code)
            .map(|k| CloseCode(k).class())
    };
    cut_of(c).is_some()
        || close
            .first_frame()
            .is_some_and(|f| matches!(f.code, Some(1001 | 1012)))
        || evidence::unanswered_close(c).is_some()
        || c.findings
            .iter()
            .any(|f| matches!(f.kind, Kind::ClosedBeforeAnswer | Kind::ForeignReset))
        || (c.evidence.unanswered_ping.is_some() && evidence::given_up(c).is_some())
        || [Side::Client, Side::Server]
            .into_iter()
            .any(|s| code_class(s) == Some(CodeClass::Error))
}

/// Connections carrying a finding of `kind`, grouped by the finding's side.
fn with_finding(conns: &[Digest], kind: Kind) -> [Vec<&Digest>; 2] {
    let mut out: [Vec<&Digest>; 2] = Default::default();
    for c in conns {
        for f in c.findings.iter().filter(|f| f.kind == kind) {
            if let Some(s) = f.side {
                out[s.idx()].push(c);
            }
        }
    }
    out
}

/// "3 connections" / "1 connection".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A side named with its address when all share one.
fn who(side: Side, members: &[&Digest]) -> String {
    match shared_peer(Some(side), members) {
        Some(p) => format!("the {} {p}", side.name()),
        None => format!("the {}", side.name()),
    }
}

/// Seconds in a message.
fn secs(s: f64) -> String {
    fmt_short(s)
}

/// A range of seconds precise enough to show the spread: "(59.81 to
/// 60.29 s)", "(1.997 to 2.000 s)".
pub(crate) fn span(st: &Stats) -> String {
    let digits = if st.max < 10.0 { 3 } else { 2 };
    format!("({:.digits$} to {:.digits$} s)", st.min, st.max)
}

/// An interval to recommend, rounded to two significant digits: "1.0 s",
/// "30 s".
pub(crate) fn nice(s: f64) -> String {
    if s >= 10.0 {
        let step = 10f64.powf(s.log10().floor() - 1.0);
        format!("{} s", (s / step).round() * step)
    } else {
        format!("{:.1} s", s)
    }
}
