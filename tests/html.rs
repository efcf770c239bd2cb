//! The HTML report (`--html PATH`): its content for a bundled sample, a
//! 50,000-connection report's size and speed, and the page opened in a real
//! headless browser (Debian's `chromium`; skipped with a message when it is
//! missing): the script runs without console errors, draws one bar per
//! connection, and `#connection-ID` (what clicking a row sets) shows that
//! connection's details. The screenshot is kept in
//! `target/html-report/html-report.png` (the README's is
//! `docs/html-report.png`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const SAMPLE: &str = "samples/nginx-idle-cut.pcap";

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/html-report");
    std::fs::create_dir_all(&d).expect("create target/html-report");
    d
}

/// `wsclose analyze INPUT --json /dev/null --html OUT`, exit 0; the page
/// and the time taken.
fn report(input: &Path, out: &Path) -> (String, Duration) {
    let t = Instant::now();
    let o = run(&[
        "analyze",
        path_str(input),
        "--json",
        "/dev/null",
        "--html",
        path_str(out),
    ]);
    let took = t.elapsed();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (std::fs::read_to_string(out).expect("read the report"), took)
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

fn sample_report(name: &str) -> (PathBuf, String) {
    let out = out_dir().join(name);
    let (html, _) = report(Path::new(SAMPLE), &out);
    (out, html)
}

#[test]
fn sample_has_a_bar_per_connection_and_the_two_diagnoses() {
    let (_, html) = sample_report("nginx-idle-cut.html");
    for id in 1..=12 {
        assert_eq!(
            count(&html, &format!("data-connection=\"{id}\"")),
            1,
            "connection {id}"
        );
    }
    assert_eq!(count(&html, "data-connection=\""), 12);
    assert_eq!(count(&html, "data-diagnosis=\"idle_timeout\""), 2);
    assert_eq!(count(&html, "data-diagnosis=\""), 2);
    // The advice is there, and the diagnoses' clusters are highlighted.
    assert!(html.contains("send pings at least every 1.0 s"));
    assert!(html.contains("class=\"hbar hl\""));
    // Self-contained: nothing is fetched when the page opens.
    for fetch in [
        "<link rel=\"stylesheet\"",
        "<script src",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(fetch), "{fetch}");
    }
    // The JSON blob cannot end the script early.
    let blob = html
        .split("id=\"wsclose-data\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .expect("data blob");
    let data: serde_json::Value = serde_json::from_str(blob).expect("the blob is JSON");
    assert_eq!(data["conns"].as_array().map(Vec::len), Some(12));
}

#[test]
fn html_path_that_is_an_input_is_refused() {
    let tmp = out_dir().join("input-copy.pcap");
    std::fs::copy(SAMPLE, &tmp).expect("copy the sample");
    let before = std::fs::read(&tmp).expect("read");
    let o = run(&["analyze", path_str(&tmp), "--html", path_str(&tmp)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--html"), "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(
        std::fs::read(&tmp).expect("read"),
        before,
        "input untouched"
    );
}

/// 50,000 connections (and 1,000): a quarter closed cleanly, a quarter cut
/// by the server after 60 s of silence, a quarter reset by the client, a
/// quarter ended by a client FIN after a message.
fn many(n: usize) -> TempFile {
    let mut cap = Capture::new();
    for i in 0..n {
        let client = format!(
            "10.{}.{}.{}:{}",
            1 + i / 62_500,
            (i / 250) % 250,
            i % 250 + 1,
            20_000 + i % 40_000
        );
        let server = format!("10.200.0.{}:8765", 1 + i % 3);
        let mut c = Conn::new(&client, &server);
        let t = T0 + i as f64 * 0.01;
        c.open_ws(t);
        match i % 4 {
            0 => {
                c.close_cleanly(t + 1.0 + (i % 37) as f64);
            }
            1 => {
                c.server_fin(t + RESP_AT + 60.0);
            }
            2 => {
                c.client_send(t + 0.5, &cframe(OP_TEXT, b"hello"));
                c.client_rst(t + 3.0 + (i % 11) as f64);
            }
            _ => {
                c.server_send(t + 0.2, &sframe(OP_TEXT, b"hi"));
                c.client_fin(t + 10.0 + (i % 5) as f64);
            }
        }
        cap.add(&c);
    }
    cap.sort_by_time();
    cap.write(&format!("html-many-{n}"))
}

/// Headless chromium, when installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|b| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(b))
                .find(|p| p.is_file())
        })
    })
}

