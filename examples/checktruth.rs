//! Compares a wsclose JSON summary with the truth file `gencap` wrote for
//! the capture: one line per compared total, exit status 1 on any
//! mismatch, 2 when a file cannot be read.
//!
//! ```sh
//! cargo run --release --example checktruth -- TRUTH.json SUMMARY.json
//! ```
//!
//! The summary of a million connections is over a gigabyte: it is mapped,
//! and only the fields compared are kept (per connection, its frame counts).

#[path = "gencap/truth.rs"]
mod truth;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;

use serde::Deserialize;
use truth::{Counts, DiagnosisTruth, Truth};

#[derive(Deserialize)]
struct Summary {
    sources: Vec<Source>,
    totals: Totals,
    /// The connections' frame counts, summed as they are read.
    #[serde(deserialize_with = "sum_frames")]
    connections: FrameSums,
    #[serde(default)]
    diagnoses: Vec<Diagnosis>,
    #[serde(default)]
    analysis: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    limits: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Source {
    packets: u64,
    bytes: u64,
    /// The counters a generated capture must have at 0, by name.
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Totals {
    connections: u64,
    outcomes: Counts,
    close_codes: Counts,
    findings: Counts,
    severities: Counts,
}

#[derive(Deserialize)]
struct Connection {
    client: String,
    frames: Frames,
    close: Close,
    handshake: Option<Handshake>,
    findings: Vec<Finding>,
}

#[derive(Deserialize)]
struct Close {
    outcome: String,
    initiator: Option<String>,
    tcp_end: TcpEnd,
}

#[derive(Deserialize)]
struct Finding {
    kind: String,
    side: Option<String>,
}

#[derive(Deserialize)]
struct TcpEnd {
    kind: String,
    by: Option<String>,
}

#[derive(Deserialize)]
struct Handshake {
    status: Option<u16>,
    accept_valid: Option<bool>,
}

impl Connection {
    /// The facts the truth counts (`close.initiator=client` ...).
    fn facts(&self) -> [String; 5] {
        let or_null = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        let h = self.handshake.as_ref();
        [
            format!("close.initiator={}", or_null(self.close.initiator.clone())),
            format!("close.tcp_end.kind={}", self.close.tcp_end.kind),
            format!(
                "close.tcp_end.by={}",
                or_null(self.close.tcp_end.by.clone())
            ),
            format!(
                "handshake.status={}",
                or_null(h.and_then(|h| h.status).map(|s| s.to_string()))
            ),
            format!(
                "handshake.accept_valid={}",
                or_null(h.and_then(|h| h.accept_valid).map(|a| a.to_string()))
            ),
        ]
    }
}

#[derive(Deserialize, Default)]
struct Frames {
    client: Columns,
    server: Columns,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Columns {
    text: u64,
    binary: u64,
    continuation: u64,
    ping: u64,
    pong: u64,
    close: u64,
    payload_bytes: u64,
}

impl Columns {
    fn add(&mut self, o: &Columns) {
        self.text += o.text;
        self.binary += o.binary;
        self.continuation += o.continuation;
        self.ping += o.ping;
        self.pong += o.pong;
        self.close += o.close;
        self.payload_bytes += o.payload_bytes;
    }

    fn counts(&self) -> Counts {
        [
            ("text", self.text),
            ("binary", self.binary),
            ("continuation", self.continuation),
            ("ping", self.ping),
            ("pong", self.pong),
            ("close", self.close),
            ("payload_bytes", self.payload_bytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// How many connections were listed, their frames summed, their facts
/// counted, each checked against its own expectation.
#[derive(Default)]
struct FrameSums {
    listed: u64,
    frames: Frames,
    facts: Counts,
    /// Connections whose outcome and findings are those of their kind.
    as_expected: u64,
    /// The first few that are not, described.
    wrong: Vec<String>,
    /// Which generator numbers were seen (a number twice is wrong).
    seen: Vec<bool>,
}

/// Each connection's expectation (from the truth, set before the summary
/// is read: the summary's visitor has no other way to it).
static EXPECT: std::sync::OnceLock<Expect> = std::sync::OnceLock::new();

struct Expect {
    first_ip: u32,
    per_ip: u64,
    first_port: u16,
    letters: Vec<u8>,
    kinds: BTreeMap<u8, truth::KindTruth>,
}

impl Expect {
    fn of(t: &Truth) -> Option<Expect> {
        let n = t.numbering.as_ref()?;
        Some(Expect {
            first_ip: n.first_ip.parse::<std::net::Ipv4Addr>().ok()?.into(),
            per_ip: n.per_ip,
            first_port: n.first_port,
            letters: t.per_connection.as_bytes().to_vec(),
            kinds: t
                .kinds
                .iter()
                .filter_map(|(k, v)| Some((*k.as_bytes().first()?, v.clone())))
                .collect(),
        })
    }

    /// The generator's number of the connection from `client` (`ip:port`).
    fn number(&self, client: &str) -> Option<usize> {
        let (ip, port) = client.rsplit_once(':')?;
        let ip: u32 = ip.parse::<std::net::Ipv4Addr>().ok()?.into();
        let port: u16 = port.parse().ok()?;
        let hi = u64::from(ip.checked_sub(self.first_ip)?);
        let lo = u64::from(port.checked_sub(self.first_port)?);
        (lo < self.per_ip).then(|| usize::try_from(hi * self.per_ip + lo).ok())?
    }

    /// Checks one connection against its kind; a description when wrong.
    fn check(&self, c: &Connection, seen: &mut [bool]) -> Result<(), String> {
        let n = self.number(&c.client);
        let kind = n
            .and_then(|n| self.letters.get(n))
            .and_then(|l| self.kinds.get(l));
        let (Some(n), Some(kind)) = (n, kind) else {
            return Err(format!("{}: no such connection was generated", c.client));
        };
        if std::mem::replace(&mut seen[n], true) {
            return Err(format!("{}: listed twice", c.client));
        }
        let mut findings: Vec<String> = c
            .findings
            .iter()
            .map(|f| format!("{}:{}", f.kind, f.side.as_deref().unwrap_or("null")))
            .collect();
        findings.sort();
        if c.close.outcome == kind.outcome && findings == kind.findings {
            return Ok(());
        }
        Err(format!(
            "{} ({}): expected {} {:?}, got {} {:?}",
            c.client, kind.name, kind.outcome, kind.findings, c.close.outcome, findings
        ))
    }
}

/// Sums the connections' frames while the array is read, keeping none of
/// them (a million connections would otherwise take gigabytes).
fn sum_frames<'de, D: serde::Deserializer<'de>>(d: D) -> Result<FrameSums, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = FrameSums;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of connections")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<FrameSums, A::Error> {
            let mut sums = FrameSums::default();
            let expect = EXPECT.get();
            sums.seen = vec![false; expect.map_or(0, |e| e.letters.len())];
            while let Some(c) = seq.next_element::<Connection>()? {
                sums.listed += 1;
                if let Some(e) = expect {
                    match e.check(&c, &mut sums.seen) {
                        Ok(()) => sums.as_expected += 1,
                        Err(what) if sums.wrong.len() < 10 => sums.wrong.push(what),
                        Err(_) => {}
                    }
                }
                sums.frames.client.add(&c.frames.client);
                sums.frames.server.add(&c.frames.server);
                for f in c.facts() {
                    *sums.facts.entry(f).or_default() += 1;
                }
            }
            Ok(sums)
        }
    }
    d.deserialize_seq(Visit)
}

#[derive(Deserialize)]
struct Diagnosis {
    kind: String,
    side: Option<String>,
    connections: Vec<u64>,
    value_s: Option<f64>,
    #[serde(default)]
    code: Option<u16>,
}

/// The comparison so far: every line printed, mismatches counted.
#[derive(Default)]
struct Report {
    compared: u64,
    failed: u64,
}

impl Report {
    fn eq(&mut self, what: &str, want: u64, got: u64) {
        self.line(what, want == got, &want.to_string(), &got.to_string());
    }

    fn line(&mut self, what: &str, ok: bool, want: &str, got: &str) {
        self.compared += 1;
        // A closed stdout (`| head`) must not stop the comparison.
        let mut out = std::io::stdout().lock();
        if ok {
            let _ = writeln!(out, "ok    {what}: {got}");
        } else {
            self.failed += 1;
            let _ = writeln!(out, "DIFF  {what}: expected {want}, got {got}");
        }
    }

    /// Every key of either map (absent counts as 0).
    fn counts(&mut self, what: &str, want: &Counts, got: &Counts) {
        let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for k in keys {
            let (w, g) = (want.get(k).copied(), got.get(k).copied());
            self.eq(&format!("{what}.{k}"), w.unwrap_or(0), g.unwrap_or(0));
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [truth_path, summary_path] = args.as_slice() else {
        eprintln!("usage: checktruth TRUTH.json SUMMARY.json");
        return ExitCode::from(2);
    };
    let truth: Truth = match read_json(truth_path) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    if let Some(e) = Expect::of(&truth) {
        let _ = EXPECT.set(e);
    }
    let summary: Summary = match read_json(summary_path) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let r = compare(&truth, &summary);
    let _ = writeln!(
        std::io::stdout(),
        "{} totals compared, {} wrong",
        r.compared,
        r.failed
    );
    if r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("checktruth: {e}");
    ExitCode::from(2)
}

/// Parses a JSON file from a read-only map (no copy of a large summary).
fn read_json<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    if file.metadata().map_err(|e| format!("{path}: {e}"))?.len() == 0 {
        return Err(format!("{path}: empty"));
    }
    // SAFETY: a read-only map of a file nobody writes while it is read.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_slice(&map).map_err(|e| format!("{path}: {e}"))
}

fn compare(t: &Truth, s: &Summary) -> Report {
    let mut r = Report::default();
    let (packets, bytes) = s
        .sources
        .iter()
        .fold((0, 0), |(p, b), x| (p + x.packets, b + x.bytes));
    r.eq("sources.packets", t.packets, packets);
    r.eq("sources.bytes", t.bytes, bytes);
    r.eq("totals.connections", t.connections, s.totals.connections);
    r.eq("connections (listed)", t.connections, s.connections.listed);
    r.counts("totals.outcomes", &t.outcomes, &s.totals.outcomes);
    r.counts("totals.findings", &t.findings, &s.totals.findings);
    r.counts("totals.severities", &t.severities, &s.totals.severities);
    r.counts("totals.close_codes", &t.close_codes, &s.totals.close_codes);
    let sums = &s.connections.frames;
    for (side, want) in &t.frames {
        let got = match side.as_str() {
            "client" => sums.client.counts(),
            "server" => sums.server.counts(),
            _ => Counts::new(),
        };
        r.counts(&format!("frames.{side}"), want, &got);
    }
    r.counts("connections[]", &t.connection_facts, &s.connections.facts);
    if EXPECT.get().is_some() {
        let sums = &s.connections;
        r.eq(
            "connections[] as their kind",
            t.connections,
            sums.as_expected,
        );
        for w in &sums.wrong {
            let _ = writeln!(std::io::stdout(), "      {w}");
        }
    }
    for name in &t.zero {
        let got = match name.split_once('.') {
            Some(("sources", k)) => s.sources.iter().map(|x| x.rest.get(k)).next().flatten(),
            Some(("limits", k)) => s.limits.get(k),
            _ => None,
        };
        let got = got.map_or("missing".to_string(), ToString::to_string);
        r.line(name, got == "0", "0", &got);
    }
    for (k, want) in &t.analysis {
        let got = s.analysis.get(k).and_then(serde_json::Value::as_u64);
        let got = got.map_or("missing".to_string(), |g| g.to_string());
        r.line(
            &format!("analysis.{k}"),
            got == want.to_string(),
            &want.to_string(),
            &got,
        );
    }
    diagnoses(&mut r, &t.diagnoses, &s.diagnoses);
    r
}

/// The diagnoses expected must all be there (kind, side, code, number of
/// connections, value within 1 ms), and no other.
fn diagnoses(r: &mut Report, want: &[DiagnosisTruth], got: &[Diagnosis]) {
    let key = |kind: &str, side: &Option<String>, code: Option<u16>| {
        format!(
            "diagnoses.{kind}[{}{}]",
            side.as_deref().unwrap_or("null"),
            code.map_or(String::new(), |c| format!(",{c}"))
        )
    };
    let mut left: Vec<&Diagnosis> = got.iter().collect();
    for w in want {
        let name = key(&w.kind, &w.side, w.code);
        let found = left
            .iter()
            .position(|d| d.kind == w.kind && d.side == w.side && d.code == w.code);
        let Some(i) = found else {
            r.line(
                &name,
                false,
                &format!("{} connections", w.connections),
                "none",
            );
            continue;
        };
        let d = left.remove(i);
        r.eq(
            &format!("{name}.connections"),
            w.connections,
            d.connections.len() as u64,
        );
        if let Some(v) = w.value_s {
            let ok = d.value_s.is_some_and(|g| (g - v).abs() <= 0.001);
            let got = d.value_s.map_or("null".to_string(), |g| g.to_string());
            r.line(&format!("{name}.value_s"), ok, &v.to_string(), &got);
        }
    }
    for d in left {
        let name = key(&d.kind, &d.side, d.code);
        r.line(
            &name,
            false,
            "none",
            &format!("{} connections", d.connections.len()),
        );
    }
}
