//! The truth file: exact totals that wsclose's JSON summary must
//! reproduce for a generated capture. Shared by `gencap` (writes it) and
//! `checktruth` (compares a summary with it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts by name (outcomes, finding kinds, severities, close codes, frame
/// columns).
pub type Counts = BTreeMap<String, u64>;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Truth {
    /// How the capture was made (for people; not compared).
    pub params: BTreeMap<String, String>,
    /// `sources[0].packets` and `.bytes` (captured bytes of all packets).
    pub packets: u64,
    pub bytes: u64,
    /// `totals.connections`.
    pub connections: u64,
    /// `totals.outcomes`, every key.
    pub outcomes: Counts,
    /// `totals.findings`, every kind expected (absent kinds are 0).
    pub findings: Counts,
    /// `totals.severities`.
    pub severities: Counts,
    /// `totals.close_codes`.
    pub close_codes: Counts,
    /// Frames summed over connections, by side (`client`, `server`), then
    /// by column (`text` ... `payload_bytes`).
    pub frames: BTreeMap<String, Counts>,
    /// `analysis` counters (tcp_segments, tcp_flows, gaps ...).
    pub analysis: Counts,
    /// `sources[0]` counters that must be 0 (`not_tcp`, `undecodable`,
    /// `corrupt_records`) and `limits` counters that must be 0 (nothing
    /// evicted, given up or shed).
    pub zero: Vec<String>,
    /// Facts of every connection, counted: `close.initiator=client`,
    /// `close.tcp_end.kind=rst`, `handshake.status=101` ...
    pub connection_facts: Counts,
    /// The diagnoses expected, and no others.
    pub diagnoses: Vec<DiagnosisTruth>,
    /// How a connection's client address gives its number `n` (the order
    /// the generator opened it in).
    pub numbering: Option<Numbering>,
    /// Connection `n`'s kind: the `n`th character, a key of `kinds`.
    #[serde(default)]
    pub per_connection: String,
    /// What a connection of each kind must be in the summary.
    #[serde(default)]
    pub kinds: BTreeMap<String, KindTruth>,
}

/// Client address of connection `n`: `first_ip + n / per_ip`, port
/// `first_port + n % per_ip`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Numbering {
    pub first_ip: String,
    pub per_ip: u64,
    pub first_port: u16,
}

/// One kind of connection: its outcome and its findings (`kind:side`,
/// sorted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindTruth {
    pub name: String,
    pub outcome: String,
    pub findings: Vec<String>,
}

/// One expected diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisTruth {
    pub kind: String,
    pub side: Option<String>,
    /// The number of connections in it.
    pub connections: u64,
    /// `error_close_codes`: the code.
    pub code: Option<u16>,
    /// The time that defines it (`value_s`), compared within 1 ms.
    pub value_s: Option<f64>,
}
