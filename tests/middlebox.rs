//! Real middleboxes cutting idle WebSocket connections, captured live on `lo`
//! with `wsclose sniff` and analysed with `wsclose analyze` (issue 7,
//! "diagnoses across connections").
//!
//! A tokio-tungstenite echo server is the backend; nginx and HAProxy, started
//! from configs written into a temporary directory, both proxy to it:
//!
//! * **nginx** with `proxy_read_timeout 2s`. Once the connection is upgraded
//!   nginx tunnels bytes, and the only timer that ends an idle tunnel is the
//!   upstream read timer: `proxy_read_timeout` (`proxy_send_timeout` and
//!   `send_timeout` only run while a write is blocked). The timer is re-armed
//!   on every event of the tunnel, in either direction
//!   (`ngx_http_upstream_process_upgraded`; lazily: a change under 0.3 s is
//!   skipped), so pinging clients live on.
//!   On the wire (nginx 1.22, checked with tshark): 2.0 s after the 101
//!   nginx closes the **upstream leg first, with a FIN** (it is the client of
//!   that leg), then within a few ms the **client leg, with a FIN** (it is
//!   the server of that leg); no close frame on either leg. The backend and
//!   the client answer with their own FIN.
//! * **HAProxy** (`mode http`) with `timeout tunnel 3s`. After the 101 the
//!   stream is a tunnel and `timeout tunnel` replaces `timeout client` and
//!   `timeout server` as the inactivity timeout of both sides (traffic in
//!   either direction re-arms it). `timeout client`/`timeout server` (30 s)
//!   only govern the request and the wait for the 101, `timeout connect` the
//!   connect to the backend; all are far above the test's length so that only
//!   the tunnel timeout can cut. On the wire (HAProxy 2.6, checked with
//!   tshark): 3.0 s after the 101 HAProxy **resets the upstream leg first
//!   (an RST, no FIN: an abortive close of the server-side connection, which
//!   leaves no TIME_WAIT on the proxy)**, then within 1 ms it closes the
//!   **client leg with a FIN**; the client answers with its FIN.
//!
//! Through each proxy: 3 idle clients (upgrade, then nothing) that the proxy
//! cuts, and 2 clients that ping every 0.5 s for about 5 s (10 pings), then
//! close cleanly with 1000. Every connection is seen twice in the capture:
//! the client leg (client ↔ proxy) and the upstream leg (proxy ↔ backend);
//! both carry the request path, which tells them apart.
//!
//! Needs root (live capture), `nginx` and `haproxy`; skipped with a message
//! otherwise. Takes about 6 s. `WSCLOSE_KEEP_CAPTURES=DIR` keeps the capture
//! as `DIR/middlebox.pcap`; on failure the whole temporary directory
//! (capture, configs, proxy logs) is kept and named.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The idle timeouts configured below, in seconds.
const NGINX_IDLE_S: f64 = 2.0;
const HAPROXY_IDLE_S: f64 = 3.0;
const IDLE_CLIENTS: usize = 3;
const PINGING_CLIENTS: usize = 2;
/// Pings per pinging client, one every `PING_EVERY`.
const PINGS: usize = 10;
const PING_EVERY: Duration = Duration::from_millis(500);

#[macro_use]
mod root;
use root::is_root;

/// `name` on PATH, or in the sbin directories (where Debian puts nginx and
/// haproxy, and which a non-login PATH may lack).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Two distinct free ports (both held until both are chosen).
fn two_free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

/// A temporary directory, removed at the end (kept when the test failed, to
/// look at the capture and the proxies' logs).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsclose-middlebox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (capture, configs, logs)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed (and reaped) when dropped, even on panic.
struct Guard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Guard {
    /// Starts `cmd` with stdout and stderr to `log`.
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Guard {
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Guard { name, child, log }
    }

