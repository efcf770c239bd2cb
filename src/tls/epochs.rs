//! Protected records: keys from the key log, the TLS 1.3 handshake and
//! application epochs (KeyUpdate followed), TLS 1.2 after ChangeCipherSpec,
//! and keys that come late, placed at the right sequence number.

use super::conn::{ALERT, APPLICATION_DATA, Core, HANDSHAKE};
use super::crypto::{RecordCipher, Scheme};
use super::events::{Event, NotDecrypted, Sink, TlsDir};
use super::keylog::{KeyLog, Secret};
use super::keys::{self, AeadKind};
use super::record::Record;
use crate::Ts;

/// Records of the TLS 1.3 handshake epoch searched past when the
/// application keys come late (a server's flight is one to a few records).
const SEARCH_BACK: u64 = 16;

/// Protected records after which a TLS 1.3 direction that has application
/// keys but could not place them gives up (`decrypt_error`).
const SEARCH_RECORDS: u64 = 32;

/// Where a direction is.
#[derive(Debug)]
pub(super) enum Stage {
    /// Plaintext records: before ChangeCipherSpec (TLS 1.2), before the
    /// ServerHello (TLS 1.3).
    Plain,
    /// Protected records without keys. `seen` counts them; `exact`: they
    /// are all of the current epoch (TLS 1.2; TLS 1.3 after the Finished
    /// was read); `lost`: application data went by.
    Waiting {
        seen: u64,
        exact: bool,
        lost: bool,
    },
    /// TLS 1.3 handshake epoch.
    Handshake(RecordCipher),
    /// Application data epoch; TLS 1.3 keeps the secret for KeyUpdate.
    Traffic {
        cipher: RecordCipher,
        secret: Option<Secret>,
    },
    Stopped,
}

/// The outcome of trying keys on a waiting direction's record.
enum Attempt {
    NoKey,
    Failed,
    /// Decrypted: the stage to go on with, the inner content type, and
    /// whether application data was skipped before.
    Opened(Stage, u8, bool),
}

impl Core {
    /// Whether the key log gave secrets this connection's suite can use.
    pub(super) fn usable_keys(&self) -> bool {
        let (Some(suite), Some(s)) = (self.suite, self.secrets) else {
            return false;
        };
        let fits = |x: Option<Secret>| x.is_some_and(|x| x.len() == suite.hash.output_len());
        if suite.tls13 {
            [
                s.client_handshake,
                s.server_handshake,
                s.client_traffic,
                s.server_traffic,
            ]
            .into_iter()
            .any(fits)
        } else {
            s.master.is_some_and(|m| m.len() == 48)
        }
    }

    /// A protected record with a cipher in place.
    pub(super) fn on_decrypting(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        rec: &Record<'_>,
        keys: &KeyLog,
        scratch: &mut Vec<u8>,
        on: &mut Sink<'_>,
    ) {
        let side = &mut self.sides[dir.idx()];
        let opened = match &mut side.stage {
            Stage::Handshake(c) | Stage::Traffic { cipher: c, .. } => c.open(rec, scratch),
            _ => return,
        };
        match opened {
            Ok(t) => self.on_inner(dir, ts, t, scratch, keys, on),
            Err(_) => {
                let first = matches!(side.stage, Stage::Handshake(ref c) if c.seq() == 0);
                let reason = self.failure(dir, first);
                self.fail(dir, ts, reason, on);
            }
        }
    }

    /// Why a record did not decrypt. 0-RTT early data comes first from a
    /// client that offered it, under keys the key log does not give: that
    /// is an unsupported feature, not a decryption error.
    fn failure(&self, dir: TlsDir, first_handshake_record: bool) -> NotDecrypted {
        if dir == TlsDir::Client && self.facts.early_data_offered && first_handshake_record {
            NotDecrypted::UnsupportedCipher
        } else {
            NotDecrypted::DecryptError
        }
    }

    /// A decrypted record of inner type `t`.
    fn on_inner(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        t: u8,
        data: &[u8],
        keys: &KeyLog,
        on: &mut Sink<'_>,
    ) {
        self.decrypted = true;
        match t {
            APPLICATION_DATA if !data.is_empty() => on(Event::Plaintext { dir, ts, data }),
            ALERT => self.on_alert(dir, ts, data, on),
            HANDSHAKE => {
                let fx = self.read_handshake(dir, data, on);
                if !self.tls13() {
                    return;
                }
                let stage = &self.sides[dir.idx()].stage;
                if fx.finished && matches!(stage, Stage::Handshake(_)) {
                    self.look_up(keys);
                    self.sides[dir.idx()].stage = self.traffic_stage(dir);
                } else if fx.key_update && matches!(stage, Stage::Traffic { .. }) {
                    self.key_update(dir, ts, on);
                }
            }
            _ => {}
        }
    }

    /// TLS 1.3 after a Finished: the application traffic keys, or waiting
    /// for them.
    fn traffic_stage(&self, dir: TlsDir) -> Stage {
        match self.tls13_cipher(dir, false, 0) {
            Some((cipher, secret)) => Stage::Traffic {
                cipher,
                secret: Some(secret),
            },
            None => Stage::Waiting {
                seen: 0,
                exact: true,
                lost: false,
            },
        }
    }

