//! The seven per-connection findings of issue 7, written from the contract
//! (/work/shared/contract/DIAGNOSES.md, "New per-connection findings" and
//! "D3. Precise readings"): each is produced by one capture and shown absent
//! from a near miss. They follow rules 6 (one per kind and side, the message
//! gives the count) and 13 like every other finding.

mod common;

use common::*;
use serde_json::Value;

/// `T0 + offset` seconds.
fn t(offset: f64) -> f64 {
    T0 + offset
}

/// Asserts the finding of `kind` for `side`: the table's severity, its time;
/// returns its message.
#[track_caller]
fn assert_finding(c: &Value, kind: &str, side: Option<&str>, ts: f64) -> String {
    let f = finding(c, kind, side);
    assert_eq!(f["severity"], severity_of(kind), "severity of {kind}");
    assert_num(&f["ts"], ts);
    f["message"].as_str().unwrap().to_string()
}

#[track_caller]
fn assert_count_in(kind: &str, msg: &str, n: u64) {
    assert!(
        mentions_number(msg, n),
        "{kind}: the message should give the count {n} (rule 6): {msg:?}"
    );
}

fn analyze(c: &Conn, name: &str) -> Value {
    analyze_json(&Capture::of(c).write(name), &[])
}

// ---------------------------------------------------------------------------
// closed_before_answer
// ---------------------------------------------------------------------------

#[test]
fn closed_before_answer_when_the_server_fins_before_the_answer() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"hi"));
    c.server_send(t(2.0), &sclose(1001, "restart"));
    c.server_fin(t(2.001));
    // The answer meets a closed socket: RST.
    c.client_send(t(2.05), &cclose(1001, ""));
    c.server_rst(t(2.0501));
    let s = analyze(&c, "closed_before_answer_server");
    let c = only_conn(&s);
    // Rule 1: the answer came before the deadline.
    assert_outcome(c, "clean");
    assert_tcp_end(c, "fin", SERVER, Some(t(2.001)));
    assert_findings(
        c,
        &[
            ("closed_before_answer", SERVER),
            ("reset_after_close", SERVER),
        ],
    );
    // Reading: the finding is about the early FIN (side: "the one that
    // closed early"), so its time is that FIN's.
    let msg = assert_finding(c, "closed_before_answer", SERVER, t(2.001));
    assert!(
        msg.to_lowercase().contains("fin"),
        "the message says how TCP was ended: {msg:?}"
    );
}

#[test]
fn closed_before_answer_when_the_client_resets_right_after_its_close() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, "done"));
    c.client_rst(t(1.0005));
    // The server's answer was already on its way.
    c.server_send(t(1.001), &sclose(1000, ""));
    let s = analyze(&c, "closed_before_answer_client_rst");
    let c = only_conn(&s);
    // The server's close frame is on the wire after the client's RST (it
    // was in flight): "(FIN or RST)" in the table and D3's "the other
    // side's close frame is seen after it" need it decoded. It came before
    // the deadline: `clean` (rule 1).
    assert_outcome(c, "clean");
    assert_tcp_end(c, "rst", CLIENT, Some(t(1.0005)));
    let msg = assert_finding(c, "closed_before_answer", CLIENT, t(1.0005));
    assert!(msg.to_lowercase().contains("rst"), "{msg:?}");
    finding(c, "reset_after_close", CLIENT);
    assert!(
        !findings(c).contains(&("closed_before_answer".into(), Some("server".into()))),
        "the server did not close early"
    );
}

#[test]
fn closed_before_answer_absent_when_the_answer_comes_before_the_tcp_end() {
    // The client ends TCP first, but only after the close handshake.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.client_fin(t(1.002));
    c.server_fin(t(1.003));
    c.client_ack(t(1.004));
    let s = analyze(&c, "closed_before_answer_absent_after_handshake");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(c, &[("client_closed_tcp_first", CLIENT)]);
}

