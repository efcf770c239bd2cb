//! `wsclose analyze FILE --connection ID`: the life of one connection.
//!
//! The snapshot of a bundled sample is in `tests/snapshots/`; rewrite it
//! with `WSCLOSE_UPDATE_SNAPSHOTS=1 cargo test --test timeline` after a
//! deliberate change, and read the diff.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{
    Capture, Conn, OP_PING, OP_PONG, OP_TEXT, T0, cframe, path_str, run, run_with_stdin, sframe,
};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `wsclose analyze ARGS` and expects exit 0.
fn timeline(args: &[&str]) -> String {
    let mut all = vec!["analyze"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{all:?}: {}", stderr(&out));
    stdout(&out)
}

/// The display filter of a timeline's header.
fn filter_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Display filter: "))
        .expect("a display filter line")
        .to_string()
}

/// The packet count of a timeline's header ("36 packets over ...").
fn packets_of(text: &str) -> usize {
    text.lines()
        .nth(2)
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a packet count in the header")
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Packets of `file` that tshark's display filter `filter` selects.
fn tshark_count(file: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .args(["-r", path_str(file), "-Y", filter])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark -Y {filter:?}: {}",
        stderr(&out)
    );
    stdout(&out).lines().count()
}

#[test]
fn snapshot_of_a_sample_with_pings_and_a_close_handshake() {
    let got = timeline(&["samples/node-ping-pong.pcapng", "--connection", "1"]);
    let path = Path::new("tests/snapshots/timeline-node-ping-pong.txt");
    if std::env::var_os("WSCLOSE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &got).expect("write the snapshot");
    }
    let want = std::fs::read_to_string(path).expect("read the snapshot");
    assert_eq!(got, want, "the timeline differs from {}", path.display());
}

/// A minute of silence between a burst of client frames and a ping.
fn burst_and_silence() -> Conn {
    let mut c = Conn::standard();
    c.open_ws(T0);
    for i in 0..6 {
        c.client_send(
            T0 + 0.010 + f64::from(i) * 0.001,
            &cframe(OP_TEXT, b"hello"),
        );
    }
    c.server_send(T0 + 0.020, &sframe(OP_TEXT, b"hello x6"));
    c.server_send(T0 + 60.020, &sframe(OP_PING, b"alive?"));
    c.client_send(T0 + 60.021, &cframe(OP_PONG, b"alive?"));
    c.close_cleanly(T0 + 60.5);
    c
}

#[test]
fn a_burst_collapses_and_a_silence_has_its_line() {
    let file = Capture::of(&burst_and_silence()).write("timeline-burst");
    let got = timeline(&[path_str(&file), "--connection", "1"]);
    let body: Vec<&str> = got.lines().skip(4).collect();
    let want = [
        "            -2 ms  C→S  SYN",
        "          -1.9 ms  S→C  SYN-ACK",
        "            -1 ms  C→S  upgrade request: GET /chat, Host: 10.0.0.2:8765",
        "              0 s  S→C  upgrade response: 101 Switching Protocols",
        "            +8 ms  C→S  6 data frames (6 text), 30 bytes in all, over 5 ms",
        "           +18 ms  S→C  text, 8 bytes",
        "           +18 ms       1 min 00 s without traffic",
        "  +1 min 00.018 s  S→C  ping, 6 bytes",
        "  +1 min 00.019 s  C→S  pong, 6 bytes",
        "  +1 min 00.498 s  C→S  close, 5 bytes: 1000 (normal closure) \"bye\"",
        "  +1 min 00.499 s  S→C  close, 2 bytes: 1000 (normal closure)",
        "  +1 min 00.500 s  S→C  FIN from the server",
        "  +1 min 00.501 s  C→S  FIN from the client",
    ];
    assert_eq!(body, want, "{got}");
    assert!(got.starts_with("Connection 1: 10.0.0.1:51234 → 10.0.0.2:8765, clean\n"));
}

#[test]
fn two_connections_print_both_in_the_order_given() {
    let got = timeline(&[
        "samples/many-connections.pcap",
        "--connection",
        "5",
        "--connection",
        "3",
    ]);
    let heads: Vec<&str> = got
        .lines()
        .filter(|l| l.starts_with("Connection "))
        .collect();
    assert_eq!(heads.len(), 2, "{got}");
    assert!(heads[0].starts_with("Connection 5: "), "{got}");
    assert!(heads[1].starts_with("Connection 3: "), "{got}");
    // No table slipped in.
    assert!(!got.contains('┌'), "{got}");
    // Connection 3's server sends one fragmented message: four frames.
    assert!(
        got.contains("S→C  4 data frames (1 text + 3 continuation), 37 bytes in all"),
        "{got}"
    );
    // Connection 5: the RST and the findings it brings, at its time.
    assert!(got.contains("S→C  RST from the server\n"), "{got}");
    assert!(got.contains("[error] unanswered_close (server): "), "{got}");
}

