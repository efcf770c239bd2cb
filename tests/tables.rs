//! The tables for people: fitted to 80 and 120 columns with nothing broken
//! inside a word, colour on and off, the capture's start as a date, the
//! order of the sections, and the clean connections left out past 50.
//!
//! Snapshots of two bundled samples are in `tests/snapshots/tables-*.txt`;
//! rewrite them with `WSCLOSE_UPDATE_SNAPSHOTS=1 cargo test --test tables`
//! after a deliberate change, and read the diff.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Capture, Conn, T0, path_str};
use serde_json::Value;

const SAMPLES: [&str; 2] = ["many-connections", "nginx-idle-cut"];

/// `wsclose ARGS` from the repository's root, stdout not a terminal,
/// `COLUMNS` as given, no NO_COLOR; expects exit 0.
fn wsclose(args: &[&str], columns: Option<usize>, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsclose"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS");
    if let Some(c) = columns {
        cmd.env("COLUMNS", c.to_string());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run wsclose");
    assert!(
        out.status.success(),
        "wsclose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 tables")
}

fn tables(sample: &str, columns: usize, color: &str) -> String {
    let file = format!("samples/{sample}.pcap");
    wsclose(
        &["analyze", &file, "--utc", "--color", color],
        Some(columns),
        &[],
    )
}

fn json(file: &str) -> Value {
    let out = wsclose(&["analyze", file, "--json", "-"], None, &[]);
    serde_json::from_str(&out).expect("JSON")
}

/// The text without ANSI escapes.
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// Each line of `text` fits in `width` columns (every character the
/// tables print is one column wide).
fn assert_fits(text: &str, width: usize, what: &str) {
    for (i, l) in plain(text).lines().enumerate() {
        let n = l.chars().count();
        assert!(
            n <= width,
            "{what}: line {} is {n} columns wide, more than {width}:\n{l}",
            i + 1
        );
    }
}

/// Every address, finding and close code of the JSON's connections is
/// printed whole: none is broken across lines.
fn assert_whole(text: &str, summary: &Value, what: &str) {
    let text = plain(text);
    for c in summary["connections"].as_array().unwrap() {
        for key in ["client", "server"] {
            let addr = c[key].as_str().unwrap();
            assert!(
                text.contains(addr),
                "{what}: connection {}'s {key} {addr} is not printed whole",
                c["id"]
            );
        }
        for f in c["findings"].as_array().unwrap() {
            let kind = f["kind"].as_str().unwrap();
            assert!(text.contains(kind), "{what}: finding {kind} is broken");
        }
        for side in ["client_frame", "server_frame"] {
            if let Some(code) = c["close"][side]["code"].as_u64() {
                assert!(
                    text.contains(&code.to_string()),
                    "{what}: close code {code} is broken"
                );
            }
        }
    }
}

