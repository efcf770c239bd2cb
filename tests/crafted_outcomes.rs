//! Outcomes: each of the seven, from one crafted connection each (a table
//! of cases), the full report of a clean close field by field, and every
//! outcome in one capture. See crafted_support/mod.rs.

mod common;
mod crafted_support;

use common::*;
use crafted_support::*;
use serde_json::json;

// Outcomes
// ---------------------------------------------------------------------------

#[test]
fn clean_close_full_report() {
    let c = clean_conn();
    let cap = Capture::of(&c);
    let path = cap.write("clean_close_full_report");
    let s = analyze_json(&path, &[]);

    assert_eq!(s["schema"], "wsclose-summary/1");
    assert_eq!(s["tool"]["name"], "wsclose");
    assert_eq!(s["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_num(&s["settings"]["close_timeout_s"], 5.0);

    let src = &s["sources"];
    assert_eq!(src.as_array().unwrap().len(), 1);
    assert_eq!(src[0]["kind"], "file");
    assert_eq!(src[0]["name"], path_str(&path));
    assert_eq!(src[0]["link_type"], "EN10MB");
    assert_eq!(src[0]["packets"].as_u64(), Some(cap.len() as u64));
    assert_eq!(src[0]["bytes"].as_u64(), Some(cap.captured_bytes()));
    assert_num(&src[0]["first_ts"], t(0.0));
    assert_num(&src[0]["last_ts"], t(1.0008));
    assert!(src[0]["dropped"].is_null());

    let c = only_conn(&s);
    assert_eq!(c["id"], 1);
    assert_eq!(c["client"], "10.0.0.1:51234");
    assert_eq!(c["server"], "10.0.0.2:8765");
    assert_num(&c["first_ts"], t(0.0));
    assert_num(&c["last_ts"], t(1.0008));

    let h = &c["handshake"];
    assert_num(&h["request_ts"], t(REQ_AT));
    assert_num(&h["response_ts"], t(RESP_AT));
    assert_eq!(h["path"], "/chat");
    assert_eq!(h["host"], "10.0.0.2:8765");
    assert_eq!(h["status"], 101);
    assert_eq!(h["accept_valid"], true);
    assert!(h["subprotocol"].is_null());
    assert_eq!(h["extensions"], json!([]));

    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 10]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 7]);

    let close = &c["close"];
    assert_outcome(c, "clean");
    assert_eq!(close["initiator"], "client");
    assert_close_frame(
        &close["client_frame"],
        t(1.0),
        Some(1000),
        Some("bye"),
        true,
        5,
    );
    assert_close_frame(
        &close["server_frame"],
        t(1.0004),
        Some(1000),
        Some(""),
        true,
        2,
    );
    assert_num(&close["handshake_s"], 0.0004);
    // Last frame before the closing: the server's text at +0.5.
    assert_num(&close["idle_s"], 0.5);
    assert_tcp_end(c, "fin", SERVER, Some(t(1.0006)));
    assert_findings(c, &[]);

    let totals = &s["totals"];
    assert_eq!(totals["connections"], 1);
    assert_eq!(
        totals["outcomes"],
        json!({"clean": 1, "unanswered": 0, "timeout": 0, "abnormal": 0, "pending": 0, "open": 0, "rejected": 0, "encrypted": 0})
    );
    assert_eq!(count_map(&totals["close_codes"]), counts(&[("1000", 2)]));
    assert_eq!(count_map(&totals["findings"]), counts(&[]));
    assert_eq!(
        totals["severities"],
        json!({"error": 0, "warning": 0, "info": 0})
    );
}

