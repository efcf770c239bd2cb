//! Reports: the JSON summary of the output contract (`wsclose-summary/1`)
//! and the human tables.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use strum::VariantArray;

use crate::analyzer::TlsCounts;
use crate::close::{Outcome, Settings, Severity};
use crate::diagnose::Diagnosis;
use crate::tls::NotDecrypted;

pub(crate) mod collect;
pub(crate) mod connections;
mod diagnoses;
mod findings;
pub mod html;
pub mod human;
mod json;
pub(crate) mod jsonl;
mod tables;

pub use collect::{Collected, Collector, Connections};
pub use human::{ColorChoice, TableOptions};

pub const SCHEMA: &str = "wsclose-summary/1";

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SettingsOut {
    pub close_timeout_s: f64,
}

/// One input, as the contract's `sources[]` entry, plus what was skipped.
#[derive(Debug, Serialize, Clone)]
pub struct Source {
    pub kind: &'static str,
    pub name: String,
    pub link_type: String,
    pub packets: u64,
    pub bytes: u64,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub dropped: Option<u64>,
    /// Packets of other protocols (UDP, ARP ...), skipped. Not in the v1
    /// contract: an addition.
    pub not_tcp: u64,
    /// Packets that did not decode (garbage, fragments, unsupported link).
    pub undecodable: u64,
    /// Something of the input could not be read: it ended in a cut-short
    /// record, or corrupt records were skipped.
    pub truncated: bool,
    /// Corrupt records skipped (reading resumed at the next good record).
    pub corrupt_records: u64,
    /// Live capture: the kernel's counters (`null` for files).
    pub kernel: Option<KernelStats>,
}

/// libpcap's statistics of a live capture.
#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct KernelStats {
    /// Packets that passed the filter, as the kernel counts them (on `lo`
    /// each packet is seen twice, outgoing and incoming).
    pub received: u64,
    /// Dropped because the capture buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// Connections per outcome; every outcome is a key, zero or not.
#[derive(Debug, Default)]
pub struct Outcomes([u64; Outcome::VARIANTS.len()]);

impl Outcomes {
    fn add(&mut self, o: Outcome) {
        self.0[o as usize] += 1;
    }

    pub fn get(&self, o: Outcome) -> u64 {
        self.0[o as usize]
    }
}

impl Serialize for Outcomes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for o in Outcome::VARIANTS {
            m.serialize_entry(o.name(), &self.get(*o))?;
        }
        m.end()
    }
}

#[derive(Debug, Serialize, Default)]
pub struct Severities {
    pub error: u64,
    pub warning: u64,
    pub info: u64,
}

#[derive(Debug, Serialize)]
pub struct Totals {
    pub connections: u64,
    pub outcomes: Outcomes,
    pub close_codes: BTreeMap<String, u64>,
    pub findings: BTreeMap<String, u64>,
    pub severities: Severities,
}

/// Counters of the analysis itself. Not in the v1 contract: an addition.
#[derive(Debug, Serialize, Default, Clone)]
pub struct AnalysisStats {
    pub tcp_segments: u64,
    pub tcp_flows: u64,
    pub out_of_order_segments: u64,
    pub retransmitted_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// TLS connections, listed or not (the contract's `analysis.tls`).
    pub tls: TlsAnalysis,
    /// TCP segments cut short by the capture's snap length.
    pub cut_segments: u64,
    /// Flows of plain HTTP (requests without an upgrade).
    pub plain_http_flows: u64,
}

/// TLS connections seen, decrypted, and why the others were not.
#[derive(Debug, Serialize, Default, Clone)]
pub struct TlsAnalysis {
    pub seen: u64,
    pub decrypted: u64,
    pub not_decrypted: BTreeMap<&'static str, u64>,
}

impl From<TlsCounts> for TlsAnalysis {
    fn from(c: TlsCounts) -> Self {
        TlsAnalysis {
            seen: c.seen,
            decrypted: c.decrypted,
            not_decrypted: NotDecrypted::ALL
                .iter()
                .map(|r| (r.as_str(), c.not_decrypted[*r as usize]))
                .collect(),
        }
    }
}

