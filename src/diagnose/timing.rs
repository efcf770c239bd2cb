//! Timing patterns: many connections cut after the same idle time
//! (`idle_timeout`), at the same age (`max_lifetime`), or in the same
//! second (`mass_disconnect`).
//!
//! A group of equal times must stand out from chance (rule D1). For `k` of
//! a side's `n` cut connections to fall within a span `s` by chance, when
//! times spread uniformly over `0..R` (`R` the largest), the expected number
//! of such groups is about `C(n,k) * k * (s/R)^(k-1)`; a group counts when
//! that is below 0.005 (`s` floored at 1 % of the tolerance). The bound is
//! stricter than the contract's example (0.05) because every group size
//! from every start is tried: measured on uniform noise, 0.05 flagged 11 %
//! of 200-connection captures, 0.005 about 1 %. Real timeouts are tight (a
//! few milliseconds), chance groups are not.

use super::Digest;
use super::defaults::{self, tolerance};
use super::windows::densest_windows;
use super::{Diagnosis, DiagnosisKind, Stats, cut_of, entry, nice, span};
use crate::Ts;
use crate::close::{Outcome, Side, TcpEndKind, fmt_short};

/// Chance below which a group stands out (D1).
const ALPHA: f64 = 0.005;

/// Group sizes tried from each start besides the largest (a tight group
/// inside a looser window must not be missed).
const TRIES: usize = 64;

/// Times under this are activity, not a timeout.
const MIN_SECS: f64 = 1.0;

/// `ln(i!)` for `i` in `0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    v.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        v.push(acc);
    }
    v
}

/// `ln` of the expected number of chance groups of `k` of `n` times within
/// `span`, times spread over `0..range`.
fn ln_chance(n: usize, k: usize, span: f64, tol: f64, range: f64, lnf: &[f64]) -> f64 {
    let ln_choose = lnf[n] - lnf[k] - lnf[n - k];
    let s = span.max(0.01 * tol);
    ln_choose + (k as f64).ln() + (k as f64 - 1.0) * (s / range).ln()
}

/// The groups of `values` (indices into it) that are equal within the
/// tolerance and stand out from chance, largest first.
///
/// The best group is taken out of the sorted times again and again. Each
/// start's best group is kept, and when a group goes only the starts whose
/// window reached into it are judged again: the others are unchanged (a
/// start's window is the times after it within the tolerance, and chance
/// is judged against all of the side's times, not the ones left). Judging
/// every start for every group took 31 s for 1,000 groups of 100.
pub fn clusters(values: &[f64]) -> Vec<Vec<usize>> {
    let Some((mut order, range, lnf)) = sorted(values) else {
        return Vec::new();
    };
    let judge = Judge {
        values,
        range,
        lnf: &lnf,
    };
    let mut best = judge.starts(&order, 0..order.len());
    let mut out = Vec::new();
    while let Some((i, j)) = pick(&best) {
        // The starts before `i` whose window reached it.
        let first = values[order[i]];
        let lo = (0..i)
            .rev()
            .take_while(|&s| first - values[order[s]] <= tolerance(first))
            .last()
            .unwrap_or(i);
        out.push(order.drain(i..=j).collect());
        best.drain(i..=j);
        let again = judge.starts(&order, lo..i);
        best.splice(lo..i, again);
    }
    out
}

/// The finite times' indices in time order, the largest time, and `ln(i!)`
/// up to the number of times; `None` when too few times or none above 0.
fn sorted(values: &[f64]) -> Option<(Vec<usize>, f64, Vec<f64>)> {
    let n = values.len();
    let range = values.iter().copied().fold(0.0, f64::max);
    if n < 3 || range <= 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| values[i].is_finite()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    Some((order, range, ln_factorials(n)))
}

/// A start's best group: its length past the start (`j - i`, so that it
/// holds when earlier times are taken out) and its chance.
type Best = Option<(usize, f64)>;

/// The group to take: most members, then least likely by chance, then the
/// first start (as one pass over every start and size finds it).
fn pick(best: &[Best]) -> Option<(usize, usize)> {
    let mut top: Option<(usize, usize, f64)> = None;
    for (i, b) in best.iter().enumerate() {
        let Some((len, lnp)) = *b else { continue };
        if top.is_none_or(|(_, tlen, tp)| len > tlen || (len == tlen && lnp < tp)) {
            top = Some((i, len, lnp));
        }
    }
    top.map(|(i, len, _)| (i, i + len))
}

