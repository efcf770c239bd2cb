//! [`TlsConn`] on TLS 1.3 connections built here, for what RFC 8448's trace
//! does not show: the SHA-384 and ChaCha20-Poly1305 suites, a handshake
//! message spanning two records, the ALPN protocol in EncryptedExtensions,
//! middlebox ChangeCipherSpec records, KeyUpdate both ways, a
//! HelloRetryRequest, 0-RTT early data.

use super::conn::TlsConn;
use super::crypto::{RecordCipher, Scheme};
use super::events::TlsDir::{self, Client, Server};
use super::handshake::HELLO_RETRY_RANDOM;
use super::keylog::{KeyLog, Secret};
use super::keys;
use super::tests_conn::{
    CR, Hello, REQUEST, RESPONSE, SR, alpn_ext, client_hello, hs_msg, record, server_hello,
};
use super::tests_rfc8448::run;
use crate::Ts;

/// The four secrets of a made-up connection, `n` bytes each.
pub(super) fn secrets(n: usize) -> [Vec<u8>; 4] {
    [vec![1; n], vec![2; n], vec![3; n], vec![4; n]]
}

pub(super) fn key_log(s: &[Vec<u8>; 4], labels: &[usize]) -> KeyLog {
    const LABELS: [&str; 4] = [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ];
    let mut k = KeyLog::new();
    for &i in labels {
        k.add_text(&format!(
            "{} {} {}",
            LABELS[i],
            hex::encode(CR),
            hex::encode(&s[i])
        ));
    }
    k
}

fn cipher(id: u16, secret: &[u8]) -> RecordCipher {
    let suite = keys::suite(id, 0x0304).unwrap();
    let k = keys::tls13_traffic_keys(&suite, &Secret::from_slice(secret).unwrap()).unwrap();
    RecordCipher::new(suite.aead, &k, Scheme::Tls13, 0).unwrap()
}

fn next(id: u16, secret: &[u8]) -> Vec<u8> {
    let suite = keys::suite(id, 0x0304).unwrap();
    let s = Secret::from_slice(secret).unwrap();
    keys::tls13_next_secret(suite.hash, &s)
        .unwrap()
        .as_bytes()
        .to_vec()
}

const AFTER_S: &[u8] = b"server, after its KeyUpdate";
const AFTER_C: &[u8] = b"client, after its KeyUpdate";

/// A whole TLS 1.3 connection of suite `id` whose secrets are `s`.
pub(super) fn tls13_conn(id: u16, s: &[Vec<u8>; 4]) -> Vec<(TlsDir, Vec<u8>)> {
    let (mut chs, mut shs) = (cipher(id, &s[0]), cipher(id, &s[1]));
    let (mut cap, mut sap) = (cipher(id, &s[2]), cipher(id, &s[3]));
    let (mut cap2, mut sap2) = (cipher(id, &next(id, &s[2])), cipher(id, &next(id, &s[3])));
    let hash = keys::suite(id, 0x0304).unwrap().hash.output_len();
    let ee_body = {
        let a = alpn_ext(&["http/1.1"]);
        let mut b = (a.len() as u16).to_be_bytes().to_vec();
        b.extend(a);
        b
    };
    let flight = [
        hs_msg(8, &ee_body),
        hs_msg(11, &[0; 500]),
        hs_msg(15, &[0; 70]),
        hs_msg(20, &vec![7; hash]),
    ]
    .concat();
    let cut = flight.len() - 10;
    let hello = Hello {
        suites: &[id],
        tls13: true,
        ..Hello::default()
    };
    vec![
        (Client, client_hello(&hello)),
        (Server, server_hello(SR, id, 0x0304, None)),
        (Server, record(20, &[1])),
        (Server, shs.seal(22, &flight[..cut]).unwrap()),
        (Server, shs.seal(22, &flight[cut..]).unwrap()),
        (Client, record(20, &[1])),
        (Client, chs.seal(22, &hs_msg(20, &vec![8; hash])).unwrap()),
        (Server, sap.seal(22, &hs_msg(4, &[0; 40])).unwrap()),
        (Client, cap.seal(23, REQUEST).unwrap()),
        (Server, sap.seal(23, RESPONSE).unwrap()),
        (Server, sap.seal(22, &hs_msg(24, &[1])).unwrap()),
        (Server, sap2.seal(23, AFTER_S).unwrap()),
        (Client, cap.seal(22, &hs_msg(24, &[0])).unwrap()),
        (Client, cap2.seal(23, AFTER_C).unwrap()),
        (Client, cap2.seal(21, &[1, 0]).unwrap()),
        (Server, sap2.seal(21, &[1, 0]).unwrap()),
    ]
}

