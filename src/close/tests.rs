//! The close tracker fed with events directly (no captures): a table of
//! connections' lives and the outcome and findings each must give.

use std::net::{IpAddr, Ipv4Addr};

use super::{ConnMeta, Kind, Outcome, Settings, Severity, Side, Tracker};
use crate::Ts;
use crate::decode::Endpoint;
use crate::frame::{FrameHeader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::message::MsgNotes;
use crate::reassembly::Dir;
use crate::upgrade::{Request, Response, accept_for_key};

/// The client is `Dir::A` (it sends the SYN).
const C: Dir = Dir::A;
const S: Dir = Dir::B;
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// One event of a connection's life, at a time in seconds.
#[derive(Clone, Copy)]
enum Ev {
    Upgrade,
    Text(Dir),
    Close(Dir, u16),
    Ping(Dir),
    Pong(Dir),
    Fin(Dir),
    Rst(Dir),
}

fn t(secs: f64) -> Ts {
    Ts::from_secs_f64(1_700_000_000.0 + secs)
}

fn header(opcode: u8, len: u64, from: Dir) -> FrameHeader {
    FrameHeader {
        fin: true,
        opcode,
        payload_len: len,
        mask: (from == C).then_some([1, 2, 3, 4]),
        header_len: if from == C { 6 } else { 2 },
        ..FrameHeader::default()
    }
}

/// Runs `events` through a tracker and reports as of `end`.
fn run(events: &[(f64, Ev)], end: f64) -> super::ConnectionReport {
    let ep = |port| Endpoint {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    };
    let mut meta = ConnMeta::new(ep(50000), ep(80), 1, t(0.0));
    meta.packet(C, t(0.0), true, 64);
    let mut tr = Tracker::default();
    for &(at, ev) in events {
        let ts = t(at);
        meta.packet(C, ts, false, 64);
        match ev {
            Ev::Upgrade => {
                tr.request(
                    C,
                    ts,
                    Request {
                        method: "GET".into(),
                        path: "/".into(),
                        host: None,
                        upgrade_websocket: true,
                        key: Some(KEY.into()),
                    },
                );
                let resp = Response {
                    status: 101,
                    accept: Some(accept_for_key(KEY)),
                    ..Response::default()
                };
                tr.response(S, ts, resp);
            }
            Ev::Text(d) => tr.frame(d, ts, &header(OP_TEXT, 3, d), &[], notes(3)),
            Ev::Close(d, code) => {
                let p = code.to_be_bytes();
                tr.frame(d, ts, &header(OP_CLOSE, 2, d), &p, MsgNotes::default());
            }
            Ev::Ping(d) => tr.frame(d, ts, &header(OP_PING, 0, d), &[], MsgNotes::default()),
            Ev::Pong(d) => tr.frame(d, ts, &header(OP_PONG, 0, d), &[], MsgNotes::default()),
            Ev::Fin(d) => tr.fin(d, ts),
            Ev::Rst(d) => tr.rst(d, ts),
        }
    }
    tr.report(&meta, t(end), &Settings::default())
        .expect("a WebSocket connection")
}

fn notes(len: u64) -> MsgNotes {
    MsgNotes {
        message_len: Some(len),
        ..MsgNotes::default()
    }
}

/// A case: the life, the capture's end, the outcome and the findings
/// (kind, side, severity) in time order.
type Case = (
    &'static str,
    &'static [(f64, Ev)],
    f64,
    Outcome,
    &'static [(Kind, Option<Side>, Severity)],
);

const CASES: &[Case] = &[
    (
        "clean close, server ends TCP",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Text(C)),
            (2.0, Ev::Close(C, 1000)),
            (2.1, Ev::Close(S, 1000)),
            (2.2, Ev::Fin(S)),
        ],
        10.0,
        Outcome::Clean,
        &[],
    ),
    (
        "never answered, TCP ends first",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Close(C, 1000)),
            (3.0, Ev::Fin(S)),
        ],
        10.0,
        Outcome::Unanswered,
        &[(Kind::UnansweredClose, Some(Side::Server), Severity::Error)],
    ),
    (
        "never answered, capture goes on: an error",
        &[(0.0, Ev::Upgrade), (1.0, Ev::Close(C, 1000))],
        10.0,
        Outcome::Timeout,
        &[(Kind::CloseTimeout, Some(Side::Server), Severity::Error)],
    ),
    (
        "answered late: a warning",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Close(C, 1000)),
            (7.0, Ev::Close(S, 1000)),
        ],
        20.0,
        Outcome::Timeout,
        &[
            (Kind::CloseTimeout, Some(Side::Server), Severity::Warning),
            (Kind::TcpNotClosed, Some(Side::Server), Severity::Warning),
        ],
    ),
    (
        "unanswered close, capture ends before the deadline",
        &[(0.0, Ev::Upgrade), (1.0, Ev::Close(C, 1000))],
        3.0,
        Outcome::Pending,
        &[],
    ),
    (
        "cut without a close frame",
        &[(0.0, Ev::Upgrade), (1.0, Ev::Text(S)), (61.0, Ev::Fin(S))],
        70.0,
        Outcome::Abnormal,
        &[(Kind::AbnormalClosure, Some(Side::Server), Severity::Error)],
    ),
    (
        "closed before the answer, which meets an RST",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Close(C, 1000)),
            (1.001, Ev::Rst(C)),
            (1.002, Ev::Close(S, 1000)),
        ],
        10.0,
        Outcome::Clean,
        &[
            (Kind::ResetAfterClose, Some(Side::Client), Severity::Warning),
            (
                Kind::ClosedBeforeAnswer,
                Some(Side::Client),
                Severity::Warning,
            ),
        ],
    ),
    (
        "pings without pongs for longer than the close timeout",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Ping(S)),
            (2.0, Ev::Ping(S)),
            (20.0, Ev::Close(S, 1011)),
            (20.1, Ev::Fin(S)),
        ],
        30.0,
        Outcome::Unanswered,
        &[
            (Kind::UnansweredPing, Some(Side::Client), Severity::Warning),
            (Kind::ErrorCloseCode, Some(Side::Server), Severity::Warning),
            (Kind::UnansweredClose, Some(Side::Client), Severity::Error),
        ],
    ),
    (
        "pings answered in time",
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Ping(S)),
            (1.1, Ev::Pong(C)),
            (2.0, Ev::Close(C, 1000)),
            (2.1, Ev::Close(S, 1000)),
            (2.2, Ev::Fin(S)),
        ],
        30.0,
        Outcome::Clean,
        &[],
    ),
    (
        "the client ends TCP first after the handshake",
        &[
            (0.0, Ev::Upgrade),
            (2.0, Ev::Close(S, 1001)),
            (2.1, Ev::Close(C, 1001)),
            (2.2, Ev::Fin(C)),
        ],
        30.0,
        Outcome::Clean,
        &[(
            Kind::ClientClosedTcpFirst,
            Some(Side::Client),
            Severity::Info,
        )],
    ),
];

