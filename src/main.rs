use std::process::ExitCode;

use wsclose::error::Error;

/// The one place an error is printed and the exit status chosen: a run
/// that fails prints one line, `wsclose: ...`, and exits 2 (126 or 127 for
/// a `sniff -- CMD` that cannot be started).
fn main() -> ExitCode {
    // Before anything is read: see `allocator` (returns in the new run).
    wsclose::allocator::reexec_with_tcache();
    match wsclose::cli::run() {
        Ok(code) => code,
        // `wsclose ... | head`: the reader went away, nothing more to say.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        // clap's own message, with the usage line and its `error:` prefix.
        Err(Error::Cli(e)) => {
            let _ = e.print();
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("wsclose: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
