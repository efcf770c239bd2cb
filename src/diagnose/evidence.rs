//! Diagnoses from what the peers did rather than when: a side that never
//! answers close frames or closes without waiting, lost heartbeats, error
//! close codes with the evidence behind them, injected resets.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::Digest;
use super::{Diagnosis, DiagnosisKind, Stats, count, cut_of, entry, secs, span, who, with_finding};
use crate::close::{Kind, Outcome, Settings, Side};
use crate::frame::{CloseCode, CodeClass};

/// The side that left the close frame sent to it unanswered, when the
/// connection then ended or timed out.
pub(super) fn unanswered_close(c: &Digest) -> Option<Side> {
    let silent = c.close.initiator?.other();
    let unanswered = c.close.frame_of(silent).is_none()
        && matches!(c.close.outcome, Outcome::Unanswered | Outcome::Timeout);
    unanswered.then_some(silent)
}

/// Per address of the silent side (D3): at least 2 close frames left
/// unanswered, and none answered (`answered`: the (side, address) pairs
/// that answered one on any connection).
pub fn never_answers_close(
    conns: &[Digest],
    answered: &HashSet<(Side, Arc<str>)>,
) -> Vec<Diagnosis> {
    // (side, address) -> unanswered connections
    let mut by_addr: BTreeMap<(Side, String), Vec<&Digest>> = BTreeMap::new();
    for c in conns {
        if let Some(silent) = unanswered_close(c) {
            let addr = c.address(silent);
            if !answered.contains(&(silent, addr.clone())) {
                by_addr
                    .entry((silent, addr.to_string()))
                    .or_default()
                    .push(c);
            }
        }
    }
    let mut out = Vec::new();
    for ((side, addr), members) in by_addr {
        if members.len() < 2 {
            continue;
        }
        let timeouts = members
            .iter()
            .filter(|c| c.close.outcome == Outcome::Timeout)
            .count();
        let ended = members.len() - timeouts;
        let how: Vec<String> = [
            (ended, "the TCP connection ended first"),
            (timeouts, "the close timeout passed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{what} on {}", count(*n, "connection")))
        .collect();
        let message = format!(
            "the {} {addr} answered none of the {} close frames sent to it: {}",
            side.name(),
            members.len(),
            how.join(", ")
        );
        let advice = format!(
            "the {}'s WebSocket code must answer a close frame with its own (RFC 6455 5.5.1): check that its close handler runs and that its event loop is not blocked; its peers report 1006 meanwhile",
            side.name()
        );
        let mut d = entry(
            DiagnosisKind::NeverAnswersClose,
            Some(side),
            &members,
            None,
            message,
            Some(advice),
        );
        d.peer = Some(addr);
        out.push(d);
    }
    out
}

/// A side with `closed_before_answer` on at least 2 connections.
pub fn closes_without_waiting(conns: &[Digest]) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    for (side, members) in [Side::Client, Side::Server]
        .into_iter()
        .zip(with_finding(conns, Kind::ClosedBeforeAnswer))
    {
        if members.len() < 2 {
            continue;
        }
        let message = format!(
            "{} sent its close frame and ended TCP without waiting for the answer on {}: the {}'s close frame met a closed socket (usually an RST), and its application may report 1006",
            who(side, &members),
            count(members.len(), "connection"),
            side.other().name()
        );
        let advice = format!(
            "the {} should wait for the peer's close frame (or a close timeout) before closing the socket (RFC 6455 7.1.1 and 7.1.2)",
            side.name()
        );
        out.push(entry(
            DiagnosisKind::ClosesWithoutWaiting,
            Some(side),
            &members,
            None,
            message,
            Some(advice),
        ));
    }
    out
}

/// When a connection whose pings went unanswered was given up on: its
/// 1001/1011 close frame, else its TCP end when it was cut.
pub(super) fn given_up(c: &Digest) -> Option<f64> {
    let first = c.close.first_frame();
    match first.and_then(|f| f.code) {
        Some(1001 | 1011) => first.map(|f| f.ts),
        _ => cut_of(c).map(|cut| cut.instant),
    }
}

/// Pings without a pong for at least the close timeout, then the
/// connection cut or closed with 1001/1011.
pub fn heartbeat_lost(conns: &[Digest], settings: &Settings) -> Vec<Diagnosis> {
    let timeout = settings.close_timeout.as_secs_f64();
    let mut by_side: [Vec<(&Digest, f64)>; 2] = Default::default();
    for c in conns {
        let (Some((silent, first, _)), Some(end)) = (c.evidence.unanswered_ping, given_up(c))
        else {
            continue;
        };
        if end - first >= timeout {
            by_side[silent.idx()].push((c, end - first));
        }
    }
    let mut out = Vec::new();
    for (side, items) in [Side::Client, Side::Server].into_iter().zip(by_side) {
        if items.is_empty() {
            continue;
        }
        let members: Vec<&Digest> = items.iter().map(|i| i.0).collect();
        let st = Stats::of(&items.iter().map(|i| i.1).collect::<Vec<_>>());
        let message = format!(
            "{} stopped answering pings on {}: the {}'s pings went without a pong for {} {} before the connection was closed with 1001/1011 or cut",
            who(side, &members),
            count(members.len(), "connection"),
            side.other().name(),
            secs(st.median),
            span(&st)
        );
        let advice = format!(
            "the {} was unresponsive (a frozen tab or process, a blocked event loop, a dead network path): python websockets gives up after ping_interval + ping_timeout (20 s + 20 s by default) with 1011, socket.io after pingInterval + pingTimeout (25 s + 20 s); look at the {}'s load and the path at those times",
            side.name(),
            side.name()
        );
        out.push(entry(
            DiagnosisKind::HeartbeatLost,
            Some(side),
            &members,
            Some(st),
            message,
            Some(advice),
        ));
    }
    out
}

