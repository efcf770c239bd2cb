//! RFC 8448 section 3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256),
//! as unit-test vectors: its published traffic secrets, the keys and IVs it
//! derives from them, and its wire records, decrypted one by one and as a
//! whole connection through [`TlsConn`] with a key log of its secrets.

use super::conn::{Event, TlsConn, TlsDir};
use super::crypto::{RecordCipher, Scheme};
use super::keylog::{KeyLog, Secret};
use super::keys::{self, AeadKind, Hash};
use super::record::{Record, RecordReader};
use crate::Ts;

pub(super) fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("test hex")
}

pub(super) const C_HS_SECRET: &str =
    "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";
pub(super) const S_HS_SECRET: &str =
    "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";
pub(super) const C_AP_SECRET: &str =
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
pub(super) const S_AP_SECRET: &str =
    "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
pub(super) const CLIENT_RANDOM: &str =
    "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

/// {client} ClientHello (196 octets), in a record of version 3.1.
pub(super) fn client_hello_record() -> Vec<u8> {
    let mut r = h("16 03 01 00 c4");
    r.extend(h("
        01 00 00 c0 03 03 cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2
        1a 8d 99 12 ec 18 a2 ef 62 83 02 4d ec e7 00 00 06 13 01 13 03 13 02 01
        00 00 91 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01 00 01 00 00
        0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00
        23 00 00 00 33 00 26 00 24 00 1d 00 20 99 38 1d e5 60 e4 bd 43 d2 3d 8e
        43 5a 7d ba fe b3 c0 6e 51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c 00 2b 00
        03 02 03 04 00 0d 00 20 00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06
        04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c
        00 02 40 01"));
    r
}

/// {server} ServerHello record (95 octets).
pub(super) const SH_REC: &str = "
    16 03 03 00 5a 02 00 00 56 03 03 a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c
    d3 4c 95 93 0c 8a c5 cb 14 34 da c1 55 77 2e d3 e2 69 28 00 13 01 00 00
    2e 00 33 00 24 00 1d 00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72
    e1 56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04";

/// {server} the encrypted flight (679 octets): EncryptedExtensions,
/// Certificate, CertificateVerify, Finished.
pub(super) const FLIGHT_REC: &str = "
    17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f
    45 e4 89 e7 f3 3a f3 5e df 78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca
    07 61 2e f9 f9 45 cb 96 0b 40 68 90 51 23 ea 78 b1 11 b4 29 ba 91 91 cd
    05 d2 a3 89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b
    d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9 b1 18 3e
    f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09 ae e6 e1 22 a4 cf 51 42 73 25 25 0c
    7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e d6 5b 0e 3c dd 0c ba e8
    bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92
    8d 80 98 10 e4 b7 ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70
    a2 55 9c 09 ea d6 86 94 5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8
    94 41 ac 66 27 2f d8 fb 33 0e f8 19 05 79 b3 68 45 96 c9 60 bd 59 6e ea
    52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e a5 e2 2f
    44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6 54 0c 84 83 8d 89
    f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb 31 7b 66 d9 02 f4 f2 92 a3
    6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31 7b 49 ee da 0c 62 58 f1
    00 d7 d9 61 ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e
    1b 7a 6c 71 78 af 36 87 90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84
    c8 b0 37 8b f3 02 44 da 8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c
    f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4 61 e6 6f 99 88 2b d8 9f
    c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d f8 81 ed be
    5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69 18 a3 96 fa 48 a1 81 d6 b6
    fa 4f 9d 62 d5 13 af bb 99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb
    56 30 c8 ca 01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10
    dc 35 ae 69 f5 51 56 14 63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38
    eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31 7f c9 fa 66 a7 3f
    60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd d5 02 78
    40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af 93 98 28 fd 4a e3
    79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da bf 02 53 fe 51 75 be 89 8e
    75 0e dc 53 37 0d 2b";

/// {client} Finished record (58 octets).
pub(super) const CFIN_REC: &str = "
    17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0
    51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c
    ae ac ab 68 67 d7 26 c4 05 46";

/// {server} NewSessionTicket record (227 octets).
pub(super) const NST_REC: &str = "
    17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24
    0e 6c ff ac 11 6e 95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a
    01 59 40 25 2f 55 71 3e 06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1
    70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0
    9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15
    13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77
    f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3
    47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74
    bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b
    3b 6c 67 79 b3 7b f1 59 85 68 4f";

/// {client} and {server} application_data records (72 octets each), both
/// carrying the 50 bytes 00 01 ... 31.
pub(super) const C_APP_REC: &str = "
    17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
    42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b
    62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4";
pub(super) const S_APP_REC: &str = "
    17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
    32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8
    fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d";

/// {client} and {server} close_notify alerts (24 octets each).
pub(super) const C_ALERT_REC: &str =
    "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3";
pub(super) const S_ALERT_REC: &str =
    "17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9";

/// The trace in the order the RFC lists it.
pub(super) fn trace() -> Vec<(TlsDir, Vec<u8>)> {
    use TlsDir::{Client, Server};
    vec![
        (Client, client_hello_record()),
        (Server, h(SH_REC)),
        (Server, h(FLIGHT_REC)),
        (Client, h(CFIN_REC)),
        (Server, h(NST_REC)),
        (Client, h(C_APP_REC)),
        (Server, h(S_APP_REC)),
        (Client, h(C_ALERT_REC)),
        (Server, h(S_ALERT_REC)),
    ]
}

/// The RFC's secrets as a key log.
pub(super) fn key_log_text() -> String {
    format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM} {C_HS_SECRET}\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM} {S_HS_SECRET}\n\
         CLIENT_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {C_AP_SECRET}\n\
         SERVER_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {S_AP_SECRET}\n"
    )
}

