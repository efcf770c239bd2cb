//! Output for people, shared by the tables, the diagnoses and the
//! timelines: durations in the unit that fits, dates and times (local or
//! UTC), the width to fit and whether to colour.

use std::io::IsTerminal;

use crate::Ts;
use crate::close::{Outcome, Severity};

/// A duration for people, in the unit that fits: `412 µs`, `12.4 ms`,
/// `3.208 s`, `2 min 03 s`, `1 h 05 min 00 s` (three significant digits,
/// trailing zeros dropped, below a second; milliseconds below a minute;
/// whole seconds above).
pub fn fmt_duration(d: Ts) -> String {
    human(d, false)
}

/// [`fmt_duration`] of seconds (as the report's `f64` fields hold them).
pub fn fmt_secs_human(s: f64) -> String {
    fmt_duration(Ts::from_secs_f64(s.max(0.0)))
}

/// A time relative to another, signed: `+412 µs`, `-1.15 ms`, `0 s`. Past
/// a minute it keeps the milliseconds (`+2 min 03.208 s`): on a timeline,
/// events after a long silence are often milliseconds apart.
pub fn fmt_offset(d: Ts) -> String {
    match d.0 {
        0 => "0 s".into(),
        n if n > 0 => format!("+{}", human(d, true)),
        n => format!("-{}", human(Ts(n.checked_neg().unwrap_or(i64::MAX)), true)),
    }
}

fn human(d: Ts, ms_past_a_minute: bool) -> String {
    let ns = d.0.max(0);
    let sig3 = |v: f64, unit: &str| {
        let dec = if v < 9.995 {
            2
        } else if v < 99.95 {
            1
        } else {
            0
        };
        let t = format!("{v:.dec$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.')
        } else {
            &t
        };
        format!("{t} {unit}")
    };
    match ns {
        0 => "0 s".into(),
        1..1_000 => format!("{ns} ns"),
        1_000..999_500 => sig3(ns as f64 / 1e3, "µs"),
        999_500..999_500_000 => sig3(ns as f64 / 1e6, "ms"),
        999_500_000..59_999_500_000 => format!("{:.3} s", ns as f64 / 1e9),
        _ => {
            // Whole seconds, or milliseconds, rounded.
            let unit = if ms_past_a_minute {
                1_000_000
            } else {
                1_000_000_000
            };
            let n = ns / unit + i64::from(ns % unit >= unit / 2);
            let per_s = 1_000_000_000 / unit;
            let (s, frac) = (n / per_s, n % per_s);
            let secs = if ms_past_a_minute {
                format!("{:02}.{frac:03}", s % 60)
            } else {
                format!("{:02}", s % 60)
            };
            if s < 3600 {
                format!("{} min {secs} s", s / 60)
            } else {
                format!("{} h {:02} min {secs} s", s / 3600, s / 60 % 60)
            }
        }
    }
}

/// A date and time to the millisecond: `2026-12-01 15:07:38.832 UTC`, or
/// in local time `2026-12-01 16:07:38.832 (local time, UTC+01:00)`.
///
/// Local time comes from libc's `localtime_r` (the TZ variable, else
/// /etc/localtime), whose offset (`tm_gmtoff`) is printed so the time is
/// never ambiguous; no time-zone crate. Where libc cannot convert, UTC.
pub fn fmt_date_time(t: Ts, utc: bool) -> String {
    let (secs, nanos) = (t.0.div_euclid(1_000_000_000), t.0.rem_euclid(1_000_000_000));
    let ms = nanos / 1_000_000;
    if !utc && let Some((y, mo, d, h, mi, s, off)) = local_parts(secs) {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        return format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03} (local time, UTC{sign}{:02}:{:02})",
            off / 3600,
            off / 60 % 60
        );
    }
    let (year, month, day, sod, _) = t.utc_parts();
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{ms:03} UTC",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Local calendar parts of `secs` since the epoch and the offset from UTC
/// in seconds, from `localtime_r` (reentrant: it writes only to our `tm`).
#[cfg(unix)]
#[allow(unsafe_code)]
fn local_parts(secs: i64) -> Option<(i64, i64, i64, i64, i64, i64, i64)> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data, zeroed is a valid value; localtime_r
    // reads `t` and fills `tm`, both valid for the call, and returns null
    // on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some((
        i64::from(tm.tm_year) + 1900,
        i64::from(tm.tm_mon) + 1,
        i64::from(tm.tm_mday),
        i64::from(tm.tm_hour),
        i64::from(tm.tm_min),
        i64::from(tm.tm_sec),
        // c_long: i64 on 64-bit targets, i32 on others.
        #[allow(clippy::useless_conversion)]
        i64::from(tm.tm_gmtoff),
    ))
}

