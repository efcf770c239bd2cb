//! Diagnoses across connections (contract part 2, DIAGNOSES.md, "Diagnoses"
//! and D3): `never_answers_close`, `closes_without_waiting`,
//! `heartbeat_lost`, `error_close_codes`, `foreign_resets`, and a capture of
//! clean connections. The timing kinds (`idle_timeout`, `max_lifetime`,
//! `mass_disconnect`), the order of the array, D1 and D2 are in
//! tests/diagnoses_timing.rs.
//!
//! Every summary is validated against the schema and the contract's
//! invariants (`common::validate_summary`, `common::validate_diagnoses`).

mod common;

use common::*;
use serde_json::{Value, json};

fn merged(conns: &[Conn]) -> Capture {
    let refs: Vec<&Conn> = conns.iter().collect();
    Capture::merge(&refs)
}

fn message(d: &Value) -> &str {
    d["message"].as_str().unwrap()
}

/// Asserts the fields every kind without a value has (D3): `value_s`,
/// `min_s`, `max_s` null, no matches.
#[track_caller]
fn assert_no_value(d: &Value) {
    for k in ["value_s", "min_s", "max_s"] {
        assert!(d[k].is_null(), "{k} must be null for {}: {d:#}", d["kind"]);
    }
    assert_eq!(d["matches"], json!([]), "{d:#}");
}

#[track_caller]
fn assert_mentions(d: &Value, n: u64) {
    let msg = message(d);
    assert!(
        mentions_number(msg, n),
        "the message should give {n}: {msg:?}"
    );
}

/// A connection to `server` upgraded at `T0 + start`.
fn upgraded(client: &str, server: &str, start: f64) -> Conn {
    let mut c = Conn::new(client, server);
    c.open_ws(T0 + start);
    c
}

/// The client sends a close frame at `start + 1`; the server never answers
/// and ends TCP at `start + 1.5`: outcome `unanswered`.
fn server_ignores_close(client: &str, server: &str, start: f64) -> Conn {
    let mut c = upgraded(client, server, start);
    c.client_send(T0 + start + 1.0, &cclose(1000, "bye"));
    end_tcp(&mut c, End::Fin(Dir::S2C), start + 1.5);
    c
}

/// The client closes at `start + 1`, the server answers in time.
fn server_answers_close(client: &str, server: &str, start: f64) -> Conn {
    let mut c = upgraded(client, server, start);
    c.close_cleanly(T0 + start + 1.0);
    c
}

#[test]
fn clean_connections_give_an_empty_diagnoses_array() {
    // Ten clean closes (code 1000), all in the same second: no diagnosis.
    let conns: Vec<Conn> = (0..10)
        .map(|i| {
            let mut c = upgraded(&client_no(i), SERVER_ADDR, i as f64);
            c.client_send(T0 + i as f64 + 0.5, &cframe(OP_TEXT, b"hi"));
            c.close_cleanly(T0 + 60.0 + 0.05 * i as f64);
            c
        })
        .collect();
    let s = analyze_diag(&merged(&conns).write("diagnoses_clean"), &[]);
    assert_eq!(s["diagnoses"], json!([]));
}

#[test]
fn diagnoses_is_present_even_with_no_connection() {
    let mut cap = Capture::new();
    cap.filler(T0).filler(T0 + 1.0);
    let s = analyze_diag(&cap.write("diagnoses_no_connection"), &[]);
    assert_eq!(s["diagnoses"], json!([]));
}

