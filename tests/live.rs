//! `wsclose sniff` capturing for real on `lo` while real peers talk: a
//! tokio-tungstenite echo server and clients, and a hand-written server that
//! never answers a close frame. Needs root (CI runs as root); skipped with a
//! message otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[macro_use]
mod root;
use root::is_root;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wsclose-live-{}-{name}", std::process::id()))
}

/// A running `wsclose sniff`, ready (its "capturing on" line was printed).
struct Sniffer {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Sniffer {
    fn start(args: &[&str]) -> Sniffer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("sniff")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wsclose sniff starts");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("capturing on") => break,
                Ok(_) => {}
                Err(_) => panic!("wsclose sniff did not start capturing"),
            }
        }
        Sniffer { child, stderr: rx }
    }

    /// SIGINT, as Ctrl-C does; returns exit status, stdout, stderr.
    fn interrupt(self) -> (Option<i32>, String, String) {
        // SAFETY: signalling our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        self.wait()
    }

    fn wait(mut self) -> (Option<i32>, String, String) {
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let status = self.child.wait().expect("wsclose ends");
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), out, err.join("\n"))
    }
}

/// Waits until the JSON-lines file has a line for the client on `port`.
/// Connections are told apart by both ports: the kernel may give two clients
/// the same ephemeral port when they talk to different servers.
fn wait_for_line(path: &Path, (port, server): (u16, u16), within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let suffix = format!(":{port}");
    let server_suffix = format!(":{server}");
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            // Only whole lines: the writer may be in the middle of one.
            let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            for line in whole.lines() {
                let v: Value = serde_json::from_str(line).expect("each line is one JSON object");
                if v["client"].as_str().is_some_and(|c| c.ends_with(&suffix))
                    && v["server"]
                        .as_str()
                        .is_some_and(|c| c.ends_with(&server_suffix))
                {
                    return v;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no --jsonl line for client port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tokio-tungstenite echo server on a free port; runs until the test ends.
fn echo_server(rt: &tokio::runtime::Runtime) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                    // A close frame is answered by tungstenite itself.
                }
            });
        }
    });
    port
}

/// A hand-written server that completes the upgrade, then never answers the
/// client's close frame and keeps TCP open for `hold`.
fn silent_server(hold: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&req);
        let key = text
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            wsclose::upgrade::accept_for_key(&key)
        );
        let _ = s.write_all(resp.as_bytes());
        // Read (and ignore) whatever comes, the close frame included.
        let _ = s.set_read_timeout(Some(hold));
        let start = Instant::now();
        while start.elapsed() < hold {
            if let Ok(0) = s.read(&mut buf) {
                break;
            }
        }
    });
    port
}

