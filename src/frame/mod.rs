//! WebSocket frames (RFC 6455 section 5): a nom header parser and a streaming
//! per-direction decoder.
//!
//! The decoder is fed reassembled TCP bytes one segment at a time. It never
//! buffers a data payload: it counts the bytes down, and hands text bytes
//! to the UTF-8 check of [`crate::message`] as they pass. The only payload
//! it keeps is a close frame's (up to [`MAX_CLOSE_KEEP`] bytes), unmasked,
//! since the close analysis needs the code and the reason.

use nom::IResult;
use nom::bytes::streaming::take;
use nom::number::streaming::{be_u8, be_u16, be_u64};

mod close;
mod decoder;

pub use close::{CloseCode, ClosePayload, CodeClass, parse_close_payload};
pub use decoder::{FrameDecoder, FrameEvent};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest payload a control frame may carry (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest possible frame header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// Bytes of a close payload kept (a reason longer than a control frame
/// allows is still reported whole up to here; the README states the cap).
pub const MAX_CLOSE_KEEP: usize = 4096;

/// One frame header as it stands on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the three low bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header itself took on the wire.
    pub header_len: u8,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    pub fn is_data(&self) -> bool {
        matches!(self.opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY)
    }

    pub fn known_opcode(&self) -> bool {
        matches!(
            self.opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        )
    }

    /// Whether the length took the fewest bytes it could (RFC 6455 5.2).
    pub fn minimal_length(&self) -> bool {
        let len_bytes = self.header_len - if self.mask.is_some() { 4 } else { 0 };
        match len_bytes {
            4 => self.payload_len >= 126,
            10 => self.payload_len > 0xFFFF,
            _ => true,
        }
    }
}

/// Why bytes cannot be a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// A 64-bit length with its most significant bit set (RFC 6455 5.2).
    LengthTopBit,
}

/// Parses one frame header (streaming: `Incomplete` when more bytes are needed).
///
/// A 64-bit length with the top bit set is a `Failure`, since no amount of
/// further input makes it a frame.
#[inline(always)]
pub fn parse_header(input: &[u8]) -> IResult<&[u8], FrameHeader> {
    let start_len = input.len();
    let (i, b0) = be_u8(input)?;
    let (i, b1) = be_u8(i)?;
    let len7 = b1 & 0x7f;
    let (i, payload_len) = match len7 {
        126 => {
            let (i, l) = be_u16(i)?;
            (i, u64::from(l))
        }
        127 => {
            let (i, l) = be_u64(i)?;
            if l >> 63 != 0 {
                return Err(nom::Err::Failure(nom::error::Error::new(
                    input,
                    nom::error::ErrorKind::TooLarge,
                )));
            }
            (i, l)
        }
        n => (i, u64::from(n)),
    };
    let (i, mask) = if b1 & 0x80 != 0 {
        let (i, m) = take(4usize)(i)?;
        (i, Some([m[0], m[1], m[2], m[3]]))
    } else {
        (i, None)
    };
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        mask,
        payload_len,
        // At most 14, so the cast cannot truncate.
        header_len: (start_len - i.len()) as u8,
    };
    Ok((i, header))
}

/// Parses a whole frame from a complete buffer: the header and its payload
/// (still masked). Used by tests, fuzzing and the midstream detector.
pub fn parse_frame(input: &[u8]) -> IResult<&[u8], (FrameHeader, &[u8])> {
    let (i, h) = parse_header(input)?;
    let len = usize::try_from(h.payload_len).map_err(|_| {
        nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        ))
    })?;
    let (i, payload) = take(len)(i)?;
    Ok((i, (h, payload)))
}

/// The mask turned to start at offset `pos` of the payload, repeated over
/// 16 bytes: whole 16-byte blocks are xored at once (the compiler's vector
/// registers), byte by byte only at the end.
fn wide_mask(mask: [u8; 4], pos: u64) -> [u8; 16] {
    let shift = (pos % 4) as usize;
    std::array::from_fn(|k| mask[(shift + k) % 4])
}

/// XORs `data` with `mask`, the payload starting at offset `pos` of the frame.
pub fn unmask(data: &mut [u8], mask: [u8; 4], pos: u64) {
    let wide = wide_mask(mask, pos);
    let mut blocks = data.chunks_exact_mut(16);
    for b in &mut blocks {
        for (x, m) in b.iter_mut().zip(wide) {
            *x ^= m;
        }
    }
    for (x, m) in blocks.into_remainder().iter_mut().zip(wide) {
        *x ^= m;
    }
}

