//! `wsclose::message`: incremental UTF-8 (`Utf8`) and messages across frames
//! (`Messages`, driven through `frame::FrameDecoder`).
//!
//! Input layout (every field optional: a short input just stops early):
//! * `[L] [u] [cuts: u & 7 bytes] [L bytes of text]`: the text is fed to
//!   `Utf8` whole, in the pieces the cuts give, cut once at every offset, and
//!   byte by byte. After every piece, `feed` has returned `false` exactly
//!   when the bytes so far are definitely invalid (`from_utf8` fails with an
//!   `error_len`), and `complete()` is true exactly when they are valid UTF-8;
//!   so the pieces and then `complete()` agree with `std::str::from_utf8` on
//!   the whole.
//! * `[s] [k] [k cut offsets, u16 LE] [g g g g]`: stream cuts (stride
//!   `s % 61 + 1`, plus `k % 8` explicit offsets) and one optional capture
//!   gap (`g[0]` odd: inside the payload of frame `g[1]`, at `g[2]`, `g[3]`
//!   bytes long, clamped to leave the frame one byte).
//! * then frames until the input ends, each `[c] [n] [n payload bytes]
//!   [mask: 4 bytes when masked]`, `c` = opcode pick (bits 0-2: text,
//!   continuation, binary, ping, text, continuation, pong or close by bit 5,
//!   reserved 0x3 or 0xB by bit 5), FIN (bit 3), mask (4), RSV1 (5, data and
//!   ping/pong only), length form (6-7: minimal; the 16-bit form; the 64-bit
//!   form; or, instead of `[n] [payload]`, `[u16 LE] [p] [p % 8 + 1 bytes]`:
//!   a payload of `u16 % 8192` bytes repeating that pattern, minimal form).
//!
//! The frame stream is fed to `FrameDecoder::new()` whole, at the stride, at
//! the explicit offsets, byte by byte (short streams), and at every single
//! offset (shorter streams), all with the same gap; every feeding gives the
//! same events, and they match the frames built (header fields, close
//! payloads, `minimal_length()` as built) and a reference model of messages:
//! * `interleaved` exactly on a text/binary frame while a fragmented message
//!   is open;
//! * `orphan_continuation` exactly on a continuation with no message open;
//! * `invalid_utf8` on an uncompressed text message exactly at the frame
//!   where its unmasked bytes so far become definitely invalid (or, at FIN,
//!   are not valid UTF-8), so at most once per message and exactly when the
//!   whole is not valid UTF-8; compressed (RSV1 on the first frame), binary,
//!   and messages cut by a gap are not judged;
//! * `message_len` at a data frame with FIN: the sum of the payload lengths
//!   of the message's frames; `None` for a message a gap cut, and on frames
//!   without FIN.
//!
//! Pending (see fuzz/README.md, F5 and F6): `message_len` of an orphan
//! continuation (`None`: no message), and the notes a frame whose payload a
//! gap cut loses, are only checked with `WSCLOSE_FUZZ_STRICT=1`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsclose::frame::{
    FrameDecoder, FrameEvent, FrameHeader, MAX_CLOSE_KEEP, OP_BINARY, OP_CLOSE, OP_CONTINUATION,
    OP_PING, OP_PONG, OP_TEXT, unmask,
};
use wsclose::message::{MsgNotes, Utf8};

/// Also check the invariants whose fix is pending.
fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("WSCLOSE_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// Reads the input front to back; past the end every read gives nothing.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Utf8
// ---------------------------------------------------------------------------

/// What `from_utf8` says of a prefix: (definitely invalid, valid).
fn std_verdict(prefix: &[u8]) -> (bool, bool) {
    match std::str::from_utf8(prefix) {
        Ok(_) => (false, true),
        Err(e) => (e.error_len().is_some(), false),
    }
}

/// Feeds `text` cut at `cuts` (increasing, within bounds) and checks every
/// step against `from_utf8` of the bytes so far.
fn utf8_in_pieces(text: &[u8], cuts: &[usize]) {
    let mut u = Utf8::default();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&text.len())) {
        let c = c.clamp(prev, text.len());
        let ok = u.feed(&text[prev..c]);
        let (bad, valid) = std_verdict(&text[..c]);
        assert_eq!(
            !ok, bad,
            "Utf8::feed up to {c} of {text:02x?} (cuts {cuts:?})"
        );
        if !ok {
            // The whole is invalid too: nothing more to compare.
            assert!(std::str::from_utf8(text).is_err());
            return;
        }
        assert_eq!(
            u.complete(),
            valid,
            "Utf8::complete up to {c} of {text:02x?} (cuts {cuts:?})"
        );
        prev = c;
    }
    assert_eq!(u.complete(), std::str::from_utf8(text).is_ok());
}

