//! The HTTP/1.1 Upgrade handshake that opens a WebSocket (RFC 6455 section 4):
//! nom parsers for the request and the response heads.
//!
//! A head is parsed only once it is complete (up to the empty line), which
//! makes obs-folded and repeated header lines easy to join, and lets a caller
//! tell "need more bytes" (`Incomplete`) from "not HTTP" (`Error`).

use std::borrow::Cow;

use base64::Engine as _;
use nom::Parser;
use nom::bytes::complete::{tag, take_till1, take_while_m_n, take_while1};
use nom::character::complete::space1;
use nom::{IResult, Needed};
use sha1::{Digest, Sha1};

/// Longest head we wait for; a longer one is not a WebSocket handshake.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// The GUID of RFC 6455 1.3, appended to the key for Sec-WebSocket-Accept.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The client's upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// `Upgrade: websocket` was present (case-insensitive, among tokens).
    pub upgrade_websocket: bool,
    pub key: Option<String>,
}

/// The server's response to an upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub accept: Option<String>,
    pub protocol: Option<String>,
    /// Accepted extensions, one entry each with its parameters, trimmed.
    pub extensions: Vec<String>,
}

/// Which RSV bits the negotiated extensions give a meaning to (RFC 6455
/// 5.2: any other set bit fails the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsvRules {
    /// RSV1 on data frames (permessage-deflate and its predecessors).
    pub rsv1_on_data: bool,
    /// Any RSV bit on data frames: an extension we do not know was agreed.
    pub any_on_data: bool,
}

impl RsvRules {
    /// A connection picked up without its handshake: RSV1 may be
    /// permessage-deflate, nothing else is known.
    pub const MIDSTREAM: RsvRules = RsvRules {
        rsv1_on_data: true,
        any_on_data: false,
    };

    /// Whether a frame's RSV bits are allowed (never on control frames).
    pub fn allow(self, rsv: u8, data_frame: bool) -> bool {
        rsv == 0 || (data_frame && (self.any_on_data || (self.rsv1_on_data && rsv == 0b100)))
    }
}

impl Response {
    /// The RSV rules of the extensions this response accepted.
    pub fn rsv_rules(&self) -> RsvRules {
        RsvRules {
            rsv1_on_data: self.allows_rsv1(),
            any_on_data: self.has_unknown_extension(),
        }
    }

    /// Whether the negotiated extensions allow RSV1 on data frames.
    pub fn allows_rsv1(&self) -> bool {
        self.extensions.iter().any(|e| {
            let name = e.split(';').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("permessage-deflate")
                || name.eq_ignore_ascii_case("x-webkit-deflate-frame")
                || name.eq_ignore_ascii_case("perframe-deflate")
        })
    }

    /// Whether an extension we do not know was negotiated: it may give
    /// meaning to any RSV bit on data frames, so those are not judged.
    pub fn has_unknown_extension(&self) -> bool {
        self.extensions.iter().any(|e| {
            let name = e.split(';').next().unwrap_or("").trim();
            !(name.eq_ignore_ascii_case("permessage-deflate")
                || name.eq_ignore_ascii_case("x-webkit-deflate-frame")
                || name.eq_ignore_ascii_case("perframe-deflate"))
        })
    }
}

/// An HTTP head of either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Request(Request),
    Response(Response),
}

/// Parses the head at the start of `input`: a response when it starts like
/// one, else a request. Returns the head and the bytes it took.
pub fn parse_head(input: &[u8]) -> Result<(usize, Head), nom::Err<nom::error::Error<&[u8]>>> {
    if looks_like_response(input) {
        parse_response(input).map(|(rest, r)| (input.len() - rest.len(), Head::Response(r)))
    } else {
        parse_request(input).map(|(rest, r)| (input.len() - rest.len(), Head::Request(r)))
    }
}

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2).
pub fn accept_for_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Finds the end of a head: the index just past the empty line (LF or
/// CR LF).
fn head_end(i: &[u8]) -> Option<usize> {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', i) {
        if matches!(&i[start..nl], b"" | b"\r") {
            return Some(nl + 1);
        }
        start = nl + 1;
    }
    None
}

/// The rest of a line, up to its CR or LF (all of `i` when it has none).
/// memchr finds the end a vector at a time, not a byte at a time.
fn rest_of_line(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let end = memchr::memchr2(b'\r', b'\n', i).unwrap_or(i.len());
    Ok((&i[end..], &i[..end]))
}

