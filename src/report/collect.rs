//! The summary's connections, totals and diagnoses, built as connections
//! are decided so that a decided connection leaves little in memory: its
//! report goes to the spool ([`Connections`]), the totals are counted at
//! once, and the diagnoses keep a digest only of what can count in one
//! ([`Digests`]).

use std::collections::BTreeMap;

use super::{Outcomes, Severities, Totals};
use crate::analyzer::{Analyzer, AnalyzerStats, Decided};
use crate::close::{ConnectionReport, Kind, Settings, Severity};
use crate::diagnose::{Diagnosis, Digests, diagnose};
use crate::error::Error;

pub use super::connections::Connections;

/// Decided connections, as they come.
#[derive(Default)]
pub struct Collector {
    connections: Connections,
    digests: Digests,
    outcomes: Outcomes,
    close_codes: BTreeMap<Option<u16>, u64>,
    findings: BTreeMap<Kind, u64>,
    severities: Severities,
}

/// What the summary lists of its connections.
pub struct Collected {
    pub connections: Connections,
    pub totals: Totals,
    pub diagnoses: Vec<Diagnosis>,
}

impl Collector {
    /// A collector whose spool keeps `memory` bytes before it moves to a
    /// file (tests: 0 sends every connection there).
    pub fn with_memory(memory: usize) -> Collector {
        Collector {
            connections: Connections::with_memory(memory),
            ..Collector::default()
        }
    }

    /// One decided connection.
    pub fn add(&mut self, c: &ConnectionReport) -> Result<(), Error> {
        self.connections.push(c)?;
        self.digests.add(c);
        self.outcomes.add(c.close.outcome);
        for (code, n) in c.close_codes.iter() {
            *self.close_codes.entry(*code).or_insert(0) += n;
        }
        for f in &c.findings {
            *self.findings.entry(f.kind).or_insert(0) += 1;
            match f.severity {
                Severity::Error => self.severities.error += 1,
                Severity::Warning => self.severities.warning += 1,
                Severity::Info => self.severities.info += 1,
            }
        }
        Ok(())
    }

    /// Decided connections, in any order.
    pub fn add_all(&mut self, reports: &[ConnectionReport]) -> Result<(), Error> {
        reports.iter().try_for_each(|r| self.add(r))
    }

    /// Takes the connections `analyzer` decided since the last call.
    pub fn take_from(&mut self, analyzer: &mut Analyzer) -> Result<(), Error> {
        for r in analyzer.reports_mut().drain(..) {
            self.add(&r)?;
        }
        Ok(())
    }

    /// Ends `analyzer` (what is still open decided as of its last time)
    /// and takes every connection it decided; returns its counters and, in
    /// live mode, the connections not yet reported as decided.
    pub fn finish_from(
        &mut self,
        mut analyzer: Analyzer,
    ) -> Result<(AnalyzerStats, Vec<Decided>), Error> {
        self.take_from(&mut analyzer)?;
        let (reports, stats, rest) = analyzer.finish_live();
        self.add_all(&reports)?;
        Ok((stats, rest))
    }

    /// Ends the run: connections numbered in order of their first packet,
    /// the totals, the diagnoses.
    pub fn finish(mut self, settings: &Settings) -> Result<Collected, Error> {
        self.connections.seal()?;
        let conns = &self.connections;
        self.digests.number(|order| conns.id_of(order));
        let totals = Totals {
            connections: self.connections.len() as u64,
            outcomes: self.outcomes,
            close_codes: self
                .close_codes
                .into_iter()
                .map(|(c, n)| (c.map_or_else(|| "none".to_string(), |c| c.to_string()), n))
                .collect(),
            findings: self
                .findings
                .into_iter()
                .map(|(k, n)| (k.name().to_string(), n))
                .collect(),
            severities: self.severities,
        };
        Ok(Collected {
            diagnoses: diagnose(&self.digests, settings),
            connections: self.connections,
            totals,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::close::Settings;
    use crate::pipeline::{Hooks, analyze_files_with};
    use crate::reassembly::Limits;
    use crate::report::{Summary, TableOptions};

    fn summary(path: &str, spool_memory: usize) -> Summary {
        let hooks = Hooks {
            spool_memory: Some(spool_memory),
            ..Hooks::default()
        };
        let names = [path.to_string()];
        analyze_files_with(&names, Settings::default(), Limits::default(), hooks)
            .expect("analysis")
            .0
    }

    fn outputs(s: &Summary) -> Vec<u8> {
        let mut out = Vec::new();
        s.write_json(&mut out, false).expect("json");
        s.write_json(&mut out, true).expect("pretty json");
        let all = TableOptions {
            all: true,
            ..TableOptions::default()
        };
        s.write_tables(&mut out).expect("tables");
        s.write_tables_with(&mut out, &all).expect("tables --all");
        s.write_html(&mut out).expect("html");
        out
    }

    /// Every sample: its connections spilled to the temporary file from the
    /// first one, or kept in memory: the same JSON, tables and HTML.
    #[test]
    fn spilled_or_in_memory_the_outputs_are_the_same() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        let mut checked = 0;
        let mut connections = 0;
        for e in std::fs::read_dir(&dir).expect("samples") {
            let path = e.expect("entry").path();
            let ext = path.extension().and_then(|x| x.to_str());
            if !matches!(ext, Some("pcap" | "pcapng")) {
                continue;
            }
            let p = path.to_str().expect("utf-8 path");
            let (mem, file) = (summary(p, usize::MAX), summary(p, 0));
            assert_eq!(outputs(&mem), outputs(&file), "{p}");
            connections += mem.connections.len();
            checked += 1;
        }
        assert!(
            checked >= 10 && connections >= 50,
            "{checked} samples, {connections} connections"
        );
    }
}
