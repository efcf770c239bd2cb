//! Malformed input never panics: arbitrary bytes in arbitrary pieces, and
//! real connections (TLS 1.2, TLS 1.3, RFC 8448) with bytes flipped,
//! dropped or cut short, with and without their keys. Memory stays within
//! its bound whatever comes.

use proptest::prelude::*;

use super::conn::TlsConn;
use super::events::TlsDir;
use super::keylog::KeyLog;
use super::record::MAX_RECORD_LEN;
use super::tests_conn::Recs;
use super::{tests_conn, tests_rfc8448, tests_tls13};
use crate::Ts;

/// The most a connection may hold: a partial record and a kept handshake
/// message per direction, and the plaintext buffer.
const BOUND: usize = 2 * (MAX_RECORD_LEN + super::handshake::MAX_KEPT_MESSAGE) + MAX_RECORD_LEN;

/// Feeds `pieces` (direction chosen by the first byte of each); checks
/// that errors stick and memory stays bounded.
fn feed_all(pieces: &[Vec<u8>], keys: &KeyLog) {
    let mut conn = TlsConn::new();
    let (mut broken, mut gapped) = ([false; 2], [false; 2]);
    for (i, p) in pieces.iter().enumerate() {
        let dir = if p.first().is_some_and(|b| b & 1 == 1) {
            TlsDir::Server
        } else {
            TlsDir::Client
        };
        let data = p.get(1..).unwrap_or_default();
        if i % 17 == 16 {
            conn.gap(dir);
            gapped[dir.idx()] = true;
        }
        let r = conn.feed(dir, Ts(i as i64), data, keys, &mut |_| {});
        if gapped[dir.idx()] {
            assert!(r.is_ok(), "bytes after a gap are ignored");
        } else if broken[dir.idx()] {
            assert!(r.is_err(), "a broken direction stays broken");
        }
        broken[dir.idx()] |= r.is_err();
        assert!(conn.held() <= BOUND, "{}", conn.held());
    }
    let _ = conn.status();
    let _ = conn.facts();
    conn.shed();
    assert_eq!(conn.held(), 0);
}

/// The known connections and their key logs.
fn connections() -> Vec<(Recs, KeyLog)> {
    let mut rfc = KeyLog::new();
    rfc.add_text(&tests_rfc8448::key_log_text());
    let s = tests_tls13::secrets(48);
    vec![
        (tests_rfc8448::trace(), rfc),
        (
            tests_conn::tls12_conn(0xc02f),
            tests_conn::key_log(&tests_conn::MASTER),
        ),
        (
            tests_conn::tls12_conn(0xcca8),
            tests_conn::key_log(&tests_conn::MASTER),
        ),
        (
            tests_tls13::tls13_conn(0x1302, &s),
            tests_tls13::key_log(&s, &[0, 1, 2, 3]),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes(pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40)) {
        feed_all(&pieces, &KeyLog::new());
        feed_all(&pieces, &connections()[1].1);
    }

    /// Records that start right (a TLS header) and go on arbitrarily.
    #[test]
    fn arbitrary_records(recs in prop::collection::vec((0u8..2, 20u8..25, prop::collection::vec(any::<u8>(), 0..200)), 0..30)) {
        let pieces: Vec<Vec<u8>> = recs
            .iter()
            .map(|(d, t, body)| {
                let mut v = vec![*d, *t, 3, 3];
                v.extend_from_slice(&(body.len() as u16).to_be_bytes());
                v.extend_from_slice(body);
                v
            })
            .collect();
        feed_all(&pieces, &KeyLog::new());
    }

    #[test]
    fn damaged_connections(which in 0usize..4, at in any::<prop::sample::Index>(), bit in 0u8..8, how in 0u8..3, piece in 1usize..500) {
        let (recs, keys) = connections().swap_remove(which);
        let mut stream: Recs = recs;
        let total: usize = stream.iter().map(|r| r.1.len()).sum();
        let mut pos = at.index(total);
        for (_, bytes) in &mut stream {
            if pos < bytes.len() {
                match how {
                    0 => bytes[pos] ^= 1 << bit,
                    1 => { bytes.remove(pos); }
                    _ => bytes.truncate(pos),
                }
                break;
            }
            pos -= bytes.len();
        }
        let pieces: Vec<Vec<u8>> = stream
            .iter()
            .flat_map(|(dir, bytes)| {
                bytes.chunks(piece).map(move |c| [&[*dir as u8][..], c].concat())
            })
            .collect();
        feed_all(&pieces, &keys);
        feed_all(&pieces, &KeyLog::new());
    }
}