fn outcome_by_port(summary: &Value) -> Vec<((u16, u16), String)> {
    let port = |a: &Value| -> u16 {
        a.as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("port")
    };
    let mut v: Vec<((u16, u16), String)> = summary["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            (
                (port(&c["client"]), port(&c["server"])),
                c["close"]["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sniff_reports_clean_timeout_and_abnormal_live() {
    require_root!();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let echo = echo_server(&rt);
    let silent = silent_server(Duration::from_secs(4));
    let (jsonl, json, pcap) = (tmp("a.jsonl"), tmp("a.json"), tmp("a.pcap"));
    let filter = format!("tcp port {echo} or tcp port {silent}");
    let sniffer = Sniffer::start(&[
        "-i",
        "lo",
        "-f",
        &filter,
        "--close-timeout",
        "1",
        "--jsonl",
        jsonl.to_str().expect("path"),
        "--json",
        json.to_str().expect("path"),
        "--write",
        pcap.to_str().expect("path"),
    ]);

    // 1. A clean close by the client.
    let clean_port = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{echo}/clean"))
            .await
            .expect("connect");
        let port = local_port(&ws);
        ws.send(Message::text("hello")).await.expect("send");
        let echoed = ws.next().await.expect("echo").expect("echo ok");
        assert_eq!(echoed.into_text().expect("text").as_str(), "hello");
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("close");
        while let Some(Ok(_)) = ws.next().await {}
        port
    });
    let line = wait_for_line(&jsonl, (clean_port, echo), Duration::from_secs(5));
    assert_eq!(line["close"]["outcome"], "clean", "{line}");
    assert_eq!(line["close"]["client_frame"]["code"], 1000);

    // 2. A close the server never answers: `timeout` while the capture runs,
    //    before the TCP connection ends.
    let (timeout_port, sent_at) = rt.block_on(async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{silent}/silent"))
                .await
                .expect("connect");
        let port = local_port(&ws);
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "leaving".into(),
        })))
        .await
        .expect("close sent");
        // Keep the client open: the answer will not come.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(6), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        });
        (port, Instant::now())
    });
    let line = wait_for_line(&jsonl, (timeout_port, silent), Duration::from_secs(3));
    assert_eq!(line["close"]["outcome"], "timeout", "{line}");
    assert_eq!(
        line["close"]["tcp_end"]["kind"], "none",
        "decided before TCP ended: {line}"
    );
    assert!(
        sent_at.elapsed() < Duration::from_secs(4),
        "the timeout line came after the server let go"
    );

    // 3. The client drops TCP without a close frame: abnormal.
    let abnormal_port = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{echo}/drop"))
            .await
            .expect("connect");
        let port = local_port(&ws);
        ws.send(Message::text("then gone")).await.expect("send");
        let _ = ws.next().await;
        drop(ws);
        port
    });
    let line = wait_for_line(&jsonl, (abnormal_port, echo), Duration::from_secs(5));
    assert_eq!(line["close"]["outcome"], "abnormal", "{line}");

    // Ctrl-C: the full summary is still written.
    let (code, _, stderr) = sniffer.interrupt();
    assert_eq!(code, Some(0), "{stderr}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("--json written"))
            .expect("json");
    let mut want = vec![
        ((clean_port, echo), "clean".to_string()),
        ((timeout_port, silent), "timeout".to_string()),
        ((abnormal_port, echo), "abnormal".to_string()),
    ];
    want.sort();
    assert_eq!(outcome_by_port(&summary), want);
    let src = &summary["sources"][0];
    assert_eq!(src["kind"], "interface");
    assert_eq!(src["name"], "lo");
    assert_eq!(src["dropped"], 0);
    assert!(
        src["kernel"]["received"].as_u64().unwrap_or(0) >= src["packets"].as_u64().unwrap_or(1)
    );
    assert_eq!(src["kernel"]["dropped"], 0);
    assert!(src["packets"].as_u64().unwrap_or(0) > 20);
    // Every decided connection was written as one line, once.
    let lines = std::fs::read_to_string(&jsonl).expect("jsonl");
    assert_eq!(lines.lines().count(), 3, "{lines}");

    // The saved packets give the same verdicts offline.
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args([
            "analyze",
            pcap.to_str().expect("path"),
            "--close-timeout",
            "1",
            "--json",
            "-",
        ])
        .output()
        .expect("analyze runs");
    assert_eq!(out.status.code(), Some(0));
    let offline: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(outcome_by_port(&offline), want);
    for p in [jsonl, json, pcap] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn duration_stops_an_idle_capture_promptly() {
    require_root!();
    let started = Instant::now();
    let sniffer = Sniffer::start(&[
        "-i",
        "lo",
        "-f",
        "tcp port 9",
        "--duration",
        "0.5",
        "--json",
        "-",
    ]);
    let (code, out, err) = sniffer.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let v: Value = serde_json::from_str(&out).expect("json summary on stdout");
    assert_eq!(v["totals"]["connections"], 0);
    assert_eq!(v["sources"][0]["kind"], "interface");
}

#[test]
fn sigterm_on_an_idle_interface_still_writes_the_summary() {
    require_root!();
    let sniffer = Sniffer::start(&["-i", "lo", "-f", "tcp port 9", "--json", "-"]);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // SAFETY: signalling our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(sniffer.child.id() as i32, libc::SIGTERM);
    }
    let (code, out, err) = sniffer.wait();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopping took {:?}",
        started.elapsed()
    );
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json summary on stdout");
    assert_eq!(v["schema"], "wsclose-summary/1");
}

