//! [`TlsConn`] on TLS 1.2 connections built here: hellos written byte by
//! byte, records encrypted with the same crates (a round trip through
//! [`RecordCipher::seal`]) under keys from the PRF of a made-up master
//! secret; with and without the key log, keys that come late, wrong keys,
//! unsupported suites, a capture without handshake, gaps, memory.

use super::conn::TlsConn;
use super::crypto::{RecordCipher, Scheme};
use super::events::TlsDir::{self, Client, Server};
use super::keylog::{KeyLog, Secret};
use super::keys::{self, AeadKind};
use super::record::NotTls;
use super::tests_rfc8448::{Seen, run};
use crate::Ts;

/// A connection's records, each with its direction.
pub(super) type Recs = Vec<(TlsDir, Vec<u8>)>;

pub(super) const CR: [u8; 32] = [0x11; 32];
pub(super) const SR: [u8; 32] = [0x22; 32];
pub(super) const MASTER: [u8; 48] = [0x33; 48];

pub(super) fn record(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t, 3, 3];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(super) fn hs_msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

fn ext(t: u16, body: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn vec16(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

pub(super) fn alpn_ext(protos: &[&str]) -> Vec<u8> {
    let mut list = Vec::new();
    for p in protos {
        list.push(p.len() as u8);
        list.extend_from_slice(p.as_bytes());
    }
    ext(16, &vec16(&list))
}

/// What a ClientHello offers.
#[derive(Clone, Copy)]
pub(super) struct Hello<'a> {
    pub random: [u8; 32],
    pub suites: &'a [u16],
    pub sni: Option<&'a str>,
    pub alpn: &'a [&'a str],
    pub tls13: bool,
    pub early_data: bool,
}

impl Default for Hello<'_> {
    fn default() -> Self {
        Hello {
            random: CR,
            suites: &[0xc02f],
            sni: Some("chat.example.com"),
            alpn: &["http/1.1"],
            tls13: false,
            early_data: false,
        }
    }
}

/// A ClientHello record (record version 3.1, as clients send).
pub(super) fn client_hello(h: &Hello<'_>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = h.sni {
        let mut entry = vec![0];
        entry.extend(vec16(name.as_bytes()));
        exts.extend(ext(0, &vec16(&entry)));
    }
    if !h.alpn.is_empty() {
        exts.extend(alpn_ext(h.alpn));
    }
    if h.tls13 {
        exts.extend(ext(43, &[4, 3, 4, 3, 3]));
    }
    if h.early_data {
        exts.extend(ext(42, &[]));
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&h.random);
    body.push(0);
    let suites: Vec<u8> = h.suites.iter().flat_map(|s| s.to_be_bytes()).collect();
    body.extend(vec16(&suites));
    body.extend([1, 0]);
    body.extend(vec16(&exts));
    let mut r = record(22, &hs_msg(1, &body));
    r[2] = 1;
    r
}

/// A ServerHello record.
pub(super) fn server_hello(
    random: [u8; 32],
    suite: u16,
    version: u16,
    alpn: Option<&str>,
) -> Vec<u8> {
    let mut exts = Vec::new();
    if version == 0x0304 {
        exts.extend(ext(43, &[3, 4]));
    }
    if let Some(p) = alpn {
        exts.extend(alpn_ext(&[p]));
    }
    let legacy = version.min(0x0303);
    let mut body = legacy.to_be_bytes().to_vec();
    body.extend_from_slice(&random);
    body.push(0);
    body.extend(suite.to_be_bytes());
    body.push(0);
    body.extend(vec16(&exts));
    record(22, &hs_msg(2, &body))
}

pub(super) const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
pub(super) const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x88\x02\x03\xe8";

pub(super) fn key_log(master: &[u8; 48]) -> KeyLog {
    let mut k = KeyLog::new();
    k.add_text(&format!(
        "CLIENT_RANDOM {} {}\n",
        hex::encode(CR),
        hex::encode(master)
    ));
    k
}

