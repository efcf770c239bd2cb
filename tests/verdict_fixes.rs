//! The verdict fixes of issue 7 ("Verdict fixes found by running real
//! peers' test suites"), as amended into contract part 1 (rule 8, the
//! findings table, rule 4) and CLARIFICATIONS.md:
//! a server speaking first, a TCP end before the upgrade response, a 101
//! without Sec-WebSocket-Accept, close reasons of long close frames, the
//! severity of `close_timeout`, and times in finding messages.

mod common;

use common::*;
use serde_json::Value;

/// `T0 + offset` seconds.
fn t(offset: f64) -> f64 {
    T0 + offset
}

/// Handshake and upgrade request of the standard connection at `t(0)`.
fn requested() -> Conn {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c
}

// ---------------------------------------------------------------------------
// Rule 8: a server that speaks first
// ---------------------------------------------------------------------------

#[test]
fn a_server_speaking_first_does_not_hide_the_upgrade() {
    // Rule 8: "Bytes the server sends before the client's request (a
    // banner, an early error) do not stop an upgrade request at the start
    // of the client's stream from being recognised."
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    c.server_send(t(0.0005), b"220 welcome to the chat gateway\r\n");
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_send(t(RESP_AT), &upgrade_response(101, Some(KEY), &[]));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"hello"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("server_speaks_first"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_eq!(c["server"], SERVER_ADDR);
    let h = &c["handshake"];
    assert_eq!(h["path"], "/chat");
    assert_eq!(h["status"], 101);
    assert_eq!(h["accept_valid"], true);
    assert_num(&h["request_ts"], t(REQ_AT));
    assert_num(&h["response_ts"], t(RESP_AT));
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 5 + 5]);
    assert_frames(c, "server", [0, 0, 0, 0, 0, 1, 2]);
    assert_findings(c, &[]);
}

