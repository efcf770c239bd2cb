//! From recorded facts to the contract's connection object: the outcome
//! (rules 1 and 8), the connection-level findings, and the evidence the
//! diagnoses read. Messages give times relative to the upgrade, never
//! epoch seconds.

use super::tracker::{CloseSeen, ConnMeta, End, Tracker};
use super::{
    CloseFrame, CloseReport, ConnectionReport, Evidence, Finding, FramesBySide, Handshake, Kind,
    Outcome, Settings, Severity, Side, TcpEnd, TcpEndKind, Transport, fmt_secs, fmt_short,
};
use crate::Ts;
use crate::reassembly::Dir;
use crate::upgrade::accept_for_key;

/// One report in the making.
struct Verdict<'a> {
    t: &'a Tracker,
    meta: &'a ConnMeta,
    /// The client's direction.
    cd: Dir,
    timeout: Ts,
    /// The capture's end.
    end: Ts,
    /// What relative times in messages count from, and its name.
    origin: (Ts, &'static str),
    findings: Vec<Finding>,
}

impl Tracker {
    /// The connection's report as of `end`: the outcome and findings the
    /// capture gives if it ends then (for a connection whose TCP ended, any
    /// later time gives the same). `None` for a connection that is not
    /// WebSocket.
    pub fn report(
        &self,
        meta: &ConnMeta,
        end: Ts,
        settings: &Settings,
    ) -> Option<ConnectionReport> {
        if !self.is_websocket() {
            return None;
        }
        let mut v = Verdict::new(self, meta, self.client_dir(meta), settings, end);
        let handshake = v.handshake();
        let outcome = if v.upgraded() {
            v.closing()
        } else {
            v.rejected()
        };
        v.after_close_frames();
        v.closed_before_answer();
        v.masking();
        v.unanswered_pings();
        v.recorded();
        Some(v.finish(handshake, outcome))
    }

    /// The report of a TLS connection that could not be decrypted: outcome
    /// `encrypted`, its TCP end and the findings TCP shows (gaps, foreign
    /// resets); `client` sent the ClientHello, `idle_s` is the silence
    /// before its final burst (the contract's TLS section).
    pub fn encrypted_report(
        &self,
        meta: &ConnMeta,
        end: Ts,
        settings: &Settings,
        client: Dir,
        idle_s: Option<f64>,
    ) -> ConnectionReport {
        let mut v = Verdict::new(self, meta, client, settings, end);
        v.recorded();
        let mut r = v.finish(None, Outcome::Encrypted);
        r.close.idle_s = idle_s;
        r
    }

    /// Whether the TCP connection has ended (a FIN or an RST).
    pub fn ended(&self) -> bool {
        self.tcp_end.is_some()
    }

    /// Which direction is the client (contract: SYN sender, else request
    /// sender, else the side with masked frames, else the higher port).
    fn client_dir(&self, meta: &ConnMeta) -> Dir {
        if let Some(d) = [Dir::A, Dir::B].into_iter().find(|d| meta.syn[d.idx()]) {
            return d;
        }
        if let Some((_, d, _)) = &self.upgrade.request {
            return *d;
        }
        if let Some((_, d, _)) = &self.upgrade.response {
            return d.other();
        }
        let masked = |d: Dir| self.dirs[d.idx()].masked.is_some();
        match (masked(Dir::A), masked(Dir::B)) {
            (true, false) => Dir::A,
            (false, true) => Dir::B,
            _ => {
                if meta.lo.port >= meta.hi.port {
                    Dir::A
                } else {
                    Dir::B
                }
            }
        }
    }
}

fn secs(t: Ts) -> f64 {
    t.as_secs_f64()
}

impl<'a> Verdict<'a> {
    fn new(t: &'a Tracker, meta: &'a ConnMeta, cd: Dir, settings: &Settings, end: Ts) -> Self {
        let origin = match (&t.upgrade.response, &t.upgrade.request) {
            (Some((ts, _, _)), _) => (*ts, "the upgrade"),
            (None, Some((ts, _, _))) => (*ts, "the upgrade request"),
            _ => (meta.first_ts, "the first packet"),
        };
        Verdict {
            t,
            meta,
            cd,
            timeout: settings.close_timeout,
            end,
            origin,
            findings: Vec::new(),
        }
    }

