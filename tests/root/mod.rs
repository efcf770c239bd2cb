//! Whether this test run may capture live on `lo` (as root), for the tests
//! that do: they skip with a message otherwise.
#![allow(dead_code, unused_macros)]

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// Returns from the test, with a message, unless it runs as root.
macro_rules! require_root {
    () => {
        if !root::is_root() {
            eprintln!("skipped: live capture on lo needs root (or CAP_NET_RAW)");
            return;
        }
    };
}
