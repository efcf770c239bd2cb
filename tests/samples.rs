//! The bundled samples (real peers captured on loopback, see
//! samples/MANIFEST.md): each must give the verdicts its peers produced on
//! the wire, checked against tshark's dissection when the samples were made.

mod common;

use std::path::{Path, PathBuf};

use common::{analyze_files_json, analyze_json, conns, findings};
use serde_json::Value;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// What one connection of a sample must show.
struct Expect {
    outcome: &'static str,
    initiator: Option<&'static str>,
    client_code: Option<u64>,
    server_code: Option<u64>,
    tcp_end: (&'static str, Option<&'static str>),
    findings: &'static [(&'static str, Option<&'static str>)],
}

fn check(c: &Value, e: &Expect) {
    let close = &c["close"];
    let ctx = serde_json::to_string_pretty(c).unwrap_or_default();
    assert_eq!(close["outcome"], e.outcome, "{ctx}");
    assert_eq!(close["initiator"].as_str(), e.initiator, "{ctx}");
    assert_eq!(
        close["client_frame"]["code"].as_u64(),
        e.client_code,
        "{ctx}"
    );
    assert_eq!(
        close["server_frame"]["code"].as_u64(),
        e.server_code,
        "{ctx}"
    );
    assert_eq!(close["tcp_end"]["kind"], e.tcp_end.0, "{ctx}");
    assert_eq!(close["tcp_end"]["by"].as_str(), e.tcp_end.1, "{ctx}");
    let mut got = findings(c);
    got.sort();
    let mut want: Vec<(String, Option<String>)> = e
        .findings
        .iter()
        .map(|(k, s)| (k.to_string(), s.map(str::to_string)))
        .collect();
    want.sort();
    assert_eq!(got, want, "{ctx}");
}

fn single(name: &str, e: Expect) -> Value {
    let s = analyze_json(&sample(name), &[]);
    let cs = conns(&s);
    assert_eq!(cs.len(), 1, "{name}");
    check(&cs[0], &e);
    cs[0].clone()
}

const CLEAN_CLIENT: Expect = Expect {
    outcome: "clean",
    initiator: Some("client"),
    client_code: Some(1000),
    server_code: Some(1000),
    tcp_end: ("fin", Some("server")),
    findings: &[],
};

#[test]
fn python_clean_client_close() {
    let c = single("python-clean-client-close.pcap", CLEAN_CLIENT);
    let h = &c["handshake"];
    assert_eq!(h["status"], 101);
    assert_eq!(h["accept_valid"], true);
    assert!(c["close"]["handshake_s"].as_f64().unwrap() < 0.05);
    assert!(c["frames"]["client"]["text"].as_u64().unwrap() >= 1);
}

