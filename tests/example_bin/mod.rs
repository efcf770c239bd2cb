//! The repository's example programs (the benchmark generator and its
//! checker) for the tests that run them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An example binary of this build (`cargo test` builds the examples into
/// target/<profile>/examples/), rebuilt when it is missing or older than
/// its sources: `cargo test --test bench_truth` builds no example.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    if built.is_none_or(|b| newest_source() > Some(b)) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "building example {name} failed");
    }
    path
}

/// The latest change to the examples' sources.
fn newest_source() -> Option<std::time::SystemTime> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs = vec![root];
    let mut newest = None;
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(e.path());
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    newest
}

/// Runs the benchmark generator: a capture at `pcap` and its truth file at
/// `truth`, as `args` say.
pub fn gencap(pcap: &Path, truth: &Path, args: &[&str]) {
    let st = Command::new(example("gencap"))
        .arg("--out")
        .arg(pcap)
        .arg("--truth")
        .arg(truth)
        .args(args)
        .status()
        .expect("gencap runs");
    assert!(st.success(), "gencap {args:?} failed");
}
