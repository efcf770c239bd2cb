//! The HTML report (`--html PATH`): one self-contained page (inline CSS,
//! SVG and script, nothing fetched when it is opened) with a timeline of
//! every connection, histograms of the idle time before the end and of the
//! age at the end, the diagnoses with their advice, and a table of
//! connections that sorts, filters and opens each connection's details.
//!
//! The connections travel as one compact JSON blob (a row of numbers per
//! connection, strings in shared tables) that the page's script reads. Up
//! to [`SVG_MAX`] connections the timeline is an SVG written here, one
//! `<g data-connection="ID">` per bar; above, the script draws it on a
//! canvas, so that 50,000 connections stay a few MB and render quickly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::Summary;
use crate::close::{CloseFrame, ConnectionReport, Outcome, Side, TcpEndKind};
use crate::diagnose::{Diagnosis, DiagnosisKind};
use crate::error::Error;

const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// Most connections drawn as SVG elements (each bar its own element);
/// above, the timeline is a canvas.
pub const SVG_MAX: usize = 2000;

/// Most bytes of finding messages carried in the page; past it, findings
/// keep their kind, severity and side, and the details point to
/// `--connection ID` for the words.
const MESSAGE_BUDGET: usize = 400_000;

/// Refuses an `--html` path that is one of the inputs (the report would
/// overwrite the capture).
pub fn check_path(html: &str, inputs: &[String]) -> Result<(), Error> {
    if html == "-" {
        return Ok(());
    }
    let out = Path::new(html);
    for input in inputs.iter().filter(|i| i.as_str() != "-") {
        if same_file(out, Path::new(input)) {
            return Err(Error::Usage(format!(
                "--html {html} is one of the inputs; give another path for the report"
            )));
        }
    }
    Ok(())
}

/// Whether two paths name the same file (directly, or once resolved).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl Summary {
    /// Writes the HTML report to `path`.
    pub fn write_html_file(&self, path: &str) -> Result<(), Error> {
        let err = |e| Error::io(path, e);
        let mut w = BufWriter::new(File::create(path).map_err(err)?);
        self.write_html(&mut w).map_err(err)?;
        w.flush().map_err(err)
    }

    /// The whole page.
    pub fn write_html(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(render(self).as_bytes())
    }
}

/// Where the capture starts and ends (epoch seconds), over connections.
fn span(s: &Summary) -> (f64, f64) {
    let start = s
        .connections
        .iter()
        .map(|c| c.first_ts)
        .fold(f64::INFINITY, f64::min);
    let end = s
        .connections
        .iter()
        .map(end_ts)
        .fold(f64::NEG_INFINITY, f64::max);
    if start.is_finite() && end.is_finite() {
        (start, end.max(start))
    } else {
        (0.0, 0.0)
    }
}

/// The end of a connection's bar: its TCP end, else its last packet.
fn end_ts(c: &ConnectionReport) -> f64 {
    c.close.tcp_end.ts.unwrap_or(c.last_ts).max(c.last_ts)
}

fn tcp_end_ts(c: &ConnectionReport) -> f64 {
    c.close.tcp_end.ts.unwrap_or(c.last_ts)
}

/// Age at the end: from the first packet to the TCP end (or last packet).
fn age(c: &ConnectionReport) -> f64 {
    (tcp_end_ts(c) - c.first_ts).max(0.0)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(ch),
        }
    }
    o
}

/// A time rounded to the microsecond, as short as it prints.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-1".into();
    }
    let r = (v * 1e6).round() / 1e6;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// A duration as people read it: `980 µs`, `300.8 ms`, `2.00 s`, `2 h 03 min`.
fn fmt_dur(s: f64) -> String {
    let a = s.abs();
    if a < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if a < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else if a < 60.0 {
        format!("{s:.2} s")
    } else if a < 3600.0 {
        format!("{:.0} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!(
            "{:.0} h {:02.0} min",
            (s / 3600.0).floor(),
            (s % 3600.0) / 60.0
        )
    }
}