#[test]
fn the_diagnoses_validator_accepts_the_contract_example_and_rejects_broken_ones() {
    // The checker every test here relies on (`validate_diagnoses`), tried
    // on a real summary with the contract's example entries injected.
    let conns: Vec<Conn> = (0..4)
        .map(|i| idle_cut(&client_no(i), 100.0 * i as f64, 60.0))
        .collect();
    let mut s = analyze_json(&merged(&conns).write("validator_example"), &[]);
    s["diagnoses"] = json!([
        {"kind": "idle_timeout", "severity": "error", "side": "server",
         "peer": SERVER_ADDR, "connections": [1, 2, 3, 4],
         "value_s": 60.0, "min_s": 59.81, "max_s": 60.29,
         "matches": ["nginx proxy_read_timeout (default 60 s)"],
         "message": "4 connections were cut by the server side after 60.0 s",
         "advice": "send pings at least every 30 s"},
        {"kind": "mass_disconnect", "severity": "warning", "side": "client",
         "peer": "10.0.0.1", "connections": [1, 2],
         "value_s": null, "min_s": null, "max_s": null, "matches": [],
         "message": "2 connections", "advice": null},
        {"kind": "error_close_codes", "severity": "warning", "side": null,
         "peer": null, "connections": [3], "code": 1011,
         "value_s": null, "min_s": null, "max_s": null, "matches": [],
         "message": "1011 on 1 connection", "advice": null}
    ]);
    validate_schema(&s);
    validate_diagnoses(&s);
    type Breakage = fn(&mut Value);
    let breakages: [(&str, Breakage); 10] = [
        ("missing array", |v| {
            v.as_object_mut().unwrap().remove("diagnoses");
        }),
        ("ids not ascending", |v| {
            v["diagnoses"][0]["connections"] = json!([2, 1, 3, 4])
        }),
        ("unknown id", |v| {
            v["diagnoses"][2]["connections"] = json!([9])
        }),
        ("empty connections", |v| {
            v["diagnoses"][2]["connections"] = json!([])
        }),
        ("wrong severity", |v| {
            v["diagnoses"][0]["severity"] = json!("warning")
        }),
        ("warning before error", |v| {
            let a = v["diagnoses"].as_array_mut().unwrap();
            a.swap(0, 1);
        }),
        ("peer with port for a client", |v| {
            v["diagnoses"][1]["peer"] = json!("10.0.0.1:40000")
        }),
        ("value for mass_disconnect", |v| {
            v["diagnoses"][1]["value_s"] = json!(1.0)
        }),
        ("no code", |v| {
            v["diagnoses"][2].as_object_mut().unwrap().remove("code");
        }),
        ("min above value", |v| {
            v["diagnoses"][0]["min_s"] = json!(61.0)
        }),
    ];
    for (what, breakage) in breakages {
        let mut v = s.clone();
        breakage(&mut v);
        let rejected = std::panic::catch_unwind(|| validate_diagnoses(&v)).is_err();
        assert!(rejected, "the validator should reject: {what}");
    }
}

// ---------------------------------------------------------------------------
// never_answers_close
// ---------------------------------------------------------------------------

#[test]
fn never_answers_close_by_a_server() {
    let other = "10.0.0.3:8765";
    let mut conns = vec![
        server_ignores_close(&client_no(0), SERVER_ADDR, 0.0),
        server_ignores_close(&client_no(1), SERVER_ADDR, 10.0),
        // Another server, which answers: not part of it.
        server_answers_close(&client_no(2), other, 20.0),
    ];
    // The third unanswered close ends in `timeout`: never answered, and the
    // capture goes on past the deadline.
    let mut c = upgraded(&client_no(3), SERVER_ADDR, 30.0);
    c.client_send(T0 + 31.0, &cclose(1001, ""));
    conns.push(c);
    let mut cap = merged(&conns);
    cap.filler(T0 + 40.0);
    let s = analyze_diag(&cap.write("never_answers_close_server"), &[]);
    let outcomes: Vec<&str> = conns_outcomes(&s);
    assert_eq!(outcomes, ["unanswered", "unanswered", "clean", "timeout"]);
    let d = only_diag(&s, "never_answers_close");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1, 2, 4]);
    assert_no_value(d);
    assert_mentions(d, 3);
}

fn conns_outcomes(s: &Value) -> Vec<&str> {
    conns(s).iter().map(outcome).collect()
}

#[test]
fn never_answers_close_by_a_client_names_its_ip() {
    // One client host (10.0.0.7, two ports) never answers the server's
    // close frames. D3: `peer` for the client side is its IP, no port.
    let conns: Vec<Conn> = (0..2)
        .map(|i| {
            let start = 10.0 * i as f64;
            let mut c = upgraded(&format!("10.0.0.7:{}", 50000 + i), SERVER_ADDR, start);
            c.server_send(T0 + start + 1.0, &sclose(1000, "bye"));
            end_tcp(&mut c, End::Fin(Dir::S2C), start + 2.0);
            c
        })
        .collect();
    let s = analyze_diag(&merged(&conns).write("never_answers_close_client"), &[]);
    let d = only_diag(&s, "never_answers_close");
    assert_eq!(d["side"], "client");
    assert_eq!(d["peer"], "10.0.0.7");
    assert_eq!(diag_ids(d), [1, 2]);
    assert_no_value(d);
    assert_mentions(d, 2);
}

