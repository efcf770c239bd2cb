//! wsclose runs with glibc's thread cache enlarged (`src/allocator.rs`):
//! it executes itself again with `glibc.malloc.tcache_count` added to
//! `GLIBC_TUNABLES`, keeps a size the user set, and hands the commands it
//! starts (`sniff -- CMD`) the environment it was given.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[macro_use]
mod root;

const OURS: &str = "glibc.malloc.tcache_count=1024";

/// The environment of process `pid`, as `NAME=value` lines.
fn environ(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
        .unwrap_or_default()
}

fn var<'a>(env: &'a str, name: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

/// `GLIBC_TUNABLES` as the process was given it. glibc 2.36 cuts the
/// string at each `:` in place as it reads it, so the tunables after the
/// first follow it in `/proc/PID/environ` as lines of their own.
fn tunables(env: &str) -> Option<String> {
    let mut lines = env
        .lines()
        .skip_while(|l| !l.starts_with("GLIBC_TUNABLES="));
    let mut s = lines.next()?.strip_prefix("GLIBC_TUNABLES=")?.to_string();
    for more in lines.take_while(|l| l.starts_with("glibc.")) {
        s.push(':');
        s.push_str(more);
    }
    Some(s)
}

/// `wsclose analyze -` waiting for its capture on stdin runs with the
/// tunable, the user's own tunables kept before it; the analysis is the
/// same as ever.
#[test]
fn analyze_runs_with_the_cache_enlarged() {
    for (given, want, marker) in [
        (None, OURS.to_string(), ""),
        (
            Some("glibc.malloc.mxfast=64"),
            format!("glibc.malloc.mxfast=64:{OURS}"),
            "=glibc.malloc.mxfast=64",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsclose"));
        cmd.args(["analyze", "-", "--json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env_remove("WSCLOSE_GLIBC_TUNABLES_WAS");
        match given {
            Some(v) => cmd.env("GLIBC_TUNABLES", v),
            None => cmd.env_remove("GLIBC_TUNABLES"),
        };
        let mut child = cmd.spawn().expect("run wsclose");
        // The second execution's environment replaces the first's.
        let start = Instant::now();
        let env = loop {
            let env = environ(child.id());
            if var(&env, "WSCLOSE_GLIBC_TUNABLES_WAS").is_some() {
                break env;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no second execution: {env}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(tunables(&env).as_deref(), Some(want.as_str()), "{given:?}");
        let was = var(&env, "WSCLOSE_GLIBC_TUNABLES_WAS");
        assert_eq!(was, Some(marker), "{given:?}");
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/many-connections.pcap");
        let bytes = std::fs::read(sample).expect("sample");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&bytes).expect("write the capture");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{given:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
        assert_eq!(v["totals"]["connections"], 17, "{given:?}");
    }
}

/// `sniff -- sh -c ...`: the shell reads wsclose's environment (its parent)
/// and prints its own. A size the user set is kept and nothing is added;
/// the command sees `GLIBC_TUNABLES` as the user gave it, or not at all.
#[test]
fn the_command_gets_the_environment_as_given() {
    require_root!();
    let script = "tr '\\0' '\\n' < /proc/$PPID/environ | grep -e '^GLIBC_TUNABLES=' -e '^glibc[.]'; \
                  echo \"child=${GLIBC_TUNABLES-unset} ${WSCLOSE_GLIBC_TUNABLES_WAS-none}\"";
    for (given, parent, child) in [
        (None, OURS.to_string(), "child=unset none"),
        (
            Some("glibc.malloc.mxfast=64"),
            format!("glibc.malloc.mxfast=64:{OURS}"),
            "child=glibc.malloc.mxfast=64 none",
        ),
        (
            Some("glibc.malloc.tcache_count=7"),
            "glibc.malloc.tcache_count=7".to_string(),
            "child=glibc.malloc.tcache_count=7 none",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsclose"));
        cmd.args([
            "sniff",
            "-i",
            "lo",
            "-f",
            "tcp port 9",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .env_remove("WSCLOSE_GLIBC_TUNABLES_WAS");
        match given {
            Some(v) => cmd.env("GLIBC_TUNABLES", v),
            None => cmd.env_remove("GLIBC_TUNABLES"),
        };
        let out = cmd.output().expect("run wsclose sniff");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{given:?}: {stdout}");
        // wsclose's own, then the command's (then wsclose's report).
        assert_eq!(tunables(&stdout), Some(parent), "{given:?}: {stdout}");
        let seen = stdout.lines().find(|l| l.starts_with("child="));
        assert_eq!(seen, Some(child), "{given:?}: {stdout}");
    }
}