fn headless(bin: &Path, extra: &[&str], url: &str) -> (Output, Duration) {
    let profile = std::env::temp_dir().join(format!(
        "wsclose-html-chromium-{}-{}",
        std::process::id(),
        PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&profile).expect("profile dir");
    let t = Instant::now();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    let took = t.elapsed();
    let _ = std::fs::remove_dir_all(&profile);
    (out, took)
}

static PROFILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn url(path: &Path, fragment: &str) -> String {
    let abs = path.canonicalize().expect("absolute path");
    format!("file://{}{fragment}", abs.display())
}

/// The rendered page's status line: bars drawn and table rows.
fn rendered(dom: &str) -> (usize, usize) {
    let tag = dom
        .split("<p id=\"render-status\"")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or_else(|| panic!("no render-status in the DOM:\n{dom}"));
    let attr = |name: &str| -> usize {
        tag.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {tag}"))
    };
    (attr("data-bars"), attr("data-rows"))
}

fn no_console_errors(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    for line in err.lines() {
        // Chromium logs every console message (the page logs none) and
        // uncaught exceptions as `INFO:CONSOLE`.
        let bad = line.contains("Uncaught") || line.contains(":CONSOLE");
        assert!(!bad, "console error: {line}");
    }
}

#[test]
fn browser_renders_the_sample_and_opens_a_connection() {
    let Some(bin) = chromium() else {
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium)");
        return;
    };
    let (page, _) = sample_report("nginx-idle-cut-browser.html");
    let (o, _) = headless(&bin, &["--dump-dom"], &url(&page, ""));
    no_console_errors(&o);
    let dom = String::from_utf8_lossy(&o.stdout);
    assert_eq!(rendered(&dom), (12, 12));
    assert_eq!(count(&dom, "<tr data-id=\""), 12);
    assert!(
        dom.contains("<aside id=\"details\" hidden"),
        "no details shown"
    );

    // What clicking row 3 does: the fragment #connection-3.
    let (o, _) = headless(&bin, &["--dump-dom"], &url(&page, "#connection-3"));
    no_console_errors(&o);
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        dom.contains("<aside id=\"details\" data-shown=\"3\">"),
        "{dom}"
    );
    let details = dom.split("<aside id=\"details\"").nth(1).unwrap_or("");
    assert!(details.contains("Connection 3"));
    assert!(details.contains("127.0.0.1:54790"));
    assert!(details.contains("abnormal_closure"));
    assert!(details.contains("without a close frame from either side"));
    assert!(dom.contains("<tr data-id=\"3\" class=\"selected\">"));

    let shot = out_dir().join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    let (o, _) = headless(
        &bin,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
        &url(&page, ""),
    );
    no_console_errors(&o);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 20_000, "a real picture ({} bytes)", png.len());
}

/// Writes the report of `n` connections, checks its size, and renders it in
/// chromium when installed; prints the numbers.
fn scale(n: usize, max_bytes: u64) {
    let cap = many(n);
    let out = out_dir().join(format!("many-{n}.html"));
    let t = Instant::now();
    let o = run(&["analyze", path_str(&cap), "--json", "/dev/null"]);
    let analysis_only = t.elapsed();
    assert_eq!(o.status.code(), Some(0));
    let (html, with_html) = report(&cap, &out);
    let size = html.len() as u64;
    assert!(
        html.contains("data-diagnosis=\"idle_timeout\"><h3><span class=\"sev\">error</span> idle_timeout, server"),
        "the servers' 60 s cut"
    );
    assert!(size < max_bytes, "{n} connections: {size} bytes");
    let mut line = format!(
        "{n} connections: {size} bytes; analyze --json {:.2} s, with --html too {:.2} s (debug build)",
        analysis_only.as_secs_f64(),
        with_html.as_secs_f64()
    );
    if let Some(bin) = chromium() {
        let (o, took) = headless(&bin, &["--dump-dom"], &url(&out, "#connection-7"));
        no_console_errors(&o);
        let dom = String::from_utf8_lossy(&o.stdout);
        assert_eq!(rendered(&dom), (n, n.min(500)));
        assert!(dom.contains("<aside id=\"details\" data-shown=\"7\">"));
        assert!(took < Duration::from_secs(90), "chromium took {took:?}");
        let script_ms = dom
            .split("data-ms=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?");
        line += &format!(
            "; chromium --dump-dom {:.2} s (its script {script_ms} ms)",
            took.as_secs_f64()
        );
        let shot = out_dir().join(format!("many-{n}.png"));
        let _ = headless(
            &bin,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1400,900",
            ],
            &url(&out, ""),
        );
    } else {
        line += "; chromium not installed, not rendered";
    }
    eprintln!("{line}");
    let _ = std::fs::remove_file(&cap);
}

#[test]
fn thousand_connections() {
    scale(1_000, 1_000_000);
}

#[test]
fn fifty_thousand_connections_stay_small_and_render() {
    scale(50_000, 5_000_000);
}