#[test]
fn never_answers_close_absent_when_the_address_answered_once_or_once_only() {
    let conns = vec![
        // This server left two unanswered, but answered one: not "none".
        server_ignores_close(&client_no(0), SERVER_ADDR, 0.0),
        server_ignores_close(&client_no(1), SERVER_ADDR, 10.0),
        server_answers_close(&client_no(2), SERVER_ADDR, 20.0),
        // Two other servers, one unanswered close each (per address, D3).
        server_ignores_close(&client_no(3), "10.0.0.3:8765", 30.0),
        server_ignores_close(&client_no(4), "10.0.0.4:8765", 40.0),
    ];
    let s = analyze_diag(&merged(&conns).write("never_answers_close_absent"), &[]);
    assert_no_diag(&s, "never_answers_close");
}

// ---------------------------------------------------------------------------
// closes_without_waiting
// ---------------------------------------------------------------------------

/// The server sends its close frame and its FIN right away; the client's
/// answer meets a closed socket (RST): `closed_before_answer` (server).
fn server_closes_without_waiting(client: &str, start: f64) -> Conn {
    let mut c = upgraded(client, SERVER_ADDR, start);
    c.server_send(T0 + start + 1.0, &sclose(1001, "shutting down"));
    c.server_fin(T0 + start + 1.001);
    c.client_send(T0 + start + 1.05, &cclose(1001, ""));
    c.server_rst(T0 + start + 1.0501);
    c
}

#[test]
fn closes_without_waiting_on_two_connections() {
    let conns = vec![
        server_closes_without_waiting(&client_no(0), 0.0),
        server_answers_close(&client_no(1), SERVER_ADDR, 10.0),
        server_closes_without_waiting(&client_no(2), 20.0),
    ];
    let s = analyze_diag(&merged(&conns).write("closes_without_waiting"), &[]);
    for i in [0, 2] {
        finding(&common::conns(&s)[i], "closed_before_answer", SERVER);
    }
    let d = only_diag(&s, "closes_without_waiting");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1, 3]);
    assert_no_value(d);
    assert_mentions(d, 2);
}

#[test]
fn closes_without_waiting_absent_with_one_connection() {
    let conns = vec![
        server_closes_without_waiting(&client_no(0), 0.0),
        server_answers_close(&client_no(1), SERVER_ADDR, 10.0),
    ];
    let s = analyze_diag(&merged(&conns).write("closes_without_waiting_one"), &[]);
    assert_no_diag(&s, "closes_without_waiting");
}

// ---------------------------------------------------------------------------
// heartbeat_lost
// ---------------------------------------------------------------------------

/// The server pings every 10 s from 10 s on; the client answers the pings
/// sent before `stop` and none after. The server gives up with `close` at
/// `close_at`, the client answers with 1000.
fn server_pings(client: &str, stop: f64, close: u16, close_at: f64) -> Conn {
    let mut c = upgraded(client, SERVER_ADDR, 0.0);
    let mut at = 10.0;
    while at < close_at {
        c.server_send(T0 + at, &sframe(OP_PING, b"hb"));
        if at < stop {
            c.client_send(T0 + at + 0.01, &cframe(OP_PONG, b"hb"));
        }
        at += 10.0;
    }
    c.server_send(T0 + close_at, &sclose(close, ""));
    c.client_send(T0 + close_at + 0.01, &cclose(1000, ""));
    end_tcp(&mut c, End::Fin(Dir::S2C), close_at + 0.02);
    c
}

#[test]
fn heartbeat_lost_the_client_stops_answering_and_the_server_closes_1011() {
    // Pongs for the pings at 10 and 20 s; none for 30, 40, 50; 1011 at 55.
    let c = server_pings(CLIENT_ADDR, 25.0, 1011, 55.0);
    let s = analyze_diag(&Capture::of(&c).write("heartbeat_lost_1011"), &[]);
    let conn = only_conn(&s);
    finding(conn, "unanswered_ping", CLIENT);
    let d = only_diag(&s, "heartbeat_lost");
    assert_eq!(d["severity"], "error");
    // The side that stopped answering.
    assert_eq!(d["side"], "client");
    assert_eq!(d["peer"], "10.0.0.1");
    assert_eq!(diag_ids(d), [1]);
    // D3: from the first unanswered ping (30 s) to the cut (the 1011 close
    // frame at 55 s).
    assert_values(d, 25.0, 25.0, 25.0);
    assert!(d["matches"].is_array());
    assert!(
        mentions_value(message(d), 25.0, 0.05),
        "the message gives the 25 s: {:?}",
        message(d)
    );
}

