//! Messages across frames (RFC 6455 5.4 and 8.1): the order of fragments and
//! the UTF-8 of uncompressed text, followed as payload bytes stream past
//! with a few bytes of state and no buffering.

use crate::frame::{FrameHeader, OP_BINARY, OP_CONTINUATION, OP_TEXT};

/// Incremental UTF-8 validation (Unicode 15, table 3-7): only the bytes of
/// a sequence still owed and the range the next one must fall in are kept,
/// so a character split across frames or segments is judged exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8 {
    /// Continuation bytes still owed by the current sequence.
    need: u8,
    /// Range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
}

impl Default for Utf8 {
    fn default() -> Self {
        Utf8 {
            need: 0,
            lo: 0x80,
            hi: 0xBF,
        }
    }
}

impl Utf8 {
    /// One byte; `false` when the text can no longer be valid.
    fn push(&mut self, b: u8) -> bool {
        if self.need > 0 {
            if !(self.lo..=self.hi).contains(&b) {
                return false;
            }
            self.need -= 1;
            (self.lo, self.hi) = (0x80, 0xBF);
            return true;
        }
        let (need, lo, hi) = match b {
            0x00..=0x7F => return true,
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return false,
        };
        *self = Utf8 { need, lo, hi };
        true
    }

    /// Bytes in order; `false` when the text can no longer be valid. A
    /// SIMD validator does the bulk; only a sequence split at either end
    /// goes byte by byte.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while self.need > 0 {
            let Some((&b, rest)) = data.split_first() else {
                return true;
            };
            if !self.push(b) {
                return false;
            }
            data = rest;
        }
        // simdutf8's validator runs several times faster than std's on
        // non-ASCII text, the bulk of a chat capture's bytes. A character
        // cut at the end of the data is left to the byte machine: asked
        // to, the validator would call it an error and search again for
        // where the valid text ends.
        let whole = whole_characters(data);
        valid(&data[..whole]) && data[whole..].iter().all(|&b| self.push(b))
    }

    /// Whether the text ends on a character boundary.
    pub fn complete(&self) -> bool {
        self.need == 0
    }
}

/// Bytes of one vector block of the validator: below it, simdutf8 hands
/// the text to std's validator, which goes byte by byte through non-ASCII.
const BLOCK: usize = 64;

/// Whether `data` (cut after its last whole character, or invalid anyway)
/// is valid UTF-8. Short non-ASCII text, the usual piece of a small
/// segment, is padded with zeros to one block for the vector path: ASCII
/// after the text can neither complete a character nor mend an error, so
/// the padded block is valid exactly when the text is.
fn valid(data: &[u8]) -> bool {
    if data.len() >= BLOCK {
        return simdutf8::basic::from_utf8(data).is_ok();
    }
    if data.is_ascii() {
        return true;
    }
    let mut block = [0u8; BLOCK];
    block[..data.len()].copy_from_slice(data);
    simdutf8::basic::from_utf8(&block).is_ok()
}

/// The length of `data` without a character it starts but does not end
/// (its lead byte among the last three, fewer bytes after it than it
/// announces). Anything else, valid or not, is the validator's to judge.
fn whole_characters(data: &[u8]) -> usize {
    let n = data.len();
    for back in 1..=n.min(3) {
        let b = data[n - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if len > back { n - back } else { n };
    }
    n
}

/// What a direction's message stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Msg {
    /// Between messages.
    #[default]
    Idle,
    /// Joined midway (midstream, or after a gap): the next continuations
    /// belong to a message whose start was not seen.
    Unknown,
    /// An uncompressed text message in progress (its UTF-8 is judged).
    Text,
    /// A binary or compressed message in progress (not judged).
    Opaque,
}

/// What a completed frame said about its message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgNotes {
    /// A continuation with no fragmented message in progress.
    pub orphan_continuation: bool,
    /// A new text or binary frame while a fragmented message was open.
    pub interleaved: bool,
    /// The text message became invalid UTF-8 with this frame.
    pub invalid_utf8: bool,
    /// The message ended with this frame: its payload bytes in all.
    pub message_len: Option<u64>,
}

