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

use super::epochs::Stage;
pub use super::events::{Event, NotDecrypted, Sink, TlsDir, TlsStatus};
use super::handshake::{self, HandshakeFacts, HandshakeReader, Message, ServerHello};
use super::keylog::{KeyLog, Secrets};
use super::keys::{self, Suite};
use super::record::{NotTls, Record, RecordReader};
use crate::Ts;

const CHANGE_CIPHER_SPEC: u8 = 20;
pub(super) const ALERT: u8 = 21;
pub(super) const HANDSHAKE: u8 = 22;
pub(super) const APPLICATION_DATA: u8 = 23;

/// One direction's state.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) stage: Stage,
    pub(super) hs: HandshakeReader,
    pub(super) failed: Option<NotDecrypted>,
    pub(super) close_notify: Option<Ts>,
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
pub(super) struct Effects {
    pub(super) facts: bool,
    pub(super) server_hello: Option<ServerHello>,
    pub(super) finished: bool,
    pub(super) key_update: bool,
}

/// Everything but the record readers and the plaintext buffer, so that a
/// record borrowed from a reader can be handled with `&mut Core`.
#[derive(Debug, Default)]
pub(super) struct Core {
    pub(super) facts: HandshakeFacts,
    pub(super) sides: [Side; 2],
    /// Negotiated (ServerHello) version.
    pub(super) version: Option<u16>,
    pub(super) suite: Option<Suite>,
    pub(super) secrets: Option<Secrets>,
    /// The key log generation last looked at.
    pub(super) looked: Option<u64>,
    /// Connection-wide reason (unsupported suite or version).
    pub(super) reason: Option<NotDecrypted>,
    /// A record was decrypted.
    pub(super) decrypted: bool,
    /// A protected record waited for keys.
    pub(super) waited: bool,
}

/// One TLS connection.
#[derive(Debug, Default)]
pub struct TlsConn {
    readers: [RecordReader; 2],
    core: Core,
    /// Decrypted plaintext of the record being handled.
    scratch: Vec<u8>,
    /// Bytes were lost: later bytes of the direction are ignored.
    gapped: [bool; 2],
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
            gapped,
        } = self;
        if gapped[dir.idx()] {
            return Ok(());
        }
        readers[dir.idx()].feed(bytes, &mut |rec| {
            core.on_record(dir, ts, &rec, keys, scratch, on);
        })
    }

    /// Bytes of direction `dir` were lost: its records can no longer be
    /// told apart, so its decryption stops with `gap`.
    pub fn gap(&mut self, dir: TlsDir) {
        self.gapped[dir.idx()] = true;
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
        let keys = c.usable_keys();
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

    /// Under the global memory cap: gives up partial records and partial
    /// handshake messages too (each a gap for its direction). Returns the
    /// bytes freed.
    pub fn shed(&mut self) -> usize {
        let before = self.held();
        for dir in [TlsDir::Client, TlsDir::Server] {
            let partial_message = self.core.sides[dir.idx()].hs.in_message();
            if self.readers[dir.idx()].pending() > 0 || partial_message {
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

    pub(super) fn tls13(&self) -> bool {
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
    pub(super) fn read_handshake(
        &mut self,
        dir: TlsDir,
        data: &[u8],
        on: &mut Sink<'_>,
    ) -> Effects {
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
    pub(super) fn without_keys(
        &mut self,
        dir: TlsDir,
        ts: Ts,
        rec: &Record<'_>,
        on: &mut Sink<'_>,
    ) {
        let pre13 = self.version.is_some_and(|v| v < TlsVersion::Tls13.0);
        if pre13 && rec.content_type == ALERT {
            self.close_notify(dir, ts, true, on);
        }
    }

    pub(super) fn on_alert(&mut self, dir: TlsDir, ts: Ts, data: &[u8], on: &mut Sink<'_>) {
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

    pub(super) fn fail(&mut self, dir: TlsDir, ts: Ts, reason: NotDecrypted, on: &mut Sink<'_>) {
        let side = &mut self.sides[dir.idx()];
        side.stage = Stage::Stopped;
        if side.failed.is_none() {
            side.failed = Some(reason);
            on(Event::Stopped { dir, ts, reason });
        }
    }

    /// Looks the connection up in the key log again if it changed.
    pub(super) fn look_up(&mut self, keys: &KeyLog) {
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
