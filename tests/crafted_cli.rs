//! The command line and exit status: `--fail-on` (a table of captures and
//! levels), `--json PATH`, tables without `--json`, unreadable inputs (a
//! table), usage errors, a truncated last record. See
//! crafted_support/mod.rs.

mod common;
mod crafted_support;

use std::path::Path;

use common::*;
use crafted_support::*;
use serde_json::{Value, json};

/// A capture whose only finding is a warning (close_timeout: the answer
/// came, but late).
fn warning_only_capture(name: &str) -> TempFile {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(7.0), &sclose(1000, ""));
    Capture::of(&c).write(name)
}

/// A capture whose only finding is an error (unanswered_close).
fn error_capture(name: &str) -> TempFile {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_fin(t(2.0));
    Capture::of(&c).write(name)
}

/// A capture whose only finding is info (client_closed_tcp_first).
fn info_only_capture(name: &str) -> TempFile {
    let mut c = Conn::standard();
    c.open_ws(t(0.0));
    c.client_send(t(1.0), &cclose(1000, ""));
    c.server_send(t(1.001), &sclose(1000, ""));
    c.client_fin(t(1.002));
    c.server_fin(t(1.003));
    Capture::of(&c).write(name)
}

/// A case of [`fail_on_changes_only_the_exit_status`]: a capture, its
/// severities, and the exit status for each `--fail-on` level.
type FailOn = (
    &'static str,
    TempFile,
    Value,
    &'static [(&'static str, i32)],
);

#[test]
fn fail_on_changes_only_the_exit_status() {
    let cases: Vec<FailOn> = vec![
        (
            "warning only",
            warning_only_capture("fail_on_warning"),
            json!({"error": 0, "warning": 1, "info": 0}),
            &[("info", 1), ("warning", 1), ("error", 0)],
        ),
        (
            // --fail-on warning is triggered by an error.
            "an error",
            error_capture("fail_on_with_an_error"),
            json!({"error": 1, "warning": 0, "info": 0}),
            &[("warning", 1), ("error", 1)],
        ),
        (
            "only info",
            info_only_capture("fail_on_with_only_info"),
            json!({"error": 0, "warning": 0, "info": 1}),
            &[("info", 1), ("warning", 0)],
        ),
        (
            "no finding",
            Capture::of(&clean_conn()).write("fail_on_clean"),
            json!({"error": 0, "warning": 0, "info": 0}),
            &[("info", 0)],
        ),
    ];
    for_each_case(
        &cases,
        |c| c.0,
        |(_, path, severities, levels)| {
            let reference = analyze_json(path, &[]);
            assert_eq!(&reference["totals"]["severities"], severities);
            for &(level, status) in *levels {
                let s = analyze_files_json(&[path], &["--fail-on", level], status);
                // Rule 17: the JSON is written in full first.
                assert_eq!(s, reference, "--fail-on {level}");
            }
        },
    );
}

#[test]
fn json_to_a_path_writes_the_same_summary() {
    let path = Capture::of(&clean_conn()).write("json_to_a_path");
    let to_stdout = analyze_json(&path, &[]);
    let out_path = TempFile::named("json_to_a_path.json");
    let out = run(&["analyze", path_str(&path), "--json", path_str(&out_path)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    validate_summary(&written);
    assert_eq!(written, to_stdout);
}

#[test]
fn without_json_tables_go_to_stdout() {
    let path = Capture::of(&clean_conn()).write("tables");
    let out = run(&["analyze", path_str(&path)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty(), "human tables expected on stdout");
    assert!(
        serde_json::from_slice::<Value>(&out.stdout).is_err(),
        "tables, not JSON, without --json"
    );
}

#[track_caller]
fn assert_input_error(out: &std::process::Output, file: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on exit 2 (rule 17), got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let msg = stderr.trim();
    assert_eq!(msg.lines().count(), 1, "a one-line message, got {msg:?}");
    assert!(
        msg.contains(file),
        "the message names the file {file}: {msg:?}"
    );
}

/// A case of [`unreadable_inputs_exit_2_naming_the_file`]: the files given,
/// the one the message must name.
type BadInput<'a> = (&'static str, Vec<&'a Path>, &'a Path);

#[test]
fn unreadable_inputs_exit_2_naming_the_file() {
    let empty = write_file("empty_file", "pcap", b"");
    let text = write_file("text_file", "pcap", b"this is not a capture\nat all\n");
    let good = Capture::of(&clean_conn()).write("text_file_good");
    let missing = std::env::temp_dir().join("wsclose-test-does-not-exist/missing.pcap");
    // LINKTYPE_USER0 (147).
    let user0 = Capture::of(&clean_conn())
        .with_link(Link::Other(147))
        .write("unsupported_link_type");
    let cases: Vec<BadInput> = vec![
        ("empty file", vec![&empty], &empty),
        ("text file", vec![&text], &text),
        ("text file next to a good file", vec![&good, &text], &text),
        ("nonexistent path", vec![&missing], &missing),
        ("unsupported link type", vec![&user0], &user0),
    ];
    for_each_case(
        &cases,
        |c| c.0,
        |(_, files, bad)| {
            let mut args = vec!["analyze"];
            args.extend(files.iter().map(|p| path_str(p)));
            args.extend(["--json", "-"]);
            assert_input_error(&run(&args), path_str(bad));
        },
    );
}

#[test]
fn usage_error_exits_2() {
    let out = run(&["analyze", "--json", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn truncated_last_record_is_analysed_with_a_warning() {
    let cap = Capture::of(&clean_conn());
    let mut bytes = cap.pcap_bytes();
    bytes.truncate(bytes.len() - 10); // cut into the last record's data
    let path = write_file("truncated_last_record", "pcap", &bytes);
    let out = run(&["analyze", path_str(&path), "--json", "-"]);
    let s = summary_from(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(path_str(&path)),
        "a warning naming the file on stderr: {stderr:?}"
    );
    // Everything but the final server ACK was read.
    let c = only_conn(&s);
    assert_clean_conn(c);
    assert_num(&c["last_ts"], t(1.0007));
    // Reading of rule 18: the cut record was not read, so it is not counted.
    assert_eq!(
        s["sources"][0]["packets"].as_u64(),
        Some(cap.len() as u64 - 1)
    );
    assert_num(&s["sources"][0]["last_ts"], t(1.0007));
}
