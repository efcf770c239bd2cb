//! glibc's per-thread cache of freed blocks, made large enough for the
//! bursts in which wsclose frees its connections.
//!
//! Ended flows are released a few hundred at a time, and decided reports
//! are dropped in batches; each connection frees about a dozen blocks of
//! a few sizes between 100 B and 1 KB. glibc keeps only 7 freed blocks of
//! a size in a thread's cache (`glibc.malloc.tcache_count`); the rest go
//! to its shared bins, where they are merged and split again, and every
//! block handed out later is a cache miss on a cold list. With room for
//! [`TCACHE_COUNT`] blocks a size, a burst is reused last-in first-out
//! from the cache. Medians of paired runs: 17 % less CPU on a million
//! short connections on one thread, 3 to 12 % on small packets, nothing
//! lost anywhere; peak memory 0.5 to 2 MB more (docs/profile.md, "glibc's
//! thread cache").
//!
//! The cache's size is a tunable read once, from `GLIBC_TUNABLES`, before
//! `main` runs, and no call changes it later. So wsclose executes itself
//! again (`std::env::current_exe`, so that the process keeps its name for
//! `ps` and `pgrep`) with the tunable added, before it has read anything. A `GLIBC_TUNABLES`
//! that already sets `tcache_count` is left as it is: that is also the way
//! to opt out (`GLIBC_TUNABLES=glibc.malloc.tcache_count=7`, glibc's
//! default). A command that `sniff -- CMD` starts gets the environment
//! wsclose was started with, not the tunable. Under valgrind (its preload
//! library in `LD_PRELOAD`) wsclose does not execute itself again: the new
//! execution would run outside the tool unless it traces children.

use std::ffi::{OsStr, OsString};
use std::process::Command;

/// Freed blocks of one size a thread keeps for reuse (glibc's default: 7).
/// At most this many of each of glibc's 64 sizes up to 1 KiB: 34 MB per
/// thread in the worst case; a million short connections add about 1 MB.
pub const TCACHE_COUNT: u32 = 1024;

/// Set in the environment of the execution with the tunable: what
/// `GLIBC_TUNABLES` was before ("" when unset, "=" and the value when set),
/// so that the second execution does not start a third and the commands
/// wsclose starts get the environment as it was.
const WAS: &str = "WSCLOSE_GLIBC_TUNABLES_WAS";

/// What the environment's `GLIBC_TUNABLES` becomes: `was` with the cache's
/// size added, or `None` when `was` sets the size already.
fn tuned(was: Option<&OsStr>) -> Option<OsString> {
    let ours = format!("glibc.malloc.tcache_count={TCACHE_COUNT}");
    match was {
        None => Some(ours.into()),
        Some(v) if v.is_empty() => Some(ours.into()),
        Some(v) if v.to_string_lossy().contains("glibc.malloc.tcache_count") => None,
        Some(v) => {
            let mut s = v.to_os_string();
            s.push(":");
            s.push(ours);
            Some(s)
        }
    }
}

/// [`WAS`]'s value for `was`.
fn remembered(was: Option<&OsStr>) -> OsString {
    match was {
        None => OsString::new(),
        Some(v) => {
            let mut s = OsString::from("=");
            s.push(v);
            s
        }
    }
}

/// Executes wsclose again with the cache's size in `GLIBC_TUNABLES`, unless
/// this is that execution already, or the size is set. Returns only when it
/// did not (an exec that fails, say of a file deleted since it started,
/// changes nothing: the run goes on with glibc's default).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_tcache() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(WAS).is_some() || under_valgrind() {
        return;
    }
    let was = std::env::var_os("GLIBC_TUNABLES");
    let Some(tunables) = tuned(was.as_deref()) else {
        return;
    };
    let mut args = std::env::args_os();
    let (Some(arg0), Ok(exe)) = (args.next(), std::env::current_exe()) else {
        return;
    };
    // Returns only on failure.
    let _ = Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(WAS, remembered(was.as_deref()))
        .exec();
}

/// Whether valgrind runs this process (it preloads its `vgpreload_*.so`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn under_valgrind() -> bool {
    std::env::var_os("LD_PRELOAD").is_some_and(|v| v.to_string_lossy().contains("vgpreload"))
}

/// Elsewhere glibc's tunable does not apply.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_tcache() {}

/// Gives `cmd` the `GLIBC_TUNABLES` wsclose was started with.
pub fn restore_environment(cmd: &mut Command) {
    use std::os::unix::ffi::OsStrExt as _;
    let Some(was) = std::env::var_os(WAS) else {
        return;
    };
    cmd.env_remove(WAS);
    match was.as_bytes().strip_prefix(b"=") {
        Some(v) => cmd.env("GLIBC_TUNABLES", OsStr::from_bytes(v)),
        None => cmd.env_remove("GLIBC_TUNABLES"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_added_unless_set() {
        let ours = format!("glibc.malloc.tcache_count={TCACHE_COUNT}");
        assert_eq!(tuned(None), Some(ours.clone().into()));
        assert_eq!(tuned(Some(OsStr::new(""))), Some(ours.clone().into()));
        assert_eq!(
            tuned(Some(OsStr::new("glibc.malloc.mxfast=64"))),
            Some(format!("glibc.malloc.mxfast=64:{ours}").into())
        );
        assert_eq!(tuned(Some(OsStr::new("glibc.malloc.tcache_count=7"))), None);
        assert_eq!(remembered(None), OsString::new());
        assert_eq!(remembered(Some(OsStr::new(""))), OsString::from("="));
        assert_eq!(remembered(Some(OsStr::new("a=1"))), OsString::from("=a=1"));
    }
}