#[test]
fn snapshots_at_80_and_120_columns_colour_on_and_off() {
    for sample in SAMPLES {
        let summary = json(&format!("samples/{sample}.pcap"));
        for width in [80, 120] {
            let never = tables(sample, width, "never");
            let always = tables(sample, width, "always");
            let what = format!("{sample} at {width}");
            assert!(!never.contains('\x1b'), "{what}: colour with --color never");
            assert!(
                always.contains("\x1b["),
                "{what}: no colour with --color always"
            );
            assert_eq!(
                plain(&always),
                never,
                "{what}: colour must change nothing but the colour"
            );
            assert_fits(&always, width, &what);
            assert_whole(&never, &summary, &what);
            for (color, got) in [("never", &never), ("always", &always)] {
                let path = format!("tests/snapshots/tables-{sample}-{width}-{color}.txt");
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
                if std::env::var_os("WSCLOSE_UPDATE_SNAPSHOTS").is_some() {
                    std::fs::write(&path, got).expect("write the snapshot");
                }
                let want = std::fs::read_to_string(&path).expect("read the snapshot");
                assert_eq!(
                    got,
                    &want,
                    "the tables differ from {}; rewrite with WSCLOSE_UPDATE_SNAPSHOTS=1 if deliberate",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn fits_narrow_and_wide_terminals_too() {
    for sample in SAMPLES {
        let summary = json(&format!("samples/{sample}.pcap"));
        for width in [40, 60, 100, 160, 240] {
            let got = tables(sample, width, "always");
            let what = format!("{sample} at {width}");
            assert_fits(&got, width, &what);
            assert_whole(&got, &summary, &what);
        }
    }
}

#[test]
fn without_columns_the_width_is_100() {
    let got = wsclose(&["analyze", "samples/many-connections.pcap"], None, &[]);
    assert_fits(&got, 100, "default width");
    assert!(
        got.lines().any(|l| l.chars().count() > 80),
        "the default width is 100, not 80"
    );
    assert!(
        !got.contains('\x1b'),
        "no colour when stdout is no terminal"
    );
    let no_color = wsclose(
        &["analyze", "samples/many-connections.pcap"],
        None,
        &[("NO_COLOR", "1")],
    );
    assert!(!no_color.contains('\x1b'));
}

#[test]
fn sections_in_order_with_times_for_people() {
    let got = tables("many-connections", 120, "never");
    let at = |s: &str| {
        got.find(s)
            .unwrap_or_else(|| panic!("{s:?} missing:\n{got}"))
    };
    assert!(at("Diagnoses (") < at("Capture from "));
    assert!(at("Capture from ") < at("│ connections "));
    assert!(at("│ connections ") < at("Connections (17; "));
    assert!(at("Connections (17; ") < at("Findings ("));
    // The start as a date (UTC with --utc), durations in their unit, the
    // close reason quoted, the path.
    assert!(got.contains("Capture from 2026-11-21 22:52:26.533 UTC, lasting 2.292 s"));
    assert!(got.contains("in 980 µs"), "{got}");
    assert!(got.contains("\"py") && got.contains("bye\""), "{got}");
    assert!(
        tables("many-connections", 80, "never").contains("\"py bye\""),
        "the reason, quoted"
    );
    assert!(got.contains("/close-1011"), "{got}");
    assert!(!got.contains("1795301546"), "no epoch seconds for people");
}

#[test]
fn local_time_with_its_offset() {
    // A POSIX TZ needs no time-zone database: three hours east of UTC.
    let got = wsclose(
        &["analyze", "samples/many-connections.pcap"],
        Some(100),
        &[("TZ", "XST-3")],
    );
    assert!(
        got.contains("Capture from 2026-11-22 01:52:26.533 (local time, UTC+03:00)"),
        "{got}"
    );
    let utc = wsclose(
        &["analyze", "samples/many-connections.pcap", "--utc"],
        Some(100),
        &[("TZ", "XST-3")],
    );
    assert!(utc.contains("Capture from 2026-11-21 22:52:26.533 UTC"));
}

/// 60 connections, every tenth cut by the server without a close frame,
/// the others closed cleanly.
fn sixty_connections() -> common::TempFile {
    let conns: Vec<Conn> = (0..60u16)
        .map(|i| {
            let mut c = Conn::new(&format!("10.0.0.1:{}", 40_000 + i), "10.0.0.2:8765");
            let t = T0 + f64::from(i) * 0.01;
            c.open_ws(t);
            if i % 10 == 0 {
                c.server_fin(t + 1.0);
                c.client_fin(t + 1.001);
            } else {
                c.close_cleanly(t + 0.5);
            }
            c
        })
        .collect();
    let refs: Vec<&Conn> = conns.iter().collect();
    Capture::merge(&refs).write("tables-sixty")
}

#[test]
fn past_50_connections_the_clean_ones_are_counted_not_listed() {
    let path = sixty_connections();
    let file = path_str(&path);
    let summary = json(file);
    let conns = summary["connections"].as_array().unwrap();
    let clean: Vec<&Value> = conns
        .iter()
        .filter(|c| c["close"]["outcome"] == "clean")
        .collect();
    assert_eq!((conns.len(), clean.len()), (60, 54));
    for width in [80, 120] {
        let got = wsclose(&["analyze", file, "--color", "never"], Some(width), &[]);
        assert_fits(&got, width, "sixty");
        let one_line = got.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            one_line.contains(
                "Connections: the 6 not clean of 60; 54 clean connections left out (--all lists them);"
            ),
            "{got}"
        );
        for c in conns {
            let port = c["client"].as_str().unwrap();
            let is_clean = c["close"]["outcome"] == "clean";
            assert_eq!(
                got.contains(port),
                !is_clean,
                "{port} listed or not:\n{got}"
            );
        }
        let all = wsclose(
            &["analyze", file, "--color", "never", "--all"],
            Some(width),
            &[],
        );
        assert_fits(&all, width, "sixty --all");
        assert_whole(&all, &summary, "sixty --all");
        assert!(all.contains("Connections (60; "), "{all}");
    }
}

/// Past 100 connections with findings, the messages are shown for the first
/// 100 only (the connection lines name every finding); `--all` shows all.
#[test]
fn past_100_connections_with_findings_only_their_messages_are_cut() {
    let conns: Vec<Conn> = (0..130u16)
        .map(|i| {
            let mut c = Conn::new(&format!("10.0.0.1:{}", 41_000 + i), "10.0.0.2:8765");
            let t = T0 + f64::from(i) * 0.01;
            c.open_ws(t);
            c.server_fin(t + 1.0 + f64::from(i) * 0.1);
            c.client_fin(t + 1.001 + f64::from(i) * 0.1);
            c
        })
        .collect();
    let refs: Vec<&Conn> = conns.iter().collect();
    let path = Capture::merge(&refs).write("tables-findings-cap");
    let file = path_str(&path);
    // At 80 columns: a connection's line says `findings: abnormal_closure
    // (server)`, a finding's `#N [error] abnormal_closure (server), at ...`.
    let got = wsclose(&["analyze", file, "--color", "never"], Some(80), &[]);
    assert_fits(&got, 80, "findings cap");
    let one_line = got.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        one_line.contains("Findings of the first 100 of 130 connections with findings"),
        "{got}"
    );
    let named = |s: &str| s.matches("findings: abnormal_closure (server)").count();
    let messages = |s: &str| s.matches("[error] abnormal_closure (server)").count();
    assert_eq!((named(&one_line), messages(&one_line)), (130, 100), "{got}");
    let all = wsclose(
        &["analyze", file, "--color", "never", "--all"],
        Some(80),
        &[],
    );
    let all_line = all.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(all_line.contains("Findings (times from"), "{all}");
    assert_eq!((named(&all_line), messages(&all_line)), (130, 130), "{all}");
}

/// Past 1,000 connections not clean, the first 1,000 are listed (the JSON
/// holds every one); `--all` lists all.
#[test]
fn past_1000_unclean_connections_the_first_1000_are_listed() {
    let conns: Vec<Conn> = (0..1003u32)
        .map(|i| {
            let client = format!("10.0.{}.{}:{}", i / 250, i % 250 + 1, 42_000 + i % 20_000);
            let mut c = Conn::new(&client, "10.0.0.2:8765");
            let t = T0 + f64::from(i) * 0.01;
            c.open_ws(t);
            c.server_fin(t + 0.2);
            c.client_fin(t + 0.201);
            c
        })
        .collect();
    let refs: Vec<&Conn> = conns.iter().collect();
    let path = Capture::merge(&refs).write("tables-listing-cap");
    let file = path_str(&path);
    let got = wsclose(&["analyze", file, "--color", "never"], Some(80), &[]);
    let one_line = got.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        one_line.contains(
            "Connections: the first 1000 of the 1003 not clean of 1003; 3 more not clean and 0 clean connections left out"
        ),
        "{}",
        got.chars().take(3000).collect::<String>()
    );
    let listed = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('#') && l.contains(" abnormal "))
            .count()
    };
    assert_eq!(listed(&got), 1000);
    let all = wsclose(
        &["analyze", file, "--color", "never", "--all"],
        Some(80),
        &[],
    );
    assert_eq!(listed(&all), 1003);
}