/// Strings shared by many rows, sent once.
#[derive(Default)]
struct Table {
    items: Vec<String>,
    index: HashMap<String, usize>,
}

impl Table {
    fn id(&mut self, s: &str) -> usize {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        self.items.push(s.to_string());
        self.index.insert(s.to_string(), self.items.len() - 1);
        self.items.len() - 1
    }

    fn json(&self) -> String {
        serde_json::to_string(&self.items).unwrap_or_else(|_| "[]".into())
    }
}

fn side_n(s: Option<Side>) -> u8 {
    match s {
        None => 0,
        Some(Side::Client) => 1,
        Some(Side::Server) => 2,
    }
}

fn outcome_n(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
}

/// The data blob: one row per connection, see report.js for the layout.
fn data_json(s: &Summary, start: f64, end: f64, svg: bool) -> String {
    let mut hosts = Table::default();
    let mut servers = Table::default();
    let mut kinds = Table::default();
    let mut strings = Table::default();
    let mut budget = MESSAGE_BUDGET;
    let mut omitted = 0u64;
    let mut rows = String::with_capacity(s.connections.len() * 80);
    let mut prev_id = 0u64;
    for (i, c) in s.connections.iter().enumerate() {
        if i > 0 {
            rows.push(',');
        }
        let (host, port) = match c.client.rsplit_once(':') {
            Some((h, p)) if p.parse::<u32>().is_ok() => (h, p),
            _ => (c.client.as_str(), "0"),
        };
        let t0 = c.first_ts;
        let end_kind = match c.close.tcp_end.kind {
            TcpEndKind::None => 0,
            TcpEndKind::Fin => 1,
            TcpEndKind::Rst => 2,
        };
        let mut findings = String::from("[");
        for (j, f) in c.findings.iter().enumerate() {
            if j > 0 {
                findings.push(',');
            }
            let msg = if budget >= f.message.len() {
                budget -= f.message.len();
                strings.id(&f.message) as i64
            } else {
                omitted += 1;
                -1
            };
            let _ = write!(
                findings,
                "[{},{},{},{}",
                kinds.id(f.kind.name()),
                f.severity as u8,
                side_n(f.side),
                msg,
            );
            // The time, unless it is the TCP end's (the usual case).
            if f.ts != c.close.tcp_end.ts || f.ts.is_none() {
                findings.push(',');
                findings.push_str(&f.ts.map_or("-1".into(), |t| num(t - t0)));
            }
            findings.push(']');
        }
        findings.push(']');
        let mut tail: Vec<String> = vec![
            c.handshake
                .as_ref()
                .and_then(|h| h.path.as_deref())
                .map_or("-1".into(), |p| strings.id(p).to_string()),
            side_n(c.close.initiator).to_string(),
            frame_json(c.close.client_frame.as_ref(), t0, &mut strings),
            frame_json(c.close.server_frame.as_ref(), t0, &mut strings),
        ];
        let defaults = ["-1", "0", "0", "0"];
        while let Some(last) = tail.last() {
            if last == defaults[tail.len() - 1] {
                tail.pop();
            } else {
                break;
            }
        }
        let _ = write!(
            rows,
            "[{},{},{},{},{},{},{},{},{},{}",
            c.id as i64 - prev_id as i64 - 1,
            hosts.id(host),
            port,
            servers.id(&c.server),
            num(t0 - start),
            num(c.last_ts - t0),
            outcome_n(c.close.outcome) * 9 + end_kind * 3 + usize::from(side_n(c.close.tcp_end.by)),
            c.close.tcp_end.ts.map_or("-1".into(), |t| num(t - t0)),
            c.close.idle_s.map_or("-1".into(), num),
            findings
        );
        for t in tail {
            rows.push(',');
            rows.push_str(&t);
        }
        rows.push(']');
        prev_id = c.id;
    }
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
    let json = format!(
        "{{\"v\":1,\"start\":{},\"span\":{},\"mode\":\"{}\",\"outcomes\":{},\"kinds\":{},\"hosts\":{},\"servers\":{},\"strings\":{},\"omitted_messages\":{},\"files\":{},\"conns\":[{}]}}",
        num(start),
        num(end - start),
        if svg { "svg" } else { "canvas" },
        serde_json::to_string(&outcomes).unwrap_or_default(),
        kinds.json(),
        hosts.json(),
        servers.json(),
        strings.json(),
        omitted,
        serde_json::to_string(
            &s.sources
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
        )
        .unwrap_or_default(),
        rows
    );
    // Inside <script>, no `</script>` or `<!--` may appear: '<' only occurs
    // in JSON strings, where \u003c means the same.
    json.replace('<', "\\u003c")
}

