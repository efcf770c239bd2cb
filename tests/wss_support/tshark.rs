//! tshark's view of a capture (decrypted with a key log when given), to
//! compare wsclose's verdicts with.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{TS_EPS, assert_opt_ts, assert_ts, by_client, conns, s};

pub fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One WebSocket connection as tshark decodes it (decrypted with the key
/// log when given).
#[derive(Debug, Default, Clone)]
pub struct Shark {
    pub client: String,
    pub server: String,
    pub first_ts: f64,
    pub last_ts: f64,
    /// Per side (0 client, 1 server): counts of text, binary, continuation,
    /// ping, pong, close, and the payload bytes.
    pub frames: [[u64; 7]; 2],
    /// Per side: the first close frame (ts, code).
    pub close: [Option<(f64, Option<u64>)>; 2],
    /// The first FIN or RST: (kind, side 0/1, ts).
    pub end: Option<(&'static str, usize, f64)>,
    /// Per side: the first close_notify alert tshark shows (decrypted).
    pub close_notify: [Option<f64>; 2],
    /// Time of the 101 response, when tshark saw it.
    pub upgrade_ts: Option<f64>,
    /// Times of every WebSocket frame, both sides.
    pub frame_ts: Vec<f64>,
    pub upgraded: bool,
}

const SHARK_FIELDS: [&str; 16] = [
    "tcp.stream",
    "frame.time_epoch",
    "ip.src",
    "tcp.srcport",
    "ip.dst",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "websocket.opcode",
    "websocket.payload_length",
    "websocket.payload_length_ext_16",
    "websocket.payload_length_ext_64",
    "websocket.payload.close.status_code",
    "tls.alert_message.desc",
];

/// Runs tshark (`-o tls.keylog_file:KEYS` when given) and gathers, per TCP
/// stream, what [`Shark`] holds. Connections without a 101 are left out.
pub fn tshark_view(pcap: &Path, keys: Option<&Path>) -> (Vec<Shark>, f64) {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        s(pcap),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
    ]);
    cmd.args(["-E", "aggregator=,"]);
    cmd.args(["-Y", "tcp"]);
    if let Some(k) = keys {
        cmd.args(["-o", &format!("tls.keylog_file:{}", s(k))]);
    }
    for f in SHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    // Also which streams upgraded (a 101 response).
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut streams: BTreeMap<u64, Shark> = BTreeMap::new();
    let mut capture_end = 0.0f64;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let list = |i: usize| -> Vec<&str> {
            f.get(i)
                .map_or(vec![], |v| v.split(',').filter(|x| !x.is_empty()).collect())
        };
        let yes = |i: usize| matches!(f.get(i).copied(), Some("1" | "True" | "true"));
        let stream: u64 = f[0].parse().expect("tcp.stream");
        let ts: f64 = f[1].parse().expect("time");
        capture_end = capture_end.max(ts);
        let src = format!("{}:{}", f[2], f[3]);
        let dst = format!("{}:{}", f[4], f[5]);
        let c = streams.entry(stream).or_insert_with(|| {
            let (client, server) = if yes(6) && yes(7) {
                (dst.clone(), src.clone())
            } else {
                (src.clone(), dst.clone())
            };
            Shark {
                client,
                server,
                first_ts: ts,
                ..Shark::default()
            }
        });
        c.last_ts = ts;
        let side = usize::from(src != c.client);
        if (yes(8) || yes(9)) && c.end.is_none() {
            c.end = Some((if yes(9) { "rst" } else { "fin" }, side, ts));
        }
        if list(15).contains(&"0") && c.close_notify[side].is_none() {
            c.close_notify[side] = Some(ts);
        }
        let (mut ext16, mut ext64) = (list(12).into_iter(), list(13).into_iter());
        let mut codes = list(14).into_iter();
        for (op, len) in list(10).into_iter().zip(list(11)) {
            let op: u64 = op.parse().expect("opcode");
            let mut n: u64 = len.parse().expect("length");
            if n == 126 {
                n = ext16.next().expect("16-bit length").parse().unwrap();
            } else if n == 127 {
                n = ext64.next().expect("64-bit length").parse().unwrap();
            }
            c.upgraded = true;
            c.frame_ts.push(ts);
            let k = match op {
                1 => 0,
                2 => 1,
                0 => 2,
                9 => 3,
                10 => 4,
                8 => 5,
                _ => 7,
            };
            if k < 7 {
                c.frames[side][k] += 1;
            }
            c.frames[side][6] += n;
            if op == 8 && c.close[side].is_none() {
                let code = (n >= 2).then(|| codes.next().expect("close code").parse().unwrap());
                c.close[side] = Some((ts, code));
            }
        }
    }
    // Streams with a 101 response upgraded even when no frame followed.
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        s(pcap),
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "frame.time_epoch",
    ]);
    cmd.args(["-Y", "http.response.code == 101"]);
    if let Some(k) = keys {
        cmd.args(["-o", &format!("tls.keylog_file:{}", s(k))]);
    }
    let out = cmd.output().expect("tshark runs");
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let (stream, ts) = l.split_once('\t').expect("two fields");
        if let Some(c) = streams.get_mut(&stream.trim().parse().expect("stream")) {
            c.upgraded = true;
            c.upgrade_ts.get_or_insert(ts.trim().parse().expect("time"));
        }
    }
    (
        streams.into_values().filter(|c| c.upgraded).collect(),
        capture_end,
    )
}