#[test]
fn heartbeat_lost_the_server_stops_answering_and_the_client_resets() {
    // The client pings every 5 s; pongs for 5 and 10 s, none for 15, 20,
    // 25; it resets at 27 s: value_s runs to the TCP end (12 s).
    let mut c = Conn::standard();
    c.open_ws(T0);
    for at in [5.0, 10.0, 15.0, 20.0, 25.0] {
        c.client_send(T0 + at, &cframe(OP_PING, b"?"));
        if at < 12.0 {
            c.server_send(T0 + at + 0.01, &sframe(OP_PONG, b"?"));
        }
    }
    c.client_rst(T0 + 27.0);
    let s = analyze_diag(&Capture::of(&c).write("heartbeat_lost_rst"), &[]);
    assert_outcome(only_conn(&s), "abnormal");
    let d = only_diag(&s, "heartbeat_lost");
    assert_eq!(d["side"], "server");
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1]);
    assert_values(d, 12.0, 12.0, 12.0);
}

#[test]
fn heartbeat_lost_absent_when_answered_short_or_closed_normally() {
    let conns = vec![
        // Every ping answered, then 1011: an error code, not a lost
        // heartbeat.
        server_pings(&client_no(0), 100.0, 1011, 55.0),
        // Pings unanswered from 30 s, but a normal close (1000).
        server_pings(&client_no(1), 25.0, 1000, 55.0),
        // The last ping (at 50 s) unanswered for only 3 s before the 1011
        // (close timeout 5 s).
        server_pings(&client_no(2), 45.0, 1011, 53.0),
    ];
    let s = analyze_diag(&merged(&conns).write("heartbeat_lost_absent"), &[]);
    assert_no_diag(&s, "heartbeat_lost");
}

// ---------------------------------------------------------------------------
// error_close_codes
// ---------------------------------------------------------------------------

/// The server closes with `code` at `start + 2` after the client sent
/// `sizes` (one binary message each); the client answers with 1000.
fn server_closes_with(client: &str, start: f64, code: u16, sizes: &[usize]) -> Conn {
    let mut c = upgraded(client, SERVER_ADDR, start);
    for (i, n) in sizes.iter().enumerate() {
        c.client_send(
            T0 + start + 0.5 + 0.1 * i as f64,
            &cframe(OP_BINARY, &vec![0x42; *n]),
        );
    }
    c.server_send(T0 + start + 2.0, &sclose(code, ""));
    c.client_send(T0 + start + 2.001, &cclose(1000, ""));
    end_tcp(&mut c, End::Fin(Dir::S2C), start + 2.002);
    c
}