/// A whole TLS 1.2 connection of suite `id`: handshake, one request and
/// one response, both close_notify alerts.
pub(super) fn tls12_conn(id: u16) -> Recs {
    let suite = keys::suite(id, 0x0303).expect("a supported suite");
    let master = Secret::from_slice(&MASTER).unwrap();
    let k = keys::tls12_keys(&suite, &master, &CR, &SR).unwrap();
    let scheme = if suite.aead == AeadKind::ChaCha20Poly1305 {
        Scheme::Tls12ChaCha
    } else {
        Scheme::Tls12Gcm
    };
    let mut c = RecordCipher::new(suite.aead, &k.client, scheme, 0).unwrap();
    let mut s = RecordCipher::new(suite.aead, &k.server, scheme, 0).unwrap();
    let finished = hs_msg(20, &[0x5a; 12]);
    let mut server_flight = server_hello(SR, id, 0x0303, Some("http/1.1"));
    server_flight.extend(record(
        22,
        &[hs_msg(11, &[0; 300]), hs_msg(14, &[])].concat(),
    ));
    vec![
        (
            Client,
            client_hello(&Hello {
                suites: &[0x1301, id],
                ..Hello::default()
            }),
        ),
        (Server, server_flight),
        (Client, record(22, &hs_msg(16, &[0; 33]))),
        (Client, record(20, &[1])),
        (Client, c.seal(22, &finished).unwrap()),
        (Server, record(20, &[1])),
        (Server, s.seal(22, &finished).unwrap()),
        (Client, c.seal(23, REQUEST).unwrap()),
        (Server, s.seal(23, RESPONSE).unwrap()),
        (Client, c.seal(21, &[1, 0]).unwrap()),
        (Server, s.seal(21, &[1, 0]).unwrap()),
    ]
}

fn reason(conn: &TlsConn) -> Option<&'static str> {
    conn.status().not_decrypted_reason.map(|r| r.as_str())
}

