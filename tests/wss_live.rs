//! `wsclose sniff --keylog` capturing wss for real on `lo`: a
//! tokio-tungstenite server and client over rustls (tokio-rustls, ring),
//! the client writing its key log with rustls's own `KeyLogFile`
//! (SSLKEYLOGFILE), decrypted while the capture runs; then the packets saved
//! with `--write` analysed offline with the same key log. Needs root (CI
//! runs as root); skipped with a message otherwise.
//!
//! One test in this binary: rustls's `KeyLogFile` reads SSLKEYLOGFILE from
//! the environment, which is set once, before any other thread of the test
//! starts.

mod common;
mod wss_support;

use common::TempFile;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wss_support::*;

#[macro_use]
mod root;
use root::is_root;

/// A self-signed certificate for "localhost" and both TLS configurations;
/// the client's logs its secrets with rustls's `KeyLogFile`.
fn configs() -> (
    Arc<rustls::ServerConfig>,
    rustls::RootCertStore,
    pki_types::CertificateDer<'static>,
) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let der = cert.der().clone();
    let key = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(
        key_pair.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("root");
    (Arc::new(server), roots, der)
}

fn client_config(
    roots: &rustls::RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("version")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    // SSLKEYLOGFILE, as browsers, curl and python read it.
    cfg.key_log = Arc::new(rustls::KeyLogFile::new());
    Arc::new(cfg)
}

/// A wss echo server: echoes text; on the text "drop" it drops the
/// connection at once (no close frame, no close_notify).
fn wss_server(rt: &tokio::runtime::Runtime, cfg: Arc<rustls::ServerConfig>) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = TlsAcceptor::from(cfg);
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && msg.to_text().unwrap_or("") == "drop" {
                        return; // dropped: the socket closes, FIN
                    }
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// One wss conversation: the texts echoed, then a close 1000 "bye" (or, when
/// the last text is "drop", waiting for the server to go away). Returns the
/// client's port and the negotiated (version, IANA cipher name).
async fn conversation(
    port: u16,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    texts: &[&str],
) -> Client {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let local = tcp.local_addr().expect("addr").port();
    let name = pki_types::ServerName::try_from("localhost").expect("name");
    let tls = TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (_, conn) = tls.get_ref();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        v => panic!("version {v:?}"),
    }
    .to_string();
    let cipher = format!(
        "{:?}",
        conn.negotiated_cipher_suite().expect("suite").suite()
    )
    .replace("TLS13_", "TLS_");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{port}{path}"), tls)
        .await
        .expect("upgrade");
    for t in texts {
        ws.send(Message::text(*t)).await.expect("send");
        if *t != "drop" {
            let echo = ws.next().await.expect("echo").expect("echo ok");
            assert_eq!(echo.to_text().expect("text"), *t);
        }
    }
    if texts.last() != Some(&"drop") {
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("close");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    (local, version, cipher)
}

/// A running `wsclose sniff --jsonl -`: its stdout lines on one channel,
/// its stderr on another; ready once it printed "capturing on".
struct Sniffer {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Sniffer {
    fn start(args: &[&str]) -> Sniffer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("sniff")
            .args(args)
            .env_remove("SSLKEYLOGFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wsclose sniff starts");
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let lines = pipe(Box::new(child.stdout.take().expect("stdout")));
        let stderr = pipe(Box::new(child.stderr.take().expect("stderr")));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.contains("capturing on") => break,
                Ok(_) => {}
                Err(_) => panic!("wsclose sniff did not start capturing"),
            }
        }
        Sniffer {
            child,
            lines,
            stderr,
        }
    }

    /// The JSON line of the connection from client port `port`.
    fn line_for(&self, port: u16, seen: &mut Vec<Value>, within: Duration) -> Value {
        let suffix = format!(":{port}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = seen
                .iter()
                .find(|v| v["client"].as_str().is_some_and(|c| c.ends_with(&suffix)))
            {
                return v.clone();
            }
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                // With --jsonl - every stdout line is one connection object.
                Ok(l) => seen.push(
                    serde_json::from_str(&l)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")),
                ),
                Err(_) => panic!("no --jsonl line for client port {port} within {within:?}"),
            }
        }
    }

    fn interrupt(mut self) -> (Option<i32>, String) {
        // SAFETY: signalling our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let status = self.child.wait().expect("wsclose ends");
        std::thread::sleep(Duration::from_millis(100));
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), err.join("\n"))
    }
}

