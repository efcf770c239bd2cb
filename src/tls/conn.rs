//! One TLS connection, both directions: records in, events out.
//!
//! Each direction goes through stages: records in plaintext (the hellos);
//! protected records waiting for keys; protected records decrypted, in
//! TLS 1.3 first with the handshake secrets, then with the application
//! traffic secrets (KeyUpdate followed); or stopped (a gap, a record that
//! does not decrypt). Keys may come late (a key log growing while a live
//! capture runs): the randoms are kept, the key log is looked at again
//! whenever it gained secrets, and the record sequence numbers are counted
//! meanwhile so that decryption can start in the middle (TLS 1.3 searches
//! for the start of the application epoch among the last few records,
//! since without keys the end of the handshake cannot be seen).
//!
//! The caller gets [`Event`]s through a callback, plaintext borrowed from
//! one buffer reused for every record: nothing is allocated per record.

use tls_parser::{TlsMessage, TlsVersion, parse_tls_message_alert};

use super::crypto::{RecordCipher, Scheme};
use super::handshake::{self, HandshakeFacts, HandshakeReader, Message, ServerHello};
use super::keylog::{KeyLog, Secret, Secrets};
use super::keys::{self, AeadKind, Suite};
use super::record::{NotTls, Record, RecordReader};
use crate::Ts;

/// Records of the TLS 1.3 handshake epoch searched past when the
/// application keys come late (a server's flight is one to a few records).
const SEARCH_BACK: u64 = 16;

/// Protected records after which a TLS 1.3 direction that has application
/// keys but could not place them gives up (`decrypt_error`).
const SEARCH_RECORDS: u64 = 32;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Which side sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsDir {
    Client = 0,
    Server = 1,
}

impl TlsDir {
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// Why a connection (or one direction) is not decrypted: the contract's
/// `not_decrypted_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotDecrypted {
    NoKey,
    UnsupportedCipher,
    NoHandshake,
    Gap,
    DecryptError,
}

impl NotDecrypted {
    pub fn as_str(self) -> &'static str {
        match self {
            NotDecrypted::NoKey => "no_key",
            NotDecrypted::UnsupportedCipher => "unsupported_cipher",
            NotDecrypted::NoHandshake => "no_handshake",
            NotDecrypted::Gap => "gap",
            NotDecrypted::DecryptError => "decrypt_error",
        }
    }
}

impl std::fmt::Display for NotDecrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contract's `tls.decrypted` and `tls.not_decrypted_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsStatus {
    /// Keys were found and records decrypted with them (for a connection
    /// without protected records yet: keys found, nothing failed). A
    /// direction may still have stopped later: [`TlsConn::stopped`].
    pub decrypted: bool,
    /// Set when `decrypted` is false.
    pub not_decrypted_reason: Option<NotDecrypted>,
}

/// What [`TlsConn::feed`] reports, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake facts changed: [`TlsConn::facts`].
    Facts,
    /// A record was completed by the bytes of the packet at `ts`.
    Record {
        dir: TlsDir,
        ts: Ts,
        content_type: u8,
        len: usize,
    },
    /// Decrypted application data, from a record completed at `ts`.
    Plaintext { dir: TlsDir, ts: Ts, data: &'a [u8] },
    /// Application data went by before its keys were known: the plaintext
    /// stream resumes after a hole (like a TCP gap).
    PlaintextLost { dir: TlsDir, ts: Ts },
    /// An alert other than close_notify (plaintext or decrypted).
    Alert {
        dir: TlsDir,
        ts: Ts,
        level: u8,
        description: u8,
    },
    /// The direction's close_notify: decrypted, or (`inferred`) an
    /// encrypted alert record of TLS 1.2 or earlier, which the contract
    /// counts as one. Reported once per direction.
    CloseNotify { dir: TlsDir, ts: Ts, inferred: bool },
    /// Decryption of this direction stopped for good.
    Stopped {
        dir: TlsDir,
        ts: Ts,
        reason: NotDecrypted,
    },
}

/// The sink events go to.
pub type Sink<'s> = dyn FnMut(Event<'_>) + 's;