/// Writes `data` xored with `mask` to the start of `out` (at least as long),
/// the payload starting at offset `pos` of the frame: a copy and an
/// unmasking in one pass, for text that is only looked at.
pub fn unmask_into(out: &mut [u8], data: &[u8], mask: [u8; 4], pos: u64) {
    let wide = wide_mask(mask, pos);
    let out = &mut out[..data.len()];
    let mut blocks = out.chunks_exact_mut(16);
    let mut src = data.chunks_exact(16);
    for (o, d) in (&mut blocks).zip(&mut src) {
        for ((x, y), m) in o.iter_mut().zip(d).zip(wide) {
            *x = y ^ m;
        }
    }
    for ((x, y), m) in blocks
        .into_remainder()
        .iter_mut()
        .zip(src.remainder())
        .zip(wide)
    {
        *x = y ^ m;
    }
}

/// Whether a header is one a sane peer could send: used to pick a frame
/// boundary out of a stream joined midway (capture started late, or a gap).
pub fn plausible(h: &FrameHeader) -> bool {
    if !h.known_opcode() {
        return false;
    }
    if h.is_control() {
        h.fin && h.rsv == 0 && h.payload_len <= MAX_CONTROL_PAYLOAD as u64
    } else {
        // RSV1 is common (permessage-deflate); RSV2/3 are not.
        h.rsv & 0b011 == 0 && h.payload_len < 1 << 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block by block gives what byte by byte gives, at every length and
    /// starting position.
    #[test]
    fn unmask_matches_bytewise() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..=70u8).collect();
        for len in 0..data.len() {
            for pos in 0..9u64 {
                let mut fast = data[..len].to_vec();
                unmask(&mut fast, mask, pos);
                let slow: Vec<u8> = (0..len)
                    .map(|k| data[k] ^ mask[(pos as usize + k) % 4])
                    .collect();
                assert_eq!(fast, slow, "len {len} pos {pos}");
                let mut into = vec![0xee; len + 3];
                unmask_into(&mut into, &data[..len], mask, pos);
                assert_eq!(into[..len], slow, "into: len {len} pos {pos}");
                assert_eq!(into[len..], [0xee; 3], "into: past the end");
            }
        }
    }

    fn frames_of(stream: &[u8], cuts: &[usize]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        let mut prev = 0;
        let mut points: Vec<usize> = cuts.to_vec();
        points.push(stream.len());
        for p in points {
            d.feed(&stream[prev..p], &mut |e| {
                if let FrameEvent::Frame {
                    header,
                    close_payload,
                    ..
                } = e
                {
                    out.push((*header, close_payload.to_vec()));
                }
            });
            prev = p;
        }
        out
    }

    // RFC 6455 5.7 examples.
    const HELLO_UNMASKED: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const HELLO_MASKED: [u8; 11] = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn rfc_single_frame_unmasked() {
        let (rest, (h, p)) = parse_frame(&HELLO_UNMASKED).unwrap();
        assert!(rest.is_empty());
        assert!(h.fin);
        assert_eq!(h.opcode, OP_TEXT);
        assert_eq!(h.mask, None);
        assert_eq!(p, b"Hello");
    }

    #[test]
    fn rfc_single_frame_masked() {
        let (_, (h, p)) = parse_frame(&HELLO_MASKED).unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut p = p.to_vec();
        unmask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"Hello");
    }

    #[test]
    fn rfc_fragmented_text() {
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (_, (h1, _)) = parse_frame(&first).unwrap();
        let (_, (h2, _)) = parse_frame(&second).unwrap();
        assert!(!h1.fin && h1.opcode == OP_TEXT);
        assert!(h2.fin && h2.opcode == OP_CONTINUATION);
    }

    #[test]
    fn rfc_ping_pong() {
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(parse_frame(&ping).unwrap().1.0.opcode, OP_PING);
        assert_eq!(parse_frame(&pong).unwrap().1.0.opcode, OP_PONG);
    }

    #[test]
    fn rfc_length_forms() {
        // 256 bytes binary: 16-bit length.
        let mut f = vec![0x82, 0x7E, 0x01, 0x00];
        f.extend(std::iter::repeat_n(0u8, 256));
        let (_, h) = parse_header(&f).unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        // 64 KiB binary: 64-bit length.
        let h = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (_, h) = parse_header(&h).unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
        // 7-bit length with mask: header of 6 bytes.
        let (_, h) = parse_header(&HELLO_MASKED).unwrap();
        assert_eq!(h.header_len, 6);
        // 64-bit with mask: the longest header.
        let h = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let (_, h) = parse_header(&h).unwrap();
        assert_eq!(h.header_len, 14);
    }

    #[test]
    fn length_top_bit_is_failure() {
        let h = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_header(&h), Err(nom::Err::Failure(_))));
        let mut d = FrameDecoder::new();
        let mut malformed = 0;
        d.feed(&h, &mut |e| {
            if matches!(e, FrameEvent::Malformed(_)) {
                malformed += 1
            }
        });
        assert_eq!(malformed, 1);
        assert!(d.is_dead());
        // Nothing more is decoded.
        d.feed(&HELLO_UNMASKED, &mut |_| malformed += 10);
        assert_eq!(malformed, 1);
    }

    #[test]
    fn incomplete_headers() {
        for n in 0..HELLO_MASKED.len().min(6) {
            assert!(matches!(
                parse_header(&HELLO_MASKED[..n]),
                Err(nom::Err::Incomplete(_))
            ));
        }
    }

    #[test]
    fn rsv_and_opcode_fields() {
        let (_, h) = parse_header(&[0xC1, 0x00]).unwrap();
        assert_eq!(h.rsv, 0b100);
        let (_, h) = parse_header(&[0x83, 0x00]).unwrap();
        assert!(!h.known_opcode());
        let (_, h) = parse_header(&[0x0B, 0x00]).unwrap();
        assert!(h.is_control() && !h.known_opcode());
    }

    fn build(fin: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(u8::from(fin) << 7) | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => v.push(m | n as u8),
            n if n <= 0xffff => {
                v.push(m | 126);
                v.extend((n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend((n as u64).to_be_bytes());
            }
        }
        let mut p = payload.to_vec();
        if let Some(k) = mask {
            v.extend(k);
            unmask(&mut p, k, 0);
        }
        v.extend(p);
        v
    }

    #[test]
    fn decoder_any_segmentation_same_frames() {
        let mut stream = build(true, OP_TEXT, Some([1, 2, 3, 4]), b"hello");
        stream.extend(build(true, OP_BINARY, None, &[7u8; 300]));
        stream.extend(build(true, OP_BINARY, Some([9, 9, 9, 9]), &[1u8; 70000]));
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend(b"bye");
        stream.extend(build(true, OP_CLOSE, Some([5, 6, 7, 8]), &close));
        let whole = frames_of(&stream, &[]);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[2].0.payload_len, 70000);
        assert_eq!(whole[3].1, close);
        for cut in 1..stream.len().min(400) {
            assert_eq!(frames_of(&stream, &[cut]), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (1..stream.len()).step_by(7).collect();
        assert_eq!(frames_of(&stream, &every), whole);
        let bytewise: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(frames_of(&stream, &bytewise), whole);
    }

    #[test]
    fn close_payload_forms() {
        assert_eq!(parse_close_payload(&[]).code, None);
        let one = parse_close_payload(&[3]);
        assert!(one.one_byte && one.code.is_none() && one.reason.is_none());
        let p = parse_close_payload(&[0x03, 0xe8]);
        assert_eq!((p.code, p.reason.as_deref()), (Some(1000), Some("")));
        let p = parse_close_payload(&[0x0f, 0xa1, 0xff, b'a']);
        assert_eq!(p.code, Some(4001));
        assert!(!p.reason_valid_utf8);
        assert_eq!(p.reason.as_deref(), Some("\u{fffd}a"));
    }

    #[test]
    fn close_code_classes() {
        for c in [1000, 1001, 1012, 1013, 3000, 3999, 4000, 4999] {
            assert_eq!(CloseCode(c).class(), CodeClass::Normal, "{c}");
        }
        for c in [1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014] {
            assert_eq!(CloseCode(c).class(), CodeClass::Error, "{c}");
        }
        for c in [1005, 1006, 1015] {
            assert_eq!(CloseCode(c).class(), CodeClass::Reserved, "{c}");
        }
        for c in [0, 999, 1004, 1016, 2000, 2999, 5000, 65535] {
            assert_eq!(CloseCode(c).class(), CodeClass::Invalid, "{c}");
        }
    }

    #[test]
    fn gap_inside_payload_keeps_place() {
        let mut stream = build(true, OP_BINARY, None, &[0u8; 1000]);
        stream.extend(build(true, OP_TEXT, None, b"after"));
        let mut d = FrameDecoder::new();
        let mut n = 0;
        d.feed(&stream[..100], &mut |_| n += 1);
        assert!(d.gap(500));
        d.feed(&stream[600..], &mut |_| n += 1);
        assert_eq!(n, 2);
    }

    #[test]
    fn gap_on_header_resyncs_at_segment_start() {
        let a = build(true, OP_TEXT, None, b"one");
        let b = build(true, OP_TEXT, None, b"two");
        let mut d = FrameDecoder::new();
        let mut n = 0;
        d.feed(&a, &mut |_| n += 1);
        assert!(!d.gap(3));
        // Garbage at a segment start is not taken as a boundary...
        d.feed(&[0x83, 0x7f, 1, 2], &mut |_| n += 10);
        // ...a plausible header is.
        d.feed(&b, &mut |_| n += 1);
        assert_eq!(n, 2);
    }
}