/// A client connection: its port, negotiated version and IANA cipher name.
type Client = (u16, String, String);

/// The connection from `client`'s port in a summary.
fn conn_of<'a>(v: &'a Value, client: &Client) -> &'a Value {
    let suffix = format!(":{}", client.0);
    conns(v)
        .iter()
        .find(|c| c["client"].as_str().is_some_and(|a| a.ends_with(&suffix)))
        .unwrap_or_else(|| panic!("no connection from port {}: {v}", client.0))
}

/// What a connection must show, live and offline: decrypted, the hello
/// facts rustls negotiated, the verdict and frames of its conversation.
fn assert_conn(c: &Value, client: &Client, outcome: &str, what: &str) {
    let pretty = serde_json::to_string_pretty(c).unwrap();
    assert_eq!(c["transport"], "tls", "{what}: {pretty}");
    let t = &c["tls"];
    assert_eq!(t["decrypted"], true, "{what}: decrypted: {pretty}");
    assert!(t["not_decrypted_reason"].is_null(), "{what}: {pretty}");
    assert_eq!(t["version"], client.1.as_str(), "{what}: {pretty}");
    assert_eq!(t["cipher"], client.2.as_str(), "{what}: {pretty}");
    assert_eq!(t["sni"], "localhost", "{what}: {pretty}");
    assert_eq!(t["alpn"], serde_json::json!([]), "{what}: {pretty}");
    assert_eq!(c["close"]["outcome"], outcome, "{what}: {pretty}");
    assert_eq!(c["handshake"]["status"], 101, "{what}: {pretty}");
    assert_eq!(c["frames"]["client"]["text"], 3, "{what}: {pretty}");
    let kinds: Vec<&str> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    if outcome == "clean" {
        assert_eq!(c["frames"]["server"]["text"], 3, "{what}: {pretty}");
        assert_eq!(c["close"]["initiator"], "client", "{what}: {pretty}");
        assert_eq!(c["close"]["client_frame"]["code"], 1000, "{what}: {pretty}");
        assert_eq!(
            c["close"]["client_frame"]["reason"], "bye",
            "{what}: {pretty}"
        );
        assert_eq!(c["close"]["server_frame"]["code"], 1000, "{what}: {pretty}");
        assert!(!kinds.contains(&"abnormal_closure"), "{what}: {pretty}");
    } else {
        assert_eq!(c["frames"]["server"]["text"], 2, "{what}: {pretty}");
        assert_eq!(c["close"]["tcp_end"]["by"], "server", "{what}: {pretty}");
        assert!(
            t["close_notify"]["server"].is_null(),
            "{what}: dropped without close_notify: {pretty}"
        );
        assert_eq!(kinds, ["abnormal_closure"], "{what}: {pretty}");
    }
}