/// Where a direction is.
#[derive(Debug)]
enum Stage {
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

#[derive(Debug)]
struct Side {
    stage: Stage,
    hs: HandshakeReader,
    failed: Option<NotDecrypted>,
    close_notify: Option<Ts>,
}

impl Default for Side {
    fn default() -> Side {
        Side {
            stage: Stage::Plain,
            hs: HandshakeReader::default(),
            failed: None,
            close_notify: None,
        }
    }
}

/// What handshake messages changed, applied once the record is read.
#[derive(Debug, Default)]
struct Effects {
    facts: bool,
    server_hello: Option<ServerHello>,
    finished: bool,
    key_update: bool,
}

/// The outcome of trying keys on a waiting direction's record.
enum Attempt {
    NoKey,
    Failed,
    /// Decrypted: the stage to go on with, the inner content type, and
    /// whether application data was skipped before.
    Opened(Stage, u8, bool),
}

/// Everything but the record readers and the plaintext buffer, so that a
/// record borrowed from a reader can be handled with `&mut Core`.
#[derive(Debug, Default)]
struct Core {
    facts: HandshakeFacts,
    sides: [Side; 2],
    /// Negotiated (ServerHello) version.
    version: Option<u16>,
    suite: Option<Suite>,
    secrets: Option<Secrets>,
    /// The key log generation last looked at.
    looked: Option<u64>,
    /// Connection-wide reason (unsupported suite or version).
    reason: Option<NotDecrypted>,
    /// A record was decrypted.
    decrypted: bool,
    /// A protected record waited for keys.
    waited: bool,
}

/// One TLS connection.
#[derive(Debug, Default)]
pub struct TlsConn {
    readers: [RecordReader; 2],
    core: Core,
    /// Decrypted plaintext of the record being handled.
    scratch: Vec<u8>,
}

impl TlsConn {
    pub fn new() -> TlsConn {
        TlsConn::default()
    }

    /// Reads the next bytes of direction `dir`, from the packet at `ts`.
    /// `keys` is looked up when protected records need keys not found
    /// before. An error means the direction is not a TLS record stream:
    /// the caller gives up on TLS for the flow (every later call of that
    /// direction fails too). Bytes after a [`TlsConn::gap`] are ignored.
    pub fn feed(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        bytes: &[u8],
        keys: &KeyLog,
        on: &mut Sink<'_>,
    ) -> Result<(), NotTls> {
        let TlsConn {
            readers,
            core,
            scratch,
        } = self;
        if core.sides[dir.idx()].failed == Some(NotDecrypted::Gap) {
            return Ok(());
        }
        readers[dir.idx()].feed(bytes, &mut |rec| {
            core.on_record(dir, ts, &rec, keys, scratch, on);
        })
    }

    /// Bytes of direction `dir` were lost: its records can no longer be
    /// told apart, so its decryption stops with `gap`.
    pub fn gap(&mut self, dir: TlsDir) {
        self.readers[dir.idx()].break_off();
        let side = &mut self.core.sides[dir.idx()];
        side.hs.reset();
        side.failed.get_or_insert(NotDecrypted::Gap);
        side.stage = Stage::Stopped;
    }

    pub fn facts(&self) -> &HandshakeFacts {
        &self.core.facts
    }

    /// The connection's decryption state, for the report.
    pub fn status(&self) -> TlsStatus {
        let c = &self.core;
        let first_failure = c.reason.or(c.sides[0].failed).or(c.sides[1].failed);
        let keys = c.secrets.is_some() && c.suite.is_some();
        if c.decrypted || (keys && !c.waited && first_failure.is_none()) {
            return TlsStatus {
                decrypted: true,
                not_decrypted_reason: None,
            };
        }
        let reason = first_failure.unwrap_or(
            if !c.facts.client_hello_seen() || !c.facts.server_hello_seen() {
                NotDecrypted::NoHandshake
            } else if keys {
                // Keys, but no record they open yet.
                NotDecrypted::DecryptError
            } else {
                NotDecrypted::NoKey
            },
        );
        TlsStatus {
            decrypted: false,
            not_decrypted_reason: Some(reason),
        }
    }

    /// Why decryption of `dir` stopped, if it did.
    pub fn stopped(&self, dir: TlsDir) -> Option<NotDecrypted> {
        self.core.sides[dir.idx()].failed
    }

    /// When `dir`'s close_notify was seen (see [`Event::CloseNotify`]).
    pub fn close_notify(&self, dir: TlsDir) -> Option<Ts> {
        self.core.sides[dir.idx()].close_notify
    }