#[cfg(not(unix))]
fn local_parts(_secs: i64) -> Option<(i64, i64, i64, i64, i64, i64, i64)> {
    None
}

/// `--color`: when to colour outcomes and severities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When the output is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

/// How the tables are laid out for people.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// Columns to fit in.
    pub width: usize,
    /// ANSI colours for outcomes and severities.
    pub color: bool,
    /// Dates in UTC rather than local time.
    pub utc: bool,
    /// List every connection, even past [`MANY`] when most are clean.
    pub all: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            width: DEFAULT_WIDTH,
            color: false,
            utc: false,
            all: false,
        }
    }
}

/// Width when the output is not a terminal and `COLUMNS` is not set.
pub const DEFAULT_WIDTH: usize = 100;

/// Narrowest width laid out for; narrower terminals get this and wrap.
pub const MIN_WIDTH: usize = 40;

/// Past this many connections only those not `clean` are listed.
pub const MANY: usize = 50;

impl TableOptions {
    /// The options for output to stdout (`stderr`: to stderr): the
    /// terminal's width when it is one, else `COLUMNS`, else
    /// [`DEFAULT_WIDTH`]; colour as `choice` and `NO_COLOR` say.
    pub fn detect(stderr: bool, choice: ColorChoice, utc: bool, all: bool) -> TableOptions {
        let tty = if stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let fd = if stderr { 2 } else { 1 };
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|c| *c > 0);
        let width = tty
            .then(|| terminal_width(fd))
            .flatten()
            .or(columns)
            .unwrap_or(DEFAULT_WIDTH)
            .max(MIN_WIDTH);
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        TableOptions {
            width,
            color,
            utc,
            all,
        }
    }
}

/// The width of the terminal on `fd`, from TIOCGWINSZ.
#[cfg(unix)]
#[allow(unsafe_code)]
fn terminal_width(fd: i32) -> Option<usize> {
    // SAFETY: `ws` is plain data; TIOCGWINSZ fills it and returns -1 on
    // error.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

#[cfg(not(unix))]
fn terminal_width(_fd: i32) -> Option<usize> {
    None
}

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    /// `text` in the SGR colour `code` (`31` red ...), when painting.
    pub fn sgr(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn outcome(self, o: Outcome) -> String {
        self.sgr(outcome_sgr(o), o.name())
    }

    pub fn severity(self, s: Severity, text: &str) -> String {
        self.sgr(severity_sgr(s), text)
    }
}

/// Green for clean, red for the failures, yellow for the undecided,
/// magenta for rejected, blue for encrypted.
pub fn outcome_sgr(o: Outcome) -> &'static str {
    match o {
        Outcome::Clean => "32",
        Outcome::Unanswered | Outcome::Timeout | Outcome::Abnormal => "1;31",
        Outcome::Pending | Outcome::Open => "33",
        Outcome::Rejected => "35",
        Outcome::Encrypted => "34",
    }
}

pub fn severity_sgr(s: Severity) -> &'static str {
    match s {
        Severity::Error => "1;31",
        Severity::Warning => "33",
        Severity::Info => "36",
    }
}

