//! `analyze --jsonl` (each connection written the moment it is decided, as
//! `sniff --jsonl` does) and the JSON's layout (compact unless `--pretty`).

use std::process::{Command, Stdio};

use common::{Capture, Conn, T0, path_str};
use serde_json::Value;

mod common;

fn wsclose(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(args)
        .output()
        .expect("run wsclose")
}

const SAMPLE: &str = "samples/nginx-idle-cut.pcap";

fn sample() -> String {
    format!("{}/{SAMPLE}", env!("CARGO_MANIFEST_DIR"))
}

/// One connection's verdict, to match a line with the summary.
fn verdict(c: &Value) -> (String, String, Vec<String>) {
    let kinds = c["findings"]
        .as_array()
        .map(|f| f.iter().map(|f| f["kind"].to_string()).collect())
        .unwrap_or_default();
    (
        c["client"].to_string(),
        c["close"]["outcome"].to_string(),
        kinds,
    )
}

#[test]
fn every_connection_is_one_line_with_the_summarys_verdict() {
    let sample = sample();
    let json = std::env::temp_dir().join(format!("wsclose-jsonl-{}.json", std::process::id()));
    let json_s = json.to_string_lossy().into_owned();
    let out = wsclose(&["analyze", &sample, "--jsonl", "-", "--json", &json_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the summary")).expect("JSON");
    let _ = std::fs::remove_file(&json);
    let conns = summary["connections"].as_array().expect("connections");
    assert_eq!(lines.len(), conns.len());
    let mut from_lines: Vec<_> = lines
        .iter()
        .map(|l| verdict(&serde_json::from_str(l).expect("a JSON line")))
        .collect();
    let mut from_summary: Vec<_> = conns.iter().map(verdict).collect();
    from_lines.sort();
    from_summary.sort();
    assert_eq!(from_lines, from_summary);
}

#[test]
fn with_jsonl_on_stdout_the_tables_go_to_stderr() {
    let out = wsclose(&["analyze", &sample(), "--jsonl", "-"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().all(|l| l.starts_with("{\"id\":")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 12);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Connections (12"));
}

#[test]
fn jsonl_traps_are_usage_errors() {
    let sample = sample();
    let both = wsclose(&["analyze", &sample, "--jsonl", "-", "--json", "-"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(both.stdout.is_empty());
    let over_input = wsclose(&["analyze", &sample, "--jsonl", &sample]);
    assert_eq!(over_input.status.code(), Some(2));
    let err = String::from_utf8_lossy(&over_input.stderr);
    assert!(
        err.contains("--jsonl") && err.contains("one of the inputs"),
        "{err}"
    );
}

/// A capture whose JSON lines are far more than a pipe holds (64 KB).
fn many_lines() -> common::TempFile {
    let conns: Vec<Conn> = (0..600u16)
        .map(|i| {
            let mut c = Conn::new(
                &format!("10.0.1.{}:{}", i % 200 + 1, 30_000 + i),
                "10.0.0.2:8765",
            );
            let t = T0 + f64::from(i) * 0.01;
            c.open_ws(t);
            c.close_cleanly(t + 0.5);
            c
        })
        .collect();
    let refs: Vec<&Conn> = conns.iter().collect();
    Capture::merge(&refs).write("jsonl-many")
}

/// `--jsonl - | head -1`: the run ends quietly, without a summary (of part
/// of the capture, it would pass for all of it).
#[test]
fn a_reader_going_away_ends_the_run_quietly() {
    let capture = many_lines();
    let json = std::env::temp_dir().join(format!("wsclose-jsonl-gone-{}.json", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["analyze", path_str(&capture), "--jsonl", "-", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let first = common::first_stdout_line(&mut child);
    assert!(first.starts_with("{\"id\":1,"), "{first}");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Broken pipe") && !err.contains("Connections"),
        "{err}"
    );
    assert!(
        !json.exists(),
        "a summary of part of the capture was written"
    );
    // Read to the end, the same run writes all 600 lines and the summary.
    let all = wsclose(&["analyze", path_str(&capture), "--jsonl", "-"]);
    assert_eq!(String::from_utf8_lossy(&all.stdout).lines().count(), 600);
}

#[test]
fn connection_timelines_and_jsonl_on_stdout_are_refused() {
    let out = wsclose(&["analyze", &sample(), "--connection", "1", "--jsonl", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// Outputs over each other are usage errors (`--write x --json x` would
/// replace the evidence).
#[test]
fn one_output_over_another_is_refused() {
    let dir = std::env::temp_dir();
    let same = dir.join(format!("wsclose-same-{}.out", std::process::id()));
    let same = same.to_string_lossy().into_owned();
    let out = wsclose(&["analyze", &sample(), "--json", &same, "--jsonl", &same]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("are the same file"), "{err}");
    assert!(!std::path::Path::new(&same).exists());
}

#[test]
fn the_json_is_compact_unless_pretty() {
    let sample = sample();
    let compact = wsclose(&["analyze", &sample, "--json", "-"]);
    let pretty = wsclose(&["analyze", &sample, "--json", "-", "--pretty"]);
    assert_eq!(String::from_utf8_lossy(&compact.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&pretty.stdout).lines().count() > 100);
    let a: Value = serde_json::from_slice(&compact.stdout).expect("compact JSON");
    let b: Value = serde_json::from_slice(&pretty.stdout).expect("pretty JSON");
    assert_eq!(a, b);
    // Indentation is most of a pretty summary's size: 1.6 times here.
    assert!(pretty.stdout.len() * 10 > compact.stdout.len() * 15);
}
