//! `wsclose sniff ... -- CMD`: a capture on `lo` around a command, the way a
//! CI job wraps its tests. The command is the bundled Rust peer pair
//! (`examples/ws-session.rs`, built by `cargo test`): exit statuses, stdout
//! kept pure JSON, and no packet lost when the capture stops the moment the
//! command exits. Needs root (CI runs as root); skipped with a message
//! otherwise.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
#[macro_use]
mod root;

/// The example peer pair, next to the test binaries (`cargo test` builds
/// examples): target/<profile>/examples/ws-session.
fn ws_session() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join("examples").join("ws-session");
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `wsclose sniff -i lo -f 'tcp port PORT' ARGS -- ws-session --port PORT CMD_ARGS`.
fn sniff_session(port: u16, args: &[&str], session_args: &[&str]) -> Output {
    let filter = format!("tcp port {port}");
    let port = port.to_string();
    Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", &filter])
        .args(args)
        .arg("--")
        .arg(ws_session())
        .args(["--port", &port])
        .args(session_args)
        .stdin(Stdio::null())
        .output()
        .expect("run wsclose sniff")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_clean_session_exits_0_and_stdout_stays_pure_json() {
    require_root!();
    let out = sniff_session(free_port(), &["--json", "-", "--fail-on", "error"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The command's own stdout line went to stderr: stdout is one JSON.
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON summary");
    assert!(err.contains("ws-session: 2 sessions"), "{err}");
    assert_eq!(v["totals"]["connections"], 2, "{v}");
    assert_eq!(v["totals"]["outcomes"]["clean"], 2, "{v}");
}

#[test]
fn findings_fail_the_run_only_with_fail_on() {
    require_root!();
    let out = sniff_session(free_port(), &["--fail-on", "error"], &["--drop"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The report is written in full before the exit status says so.
    assert!(stdout.contains("abnormal"), "{stdout}");
    let out = sniff_session(free_port(), &[], &["--drop"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_failing_command_gives_its_own_status() {
    require_root!();
    let out = sniff_session(free_port(), &["--fail-on", "error"], &["--exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Its status wins over --fail-on's.
    let out = sniff_session(
        free_port(),
        &["--fail-on", "error"],
        &["--drop", "--exit", "4"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("abnormal"));
}

#[test]
fn a_command_that_cannot_run_is_one_line_127_or_126() {
    require_root!();
    let run = |cmd: &str| {
        Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["sniff", "-i", "lo", "-f", "tcp port 9", "--", cmd])
            .output()
            .expect("run wsclose")
    };
    let out = run("no-such-command-anywhere");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.lines()
            .any(|l| l.starts_with("wsclose: cannot run no-such-command-anywhere:")),
        "{err}"
    );
    // A directory is found but cannot be executed.
    let out = run(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

#[test]
fn a_capture_that_stops_first_stops_the_command() {
    require_root!();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", "tcp port 9", "--duration", "0.3"])
        .args(["--", "sleep", "30"])
        .output()
        .expect("run wsclose");
    let err = text(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    // sleep ended by SIGTERM: 128 + 15, as a shell says.
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("stopping sleep"), "{err}");
    assert!(
        text(&out.stdout).contains("No WebSocket connection found"),
        "the report is written"
    );
}

/// The capture stops the moment the command exits; every packet captured
/// before is analysed: ten times in a row, every session is complete (both
/// close frames, a FIN from each side in the saved packets).
#[test]
fn a_stop_when_the_command_exits_loses_nothing_ten_times() {
    require_root!();
    let dir = std::env::temp_dir().join(format!("wsclose-live-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for round in 0..10 {
        let saved = dir.join(format!("round-{round}.pcap"));
        let saved_s = saved.to_string_lossy().into_owned();
        let args = ["--json", "-", "--write", &saved_s];
        let out = sniff_session(free_port(), &args, &["--sessions", "3"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            text(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("summary");
        assert_eq!(v["totals"]["connections"], 3, "round {round}: {v}");
        assert_eq!(v["totals"]["outcomes"]["clean"], 3, "round {round}: {v}");
        for id in 1..=3 {
            let tl = Command::new(env!("CARGO_BIN_EXE_wsclose"))
                .args(["analyze", &saved_s, "--connection", &id.to_string()])
                .output()
                .expect("timeline");
            let tl = text(&tl.stdout);
            assert!(
                tl.contains("FIN from the client") && tl.contains("FIN from the server"),
                "round {round}, connection {id}:\n{tl}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With stderr a terminal (a pty from script(1)), a status line is redrawn
/// in place while capturing; without a terminal there is none.
#[test]
fn a_status_line_only_on_a_terminal() {
    require_root!();
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) (util-linux) is not installed");
        return;
    }
    let port = free_port();
    let sniff = format!(
        "{} sniff -i lo -f 'tcp port {port}' --duration 1.5 > /dev/null",
        env!("CARGO_BIN_EXE_wsclose")
    );
    let mut pty = Command::new("script")
        .args(["-qefc", &sniff, "/dev/null"])
        .env("TERM", "xterm")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    // Read what the terminal shows until the capture is ready, then talk.
    let mut out = pty.stdout.take().expect("pty output");
    let mut shown = Vec::new();
    let mut buf = [0u8; 4096];
    while !text(&shown).contains("capturing on") {
        let n = out.read(&mut buf).expect("read the pty");
        assert!(n > 0, "sniff ended before it was ready: {:?}", text(&shown));
        shown.extend_from_slice(&buf[..n]);
    }
    let session = Command::new(ws_session())
        .args(["--port", &port.to_string()])
        .output()
        .expect("ws-session");
    assert!(session.status.success());
    out.read_to_end(&mut shown).expect("read the pty");
    let _ = pty.wait();
    let shown = text(&shown);
    let status = shown
        .rsplit("\r\x1b[2K")
        .find(|s| s.contains(" TCP flows tracked, "))
        .unwrap_or_else(|| panic!("no status line: {shown:?}"));
    assert!(
        status.starts_with("wsclose: ")
            && status.ends_with(" TCP flows tracked, 2 connections decided"),
        "{shown:?}"
    );
    // Cleared before the closing lines.
    let closing = shown.rsplit("\r\x1b[2K").next().unwrap_or_default();
    assert!(
        closing.starts_with("wsclose: ") && closing.contains(" packets captured"),
        "{shown:?}"
    );
    // Stderr not a terminal: no status line.
    let plain = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", "tcp port 9", "--duration", "0.6"])
        .output()
        .expect("sniff");
    let err = text(&plain.stderr);
    assert!(
        err.contains("capturing on") && !err.contains("flows tracked"),
        "{err}"
    );
}

/// `wsclose sniff -i lo -f 'tcp port 9' ARGS -- sh -c SCRIPT`, started.
fn sniff_sh(args: &[&str], script: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", "tcp port 9"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wsclose sniff")
}

/// Waits until the child's stderr says the command runs; returns the rest
/// of stderr as a reader.
fn ready(child: &mut std::process::Child) -> BufReader<std::process::ChildStderr> {
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("capturing on") {
        line.clear();
        let n = err.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "sniff ended before it was ready");
    }
    err
}

/// The command gets none of the capture's descriptors (the packet socket,
/// the `--write` file): only stdin, stdout and stderr.
#[test]
fn the_command_inherits_no_capture_descriptor() {
    require_root!();
    let saved = std::env::temp_dir().join(format!("wsclose-fd-{}.pcap", std::process::id()));
    let saved_s = saved.to_string_lossy().into_owned();
    // ls lists its own descriptors: 0-2, the directory it reads, and
    // whatever it was given.
    let child = sniff_sh(&["--write", &saved_s], "exec ls -l /proc/self/fd");
    let out = child.wait_with_output().expect("wait");
    let listing = text(&out.stdout);
    let _ = std::fs::remove_file(&saved);
    assert!(listing.contains(" 2 -> "), "{listing}");
    assert!(
        !listing.contains("socket:[") && !listing.contains(".pcap"),
        "a capture descriptor leaked into the command:\n{listing}"
    );
}

/// SIGTERM to wsclose alone goes on to the command; the capture lasts until
/// it exits and the report is written, with the command's status.
#[test]
fn sigterm_is_passed_on_and_the_report_still_written() {
    require_root!();
    let mut child = sniff_sh(
        &[],
        "trap 'echo term >&2; exit 3' TERM; while :; do sleep 0.1; done",
    );
    let mut err = ready(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("stderr");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3), "{rest}");
    assert!(
        rest.contains("term") && rest.contains("sh exited with status 3"),
        "{rest}"
    );
    assert!(text(&out.stdout).contains("No WebSocket connection found"));
}

/// A command that ignores SIGTERM is killed after the grace period when
/// the capture stops first (`--duration`).
#[test]
fn a_command_deaf_to_sigterm_is_killed() {
    require_root!();
    let started = Instant::now();
    let out = sniff_sh(
        &["--duration", "0.2"],
        "trap '' TERM; while :; do sleep 0.1; done",
    )
    .wait_with_output()
    .expect("wait");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    assert!(err.contains("sh was ended by signal 9"), "{err}");
}

/// With a command, a reader gone from `--jsonl -` only ends the JSON lines:
/// the command runs on to its end.
#[test]
fn a_jsonl_reader_going_away_does_not_stop_the_command() {
    require_root!();
    let port = free_port();
    let filter = format!("tcp port {port}");
    let session = format!("{} --port {port}", ws_session().display());
    let script = format!("{session} >&2; sleep 0.5; {session} >&2; echo after >&2");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", &filter, "--jsonl", "-"])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sniff");
    let first = common::first_stdout_line(&mut child);
    assert!(first.starts_with("{\"id\":1,"), "{first}");
    let out = child.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("after"), "the command was cut short: {err}");
}

/// Ctrl-C in a terminal reaches wsclose and the command (one process
/// group): the command's own handler runs to its end, the capture lasts
/// until then, and its status is wsclose's.
#[test]
fn ctrl_c_lets_the_command_finish_its_cleanup() {
    use std::os::unix::process::CommandExt as _;
    require_root!();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "lo", "-f", "tcp port 9", "--", "sh", "-c"])
        .arg("trap 'sleep 0.5; echo cleaned >&2; exit 130' INT; while :; do sleep 0.1; done")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sniff");
    let mut err = ready(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    let pgid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's process group, as a terminal does.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGINT);
    }
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("stderr");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{rest}");
    assert!(
        rest.contains("cleaned"),
        "the cleanup was cut short: {rest}"
    );
    assert!(!rest.contains("stopping sh"), "{rest}");
    assert!(text(&out.stdout).contains("No WebSocket connection found"));
}
