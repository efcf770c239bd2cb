//! wsclose: why did my WebSocket disconnect?
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`capture`] (files, stdin) → [`decode`] (link/IP/TCP) → [`reassembly`]
//! (TCP streams) → [`upgrade`] (HTTP handshake) and [`frame`] (WebSocket
//! frames) → [`close`] (the closing handshake, outcomes, findings) →
//! [`report`] (tables, JSON). [`analyzer`] ties the middle stages together
//! without any I/O, so a file, a live interface or a test can feed it.

pub mod analyzer;
pub mod capture;
pub mod cli;
pub mod close;
pub mod decode;
pub mod diagnose;
pub mod frame;
pub mod live;
pub mod message;
pub mod reassembly;
pub mod report;
pub mod timeline;
pub mod upgrade;

/// A capture timestamp in nanoseconds since the Unix epoch. Integer time
/// keeps deadline comparisons exact (an answer exactly at the deadline is in
/// time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    pub const fn from_secs(s: i64) -> Ts {
        Ts(s * 1_000_000_000)
    }

    /// From seconds as a float (command-line durations such as `0.5`).
    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1e9).round() as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        // Split so the fraction keeps its precision at epoch magnitudes.
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        secs as f64 + nanos as f64 / 1e9
    }

    pub fn saturating_sub(self, o: Ts) -> Ts {
        Ts(self.0.saturating_sub(o.0))
    }

    pub fn saturating_add(self, o: Ts) -> Ts {
        Ts(self.0.saturating_add(o.0))
    }

    /// `self - earlier` in seconds, never below 0 (time may run backwards
    /// in a capture).
    pub fn secs_since(self, earlier: Ts) -> f64 {
        (self.0.saturating_sub(earlier.0)).max(0) as f64 / 1e9
    }
}
