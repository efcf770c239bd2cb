//! The diagnoses as people read them: printed first, one block each (the
//! message, the connections, the advice), so the answer is on the first
//! screen.

use std::io::{self, Write};

use super::human::{Paint, TableOptions, wrap};
use crate::diagnose::Diagnosis;

/// Ids listed before the rest are only counted.
const MAX_IDS: usize = 24;

pub fn write(diagnoses: &[Diagnosis], out: &mut impl Write, opts: &TableOptions) -> io::Result<()> {
    let width = opts.width;
    let paint = Paint(opts.color);
    if diagnoses.is_empty() {
        for l in wrap(
            "",
            "  ",
            "Diagnoses: nothing stands out across connections.",
            width,
        ) {
            writeln!(out, "{l}")?;
        }
        return writeln!(out);
    }
    writeln!(out, "Diagnoses ({}):", diagnoses.len())?;
    for d in diagnoses {
        writeln!(out)?;
        let sev = paint.severity(d.severity, &format!("[{}]", d.severity.name()));
        let mut head = format!("{sev} {}", d.kind.name());
        if let Some(code) = d.code {
            head.push_str(&format!(" {code}"));
        }
        match (&d.side, &d.peer) {
            (Some(s), Some(p)) => head.push_str(&format!(", {} {p}", s.name())),
            (Some(s), None) => head.push_str(&format!(", {} side", s.name())),
            _ => {}
        }
        for l in wrap("", "  ", &head, width) {
            writeln!(out, "{l}")?;
        }
        wrapped(out, "  ", &d.message, width)?;
        let n = d.connections.len();
        let which = if n == 1 { "connection" } else { "connections" };
        wrapped(
            out,
            "  ",
            &format!("{n} {which}: {}", id_ranges(&d.connections)),
            width,
        )?;
        if !d.matches.is_empty() {
            wrapped(
                out,
                "  ",
                &format!("matches: {}", d.matches.join("; ")),
                width,
            )?;
        }
        if let Some(a) = &d.advice {
            wrapped(out, "  ", &format!("advice: {a}"), width)?;
        }
    }
    writeln!(out)
}

/// "1-4, 9, 13" (ascending ids), the rest counted past [`MAX_IDS`] runs.
pub fn id_ranges(ids: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => runs.push((id, id)),
        }
    }
    let shown: Vec<String> = runs
        .iter()
        .take(MAX_IDS)
        .map(|&(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a}, {b}"),
            _ => format!("{a}-{b}"),
        })
        .collect();
    let mut s = shown.join(", ");
    let rest: u64 = runs.iter().skip(MAX_IDS).map(|(a, b)| b - a + 1).sum();
    if rest > 0 {
        s.push_str(&format!(" and {rest} more"));
    }
    s
}

/// Writes `text` wrapped at `width` on word boundaries, each line after
/// `indent`.
fn wrapped(out: &mut impl Write, indent: &str, text: &str, width: usize) -> io::Result<()> {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty()
            && indent.len() + line.chars().count() + 1 + word.chars().count() > width
        {
            writeln!(out, "{indent}{line}")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        writeln!(out, "{indent}{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(id_ranges(&[1, 2, 3, 4, 9, 13, 14]), "1-4, 9, 13, 14");
        let many: Vec<u64> = (1..=100).map(|i| i * 2).collect();
        assert!(id_ranges(&many).ends_with(" and 76 more"));
    }

    #[test]
    fn wraps_on_words() {
        let mut v = Vec::new();
        wrapped(&mut v, "  ", &"word ".repeat(50), 100).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(s.lines().all(|l| l.len() <= 100 && l.starts_with("  word")));
    }
}
