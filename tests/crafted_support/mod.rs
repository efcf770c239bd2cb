//! What the `tests/crafted_*.rs` files share: times relative to [`T0`], the
//! clean conversation several of them analyse, and [`Case`], one crafted
//! connection and what its report must say, run as a table by
//! [`run_cases`].
//!
//! The files are end-to-end tests of `wsclose analyze` on crafted captures,
//! written from the output contract (docs/contract/README.md: "Outcomes",
//! "Findings", "Precise rules" 1-20, "Command line", "Exit status"). Every
//! summary read is also validated against tests/contract/summary.schema.json
//! and the contract's cross-field invariants (`common::validate_summary`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;

use crate::common::*;

/// `T0 + offset` seconds.
pub fn t(offset: f64) -> f64 {
    T0 + offset
}

pub fn counts(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// The clean conversation several tests share: upgrade at T0, client text
/// at +0.1, server text at +0.5, close handshake at +1.0, server FIN first.
pub fn clean_conn() -> Conn {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.1), &cframe(OP_TEXT, b"hello"));
    c.server_ack(t(0.1001));
    c.server_send(t(0.5), &sframe(OP_TEXT, b"world"));
    c.client_send(t(1.0), &cclose(1000, "bye"));
    c.server_send(t(1.0004), &sclose(1000, ""));
    c.server_fin(t(1.0006));
    c.client_fin(t(1.0007));
    c.server_ack(t(1.0008));
    c
}

/// Asserts the connection is the one `clean_conn` produces.
#[track_caller]
pub fn assert_clean_conn(c: &Value) {
    assert_outcome(c, "clean");
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_eq!(c["server"], SERVER_ADDR);
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 10]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 7]);
    assert_findings(c, &[]);
}

/// A side as the summary writes it: `CLIENT`, `SERVER` or `NO_SIDE`.
pub type Side = Option<&'static str>;

/// A duration of `close` (`handshake_s`, `idle_s`).
#[derive(Clone, Copy, Debug)]
pub enum Secs {
    /// Not checked.
    Any,
    Null,
    Is(f64),
}

/// `close.client_frame` or `close.server_frame`.
#[derive(Clone, Copy, Debug)]
pub enum CloseFrame {
    /// Not checked.
    Any,
    Null,
    /// `ts` (offset from [`T0`]), `code`, `reason`, `reason_valid_utf8`,
    /// `payload_len`.
    Is(f64, Option<u64>, Option<&'static str>, bool, u64),
}

/// One crafted connection, analysed alone, and what its report must say.
/// Times are offsets from [`T0`]; `None`/`Any` fields are not checked,
/// except the findings: `findings` and `untimed` together are exactly the
/// connection's findings.
pub struct Case {
    /// Names the case when it fails.
    pub name: &'static str,
    /// The capture's file name (as kept by `WSCLOSE_KEEP_CAPTURES`); `""`:
    /// the case's name.
    pub capture: &'static str,
    pub conn: fn() -> Conn,
    /// A packet of another conversation at this time, so the capture goes
    /// on after the connection.
    pub filler: Option<f64>,
    pub outcome: &'static str,
    /// `close.initiator`: `Some(NO_SIDE)` asserts null.
    pub initiator: Option<Side>,
    pub client_close: CloseFrame,
    pub server_close: CloseFrame,
    pub handshake_s: Secs,
    pub idle_s: Secs,
    /// `close.tcp_end`: kind, by, ts.
    pub tcp_end: Option<(&'static str, Side, Option<f64>)>,
    /// `frames.client`: text, binary, continuation, ping, pong, close,
    /// payload_bytes.
    pub client_frames: Option<[u64; 7]>,
    pub server_frames: Option<[u64; 7]>,
    /// `client` and `server` addresses.
    pub addrs: Option<(&'static str, &'static str)>,
    /// Findings with their time.
    pub findings: &'static [(&'static str, Side, f64)],
    /// Findings whose time is not checked.
    pub untimed: &'static [(&'static str, Side)],
    /// Findings whose message must give this count (rule 6).
    pub counted: &'static [(&'static str, Side, u64)],
    /// `totals.close_codes`.
    pub close_codes: Option<&'static [(&'static str, u64)]>,
    /// `totals.findings`.
    pub totals_findings: Option<&'static [(&'static str, u64)]>,
    /// Whatever else the case checks, given the summary and its connection.
    pub more: fn(&Value, &Value),
}