fn check_utf8(inp: &mut Input) {
    let len = inp.byte().unwrap_or(0) as usize;
    let u = inp.byte().unwrap_or(0);
    let mut cuts: Vec<usize> = inp
        .take((u & 7) as usize)
        .iter()
        .map(|&b| b as usize)
        .collect();
    let text = inp.take(len);
    for c in &mut cuts {
        *c %= text.len() + 1;
    }
    cuts.sort_unstable();
    utf8_in_pieces(text, &[]);
    utf8_in_pieces(text, &cuts);
    for c in 0..=text.len() {
        utf8_in_pieces(text, &[c]);
    }
    let bytewise: Vec<usize> = (1..text.len()).collect();
    utf8_in_pieces(text, &bytewise);
}

// ---------------------------------------------------------------------------
// Frames and the reference model
// ---------------------------------------------------------------------------

/// One frame as built: its header and unmasked payload.
struct Built {
    header: FrameHeader,
    payload: Vec<u8>,
}

fn build_frames(inp: &mut Input) -> (Vec<Built>, Vec<u8>) {
    let mut frames = Vec::new();
    let mut wire = Vec::new();
    while !inp.is_empty() {
        let c = inp.byte().unwrap();
        let opcode = match c & 7 {
            0 | 4 => OP_TEXT,
            1 | 5 => OP_CONTINUATION,
            2 => OP_BINARY,
            3 => OP_PING,
            6 if c & 0x20 == 0 => OP_PONG,
            6 => OP_CLOSE,
            _ if c & 0x20 == 0 => 0x3,
            _ => 0xB,
        };
        let fin = c & 0x08 != 0;
        let masked = c & 0x10 != 0;
        let rsv1 = c & 0x20 != 0 && !matches!(opcode, OP_CLOSE | 0x3 | 0xB);
        let form = c >> 6;
        let payload: Vec<u8> = if form == 3 {
            let n = u16::from_le_bytes([inp.byte().unwrap_or(0), inp.byte().unwrap_or(0)]);
            let plen = (inp.byte().unwrap_or(0) % 8) as usize + 1;
            let pat = inp.take(plen).to_vec();
            let pat = if pat.is_empty() { vec![b'a'] } else { pat };
            pat.iter()
                .copied()
                .cycle()
                .take(n as usize % 8192)
                .collect()
        } else {
            let n = inp.byte().unwrap_or(0) as usize;
            inp.take(n).to_vec()
        };
        let mask = masked.then(|| {
            let m = inp.take(4);
            let mut k = [0u8; 4];
            k[..m.len()].copy_from_slice(m);
            k
        });
        let len = payload.len();
        let start = wire.len();
        wire.push((u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode);
        let mbit = if masked { 0x80 } else { 0 };
        match form {
            1 => {
                wire.push(mbit | 126);
                wire.extend((len as u16).to_be_bytes());
            }
            2 => {
                wire.push(mbit | 127);
                wire.extend((len as u64).to_be_bytes());
            }
            _ if len < 126 => wire.push(mbit | len as u8),
            _ if len <= 0xFFFF => {
                wire.push(mbit | 126);
                wire.extend((len as u16).to_be_bytes());
            }
            _ => {
                wire.push(mbit | 127);
                wire.extend((len as u64).to_be_bytes());
            }
        }
        if let Some(k) = mask {
            wire.extend(k);
        }
        let header_len = (wire.len() - start) as u8;
        let mut on_wire = payload.clone();
        if let Some(k) = mask {
            unmask(&mut on_wire, k, 0);
        }
        wire.extend(on_wire);
        frames.push(Built {
            header: FrameHeader {
                fin,
                rsv: if rsv1 { 0b100 } else { 0 },
                opcode,
                mask,
                payload_len: len as u64,
                header_len,
            },
            payload,
        });
    }
    (frames, wire)
}

/// A capture gap: `len` payload bytes of frame `frame` from offset `at`.
#[derive(Debug, Clone, Copy)]
struct Gap {
    frame: usize,
    at: usize,
    len: usize,
    /// Offset of the gap in the wire stream.
    wire_at: usize,
}

/// What the model expects of one frame, and which fields are checked.
#[derive(Debug)]
struct Expect {
    notes: MsgNotes,
    /// Check `message_len` (not for orphans, unless strict).
    check_len: bool,
    /// Check the notes exactly (on a frame a gap cut, unless strict, only
    /// that no unexpected note is raised and the length).
    check_notes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Idle,
    /// A message whose bytes a gap cut: not judged, no length.
    Unknown,
    Text {
        bytes: Vec<u8>,
        reported: bool,
    },
    Opaque,
}

/// The notes each frame should carry, from the frames and the gap alone.
fn model(frames: &[Built], gap: Option<Gap>) -> Vec<Expect> {
    let mut msg = Msg::Idle;
    let mut len = 0u64;
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let h = &f.header;
        let mut n = MsgNotes::default();
        let mut check_len = true;
        let data = matches!(h.opcode, OP_TEXT | OP_BINARY | OP_CONTINUATION);
        match h.opcode {
            OP_TEXT | OP_BINARY => {
                n.interleaved = matches!(msg, Msg::Text { .. } | Msg::Opaque);
                msg = if h.opcode == OP_TEXT && h.rsv & 0b100 == 0 {
                    Msg::Text {
                        bytes: Vec::new(),
                        reported: false,
                    }
                } else {
                    Msg::Opaque
                };
                len = 0;
            }
            OP_CONTINUATION => {
                n.orphan_continuation = msg == Msg::Idle;
                check_len = !n.orphan_continuation || strict();
            }
            _ => {}
        }
        if data {
            len += h.payload_len;
        }
        let cut = gap.filter(|g| g.frame == i);
        // Bytes of the frame the message sees (all, or those before the gap).
        let seen = match cut {
            Some(g) => &f.payload[..g.at],
            None => &f.payload[..],
        };
        if let Msg::Text { bytes, reported } = &mut msg {
            if data {
                bytes.extend_from_slice(seen);
                let end = h.fin && cut.is_none();
                let invalid = if end {
                    std::str::from_utf8(bytes).is_err()
                } else {
                    std_verdict(bytes).0
                };
                if invalid && !*reported {
                    *reported = true;
                    n.invalid_utf8 = true;
                }
            }
        }
        if cut.is_some() {
            msg = Msg::Unknown;
        }
        if data && h.fin {
            n.message_len = match msg {
                Msg::Unknown | Msg::Idle => None,
                _ => Some(len),
            };
            msg = Msg::Idle;
        }
        out.push(Expect {
            notes: n,
            check_len,
            check_notes: cut.is_none() || strict(),
        });
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    header: FrameHeader,
    close_payload: Vec<u8>,
    notes: MsgNotes,
}

/// Feeds the stream cut at `cuts` (increasing), with the gap if any.
fn decode(wire: &[u8], cuts: &[usize], gap: Option<Gap>) -> Vec<Ev> {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut on = |e: FrameEvent<'_>| match e {
        FrameEvent::Frame {
            header,
            close_payload,
            notes,
        } => out.push(Ev {
            header: *header,
            close_payload: close_payload.to_vec(),
            notes,
        }),
        FrameEvent::Malformed(m) => panic!("malformed {m:?} in a well-formed stream"),
    };
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(wire.len())).collect();
    if let Some(g) = gap {
        points.extend([g.wire_at, g.wire_at + g.len]);
    }
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    let mut prev = 0;
    for p in points {
        // The gap's bytes are never fed; the gap is told where it starts.
        let in_gap = gap.is_some_and(|g| prev >= g.wire_at && p <= g.wire_at + g.len);
        if !in_gap {
            d.feed(&wire[prev..p], &mut on);
        }
        if let Some(g) = gap.filter(|g| g.wire_at == p) {
            assert!(
                d.gap(g.len as u64),
                "a gap inside a payload keeps the place"
            );
        }
        prev = p;
    }
    assert!(!d.in_frame(), "the stream ended on a frame boundary");
    out
}

