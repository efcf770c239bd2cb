//! TLS records out of one direction's reassembled byte stream.
//!
//! Reassembly hands the stream over in pieces of any size: a record may
//! span many TCP segments, a segment may hold many records. Complete
//! records inside a piece are handed on as slices of it (no copy); only an
//! incomplete record at the end of a piece is kept, and it is bounded by the
//! largest record TLS allows. Bytes that cannot be a TLS record (an unknown
//! content type, a version that is not 3.x, a length beyond the limit) mean
//! the stream is not TLS, or lost its record boundaries: the reader stops
//! and says so, for the caller to give up on the flow.

use tls_parser::{TlsRecordType, parse_tls_record_header};

/// Record header: content type, version, length.
pub const HEADER_LEN: usize = 5;

/// Largest record payload: TLS 1.2 allows 2^14 + 2048 bytes of ciphertext
/// (RFC 5246 6.2.3); TLS 1.3 less (2^14 + 256).
pub const MAX_PAYLOAD_LEN: usize = (1 << 14) + 2048;

/// Largest record with its header: the most the reader ever keeps.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN;

/// One complete record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub content_type: u8,
    pub version: u16,
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// The record's header as it was on the wire (TLS 1.3 authenticates
    /// it as the additional data).
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let [v0, v1] = self.version.to_be_bytes();
        let [l0, l1] = (self.payload.len() as u16).to_be_bytes();
        [self.content_type, v0, v1, l0, l1]
    }
}

/// The stream is not (or no longer) a sequence of TLS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a TLS record stream")]
pub struct NotTls;

/// Reads the records of one direction.
#[derive(Debug, Default)]
pub struct RecordReader {
    /// The incomplete record at the end of the last piece (header first).
    buf: Vec<u8>,
    broken: bool,
}

impl RecordReader {
    pub fn new() -> RecordReader {
        RecordReader::default()
    }

