//! Cross-check against the reference dissector: for every bundled sample,
//! tshark's WebSocket dissection and wsclose must agree, connection by
//! connection and side by side, on the frames seen (by opcode) and the close
//! codes. Skipped (with a message) where tshark is not installed; CI installs
//! it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{analyze_json, conns};

/// (client port, "client"|"server") -> counts by opcode name, and close codes.
type Tally = BTreeMap<(u16, &'static str), (BTreeMap<&'static str, u64>, Vec<Option<u16>>)>;

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => return None,
    })
}

/// What tshark sees: every port that received a SYN is decoded as HTTP, so
/// tshark follows the upgrade into WebSocket frames.
fn tshark_tally(path: &Path) -> Tally {
    let p = path.to_str().expect("utf-8 path");
    let servers: Vec<String> = tshark(&[
        "-r",
        p,
        "-Y",
        "tcp.flags.syn==1 && tcp.flags.ack==0",
        "-T",
        "fields",
        "-e",
        "tcp.dstport",
    ])
    .lines()
    .map(str::to_string)
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    let mut args: Vec<String> = vec!["-r".into(), p.into()];
    for port in &servers {
        args.push("-d".into());
        args.push(format!("tcp.port=={port},http"));
    }
    for a in [
        "-Y",
        "websocket",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "websocket.opcode",
        "-e",
        "websocket.mask",
        "-e",
        "websocket.payload.close.status_code",
    ] {
        args.push(a.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut tally = Tally::new();
    for line in tshark(&args).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Ok(sport), Ok(dport)) = (f[0].parse::<u16>(), f[1].parse::<u16>()) else {
            continue;
        };
        let opcodes: Vec<u8> = f[2].split('|').filter_map(|o| o.parse().ok()).collect();
        let masks: Vec<&str> = f.get(3).map_or(vec![], |m| m.split('|').collect());
        let mut codes = f
            .get(4)
            .map_or(vec![], |c| {
                c.split('|').filter(|x| !x.is_empty()).collect::<Vec<_>>()
            })
            .into_iter();
        for (i, op) in opcodes.iter().enumerate() {
            // Masked frames come from the client.
            let masked = masks.get(i).is_some_and(|m| *m == "1" || *m == "True");
            let (client_port, side) = if masked {
                (sport, "client")
            } else {
                (dport, "server")
            };
            let e = tally.entry((client_port, side)).or_default();
            if let Some(name) = opcode_name(*op) {
                *e.0.entry(name).or_insert(0) += 1;
            }
            if *op == 8 {
                // tshark lists a status code only for close frames that have one.
                e.1.push(codes.next().and_then(|c| c.parse().ok()));
            }
        }
    }
    tally
}

fn wsclose_tally(path: &Path) -> Tally {
    let s = analyze_json(path, &[]);
    let mut tally = Tally::new();
    for c in conns(&s) {
        let port: u16 = c["client"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("client port");
        for side in ["client", "server"] {
            let f = &c["frames"][side];
            let mut counts = BTreeMap::new();
            for name in ["text", "binary", "continuation", "ping", "pong", "close"] {
                let n = f[name].as_u64().unwrap_or(0);
                if n > 0 {
                    counts.insert(name, n);
                }
            }
            if counts.is_empty() {
                continue;
            }
            let code = c["close"][format!("{side}_frame")]["code"]
                .as_u64()
                .map(|c| c as u16);
            let closes = f["close"].as_u64().unwrap_or(0) as usize;
            // The first close frame's code; later ones (rare) are not in the
            // connection object, so compare only the first.
            let codes = if closes > 0 { vec![code] } else { vec![] };
            tally.insert((port, side), (counts, codes));
        }
    }
    tally
}

#[test]
fn frames_and_close_codes_agree_with_tshark() {
    if !tshark_available() {
        eprintln!("skipped: tshark is not installed (apt-get install -y tshark)");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut checked = 0;
    let mut frames = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("samples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.ends_with(".pcap") || n.ends_with(".pcapng"))
                && !n.starts_with("rotated-")
                // TLS samples are compared with tshark's decryption in
                // tests/wss.rs (they need their key logs).
                && !n.starts_with("wss-")
                && n != "large.pcap"
        })
        .collect();
    names.sort();
    for path in names {
        let mut theirs = tshark_tally(&path);
        for v in theirs.values_mut() {
            v.1.truncate(1);
        }
        let ours = wsclose_tally(&path);
        frames += theirs
            .values()
            .flat_map(|(counts, _)| counts.values())
            .sum::<u64>();
        assert_eq!(ours, theirs, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} samples checked");
    // Both sides really saw frames (the tally is not trivially empty).
    assert!(frames > 100, "tshark saw only {frames} frames");
}