#[test]
fn unknown_interface_and_bad_filter_are_one_line_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "no-such-if0"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-if0"), "{err}");
    if is_root() {
        assert!(err.contains("available:") && err.contains("lo"), "{err}");
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["sniff", "-i", "lo", "-f", "tcp port"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad --filter") && err.contains("syntax error"),
            "{err}"
        );
    }
}

#[test]
fn without_permission_the_error_says_how_to_fix_it() {
    require_root!();
    // Drop to an unprivileged user to see the message a user would.
    if Command::new("runuser").arg("--help").output().is_err() {
        eprintln!("skipped: runuser not available");
        return;
    }
    let bin = std::env::temp_dir().join(format!("wsclose-noperm-{}", std::process::id()));
    std::fs::copy(env!("CARGO_BIN_EXE_wsclose"), &bin).expect("copy binary");
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&bin)
        .args(["sniff", "-i", "lo", "--duration", "1"])
        .output()
        .expect("runuser runs");
    let _ = std::fs::remove_file(&bin);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission") && err.contains("setcap"),
        "{err}"
    );
}

#[test]
fn interfaces_lists_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("interfaces")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lo") && text.contains("loopback"), "{text}");
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The client's own port (what wsclose reports as the client).
fn local_port(ws: &Client) -> u16 {
    match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().expect("addr").port(),
        _ => unreachable!("plain TCP"),
    }
}

/// One clean echo exchange; returns the client's port.
fn clean_exchange(rt: &tokio::runtime::Runtime, port: u16) -> u16 {
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .expect("connect");
        let local = local_port(&ws);
        ws.send(Message::text("x")).await.expect("send");
        let _ = ws.next().await;
        ws.close(None).await.expect("close");
        while let Some(Ok(_)) = ws.next().await {}
        local
    })
}

#[test]
fn jsonl_reader_going_away_stops_the_capture_quietly() {
    require_root!();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let echo = echo_server(&rt);
    let filter = format!("tcp port {echo}");
    let mut sniffer = Sniffer::start(&["-i", "lo", "-f", &filter, "--jsonl", "-"]);
    let mut lines = BufReader::new(sniffer.child.stdout.take().expect("stdout")).lines();
    clean_exchange(&rt, echo);
    let first = lines.next().expect("a line").expect("read");
    assert!(first.contains("\"outcome\":\"clean\""), "{first}");
    // Like `| head -1`: the reader goes away.
    drop(lines);
    let started = Instant::now();
    while sniffer.child.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sniff kept running"
        );
        clean_exchange(&rt, echo);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = sniffer.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

/// Stopped right after the traffic, the capture still analyses every packet
/// captured before the stop (libpcap holds the last ones for up to a tick):
/// ten times in a row, the exchange is complete and clean.
#[test]
fn a_stop_right_after_the_traffic_loses_nothing() {
    if !is_root() {
        eprintln!("skipped: live capture needs root");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = echo_server(&rt);
    let filter = format!("tcp port {port}");
    for round in 0..10 {
        let s = Sniffer::start(&["-i", "lo", "-f", &filter, "--json", "-"]);
        let client = clean_exchange(&rt, port);
        let (code, out, err) = s.interrupt();
        assert_eq!(code, Some(0), "round {round}: {err}");
        let v: Value = serde_json::from_str(&out).expect("summary");
        let outcomes = outcome_by_port(&v);
        assert_eq!(
            outcomes,
            vec![((client, port), "clean".to_string())],
            "round {round}: {v}"
        );
    }
}
