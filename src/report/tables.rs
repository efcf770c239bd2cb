//! The human tables after the diagnoses: one row per connection, the
//! totals with each input's counts, every finding with its message.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use super::Summary;
use crate::close::{ConnectionReport, Outcome, TcpEndKind, fmt_secs};

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !t.is_tty() {
        t.set_width(160);
    }
    t
}

/// One row per connection.
pub fn connections(summary: &Summary) -> Table {
    let mut t = new_table();
    t.set_header(vec![
        "#",
        "client",
        "server",
        "outcome",
        "initiator",
        "codes c/s",
        "close hs",
        "idle",
        "TCP end",
        "findings",
    ]);
    for c in &summary.connections {
        t.add_row(connection_row(c));
    }
    t
}

fn connection_row(c: &ConnectionReport) -> Vec<String> {
    let code = |f: &Option<crate::close::CloseFrame>| match f {
        None => "-".to_string(),
        Some(f) => f.code.map_or_else(|| "none".to_string(), |c| c.to_string()),
    };
    let end = &c.close.tcp_end;
    let tcp_end = match (end.kind, end.by) {
        (TcpEndKind::None, _) | (_, None) => "open".to_string(),
        (k, Some(by)) => format!("{} by {}", k.upper(), by.name()),
    };
    // One entry per kind, with the sides it was found on.
    let mut kinds: Vec<(String, Vec<&str>)> = Vec::new();
    for f in &c.findings {
        let name = f.kind.name();
        let side = f.side.map_or("-", |s| s.name());
        match kinds.iter_mut().find(|(k, _)| *k == name) {
            Some((_, sides)) => sides.push(side),
            None => kinds.push((name.to_string(), vec![side])),
        }
    }
    let kinds: Vec<String> = kinds
        .into_iter()
        .map(|(k, sides)| {
            if sides == ["-"] {
                k
            } else {
                format!("{k} ({})", sides.join("+"))
            }
        })
        .collect();
    let server = match &c.tls {
        None => c.server.clone(),
        Some(t) => format!(
            "{} (TLS{})",
            c.server,
            t.sni.as_ref().map_or(String::new(), |s| format!(", {s}"))
        ),
    };
    vec![
        c.id.to_string(),
        c.client.clone(),
        server,
        c.close.outcome.name().to_string(),
        c.close.initiator.map_or("-", |s| s.name()).to_string(),
        format!(
            "{}/{}",
            code(&c.close.client_frame),
            code(&c.close.server_frame)
        ),
        c.close.handshake_s.map_or("-".into(), fmt_secs),
        c.close.idle_s.map_or("-".into(), fmt_secs),
        tcp_end,
        if kinds.is_empty() {
            "-".to_string()
        } else {
            kinds.join(", ")
        },
    ]
}

/// Outcomes, severities, close codes, each input, and the caps hit.
pub fn totals(summary: &Summary) -> Table {
    let mut t = new_table();
    t.set_header(vec!["outcome", "connections"]);
    for o in Outcome::ALL {
        t.add_row(vec![
            o.name().to_string(),
            summary.totals.outcomes.get(*o).to_string(),
        ]);
    }
    let s = &summary.totals.severities;
    t.add_row(vec![
        "findings (error/warning/info)".to_string(),
        format!("{}/{}/{}", s.error, s.warning, s.info),
    ]);
    if !summary.totals.close_codes.is_empty() {
        let codes: Vec<String> = summary
            .totals
            .close_codes
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        t.add_row(vec!["close codes".to_string(), codes.join(", ")]);
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
        t.add_row(vec![format!("source {}", src.name), line]);
    }
    let l = &summary.limits;
    if l.flows_evicted + l.holes_given_up + l.buffered_bytes_shed > 0 {
        t.add_row(vec![
            "memory caps hit".to_string(),
            format!(
                "{} flows evicted ({} WebSocket; {} later packets of theirs dropped) at --max-flows {}; {} holes given up and {} bytes of partial HTTP heads dropped at the buffering caps",
                l.flows_evicted,
                l.websocket_flows_evicted,
                l.packets_of_evicted_flows,
                l.max_flows,
                l.holes_given_up,
                l.buffered_bytes_shed
            ),
        ]);
    }
    t
}

/// Every finding with its message.
pub fn findings(summary: &Summary) -> Table {
    let mut t = new_table();
    t.set_header(vec!["#", "severity", "finding", "side", "time", "message"]);
    for c in &summary.connections {
        for f in &c.findings {
            t.add_row(vec![
                c.id.to_string(),
                f.severity.name().to_string(),
                f.kind.name().to_string(),
                f.side.map_or("-", |s| s.name()).to_string(),
                f.ts.map_or("-".into(), |t| format!("{t:.6}")),
                f.message.clone(),
            ]);
        }
    }
    t
}