    /// A KeyUpdate: the next secret replaces the current one (RFC 8446 7.2).
    fn key_update(&mut self, dir: TlsDir, ts: Ts, on: &mut Sink<'_>) {
        let Some(suite) = self.suite else { return };
        let side = &mut self.sides[dir.idx()];
        let Stage::Traffic {
            secret: Some(secret),
            ..
        } = &side.stage
        else {
            return;
        };
        let next = keys::tls13_next_secret(suite.hash, secret).and_then(|s| {
            let k = keys::tls13_traffic_keys(&suite, &s)?;
            Some((RecordCipher::new(suite.aead, &k, Scheme::Tls13, 0)?, s))
        });
        match next {
            Some((cipher, s)) => {
                side.stage = Stage::Traffic {
                    cipher,
                    secret: Some(s),
                }
            }
            None => self.fail(dir, ts, NotDecrypted::DecryptError, on),
        }
    }

    /// The TLS 1.3 cipher of `dir` from the key log secrets: handshake or
    /// application traffic, with its secret, starting at record `seq`.
    fn tls13_cipher(
        &self,
        dir: TlsDir,
        handshake: bool,
        seq: u64,
    ) -> Option<(RecordCipher, Secret)> {
        let (suite, s) = (self.suite?, self.secrets?);
        let secret = match (dir, handshake) {
            (TlsDir::Client, true) => s.client_handshake,
            (TlsDir::Server, true) => s.server_handshake,
            (TlsDir::Client, false) => s.client_traffic,
            (TlsDir::Server, false) => s.server_traffic,
        }?;
        let k = keys::tls13_traffic_keys(&suite, &secret)?;
        Some((
            RecordCipher::new(suite.aead, &k, Scheme::Tls13, seq)?,
            secret,
        ))
    }

    /// The TLS 1.2 cipher of `dir`, starting at record `seq`.
    fn tls12_cipher(&self, dir: TlsDir, seq: u64) -> Option<RecordCipher> {
        let (suite, s) = (self.suite?, self.secrets?);
        let (cr, sr) = (self.facts.client_random?, self.facts.server_random?);
        let k = keys::tls12_keys(&suite, &s.master?, &cr, &sr)?;
        let k = if dir == TlsDir::Client {
            k.client
        } else {
            k.server
        };
        let scheme = if suite.aead == AeadKind::ChaCha20Poly1305 {
            Scheme::Tls12ChaCha
        } else {
            Scheme::Tls12Gcm
        };
        RecordCipher::new(suite.aead, &k, scheme, seq)
    }

    /// A protected record while the direction waits for keys.
    pub(super) fn on_waiting(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        rec: &Record<'_>,
        keys: &KeyLog,
        scratch: &mut Vec<u8>,
        on: &mut Sink<'_>,
    ) {
        let Stage::Waiting { seen, exact, lost } = self.sides[dir.idx()].stage else {
            return;
        };
        self.look_up(keys);
        self.waited = true;
        let attempt = if self.tls13() {
            self.try_tls13(dir, seen, exact, lost, rec, scratch)
        } else {
            self.try_tls12(dir, seen, lost, rec, scratch)
        };
        match attempt {
            Attempt::Opened(stage, t, skipped) => {
                self.sides[dir.idx()].stage = stage;
                if skipped {
                    on(Event::PlaintextLost { dir, ts });
                }
                self.on_inner(dir, ts, t, scratch, keys, on);
            }
            Attempt::Failed => {
                let reason = self.failure(dir, seen == 0 && !exact);
                self.fail(dir, ts, reason, on);
            }
            Attempt::NoKey => {
                let lost =
                    lost || (rec.content_type == APPLICATION_DATA && (exact || !self.tls13()));
                self.sides[dir.idx()].stage = Stage::Waiting {
                    seen: seen + 1,
                    exact,
                    lost,
                };
                self.without_keys(dir, ts, rec, on);
            }
        }
    }

    /// TLS 1.2: the sequence number is known (records since the
    /// ChangeCipherSpec), so keys either open the record or are wrong.
    fn try_tls12(
        &self,
        dir: TlsDir,
        seen: u64,
        lost: bool,
        rec: &Record<'_>,
        scratch: &mut Vec<u8>,
    ) -> Attempt {
        let Some(mut cipher) = self.tls12_cipher(dir, seen) else {
            return Attempt::NoKey;
        };
        match cipher.open(rec, scratch) {
            Ok(t) => Attempt::Opened(
                Stage::Traffic {
                    cipher,
                    secret: None,
                },
                t,
                lost,
            ),
            Err(_) => Attempt::Failed,
        }
    }

    /// TLS 1.3: the handshake key opens the first record; application keys
    /// that come after records went by are tried at the sequence numbers the
    /// application epoch may have reached (`seen` minus the handshake
    /// records, at most [`SEARCH_BACK`] of them).
    fn try_tls13(
        &self,
        dir: TlsDir,
        seen: u64,
        exact: bool,
        lost: bool,
        rec: &Record<'_>,
        scratch: &mut Vec<u8>,
    ) -> Attempt {
        if !exact && let Some((mut c, _)) = self.tls13_cipher(dir, true, seen) {
            if let Ok(t) = c.open(rec, scratch) {
                return Attempt::Opened(Stage::Handshake(c), t, false);
            }
            if seen == 0 {
                // The first protected record is the handshake key's.
                return Attempt::Failed;
            }
        }
        let Some((mut c, secret)) = self.tls13_cipher(dir, false, 0) else {
            return Attempt::NoKey;
        };
        let first = if exact {
            seen
        } else {
            seen.saturating_sub(SEARCH_BACK)
        };
        for seq in (first..=seen).rev() {
            if let Ok(t) = c.open_at(seq, rec, scratch) {
                c.set_seq(seq + 1);
                let stage = Stage::Traffic {
                    cipher: c,
                    secret: Some(secret),
                };
                return Attempt::Opened(stage, t, lost || seq > 0);
            }
        }
        if exact || seen >= SEARCH_RECORDS {
            Attempt::Failed
        } else {
            Attempt::NoKey
        }
    }
}