    /// Heap bytes held: partial records, partial handshake messages, the
    /// plaintext buffer.
    pub fn held(&self) -> usize {
        let r: usize = self.readers.iter().map(RecordReader::held).sum();
        let h: usize = self.core.sides.iter().map(|s| s.hs.held()).sum();
        r + h + self.scratch.capacity()
    }

    /// Gives back memory that holds no data (buffers kept for reuse),
    /// losing nothing. Returns the bytes freed.
    pub fn trim(&mut self) -> usize {
        let before = self.held();
        self.readers.iter_mut().for_each(RecordReader::trim);
        self.core.sides.iter_mut().for_each(|s| s.hs.trim());
        self.scratch = Vec::new();
        before - self.held()
    }

    /// Under the global memory cap: gives up partial records too (each a
    /// gap for its direction). Returns the bytes freed.
    pub fn shed(&mut self) -> usize {
        let before = self.held();
        for dir in [TlsDir::Client, TlsDir::Server] {
            if self.readers[dir.idx()].pending() > 0 {
                self.gap(dir);
            }
        }
        self.trim();
        before - self.held()
    }
}

impl Core {
    fn on_record(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        rec: &Record<'_>,
        keys: &KeyLog,
        scratch: &mut Vec<u8>,
        on: &mut Sink<'_>,
    ) {
        on(Event::Record {
            dir,
            ts,
            content_type: rec.content_type,
            len: rec.payload.len(),
        });
        if rec.content_type == CHANGE_CIPHER_SPEC {
            return self.on_change_cipher_spec(dir, ts, on);
        }
        let tls13 = self.tls13();
        match self.sides[dir.idx()].stage {
            Stage::Plain => self.on_plain(dir, ts, rec, on),
            // TLS 1.3 protects only records of type application_data; an
            // alert in the clear may still come (a peer refusing keys).
            _ if tls13 && rec.content_type != APPLICATION_DATA => self.on_plain(dir, ts, rec, on),
            Stage::Stopped => self.without_keys(dir, ts, rec, on),
            Stage::Waiting { .. } => self.on_waiting(dir, ts, rec, keys, scratch, on),
            Stage::Handshake(_) | Stage::Traffic { .. } => {
                self.on_decrypting(dir, ts, rec, keys, scratch, on)
            }
        }
    }

    fn tls13(&self) -> bool {
        self.version == Some(TlsVersion::Tls13.0)
    }

    /// TLS 1.2 and earlier: protection of the direction starts after it.
    /// TLS 1.3 sends it only for middleboxes, and it means nothing.
    fn on_change_cipher_spec(&mut self, dir: TlsDir, ts: Ts, on: &mut Sink<'_>) {
        if self.version.is_none() || self.tls13() {
            return;
        }
        let side = &mut self.sides[dir.idx()];
        match side.stage {
            Stage::Plain => {
                side.stage = Stage::Waiting {
                    seen: 0,
                    exact: true,
                    lost: false,
                };
            }
            // A renegotiation: its keys come from a hello inside the
            // encrypted stream; not followed.
            Stage::Waiting { .. } | Stage::Handshake(_) | Stage::Traffic { .. } => {
                self.fail(dir, ts, NotDecrypted::UnsupportedCipher, on);
            }
            Stage::Stopped => {}
        }
    }

    fn on_plain(&mut self, dir: TlsDir, ts: Ts, rec: &Record<'_>, on: &mut Sink<'_>) {
        match rec.content_type {
            HANDSHAKE => {
                let fx = self.read_handshake(dir, rec.payload, on);
                if fx.server_hello == Some(ServerHello::Chosen) {
                    self.on_server_hello(dir);
                }
            }
            ALERT => self.on_alert(dir, ts, rec.payload, on),
            APPLICATION_DATA if matches!(self.sides[dir.idx()].stage, Stage::Plain) => {
                // Application data before protection started: the capture
                // missed the handshake, or this is 0-RTT early data.
                let reason = if dir == TlsDir::Client
                    && self.facts.early_data_offered
                    && !self.facts.server_hello_seen()
                {
                    NotDecrypted::UnsupportedCipher
                } else {
                    NotDecrypted::NoHandshake
                };
                self.fail(dir, ts, reason, on);
            }
            _ => {}
        }
    }

