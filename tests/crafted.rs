//! End-to-end tests of `wsclose analyze` on crafted captures, written from
//! the output contract (docs: /work/shared/contract/README.md, "Outcomes",
//! "Findings", "Precise rules" 1-20, "Command line", "Exit status").
//!
//! Every summary read here is also validated against
//! tests/contract/summary.schema.json and the contract's cross-field
//! invariants (see `common::validate_summary`).

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{Value, json};

/// `T0 + offset` seconds.
fn t(offset: f64) -> f64 {
    T0 + offset
}

fn counts(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Whether a message mentions the integer `n` as a number of its own.
fn mentions_number(message: &str, n: u64) -> bool {
    message
        .split(|c: char| !c.is_ascii_digit())
        .any(|tok| tok == n.to_string())
}

/// The clean conversation several tests share: upgrade at T0, client text
/// at +0.1, server text at +0.5, close handshake at +1.0, server FIN first.
fn clean_conn() -> Conn {
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
fn assert_clean_conn(c: &Value) {
    assert_outcome(c, "clean");
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_eq!(c["server"], SERVER_ADDR);
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 10]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 7]);
    assert_findings(c, &[]);
}

#[track_caller]
fn assert_input_error(out: &std::process::Output, file: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on exit 2 (rule 17), got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let msg = stderr.trim();
    assert_eq!(msg.lines().count(), 1, "a one-line message, got {msg:?}");
    assert!(
        msg.contains(file),
        "the message names the file {file}: {msg:?}"
    );
}

// ---------------------------------------------------------------------------
// The builder itself
// ---------------------------------------------------------------------------

#[test]
fn builder_matches_rfc6455_examples() {
    assert_eq!(accept_for(KEY), KEY_ACCEPT);
    // RFC 6455 5.7
    assert_eq!(
        sframe(OP_TEXT, b"Hello"),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(
        cframe(OP_TEXT, b"Hello"),
        [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    assert_eq!(
        ws_frame(false, 0, OP_TEXT, None, b"Hel"),
        [0x01, 0x03, 0x48, 0x65, 0x6c]
    );
    assert_eq!(sframe(OP_BINARY, &[0; 256])[..4], [0x82, 0x7e, 0x01, 0x00]);
    assert_eq!(
        sframe(OP_BINARY, &[0; 65536])[..10],
        [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]
    );
    assert_eq!(ws_frame(true, RSV1, OP_TEXT, None, b"")[0], 0xc1);
    assert_eq!(close_payload(1000, b"bye"), [0x03, 0xe8, b'b', b'y', b'e']);
}

/// A summary that follows the contract (the README's example, made
/// self-consistent).
fn valid_summary() -> Value {
    json!({
      "schema": "wsclose-summary/1",
      "tool": {"name": "wsclose", "version": "0.1.0"},
      "settings": {"close_timeout_s": 5.0},
      "sources": [{"kind": "file", "name": "samples/clean-close.pcap", "link_type": "EN10MB",
                   "packets": 42, "bytes": 5120, "first_ts": 1763700000.123456,
                   "last_ts": 1763700001.5, "dropped": null}],
      "totals": {
        "connections": 1,
        "outcomes": {"clean": 1, "unanswered": 0, "timeout": 0, "abnormal": 0,
                     "pending": 0, "open": 0, "rejected": 0},
        "close_codes": {"1000": 2},
        "findings": {"client_closed_tcp_first": 1},
        "severities": {"error": 0, "warning": 0, "info": 1}
      },
      "connections": [{
        "id": 1, "client": "127.0.0.1:51234", "server": "127.0.0.1:8765",
        "first_ts": 1763700000.123456, "last_ts": 1763700001.5,
        "handshake": {"request_ts": 1763700000.1236, "response_ts": 1763700000.1239,
                      "path": "/chat", "host": "127.0.0.1:8765", "status": 101,
                      "accept_valid": true, "subprotocol": null,
                      "extensions": ["permessage-deflate; client_max_window_bits=12"]},
        "frames": {"client": {"text": 3, "binary": 0, "continuation": 0, "ping": 0,
                              "pong": 0, "close": 1, "payload_bytes": 120},
                   "server": {"text": 3, "binary": 0, "continuation": 0, "ping": 0,
                              "pong": 0, "close": 1, "payload_bytes": 118}},
        "close": {
          "outcome": "clean", "initiator": "client",
          "client_frame": {"ts": 1763700001.2, "code": 1000, "reason": "bye",
                           "reason_valid_utf8": true, "payload_len": 5},
          "server_frame": {"ts": 1763700001.2004, "code": 1000, "reason": "",
                           "reason_valid_utf8": true, "payload_len": 2},
          "handshake_s": 0.0004, "idle_s": 0.9,
          "tcp_end": {"kind": "fin", "by": "client", "ts": 1763700001.2006}
        },
        "findings": [{"kind": "client_closed_tcp_first", "severity": "info", "side": "client",
                      "ts": 1763700001.2006, "message": "the client sent the first FIN"}]
      }]
    })
}

#[test]
fn validator_accepts_a_valid_summary_and_rejects_broken_ones() {
    validate_summary(&valid_summary());
    type Breakage = fn(&mut Value);
    let breakages: [(&str, Breakage); 9] = [
        ("missing outcome key", |v| {
            v["totals"]["outcomes"]
                .as_object_mut()
                .unwrap()
                .remove("open");
        }),
        ("address without port", |v| {
            v["connections"][0]["client"] = json!("127.0.0.1")
        }),
        ("IPv6 without brackets", |v| {
            v["connections"][0]["server"] = json!("::1:8765")
        }),
        ("negative duration", |v| {
            v["connections"][0]["close"]["handshake_s"] = json!(-0.1)
        }),
        ("unknown finding kind", |v| {
            v["connections"][0]["findings"][0]["kind"] = json!("oops")
        }),
        ("wrong severity", |v| {
            v["connections"][0]["findings"][0]["severity"] = json!("warning")
        }),
        ("totals out of step", |v| {
            v["totals"]["outcomes"]["clean"] = json!(2)
        }),
        ("two findings of a kind and side (rule 6)", |v| {
            let f = v["connections"][0]["findings"][0].clone();
            v["connections"][0]["findings"]
                .as_array_mut()
                .unwrap()
                .push(f);
        }),
        ("close codes not matching close frames", |v| {
            v["totals"]["close_codes"] = json!({"1000": 1})
        }),
    ];
    for (what, breakage) in breakages {
        let mut v = valid_summary();
        breakage(&mut v);
        let rejected = std::panic::catch_unwind(|| validate_summary(&v)).is_err();
        assert!(rejected, "the validator should reject: {what}");
    }
}

#[test]
fn every_outcome_and_finding_kind_is_exercised() {
    let schema: Value = serde_json::from_str(include_str!("contract/summary.schema.json")).unwrap();
    // Part 1's kinds are produced here, part 2's in findings_new.rs.
    let source = [include_str!("crafted.rs"), include_str!("findings_new.rs")].concat();
    let kinds = schema["$defs"]["finding_kind"]["enum"].as_array().unwrap();
    assert_eq!(kinds.len(), 30);
    for kind in kinds {
        let kind = kind.as_str().unwrap();
        assert!(
            source.contains(&format!("(\"{kind}\", ")),
            "no test asserts a {kind} finding"
        );
    }
    let outcomes = &schema["$defs"]["connection"]["properties"]["close"]["properties"]["outcome"];
    for o in outcomes["enum"].as_array().unwrap() {
        let o = o.as_str().unwrap();
        if o == "encrypted" {
            // TLS (issue 9) is not implemented yet.
            continue;
        }
        assert!(
            source.contains(&format!("assert_outcome(c, \"{o}\")")),
            "no test asserts outcome {o}"
        );
    }
}

// ---------------------------------------------------------------------------
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
        json!({"clean": 1, "unanswered": 0, "timeout": 0, "abnormal": 0, "pending": 0, "open": 0, "rejected": 0})
    );
    assert_eq!(count_map(&totals["close_codes"]), counts(&[("1000", 2)]));
    assert_eq!(count_map(&totals["findings"]), counts(&[]));
    assert_eq!(
        totals["severities"],
        json!({"error": 0, "warning": 0, "info": 0})
    );
}

#[test]
fn clean_close_client_ends_tcp_first_is_info() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(1.0), &sframe(OP_TEXT, b"tick"));
    c.server_send(t(5.0), &sclose(1001, "going away"));
    c.client_send(t(5.01), &cclose(1001, ""));
    c.client_fin(t(5.02));
    c.server_fin(t(5.03));
    c.client_ack(t(5.04));
    let s = analyze_json(
        &Capture::of(&c).write("clean_close_client_ends_tcp_first_is_info"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_eq!(c["close"]["initiator"], "server");
    assert_close_frame(
        &c["close"]["server_frame"],
        t(5.0),
        Some(1001),
        Some("going away"),
        true,
        12,
    );
    assert_close_frame(
        &c["close"]["client_frame"],
        t(5.01),
        Some(1001),
        Some(""),
        true,
        2,
    );
    assert_num(&c["close"]["handshake_s"], 0.01);
    assert_num(&c["close"]["idle_s"], 4.0);
    assert_tcp_end(c, "fin", CLIENT, Some(t(5.02)));
    assert_findings(c, &[("client_closed_tcp_first", CLIENT)]);
    assert_num(
        &finding(c, "client_closed_tcp_first", CLIENT)["ts"],
        t(5.02),
    );
    assert_eq!(
        count_map(&s["totals"]["findings"]),
        counts(&[("client_closed_tcp_first", 1)])
    );
    assert_eq!(
        s["totals"]["severities"],
        json!({"error": 0, "warning": 0, "info": 1})
    );
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1001", 2)])
    );
}

