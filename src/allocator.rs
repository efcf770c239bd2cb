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
//! short connections on one thread, 3 to 12 % on small packets, the rest
//! within noise; peak memory from 1 MB less to 2 MB more (docs/profile.md,
//! "glibc's thread cache").
//!
//! The cache's size is a tunable read once, from `GLIBC_TUNABLES`, before
//! `main` runs, and no call changes it later. So wsclose executes itself
//! again (`std::env::current_exe`, so that the process keeps its name for
//! `ps` and `pgrep`) with the tunable added, before it has read anything.
//! A `GLIBC_TUNABLES` that already sets `tcache_count` is left as it is:
//! that is also the way to opt out
//! (`GLIBC_TUNABLES=glibc.malloc.tcache_count=7`, glibc's default). A
//! command that `sniff -- CMD` starts gets the environment wsclose was
//! started with, not the tunable (std passes a command's environment on
//! rebuilt: sorted, a name given twice once). Not done:
//! under valgrind (its preload library in `LD_PRELOAD`: the new execution
//! would run outside the tool unless it traces children); in glibc's
//! secure mode (a setuid or setcap'd binary: glibc then ignores the
//! tunable); when wsclose was started through the dynamic loader
//! (`ld-linux-x86-64.so.2 wsclose ...`: `current_exe` is the loader).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;

/// Freed blocks of one size a thread keeps for reuse (glibc's default: 7;
/// the most glibc 2.30 and later take: 65,535). At most this many of each
/// of glibc's 64 sizes up to 1 KiB: 34 MB per thread in the worst case;
/// measured, peak memory moved by 1 MB either way.
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
    let Some(was) = was.filter(|v| !v.is_empty()) else {
        return Some(ours.into());
    };
    if memchr::memmem::find(was.as_bytes(), b"glibc.malloc.tcache_count").is_some() {
        return None;
    }
    let mut s = was.to_os_string();
    s.push(":");
    s.push(ours);
    Some(s)
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

/// What a started command's `GLIBC_TUNABLES` must be, from [`WAS`]'s value
/// `marker`: `None` when there is no marker (wsclose did not execute
/// itself again: the environment is as given), else the value to set, or
/// `Some(None)` to remove it.
fn restored(marker: Option<&OsStr>) -> Option<Option<&OsStr>> {
    let m = marker?;
    Some(m.as_bytes().strip_prefix(b"=").map(OsStr::from_bytes))
}

/// Executes wsclose again with the cache's size in `GLIBC_TUNABLES`, unless
/// this is that execution already, the size is set, or it would not work
/// (see the module's comment). Returns only when it did not: an exec that
/// fails (say of a file deleted since it started) leaves the run going on
/// with glibc's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_tcache() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(WAS).is_some() || under_valgrind() || secure_mode() {
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
    if exe
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"ld-") || n.as_bytes().starts_with(b"ld.so"))
    {
        return;
    }
    // Returns only on failure.
    let _ = Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(WAS, remembered(was.as_deref()))
        .exec();
    // std set SIGPIPE back to its default for the new program; wsclose
    // ignores it (a closed pipe is an error it handles: `main.rs`).
    // SAFETY: signal(2) with a constant disposition, before any thread.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Whether valgrind runs this process (it preloads its `vgpreload_*.so`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn under_valgrind() -> bool {
    std::env::var_os("LD_PRELOAD")
        .is_some_and(|v| memchr::memmem::find(v.as_bytes(), b"vgpreload").is_some())
}

/// Whether glibc runs this process in secure mode (setuid, setgid, file
/// capabilities), where it ignores `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn secure_mode() -> bool {
    // SAFETY: getauxval(3) reads the process's auxiliary vector; an
    // unknown type gives 0.
    #[allow(unsafe_code)]
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) };
    secure != 0
}

/// Elsewhere glibc's tunable does not apply.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_tcache() {}

/// Gives `cmd` the `GLIBC_TUNABLES` wsclose was started with.
pub fn restore_environment(cmd: &mut Command) {
    restore_from(cmd, std::env::var_os(WAS).as_deref());
}

/// [`restore_environment`] with [`WAS`]'s value `marker`.
fn restore_from(cmd: &mut Command, marker: Option<&OsStr>) {
    let Some(value) = restored(marker) else {
        return;
    };
    cmd.env_remove(WAS);
    match value {
        Some(v) => cmd.env("GLIBC_TUNABLES", v),
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
        let odd = OsStr::from_bytes(b"glibc.x=\xff");
        let mut want = odd.to_os_string();
        want.push(format!(":{ours}"));
        assert_eq!(tuned(Some(odd)), Some(want));
    }

    /// The marker round-trips every value, set or unset, empty or not
    /// UTF-8, into what the started command gets.
    #[test]
    fn the_marker_gives_back_what_was_given() {
        assert_eq!(restored(None), None);
        for was in [None, Some(""), Some("a=1:b=2")] {
            let was = was.map(OsStr::new);
            let marker = remembered(was);
            assert_eq!(restored(Some(&marker)), Some(was), "{was:?}");
        }
        let raw = OsStr::from_bytes(b"\xfe\xff");
        let marker = remembered(Some(raw));
        assert_eq!(restored(Some(&marker)), Some(Some(raw)));
        // What a started command is given, for each marker.
        let given = |marker: Option<&OsStr>| {
            let mut cmd = Command::new("true");
            restore_from(&mut cmd, marker);
            let mut set: Vec<(OsString, Option<OsString>)> = cmd
                .get_envs()
                .map(|(k, v)| (k.to_os_string(), v.map(OsStr::to_os_string)))
                .collect();
            set.sort();
            set
        };
        assert_eq!(given(None), []);
        let (name, was) = (OsString::from("GLIBC_TUNABLES"), OsString::from(WAS));
        assert_eq!(
            given(Some(OsStr::new(""))),
            [(name.clone(), None), (was.clone(), None)]
        );
        assert_eq!(
            given(Some(OsStr::new("=a=1"))),
            [(name, Some("a=1".into())), (was, None)]
        );
    }
}