    /// Handshake bytes (plaintext or decrypted) of `dir`: updates the facts
    /// and says what the messages mean for the stages.
    fn read_handshake(&mut self, dir: TlsDir, data: &[u8], on: &mut Sink<'_>) -> Effects {
        let mut fx = Effects::default();
        let Core { facts, sides, .. } = self;
        sides[dir.idx()]
            .hs
            .push(data, &mut |m| on_message(facts, dir, m, &mut fx));
        if fx.facts {
            on(Event::Facts);
        }
        fx
    }

    /// The ServerHello chose version and suite: TLS 1.3 protects both
    /// directions from here on.
    fn on_server_hello(&mut self, dir: TlsDir) {
        if dir != TlsDir::Server {
            return;
        }
        self.version = self.facts.version_code;
        let (Some(id), Some(v)) = (self.facts.cipher_id, self.version) else {
            return;
        };
        self.suite = keys::suite(id, v);
        if self.suite.is_none() {
            self.reason.get_or_insert(NotDecrypted::UnsupportedCipher);
        }
        if self.tls13() {
            for side in &mut self.sides {
                if matches!(side.stage, Stage::Plain) {
                    side.stage = Stage::Waiting {
                        seen: 0,
                        exact: false,
                        lost: false,
                    };
                }
            }
        }
    }

    /// A record of a direction that cannot be decrypted (no keys yet, or
    /// stopped): only its type tells something.
    fn without_keys(&mut self, dir: TlsDir, ts: Ts, rec: &Record<'_>, on: &mut Sink<'_>) {
        let pre13 = self.version.is_some_and(|v| v < TlsVersion::Tls13.0);
        if pre13 && rec.content_type == ALERT {
            self.close_notify(dir, ts, true, on);
        }
    }

    fn on_alert(&mut self, dir: TlsDir, ts: Ts, data: &[u8], on: &mut Sink<'_>) {
        let Ok((_, TlsMessage::Alert(a))) = parse_tls_message_alert(data) else {
            return;
        };
        if a.code.0 == 0 {
            self.close_notify(dir, ts, false, on);
        } else {
            on(Event::Alert {
                dir,
                ts,
                level: a.severity.0,
                description: a.code.0,
            });
        }
    }

    fn close_notify(&mut self, dir: TlsDir, ts: Ts, inferred: bool, on: &mut Sink<'_>) {
        let slot = &mut self.sides[dir.idx()].close_notify;
        if slot.is_none() {
            *slot = Some(ts);
            on(Event::CloseNotify { dir, ts, inferred });
        }
    }

    fn fail(&mut self, dir: TlsDir, ts: Ts, reason: NotDecrypted, on: &mut Sink<'_>) {
        let side = &mut self.sides[dir.idx()];
        side.stage = Stage::Stopped;
        if side.failed.is_none() {
            side.failed = Some(reason);
            on(Event::Stopped { dir, ts, reason });
        }
    }

    /// Looks the connection up in the key log again if it changed.
    fn look_up(&mut self, keys: &KeyLog) {
        let Some(random) = self.facts.client_random else {
            return;
        };
        if self.looked == Some(keys.generation()) {
            return;
        }
        self.looked = Some(keys.generation());
        if let Some(s) = keys.get(&random) {
            self.secrets = Some(*s);
        }
    }

    /// A protected record with a cipher in place.
    fn on_decrypting(
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
    fn on_waiting(
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

/// One complete handshake message of `dir`.
fn on_message(facts: &mut HandshakeFacts, dir: TlsDir, m: Message<'_>, fx: &mut Effects) {
    use tls_parser::TlsHandshakeType as T;
    match (dir, T(m.msg_type), m.body) {
        (TlsDir::Client, T::ClientHello, Some(b)) => {
            fx.facts |= handshake::read_client_hello(facts, b)
        }
        (TlsDir::Server, T::ServerHello, Some(b)) => {
            let kind = handshake::read_server_hello(facts, b);
            fx.facts |= kind != ServerHello::Invalid;
            fx.server_hello = Some(kind);
        }
        (TlsDir::Server, T::EncryptedExtensions, Some(b)) => {
            fx.facts |= handshake::read_encrypted_extensions(facts, b);
        }
        (_, T::Finished, _) => fx.finished = true,
        (_, T::KeyUpdate, _) => fx.key_update = true,
        _ => {}
    }
}
