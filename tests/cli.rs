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

/// A cap of 0 or a negative or NaN close timeout is a usage error: exit 2,
/// nothing on stdout, one line that names the flag (it used to be raised
/// to 1 quietly, or, for the timeout, refused by clap in five lines).
#[test]
fn nonsensical_caps_and_timeouts_are_one_line_usage_errors() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/close-timeout.pcap");
    let cases: [&[&str]; 9] = [
        &["--max-flows", "0"],
        &["--max-ooo-per-dir", "0"],
        &["--max-buffered", "0"],
        &["--max-buffered=0"],
        &["--max-flows", "-1"],
        &["--close-timeout", "-1"],
        &["--close-timeout=-0.5"],
        &["--close-timeout", "NaN"],
        &["--close-timeout", "inf"],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("analyze")
            .arg(&sample)
            .args(args)
            .args(["--json", "-"])
            .output()
            .expect("wsclose runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        let flag = args[0].split('=').next().unwrap();
        assert!(
            err.starts_with("wsclose: ") && err.contains(flag),
            "{args:?}: {err}"
        );
    }
    // The smallest sensible values still run.
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(&sample)
        .args(["--max-flows", "1", "--max-ooo-per-dir", "1"])
        .args([
            // The flag's old name still works.
            "--max-ooo-total",
            "1",
            "--close-timeout",
            "0",
            "--json",
            "-",
        ])
        .output()
        .expect("wsclose runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No traps: an output over an input, or an input given twice, is a usage
/// error (exit 2, one line, the input untouched); `-r FILE` reads a file as
/// tcpdump's and tshark's `-r` do.
#[test]
fn outputs_over_inputs_and_inputs_twice_are_refused() {
    let dir = std::env::temp_dir().join(format!("wsclose-traps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("in.pcap");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/close-timeout.pcap");
    std::fs::copy(&sample, &input).expect("copy sample");
    let before = std::fs::read(&input).expect("read input");
    let p = input.to_str().expect("utf-8 path");
    let cases: [&[&str]; 4] = [&[p, "--json", p], &[p, "--html", p], &[p, p], &[p, "-r", p]];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("analyze")
            .args(args)
            .output()
            .expect("wsclose runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(std::fs::read(&input).expect("read input"), before);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["analyze", "-r", p, "--json", "-"])
        .output()
        .expect("wsclose runs");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["totals"]["connections"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// gzip- and zstd-compressed captures are read transparently, as files and
/// through stdin, and give the same connections as the plain capture.
#[test]
fn compressed_captures_are_read_transparently() {
    use std::io::Write as _;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/many-connections.pcap");
    let plain = std::fs::read(&sample).expect("sample");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(&plain[..], 3).expect("zstd");
    let dir = std::env::temp_dir().join(format!("wsclose-compressed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |args: &[&str], stdin: Option<&[u8]>| -> serde_json::Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsclose"));
        cmd.arg("analyze").args(args).args(["--json", "-"]);
        let out = match stdin {
            None => cmd.output().expect("wsclose runs"),
            Some(bytes) => {
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped());
                let mut child = cmd.spawn().expect("wsclose runs");
                let mut si = child.stdin.take().expect("stdin");
                si.write_all(bytes).expect("write stdin");
                drop(si);
                child.wait_with_output().expect("wsclose ends")
            }
        };
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let want = run(&[sample.to_str().expect("path")], None)["connections"].clone();
    assert_eq!(want.as_array().map(Vec::len), Some(17));
    for (name, bytes) in [("c.pcap.gz", &gz), ("c.pcap.zst", &zst)] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let file = run(&[path.to_str().expect("path")], None);
        assert_eq!(file["connections"], want, "{name} as a file");
        let piped = run(&["-"], Some(bytes));
        assert_eq!(piped["connections"], want, "{name} through stdin");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shell integration: completion scripts that name the subcommands and
/// flags, and a manual page, generated from the same definitions as the
/// parser.
#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["completions", shell])
            .output()
            .expect("wsclose runs");
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        for word in ["analyze", "sniff", "keylog", "close-timeout"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("man")
        .output()
        .expect("wsclose runs");
    let page = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        page.contains(".TH wsclose 1") && page.contains("analyze"),
        "{page}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["completions", "nosuchshell"])
        .output()
        .expect("wsclose runs");
    assert_eq!(bad.status.code(), Some(2));
}

/// `sniff -i N` takes the numbers `wsclose interfaces` prints (as tcpdump's
/// `-i N` those of `-D`); an unknown number is one line and exit 2.
#[test]
fn sniff_takes_interface_numbers() {
    let list = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("interfaces")
        .output()
        .expect("wsclose runs");
    let text = String::from_utf8_lossy(&list.stdout);
    let count = text.lines().filter(|l| l.contains(" ┆ ")).count() - 1;
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["sniff", "-i", "999", "--duration", "0.1"])
        .output()
        .expect("wsclose runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no interface number 999"), "{err}");
    assert!(err.contains(&format!("lists {count}")), "{err}\n{text}");
    // Capturing needs root: the rest only then.
    if running_as_root() {
        let lo = text
            .lines()
            .find(|l| l.split('┆').nth(1).is_some_and(|c| c.trim() == "lo"))
            .and_then(|l| l.trim_start_matches('│').split('┆').next())
            .map(|n| n.trim().to_string())
            .expect("lo is listed");
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["sniff", "-i", &lo, "--duration", "0.3", "--json", "-"])
            .output()
            .expect("wsclose runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(v["sources"][0]["name"], "lo");
    } else {
        eprintln!("skipped the capture part: not root");
    }
}

/// Whether the tests run as root (from /proc, no unsafe call).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Ctrl-C while reading a pipe (`tcpdump -w - | wsclose analyze -`, where
/// both get the signal and tcpdump closes the pipe): the report of what was
/// read is written, exit 0.
#[test]
fn ctrl_c_on_a_pipe_writes_the_report_of_what_was_read() {
    use std::io::Write as _;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/many-connections.pcap");
    let bytes = std::fs::read(&sample).expect("sample");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(["analyze", "-", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wsclose runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&bytes).expect("write the capture");
    stdin.flush().expect("flush");
    // Let it read what is there, then Ctrl-C it while the pipe is open.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status();
    assert!(kill.is_ok_and(|s| s.success()), "kill -INT");
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(stdin); // the writer (tcpdump) exits on the same Ctrl-C
    let out = child.wait_with_output().expect("wsclose ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report");
    assert_eq!(v["totals"]["connections"], 17);
}

/// A capture with no WebSocket connection says what it held instead, and
/// `--min-connections` makes such a run fail (exit 1) after the report.
#[test]
fn nothing_found_says_why_and_min_connections_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let h2 = dir.join("wss-alpn-h2.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(&h2)
        .env("COLUMNS", "200")
        .output()
        .expect("wsclose runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No WebSocket connection found. The capture held 1 TCP flow(s)")
            && text.contains("1 TLS connection(s) not listed"),
        "{text}"
    );
    for (min, status) in [("1", 1), ("0", 0)] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .arg("analyze")
            .arg(&h2)
            .args(["--min-connections", min, "--json", "-"])
            .output()
            .expect("wsclose runs");
        assert_eq!(out.status.code(), Some(status), "--min-connections {min}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON first");
        assert_eq!(v["analysis"]["tls"]["seen"], 1);
    }
    let ok = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(dir.join("close-timeout.pcap"))
        .args(["--min-connections", "1", "--json", "-"])
        .output()
        .expect("wsclose runs");
    assert_eq!(ok.status.code(), Some(0));
}

/// `--snaplen` takes 1 to 262144 bytes: anything else is a one-line usage
/// error naming the flag.
#[test]
fn snaplen_out_of_range_is_a_one_line_usage_error() {
    for bad in ["0", "-5", "300000", "x"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
            .args(["sniff", "-i", "lo", "--snaplen", bad])
            .output()
            .expect("wsclose runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(err.contains("--snaplen"), "{bad}: {err}");
    }
}

/// `--json` with no path writes the JSON to stdout; a `--json` path that is
/// an existing capture (`--json a.pcap b.pcap`) is never written over.
#[test]
fn json_without_a_path_and_never_over_a_capture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let sample = dir.join("close-timeout.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(&sample)
        .arg("--json")
        .output()
        .expect("wsclose runs");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["totals"]["connections"], 1);
    let tmp = std::env::temp_dir().join(format!("wsclose-json-over-{}.pcap", std::process::id()));
    std::fs::copy(&sample, &tmp).expect("copy");
    let before = std::fs::read(&tmp).expect("read");
    let out = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg("--json")
        .arg(&tmp)
        .arg(dir.join("unanswered-close.pcap"))
        .output()
        .expect("wsclose runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is a capture file"), "{err}");
    assert_eq!(
        std::fs::read(&tmp).expect("read"),
        before,
        "not written over"
    );
    let _ = std::fs::remove_file(&tmp);
}