fn frame_json(f: Option<&CloseFrame>, t0: f64, strings: &mut Table) -> String {
    match f {
        None => "0".into(),
        Some(f) => format!(
            "[{},{},{}]",
            num(f.ts - t0),
            f.code.map_or(-1, i64::from),
            f.reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map_or(-1, |r| strings.id(r) as i64)
        ),
    }
}

fn render(s: &Summary) -> String {
    let (start, end) = span(s);
    let n = s.connections.len();
    let svg = n <= SVG_MAX;
    let mut h = String::with_capacity(4096 + n * if svg { 400 } else { 90 });
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str("<link rel=\"icon\" href=\"data:,\">");
    let names: Vec<&str> = s.sources.iter().map(|x| x.name.as_str()).collect();
    let _ = writeln!(
        h,
        "<title>wsclose report: {}</title><style>{CSS}</style></head><body>",
        esc(&names.join(", "))
    );
    header(&mut h, s, start, end);
    h.push_str("<main>\n");
    diagnoses(&mut h, s);
    timeline(&mut h, s, start, end, svg);
    histograms(&mut h, s);
    h.push_str(
        "<section id=\"connections\"><h2>Connections</h2>\
         <div class=\"controls\"><input id=\"filter\" type=\"search\" placeholder=\"filter: id, address, outcome, finding, path…\" aria-label=\"filter\">\
         <select id=\"outcome-filter\" aria-label=\"outcome\"><option value=\"\">all outcomes</option>",
    );
    for o in Outcome::ALL {
        let k = s.totals.outcomes.get(*o);
        if k > 0 {
            let _ = write!(h, "<option value=\"{0}\">{0} ({k})</option>", o.name());
        }
    }
    h.push_str(
        "</select><label><input id=\"findings-only\" type=\"checkbox\"> with findings</label>\
         <span id=\"table-count\"></span></div>\
         <div class=\"table-wrap\"><table id=\"conn-table\"><thead><tr>\
         <th data-sort=\"id\">#</th><th data-sort=\"client\">client</th><th data-sort=\"server\">server</th>\
         <th data-sort=\"outcome\">outcome</th><th data-sort=\"start\">start</th><th data-sort=\"age\">age at end</th>\
         <th data-sort=\"end\">TCP end</th><th data-sort=\"idle\">idle before end</th><th data-sort=\"codes\">close codes</th>\
         <th data-sort=\"findings\">findings</th></tr></thead><tbody></tbody></table></div>\
         <p id=\"table-more\"></p></section>\n",
    );
    h.push_str("</main>\n<aside id=\"details\" hidden></aside>\n");
    h.push_str("<p id=\"render-status\" data-bars=\"0\" data-rows=\"0\">not rendered (the page's script did not run)</p>\n");
    h.push_str("<script type=\"application/json\" id=\"wsclose-data\">");
    h.push_str(&data_json(s, start, end, svg));
    h.push_str("</script>\n<script>");
    h.push_str(JS);
    h.push_str("</script>\n</body></html>\n");
    h
}

