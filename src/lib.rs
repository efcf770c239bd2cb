//! wsclose: why did my WebSocket disconnect?
//!
//! The pipeline, one module per stage, data flowing one way:
//! [`capture`] (files, stdin) → [`decode`] (link/IP/TCP) → [`reassembly`]
//! (TCP streams) → [`upgrade`] (HTTP handshake) and [`frame`] (WebSocket
//! frames) → [`close`] (the closing handshake, outcomes, findings) →
//! [`report`] (tables, JSON). [`analyzer`] ties the middle stages together
//! without any I/O, so a file, a live interface or a test can feed it.

// Every unsafe block has its own `#[allow(unsafe_code)]` and SAFETY note.
#![deny(unsafe_code)]

pub mod allocator;
pub mod analyzer;
pub mod capture;
pub mod cli;
pub mod close;
pub mod decode;
pub mod diagnose;
pub mod error;
pub mod frame;
pub mod live;
pub mod message;
pub mod pipeline;
mod prefetch;
pub mod reassembly;
pub mod report;
mod shard;
mod sniff;
pub mod timeline;
pub mod tls;
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

    /// The UTC calendar date and time of day: (year, month, day, second of
    /// the day, nanoseconds), for people (no time-zone crate for this).
    pub fn utc_parts(self) -> (i64, i64, i64, i64, i64) {
        let (secs, nanos) = (
            self.0.div_euclid(1_000_000_000),
            self.0.rem_euclid(1_000_000_000),
        );
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Days since 1970-01-01 to the civil date (H. Hinnant's algorithm).
        let z = days + 719_468;
        let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day, sod, nanos)
    }
}
