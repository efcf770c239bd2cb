//! TCP reassembly under the analysis: segments out of order, retransmitted,
//! overlapping, tiny, across the 2^32 wrap, and a lost segment (a capture
//! gap). Mostly a table of cases; see crafted_support/mod.rs.

mod common;
mod crafted_support;

use common::*;
use crafted_support::*;

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

const REASSEMBLY: &[Case] = &[
    Case {
        name: "out_of_order_segments_are_reassembled",
        capture: "out_of_order_segments",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            let frame = cframe(OP_TEXT, b"0123456789abcdefghij"); // 26 bytes
            let off = c.offset(Dir::C2S);
            c.segment(Dir::C2S, t(0.5), off, &frame[..8], PSH | ACK);
            c.segment(Dir::C2S, t(0.51), off + 16, &frame[16..], PSH | ACK);
            c.segment(Dir::C2S, t(0.52), off + 8, &frame[8..16], PSH | ACK);
            c.advance(Dir::C2S, frame.len());
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 20 + 5]),
        // The hole was filled: no capture_gap.
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "retransmissions_are_not_counted_twice",
        capture: "retransmissions",
        conn: || {
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
            c
        },
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 5 + 5]),
        client_close: CloseFrame::Is(1.0, Some(1000), Some("bye"), true, 5),
        tcp_end: Some(("fin", SERVER, Some(1.3))),
        close_codes: Some(&[("1000", 2)]),
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "overlapping_segments_are_reassembled_once",
        capture: "overlapping_segments",
        conn: || {
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
            c
        },
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 24 + 5]),
        server_frames: Some([1, 0, 0, 0, 0, 1, 8 + 2]),
        // Rule 3: the frame's time is that of the packet with its last byte.
        idle_s: Secs::Is(1.0 - 0.61),
        findings: &[],
        ..Case::DEFAULT
    },
    // Both ISNs sit just below 2^32: the server's 101 crosses it within one
    // segment; the client's text frame is cut exactly at the wrap and its
    // two halves arrive in reverse order; a retransmission of the pre-wrap
    // 101 arrives after the wrap and must be recognised as old data.
    Case {
        name: "sequence_numbers_wrap_around",
        capture: "sequence_wraparound",
        conn: || {
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
            c
        },
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 200 + 5]),
        server_frames: Some([0, 1, 0, 0, 0, 1, 3000 + 2]),
        tcp_end: Some(("fin", SERVER, Some(1.002))),
        findings: &[],
        more: |_, c| {
            assert_eq!(c["handshake"]["status"], 101);
            assert_eq!(c["handshake"]["accept_valid"], true);
        },
        ..Case::DEFAULT
    },
    // Reading: the contract allows an incomplete analysis after a gap, but
    // when the hole ends on a frame boundary, decoding resumes at the next
    // segment (as Wireshark does): the server's later frames are seen.
    Case {
        name: "capture_gap_resyncs_at_the_segment_after_the_hole",
        capture: "capture_gap_resync",
        conn: conn_with_a_lost_segment,
        outcome: "clean",
        server_frames: Some([2, 0, 0, 0, 0, 1, 6 + 5 + 2]),
        server_close: CloseFrame::Is(1.001, Some(1000), Some(""), true, 2),
        untimed: &[("capture_gap", SERVER)],
        ..Case::DEFAULT
    },
];

#[test]
fn each_reassembly_case() {
    run_cases(REASSEMBLY);
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
