//! From key log secrets to record keys.
//!
//! - TLS 1.3 (RFC 8446 7.1, 7.2, 7.3): a traffic secret gives the record
//!   key and IV by HKDF-Expand-Label with the labels "key" and "iv"; a
//!   KeyUpdate replaces the secret by HKDF-Expand-Label(secret,
//!   "traffic upd"). The key log holds the handshake and first application
//!   traffic secrets, so nothing before them (no Diffie-Hellman) is needed.
//! - TLS 1.2 (RFC 5246 6.3): the master secret and both randoms give the
//!   key block through the PRF (P_SHA256, or P_SHA384 for the suites that
//!   name it): client key, server key, client IV, server IV (AEAD suites
//!   have no MAC keys). The IV is the 4-byte GCM salt (RFC 5288), or the
//!   12-byte ChaCha20-Poly1305 IV (RFC 7905).
//!
//! The suites decrypted are the AEAD ones with AES-128-GCM, AES-256-GCM or
//! ChaCha20-Poly1305; their parameters come from tls-parser's table of the
//! IANA registry.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384};
use tls_parser::{TlsCipherEnc, TlsCipherEncMode, TlsCipherKx, TlsCipherSuite, TlsPRF, TlsVersion};

use super::keylog::{MAX_SECRET_LEN, RANDOM_LEN, Secret};

/// The hash of a suite: of its PRF (TLS 1.2) or its HKDF (TLS 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    /// Output length in bytes, also the length of TLS 1.3 secrets.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// The AEAD of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadKind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadKind {
    pub fn key_len(self) -> usize {
        match self {
            AeadKind::Aes128Gcm => 16,
            AeadKind::Aes256Gcm | AeadKind::ChaCha20Poly1305 => 32,
        }
    }

    /// The implicit IV a TLS 1.2 key block holds: the GCM salt is 4 bytes,
    /// ChaCha20-Poly1305 takes the whole 12-byte nonce from it.
    pub fn tls12_iv_len(self) -> usize {
        match self {
            AeadKind::Aes128Gcm | AeadKind::Aes256Gcm => 4,
            AeadKind::ChaCha20Poly1305 => 12,
        }
    }
}

/// A cipher suite this layer decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    /// The IANA name, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub name: &'static str,
    pub aead: AeadKind,
    pub hash: Hash,
    /// A TLS 1.3 suite (key schedule by HKDF, inner content types).
    pub tls13: bool,
}

/// The IANA name of any registered suite.
pub fn suite_name(id: u16) -> Option<&'static str> {
    TlsCipherSuite::from_id(id).map(|s| s.name)
}

/// The suite `id` negotiated under `version`, when it can be decrypted:
/// TLS 1.3 with its three AEAD suites; TLS 1.2 with RSA, DHE or ECDHE key
/// exchange and an AEAD (AES-GCM, ChaCha20-Poly1305). CBC, CCM, export and
/// older versions give `None` (reported as `unsupported_cipher`).
pub fn suite(id: u16, version: u16) -> Option<Suite> {
    let cs = TlsCipherSuite::from_id(id)?;
    let aead = match (cs.enc, cs.enc_mode, cs.enc_size) {
        (TlsCipherEnc::Aes, TlsCipherEncMode::Gcm, 128) => AeadKind::Aes128Gcm,
        (TlsCipherEnc::Aes, TlsCipherEncMode::Gcm, 256) => AeadKind::Aes256Gcm,
        (TlsCipherEnc::Chacha20_Poly1305, _, _) => AeadKind::ChaCha20Poly1305,
        _ => return None,
    };
    let tls13 = cs.kx == TlsCipherKx::Tls13;
    let hash = match cs.prf {
        TlsPRF::Sha384 => Hash::Sha384,
        TlsPRF::Sha256 => Hash::Sha256,
        // TLS 1.2's default PRF is P_SHA256 (RFC 5246 5).
        TlsPRF::Default if !tls13 => Hash::Sha256,
        _ => return None,
    };
    let kx_ok = matches!(
        cs.kx,
        TlsCipherKx::Rsa | TlsCipherKx::Dhe | TlsCipherKx::Ecdhe
    );
    let fits = match TlsVersion(version) {
        TlsVersion::Tls13 => tls13,
        TlsVersion::Tls12 => kx_ok,
        _ => false,
    };
    fits.then_some(Suite {
        id,
        name: cs.name,
        aead,
        hash,
        tls13,
    })
}