fn cipher(secret: &str) -> RecordCipher {
    let suite = keys::suite(0x1301, 0x0304).unwrap();
    let s = Secret::from_slice(&h(secret)).unwrap();
    let k = keys::tls13_traffic_keys(&suite, &s).unwrap();
    RecordCipher::new(AeadKind::Aes128Gcm, &k, Scheme::Tls13, 0).unwrap()
}

/// Decrypts the single record in `wire` as record number `seq`.
fn open(c: &RecordCipher, seq: u64, wire: &[u8]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    let mut t = None;
    RecordReader::new()
        .feed(wire, &mut |rec: Record<'_>| {
            t = Some(c.open_at(seq, &rec, &mut out))
        })
        .unwrap();
    (t.unwrap().expect("the record decrypts"), out)
}

/// "{server} derive write traffic keys for handshake data" and
/// "... for application data", and the client's.
#[test]
fn traffic_keys_from_the_published_secrets() {
    let suite = keys::suite(0x1301, 0x0304).unwrap();
    for (secret, key, iv) in [
        (
            S_HS_SECRET,
            "3fce516009c21727d0f2e4e86ee403bc",
            "5d313eb2671276ee13000b30",
        ),
        (
            C_HS_SECRET,
            "dbfaa693d1762c5b666af5d950258d01",
            "5bd3c71b836e0b76bb73265f",
        ),
        (
            S_AP_SECRET,
            "9f02283b6c9c07efc26bb9f2ac92e356",
            "cf782b88dd83549aadf1e984",
        ),
        (
            C_AP_SECRET,
            "17422dda596ed5d9acd890e3c63f5051",
            "5b78923dee08579033e523d9",
        ),
    ] {
        let k = keys::tls13_traffic_keys(&suite, &Secret::from_slice(&h(secret)).unwrap()).unwrap();
        assert_eq!((k.key(), k.iv()), (&h(key)[..], &h(iv)[..]));
    }
    // "{server} derive secret "tls13 s hs traffic"" is HKDF-Expand-Label
    // too: the finished key of the same trace checks the label encoding
    // with another label.
    let mut fin = [0; 32];
    keys::hkdf_expand_label(Hash::Sha256, &h(S_HS_SECRET), b"finished", b"", &mut fin).unwrap();
    assert_eq!(
        fin.to_vec(),
        h("008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")
    );
}