    /// The report, findings in time order.
    fn finish(mut self, handshake: Option<Handshake>, outcome: Outcome) -> ConnectionReport {
        self.findings.sort_by(|a, b| {
            let ta = a.ts.unwrap_or(f64::MAX);
            let tb = b.ts.unwrap_or(f64::MAX);
            ta.total_cmp(&tb).then(a.kind.cmp(&b.kind))
        });
        let (t, meta, cd) = (self.t, self.meta, self.cd);
        ConnectionReport {
            id: 0,
            client: meta.src(cd).to_string(),
            server: meta.src(cd.other()).to_string(),
            first_ts: secs(meta.first_ts),
            last_ts: secs(meta.last_ts),
            handshake: handshake.map(Box::new),
            frames: FramesBySide {
                client: t.dirs[cd.idx()].frames,
                server: t.dirs[cd.other().idx()].frames,
            },
            close: self.close_report(outcome),
            evidence: self.evidence(),
            findings: self.findings,
            transport: Transport::Tcp,
            tls: None,
            close_codes: t.close_codes.iter().map(|(c, n)| (*c, *n)).collect(),
            order: meta.order,
        }
    }
}

impl Verdict<'_> {
    fn side(&self, d: Dir) -> Side {
        if d == self.cd {
            Side::Client
        } else {
            Side::Server
        }
    }

    fn add(&mut self, kind: Kind, side: Option<Side>, ts: Ts, message: String) {
        self.add_as(kind, kind.severity(), side, ts, message);
    }

    fn add_as(&mut self, kind: Kind, severity: Severity, side: Option<Side>, ts: Ts, msg: String) {
        self.findings.push(Finding {
            kind,
            severity,
            side,
            ts: Some(secs(ts)),
            message: msg,
        });
    }

    /// "12.4 s after the upgrade".
    fn rel(&self, ts: Ts) -> String {
        let (o, name) = self.origin;
        if ts >= o {
            format!("{} after {name}", fmt_short(ts.secs_since(o)))
        } else {
            format!("{} before {name}", fmt_short(o.secs_since(ts)))
        }
    }

    fn end_desc(&self, e: End) -> String {
        format!("{} from the {}", e.kind.upper(), self.side(e.by).name())
    }

    fn close_of(&self, d: Dir) -> Option<&CloseSeen> {
        self.t.dirs[d.idx()].close.as_deref()
    }

    /// The handshake object, with `invalid_accept` when the 101 is wrong.
    fn handshake(&mut self) -> Option<Handshake> {
        let up = &self.t.upgrade;
        // No request seen: midstream, no handshake to report (a 101 seen
        // alone still sets the RSV rules).
        let req = up.request.as_ref().map(|(t, _, r)| (*t, r))?;
        let resp = up.response.as_ref().map(|(t, _, r)| (*t, r));
        let want = req.1.key.as_deref().map(accept_for_key);
        let got = resp.and_then(|(_, r)| r.accept.as_deref());
        let accept_valid = match (&want, got) {
            (Some(w), Some(g)) => Some(w == g.trim()),
            _ => None,
        };
        if let Some((ts, r)) = resp
            && r.status == 101
        {
            let problem = match (got, &want, accept_valid) {
                (None, _, _) => Some(
                    "the 101 response has no Sec-WebSocket-Accept header: the client was right to fail the connection"
                        .to_string(),
                ),
                (Some(g), Some(w), Some(false)) => Some(format!(
                    "Sec-WebSocket-Accept is {g:?} but the key requires {w:?}"
                )),
                _ => None,
            };
            if let Some(msg) = problem {
                self.add(Kind::InvalidAccept, Some(Side::Server), ts, msg);
            }
        }
        Some(Handshake {
            request_ts: Some(secs(req.0)),
            response_ts: resp.map(|(t, _)| secs(t)),
            path: Some(req.1.path.clone()),
            host: req.1.host.clone(),
            status: resp.map(|(_, r)| r.status),
            accept_valid,
            subprotocol: resp.and_then(|(_, r)| r.protocol.clone()),
            extensions: resp.map(|(_, r)| r.extensions.clone()).unwrap_or_default(),
        })
    }

    /// The TCP end, when it came before the upgrade response (rule 8).
    fn ended_before_response(&self) -> Option<(End, Ts)> {
        let up = &self.t.upgrade;
        up.request.as_ref()?;
        let resp = up.response.as_ref().map(|(t, _, _)| *t)?;
        self.t.tcp_end.filter(|e| e.ts < resp).map(|e| (e, resp))
    }

    /// Whether the upgrade went through (rule 8).
    fn upgraded(&self) -> bool {
        if self.ended_before_response().is_some() {
            return false;
        }
        let t = self.t;
        let status = t.upgrade.response.as_ref().map(|(_, _, r)| r.status);
        // A response lost to a capture gap, with frames after it: the
        // upgrade evidently went through.
        let frames_seen = t
            .dirs
            .iter()
            .any(|d| d.masked.is_some() || d.unmasked.is_some());
        status == Some(101)
            || (t.midstream && status.is_none())
            || (t.response_lost && status.is_none() && frames_seen)
    }

    fn rejected(&mut self) -> Outcome {
        let server = Some(Side::Server);
        if let Some((e, resp)) = self.ended_before_response() {
            let msg = format!(
                "the TCP connection ended ({}) before the upgrade response, which came {} later",
                self.end_desc(e),
                fmt_secs(resp.secs_since(e.ts))
            );
            self.add(Kind::HandshakeRejected, server, e.ts, msg);
            return Outcome::Rejected;
        }
        match (&self.t.upgrade.response, self.t.tcp_end) {
            (Some((ts, _, r)), _) => {
                let msg = format!("the server answered the upgrade with HTTP {}", r.status);
                self.add(Kind::HandshakeRejected, server, *ts, msg);
                Outcome::Rejected
            }
            (None, Some(e)) => {
                let msg = format!(
                    "no response came to the upgrade request before the TCP connection ended ({}, {})",
                    self.end_desc(e),
                    self.rel(e.ts)
                );
                self.add(Kind::HandshakeRejected, server, e.ts, msg);
                Outcome::Rejected
            }
            (None, None) => Outcome::Open,
        }
    }

    /// Where idle time counts from (rule 11): the last frame before the
    /// closing began, else the upgrade, else the first packet.
    fn idle_from(&self) -> Ts {
        let up = &self.t.upgrade;
        self.t
            .last_frame
            .or(up.response.as_ref().map(|(t, _, _)| *t))
            .or(up.request.as_ref().map(|(t, _, _)| *t))
            .unwrap_or(self.meta.first_ts)
    }

    /// The outcome of an upgraded connection (rule 1).
    fn closing(&mut self) -> Outcome {
        let tcp_end = self.t.tcp_end;
        let Some((d, c1)) = self.t.first_close else {
            let Some(e) = tcp_end else {
                return Outcome::Open;
            };
            let msg = format!(
                "the TCP connection ended ({}) without a close frame from either side, {} after the last activity (browsers report 1006)",
                self.end_desc(e),
                fmt_secs(e.ts.secs_since(self.idle_from()))
            );
            self.add(Kind::AbnormalClosure, Some(self.side(e.by)), e.ts, msg);
            return Outcome::Abnormal;
        };
        let deadline = c1.saturating_add(self.timeout);
        let answer = self.close_of(d.other()).map(|c| c.ts);
        let (closer, silent) = (self.side(d), self.side(d.other()));
        if answer.is_some_and(|a| a <= deadline) {
            return Outcome::Clean;
        }
        if let Some(e) = tcp_end.filter(|e| e.ts < deadline) {
            let msg = format!(
                "the {} sent a close frame but the {} never answered it; the TCP connection ended ({}) {} later",
                closer.name(),
                silent.name(),
                self.end_desc(e),
                fmt_secs(e.ts.secs_since(c1))
            );
            self.add(Kind::UnansweredClose, Some(silent), e.ts, msg);
            return Outcome::Unanswered;
        }
        if self.end < deadline {
            return Outcome::Pending;
        }
        let limit = fmt_secs(self.timeout.as_secs_f64());
        let (severity, msg) = match answer {
            Some(a) => (
                Severity::Warning,
                format!(
                    "the {} answered the {}'s close frame after {}, later than the close timeout of {limit}",
                    silent.name(),
                    closer.name(),
                    fmt_secs(a.secs_since(c1)),
                ),
            ),
            None => (
                Severity::Error,
                format!(
                    "the {} never answered the {}'s close frame (sent {}; close timeout {limit})",
                    silent.name(),
                    closer.name(),
                    self.rel(c1),
                ),
            ),
        };
        self.add_as(Kind::CloseTimeout, severity, Some(silent), deadline, msg);
        Outcome::Timeout
    }

    /// After both close frames: how TCP went down (rule 9, 7.1.1).
    fn after_close_frames(&mut self) {
        let (Some(cc), Some(sc)) = (self.close_of(self.cd), self.close_of(self.cd.other())) else {
            return;
        };
        let later = cc.ts.max(sc.ts);
        let limit = later.saturating_add(self.timeout);
        let tcp_end = self.t.tcp_end;
        let ended_in_time = tcp_end.is_some_and(|e| e.ts <= limit);
        if !ended_in_time && self.end >= limit {
            let msg = format!(
                "both close frames were exchanged but no FIN or RST came within {} of the last one",
                fmt_secs(self.timeout.as_secs_f64())
            );
            self.add(Kind::TcpNotClosed, Some(Side::Server), limit, msg);
        }
        if let Some(e) = tcp_end.filter(|e| self.side(e.by) == Side::Client && e.ts >= later) {
            let msg = format!(
                "after the close handshake the client ended TCP first ({}, {} after the last close frame); RFC 6455 7.1.1 says the server should",
                e.kind.upper(),
                fmt_secs(e.ts.secs_since(later))
            );
            self.add(Kind::ClientClosedTcpFirst, Some(Side::Client), e.ts, msg);
        }
    }

    /// A side that sent its close frame and ended TCP before the answer
    /// came (D3: its FIN/RST is the first TCP end, the answer seen after).
    fn closed_before_answer(&mut self) {
        let (Some((d, c1)), Some(e)) = (self.t.first_close, self.t.tcp_end) else {
            return;
        };
        let Some(answer) = self.close_of(d.other()).map(|c| c.ts) else {
            return;
        };
        if e.by != d || e.ts < c1 || answer <= e.ts {
            return;
        }
        let (x, y) = (self.side(d), self.side(d.other()));
        let msg = format!(
            "the {} sent its close frame and ended TCP ({}) {} later, before the {}'s close frame arrived ({} after the {}): the answer met a closed socket, and the {}'s application may report 1006",
            x.name(),
            e.kind.upper(),
            fmt_secs(e.ts.secs_since(c1)),
            y.name(),
            fmt_secs(answer.secs_since(e.ts)),
            e.kind.upper(),
            y.name(),
        );
        self.add(Kind::ClosedBeforeAnswer, Some(x), e.ts, msg);
    }

    /// Masking (RFC 6455 5.1), judged now that the client is known.
    fn masking(&mut self) {
        let unmasked = self.t.dirs[self.cd.idx()].unmasked;
        let masked = self.t.dirs[self.cd.other().idx()].masked;
        for (facts, side, what) in [
            (unmasked, Side::Client, "unmasked"),
            (masked, Side::Server, "masked"),
        ] {
            if let Some((ts, n)) = facts {
                let msg = if n == 1 {
                    format!("1 {what} frame from the {}, {}", side.name(), self.rel(ts))
                } else {
                    format!(
                        "{n} {what} frames from the {}, the first {}",
                        side.name(),
                        self.rel(ts)
                    )
                };
                let kind = match side {
                    Side::Client => Kind::UnmaskedClientFrame,
                    Side::Server => Kind::MaskedServerFrame,
                };
                self.add(kind, Some(side), ts, msg);
            }
        }
    }

    /// Pings no pong answered within the close timeout (RFC 6455 5.5.2),
    /// while the connection stayed open that long (D3).
    fn unanswered_pings(&mut self) {
        for d in [self.cd, self.cd.other()] {
            let p = self.t.dirs[d.idx()].pings;
            let Some(first) = p.first else { continue };
            let deadline = first.saturating_add(self.timeout);
            let open_long_enough = self.t.tcp_end.is_none_or(|e| e.ts > deadline);
            if !open_long_enough || self.end < deadline {
                continue;
            }
            let (pinger, silent) = (self.side(d), self.side(d.other()));
            let msg = format!(
                "the {} answered none of the {} ping(s) the {} sent, the first {}, within the close timeout of {}",
                silent.name(),
                p.count,
                pinger.name(),
                self.rel(first),
                fmt_secs(self.timeout.as_secs_f64())
            );
            self.add(Kind::UnansweredPing, Some(silent), deadline, msg);
        }
    }

    /// Findings recorded as the frames went by.
    fn recorded(&mut self) {
        for s in &self.t.seen {
            let sd = s.dir.map(|d| self.side(d));
            let who = sd.map(Side::name).unwrap_or("connection");
            let when = self.rel(s.ts);
            let msg = match s.kind {
                Kind::CaptureGap => format!(
                    "{} sent by the {who} are missing from the capture ({} gap(s), the first {when}); the analysis after it may be incomplete",
                    // A gap in decrypted data (its keys came late, or a
                    // record could not be read) has no known size.
                    if s.bytes == 0 || s.bytes >= u64::MAX / 2 {
                        "bytes".to_string()
                    } else {
                        format!("{} byte(s)", s.bytes)
                    },
                    s.count,
                ),
                Kind::ResetAfterClose => format!(
                    "the {who} reset the TCP connection (RST) after the closing handshake began, {when}{}",
                    times(s.count, "RSTs")
                ),
                Kind::ForeignReset => format!(
                    "an RST claiming to come from the {who} had {}, {when}: injected by a middlebox on the path, not sent by the {who}{}",
                    s.detail,
                    times(s.count, "foreign RSTs")
                ),
                Kind::MalformedFrame => format!(
                    "bytes from the {who} cannot be a frame ({}), {when}; that direction is no longer decoded",
                    s.detail
                ),
                _ if s.count > 1 => format!(
                    "{} from the {who}, {when} ({} such frames in all)",
                    s.detail, s.count
                ),
                _ => format!("{} from the {who}, {when}", s.detail),
            };
            self.findings.push(Finding {
                kind: s.kind,
                severity: s.kind.severity(),
                side: sd,
                ts: Some(secs(s.ts)),
                message: msg,
            });
        }
        if self.t.midstream {
            self.add(
                Kind::Midstream,
                None,
                self.meta.first_ts,
                "the capture starts after the upgrade handshake: no handshake to check".into(),
            );
        }
    }

    fn close_report(&self, outcome: Outcome) -> CloseReport {
        let t = self.t;
        let tcp_end = t.tcp_end;
        // Rule 11: idle time up to the first close frame, else the TCP end.
        let idle_to = t.first_close.map(|(_, t)| t).or(tcp_end.map(|e| e.ts));
        let idle_s = idle_to.map(|to| to.secs_since(self.idle_from()));
        let handshake_s = t
            .first_close
            .and_then(|(d, c1)| self.close_of(d.other()).map(|c| c.ts.secs_since(c1)));
        let frame = |c: Option<&CloseSeen>| {
            c.map(|c| CloseFrame {
                ts: secs(c.ts),
                code: c.payload.code,
                reason: c.payload.reason.clone(),
                reason_valid_utf8: c.payload.reason_valid_utf8,
                payload_len: c.payload_len,
            })
        };
        CloseReport {
            outcome,
            initiator: t.first_close.map(|(d, _)| self.side(d)),
            client_frame: frame(self.close_of(self.cd)),
            server_frame: frame(self.close_of(self.cd.other())),
            handshake_s,
            idle_s: if outcome == Outcome::Rejected {
                None
            } else {
                idle_s
            },
            tcp_end: match tcp_end {
                Some(e) => TcpEnd {
                    kind: e.kind,
                    by: Some(self.side(e.by)),
                    ts: Some(secs(e.ts)),
                },
                None => TcpEnd {
                    kind: TcpEndKind::None,
                    by: None,
                    ts: None,
                },
            },
        }
    }

    fn evidence(&self) -> Evidence {
        let t = self.t;
        let dirs = [self.cd, self.cd.other()];
        let start = t
            .upgrade
            .response
            .as_ref()
            .map_or(self.meta.first_ts, |(ts, _, _)| *ts);
        // The earliest ping still waiting for its pong, by the side that
        // did not answer it.
        let unanswered_ping = dirs
            .iter()
            .filter_map(|d| {
                let p = t.dirs[d.idx()].pings;
                p.first.map(|f| (self.side(d.other()), f, p.count))
            })
            .min_by_key(|(_, f, _)| *f)
            .map(|(s, f, n)| (s, secs(f), n));
        Evidence {
            start_ts: secs(start),
            largest_message: dirs.map(|d| t.dirs[d.idx()].largest_message),
            largest_before_close: dirs.map(|d| self.close_of(d).map(|c| c.other_largest)),
            unanswered_ping,
            ttl: dirs.map(|d| self.meta.first_ttl(d)),
        }
    }
}

/// " (3 RSTs)" when there was more than one.
fn times(n: u64, what: &str) -> String {
    if n > 1 {
        format!(" ({n} {what})")
    } else {
        String::new()
    }
}