impl Case {
    /// Checks nothing but the outcome and the findings (none).
    pub const DEFAULT: Case = Case {
        name: "",
        capture: "",
        conn: Conn::standard,
        filler: None,
        outcome: "",
        initiator: None,
        client_close: CloseFrame::Any,
        server_close: CloseFrame::Any,
        handshake_s: Secs::Any,
        idle_s: Secs::Any,
        tcp_end: None,
        client_frames: None,
        server_frames: None,
        addrs: None,
        findings: &[],
        untimed: &[],
        counted: &[],
        close_codes: None,
        totals_findings: None,
        more: |_, _| {},
    };
}

/// Runs every case, then fails naming each case that failed and why.
pub fn run_cases(cases: &[Case]) {
    for_each_case(cases, |c| c.name, run_case);
}

/// Runs `check` on every case (a panic fails only that case), then fails
/// with the name and panic message of each case that failed.
pub fn for_each_case<C>(cases: &[C], name: impl Fn(&C) -> &str, check: impl Fn(&C)) {
    let mut failed = Vec::new();
    for case in cases {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(case))) {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("case {}: {msg}", name(case)));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n\n")
    );
}

/// Asserts a JSON number is within [`EPS`] of `expected`, naming it.
#[track_caller]
fn assert_num_of(what: &str, actual: &Value, expected: f64) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number near {expected}, got {actual}"));
    assert!(
        (a - expected).abs() <= EPS,
        "{what}: expected {expected:.6}, got {a:.6} (diff {:e})",
        a - expected
    );
}

impl Secs {
    fn check(self, what: &str, v: &Value) {
        match self {
            Secs::Any => {}
            Secs::Null => assert!(v.is_null(), "{what} should be null, got {v}"),
            Secs::Is(x) => assert_num_of(what, v, x),
        }
    }
}

impl CloseFrame {
    fn check(self, what: &str, v: &Value) {
        match self {
            CloseFrame::Any => {}
            CloseFrame::Null => assert!(v.is_null(), "{what} should be null, got {v}"),
            CloseFrame::Is(ts, code, reason, valid, len) => {
                assert_close_frame(v, t(ts), code, reason, valid, len)
            }
        }
    }
}

fn run_case(case: &Case) {
    let mut cap = Capture::of(&(case.conn)());
    if let Some(at) = case.filler {
        cap.filler(t(at));
    }
    let file = if case.capture.is_empty() {
        case.name
    } else {
        case.capture
    };
    let s = analyze_json(&cap.write(file), &[]);
    let c = only_conn(&s);
    assert_outcome(c, case.outcome);
    let close = &c["close"];
    match case.initiator {
        None => {}
        Some(None) => assert!(close["initiator"].is_null(), "initiator should be null"),
        Some(Some(side)) => assert_eq!(close["initiator"], side, "initiator"),
    }
    case.client_close
        .check("client_frame", &close["client_frame"]);
    case.server_close
        .check("server_frame", &close["server_frame"]);
    case.handshake_s.check("handshake_s", &close["handshake_s"]);
    case.idle_s.check("idle_s", &close["idle_s"]);
    if let Some((kind, by, ts)) = case.tcp_end {
        assert_tcp_end(c, kind, by, ts.map(t));
    }
    if let Some(f) = case.client_frames {
        assert_frames(c, "client", f);
    }
    if let Some(f) = case.server_frames {
        assert_frames(c, "server", f);
    }
    if let Some((client, server)) = case.addrs {
        assert_eq!(c["client"], client, "client address");
        assert_eq!(c["server"], server, "server address");
    }
    let expected: Vec<(&str, Side)> = (case.findings.iter().map(|&(k, side, _)| (k, side)))
        .chain(case.untimed.iter().copied())
        .collect();
    assert_findings(c, &expected);
    for &(kind, side, at) in case.findings {
        assert_num_of(
            &format!("ts of {kind} ({side:?})"),
            &finding(c, kind, side)["ts"],
            t(at),
        );
    }
    for &(kind, side, n) in case.counted {
        let msg = finding(c, kind, side)["message"].as_str().unwrap();
        assert!(
            mentions_number(msg, n),
            "{kind}: the message should give the count {n}: {msg:?}"
        );
    }
    if let Some(codes) = case.close_codes {
        assert_eq!(
            count_map(&s["totals"]["close_codes"]),
            counts(codes),
            "totals.close_codes"
        );
    }
    if let Some(kinds) = case.totals_findings {
        assert_eq!(
            count_map(&s["totals"]["findings"]),
            counts(kinds),
            "totals.findings"
        );
    }
    (case.more)(&s, c);
}
