//! The human tables after the diagnoses: the capture's start and the
//! totals, then the connections, then every finding with its message.
//!
//! Everything fits the width asked for, and nothing is broken inside a
//! word: each table column is at least as wide as its longest word
//! (comfy-table's dynamic arrangement wraps between words only then).
//! When the table of connections cannot fit so, it is written compact:
//! one line per connection with the essentials, the rest and the findings
//! on the next ones, wrapped between words.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, Width};

use super::Summary;
use super::findings;
use super::human::{
    MANY, Paint, TableOptions, cut, fmt_date_time, fmt_duration, fmt_offset, fmt_secs_human,
    glue_units, nb, quoted, spaces, wrap,
};
use crate::Ts;
use crate::close::{CloseFrame, ConnectionReport, Outcome, Severity, TcpEndKind};

/// Characters of a close reason shown before it is cut.
const REASON_MAX: usize = 32;
/// Characters of a path shown before it is cut.
const PATH_MAX: usize = 40;
/// Below this width the connections are always written compact.
pub(super) const WIDE_MIN: usize = 100;

/// Why a capture shows no WebSocket connection: what it held instead, and
/// what to do about it.
pub fn nothing_found(s: &Summary) -> String {
    let a = &s.analysis;
    let mut held = vec![format!(
        "{} TCP flow(s) in {} TCP segment(s)",
        a.tcp_flows, a.tcp_segments
    )];
    if a.tls.seen > 0 {
        held.push(format!(
            "{} TLS connection(s) not listed (they offer other protocols than http/1.1, or could not be decrypted: give keys with --keylog, or their port with --tls-port)",
            a.tls.seen
        ));
    }
    if a.plain_http_flows > 0 {
        held.push(format!(
            "{} plain HTTP flow(s) without an upgrade",
            a.plain_http_flows
        ));
    }
    if a.cut_segments > 0 {
        held.push(format!(
            "{} TCP segment(s) cut short by the capture's snap length, which can hide upgrades and frames (capture with tcpdump -s 0)",
            a.cut_segments
        ));
    }
    if a.tcp_segments == 0 {
        held.push("no TCP at all (check the capture filter and the interface)".to_string());
    }
    format!(
        "No WebSocket connection found. The capture held {}.",
        held.join("; ")
    )
}

pub fn write(summary: &Summary, out: &mut impl Write, opts: &TableOptions) -> io::Result<()> {
    let start = capture_start(summary);
    for l in wrap("", "  ", &header(summary, start, opts), opts.width) {
        writeln!(out, "{l}")?;
    }
    writeln!(out, "{}", totals(summary, opts))?;
    if summary.connections.is_empty() {
        for l in wrap("", "  ", &nothing_found(summary), opts.width) {
            writeln!(out, "{l}")?;
        }
        return Ok(());
    }
    let (listed, head) = listing(summary, opts)?;
    writeln!(out)?;
    for l in wrap("", "  ", &head, opts.width) {
        writeln!(out, "{l}")?;
    }
    let rows: Vec<Row> = listed.iter().map(|c| Row::of(c, start)).collect();
    let wide = (opts.width >= WIDE_MIN)
        .then(|| connections_table(&rows, opts))
        .flatten();
    match wide {
        Some(t) => writeln!(out, "{}", spaces(&t.to_string()))?,
        None => compact(&rows, out, opts)?,
    }
    findings::write(&listed.iter().collect::<Vec<_>>(), out, opts)?;
    Ok(())
}

/// Past this many connections not clean, the first ones only are listed
/// (unless `--all`): 270,000 rows say less than the totals and diagnoses
/// above them, and take seconds and a gigabyte to lay out.
const LISTED_MAX: usize = 1000;

/// The connections to list (read back from the spool), and the heading
/// that says which.
fn listing(summary: &Summary, opts: &TableOptions) -> io::Result<(Vec<ConnectionReport>, String)> {
    let conns = &summary.connections;
    let all = conns.len();
    if opts.all || all <= MANY {
        let head = format!("Connections ({all}; start times from the capture's start):");
        let listed = conns.to_vec().map_err(io::Error::other)?;
        return Ok((listed, head));
    }
    let unclean = conns.unclean();
    let listed = conns
        .iter_unclean()
        .take(LISTED_MAX)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let clean = all - unclean;
    let s = if clean == 1 { "" } else { "s" };
    let head = if unclean <= LISTED_MAX {
        format!(
            "Connections: the {unclean} not clean of {all}; {clean} clean connection{s} left out (--all lists them); start times from the capture's start:"
        )
    } else {
        format!(
            "Connections: the first {LISTED_MAX} of the {unclean} not clean of {all}; {} more not clean and {clean} clean connection{s} left out (--all lists them, the JSON holds every one); start times from the capture's start:",
            unclean - LISTED_MAX
        )
    };
    Ok((listed, head))
}