fn header(h: &mut String, s: &Summary, start: f64, end: f64) {
    let names: Vec<String> = s.sources.iter().map(|x| esc(&x.name)).collect();
    let _ = write!(
        h,
        "<header><h1>wsclose report</h1><p class=\"sub\">{} · {} connection{} over {} · <span id=\"start\" data-epoch=\"{}\"></span> · wsclose {}</p><p class=\"chips\">",
        names.join(", "),
        s.totals.connections,
        if s.totals.connections == 1 { "" } else { "s" },
        fmt_dur(end - start),
        num(start),
        esc(s.tool.version),
    );
    for o in Outcome::ALL {
        let k = s.totals.outcomes.get(*o);
        if k > 0 {
            let _ = write!(
                h,
                "<span class=\"chip o-{0}\"><i></i>{0} {k}</span>",
                o.name()
            );
        }
    }
    let sv = &s.totals.severities;
    let _ = writeln!(
        h,
        "</p><p class=\"sub\">findings: {} error, {} warning, {} info</p></header>",
        sv.error, sv.warning, sv.info
    );
}

fn diagnoses(h: &mut String, s: &Summary) {
    let _ = write!(
        h,
        "<section id=\"diagnoses\"><h2>Diagnoses ({})</h2>",
        s.diagnoses.len()
    );
    if s.diagnoses.is_empty() {
        h.push_str("<p>No pattern across connections.</p>");
    }
    h.push_str("<div class=\"diag-list\">");
    // Many diagnoses (a mass disconnect every second, say): fewer links
    // each, and advice already given is not repeated.
    let links = if s.diagnoses.len() > 50 { 5 } else { LINKS };
    let mut advised: Vec<(DiagnosisKind, &str)> = Vec::new();
    for d in &s.diagnoses {
        let sev: &str = d.severity.into();
        let mut title = d.kind.name().to_string();
        if let Some(side) = d.side {
            let _ = write!(title, ", {}", side.name());
        }
        if let Some(p) = &d.peer {
            let _ = write!(title, " {p}");
        }
        let _ = write!(
            h,
            "<div class=\"diagnosis sev-{sev}\" data-diagnosis=\"{}\"><h3><span class=\"sev\">{sev}</span> {}</h3><p>{}</p>",
            d.kind.name(),
            esc(&title),
            esc(&d.message)
        );
        if let Some(a) = &d.advice {
            if advised.contains(&(d.kind, a.as_str())) {
                h.push_str("<p class=\"advice\"><b>advice:</b> as above</p>");
            } else {
                advised.push((d.kind, a.as_str()));
                let _ = write!(h, "<p class=\"advice\"><b>advice:</b> {}</p>", esc(a));
            }
        }
        if !d.matches.is_empty() {
            let _ = write!(h, "<p class=\"matches\">{}</p>", esc(&d.matches.join("; ")));
        }
        let _ = write!(
            h,
            "<p class=\"conns\">{} connection{}: ",
            d.connections.len(),
            if d.connections.len() == 1 { "" } else { "s" }
        );
        for (i, id) in d.connections.iter().take(links).enumerate() {
            if i > 0 {
                h.push_str(", ");
            }
            let _ = write!(h, "<a href=\"#connection-{id}\">{id}</a>");
        }
        if d.connections.len() > links {
            let _ = write!(h, " … and {} more", d.connections.len() - links);
        }
        h.push_str("</p></div>\n");
    }
    h.push_str("</div></section>\n");
}

/// Connections linked by name in a diagnosis block (the table filters the
/// rest).
const LINKS: usize = 12;

const TL_W: f64 = 1200.0;
const TL_GUTTER: f64 = 44.0;

fn legend(h: &mut String) {
    h.push_str(
        "<p class=\"legend\"><span><svg width=\"28\" height=\"12\"><rect x=\"0\" y=\"2\" width=\"28\" height=\"8\" class=\"o-abnormal\"/><rect x=\"14\" y=\"2\" width=\"14\" height=\"8\" class=\"idle\"/></svg> idle before the end (shaded)</span>\
         <span><svg width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"4\" class=\"cf-client\"/></svg> close frame from the client</span>\
         <span><svg width=\"12\" height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"4\" class=\"cf-server\"/></svg> close frame from the server</span>\
         <span><svg width=\"8\" height=\"12\"><rect x=\"3\" y=\"0\" width=\"2\" height=\"12\" class=\"m-fin\"/></svg> FIN</span>\
         <span><svg width=\"8\" height=\"12\"><rect x=\"2\" y=\"0\" width=\"4\" height=\"12\" class=\"m-rst\"/></svg> RST</span></p>",
    );
}