const OUTCOMES: &[Case] = &[
    Case {
        name: "clean_close_client_ends_tcp_first_is_info",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.server_send(t(1.0), &sframe(OP_TEXT, b"tick"));
            c.server_send(t(5.0), &sclose(1001, "going away"));
            c.client_send(t(5.01), &cclose(1001, ""));
            c.client_fin(t(5.02));
            c.server_fin(t(5.03));
            c.client_ack(t(5.04));
            c
        },
        outcome: "clean",
        initiator: Some(SERVER),
        server_close: CloseFrame::Is(5.0, Some(1001), Some("going away"), true, 12),
        client_close: CloseFrame::Is(5.01, Some(1001), Some(""), true, 2),
        handshake_s: Secs::Is(0.01),
        idle_s: Secs::Is(4.0),
        tcp_end: Some(("fin", CLIENT, Some(5.02))),
        findings: &[("client_closed_tcp_first", CLIENT, 5.02)],
        totals_findings: Some(&[("client_closed_tcp_first", 1)]),
        close_codes: Some(&[("1001", 2)]),
        more: |s, _| {
            assert_eq!(
                s["totals"]["severities"],
                json!({"error": 0, "warning": 0, "info": 1})
            );
        },
        ..Case::DEFAULT
    },
    Case {
        name: "unanswered_close_server_fin",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cframe(OP_TEXT, b"x"));
            c.client_send(t(2.0), &cclose(1001, ""));
            c.server_fin(t(3.0));
            c.client_fin(t(3.001));
            c.server_ack(t(3.002));
            c
        },
        outcome: "unanswered",
        initiator: Some(CLIENT),
        client_close: CloseFrame::Is(2.0, Some(1001), Some(""), true, 2),
        server_close: CloseFrame::Null,
        handshake_s: Secs::Null,
        idle_s: Secs::Is(1.0),
        tcp_end: Some(("fin", SERVER, Some(3.0))),
        // Side: who never answered; time: the TCP end (rule 16).
        findings: &[("unanswered_close", SERVER, 3.0)],
        ..Case::DEFAULT
    },
    Case {
        name: "unanswered_close_server_rst_is_also_reset_after_close",
        capture: "unanswered_close_server_rst",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(2.0), &cclose(1000, ""));
            c.server_rst(t(2.5));
            c
        },
        outcome: "unanswered",
        tcp_end: Some(("rst", SERVER, Some(2.5))),
        // No frame before the closing: idle is measured from the 101 (rule 11).
        idle_s: Secs::Is(2.0 - RESP_AT),
        findings: &[
            ("unanswered_close", SERVER, 2.5),
            ("reset_after_close", SERVER, 2.5),
        ],
        ..Case::DEFAULT
    },
    // The client sends its close frame and then its own FIN: the TCP end is
    // the first FIN from either side (rule 1), so this is unanswered, side
    // server (who never answered), at the client's FIN.
    // Reading: `client_closed_tcp_first` is only about the order of FINs
    // "after the close handshake", which never completed here, so it is not
    // reported.
    Case {
        name: "unanswered_when_the_closer_itself_ends_tcp",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(2.0), &cclose(1000, "bye"));
            c.client_fin(t(2.5));
            c.server_fin(t(2.6));
            c.client_ack(t(2.601));
            c
        },
        outcome: "unanswered",
        tcp_end: Some(("fin", CLIENT, Some(2.5))),
        findings: &[("unanswered_close", SERVER, 2.5)],
        ..Case::DEFAULT
    },
    Case {
        name: "timeout_when_the_answer_comes_late",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cframe(OP_TEXT, b"x"));
            c.client_send(t(10.0), &cclose(1000, ""));
            c.server_send(t(15.5), &sclose(1000, ""));
            c.server_fin(t(15.6));
            c.client_fin(t(15.7));
            c.server_ack(t(15.8));
            c
        },
        // Rule 1: an answer after the deadline does not change it.
        outcome: "timeout",
        initiator: Some(CLIENT),
        server_close: CloseFrame::Is(15.5, Some(1000), Some(""), true, 2),
        // Reading: the late answer is still an answer, so handshake_s is its
        // delay.
        handshake_s: Secs::Is(5.5),
        idle_s: Secs::Is(9.0),
        tcp_end: Some(("fin", SERVER, Some(15.6))),
        // Rule 16: close_timeout at its deadline; side: the late one.
        findings: &[("close_timeout", SERVER, 15.0)],
        ..Case::DEFAULT
    },
    Case {
        name: "timeout_when_never_answered_and_capture_goes_on",
        capture: "timeout_when_never_answered",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.server_send(t(0.5), &sframe(OP_TEXT, b"x"));
            c.server_send(t(1.0), &sclose(1001, "going away"));
            c.client_ack(t(1.0001));
            c
        },
        // The capture goes on (rule 2: its end is the last packet of the
        // whole capture, whatever connection it belongs to).
        filler: Some(7.0),
        outcome: "timeout",
        initiator: Some(SERVER),
        client_close: CloseFrame::Null,
        handshake_s: Secs::Null,
        idle_s: Secs::Is(0.5),
        tcp_end: Some(("none", NO_SIDE, None)),
        findings: &[("close_timeout", CLIENT, 6.0)],
        ..Case::DEFAULT
    },
    Case {
        name: "pending_when_capture_ends_before_the_deadline",
        capture: "pending_when_capture_ends_early",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(OP_TEXT, b"x"));
            c.client_send(t(1.0), &cclose(1000, ""));
            c.server_ack(t(3.0));
            c
        },
        outcome: "pending",
        initiator: Some(CLIENT),
        server_close: CloseFrame::Null,
        handshake_s: Secs::Null,
        idle_s: Secs::Is(0.5),
        tcp_end: Some(("none", NO_SIDE, None)),
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "abnormal_closure_by_server_fin_after_idle",
        capture: "abnormal_closure_by_server_fin",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cframe(OP_TEXT, b"ping?"));
            c.server_send(t(10.0), &sframe(OP_TEXT, b"pong!"));
            c.server_fin(t(40.0));
            c.client_fin(t(40.001));
            c.server_ack(t(40.002));
            c
        },
        outcome: "abnormal",
        initiator: Some(NO_SIDE),
        client_close: CloseFrame::Null,
        server_close: CloseFrame::Null,
        handshake_s: Secs::Null,
        // No close frame: idle runs to the TCP end.
        idle_s: Secs::Is(30.0),
        tcp_end: Some(("fin", SERVER, Some(40.0))),
        findings: &[("abnormal_closure", SERVER, 40.0)],
        close_codes: Some(&[]),
        ..Case::DEFAULT
    },
    Case {
        name: "abnormal_closure_by_client_rst_without_frames",
        capture: "abnormal_closure_by_client_rst",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_rst(t(20.0));
            c
        },
        outcome: "abnormal",
        tcp_end: Some(("rst", CLIENT, Some(20.0))),
        idle_s: Secs::Is(20.0 - RESP_AT),
        // No close frame was sent, so no reset_after_close (rule 10).
        findings: &[("abnormal_closure", CLIENT, 20.0)],
        ..Case::DEFAULT
    },
    Case {
        name: "open_when_capture_ends_without_close",
        capture: "open_when_capture_ends",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cframe(OP_TEXT, b"a"));
            c.server_send(t(2.0), &sframe(OP_TEXT, b"b"));
            c.client_ack(t(2.0001));
            c
        },
        outcome: "open",
        initiator: Some(NO_SIDE),
        idle_s: Secs::Null,
        tcp_end: Some(("none", NO_SIDE, None)),
        findings: &[],
        more: |_, c| assert_num(&c["last_ts"], t(2.0001)),
        ..Case::DEFAULT
    },
    Case {
        name: "rejected_by_a_403_response",
        conn: || {
            let mut c = Conn::standard();
            c.handshake(t(0.0));
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            let mut resp = upgrade_response(403, None, &[("Content-Length", "9")]);
            // A body that must not be decoded as frames.
            resp.extend_from_slice(b"Forbidden");
            c.server_send(t(RESP_AT), &resp);
            c.server_fin(t(0.003));
            c.client_fin(t(0.004));
            c.server_ack(t(0.005));
            c
        },
        outcome: "rejected",
        // Rule 11.
        idle_s: Secs::Null,
        tcp_end: Some(("fin", SERVER, Some(0.003))),
        client_frames: Some([0; 7]),
        server_frames: Some([0; 7]),
        // Rule 16: at the response.
        findings: &[("handshake_rejected", SERVER, RESP_AT)],
        more: |_, c| {
            let h = &c["handshake"];
            assert_eq!(h["status"], 403);
            assert_num(&h["response_ts"], t(RESP_AT));
            assert!(
                h["accept_valid"].is_null(),
                "no Sec-WebSocket-Accept header"
            );
        },
        ..Case::DEFAULT
    },
    Case {
        name: "rejected_when_tcp_ends_without_a_response",
        capture: "rejected_without_a_response",
        conn: || {
            let mut c = Conn::standard();
            c.handshake(t(0.0));
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            c.server_ack(t(0.01));
            c.client_fin(t(5.0));
            c.server_fin(t(5.001));
            c.client_ack(t(5.002));
            c
        },
        outcome: "rejected",
        idle_s: Secs::Null,
        tcp_end: Some(("fin", CLIENT, Some(5.0))),
        // Rule 8: side server, the message says no response came; rule 16:
        // at the TCP end.
        findings: &[("handshake_rejected", SERVER, 5.0)],
        more: |_, c| {
            let h = &c["handshake"];
            assert!(h["status"].is_null());
            assert!(h["response_ts"].is_null());
            assert!(h["accept_valid"].is_null());
            assert_num(&h["request_ts"], t(REQ_AT));
            let f = finding(c, "handshake_rejected", SERVER);
            let msg = f["message"].as_str().unwrap().to_lowercase();
            assert!(
                msg.contains("no response"),
                "message should say no response came: {msg:?}"
            );
        },
        ..Case::DEFAULT
    },
    Case {
        name: "open_when_request_has_no_response_and_tcp_still_open",
        capture: "open_request_without_response",
        conn: || {
            let mut c = Conn::standard();
            c.handshake(t(0.0));
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            c.server_ack(t(0.05));
            c
        },
        // Rule 8.
        outcome: "open",
        idle_s: Secs::Null,
        findings: &[],
        more: |_, c| {
            assert!(c["handshake"]["status"].is_null());
            assert_eq!(c["handshake"]["path"], "/chat");
        },
        ..Case::DEFAULT
    },
];