/// What judging a group needs besides the times still in play.
struct Judge<'a> {
    values: &'a [f64],
    range: f64,
    lnf: &'a [f64],
}

impl Judge<'_> {
    /// The best group of each start in `starts` (positions in `order`,
    /// sorted), most members first, then least likely by chance; `None`
    /// when no group from it stands out.
    fn starts(&self, order: &[usize], starts: std::ops::Range<usize>) -> Vec<Best> {
        let v = |k: usize| self.values[order[k]];
        let (n, m) = (self.values.len(), order.len());
        let mut jmax = starts.start;
        let mut out = Vec::with_capacity(starts.len());
        for i in starts {
            jmax = jmax.max(i);
            while jmax + 1 < m && v(jmax + 1) - v(i) <= tolerance(v(jmax + 1)) {
                jmax += 1;
            }
            if jmax < i + 2 || v(i) < MIN_SECS {
                out.push(None);
                continue;
            }
            let mut best: Best = None;
            let last = (i + 2 + TRIES).min(jmax);
            for j in (i + 2..=last).chain(std::iter::once(jmax)) {
                let len = j - i;
                let lnp = ln_chance(
                    n,
                    len + 1,
                    v(j) - v(i),
                    tolerance(v(j)),
                    self.range,
                    self.lnf,
                );
                let better = best.is_none_or(|(blen, bp)| len > blen || (len == blen && lnp < bp));
                if lnp < ALPHA.ln() && better {
                    best = Some((len, lnp));
                }
            }
            out.push(best);
        }
        out
    }
}

/// The cut connections of each side with a time (idle or age), as
/// `(side, connection, time)`.
fn by_side(conns: &[Digest], time: impl Fn(&Digest) -> Option<f64>) -> [Vec<(&Digest, f64)>; 2] {
    let mut out: [Vec<_>; 2] = Default::default();
    for c in conns {
        if let (Some(cut), Some(t)) = (cut_of(c), time(c)) {
            out[cut.side.idx()].push((c, t));
        }
    }
    out
}

/// Groups of one side's cut connections sharing a time, as diagnoses.
fn timed(
    conns: &[Digest],
    kind: DiagnosisKind,
    time: impl Fn(&Digest) -> Option<f64>,
    describe: impl Fn(Side, &[&Digest], &Stats) -> (String, String),
) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    for (side, items) in [Side::Client, Side::Server]
        .into_iter()
        .zip(by_side(conns, time))
    {
        let values: Vec<f64> = items.iter().map(|(_, t)| *t).collect();
        for group in clusters(&values) {
            let members: Vec<&Digest> = group.iter().map(|&i| items[i].0).collect();
            let times: Vec<f64> = group.iter().map(|&i| values[i]).collect();
            let stats = Stats::of(&times);
            let (message, advice) = describe(side, &members, &stats);
            let mut d = entry(
                kind,
                Some(side),
                &members,
                Some(stats),
                message,
                Some(advice),
            );
            d.matches = match kind {
                DiagnosisKind::IdleTimeout => defaults::matching(defaults::IDLE, stats.median),
                _ => defaults::matching(defaults::LIFETIME, stats.median),
            };
            out.push(d);
        }
    }
    out
}

/// How the connections were cut: "FIN, no close frame", "RST, no close
/// frame", "close frame 1001", or a mix of these.
fn how_cut(members: &[&Digest]) -> String {
    let mut ways: Vec<&str> = Vec::new();
    for c in members {
        let encrypted = c.close.outcome == Outcome::Encrypted;
        let rst = c.close.tcp_end.kind == TcpEndKind::Rst;
        let way = match (c.close.first_frame(), encrypted, rst) {
            (Some(_), _, _) => "close frame 1001",
            (None, true, true) => "RST; encrypted, close frames not visible",
            (None, true, false) => "FIN; encrypted, close frames not visible",
            (None, false, true) => "RST, no close frame",
            (None, false, false) => "FIN, no close frame",
        };
        if !ways.contains(&way) {
            ways.push(way);
        }
    }
    ways.join("; ")
}