fn timeline(h: &mut String, s: &Summary, start: f64, end: f64, svg: bool) {
    let n = s.connections.len();
    let _ = write!(
        h,
        "<section id=\"timeline\"><h2>Timeline</h2><p class=\"sub\">Each connection is a bar from its first packet to its TCP end, coloured by outcome{}; click one for its details.</p>",
        if svg {
            ""
        } else {
            " (drawn on a canvas: many connections share a pixel row)"
        }
    );
    legend(h);
    let span = (end - start).max(1e-6);
    let x = |t: f64| TL_GUTTER + (t - start) / span * (TL_W - TL_GUTTER - 8.0);
    if !svg {
        let _ = writeln!(
            h,
            "<div class=\"tl-wrap\"><canvas id=\"tl-canvas\" width=\"{TL_W}\" height=\"10\" data-connections=\"{n}\"></canvas></div></section>"
        );
        return;
    }
    let row = if n <= 60 {
        16.0
    } else if n <= 300 {
        8.0
    } else {
        4.0
    };
    let axis = 22.0;
    let height = axis + row * n as f64 + 4.0;
    let _ = write!(
        h,
        "<div class=\"tl-wrap\"><svg id=\"tl-svg\" viewBox=\"0 0 {TL_W} {height}\" width=\"{TL_W}\" height=\"{height}\" role=\"img\" aria-label=\"timeline of {n} connections\">"
    );
    // Axis: 6 ticks.
    h.push_str("<g class=\"axis\">");
    for k in 0..=6 {
        let t = start + span * k as f64 / 6.0;
        let _ = write!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2:.1}\"/><text x=\"{0:.1}\" y=\"12\"{4}>{3}</text>",
            x(t),
            axis - 4.0,
            height,
            if k == 0 {
                "0 s".to_string()
            } else {
                format!("+{}", fmt_dur(t - start))
            },
            match k {
                0 => " style=\"text-anchor:start\"",
                6 => " style=\"text-anchor:end\"",
                _ => "",
            }
        );
    }
    h.push_str("</g>");
    let bar_h = (row * 0.7).max(2.0);
    for (i, c) in s.connections.iter().enumerate() {
        let y = axis + row * i as f64 + (row - bar_h) / 2.0;
        let x0 = x(c.first_ts);
        let x1 = x(end_ts(c)).max(x0 + 1.0);
        let _ = write!(
            h,
            "<g data-connection=\"{}\" class=\"bar o-{}\"><title>#{} {} → {}: {}, {} ({})</title>",
            c.id,
            c.close.outcome.name(),
            c.id,
            esc(&c.client),
            esc(&c.server),
            c.close.outcome.name(),
            fmt_dur(age(c)),
            c.close.tcp_end.kind.upper()
        );
        let _ = write!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\"/>",
            x1 - x0
        );
        if let Some(idle) = c.close.idle_s.filter(|v| *v > 0.0) {
            let te = tcp_end_ts(c);
            let xi = x(te - idle).max(x0);
            let xe = x(te);
            if xe > xi {
                let _ = write!(
                    h,
                    "<rect class=\"idle\" x=\"{xi:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\"/>",
                    xe - xi
                );
            }
        }
        if let Some(ts) = c.close.tcp_end.ts {
            let (cls, w) = match c.close.tcp_end.kind {
                TcpEndKind::Rst => ("m-rst", 3.0),
                _ => ("m-fin", 2.0),
            };
            if c.close.tcp_end.kind != TcpEndKind::None {
                let _ = write!(
                    h,
                    "<rect class=\"{cls}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{w}\" height=\"{:.1}\"/>",
                    x(ts) - w / 2.0,
                    y - 1.0,
                    bar_h + 2.0
                );
            }
        }
        for (f, cls) in [
            (&c.close.client_frame, "cf-client"),
            (&c.close.server_frame, "cf-server"),
        ] {
            if let Some(f) = f {
                let _ = write!(
                    h,
                    "<circle class=\"{cls}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\"/>",
                    x(f.ts),
                    y + bar_h / 2.0,
                    (bar_h / 2.0).max(1.5)
                );
            }
        }
        if row >= 8.0 {
            let _ = write!(
                h,
                "<text class=\"rowid\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                TL_GUTTER - 4.0,
                y + bar_h - 1.0,
                c.id
            );
        }
        h.push_str("</g>");
    }
    h.push_str("</svg></div></section>\n");
}