#[test]
fn sniff_decrypts_wss_live_with_a_growing_key_log_and_the_saved_capture_offline() {
    if !is_root() {
        eprintln!("skipped: live capture on lo needs root (or CAP_NET_RAW)");
        return;
    }
    let (keys, json, pcap) = (
        TempFile::named("wss-live-keys.log"),
        TempFile::named("wss-live-summary.json"),
        TempFile::named("wss-live-capture.pcap"),
    );
    let _ = std::fs::remove_file(&keys);
    // SAFETY: the only test of this binary, before it starts any thread:
    // nothing reads the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SSLKEYLOGFILE", &keys);
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let (server_cfg, roots, _) = configs();
    let port = wss_server(&rt, server_cfg);
    let tls13 = client_config(&roots, &rustls::version::TLS13);
    let tls12 = client_config(&roots, &rustls::version::TLS12);

    // A first connection before the capture: the key log exists and holds
    // lines (of a connection the capture will not see) when sniff starts.
    rt.block_on(conversation(port, tls13.clone(), "/warm-up", &["warm"]));
    let before = std::fs::read_to_string(&keys).expect("rustls wrote the key log");
    assert!(before.contains("CLIENT_TRAFFIC_SECRET_0 "), "{before}");

    let filter = format!("tcp port {port}");
    let sniffer = Sniffer::start(&[
        "-i",
        "lo",
        "-f",
        &filter,
        "--keylog",
        s(&keys),
        "--jsonl",
        "-",
        "--json",
        s(&json),
        "--write",
        s(&pcap),
    ]);
    let mut seen = Vec::new();

    // 1. TLS 1.3: three texts echoed, a clean close by the client.
    let clean = rt.block_on(conversation(
        port,
        tls13,
        "/clean",
        &["one", "two", "three"],
    ));
    let line = sniffer.line_for(clean.0, &mut seen, Duration::from_secs(10));
    assert_conn(&line, &clean, "clean", "live line");

    // 2. TLS 1.2 (its key log line is a CLIENT_RANDOM): two texts echoed,
    //    then the server drops the connection: abnormal.
    let dropped = rt.block_on(conversation(port, tls12, "/drop", &["one", "two", "drop"]));
    let line = sniffer.line_for(dropped.0, &mut seen, Duration::from_secs(10));
    assert_conn(&line, &dropped, "abnormal", "live line");
    assert_eq!(dropped.1, "TLS 1.2");
    assert!(
        std::fs::read_to_string(&keys)
            .unwrap()
            .contains("CLIENT_RANDOM ")
    );

    let (code, stderr) = sniffer.interrupt();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        key_hint_lines(&stderr).is_empty(),
        "everything was decrypted: {stderr}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("--json written"))
            .expect("json");
    validate_wss(&summary);
    assert_eq!(
        summary["connections"].as_array().unwrap().len(),
        2,
        "{summary}"
    );
    assert_conn(conn_of(&summary, &clean), &clean, "clean", "final summary");
    assert_conn(
        conn_of(&summary, &dropped),
        &dropped,
        "abnormal",
        "final summary",
    );
    assert_eq!(summary["analysis"]["tls"]["decrypted"], 2);
    assert_eq!(seen.len(), 2, "one line per connection: {seen:?}");

    // The saved capture, offline, with the same key log: the same verdicts.
    let (offline, _) = analyze(&[&pcap], &["--keylog", s(&keys)]);
    assert_conn(conn_of(&offline, &clean), &clean, "clean", "offline");
    assert_conn(conn_of(&offline, &dropped), &dropped, "abnormal", "offline");
    for (a, b) in summary["connections"]
        .as_array()
        .unwrap()
        .iter()
        .zip(conns(&offline))
    {
        for k in [
            "client",
            "server",
            "handshake",
            "frames",
            "transport",
            "tls",
        ] {
            assert_eq!(a[k], b[k], "{k}: live and offline agree");
        }
        for k in [
            "outcome",
            "initiator",
            "client_frame",
            "server_frame",
            "tcp_end",
        ] {
            assert_eq!(
                a["close"][k], b["close"][k],
                "close.{k}: live and offline agree"
            );
        }
    }
    // And without it: both encrypted, no_key, the TCP ends unchanged.
    let (blind, stderr) = analyze(&[&pcap], &[]);
    for c in conns(&blind) {
        assert_eq!(c["close"]["outcome"], "encrypted", "{c}");
        assert_eq!(c["tls"]["not_decrypted_reason"], "no_key");
        let same = by_client(&offline, c["client"].as_str().unwrap());
        assert_eq!(c["close"]["tcp_end"], same["close"]["tcp_end"]);
    }
    assert_one_key_hint(&stderr);
    if tshark_available() {
        let (sharks, end) = tshark_view(&pcap, Some(&keys));
        assert_same_as_tshark(&offline, &sharks, end, true);
    } else {
        eprintln!("tshark not installed: the comparison with tshark's decryption did not run");
    }
    for p in [keys, json, pcap] {
        let _ = std::fs::remove_file(p);
    }
}