#[test]
fn unanswered_close_server_fin() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"x"));
    c.client_send(t(2.0), &cclose(1001, ""));
    c.server_fin(t(3.0));
    c.client_fin(t(3.001));
    c.server_ack(t(3.002));
    let s = analyze_json(&Capture::of(&c).write("unanswered_close_server_fin"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "unanswered");
    assert_eq!(c["close"]["initiator"], "client");
    assert_close_frame(
        &c["close"]["client_frame"],
        t(2.0),
        Some(1001),
        Some(""),
        true,
        2,
    );
    assert!(c["close"]["server_frame"].is_null());
    assert!(c["close"]["handshake_s"].is_null());
    assert_num(&c["close"]["idle_s"], 1.0);
    assert_tcp_end(c, "fin", SERVER, Some(t(3.0)));
    // Side: who never answered; time: the TCP end (rule 16).
    assert_findings(c, &[("unanswered_close", SERVER)]);
    assert_num(&finding(c, "unanswered_close", SERVER)["ts"], t(3.0));
}

#[test]
fn unanswered_close_server_rst_is_also_reset_after_close() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(2.0), &cclose(1000, ""));
    c.server_rst(t(2.5));
    let s = analyze_json(&Capture::of(&c).write("unanswered_close_server_rst"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "unanswered");
    assert_tcp_end(c, "rst", SERVER, Some(t(2.5)));
    // No frame before the closing: idle is measured from the 101 (rule 11).
    assert_num(&c["close"]["idle_s"], 2.0 - RESP_AT);
    assert_findings(
        c,
        &[("unanswered_close", SERVER), ("reset_after_close", SERVER)],
    );
    assert_num(&finding(c, "unanswered_close", SERVER)["ts"], t(2.5));
    assert_num(&finding(c, "reset_after_close", SERVER)["ts"], t(2.5));
}

#[test]
fn unanswered_when_the_closer_itself_ends_tcp() {
    // The client sends its close frame and then its own FIN: the TCP end is
    // the first FIN from either side (rule 1), so this is unanswered, side
    // server (who never answered), at the client's FIN.
    // Reading: `client_closed_tcp_first` is only about the order of FINs
    // "after the close handshake", which never completed here, so it is not
    // reported.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(2.0), &cclose(1000, "bye"));
    c.client_fin(t(2.5));
    c.server_fin(t(2.6));
    c.client_ack(t(2.601));
    let s = analyze_json(
        &Capture::of(&c).write("unanswered_when_the_closer_itself_ends_tcp"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "unanswered");
    assert_tcp_end(c, "fin", CLIENT, Some(t(2.5)));
    assert_findings(c, &[("unanswered_close", SERVER)]);
    assert_num(&finding(c, "unanswered_close", SERVER)["ts"], t(2.5));
}

#[test]
fn timeout_when_the_answer_comes_late() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"x"));
    c.client_send(t(10.0), &cclose(1000, ""));
    c.server_send(t(15.5), &sclose(1000, ""));
    c.server_fin(t(15.6));
    c.client_fin(t(15.7));
    c.server_ack(t(15.8));
    let s = analyze_json(
        &Capture::of(&c).write("timeout_when_the_answer_comes_late"),
        &[],
    );
    let c = only_conn(&s);
    // Rule 1: an answer after the deadline does not change it.
    assert_outcome(c, "timeout");
    assert_eq!(c["close"]["initiator"], "client");
    assert_close_frame(
        &c["close"]["server_frame"],
        t(15.5),
        Some(1000),
        Some(""),
        true,
        2,
    );
    // Reading: the late answer is still an answer, so handshake_s is its delay.
    assert_num(&c["close"]["handshake_s"], 5.5);
    assert_num(&c["close"]["idle_s"], 9.0);
    assert_tcp_end(c, "fin", SERVER, Some(t(15.6)));
    // Rule 16: close_timeout at its deadline; side: the late one.
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(15.0));
}

#[test]
fn timeout_when_never_answered_and_capture_goes_on() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(0.5), &sframe(OP_TEXT, b"x"));
    c.server_send(t(1.0), &sclose(1001, "going away"));
    c.client_ack(t(1.0001));
    let mut cap = Capture::of(&c);
    // The capture goes on (rule 2: its end is the last packet of the whole
    // capture, whatever connection it belongs to).
    cap.filler(t(7.0));
    let s = analyze_json(&cap.write("timeout_when_never_answered"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "timeout");
    assert_eq!(c["close"]["initiator"], "server");
    assert!(c["close"]["client_frame"].is_null());
    assert!(c["close"]["handshake_s"].is_null());
    assert_num(&c["close"]["idle_s"], 0.5);
    assert_tcp_end(c, "none", None, None);
    assert_findings(c, &[("close_timeout", CLIENT)]);
    assert_num(&finding(c, "close_timeout", CLIENT)["ts"], t(6.0));
}

#[test]
fn pending_when_capture_ends_before_the_deadline() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"x"));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_ack(t(3.0));
    let s = analyze_json(
        &Capture::of(&c).write("pending_when_capture_ends_early"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "pending");
    assert_eq!(c["close"]["initiator"], "client");
    assert!(c["close"]["server_frame"].is_null());
    assert!(c["close"]["handshake_s"].is_null());
    assert_num(&c["close"]["idle_s"], 0.5);
    assert_tcp_end(c, "none", None, None);
    assert_findings(c, &[]);
}

#[test]
fn abnormal_closure_by_server_fin_after_idle() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"ping?"));
    c.server_send(t(10.0), &sframe(OP_TEXT, b"pong!"));
    c.server_fin(t(40.0));
    c.client_fin(t(40.001));
    c.server_ack(t(40.002));
    let s = analyze_json(
        &Capture::of(&c).write("abnormal_closure_by_server_fin"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "abnormal");
    let close = &c["close"];
    assert!(close["initiator"].is_null());
    assert!(close["client_frame"].is_null() && close["server_frame"].is_null());
    assert!(close["handshake_s"].is_null());
    // No close frame: idle runs to the TCP end.
    assert_num(&close["idle_s"], 30.0);
    assert_tcp_end(c, "fin", SERVER, Some(t(40.0)));
    assert_findings(c, &[("abnormal_closure", SERVER)]);
    assert_num(&finding(c, "abnormal_closure", SERVER)["ts"], t(40.0));
    assert_eq!(count_map(&s["totals"]["close_codes"]), counts(&[]));
}

#[test]
fn abnormal_closure_by_client_rst_without_frames() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_rst(t(20.0));
    let s = analyze_json(
        &Capture::of(&c).write("abnormal_closure_by_client_rst"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "abnormal");
    assert_tcp_end(c, "rst", CLIENT, Some(t(20.0)));
    assert_num(&c["close"]["idle_s"], 20.0 - RESP_AT);
    // No close frame was sent, so no reset_after_close (rule 10).
    assert_findings(c, &[("abnormal_closure", CLIENT)]);
    assert_num(&finding(c, "abnormal_closure", CLIENT)["ts"], t(20.0));
}

#[test]
fn open_when_capture_ends_without_close() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"a"));
    c.server_send(t(2.0), &sframe(OP_TEXT, b"b"));
    c.client_ack(t(2.0001));
    let s = analyze_json(&Capture::of(&c).write("open_when_capture_ends"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "open");
    assert!(c["close"]["initiator"].is_null());
    assert!(c["close"]["idle_s"].is_null());
    assert_tcp_end(c, "none", None, None);
    assert_num(&c["last_ts"], t(2.0001));
    assert_findings(c, &[]);
}

