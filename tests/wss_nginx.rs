//! nginx terminating TLS (`samples/wss-nginx-idle.pcap`, made by
//! `samples/wss.sh nginx`): `proxy_read_timeout 2s`, 3 idle wss clients and
//! 1 talking one, both legs captured (client legs TLS 1.3 on :18834, the
//! upstream legs plaintext on :18835). Without keys the idle cut is still
//! seen, from timing alone (DIAGNOSES.md: `encrypted` connections count as
//! cut after a silence); with the clients' key log the client legs become
//! `abnormal` with the same idle time.

mod common;
mod wss_support;

use std::path::PathBuf;

use serde_json::Value;
use wss_support::*;

const NGINX: &str = "127.0.0.1:18834";
const BACKEND: &str = "127.0.0.1:18835";
/// The talking client's leg, then its upstream leg.
const TALK: [&str; 2] = ["127.0.0.1:53852", "127.0.0.1:57562"];
/// The idle clients' legs (nginx the server) and their upstream legs (nginx
/// the client), in order of first packet.
const IDLE_CLIENT_LEGS: [&str; 3] = ["127.0.0.1:53864", "127.0.0.1:53876", "127.0.0.1:53884"];
const IDLE_UPSTREAM_LEGS: [&str; 3] = ["127.0.0.1:57564", "127.0.0.1:57580", "127.0.0.1:57588"];

fn pcap() -> PathBuf {
    sample("wss-nginx-idle.pcap")
}

fn keys() -> PathBuf {
    sample("wss-nginx-idle.keys")
}

fn id_of(v: &Value, client: &str) -> u64 {
    by_client(v, client)["id"].as_u64().unwrap()
}

fn ids(v: &Value, clients: &[&str]) -> Vec<u64> {
    let mut ids: Vec<u64> = clients.iter().map(|c| id_of(v, c)).collect();
    ids.sort();
    ids
}

