//! The findings section of the tables: every finding with its message, for
//! the first connections with findings past a hundred (the connection lines
//! name every finding already).

use std::io::{self, Write};

use comfy_table::{Cell, Table};

use super::human::{Paint, TableOptions, fmt_offset, glue_units, nb, spaces, wrap};
use super::tables::{WIDE_MIN, fitted, severity_color};
use crate::Ts;
use crate::close::{ConnectionReport, Severity};

/// Past this many connections with findings, the findings' messages are
/// shown for the first ones only (unless `--all`): the connection lines
/// already name every finding, and 50,000 messages bury everything else.
const FINDINGS_SHOWN: usize = 100;

/// The section: a heading, then a table (or lines, when narrow).
pub(super) fn write(
    listed: &[&ConnectionReport],
    out: &mut impl Write,
    opts: &TableOptions,
) -> io::Result<()> {
    let with_findings: Vec<&ConnectionReport> = listed
        .iter()
        .copied()
        .filter(|c| !c.findings.is_empty())
        .collect();
    if with_findings.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let shown = if opts.all {
        &with_findings[..]
    } else {
        &with_findings[..with_findings.len().min(FINDINGS_SHOWN)]
    };
    let head = if shown.len() == with_findings.len() {
        "Findings (times from the connection's first packet):".to_string()
    } else {
        format!(
            "Findings of the first {} of {} connections with findings (the lines above name every finding; --all lists every message, --connection ID shows one connection); times from the connection's first packet:",
            shown.len(),
            with_findings.len()
        )
    };
    for l in wrap("", "  ", &head, opts.width) {
        writeln!(out, "{l}")?;
    }
    match (opts.width >= WIDE_MIN)
        .then(|| findings_table(shown, opts))
        .flatten()
    {
        Some(t) => writeln!(out, "{}", spaces(&t.to_string()))?,
        None => findings_compact(shown, out, opts)?,
    }
    Ok(())
}

/// The findings' cells: id, severity, kind, side, time, message.
fn finding_texts(listed: &[&ConnectionReport]) -> Vec<(Severity, Vec<String>)> {
    let mut v = Vec::new();
    for c in listed {
        for f in &c.findings {
            v.push((
                f.severity,
                vec![
                    c.id.to_string(),
                    f.severity.name().to_string(),
                    f.kind.name().to_string(),
                    f.side.map_or("-", |s| s.name()).to_string(),
                    f.ts.map_or("-".into(), |t| {
                        nb(&fmt_offset(
                            Ts::from_secs_f64(t).saturating_sub(Ts::from_secs_f64(c.first_ts)),
                        ))
                    }),
                    glue_units(&f.message),
                ],
            ));
        }
    }
    v
}

/// Every finding with its message, or `None` when the columns cannot fit.
fn findings_table(listed: &[&ConnectionReport], opts: &TableOptions) -> Option<Table> {
    let rows = finding_texts(listed);
    let texts: Vec<Vec<String>> = rows.iter().map(|(_, t)| t.clone()).collect();
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|(s, t)| {
            let mut cells: Vec<Cell> = t.iter().map(Cell::new).collect();
            cells[1] = Cell::new(&t[1]).fg(severity_color(*s));
            cells
        })
        .collect();
    fitted(
        &["#", "severity", "finding", "side", "at", "message"],
        cells,
        &texts,
        opts,
    )
}

/// Every finding in lines: `#5 [error] unanswered_close (server), at
/// +300.9 ms:` then the message.
fn findings_compact(
    listed: &[&ConnectionReport],
    out: &mut impl Write,
    opts: &TableOptions,
) -> io::Result<()> {
    let paint = Paint(opts.color);
    for (s, t) in finding_texts(listed) {
        let side = if t[3] == "-" {
            String::new()
        } else {
            format!(" ({})", t[3])
        };
        let at = if t[4] == "-" {
            String::new()
        } else {
            format!(", {}", nb(&format!("at {}", t[4])))
        };
        let head = format!(
            "#{} {} {}{side}{at}:",
            t[0],
            paint.severity(s, &format!("[{}]", t[1])),
            t[2]
        );
        for l in wrap("", "    ", &format!("{head} {}", t[5]), opts.width) {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}
