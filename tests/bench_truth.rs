//! The benchmark generator's captures analysed by wsclose must reproduce
//! the generator's truth file exactly (issue 11): a small capture of long
//! connections and one of short ones, each checked total by total with
//! `examples/checktruth`; and the checker must catch a doctored summary.

mod example_bin;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use example_bin::{example, gencap};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command runs");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wsclose-bench-truth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Generates a capture with `args`, analyses it (with `analyze` options
/// `options`), checks the summary against the truth; returns the summary's
/// path and the truth's.
fn generate_and_check(dir: &Path, args: &[&str], options: &[&str]) -> (PathBuf, PathBuf) {
    let (pcap, truth, summary) = (
        dir.join("cap.pcap"),
        dir.join("truth.json"),
        dir.join("summary.json"),
    );
    gencap(&pcap, &truth, args);
    run(Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .arg("analyze")
        .arg(&pcap)
        .args(options)
        .arg("--json")
        .arg(&summary));
    let out = run(Command::new(example("checktruth"))
        .arg(&truth)
        .arg(&summary));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", 0 wrong"), "{text}");
    assert!(!text.contains("DIFF"), "{text}");
    (summary, truth)
}

#[test]
fn long_connections_match_their_truth() {
    let dir = scratch("long");
    let args = [
        "--size",
        "3M",
        "--concurrent",
        "60",
        "--packet",
        "190",
        "--seed",
        "7",
    ];
    let (summary, truth) = generate_and_check(&dir, &args, &[]);
    // Every kind of the mix is there (the first connections cycle through them).
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(truth).expect("truth")).expect("truth JSON");
    for outcome in ["clean", "unanswered", "timeout", "abnormal", "rejected"] {
        assert!(t["outcomes"][outcome].as_u64() > Some(0), "{outcome}");
    }
    assert_eq!(t["diagnoses"].as_array().map(Vec::len), Some(2), "{t}");
    doctored_summaries_fail(&dir, &summary, &dir.join("truth.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn short_connections_match_their_truth() {
    let dir = scratch("short");
    let args = [
        "--short",
        "--connections",
        "3000",
        "--concurrent",
        "200",
        "--seed",
        "3",
    ];
    generate_and_check(&dir, &args, &[]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 1,500 connections open at once on one table: past the 1,024 live flows
/// from which a packet's flow state is prefetched, so that path runs too
/// (in the test build, with overflow checks), and changes nothing.
#[test]
fn connections_by_the_thousand_match_their_truth() {
    let dir = scratch("thousands");
    let args = [
        "--short",
        "--connections",
        "3000",
        "--concurrent",
        "1500",
        "--seed",
        "11",
    ];
    let (summary, _) = generate_and_check(&dir, &args, &["--threads", "1"]);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).expect("summary")).expect("summary JSON");
    assert!(
        s["limits"]["peak_flows"].as_u64() >= Some(1500),
        "{}",
        s["limits"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A change made to a good summary.
type Doctor = fn(&mut serde_json::Value);

/// The checker is not a rubber stamp: one total off by one, one frame
/// count off, two connections' verdicts swapped, or one diagnosis too
/// many makes it fail with a DIFF line.
fn doctored_summaries_fail(dir: &Path, summary: &Path, truth: &Path) {
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).expect("summary")).expect("summary JSON");
    let doctor: [(&str, Doctor); 4] = [
        ("totals.outcomes.clean", |s| {
            let n = s["totals"]["outcomes"]["clean"].as_u64().unwrap_or(0);
            s["totals"]["outcomes"]["clean"] = (n + 1).into();
        }),
        ("frames.server.ping", |s| {
            let n = s["connections"][0]["frames"]["server"]["ping"]
                .as_u64()
                .unwrap_or(0);
            s["connections"][0]["frames"]["server"]["ping"] = (n + 1).into();
        }),
        // Two connections' verdicts swapped: every total still balances.
        ("connections[] as their kind", |s| {
            let Some(conns) = s["connections"].as_array_mut() else {
                return;
            };
            let outcome = |c: &serde_json::Value| c["close"]["outcome"].clone();
            let Some(i) = conns.iter().position(|c| outcome(c) == "clean") else {
                return;
            };
            let Some(j) = conns.iter().position(|c| outcome(c) == "abnormal") else {
                return;
            };
            let (a, b) = (conns[i].clone(), conns[j].clone());
            conns[i]["close"]["outcome"] = outcome(&b);
            conns[i]["findings"] = b["findings"].clone();
            conns[j]["close"]["outcome"] = outcome(&a);
            conns[j]["findings"] = a["findings"].clone();
        }),
        ("diagnoses.mass_disconnect", |s| {
            let mut d = s["diagnoses"][0].clone();
            d["kind"] = "mass_disconnect".into();
            if let Some(a) = s["diagnoses"].as_array_mut() {
                a.push(d);
            }
        }),
    ];
    for (what, change) in doctor {
        let mut bad = good.clone();
        change(&mut bad);
        let path = dir.join("doctored.json");
        std::fs::write(&path, serde_json::to_vec(&bad).expect("JSON")).expect("write");
        let out = Command::new(example("checktruth"))
            .arg(truth)
            .arg(&path)
            .output()
            .expect("checktruth runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what}: {text}");
        assert!(text.contains(&format!("DIFF  {what}")), "{what}: {text}");
    }
}

/// The same seed gives the same capture, byte for byte.
#[test]
fn generation_is_deterministic() {
    let dir = scratch("seed");
    let mut files = Vec::new();
    for i in 0..2 {
        let (pcap, truth) = (dir.join(format!("{i}.pcap")), dir.join(format!("{i}.json")));
        run(Command::new(example("gencap"))
            .arg("--out")
            .arg(&pcap)
            .arg("--truth")
            .arg(&truth)
            .args(["--connections", "300", "--concurrent", "30", "--seed", "11"]));
        files.push(std::fs::read(&pcap).expect("capture"));
    }
    assert!(files[0] == files[1], "two runs with seed 11 differ");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The walk and its floor (`examples/barewalk`, the measures of
/// benches/e2e.sh) see every packet of a generated capture, and the floor
/// finds as many connections as the truth holds: a walk that skipped
/// records or mixed flows up would make the benchmark's ratios lie.
#[test]
fn the_walk_and_its_floor_see_what_the_truth_holds() {
    let dir = scratch("walk");
    let (pcap, truth) = (dir.join("cap.pcap"), dir.join("truth.json"));
    let args = ["--connections", "400", "--concurrent", "40", "--seed", "5"];
    gencap(&pcap, &truth, &args);
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&truth).expect("truth")).expect("truth JSON");
    let (packets, connections) = (&t["packets"], &t["connections"]);
    assert!(connections.as_u64() >= Some(400), "{t}");
    let walk = run(Command::new(example("barewalk")).arg(&pcap));
    let walk = String::from_utf8_lossy(&walk.stdout).into_owned();
    assert!(walk.starts_with(&format!("{packets} packets, ")), "{walk}");
    let floor = run(Command::new(example("barewalk")).arg("--floor").arg(&pcap));
    let floor = String::from_utf8_lossy(&floor.stdout).into_owned();
    assert!(floor.starts_with(&walk), "walk: {walk}\nfloor: {floor}");
    assert!(
        floor.contains(&format!("\n{connections} connections, ")),
        "{floor}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
