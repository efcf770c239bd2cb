//! Helpers of the wss tests (`tests/wss.rs`, `tests/wss_nginx.rs`,
//! `tests/wss_live.rs`): running `wsclose` on the committed wss samples,
//! validating summaries that hold `encrypted` connections, reading the
//! capture's wire facts independently of wsclose (a small pcap reader for
//! the TCP ends and the contract's final-burst rule), and tshark's view of a
//! decrypted capture to compare verdicts with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{validate_schema, validate_summary};

mod tshark;
mod wire;

#[allow(unused_imports)]
pub use tshark::*;
#[allow(unused_imports)]
pub use wire::*;

/// Tolerance for timestamps: epoch seconds (about 1.8e9) carry about 2e-7 s
/// of f64 rounding, and the samples are microsecond pcaps.
pub const TS_EPS: f64 = 2e-6;

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `wsclose ARGS...` (ARGS start with the subcommand).
pub fn wsclose(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsclose"))
        .args(args)
        .env_remove("SSLKEYLOGFILE")
        .output()
        .expect("run wsclose")
}

/// `wsclose analyze FILES... --json - EXTRA...`: exit 0, the summary
/// validated ([`validate_wss`]), and stderr.
pub fn analyze(files: &[&Path], extra: &[&str]) -> (Value, String) {
    let mut args = vec!["analyze"];
    args.extend(files.iter().map(|p| s(p)));
    args.extend(["--json", "-"]);
    args.extend_from_slice(extra);
    let out = wsclose(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "wsclose {args:?}\n{}",
        show(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", show(&out)));
    validate_wss(&v);
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `wsclose analyze FILES... --json - EXTRA...` that must exit 2 with one
/// line on stderr and nothing on stdout; returns that line.
pub fn analyze_fails(files: &[&Path], extra: &[&str]) -> String {
    let mut args = vec!["analyze"];
    args.extend(files.iter().map(|p| s(p)));
    args.extend(["--json", "-"]);
    args.extend_from_slice(extra);
    let out = wsclose(&args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "wsclose {args:?}\n{}",
        show(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on exit 2\n{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr\n{}",
        show(&out)
    );
    err.trim_end().to_string()
}

pub fn conns(v: &Value) -> &Vec<Value> {
    v["connections"].as_array().expect("connections")
}

/// The connection whose client is `client` (`ip:port`).
#[track_caller]
pub fn by_client<'a>(v: &'a Value, client: &str) -> &'a Value {
    conns(v)
        .iter()
        .find(|c| c["client"] == client)
        .unwrap_or_else(|| {
            panic!(
                "no connection from {client} in\n{}",
                serde_json::to_string_pretty(v).unwrap()
            )
        })
}

#[track_caller]
pub fn assert_ts(actual: &Value, expected: f64, what: &str) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number near {expected:.6}, got {actual}"));
    assert!(
        (a - expected).abs() <= TS_EPS,
        "{what}: expected {expected:.6}, got {a:.6} (diff {:e})",
        a - expected
    );
}

#[track_caller]
pub fn assert_opt_ts(actual: &Value, expected: Option<f64>, what: &str) {
    match expected {
        Some(t) => assert_ts(actual, t, what),
        None => assert!(actual.is_null(), "{what}: expected null, got {actual}"),
    }
}

/// The lines of stderr that tell how to supply keys (the contract: "says so
/// once on stderr (one line per run) with how to supply keys").
pub fn key_hint_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("--keylog")).collect()
}

/// Asserts stderr is exactly the one line saying how to get keys.
#[track_caller]
pub fn assert_one_key_hint(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line:\n{stderr}");
    let l = lines[0];
    assert!(
        l.contains("--keylog") && l.contains("SSLKEYLOGFILE"),
        "the line says how to supply keys (--keylog, SSLKEYLOGFILE): {l}"
    );
}

// ---------------------------------------------------------------------------
// Validation of summaries with TLS connections
// ---------------------------------------------------------------------------

