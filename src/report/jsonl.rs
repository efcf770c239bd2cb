//! `--jsonl`: each connection as one JSON line (the contract's connection
//! object) the moment it is decided, for `tail -f`, jq and log shippers,
//! during a live capture or while a big capture is read.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::analyzer::Decided;
use crate::error::Error;

/// `--jsonl`: one line per connection, written the moment it is decided.
pub(crate) struct JsonLines {
    /// None without `--jsonl`, or once its reader went away.
    out: Option<Box<dyn Write>>,
    /// The path, for messages (`stdout` for `-`).
    path: String,
    /// Set when the reader went away: the capture stops.
    stop: Arc<AtomicBool>,
    gone: bool,
}

impl JsonLines {
    pub(crate) fn open(path: Option<&str>, stop: Arc<AtomicBool>) -> Result<JsonLines, Error> {
        let out: Option<Box<dyn Write>> = match path {
            None => None,
            Some("-") => Some(Box::new(io::stdout())),
            Some(p) => Some(Box::new(io::BufWriter::new(
                File::create(p).map_err(|e| Error::io(p, e))?,
            ))),
        };
        let path = match path {
            Some("-") | None => "stdout".to_string(),
            Some(p) => p.to_string(),
        };
        Ok(JsonLines {
            out,
            path,
            stop,
            gone: false,
        })
    }

    /// The reader of the lines went away (`--jsonl - | head`).
    pub(crate) fn reader_gone(&self) -> bool {
        self.gone
    }

    pub(crate) fn write(&mut self, decided: Vec<Decided>) -> Result<(), Error> {
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        let mut put = || -> io::Result<()> {
            for c in &decided {
                // One write per line, so a reader (`tail -f`, jq) never
                // sees half a line.
                let mut line = serde_json::to_vec(c)?;
                line.push(b'\n');
                w.write_all(&line)?;
            }
            if !decided.is_empty() {
                w.flush()?;
            }
            Ok(())
        };
        match put() {
            // `--jsonl - | head`: the reader is gone; stop capturing and
            // finish quietly, like a closed stdout does for `analyze`.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.out = None;
                self.gone = true;
                self.stop.store(true, Ordering::Relaxed);
                Ok(())
            }
            r => r.map_err(|e| Error::io(self.path.as_str(), e)),
        }
    }
}