/// Log-scale bins, four per decade: bin k covers [10^(k/4), 10^((k+1)/4)).
fn bin_of(v: f64) -> i32 {
    if v <= 1e-6 {
        -24
    } else {
        ((v.log10() * 4.0).floor() as i32).max(-24)
    }
}

fn edge(k: i32) -> f64 {
    10f64.powf(k as f64 / 4.0)
}

/// One histogram as SVG, with the ranges of `marks` (label, min, max,
/// value) highlighted.
fn histogram(
    h: &mut String,
    id: &str,
    title: &str,
    values: &[f64],
    marks: &[(String, f64, f64, Option<f64>)],
) {
    let _ = write!(
        h,
        "<figure class=\"hist\" id=\"{id}\"><figcaption>{title}</figcaption>"
    );
    if values.is_empty() {
        h.push_str("<p class=\"sub\">no value</p></figure>");
        return;
    }
    let mut lo = values.iter().map(|v| bin_of(*v)).min().unwrap_or(0);
    let mut hi = values.iter().map(|v| bin_of(*v)).max().unwrap_or(0);
    for (_, a, b, _) in marks {
        lo = lo.min(bin_of(*a));
        hi = hi.max(bin_of(*b));
    }
    while hi - lo < 11 {
        lo -= 1;
        hi += 1;
    }
    let nb = (hi - lo + 1) as usize;
    let mut counts = vec![0u64; nb];
    for v in values {
        counts[(bin_of(*v) - lo) as usize] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, ht, left, bottom) = (560.0, 210.0, 40.0, 34.0);
    let bw = (w - left - 8.0) / nb as f64;
    let top = 26.0;
    let plot = ht - bottom - top;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 {w} {ht}\" width=\"{w}\" height=\"{ht}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    // Highlighted ranges first (behind the bars); diagnoses over the same
    // bins share one label.
    let mut ranges: Vec<(i32, i32, String)> = Vec::new();
    for (label, a, b, _) in marks {
        let (ka, kb) = (bin_of(*a) - lo, bin_of(*b) - lo);
        match ranges.iter_mut().find(|r| r.0 == ka && r.1 == kb) {
            Some(r) => {
                r.2.push_str(" + ");
                r.2.push_str(label);
            }
            None => ranges.push((ka, kb, label.clone())),
        }
    }
    // Too many clusters to name each: one line names their kinds.
    let name_each = ranges.len() <= 3;
    if !name_each {
        let mut kinds: Vec<&str> = marks
            .iter()
            .map(|m| m.0.split(' ').next().unwrap_or(""))
            .collect();
        kinds.dedup();
        let _ = write!(
            h,
            "<text class=\"cluster-label\" x=\"{:.1}\" y=\"11\">{} clusters: {}</text>",
            w / 2.0,
            ranges.len(),
            esc(&kinds.join(", "))
        );
    }
    for (ka, kb, label) in &ranges {
        let (ka, kb) = (*ka, *kb);
        let xa = left + ka as f64 * bw;
        let xb = left + (kb + 1) as f64 * bw;
        let _ = write!(
            h,
            "<rect class=\"cluster\" x=\"{xa:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            top - 4.0,
            xb - xa,
            plot + 4.0,
            esc(label),
        );
        if name_each {
            let _ = write!(
                h,
                "<text class=\"cluster-label\" x=\"{:.1}\" y=\"11\">{}</text>",
                (xa + xb) / 2.0,
                esc(label)
            );
        }
    }
    for (i, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        let k = lo + i as i32;
        let bh = (*c as f64 / max * plot).max(1.0);
        let hl = marks.iter().any(|(_, a, b, _)| {
            let (ka, kb) = (bin_of(*a), bin_of(*b));
            (ka..=kb).contains(&k)
        });
        let _ = write!(
            h,
            "<rect class=\"hbar{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{} – {}: {c}</title></rect>",
            if hl { " hl" } else { "" },
            left + i as f64 * bw + 1.0,
            top + plot - bh,
            (bw - 2.0).max(1.0),
            fmt_dur(edge(k)),
            fmt_dur(edge(k + 1)),
        );
        if bw >= 14.0 || *c as f64 == max {
            let _ = write!(
                h,
                "<text class=\"count\" x=\"{:.1}\" y=\"{:.1}\">{c}</text>",
                left + (i as f64 + 0.5) * bw,
                top + plot - bh - 2.0
            );
        }
    }
    // Axis labels: each decade.
    let base = top + plot;
    let _ = write!(
        h,
        "<line class=\"base\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{base:.1}\" y2=\"{base:.1}\"/>",
        w - 8.0
    );
    for i in 0..=nb {
        let k = lo + i as i32;
        if k % 4 == 0 {
            let xx = left + i as f64 * bw;
            let _ = write!(
                h,
                "<line class=\"tick\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{base:.1}\" y2=\"{:.1}\"/><text class=\"tl\" x=\"{xx:.1}\" y=\"{:.1}\">{}</text>",
                base + 4.0,
                base + 16.0,
                fmt_dur(edge(k))
                    .replace(".00 s", " s")
                    .replace(".0 ms", " ms")
            );
        }
    }
    let _ = write!(
        h,
        "<text class=\"yl\" x=\"4\" y=\"26\">{max}</text></svg></figure>"
    );
}