#[test]
fn closed_before_answer_absent_when_no_answer_is_ever_seen() {
    // D3: "the other side's close frame is seen after it": never seen here.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, "bye"));
    c.client_fin(t(1.1));
    c.server_fin(t(1.2));
    c.client_ack(t(1.201));
    let s = analyze(&c, "closed_before_answer_absent_unanswered");
    let c = only_conn(&s);
    assert_outcome(c, "unanswered");
    assert_findings(c, &[("unanswered_close", SERVER)]);
}

// ---------------------------------------------------------------------------
// foreign_reset
// ---------------------------------------------------------------------------

#[test]
fn foreign_reset_an_rst_with_a_ttl_the_server_never_used() {
    // The capture point sees the client at TTL 64 and the server at 52. The
    // forged RST carries the server's address with TTL 64: the client's TTL,
    // but no earlier packet *from the server's address* had it.
    let mut c = Conn::standard();
    c.set_ttl(Dir::C2S, 64).set_ttl(Dir::S2C, 52);
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"hi"));
    c.server_send(t(1.1), &sframe(OP_TEXT, b"yo"));
    c.rst_with_ttl(Dir::S2C, t(30.0), 64);
    let s = analyze(&c, "foreign_reset_server");
    let c = only_conn(&s);
    assert_outcome(c, "abnormal");
    assert_tcp_end(c, "rst", SERVER, Some(t(30.0)));
    assert_findings(
        c,
        &[("abnormal_closure", SERVER), ("foreign_reset", SERVER)],
    );
    let msg = assert_finding(c, "foreign_reset", SERVER, t(30.0));
    assert!(
        mentions_number(&msg, 64),
        "the message gives the RST's TTL: {msg:?}"
    );
    assert!(
        mentions_number(&msg, 52),
        "the message gives the TTL the server used: {msg:?}"
    );
}

#[test]
fn foreign_reset_both_ways_over_ipv6_hop_limits() {
    // A middlebox resets both ends, forging each one's address.
    let mut c = Conn::new("[2001:db8::1]:51234", "[2001:db8::2]:443");
    c.set_ttl(Dir::C2S, 60).set_ttl(Dir::S2C, 58);
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_BINARY, b"data"));
    c.server_send(t(1.1), &sframe(OP_BINARY, b"back"));
    c.rst_with_ttl(Dir::S2C, t(5.0), 250);
    c.rst_with_ttl(Dir::C2S, t(5.0001), 249);
    let s = analyze(&c, "foreign_reset_both_ipv6");
    let c = only_conn(&s);
    assert_outcome(c, "abnormal");
    assert_tcp_end(c, "rst", SERVER, Some(t(5.0)));
    assert_findings(
        c,
        &[
            ("abnormal_closure", SERVER),
            ("foreign_reset", SERVER),
            ("foreign_reset", CLIENT),
        ],
    );
    let msg = assert_finding(c, "foreign_reset", SERVER, t(5.0));
    assert!(mentions_number(&msg, 250), "{msg:?}");
    let msg = assert_finding(c, "foreign_reset", CLIENT, t(5.0001));
    assert!(mentions_number(&msg, 249), "{msg:?}");
}