/// Where a cutting side's timeout usually lives.
fn culprit(side: Side) -> &'static str {
    match side {
        Side::Server => "a proxy or load balancer in front of the server, or the server itself",
        Side::Client => {
            "the client, a proxy whose upstream leg this is, or a NAT or firewall near the client"
        }
    }
}

/// "4 connections were cut by the server side (FIN, no close frame)
/// {what} (59.81 to 60.29 s)".
fn cut_message(side: Side, members: &[&Digest], what: String, st: &Stats) -> String {
    format!(
        "{} connections were cut by the {} side ({}) {what} {}",
        members.len(),
        side.name(),
        how_cut(members),
        span(st)
    )
}

pub fn idle_timeouts(conns: &[Digest]) -> Vec<Diagnosis> {
    timed(
        conns,
        DiagnosisKind::IdleTimeout,
        |c| c.close.idle_s,
        |side, members, st| {
            let median = fmt_short(st.median);
            let what = format!("after {median} without traffic in either direction");
            let advice = format!(
                "an idle timeout of about {median} in {}: send pings at least every {}, or raise that timeout",
                culprit(side),
                nice((st.median / 2.0).max(0.5))
            );
            (cut_message(side, members, what, st), advice)
        },
    )
}

/// Age at the TCP end, for connections idle less than half their life.
fn busy_age(c: &Digest) -> Option<f64> {
    let age = c.close.tcp_end.ts? - c.evidence.start_ts;
    let idle = c.close.idle_s.unwrap_or(0.0);
    (age > 0.0 && idle < age / 2.0).then_some(age)
}

pub fn max_lifetimes(conns: &[Digest]) -> Vec<Diagnosis> {
    timed(
        conns,
        DiagnosisKind::MaxLifetime,
        busy_age,
        |side, members, st| {
            let median = fmt_short(st.median);
            let what =
                format!("at the same age, {median} after the upgrade, whatever their traffic");
            let advice = format!(
                "a cap on connection lifetime of about {median} in {}: raise it, or have clients reconnect on their own before it",
                culprit(side)
            );
            (cut_message(side, members, what, st), advice)
        },
    )
}