fn both(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

#[test]
fn tls13_suites_and_key_updates() {
    for (id, n, name) in [
        (0x1301, 32, "TLS_AES_128_GCM_SHA256"),
        (0x1302, 48, "TLS_AES_256_GCM_SHA384"),
        (0x1303, 32, "TLS_CHACHA20_POLY1305_SHA256"),
    ] {
        let s = secrets(n);
        for piece in [1, 33, 100_000] {
            let mut conn = TlsConn::new();
            let seen = run(
                &mut conn,
                &tls13_conn(id, &s),
                &key_log(&s, &[0, 1, 2, 3]),
                piece,
            );
            assert_eq!(
                seen.plaintext,
                [both(REQUEST, AFTER_C), both(RESPONSE, AFTER_S)],
                "{name} {piece}"
            );
            assert_eq!(
                seen.close_notify,
                [
                    Some((Ts::from_secs(14), false)),
                    Some((Ts::from_secs(15), false))
                ]
            );
            assert!(seen.stopped.is_empty(), "{:?}", seen.stopped);
            let f = conn.facts();
            assert_eq!((f.version, f.cipher), (Some("TLS 1.3"), Some(name)));
            assert_eq!(f.alpn_chosen.as_deref(), Some("http/1.1"));
            assert!(conn.status().decrypted);
        }
    }
}

/// Secrets of the wrong length for the suite (SHA-256 secrets for a
/// SHA-384 suite) are not used: no key.
#[test]
fn secrets_of_another_hash() {
    let mut conn = TlsConn::new();
    let seen = run(
        &mut conn,
        &tls13_conn(0x1302, &secrets(48)),
        &key_log(&secrets(32), &[0, 1, 2, 3]),
        1000,
    );
    assert_eq!(seen.plaintext, [Vec::<u8>::new(), Vec::new()]);
    assert_eq!(
        conn.status().not_decrypted_reason.map(|r| r.as_str()),
        Some("no_key")
    );
}

/// Only the application secrets, known from the start: the handshake
/// records are passed over, the application epoch found.
#[test]
fn application_secrets_only() {
    let s = secrets(32);
    let mut conn = TlsConn::new();
    let seen = run(
        &mut conn,
        &tls13_conn(0x1303, &s),
        &key_log(&s, &[2, 3]),
        1000,
    );
    assert_eq!(
        seen.plaintext,
        [both(REQUEST, AFTER_C), both(RESPONSE, AFTER_S)]
    );
    assert_eq!(seen.lost, 0);
    assert_eq!(
        conn.facts().alpn_chosen,
        None,
        "EncryptedExtensions not read"
    );
}

/// Handshake secrets only: the handshake is read (ALPN), then the
/// application data waits; application secrets added later resume it with
/// a note that data was lost.
#[test]
fn application_secrets_late() {
    let s = secrets(32);
    let recs = tls13_conn(0x1301, &s);
    let mut conn = TlsConn::new();
    let mut seen = run(&mut conn, &recs[..9], &key_log(&s, &[0, 1]), 1000);
    assert_eq!(conn.facts().alpn_chosen.as_deref(), Some("http/1.1"));
    let keys = key_log(&s, &[0, 1, 2, 3]);
    for (dir, bytes) in &recs[9..] {
        conn.feed(*dir, Ts(1), bytes, &keys, &mut |e| seen.take(e))
            .unwrap();
    }
    assert_eq!(seen.plaintext, [AFTER_C.to_vec(), both(RESPONSE, AFTER_S)]);
    assert_eq!(seen.lost, 2);
}

/// A HelloRetryRequest, a second ClientHello, then the real ServerHello.
#[test]
fn hello_retry_request() {
    let s = secrets(32);
    let mut recs = tls13_conn(0x1301, &s);
    let hrr = server_hello(HELLO_RETRY_RANDOM, 0x1301, 0x0304, None);
    recs.insert(1, (Server, hrr));
    recs.insert(2, (Client, recs[0].1.clone()));
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &recs, &key_log(&s, &[0, 1, 2, 3]), 1000);
    assert_eq!(
        seen.plaintext,
        [both(REQUEST, AFTER_C), both(RESPONSE, AFTER_S)]
    );
    assert_eq!(conn.facts().server_random, Some(SR));
}

/// 0-RTT early data (before the ServerHello, or after it under the early
/// secret): `unsupported_cipher` for the client side.
#[test]
fn early_data() {
    let s = secrets(32);
    let hello = Hello {
        suites: &[0x1301],
        tls13: true,
        early_data: true,
        ..Hello::default()
    };
    let mut early = cipher(0x1301, &[9; 32]);
    let early_rec = early.seal(23, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut recs = tls13_conn(0x1301, &s);
    recs[0].1 = client_hello(&hello);
    let mut before = recs.clone();
    before.insert(1, (Client, early_rec.clone()));
    let mut after = recs;
    after.insert(2, (Client, early_rec));
    for recs in [before, after] {
        let mut conn = TlsConn::new();
        let seen = run(&mut conn, &recs, &key_log(&s, &[0, 1, 2, 3]), 1000);
        assert_eq!(seen.stopped, [(Client, "unsupported_cipher")]);
        assert_eq!(seen.plaintext[1], both(RESPONSE, AFTER_S));
        assert!(conn.status().decrypted);
        assert_eq!(
            conn.stopped(Client).map(|r| r.as_str()),
            Some("unsupported_cipher")
        );
    }
}

/// Without keys no alert is guessed, and the reason is `no_key`.
#[test]
fn tls13_without_keys() {
    let mut conn = TlsConn::new();
    let seen = run(
        &mut conn,
        &tls13_conn(0x1302, &secrets(48)),
        &KeyLog::new(),
        1000,
    );
    assert_eq!(seen.close_notify, [None, None]);
    assert_eq!(
        conn.status().not_decrypted_reason.map(|r| r.as_str()),
        Some("no_key")
    );
    assert_eq!(conn.facts().alpn_offered, ["http/1.1"]);
}
