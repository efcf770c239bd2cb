//! wss (TLS) from real peers: the committed samples of `samples/wss.sh`
//! (python `websockets`, node `ws`, a hand-written python ssl server) read
//! with and without their key logs, against the TLS section of
//! `docs/contract/DIAGNOSES.md`. Expected values are the wire facts of
//! `samples/MANIFEST.md` (checked with tshark); where tshark is installed,
//! each sample is also compared with tshark's own decryption.
//! The nginx sample is in `tests/wss_nginx.rs`, the live capture in
//! `tests/wss_live.rs`.

mod common;
mod wss_support;

use std::path::PathBuf;

use serde_json::Value;
use wss_support::*;

/// One connection of a sample, times relative to the capture's first packet.
struct Expect {
    client: &'static str,
    /// With the key log.
    outcome: &'static str,
    initiator: Option<&'static str>,
    /// Per side (client, server): (time, code, reason) of its close frame.
    close: [Option<(f64, u64, &'static str)>; 2],
    /// Per side: close_notify, decrypted.
    notify: [Option<f64>; 2],
    findings: &'static [(&'static str, Option<&'static str>)],
    /// `idle_s` with the key log (rule 11) and without (the final burst).
    idle_keys: f64,
    idle_no_keys: f64,
}

struct Sample {
    name: &'static str,
    version: &'static str,
    cipher: &'static str,
    alpn: &'static [&'static str],
    /// Flags every run of this sample needs (`--tls-port` for the h2 offer).
    extra: &'static [&'static str],
    conns: &'static [Expect],
}

const CLIENT: Option<&str> = Some("client");
const SERVER: Option<&str> = Some("server");

const TLS13: Sample = Sample {
    name: "wss-tls13",
    version: "TLS 1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
    alpn: &[],
    extra: &[],
    conns: &[Expect {
        client: "127.0.0.1:47716",
        outcome: "clean",
        initiator: CLIENT,
        close: [Some((0.310508, 1000, "bye")), Some((0.315260, 1000, "bye"))],
        notify: [Some(0.315529), Some(0.315360)],
        findings: &[("client_closed_tcp_first", CLIENT)],
        idle_keys: 0.300763,
        idle_no_keys: 0.006627,
    }],
};

const TLS12: Sample = Sample {
    name: "wss-tls12",
    version: "TLS 1.2",
    cipher: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    alpn: &[],
    extra: &[],
    conns: &[Expect {
        client: "127.0.0.1:39044",
        outcome: "clean",
        initiator: CLIENT,
        close: [Some((0.305105, 1000, "bye")), Some((0.307421, 1000, "bye"))],
        notify: [Some(0.307601), Some(0.307482)],
        findings: &[("client_closed_tcp_first", CLIENT)],
        idle_keys: 0.300739,
        idle_no_keys: 0.001766,
    }],
};

const NODE: Sample = Sample {
    name: "wss-node-tls13",
    version: "TLS 1.3",
    cipher: "TLS_CHACHA20_POLY1305_SHA256",
    alpn: &[],
    extra: &[],
    conns: &[
        Expect {
            client: "127.0.0.1:58180",
            outcome: "clean",
            initiator: SERVER,
            close: [
                Some((1.214365, 1000, "server done")),
                Some((1.213783, 1000, "server done")),
            ],
            notify: [Some(1.215313), Some(1.215685)],
            findings: &[("client_closed_tcp_first", CLIENT)],
            idle_keys: 1.201581,
            idle_no_keys: 1.201581,
        },
        Expect {
            client: "127.0.0.1:58190",
            outcome: "abnormal",
            initiator: None,
            close: [None, None],
            notify: [Some(2.730183), None],
            findings: &[("abnormal_closure", SERVER)],
            idle_keys: 1.201942,
            idle_no_keys: 1.201942,
        },
    ],
};

