//! The page's drawings: the timeline of every connection (SVG bars, or a
//! canvas the script fills above [`super::SVG_MAX`] connections) and the
//! log-scale histograms of idle time and age with the diagnoses' clusters.

use std::fmt::Write as _;
use std::io;

use super::{age, each, end_ts, esc, fmt_dur, tcp_end_ts};
use crate::close::TcpEndKind;
use crate::diagnose::{Diagnosis, DiagnosisKind};
use crate::report::Summary;
use crate::report::connections::Connections;

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

pub(super) fn timeline(
    h: &mut String,
    conns: &Connections,
    start: f64,
    end: f64,
    svg: bool,
) -> io::Result<()> {
    let n = conns.len();
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
        return Ok(());
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
    for (i, c) in each(conns).enumerate() {
        let c = &c?;
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
    Ok(())
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

pub(super) fn histograms(h: &mut String, s: &Summary, conns: &Connections) -> io::Result<()> {
    let (mut idle, mut ages) = (Vec::new(), Vec::new());
    for c in each(conns) {
        let c = c?;
        idle.extend(c.close.idle_s);
        if c.close.tcp_end.kind != TcpEndKind::None {
            ages.push(age(&c));
        }
    }
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
    Ok(())
}
