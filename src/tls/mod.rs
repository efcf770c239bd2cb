//! TLS (wss): reading TLS records off the reassembled TCP streams, the
//! handshake facts anyone can see, and, with keys from a key log, the
//! decrypted application data the upgrade and frame stages read as if it
//! came from TCP.
//!
//! The layer is self-contained: [`TlsConn`] takes the bytes of both
//! directions of one connection (in the pieces reassembly hands out, each
//! with the timestamp of the packet that carried it) and a [`KeyLog`], and
//! reports [`Event`]s: the handshake facts, decrypted plaintext tagged with
//! the time of the packet that completed its record, alerts, and why it
//! could not decrypt. The parts, one file each:
//!
//! - [`keylog`]: the NSS key log format (`SSLKEYLOGFILE`), files that grow
//!   while a capture runs, pcapng Decryption Secrets Blocks.
//! - [`record`]: TLS records out of a byte stream, one partial record kept.
//! - [`handshake`]: ClientHello / ServerHello / EncryptedExtensions facts,
//!   handshake messages that span records.
//! - [`keys`]: the cipher suites this layer decrypts, the TLS 1.3 key
//!   schedule (HKDF-Expand-Label, KeyUpdate) and the TLS 1.2 PRF key block.
//! - [`crypto`]: one direction's AEAD record protection (nonces, additional
//!   data, the TLS 1.3 inner content type).
//! - [`conn`]: one connection, both directions, the state machine tying
//!   the others together; `epochs` (private) its protected records: keys
//!   found late, TLS 1.3 epochs, KeyUpdate.
//! - [`events`]: what a connection reports, and why it was not decrypted.
//!
//! Parsing of TLS structures is rusticata's `tls-parser`; the cryptography
//! is RustCrypto's (`aes-gcm`, `chacha20poly1305`, `hkdf`, `hmac`, `sha2`).

pub mod conn;
pub mod crypto;
mod epochs;
pub mod events;
pub mod handshake;
pub mod keylog;
pub mod keys;
pub mod record;

#[cfg(test)]
mod tests_conn;
#[cfg(test)]
mod tests_keylog;
#[cfg(test)]
mod tests_malformed;
#[cfg(test)]
mod tests_rfc8448;
#[cfg(test)]
mod tests_samples;
#[cfg(test)]
mod tests_tls13;

/// The key log of a run, shared with every TLS connection (a live capture
/// re-reads the file as it grows; a pcapng's secrets blocks add to it).
pub type SharedKeys = std::sync::Arc<std::sync::RwLock<KeyLog>>;

pub use conn::TlsConn;
pub use events::{Event, NotDecrypted, TlsDir, TlsStatus};
pub use handshake::HandshakeFacts;
pub use keylog::{KeyLog, KeyLogError, KeyLogStats};
pub use record::{NotTls, looks_like_client_hello};