#[test]
fn rejected_by_a_403_response() {
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
    let s = analyze_json(&Capture::of(&c).write("rejected_by_a_403_response"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "rejected");
    let h = &c["handshake"];
    assert_eq!(h["status"], 403);
    assert_num(&h["response_ts"], t(RESP_AT));
    assert!(
        h["accept_valid"].is_null(),
        "no Sec-WebSocket-Accept header"
    );
    assert!(c["close"]["idle_s"].is_null(), "rule 11");
    assert_tcp_end(c, "fin", SERVER, Some(t(0.003)));
    assert_frames(c, "client", [0; 7]);
    assert_frames(c, "server", [0; 7]);
    // Rule 16: at the response.
    assert_findings(c, &[("handshake_rejected", SERVER)]);
    assert_num(&finding(c, "handshake_rejected", SERVER)["ts"], t(RESP_AT));
}

#[test]
fn rejected_when_tcp_ends_without_a_response() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_ack(t(0.01));
    c.client_fin(t(5.0));
    c.server_fin(t(5.001));
    c.client_ack(t(5.002));
    let s = analyze_json(&Capture::of(&c).write("rejected_without_a_response"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "rejected");
    let h = &c["handshake"];
    assert!(h["status"].is_null());
    assert!(h["response_ts"].is_null());
    assert!(h["accept_valid"].is_null());
    assert_num(&h["request_ts"], t(REQ_AT));
    assert!(c["close"]["idle_s"].is_null());
    assert_tcp_end(c, "fin", CLIENT, Some(t(5.0)));
    // Rule 8: side server, the message says no response came; rule 16: at
    // the TCP end.
    assert_findings(c, &[("handshake_rejected", SERVER)]);
    let f = finding(c, "handshake_rejected", SERVER);
    assert_num(&f["ts"], t(5.0));
    let msg = f["message"].as_str().unwrap().to_lowercase();
    assert!(
        msg.contains("no response"),
        "message should say no response came: {msg:?}"
    );
}

#[test]
fn open_when_request_has_no_response_and_tcp_still_open() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_ack(t(0.05));
    let s = analyze_json(&Capture::of(&c).write("open_request_without_response"), &[]);
    let c = only_conn(&s);
    // Rule 8.
    assert_outcome(c, "open");
    assert!(c["handshake"]["status"].is_null());
    assert_eq!(c["handshake"]["path"], "/chat");
    assert!(c["close"]["idle_s"].is_null());
    assert_findings(c, &[]);
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
        json!({"clean": 1, "unanswered": 1, "timeout": 1, "abnormal": 1, "pending": 1, "open": 1, "rejected": 1})
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

// ---------------------------------------------------------------------------
// Rule 1 and 16: the deadline
// ---------------------------------------------------------------------------

#[test]
fn answer_exactly_at_the_deadline_is_clean() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(10.25), &cclose(1000, ""));
    c.server_send(t(15.25), &sclose(1000, ""));
    c.server_fin(t(15.5));
    c.client_fin(t(15.6));
    let s = analyze_json(
        &Capture::of(&c).write("answer_exactly_at_the_deadline"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_num(&c["close"]["handshake_s"], 5.0);
    assert_findings(c, &[]);
}

#[test]
fn answer_at_the_deadline_with_decimal_times_and_one_microsecond_late() {
    // Times that are not exact binary fractions: the capture's microseconds
    // decide, not floating-point rounding.
    for (answer, expected) in [(6.1, "clean"), (6.100001, "timeout")] {
        let mut c = Conn::standard();
        c.open_ws(t(0.0));
        c.client_send(t(1.1), &cclose(1000, ""));
        c.server_send(t(answer), &sclose(1000, ""));
        c.server_fin(t(6.2));
        c.client_fin(t(6.3));
        let s = analyze_json(&Capture::of(&c).write(&format!("answer_at_{answer}")), &[]);
        let c = only_conn(&s);
        assert_outcome(c, expected);
        if expected == "timeout" {
            assert_findings(c, &[("close_timeout", SERVER)]);
            assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(6.1));
        } else {
            assert_findings(c, &[]);
        }
    }
}

#[test]
fn tcp_end_exactly_at_the_deadline_is_timeout() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(10.25), &cclose(1000, ""));
    c.server_fin(t(15.25));
    c.client_fin(t(15.3));
    let s = analyze_json(
        &Capture::of(&c).write("tcp_end_exactly_at_the_deadline"),
        &[],
    );
    let c = only_conn(&s);
    // Rule 16: a TCP end exactly at the deadline is not before it.
    assert_outcome(c, "timeout");
    assert_tcp_end(c, "fin", SERVER, Some(t(15.25)));
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(15.25));
}

#[test]
fn tcp_end_one_microsecond_before_the_deadline_is_unanswered() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(10.25), &cclose(1000, ""));
    c.server_fin(t(15.249999));
    c.client_fin(t(15.3));
    let s = analyze_json(
        &Capture::of(&c).write("tcp_end_just_before_the_deadline"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "unanswered");
    assert_findings(c, &[("unanswered_close", SERVER)]);
    assert_num(&finding(c, "unanswered_close", SERVER)["ts"], t(15.249999));
}

#[test]
fn close_timeout_option_accepts_fractions() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.75), &sclose(1000, ""));
    c.server_fin(t(1.8));
    c.client_fin(t(1.9));
    let path = Capture::of(&c).write("close_timeout_option_accepts_fractions");

    let s = analyze_json(&path, &[]);
    assert_num(&s["settings"]["close_timeout_s"], 5.0);
    assert_outcome(only_conn(&s), "clean");

    let s = analyze_json(&path, &["--close-timeout", "0.5"]);
    assert_num(&s["settings"]["close_timeout_s"], 0.5);
    let c = only_conn(&s);
    assert_outcome(c, "timeout");
    assert_num(&c["close"]["handshake_s"], 0.75);
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(1.5));
}

// ---------------------------------------------------------------------------
// TCP-level findings (rules 9 and 10)
// ---------------------------------------------------------------------------

#[test]
fn tcp_not_closed_a_close_timeout_after_the_later_close_frame() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.25), &sclose(1000, ""));
    c.server_fin(t(7.0));
    c.client_fin(t(7.1));
    let s = analyze_json(&Capture::of(&c).write("tcp_not_closed"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_tcp_end(c, "fin", SERVER, Some(t(7.0)));
    // Rule 9: side server, at the later close frame + close timeout (rule 16).
    assert_findings(c, &[("tcp_not_closed", SERVER)]);
    assert_num(&finding(c, "tcp_not_closed", SERVER)["ts"], t(6.25));
}

#[test]
fn tcp_not_closed_needs_the_capture_to_reach_its_deadline() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.25), &sclose(1000, ""));
    c.client_ack(t(6.0));
    let s = analyze_json(&Capture::of(&c).write("tcp_not_closed_not_reached"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_tcp_end(c, "none", None, None);
    assert_findings(c, &[]);
}

#[test]
fn tcp_end_exactly_at_the_tcp_not_closed_deadline_is_in_time() {
    // Rule 9 says "no FIN or RST ... by the time of" the deadline: a FIN at
    // exactly that time is by then.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.25), &sclose(1000, ""));
    c.server_fin(t(6.25));
    c.client_fin(t(6.5));
    let s = analyze_json(
        &Capture::of(&c).write("tcp_end_at_tcp_not_closed_deadline"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(c, &[]);
}

#[test]
fn reset_after_close_even_after_a_fin() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.server_fin(t(1.002));
    c.client_rst(t(1.003));
    let s = analyze_json(
        &Capture::of(&c).write("reset_after_close_even_after_a_fin"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // tcp_end is the first FIN or RST seen.
    assert_tcp_end(c, "fin", SERVER, Some(t(1.002)));
    // Rule 10: side is the RST's sender.
    assert_findings(c, &[("reset_after_close", CLIENT)]);
    assert_num(&finding(c, "reset_after_close", CLIENT)["ts"], t(1.003));
}

// ---------------------------------------------------------------------------
// Close frames
// ---------------------------------------------------------------------------

#[test]
fn close_code_classification() {
    let table: &[(u16, Option<&str>)] = &[
        (0, Some("invalid_close_code")),
        (999, Some("invalid_close_code")),
        (1000, None),
        (1001, None),
        (1002, Some("error_close_code")),
        (1003, Some("error_close_code")),
        (1004, Some("invalid_close_code")),
        (1005, Some("reserved_close_code")),
        (1006, Some("reserved_close_code")),
        (1007, Some("error_close_code")),
        (1008, Some("error_close_code")),
        (1009, Some("error_close_code")),
        (1010, Some("error_close_code")),
        (1011, Some("error_close_code")),
        (1012, None),
        (1013, None),
        (1014, Some("error_close_code")),
        (1015, Some("reserved_close_code")),
        (1016, Some("invalid_close_code")),
        (2999, Some("invalid_close_code")),
        (3000, None),
        (3999, None),
        (4000, None),
        (4999, None),
        (5000, Some("invalid_close_code")),
        (65535, Some("invalid_close_code")),
    ];
    let conns_built: Vec<Conn> = table
        .iter()
        .enumerate()
        .map(|(i, (code, _))| {
            let b = t(0.5 * i as f64);
            let mut c = Conn::new(&format!("10.0.0.1:{}", 40000 + i), SERVER_ADDR);
            c.open_ws(b);
            c.client_send(b + 0.1, &cclose(*code, ""));
            c.server_send(b + 0.101, &sclose(1000, ""));
            c.server_fin(b + 0.102);
            c.client_fin(b + 0.103);
            c
        })
        .collect();
    let refs: Vec<&Conn> = conns_built.iter().collect();
    let s = analyze_json(
        &Capture::merge(&refs).write("close_code_classification"),
        &[],
    );
    let cs = conns(&s);
    assert_eq!(cs.len(), table.len());
    for (i, (c, (code, kind))) in cs.iter().zip(table).enumerate() {
        assert_eq!(c["client"], format!("10.0.0.1:{}", 40000 + i));
        assert_outcome(c, "clean");
        assert_eq!(c["close"]["client_frame"]["code"], *code, "code {code}");
        match kind {
            Some(k) => {
                assert_findings(c, &[(k, CLIENT)]);
                assert_num(&finding(c, k, CLIENT)["ts"], t(0.5 * i as f64) + 0.1);
            }
            None => assert_findings(c, &[]),
        }
    }
    let mut expected: BTreeMap<String, u64> = table
        .iter()
        .map(|(code, _)| (code.to_string(), 1))
        .collect();
    *expected.get_mut("1000").unwrap() += table.len() as u64;
    assert_eq!(count_map(&s["totals"]["close_codes"]), expected);
    assert_eq!(
        count_map(&s["totals"]["findings"]),
        counts(&[
            ("invalid_close_code", 7),
            ("reserved_close_code", 3),
            ("error_close_code", 8)
        ])
    );
    assert_eq!(
        s["totals"]["severities"],
        json!({"error": 10, "warning": 8, "info": 0})
    );
}

#[test]
fn error_close_code_from_both_sides() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(2.0), &sclose(1008, "policy"));
    c.client_send(t(2.01), &cclose(1008, ""));
    c.server_fin(t(2.02));
    c.client_fin(t(2.03));
    let s = analyze_json(
        &Capture::of(&c).write("error_close_code_from_both_sides"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(
        c,
        &[("error_close_code", SERVER), ("error_close_code", CLIENT)],
    );
    assert_num(&finding(c, "error_close_code", SERVER)["ts"], t(2.0));
    assert_num(&finding(c, "error_close_code", CLIENT)["ts"], t(2.01));
    assert_eq!(
        count_map(&s["totals"]["findings"]),
        counts(&[("error_close_code", 2)])
    );
}

#[test]
fn close_payloads_of_zero_and_one_byte() {
    // Rule 4.
    let mut empty = Conn::new("10.0.0.1:51001", SERVER_ADDR);
    empty.open_ws(t(0.0));
    empty.client_send(t(1.0), &cframe(OP_CLOSE, b""));
    empty.server_send(t(1.001), &sclose(1000, ""));
    empty.server_fin(t(1.002));
    empty.client_fin(t(1.003));

    let mut one = Conn::new("10.0.0.1:51002", SERVER_ADDR);
    one.open_ws(t(0.5));
    one.client_send(t(1.5), &cframe(OP_CLOSE, &[0x03]));
    one.server_send(t(1.501), &sframe(OP_CLOSE, b""));
    one.server_fin(t(1.502));
    one.client_fin(t(1.503));

    let s = analyze_json(
        &Capture::merge(&[&empty, &one]).write("close_payloads_of_zero_and_one_byte"),
        &[],
    );
    let cs = conns(&s);
    assert_eq!(cs.len(), 2);

    let c = &cs[0];
    assert_outcome(c, "clean");
    assert_close_frame(&c["close"]["client_frame"], t(1.0), None, None, true, 0);
    assert_close_frame(
        &c["close"]["server_frame"],
        t(1.001),
        Some(1000),
        Some(""),
        true,
        2,
    );
    assert_findings(c, &[]);

    let c = &cs[1];
    assert_outcome(c, "clean");
    assert_close_frame(&c["close"]["client_frame"], t(1.5), None, None, true, 1);
    assert_close_frame(&c["close"]["server_frame"], t(1.501), None, None, true, 0);
    assert_findings(c, &[("invalid_close_payload", CLIENT)]);
    assert_num(&finding(c, "invalid_close_payload", CLIENT)["ts"], t(1.5));

    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("none", 3), ("1000", 1)])
    );
}

#[test]
fn invalid_utf8_reason_is_replaced() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(
        t(1.0),
        &cframe(OP_CLOSE, &close_payload(1000, &[b'b', b'y', 0xff, b'e'])),
    );
    c.server_send(t(1.001), &sclose(1000, ""));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("invalid_utf8_reason"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1000),
        Some("by\u{fffd}e"),
        false,
        6,
    );
    assert_findings(c, &[("invalid_utf8_reason", CLIENT)]);
    assert_num(&finding(c, "invalid_utf8_reason", CLIENT)["ts"], t(1.0));
}

