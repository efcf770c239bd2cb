//! `wsclose::frame`: the nom header parser, `parse_frame`, and the streaming
//! `FrameDecoder`.
//!
//! The input is a byte stream of frames. Checked:
//! * `parse_header` / `parse_frame` agree with the wire format (header length,
//!   mask, payload length, how much input they consume);
//! * `FrameDecoder` fed the stream whole gives exactly the frames of a
//!   reference decoder built on `parse_header`;
//! * feeding it split at points derived from the input (the first byte as a
//!   cut length, a fixed stride, every byte) gives the same events;
//! * a `gap()` the decoder says it survived (`true`) is equivalent to feeding
//!   that many payload bytes; after a lost boundary (`false`), the first frame
//!   is a plausible one found at a segment start;
//! * `FrameDecoder::resyncing()` decodes the stream like `new()` when it
//!   starts with a plausible header, and decodes nothing otherwise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclose::frame::{
    FrameDecoder, FrameEvent, FrameHeader, MAX_CLOSE_KEEP, OP_CLOSE, parse_frame,
    parse_header, plausible, unmask,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Frame(FrameHeader, Vec<u8>),
    Malformed,
}

fn collect(d: &mut FrameDecoder, data: &[u8], out: &mut Vec<Ev>) {
    d.feed(data, &mut |e| match e {
        FrameEvent::Frame {
            header,
            close_payload,
            ..
        } => {
            assert!(close_payload.len() <= MAX_CLOSE_KEEP);
            if header.opcode != OP_CLOSE {
                assert!(close_payload.is_empty());
            }
            out.push(Ev::Frame(*header, close_payload.to_vec()))
        }
        FrameEvent::Malformed(_) => out.push(Ev::Malformed),
    });
}

/// Feeds `stream` cut at `cuts` (increasing offsets) to a fresh decoder.
fn split_feed(mut d: FrameDecoder, stream: &[u8], cuts: &[usize]) -> (Vec<Ev>, FrameDecoder) {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
        let c = c.clamp(prev, stream.len());
        collect(&mut d, &stream[prev..c], &mut out);
        prev = c;
    }
    (out, d)
}

/// The frames of a stream according to `parse_header` alone.
fn reference(mut i: &[u8]) -> Vec<Ev> {
    let mut out = Vec::new();
    while !i.is_empty() {
        match parse_header(i) {
            Ok((rest, h)) => {
                if (rest.len() as u64) < h.payload_len {
                    break;
                }
                let len = h.payload_len as usize;
                let close = if h.opcode == OP_CLOSE {
                    let mut p = rest[..len.min(MAX_CLOSE_KEEP)].to_vec();
                    if let Some(m) = h.mask {
                        unmask(&mut p, m, 0);
                    }
                    p
                } else {
                    Vec::new()
                };
                out.push(Ev::Frame(h, close));
                i = &rest[len..];
            }
            Err(nom::Err::Incomplete(_)) => break,
            Err(_) => {
                out.push(Ev::Malformed);
                break;
            }
        }
    }
    out
}