/// Connections cut, or closed with 1001 or 1012, and when (D3: the close
/// frame's time, else the TCP end), with the side that ended them.
fn disconnects(conns: &[Digest]) -> Vec<(f64, Side, &Digest)> {
    let mut out = Vec::new();
    for c in conns {
        let going = c
            .close
            .first_frame()
            .filter(|f| matches!(f.code, Some(1001 | 1012)));
        let at = match (going, cut_of(c)) {
            (Some(f), _) => c.close.initiator.map(|s| (f.ts, s)),
            (None, Some(cut)) => Some((cut.instant, cut.side)),
            (None, None) => None,
        };
        if let Some((t, side)) = at {
            out.push((t, side, c));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// At least this many connections in one second make a mass disconnect.
const MASS: usize = 5;

/// `span`: the first and last packet of all connections (the capture's
/// span as far as WebSocket goes).
pub fn mass_disconnects(conns: &[Digest], span: Option<(f64, f64)>) -> Vec<Diagnosis> {
    let events = disconnects(conns);
    let chance = Background::of(span, events.len());
    let times: Vec<f64> = events.iter().map(|e| e.0).collect();
    // The 1.0 s window holding the most events, again and again, while the
    // burst stands out.
    let groups = densest_windows(&times, 1.0, |k| k >= MASS && chance.stands_out(k));
    groups
        .iter()
        .map(|g| {
            let group: Vec<_> = g.iter().map(|&i| events[i]).collect();
            mass_entry(&group)
        })
        .collect()
}

/// The steady rate of disconnects over the capture, against which a burst
/// must stand out: a service whose connections end all the time (tens a
/// second) has 5 in some second by chance, and that is no event. With `n`
/// disconnects over `T` seconds, a 1 s window holds Poisson(n/T) of them by
/// chance; a group of `k` counts when `T * P(X >= k) < 0.05`. A burst in
/// an otherwise quiet capture passes easily (5 in one second out of 5 in a
/// minute: about 1e-4).
struct Background {
    rate: f64,
    windows: f64,
}

impl Background {
    fn of(span: Option<(f64, f64)>, events: usize) -> Background {
        let span = span.map_or(1.0, |(start, end)| (end - start).max(1.0));
        Background {
            rate: events as f64 / span,
            windows: span,
        }
    }

    fn stands_out(&self, k: usize) -> bool {
        self.windows.ln() + ln_poisson_tail(self.rate, k) < ALPHA_MASS.ln()
    }
}

/// Chance below which a burst of disconnects stands out.
const ALPHA_MASS: f64 = 0.05;

/// `ln P(X >= k)` for `X ~ Poisson(lambda)`.
fn ln_poisson_tail(lambda: f64, k: usize) -> f64 {
    if lambda <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if (k as f64) <= lambda {
        return 0.0;
    }
    // ln of the first term, e^-l l^k / k!, then the next terms relative to
    // it (each term/previous = l/(j+1) < 1 past k > l, so this converges).
    let ln_fact: f64 = (1..=k).map(|i| (i as f64).ln()).sum();
    let first = -lambda + k as f64 * lambda.ln() - ln_fact;
    let (mut sum, mut term) = (1.0, 1.0);
    for j in k..k + 10_000 {
        term *= lambda / (j + 1) as f64;
        sum += term;
        if term < 1e-12 * sum {
            break;
        }
    }
    first + sum.ln()
}

fn mass_entry(group: &[(f64, Side, &Digest)]) -> Diagnosis {
    let members: Vec<&Digest> = group.iter().map(|g| g.2).collect();
    let first = group.first().map_or(0.0, |g| g.0);
    let last = group.last().map_or(0.0, |g| g.0);
    let side = group.iter().all(|g| g.1 == group[0].1).then(|| group[0].1);
    let by = side.map_or("both sides".to_string(), |s| format!("the {}", s.name()));
    let message = format!(
        "{} connections were cut or closed with 1001/1012 by {by} within {} at {}, whatever their age and idle time: a restart, reload, deploy or network event",
        members.len(),
        fmt_short(last - first),
        fmt_utc(first)
    );
    let advice = "if it was a deploy or reload, drain connections gracefully (close them with 1001 or 1012 and let clients reconnect with backoff and jitter); otherwise look at what happened on that host or the network at that moment".to_string();
    entry(
        DiagnosisKind::MassDisconnect,
        side,
        &members,
        None,
        message,
        Some(advice),
    )
}

/// An epoch time as "2026-12-01 14:51:26.412 UTC".
pub fn fmt_utc(t: f64) -> String {
    // Saturating: a crafted capture can carry any time.
    let ms = (t * 1000.0).round() as i64;
    let (year, month, day, sod, nanos) = Ts(ms.saturating_mul(1_000_000)).utc_parts();
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        nanos / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic uniform spread of `n` values over `0..max`
    /// (splitmix64).
    fn random(n: usize, max: f64, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 11) as f64 / (1u64 << 53) as f64 * max
            })
            .collect()
    }

    /// The first way: every start and size judged again for every group.
    fn clusters_by_rescan(values: &[f64]) -> Vec<Vec<usize>> {
        let Some((mut order, range, lnf)) = sorted(values) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some((i, j)) = best_window(&order, values, range, &lnf) {
            out.push(order.drain(i..=j).collect());
        }
        out
    }

    /// The window of `order` (sorted) that stands out most: most members,
    /// then least likely by chance (the first way, as it was).
    fn best_window(
        order: &[usize],
        values: &[f64],
        range: f64,
        lnf: &[f64],
    ) -> Option<(usize, usize)> {
        let v = |k: usize| values[order[k]];
        let n = values.len();
        let m = order.len();
        let mut best: Option<(usize, usize, f64)> = None;
        let mut jmax = 0;
        for i in 0..m {
            jmax = jmax.max(i);
            while jmax + 1 < m && v(jmax + 1) - v(i) <= tolerance(v(jmax + 1)) {
                jmax += 1;
            }
            if jmax < i + 2 || v(i) < MIN_SECS {
                continue;
            }
            let last = (i + 2 + TRIES).min(jmax);
            for j in (i + 2..=last).chain(std::iter::once(jmax)) {
                let k = j - i + 1;
                let lnp = ln_chance(n, k, v(j) - v(i), tolerance(v(j)), range, lnf);
                let better = best.is_none_or(|(bi, bj, bp)| {
                    let bk = bj - bi + 1;
                    k > bk || (k == bk && lnp < bp)
                });
                if lnp < ALPHA.ln() && better {
                    best = Some((i, j, lnp));
                }
            }
        }
        best.map(|(i, j, _)| (i, j))
    }

    /// Groups found by judging again only the starts next to a group taken
    /// are the groups a full rescan finds, in the same order: on noise, on
    /// tight groups in noise, on groups touching within the tolerance, on
    /// many groups of many sizes, on ties.
    #[test]
    fn judging_again_only_near_a_group_finds_what_a_rescan_finds() {
        let mut cases: Vec<Vec<f64>> = Vec::new();
        for seed in 1..=60u64 {
            let mut v = random(120, 200.0, seed * 31);
            let centres = random(12, 190.0, seed * 77);
            let jitter = random(400, 1.0, seed * 131);
            let mut k = 0;
            for (g, c) in centres.iter().enumerate() {
                for _ in 0..(3 + (seed as usize + g) % 9) {
                    v.push(c + 2.0 + jitter[k] * if g % 2 == 0 { 0.01 } else { 0.8 });
                    k += 1;
                }
            }
            cases.push(v);
        }
        // Equal times (ties), a dense ramp, groups just a tolerance apart.
        cases.push(vec![30.0; 40]);
        cases.push((0..500).map(|i| 5.0 + f64::from(i) * 0.01).collect());
        cases.push(
            (0..60)
                .flat_map(|g| [10.0 + f64::from(g) * 0.55; 4])
                .collect(),
        );
        for (c, v) in cases.iter().enumerate() {
            assert_eq!(clusters(v), clusters_by_rescan(v), "case {c}");
        }
        assert!(cases.iter().filter(|v| clusters(v).len() >= 5).count() >= 30);
    }

    /// D1 on 300 random captures of 200 cut connections each: false
    /// groups are rare (about 1 %).
    #[test]
    fn uniform_noise_rarely_clusters() {
        let false_groups = (1..=300)
            .filter(|seed| !clusters(&random(200, 120.0, seed * 7919)).is_empty())
            .count();
        assert!(false_groups <= 8, "{false_groups} of 300");
        let false_small = (1..=300)
            .filter(|seed| !clusters(&random(40, 120.0, seed * 7919)).is_empty())
            .count();
        assert!(false_small <= 8, "{false_small} of 300");
    }

    /// Three connections cut after the same idle time (within 20 ms) among
    /// 40 at random times are found, whatever the noise.
    #[test]
    fn three_tight_among_forty_random_stand_out() {
        let mut exact = 0;
        for seed in 1..=100 {
            let mut v = random(40, 120.0, seed * 104_729);
            v.extend([45.0, 45.01, 45.02]);
            let c = clusters(&v);
            let found = c.iter().any(|g| (40..43).all(|i| g.contains(&i)));
            assert!(found, "seed {seed}: {c:?}");
            exact += usize::from(c.len() == 1);
        }
        assert!(exact >= 95, "{exact} of 100 found only that group");
    }

    #[test]
    fn a_real_timeout_on_its_own() {
        assert_eq!(clusters(&[2.001, 2.004, 2.01]).len(), 1);
        // Too loose for three alone, and too short to be a timeout.
        assert!(clusters(&[1.0, 1.4, 1.5]).is_empty());
        assert!(clusters(&[0.01, 0.011, 0.012, 0.013]).is_empty());
    }

    #[test]
    fn poisson_tail() {
        // P(X >= 5) for lambda 0.5: 1.7e-4.
        assert!((ln_poisson_tail(0.5, 5).exp() - 1.7212e-4).abs() < 1e-7);
        assert_eq!(ln_poisson_tail(50.0, 40), 0.0);
        let b = Background {
            rate: 5.0 / 60.0,
            windows: 60.0,
        };
        assert!(b.stands_out(5), "5 together in a quiet minute");
        let steady = Background {
            rate: 50.0,
            windows: 1000.0,
        };
        assert!(!steady.stands_out(60), "a steady 50 a second");
        assert!(steady.stands_out(200), "four times the rate in one second");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(fmt_utc(0.0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(fmt_utc(1_764_600_686.412_3), "2025-12-01 14:51:26.412 UTC");
        assert_eq!(fmt_utc(951_782_400.0), "2000-02-29 00:00:00.000 UTC");
    }
}