fn check_events(evs: &[Ev], frames: &[Built], expect: &[Expect], how: &str) {
    assert_eq!(evs.len(), frames.len(), "{how}: one event per frame");
    for (i, ((e, f), x)) in evs.iter().zip(frames).zip(expect).enumerate() {
        assert_eq!(e.header, f.header, "{how}: header of frame {i}");
        let built_minimal = match f.header.header_len - if f.header.mask.is_some() { 4 } else { 0 }
        {
            4 => f.payload.len() >= 126,
            10 => f.payload.len() > 0xFFFF,
            _ => true,
        };
        assert_eq!(
            e.header.minimal_length(),
            built_minimal,
            "{how}: frame {i} minimal length"
        );
        if f.header.opcode == OP_CLOSE {
            assert_eq!(
                e.close_payload,
                &f.payload[..f.payload.len().min(MAX_CLOSE_KEEP)],
                "{how}: close payload of frame {i}"
            );
        } else {
            assert!(e.close_payload.is_empty());
        }
        let mut got = e.notes;
        if !x.check_len {
            got.message_len = x.notes.message_len;
        }
        if !x.check_notes {
            // A frame a gap cut: no note the model does not expect.
            let (g, w) = (got, x.notes);
            assert!(
                (!g.orphan_continuation || w.orphan_continuation)
                    && (!g.interleaved || w.interleaved)
                    && (!g.invalid_utf8 || w.invalid_utf8)
                    && g.message_len == w.message_len,
                "{how}: notes of frame {i} ({:?}), cut by the gap: {g:?}, model {w:?}",
                f.header
            );
            continue;
        }
        assert_eq!(got, x.notes, "{how}: notes of frame {i} ({:?})", f.header);
    }
}