    /// Waits until something accepts on `port` (the probe is made before the
    /// capture starts, so it is not captured).
    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening on {port}:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not listening on {port} within 10 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// nginx in the foreground, one process (`master_process off`: nothing left
/// behind when it is killed), every path it writes inside `dir`; `-e` so it
/// never opens its compiled-in /var/log/nginx/error.log.
fn start_nginx(bin: &Path, dir: &Path, port: u16, backend: u16) -> Guard {
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            # The only timer of an upgraded (tunnelled) connection once idle.
            proxy_read_timeout 2s;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut g = Guard::spawn(
        "nginx",
        Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-stderr.log"))
            .arg("-c")
            .arg(&path),
        dir.join("nginx.out"),
    );
    g.wait_listening(port);
    g
}

/// HAProxy in the foreground (`-db`), one process, one thread.
fn start_haproxy(bin: &Path, dir: &Path, port: u16, backend: u16) -> Guard {
    let conf = format!(
        r#"global
    nbthread 1

defaults
    mode http
    # Before the upgrade: connecting to the backend, the client's request,
    # the backend's 101. Far above the test's length.
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    # After the 101 the stream is a tunnel: this inactivity timeout replaces
    # client and server for both sides.
    timeout tunnel 3s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server echo 127.0.0.1:{backend}
"#
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("write haproxy.cfg");
    let mut g = Guard::spawn(
        "haproxy",
        Command::new(bin).arg("-db").arg("-f").arg(&path),
        dir.join("haproxy.out"),
    );
    g.wait_listening(port);
    g
}

/// A running `wsclose sniff`, killed when dropped before it was stopped.
struct Sniffer {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Sniffer {
    fn start(args: &[&str]) -> Sniffer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("sniff")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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
        let sniffer = Sniffer { child, stderr: rx };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match sniffer.stderr.recv_timeout(left) {
                Ok(l) if l.contains("capturing on") => break,
                Ok(_) => {}
                Err(_) => panic!("wsclose sniff did not start capturing"),
            }
        }
        sniffer
    }

    /// SIGINT, as Ctrl-C does; waits (bounded) for the exit. Returns the exit
    /// code and stderr.
    fn interrupt(&mut self) -> (Option<i32>, String) {
        // SAFETY: signalling our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for wsclose sniff") {
                break s;
            }
            assert!(Instant::now() < deadline, "wsclose sniff did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the pipe; give it a moment to drain.
        let mut err = Vec::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            err.push(l);
        }
        (status.code(), err.join("\n"))
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A tokio-tungstenite echo server on a free port; pings are answered by
/// tungstenite itself. Runs until the runtime is dropped.
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
                }
            });
        }
    });
    port
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn local_port(ws: &Client) -> u16 {
    match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().expect("addr").port(),
        _ => unreachable!("plain TCP"),
    }
}

/// Upgrades, sends nothing, waits for the proxy to cut. Returns the client's
/// port and how long the connection lived after the upgrade.
async fn idle_client(url: String) -> (u16, Duration) {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let opened = Instant::now();
    let port = local_port(&ws);
    let end = tokio::time::timeout(Duration::from_secs(8), ws.next())
        .await
        .unwrap_or_else(|_| panic!("{url}: not cut by the proxy within 8 s"));
    // The proxy sends no close frame: the stream just ends (tungstenite
    // reports a reset without closing handshake).
    assert!(
        !matches!(end, Some(Ok(_))),
        "{url}: expected the connection to be cut, got {end:?}"
    );
    (port, opened.elapsed())
}

/// A ping every 0.5 s (`PINGS` of them), then a clean close with 1000.
/// Returns the client's port and the number of pongs received.
async fn pinging_client(url: String) -> (u16, usize) {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let port = local_port(&ws);
    let mut tick = tokio::time::interval(PING_EVERY);
    let (mut sent, mut pongs) = (0, 0);
    let last_wait = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(last_wait);
    loop {
        tokio::select! {
            _ = tick.tick(), if sent < PINGS => {
                ws.send(Message::Ping(format!("ping {sent}").into_bytes().into()))
                    .await
                    .unwrap_or_else(|e| panic!("{url}: ping {sent}: {e}"));
                sent += 1;
                if sent == PINGS {
                    // Wait for the last pong, at most one period.
                    last_wait
                        .as_mut()
                        .reset(tokio::time::Instant::now() + PING_EVERY);
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Pong(_))) => {
                    pongs += 1;
                    if pongs == PINGS {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("{url}: the pinging connection ended early: {other:?}"),
            },
            _ = &mut last_wait => break,
        }
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done pinging".into(),
    }))
    .await
    .unwrap_or_else(|e| panic!("{url}: close: {e}"));
    // Read until the answer and the end of the stream.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    (port, pongs)
}

