//! Real peers: `samples/wss-tls13.pcap` and `samples/wss-tls12.pcap`
//! (python `websockets` client and server over TLS on loopback, made by
//! `samples/wss.sh`, keys from the client's `SSLContext.keylog_filename`)
//! read packet by packet and fed to a [`TlsConn`]: the HTTP upgrade and
//! the WebSocket frames come out of the decrypted streams, with the times
//! of the packets that completed their records.

use std::path::PathBuf;

use super::conn::TlsConn;
use super::events::{Event, TlsDir};
use super::keylog::KeyLog;
use crate::Ts;
use crate::capture::FileReader;
use crate::decode::decode;
use crate::frame::{OP_CLOSE, parse_frame, unmask};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// The TCP payloads of a one-connection capture in order, with their
/// direction (the client sent the SYN) and time; retransmissions skipped.
fn segments(pcap: &str) -> Vec<(TlsDir, Ts, Vec<u8>)> {
    let path = sample(pcap);
    let mut r = FileReader::open(path.to_str().unwrap()).unwrap();
    let mut client = None;
    let mut next = [None::<u32>; 2];
    let mut out = Vec::new();
    while r.advance().unwrap() {
        let p = r.current().unwrap();
        let Ok(seg) = decode(p.linktype, p.data) else {
            continue;
        };
        if seg.syn && !seg.ack {
            client = Some(seg.src);
        }
        let dir = if Some(seg.src) == client {
            TlsDir::Client
        } else {
            TlsDir::Server
        };
        let want = next[dir.idx()].get_or_insert(seg.seq.wrapping_add(u32::from(seg.syn)));
        if seg.payload.is_empty() || seg.seq != *want {
            continue;
        }
        *want = want.wrapping_add(seg.payload.len() as u32);
        out.push((dir, p.ts, seg.payload.to_vec()));
    }
    out
}

/// What a run over a capture gave.
#[derive(Default)]
struct Run {
    plain: [Vec<u8>; 2],
    /// Time of the record that completed each plaintext byte range.
    chunks: [Vec<(Ts, usize)>; 2],
    close_notify: [Option<(Ts, bool)>; 2],
    conn: TlsConn,
}

/// Feeds the capture; `late` > 0 loads the key log only after that many
/// segments (a key log read while it grows).
fn analyse(pcap: &str, keys: Option<&str>, late: usize) -> Run {
    let mut run = Run::default();
    let mut log = KeyLog::new();
    for (i, (dir, ts, bytes)) in segments(pcap).iter().enumerate() {
        if let Some(k) = keys
            && i == late
        {
            log.load(&sample(k)).unwrap();
        }
        let Run {
            plain,
            chunks,
            close_notify,
            conn,
        } = &mut run;
        conn.feed(*dir, *ts, bytes, &log, &mut |e| match e {
            Event::Plaintext { dir, ts, data } => {
                plain[dir.idx()].extend_from_slice(data);
                chunks[dir.idx()].push((ts, data.len()));
            }
            Event::CloseNotify { dir, ts, inferred } => {
                close_notify[dir.idx()] = Some((ts, inferred))
            }
            _ => {}
        })
        .unwrap();
    }
    run
}

/// The frames after the HTTP head of a plaintext stream: (opcode, payload
/// unmasked).
fn frames(stream: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let head = stream
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head")
        + 4;
    let mut rest = &stream[head..];
    let mut out = Vec::new();
    while let Ok((r, (h, payload))) = parse_frame(rest) {
        let mut p = payload.to_vec();
        if let Some(m) = h.mask {
            unmask(&mut p, m, 0);
        }
        out.push((h.opcode, p));
        rest = r;
    }
    assert!(rest.is_empty(), "whole frames only");
    out
}

fn check_decrypted(run: &Run, version: &str, cipher: &str) {
    let [c, s] = &run.plain;
    assert!(
        c.starts_with(b"GET /chat HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&c[..40.min(c.len())])
    );
    assert!(s.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let (cf, sf) = (frames(c), frames(s));
    // Three messages each way, then the client's close 1000 "bye" and the
    // server's answer.
    assert_eq!((cf.len(), sf.len()), (4, 4));
    assert_eq!(cf[3], (OP_CLOSE, [&[0x03, 0xe8][..], b"bye"].concat()));
    assert_eq!(sf[3].0, OP_CLOSE);
    let f = run.conn.facts();
    assert_eq!((f.version, f.cipher), (Some(version), Some(cipher)));
    assert_eq!(f.sni.as_deref(), Some("localhost"));
    assert!(run.conn.status().decrypted);
    assert!(
        run.close_notify
            .iter()
            .all(|c| matches!(c, Some((_, false))))
    );
    // Plaintext times are packet times, in order.
    for ch in &run.chunks {
        assert!(ch.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}

#[test]
fn tls13_sample_decrypts() {
    let run = analyse("wss-tls13.pcap", Some("wss-tls13.keys"), 0);
    check_decrypted(&run, "TLS 1.3", "TLS_AES_256_GCM_SHA384");
}

#[test]
fn tls12_sample_decrypts() {
    let run = analyse("wss-tls12.pcap", Some("wss-tls12.keys"), 0);
    check_decrypted(&run, "TLS 1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
}

/// Without keys: `no_key`; the TLS 1.2 encrypted alerts count as
/// close_notify, nothing is guessed for TLS 1.3.
#[test]
fn samples_without_keys() {
    let run = analyse("wss-tls13.pcap", None, 0);
    let st = run.conn.status();
    assert_eq!(st.not_decrypted_reason.map(|r| r.as_str()), Some("no_key"));
    assert_eq!(run.close_notify, [None, None]);
    let run = analyse("wss-tls12.pcap", None, 0);
    assert_eq!(
        run.conn.status().not_decrypted_reason.map(|r| r.as_str()),
        Some("no_key")
    );
    assert!(
        run.close_notify
            .iter()
            .all(|c| matches!(c, Some((_, true))))
    );
    assert_eq!(run.plain, [Vec::<u8>::new(), Vec::new()]);
}

/// Keys loaded after the upgrade went by: the close frames are still
/// decrypted (TLS 1.3 finds its place in the application epoch).
#[test]
fn samples_with_late_keys() {
    for (pcap, keys) in [
        ("wss-tls13.pcap", "wss-tls13.keys"),
        ("wss-tls12.pcap", "wss-tls12.keys"),
    ] {
        let n = segments(pcap).len();
        let run = analyse(pcap, Some(keys), n - 4);
        assert!(run.conn.status().decrypted, "{pcap}");
        assert!(run.plain.iter().all(|p| !p.is_empty()), "{pcap}");
        assert!(
            run.close_notify
                .iter()
                .all(|c| matches!(c, Some((_, false)))),
            "{pcap}"
        );
    }
}