#[test]
fn fragmented_close_frame_still_closes() {
    // Rule 5: a close frame with FIN clear is its side's close frame.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(0.5), &ws_frame(false, 0, OP_PING, None, b"p"));
    c.client_send(
        t(1.0),
        &ws_frame(false, 0, OP_CLOSE, Some(MASK), &close_payload(1000, b"bye")),
    );
    c.server_send(t(1.001), &sclose(1000, ""));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("fragmented_close_frame"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_eq!(c["close"]["initiator"], "client");
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1000),
        Some("bye"),
        true,
        5,
    );
    assert_frames(c, "client", [0, 0, 0, 0, 0, 1, 5]);
    assert_frames(c, "server", [0, 0, 0, 1, 0, 1, 3]);
    assert_findings(
        c,
        &[
            ("fragmented_control_frame", CLIENT),
            ("fragmented_control_frame", SERVER),
        ],
    );
    assert_num(
        &finding(c, "fragmented_control_frame", CLIENT)["ts"],
        t(1.0),
    );
    assert_num(
        &finding(c, "fragmented_control_frame", SERVER)["ts"],
        t(0.5),
    );
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1000", 2)])
    );
}

#[test]
fn second_close_frame_from_the_same_side() {
    // close_frame is the first each side sent; close_codes and frames count
    // every close frame on the wire.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1001, ""));
    c.client_send(t(1.0005), &cclose(1000, ""));
    c.server_send(t(1.001), &sclose(1001, ""));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(
        &Capture::of(&c).write("second_close_frame_from_the_same_side"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1001),
        Some(""),
        true,
        2,
    );
    assert_frames(c, "client", [0, 0, 0, 0, 0, 2, 4]);
    assert_num(&c["close"]["handshake_s"], 0.001);
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1001", 2), ("1000", 1)])
    );
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// Frame-level findings
// ---------------------------------------------------------------------------

#[test]
fn control_frame_too_long() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_PING, &[b'p'; 126]));
    c.server_send(t(0.6), &sframe(OP_PONG, &[b'p'; 125])); // the limit itself is fine
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("control_frame_too_long"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [0, 0, 0, 1, 0, 1, 126 + 5]);
    assert_frames(c, "server", [0, 0, 0, 0, 1, 1, 125 + 2]);
    assert_findings(c, &[("control_frame_too_long", CLIENT)]);
    assert_num(&finding(c, "control_frame_too_long", CLIENT)["ts"], t(0.5));
}

#[test]
fn data_after_close_is_reported_and_counted() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"a"));
    c.client_send(t(1.0), &cclose(1000, "bye"));
    c.client_send(t(1.0005), &cframe(OP_TEXT, b"late"));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("data_after_close"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // Rule 13: data after close counts in its side's counters.
    assert_frames(c, "client", [2, 0, 0, 0, 0, 1, 1 + 5 + 4]);
    assert_num(&c["close"]["idle_s"], 0.5);
    assert_findings(c, &[("data_after_close", CLIENT)]);
    assert_num(&finding(c, "data_after_close", CLIENT)["ts"], t(1.0005));
}

#[test]
fn masking_violations_one_finding_per_kind_and_side() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &sframe(OP_TEXT, b"one"));
    c.client_send(t(0.6), &sframe(OP_TEXT, b"two"));
    c.client_send(t(0.7), &sframe(OP_TEXT, b"three"));
    c.server_send(t(0.8), &ws_frame(true, 0, OP_TEXT, Some(MASK), b"hi"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("masking_violations"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [3, 0, 0, 0, 0, 1, 3 + 3 + 5 + 5]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 2 + 2]);
    // Rule 6: one finding, at the first occurrence, the count in the message.
    assert_findings(
        c,
        &[
            ("unmasked_client_frame", CLIENT),
            ("masked_server_frame", SERVER),
        ],
    );
    let f = finding(c, "unmasked_client_frame", CLIENT);
    assert_num(&f["ts"], t(0.5));
    let msg = f["message"].as_str().unwrap();
    assert!(
        mentions_number(msg, 3),
        "the message should give the count 3: {msg:?}"
    );
    assert_num(&finding(c, "masked_server_frame", SERVER)["ts"], t(0.8));
    assert_eq!(
        count_map(&s["totals"]["findings"]),
        counts(&[("unmasked_client_frame", 1), ("masked_server_frame", 1)])
    );
}

