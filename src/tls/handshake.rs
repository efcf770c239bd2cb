//! The handshake facts a capture shows: from the ClientHello and
//! ServerHello, which travel in plaintext, the version, the cipher suite,
//! the server name (SNI), the ALPN protocols offered and the randoms that
//! name the connection in a key log; from the TLS 1.3 EncryptedExtensions,
//! seen only when decrypting, the ALPN protocol chosen.
//!
//! Handshake messages may span records (a ClientHello with large key
//! shares), and a record may hold several; [`HandshakeReader`] cuts the
//! handshake byte stream of one direction into messages, keeping only those
//! this layer reads (certificates are skipped, not buffered).

use tls_parser::{
    TlsExtension, TlsHandshakeType, TlsVersion, parse_tls_client_hello_extension,
    parse_tls_extension_unknown, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello, parse_tls_server_hello_extension,
};

use super::keylog::RANDOM_LEN;
use super::keys;

/// Largest handshake message kept; longer ones (in practice certificate
/// chains, which are not kept anyway) are skipped.
pub const MAX_KEPT_MESSAGE: usize = 1 << 16;

/// The random of a ServerHello that is a HelloRetryRequest (RFC 8446
/// 4.1.3): SHA-256 of "HelloRetryRequest".
pub const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What the handshake told, as far as it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeFacts {
    /// The negotiated version ("TLS 1.2", "TLS 1.3"), from the ServerHello:
    /// its supported_versions extension when present, else its version.
    pub version: Option<&'static str>,
    /// The negotiated version's code point (0x0303, 0x0304).
    pub version_code: Option<u16>,
    /// The chosen cipher suite's IANA name.
    pub cipher: Option<&'static str>,
    pub cipher_id: Option<u16>,
    /// The host_name of the ClientHello's server_name extension.
    pub sni: Option<String>,
    /// The protocols the ClientHello offers (ALPN), in its order.
    pub alpn_offered: Vec<String>,
    /// The protocol the server chose: in the ServerHello up to TLS 1.2, in
    /// the (encrypted) EncryptedExtensions in TLS 1.3.
    pub alpn_chosen: Option<String>,
    pub client_random: Option<[u8; RANDOM_LEN]>,
    pub server_random: Option<[u8; RANDOM_LEN]>,
    /// The ClientHello offers 0-RTT early data (TLS 1.3), which this layer
    /// cannot decrypt.
    pub early_data_offered: bool,
}

impl HandshakeFacts {
    pub fn client_hello_seen(&self) -> bool {
        self.client_random.is_some()
    }

    pub fn server_hello_seen(&self) -> bool {
        self.server_random.is_some()
    }
}

/// The name of a protocol version.
pub fn version_name(v: u16) -> Option<&'static str> {
    Some(match TlsVersion(v) {
        TlsVersion::Ssl30 => "SSL 3.0",
        TlsVersion::Tls10 => "TLS 1.0",
        TlsVersion::Tls11 => "TLS 1.1",
        TlsVersion::Tls12 => "TLS 1.2",
        TlsVersion::Tls13 => "TLS 1.3",
        _ => return None,
    })
}