/// The first packet of the capture, across its inputs.
fn capture_start(summary: &Summary) -> Option<Ts> {
    summary
        .sources
        .iter()
        .filter_map(|s| s.first_ts)
        .min_by(f64::total_cmp)
        .map(Ts::from_secs_f64)
}

/// "Capture from 2026-12-01 15:07:38.832 UTC, lasting 4.262 s".
fn header(summary: &Summary, start: Option<Ts>, opts: &TableOptions) -> String {
    let Some(start) = start else {
        return "Capture: no packets.".to_string();
    };
    let end = summary
        .sources
        .iter()
        .filter_map(|s| s.last_ts)
        .max_by(f64::total_cmp)
        .map_or(start, Ts::from_secs_f64);
    format!(
        "Capture from {}, lasting {}",
        fmt_date_time(start, opts.utc),
        fmt_duration(end.saturating_sub(start))
    )
}

/// A table laid out to fit `opts.width`: each column at least as wide as
/// its longest word (`None` when they cannot all fit).
pub(super) fn fitted(
    header: &[&str],
    rows: Vec<Vec<Cell>>,
    texts: &[Vec<String>],
    opts: &TableOptions,
) -> Option<Table> {
    let mut mins: Vec<usize> = header.iter().map(|h| longest_word(h)).collect();
    for row in texts {
        for (m, t) in mins.iter_mut().zip(row) {
            *m = (*m).max(longest_word(t));
        }
    }
    // Each column: its content plus a space each side (comfy-table counts
    // them in a column's width) and a border.
    if mins.iter().sum::<usize>() + 3 * mins.len() + 1 > opts.width {
        return None;
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .force_no_tty()
        .set_width(u16::try_from(opts.width).unwrap_or(u16::MAX));
    if opts.color {
        t.enforce_styling();
    }
    t.set_header(header.to_vec());
    t.set_constraints(mins.iter().map(|m| {
        ColumnConstraint::LowerBoundary(Width::Fixed(u16::try_from(*m + 2).unwrap_or(u16::MAX)))
    }));
    for r in rows {
        t.add_row(r);
    }
    Some(t)
}

fn longest_word(s: &str) -> usize {
    s.split([' ', '\n'])
        .map(|w| w.chars().count())
        .max()
        .unwrap_or(0)
}

fn outcome_color(o: Outcome) -> Color {
    match o {
        Outcome::Clean => Color::Green,
        Outcome::Unanswered | Outcome::Timeout | Outcome::Abnormal => Color::Red,
        Outcome::Pending | Outcome::Open => Color::Yellow,
        Outcome::Rejected => Color::Magenta,
        Outcome::Encrypted => Color::Blue,
    }
}

pub(super) fn severity_color(s: Severity) -> Color {
    match s {
        Severity::Error => Color::Red,
        Severity::Warning => Color::Yellow,
        Severity::Info => Color::Cyan,
    }
}

/// Outcomes, severities, close codes, each input, and the caps hit.
fn totals(summary: &Summary, opts: &TableOptions) -> String {
    let mut rows: Vec<(String, String, Option<Color>)> = vec![(
        "connections".into(),
        summary.totals.connections.to_string(),
        None,
    )];
    for o in Outcome::ALL {
        let n = summary.totals.outcomes.get(*o);
        if n > 0 {
            rows.push((o.name().into(), n.to_string(), Some(outcome_color(*o))));
        }
    }
    let s = &summary.totals.severities;
    rows.push((
        "findings".into(),
        format!("{} error, {} warning, {} info", s.error, s.warning, s.info),
        None,
    ));
    if !summary.totals.close_codes.is_empty() {
        let codes: Vec<String> = summary
            .totals
            .close_codes
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        rows.push(("close codes".into(), codes.join(", "), None));
    }
    for src in &summary.sources {
        let mut line = format!(
            "{} packets, {} bytes, {}",
            src.packets, src.bytes, src.link_type
        );
        if src.not_tcp + src.undecodable > 0 {
            line.push_str(&format!(
                "; skipped {} non-TCP, {} undecodable",
                src.not_tcp, src.undecodable
            ));
        }
        if let Some(k) = src.kernel {
            line.push_str(&format!(
                "; kernel: {} received, {} dropped, {} dropped by the interface",
                k.received, k.dropped, k.if_dropped
            ));
        } else if let Some(d) = src.dropped {
            line.push_str(&format!("; {d} dropped"));
        }
        if src.corrupt_records > 0 {
            line.push_str(&format!(
                "; {} corrupt record(s) skipped",
                src.corrupt_records
            ));
        }
        if src.truncated {
            line.push_str("; truncated");
        }
        rows.push((format!("{} {}", src.kind, src.name), line, None));
    }
    let t = &summary.analysis.tls;
    if t.seen > 0 {
        rows.push((
            "TLS".into(),
            format!("{} seen, {} decrypted", t.seen, t.decrypted),
            None,
        ));
    }
    let l = &summary.limits;
    if l.flows_evicted + l.holes_given_up + l.buffered_bytes_shed > 0 {
        rows.push((
            "memory caps hit".into(),
            format!(
                "{} flows evicted ({} WebSocket; {} later packets of theirs dropped) at --max-flows {}; {} holes given up and {} bytes of partial HTTP heads dropped at the buffering caps",
                l.flows_evicted,
                l.websocket_flows_evicted,
                l.packets_of_evicted_flows,
                l.max_flows,
                l.holes_given_up,
                l.buffered_bytes_shed
            ),
            None,
        ));
    }
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|(a, b, _)| vec![a.clone(), glue_units(b)])
        .collect();
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|(a, b, c)| {
            let a = match c {
                Some(c) => Cell::new(a).fg(c),
                None => Cell::new(a),
            };
            vec![a, Cell::new(glue_units(&b))]
        })
        .collect();
    match fitted(&["totals", ""], cells, &texts, opts) {
        Some(t) => spaces(&t.to_string()),
        // Too narrow for a table even of two columns: lines.
        None => texts
            .iter()
            .flat_map(|r| wrap(&format!("{}:", r[0]), "    ", &r[1], opts.width))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A connection as its cells read.
struct Row {
    id: u64,
    outcome: Outcome,
    /// `client → server`, path and subprotocol.
    who: String,
    start: String,
    lasted: String,
    /// Codes, initiator, reason, handshake time.
    close: String,
    /// How TCP ended and after how long without traffic.
    end: String,
    /// Finding kinds with their sides.
    findings: String,
    worst: Option<Severity>,
}

impl Row {
    fn of(c: &ConnectionReport, start: Option<Ts>) -> Row {
        let mut who = format!("{}{}→ {}", c.client, super::human::NB, c.server);
        if let Some(t) = &c.tls {
            who.push_str(" (TLS");
            if let Some(sni) = &t.sni {
                who.push(' ');
                who.push_str(&cut(sni, PATH_MAX));
            }
            who.push(')');
        }
        if let Some(h) = &c.handshake {
            if let Some(p) = &h.path {
                who.push(' ');
                who.push_str(&cut(p, PATH_MAX));
            }
            if let Some(p) = &h.subprotocol {
                who.push_str(&format!(", subprotocol {}", cut(p, PATH_MAX)));
            }
        }
        let first = Ts::from_secs_f64(c.first_ts);
        let start = start.map_or("-".into(), |s| nb(&fmt_offset(first.saturating_sub(s))));
        let lasted = nb(&fmt_secs_human(c.last_ts - c.first_ts));
        let code = |f: &Option<CloseFrame>| match f {
            None => "-".to_string(),
            Some(f) => f.code.map_or_else(|| "none".to_string(), |c| c.to_string()),
        };
        let cl = &c.close;
        let close = if cl.client_frame.is_none() && cl.server_frame.is_none() {
            "-".to_string()
        } else {
            let mut s = format!("{}/{}", code(&cl.client_frame), code(&cl.server_frame));
            if let Some(i) = cl.initiator {
                s.push(' ');
                s.push_str(&nb(&format!("by {}", i.name())));
            }
            // The first closer's reason, else the answer's.
            let (a, b) = match cl.initiator {
                Some(crate::close::Side::Server) => (&cl.server_frame, &cl.client_frame),
                _ => (&cl.client_frame, &cl.server_frame),
            };
            if let Some(r) = [a, b]
                .into_iter()
                .flatten()
                .filter_map(|f| f.reason.as_deref())
                .find(|r| !r.is_empty())
            {
                s.push(' ');
                s.push_str(&quoted(r, REASON_MAX));
            }
            if let Some(h) = cl.handshake_s {
                s.push(' ');
                s.push_str(&nb(&format!("in {}", fmt_secs_human(h))));
            }
            s
        };
        let end = match (cl.tcp_end.kind, cl.tcp_end.by) {
            (TcpEndKind::None, _) | (_, None) => "open".to_string(),
            (k, Some(by)) => nb(&format!("{} by {}", k.upper(), by.name())),
        };
        let end = match cl.idle_s {
            Some(i) => format!("{end} {}", nb(&format!("after {} idle", fmt_secs_human(i)))),
            None => end,
        };
        // One entry per kind, with the sides it was found on.
        let mut kinds: Vec<(&str, Vec<&str>)> = Vec::new();
        for f in &c.findings {
            let name = f.kind.name();
            let side = f.side.map_or("-", |s| s.name());
            match kinds.iter_mut().find(|(k, _)| *k == name) {
                Some((_, sides)) => sides.push(side),
                None => kinds.push((name, vec![side])),
            }
        }
        let findings: Vec<String> = kinds
            .into_iter()
            .map(|(k, sides)| {
                if sides == ["-"] {
                    k.to_string()
                } else {
                    format!("{k} ({})", sides.join("+"))
                }
            })
            .collect();
        Row {
            id: c.id,
            outcome: cl.outcome,
            who,
            start,
            lasted,
            close,
            end,
            findings: findings.join(", "),
            worst: c.findings.iter().map(|f| f.severity).max(),
        }
    }
}

/// One row per connection, or `None` when the columns cannot fit.
fn connections_table(rows: &[Row], opts: &TableOptions) -> Option<Table> {
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.who.clone(),
                format!("{} {}", r.start, nb(&format!("for {}", r.lasted))),
                r.outcome.name().to_string(),
                r.close.clone(),
                r.end.clone(),
                r.findings.clone(),
            ]
        })
        .collect();
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .zip(&texts)
        .map(|(r, t)| {
            let mut cells: Vec<Cell> = t.iter().map(Cell::new).collect();
            cells[3] = Cell::new(r.outcome.name()).fg(outcome_color(r.outcome));
            if let Some(w) = r.worst {
                cells[6] = Cell::new(&r.findings).fg(severity_color(w));
            }
            cells
        })
        .collect();
    let header = [
        "#",
        "client → server, path",
        "start, length",
        "outcome",
        "close (codes c/s)",
        "TCP end",
        "findings",
    ];
    fitted(&header, cells, &texts, opts)
}