/// The server's encrypted flight: EncryptedExtensions first, Finished
/// last, inner type handshake.
#[test]
fn the_handshake_flight_decrypts() {
    let (t, plain) = open(&cipher(S_HS_SECRET), 0, &h(FLIGHT_REC));
    assert_eq!(t, 22);
    assert_eq!(plain.len(), 674 - 16 - 1);
    assert_eq!(&plain[..4], &[0x08, 0x00, 0x00, 0x24]);
    let fin = plain.len() - 36;
    assert_eq!(&plain[fin..fin + 4], &[0x14, 0x00, 0x00, 0x20]);
    // The client's Finished under the client handshake key.
    let (t, plain) = open(&cipher(C_HS_SECRET), 0, &h(CFIN_REC));
    assert_eq!((t, &plain[..4]), (22, &[0x14, 0x00, 0x00, 0x20][..]));
}

/// Application data and alerts, at their sequence numbers (the server's
/// NewSessionTicket is its record 0 of the epoch).
#[test]
fn application_records_decrypt() {
    let payload: Vec<u8> = (0..50).collect();
    let (c, s) = (cipher(C_AP_SECRET), cipher(S_AP_SECRET));
    assert_eq!(open(&c, 0, &h(C_APP_REC)), (23, payload.clone()));
    assert_eq!(open(&s, 1, &h(S_APP_REC)), (23, payload));
    assert_eq!(open(&c, 1, &h(C_ALERT_REC)), (21, vec![1, 0]));
    assert_eq!(open(&s, 2, &h(S_ALERT_REC)), (21, vec![1, 0]));
    let (t, nst) = open(&s, 0, &h(NST_REC));
    assert_eq!((t, nst[0]), (22, 0x04));
}

/// What a connection run reports, in a form to compare.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Seen {
    pub plaintext: [Vec<u8>; 2],
    pub close_notify: [Option<(Ts, bool)>; 2],
    pub alerts: usize,
    pub lost: usize,
    pub stopped: Vec<(TlsDir, &'static str)>,
    pub records: usize,
}

impl Seen {
    pub fn take(&mut self, e: Event<'_>) {
        match e {
            Event::Plaintext { dir, data, .. } => self.plaintext[dir.idx()].extend_from_slice(data),
            Event::CloseNotify { dir, ts, inferred } => {
                assert!(self.close_notify[dir.idx()].is_none(), "close_notify once");
                self.close_notify[dir.idx()] = Some((ts, inferred));
            }
            Event::Alert { .. } => self.alerts += 1,
            Event::PlaintextLost { .. } => self.lost += 1,
            Event::Stopped { dir, reason, .. } => self.stopped.push((dir, reason.as_str())),
            Event::Record { .. } => self.records += 1,
            Event::Facts => {}
        }
    }
}

/// Feeds the records, record `i` at time `i` s, each cut in pieces of
/// `piece` bytes.
pub(super) fn run(
    conn: &mut TlsConn,
    recs: &[(TlsDir, Vec<u8>)],
    keys: &KeyLog,
    piece: usize,
) -> Seen {
    let mut seen = Seen::default();
    for (i, (dir, bytes)) in recs.iter().enumerate() {
        for p in bytes.chunks(piece) {
            conn.feed(*dir, Ts::from_secs(i as i64), p, keys, &mut |e| {
                seen.take(e)
            })
            .expect("TLS");
        }
    }
    seen
}