/// One direction's record key and IV (or GCM salt), inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TrafficKeys {
    key: [u8; 32],
    key_len: u8,
    iv: [u8; 12],
    iv_len: u8,
}

impl TrafficKeys {
    /// `None` when the lengths do not fit (at most 32 and 12 bytes).
    pub fn new(key: &[u8], iv: &[u8]) -> Option<TrafficKeys> {
        if key.len() > 32 || iv.len() > 12 {
            return None;
        }
        let mut k = TrafficKeys {
            key: [0; 32],
            key_len: key.len() as u8,
            iv: [0; 12],
            iv_len: iv.len() as u8,
        };
        k.key[..key.len()].copy_from_slice(key);
        k.iv[..iv.len()].copy_from_slice(iv);
        Some(k)
    }

    pub fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    pub fn iv(&self) -> &[u8] {
        &self.iv[..usize::from(self.iv_len)]
    }
}

impl std::fmt::Debug for TrafficKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrafficKeys({} + {} bytes)", self.key_len, self.iv_len)
    }
}

/// HKDF-Expand-Label (RFC 8446 7.1): `out.len()` bytes from `secret` for
/// `label` (without its "tls13 " prefix) and `context`. `None` when the
/// secret is shorter than the hash or the output too long for HKDF.
pub fn hkdf_expand_label(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(PREFIX.len() + label.len()).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    let info: [&[u8]; 6] = [&len, &label_len, PREFIX, label, &context_len, context];
    match hash {
        Hash::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand_multi_info(&info, out)
            .ok(),
        Hash::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand_multi_info(&info, out)
            .ok(),
    }
}

/// The record key and IV of a TLS 1.3 traffic secret. `None` when the
/// secret's length is not the suite's hash length (a key log line for
/// another suite, or cut short).
pub fn tls13_traffic_keys(suite: &Suite, secret: &Secret) -> Option<TrafficKeys> {
    if secret.len() != suite.hash.output_len() {
        return None;
    }
    let mut key = [0; 32];
    let key = &mut key[..suite.aead.key_len()];
    let mut iv = [0; 12];
    hkdf_expand_label(suite.hash, secret.as_bytes(), b"key", b"", key)?;
    hkdf_expand_label(suite.hash, secret.as_bytes(), b"iv", b"", &mut iv)?;
    TrafficKeys::new(key, &iv)
}

/// The traffic secret after a KeyUpdate (RFC 8446 7.2).
pub fn tls13_next_secret(hash: Hash, secret: &Secret) -> Option<Secret> {
    let mut next = [0; MAX_SECRET_LEN];
    let next = &mut next[..hash.output_len()];
    hkdf_expand_label(hash, secret.as_bytes(), b"traffic upd", b"", next)?;
    Secret::from_slice(next)
}

/// Both directions' keys of a TLS 1.2 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls12Keys {
    pub client: TrafficKeys,
    pub server: TrafficKeys,
}

/// The TLS 1.2 key block of an AEAD suite: key expansion with the PRF
/// over the master secret and both randoms (RFC 5246 6.3). `None` when
/// the master secret is not 48 bytes.
pub fn tls12_keys(
    suite: &Suite,
    master: &Secret,
    client_random: &[u8; RANDOM_LEN],
    server_random: &[u8; RANDOM_LEN],
) -> Option<Tls12Keys> {
    if master.len() != 48 || suite.tls13 {
        return None;
    }
    let (k, iv) = (suite.aead.key_len(), suite.aead.tls12_iv_len());
    let mut block = [0; 2 * (32 + 12)];
    let block = &mut block[..2 * (k + iv)];
    // The seed is server random then client random for key expansion.
    prf(
        suite.hash,
        master.as_bytes(),
        b"key expansion",
        &[server_random, client_random],
        block,
    )?;
    let (client_key, rest) = block.split_at(k);
    let (server_key, rest) = rest.split_at(k);
    let (client_iv, server_iv) = rest.split_at(iv);
    Some(Tls12Keys {
        client: TrafficKeys::new(client_key, client_iv)?,
        server: TrafficKeys::new(server_key, server_iv)?,
    })
}

/// The TLS 1.2 PRF (RFC 5246 5): P_hash(secret, label + seed).
pub fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) -> Option<()> {
    match hash {
        Hash::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, out),
        Hash::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, out),
    }
}