#[test]
fn a_server_sending_an_early_error_first_still_lists_the_request() {
    // An early 400 before the request, then the server closes: the
    // request is recognised, and the upgrade did not succeed.
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    c.server_send(t(0.0005), &upgrade_response(400, None, &[]));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_fin(t(0.01));
    c.client_fin(t(0.011));
    c.server_ack(t(0.012));
    let s = analyze_json(&Capture::of(&c).write("server_early_error"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_eq!(c["handshake"]["path"], "/chat");
    assert_num(&c["handshake"]["request_ts"], t(REQ_AT));
    assert_outcome(c, "rejected");
    assert_findings(c, &[("handshake_rejected", SERVER)]);
}

// ---------------------------------------------------------------------------
// Rule 8: a TCP end before the response
// ---------------------------------------------------------------------------

#[test]
fn a_tcp_end_before_the_response_is_rejected_even_if_a_101_follows() {
    // Rule 8: "A TCP end (FIN or RST from either side) before the response
    // is `rejected` even when a 101 comes after it."
    let mut fin = requested();
    fin.client_fin(t(0.5));
    fin.server_send(t(1.0), &upgrade_response(101, Some(KEY), &[]));
    fin.server_fin(t(1.1));
    fin.client_ack(t(1.101));

    let mut rst = {
        let mut c = Conn::new("10.0.0.1:51235", SERVER_ADDR);
        c.handshake(t(10.0));
        let host = c.host();
        c.client_send(t(10.0 + REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
        c
    };
    rst.client_rst(t(10.5));
    rst.server_send(t(10.6), &upgrade_response(101, Some(KEY), &[]));

    let s = analyze_json(
        &Capture::merge(&[&fin, &rst]).write("tcp_end_before_response"),
        &[],
    );
    let cs = conns(&s);
    assert_eq!(cs.len(), 2);
    for (c, kind, end) in [(&cs[0], "fin", 0.5), (&cs[1], "rst", 10.5)] {
        assert_outcome(c, "rejected");
        assert_tcp_end(c, kind, CLIENT, Some(t(end)));
        assert!(
            c["close"]["idle_s"].is_null(),
            "rule 11: null when rejected"
        );
        assert_findings(c, &[("handshake_rejected", SERVER)]);
        // Reading of rule 16 ("at the response, or at the TCP end when none
        // came"): no response came before the TCP end, which is when the
        // upgrade failed.
        assert_num(&finding(c, "handshake_rejected", SERVER)["ts"], t(end));
    }
}

// ---------------------------------------------------------------------------
// invalid_accept: a 101 without Sec-WebSocket-Accept
// ---------------------------------------------------------------------------

#[test]
fn a_101_without_accept_is_invalid_accept_and_says_it_is_missing() {
    let mut missing = requested();
    missing.server_send(t(RESP_AT), &upgrade_response(101, None, &[]));
    missing.close_cleanly(t(1.0));
    let mut wrong = Conn::new("10.0.0.1:51235", SERVER_ADDR);
    wrong.handshake(t(5.0));
    let host = wrong.host();
    wrong.client_send(t(5.0 + REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    wrong.server_send(
        t(5.0 + RESP_AT),
        &upgrade_response(101, Some("AAAAAAAAAAAAAAAAAAAAAA=="), &[]),
    );
    wrong.close_cleanly(t(6.0));
    let s = analyze_json(
        &Capture::merge(&[&missing, &wrong]).write("invalid_accept_missing"),
        &[],
    );
    let cs = conns(&s);

    let c = &cs[0];
    assert_eq!(c["handshake"]["status"], 101);
    // Part 1: `accept_valid` is null when either header is missing.
    assert!(c["handshake"]["accept_valid"].is_null());
    // The outcome follows from what happens next (rule 8).
    assert_outcome(c, "clean");
    assert_findings(c, &[("invalid_accept", SERVER)]);
    let f = finding(c, "invalid_accept", SERVER);
    assert_num(&f["ts"], t(RESP_AT));
    let msg = f["message"].as_str().unwrap().to_lowercase();
    assert!(
        [
            "missing",
            "lacks",
            "without",
            "no sec-websocket-accept",
            "absent"
        ]
        .iter()
        .any(|w| msg.contains(w)),
        "the message says the header is missing: {msg:?}"
    );

    // "the message says which": a wrong value is not "missing".
    let c = &cs[1];
    assert_eq!(c["handshake"]["accept_valid"], false);
    let msg = finding(c, "invalid_accept", SERVER)["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(!msg.contains("missing"), "{msg:?}");
}

// ---------------------------------------------------------------------------
// Rule 4: the reason of a close frame over 125 bytes
// ---------------------------------------------------------------------------

#[test]
fn a_close_frame_over_125_bytes_keeps_its_whole_reason() {
    let server_reason: String = "abcdefghij".repeat(20);
    let client_reason = "é".repeat(75); // 150 bytes, 2 per character
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, &client_reason));
    c.server_send(t(1.001), &sclose(1000, &server_reason));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("long_close_reason"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // Rule 4: "`reason` the rest", the whole of it.
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1000),
        Some(&client_reason),
        true,
        152,
    );
    assert_close_frame(
        &c["close"]["server_frame"],
        t(1.001),
        Some(1000),
        Some(&server_reason),
        true,
        202,
    );
    assert_findings(
        c,
        &[
            ("control_frame_too_long", CLIENT),
            ("control_frame_too_long", SERVER),
        ],
    );
}

// ---------------------------------------------------------------------------
// close_timeout: error when never answered, warning when late
// ---------------------------------------------------------------------------

/// The client closes at 1.0; the server answers at `answer` (or never);
/// the capture runs until 80.
fn close_at_one(answer: Option<f64>, name: &str) -> TempFile {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"x"));
    c.client_send(t(1.0), &cclose(1000, ""));
    if let Some(at) = answer {
        c.server_send(t(at), &sclose(1000, ""));
        c.server_fin(t(at + 0.001));
        c.client_fin(t(at + 0.002));
    }
    let mut cap = Capture::of(&c);
    cap.filler(t(80.0));
    cap.write(name)
}

#[track_caller]
fn assert_close_timeout(path: &std::path::Path, timeout: &str, severity: &str) {
    let s = analyze_json(path, &["--close-timeout", timeout]);
    let c = only_conn(&s);
    assert_outcome(c, "timeout");
    assert_findings(c, &[("close_timeout", SERVER)]);
    let f = finding(c, "close_timeout", SERVER);
    assert_eq!(
        f["severity"], severity,
        "close_timeout with --close-timeout {timeout}: {f:#}"
    );
    // Rule 16: at the deadline.
    assert_num(&f["ts"], t(1.0 + timeout.parse::<f64>().unwrap()));
    assert_eq!(s["totals"]["severities"][severity], 1);
}

#[test]
fn close_timeout_is_an_error_when_the_answer_never_came() {
    let path = close_at_one(None, "close_timeout_never");
    assert_close_timeout(&path, "2", "error");
    assert_close_timeout(&path, "30", "error");
}

#[test]
fn close_timeout_is_a_warning_when_the_answer_came_late() {
    let path = close_at_one(Some(40.0), "close_timeout_late");
    assert_close_timeout(&path, "2", "warning");
    assert_close_timeout(&path, "30", "warning");
}

#[test]
fn close_timeout_is_an_error_when_tcp_ends_after_the_deadline_without_answer() {
    // Rule 1: a TCP end after the deadline does not change `timeout`; the
    // answer never came.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_fin(t(10.0));
    c.client_fin(t(10.001));
    let path = Capture::of(&c).write("close_timeout_fin_after_deadline");
    assert_close_timeout(&path, "2", "error");
}

// ---------------------------------------------------------------------------
// Finding messages: no epoch seconds, times relative to the connection
// ---------------------------------------------------------------------------

/// Three unmasked client frames, the first 12.4 s after the 101.
fn unmasked_at_12_4(client: &str, start: f64) -> Conn {
    let mut c = Conn::new(client, SERVER_ADDR);
    c.open_ws(t(start));
    for k in 0..3 {
        let at = start + RESP_AT + 12.4 + 0.5 * k as f64;
        c.client_send(t(at), &sframe(OP_TEXT, b"plain"));
    }
    c.close_cleanly(t(start + 15.0));
    c
}

#[test]
fn finding_messages_give_times_relative_to_the_upgrade() {
    let c = unmasked_at_12_4(CLIENT_ADDR, 0.0);
    let s = analyze_json(&Capture::of(&c).write("relative_times"), &[]);
    let c = only_conn(&s);
    let f = finding(c, "unmasked_client_frame", CLIENT);
    assert_num(&f["ts"], t(RESP_AT + 12.4));
    let msg = f["message"].as_str().unwrap();
    // Rule 6: the count, and the first one's time as in "12.4 s after
    // the upgrade" (wording free).
    assert!(mentions_number(msg, 3), "{msg:?}");
    assert!(
        mentions_value(msg, 12.4, 0.05) && msg.contains("after"),
        "the first time relative to the upgrade: {msg:?}"
    );
    assert_no_epoch_in_findings(&s);
}

/// A capture with many kinds of findings.
fn varied() -> Vec<Conn> {
    let addr = |i: usize| format!("10.0.0.1:{}", 45000 + i);
    let mut v = Vec::new();
    let mut next = |f: &dyn Fn(&mut Conn, f64)| {
        let i = v.len();
        let s = 20.0 * i as f64;
        let mut c = Conn::new(&addr(i), SERVER_ADDR);
        f(&mut c, s);
        v.push(c);
    };
    // unanswered_close
    next(&|c, s| {
        c.open_ws(t(s));
        c.client_send(t(s + 2.0), &cclose(1000, ""));
        c.server_fin(t(s + 3.0));
    });
    // close_timeout (never answered), error_close_code
    next(&|c, s| {
        c.open_ws(t(s));
        c.server_send(t(s + 1.0), &sclose(1011, "oops"));
    });
    // abnormal_closure
    next(&|c, s| {
        c.open_ws(t(s));
        c.client_send(t(s + 1.0), &cframe(OP_TEXT, b"x"));
        c.server_fin(t(s + 9.0));
        c.client_fin(t(s + 9.001));
    });
    // handshake_rejected
    next(&|c, s| {
        c.handshake(t(s));
        let host = c.host();
        c.client_send(t(s + REQ_AT), &upgrade_request("/x", &host, KEY, &[]));
        c.server_send(t(s + RESP_AT), &upgrade_response(403, None, &[]));
        c.server_fin(t(s + 0.01));
    });
    // invalid_accept, and many frame violations, client_closed_tcp_first
    next(&|c, s| {
        c.handshake(t(s));
        let host = c.host();
        c.client_send(t(s + REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
        c.server_send(t(s + RESP_AT), &upgrade_response(101, Some("bad"), &[]));
        c.client_send(t(s + 1.0), &sframe(OP_TEXT, b"unmasked"));
        c.server_send(t(s + 1.1), &cframe(OP_TEXT, b"masked"));
        c.client_send(t(s + 1.2), &ws_frame(true, RSV2, OP_TEXT, Some(MASK), b"r"));
        c.client_send(t(s + 1.3), &cframe(0x5, b"op"));
        c.client_send(t(s + 1.4), &cframe(OP_PING, &[0; 126]));
        c.server_send(t(s + 1.5), &ws_frame(false, 0, OP_PING, None, b"f"));
        c.client_send(t(s + 2.0), &cframe(OP_CLOSE, &close_payload(1004, b"\xff")));
        c.client_send(t(s + 2.1), &cframe(OP_TEXT, b"late"));
        c.server_send(t(s + 2.2), &sclose(1005, ""));
        c.client_fin(t(s + 2.3));
        c.server_fin(t(s + 2.4));
    });
    // invalid_close_payload, tcp_not_closed
    next(&|c, s| {
        c.open_ws(t(s));
        c.client_send(t(s + 1.0), &cframe(OP_CLOSE, &[0x03]));
        c.server_send(t(s + 1.001), &sclose(1000, ""));
    });
    // malformed_frame, reset_after_close
    next(&|c, s| {
        c.open_ws(t(s));
        c.server_send(t(s + 1.0), &[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1, 0]);
        c.client_send(t(s + 2.0), &cclose(1002, ""));
        c.server_rst(t(s + 2.1));
    });
    // capture_gap
    next(&|c, s| {
        c.open_ws(t(s));
        c.lose(Dir::S2C, &sframe(OP_TEXT, b"lost"));
        c.server_send(t(s + 1.0), &sframe(OP_TEXT, b"after"));
        c.close_cleanly(t(s + 2.0));
    });
    // midstream
    next(&|c, s| {
        c.client_send(t(s + 1.0), &cframe(OP_TEXT, b"mid"));
        c.close_cleanly(t(s + 2.0));
    });
    // the new kinds
    next(&|c, s| {
        c.open_ws(t(s));
        c.client_send(t(s + 1.0), &cframe(OP_PING, b"p"));
        c.client_send(t(s + 1.1), &cframe(OP_TEXT, b"\xff"));
        c.client_send(t(s + 1.2), &ws_frame(true, 0, OP_CONT, Some(MASK), b"o"));
        c.server_send(t(s + 1.3), &ws_frame(false, 0, OP_TEXT, None, b"a"));
        c.server_send(t(s + 1.4), &sframe(OP_BINARY, b"b"));
        c.server_send(
            t(s + 1.5),
            &ws_frame_len_form(true, 0, OP_BINARY, None, b"n", LenForm::Ext16),
        );
        c.rst_with_ttl(Dir::S2C, t(s + 9.0), 200);
    });
    v.push(unmasked_at_12_4(&addr(v.len()), 20.0 * v.len() as f64));
    v
}

#[test]
fn finding_messages_never_hold_epoch_seconds() {
    let conns = varied();
    let refs: Vec<&Conn> = conns.iter().collect();
    let mut cap = Capture::merge(&refs);
    cap.filler(t(20.0 * conns.len() as f64 + 30.0));
    let s = analyze_json(&cap.write("varied_findings"), &[]);
    let kinds: Vec<&String> = s["totals"]["findings"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(kinds.len() >= 18, "a varied capture: {kinds:?}");
    let messages: Vec<&Value> = common::conns(&s)
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .collect();
    assert!(messages.len() >= 20);
    assert_no_epoch_in_findings(&s);
}
