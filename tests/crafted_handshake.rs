//! The upgrade handshake and who is who: a wrong or missing
//! Sec-WebSocket-Accept, the client found by its SYN, its upgrade request
//! or its masks (midstream), which TCP connections are listed, a reused
//! four-tuple, IPv6 addresses. Mostly a table of cases; see
//! crafted_support/mod.rs.

mod common;
mod crafted_support;

use common::*;
use crafted_support::*;

const HANDSHAKES: &[Case] = &[
    Case {
        name: "wrong_accept_still_counts_as_an_upgrade",
        capture: "wrong_accept",
        conn: || {
            let mut c = Conn::standard();
            c.handshake(t(0.0));
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            c.server_send(
                t(RESP_AT),
                &upgrade_response(101, Some("AAAAAAAAAAAAAAAAAAAAAA=="), &[]),
            );
            c.close_cleanly(t(1.0));
            c
        },
        // Rule 8: the outcome follows from what happens next.
        outcome: "clean",
        findings: &[("invalid_accept", SERVER, RESP_AT)],
        more: |_, c| {
            assert_eq!(c["handshake"]["status"], 101);
            assert_eq!(c["handshake"]["accept_valid"], false);
        },
        ..Case::DEFAULT
    },
    Case {
        name: "client_is_the_syn_sender_even_with_the_lower_port",
        capture: "client_is_the_syn_sender",
        conn: || {
            let mut c = Conn::new("10.0.0.5:1000", "10.0.0.6:9000");
            c.open_ws(t(0.0));
            c.close_cleanly(t(1.0));
            c
        },
        addrs: Some(("10.0.0.5:1000", "10.0.0.6:9000")),
        outcome: "clean",
        findings: &[],
        ..Case::DEFAULT
    },
    Case {
        name: "client_is_the_upgrade_requester_when_the_syn_was_missed",
        capture: "client_is_the_upgrade_requester",
        conn: || {
            let mut c = Conn::new("10.0.0.5:1000", "10.0.0.6:9000");
            c.server_ack(t(0.0)); // the first packet, from the server
            let host = c.host();
            c.client_send(t(REQ_AT), &upgrade_request("/chat", &host, KEY, &[]));
            c.server_send(t(RESP_AT), &upgrade_response(101, Some(KEY), &[]));
            c.close_cleanly(t(1.0));
            c
        },
        addrs: Some(("10.0.0.5:1000", "10.0.0.6:9000")),
        outcome: "clean",
        // The upgrade was seen: not midstream.
        findings: &[],
        more: |_, c| {
            assert_num(&c["first_ts"], t(0.0));
            assert_eq!(c["handshake"]["status"], 101);
        },
        ..Case::DEFAULT
    },
    // The client has the lower port and the server sends the first packet:
    // only the mask tells them apart (rule 12).
    Case {
        name: "midstream_client_identified_by_mask",
        conn: || {
            let mut c = Conn::new("10.0.0.5:40000", "10.0.0.6:50000");
            c.server_send(t(1.0), &sframe(OP_TEXT, b"tick"));
            c.client_send(t(2.0), &cframe(OP_TEXT, b"ack"));
            c.client_send(t(3.0), &cclose(1000, ""));
            c.server_send(t(3.001), &sclose(1000, ""));
            c.server_fin(t(3.002));
            c.client_fin(t(3.003));
            c.server_ack(t(3.004));
            c
        },
        addrs: Some(("10.0.0.5:40000", "10.0.0.6:50000")),
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 3 + 2]),
        server_frames: Some([1, 0, 0, 0, 0, 1, 4 + 2]),
        idle_s: Secs::Is(1.0),
        findings: &[("midstream", NO_SIDE, 1.0)],
        more: |_, c| {
            assert!(c["handshake"].is_null());
            assert_num(&c["first_ts"], t(1.0));
        },
        ..Case::DEFAULT
    },
    // The server (lower port) sends the first packet and all the frames.
    Case {
        name: "midstream_without_masked_frames_client_is_the_higher_port",
        capture: "midstream_client_is_the_higher_port",
        conn: || {
            let mut c = Conn::standard();
            c.server_send(t(1.0), &sframe(OP_BINARY, &[1, 2, 3]));
            c.client_ack(t(1.001));
            c.server_send(t(2.0), &sframe(OP_BINARY, &[4, 5]));
            c.client_ack(t(2.001));
            c.server_fin(t(9.0));
            c.client_fin(t(9.001));
            c
        },
        addrs: Some((CLIENT_ADDR, SERVER_ADDR)),
        server_frames: Some([0, 2, 0, 0, 0, 0, 5]),
        // "or the connection was picked up midstream": abnormal.
        outcome: "abnormal",
        idle_s: Secs::Is(7.0),
        tcp_end: Some(("fin", SERVER, Some(9.0))),
        findings: &[
            ("midstream", NO_SIDE, 1.0),
            ("abnormal_closure", SERVER, 9.0),
        ],
        more: |_, c| assert!(c["handshake"].is_null()),
        ..Case::DEFAULT
    },
    Case {
        name: "midstream_idle_is_measured_from_the_first_packet",
        capture: "midstream_idle_from_first_packet",
        conn: || {
            let mut c = Conn::standard();
            c.client_ack(t(1.0));
            c.server_send(t(4.0), &sclose(1001, ""));
            c.client_send(t(4.01), &cclose(1001, ""));
            c.server_fin(t(4.02));
            c.client_fin(t(4.03));
            c
        },
        outcome: "clean",
        initiator: Some(SERVER),
        // Rule 11: no frame before the closing, picked up midstream.
        idle_s: Secs::Is(3.0),
        handshake_s: Secs::Is(0.01),
        findings: &[("midstream", NO_SIDE, 1.0)],
        more: |_, c| assert_eq!(c["client"], CLIENT_ADDR),
        ..Case::DEFAULT
    },
    Case {
        name: "ipv6_addresses_are_bracketed",
        capture: "ipv6_addresses",
        conn: || {
            let mut c = Conn::new("[2001:db8::1]:51234", "[2001:db8::2]:443");
            c.open_ws(t(0.0));
            c.client_send(t(0.5), &cframe(OP_TEXT, b"v6"));
            c.close_cleanly(t(1.0));
            c
        },
        addrs: Some(("[2001:db8::1]:51234", "[2001:db8::2]:443")),
        outcome: "clean",
        client_frames: Some([1, 0, 0, 0, 0, 1, 2 + 5]),
        findings: &[],
        more: |_, c| assert_eq!(c["handshake"]["host"], "[2001:db8::2]:443"),
        ..Case::DEFAULT
    },
];

#[test]
fn each_handshake_and_identification_case() {
    run_cases(HANDSHAKES);
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
