//! One direction's record protection: an AEAD key, its IV and the record
//! sequence number, and how each TLS version builds nonces and additional
//! data around them.
//!
//! - TLS 1.3 (RFC 8446 5.2, 5.3): nonce = IV XOR the sequence number
//!   (left-padded to 12 bytes); additional data = the record header; the
//!   plaintext is the inner plaintext, whose real content type is its last
//!   non-zero byte (zeros after it are padding).
//! - TLS 1.2 AES-GCM (RFC 5288): nonce = 4-byte salt from the key block +
//!   the 8-byte explicit nonce that starts the record payload.
//! - TLS 1.2 ChaCha20-Poly1305 (RFC 7905): nonce = IV XOR the sequence
//!   number, no explicit nonce.
//! - TLS 1.2 additional data (RFC 5246 6.2.3.3): sequence number, content
//!   type, version, plaintext length.
//!
//! Decryption writes into a caller's buffer, reused from record to record:
//! the ciphertext is not kept after.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::keys::{AeadKind, TrafficKeys};
use super::record::Record;

/// AEAD tag length of every suite decrypted here.
pub const TAG_LEN: usize = 16;

/// TLS 1.2 GCM explicit nonce length.
const EXPLICIT_NONCE_LEN: usize = 8;

/// How nonces and additional data are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Tls13,
    Tls12Gcm,
    Tls12ChaCha,
}

/// A record that does not decrypt: wrong key, wrong sequence number,
/// tampered or truncated, or (TLS 1.3) an inner plaintext without content
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record does not decrypt")]
pub struct DecryptError;

enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Aead {
    fn new(kind: AeadKind, key: &[u8]) -> Option<Aead> {
        Some(match kind {
            AeadKind::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            AeadKind::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            AeadKind::ChaCha20Poly1305 => {
                Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    /// Decrypts `buf` in place, checking `tag`.
    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), DecryptError> {
        fn run<A: AeadInOut>(
            a: &A,
            nonce: &[u8; 12],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8],
        ) -> Result<(), DecryptError> {
            let nonce =
                aes_gcm::aead::Nonce::<A>::try_from(&nonce[..]).map_err(|_| DecryptError)?;
            let tag = aes_gcm::aead::Tag::<A>::try_from(tag).map_err(|_| DecryptError)?;
            a.decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
                .map_err(|_| DecryptError)
        }
        match self {
            Aead::Aes128(a) => run(a.as_ref(), nonce, aad, buf, tag),
            Aead::Aes256(a) => run(a.as_ref(), nonce, aad, buf, tag),
            Aead::ChaCha(a) => run(a.as_ref(), nonce, aad, buf, tag),
        }
    }

    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        fn run<A: AeadInOut>(
            a: &A,
            nonce: &[u8; 12],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Option<[u8; TAG_LEN]> {
            let nonce = aes_gcm::aead::Nonce::<A>::try_from(&nonce[..]).ok()?;
            let tag = a.encrypt_inout_detached(&nonce, aad, buf.into()).ok()?;
            <[u8; TAG_LEN]>::try_from(tag.as_slice()).ok()
        }
        match self {
            Aead::Aes128(a) => run(a.as_ref(), nonce, aad, buf),
            Aead::Aes256(a) => run(a.as_ref(), nonce, aad, buf),
            Aead::ChaCha(a) => run(a.as_ref(), nonce, aad, buf),
        }
    }
}

/// The protection of one direction in one epoch.
pub struct RecordCipher {
    aead: Aead,
    /// TLS 1.3 and ChaCha: the 12-byte IV; GCM in TLS 1.2: the 4-byte salt
    /// in the first bytes.
    iv: [u8; 12],
    scheme: Scheme,
    /// The sequence number of the next record.
    seq: u64,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("scheme", &self.scheme)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl RecordCipher {
    /// `None` when the key or IV length does not fit the AEAD and scheme.
    pub fn new(
        kind: AeadKind,
        keys: &TrafficKeys,
        scheme: Scheme,
        seq: u64,
    ) -> Option<RecordCipher> {
        let want_iv = if scheme == Scheme::Tls12Gcm { 4 } else { 12 };
        if keys.iv().len() != want_iv || keys.key().len() != kind.key_len() {
            return None;
        }
        let mut iv = [0; 12];
        iv[..want_iv].copy_from_slice(keys.iv());
        Some(RecordCipher {
            aead: Aead::new(kind, keys.key())?,
            iv,
            scheme,
            seq,
        })
    }

    /// The sequence number of the next record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Places the cipher at record `seq` (found by [`RecordCipher::open_at`]).
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Decrypts the next record into `out` and returns its content type
    /// (TLS 1.3: the inner one). The sequence number advances only on
    /// success.
    pub fn open(&mut self, rec: &Record<'_>, out: &mut Vec<u8>) -> Result<u8, DecryptError> {
        let t = self.open_at(self.seq, rec, out)?;
        self.seq += 1;
        Ok(t)
    }

    /// Decrypts `rec` as record number `seq`, for a search of the sequence
    /// number when records went by before the keys were known.
    pub fn open_at(
        &self,
        seq: u64,
        rec: &Record<'_>,
        out: &mut Vec<u8>,
    ) -> Result<u8, DecryptError> {
        out.clear();
        let p = rec.payload;
        let explicit = if self.scheme == Scheme::Tls12Gcm {
            EXPLICIT_NONCE_LEN
        } else {
            0
        };
        if p.len() < explicit + TAG_LEN {
            return Err(DecryptError);
        }
        let (nonce_part, rest) = p.split_at(explicit);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = self.nonce(seq, nonce_part);
        let aad12;
        let hdr13;
        let aad: &[u8] = match self.scheme {
            Scheme::Tls13 => {
                hdr13 = rec.header();
                &hdr13
            }
            Scheme::Tls12Gcm | Scheme::Tls12ChaCha => {
                aad12 = tls12_aad(seq, rec.content_type, rec.version, ct.len());
                &aad12
            }
        };
        out.extend_from_slice(ct);
        if let Err(e) = self.aead.open(&nonce, aad, out, tag) {
            out.clear();
            return Err(e);
        }
        if self.scheme != Scheme::Tls13 {
            return Ok(rec.content_type);
        }
        // The inner plaintext: content, then the type, then zero padding.
        let Some(end) = out.iter().rposition(|&b| b != 0) else {
            out.clear();
            return Err(DecryptError);
        };
        let t = out[end];
        out.truncate(end);
        Ok(t)
    }

    fn nonce(&self, seq: u64, explicit: &[u8]) -> [u8; 12] {
        let mut n = self.iv;
        if self.scheme == Scheme::Tls12Gcm {
            n[4..].copy_from_slice(explicit);
        } else {
            for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
                *b ^= s;
            }
        }
        n
    }

    /// Encrypts a record (for tests and fuzz seeds): `content_type` and
    /// `plaintext` become the bytes of a whole record on the wire, with the
    /// explicit nonce taken from the sequence number in TLS 1.2 GCM, as
    /// common implementations do. The sequence number advances.
    pub fn seal(&mut self, content_type: u8, plaintext: &[u8]) -> Option<Vec<u8>> {
        let seq = self.seq;
        let explicit = seq.to_be_bytes();
        let (outer_type, mut body) = match self.scheme {
            Scheme::Tls13 => {
                let mut b = plaintext.to_vec();
                b.push(content_type);
                (23, b)
            }
            _ => (content_type, plaintext.to_vec()),
        };
        let explicit_len = if self.scheme == Scheme::Tls12Gcm {
            EXPLICIT_NONCE_LEN
        } else {
            0
        };
        let len = u16::try_from(explicit_len + body.len() + TAG_LEN).ok()?;
        let header = [outer_type, 3, 3, (len >> 8) as u8, len as u8];
        let aad: Vec<u8> = match self.scheme {
            Scheme::Tls13 => header.to_vec(),
            _ => tls12_aad(seq, content_type, 0x0303, body.len()).to_vec(),
        };
        let nonce = self.nonce(seq, &explicit);
        let tag = self.aead.seal(&nonce, &aad, &mut body)?;
        let mut rec = header.to_vec();
        if explicit_len > 0 {
            rec.extend_from_slice(&explicit);
        }
        rec.extend_from_slice(&body);
        rec.extend_from_slice(&tag);
        self.seq += 1;
        Some(rec)
    }
}

/// TLS 1.2 additional data: seq_num, type, version, length.
fn tls12_aad(seq: u64, content_type: u8, version: u16, len: usize) -> [u8; 13] {
    let mut aad = [0; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content_type;
    aad[9..11].copy_from_slice(&version.to_be_bytes());
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::record::RecordReader;

    fn keys(key_len: usize, iv_len: usize) -> TrafficKeys {
        let key: Vec<u8> = (0..key_len as u8).collect();
        let iv: Vec<u8> = (100..100 + iv_len as u8).collect();
        TrafficKeys::new(&key, &iv).unwrap()
    }

    /// Seals records with one cipher and opens them with another of the
    /// same keys, for every AEAD and scheme: the plaintext and type come
    /// back; a flipped bit, a wrong sequence number or a truncated record
    /// fail.
    #[test]
    fn round_trips() {
        let cases = [
            (AeadKind::Aes128Gcm, Scheme::Tls12Gcm, 4),
            (AeadKind::Aes256Gcm, Scheme::Tls12Gcm, 4),
            (AeadKind::ChaCha20Poly1305, Scheme::Tls12ChaCha, 12),
            (AeadKind::Aes128Gcm, Scheme::Tls13, 12),
            (AeadKind::Aes256Gcm, Scheme::Tls13, 12),
            (AeadKind::ChaCha20Poly1305, Scheme::Tls13, 12),
        ];
        for (kind, scheme, iv_len) in cases {
            let k = keys(kind.key_len(), iv_len);
            let mut tx = RecordCipher::new(kind, &k, scheme, 0).unwrap();
            let mut rx = RecordCipher::new(kind, &k, scheme, 0).unwrap();
            let mut out = Vec::new();
            for (i, msg) in [&b"GET / HTTP/1.1\r\n"[..], b"", &[0u8; 300]]
                .iter()
                .enumerate()
            {
                let wire = tx.seal(23, msg).unwrap();
                let mut r = RecordReader::new();
                let mut recs = Vec::new();
                r.feed(&wire, &mut |rec| {
                    recs.push((rec.content_type, rec.version, rec.payload.to_vec()))
                })
                .unwrap();
                let (t, v, payload) = &recs[0];
                let rec = Record {
                    content_type: *t,
                    version: *v,
                    payload,
                };
                assert_eq!(rx.open_at(i as u64 + 1, &rec, &mut out), Err(DecryptError));
                assert_eq!(rx.open(&rec, &mut out), Ok(23), "{kind:?} {scheme:?}");
                assert_eq!(&out[..], *msg);
                let mut bad = payload.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                let rec = Record {
                    content_type: *t,
                    version: *v,
                    payload: &bad,
                };
                assert_eq!(rx.open_at(i as u64, &rec, &mut out), Err(DecryptError));
                assert!(out.is_empty());
                let rec = Record {
                    content_type: *t,
                    version: *v,
                    payload: &payload[..10],
                };
                assert_eq!(rx.open_at(i as u64, &rec, &mut out), Err(DecryptError));
            }
            assert_eq!(rx.seq(), 3);
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert!(
            RecordCipher::new(AeadKind::Aes128Gcm, &keys(16, 12), Scheme::Tls12Gcm, 0).is_none()
        );
        assert!(RecordCipher::new(AeadKind::Aes128Gcm, &keys(32, 12), Scheme::Tls13, 0).is_none());
        assert!(
            RecordCipher::new(
                AeadKind::ChaCha20Poly1305,
                &keys(32, 4),
                Scheme::Tls12ChaCha,
                0
            )
            .is_none()
        );
    }

    /// A TLS 1.3 inner plaintext of zeros only has no content type.
    #[test]
    fn tls13_padding_only_fails() {
        let k = keys(16, 12);
        let mut tx = RecordCipher::new(AeadKind::Aes128Gcm, &k, Scheme::Tls13, 0).unwrap();
        let mut rx = RecordCipher::new(AeadKind::Aes128Gcm, &k, Scheme::Tls13, 0).unwrap();
        // Seal "content type 0" with padding: all zeros.
        let wire = tx.seal(0, &[0, 0, 0]).unwrap();
        let rec = Record {
            content_type: 23,
            version: 0x0303,
            payload: &wire[5..],
        };
        let mut out = Vec::new();
        assert_eq!(rx.open(&rec, &mut out), Err(DecryptError));
        // Zero padding after the real type is stripped: sealing "type 0"
        // after [7, 21, 0] gives the inner plaintext 7, 21, 0, 0.
        let wire = tx.seal(0, &[7, 21, 0]).unwrap();
        let rec = Record {
            content_type: 23,
            version: 0x0303,
            payload: &wire[5..],
        };
        let mut rx2 = RecordCipher::new(AeadKind::Aes128Gcm, &k, Scheme::Tls13, 1).unwrap();
        assert_eq!(rx2.open(&rec, &mut out), Ok(21));
        assert_eq!(out, [7]);
    }
}