/// One direction's messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Messages {
    msg: Msg,
    utf8: Utf8,
    /// The current text message was already found invalid.
    bad: bool,
    /// Payload bytes of the current message so far.
    len: u64,
    notes: MsgNotes,
}

/// Bytes unmasked at a time for validation of masked text.
const CHUNK: usize = 256;

impl Messages {
    /// A direction joined midway: fragments of an unseen start are not orphans.
    pub fn unknown() -> Self {
        Messages {
            msg: Msg::Unknown,
            ..Messages::default()
        }
    }

    /// A frame header: opens, continues or interleaves a message.
    pub fn start(&mut self, h: &FrameHeader) {
        self.notes = MsgNotes::default();
        match h.opcode {
            OP_TEXT | OP_BINARY => {
                self.notes.interleaved = matches!(self.msg, Msg::Text | Msg::Opaque);
                // RSV1 on the first frame: compressed, not judged.
                self.msg = if h.opcode == OP_TEXT && h.rsv & 0b100 == 0 {
                    Msg::Text
                } else {
                    Msg::Opaque
                };
                self.utf8 = Utf8::default();
                self.bad = false;
                self.len = h.payload_len;
            }
            OP_CONTINUATION => {
                self.notes.orphan_continuation = self.msg == Msg::Idle;
                self.len = self.len.saturating_add(h.payload_len);
            }
            _ => {}
        }
    }

    /// Payload bytes of the current frame, `pos` its offset in the payload.
    pub fn payload(&mut self, h: &FrameHeader, data: &[u8], pos: u64) {
        if self.msg != Msg::Text || self.bad || !h.is_data() {
            return;
        }
        let ok = match h.mask {
            None => self.utf8.feed(data),
            Some(mask) => {
                let mut buf = [0u8; CHUNK];
                let mut at = pos;
                data.chunks(CHUNK).all(|c| {
                    crate::frame::unmask_into(&mut buf, c, mask, at);
                    at += c.len() as u64;
                    self.utf8.feed(&buf[..c.len()])
                })
            }
        };
        if !ok {
            self.bad = true;
            self.notes.invalid_utf8 = true;
        }
    }

    /// The frame is complete: what it said about its message.
    pub fn end(&mut self, h: &FrameHeader) -> MsgNotes {
        // Taken first and finished as a local: finished in place, the
        // notes were copied out right after their fields were stored, a
        // store-forwarding stall on every frame.
        let mut notes = std::mem::take(&mut self.notes);
        if h.is_data() && h.fin {
            if self.msg == Msg::Text && !self.bad && !self.utf8.complete() {
                self.bad = true;
                notes.invalid_utf8 = true;
            }
            // Only a message whose start was seen has a length (not one
            // joined midway, nor an orphan continuation).
            if matches!(self.msg, Msg::Text | Msg::Opaque) {
                notes.message_len = Some(self.len);
            }
            self.msg = Msg::Idle;
        }
        notes
    }