#[test]
fn each_outcome_from_one_connection() {
    run_cases(OUTCOMES);
}

#[test]
fn every_outcome_in_one_capture() {
    let conn = |i: u16| Conn::new(&format!("10.0.0.1:{}", 50001 + i), SERVER_ADDR);
    let b = |i: u16| t(0.1 * f64::from(i));

    let mut clean = conn(0);
    clean.open_ws(b(0));
    clean.close_cleanly(b(0) + 1.0);

    let mut unanswered = conn(1);
    unanswered.open_ws(b(1));
    unanswered.client_send(b(1) + 1.0, &cclose(1000, ""));
    unanswered.server_fin(b(1) + 1.5);

    let mut timeout = conn(2);
    timeout.open_ws(b(2));
    timeout.client_send(b(2) + 1.0, &cclose(1000, ""));

    let mut abnormal = conn(3);
    abnormal.open_ws(b(3));
    abnormal.server_rst(b(3) + 2.0);

    let mut pending = conn(4);
    pending.open_ws(b(4));
    pending.client_send(t(8.0), &cclose(1000, ""));

    let mut open = conn(5);
    open.open_ws(b(5));
    open.client_send(b(5) + 1.0, &cframe(OP_TEXT, b"1"));
    open.client_send(t(10.0), &cframe(OP_TEXT, b"2")); // the capture's last packet

    let mut rejected = conn(6);
    rejected.handshake(b(6));
    let host = rejected.host();
    rejected.client_send(b(6) + REQ_AT, &upgrade_request("/chat", &host, KEY, &[]));
    rejected.server_send(b(6) + RESP_AT, &upgrade_response(404, None, &[]));
    rejected.server_fin(b(6) + 0.01);
    rejected.client_fin(b(6) + 0.011);

    let cap = Capture::merge(&[
        &clean,
        &unanswered,
        &timeout,
        &abnormal,
        &pending,
        &open,
        &rejected,
    ]);
    let s = analyze_json(&cap.write("every_outcome_in_one_capture"), &[]);
    let cs = conns(&s);
    assert_eq!(cs.len(), 7);
    let expected: [(&str, &Expected); 7] = [
        ("clean", &[]),
        ("unanswered", &[("unanswered_close", SERVER)]),
        ("timeout", &[("close_timeout", SERVER)]),
        ("abnormal", &[("abnormal_closure", SERVER)]),
        ("pending", &[]),
        ("open", &[]),
        ("rejected", &[("handshake_rejected", SERVER)]),
    ];
    for (i, (c, (o, f))) in cs.iter().zip(expected).enumerate() {
        assert_eq!(c["id"], i + 1);
        assert_eq!(c["client"], format!("10.0.0.1:{}", 50001 + i));
        assert_num(&c["first_ts"], b(i as u16));
        assert_outcome(c, o);
        assert_findings(c, f);
    }
    assert_num(&finding(&cs[2], "close_timeout", SERVER)["ts"], b(2) + 6.0);
    let totals = &s["totals"];
    assert_eq!(totals["connections"], 7);
    assert_eq!(
        totals["outcomes"],
        json!({"clean": 1, "unanswered": 1, "timeout": 1, "abnormal": 1, "pending": 1, "open": 1, "rejected": 1, "encrypted": 0})
    );
    assert_eq!(
        count_map(&totals["findings"]),
        counts(&[
            ("unanswered_close", 1),
            ("close_timeout", 1),
            ("abnormal_closure", 1),
            ("handshake_rejected", 1)
        ])
    );
    // close_timeout is an error here: the answer never came.
    assert_eq!(
        totals["severities"],
        json!({"error": 3, "warning": 1, "info": 0})
    );
    assert_eq!(count_map(&totals["close_codes"]), counts(&[("1000", 5)]));
}