const UNANSWERED: Sample = Sample {
    name: "wss-unanswered",
    version: "TLS 1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
    alpn: &[],
    extra: &[],
    conns: &[Expect {
        client: "127.0.0.1:52036",
        outcome: "unanswered",
        initiator: CLIENT,
        close: [Some((1.558387, 1000, "bye")), None],
        notify: [Some(1.759550), Some(1.759060)],
        findings: &[("unanswered_close", SERVER)],
        idle_keys: 1.502346,
        idle_no_keys: 1.502346,
    }],
};

const ALPN_H2: Sample = Sample {
    name: "wss-alpn-h2",
    version: "TLS 1.3",
    cipher: "TLS_AES_256_GCM_SHA384",
    alpn: &["h2", "http/1.1"],
    extra: &["--tls-port", "18836"],
    conns: &[Expect {
        client: "127.0.0.1:40702",
        outcome: "clean",
        initiator: CLIENT,
        close: [Some((0.209175, 1000, "bye")), Some((0.209467, 1000, "bye"))],
        notify: [Some(0.209623), Some(0.209532)],
        findings: &[("client_closed_tcp_first", CLIENT)],
        idle_keys: 0.200671,
        idle_no_keys: 0.005478,
    }],
};

const SAMPLES: [&Sample; 5] = [&TLS13, &TLS12, &NODE, &UNANSWERED, &ALPN_H2];

fn pcap(s: &Sample) -> PathBuf {
    sample(&format!("{}.pcap", s.name))
}

fn keys(s: &Sample) -> PathBuf {
    sample(&format!("{}.keys", s.name))
}

fn with_keys(s: &Sample) -> (Value, String) {
    let k = keys(s);
    let mut extra = vec!["--keylog", wss_support::s(&k)];
    extra.extend_from_slice(s.extra);
    analyze(&[&pcap(s)], &extra)
}

fn sorted_findings(c: &Value) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["side"].as_str().map(String::from),
            )
        })
        .collect();
    v.sort();
    v
}

