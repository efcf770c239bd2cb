//! What the diagnoses keep of the decided connections. A connection's full
//! report goes to the spool ([`crate::report::Connections`]); the
//! diagnoses keep a digest (the few fields they read, about 240 bytes)
//! only of connections that can count in one of them ([`counts`]), and of
//! every other connection only what it adds to the run: the capture's span
//! and which addresses answered close frames. A million clean connections
//! then cost nothing here.

use std::collections::HashSet;
use std::sync::Arc;

use super::counts;
use crate::close::{ConnectionReport, Evidence, Kind, Outcome, Side, TcpEnd, host_of};

/// A close frame as the diagnoses read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDigest {
    pub ts: f64,
    pub code: Option<u16>,
}

/// The contract's `close` object without reasons and lengths.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseDigest {
    pub outcome: Outcome,
    pub initiator: Option<Side>,
    pub client_frame: Option<FrameDigest>,
    pub server_frame: Option<FrameDigest>,
    pub idle_s: Option<f64>,
    pub tcp_end: TcpEnd,
}

impl CloseDigest {
    /// The first close frame of the connection (the initiator's).
    pub fn first_frame(&self) -> Option<&FrameDigest> {
        self.frame_of(self.initiator?)
    }

    pub fn frame_of(&self, side: Side) -> Option<&FrameDigest> {
        match side {
            Side::Client => self.client_frame.as_ref(),
            Side::Server => self.server_frame.as_ref(),
        }
    }
}

/// A finding without its message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindingDigest {
    pub kind: Kind,
    pub side: Option<Side>,
    pub ts: Option<f64>,
}

/// One connection as the diagnoses read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The order of the connection's first packet until the run ends, then
    /// its id.
    pub id: u64,
    /// The client's host (its port changes with every connection).
    pub client: Arc<str>,
    /// The server's `ip:port`.
    pub server: Arc<str>,
    pub close: CloseDigest,
    pub findings: Box<[FindingDigest]>,
    pub evidence: Evidence,
}

impl Digest {
    /// The address of one side: `ip:port` for the server, the bare IP for
    /// a client.
    pub fn address_of(&self, side: Side) -> String {
        self.address(side).to_string()
    }

    pub(super) fn address(&self, side: Side) -> &Arc<str> {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }
}

/// The decided connections of a run, as the diagnoses need them.
#[derive(Debug, Default)]
pub struct Digests {
    /// Digests of the connections that can count in a diagnosis.
    pub conns: Vec<Digest>,
    /// First and last packet over all connections.
    pub span: Option<(f64, f64)>,
    /// (side, address) that answered a close frame on some connection.
    pub answered: HashSet<(Side, Arc<str>)>,
    /// Every address once (a million connections from one client share it).
    addresses: HashSet<Arc<str>>,
    /// Keep every digest (tests: the filter must change nothing).
    #[cfg(test)]
    pub keep_all: bool,
}

impl Digests {
    /// Takes what the diagnoses need of a decided connection.
    pub fn add(&mut self, r: &ConnectionReport) {
        self.span = Some(match self.span {
            None => (r.first_ts, r.last_ts),
            Some((a, b)) => (a.min(r.first_ts), b.max(r.last_ts)),
        });
        let d = self.digest(r);
        self.add_digest(d);
    }

    /// Keeps a digest if it can count, and what it adds to the run.
    fn add_digest(&mut self, d: Digest) {
        if let Some(init) = d.close.initiator {
            let silent = init.other();
            if d.close.frame_of(silent).is_some() {
                self.answered.insert((silent, d.address(silent).clone()));
            }
        }
        #[cfg(test)]
        let keep = self.keep_all || counts(&d);
        #[cfg(not(test))]
        let keep = counts(&d);
        if keep {
            self.conns.push(d);
        }
    }

    fn intern(&mut self, a: &str) -> Arc<str> {
        if let Some(x) = self.addresses.get(a) {
            return x.clone();
        }
        let x: Arc<str> = Arc::from(a);
        self.addresses.insert(x.clone());
        x
    }

    fn digest(&mut self, r: &ConnectionReport) -> Digest {
        let frame = |f: &Option<crate::close::CloseFrame>| {
            f.as_ref().map(|f| FrameDigest {
                ts: f.ts,
                code: f.code,
            })
        };
        let c = &r.close;
        Digest {
            id: r.order,
            client: self.intern(host_of(&r.client)),
            server: self.intern(&r.server),
            close: CloseDigest {
                outcome: c.outcome,
                initiator: c.initiator,
                client_frame: frame(&c.client_frame),
                server_frame: frame(&c.server_frame),
                idle_s: c.idle_s,
                tcp_end: c.tcp_end.clone(),
            },
            findings: r
                .findings
                .iter()
                .map(|f| FindingDigest {
                    kind: f.kind,
                    side: f.side,
                    ts: f.ts,
                })
                .collect(),
            evidence: r.evidence.clone(),
        }
    }