/// The bytes of an HTTP token (RFC 9110 5.6.2), as a table: header names
/// are read byte by byte, and a search of the delimiters per byte cost
/// about a seventh of a short connection's instructions.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_graphic();
        c += 1;
    }
    let delimiters = b"()<>@,;:\\\"/[]?={}";
    let mut i = 0;
    while i < delimiters.len() {
        t[delimiters[i] as usize] = false;
        i += 1;
    }
    t
};

fn is_token(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

fn line_end(i: &[u8]) -> IResult<&[u8], &[u8]> {
    nom::branch::alt((tag(&b"\r\n"[..]), tag(&b"\n"[..]))).parse(i)
}

fn request_line(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (i, (method, _, target, _, _, _, _)) = (
        take_while1(is_token),
        space1,
        take_till1(|c| c == b' ' || c == b'\r' || c == b'\n'),
        space1,
        tag(&b"HTTP/"[..]),
        rest_of_line,
        line_end,
    )
        .parse(i)?;
    Ok((i, (method, target)))
}

fn status_line(i: &[u8]) -> IResult<&[u8], u16> {
    let (i, (_, _, _, code, _, _)) = (
        tag(&b"HTTP/"[..]),
        take_till1(|c| c == b' '),
        space1,
        take_while_m_n(3, 3, |c: u8| c.is_ascii_digit()),
        rest_of_line,
        line_end,
    )
        .parse(i)?;
    let code = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    Ok((i, code))
}

/// One header line (without folding): name and raw value.
fn header_line(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (i, (name, _, value, _)) = (
        take_while1(is_token),
        tag(&b":"[..]),
        rest_of_line,
        line_end,
    )
        .parse(i)?;
    Ok((i, (name, value)))
}

/// A continuation line of an obs-folded header (starts with SP or HT).
fn fold_line(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (i, (_, value, _)) = (
        take_while1(|c| c == b' ' || c == b'\t'),
        rest_of_line,
        line_end,
    )
        .parse(i)?;
    Ok((i, value))
}

/// One header as sent: name and raw value borrow the head. The value
/// becomes text (UTF-8 checked, trimmed) only when asked for, and only the
/// few headers a handshake needs are (a head costs one allocation, not two
/// per line: a million short connections spent a tenth of their time
/// here). An obs-folded value, joined with its continuation lines, is a
/// string of its own.
struct Header<'a> {
    name: &'a [u8],
    raw: &'a [u8],
    folded: Option<String>,
}

impl Header<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    fn value(&self) -> Cow<'_, str> {
        match &self.folded {
            Some(v) => Cow::Borrowed(v),
            None => text(self.raw),
        }
    }
}

/// A value's text, trimmed, borrowed when it is UTF-8.
fn text(v: &[u8]) -> Cow<'_, str> {
    // `from_utf8` first: the lossy decoder's chunking costs more on the
    // valid values that nearly every head has.
    match std::str::from_utf8(v) {
        Ok(s) => Cow::Borrowed(s.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(v).trim().to_string()),
    }
}

/// The header lines, obs-folded continuations joined to their line.
fn headers(mut i: &[u8]) -> IResult<&[u8], Vec<Header<'_>>> {
    let mut out: Vec<Header<'_>> = Vec::with_capacity(16);
    loop {
        if let Ok((rest, _)) = line_end(i) {
            return Ok((rest, out));
        }
        if let Ok((rest, more)) = fold_line(i)
            && let Some(last) = out.last_mut()
        {
            let more = text(more);
            if !more.is_empty() {
                let joined = last
                    .folded
                    .get_or_insert_with(|| text(last.raw).into_owned());
                if !joined.is_empty() {
                    joined.push(' ');
                }
                joined.push_str(&more);
            }
            i = rest;
            continue;
        }
        let (rest, (name, value)) = header_line(i)?;
        out.push(Header {
            name,
            raw: value,
            folded: None,
        });
        i = rest;
    }
}