#[test]
fn node_clean_server_close_with_reason() {
    let c = single(
        "node-clean-server-close-reason.pcap",
        Expect {
            outcome: "clean",
            initiator: Some("server"),
            client_code: Some(1001),
            server_code: Some(1001),
            // node ws: the client ends TCP once the close handshake is done.
            tcp_end: ("fin", Some("client")),
            findings: &[("client_closed_tcp_first", Some("client"))],
        },
    );
    let reason = c["close"]["server_frame"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
}

#[test]
fn python_4000_range_code_with_utf8_reason() {
    let c = single(
        "python-4000-utf8-reason.pcap",
        Expect {
            outcome: "clean",
            initiator: Some("server"),
            client_code: Some(4001),
            server_code: Some(4001),
            tcp_end: ("fin", Some("server")),
            findings: &[],
        },
    );
    let f = &c["close"]["server_frame"];
    let reason = f["reason"].as_str().unwrap();
    assert!(!reason.is_ascii(), "{reason}");
    assert_eq!(f["reason_valid_utf8"], true);
    assert_eq!(f["payload_len"].as_u64(), Some(2 + reason.len() as u64));
}

#[test]
fn node_terminate_is_abnormal() {
    single(
        "node-terminate.pcap",
        Expect {
            outcome: "abnormal",
            initiator: None,
            client_code: None,
            server_code: None,
            tcp_end: ("fin", Some("server")),
            findings: &[("abnormal_closure", Some("server"))],
        },
    );
}

#[test]
fn unanswered_close() {
    single(
        "unanswered-close.pcap",
        Expect {
            outcome: "unanswered",
            initiator: Some("client"),
            client_code: Some(1000),
            server_code: None,
            tcp_end: ("fin", Some("server")),
            findings: &[("unanswered_close", Some("server"))],
        },
    );
}

#[test]
fn close_timeout() {
    let c = single(
        "close-timeout.pcap",
        Expect {
            outcome: "timeout",
            initiator: Some("client"),
            client_code: Some(1000),
            server_code: None,
            tcp_end: ("fin", Some("server")),
            findings: &[("close_timeout", Some("server"))],
        },
    );
    // With a longer timeout the same capture is merely unanswered.
    let s = analyze_json(&sample("close-timeout.pcap"), &["--close-timeout", "60"]);
    let c60 = &conns(&s)[0];
    assert_eq!(c60["close"]["outcome"], "unanswered");
    assert_eq!(c["client"], c60["client"]);
}

#[test]
fn rejected_upgrade() {
    let c = single(
        "rejected-upgrade.pcap",
        Expect {
            outcome: "rejected",
            initiator: None,
            client_code: None,
            server_code: None,
            tcp_end: ("fin", Some("server")),
            findings: &[("handshake_rejected", Some("server"))],
        },
    );
    let status = c["handshake"]["status"].as_u64().unwrap();
    assert!((400..500).contains(&status), "{status}");
    assert!(c["close"]["idle_s"].is_null());
}

#[test]
fn ipv6_clean() {
    let c = single("ipv6-clean.pcap", CLEAN_CLIENT);
    assert!(c["client"].as_str().unwrap().starts_with("[::1]:"));
    assert!(c["server"].as_str().unwrap().starts_with("[::1]:"));
}

#[test]
fn tcpdump_any_is_linux_sll2() {
    single("any-sll2.pcap", CLEAN_CLIENT);
    let s = analyze_json(&sample("any-sll2.pcap"), &[]);
    assert_eq!(s["sources"][0]["link_type"], "LINUX_SLL2");
}

#[test]
fn nanosecond_pcap() {
    single(
        "nanosecond.pcap",
        Expect {
            tcp_end: ("fin", Some("client")),
            findings: &[("client_closed_tcp_first", Some("client"))],
            ..CLEAN_CLIENT
        },
    );
}

#[test]
fn pcapng_ping_pong() {
    let c = single(
        "node-ping-pong.pcapng",
        Expect {
            tcp_end: ("fin", Some("client")),
            findings: &[("client_closed_tcp_first", Some("client"))],
            ..CLEAN_CLIENT
        },
    );
    let pings = c["frames"]["client"]["ping"].as_u64().unwrap()
        + c["frames"]["server"]["ping"].as_u64().unwrap();
    let pongs = c["frames"]["client"]["pong"].as_u64().unwrap()
        + c["frames"]["server"]["pong"].as_u64().unwrap();
    assert!(pings > 0 && pings == pongs, "{pings} pings, {pongs} pongs");
}

#[test]
fn rotated_files_are_one_capture_in_any_order() {
    let names = [
        "rotated-1.pcap",
        "rotated-2.pcap",
        "rotated-3.pcap",
        "rotated-4.pcap",
        "rotated-5.pcap",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| sample(n)).collect();
    let mut reversed: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    reversed.reverse();
    let forward: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    for order in [forward, reversed] {
        let s = analyze_files_json(&order, &[], 0);
        let cs = conns(&s);
        assert_eq!(cs.len(), 1);
        check(&cs[0], &CLEAN_CLIENT);
        assert!(cs[0]["handshake"]["path"].is_string());
        assert_eq!(s["sources"].as_array().unwrap().len(), 5);
    }
    // The last file alone: picked up midstream, still a clean close.
    let s = analyze_json(&sample("rotated-5.pcap"), &[]);
    check(
        &conns(&s)[0],
        &Expect {
            findings: &[("midstream", None)],
            ..CLEAN_CLIENT
        },
    );
}

#[test]
fn many_connections() {
    let s = analyze_json(&sample("many-connections.pcap"), &[]);
    let cs = conns(&s);
    assert_eq!(cs.len(), 17);
    let o = &s["totals"]["outcomes"];
    assert_eq!(o["clean"], 11);
    assert_eq!(o["abnormal"], 2);
    assert_eq!(o["unanswered"], 2);
    assert_eq!(o["rejected"], 2);
    let ids: Vec<u64> = cs.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=17).collect::<Vec<_>>());
    // permessage-deflate was negotiated on some connections: their RSV1
    // frames are not violations.
    assert!(cs.iter().any(|c| {
        c["handshake"]["extensions"].as_array().is_some_and(|e| {
            e.iter()
                .any(|x| x.as_str().unwrap().starts_with("permessage-deflate"))
        })
    }));
    assert!(
        cs.iter()
            .all(|c| !findings(c).iter().any(|(k, _)| k == "reserved_bits"))
    );
    // A 1011 close from the server is an error code on both sides.
    assert!(cs.iter().any(|c| {
        c["close"]["server_frame"]["code"] == 1011
            && findings(c).contains(&("error_close_code".to_string(), Some("server".to_string())))
    }));
    assert_eq!(s["totals"]["close_codes"]["1011"], 2);
}