    /// Bytes were lost: the message in progress can no longer be judged
    /// (what the current frame already showed is still reported).
    pub fn lost(&mut self) {
        *self = Messages {
            notes: self.notes,
            ..Messages::unknown()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(bytes: &[u8], cut: usize) -> bool {
        let mut u = Utf8::default();
        u.feed(&bytes[..cut]) && u.feed(&bytes[cut..]) && u.complete()
    }

    #[test]
    fn utf8_split_anywhere_matches_std() {
        let samples: [&[u8]; 9] = [
            "héllo €uro 𝄞".as_bytes(),
            b"\xed\xa0\x80",     // surrogate
            b"\xc0\xaf",         // overlong
            b"\xe0\x80\xaf",     // overlong
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"\xf0\x9f\x98",     // truncated
            b"plain ascii",
            b"\xff",
            "κόσμε".as_bytes(),
        ];
        for s in samples {
            let want = std::str::from_utf8(s).is_ok();
            for cut in 0..=s.len() {
                assert_eq!(valid_in_pieces(s, cut), want, "{s:?} cut at {cut}");
            }
        }
    }

    /// Long text (the validator's vector path starts at 64 bytes) cut in
    /// up to four pieces anywhere, with and without a bad byte put in:
    /// the pieces are judged as std judges the whole.
    #[test]
    fn long_text_in_pieces_matches_std() {
        let base = "chat ñandú €uro 𝄞 κόσμε 日本語のテキスト; ".repeat(6);
        let bad: [&[u8]; 5] = [
            b"\xff",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
            b"\xe2\x82",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..4000 {
            let mut bytes = base.as_bytes()[..64 + next(base.len() - 64)].to_vec();
            if round % 2 == 1 {
                let at = next(bytes.len());
                bytes.splice(at..at, bad[next(bad.len())].iter().copied());
            }
            let want = std::str::from_utf8(&bytes).is_ok();
            let mut cuts: Vec<usize> = (0..3).map(|_| next(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut u = Utf8::default();
            let mut from = 0;
            let mut ok = true;
            for to in cuts.into_iter().chain([bytes.len()]) {
                ok = ok && u.feed(&bytes[from..to]);
                from = to;
            }
            assert_eq!(ok && u.complete(), want, "round {round}: {bytes:?}");
        }
    }

    fn hdr(opcode: u8, fin: bool, len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            opcode,
            payload_len: len,
            ..FrameHeader::default()
        }
    }

    #[test]
    fn fragments_and_text_across_frames() {
        let mut m = Messages::default();
        let euro = "€".as_bytes();
        let h1 = hdr(OP_TEXT, false, 1);
        m.start(&h1);
        m.payload(&h1, &euro[..1], 0);
        assert_eq!(m.end(&h1), MsgNotes::default());
        let h2 = hdr(OP_CONTINUATION, true, 2);
        m.start(&h2);
        m.payload(&h2, &euro[1..], 0);
        let n = m.end(&h2);
        assert!(!n.invalid_utf8);
        assert_eq!(n.message_len, Some(3));
        // Now idle: a continuation is an orphan.
        m.start(&h2);
        assert!(m.end(&h2).orphan_continuation);
        // A new message inside a fragmented one.
        m.start(&hdr(OP_BINARY, false, 1));
        m.end(&hdr(OP_BINARY, false, 1));
        m.start(&h1);
        assert!(m.end(&h1).interleaved);
    }

    #[test]
    fn truncated_text_is_invalid_at_its_last_frame() {
        let mut m = Messages::default();
        let h = hdr(OP_TEXT, true, 1);
        m.start(&h);
        m.payload(&h, &[0xE2], 0);
        assert!(m.end(&h).invalid_utf8);
    }

    #[test]
    fn masked_text_is_unmasked_before_judging() {
        let mask = [1, 2, 3, 4];
        let text = "ñandú".as_bytes();
        let mut wire = text.to_vec();
        crate::frame::unmask(&mut wire, mask, 0);
        let h = FrameHeader {
            mask: Some(mask),
            ..hdr(OP_TEXT, true, text.len() as u64)
        };
        let mut m = Messages::default();
        m.start(&h);
        m.payload(&h, &wire[..3], 0);
        m.payload(&h, &wire[3..], 3);
        assert!(!m.end(&h).invalid_utf8);
    }

    #[test]
    fn compressed_and_unknown_are_not_judged() {
        let mut m = Messages::unknown();
        let c = hdr(OP_CONTINUATION, true, 1);
        m.start(&c);
        m.payload(&c, &[0xFF], 0);
        let n = m.end(&c);
        assert!(!n.orphan_continuation && !n.invalid_utf8);
        let z = FrameHeader {
            rsv: 0b100,
            ..hdr(OP_TEXT, true, 1)
        };
        m.start(&z);
        m.payload(&z, &[0xFF], 0);
        assert!(!m.end(&z).invalid_utf8);
    }
}
