//! The README's examples, run exactly as written.
//!
//! Every fenced block of the README marked `console` is one example: its
//! first line is the command after `$ ` (a `wsclose` command line, optionally
//! piped into `head -n N`), the rest is what the command prints. The test
//! runs the command from the repository's root with the built `wsclose` first
//! on PATH and compares the output line by line.

use std::path::Path;
use std::process::Command;

/// One example: the command and the output the README shows.
struct Example {
    line: usize,
    command: String,
    output: String,
}

fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        if l.trim_end() != "```console" {
            continue;
        }
        let mut body: Vec<&str> = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.trim_end() == "```" {
                break;
            }
            body.push(l);
        }
        let Some(cmd) = body.first().and_then(|c| c.strip_prefix("$ ")) else {
            panic!("README line {}: a console block starts with `$ `", i + 1);
        };
        out.push(Example {
            line: i + 1,
            command: cmd.to_string(),
            output: body[1..].iter().map(|l| format!("{l}\n")).collect(),
        });
    }
    out
}

#[test]
fn readme_examples_print_what_the_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let examples = examples(&readme);
    assert!(
        examples.len() >= 2,
        "the README should show its main examples"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wsclose"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    for ex in examples {
        assert!(
            ex.command.starts_with("wsclose "),
            "README line {}: examples run wsclose",
            ex.line
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&ex.command)
            .current_dir(root)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS")
            .output()
            .expect("run the example");
        let got = String::from_utf8_lossy(&out.stdout);
        if got != ex.output {
            let diff: Vec<String> = got
                .lines()
                .zip(ex.output.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("  line {}:\n    got:    {a}\n    README: {b}", i + 1))
                .collect();
            panic!(
                "README line {}: `{}` printed something else ({} lines vs {} in the README):\n{}",
                ex.line,
                ex.command,
                got.lines().count(),
                ex.output.lines().count(),
                diff.join("\n")
            );
        }
    }
}
