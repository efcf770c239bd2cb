//! Command-line behaviour that needs a real process: a reader that goes away.

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn closed_stdout_ends_the_run_quietly() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/many-connections.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(&sample)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wsclose starts");
    // Like `wsclose analyze ... | head -0`: the reader is gone before any output.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wsclose ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn directory_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["analyze", env!("CARGO_MANIFEST_DIR")])
        .output()
        .expect("wsclose runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(env!("CARGO_MANIFEST_DIR")), "{err}");
}