#[test]
fn foreign_reset_absent_when_an_earlier_packet_had_that_ttl() {
    // D3: "a path change that some earlier packet shares is not foreign".
    let build = |port: u16, rst_ttl: u8| {
        let mut c = Conn::new(&format!("10.0.0.1:{port}"), SERVER_ADDR);
        c.set_ttl(Dir::S2C, 52);
        c.open_ws(t(f64::from(port - 50000)));
        let base = f64::from(port - 50000);
        c.server_send(t(base + 1.0), &sframe(OP_TEXT, b"before"));
        // The path changes: the server's packets now arrive with TTL 50.
        c.set_ttl(Dir::S2C, 50);
        c.server_send(t(base + 2.0), &sframe(OP_TEXT, b"after"));
        c.rst_with_ttl(Dir::S2C, t(base + 3.0), rst_ttl);
        c
    };
    // The new TTL, and the old one: both were seen before from the server.
    let (a, b) = (build(50001, 50), build(50002, 52));
    // The RST from the client carries the client's usual TTL.
    let mut d = Conn::new("10.0.0.1:50003", SERVER_ADDR);
    d.open_ws(t(3.0));
    d.client_send(t(4.0), &cframe(OP_TEXT, b"x"));
    d.client_rst(t(6.5));
    let s = analyze_json(
        &Capture::merge(&[&a, &b, &d]).write("foreign_reset_absent"),
        &[],
    );
    let cs = conns(&s);
    assert_eq!(cs.len(), 3);
    assert_findings(&cs[0], &[("abnormal_closure", SERVER)]);
    assert_findings(&cs[1], &[("abnormal_closure", SERVER)]);
    assert_findings(&cs[2], &[("abnormal_closure", CLIENT)]);
}

// ---------------------------------------------------------------------------
// unanswered_ping
// ---------------------------------------------------------------------------

#[test]
fn unanswered_ping_one_per_side_with_the_count() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    for (i, at) in [1.0, 2.0, 3.0].into_iter().enumerate() {
        c.client_send(t(at), &cframe(OP_PING, format!("c{i}").as_bytes()));
    }
    // The server is alive (it sends data) but never answers the pings.
    c.server_send(t(4.0), &sframe(OP_TEXT, b"tick"));
    for (i, at) in [5.0, 6.0].into_iter().enumerate() {
        c.server_send(t(at), &sframe(OP_PING, format!("s{i}").as_bytes()));
    }
    c.client_send(t(10.0), &cframe(OP_TEXT, b"still here"));
    c.close_cleanly(t(20.0));
    let s = analyze(&c, "unanswered_ping_both_sides");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 0, 3, 0, 1, 10 + 6 + 5]);
    assert_frames(c, "server", [1, 0, 0, 2, 0, 1, 4 + 4 + 2]);
    // Side: "the side that did not answer". Reading: like `close_timeout`
    // (same shape: no answer within the close timeout, side the silent
    // one), it is dated at its deadline (rule 16), that of the first
    // unanswered ping (rule 6: "at the first occurrence"): ping + 5 s.
    assert_findings(
        c,
        &[("unanswered_ping", SERVER), ("unanswered_ping", CLIENT)],
    );
    let msg = assert_finding(c, "unanswered_ping", SERVER, t(1.0 + 5.0));
    assert_count_in("unanswered_ping", &msg, 3);
    let msg = assert_finding(c, "unanswered_ping", CLIENT, t(5.0 + 5.0));
    assert_count_in("unanswered_ping", &msg, 2);
}

/// A ping at 1.0 the server never answers; the server ends TCP at 4.0.
fn ping_then_fin_at_4() -> Capture {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_PING, b"are you there"));
    c.server_fin(t(4.0));
    c.client_fin(t(4.001));
    c.server_ack(t(4.002));
    Capture::of(&c)
}

#[test]
fn unanswered_ping_needs_the_connection_open_for_the_close_timeout() {
    let path = ping_then_fin_at_4().write("unanswered_ping_fin_at_4");
    // --close-timeout 2: the FIN at 4.0 comes after the ping plus 2 s.
    let s = analyze_json(&path, &["--close-timeout", "2"]);
    let c = only_conn(&s);
    assert_outcome(c, "abnormal");
    assert_findings(
        c,
        &[("abnormal_closure", SERVER), ("unanswered_ping", SERVER)],
    );
    // At the ping's deadline: 1.0 + 2 s.
    let msg = assert_finding(c, "unanswered_ping", SERVER, t(3.0));
    assert_count_in("unanswered_ping", &msg, 1);
    // Default 5 s: the first FIN came before the ping plus 5 s (D3).
    let s = analyze_json(&path, &[]);
    let c = only_conn(&s);
    assert_findings(c, &[("abnormal_closure", SERVER)]);
}