/// The memory caps in force and how close the run came to them, so that
/// nothing a cap cut off goes unnoticed. Not in the v1 contract: an addition.
#[derive(Debug, Serialize, Default, Clone)]
pub struct LimitsOut {
    pub max_flows: u64,
    pub max_ooo_per_dir: u64,
    /// The cap on every byte the analysis buffers, across all flows:
    /// out-of-order segments (at their real cost), partial HTTP heads,
    /// close payloads being read.
    pub max_buffered: u64,
    /// Most TCP flows tracked at once.
    pub peak_flows: u64,
    /// Most bytes buffered at once, across all flows (what `max_buffered`
    /// caps).
    pub peak_buffered: u64,
    /// Live flows dropped because `max_flows` was reached.
    pub flows_evicted: u64,
    /// Of those, WebSocket connections (still listed, decided on what was seen).
    pub websocket_flows_evicted: u64,
    /// Later packets of evicted flows, dropped (an evicted connection does
    /// not come back as a new one, unless a fresh SYN starts one).
    pub packets_of_evicted_flows: u64,
    /// Holes in a TCP stream skipped because a buffering cap was reached.
    pub holes_given_up: u64,
    /// Partial HTTP heads given up because `max_buffered` was reached.
    pub buffered_bytes_shed: u64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub schema: &'static str,
    pub tool: Tool,
    pub settings: SettingsOut,
    pub sources: Vec<Source>,
    pub totals: Totals,
    pub diagnoses: Vec<Diagnosis>,
    /// Read back from the spool when written (not all in memory).
    pub connections: Connections,
    pub analysis: AnalysisStats,
    pub limits: LimitsOut,
    /// Threads that may encode the connections' JSON (`--threads`; 1
    /// unless set): the bytes written do not depend on them.
    #[serde(skip)]
    pub json_threads: usize,
}

impl Summary {
    pub fn new(
        settings: &Settings,
        sources: Vec<Source>,
        collected: Collected,
        analysis: AnalysisStats,
        limits: LimitsOut,
    ) -> Summary {
        Summary {
            diagnoses: collected.diagnoses,
            schema: SCHEMA,
            tool: Tool {
                name: "wsclose",
                version: env!("CARGO_PKG_VERSION"),
            },
            settings: SettingsOut {
                close_timeout_s: settings.close_timeout.as_secs_f64(),
            },
            sources,
            totals: collected.totals,
            connections: collected.connections,
            analysis,
            limits,
            json_threads: 1,
        }
    }

    /// One line for stderr when TLS connections went undecrypted: how many,
    /// and how to supply keys.
    pub fn tls_hint(&self) -> Option<String> {
        let t = &self.analysis.tls;
        let missing: u64 = t.not_decrypted.values().sum();
        (missing > 0).then(|| {
            format!(
                "{missing} of {} TLS connection(s) could not be decrypted ({}); give their keys with --keylog FILE, written by SSLKEYLOGFILE=FILE for browsers, curl and many libraries, ssl.SSLContext.keylog_filename in python, node --tls-keylog=FILE, rustls's KeyLogFile",
                t.seen,
                t.not_decrypted
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{r}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The worst severity among all findings.
    pub fn worst(&self) -> Option<Severity> {
        let s = &self.totals.severities;
        [
            (s.error, Severity::Error),
            (s.warning, Severity::Warning),
            (s.info, Severity::Info),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0)
        .map(|(_, w)| w)
    }

    /// The JSON summary: compact, or indented with `pretty` (`--pretty`).
    pub fn write_json(&self, out: &mut impl Write, pretty: bool) -> io::Result<()> {
        if pretty {
            serde_json::to_writer_pretty(&mut *out, self)?;
        } else if self.json_threads > 1 && self.connections.len() > json::CHUNK {
            json::write_compact(self, out, self.json_threads)?;
        } else {
            serde_json::to_writer(&mut *out, self)?;
        }
        out.write_all(b"\n")
    }

    /// The tables for people, with the default [`TableOptions`] (100
    /// columns, no colour, local time).
    pub fn write_tables(&self, out: &mut impl Write) -> io::Result<()> {
        self.write_tables_with(out, &TableOptions::default())
    }

    /// The tables for people: the diagnoses, then the capture's start and
    /// the totals, then the connections and their findings, fitted to
    /// `opts.width`.
    pub fn write_tables_with(&self, out: &mut impl Write, opts: &TableOptions) -> io::Result<()> {
        diagnoses::write(&self.diagnoses, out, opts)?;
        tables::write(self, out, opts)
    }
}
