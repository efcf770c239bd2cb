//! Adds up what every generated connection must give in wsclose's summary,
//! and decides which diagnoses the mix must produce (docs/contract/
//! DIAGNOSES.md, with the chance test of wsclose's `diagnose::timing`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::script::{IDLE_US, KINDS, Kind, Tally};
use crate::truth::{DiagnosisTruth, KindTruth, Numbering, Truth};

const FRAME_COLUMNS: [&str; 7] = [
    "text",
    "binary",
    "continuation",
    "ping",
    "pong",
    "close",
    "payload_bytes",
];
const OUTCOMES: [&str; 8] = [
    "clean",
    "unanswered",
    "timeout",
    "abnormal",
    "pending",
    "open",
    "rejected",
    "encrypted",
];

/// Running totals of the connections opened so far.
#[derive(Default)]
pub struct Account {
    pub per_kind: [u64; KINDS.len()],
    frames: [[u64; 7]; 2],
    codes: BTreeMap<u16, u64>,
    pub packets: u64,
    pub bytes: u64,
    /// Each connection's kind letter, in the order opened.
    per_connection: String,
}

impl Account {
    pub fn add(&mut self, kind: Kind, t: &Tally) {
        self.per_kind[kind.idx()] += 1;
        self.per_connection.push(kind.letter());
        for (side, cols) in self.frames.iter_mut().enumerate() {
            for (c, v) in cols.iter_mut().enumerate() {
                *v += t.frames[side][c];
            }
        }
        for code in t.codes.iter().flatten() {
            *self.codes.entry(*code).or_default() += 1;
        }
        self.packets += t.packets;
        self.bytes += t.bytes;
    }

    fn count(&self, k: Kind) -> u64 {
        self.per_kind[k.idx()]
    }

    /// The truth of everything added.
    pub fn truth(&self, params: BTreeMap<String, String>) -> Truth {
        let mut t = Truth {
            params,
            packets: self.packets,
            bytes: self.bytes,
            connections: self.per_kind.iter().sum(),
            ..Truth::default()
        };
        for o in OUTCOMES {
            t.outcomes.insert(o.into(), 0);
        }
        for s in ["error", "warning", "info"] {
            t.severities.insert(s.into(), 0);
        }
        for (kind, _) in KINDS {
            let n = self.count(kind);
            *t.outcomes.entry(kind.outcome().into()).or_default() += n;
            for fact in kind.facts() {
                *t.connection_facts.entry(fact.into()).or_default() += n;
            }
            for (f, sev, _) in kind.findings() {
                *t.findings.entry((*f).into()).or_default() += n;
                *t.severities.entry((*sev).into()).or_default() += n;
            }
        }
        t.findings.retain(|_, v| *v > 0);
        t.close_codes = self
            .codes
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        for (side, name) in ["client", "server"].iter().enumerate() {
            let cols = FRAME_COLUMNS
                .iter()
                .zip(self.frames[side])
                .map(|(c, v)| (c.to_string(), v))
                .collect();
            t.frames.insert((*name).into(), cols);
        }
        let flows = t.connections;
        for (k, v) in [
            ("tcp_segments", self.packets),
            ("tcp_flows", flows),
            ("out_of_order_segments", 0),
            ("retransmitted_segments", 0),
            ("gaps", 0),
            ("gap_bytes", 0),
        ] {
            t.analysis.insert(k.into(), v);
        }
        t.connection_facts.retain(|_, v| *v > 0);
        t.zero = [
            "sources.not_tcp",
            "sources.undecodable",
            "sources.corrupt_records",
            "limits.flows_evicted",
            "limits.websocket_flows_evicted",
            "limits.packets_of_evicted_flows",
            "limits.holes_given_up",
            "limits.buffered_bytes_shed",
        ]
        .map(String::from)
        .to_vec();
        t.diagnoses = self.diagnoses();
        self.per_connection_truth(&mut t);
        t
    }

    /// Each connection's kind, and what each kind must be: so a wrong
    /// verdict shows even where totals would balance out.
    fn per_connection_truth(&self, t: &mut Truth) {
        t.numbering = Some(Numbering {
            first_ip: Ipv4Addr::from(crate::conn::FIRST_CLIENT_IP).to_string(),
            per_ip: crate::conn::CLIENTS_PER_IP,
            first_port: crate::conn::FIRST_CLIENT_PORT,
        });
        t.per_connection = self.per_connection.clone();
        for (kind, _) in KINDS {
            let mut findings: Vec<String> = kind
                .findings()
                .iter()
                .map(|(f, _, side)| format!("{f}:{side}"))
                .collect();
            findings.sort();
            let k = KindTruth {
                name: format!("{kind:?}"),
                outcome: kind.outcome().into(),
                findings,
            };
            t.kinds.insert(kind.letter().to_string(), k);
        }
    }

    /// The diagnoses the mix must give. Mass disconnects cannot happen (cut
    /// instants are spaced), lifetimes form no pattern (see `data_plan`),
    /// no pings go unanswered and every TTL is 64.
    fn diagnoses(&self) -> Vec<DiagnosisTruth> {
        let mut out = Vec::new();
        let idle = self.count(Kind::IdleCut);
        let server_cuts = idle + self.count(Kind::Abnormal);
        if idle >= 3 && idle_group_stands_out(server_cuts, idle) {
            out.push(DiagnosisTruth {
                kind: "idle_timeout".into(),
                side: Some("server".into()),
                connections: idle,
                code: None,
                value_s: Some(IDLE_US as f64 / 1e6),
            });
        }
        let errors = self.count(Kind::ServerError1011);
        if errors > 0 {
            out.push(DiagnosisTruth {
                kind: "error_close_codes".into(),
                side: Some("server".into()),
                connections: errors,
                code: Some(1011),
                value_s: None,
            });
        }
        // The server leaves closes unanswered; it answers the others.
        let answered = self.count(Kind::CleanClient)
            + self.count(Kind::CleanClientFinFirst)
            + self.count(Kind::RstAfterClose);
        let silent = self.count(Kind::Unanswered) + self.count(Kind::Timeout);
        if answered == 0 && silent >= 2 {
            out.push(DiagnosisTruth {
                kind: "never_answers_close".into(),
                side: Some("server".into()),
                connections: silent,
                code: None,
                value_s: None,
            });
        }
        out
    }
}

/// The chance test of DIAGNOSES.md rule D1 as wsclose applies it (alpha
/// 0.005): `k` idle times all equal among `n` cuts of the side, the others
/// below 1 s, the largest value the idle time.
fn idle_group_stands_out(n: u64, k: u64) -> bool {
    let ln_fact = |m: u64| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
    let idle = IDLE_US as f64 / 1e6;
    let tol = (0.02 * idle).max(0.5);
    let span = 0.01 * tol;
    let ln_choose = ln_fact(n) - ln_fact(k) - ln_fact(n - k);
    let lnp = ln_choose + (k as f64).ln() + (k as f64 - 1.0) * (span / idle).ln();
    lnp < 0.005f64.ln()
}