/// The ClientHello/ServerHello facts, whether decrypted or not.
#[track_caller]
fn assert_hello_facts(c: &Value, s: &Sample) {
    let t = &c["tls"];
    assert_eq!(c["transport"], "tls");
    assert_eq!(t["version"], s.version, "{}", s.name);
    assert_eq!(t["cipher"], s.cipher, "{}", s.name);
    assert_eq!(t["sni"], "localhost", "{}", s.name);
    let alpn: Vec<&str> = t["alpn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(alpn, s.alpn, "{}", s.name);
}

/// A sample read with its key log: every connection decrypted and judged as
/// the plaintext would be.
fn check_decrypted(s: &Sample) {
    let (v, stderr) = with_keys(s);
    let wire = read_wire(&pcap(s));
    let t0 = wire[0].first_ts;
    assert_eq!(conns(&v).len(), s.conns.len(), "{}", s.name);
    assert!(
        key_hint_lines(&stderr).is_empty(),
        "nothing left undecrypted: {stderr}"
    );
    for e in s.conns {
        let c = by_client(&v, e.client);
        let w = wire
            .iter()
            .find(|w| w.client == e.client)
            .expect("on the wire");
        assert_wire(c, w);
        assert_hello_facts(c, s);
        let t = &c["tls"];
        assert_eq!(t["decrypted"], true, "{}", e.client);
        assert!(t["not_decrypted_reason"].is_null());
        assert_eq!(c["close"]["outcome"], e.outcome, "{}: {c}", e.client);
        assert_eq!(
            c["close"]["initiator"].as_str(),
            e.initiator,
            "{}",
            e.client
        );
        let hs = &c["handshake"];
        assert_eq!(hs["status"], 101, "{}", e.client);
        assert_eq!(hs["accept_valid"], true, "{}", e.client);
        for (i, side) in ["client", "server"].iter().enumerate() {
            let f = &c["close"][format!("{side}_frame")];
            match e.close[i] {
                Some((ts, code, reason)) => {
                    assert_ts(
                        &f["ts"],
                        t0 + ts,
                        &format!("{} {side} close frame", e.client),
                    );
                    assert_eq!(f["code"], code);
                    assert_eq!(f["reason"], reason);
                }
                None => assert!(f.is_null(), "{}: no {side} close frame", e.client),
            }
            assert_opt_ts(
                &t["close_notify"][side],
                e.notify[i].map(|n| t0 + n),
                &format!("{} {side} close_notify", e.client),
            );
        }
        let idle = c["close"]["idle_s"].as_f64().expect("idle_s");
        assert!(
            (idle - e.idle_keys).abs() < 2e-6,
            "{}: idle_s {idle}, want {}",
            e.client,
            e.idle_keys
        );
        let want: Vec<(String, Option<String>)> = e
            .findings
            .iter()
            .map(|(k, side)| (k.to_string(), side.map(String::from)))
            .collect();
        assert_eq!(sorted_findings(c), want, "{}: {c}", e.client);
    }
    let tls = &v["analysis"]["tls"];
    assert_eq!(tls["seen"], s.conns.len(), "{}", s.name);
    assert_eq!(tls["decrypted"], s.conns.len(), "{}", s.name);
    assert_eq!(v["totals"]["outcomes"]["encrypted"], 0);
}

/// A sample read without keys: `encrypted`, frames 0, handshake null, the
/// TCP end and the final-burst idle time from the wire, `no_key`, the
/// hello facts, close_notify only from TLS 1.2 alert records, the counts,
/// and one stderr line saying how to get keys.
fn check_encrypted(s: &Sample, extra_keys: &[&str]) {
    let mut extra: Vec<&str> = s.extra.to_vec();
    extra.extend_from_slice(extra_keys);
    let (v, stderr) = analyze(&[&pcap(s)], &extra);
    let wire = read_wire(&pcap(s));
    let t0 = wire[0].first_ts;
    assert_eq!(conns(&v).len(), s.conns.len(), "{}", s.name);
    for e in s.conns {
        let c = by_client(&v, e.client);
        let w = wire
            .iter()
            .find(|w| w.client == e.client)
            .expect("on the wire");
        assert_eq!(c["close"]["outcome"], "encrypted", "{}: {c}", e.client);
        assert_encrypted_shape(c);
        assert_wire(c, w);
        assert_hello_facts(c, s);
        assert_eq!(c["tls"]["not_decrypted_reason"], "no_key", "{}", e.client);
        let idle = c["close"]["idle_s"].as_f64().expect("idle_s");
        let burst = w.burst_idle().expect("ended");
        assert!(
            (burst - e.idle_no_keys).abs() < 2e-6,
            "the reader's burst {burst}"
        );
        assert!(
            (idle - burst).abs() < 2e-6,
            "{}: idle_s {idle}, final burst rule {burst}",
            e.client
        );
        assert!(
            c["findings"].as_array().unwrap().is_empty(),
            "{}: no findings: {c}",
            e.client
        );
        for (i, side) in ["client", "server"].iter().enumerate() {
            // TLS 1.2: an encrypted alert record is that side's close_notify;
            // TLS 1.3: never guessed without keys.
            let want = (s.version == "TLS 1.2").then_some(e.notify[i]).flatten();
            assert_opt_ts(
                &c["tls"]["close_notify"][side],
                want.map(|n| t0 + n),
                &format!("{} {side} close_notify without keys", e.client),
            );
        }
    }
    let n = s.conns.len() as u64;
    assert_eq!(v["totals"]["outcomes"]["encrypted"], n);
    let tls = &v["analysis"]["tls"];
    assert_eq!(tls["seen"], n);
    assert_eq!(tls["decrypted"], 0);
    assert_eq!(tls["not_decrypted"]["no_key"], n);
    assert_one_key_hint(&stderr);
}

#[test]
fn tls13_python_decrypted_with_its_key_log() {
    check_decrypted(&TLS13);
}

#[test]
fn tls12_python_decrypted_with_its_key_log() {
    check_decrypted(&TLS12);
}

#[test]
fn node_chacha20_clean_server_close_and_terminate_decrypted() {
    check_decrypted(&NODE);
}

#[test]
fn unanswered_close_over_tls_decrypted() {
    check_decrypted(&UNANSWERED);
}

#[test]
fn alpn_h2_offer_decrypted_when_its_port_is_given() {
    check_decrypted(&ALPN_H2);
}

#[test]
fn samples_without_keys_are_encrypted_with_the_wire_facts() {
    for s in SAMPLES {
        check_encrypted(s, &[]);
    }
}

#[test]
fn a_key_log_of_another_capture_leaves_them_encrypted_no_key() {
    // Each sample with the key log of the next one: valid lines, wrong keys.
    for (i, s) in SAMPLES.iter().enumerate() {
        let other = keys(SAMPLES[(i + 1) % SAMPLES.len()]);
        check_encrypted(s, &["--keylog", wss_support::s(&other)]);
    }
}

#[test]
fn each_sample_with_its_key_log_agrees_with_tshark() {
    if !tshark_available() {
        eprintln!(
            "skipped: tshark not installed (apt-get install tshark); the comparison with tshark's decryption did not run"
        );
        return;
    }
    for s in SAMPLES {
        let (v, _) = with_keys(s);
        let (sharks, end) = tshark_view(&pcap(s), Some(&keys(s)));
        assert!(!sharks.is_empty(), "tshark decrypted {}", s.name);
        assert_same_as_tshark(&v, &sharks, end, true);
    }
}

#[test]
fn repeated_key_logs_and_files_decrypt_each_connection_with_its_own_keys() {
    let (n, u) = (pcap(&NODE), pcap(&UNANSWERED));
    let (nk, uk) = (keys(&NODE), keys(&UNANSWERED));
    let (v, stderr) = analyze(
        &[&u, &n],
        &[
            "--keylog",
            wss_support::s(&uk),
            "--keylog",
            wss_support::s(&nk),
        ],
    );
    assert_eq!(conns(&v).len(), 3);
    for c in conns(&v) {
        assert_eq!(c["tls"]["decrypted"], true, "{c}");
    }
    let mut outcomes: Vec<&str> = conns(&v)
        .iter()
        .map(|c| c["close"]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["abnormal", "clean", "unanswered"]);
    assert!(key_hint_lines(&stderr).is_empty(), "{stderr}");

    // Only one of the two key logs: the other capture's connections stay
    // encrypted, and the hint is one line for the whole run.
    let (v, stderr) = analyze(&[&u, &n], &["--keylog", wss_support::s(&uk)]);
    let c = by_client(&v, UNANSWERED.conns[0].client);
    assert_eq!(c["close"]["outcome"], "unanswered");
    for e in NODE.conns {
        let c = by_client(&v, e.client);
        assert_eq!(c["close"]["outcome"], "encrypted");
        assert_eq!(c["tls"]["not_decrypted_reason"], "no_key");
    }
    assert_eq!(v["analysis"]["tls"]["seen"], 3);
    assert_eq!(v["analysis"]["tls"]["decrypted"], 1);
    assert_eq!(v["analysis"]["tls"]["not_decrypted"]["no_key"], 2);
    assert_one_key_hint(&stderr);
}

#[test]
fn pcapng_with_decryption_secrets_gives_the_key_log_verdicts() {
    let dsb = sample("wss-tls13-dsb.pcapng");
    let (embedded, stderr) = analyze(&[&dsb], &[]);
    assert!(
        key_hint_lines(&stderr).is_empty(),
        "the secrets are in the file: {stderr}"
    );
    let (logged, _) = with_keys(&NODE);
    assert_eq!(embedded["connections"], logged["connections"]);
    assert_eq!(embedded["totals"], logged["totals"]);
    assert_eq!(embedded["diagnoses"], logged["diagnoses"]);
    assert_eq!(embedded["analysis"]["tls"], logged["analysis"]["tls"]);
    assert_eq!(
        embedded["sources"][0]["packets"],
        logged["sources"][0]["packets"]
    );
    // The embedded secrets and the same key log given again: no change.
    let (both, _) = analyze(&[&dsb], &["--keylog", wss_support::s(&keys(&NODE))]);
    assert_eq!(both["connections"], logged["connections"]);
}

#[test]
fn a_key_log_with_unknown_and_malformed_lines_still_decrypts() {
    let good = std::fs::read_to_string(keys(&NODE)).expect("keys");
    let noisy = format!(
        "# a comment\n\nCLIENT_TRAFFIC_SECRET_1 {r} {h}\nCLIENT_RANDOM tooshort {h}\nSERVER_TRAFFIC_SECRET_0 {r} nothex\nNOT_A_LABEL {r} {h}\n{good}",
        r = "ab".repeat(32),
        h = "cd".repeat(48)
    );
    let path = tmp_file("noisy.keys", noisy.as_bytes());
    let (v, _) = analyze(&[&pcap(&NODE)], &["--keylog", wss_support::s(&path)]);
    let (logged, _) = with_keys(&NODE);
    assert_eq!(v["connections"], logged["connections"]);
    let _ = std::fs::remove_file(path);
}

fn tmp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("wsclose-wss-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write");
    p
}