/// Reads a ClientHello body (without its 4-byte message header) into
/// `facts`. Returns false when it does not parse.
pub fn read_client_hello(facts: &mut HandshakeFacts, body: &[u8]) -> bool {
    let Ok((_, ch)) = parse_tls_handshake_client_hello(body) else {
        return false;
    };
    let Ok(random) = <[u8; RANDOM_LEN]>::try_from(ch.random) else {
        return false;
    };
    // A second ClientHello (after a HelloRetryRequest) keeps the random.
    facts.client_random = Some(random);
    facts.sni = None;
    facts.alpn_offered.clear();
    facts.early_data_offered = false;
    for ext in extensions(ch.ext.unwrap_or_default(), parse_tls_client_hello_extension) {
        match ext {
            TlsExtension::SNI(names) => {
                // Host names only (type 0); the first one.
                if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                    facts.sni = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            TlsExtension::ALPN(protos) => {
                facts.alpn_offered = protos
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            TlsExtension::EarlyData(_) => facts.early_data_offered = true,
            _ => {}
        }
    }
    true
}

/// What a ServerHello was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHello {
    /// The real one: version and suite chosen, keys follow.
    Chosen,
    /// A HelloRetryRequest: another ClientHello and ServerHello follow.
    Retry,
    Invalid,
}

/// Reads a ServerHello body into `facts`.
pub fn read_server_hello(facts: &mut HandshakeFacts, body: &[u8]) -> ServerHello {
    let Ok((_, sh)) = parse_tls_handshake_server_hello(body) else {
        return ServerHello::Invalid;
    };
    let Ok(random) = <[u8; RANDOM_LEN]>::try_from(sh.random) else {
        return ServerHello::Invalid;
    };
    let mut version = sh.version.0;
    let mut alpn = None;
    for ext in extensions(sh.ext.unwrap_or_default(), parse_tls_server_hello_extension) {
        match ext {
            TlsExtension::SupportedVersions(v) if v.len() == 1 => version = v[0].0,
            TlsExtension::ALPN(p) if p.len() == 1 => {
                alpn = Some(String::from_utf8_lossy(p[0]).into_owned());
            }
            _ => {}
        }
    }
    facts.version_code = Some(version);
    facts.version = version_name(version);
    facts.cipher_id = Some(sh.cipher.0);
    facts.cipher = keys::suite_name(sh.cipher.0);
    if random == HELLO_RETRY_RANDOM {
        return ServerHello::Retry;
    }
    facts.server_random = Some(random);
    if alpn.is_some() {
        facts.alpn_chosen = alpn;
    }
    ServerHello::Chosen
}

/// Reads a TLS 1.3 EncryptedExtensions body (decrypted) for the ALPN
/// protocol chosen. Returns whether one was found.
pub fn read_encrypted_extensions(facts: &mut HandshakeFacts, body: &[u8]) -> bool {
    let Some(list) = body.get(2..).filter(|l| {
        body.len() >= 2 && l.len() == usize::from(u16::from_be_bytes([body[0], body[1]]))
    }) else {
        return false;
    };
    for ext in extensions(list, parse_tls_server_hello_extension) {
        if let TlsExtension::ALPN(p) = ext
            && p.len() == 1
        {
            facts.alpn_chosen = Some(String::from_utf8_lossy(p[0]).into_owned());
            return true;
        }
    }
    false
}

type ExtParser = fn(&[u8]) -> tls_parser::IResult<&[u8], TlsExtension<'_>>;

/// The extensions of a hello, one at a time: one that `parse` rejects (a
/// malformed or unexpected body) is skipped whole by its length, so it
/// does not hide the ones after it.
fn extensions(mut rest: &[u8], parse: ExtParser) -> impl Iterator<Item = TlsExtension<'_>> {
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            if let Ok((r, ext)) = parse(rest) {
                rest = r;
                return Some(ext);
            }
            match parse_tls_extension_unknown(rest) {
                Ok((r, _)) => rest = r,
                Err(_) => rest = &[],
            }
        }
        None
    })
}

/// One complete handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u8,
    /// The body (without the 4-byte header), for the types this layer
    /// reads; `None` for the others and for oversized ones.
    pub body: Option<&'a [u8]>,
}

/// Whether this layer reads messages of type `t`.
fn kept(t: u8) -> bool {
    matches!(
        TlsHandshakeType(t),
        TlsHandshakeType::ClientHello
            | TlsHandshakeType::ServerHello
            | TlsHandshakeType::EncryptedExtensions
            | TlsHandshakeType::Finished
            | TlsHandshakeType::KeyUpdate
    )
}

/// Cuts one direction's handshake bytes into messages.
#[derive(Debug, Default)]
pub struct HandshakeReader {
    hdr: [u8; 4],
    hdr_len: usize,
    /// Body bytes still to come for the current message.
    left: usize,
    keep: bool,
    /// The kept body so far, when it spans pieces.
    buf: Vec<u8>,
}