fn histograms(h: &mut String, s: &Summary) {
    let idle: Vec<f64> = s
        .connections
        .iter()
        .filter_map(|c| c.close.idle_s)
        .collect();
    let ages: Vec<f64> = s
        .connections
        .iter()
        .filter(|c| c.close.tcp_end.kind != TcpEndKind::None)
        .map(age)
        .collect();
    let mark = |d: &Diagnosis| {
        let label = match (d.side, &d.peer) {
            (Some(side), _) => format!("{} ({})", d.kind.name(), side.name()),
            _ => d.kind.name().to_string(),
        };
        (
            label,
            d.min_s.or(d.value_s).unwrap_or(0.0),
            d.max_s.or(d.value_s).unwrap_or(0.0),
            d.value_s,
        )
    };
    let idle_marks: Vec<_> = s
        .diagnoses
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                DiagnosisKind::IdleTimeout | DiagnosisKind::HeartbeatLost
            ) && d.value_s.is_some()
        })
        .map(mark)
        .collect();
    let age_marks: Vec<_> = s
        .diagnoses
        .iter()
        .filter(|d| d.kind == DiagnosisKind::MaxLifetime && d.value_s.is_some())
        .map(mark)
        .collect();
    h.push_str("<section id=\"histograms\"><h2>Distributions</h2><div class=\"hists\">");
    histogram(
        h,
        "hist-idle",
        "Idle time before the end (log scale)",
        &idle,
        &idle_marks,
    );
    histogram(
        h,
        "hist-age",
        "Age at the TCP end (log scale)",
        &ages,
        &age_marks,
    );
    h.push_str("</div><p class=\"sub\">Highlighted: the diagnoses' clusters.</p></section>\n");
}