/// P_hash: A(0) = seed, A(i) = HMAC(secret, A(i-1)); the output is
/// HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...
fn p_hash<M: Mac + KeyInit + Clone>(
    secret: &[u8],
    label: &[u8],
    seed: &[&[u8]],
    out: &mut [u8],
) -> Option<()> {
    let keyed = <M as KeyInit>::new_from_slice(secret).ok()?;
    let mut a = keyed.clone();
    a.update(label);
    seed.iter().for_each(|s| a.update(s));
    let mut a = a.finalize().into_bytes();
    for chunk in out.chunks_mut(a.len()) {
        let mut m = keyed.clone();
        m.update(&a);
        m.update(label);
        seed.iter().for_each(|s| m.update(s));
        let block = m.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        let mut next = keyed.clone();
        next.update(&a);
        a = next.finalize().into_bytes();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).expect("test hex")
    }

    /// The P_SHA256 and P_SHA384 vectors of the IETF TLS working group
    /// (mail-archive msg03416).
    #[test]
    fn prf_vectors() {
        let mut out = [0; 100];
        prf(
            Hash::Sha256,
            &h("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &[&h("a0ba9f936cda311827a6f796ffd5198c")],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.to_vec(),
            h(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a
               6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab
               4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701
               87347b66"
            )
        );
        let mut out = [0; 148];
        prf(
            Hash::Sha384,
            &h("b80b733d6ceefcdc71566ea48e5567df"),
            b"test label",
            &[&h("cd665cf6a8447dd6ff8b27555edb7465")],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.to_vec(),
            h(
                "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd
               e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd
               8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425
               9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6
               91c8f3a26854308d5eaa3be85e0990703d73e56f"
            )
        );
    }

    #[test]
    fn suites() {
        let s = suite(0x1301, 0x0304).unwrap();
        assert_eq!(
            (s.name, s.aead, s.hash, s.tls13),
            (
                "TLS_AES_128_GCM_SHA256",
                AeadKind::Aes128Gcm,
                Hash::Sha256,
                true
            )
        );
        let s = suite(0x1302, 0x0304).unwrap();
        assert_eq!((s.aead, s.hash), (AeadKind::Aes256Gcm, Hash::Sha384));
        let s = suite(0x1303, 0x0304).unwrap();
        assert_eq!((s.aead, s.hash), (AeadKind::ChaCha20Poly1305, Hash::Sha256));
        let s = suite(0xc02f, 0x0303).unwrap();
        assert_eq!(s.name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(
            (s.aead, s.hash, s.tls13),
            (AeadKind::Aes128Gcm, Hash::Sha256, false)
        );
        let s = suite(0xc030, 0x0303).unwrap();
        assert_eq!((s.aead, s.hash), (AeadKind::Aes256Gcm, Hash::Sha384));
        for id in [0xcca8, 0xcca9, 0xccaa, 0x009c, 0x009d, 0x009e, 0xc02b] {
            assert!(suite(id, 0x0303).is_some(), "{id:#x}");
        }
        // CBC, CCM, a TLS 1.3 suite under 1.2, TLS 1.0, unknown ids.
        assert_eq!(suite(0xc027, 0x0303), None);
        assert_eq!(suite(0x1304, 0x0304), None);
        assert_eq!(suite(0x1301, 0x0303), None);
        assert_eq!(suite(0xc02f, 0x0304), None);
        assert_eq!(suite(0xc02f, 0x0301), None);
        assert_eq!(suite(0xfefe, 0x0303), None);
        assert_eq!(
            suite_name(0xc027),
            Some("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")
        );
    }

    #[test]
    fn lengths_are_checked() {
        let s = suite(0x1302, 0x0304).unwrap();
        let short = Secret::from_slice(&[1; 32]).unwrap();
        assert_eq!(tls13_traffic_keys(&s, &short), None);
        let ok = Secret::from_slice(&[1; 48]).unwrap();
        let k = tls13_traffic_keys(&s, &ok).unwrap();
        assert_eq!((k.key().len(), k.iv().len()), (32, 12));
        let next = tls13_next_secret(Hash::Sha384, &ok).unwrap();
        assert_eq!(next.len(), 48);
        assert_ne!(next, ok);
        let s12 = suite(0xcca8, 0x0303).unwrap();
        let k = tls12_keys(&s12, &ok, &[2; 32], &[3; 32]).unwrap();
        assert_eq!((k.client.key().len(), k.client.iv().len()), (32, 12));
        assert_ne!(k.client, k.server);
        assert_eq!(tls12_keys(&s12, &short, &[2; 32], &[3; 32]), None);
        let mut big = vec![0; 70_000];
        assert_eq!(
            hkdf_expand_label(Hash::Sha256, &[0; 32], b"x", b"", &mut big),
            None
        );
    }
}