#[test]
fn repeated_violations_give_one_finding_per_kind_and_side_with_a_count() {
    // Rule 6, for several kinds at once.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(0x4, b"u1"));
    c.client_send(t(0.6), &cframe(0x4, b"u2"));
    for (i, at) in [0.7, 0.8, 0.9].into_iter().enumerate() {
        c.client_send(
            t(at),
            &ws_frame(true, RSV2, OP_TEXT, Some(MASK), &[b'r'; 3][..=i]),
        );
    }
    c.client_send(t(1.0), &cclose(1000, ""));
    c.client_send(t(1.0002), &cframe(OP_BINARY, b"late"));
    c.client_send(t(1.0003), &cframe(OP_TEXT, b"later"));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("repeated_violations"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(
        c,
        "client",
        [4, 1, 0, 0, 0, 1, 2 + 2 + 1 + 2 + 3 + 2 + 4 + 5],
    );
    assert_findings(
        c,
        &[
            ("unknown_opcode", CLIENT),
            ("reserved_bits", CLIENT),
            ("data_after_close", CLIENT),
        ],
    );
    for (kind, first, count) in [
        ("unknown_opcode", 0.5, 2),
        ("reserved_bits", 0.7, 3),
        ("data_after_close", 1.0002, 2),
    ] {
        let f = finding(c, kind, CLIENT);
        assert_num(&f["ts"], t(first));
        let msg = f["message"].as_str().unwrap();
        assert!(
            mentions_number(msg, count),
            "{kind}: the message should give the count {count}: {msg:?}"
        );
    }
    assert_eq!(
        count_map(&s["totals"]["findings"]),
        counts(&[
            ("unknown_opcode", 1),
            ("reserved_bits", 1),
            ("data_after_close", 1)
        ])
    );
}

#[test]
fn reserved_bits_without_an_extension() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &ws_frame(true, RSV2, OP_TEXT, Some(MASK), b"x"));
    c.server_send(t(0.6), &ws_frame(true, RSV3, OP_BINARY, None, b"y"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(
        &Capture::of(&c).write("reserved_bits_without_an_extension"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 1 + 5]);
    assert_frames(c, "server", [0, 1, 0, 0, 0, 1, 1 + 2]);
    assert_findings(c, &[("reserved_bits", CLIENT), ("reserved_bits", SERVER)]);
    assert_num(&finding(c, "reserved_bits", CLIENT)["ts"], t(0.5));
    assert_num(&finding(c, "reserved_bits", SERVER)["ts"], t(0.6));
}

/// "Hello" compressed with raw deflate, as permessage-deflate sends it.
const DEFLATED_HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn permessage_deflate_allows_rsv1_on_data_frames_only() {
    let mut c = Conn::standard();
    c.open_ws_with(
        t(0.0),
        &[
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
        ],
        &[
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits=12",
            ),
            ("Sec-WebSocket-Protocol", "chat"),
        ],
    );
    c.client_send(
        t(0.5),
        &ws_frame(true, RSV1, OP_TEXT, Some(MASK), &DEFLATED_HELLO),
    );
    c.server_send(
        t(0.6),
        &ws_frame(true, RSV1, OP_TEXT, None, &DEFLATED_HELLO),
    );
    c.client_send(t(0.7), &ws_frame(true, RSV1, OP_PING, Some(MASK), b"p"));
    c.server_send(t(0.8), &ws_frame(true, RSV2, OP_BINARY, None, b"b"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("permessage_deflate_rsv1"), &[]);
    let c = only_conn(&s);
    let h = &c["handshake"];
    assert_eq!(
        h["extensions"],
        json!(["permessage-deflate; client_max_window_bits=12"])
    );
    assert_eq!(h["subprotocol"], "chat");
    assert_eq!(h["accept_valid"], true);
    assert_outcome(c, "clean");
    // Rule 13: payload bytes are the compressed (wire) size.
    assert_frames(c, "client", [1, 0, 0, 1, 0, 1, 7 + 1 + 5]);
    assert_frames(c, "server", [1, 1, 0, 0, 0, 1, 7 + 1 + 2]);
    // RSV1 on a control frame, RSV2 anywhere: reserved_bits.
    assert_findings(c, &[("reserved_bits", CLIENT), ("reserved_bits", SERVER)]);
    assert_num(&finding(c, "reserved_bits", CLIENT)["ts"], t(0.7));
    assert_num(&finding(c, "reserved_bits", SERVER)["ts"], t(0.8));
}

#[test]
fn rsv1_when_deflate_was_offered_but_not_accepted() {
    let mut c = Conn::standard();
    c.open_ws_with(
        t(0.0),
        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
        &[],
    );
    c.client_send(
        t(0.5),
        &ws_frame(true, RSV1, OP_TEXT, Some(MASK), &DEFLATED_HELLO),
    );
    c.close_cleanly(t(1.0));
    let s = analyze_json(
        &Capture::of(&c).write("rsv1_without_negotiated_deflate"),
        &[],
    );
    let c = only_conn(&s);
    assert_eq!(c["handshake"]["extensions"], json!([]));
    assert_outcome(c, "clean");
    assert_findings(c, &[("reserved_bits", CLIENT)]);
    assert_num(&finding(c, "reserved_bits", CLIENT)["ts"], t(0.5));
}

#[test]
fn unknown_opcodes_are_reported_and_counted_in_payload_bytes() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(0x3, b"abc"));
    c.server_send(t(0.6), &sframe(0xB, b"xy"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("unknown_opcodes"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // Rule 13: no counter of their own, but their payload counts.
    assert_frames(c, "client", [0, 0, 0, 0, 0, 1, 3 + 5]);
    assert_frames(c, "server", [0, 0, 0, 0, 0, 1, 2 + 2]);
    assert_findings(c, &[("unknown_opcode", CLIENT), ("unknown_opcode", SERVER)]);
    assert_num(&finding(c, "unknown_opcode", CLIENT)["ts"], t(0.5));
    assert_num(&finding(c, "unknown_opcode", SERVER)["ts"], t(0.6));
}

#[test]
fn malformed_frame_stops_decoding_that_direction_only() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(0.5), &sframe(OP_TEXT, b"ok"));
    // A 64-bit length with its top bit set.
    c.server_send(
        t(0.6),
        &[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x05, 1, 2, 3, 4, 5],
    );
    c.client_send(t(0.7), &cframe(OP_TEXT, b"still decoded"));
    c.client_send(t(1.0), &cclose(1002, "bad frame"));
    // Rule 13: no longer decoded, so this close frame is not seen...
    c.server_send(t(1.001), &sclose(1000, ""));
    // ...but the FIN is.
    c.server_fin(t(1.002));
    c.client_fin(t(1.003));
    let s = analyze_json(&Capture::of(&c).write("malformed_frame"), &[]);
    let c = only_conn(&s);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 0, 2]);
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 13 + 11]);
    assert!(c["close"]["server_frame"].is_null());
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1002),
        Some("bad frame"),
        true,
        11,
    );
    assert_outcome(c, "unanswered");
    assert_tcp_end(c, "fin", SERVER, Some(t(1.002)));
    assert_findings(
        c,
        &[
            ("malformed_frame", SERVER),
            ("error_close_code", CLIENT),
            ("unanswered_close", SERVER),
        ],
    );
    assert_num(&finding(c, "malformed_frame", SERVER)["ts"], t(0.6));
    assert_num(&finding(c, "error_close_code", CLIENT)["ts"], t(1.0));
    assert_num(&finding(c, "unanswered_close", SERVER)["ts"], t(1.002));
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1002", 1)])
    );
}

#[test]
fn frame_length_forms_and_masking() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    for (i, n) in [125usize, 126, 65535, 65536].into_iter().enumerate() {
        c.client_send(t(0.1 * (i + 1) as f64), &cframe(OP_TEXT, &vec![b'a'; n]));
    }
    for (i, n) in [0usize, 126, 70000].into_iter().enumerate() {
        c.server_send(t(0.5 + 0.1 * i as f64), &sframe(OP_BINARY, &vec![0x5a; n]));
    }
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("frame_length_forms"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(
        c,
        "client",
        [4, 0, 0, 0, 0, 1, 125 + 126 + 65535 + 65536 + 5],
    );
    assert_frames(c, "server", [0, 3, 0, 0, 0, 1, 126 + 70000 + 2]);
    assert_num(&c["close"]["idle_s"], 1.0 - 0.7);
    assert_findings(c, &[]);
}

#[test]
fn incomplete_frame_at_capture_end_is_not_counted() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"complete"));
    c.client_send(t(0.6), &cframe(OP_TEXT, &[b'z'; 100])[..50]);
    let s = analyze_json(
        &Capture::of(&c).write("incomplete_frame_at_capture_end"),
        &[],
    );
    let c = only_conn(&s);
    // Rule 18.
    assert_outcome(c, "open");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 0, 8]);
    assert_findings(c, &[]);
}

#[test]
fn frames_in_the_same_segment_as_the_101() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    let mut resp = upgrade_response(101, Some(KEY), &[]);
    resp.extend(sframe(OP_TEXT, b"welcome"));
    c.server_send(t(RESP_AT), &resp);
    c.close_cleanly(t(1.0));
    let s = analyze_json(
        &Capture::of(&c).write("frames_in_the_same_segment_as_the_101"),
        &[],
    );
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 7 + 2]);
    assert_num(&c["close"]["idle_s"], 1.0 - RESP_AT);
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[test]
fn wrong_accept_still_counts_as_an_upgrade() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_send(
        t(RESP_AT),
        &upgrade_response(101, Some("AAAAAAAAAAAAAAAAAAAAAA=="), &[]),
    );
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("wrong_accept"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["handshake"]["status"], 101);
    assert_eq!(c["handshake"]["accept_valid"], false);
    // Rule 8: the outcome follows from what happens next.
    assert_outcome(c, "clean");
    assert_findings(c, &[("invalid_accept", SERVER)]);
    assert_num(&finding(c, "invalid_accept", SERVER)["ts"], t(RESP_AT));
}

#[test]
fn missing_accept_header_gives_null_accept_valid() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_send(t(RESP_AT), &upgrade_response(101, None, &[]));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("missing_accept_header"), &[]);
    let c = only_conn(&s);
    assert!(c["handshake"]["accept_valid"].is_null());
    assert_eq!(c["handshake"]["status"], 101);
    assert_outcome(c, "clean");
    // Whether a missing accept header is also `invalid_accept` is not
    // settled by the contract; not asserted.
}

// ---------------------------------------------------------------------------
// Client/server identification, listing, addresses
// ---------------------------------------------------------------------------

#[test]
fn client_is_the_syn_sender_even_with_the_lower_port() {
    let mut c = Conn::new("10.0.0.5:1000", "10.0.0.6:9000");
    c.open_ws(t(0.0));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("client_is_the_syn_sender"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["client"], "10.0.0.5:1000");
    assert_eq!(c["server"], "10.0.0.6:9000");
    assert_outcome(c, "clean");
    assert_findings(c, &[]);
}

#[test]
fn client_is_the_upgrade_requester_when_the_syn_was_missed() {
    let mut c = Conn::new("10.0.0.5:1000", "10.0.0.6:9000");
    c.server_ack(t(0.0)); // the first packet, from the server
    let host = c.host();
    c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
    c.server_send(t(RESP_AT), &upgrade_response(101, Some(KEY), &[]));
    c.close_cleanly(t(1.0));
    let s = analyze_json(
        &Capture::of(&c).write("client_is_the_upgrade_requester"),
        &[],
    );
    let c = only_conn(&s);
    assert_eq!(c["client"], "10.0.0.5:1000");
    assert_eq!(c["server"], "10.0.0.6:9000");
    assert_num(&c["first_ts"], t(0.0));
    assert_eq!(c["handshake"]["status"], 101);
    assert_outcome(c, "clean");
    // The upgrade was seen: not midstream.
    assert_findings(c, &[]);
}

