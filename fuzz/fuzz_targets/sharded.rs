//! `--threads` against one thread on arbitrary capture bytes: the summary
//! of two and of three flow tables (packets shared out by flow, purges,
//! secrets and peaks where one table has them) must be the same bytes as
//! one table's, unless a memory cap was reached (then a warning says the
//! choice may differ). Errors are fine if both runs give them; panics,
//! deadlocks and differences are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclose::capture::FileReader;
use wsclose::close::Settings;
use wsclose::pipeline::{analyze_readers, analyze_readers_threaded};
use wsclose::reassembly::Limits;

fn reader(data: &[u8]) -> Option<FileReader> {
    FileReader::from_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec()))).ok()
}

/// Small caps, so that inputs reach them too (and the warning path runs).
fn limits() -> Limits {
    Limits {
        max_flows: 64,
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(one) = reader(data) else {
        return;
    };
    let single = analyze_readers(vec![one], Settings::default(), limits());
    for threads in [2, 3] {
        let Some(r) = reader(data) else {
            return;
        };
        let sharded = analyze_readers_threaded(vec![r], Settings::default(), limits(), threads);
        match (&single, sharded) {
            (Ok((a, _)), Ok((b, warnings))) => {
                if warnings.iter().any(|w| w.contains("memory cap")) {
                    continue;
                }
                let (mut ja, mut jb) = (Vec::new(), Vec::new());
                a.write_json(&mut ja, false).expect("JSON to memory");
                b.write_json(&mut jb, false).expect("JSON to memory");
                assert!(ja == jb, "--threads {threads} differs from one thread");
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("one thread: {:?}; {threads}: {:?}", a.is_ok(), b.is_ok()),
        }
    }
});