/// The whole trace through a connection with the RFC's secrets in a key
/// log: the facts, both plaintexts, both close_notify alerts with the
/// times of their records, and the record at every split point.
#[test]
fn the_trace_through_a_connection() {
    let mut keys = KeyLog::new();
    assert_eq!(keys.add_text(&key_log_text()).valid, 4);
    let payload: Vec<u8> = (0..50).collect();
    for piece in [1, 7, 100, 5000] {
        let mut conn = TlsConn::new();
        let seen = run(&mut conn, &trace(), &keys, piece);
        assert_eq!(
            seen.plaintext,
            [payload.clone(), payload.clone()],
            "piece {piece}"
        );
        assert_eq!(
            seen.close_notify,
            [
                Some((Ts::from_secs(7), false)),
                Some((Ts::from_secs(8), false))
            ]
        );
        assert_eq!((seen.alerts, seen.lost, seen.records), (0, 0, 9));
        assert!(seen.stopped.is_empty(), "{:?}", seen.stopped);
        let f = conn.facts();
        assert_eq!(f.version, Some("TLS 1.3"));
        assert_eq!(f.cipher, Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(f.sni.as_deref(), Some("server"));
        assert!(f.alpn_offered.is_empty() && f.alpn_chosen.is_none());
        assert_eq!(
            f.client_random.map(hex::encode).as_deref(),
            Some(CLIENT_RANDOM)
        );
        let st = conn.status();
        assert!(st.decrypted && st.not_decrypted_reason.is_none());
        assert_eq!(conn.close_notify(TlsDir::Server), Some(Ts::from_secs(8)));
    }
}

/// Without keys: the facts, no plaintext, `no_key`, and no close_notify
/// guessed (TLS 1.3 hides alerts).
#[test]
fn the_trace_without_keys() {
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &trace(), &KeyLog::new(), 1000);
    assert_eq!(seen.plaintext, [Vec::<u8>::new(), Vec::new()]);
    assert_eq!(seen.close_notify, [None, None]);
    assert_eq!(conn.facts().cipher, Some("TLS_AES_128_GCM_SHA256"));
    let st = conn.status();
    assert_eq!(
        (st.decrypted, st.not_decrypted_reason.map(|r| r.as_str())),
        (false, Some("no_key"))
    );
}

/// Keys that come late (a key log still being written): only the
/// application secrets, after the handshake went by undecrypted. The
/// sequence numbers are found and everything after is decrypted.
#[test]
fn keys_that_come_late() {
    let recs = trace();
    let mut keys = KeyLog::new();
    let mut conn = TlsConn::new();
    let mut seen = run(&mut conn, &recs[..4], &keys, 1000);
    keys.add_text(&format!(
        "CLIENT_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {C_AP_SECRET}\n\
         SERVER_TRAFFIC_SECRET_0 {CLIENT_RANDOM} {S_AP_SECRET}\n"
    ));
    for (dir, bytes) in &recs[4..] {
        conn.feed(*dir, Ts(1), bytes, &keys, &mut |e| seen.take(e))
            .unwrap();
    }
    let payload: Vec<u8> = (0..50).collect();
    assert_eq!(seen.plaintext, [payload.clone(), payload]);
    assert_eq!(seen.lost, 0, "no application data went by");
    assert!(seen.close_notify.iter().all(Option::is_some));
    assert!(conn.status().decrypted);
    // ALPN from EncryptedExtensions could not be read: nothing invented.
    assert_eq!(conn.facts().alpn_chosen, None);
}

/// A key log whose secrets are wrong: `decrypt_error` for each direction.
#[test]
fn wrong_secrets() {
    let mut keys = KeyLog::new();
    let bad = "11".repeat(32);
    let text = key_log_text()
        .replace(S_HS_SECRET, &bad)
        .replace(C_HS_SECRET, &bad)
        .replace(S_AP_SECRET, &bad)
        .replace(C_AP_SECRET, &bad);
    keys.add_text(&text);
    let mut conn = TlsConn::new();
    let seen = run(&mut conn, &trace()[..4], &keys, 1000);
    assert_eq!(
        seen.stopped,
        vec![
            (TlsDir::Server, "decrypt_error"),
            (TlsDir::Client, "decrypt_error")
        ]
    );
    assert_eq!(
        conn.status().not_decrypted_reason.map(|r| r.as_str()),
        Some("decrypt_error")
    );
}
