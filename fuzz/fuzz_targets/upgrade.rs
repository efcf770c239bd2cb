//! `wsclose::upgrade`: the HTTP upgrade request/response parsers,
//! `accept_for_key` and `split_list`.
//!
//! Checked: no panic; what a parser consumes is a prefix of its input ending
//! with the empty line, parsing that prefix alone gives the same value, and a
//! prefix one byte shorter is not a complete head; parsed fields have their
//! grammar's shape; `accept_for_key` is a base64 SHA-1 that ignores
//! surrounding whitespace; `split_list` items are trimmed, non-empty pieces
//! of the input; header values are trimmed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclose::upgrade::{
    MAX_HEAD_LEN, accept_for_key, looks_like_request, looks_like_response, parse_request,
    parse_response, split_list,
};

/// Checks what a head parser consumed; returns the consumed length.
fn consumed(data: &[u8], rest: &[u8]) -> usize {
    assert!(rest.len() <= data.len());
    let n = data.len() - rest.len();
    assert_eq!(&data[n..], rest, "rest is a suffix");
    assert!(n >= 2, "a head has at least a line and the empty line");
    assert_eq!(data[n - 1], b'\n', "a head ends with LF");
    n
}

fn incomplete_or_too_long<T: std::fmt::Debug>(data: &[u8], r: nom::IResult<&[u8], T>) {
    match r {
        Err(nom::Err::Incomplete(_)) => assert!(data.len() < MAX_HEAD_LEN),
        Err(nom::Err::Error(_)) => {}
        other => panic!("prefix without its empty line parsed: {other:?}"),
    }
}

/// A header value as reported: trimmed, also across obs-folds.
fn value(v: &Option<String>) {
    if let Some(v) = v {
        assert_eq!(v.trim(), v, "header value not trimmed");
    }
}

fn check_list(s: &str) {
    let items = split_list(s);
    let commas = s.matches(',').count();
    assert!(items.len() <= commas + 1);
    for it in &items {
        assert!(!it.is_empty());
        assert_eq!(it.trim(), it, "items are trimmed");
        assert!(s.contains(it.as_str()), "items are pieces of the input");
    }
    if commas == 0 {
        let t = s.trim();
        if t.is_empty() {
            assert!(items.is_empty());
        } else {
            assert_eq!(items, vec![t.to_string()]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_request(data);
    let _ = looks_like_response(data);

    match parse_request(data) {
        Ok((rest, req)) => {
            let n = consumed(data, rest);
            assert!(!req.method.is_empty() && !req.path.is_empty());
            assert!(!req.method.contains([' ', '\r', '\n']));
            assert!(!req.path.contains([' ', '\r', '\n']));
            let (rest2, again) = parse_request(&data[..n]).expect("the head alone parses");
            assert!(rest2.is_empty());
            assert_eq!(again, req);
            incomplete_or_too_long(&data[..n - 1], parse_request(&data[..n - 1]));
            value(&req.key);
            value(&req.host);
            if let Some(k) = &req.key {
                let _ = accept_for_key(k);
            }
        }
        Err(nom::Err::Incomplete(_)) => assert!(data.len() < MAX_HEAD_LEN),
        Err(_) => {}
    }

    match parse_response(data) {
        Ok((rest, resp)) => {
            let n = consumed(data, rest);
            assert!(resp.status <= 999);
            assert!(data.starts_with(b"HTTP/"));
            let (rest2, again) = parse_response(&data[..n]).expect("the head alone parses");
            assert!(rest2.is_empty());
            assert_eq!(again, resp);
            incomplete_or_too_long(&data[..n - 1], parse_response(&data[..n - 1]));
            value(&resp.accept);
            value(&resp.protocol);
            for e in &resp.extensions {
                assert!(!e.is_empty() && e.trim() == e);
            }
            let _ = resp.allows_rsv1();
            let _ = resp.has_unknown_extension();
            if resp.extensions.is_empty() {
                assert!(!resp.allows_rsv1() && !resp.has_unknown_extension());
            }
        }
        Err(nom::Err::Incomplete(_)) => assert!(data.len() < MAX_HEAD_LEN),
        Err(_) => {}
    }

    let s = String::from_utf8_lossy(data);
    check_list(&s);

    let a = accept_for_key(&s);
    assert_eq!(a.len(), 28);
    assert!(a.ends_with('='));
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
    );
    assert_eq!(a, accept_for_key(s.trim()));
    assert_eq!(a, accept_for_key(&format!(" {s}\t")));
});