#[test]
fn every_case_gives_its_outcome_and_findings() {
    for (name, events, end, outcome, findings) in CASES {
        let r = run(events, *end);
        assert_eq!(r.close.outcome, *outcome, "{name}");
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.kind, f.side, f.severity))
            .collect();
        assert_eq!(got, *findings, "{name}: {:#?}", r.findings);
        for f in &r.findings {
            assert!(
                !f.message.contains("1700000"),
                "{name}: epoch time in {:?}",
                f.message
            );
        }
    }
}

#[test]
fn evidence_for_the_diagnoses() {
    let r = run(
        &[
            (0.0, Ev::Upgrade),
            (1.0, Ev::Text(C)),
            (1.5, Ev::Ping(S)),
            (9.0, Ev::Close(S, 1011)),
            (9.5, Ev::Fin(S)),
        ],
        20.0,
    );
    let e = &r.evidence;
    assert_eq!(e.largest_message, [3, 0]);
    assert_eq!(e.largest_before_close, [None, Some(3)]);
    let (silent, first, n) = e.unanswered_ping.expect("an unanswered ping");
    assert_eq!((silent, n), (Side::Client, 1));
    assert!((first - t(1.5).as_secs_f64()).abs() < 1e-6);
    assert_eq!(e.ttl, [Some(64), None]);
    assert!((e.start_ts - t(0.0).as_secs_f64()).abs() < 1e-6);
}

/// With thousands of connections at once a packet's state is not in the
/// cache: what every frame reads or writes comes first in the tracker and
/// in a direction's facts, so that a frame touches few cache lines (the
/// order is `repr(C)`'s, kept by this test when fields are added).
#[test]
fn what_frames_touch_comes_first() {
    use super::FrameCounts;
    use super::tracker::DirFacts;
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Tracker, dirs) < 64);
    assert!(offset_of!(Tracker, first_close) < offset_of!(Tracker, dirs));
    assert!(offset_of!(Tracker, seen) > offset_of!(Tracker, dirs));
    assert!(offset_of!(Tracker, upgrade) > offset_of!(Tracker, dirs));
    // Counts, the largest message, the masking tally and whether a close
    // was sent: the first two cache lines of a direction.
    assert!(offset_of!(DirFacts, close) + 8 <= 128);
    assert!(offset_of!(DirFacts, pings) > offset_of!(DirFacts, close));
    assert!(size_of::<DirFacts>() <= 144);
    // What is prefetched for a packet covers those fields, within the
    // tracker.
    for dir in [Dir::A, Dir::B] {
        let ranges = Tracker::frame_fields(dir);
        let covered =
            |at: usize, len: usize| ranges.iter().any(|&(s, n)| s <= at && at + len <= s + n);
        let facts = offset_of!(Tracker, dirs) + dir.idx() * size_of::<DirFacts>();
        let (last, first) = (size_of::<Option<Ts>>(), size_of::<Option<(Dir, Ts)>>());
        assert!(covered(offset_of!(Tracker, last_frame), last));
        assert!(covered(offset_of!(Tracker, first_close), first));
        assert!(covered(
            facts + offset_of!(DirFacts, frames),
            size_of::<FrameCounts>()
        ));
        assert!(covered(
            facts + offset_of!(DirFacts, close),
            size_of::<usize>()
        ));
        assert!(ranges.iter().all(|&(s, n)| s + n <= size_of::<Tracker>()));
    }
}