#[test]
fn an_unknown_id_exits_2_with_one_line_and_nothing_on_stdout() {
    let out = run(&[
        "analyze",
        "samples/many-connections.pcap",
        "--connection",
        "42",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "wsclose: no connection 42 (the capture has 17)\n"
    );
}

#[test]
fn stdin_cannot_be_read_twice() {
    let bytes = std::fs::read("samples/node-ping-pong.pcapng").expect("sample");
    let out = run_with_stdin(&["analyze", "-", "--connection", "1"], bytes);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("stdin"), "{err}");
}

#[test]
fn with_json_to_stdout_the_timeline_goes_to_stderr() {
    let out = run(&[
        "analyze",
        "samples/node-ping-pong.pcapng",
        "--connection",
        "1",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    common::validate_summary(&v);
    assert!(
        stderr(&out).starts_with("Connection 1: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_display_filter_selects_exactly_the_connection_in_every_sample_connection() {
    if !tshark_available() {
        eprintln!("tshark is not installed: display filters not checked");
        return;
    }
    let file = Path::new("samples/many-connections.pcap");
    for id in 1..=17 {
        let got = timeline(&[path_str(file), "--connection", &id.to_string()]);
        let filter = filter_of(&got);
        assert!(!filter.contains("frame.time_epoch"), "{filter}");
        // The 4-tuple's packets: both ports, whatever the addresses.
        let ports: Vec<&str> = filter
            .split("tcp.port==")
            .skip(1)
            .map(|p| p.split(' ').next().unwrap_or(p))
            .collect();
        let tuple = format!("tcp.port=={} && tcp.port=={}", ports[0], ports[1]);
        let n = tshark_count(file, &filter);
        assert_eq!(n, tshark_count(file, &tuple), "connection {id}: {filter}");
        assert_eq!(n, packets_of(&got), "connection {id}: {filter}");
    }
}

#[test]
fn a_reused_4_tuple_adds_time_bounds_and_a_crossed_one_the_long_form() {
    // The same 4-tuple twice, then the same addresses with the ports
    // swapped, which `ip.addr==A && tcp.port==P && ...` would also match.
    let mut first = Conn::standard();
    first.open_ws(T0).close_cleanly(T0 + 0.5);
    let mut second = Conn::standard().isn(7_000_000, 8_000_000);
    second.open_ws(T0 + 2.0).close_cleanly(T0 + 2.5);
    let mut crossed = Conn::new("10.0.0.1:8765", "10.0.0.2:51234");
    crossed.open_ws(T0 + 4.0).close_cleanly(T0 + 4.5);
    let file = Capture::merge(&[&first, &second, &crossed]).write("timeline-reuse");
    let got = timeline(&[path_str(&file), "--connection", "2"]);
    let filter = filter_of(&got);
    assert!(filter.contains("frame.time_epoch >= "), "{filter}");
    assert!(
        filter.contains("ip.src==10.0.0.1 && tcp.srcport==51234"),
        "{filter}"
    );
    assert_eq!(packets_of(&got), second.packets.len(), "{got}");
    let got3 = timeline(&[path_str(&file), "--connection", "3"]);
    let filter3 = filter_of(&got3);
    assert!(!filter3.contains("frame.time_epoch"), "{filter3}");
    assert!(filter3.contains("tcp.srcport=="), "{filter3}");
    if !tshark_available() {
        eprintln!("tshark is not installed: display filters not checked");
        return;
    }
    assert_eq!(
        tshark_count(&file, &filter),
        second.packets.len(),
        "{filter}"
    );
    assert_eq!(
        tshark_count(&file, &filter3),
        crossed.packets.len(),
        "{filter3}"
    );
}

#[test]
fn gaps_and_resets_have_their_lines() {
    let mut c = Conn::standard();
    c.open_ws(T0);
    c.server_send(T0 + 0.010, &sframe(OP_TEXT, b"seen"));
    // Lost by the capture, acknowledged by the client.
    c.lose(common::Dir::S2C, &sframe(OP_TEXT, b"lost"));
    c.client_ack(T0 + 0.012);
    c.server_send(T0 + 0.020, &sframe(OP_TEXT, b"after"));
    c.client_rst(T0 + 0.030);
    let file = Capture::of(&c).write("timeline-gap");
    let got = timeline(&[path_str(&file), "--connection", "1"]);
    assert!(got.contains("S→C  capture gap: 6 bytes missing\n"), "{got}");
    assert!(got.contains("[warning] capture_gap (server): "), "{got}");
    assert!(got.contains("C→S  RST from the client\n"), "{got}");
    assert!(got.contains("[error] abnormal_closure (client): "), "{got}");
}
