//! Close frames: every close code's class (one capture, a connection per
//! code), payloads of zero and one byte, invalid UTF-8 reasons, fragmented
//! and repeated close frames. See crafted_support/mod.rs.

mod common;
mod crafted_support;

use std::collections::BTreeMap;

use common::*;
use crafted_support::*;
use serde_json::json;

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

const CLOSE_FRAMES: &[Case] = &[
    Case {
        name: "error_close_code_from_both_sides",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.server_send(t(2.0), &sclose(1008, "policy"));
            c.client_send(t(2.01), &cclose(1008, ""));
            c.server_fin(t(2.02));
            c.client_fin(t(2.03));
            c
        },
        outcome: "clean",
        findings: &[
            ("error_close_code", SERVER, 2.0),
            ("error_close_code", CLIENT, 2.01),
        ],
        totals_findings: Some(&[("error_close_code", 2)]),
        ..Case::DEFAULT
    },
    Case {
        name: "invalid_utf8_reason_is_replaced",
        capture: "invalid_utf8_reason",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(
                t(1.0),
                &cframe(OP_CLOSE, &close_payload(1000, &[b'b', b'y', 0xff, b'e'])),
            );
            c.server_send(t(1.001), &sclose(1000, ""));
            c.server_fin(t(1.002));
            c.client_fin(t(1.003));
            c
        },
        outcome: "clean",
        client_close: CloseFrame::Is(1.0, Some(1000), Some("by\u{fffd}e"), false, 6),
        findings: &[("invalid_utf8_reason", CLIENT, 1.0)],
        ..Case::DEFAULT
    },
    // Rule 5: a close frame with FIN clear is its side's close frame.
    Case {
        name: "fragmented_close_frame_still_closes",
        capture: "fragmented_close_frame",
        conn: || {
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
            c
        },
        outcome: "clean",
        initiator: Some(CLIENT),
        client_close: CloseFrame::Is(1.0, Some(1000), Some("bye"), true, 5),
        client_frames: Some([0, 0, 0, 0, 0, 1, 5]),
        server_frames: Some([0, 0, 0, 1, 0, 1, 3]),
        findings: &[
            ("fragmented_control_frame", CLIENT, 1.0),
            ("fragmented_control_frame", SERVER, 0.5),
        ],
        close_codes: Some(&[("1000", 2)]),
        ..Case::DEFAULT
    },
    // close_frame is the first each side sent; close_codes and frames count
    // every close frame on the wire.
    Case {
        name: "second_close_frame_from_the_same_side",
        conn: || {
            let mut c = Conn::standard();
            c.open_ws(t(0.0));
            c.client_send(t(1.0), &cclose(1001, ""));
            c.client_send(t(1.0005), &cclose(1000, ""));
            c.server_send(t(1.001), &sclose(1001, ""));
            c.server_fin(t(1.002));
            c.client_fin(t(1.003));
            c
        },
        outcome: "clean",
        client_close: CloseFrame::Is(1.0, Some(1001), Some(""), true, 2),
        client_frames: Some([0, 0, 0, 0, 0, 2, 4]),
        handshake_s: Secs::Is(0.001),
        close_codes: Some(&[("1001", 2), ("1000", 1)]),
        findings: &[],
        ..Case::DEFAULT
    },
];

#[test]
fn each_close_frame_case() {
    run_cases(CLOSE_FRAMES);
}