impl HandshakeReader {
    /// Reads the next handshake bytes (record payloads of type handshake,
    /// decrypted when they were protected); `on` gets each message they
    /// complete.
    pub fn push(&mut self, mut data: &[u8], on: &mut dyn FnMut(Message<'_>)) {
        loop {
            if self.hdr_len < 4 {
                let n = (4 - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
                self.hdr_len += n;
                data = &data[n..];
                if self.hdr_len < 4 {
                    return;
                }
                self.left = u32::from_be_bytes([0, self.hdr[1], self.hdr[2], self.hdr[3]]) as usize;
                self.keep = kept(self.hdr[0]) && self.left <= MAX_KEPT_MESSAGE;
                if self.keep && data.len() >= self.left {
                    // The whole body is here: no copy.
                    let (body, rest) = data.split_at(self.left);
                    self.finish(Some(body), on);
                    data = rest;
                    continue;
                }
            }
            let n = self.left.min(data.len());
            if self.keep {
                self.buf.extend_from_slice(&data[..n]);
            }
            self.left -= n;
            data = &data[n..];
            if self.left > 0 {
                return;
            }
            let buf = std::mem::take(&mut self.buf);
            self.finish(self.keep.then_some(&buf[..]), on);
            self.buf = buf;
            self.buf.clear();
        }
    }

    fn finish(&mut self, body: Option<&[u8]>, on: &mut dyn FnMut(Message<'_>)) {
        on(Message {
            msg_type: self.hdr[0],
            body,
        });
        self.hdr_len = 0;
        self.left = 0;
    }

    /// Whether a message is partly read (TLS 1.3 forbids a message to
    /// span a key change).
    pub fn in_message(&self) -> bool {
        self.hdr_len > 0
    }

    /// Heap bytes held.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives the buffer's memory back.
    pub fn trim(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Forgets a partial message (its bytes were lost).
    pub fn reset(&mut self) {
        *self = HandshakeReader::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    /// Messages split at every byte come out whole, kept types with their
    /// body, others (a certificate) without.
    #[test]
    fn messages_span_pieces() {
        let mut stream = msg(2, b"server hello");
        stream.extend(msg(11, &[9; 3000]));
        stream.extend(msg(20, b""));
        stream.extend(msg(8, b"\x00\x00"));
        let want = vec![
            (2, Some(b"server hello".to_vec())),
            (11, None),
            (20, Some(vec![])),
            (8, Some(vec![0, 0])),
        ];
        for cut in 0..=stream.len() {
            let mut r = HandshakeReader::default();
            let mut got = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                r.push(piece, &mut |m| {
                    got.push((m.msg_type, m.body.map(<[u8]>::to_vec)))
                });
            }
            assert_eq!(got, want, "cut at {cut}");
            assert!(!r.in_message());
            assert!(r.held() <= 64, "the certificate is not kept");
        }
    }

    #[test]
    fn encrypted_extensions_alpn() {
        // extensions: ALPN ["http/1.1"], server_name (empty)
        let ee = [
            0x00, 0x13, 0x00, 0x10, 0x00, 0x0b, 0x00, 0x09, 0x08, b'h', b't', b't', b'p', b'/',
            b'1', b'.', b'1', 0x00, 0x00, 0x00, 0x00,
        ];
        let mut f = HandshakeFacts::default();
        assert!(read_encrypted_extensions(&mut f, &ee));
        assert_eq!(f.alpn_chosen.as_deref(), Some("http/1.1"));
        let mut f = HandshakeFacts::default();
        assert!(!read_encrypted_extensions(&mut f, &ee[..10]));
        assert!(!read_encrypted_extensions(&mut f, &[]));
        assert_eq!(f.alpn_chosen, None);
    }

    #[test]
    fn a_bad_extension_does_not_hide_the_next() {
        // server_name whose list claims more than it has, then ALPN.
        let exts = [
            0x00, 0x00, 0x00, 0x03, 0x00, 0x05, 0x00, 0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02,
            b'h', b'2',
        ];
        let got: Vec<_> = extensions(&exts, parse_tls_client_hello_extension).collect();
        assert!(
            got.iter()
                .any(|e| matches!(e, TlsExtension::ALPN(p) if p == &[&b"h2"[..]]))
        );
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(0x0303), Some("TLS 1.2"));
        assert_eq!(version_name(0x0304), Some("TLS 1.3"));
        assert_eq!(version_name(0x7f12), None);
    }
}