fn port_of(addr: &Value) -> u16 {
    addr.as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("ip:port")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Proxy {
    Nginx,
    Haproxy,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
        }
    }
    fn idle_s(self) -> f64 {
        match self {
            Proxy::Nginx => NGINX_IDLE_S,
            Proxy::Haproxy => HAPROXY_IDLE_S,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Leg {
    /// client ↔ proxy: the proxy is the server.
    Client,
    /// proxy ↔ backend: the proxy is the client.
    Upstream,
}

/// What a connection of the capture is, from its path and server port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Role {
    proxy: Proxy,
    idle: bool,
    leg: Leg,
}

#[test]
fn nginx_and_haproxy_idle_cuts_are_diagnosed() {
    if !is_root() {
        eprintln!("skipped: live capture on lo needs root");
        return;
    }
    let (Some(nginx_bin), Some(haproxy_bin)) = (find_binary("nginx"), find_binary("haproxy"))
    else {
        eprintln!("skipped: needs the nginx and haproxy binaries (apt-get install nginx haproxy)");
        return;
    };
    let started = Instant::now();
    let tmp = TempDir::new();
    let dir = tmp.0.clone();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let backend = echo_server(&rt);
    let (nginx_port, haproxy_port) = two_free_ports();
    let _nginx = start_nginx(&nginx_bin, &dir, nginx_port, backend);
    let _haproxy = start_haproxy(&haproxy_bin, &dir, haproxy_port, backend);

    let pcap = dir.join("middlebox.pcap");
    let live_json = dir.join("live.json");
    let filter = format!("tcp port {backend} or tcp port {nginx_port} or tcp port {haproxy_port}");
    let mut sniffer = Sniffer::start(&[
        "--interface",
        "lo",
        "--filter",
        &filter,
        "--write",
        pcap.to_str().expect("utf-8 path"),
        "--json",
        live_json.to_str().expect("utf-8 path"),
    ]);

    // All clients at once, through both proxies.
    let (idle_lives, pongs) = rt.block_on(async {
        let mut idle = Vec::new();
        let mut pinging = Vec::new();
        for (proxy, port) in [(Proxy::Nginx, nginx_port), (Proxy::Haproxy, haproxy_port)] {
            let p = proxy.name();
            for i in 0..IDLE_CLIENTS {
                let url = format!("ws://127.0.0.1:{port}/{p}/idle/{i}");
                idle.push((proxy, tokio::spawn(idle_client(url))));
            }
            for i in 0..PINGING_CLIENTS {
                let url = format!("ws://127.0.0.1:{port}/{p}/ping/{i}");
                pinging.push((proxy, tokio::spawn(pinging_client(url))));
            }
        }
        let mut idle_lives = Vec::new();
        for (proxy, h) in idle {
            idle_lives.push((proxy, h.await.expect("idle client task")));
        }
        let mut pongs = Vec::new();
        for (proxy, h) in pinging {
            pongs.push((proxy, h.await.expect("pinging client task")));
        }
        (idle_lives, pongs)
    });
    for (proxy, (_, life)) in &idle_lives {
        let secs = life.as_secs_f64();
        assert!(
            (secs - proxy.idle_s()).abs() < 0.5,
            "{}: an idle client lived {secs:.3} s, expected about {} s",
            proxy.name(),
            proxy.idle_s()
        );
    }
    for (proxy, (_, n)) in &pongs {
        assert!(
            *n >= PINGS - 1,
            "{}: a pinging client got {n} pongs",
            proxy.name()
        );
    }
    // The last FINs and ACKs of the closing handshakes.
    std::thread::sleep(Duration::from_millis(300));
    let (code, err) = sniffer.interrupt();
    assert_eq!(code, Some(0), "wsclose sniff failed:\n{err}");

    // The live summary: nothing dropped, so the saved capture is complete.
    let live: Value = serde_json::from_str(
        &std::fs::read_to_string(&live_json).expect("sniff wrote its --json summary"),
    )
    .expect("live summary is JSON");
    assert_eq!(live["sources"][0]["dropped"], 0, "{}", live["sources"]);

    // WSCLOSE_KEEP_CAPTURES=DIR keeps a copy (as for tests/common's captures).
    if let Some(keep) = std::env::var_os("WSCLOSE_KEEP_CAPTURES") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("create WSCLOSE_KEEP_CAPTURES");
        std::fs::copy(&pcap, keep.join("middlebox.pcap")).expect("keep the capture");
    }

    // The saved capture, analysed offline (schema-validated by common).
    let s = common::analyze_json(&pcap, &[]);
    let conns = common::conns(&s);
    let mut roles: BTreeMap<u64, Role> = BTreeMap::new();
    for c in conns {
        let id = c["id"].as_u64().expect("id");
        let path = c["handshake"]["path"].as_str().unwrap_or("");
        let mut parts = path.trim_start_matches('/').split('/');
        let proxy = match parts.next() {
            Some("nginx") => Proxy::Nginx,
            Some("haproxy") => Proxy::Haproxy,
            _ => panic!("unexpected connection {c}"),
        };
        let idle = match parts.next() {
            Some("idle") => true,
            Some("ping") => false,
            _ => panic!("unexpected path in {c}"),
        };
        let server = port_of(&c["server"]);
        let proxy_port = match proxy {
            Proxy::Nginx => nginx_port,
            Proxy::Haproxy => haproxy_port,
        };
        let leg = if server == proxy_port {
            Leg::Client
        } else if server == backend {
            Leg::Upstream
        } else {
            panic!("connection to an unexpected server: {c}")
        };
        roles.insert(id, Role { proxy, idle, leg });
    }
    // Each client connection twice: its client leg and its upstream leg.
    let mut counts: BTreeMap<Role, usize> = BTreeMap::new();
    for r in roles.values() {
        *counts.entry(*r).or_default() += 1;
    }
    for proxy in [Proxy::Nginx, Proxy::Haproxy] {
        for leg in [Leg::Client, Leg::Upstream] {
            for (idle, n) in [(true, IDLE_CLIENTS), (false, PINGING_CLIENTS)] {
                let role = Role { proxy, idle, leg };
                assert_eq!(
                    counts.get(&role).copied().unwrap_or(0),
                    n,
                    "connections of {role:?} in the capture"
                );
            }
        }
    }

    // The client legs are the clients' own connections.
    let client_ports: BTreeSet<u16> = conns
        .iter()
        .filter(|c| roles[&c["id"].as_u64().expect("id")].leg == Leg::Client)
        .map(|c| port_of(&c["client"]))
        .collect();
    let ours: BTreeSet<u16> = idle_lives
        .iter()
        .map(|(_, (p, _))| *p)
        .chain(pongs.iter().map(|(_, (p, _))| *p))
        .collect();
    assert_eq!(client_ports, ours, "client legs' ports");

    // Per connection: idle legs cut by the proxy after its timeout, pinging
    // legs closed cleanly.
    for c in conns {
        let role = roles[&c["id"].as_u64().expect("id")];
        let close = &c["close"];
        let idle_s = close["idle_s"].as_f64().expect("idle_s");
        let end = &close["tcp_end"];
        if role.idle {
            assert_eq!(close["outcome"], "abnormal", "{role:?}: {c}");
            assert!(
                (idle_s - role.proxy.idle_s()).abs() <= 0.3,
                "{role:?}: idle_s {idle_s}, expected about {}: {c}",
                role.proxy.idle_s()
            );
            // The proxy cut: it is the server of the client leg and the
            // client of the upstream leg.
            let proxy_side = match role.leg {
                Leg::Client => "server",
                Leg::Upstream => "client",
            };
            assert_eq!(end["by"], proxy_side, "{role:?}: {c}");
            let kinds: &[&str] = match (role.proxy, role.leg) {
                (Proxy::Nginx, _) | (Proxy::Haproxy, Leg::Client) => &["fin"],
                // HAProxy 2.6 resets its server-side connections; allow a
                // FIN for other versions.
                (Proxy::Haproxy, Leg::Upstream) => &["rst", "fin"],
            };
            assert!(
                kinds.iter().any(|k| end["kind"] == *k),
                "{role:?}: expected TCP end {kinds:?}: {c}"
            );
            let f = common::finding(c, "abnormal_closure", Some(proxy_side));
            assert_eq!(f["severity"], "error");
        } else {
            assert_eq!(close["outcome"], "clean", "{role:?}: {c}");
            assert_eq!(close["initiator"], "client", "{role:?}: {c}");
            assert_eq!(close["client_frame"]["code"], 1000, "{role:?}: {c}");
            assert_eq!(close["server_frame"]["code"], 1000, "{role:?}: {c}");
            let pings = c["frames"]["client"]["ping"].as_u64().expect("pings");
            let pongs = c["frames"]["server"]["pong"].as_u64().expect("pongs");
            assert_eq!(pings, PINGS as u64, "{role:?}: {c}");
            assert!(pongs + 1 >= PINGS as u64, "{role:?}: {c}");
            assert!(idle_s < 1.0, "{role:?}: idle_s {idle_s}: {c}");
        }
    }

    // The live capture gave the same verdicts.
    let verdicts = |v: &Value| -> BTreeSet<(String, String, String)> {
        common::conns(v)
            .iter()
            .map(|c| {
                (
                    c["client"].as_str().unwrap_or("").to_string(),
                    c["server"].as_str().unwrap_or("").to_string(),
                    c["close"]["outcome"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&live), verdicts(&s));

    // Diagnoses (DIAGNOSES.md). D3: nginx cutting both legs gives one
    // `idle_timeout` with side `server` (the client legs) and one with side
    // `client` (the upstream legs), or one with side null; the same for
    // HAProxy at its own value. So: every idle connection is in an
    // `idle_timeout` whose value_s is its proxy's timeout (within 0.5 s),
    // every connection of an `idle_timeout` is an idle one of the proxy its
    // value_s names, on the leg its side names; no pinging connection is in
    // any diagnosis.
    common::validate_diagnoses(&s);
    let pretty = serde_json::to_string_pretty(&s["diagnoses"]).expect("json");
    let idle_timeouts = common::diags_of(&s, "idle_timeout");
    for d in &idle_timeouts {
        let value = d["value_s"].as_f64().expect("idle_timeout has a value_s");
        for id in common::diag_ids(d) {
            let role = roles[&id];
            assert!(
                role.idle,
                "pinging connection {id} ({role:?}) in an idle_timeout:\n{pretty}"
            );
            assert!(
                (value - role.proxy.idle_s()).abs() <= 0.5,
                "connection {id} ({role:?}) in an idle_timeout of {value} s:\n{pretty}"
            );
            match d["side"].as_str() {
                Some("server") => assert_eq!(role.leg, Leg::Client, "{id}:\n{pretty}"),
                Some("client") => assert_eq!(role.leg, Leg::Upstream, "{id}:\n{pretty}"),
                None => {}
                Some(other) => panic!("side {other}:\n{pretty}"),
            }
        }
    }
    for (id, role) in roles.iter().filter(|(_, r)| r.idle) {
        assert!(
            idle_timeouts.iter().any(|d| {
                common::diag_ids(d).contains(id)
                    && d["value_s"]
                        .as_f64()
                        .is_some_and(|v| (v - role.proxy.idle_s()).abs() <= 0.5)
            }),
            "idle connection {id} ({role:?}) in no idle_timeout of about {} s:\n{pretty}",
            role.proxy.idle_s()
        );
    }
    for d in common::diagnoses(&s) {
        for id in common::diag_ids(d) {
            assert!(
                roles[&id].idle,
                "pinging connection {id} ({:?}) in a {} diagnosis:\n{pretty}",
                roles[&id], d["kind"]
            );
        }
    }

    let took = started.elapsed();
    eprintln!("middlebox test took {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
