//! `wsclose::tls::TlsConn`: arbitrary bytes of both directions of a
//! connection, in arbitrary pieces, with and without a key log.
//!
//! Input layout:
//! * byte 0, flags: bit 0: a key log from the start, with the RFC 8448
//!   trace's TLS 1.3 secrets and TLS 1.2 master secrets for its client
//!   random and for the random 0x11 x 32; bit 1: halfway through, the key
//!   log also gets made-up secrets for whatever client random the
//!   connection saw (keys that come late);
//! * then pieces, each a header byte and its bytes: bit 7 the direction
//!   (server when set); bits 0-5 the length n, times 64 when bit 6 is set;
//!   a header of 0x3f or 0xbf instead marks a gap in its direction.
//!
//! Checked: no panic; memory stays within its bound (a partial record and
//! a kept handshake message per direction, the plaintext buffer); events
//! are sane (plaintext never empty nor longer than a record, close_notify
//! at most once per direction and as `close_notify()` says, a direction
//! stopped at most once); a direction that is not TLS stays so; the status
//! has a reason exactly when it is not decrypted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclose::Ts;
use wsclose::tls::record::{MAX_PAYLOAD_LEN, MAX_RECORD_LEN};
use wsclose::tls::{Event, KeyLog, TlsConn, TlsDir};

const RFC8448_RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";

const BOUND: usize =
    2 * (MAX_RECORD_LEN + wsclose::tls::handshake::MAX_KEPT_MESSAGE) + MAX_RECORD_LEN;

fn secrets_for(random: &str, keys: &mut KeyLog) {
    let s32 = |b: u8| hex_string(&[b; 32]);
    keys.add_text(&format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {random} b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {random} b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38\n\
         CLIENT_TRAFFIC_SECRET_0 {random} 9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5\n\
         SERVER_TRAFFIC_SECRET_0 {random} {}\n\
         CLIENT_RANDOM {random} {}\n",
        s32(4),
        hex_string(&[0x33; 48]),
    ));
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut keys = KeyLog::new();
    if flags & 1 == 1 {
        secrets_for(RFC8448_RANDOM, &mut keys);
        secrets_for(&hex_string(&[0x11; 32]), &mut keys);
    }
    let mut conn = TlsConn::new();
    let mut close = [None; 2];
    let mut stopped = [false; 2];
    let mut broken = [false; 2];
    let mut gapped = [false; 2];
    let half = data.len() / 2;
    let mut i = 0i64;
    while let Some((&h, r)) = rest.split_first() {
        i += 1;
        let dir = if h & 0x80 != 0 {
            TlsDir::Server
        } else {
            TlsDir::Client
        };
        if h & 0x7f == 0x3f {
            conn.gap(dir);
            gapped[dir.idx()] = true;
            rest = r;
            continue;
        }
        let n = usize::from(h & 0x3f) * if h & 0x40 != 0 { 64 } else { 1 };
        let (piece, r) = r.split_at(n.min(r.len()));
        rest = r;
        if flags & 2 != 0 && rest.len() <= half && rest.len() + piece.len() > half {
            if let Some(random) = conn.facts().client_random {
                secrets_for(&hex_string(&random), &mut keys);
            }
        }
        let res = conn.feed(dir, Ts(i), piece, &keys, &mut |e| match e {
            Event::Plaintext { data, .. } => {
                assert!(!data.is_empty() && data.len() <= MAX_PAYLOAD_LEN);
            }
            Event::CloseNotify { dir, ts, .. } => {
                assert!(close[dir.idx()].is_none(), "close_notify once");
                close[dir.idx()] = Some(ts);
            }
            Event::Stopped { dir, .. } => {
                assert!(!stopped[dir.idx()], "stopped once");
                stopped[dir.idx()] = true;
            }
            _ => {}
        });
        if gapped[dir.idx()] {
            assert!(res.is_ok(), "bytes after a gap are ignored");
        } else if broken[dir.idx()] {
            assert!(res.is_err(), "not TLS stays not TLS");
        }
        broken[dir.idx()] |= res.is_err();
        assert!(conn.held() <= BOUND);
    }
    for d in [TlsDir::Client, TlsDir::Server] {
        assert_eq!(conn.close_notify(d), close[d.idx()]);
    }
    let st = conn.status();
    assert_eq!(st.decrypted, st.not_decrypted_reason.is_none());
    conn.shed();
    assert_eq!(conn.held(), 0);
});