    /// Gives the digests their ids (`id_of` maps a first packet's order to
    /// the connection's id) and puts them in id order.
    pub fn number(&mut self, id_of: impl Fn(u64) -> Option<u64>) {
        for d in &mut self.conns {
            d.id = id_of(d.id).unwrap_or(0);
        }
        self.conns.sort_unstable_by_key(|d| d.id);
        self.conns.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::TcpEndKind;
    use crate::diagnose::diagnose;
    use strum::VariantArray;

    /// xorshift64*: random digests without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[(self.next() % xs.len() as u64) as usize]
        }
        fn secs(&mut self, max: f64) -> f64 {
            (self.next() % 1_000_000) as f64 / 1_000_000.0 * max
        }
    }

    fn random_digest(g: &mut Rng, id: u64) -> Digest {
        let sides = [None, Some(Side::Client), Some(Side::Server)];
        let codes = [
            None,
            Some(1000),
            Some(1001),
            Some(1002),
            Some(1009),
            Some(1011),
            Some(1012),
            Some(4000),
        ];
        let start = g.secs(100.0);
        let frame = |g: &mut Rng| {
            (g.next() % 3 != 0).then(|| FrameDigest {
                ts: start + g.pick(&[5.0, 30.0, 60.0]) + g.secs(0.01),
                code: g.pick(&codes),
            })
        };
        let client_frame = frame(g);
        let server_frame = frame(g);
        let kinds = [
            Kind::ClosedBeforeAnswer,
            Kind::ForeignReset,
            Kind::MaskedServerFrame,
            Kind::InvalidUtf8Text,
            Kind::AbnormalClosure,
        ];
        let findings = (0..g.next() % 3)
            .map(|_| FindingDigest {
                kind: g.pick(&kinds),
                side: g.pick(&sides),
                ts: Some(start + g.secs(70.0)),
            })
            .collect();
        let ping = (g.next() % 4 == 0).then(|| {
            (
                g.pick(&[Side::Client, Side::Server]),
                start + g.secs(20.0),
                3,
            )
        });
        Digest {
            id,
            client: Arc::from(g.pick(&["10.0.0.1", "10.0.0.2"])),
            server: Arc::from(g.pick(&["10.0.0.9:80", "10.0.0.9:443"])),
            close: CloseDigest {
                outcome: g.pick(Outcome::VARIANTS),
                initiator: g.pick(&sides),
                client_frame,
                server_frame,
                idle_s: (g.next() % 4 != 0).then(|| g.pick(&[0.5, 30.0, 60.0]) + g.secs(0.01)),
                tcp_end: TcpEnd {
                    kind: g.pick(&[TcpEndKind::Fin, TcpEndKind::Rst, TcpEndKind::None]),
                    by: g.pick(&sides),
                    ts: (g.next() % 5 != 0)
                        .then(|| start + g.pick(&[30.0, 60.0, 61.0]) + g.secs(0.01)),
                },
            },
            findings,
            evidence: Evidence {
                start_ts: start,
                largest_before_close: [Some(g.next() % 5000), None],
                unanswered_ping: ping,
                ..Evidence::default()
            },
        }
    }

    /// Only digests that can count are kept: on random connections (every
    /// outcome, the codes the diagnoses read, cut or not, pings lost or
    /// not), the diagnoses are the same as with every digest kept.
    #[test]
    fn keeping_only_what_counts_changes_no_diagnosis() {
        let mut g = Rng(0x9e37_79b9_7f4a_7c15);
        let mut found = 0;
        for round in 0..1500 {
            let n = 1 + g.next() % 40;
            let (mut all, mut some) = (
                Digests {
                    keep_all: true,
                    ..Digests::default()
                },
                Digests::default(),
            );
            for id in 1..=n {
                let d = random_digest(&mut g, id);
                all.add_digest(d.clone());
                some.add_digest(d);
            }
            all.span = Some((0.0, 200.0));
            some.span = all.span;
            let settings = crate::close::Settings::default();
            let (a, b) = (diagnose(&all, &settings), diagnose(&some, &settings));
            assert_eq!(a, b, "round {round}");
            found += a.len();
        }
        // The random connections do make diagnoses (the test can fail).
        assert!(found > 1000, "only {found} diagnoses");
    }

    /// The README states what a decided connection costs in memory.
    #[test]
    fn a_digest_stays_under_the_size_the_readme_states() {
        let n = std::mem::size_of::<super::Digest>();
        eprintln!("Digest: {n} bytes");
        assert!(n <= 240, "{n} bytes");
    }
}