#[test]
fn midstream_client_identified_by_mask() {
    // The client has the lower port and the server sends the first packet:
    // only the mask tells them apart (rule 12).
    let mut c = Conn::new("10.0.0.5:40000", "10.0.0.6:50000");
    c.server_send(t(1.0), &sframe(OP_TEXT, b"tick"));
    c.client_send(t(2.0), &cframe(OP_TEXT, b"ack"));
    c.client_send(t(3.0), &cclose(1000, ""));
    c.server_send(t(3.001), &sclose(1000, ""));
    c.server_fin(t(3.002));
    c.client_fin(t(3.003));
    c.server_ack(t(3.004));
    let s = analyze_json(
        &Capture::of(&c).write("midstream_client_identified_by_mask"),
        &[],
    );
    let c = only_conn(&s);
    assert_eq!(c["client"], "10.0.0.5:40000");
    assert_eq!(c["server"], "10.0.0.6:50000");
    assert!(c["handshake"].is_null());
    assert_num(&c["first_ts"], t(1.0));
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 3 + 2]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 4 + 2]);
    assert_num(&c["close"]["idle_s"], 1.0);
    assert_findings(c, &[("midstream", NO_SIDE)]);
    assert_num(&finding(c, "midstream", NO_SIDE)["ts"], t(1.0));
}

#[test]
fn midstream_without_masked_frames_client_is_the_higher_port() {
    // The server (lower port) sends the first packet and all the frames.
    let mut c = Conn::standard();
    c.server_send(t(1.0), &sframe(OP_BINARY, &[1, 2, 3]));
    c.client_ack(t(1.001));
    c.server_send(t(2.0), &sframe(OP_BINARY, &[4, 5]));
    c.client_ack(t(2.001));
    c.server_fin(t(9.0));
    c.client_fin(t(9.001));
    let s = analyze_json(
        &Capture::of(&c).write("midstream_client_is_the_higher_port"),
        &[],
    );
    let c = only_conn(&s);
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_eq!(c["server"], SERVER_ADDR);
    assert!(c["handshake"].is_null());
    assert_frames(c, "server", [0, 2, 0, 0, 0, 0, 5]);
    // "or the connection was picked up midstream": abnormal.
    assert_outcome(c, "abnormal");
    assert_num(&c["close"]["idle_s"], 7.0);
    assert_tcp_end(c, "fin", SERVER, Some(t(9.0)));
    assert_findings(c, &[("midstream", NO_SIDE), ("abnormal_closure", SERVER)]);
    assert_num(&finding(c, "midstream", NO_SIDE)["ts"], t(1.0));
    assert_num(&finding(c, "abnormal_closure", SERVER)["ts"], t(9.0));
}

#[test]
fn midstream_idle_is_measured_from_the_first_packet() {
    let mut c = Conn::standard();
    c.client_ack(t(1.0));
    c.server_send(t(4.0), &sclose(1001, ""));
    c.client_send(t(4.01), &cclose(1001, ""));
    c.server_fin(t(4.02));
    c.client_fin(t(4.03));
    let s = analyze_json(
        &Capture::of(&c).write("midstream_idle_from_first_packet"),
        &[],
    );
    let c = only_conn(&s);
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_outcome(c, "clean");
    assert_eq!(c["close"]["initiator"], "server");
    // Rule 11: no frame before the closing, picked up midstream.
    assert_num(&c["close"]["idle_s"], 3.0);
    assert_num(&c["close"]["handshake_s"], 0.01);
    assert_findings(c, &[("midstream", NO_SIDE)]);
    assert_num(&finding(c, "midstream", NO_SIDE)["ts"], t(1.0));
}

#[test]
fn non_websocket_tcp_connections_are_not_listed() {
    // A plain HTTP exchange and a refused SYN, both before the WebSocket.
    let mut http = Conn::new("10.0.0.1:40001", "10.0.0.2:80");
    http.handshake(t(0.0));
    http.client_send(
        t(0.001),
        b"GET /index.html HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n",
    );
    http.server_send(
        t(0.002),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    );
    http.server_fin(t(0.003));
    http.client_fin(t(0.004));
    let mut refused = Conn::new("10.0.0.3:40002", "10.0.0.2:22");
    refused.syn(t(0.1));
    refused.server_rst(t(0.1001));
    let mut ws = Conn::standard();
    ws.open_ws(t(0.5));
    ws.close_cleanly(t(1.5));
    let cap = Capture::merge(&[&http, &refused, &ws]);
    let s = analyze_json(&cap.write("non_websocket_tcp_not_listed"), &[]);
    // Reading of "id: 1-based": the ids number the listed connections.
    let c = only_conn(&s);
    assert_eq!(c["id"], 1);
    assert_eq!(c["client"], CLIENT_ADDR);
    assert_outcome(c, "clean");
    assert_eq!(s["totals"]["connections"], 1);
    assert_eq!(s["sources"][0]["packets"].as_u64(), Some(cap.len() as u64));
}

#[test]
fn new_syn_on_a_reused_four_tuple_is_a_new_connection() {
    let mut first = Conn::standard();
    first.open_ws(t(0.0));
    first.close_cleanly(t(1.0));
    let mut second = Conn::standard().isn(7_000_000, 8_000_000);
    second.open_ws(t(10.0));
    second.client_send(t(11.0), &cframe(OP_TEXT, b"again"));
    let mut cap = Capture::of(&first);
    cap.add(&second);
    let s = analyze_json(&cap.write("reused_four_tuple"), &[]);
    let cs = conns(&s);
    assert_eq!(cs.len(), 2, "{}", serde_json::to_string_pretty(&s).unwrap());
    assert_eq!(cs[0]["id"], 1);
    assert_outcome(&cs[0], "clean");
    assert_num(&cs[0]["first_ts"], t(0.0));
    assert_num(&cs[0]["last_ts"], t(1.004));
    assert_eq!(cs[1]["id"], 2);
    assert_outcome(&cs[1], "open");
    assert_num(&cs[1]["first_ts"], t(10.0));
    assert_frames(&cs[1], "client", [1, 0, 0, 0, 0, 0, 5]);
    for c in cs {
        assert_eq!(c["client"], CLIENT_ADDR);
        assert_eq!(c["server"], SERVER_ADDR);
        assert_findings(c, &[]);
    }
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let mut c = Conn::new("[2001:db8::1]:51234", "[2001:db8::2]:443");
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, b"v6"));
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("ipv6_addresses"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["client"], "[2001:db8::1]:51234");
    assert_eq!(c["server"], "[2001:db8::2]:443");
    assert_eq!(c["handshake"]["host"], "[2001:db8::2]:443");
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 2 + 5]);
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// TCP reassembly
// ---------------------------------------------------------------------------

#[test]
fn out_of_order_segments_are_reassembled() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    let frame = cframe(OP_TEXT, b"0123456789abcdefghij"); // 26 bytes
    let off = c.offset(Dir::C2S);
    c.segment(Dir::C2S, t(0.5), off, &frame[..8], PSH | ACK);
    c.segment(Dir::C2S, t(0.51), off + 16, &frame[16..], PSH | ACK);
    c.segment(Dir::C2S, t(0.52), off + 8, &frame[8..16], PSH | ACK);
    c.advance(Dir::C2S, frame.len());
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("out_of_order_segments"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 20 + 5]);
    // The hole was filled: no capture_gap.
    assert_findings(c, &[]);
}

#[test]
fn retransmissions_are_not_counted_twice() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    let off = c.offset(Dir::C2S);
    let text = cframe(OP_TEXT, b"hello");
    c.client_send(t(0.5), &text);
    c.segment(Dir::C2S, t(0.7), off, &text, PSH | ACK);
    let off = c.offset(Dir::C2S);
    let close = cclose(1000, "bye");
    c.client_send(t(1.0), &close);
    c.server_send(t(1.001), &sclose(1000, ""));
    c.segment(Dir::C2S, t(1.2), off, &close, PSH | ACK);
    let off = c.offset(Dir::S2C);
    c.server_fin(t(1.3));
    c.segment(Dir::S2C, t(1.5), off, &[], FIN | ACK);
    c.client_fin(t(1.6));
    let s = analyze_json(&Capture::of(&c).write("retransmissions"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 5 + 5]);
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1000),
        Some("bye"),
        true,
        5,
    );
    assert_tcp_end(c, "fin", SERVER, Some(t(1.3)));
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1000", 2)])
    );
    assert_findings(c, &[]);
}

#[test]
fn overlapping_segments_are_reassembled_once() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    let frame = cframe(OP_TEXT, &[b'o'; 24]); // 30 bytes
    let off = c.offset(Dir::C2S);
    c.segment(Dir::C2S, t(0.5), off, &frame[..20], PSH | ACK);
    c.segment(Dir::C2S, t(0.51), off + 10, &frame[10..], PSH | ACK);
    c.advance(Dir::C2S, frame.len());
    let frame = sframe(OP_TEXT, b"abcdefgh"); // 10 bytes
    let off = c.offset(Dir::S2C);
    c.segment(Dir::S2C, t(0.6), off, &frame[..4], PSH | ACK);
    c.segment(Dir::S2C, t(0.61), off + 2, &frame[2..], PSH | ACK);
    c.advance(Dir::S2C, frame.len());
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("overlapping_segments"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 24 + 5]);
    assert_frames(c, "server", [1, 0, 0, 0, 0, 1, 8 + 2]);
    // Rule 3: the frame's time is that of the packet with its last byte.
    assert_num(&c["close"]["idle_s"], 1.0 - 0.61);
    assert_findings(c, &[]);
}