#[test]
fn an_unreadable_key_log_exits_2_naming_it() {
    let pcap = pcap(&NODE);
    let missing = std::env::temp_dir().join("wsclose-wss-no-such-dir/missing.keys");
    let line = analyze_fails(&[&pcap], &["--keylog", wss_support::s(&missing)]);
    assert!(
        line.contains(wss_support::s(&missing)),
        "names the file: {line}"
    );

    let dir = std::env::temp_dir();
    let line = analyze_fails(&[&pcap], &["--keylog", wss_support::s(&dir)]);
    assert!(
        line.contains(wss_support::s(&dir)),
        "names the file: {line}"
    );

    // A bad one next to a good one: still exit 2, naming the bad one.
    let good = keys(&NODE);
    let line = analyze_fails(
        &[&pcap],
        &[
            "--keylog",
            wss_support::s(&good),
            "--keylog",
            wss_support::s(&missing),
        ],
    );
    assert!(
        line.contains(wss_support::s(&missing)),
        "names the bad file: {line}"
    );
}

#[test]
fn an_empty_key_log_or_one_without_a_valid_line_exits_2_naming_it() {
    let pcap = pcap(&NODE);
    let r = "ab".repeat(32);
    let cases: [(&str, String); 3] = [
        ("empty.keys", String::new()),
        (
            "comments.keys",
            "# SSL/TLS secrets log file, generated by NSS\n\n# nothing else\n".into(),
        ),
        (
            "garbage.keys",
            format!(
                "CLIENT_TRAFFIC_SECRET_1 {r} {h}\nCLIENT_RANDOM {r}\nCLIENT_RANDOM zz{r} {h}\nhello world\n",
                h = "cd".repeat(48)
            ),
        ),
    ];
    for (name, text) in cases {
        let path = tmp_file(name, text.as_bytes());
        let line = analyze_fails(&[&pcap], &["--keylog", wss_support::s(&path)]);
        assert!(
            line.contains(wss_support::s(&path)),
            "{name}: names the file: {line}"
        );
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn h2_offer_is_counted_not_listed_without_tls_port() {
    let p = pcap(&ALPN_H2);
    let (v, _) = analyze(&[&p], &[]);
    assert!(conns(&v).is_empty(), "an h2 offer is not listed: {v}");
    let tls = &v["analysis"]["tls"];
    assert_eq!(tls["seen"], 1, "but counted: {tls}");
    assert_eq!(tls["decrypted"], 0);
    assert_eq!(v["totals"]["outcomes"]["encrypted"], 0);
    // Another port given: still not listed.
    let (v, _) = analyze(&[&p], &["--tls-port", "443"]);
    assert!(conns(&v).is_empty(), "{v}");
}

#[test]
fn timeline_of_a_decrypted_connection() {
    let k = keys(&NODE);
    let out = wsclose(&[
        "analyze",
        wss_support::s(&pcap(&NODE)),
        "--keylog",
        wss_support::s(&k),
        "--connection",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("127.0.0.1:58180"), "{text}");
    assert!(
        text.contains("\"server done\""),
        "the decrypted close frame: {text}"
    );
    assert!(text.contains("localhost"), "the SNI: {text}");
}
