//! A WebSocket server and client (tokio-tungstenite) talking over loopback,
//! a few short sessions, then exiting: the command that the README's CI
//! recipe wraps in `wsclose sniff ... -- CMD`, where a real job runs its own
//! tests. Built by `cargo build --examples` (and by `cargo test`).
//!
//! ```text
//! ws-session [--port P] [--sessions N] [--drop] [--exit CODE]
//! ```
//! - `--port P`: the server's port (default 8765).
//! - `--sessions N`: sessions one after the other (default 2), each a text
//!   message echoed, then a clean close started by the client.
//! - `--drop`: the server of the last session drops TCP after the echo,
//!   without a close frame, as a crashing backend does; the client sees the
//!   connection end (a browser's 1006): `abnormal`, an error finding.
//! - `--exit CODE`: exit with CODE afterwards (a failing test suite).

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

struct Options {
    port: u16,
    sessions: u32,
    drop_last: bool,
    exit: u8,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        port: 8765,
        sessions: 2,
        drop_last: false,
        exit: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--port" => {
                o.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--sessions" => {
                o.sessions = value("--sessions")?
                    .parse()
                    .map_err(|e| format!("--sessions: {e}"))?
            }
            "--exit" => {
                o.exit = value("--exit")?
                    .parse()
                    .map_err(|e| format!("--exit: {e}"))?
            }
            "--drop" => o.drop_last = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

/// Serves `sessions` connections in turn: echoes text, answers the close
/// (tungstenite does), or drops TCP after the echo on the last when asked.
async fn serve(listener: TcpListener, sessions: u32, drop_last: bool) {
    for i in 0..sessions {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        let dropping = drop_last && i + 1 == sessions;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() {
                if ws.send(msg).await.is_err() {
                    break;
                }
                if dropping {
                    // Dropped: the TCP connection ends with a FIN, no close frame.
                    break;
                }
            }
        }
    }
}

/// One session: a message, its echo, then a close and its answer (or, when
/// the server drops it, the end of the connection).
async fn session(port: u16, i: u32, dropped: bool) -> Result<(), String> {
    let url = format!("ws://127.0.0.1:{port}/session/{i}");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    ws.send(Message::text(format!("hello {i}")))
        .await
        .map_err(|e| e.to_string())?;
    let _echo = ws.next().await;
    if !dropped {
        let bye = CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        };
        ws.close(Some(bye)).await.map_err(|e| e.to_string())?;
    }
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ws-session: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ws-session: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", o.port))
            .await
            .map_err(|e| format!("port {}: {e}", o.port))?;
        let server = tokio::spawn(serve(listener, o.sessions, o.drop_last));
        for i in 0..o.sessions {
            session(o.port, i, o.drop_last && i + 1 == o.sessions).await?;
        }
        server.await.map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        eprintln!("ws-session: {e}");
        return std::process::ExitCode::from(2);
    }
    let s = if o.sessions == 1 { "" } else { "s" };
    println!("ws-session: {} session{s} on port {}", o.sessions, o.port);
    std::process::ExitCode::from(o.exit)
}