impl Shark {
    /// Rule 11's `idle_s`: from the last frame before the closing began (the
    /// first close frame, else the TCP end), or from the 101 response when
    /// no frame came, to that point; `None` with neither.
    pub fn idle(&self) -> Option<f64> {
        let start = [self.close[0], self.close[1]]
            .into_iter()
            .flatten()
            .map(|c| c.0)
            .reduce(f64::min)
            .or(self.end.map(|e| e.2))?;
        let before = self
            .frame_ts
            .iter()
            .copied()
            .filter(|t| *t < start)
            .reduce(f64::max);
        Some(start - before.or(self.upgrade_ts)?)
    }

    /// The outcome the contract's rules give for these facts (rule 1; no
    /// rejected upgrades in the samples).
    pub fn outcome(&self, capture_end: f64, close_timeout: f64) -> &'static str {
        let first = match (self.close[0], self.close[1]) {
            (None, None) => {
                return if self.end.is_some() {
                    "abnormal"
                } else {
                    "open"
                };
            }
            (Some(c), None) => (c.0, 0),
            (None, Some(s)) => (s.0, 1),
            (Some(c), Some(s)) => {
                if c.0 <= s.0 {
                    (c.0, 0)
                } else {
                    (s.0, 1)
                }
            }
        };
        let deadline = first.0 + close_timeout;
        if self.close[1 - first.1].is_some_and(|a| a.0 <= deadline) {
            "clean"
        } else if self.end.is_some_and(|e| e.2 < deadline) {
            "unanswered"
        } else if capture_end >= deadline {
            "timeout"
        } else {
            "pending"
        }
    }
}

/// Asserts that wsclose's connections and tshark's agree: the same
/// connections, verdicts, frame counts and payload bytes, close frames
/// (time, code), TCP ends and (when `notify`) close_notify times.
pub fn assert_same_as_tshark(v: &Value, sharks: &[Shark], capture_end: f64, notify: bool) {
    let listed: Vec<&str> = conns(v)
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    let mut shark_clients: Vec<&str> = sharks.iter().map(|c| c.client.as_str()).collect();
    let mut ours = listed.clone();
    ours.sort();
    shark_clients.sort();
    assert_eq!(ours, shark_clients, "the same connections as tshark");
    let keys = [
        "text",
        "binary",
        "continuation",
        "ping",
        "pong",
        "close",
        "payload_bytes",
    ];
    let sides = ["client", "server"];
    for sh in sharks {
        let c = by_client(v, &sh.client);
        let who = &sh.client;
        assert_eq!(c["server"], sh.server.as_str(), "{who}");
        assert_eq!(
            c["close"]["outcome"],
            sh.outcome(capture_end, 5.0),
            "outcome of {who} (tshark: {sh:?})"
        );
        for (i, side) in sides.iter().enumerate() {
            let got: Vec<u64> = keys
                .iter()
                .map(|k| c["frames"][side][k].as_u64().unwrap())
                .collect();
            assert_eq!(got, sh.frames[i].to_vec(), "{who}: {side} frames {keys:?}");
            let f = &c["close"][format!("{side}_frame")];
            match sh.close[i] {
                Some((ts, code)) => {
                    assert_ts(&f["ts"], ts, &format!("{who}: {side} close frame time"));
                    assert_eq!(f["code"].as_u64(), code, "{who}: {side} close code");
                }
                None => assert!(f.is_null(), "{who}: no {side} close frame"),
            }
            if notify {
                assert_opt_ts(
                    &c["tls"]["close_notify"][side],
                    sh.close_notify[i],
                    &format!("{who}: {side} close_notify"),
                );
            }
        }
        let e = &c["close"]["tcp_end"];
        match sh.end {
            Some((kind, side, ts)) => {
                assert_eq!(e["kind"], kind, "{who}: tcp_end");
                assert_eq!(e["by"], sides[side], "{who}: tcp_end.by");
                assert_ts(&e["ts"], ts, &format!("{who}: tcp_end.ts"));
            }
            None => assert_eq!(e["kind"], "none", "{who}"),
        }
        if let Some(idle) = sh.idle() {
            let got = c["close"]["idle_s"].as_f64().expect("idle_s");
            assert!(
                (got - idle).abs() < TS_EPS,
                "{who}: idle_s {got}, tshark's frames give {idle}"
            );
        }
        assert_ts(&c["first_ts"], sh.first_ts, &format!("{who}: first_ts"));
        assert_ts(&c["last_ts"], sh.last_ts, &format!("{who}: last_ts"));
    }
}
