//! `wsclose::frame::parse_close_payload` and `CloseCode` (class, meaning,
//! description), plus the message helper `fmt_secs`.
//!
//! Checked: `code` and `reason` are both present or both absent; a code is
//! present iff the payload has at least 2 bytes and is its first two bytes
//! big-endian; `one_byte` iff the payload is 1 byte; the reason is the rest,
//! exact when it is valid UTF-8 and with replacement characters otherwise;
//! `reason_valid_utf8` is true when there is no reason; the class of a code
//! agrees with RFC 6455 7.4 ranges; every code has a description.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclose::close::fmt_secs;
use wsclose::frame::{CloseCode, CodeClass, parse_close_payload};

fn check_class(code: u16) {
    let c = CloseCode(code).class();
    match code {
        0..=999 | 1004 | 1016..=2999 | 5000.. => assert_eq!(c, CodeClass::Invalid, "{code}"),
        3000..=4999 | 1000 | 1001 => assert_eq!(c, CodeClass::Normal, "{code}"),
        1005 | 1006 | 1015 => assert_eq!(c, CodeClass::Reserved, "{code}"),
        _ => assert!(matches!(c, CodeClass::Normal | CodeClass::Error), "{code}"),
    }
    let m = CloseCode(code).meaning();
    assert_eq!(
        m.is_some(),
        (1000..=1015).contains(&code) && code != 1004,
        "{code}: {m:?}"
    );
    if c == CodeClass::Reserved {
        assert!(m.is_some_and(|m| m.contains("never sent on the wire")));
    }
    let d = CloseCode(code).describe();
    assert!(d.starts_with(&format!("{code} (")) && d.ends_with(')'), "{d}");
}

fuzz_target!(|data: &[u8]| {
    let p = parse_close_payload(data);
    assert_eq!(p.code.is_some(), p.reason.is_some());
    assert_eq!(p.one_byte, data.len() == 1);
    if data.len() >= 2 {
        assert_eq!(p.code, Some(u16::from_be_bytes([data[0], data[1]])));
        let rest = &data[2..];
        let reason = p.reason.as_deref().unwrap();
        match std::str::from_utf8(rest) {
            Ok(s) => {
                assert!(p.reason_valid_utf8);
                assert_eq!(reason, s);
            }
            Err(_) => {
                assert!(!p.reason_valid_utf8);
                assert!(reason.contains('\u{fffd}'));
            }
        }
    } else {
        assert!(p.code.is_none());
        assert!(p.reason_valid_utf8);
    }
    if let Some(code) = p.code {
        check_class(code);
    }
    // Every code reachable from two input bytes, even from short payloads.
    let c = u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.last().copied().unwrap_or(0),
    ]);
    check_class(c);

    // Durations in messages: always "<number> s", never with trailing zeros.
    if data.len() >= 8 {
        let f = f64::from_bits(u64::from_le_bytes(data[..8].try_into().unwrap()));
        let s = fmt_secs(f);
        assert!(s.ends_with(" s"), "{s:?}");
        let num = &s[..s.len() - 2];
        if f.is_finite() && f.abs() < 1e15 {
            assert!(!num.is_empty(), "{f} -> {s:?}");
            if num.contains('.') {
                assert!(!num.ends_with('0') && !num.ends_with('.'), "{f} -> {s:?}");
            }
            let back: f64 = num.parse().expect("a number");
            assert!((back - f).abs() <= 5e-7 + f.abs() * 1e-15, "{f} -> {s:?}");
        }
    }
});