#[test]
fn unanswered_ping_absent_when_the_pong_comes_in_time() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_PING, b"1"));
    c.server_send(t(1.2), &sframe(OP_PONG, b"1"));
    c.server_send(t(2.0), &sframe(OP_PING, b"2"));
    c.client_send(t(6.9), &cframe(OP_PONG, b"2"));
    c.close_cleanly(t(20.0));
    let s = analyze(&c, "unanswered_ping_absent_pong");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(c, &[]);
}

#[test]
fn unanswered_ping_absent_when_the_capture_ends_before_its_deadline() {
    // D3: "the capture reaches that time"; here it ends at 4.0 < 1.0 + 5.
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cframe(OP_PING, b"p"));
    c.client_send(t(4.0), &cframe(OP_TEXT, b"x"));
    let s = analyze(&c, "unanswered_ping_absent_capture_end");
    let c = only_conn(&s);
    assert_outcome(c, "open");
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// invalid_utf8_text
// ---------------------------------------------------------------------------

#[test]
fn invalid_utf8_text_single_frames_from_both_sides() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(0.5), &cframe(OP_TEXT, "héllo €".as_bytes()));
    c.client_send(t(1.0), &cframe(OP_TEXT, b"ok\xff"));
    // An overlong encoding of '/'.
    c.client_send(t(2.0), &cframe(OP_TEXT, b"\xc0\xaf"));
    // A UTF-16 surrogate (U+D800) encoded as UTF-8.
    c.server_send(t(1.5), &sframe(OP_TEXT, b"\xed\xa0\x80"));
    // Binary messages are not text: never judged.
    c.server_send(t(1.6), &sframe(OP_BINARY, b"\xff\xfe"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "invalid_utf8_text_single");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(
        c,
        &[("invalid_utf8_text", CLIENT), ("invalid_utf8_text", SERVER)],
    );
    let msg = assert_finding(c, "invalid_utf8_text", CLIENT, t(1.0));
    assert_count_in("invalid_utf8_text", &msg, 2);
    assert_finding(c, "invalid_utf8_text", SERVER, t(1.5));
}

#[test]
fn invalid_utf8_text_across_fragments() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    // A sequence cut short by the end of the message: invalid, known at
    // the last fragment.
    c.client_send(t(1.0), &ws_frame(false, 0, OP_TEXT, Some(MASK), b"ab"));
    c.client_send(
        t(1.2),
        &ws_frame(true, 0, OP_CONT, Some(MASK), b"c\xe2\x82"),
    );
    // An invalid byte in the first fragment of a server message.
    c.server_send(t(2.0), &ws_frame(false, 0, OP_TEXT, None, b"\xff"));
    c.server_send(t(2.3), &ws_frame(true, 0, OP_CONT, None, b"x"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "invalid_utf8_text_fragments");
    let c = only_conn(&s);
    assert_findings(
        c,
        &[("invalid_utf8_text", CLIENT), ("invalid_utf8_text", SERVER)],
    );
    assert_finding(c, "invalid_utf8_text", CLIENT, t(1.2));
    // Reading: either the fragment holding the bad byte or the message's
    // last fragment is a fair time for it; the contract does not say.
    let ts = finding(c, "invalid_utf8_text", SERVER)["ts"]
        .as_f64()
        .unwrap();
    assert!(
        (ts - t(2.0)).abs() < EPS || (ts - t(2.3)).abs() < EPS,
        "ts {ts}"
    );
}

