//! `analyze --threads N` changes no result (issue 11): the JSON summary
//! and the tables are the same bytes as with one thread, `limits` and its
//! peaks included, on every bundled sample (pcapng with secrets, wss,
//! rotated files, IPv6, SLL2) and on generated captures of thousands of
//! interleaved connections that cross the purges of ended flows.

mod example_bin;

use std::path::{Path, PathBuf};
use std::process::Command;

use example_bin::gencap;

fn wsclose(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(args)
        .output()
        .expect("wsclose runs");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The JSON summary (indented, and compact: its connections are encoded
/// by several threads), and the tables of `files` with `threads`.
fn outputs(files: &[&str], threads: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let run = |extra: &[&str]| {
        let mut args = vec!["analyze", "--threads", threads];
        args.extend(files);
        args.extend(extra);
        wsclose(&args)
    };
    (
        run(&["--json", "-", "--pretty"]),
        run(&["--json", "-"]),
        run(&["--all"]),
    )
}

fn assert_same_with_threads(files: &[&str], threads: &[&str]) -> serde_json::Value {
    let one = outputs(files, "1");
    for t in threads {
        let n = outputs(files, t);
        assert!(one.0 == n.0, "{files:?}: JSON differs with --threads {t}");
        assert!(
            one.1 == n.1,
            "{files:?}: compact JSON differs with --threads {t}"
        );
        assert!(one.2 == n.2, "{files:?}: tables differ with --threads {t}");
    }
    serde_json::from_slice(&one.0).expect("JSON")
}

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_sample_gives_the_same_bytes_with_more_threads() {
    let all = samples();
    assert!(all.len() >= 20, "{} samples", all.len());
    for p in &all {
        let s = assert_same_with_threads(&[p.to_str().expect("path")], &["2", "3"]);
        assert!(s["totals"]["connections"].is_u64());
    }
    // Several inputs merged into one capture.
    let rotated: Vec<&str> = all
        .iter()
        .filter_map(|p| p.to_str())
        .filter(|p| p.contains("rotated-"))
        .collect();
    assert_same_with_threads(&rotated, &["2"]);
}

/// A generated capture: its path.
fn generate(dir: &Path, args: &[&str]) -> PathBuf {
    let pcap = dir.join("cap.pcap");
    gencap(&pcap, &dir.join("truth.json"), args);
    pcap
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsclose-threads-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// 20,000 short connections, 300 at once: about 240,000 segments, so ended
/// flows are purged three times; the peaks of flows and buffered bytes are
/// sums over workers replayed in the capture's order.
#[test]
fn generated_captures_give_the_same_bytes_and_peaks() {
    let dir = scratch("gen");
    let short = generate(
        &dir,
        &[
            "--short",
            "--connections",
            "20000",
            "--concurrent",
            "300",
            "--seed",
            "11",
        ],
    );
    let s = assert_same_with_threads(&[short.to_str().expect("path")], &["2", "4"]);
    assert!(
        s["analysis"]["tcp_segments"].as_u64() > Some(3 * 65536),
        "{}",
        s["analysis"]
    );
    assert!(
        s["limits"]["peak_flows"].as_u64() > Some(300),
        "{}",
        s["limits"]
    );
    let long = generate(
        &dir,
        &[
            "--size",
            "4M",
            "--concurrent",
            "80",
            "--packet",
            "190",
            "--seed",
            "5",
        ],
    );
    let s = assert_same_with_threads(&[long.to_str().expect("path")], &["2"]);
    assert!(
        s["limits"]["peak_buffered"].as_u64() > Some(0),
        "{}",
        s["limits"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pipe works the same: the reader copies each packet into its batch.
#[test]
fn stdin_with_threads() {
    let p = samples()
        .into_iter()
        .find(|p| p.ends_with("many-connections.pcap"));
    let p = p.expect("many-connections.pcap");
    let via_stdin = |threads: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["analyze", "-", "--threads", threads, "--json", "-"])
            .stdin(std::fs::File::open(&p).expect("sample"))
            .output()
            .expect("wsclose runs");
        out.stdout
    };
    let one = via_stdin("1");
    assert!(one.len() > 1000);
    assert!(one == via_stdin("2"));
}

#[test]
fn jsonl_and_threads_are_refused_together() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args([
            "analyze",
            "samples/many-connections.pcap",
            "--threads",
            "2",
            "--jsonl",
            "-",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("wsclose runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threads"), "{err}");
}

/// A run whose flows pass `--max-flows`: one table evicts the least
/// recently active of all flows, a worker only of its own, so a sharded
/// run that reaches a cap reads the file again on one thread (same bytes);
/// from a pipe, which cannot be read again, it warns.
#[test]
fn a_cap_reached_reads_files_again_and_warns_on_pipes() {
    let dir = scratch("cap");
    let cap = generate(
        &dir,
        &[
            "--short",
            "--connections",
            "3000",
            "--concurrent",
            "200",
            "--seed",
            "4",
        ],
    );
    let path = cap.to_str().expect("path");
    let run = |threads: &str| {
        wsclose(&[
            "analyze",
            path,
            "--max-flows",
            "64",
            "--threads",
            threads,
            "--json",
            "-",
        ])
    };
    let one = run("1");
    let s: serde_json::Value = serde_json::from_slice(&one).expect("JSON");
    assert!(
        s["limits"]["flows_evicted"].as_u64() > Some(0),
        "{}",
        s["limits"]
    );
    assert!(
        one == run("2"),
        "--max-flows 64: JSON differs with --threads 2"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args([
            "analyze",
            "-",
            "--max-flows",
            "64",
            "--threads",
            "2",
            "--json",
            "-",
        ])
        .stdin(std::fs::File::open(&cap).expect("capture"))
        .output()
        .expect("wsclose runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("memory cap") && err.contains("--threads 2"),
        "{err}"
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // Analysed to the end all the same.
    assert_eq!(
        s["analysis"]["tcp_segments"],
        serde_json::from_slice::<serde_json::Value>(&one).expect("JSON")["analysis"]["tcp_segments"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
