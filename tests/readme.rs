//! The README's examples, run exactly as written.
//!
//! Every fenced block of the README marked `console` is one example: its
//! first line is the command after `$ ` (a `wsclose` command line, optionally
//! piped into `head -n N`), the rest is what the command prints. The test
//! runs the command from the repository's root with the built `wsclose` first
//! on PATH and compares the output line by line.
//!
//! A fenced `sh` block after a `<!-- readme-test: live ... -->` line is a live
//! example (a capture on `lo`, as root): it is run as written with `sh`, its
//! exit status checked (`exit N`, else 0; pipelines fail as a whole), the
//! `text` block after it compared with its stdout when the marker says
//! `stdout below` (digits may differ: ports, times), its stdout searched for
//! `stdout has TEXT`, and the files it writes checked (a JSON summary that
//! says what the saved capture says). It runs in a directory of its own
//! with the repository's `target/` linked in. `<!-- readme-test: ci -->` marks
//! the quick start, which `.ci/run` runs (it builds a release binary, which
//! a test inside `cargo test` cannot).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One example: the command and the output the README shows.
struct Example {
    line: usize,
    command: String,
    output: String,
}

fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        if l.trim_end() != "```console" {
            continue;
        }
        let mut body: Vec<&str> = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.trim_end() == "```" {
                break;
            }
            body.push(l);
        }
        let Some(cmd) = body.first().and_then(|c| c.strip_prefix("$ ")) else {
            panic!("README line {}: a console block starts with `$ `", i + 1);
        };
        out.push(Example {
            line: i + 1,
            command: cmd.to_string(),
            output: body[1..].iter().map(|l| format!("{l}\n")).collect(),
        });
    }
    out
}

/// PATH with the built `wsclose` first.
fn path_with_wsclose() -> std::ffi::OsString {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wsclose"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

#[test]
fn readme_examples_print_what_the_readme_shows() {
    let root = root();
    let readme = readme();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 2,
        "the README should show its main examples"
    );
    let path = path_with_wsclose();
    for ex in examples {
        assert!(
            ex.command.starts_with("wsclose "),
            "README line {}: examples run wsclose",
            ex.line
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&ex.command)
            .current_dir(root)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS")
            .output()
            .expect("run the example");
        let got = String::from_utf8_lossy(&out.stdout);
        if got != ex.output {
            let diff: Vec<String> = got
                .lines()
                .zip(ex.output.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("  line {}:\n    got:    {a}\n    README: {b}", i + 1))
                .collect();
            panic!(
                "README line {}: `{}` printed something else ({} lines vs {} in the README):\n{}",
                ex.line,
                ex.command,
                got.lines().count(),
                ex.output.lines().count(),
                diff.join("\n")
            );
        }
    }
}

/// A block marked `<!-- readme-test: ... -->`.
struct Marked {
    line: usize,
    /// The marker's words after `readme-test:`.
    marker: String,
    script: String,
    /// The `text` block that follows, when there is one before the next
    /// marked block.
    shown: Option<String>,
}

impl Marked {
    fn is_live(&self) -> bool {
        self.marker.split(',').next().map(str::trim) == Some("live")
    }

    fn exit(&self) -> i32 {
        self.marker
            .split(',')
            .find_map(|w| w.trim().strip_prefix("exit "))
            .map(|n| n.trim().parse().expect("exit N"))
            .unwrap_or(0)
    }

    /// `stdout has TEXT`: what the output must say (the reason of an
    /// exit status).
    fn stdout_has(&self) -> Option<&str> {
        self.marker
            .split(',')
            .find_map(|w| w.trim().strip_prefix("stdout has "))
    }

    fn stdout_below(&self) -> bool {
        self.marker.split(',').any(|w| w.trim() == "stdout below")
    }
}

/// The fenced block starting after line `from` (its info string, body, and
/// the line after it).
fn block_after(lines: &[&str], from: usize) -> Option<(String, String, usize)> {
    let start = (from..lines.len()).find(|&i| lines[i].starts_with("```"))?;
    let info = lines[start].trim_start_matches('`').trim().to_string();
    let end = (start + 1..lines.len()).find(|&i| lines[i].trim_end() == "```")?;
    let body = lines[start + 1..end]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    Some((info, body, end + 1))
}

fn marked(readme: &str) -> Vec<Marked> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(marker) = l
            .trim()
            .strip_prefix("<!-- readme-test:")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            continue;
        };
        let (info, script, next) = block_after(&lines, i + 1).expect("a block after the marker");
        assert_eq!(info, "sh", "README line {}: a marked block is `sh`", i + 1);
        let shown = block_after(&lines, next)
            .filter(|(info, _, _)| info == "text")
            .map(|(_, body, _)| body);
        out.push(Marked {
            line: i + 1,
            marker: marker.trim().to_string(),
            script,
            shown,
        });
    }
    out
}