/// The connections in lines: `#id outcome client → server path`, then the
/// close, the end and the times, then the findings.
fn compact(rows: &[Row], out: &mut impl Write, opts: &TableOptions) -> io::Result<()> {
    let paint = Paint(opts.color);
    let id_w = rows
        .iter()
        .map(|r| r.id.to_string().len())
        .max()
        .unwrap_or(1);
    let indent = " ".repeat(id_w + 3);
    for r in rows {
        let name = r.outcome.name();
        let first = format!(
            "#{:<id_w$}  {}{}",
            r.id,
            paint.outcome(r.outcome),
            " ".repeat(10usize.saturating_sub(name.len()) + 1)
        );
        for l in wrap(&first, &indent, &r.who, opts.width) {
            writeln!(out, "{l}")?;
        }
        let close = if r.close == "-" {
            "no close frame".to_string()
        } else {
            format!("close {}", r.close)
        };
        let detail = format!(
            "{}, {}; {close}; {}",
            nb(&format!("started {}", r.start)),
            nb(&format!("lasted {}", r.lasted)),
            r.end
        );
        for l in wrap(&indent, &indent, &detail, opts.width) {
            writeln!(out, "{l}")?;
        }
        if let Some(w) = r.worst {
            let f = format!("findings: {}", r.findings);
            // Each word painted, so that a wrapped line carries its colour.
            let text = f
                .split(' ')
                .map(|word| paint.severity(w, word))
                .collect::<Vec<_>>()
                .join(" ");
            for l in wrap(&indent, &indent, &text, opts.width) {
                writeln!(out, "{l}")?;
            }
        }
    }
    Ok(())
}