fn check_messages(inp: &mut Input) {
    let s = inp.byte().unwrap_or(0);
    let k = inp.byte().unwrap_or(0) % 8;
    let mut explicit: Vec<usize> = (0..k)
        .map(|_| u16::from_le_bytes([inp.byte().unwrap_or(0), inp.byte().unwrap_or(0)]) as usize)
        .collect();
    let g = [
        inp.byte().unwrap_or(0),
        inp.byte().unwrap_or(0),
        inp.byte().unwrap_or(0),
        inp.byte().unwrap_or(0),
    ];
    let (frames, wire) = build_frames(inp);

    // The gap: inside a payload of 2 bytes or more, not a close frame's,
    // leaving at least one byte of it after the gap.
    let gap = if g[0] & 1 == 1 && !frames.is_empty() {
        let fi = g[1] as usize % frames.len();
        let f = &frames[fi];
        let plen = f.payload.len();
        if plen >= 2 && f.header.opcode != OP_CLOSE {
            let at = g[2] as usize % (plen - 1);
            let len = (g[3] as usize % (plen - 1 - at)) + 1;
            let start: usize = frames[..fi]
                .iter()
                .map(|b| b.header.header_len as usize + b.payload.len())
                .sum();
            Some(Gap {
                frame: fi,
                at,
                len,
                wire_at: start + f.header.header_len as usize + at,
            })
        } else {
            None
        }
    } else {
        None
    };

    let expect = model(&frames, gap);
    let whole = decode(&wire, &[], gap);
    check_events(&whole, &frames, &expect, "whole");

    let stride = (s % 61) as usize + 1;
    let cuts: Vec<usize> = (stride..wire.len()).step_by(stride).collect();
    assert_eq!(decode(&wire, &cuts, gap), whole, "stride {stride}");
    for c in &mut explicit {
        *c %= wire.len() + 1;
    }
    explicit.sort_unstable();
    assert_eq!(decode(&wire, &explicit, gap), whole, "cuts {explicit:?}");
    if wire.len() <= 4096 {
        let bytewise: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(decode(&wire, &bytewise, gap), whole, "bytewise");
    }
    if wire.len() <= 512 {
        for c in 1..wire.len() {
            assert_eq!(decode(&wire, &[c], gap), whole, "cut at {c}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    check_utf8(&mut inp);
    check_messages(&mut inp);
});