/// Width of `s` as printed: characters, ANSI escapes not counted.
pub fn display_width(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// A no-break space: words joined with it are never wrapped apart (`301 ms`,
/// `FIN by server`); printed as a plain space (see [`spaces`]).
pub const NB: char = '\u{a0}';

/// `text` as one unbreakable word.
pub fn nb(text: &str) -> String {
    text.replace(' ', "\u{a0}")
}

/// Each number joined to the unit after it (`0.200781 s`, `2.00 s`,
/// `300.8 ms`), so that no line ends between them.
pub fn glue_units(text: &str) -> String {
    const UNITS: [&str; 7] = ["s", "ms", "µs", "ns", "min", "h", "bytes"];
    let mut out = String::with_capacity(text.len());
    let mut prev_digit = false;
    for (i, w) in text.split(' ').enumerate() {
        let bare = w.trim_end_matches([',', ';', ')', '.', ':']);
        if i > 0 {
            out.push(if prev_digit && UNITS.contains(&bare) {
                NB
            } else {
                ' '
            });
        }
        out.push_str(w);
        prev_digit = w.ends_with(|c: char| c.is_ascii_digit());
    }
    out
}

/// No-break spaces back to plain ones, for printing.
pub fn spaces(text: &str) -> String {
    text.replace(NB, " ")
}

/// `"reason"` quoted, cut with an ellipsis past `max` characters.
pub fn quoted(reason: &str, max: usize) -> String {
    if reason.chars().count() <= max {
        format!("{reason:?}")
    } else {
        let cut: String = reason.chars().take(max.saturating_sub(1)).collect();
        format!("{:?}", format!("{}…", cut.trim_end()))
    }
}

/// `text` cut with an ellipsis past `max` characters.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let c: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{c}…")
    }
}

/// `text` as lines no wider than `width`, broken between words only
/// (`first` starts the first line, `indent` the others; a word wider than
/// a line gets a line of its own). Words may hold ANSI escapes.
pub fn wrap(first: &str, indent: &str, text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    // The line's width, kept as it grows: measuring it again for every
    // word made a long message quadratic.
    let mut lw = display_width(first);
    let mut empty = first.is_empty() || first.ends_with(' ');
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let ww = display_width(word);
        if !empty && lw + 1 + ww > width {
            lines.push(std::mem::replace(&mut line, indent.to_string()));
            lw = display_width(indent);
            empty = indent.is_empty() || indent.ends_with(' ');
        }
        if !empty {
            line.push(' ');
            lw += 1;
        }
        line.push_str(word);
        lw += ww;
        empty = false;
    }
    if !empty || (lines.is_empty() && !line.trim().is_empty()) {
        lines.push(line);
    }
    lines.iter().map(|l| spaces(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fit_their_unit() {
        assert_eq!(fmt_secs_human(0.00098), "980 µs");
        assert_eq!(fmt_secs_human(0.3008), "301 ms");
        assert_eq!(fmt_secs_human(0.03008), "30.1 ms");
        assert_eq!(fmt_secs_human(60.0), "1 min 00 s");
        assert_eq!(fmt_secs_human(7380.0), "2 h 03 min 00 s");
    }

    #[test]
    fn dates() {
        let t = Ts(1_795_301_556_856_359_813);
        assert_eq!(fmt_date_time(t, true), "2026-11-21 22:52:36.856 UTC");
    }

    #[test]
    fn wraps_between_words_only() {
        let l = wrap("", "  ", "aaa bbb 127.0.0.1:18780 ccc", 18);
        assert_eq!(l, ["aaa bbb", "  127.0.0.1:18780", "  ccc"]);
        assert!(wrap("", "", "", 10).is_empty());
    }

    /// Colour codes take no width, on the first line and the next ones,
    /// and a lead-in counts on the first: the same breaks as plain text.
    #[test]
    fn wraps_coloured_words_as_plain_ones() {
        let words: Vec<String> = (0..40).map(|i| "w".repeat(1 + i % 7)).collect();
        let plain = words.join(" ");
        let red: Vec<String> = words
            .iter()
            .map(|w| format!("\x1b[31m{w}\x1b[0m"))
            .collect();
        for width in [8, 13, 30, 79] {
            let a = wrap("lead: ", "    ", &plain, width);
            let b = wrap("lead: ", "    ", &red.join(" "), width);
            assert_eq!(a.len(), b.len(), "width {width}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(display_width(x), display_width(y), "width {width}");
                // A word longer than what is left is alone on its line.
                let fits = display_width(x) <= width || !x.trim().contains(' ');
                assert!(fits, "{x:?} wider than {width}");
            }
        }
    }

    #[test]
    fn reasons_are_cut() {
        assert_eq!(quoted("py bye", 10), "\"py bye\"");
        assert_eq!(quoted("a very long reason indeed", 10), "\"a very lo…\"");
        assert_eq!(display_width("\x1b[31mred\x1b[0m"), 3);
    }
}