#[test]
fn frames_and_request_split_into_tiny_segments() {
    let mut c = Conn::standard();
    c.handshake(t(0.0));
    let host = c.host();
    let req = upgrade_request("/chat", &host, KEY, &[]);
    let req_done = c.send_split(Dir::C2S, t(0.001), &req, req.len() / 3 + 1, 0.0005);
    c.server_send(t(0.01), &upgrade_response(101, Some(KEY), &[]));
    let text_done = c.send_split(Dir::C2S, t(0.5), &cframe(OP_TEXT, b"split"), 1, 0.01);
    let close_done = c.send_split(Dir::C2S, t(2.0), &cclose(1000, "bye"), 1, 0.01);
    c.server_send(t(2.2), &sclose(1000, ""));
    c.server_fin(t(2.21));
    c.client_fin(t(2.22));
    let s = analyze_json(&Capture::of(&c).write("tiny_segments"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["handshake"]["status"], 101);
    assert_eq!(c["handshake"]["path"], "/chat");
    // Reading: like a frame's (rule 3), the request's time is that of the
    // packet carrying its last byte.
    assert_num(&c["handshake"]["request_ts"], req_done);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 5 + 5]);
    // Rule 3: a frame's ts is that of the packet carrying its last byte.
    assert!((close_done - t(2.1)).abs() < EPS && (text_done - t(0.6)).abs() < EPS);
    assert_close_frame(
        &c["close"]["client_frame"],
        close_done,
        Some(1000),
        Some("bye"),
        true,
        5,
    );
    assert_num(&c["close"]["handshake_s"], 0.1);
    assert_num(&c["close"]["idle_s"], 1.5);
    assert_findings(c, &[]);
}

#[test]
fn sequence_numbers_wrap_around() {
    // Both ISNs sit just below 2^32: the server's 101 crosses it within one
    // segment; the client's text frame is cut exactly at the wrap and its
    // two halves arrive in reverse order; a retransmission of the pre-wrap
    // 101 arrives after the wrap and must be recognised as old data.
    let mut c = Conn::standard().isn(0xffff_ff00, 0xffff_fff0);
    c.open_ws(t(0.0));
    let resp_off = c.offset(Dir::S2C) - 129;
    let frame = cframe(OP_TEXT, &[b'w'; 200]); // 206 bytes
    let off = c.offset(Dir::C2S);
    let to_wrap = 0u32.wrapping_sub(0xffff_ff01_u32.wrapping_add(off)) as usize;
    assert!(
        to_wrap > 0 && to_wrap < frame.len(),
        "the frame straddles 2^32"
    );
    c.segment(
        Dir::C2S,
        t(0.5),
        off + to_wrap as u32,
        &frame[to_wrap..],
        PSH | ACK,
    );
    c.segment(Dir::C2S, t(0.51), off, &frame[..to_wrap], PSH | ACK);
    c.advance(Dir::C2S, frame.len());
    c.server_send(t(0.6), &sframe(OP_BINARY, &[0xab; 3000]));
    let resp = upgrade_response(101, Some(KEY), &[]);
    assert_eq!(resp.len(), 129);
    c.segment(Dir::S2C, t(0.7), resp_off, &resp, PSH | ACK);
    c.close_cleanly(t(1.0));
    let s = analyze_json(&Capture::of(&c).write("sequence_wraparound"), &[]);
    let c = only_conn(&s);
    assert_eq!(c["handshake"]["status"], 101);
    assert_eq!(c["handshake"]["accept_valid"], true);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 200 + 5]);
    assert_frames(c, "server", [0, 1, 0, 0, 0, 1, 3000 + 2]);
    assert_tcp_end(c, "fin", SERVER, Some(t(1.002)));
    assert_findings(c, &[]);
}

/// A conversation whose server loses one whole frame's segment at +0.6.
fn conn_with_a_lost_segment() -> Conn {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.4), &cframe(OP_TEXT, b"hi"));
    c.server_send(t(0.5), &sframe(OP_TEXT, b"before"));
    c.lose(Dir::S2C, &sframe(OP_TEXT, b"lost!"));
    c.server_send(t(0.7), &sframe(OP_TEXT, b"after"));
    c.close_cleanly(t(1.0));
    c
}

#[test]
fn capture_gap_is_reported_and_the_analysis_continues() {
    let c = conn_with_a_lost_segment();
    let s = analyze_json(&Capture::of(&c).write("capture_gap"), &[]);
    let c = only_conn(&s);
    // Reading: the gap's time is that of the first segment after the hole;
    // its side the sender of the missing bytes.
    let f = finding(c, "capture_gap", SERVER);
    assert_num(&f["ts"], t(0.7));
    // The other direction and TCP are unaffected.
    assert_frames(c, "client", [1, 0, 0, 0, 0, 1, 2 + 5]);
    assert_close_frame(
        &c["close"]["client_frame"],
        t(1.0),
        Some(1000),
        Some("bye"),
        true,
        5,
    );
    assert_tcp_end(c, "fin", SERVER, Some(t(1.002)));
    assert!(
        findings(c)
            .iter()
            .all(|(k, side)| k == "capture_gap" || side.as_deref() != Some("client"))
    );
}

#[test]
fn capture_gap_resyncs_at_the_segment_after_the_hole() {
    // Reading: the contract allows an incomplete analysis after a gap, but
    // when the hole ends on a frame boundary, decoding resumes at the next
    // segment (as Wireshark does): the server's later frames are seen.
    let c = conn_with_a_lost_segment();
    let s = analyze_json(&Capture::of(&c).write("capture_gap_resync"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "server", [2, 0, 0, 0, 0, 1, 6 + 5 + 2]);
    assert_close_frame(
        &c["close"]["server_frame"],
        t(1.001),
        Some(1000),
        Some(""),
        true,
        2,
    );
    assert_findings(c, &[("capture_gap", SERVER)]);
}

#[test]
fn time_going_backwards_never_gives_negative_durations() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(2.0), &cframe(OP_TEXT, b"x"));
    c.client_send(t(5.0), &cclose(1000, ""));
    // The clock steps back: taken in order of arrival (rule 19).
    c.server_send(t(4.9), &sclose(1000, ""));
    c.server_fin(t(4.95));
    c.client_fin(t(4.96));
    let s = analyze_json(&Capture::of(&c).write("time_going_backwards"), &[]);
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_eq!(c["close"]["initiator"], "client");
    assert_num(&c["close"]["handshake_s"], 0.0);
    assert_num(&c["close"]["idle_s"], 3.0);
}

// ---------------------------------------------------------------------------
// Sources, link types, file formats
// ---------------------------------------------------------------------------