/// Close frames with one error code from one side: one entry per code and
/// side, with the evidence the capture holds.
pub fn error_close_codes(conns: &[Digest]) -> Vec<Diagnosis> {
    let mut groups: BTreeMap<(u16, Side), Vec<&Digest>> = BTreeMap::new();
    for c in conns {
        for side in [Side::Client, Side::Server] {
            let code = c.close.frame_of(side).and_then(|f| f.code);
            if let Some(code) = code.filter(|&k| CloseCode(k).class() == CodeClass::Error) {
                groups.entry((code, side)).or_default().push(c);
            }
        }
    }
    let mut out = Vec::new();
    for ((code, side), members) in groups {
        let message = format!(
            "{} closed {} with {}{}",
            who(side, &members),
            count(members.len(), "connection"),
            CloseCode(code).describe(),
            code_evidence(code, side, &members)
        );
        let mut d = entry(
            DiagnosisKind::ErrorCloseCodes,
            Some(side),
            &members,
            None,
            message,
            code_advice(code).map(str::to_string),
        );
        d.code = Some(code);
        out.push(d);
    }
    out
}

/// What the capture shows about why `side` closed with `code`.
fn code_evidence(code: u16, side: Side, members: &[&Digest]) -> String {
    let other = side.other();
    match code {
        1009 => {
            let largest = members
                .iter()
                .filter_map(|c| c.evidence.largest_before_close[side.idx()])
                .max()
                .unwrap_or(0);
            format!(
                "; the largest message the {} sent before it was {largest} bytes",
                other.name()
            )
        }
        1002 | 1007 => {
            // The other side's protocol violations before the close frame.
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for c in members {
                let at = c.close.frame_of(side).map_or(f64::MAX, |f| f.ts);
                for f in &c.findings {
                    let before = f.ts.is_some_and(|t| t <= at);
                    if f.side == Some(other) && before && f.kind.is_protocol_violation() {
                        *kinds.entry(f.kind.name().to_string()).or_default() += 1;
                    }
                }
            }
            if kinds.is_empty() {
                format!(
                    "; no protocol violation by the {} is visible in the capture (it may be inside compressed data or a capture gap)",
                    other.name()
                )
            } else {
                let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                format!(
                    "; before it the {} broke the protocol: {}",
                    other.name(),
                    list.join(", ")
                )
            }
        }
        _ => String::new(),
    }
}

fn code_advice(code: u16) -> Option<&'static str> {
    Some(match code {
        1002 => {
            "the peer's framing breaks RFC 6455: the findings name the rule; fix the sender or the library version"
        }
        1003 => {
            "the receiver does not accept this kind of data (text vs binary): check what each side expects"
        }
        1007 => "text messages must be valid UTF-8: send arbitrary bytes as binary frames",
        1008 => {
            "a policy refused the peer (authentication, origin, rate limit): the closing side's logs say which"
        }
        1009 => {
            "raise the receiver's message size limit (python websockets max_size, 1 MiB by default; node ws maxPayload) or send smaller messages"
        }
        1010 => "the client required an extension the server did not negotiate",
        1011 => {
            "the closing side hit an internal error (python websockets also uses 1011 for a keepalive ping timeout): its logs at those times say which"
        }
        1014 => "a gateway got a bad answer from its upstream: check the proxy's upstream",
        _ => return None,
    })
}

/// `foreign_reset` findings: RSTs injected on the path.
pub fn foreign_resets(conns: &[Digest]) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    for (side, members) in [Side::Client, Side::Server]
        .into_iter()
        .zip(with_finding(conns, Kind::ForeignReset))
    {
        if members.is_empty() {
            continue;
        }
        let message = format!(
            "RSTs on {} claimed to come from {} but carried a TTL none of its earlier packets had: something on the path (a firewall, IPS, load balancer or NAT) injected them",
            count(members.len(), "connection"),
            who(side, &members)
        );
        let advice = "look for a middlebox between the hosts that resets idle or suspicious connections; the difference in TTL tells how many hops from the capture point it sits".to_string();
        out.push(entry(
            DiagnosisKind::ForeignResets,
            Some(side),
            &members,
            None,
            message,
            Some(advice),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Stats;

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle() {
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Stats::of(&[5.0, 1.0, 3.0]).median, 3.0);
    }
}