/// The `idle_timeout` diagnoses: one for each side (the client legs cut by
/// nginx as the server, the upstream legs cut by nginx as the client), or
/// one with side null holding all six (D3). Value about 2 s.
fn assert_idle_timeout(v: &Value) {
    let diags: Vec<&Value> = v["diagnoses"]
        .as_array()
        .expect("diagnoses")
        .iter()
        .filter(|d| d["kind"] == "idle_timeout")
        .collect();
    let client_legs = ids(v, &IDLE_CLIENT_LEGS);
    let upstream_legs = ids(v, &IDLE_UPSTREAM_LEGS);
    let pretty = serde_json::to_string_pretty(&v["diagnoses"]).unwrap();
    match diags.len() {
        2 => {
            let server = diags.iter().find(|d| d["side"] == "server").expect(&pretty);
            let client = diags.iter().find(|d| d["side"] == "client").expect(&pretty);
            assert_eq!(
                server["connections"],
                serde_json::json!(client_legs),
                "{pretty}"
            );
            assert_eq!(server["peer"], NGINX, "{pretty}");
            assert_eq!(
                client["connections"],
                serde_json::json!(upstream_legs),
                "{pretty}"
            );
            assert_eq!(client["peer"], "127.0.0.1", "{pretty}");
        }
        1 => {
            let mut all = [client_legs, upstream_legs].concat();
            all.sort();
            assert!(diags[0]["side"].is_null(), "{pretty}");
            assert_eq!(diags[0]["connections"], serde_json::json!(all), "{pretty}");
        }
        n => panic!("{n} idle_timeout diagnoses:\n{pretty}"),
    }
    for d in diags {
        assert_eq!(d["severity"], "error");
        for k in ["value_s", "min_s", "max_s"] {
            let x = d[k].as_f64().expect(k);
            assert!((x - 2.0).abs() < 0.01, "{k} {x} is about 2 s: {d}");
        }
        assert_eq!(
            d["matches"],
            serde_json::json!([]),
            "2 s is no component's default: {d}"
        );
    }
    for kind in ["mass_disconnect", "max_lifetime"] {
        assert!(
            v["diagnoses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["kind"] != kind),
            "no {kind}: {pretty}"
        );
    }
}

/// The plaintext upstream legs, the same with or without keys.
fn assert_upstream_legs(v: &Value, wire: &[Wire]) {
    for client in IDLE_UPSTREAM_LEGS {
        let c = by_client(v, client);
        let w = wire.iter().find(|w| w.client == client).unwrap();
        assert_wire(c, w);
        assert_eq!(c["server"], BACKEND);
        assert_eq!(c["transport"], "tcp");
        assert!(c["tls"].is_null());
        assert_eq!(c["close"]["outcome"], "abnormal", "{c}");
        assert_eq!(
            c["close"]["tcp_end"]["by"], "client",
            "nginx cuts the upstream leg: {c}"
        );
        let idle = c["close"]["idle_s"].as_f64().unwrap();
        assert!((idle - 2.0).abs() < 0.01, "{client}: idle_s {idle}");
    }
    let c = by_client(v, TALK[1]);
    assert_eq!(c["transport"], "tcp");
    assert_eq!(c["close"]["outcome"], "clean", "{c}");
}

#[test]
fn nginx_tls_idle_cut_without_keys_is_diagnosed_from_timing() {
    let (v, stderr) = analyze(&[&pcap()], &[]);
    let wire = read_wire(&pcap());
    assert_eq!(conns(&v).len(), 8, "4 client legs, 4 upstream legs");
    for client in IDLE_CLIENT_LEGS.iter().chain([&TALK[0]]) {
        let c = by_client(&v, client);
        let w = wire.iter().find(|w| w.client == *client).unwrap();
        assert_eq!(c["close"]["outcome"], "encrypted", "{c}");
        assert_encrypted_shape(c);
        assert_wire(c, w);
        assert_eq!(c["server"], NGINX);
        let t = &c["tls"];
        assert_eq!(t["version"], "TLS 1.3");
        assert_eq!(t["cipher"], "TLS_AES_128_GCM_SHA256");
        assert_eq!(t["sni"], "localhost");
        assert_eq!(t["alpn"], serde_json::json!([]));
        assert_eq!(t["not_decrypted_reason"], "no_key");
        assert_eq!(
            t["close_notify"],
            serde_json::json!({"client": null, "server": null})
        );
        let idle = c["close"]["idle_s"].as_f64().unwrap();
        let burst = w.burst_idle().unwrap();
        assert!(
            (idle - burst).abs() < 2e-6,
            "{client}: idle_s {idle}, final burst {burst}"
        );
    }
    for client in IDLE_CLIENT_LEGS {
        let c = by_client(&v, client);
        assert_eq!(c["close"]["tcp_end"]["by"], "server", "nginx cuts: {c}");
        let idle = c["close"]["idle_s"].as_f64().unwrap();
        assert!(
            (idle - 2.0).abs() < 0.01,
            "{client}: idle_s {idle} about 2 s"
        );
    }
    let talk = by_client(&v, TALK[0])["close"]["idle_s"].as_f64().unwrap();
    assert!(talk < 1.0, "the talking client was not cut: {talk}");
    assert_upstream_legs(&v, &wire);
    assert_idle_timeout(&v);
    let o = &v["totals"]["outcomes"];
    assert_eq!(
        (&o["encrypted"], &o["abnormal"], &o["clean"]),
        (&4.into(), &3.into(), &1.into())
    );
    let tls = &v["analysis"]["tls"];
    assert_eq!((&tls["seen"], &tls["decrypted"]), (&4.into(), &0.into()));
    assert_eq!(tls["not_decrypted"]["no_key"], 4);
    assert_one_key_hint(&stderr);
}

#[test]
fn nginx_tls_idle_cut_with_keys_makes_the_client_legs_abnormal() {
    let k = keys();
    let (v, stderr) = analyze(&[&pcap()], &["--keylog", s(&k)]);
    let wire = read_wire(&pcap());
    assert!(key_hint_lines(&stderr).is_empty(), "{stderr}");
    assert_eq!(conns(&v).len(), 8);
    for client in IDLE_CLIENT_LEGS {
        let c = by_client(&v, client);
        let w = wire.iter().find(|w| w.client == client).unwrap();
        assert_wire(c, w);
        assert_eq!(c["transport"], "tls");
        assert_eq!(c["tls"]["decrypted"], true);
        assert_eq!(c["close"]["outcome"], "abnormal", "{c}");
        assert_eq!(c["close"]["tcp_end"]["by"], "server");
        assert_eq!(c["handshake"]["status"], 101);
        let path = c["handshake"]["path"].as_str().unwrap();
        assert!(path.starts_with("/ws?idle="), "{path}");
        let idle = c["close"]["idle_s"].as_f64().unwrap();
        assert!(
            (idle - 2.0).abs() < 0.01,
            "{client}: idle_s {idle} about 2 s"
        );
        let kinds: Vec<(&str, &str)> = c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap(),
                    f["side"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(kinds, [("abnormal_closure", "server")], "{c}");
        // nginx shuts TLS down (close_notify) just before its FIN.
        let notify = c["tls"]["close_notify"]["server"]
            .as_f64()
            .expect("nginx's close_notify");
        let fin = c["close"]["tcp_end"]["ts"].as_f64().unwrap();
        assert!(
            notify <= fin && fin - notify < 0.01,
            "close_notify {notify}, FIN {fin}"
        );
    }
    // The talking client: a clean close, then nginx resets the socket that
    // the client's close_notify reached after nginx's FIN (rule 10).
    let c = by_client(&v, TALK[0]);
    assert_eq!(c["close"]["outcome"], "clean", "{c}");
    assert_eq!(c["frames"]["client"]["text"], 10);
    assert_eq!(c["frames"]["server"]["text"], 10);
    assert_eq!(c["close"]["client_frame"]["reason"], "done talking");
    let kinds: Vec<&str> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reset_after_close"], "{c}");
    assert_eq!(c["findings"][0]["side"], "server");
    assert_upstream_legs(&v, &wire);
    assert_idle_timeout(&v);
    let o = &v["totals"]["outcomes"];
    assert_eq!(
        (&o["encrypted"], &o["abnormal"], &o["clean"]),
        (&0.into(), &6.into(), &2.into())
    );
    assert_eq!(v["analysis"]["tls"]["decrypted"], 4);
}

#[test]
fn nginx_tls_idle_cut_agrees_with_tshark() {
    if !tshark_available() {
        eprintln!(
            "skipped: tshark not installed (apt-get install tshark); the comparison with tshark's decryption did not run"
        );
        return;
    }
    let k = keys();
    let (v, _) = analyze(&[&pcap()], &["--keylog", s(&k)]);
    let (sharks, end) = tshark_view(&pcap(), Some(&k));
    assert_eq!(sharks.len(), 8, "tshark sees 8 upgraded connections");
    assert_same_as_tshark(&v, &sharks, end, true);
}

#[test]
fn tls_port_of_connections_already_recognised_changes_nothing() {
    // Their ClientHellos offer no ALPN: they are wss candidates anyway, and
    // naming their port must not change a thing, decrypted or not.
    let k = keys();
    for extra in [vec![], vec!["--keylog", s(&k)]] {
        let (plain, _) = analyze(&[&pcap()], &extra);
        let mut with_port = extra.clone();
        with_port.extend(["--tls-port", "18834"]);
        let (port, _) = analyze(&[&pcap()], &with_port);
        let brief = |v: &Value| -> Vec<String> {
            conns(v)
                .iter()
                .map(|c| {
                    format!(
                        "{} {} {}",
                        c["client"], c["transport"], c["close"]["outcome"]
                    )
                })
                .collect()
        };
        assert_eq!(brief(&port), brief(&plain), "{extra:?}");
        assert_eq!(port["connections"], plain["connections"], "{extra:?}");
        assert_eq!(port["diagnoses"], plain["diagnoses"], "{extra:?}");
        assert_eq!(
            port["analysis"]["tls"], plain["analysis"]["tls"],
            "{extra:?}"
        );
    }
}