/// The schema, the TLS section's rules for each connection, and
/// `common::validate_summary`'s cross-field invariants on the summary
/// without its `encrypted` connections (those have `handshake` null without
/// being midstream, which that function does not know).
pub fn validate_wss(v: &Value) {
    validate_schema(v);
    let pretty = || serde_json::to_string_pretty(v).unwrap();
    let outcomes = v["totals"]["outcomes"].as_object().expect("outcomes");
    assert!(
        outcomes.contains_key("encrypted"),
        "totals.outcomes has `encrypted` always\n{}",
        pretty()
    );
    let tls = &v["analysis"]["tls"];
    assert!(tls.is_object(), "analysis.tls\n{}", pretty());
    let not_dec: u64 = tls["not_decrypted"]
        .as_object()
        .expect("analysis.tls.not_decrypted")
        .values()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(
        tls["seen"].as_u64(),
        Some(tls["decrypted"].as_u64().expect("decrypted") + not_dec),
        "analysis.tls: seen = decrypted + not decrypted\n{}",
        pretty()
    );

    let mut encrypted = 0;
    let mut listed_tls = [0u64; 2];
    for c in conns(v) {
        let t = c["transport"].as_str().expect("transport");
        assert!(t == "tcp" || t == "tls", "transport {t}");
        assert_eq!(
            t == "tcp",
            c["tls"].is_null(),
            "tls null iff tcp\n{}",
            pretty()
        );
        let out = c["close"]["outcome"].as_str().unwrap();
        if t == "tls" {
            let tl = &c["tls"];
            let dec = tl["decrypted"].as_bool().expect("decrypted");
            listed_tls[usize::from(dec)] += 1;
            assert_eq!(
                dec,
                tl["not_decrypted_reason"].is_null(),
                "not_decrypted_reason null iff decrypted\n{}",
                pretty()
            );
            assert_eq!(
                out == "encrypted",
                !dec,
                "encrypted iff not decrypted\n{}",
                pretty()
            );
        } else {
            assert_ne!(
                out,
                "encrypted",
                "plaintext is never encrypted\n{}",
                pretty()
            );
        }
        if out == "encrypted" {
            encrypted += 1;
            assert_encrypted_shape(c);
        }
    }
    assert_eq!(
        outcomes["encrypted"].as_u64(),
        Some(encrypted),
        "totals.outcomes.encrypted"
    );
    assert!(
        tls["decrypted"].as_u64().unwrap() >= listed_tls[1]
            && tls["seen"].as_u64().unwrap() >= listed_tls[0] + listed_tls[1],
        "analysis.tls counts every listed TLS connection\n{}",
        pretty()
    );
    validate_summary(&without_encrypted(v));
}

/// What the contract says of every `encrypted` connection.
#[track_caller]
pub fn assert_encrypted_shape(c: &Value) {
    let pretty = || serde_json::to_string_pretty(c).unwrap();
    assert_eq!(c["transport"], "tls", "{}", pretty());
    assert!(c["handshake"].is_null(), "handshake null\n{}", pretty());
    for side in ["client", "server"] {
        for (k, n) in c["frames"][side].as_object().expect("frames") {
            assert_eq!(n, 0, "frames.{side}.{k} is 0\n{}", pretty());
        }
    }
    let close = &c["close"];
    for k in ["initiator", "client_frame", "server_frame", "handshake_s"] {
        assert!(close[k].is_null(), "close.{k} null\n{}", pretty());
    }
    let open = close["tcp_end"]["kind"] == "none";
    assert_eq!(
        close["idle_s"].is_null(),
        open,
        "idle_s null while open\n{}",
        pretty()
    );
    assert_eq!(c["tls"]["decrypted"], false);
}

/// The summary less its `encrypted` connections, renumbered, with the
/// totals they contributed taken off.
fn without_encrypted(v: &Value) -> Value {
    let mut w = v.clone();
    let mut kept = Vec::new();
    let mut removed = 0u64;
    for c in conns(v) {
        if c["close"]["outcome"] == "encrypted" {
            removed += 1;
            let mut totals = w["totals"].take();
            for f in c["findings"].as_array().unwrap() {
                let k = f["kind"].as_str().unwrap();
                let n = totals["findings"][k].as_u64().unwrap();
                totals["findings"][k] = (n - 1).into();
                let sev = f["severity"].as_str().unwrap();
                let n = totals["severities"][sev].as_u64().unwrap();
                totals["severities"][sev] = (n - 1).into();
            }
            w["totals"] = totals;
        } else {
            let mut c = c.clone();
            c["id"] = (kept.len() as u64 + 1).into();
            kept.push(c);
        }
    }
    w["connections"] = Value::Array(kept);
    let n = w["totals"]["connections"].as_u64().unwrap();
    w["totals"]["connections"] = (n - removed).into();
    w["totals"]["outcomes"]["encrypted"] = 0.into();
    w
}
