//! What a [`TlsConn`](super::TlsConn) reports: directions, events, and
//! why a connection is not decrypted (the contract's `tls` object).

use crate::Ts;

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
    pub const ALL: [NotDecrypted; 5] = [
        NotDecrypted::NoKey,
        NotDecrypted::UnsupportedCipher,
        NotDecrypted::NoHandshake,
        NotDecrypted::Gap,
        NotDecrypted::DecryptError,
    ];

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
