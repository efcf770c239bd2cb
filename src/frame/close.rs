//! Close frames' payloads (RFC 6455 5.5.1) and close codes (7.4).

/// A close frame's payload, decoded (RFC 6455 5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosePayload {
    pub code: Option<u16>,
    /// The reason text, invalid UTF-8 replaced; `None` when there is no code.
    pub reason: Option<String>,
    pub reason_valid_utf8: bool,
    /// A payload of exactly one byte, which no valid close frame has.
    pub one_byte: bool,
}

/// Decodes a close payload: empty, one byte (invalid), or a code and a reason.
pub fn parse_close_payload(p: &[u8]) -> ClosePayload {
    match p {
        [] => ClosePayload {
            code: None,
            reason: None,
            reason_valid_utf8: true,
            one_byte: false,
        },
        [_] => ClosePayload {
            code: None,
            reason: None,
            reason_valid_utf8: true,
            one_byte: true,
        },
        [hi, lo, rest @ ..] => {
            let valid = std::str::from_utf8(rest).is_ok();
            ClosePayload {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: Some(String::from_utf8_lossy(rest).into_owned()),
                reason_valid_utf8: valid,
                one_byte: false,
            }
        }
    }
}

/// How a close code stands against RFC 6455 7.4 and the IANA registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// A valid code that reports no error (1000, 1001, 3000-4999 ...).
    Normal,
    /// A valid code reporting an error: 1002, 1003, 1007-1011, 1014.
    Error,
    /// 1005, 1006, 1015: meaningful locally, never on the wire.
    Reserved,
    /// Outside every valid range.
    Invalid,
}

/// A close status code (RFC 6455 7.4), with its meaning in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub fn class(self) -> CodeClass {
        match self.0 {
            1002 | 1003 | 1007..=1011 | 1014 => CodeClass::Error,
            1005 | 1006 | 1015 => CodeClass::Reserved,
            1000 | 1001 | 1012 | 1013 | 3000..=4999 => CodeClass::Normal,
            _ => CodeClass::Invalid,
        }
    }

    /// The registered meaning of a code of RFC 6455 or the IANA registry's
    /// 1000 range; `None` for the others.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received: never sent on the wire",
            1006 => "abnormal closure: never sent on the wire",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure: never sent on the wire",
            _ => return None,
        })
    }

    /// The code as people read it: "1000 (normal closure)", "4001 (private
    /// use)", "2000 (not a valid code)".
    pub fn describe(self) -> String {
        let label = match (self.meaning(), self.0) {
            (Some(m), _) => m,
            (None, 3000..=3999) => "registered",
            (None, 4000..=4999) => "private use",
            (None, _) => "not a valid code",
        };
        format!("{} ({label})", self.0)
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