    /// Reads `input`, the next bytes of the stream, and hands each record
    /// it completes to `on`. After an error the reader stays broken: every
    /// later call fails too.
    pub fn feed(&mut self, input: &[u8], on: &mut dyn FnMut(Record<'_>)) -> Result<(), NotTls> {
        if self.broken {
            return Err(NotTls);
        }
        let r = self.feed_inner(input, on);
        if r.is_err() {
            self.broken = true;
            self.buf = Vec::new();
        }
        r
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        on: &mut dyn FnMut(Record<'_>),
    ) -> Result<(), NotTls> {
        if !self.buf.is_empty() {
            input = self.complete_buffered(input, on)?;
        }
        while !input.is_empty() {
            let Some(total) = record_len(input)? else {
                // Not even a whole header: keep the start for next time.
                self.buf.extend_from_slice(input);
                return Ok(());
            };
            if input.len() < total {
                self.buf.reserve_exact(total);
                self.buf.extend_from_slice(input);
                return Ok(());
            }
            on(record_at(&input[..total]));
            input = &input[total..];
        }
        Ok(())
    }

    /// Adds bytes to the buffered record until it is complete, hands it on,
    /// and returns the bytes left of `input`.
    fn complete_buffered<'i>(
        &mut self,
        mut input: &'i [u8],
        on: &mut dyn FnMut(Record<'_>),
    ) -> Result<&'i [u8], NotTls> {
        if self.buf.len() < HEADER_LEN {
            let n = (HEADER_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        let Some(total) = record_len(&self.buf)? else {
            return Ok(input);
        };
        let n = (total - self.buf.len()).min(input.len());
        self.buf.reserve_exact(total - self.buf.len());
        self.buf.extend_from_slice(&input[..n]);
        input = &input[n..];
        if self.buf.len() == total {
            on(record_at(&self.buf));
            self.buf.clear();
        }
        Ok(input)
    }

    /// Heap bytes held: the buffer of a partial record (its capacity is
    /// kept for the next one; [`RecordReader::trim`] gives it back).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes of an incomplete record waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Gives back the buffer's memory when no record is pending.
    pub fn trim(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Forgets a partial record (bytes were lost before it completed):
    /// the reader is broken, since record boundaries are lost with it.
    pub fn break_off(&mut self) {
        self.buf = Vec::new();
        self.broken = true;
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

/// Checks the header at the start of `b` (as much of it as there is) and
/// returns the record's total length once the header is complete.
fn record_len(b: &[u8]) -> Result<Option<usize>, NotTls> {
    if let Some(&t) = b.first()
        && !known_type(t)
    {
        return Err(NotTls);
    }
    if let Some(&major) = b.get(1)
        && major != 3
    {
        return Err(NotTls);
    }
    if let Some(&minor) = b.get(2)
        && minor > 4
    {
        return Err(NotTls);
    }
    if b.len() < HEADER_LEN {
        return Ok(None);
    }
    let (_, hdr) = parse_tls_record_header(b).map_err(|_| NotTls)?;
    let len = usize::from(hdr.len);
    if len > MAX_PAYLOAD_LEN {
        return Err(NotTls);
    }
    Ok(Some(HEADER_LEN + len))
}

fn known_type(t: u8) -> bool {
    matches!(
        TlsRecordType(t),
        TlsRecordType::ChangeCipherSpec
            | TlsRecordType::Alert
            | TlsRecordType::Handshake
            | TlsRecordType::ApplicationData
            | TlsRecordType::Heartbeat
    )
}

/// The record in `b`, which holds exactly one checked record.
fn record_at(b: &[u8]) -> Record<'_> {
    Record {
        content_type: b[0],
        version: u16::from_be_bytes([b[1], b[2]]),
        payload: &b[HEADER_LEN..],
    }
}

/// Whether a stream starting with `first` is a TLS connection's client
/// side: a handshake record (TLS 1.0 to 1.3 record versions) carrying a
/// ClientHello. Needs the record header and the handshake type (6 bytes);
/// fewer bytes are not enough to tell and give `false`.
pub fn looks_like_client_hello(first: &[u8]) -> bool {
    let Ok(Some(total)) = record_len(first) else {
        return false;
    };
    // A ClientHello's body is at least 38 bytes (version, random, three
    // empty vectors), in a record of at most 2^14 bytes of plaintext.
    let plausible_len = (HEADER_LEN + 4..=HEADER_LEN + (1 << 14)).contains(&total);
    let body_ok = match first.get(6..9) {
        Some(l) => u32::from_be_bytes([0, l[0], l[1], l[2]]) >= 38,
        None => true,
    };
    first[0] == 0x16 && first.get(5) == Some(&1) && plausible_len && body_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 3, 3];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    type Records = Vec<(u8, Vec<u8>)>;

    fn read_all(pieces: &[&[u8]]) -> (Records, Result<(), NotTls>) {
        let mut r = RecordReader::new();
        let mut out = Vec::new();
        let mut res = Ok(());
        for p in pieces {
            res = r.feed(p, &mut |rec| {
                out.push((rec.content_type, rec.payload.to_vec()))
            });
            if res.is_err() {
                break;
            }
        }
        (out, res)
    }

    /// Three records (one empty, one of maximum size) split at every
    /// position into two pieces, and fed a byte at a time: always the same
    /// records, and nothing held at the end.
    #[test]
    fn split_at_every_byte() {
        let big = vec![0xab; MAX_PAYLOAD_LEN];
        let mut stream = rec(22, b"hello");
        stream.extend(rec(23, b""));
        stream.extend(rec(23, &big));
        stream.extend(rec(21, &[1, 0]));
        let want = vec![
            (22, b"hello".to_vec()),
            (23, vec![]),
            (23, big.clone()),
            (21, vec![1, 0]),
        ];
        for cut in 0..=stream.len() {
            let (got, res) = read_all(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(res, Ok(()));
            assert_eq!(got, want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(read_all(&bytes).0, want);
        let bytes: Vec<&[u8]> = stream.chunks(1400).collect();
        assert_eq!(read_all(&bytes).0, want);
    }

    #[test]
    fn held_is_the_partial_record_only() {
        let mut r = RecordReader::new();
        let stream = rec(23, &[7; 100]);
        let mut n = 0;
        r.feed(&stream[..50], &mut |_| n += 1).unwrap();
        assert_eq!((n, r.pending()), (0, 50));
        assert!(r.held() >= 50 && r.held() <= stream.len());
        r.feed(&stream[50..], &mut |_| n += 1).unwrap();
        assert_eq!((n, r.pending()), (1, 0));
        r.trim();
        assert_eq!(r.held(), 0);
        // A complete record in one piece is never copied.
        r.feed(&stream, &mut |_| n += 1).unwrap();
        assert_eq!((n, r.held()), (2, 0));
    }

    #[test]
    fn garbage_is_reported_early_and_sticks() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            &[0x16, 2, 0],
            &[0x16, 3, 9],
            &[0x19],
            &[0x17, 3, 3, 0xff, 0xff],
        ] {
            let mut r = RecordReader::new();
            assert_eq!(r.feed(bad, &mut |_| {}), Err(NotTls), "{bad:?}");
            assert!(r.is_broken());
            assert_eq!(r.feed(&rec(23, b"x"), &mut |_| {}), Err(NotTls));
            assert_eq!(r.held(), 0);
        }
        // The largest legal record is fine; one byte more is not.
        let mut hdr = vec![0x17, 3, 3];
        hdr.extend_from_slice(&(MAX_PAYLOAD_LEN as u16).to_be_bytes());
        assert_eq!(RecordReader::new().feed(&hdr, &mut |_| {}), Ok(()));
        hdr[4] += 1;
        assert_eq!(RecordReader::new().feed(&hdr, &mut |_| {}), Err(NotTls));
    }

    #[test]
    fn header_round_trips() {
        let stream = rec(23, b"abc");
        let (got, _) = read_all(&[&stream]);
        assert_eq!(got.len(), 1);
        let mut r = RecordReader::new();
        r.feed(&stream, &mut |rec| {
            assert_eq!(rec.header(), [23, 3, 3, 0, 3])
        })
        .unwrap();
    }

    #[test]
    fn client_hello_detection() {
        let mut ch = vec![0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
        assert!(looks_like_client_hello(&ch));
        assert!(looks_like_client_hello(&ch[..6]));
        assert!(!looks_like_client_hello(&ch[..5]));
        ch[5] = 2; // ServerHello
        assert!(!looks_like_client_hello(&ch));
        assert!(!looks_like_client_hello(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_client_hello(&[0x16, 3, 1, 0, 0, 1]));
        assert!(!looks_like_client_hello(&[0x16, 3, 1, 0, 50, 1, 0, 0, 2]));
        assert!(!looks_like_client_hello(&[]));
    }
}
