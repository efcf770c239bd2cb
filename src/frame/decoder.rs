//! The streaming per-direction frame decoder: fed reassembled TCP bytes one
//! segment at a time, it counts payloads down without buffering them.

use super::{
    FrameHeader, HeaderError, MAX_CLOSE_KEEP, MAX_HEADER_LEN, OP_CLOSE, parse_header, plausible,
    unmask,
};
use crate::message::{Messages, MsgNotes};

/// What the decoder reports while it is fed.
#[derive(Debug)]
pub enum FrameEvent<'a> {
    /// A complete frame. `close_payload` is the unmasked payload of a close
    /// frame (its first [`MAX_CLOSE_KEEP`] bytes; empty for other opcodes);
    /// `notes` what the frame did to its message.
    Frame {
        header: &'a FrameHeader,
        close_payload: &'a [u8],
        notes: MsgNotes,
    },
    /// Bytes that cannot be a frame: decoding of this direction stops.
    Malformed(HeaderError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a header.
    Header,
    /// Inside a payload: `remaining` bytes to go.
    Payload,
    /// Lost the frame boundary (a gap hit a header): look for a plausible
    /// header at the start of the next segment.
    Resync,
    /// A malformed frame was seen: nothing more is decoded.
    Dead,
}

/// Streaming decoder for one direction of one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    state: State,
    hdr_buf: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    cur: FrameHeader,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Kept (unmasked) close payload of the current frame: allocated only
    /// while a close frame is read.
    close_buf: Vec<u8>,
    msgs: Messages,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder {
            state: State::Header,
            hdr_buf: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            cur: FrameHeader::default(),
            remaining: 0,
            close_buf: Vec::new(),
            msgs: Messages::default(),
        }
    }

    /// A decoder that first has to find a frame boundary (midstream pickup).
    pub fn resyncing() -> Self {
        FrameDecoder {
            state: State::Resync,
            msgs: Messages::unknown(),
            ..Self::new()
        }
    }

    /// Heap bytes held: a close payload being read (the header of a frame
    /// split across segments waits in a fixed 14-byte array).
    pub fn held(&self) -> usize {
        self.close_buf.capacity()
    }

    pub fn is_dead(&self) -> bool {
        self.state == State::Dead
    }

    /// Whether a frame is partly received (used for "incomplete at the end").
    pub fn in_frame(&self) -> bool {
        self.state == State::Payload || (self.state == State::Header && self.hdr_len > 0)
    }

    /// Feeds the bytes of one segment, in order. `on_event` is called for
    /// every frame completed within them.
    pub fn feed(&mut self, mut data: &[u8], on_event: &mut impl FnMut(FrameEvent<'_>)) {
        if self.state == State::Resync {
            // Only a segment start can be taken as a frame boundary.
            match parse_header(data) {
                Ok((_, h)) if plausible(&h) => self.state = State::Header,
                _ => return,
            }
        }
        while !data.is_empty() {
            match self.state {
                State::Dead | State::Resync => return,
                State::Header => {
                    // A header is parsed in place; only one split across
                    // segments goes through the 14-byte buffer.
                    // Each parse starts its frame in its own branch: a
                    // header merged from both would be built in memory
                    // byte by byte and copied out in wide words, a
                    // store-forwarding stall on every frame.
                    let have = self.hdr_len as usize;
                    let parsed = if have == 0 {
                        parse_header(data).map(|(_, h)| self.begin(h, 0))
                    } else {
                        let add = (MAX_HEADER_LEN - have).min(data.len());
                        self.hdr_buf[have..have + add].copy_from_slice(&data[..add]);
                        match parse_header(&self.hdr_buf[..have + add]) {
                            Ok((_, h)) => Ok(self.begin(h, have)),
                            Err(e) => Err(e),
                        }
                    };
                    match parsed {
                        Ok(used) => {
                            data = &data[used..];
                            if self.remaining == 0 {
                                self.finish_frame(on_event);
                            }
                        }
                        Err(nom::Err::Incomplete(_)) => {
                            // At most 13 bytes in all: keep them for the next
                            // segment.
                            let n = data.len().min(MAX_HEADER_LEN - have);
                            if have == 0 {
                                self.hdr_buf[..n].copy_from_slice(&data[..n]);
                            }
                            self.hdr_len = (have + n) as u8;
                            return;
                        }
                        Err(_) => {
                            self.state = State::Dead;
                            on_event(FrameEvent::Malformed(HeaderError::LengthTopBit));
                            return;
                        }
                    }
                }
                State::Payload => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let pos = self.cur.payload_len - self.remaining;
                    if self.cur.opcode == OP_CLOSE {
                        self.keep_close_bytes(&data[..n], pos);
                    } else {
                        self.msgs.payload(&self.cur, &data[..n], pos);
                    }
                    self.remaining -= n as u64;
                    data = &data[n..];
                    if self.remaining == 0 {
                        self.finish_frame(on_event);
                    }
                }
            }
        }
    }

    /// `len` bytes of this direction are missing from the capture. Inside a
    /// payload they are just counted off; elsewhere the frame boundary is lost.
    /// Returns whether the decoder kept its place.
    pub fn gap(&mut self, len: u64) -> bool {
        if len > 0 {
            // The message in progress can no longer be judged.
            self.msgs.lost();
        }
        match self.state {
            State::Payload if len < self.remaining && self.cur.opcode != OP_CLOSE => {
                self.remaining -= len;
                true
            }
            State::Header if self.hdr_len == 0 && len == 0 => true,
            State::Dead => false,
            _ => {
                self.state = State::Resync;
                self.hdr_len = 0;
                false
            }
        }
    }

    /// A header parsed, `have` of its bytes from earlier segments: starts
    /// its frame; returns the bytes of this segment it took.
    #[inline(always)]
    fn begin(&mut self, h: FrameHeader, have: usize) -> usize {
        self.hdr_len = 0;
        self.start_frame(h);
        h.header_len as usize - have
    }

    fn start_frame(&mut self, h: FrameHeader) {
        self.cur = h;
        self.remaining = h.payload_len;
        self.close_buf.clear();
        self.msgs.start(&h);
        self.state = State::Payload;
    }

    fn keep_close_bytes(&mut self, bytes: &[u8], pos: u64) {
        let have = self.close_buf.len();
        let n = MAX_CLOSE_KEEP.saturating_sub(have).min(bytes.len());
        if n == 0 {
            return;
        }
        self.close_buf.extend_from_slice(&bytes[..n]);
        if let Some(mask) = self.cur.mask {
            unmask(&mut self.close_buf[have..], mask, pos);
        }
    }

    fn finish_frame(&mut self, on_event: &mut impl FnMut(FrameEvent<'_>)) {
        self.state = State::Header;
        let notes = self.msgs.end(&self.cur);
        on_event(FrameEvent::Frame {
            header: &self.cur,
            close_payload: &self.close_buf,
            notes,
        });
        if self.cur.opcode == OP_CLOSE {
            // Close frames are rare: give the memory back.
            self.close_buf = Vec::new();
        }
    }
}