/// Every TLS 1.2 suite decrypted, in pieces of several sizes: plaintext,
/// close_notify from the decrypted alerts, facts.
#[test]
fn tls12_suites_decrypt() {
    for (id, name) in [
        (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        (0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
        (0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    ] {
        for piece in [1, 5, 64, 100_000] {
            let mut conn = TlsConn::new();
            let seen = run(&mut conn, &tls12_conn(id), &key_log(&MASTER), piece);
            assert_eq!(
                seen.plaintext,
                [REQUEST.to_vec(), RESPONSE.to_vec()],
                "{name} {piece}"
            );
            assert_eq!(
                seen.close_notify,
                [
                    Some((Ts::from_secs(9), false)),
                    Some((Ts::from_secs(10), false))
                ]
            );
            assert!(seen.stopped.is_empty() && seen.lost == 0);
            let f = conn.facts();
            assert_eq!((f.version, f.cipher), (Some("TLS 1.2"), Some(name)));
            assert_eq!(f.sni.as_deref(), Some("chat.example.com"));
            assert_eq!(f.alpn_offered, ["http/1.1"]);
            assert_eq!(f.alpn_chosen.as_deref(), Some("http/1.1"));
            assert_eq!((f.client_random, f.server_random), (Some(CR), Some(SR)));
            assert!(conn.status().decrypted);
        }
    }
}

/// No key: the facts, no plaintext, `no_key`, and each side's encrypted
/// alert counted as its close_notify (the contract's TLS 1.2 rule).
#[test]
fn tls12_without_keys() {
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &tls12_conn(0xc02f), &KeyLog::new(), 1000);
    assert_eq!(seen.plaintext, [Vec::<u8>::new(), Vec::new()]);
    assert_eq!(
        seen.close_notify,
        [
            Some((Ts::from_secs(9), true)),
            Some((Ts::from_secs(10), true))
        ]
    );
    assert_eq!(reason(&conn), Some("no_key"));
    assert_eq!(
        conn.facts().cipher,
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    // A key log for other connections changes nothing.
    let mut other = KeyLog::new();
    other.add_text(&format!(
        "CLIENT_RANDOM {} {}",
        hex::encode([9; 32]),
        hex::encode(MASTER)
    ));
    let mut conn = TlsConn::new();
    run(&mut conn, &tls12_conn(0xc02f), &other, 1000);
    assert_eq!(reason(&conn), Some("no_key"));
}

/// Keys added after the client's request went by: the request is lost
/// (one `PlaintextLost`), the response and both alerts decrypt at the
/// sequence numbers counted meanwhile.
#[test]
fn tls12_keys_that_come_late() {
    let recs = tls12_conn(0xcca8);
    let mut keys = KeyLog::new();
    let mut conn = TlsConn::new();
    let mut seen = run(&mut conn, &recs[..8], &keys, 1000);
    keys.add_text(&format!(
        "CLIENT_RANDOM {} {}",
        hex::encode(CR),
        hex::encode(MASTER)
    ));
    for (dir, bytes) in &recs[8..] {
        conn.feed(*dir, Ts(1), bytes, &keys, &mut |e| seen.take(e))
            .unwrap();
    }
    assert_eq!(seen.plaintext, [Vec::new(), RESPONSE.to_vec()]);
    assert_eq!(seen.lost, 1);
    assert_eq!(
        seen.close_notify,
        [Some((Ts(1), false)), Some((Ts(1), false))]
    );
    assert!(conn.status().decrypted);
}

#[test]
fn tls12_wrong_master_secret() {
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &tls12_conn(0xc030), &key_log(&[0x44; 48]), 1000);
    assert_eq!(
        seen.stopped,
        [(Client, "decrypt_error"), (Server, "decrypt_error")]
    );
    assert_eq!(reason(&conn), Some("decrypt_error"));
    // The alerts still count as close_notify, as without keys.
    assert!(
        seen.close_notify
            .iter()
            .all(|c| matches!(c, Some((_, true))))
    );
}

/// CBC and TLS 1.0: `unsupported_cipher`, facts still filled, alerts
/// still inferred.
#[test]
fn unsupported_suites_and_versions() {
    for (suite, version, name, ver) in [
        (
            0xc027,
            0x0303,
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            "TLS 1.2",
        ),
        (
            0xc02f,
            0x0301,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS 1.0",
        ),
        (0x1304, 0x0304, "TLS_AES_128_CCM_SHA256", "TLS 1.3"),
    ] {
        let mut recs = tls12_conn(0xc02f);
        recs[1].1 = server_hello(SR, suite, version, None);
        let mut conn = TlsConn::new();
        let seen = run(&mut conn, &recs, &key_log(&MASTER), 1000);
        assert_eq!(reason(&conn), Some("unsupported_cipher"), "{name}");
        assert_eq!(
            (conn.facts().cipher, conn.facts().version),
            (Some(name), Some(ver))
        );
        assert_eq!(seen.plaintext, [Vec::<u8>::new(), Vec::new()]);
        if version < 0x0304 {
            assert!(seen.close_notify.iter().all(Option::is_some));
        }
    }
}

/// A capture that starts after the handshake.
#[test]
fn no_handshake() {
    let recs = tls12_conn(0xc02f);
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &recs[7..], &key_log(&MASTER), 1000);
    assert_eq!(reason(&conn), Some("no_handshake"));
    assert_eq!(
        seen.stopped,
        [(Client, "no_handshake"), (Server, "no_handshake")]
    );
    assert_eq!(conn.facts().cipher, None);
    let mut conn = TlsConn::new();
    run(&mut conn, &recs[..1], &KeyLog::new(), 1000);
    assert_eq!(reason(&conn), Some("no_handshake"), "no ServerHello");
}

/// A gap stops its direction for good; the other goes on.
#[test]
fn gaps() {
    let recs = tls12_conn(0xc02f);
    let keys = key_log(&MASTER);
    let mut conn = TlsConn::new();
    let mut seen = run(&mut conn, &recs[..7], &keys, 1000);
    conn.gap(Client);
    for (dir, bytes) in &recs[7..] {
        // Bytes after the gap are ignored, not an error.
        conn.feed(*dir, Ts(1), bytes, &keys, &mut |e| seen.take(e))
            .unwrap();
    }
    assert_eq!(seen.plaintext, [Vec::new(), RESPONSE.to_vec()]);
    assert_eq!(conn.stopped(Client).map(|r| r.as_str()), Some("gap"));
    assert_eq!(conn.stopped(Server), None);
    assert!(conn.status().decrypted, "the server side was decrypted");
    // Without keys, a gap is the reason given (before `no_key`).
    let mut conn = TlsConn::new();
    run(&mut conn, &recs[..2], &KeyLog::new(), 1000);
    conn.gap(Server);
    run(&mut conn, &recs[2..], &KeyLog::new(), 1000);
    assert_eq!(reason(&conn), Some("gap"));
}

#[test]
fn not_tls() {
    let mut conn = TlsConn::new();
    let keys = KeyLog::new();
    let r = conn.feed(Client, Ts(0), b"GET / HTTP/1.1\r\n", &keys, &mut |_| {});
    assert_eq!(r, Err(NotTls));
    assert_eq!(
        conn.feed(Client, Ts(0), &record(22, &[1]), &keys, &mut |_| {}),
        Err(NotTls)
    );
    assert_eq!(
        conn.feed(Server, Ts(0), &record(22, &[]), &keys, &mut |_| {}),
        Ok(())
    );
}

/// Memory: a partial record is held until it completes; `trim` gives back
/// the buffers, `shed` gives up a partial record as a gap.
#[test]
fn memory() {
    let recs = tls12_conn(0xc02f);
    let keys = key_log(&MASTER);
    let mut conn = TlsConn::new();
    let mut seen = Seen::default();
    run(&mut conn, &recs[..7], &keys, 1000);
    let req = &recs[7].1;
    conn.feed(Client, Ts(1), &req[..20], &keys, &mut |e| seen.take(e))
        .unwrap();
    let held = conn.held();
    assert!((20..20 + 2 * 16_384 + 70_000).contains(&held), "{held}");
    conn.feed(Client, Ts(2), &req[20..], &keys, &mut |e| seen.take(e))
        .unwrap();
    assert_eq!(seen.plaintext[0], REQUEST);
    assert!(conn.trim() > 0);
    assert_eq!(conn.held(), 0);
    conn.feed(Server, Ts(3), &recs[8].1[..30], &keys, &mut |_| {})
        .unwrap();
    assert!(conn.shed() >= 30);
    assert_eq!(
        (conn.held(), conn.stopped(Server).map(|r| r.as_str())),
        (0, Some("gap"))
    );
}

/// A handshake message split across records is held too; `shed` gives it
/// up as a gap (found by the property tests: it was left held).
#[test]
fn shed_partial_handshake_message() {
    let ch = client_hello(&Hello::default());
    let msg = &ch[5..];
    let mut conn = TlsConn::new();
    let keys = KeyLog::new();
    conn.feed(Client, Ts(0), &record(22, &msg[..20]), &keys, &mut |_| {})
        .unwrap();
    assert!(conn.held() >= 16);
    conn.shed();
    assert_eq!(conn.held(), 0);
    assert_eq!(conn.stopped(Client).map(|r| r.as_str()), Some("gap"));
}

/// A second ChangeCipherSpec (renegotiation) is not followed.
#[test]
fn renegotiation_stops() {
    let mut recs = tls12_conn(0xc02f);
    recs.insert(9, (Client, record(20, &[1])));
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &recs, &key_log(&MASTER), 1000);
    assert_eq!(seen.plaintext[0], REQUEST);
    assert_eq!(
        conn.stopped(Client).map(|r| r.as_str()),
        Some("unsupported_cipher")
    );
}

/// Plaintext alerts (before encryption) are reported as they are.
#[test]
fn plaintext_alerts() {
    let recs = tls12_conn(0xc02f);
    let mut conn = TlsConn::new();
    let mut seen = Seen::default();
    let keys = KeyLog::new();
    for (dir, bytes) in [&recs[0], &(Server, record(21, &[2, 40]))] {
        conn.feed(*dir, Ts(5), bytes, &keys, &mut |e| seen.take(e))
            .unwrap();
    }
    assert_eq!((seen.alerts, seen.close_notify), (1, [None, None]));
}
