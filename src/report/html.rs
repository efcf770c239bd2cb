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
use super::connections::Connections;
use crate::close::{CloseFrame, ConnectionReport, Outcome, Side, TcpEndKind};
use crate::diagnose::DiagnosisKind;
use crate::error::Error;

mod draw;

use draw::{histograms, timeline};

const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// Most connections drawn as SVG elements (each bar its own element);
/// above, the timeline is a canvas.
pub const SVG_MAX: usize = 2000;

/// Most bytes of finding messages carried in the page; past it, findings
/// keep their kind, severity and side, and the details point to
/// `--connection ID` for the words.
const MESSAGE_BUDGET: usize = 400_000;

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
        render(self, out)
    }
}

/// The connections, read back one at a time from the summary's spool:
/// the page is written in a few passes over them, none holding them all.
pub(super) fn each(conns: &Connections) -> impl Iterator<Item = io::Result<ConnectionReport>> + '_ {
    conns.iter().map(|r| r.map_err(io::Error::other))
}

/// Where the capture starts and ends (epoch seconds), over connections.
fn span(conns: &Connections) -> io::Result<(f64, f64)> {
    let (mut start, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in each(conns) {
        let c = c?;
        start = start.min(c.first_ts);
        end = end.max(end_ts(&c));
    }
    Ok(if start.is_finite() && end.is_finite() {
        (start, end.max(start))
    } else {
        (0.0, 0.0)
    })
}

/// The end of a connection's bar: its TCP end, else its last packet.
pub(super) fn end_ts(c: &ConnectionReport) -> f64 {
    c.close.tcp_end.ts.unwrap_or(c.last_ts).max(c.last_ts)
}

pub(super) fn tcp_end_ts(c: &ConnectionReport) -> f64 {
    c.close.tcp_end.ts.unwrap_or(c.last_ts)
}

/// Age at the end: from the first packet to the TCP end (or last packet).
pub(super) fn age(c: &ConnectionReport) -> f64 {
    (tcp_end_ts(c) - c.first_ts).max(0.0)
}

pub(super) fn esc(s: &str) -> String {
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
pub(super) fn num(v: f64) -> String {
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
pub(super) fn fmt_dur(s: f64) -> String {
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

/// Strings shared by many rows, sent once. Each is kept once, with its
/// id (a path per connection makes this a million strings for a million
/// connections).
#[derive(Default)]
struct Table {
    index: HashMap<Box<str>, usize>,
}

impl Table {
    fn id(&mut self, s: &str) -> usize {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.index.len();
        self.index.insert(s.into(), i);
        i
    }

    /// The strings as a JSON array, in id order.
    fn json(&self) -> String {
        let mut items = vec![""; self.index.len()];
        for (s, &i) in &self.index {
            items[i] = s;
        }
        serde_json::to_string(&items).unwrap_or_else(|_| "[]".into())
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

/// The data blob, written to the page: one row per connection, see
/// report.js for the layout.
fn data_json(
    out: &mut impl Write,
    s: &Summary,
    conns: &Connections,
    start: f64,
    end: f64,
    svg: bool,
) -> io::Result<()> {
    let mut hosts = Table::default();
    let mut servers = Table::default();
    let mut kinds = Table::default();
    let mut strings = Table::default();
    let mut budget = MESSAGE_BUDGET;
    let mut omitted = 0u64;
    let mut rows = String::with_capacity(conns.len() * 80);
    let mut prev_id = 0u64;
    for (i, c) in each(conns).enumerate() {
        let c = c?;
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
    let head = format!(
        "{{\"v\":1,\"start\":{},\"span\":{},\"mode\":\"{}\",\"outcomes\":{},\"kinds\":{},\"hosts\":{},\"servers\":{},\"strings\":{},\"omitted_messages\":{},\"files\":{},\"conns\":[",
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
    );
    // Inside <script>, no `</script>` or `<!--` may appear: '<' only occurs
    // in JSON strings, where \u003c means the same. The rows are numbers
    // (strings go to the tables by id), so only the head is escaped.
    debug_assert!(!rows.contains('<'), "a string in the rows");
    out.write_all(head.replace('<', "\\u003c").as_bytes())?;
    out.write_all(rows.as_bytes())?;
    out.write_all(b"]}")
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

/// The page, written as it is made. Its connections are read from the
/// spool in a few passes (the data blob keeps a row of about 90 bytes
/// each, not the reports).
fn render(s: &Summary, out: &mut impl Write) -> io::Result<()> {
    let conns = &s.connections;
    let (start, end) = span(conns)?;
    let n = conns.len();
    let svg = n <= SVG_MAX;
    // The SVG timeline holds a bar per connection (at most SVG_MAX); the
    // data blob goes straight to `out`.
    let mut h = String::with_capacity(4096 + if svg { n * 400 } else { 0 });
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
    timeline(&mut h, conns, start, end, svg)?;
    histograms(&mut h, s, conns)?;
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
    out.write_all(h.as_bytes())?;
    h = String::new();
    data_json(out, s, conns, start, end, svg)?;
    h.push_str("</script>\n<script>");
    h.push_str(JS);
    h.push_str("</script>\n</body></html>\n");
    out.write_all(h.as_bytes())
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
