//! The one error type of the program. Every failure that ends a run is one
//! of these; `main` alone prints it (`wsclose: ...`, one line) and picks the
//! exit status, so the contract's "exit 2 with a one-line message naming
//! the file" holds for every path without each caller repeating it.

use std::io;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input that cannot be read as a capture: empty, not a capture,
    /// only unsupported link types. Names the input first, so the message
    /// says which of several files is at fault.
    #[error("{path}: {cause}")]
    Input { path: String, cause: String },
    /// Reading or writing a file (or stdin, stdout) failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A command line that parses but cannot be carried out (a value out of
    /// range, options that contradict each other, an unknown connection).
    #[error("{0}")]
    Usage(String),
    /// A command line that does not parse: clap prints its own message,
    /// with the usage line, to keep the help it gives.
    #[error("{0}")]
    Cli(clap::Error),
    /// libpcap refused a capture device, its filter or its statistics.
    #[error("{device}: {cause}")]
    Device { device: String, cause: String },
    /// `sniff -- CMD`: the command could not be started.
    #[error("cannot run {program}: {source}")]
    Command {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The Ctrl-C and SIGTERM handlers could not be installed.
    #[error("cannot catch Ctrl-C and SIGTERM: {0}")]
    Signals(#[source] io::Error),
}

impl Error {
    pub(crate) fn input(path: &str, cause: impl Into<String>) -> Error {
        Error::Input {
            path: path.to_string(),
            cause: cause.into(),
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn device(device: &str, cause: impl Into<String>) -> Error {
        Error::Device {
            device: device.to_string(),
            cause: cause.into(),
        }
    }

    /// The exit status for this error: 2, except for a command that could
    /// not be started (127 when not found, 126 otherwise, as `env`, `timeout`
    /// and the shells say).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Command { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            Error::Command { .. } => 126,
            _ => 2,
        }
    }

    /// The reader of our output went away (`wsclose ... | head`): the run
    /// ends quietly with success, as other command-line tools do.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl From<clap::Error> for Error {
    /// A value clap rejected (`--max-flows 0`, `--close-timeout -1`) is a
    /// usage error of one line naming the flag, like every other error;
    /// the rest (unknown options, missing arguments) keep clap's message
    /// with its usage line.
    fn from(e: clap::Error) -> Error {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                let text = e.to_string();
                let line = text.lines().next().unwrap_or_default();
                Error::Usage(line.strip_prefix("error: ").unwrap_or(line).to_string())
            }
            _ => Error::Cli(e),
        }
    }
}