/// All values of a header, repeated lines joined with ", " (RFC 9110 5.3).
fn joined(h: &[Header<'_>], name: &str) -> Option<String> {
    let mut vals = h.iter().filter(|x| x.is(name)).map(Header::value);
    let mut s = vals.next()?.into_owned();
    for v in vals {
        s.push_str(", ");
        s.push_str(&v);
    }
    Some(s)
}

fn first(h: &[Header<'_>], name: &str) -> Option<String> {
    h.iter()
        .find(|x| x.is(name))
        .map(|x| x.value().into_owned())
}

/// Whether the list of all `name` headers (as [`joined`] and
/// [`split_list`] read it) has the item `item`, ASCII case aside. Without
/// building either: every request is asked this once.
fn list_has(h: &[Header<'_>], name: &str, item: &str) -> bool {
    let mut values = h.iter().filter(|x| x.is(name)).map(Header::value);
    // A quote left open in one line runs on into the next once joined:
    // then only the joined list reads right.
    if values
        .clone()
        .any(|v| v.bytes().filter(|&b| b == b'"').count() % 2 == 1)
    {
        return joined(h, name)
            .is_some_and(|v| split_list(&v).iter().any(|t| t.eq_ignore_ascii_case(item)));
    }
    values.any(|v| {
        let mut quoted = false;
        v.split(|c| {
            quoted ^= c == '"';
            c == ',' && !quoted
        })
        .any(|t| t.trim().eq_ignore_ascii_case(item))
    })
}

/// Splits a header list on commas outside quoted strings, trimming items.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// Waits for a complete head, then hands it to `body`. `Incomplete` while
/// the empty line has not come (and the head is still short enough).
fn complete_head<'a, T>(
    i: &'a [u8],
    body: impl FnOnce(&'a [u8]) -> IResult<&'a [u8], T>,
) -> IResult<&'a [u8], T> {
    match head_end(i) {
        Some(end) => {
            let (_, v) = body(&i[..end])?;
            Ok((&i[end..], v))
        }
        None if i.len() >= MAX_HEAD_LEN => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        ))),
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// Parses an upgrade request head. The rest (frames) is returned unparsed.
pub fn parse_request(i: &[u8]) -> IResult<&[u8], Request> {
    complete_head(i, |head| {
        let (rest, (method, target)) = request_line(head)?;
        let (rest, h) = headers(rest)?;
        let upgrade_websocket = list_has(&h, "upgrade", "websocket");
        Ok((
            rest,
            Request {
                method: String::from_utf8_lossy(method).into_owned(),
                path: String::from_utf8_lossy(target).into_owned(),
                host: first(&h, "host"),
                upgrade_websocket,
                key: first(&h, "sec-websocket-key"),
            },
        ))
    })
}

/// Parses a response head. The rest (frames, or a body) is returned unparsed.
pub fn parse_response(i: &[u8]) -> IResult<&[u8], Response> {
    complete_head(i, |head| {
        let (rest, status) = status_line(head)?;
        let (rest, h) = headers(rest)?;
        Ok((
            rest,
            Response {
                status,
                accept: first(&h, "sec-websocket-accept"),
                protocol: joined(&h, "sec-websocket-protocol"),
                extensions: joined(&h, "sec-websocket-extensions")
                    .map(|v| split_list(&v))
                    .unwrap_or_default(),
            },
        ))
    })
}

/// Whether bytes could be the start of an HTTP request (so we wait for more
/// rather than trying them as frames).
pub fn looks_like_request(i: &[u8]) -> bool {
    const METHODS: [&[u8]; 4] = [b"GET ", b"POST ", b"HEAD ", b"OPTIONS "];
    METHODS.iter().any(|m| {
        let n = m.len().min(i.len());
        n > 0 && i[..n] == m[..n]
    })
}

/// Whether bytes could be the start of an HTTP response.
pub fn looks_like_response(i: &[u8]) -> bool {
    let m = b"HTTP/1.";
    let n = m.len().min(i.len());
    n > 0 && i[..n] == m[..n]
}

/// Whether bytes could be the start of a 101 (Switching Protocols) response.
pub fn looks_like_switching(i: &[u8]) -> bool {
    let m = b"HTTP/1.1 101";
    let n = m.len().min(i.len());
    looks_like_response(i) && (i.len() < 9 || i[9..n] == m[9..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bytes_are_rfc_9110_tchars() {
        let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        for c in 0..=255u8 {
            assert_eq!(is_token(c), tchar(c), "byte {c:#04x}");
        }
    }

    #[test]
    fn switching_prefixes() {
        assert!(looks_like_switching(b"HTTP/1.1 101 Switching"));
        assert!(looks_like_switching(b"HTTP/1.0 101 "));
        assert!(looks_like_switching(b"HTTP/1.1 1"));
        assert!(!looks_like_switching(b"HTTP/1.1 400 Bad"));
        assert!(!looks_like_switching(b"SSH-2.0"));
    }

    const REQ: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 1.3.
        assert_eq!(
            accept_for_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// `list_has` finds an item exactly where joining the lines and
    /// splitting the list does, quotes across lines included.
    #[test]
    fn list_has_reads_as_the_joined_list() {
        let values = [
            "websocket",
            "WebSocket",
            " h2c , websocket ",
            "\"websocket\"",
            "a\"b,websocket",
            "x, \"y",
            "z\", websocket",
            "",
            ",",
            "h2c",
            "websocket\u{a0}",
        ];
        let header = |v: &'static str| Header {
            name: b"Upgrade",
            raw: v.as_bytes(),
            folded: None,
        };
        let mut sets: Vec<Vec<Header<'static>>> = vec![vec![]];
        for a in values {
            sets.push(vec![header(a)]);
            for b in values {
                sets.push(vec![header(a), header(b)]);
                for c in ["websocket", "q\"", "h2c"] {
                    sets.push(vec![header(a), header(b), header(c)]);
                }
            }
        }
        for h in &sets {
            let joined_list = joined(h, "upgrade").is_some_and(|v| {
                split_list(&v)
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("websocket"))
            });
            let values: Vec<Cow<'_, str>> = h.iter().map(Header::value).collect();
            assert_eq!(
                list_has(h, "upgrade", "websocket"),
                joined_list,
                "{values:?}"
            );
        }
    }

    #[test]
    fn rfc_request() {
        let mut bytes = REQ.to_vec();
        bytes.extend([0x81, 0x80, 1, 2, 3, 4]);
        let (rest, r) = parse_request(&bytes).unwrap();
        assert_eq!(rest, &[0x81, 0x80, 1, 2, 3, 4]);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat");
        assert_eq!(r.host.as_deref(), Some("server.example.com"));
        assert!(r.upgrade_websocket);
        assert_eq!(r.key.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn rfc_response() {
        let (rest, r) = parse_response(RESP).unwrap();
        assert!(rest.is_empty());
        assert_eq!(r.status, 101);
        assert_eq!(r.protocol.as_deref(), Some("chat"));
        assert_eq!(r.accept.as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(r.extensions.is_empty());
        assert!(!r.allows_rsv1());
    }

    #[test]
    fn incomplete_until_empty_line() {
        for n in 0..REQ.len() {
            assert!(
                matches!(parse_request(&REQ[..n]), Err(nom::Err::Incomplete(_))),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn case_folding_repeats() {
        let req = b"GET /x HTTP/1.1\r\nhOsT: h\r\nUPGRADE: WebSocket\r\nsec-websocket-key:   k==  \r\n\r\n";
        let (_, r) = parse_request(req).unwrap();
        assert!(r.upgrade_websocket);
        assert_eq!(r.key.as_deref(), Some("k=="));
        let resp = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate;\r\n client_max_window_bits=12\r\nsec-websocket-extensions: x-foo, x-bar; a=\"1,2\"\r\n\r\n";
        let (_, r) = parse_response(resp).unwrap();
        assert_eq!(
            r.extensions,
            vec![
                "permessage-deflate; client_max_window_bits=12",
                "x-foo",
                "x-bar; a=\"1,2\""
            ]
        );
        assert!(r.allows_rsv1());
        assert!(r.has_unknown_extension());
    }

    #[test]
    fn blank_fold_lines_add_nothing() {
        // Found by fuzzing: a fold line of only spaces left a trailing space.
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n \r\nUpgrade: websocket\r\n\r\n";
        let (_, r) = parse_request(req).unwrap();
        assert_eq!(r.host.as_deref(), Some("x"));
        assert!(r.upgrade_websocket);
    }

    #[test]
    fn bare_lf_and_rejections() {
        let (_, r) = parse_response(b"HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n").unwrap();
        assert_eq!(r.status, 403);
        assert!(parse_request(b"\x81\x05hello\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        let long = vec![b'a'; MAX_HEAD_LEN + 1];
        assert!(matches!(parse_request(&long), Err(nom::Err::Error(_))));
    }

    #[test]
    fn request_without_upgrade() {
        let (_, r) = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(!r.upgrade_websocket);
    }

    #[test]
    fn prefixes() {
        assert!(looks_like_request(b"GE"));
        assert!(looks_like_request(b"GET /"));
        assert!(!looks_like_request(b"\x81\x85"));
        assert!(looks_like_response(b"HTTP/1.1 101"));
        assert!(!looks_like_response(b"\x88\x02"));
    }
}