/// Ports, times and counts differ from run to run: every run of digits
/// compares as one `0`.
fn digits_as_zero(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_digit() {
            // Digits have all become `0`: one `0` per run of them.
            if !out.ends_with('0') {
                out.push('0');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[macro_use]
mod root;
use root::is_root;

fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list the repository's root")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// A JSON summary the example wrote says the same as `wsclose analyze` of
/// the capture it saved (`--write`): the evidence gives the same verdicts.
fn check_written(new: &BTreeSet<PathBuf>, line: usize) {
    let json = new
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"));
    let pcap = new
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "pcap"));
    let (Some(json), Some(pcap)) = (json, pcap) else {
        return;
    };
    let live: Value =
        serde_json::from_slice(&std::fs::read(json).expect("read the JSON")).expect("JSON");
    let again = Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(pcap)
        .args(["--json", "-"])
        .output()
        .expect("analyze the saved capture");
    let again: Value = serde_json::from_slice(&again.stdout).expect("JSON of analyze");
    let n = live["totals"]["connections"].as_u64().unwrap_or(0);
    assert!(
        n >= 1,
        "README line {line}: the capture saw no connection: {live}"
    );
    assert_eq!(live["totals"], again["totals"], "README line {line}");
}

#[test]
fn readme_live_examples_run_as_written() {
    let readme = readme();
    let blocks: Vec<Marked> = marked(&readme)
        .into_iter()
        .filter(Marked::is_live)
        .collect();
    assert!(
        blocks.len() >= 3,
        "the CI recipe and the live log are tested"
    );
    // CI sets WSCLOSE_REQUIRE_LIVE: there a skip would hide a stale README.
    let required = std::env::var_os("WSCLOSE_REQUIRE_LIVE").is_some();
    if !is_root() {
        assert!(!required, "the README's live examples need root");
        eprintln!("skipped: the README's live examples capture on lo (root)");
        return;
    }
    let root = root();
    let peers = root.join("target/debug/examples/ws-session");
    if !peers.exists() {
        let bin = Path::new(env!("CARGO_BIN_EXE_wsclose"));
        assert!(
            !required && !bin.starts_with(root.join("target/debug")),
            "target/debug/examples/ws-session is not built"
        );
        eprintln!(
            "skipped: the README's examples use target/debug (CARGO_TARGET_DIR is elsewhere)"
        );
        return;
    }
    let path = path_with_wsclose();
    for b in blocks {
        // A directory of its own, with the repository's target/: what the
        // example writes is new there, and nothing of the user's is
        // written over.
        let dir =
            std::env::temp_dir().join(format!("wsclose-readme-{}-{}", std::process::id(), b.line));
        std::fs::create_dir_all(&dir).expect("a directory for the example");
        std::os::unix::fs::symlink(root.join("target"), dir.join("target")).expect("link target/");
        let before = listing(&dir);
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", &b.script])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run the example");
        let new: BTreeSet<PathBuf> = listing(&dir).difference(&before).cloned().collect();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(b.exit()),
            "README line {}: {stderr}",
            b.line
        );
        if b.stdout_below() {
            let shown = b.shown.as_deref().expect("a text block after the example");
            assert_eq!(
                digits_as_zero(&got),
                digits_as_zero(shown),
                "README line {}: stdout differs from what the README shows",
                b.line
            );
        }
        if let Some(text) = b.stdout_has() {
            assert!(
                got.contains(text),
                "README line {}: no {text:?} in\n{got}",
                b.line
            );
        }
        check_written(&new, b.line);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Every `wsclose sniff` shown as a command to run is one of the tested
/// blocks, so a live example cannot go stale unnoticed.
#[test]
fn every_sniff_example_is_tested() {
    let readme = readme();
    let lines: Vec<&str> = readme.lines().collect();
    let mut i = 0;
    while let Some((info, body, next)) = block_after(&lines, i) {
        let start = (i..next)
            .find(|&k| lines[k].starts_with("```"))
            .unwrap_or(i);
        let marked = start > 0 && lines[start - 1].starts_with("<!-- readme-test:");
        if info == "sh" && body.contains("wsclose sniff") {
            assert!(
                marked,
                "README line {}: an untested sniff example",
                start + 1
            );
        }
        i = next;
    }
    assert!(
        marked(&readme).iter().any(|m| m.marker == "ci"),
        "the quick start is marked for .ci/run"
    );
}
