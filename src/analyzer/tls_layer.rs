//! The TLS layer of a session (wss): records go through [`TlsConn`], the
//! decrypted bytes go on to the plaintext path as if they came from TCP,
//! and a connection that stays encrypted keeps the timing the contract's
//! `idle_s` needs (the final burst) and its TLS facts for the report.

use std::borrow::Cow;

use std::sync::LazyLock;

use crate::Ts;
use crate::close::{CloseNotify, ConnMeta, Side, TlsReport};
use crate::reassembly::Dir;
use crate::tls::{KeyLog, NotDecrypted, SharedKeys, TlsConn, TlsDir};

/// What sessions without keys look secrets up in.
static NO_KEYS: LazyLock<KeyLog> = LazyLock::new(KeyLog::new);

/// Packets closer than this belong to the same burst (the contract's
/// "final burst": each less than 1 s after the one before).
const BURST_GAP: Ts = Ts::from_secs(1);

/// The contract's final-burst timing of an encrypted connection, kept as
/// packets go by: only the latest burst matters.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Burst {
    /// The last packet carrying a record, a FIN or an RST.
    last: Option<Ts>,
    /// The first packet of the current burst.
    start: Option<Ts>,
    /// The last record before the current burst.
    record_before: Option<Ts>,
    /// The last packet carrying a record.
    last_record: Option<Ts>,
}

impl Burst {
    /// A packet that carries records (`data`), or a FIN or RST.
    pub(super) fn packet(&mut self, ts: Ts, data: bool) {
        let same = self.last.is_some_and(|l| ts.saturating_sub(l) < BURST_GAP);
        if !same {
            self.start = Some(ts);
            self.record_before = self.last_record;
        }
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        if data {
            self.last_record = Some(ts);
        }
    }

    /// Silence before the final burst: from the last record before it (the
    /// connection's first packet when none) to its first packet.
    pub(super) fn idle_s(&self, first_ts: Ts) -> Option<f64> {
        let start = self.start?;
        Some(start.secs_since(self.record_before.unwrap_or(first_ts)))
    }
}

/// One session's TLS state.
#[derive(Debug)]
pub(super) struct TlsLayer {
    pub conn: TlsConn,
    /// The direction that sent the ClientHello.
    pub client: Dir,
    pub keys: Option<SharedKeys>,
    pub burst: Burst,
}

impl TlsLayer {
    pub fn new(client: Dir) -> TlsLayer {
        TlsLayer {
            conn: TlsConn::new(),
            client,
            keys: None,
            burst: Burst::default(),
        }
    }

    pub fn tls_dir(&self, d: Dir) -> TlsDir {
        if d == self.client {
            TlsDir::Client
        } else {
            TlsDir::Server
        }
    }

    pub fn dir_of(client: Dir, d: TlsDir) -> Dir {
        match d {
            TlsDir::Client => client,
            TlsDir::Server => client.other(),
        }
    }

    /// Feeds one piece of `dir`'s stream; `on` gets each event. `Err` when
    /// the stream is not TLS after all.
    pub fn feed(
        &mut self,
        dir: Dir,
        ts: Ts,
        data: &[u8],
        on: &mut crate::tls::events::Sink<'_>,
    ) -> Result<(), crate::tls::NotTls> {
        let td = self.tls_dir(dir);
        let guard = self.keys.as_ref().and_then(|k| k.read().ok());
        let keys: &KeyLog = guard.as_deref().unwrap_or(&NO_KEYS);
        self.conn.feed(td, ts, data, keys, on)
    }

    /// Whether the report lists this connection while it stays encrypted:
    /// it may carry WebSocket (no ALPN, or only `http/1.1`, as browsers,
    /// node `ws` and python `websockets` send for wss), or its port was
    /// named with `--tls-port`.
    pub fn listed_encrypted(&self, tls_port: bool) -> bool {
        let alpn = &self.conn.facts().alpn_offered;
        let may_carry_ws = alpn.iter().all(|p| p == "http/1.1");
        tls_port || (self.conn.facts().client_hello_seen() && may_carry_ws)
    }

    /// Decrypted, or why not (for the run's `analysis.tls` counts).
    pub fn tally(&self) -> Result<(), NotDecrypted> {
        match self.conn.status().not_decrypted_reason {
            None => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// The contract's `tls` object; `client_side` says which report side
    /// the ClientHello's sender is.
    pub fn report(&self, client_side: Side) -> TlsReport {
        let f = self.conn.facts();
        let status = self.conn.status();
        let at = |d: TlsDir| self.conn.close_notify(d).map(Ts::as_secs_f64);
        let (c, s) = (at(TlsDir::Client), at(TlsDir::Server));
        let close_notify = match client_side {
            Side::Client => CloseNotify {
                client: c,
                server: s,
            },
            Side::Server => CloseNotify {
                client: s,
                server: c,
            },
        };
        TlsReport {
            version: f.version.map(Cow::Borrowed),
            cipher: f.cipher.map(Cow::Borrowed),
            sni: f.sni.clone(),
            alpn: f.alpn_offered.clone(),
            decrypted: status.decrypted,
            not_decrypted_reason: status
                .not_decrypted_reason
                .map(|r| Cow::Borrowed(r.as_str())),
            close_notify,
        }
    }

    /// The connection's idle time before its end as the contract defines
    /// it for encrypted connections (`None` while it is open).
    pub fn idle_s(&self, meta: &ConnMeta, ended: bool) -> Option<f64> {
        if ended {
            self.burst.idle_s(meta.first_ts)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> Ts {
        Ts::from_secs_f64(s)
    }

    #[test]
    fn final_burst_after_a_silence() {
        let mut b = Burst::default();
        for (at, data) in [(0.0, true), (0.5, true), (30.0, true), (30.2, false)] {
            b.packet(t(at), data);
        }
        // The burst starts at 30.0 (a record: a proxy's close_notify),
        // after the last record before it at 0.5.
        assert!((b.idle_s(t(0.0)).unwrap() - 29.5).abs() < 1e-9);
    }

    #[test]
    fn no_record_before_the_burst_counts_from_the_first_packet() {
        let mut b = Burst::default();
        b.packet(t(10.0), false);
        assert!((b.idle_s(t(2.0)).unwrap() - 8.0).abs() < 1e-9);
        assert_eq!(Burst::default().idle_s(t(0.0)), None);
    }

    #[test]
    fn one_continuous_burst_has_no_idle_time() {
        let mut b = Burst::default();
        for i in 0..20 {
            b.packet(t(f64::from(i) * 0.5), true);
        }
        assert!((b.idle_s(t(0.0)).unwrap()).abs() < 1e-9);
    }
}