fn check_header(data: &[u8]) {
    match parse_header(data) {
        Ok((rest, h)) => {
            let len7 = data[1] & 0x7f;
            let masked = data[1] & 0x80 != 0;
            let ext = match len7 {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let hl = 2 + ext + if masked { 4 } else { 0 };
            assert_eq!(h.header_len as usize, hl);
            assert_eq!(rest, &data[hl..]);
            assert_eq!(h.mask.is_some(), masked);
            if let Some(m) = h.mask {
                assert_eq!(m, data[2 + ext..6 + ext]);
            }
            assert_eq!(h.fin, data[0] & 0x80 != 0);
            assert_eq!(h.rsv, (data[0] >> 4) & 7);
            assert_eq!(h.opcode, data[0] & 0xf);
            assert!(h.payload_len >> 63 == 0);
            if ext == 0 {
                assert_eq!(h.payload_len, u64::from(len7));
            }
            assert_eq!(h.is_control(), h.opcode >= 8);
            if plausible(&h) {
                assert!(h.known_opcode());
            }
        }
        Err(nom::Err::Incomplete(_)) => {
            // Only a short input is incomplete: the longest header is 14 bytes.
            assert!(data.len() < 14);
        }
        Err(nom::Err::Failure(_)) => {
            assert!(data.len() >= 10 && data[1] & 0x7f == 127 && data[2] & 0x80 != 0);
        }
        Err(nom::Err::Error(e)) => panic!("parse_header gave a plain error: {e:?}"),
    }
    match parse_frame(data) {
        Ok((rest, (h, payload))) => {
            assert_eq!(payload.len() as u64, h.payload_len);
            assert_eq!(
                h.header_len as usize + payload.len() + rest.len(),
                data.len()
            );
            assert_eq!(payload, &data[h.header_len as usize..][..payload.len()]);
        }
        Err(nom::Err::Incomplete(_)) => {
            if let Ok((rest, h)) = parse_header(data) {
                assert!((rest.len() as u64) < h.payload_len);
            }
        }
        Err(_) => assert!(matches!(parse_header(data), Err(nom::Err::Failure(_)))),
    }
}

fuzz_target!(|data: &[u8]| {
    check_header(data);

    let expected = reference(data);

    // Whole.
    let (whole, d) = split_feed(FrameDecoder::new(), data, &[]);
    assert_eq!(whole, expected, "decoder vs reference");
    assert_eq!(d.is_dead(), expected.last() == Some(&Ev::Malformed));

    if data.is_empty() {
        return;
    }

    // Split: the first byte as a cut length, then the last byte as a stride.
    let first = data[0] as usize;
    let (split, _) = split_feed(FrameDecoder::new(), data, &[first]);
    assert_eq!(split, expected, "cut at {first}");
    let stride = (*data.last().unwrap() as usize % 17) + 1;
    let cuts: Vec<usize> = (stride..data.len()).step_by(stride).collect();
    let (split, _) = split_feed(FrameDecoder::new(), data, &cuts);
    assert_eq!(split, expected, "stride {stride}");
    if data.len() <= 512 {
        let cuts: Vec<usize> = (1..data.len()).collect();
        let (split, _) = split_feed(FrameDecoder::new(), data, &cuts);
        assert_eq!(split, expected, "bytewise");
    }

    // A gap at the cut point.
    let cut = first.min(data.len());
    let gap_len = u64::from(data.get(1).copied().unwrap_or(0) % 64);
    let mut d = FrameDecoder::new();
    let mut evs = Vec::new();
    collect(&mut d, &data[..cut], &mut evs);
    let was_dead = d.is_dead();
    let kept = d.gap(gap_len);
    if was_dead {
        assert!(!kept);
    }
    let before = evs.len();
    collect(&mut d, &data[cut..], &mut evs);
    if kept {
        // Same as if the missing bytes (inside a payload) had been fed.
        let mut filled = data[..cut].to_vec();
        filled.extend(std::iter::repeat_n(0u8, gap_len as usize));
        filled.extend_from_slice(&data[cut..]);
        let mut d2 = FrameDecoder::new();
        let mut evs2 = Vec::new();
        collect(&mut d2, &filled, &mut evs2);
        assert_eq!(evs, evs2, "gap kept its place");
    } else if !was_dead {
        // Resynchronised at the next segment start, or not at all.
        match evs.get(before) {
            None => {}
            Some(Ev::Frame(h, _)) => {
                assert!(plausible(h), "first frame after a lost boundary");
                let (_, h2) = parse_header(&data[cut..]).expect("header at segment start");
                assert_eq!(*h, h2);
            }
            Some(Ev::Malformed) => panic!("malformed right after resync"),
        }
    }

    // A decoder looking for a boundary.
    let (resync, _) = split_feed(FrameDecoder::resyncing(), data, &[]);
    match parse_header(data) {
        Ok((_, h)) if plausible(&h) => {
            assert_eq!(resync, expected, "resyncing at a plausible header")
        }
        _ => assert!(resync.is_empty(), "resyncing decoded garbage: {resync:?}"),
    }
});
