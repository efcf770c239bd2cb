//! Inputs found by the fuzz targets (see fuzz/README.md), kept under
//! `fuzz/artifacts-kept/<target>/` and fed through the same API as the
//! target that found them.
//!
//! Every kept input is run through its target's API without panicking (the
//! `*_kept_inputs_do_not_panic` tests pick up new files by themselves); each
//! finding also has a test of the behaviour its fix gave.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wsclose::capture::FileReader;
use wsclose::cli::analyze_readers;
use wsclose::close::Settings;
use wsclose::frame::{
    FrameDecoder, FrameEvent, OP_BINARY, OP_CONTINUATION, OP_TEXT, parse_close_payload,
    parse_frame, parse_header,
};
use wsclose::message::{MsgNotes, Utf8};
use wsclose::reassembly::Limits;
use wsclose::upgrade::{accept_for_key, parse_request, parse_response, split_list};

fn kept_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("artifacts-kept")
        .join(target)
}

fn kept(target: &str, name: &str) -> Vec<u8> {
    let p = kept_dir(target).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every kept input of a target (none is fine).
fn all_kept(target: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(kept_dir(target)) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The pipeline target: capture bytes to the JSON summary (None when the
/// input is not a capture).
fn analyze(bytes: &[u8]) -> Option<Value> {
    let reader =
        FileReader::from_reader("fuzz", Box::new(std::io::Cursor::new(bytes.to_vec()))).ok()?;
    let (summary, _) =
        analyze_readers(vec![reader], Settings::default(), Limits::default()).ok()?;
    let mut json = Vec::new();
    summary.write_json(&mut json, false).unwrap();
    summary.write_tables(&mut Vec::new()).unwrap();
    Some(serde_json::from_slice(&json).unwrap())
}

fn only_connection(v: &Value) -> &Value {
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{v:#}");
    &conns[0]
}

fn finding_kinds(c: &Value) -> Vec<String> {
    c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// No panics, whatever was kept
// ---------------------------------------------------------------------------

#[test]
fn pipeline_kept_inputs_do_not_panic() {
    for (name, bytes) in all_kept("pipeline") {
        eprintln!("pipeline: {name}");
        let _ = analyze(&bytes);
    }
}

#[test]
fn upgrade_kept_inputs_do_not_panic() {
    for (name, bytes) in all_kept("upgrade") {
        eprintln!("upgrade: {name}");
        let _ = parse_request(&bytes);
        let _ = parse_response(&bytes);
        let s = String::from_utf8_lossy(&bytes);
        let _ = split_list(&s);
        let _ = accept_for_key(&s);
    }
}

#[test]
fn frame_kept_inputs_do_not_panic() {
    for target in ["frame_header", "close_payload"] {
        for (name, bytes) in all_kept(target) {
            eprintln!("{target}: {name}");
            let _ = parse_header(&bytes);
            let _ = parse_frame(&bytes);
            let _ = parse_close_payload(&bytes);
            let mut d = FrameDecoder::new();
            d.feed(&bytes, &mut |_| {});
            d.gap(1);
            d.feed(&bytes, &mut |_| {});
        }
    }
}

// ---------------------------------------------------------------------------
// F1 (upgrade): a blank obs-fold line left a space in the header value
// ---------------------------------------------------------------------------

#[test]
fn upgrade_blank_fold_lines_leave_values_trimmed() {
    let bytes = kept("upgrade", "blank-fold-trailing-space");
    let (rest, req) = parse_request(&bytes).expect("a complete request");
    assert!(rest.is_empty());
    assert!(req.upgrade_websocket);
    assert_eq!(req.host.as_deref(), Some("x"));
    assert_eq!(req.key.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    // A fold after an empty value must not start the value with a space.
    let (_, req) = parse_request(b"GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n").unwrap();
    assert_eq!(req.host.as_deref(), Some("x"));
}

// ---------------------------------------------------------------------------
// F2 (pipeline): no 101 seen, yet close frames
// ---------------------------------------------------------------------------

#[test]
fn lost_101_response_with_a_clean_close_is_clean() {
    // SYN, request, the server's 101 missing from the capture (the client
    // acknowledges it), a text frame from the server, close 1000 both ways,
    // FINs.
    let v = analyze(&kept("pipeline", "lost-101-response.pcap")).unwrap();
    let c = only_connection(&v);
    assert_eq!(c["close"]["outcome"], "clean", "{c:#}");
    assert!(c["close"]["handshake_s"].is_number(), "{c:#}");
    assert!(c["close"]["idle_s"].is_number(), "{c:#}");
    let kinds = finding_kinds(c);
    assert!(kinds.contains(&"capture_gap".to_string()), "{kinds:?}");
    assert!(
        !kinds.contains(&"handshake_rejected".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn close_frame_before_any_response_has_an_idle_time() {
    // Request, no response, then a close frame from the client; TCP open.
    let v = analyze(&kept("pipeline", "close-before-response.pcap")).unwrap();
    let c = only_connection(&v);
    assert_eq!(c["close"]["initiator"], "client", "{c:#}");
    // Rule 11: a close frame was sent, so idle_s is a number.
    assert!(c["close"]["idle_s"].is_number(), "{c:#}");
}

// ---------------------------------------------------------------------------
// F3 (pipeline): a 101 response without its request
// ---------------------------------------------------------------------------

#[test]
fn response_without_request_is_midstream_with_a_null_handshake() {
    // The contract's invariant: `handshake` is null iff `midstream`.
    let v = analyze(&kept("pipeline", "response-without-request.pcap")).unwrap();
    let c = only_connection(&v);
    assert!(finding_kinds(c).contains(&"midstream".to_string()), "{c:#}");
    assert!(c["handshake"].is_null(), "{c:#}");
    assert_eq!(c["close"]["initiator"], "server", "{c:#}");
    assert_eq!(c["close"]["outcome"], "pending", "{c:#}");
    assert!(c["close"]["idle_s"].is_number(), "{c:#}");
}

// ---------------------------------------------------------------------------
// F4 (pipeline): the capture's clock runs backwards between two connections
// ---------------------------------------------------------------------------

#[test]
fn clock_running_backwards_between_connections_lists_both() {
    // Connection A's SYN at t=1000, then (later in the file) B's at t=999.
    let v = analyze(&kept("pipeline", "clock-backwards-two-connections.pcap")).unwrap();
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{v:#}");
    for (i, c) in conns.iter().enumerate() {
        assert_eq!(c["id"], i as u64 + 1, "{v:#}");
    }
}

#[test]
fn connections_are_numbered_in_order_of_arrival_when_the_clock_runs_backwards() {
    // F4. Contract rule 19: a packet older than the one before it is taken in
    // order of arrival. The second SYN of this capture is stamped a second
    // before the first one: it is still connection 2, with the earlier
    // first_ts.
    let v = analyze(&kept("pipeline", "clock-backwards-two-connections.pcap")).unwrap();
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{v:#}");
    assert_eq!(conns[0]["client"], "10.0.0.1:51001", "{v:#}");
    assert_eq!(conns[1]["client"], "10.0.0.1:51002", "{v:#}");
    let (a, b) = (
        conns[0]["first_ts"].as_f64().unwrap(),
        conns[1]["first_ts"].as_f64().unwrap(),
    );
    assert!(b < a, "the second arrived stamped earlier: {a} {b}");
}

// ---------------------------------------------------------------------------
// messages: F5 (an orphan continuation's stale length) and F6 (a gap inside
// a payload wiping the frame's notes), both fixed in src/message.rs
// ---------------------------------------------------------------------------

#[test]
fn messages_kept_inputs_do_not_panic() {
    // The kept inputs are in the `messages` target's layout (see
    // fuzz/fuzz_targets/messages.rs); here they just go through the API raw.
    for (name, bytes) in all_kept("messages") {
        eprintln!("messages: {name}");
        let mut u = Utf8::default();
        let _ = u.feed(&bytes) && u.complete();
        let mut d = FrameDecoder::new();
        d.feed(&bytes, &mut |_| {});
        d.gap(1);
        d.feed(&bytes, &mut |_| {});
    }
}

/// One unmasked frame (payloads under 126 bytes).
fn ws_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut v = vec![(u8::from(fin) << 7) | opcode, payload.len() as u8];
    v.extend_from_slice(payload);
    v
}

/// Feeds `stream`, with `gap` bytes missing after `stream[..at]` when given,
/// and returns each frame's notes.
fn notes_of(stream: &[u8], gap: Option<(usize, usize)>) -> Vec<MsgNotes> {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut on = |e: FrameEvent<'_>| {
        if let FrameEvent::Frame { notes, .. } = e {
            out.push(notes);
        }
    };
    match gap {
        None => d.feed(stream, &mut on),
        Some((at, len)) => {
            d.feed(&stream[..at], &mut on);
            assert!(d.gap(len as u64), "gap inside a payload");
            d.feed(&stream[at + len..], &mut on);
        }
    }
    out
}

#[test]
fn orphan_continuation_has_no_message_length() {
    // F5: text "ab" (FIN), then a continuation "c" (FIN) with nothing in
    // progress: an orphan, whose message_len came out as 3 (the finished
    // message's 2 bytes carried over, plus its own 1), feeding
    // largest_message / largest_before_close. Kept input:
    // artifacts-kept/messages/orphan-continuation-stale-length.
    let mut s = ws_frame(true, OP_TEXT, b"ab");
    s.extend(ws_frame(true, OP_CONTINUATION, b"c"));
    let n = notes_of(&s, None);
    assert_eq!(n[0].message_len, Some(2));
    assert!(n[1].orphan_continuation);
    assert_eq!(
        n[1].message_len, None,
        "an orphan is no message: {:?}",
        n[1]
    );
    // Orphans after a large message kept adding to it.
    let mut s = ws_frame(true, OP_BINARY, &[0; 100]);
    for _ in 0..3 {
        s.extend(ws_frame(true, OP_CONTINUATION, b"x"));
    }
    let n = notes_of(&s, None);
    let largest = n.iter().filter_map(|n| n.message_len).max();
    assert_eq!(largest, Some(100), "{n:?}");
}

#[test]
fn gap_inside_a_payload_keeps_the_frames_notes() {
    // F6: a capture gap inside a frame's payload reset the frame's notes
    // along with the message, so what was already certain was lost.
    // Kept inputs: artifacts-kept/messages/gap-drops-*.
    //
    // Text "\xFFabc" (FIN) with "a" missing: the 0xFF before the gap
    // already made the message invalid.
    let s = ws_frame(true, OP_TEXT, b"\xffabc");
    let n = notes_of(&s, Some((3, 1)));
    assert!(n[0].invalid_utf8, "{n:?}");
    // A text frame while "a" is open, its payload cut by the gap.
    let mut s = ws_frame(false, OP_TEXT, b"a");
    s.extend(ws_frame(true, OP_TEXT, b"xyz"));
    let n = notes_of(&s, Some((5, 1)));
    assert!(n[1].interleaved, "{n:?}");
    // A continuation with nothing in progress, its payload cut by the gap.
    let s = ws_frame(true, OP_CONTINUATION, b"ab");
    let n = notes_of(&s, Some((2, 1)));
    assert!(n[0].orphan_continuation, "{n:?}");
    // The message the gap cut is not measured.
    assert_eq!(n[0].message_len, None);
}