#[test]
fn sources_fields_and_non_tcp_packets() {
    let c = clean_conn();
    let mut cap = Capture::new();
    cap.arp(t(-1.0), [10, 0, 0, 1], [10, 0, 0, 2]);
    cap.add(&c);
    // UDP between the same endpoints, carrying close-frame bytes: ignored.
    cap.udp(t(0.3), CLIENT_ADDR, SERVER_ADDR, &cclose(1011, "udp"));
    // A record that cannot be decoded: counted and skipped (rule 15).
    cap.junk(t(0.4), &[0x45, 0, 0, 0x28, 0, 0, 0, 0]);
    // A datagram cut short by the snap length: bytes sums captured lengths.
    cap.udp(t(3.0), "10.0.0.99:40000", "10.0.0.100:9", &[0u8; 100]);
    cap.packets.last_mut().unwrap().snap = Some(42);
    cap.sort_by_time();
    let path = cap.write("sources_fields_and_non_tcp_packets");
    let s = analyze_json(&path, &[]);
    // Field by field: the contract lets new fields be added.
    let sources = s["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    let src = &sources[0];
    assert_eq!(src["kind"], "file");
    assert_eq!(src["name"], path_str(&path));
    assert_eq!(src["link_type"], "EN10MB");
    // Rule 18: every record read, decodable or not.
    assert_eq!(src["packets"].as_u64(), Some(cap.len() as u64));
    // Rule 14: the sum of the captured (not original) lengths.
    assert_eq!(src["bytes"].as_u64(), Some(cap.captured_bytes()));
    assert!(src["dropped"].is_null());
    assert_eq!(cap.len(), clean_conn().packets.len() + 4);
    assert_num(&s["sources"][0]["first_ts"], t(-1.0));
    assert_num(&s["sources"][0]["last_ts"], t(3.0));
    assert_clean_conn(only_conn(&s));
    assert_eq!(
        count_map(&s["totals"]["close_codes"]),
        counts(&[("1000", 2)])
    );
}

/// Analyses the clean conversation written with another link layer or file
/// format and checks the connection is reported exactly as from the
/// Ethernet pcap.
fn same_as_ethernet_pcap(name: &str, path: &std::path::Path, link_type: &str) {
    let reference = analyze_json(
        &Capture::of(&clean_conn()).write(&format!("{name}_reference")),
        &[],
    );
    let s = analyze_json(path, &[]);
    assert_eq!(s["sources"][0]["link_type"], link_type);
    assert_eq!(s["sources"][0]["name"], path_str(path));
    assert_eq!(s["connections"], reference["connections"]);
    assert_eq!(s["totals"], reference["totals"]);
    assert_clean_conn(only_conn(&s));
}

#[test]
fn raw_ip_link_type() {
    let cap = Capture::of(&clean_conn()).with_link(Link::Raw);
    let path = cap.write("raw_ip_link_type");
    same_as_ethernet_pcap("raw_ip_link_type", &path, "RAW");
    let s = analyze_json(&path, &[]);
    assert_eq!(
        s["sources"][0]["bytes"].as_u64(),
        Some(cap.captured_bytes())
    );
}

#[test]
fn linux_sll2_link_type() {
    let cap = Capture::of(&clean_conn()).with_link(Link::LinuxSll2);
    let path = cap.write("linux_sll2_link_type");
    same_as_ethernet_pcap("linux_sll2_link_type", &path, "LINUX_SLL2");
}

#[test]
fn pcapng_file() {
    let path = Capture::of(&clean_conn()).write_pcapng("pcapng_file");
    same_as_ethernet_pcap("pcapng_file", &path, "EN10MB");
}

#[test]
fn pcapng_with_two_link_types() {
    // Rule 14: several distinct link types of a pcapng joined by ",".
    // Reading: in the order of the interfaces in the file.
    let mut cap = Capture::of(&clean_conn());
    cap.links = vec![Link::Ethernet, Link::Raw];
    for p in &mut cap.packets {
        p.iface = 1;
    }
    cap.filler(t(2.0));
    let path = cap.write_pcapng("pcapng_with_two_link_types");
    same_as_ethernet_pcap("pcapng_with_two_link_types", &path, "EN10MB,RAW");
    let s = analyze_json(&path, &[]);
    assert_eq!(s["sources"][0]["packets"].as_u64(), Some(cap.len() as u64));
}

#[test]
fn nanosecond_pcap() {
    let path = Capture::of(&clean_conn()).write_pcap_ns("nanosecond_pcap");
    same_as_ethernet_pcap("nanosecond_pcap", &path, "EN10MB");
}

#[test]
fn stdin_dash_gives_the_same_result_as_the_file() {
    let cap = Capture::of(&clean_conn());
    let path = cap.write("stdin_dash");
    let from_file = analyze_json(&path, &[]);
    let out = run_with_stdin(&["analyze", "-", "--json", "-"], cap.pcap_bytes());
    let from_stdin = summary_from(&out, 0);
    assert_eq!(from_stdin["connections"], from_file["connections"]);
    assert_eq!(from_stdin["totals"], from_file["totals"]);
    let src = &from_stdin["sources"][0];
    assert_eq!(src["kind"], "file");
    assert_eq!(src["name"], "-");
    for key in [
        "link_type",
        "packets",
        "bytes",
        "first_ts",
        "last_ts",
        "dropped",
    ] {
        assert_eq!(src[key], from_file["sources"][0][key], "sources[0].{key}");
    }
}

#[test]
fn a_connection_split_across_two_files_in_either_order() {
    let cap = Capture::of(&clean_conn());
    let k = cap.len() / 2;
    let (a, b) = (cap.slice(0..k), cap.slice(k..cap.len()));
    let pa = a.write("split_part_a");
    let pb = b.write("split_part_b");
    let whole = analyze_json(&cap.write("split_whole"), &[]);
    for (order, parts) in [
        ("a b", [(&pa, &a), (&pb, &b)]),
        ("b a", [(&pb, &b), (&pa, &a)]),
    ] {
        let s = analyze_files_json(&[parts[0].0, parts[1].0], &[], 0);
        assert_eq!(
            s["connections"], whole["connections"],
            "files given as {order}"
        );
        assert_clean_conn(only_conn(&s));
        let sources = s["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2);
        // Rule 14: entries in command-line order.
        for (src, (path, part)) in sources.iter().zip(parts) {
            assert_eq!(src["name"], path_str(path));
            assert_eq!(src["packets"].as_u64(), Some(part.len() as u64));
            assert_eq!(src["bytes"].as_u64(), Some(part.captured_bytes()));
            assert_num(&src["first_ts"], part.first_ts());
            assert_num(&src["last_ts"], part.last_ts());
        }
    }
}

#[test]
fn capture_end_is_the_last_packet_of_all_files() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    let pa = Capture::of(&c).write("capture_end_part_a");
    let mut later = Capture::new();
    later.filler(t(7.0));
    let pb = later.write("capture_end_part_b");

    let alone = analyze_json(&pa, &[]);
    assert_outcome(only_conn(&alone), "pending");
    // Rule 2: the capture's end is the last packet of all input files.
    let both = analyze_files_json(&[&pa, &pb], &[], 0);
    let c = only_conn(&both);
    assert_outcome(c, "timeout");
    assert_findings(c, &[("close_timeout", SERVER)]);
    assert_num(&finding(c, "close_timeout", SERVER)["ts"], t(6.0));
}

// ---------------------------------------------------------------------------
// Command line and exit status
// ---------------------------------------------------------------------------

/// A capture whose only finding is a warning (close_timeout: the answer
/// came, but late).
fn warning_only_capture(name: &str) -> std::path::PathBuf {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(7.0), &sclose(1000, ""));
    Capture::of(&c).write(name)
}

#[test]
fn fail_on_changes_only_the_exit_status() {
    let path = warning_only_capture("fail_on_warning");
    let reference = analyze_json(&path, &[]);
    assert_eq!(
        reference["totals"]["severities"],
        json!({"error": 0, "warning": 1, "info": 0})
    );
    for (level, status) in [("info", 1), ("warning", 1), ("error", 0)] {
        let s = analyze_files_json(&[&path], &["--fail-on", level], status);
        // Rule 17: the JSON is written in full first.
        assert_eq!(s, reference, "--fail-on {level}");
    }
}

#[test]
fn fail_on_warning_is_triggered_by_an_error() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_fin(t(2.0));
    let path = Capture::of(&c).write("fail_on_with_an_error");
    let s = analyze_files_json(&[&path], &["--fail-on", "warning"], 1);
    assert_eq!(
        s["totals"]["severities"],
        json!({"error": 1, "warning": 0, "info": 0})
    );
    analyze_files_json(&[&path], &["--fail-on", "error"], 1);
}

#[test]
fn fail_on_with_only_info_findings() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.client_fin(t(1.002));
    c.server_fin(t(1.003));
    let path = Capture::of(&c).write("fail_on_with_only_info");
    analyze_files_json(&[&path], &["--fail-on", "info"], 1);
    analyze_files_json(&[&path], &["--fail-on", "warning"], 0);
    let clean = Capture::of(&clean_conn()).write("fail_on_clean");
    analyze_files_json(&[&clean], &["--fail-on", "info"], 0);
}

#[test]
fn json_to_a_path_writes_the_same_summary() {
    let path = Capture::of(&clean_conn()).write("json_to_a_path");
    let to_stdout = analyze_json(&path, &[]);
    let out_path = std::env::temp_dir().join(format!(
        "wsclose-test-{}-json_to_a_path.json",
        std::process::id()
    ));
    let out = run(&["analyze", path_str(&path), "--json", path_str(&out_path)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    validate_summary(&written);
    assert_eq!(written, to_stdout);
}

#[test]
fn without_json_tables_go_to_stdout() {
    let path = Capture::of(&clean_conn()).write("tables");
    let out = run(&["analyze", path_str(&path)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty(), "human tables expected on stdout");
    assert!(
        serde_json::from_slice::<Value>(&out.stdout).is_err(),
        "tables, not JSON, without --json"
    );
}

#[test]
fn empty_file_exits_2() {
    let path = write_file("empty_file", "pcap", b"");
    assert_input_error(
        &run(&["analyze", path_str(&path), "--json", "-"]),
        path_str(&path),
    );
}

#[test]
fn text_file_exits_2_even_next_to_a_good_file() {
    let bad = write_file("text_file", "pcap", b"this is not a capture\nat all\n");
    assert_input_error(
        &run(&["analyze", path_str(&bad), "--json", "-"]),
        path_str(&bad),
    );
    let good = Capture::of(&clean_conn()).write("text_file_good");
    assert_input_error(
        &run(&["analyze", path_str(&good), path_str(&bad), "--json", "-"]),
        path_str(&bad),
    );
}

#[test]
fn nonexistent_path_exits_2() {
    let path = std::env::temp_dir().join("wsclose-test-does-not-exist/missing.pcap");
    assert_input_error(
        &run(&["analyze", path_str(&path), "--json", "-"]),
        path_str(&path),
    );
}

#[test]
fn unsupported_link_type_exits_2() {
    // LINKTYPE_USER0 (147).
    let path = Capture::of(&clean_conn())
        .with_link(Link::Other(147))
        .write("unsupported_link_type");
    assert_input_error(
        &run(&["analyze", path_str(&path), "--json", "-"]),
        path_str(&path),
    );
}

#[test]
fn usage_error_exits_2() {
    let out = run(&["analyze", "--json", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn truncated_last_record_is_analysed_with_a_warning() {
    let cap = Capture::of(&clean_conn());
    let mut bytes = cap.pcap_bytes();
    bytes.truncate(bytes.len() - 10); // cut into the last record's data
    let path = write_file("truncated_last_record", "pcap", &bytes);
    let out = run(&["analyze", path_str(&path), "--json", "-"]);
    let s = summary_from(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(path_str(&path)),
        "a warning naming the file on stderr: {stderr:?}"
    );
    // Everything but the final server ACK was read.
    let c = only_conn(&s);
    assert_clean_conn(c);
    assert_num(&c["last_ts"], t(1.0007));
    // Reading of rule 18: the cut record was not read, so it is not counted.
    assert_eq!(
        s["sources"][0]["packets"].as_u64(),
        Some(cap.len() as u64 - 1)
    );
    assert_num(&s["sources"][0]["last_ts"], t(1.0007));
}
