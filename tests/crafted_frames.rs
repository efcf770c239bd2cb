//! Frame-level findings and counters: control frames too long, data after
//! close, masking, RSV bits with and without permessage-deflate, unknown
//! opcodes, a malformed frame, every length form, frames cut by the
//! capture's end or sharing the 101's segment. A table of cases; see
//! crafted_support/mod.rs.

mod common;
mod crafted_support;

use common::*;
use crafted_support::*;
use serde_json::json;

/// "Hello" compressed with raw deflate, as permessage-deflate sends it.
const DEFLATED_HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

const FRAMES: &[Case] = &[
    Case {
        name: "control_frame_too_long",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(OP_PING, &[b'p'; 126]));
            // The limit itself is fine.
            c.server_send(t(0.6), &sframe(OP_PONG, &[b'p'; 125]));
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        client_frames: Some([0, 0, 0, 1, 0, 1, 126 + 5]),
        server_frames: Some([0, 0, 0, 0, 1, 1, 125 + 2]),
        findings: &[("control_frame_too_long", CLIENT, 0.5)],
        ..Case::DEFAULT
    },
    Case {
        name: "data_after_close_is_reported_and_counted",
        capture: "data_after_close",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(OP_TEXT, b"a"));
            c.client_send(t(1.0), &cclose(1000, "bye"));
            c.client_send(t(1.0005), &cframe(OP_TEXT, b"late"));
            c.server_send(t(1.001), &sclose(1000, ""));
            c.server_fin(t(1.002));
            c.client_fin(t(1.003));
            c
        },
        outcome: "clean",
        // Rule 13: data after close counts in its side's counters.
        client_frames: Some([2, 0, 0, 0, 0, 1, 1 + 5 + 4]),
        idle_s: Secs::Is(0.5),
        findings: &[("data_after_close", CLIENT, 1.0005)],
        ..Case::DEFAULT
    },
    Case {
        name: "masking_violations_one_finding_per_kind_and_side",
        capture: "masking_violations",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &sframe(OP_TEXT, b"one"));
            c.client_send(t(0.6), &sframe(OP_TEXT, b"two"));
            c.client_send(t(0.7), &sframe(OP_TEXT, b"three"));
            c.server_send(t(0.8), &ws_frame(true, 0, OP_TEXT, Some(MASK), b"hi"));
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        client_frames: Some([3, 0, 0, 0, 0, 1, 3 + 3 + 5 + 5]),
        server_frames: Some([1, 0, 0, 0, 0, 1, 2 + 2]),
        // Rule 6: one finding, at the first occurrence, the count in the
        // message.
        findings: &[
            ("unmasked_client_frame", CLIENT, 0.5),
            ("masked_server_frame", SERVER, 0.8),
        ],
        counted: &[("unmasked_client_frame", CLIENT, 3)],
        totals_findings: Some(&[("unmasked_client_frame", 1), ("masked_server_frame", 1)]),
        ..Case::DEFAULT
    },
    // Rule 6, for several kinds at once.
    Case {
        name: "repeated_violations_give_one_finding_per_kind_and_side_with_a_count",
        capture: "repeated_violations",
        conn: || {
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
            c
        },
        outcome: "clean",
        client_frames: Some([4, 1, 0, 0, 0, 1, 2 + 2 + 1 + 2 + 3 + 2 + 4 + 5]),
        findings: &[
            ("unknown_opcode", CLIENT, 0.5),
            ("reserved_bits", CLIENT, 0.7),
            ("data_after_close", CLIENT, 1.0002),
        ],
        counted: &[
            ("unknown_opcode", CLIENT, 2),
            ("reserved_bits", CLIENT, 3),
            ("data_after_close", CLIENT, 2),
        ],
        totals_findings: Some(&[
            ("unknown_opcode", 1),
            ("reserved_bits", 1),
            ("data_after_close", 1),
        ]),
        ..Case::DEFAULT
    },
    Case {
        name: "reserved_bits_without_an_extension",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &ws_frame(true, RSV2, OP_TEXT, Some(MASK), b"x"));
            c.server_send(t(0.6), &ws_frame(true, RSV3, OP_BINARY, None, b"y"));
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 1 + 5]),
        server_frames: Some([0, 1, 0, 0, 0, 1, 1 + 2]),
        findings: &[
            ("reserved_bits", CLIENT, 0.5),
            ("reserved_bits", SERVER, 0.6),
        ],
        ..Case::DEFAULT
    },
    Case {
        name: "permessage_deflate_allows_rsv1_on_data_frames_only",
        capture: "permessage_deflate_rsv1",
        conn: || {
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
            c
        },
        outcome: "clean",
        // Rule 13: payload bytes are the compressed (wire) size.
        client_frames: Some([1, 0, 0, 1, 0, 1, 7 + 1 + 5]),
        server_frames: Some([1, 1, 0, 0, 0, 1, 7 + 1 + 2]),
        // RSV1 on a control frame, RSV2 anywhere: reserved_bits.
        findings: &[
            ("reserved_bits", CLIENT, 0.7),
            ("reserved_bits", SERVER, 0.8),
        ],
        more: |_, c| {
            let h = &c["handshake"];
            assert_eq!(
                h["extensions"],
                json!(["permessage-deflate; client_max_window_bits=12"])
            );
            assert_eq!(h["subprotocol"], "chat");
            assert_eq!(h["accept_valid"], true);
        },
        ..Case::DEFAULT
    },
    Case {
        name: "rsv1_when_deflate_was_offered_but_not_accepted",
        capture: "rsv1_without_negotiated_deflate",
        conn: || {
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
            c
        },
        outcome: "clean",
        findings: &[("reserved_bits", CLIENT, 0.5)],
        more: |_, c| assert_eq!(c["handshake"]["extensions"], json!([])),
        ..Case::DEFAULT
    },
    Case {
        name: "unknown_opcodes_are_reported_and_counted_in_payload_bytes",
        capture: "unknown_opcodes",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(0x3, b"abc"));
            c.server_send(t(0.6), &sframe(0xB, b"xy"));
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        // Rule 13: no counter of their own, but their payload counts.
        client_frames: Some([0, 0, 0, 0, 0, 1, 3 + 5]),
        server_frames: Some([0, 0, 0, 0, 0, 1, 2 + 2]),
        findings: &[
            ("unknown_opcode", CLIENT, 0.5),
            ("unknown_opcode", SERVER, 0.6),
        ],
        ..Case::DEFAULT
    },
    Case {
        name: "malformed_frame_stops_decoding_that_direction_only",
        capture: "malformed_frame",
        conn: || {
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
            c
        },
        server_frames: Some([1, 0, 0, 0, 0, 0, 2]),
        client_frames: Some([1, 0, 0, 0, 0, 1, 13 + 11]),
        server_close: CloseFrame::Null,
        client_close: CloseFrame::Is(1.0, Some(1002), Some("bad frame"), true, 11),
        outcome: "unanswered",
        tcp_end: Some(("fin", SERVER, Some(1.002))),
        findings: &[
            ("malformed_frame", SERVER, 0.6),
            ("error_close_code", CLIENT, 1.0),
            ("unanswered_close", SERVER, 1.002),
        ],
        close_codes: Some(&[("1002", 1)]),
        ..Case::DEFAULT
    },
    Case {
        name: "frame_length_forms_and_masking",
        capture: "frame_length_forms",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            for (i, n) in [125usize, 126, 65535, 65536].into_iter().enumerate() {
                c.client_send(t(0.1 * (i + 1) as f64), &cframe(OP_TEXT, &vec![b'a'; n]));
            }
            for (i, n) in [0usize, 126, 70000].into_iter().enumerate() {
                c.server_send(t(0.5 + 0.1 * i as f64), &sframe(OP_BINARY, &vec![0x5a; n]));
            }
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        client_frames: Some([4, 0, 0, 0, 0, 1, 125 + 126 + 65535 + 65536 + 5]),
        server_frames: Some([0, 3, 0, 0, 0, 1, 126 + 70000 + 2]),
        idle_s: Secs::Is(1.0 - 0.7),
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "incomplete_frame_at_capture_end_is_not_counted",
        capture: "incomplete_frame_at_capture_end",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(OP_TEXT, b"complete"));
            c.client_send(t(0.6), &cframe(OP_TEXT, &[b'z'; 100])[..50]);
            c
        },
        // Rule 18.
        outcome: "open",
        client_frames: Some([1, 0, 0, 0, 0, 0, 8]),
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "frames_in_the_same_segment_as_the_101",
        conn: || {
            let mut c = Conn::standard();
            c.handshake(t(0.0));
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            let mut resp = upgrade_response(101, Some(KEY), &[]);
            resp.extend(sframe(OP_TEXT, b"welcome"));
            c.server_send(t(RESP_AT), &resp);
            c.close_cleanly(t(1.0));
            c
        },
        outcome: "clean",
        server_frames: Some([1, 0, 0, 0, 0, 1, 7 + 2]),
        idle_s: Secs::Is(1.0 - RESP_AT),
        findings: &[],
        ..Case::DEFAULT
    },
];

#[test]
fn each_frame_case() {
    run_cases(FRAMES);
}
