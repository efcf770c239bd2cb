//! `wsclose::tls::keylog`: the NSS key log parser and store.
//!
//! Input: byte 0 is where to cut the text (a fraction of its length); the
//! rest, as UTF-8 (lossy), is key log text.
//!
//! Checked: no panic; every accepted line prints back (`Entry::to_line`) to
//! a line that parses to the same entry; the line counts add up to the
//! number of lines; every accepted secret is found by its client random
//! (the last line for a label wins); and the same text written to a file in
//! two pieces, read with `follow` then `reload` (a file growing under a
//! live capture, a line cut anywhere), gives the same secrets and the same
//! count of valid lines as `add_text` on the whole.
#![no_main]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use wsclose::tls::keylog::{KeyLog, Label, Line, Secrets, parse_line};

fn slot(s: &Secrets, l: Label) -> Option<&[u8]> {
    s.slot(l).as_ref().map(|s| s.as_bytes())
}

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("wsclose-fuzz-keylog-{}.txt", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);

    // Each line alone, and what the store must hold after all of them.
    let mut want: HashMap<([u8; 32], Label), Vec<u8>> = HashMap::new();
    let mut lines = 0u64;
    for line in text.lines() {
        lines += 1;
        if let Line::Entry(e) = parse_line(line) {
            assert_eq!(parse_line(&e.to_line()), Line::Entry(e), "{line:?}");
            assert!(matches!(e.secret.len(), 32 | 48));
            want.insert((e.client_random, e.label), e.secret.as_bytes().to_vec());
        }
    }

    let mut k = KeyLog::new();
    let st = k.add_text(&text);
    assert_eq!(st.valid + st.skipped(), lines);
    for ((random, label), secret) in &want {
        let s = k.get(random).expect("an accepted line is found");
        assert_eq!(slot(s, *label), Some(&secret[..]));
    }
    assert!(k.len() <= want.len());

    // The same text as a file that grows: written in two pieces.
    let bytes = text.as_bytes();
    let at = bytes.len() * usize::from(cut) / 255;
    let path = temp_path();
    std::fs::write(&path, &bytes[..at]).expect("temp file");
    let mut f = KeyLog::new();
    let mut valid = f.follow(&path).expect("readable").valid;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut h| h.write_all(&bytes[at..]))
        .expect("append");
    valid += f.reload().expect("readable").valid;
    let _ = std::fs::remove_file(&path);
    assert_eq!(f.stats().valid, st.valid, "valid lines counted once");
    assert!(valid >= st.valid);
    for ((random, label), secret) in &want {
        let s = f.get(random).expect("found in the followed file");
        assert_eq!(slot(s, *label), Some(&secret[..]));
    }
});