#[test]
fn error_close_codes_one_entry_per_code_and_side() {
    let mut conns = vec![
        server_closes_with(&client_no(0), 0.0, 1009, &[1000, 70000, 20]),
        server_closes_with(&client_no(1), 10.0, 1009, &[300]),
        server_closes_with(&client_no(2), 20.0, 1011, &[]),
    ];
    // The client closes with 1008 (policy violation).
    let mut c = upgraded(&client_no(3), SERVER_ADDR, 30.0);
    c.client_send(T0 + 31.0, &cclose(1008, "policy"));
    c.server_send(T0 + 31.001, &sclose(1000, ""));
    end_tcp(&mut c, End::Fin(Dir::S2C), 31.002);
    conns.push(c);
    // The client sends an unmasked frame; the server closes with 1002.
    let mut c = upgraded(&client_no(4), SERVER_ADDR, 40.0);
    c.client_send(T0 + 40.5, &sframe(OP_TEXT, b"unmasked"));
    c.server_send(T0 + 41.0, &sclose(1002, "protocol error"));
    c.client_send(T0 + 41.001, &cclose(1000, ""));
    end_tcp(&mut c, End::Fin(Dir::S2C), 41.002);
    conns.push(c);

    let s = analyze_diag(&merged(&conns).write("error_close_codes"), &[]);
    let ds = diags_of(&s, "error_close_codes");
    assert_eq!(ds.len(), 4, "{:#}", s["diagnoses"]);
    // Order: the most connections first.
    assert_eq!(ds[0]["code"], 1009);
    let entry = |code: u64, side: &str| -> &Value {
        ds.iter()
            .find(|d| d["code"] == code && d["side"] == side)
            .copied()
            .unwrap_or_else(|| panic!("no entry for {code} from the {side}"))
    };
    for (code, side, ids, peer) in [
        (1009, "server", vec![1, 2], SERVER_ADDR),
        (1011, "server", vec![3], SERVER_ADDR),
        (1008, "client", vec![4], "10.0.0.1"),
        (1002, "server", vec![5], SERVER_ADDR),
    ] {
        let d = entry(code, side);
        assert_eq!(d["severity"], "warning");
        assert_eq!(d["peer"], peer);
        assert_eq!(diag_ids(d), ids);
        assert!(d["code"].is_u64(), "code is an integer");
        assert_no_value(d);
        assert_mentions(d, code);
    }
    // 1009: the largest message the other side sent before it, in bytes.
    let msg = message(entry(1009, "server"));
    assert!(mentions_number(msg, 70000), "largest message: {msg:?}");
    // 1002: the other side's protocol-violation findings before it.
    let msg = message(entry(1002, "server")).to_lowercase();
    assert!(msg.contains("unmasked"), "the violation: {msg:?}");
}

#[test]
fn error_close_codes_absent_for_normal_codes() {
    let conns: Vec<Conn> = [1000, 1001, 1012, 4000]
        .into_iter()
        .enumerate()
        .map(|(i, code)| server_closes_with(&client_no(i), 10.0 * i as f64, code, &[10]))
        .collect();
    let s = analyze_diag(&merged(&conns).write("error_close_codes_absent"), &[]);
    assert_no_diag(&s, "error_close_codes");
}

// ---------------------------------------------------------------------------
// foreign_resets
// ---------------------------------------------------------------------------

/// A connection whose server packets arrive with TTL 52, ended at
/// `start + 5` by an RST with the server's address and `rst_ttl`.
fn reset_with_ttl(client: &str, start: f64, rst_ttl: u8) -> Conn {
    let mut c = Conn::new(client, SERVER_ADDR);
    c.set_ttl(Dir::S2C, 52);
    c.open_ws(T0 + start);
    c.client_send(T0 + start + 1.0, &cframe(OP_TEXT, b"hi"));
    c.server_send(T0 + start + 1.1, &sframe(OP_TEXT, b"yo"));
    c.rst_with_ttl(Dir::S2C, T0 + start + 5.0, rst_ttl);
    c
}

#[test]
fn foreign_resets_on_two_connections() {
    let conns = vec![
        reset_with_ttl(&client_no(0), 0.0, 128),
        reset_with_ttl(&client_no(1), 20.0, 52),
        reset_with_ttl(&client_no(2), 40.0, 128),
    ];
    let s = analyze_diag(&merged(&conns).write("foreign_resets"), &[]);
    let d = only_diag(&s, "foreign_resets");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["side"], "server");
    // The address the resets claim to come from.
    assert_eq!(d["peer"], SERVER_ADDR);
    assert_eq!(diag_ids(d), [1, 3]);
    assert_no_value(d);
    assert_mentions(d, 2);
}

#[test]
fn foreign_resets_on_one_connection_suffice() {
    let conns = vec![reset_with_ttl(&client_no(0), 0.0, 250)];
    let s = analyze_diag(&merged(&conns).write("foreign_resets_one"), &[]);
    assert_eq!(diag_ids(only_diag(&s, "foreign_resets")), [1]);
}

#[test]
fn foreign_resets_absent_when_every_rst_has_the_endpoint_ttl() {
    let conns = vec![
        reset_with_ttl(&client_no(0), 0.0, 52),
        reset_with_ttl(&client_no(1), 20.0, 52),
    ];
    let s = analyze_diag(&merged(&conns).write("foreign_resets_absent"), &[]);
    assert_no_diag(&s, "foreign_resets");
}