#[test]
fn utf8_split_across_frames_and_segments_is_valid() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    // "price: €!" with € (E2 82 AC) split between two frames ...
    let mut bytes = ws_frame(false, 0, OP_TEXT, Some(MASK), b"price: \xe2");
    bytes.extend(ws_frame(true, 0, OP_CONT, Some(MASK), b"\x82\xac!"));
    // ... and the second frame split between two TCP segments, between
    // the 0x82 and the 0xAC.
    let cut = bytes.len() - 2;
    c.client_send(t(1.0), &bytes[..cut]);
    c.client_send(t(1.1), &bytes[cut..]);
    // 😀 (F0 9F 98 80) in three frames, each in its own segment.
    c.server_send(t(2.0), &ws_frame(false, 0, OP_TEXT, None, b"\xf0"));
    c.server_send(t(2.1), &ws_frame(false, 0, OP_CONT, None, b"\x9f\x98"));
    c.server_send(t(2.2), &ws_frame(true, 0, OP_CONT, None, b"\x80"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "utf8_split_is_valid");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "client", [1, 0, 1, 0, 0, 1, 8 + 3 + 5]);
    assert_frames(c, "server", [1, 0, 2, 0, 0, 1, 1 + 2 + 1 + 2]);
    assert_findings(c, &[]);
}

#[test]
fn compressed_text_is_not_judged() {
    // "Hello" deflated: 0xF2 0x48 ... is not UTF-8, but compressed
    // messages "are not inflated and not judged".
    const DEFLATED_HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let ext = [("Sec-WebSocket-Extensions", "permessage-deflate")];
    let mut c = Conn::standard();
    c.open_ws_with(t(0.0), &ext, &ext);
    c.client_send(
        t(1.0),
        &ws_frame(true, RSV1, OP_TEXT, Some(MASK), &DEFLATED_HELLO),
    );
    // A compressed message in two fragments (RSV1 on the first only).
    c.server_send(t(1.5), &ws_frame(false, RSV1, OP_TEXT, None, &[0xf2, 0x48]));
    c.server_send(t(1.6), &ws_frame(true, 0, OP_CONT, None, &[0xff, 0x00]));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "compressed_text_not_judged");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// orphan_continuation, interleaved_message
// ---------------------------------------------------------------------------

#[test]
fn orphan_continuation_without_a_message_in_progress() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &ws_frame(true, 0, OP_CONT, Some(MASK), b"x"));
    c.client_send(t(1.5), &cframe(OP_TEXT, b"ok"));
    // After a complete (FIN) message, nothing is in progress either.
    c.client_send(t(2.0), &ws_frame(true, 0, OP_CONT, Some(MASK), b"yz"));
    c.server_send(t(3.0), &ws_frame(true, 0, OP_CONT, None, b"s"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "orphan_continuation");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // Rule 13: counted like every frame.
    assert_frames(c, "client", [1, 0, 2, 0, 0, 1, 1 + 2 + 2 + 5]);
    assert_frames(c, "server", [0, 0, 1, 0, 0, 1, 1 + 2]);
    assert_findings(
        c,
        &[
            ("orphan_continuation", CLIENT),
            ("orphan_continuation", SERVER),
        ],
    );
    let msg = assert_finding(c, "orphan_continuation", CLIENT, t(1.0));
    assert_count_in("orphan_continuation", &msg, 2);
    assert_finding(c, "orphan_continuation", SERVER, t(3.0));
}

#[test]
fn interleaved_message_while_a_fragmented_one_is_in_progress() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &ws_frame(false, 0, OP_TEXT, Some(MASK), b"part1"));
    c.client_send(t(1.5), &ws_frame(false, 0, OP_TEXT, Some(MASK), b"new"));
    // Whichever message is taken to be in progress now, one still is.
    c.client_send(t(2.0), &cframe(OP_BINARY, b"bin"));
    c.server_send(t(3.0), &ws_frame(false, 0, OP_BINARY, None, b"s1"));
    c.server_send(t(3.1), &sframe(OP_TEXT, b"s2"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "interleaved_message");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(
        c,
        &[
            ("interleaved_message", CLIENT),
            ("interleaved_message", SERVER),
        ],
    );
    let msg = assert_finding(c, "interleaved_message", CLIENT, t(1.5));
    assert_count_in("interleaved_message", &msg, 2);
    assert_finding(c, "interleaved_message", SERVER, t(3.1));
}

#[test]
fn well_formed_fragmentation_gives_neither() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &ws_frame(false, 0, OP_TEXT, Some(MASK), b"a"));
    c.client_send(t(1.1), &ws_frame(false, 0, OP_CONT, Some(MASK), b"b"));
    // Control frames may come between fragments (RFC 6455 5.4).
    c.client_send(t(1.2), &cframe(OP_PING, b"p"));
    c.server_send(t(1.25), &sframe(OP_PONG, b"p"));
    c.client_send(t(1.3), &ws_frame(true, 0, OP_CONT, Some(MASK), b"c"));
    c.client_send(t(1.4), &cframe(OP_TEXT, b"whole"));
    c.server_send(t(2.0), &ws_frame(false, 0, OP_BINARY, None, b"1"));
    c.server_send(t(2.1), &ws_frame(true, 0, OP_CONT, None, b"2"));
    c.server_send(t(2.2), &sframe(OP_BINARY, b"3"));
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "well_formed_fragmentation");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_findings(c, &[]);
}

// ---------------------------------------------------------------------------
// non_minimal_length
// ---------------------------------------------------------------------------

#[test]
fn non_minimal_length_in_16_and_64_bit_forms() {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(
        t(1.0),
        &ws_frame_len_form(true, 0, OP_TEXT, None, b"hi", LenForm::Ext16),
    );
    c.server_send(
        t(1.1),
        &ws_frame_len_form(true, 0, OP_BINARY, None, &[7; 10], LenForm::Ext64),
    );
    // 200 bytes fit the 16-bit form: the 64-bit one is not minimal either.
    c.client_send(
        t(1.5),
        &ws_frame_len_form(true, 0, OP_BINARY, Some(MASK), &[1; 200], LenForm::Ext64),
    );
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "non_minimal_length");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    // Rule 13: the frames decode and count as usual.
    assert_frames(c, "server", [1, 1, 0, 0, 0, 1, 2 + 10 + 2]);
    assert_frames(c, "client", [0, 1, 0, 0, 0, 1, 200 + 5]);
    assert_findings(
        c,
        &[
            ("non_minimal_length", SERVER),
            ("non_minimal_length", CLIENT),
        ],
    );
    let msg = assert_finding(c, "non_minimal_length", SERVER, t(1.0));
    assert_count_in("non_minimal_length", &msg, 2);
    assert_finding(c, "non_minimal_length", CLIENT, t(1.5));
}

#[test]
fn minimal_length_forms_are_not_reported() {
    let m126 = ws_frame_len_form(true, 0, OP_BINARY, None, &[0; 126], LenForm::Ext16);
    assert_eq!(
        m126,
        sframe(OP_BINARY, &[0; 126]),
        "126 bytes: the 16-bit form"
    );
    let m64k = ws_frame_len_form(true, 0, OP_BINARY, None, &[0; 65536], LenForm::Ext64);
    assert_eq!(
        m64k,
        sframe(OP_BINARY, &[0; 65536]),
        "65536: the 64-bit form"
    );
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.server_send(t(1.0), &m126);
    c.server_send(t(1.1), &m64k);
    c.server_send(t(1.2), &sframe(OP_TEXT, &[b'a'; 125]));
    c.client_send(
        t(1.5),
        &ws_frame_len_form(true, 0, OP_TEXT, Some(MASK), &[b'b'; 65535], LenForm::Ext16),
    );
    c.close_cleanly(t(5.0));
    let s = analyze(&c, "minimal_length_forms");
    let c = only_conn(&s);
    assert_outcome(c, "clean");
    assert_frames(c, "server", [1, 2, 0, 0, 0, 1, 126 + 65536 + 125 + 2]);
    assert_findings(c, &[]);
}
