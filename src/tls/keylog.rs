//! The NSS key log format, the one `SSLKEYLOGFILE` makes browsers, curl,
//! python (`SSLContext.keylog_filename`), node (`--tls-keylog`) and rustls
//! (`KeyLogFile`) write: one secret per line, `LABEL <client random> <secret>`
//! in hex, the client random naming the connection.
//!
//! A line counts when its label is one this layer uses, its client random
//! is 64 hex digits and its secret has the length the label calls for;
//! everything else (comments, blank lines, labels for secrets that are not
//! needed, such as `CLIENT_TRAFFIC_SECRET_1` or `EXPORTER_SECRET`, and lines
//! that do not parse) is skipped and counted, so a user can be told why a
//! key log gave nothing.
//!
//! A [`KeyLog`] is the one store of secrets of a run: files (`--keylog`,
//! repeatable), text from pcapng Decryption Secrets Blocks, and the part a
//! growing file gained since it was last read (`sniff --keylog`), where the
//! last line may still be half written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Length of a TLS client random, the key that names a connection.
pub const RANDOM_LEN: usize = 32;

/// Longest secret kept: TLS 1.2 master secrets and SHA-384 TLS 1.3 secrets.
pub const MAX_SECRET_LEN: usize = 48;

/// Longest line worth reading: label, 64 + 96 hex digits and two spaces
/// fit in 200 bytes; a longer unterminated tail is not a key line, and is
/// not kept growing while a file is followed.
const MAX_LINE: usize = 512;

/// Bytes of a key log read at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The labels this layer uses. TLS 1.3 secrets after a KeyUpdate are
/// derived from the `_0` ones (RFC 8446 7.2), so the `_1`, `_2` lines some
/// libraries write are not needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// TLS 1.2 (and earlier): the 48-byte master secret.
    ClientRandom,
    ClientHandshakeTrafficSecret,
    ServerHandshakeTrafficSecret,
    ClientTrafficSecret0,
    ServerTrafficSecret0,
}

impl Label {
    /// The label as the key log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::ClientRandom => "CLIENT_RANDOM",
            Label::ClientHandshakeTrafficSecret => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Label::ServerHandshakeTrafficSecret => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            Label::ClientTrafficSecret0 => "CLIENT_TRAFFIC_SECRET_0",
            Label::ServerTrafficSecret0 => "SERVER_TRAFFIC_SECRET_0",
        }
    }

    fn parse(s: &str) -> Option<Label> {
        [
            Label::ClientRandom,
            Label::ClientHandshakeTrafficSecret,
            Label::ServerHandshakeTrafficSecret,
            Label::ClientTrafficSecret0,
            Label::ServerTrafficSecret0,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }

    /// Whether a secret of `len` bytes fits the label: a master secret is
    /// always 48 bytes; a TLS 1.3 secret is as long as the suite's hash
    /// (SHA-256 or SHA-384).
    fn fits(self, len: usize) -> bool {
        match self {
            Label::ClientRandom => len == 48,
            _ => len == 32 || len == 48,
        }
    }
}

/// A secret of up to 48 bytes, kept inline so that a key log of many
/// connections costs no allocation per secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    len: u8,
    bytes: [u8; MAX_SECRET_LEN],
}

impl Secret {
    /// `None` when `b` is empty or longer than [`MAX_SECRET_LEN`].
    pub fn from_slice(b: &[u8]) -> Option<Secret> {
        if b.is_empty() || b.len() > MAX_SECRET_LEN {
            return None;
        }
        let mut bytes = [0; MAX_SECRET_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Some(Secret {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Secret {
    /// Secrets stay out of debug output (test failures, logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// One valid key log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub label: Label,
    pub client_random: [u8; RANDOM_LEN],
    pub secret: Secret,
}

impl Entry {
    /// The line as a key log writes it (lower-case hex), for tests and for
    /// the fuzz target's re-parse check.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {}",
            self.label.as_str(),
            hex::encode(self.client_random),
            hex::encode(self.secret.as_bytes())
        )
    }
}

/// What one line of a key log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    Entry(Entry),
    Blank,
    Comment,
    /// Three fields, the first not a label this layer uses.
    UnknownLabel,
    /// Anything else: wrong field count, bad hex, wrong lengths.
    Malformed,
}

/// Parses one line (without its line ending; a trailing `\r` is allowed).
/// Fields are separated by spaces or tabs, as NSS and Wireshark accept.
pub fn parse_line(line: &str) -> Line {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.len() > MAX_LINE {
        // Longer than any key line (and than what a followed file keeps).
        return Line::Malformed;
    }
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if line.starts_with('#') {
        return Line::Comment;
    }
    let mut fields = line.split_ascii_whitespace();
    let (Some(label), Some(random), Some(secret), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let Some(label) = Label::parse(label) else {
        return if is_hex(random) && is_hex(secret) {
            Line::UnknownLabel
        } else {
            Line::Malformed
        };
    };
    let mut client_random = [0; RANDOM_LEN];
    if hex::decode_to_slice(random, &mut client_random).is_err() {
        return Line::Malformed;
    }
    let n = secret.len() / 2;
    let mut buf = [0; MAX_SECRET_LEN];
    if secret.len() % 2 != 0
        || !label.fits(n)
        || hex::decode_to_slice(secret, &mut buf[..n]).is_err()
    {
        return Line::Malformed;
    }
    match Secret::from_slice(&buf[..n]) {
        Some(secret) => Line::Entry(Entry {
            label,
            client_random,
            secret,
        }),
        None => Line::Malformed,
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How many lines of each kind were read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyLogStats {
    pub valid: u64,
    pub blank: u64,
    pub comments: u64,
    pub unknown_label: u64,
    pub malformed: u64,
}

impl KeyLogStats {
    /// Lines that were not used (everything but `valid`).
    pub fn skipped(&self) -> u64 {
        self.blank + self.comments + self.unknown_label + self.malformed
    }

    fn count(&mut self, line: &Line) {
        match line {
            Line::Entry(_) => self.valid += 1,
            Line::Blank => self.blank += 1,
            Line::Comment => self.comments += 1,
            Line::UnknownLabel => self.unknown_label += 1,
            Line::Malformed => self.malformed += 1,
        }
    }

    fn add(&mut self, o: &KeyLogStats) {
        self.valid += o.valid;
        self.blank += o.blank;
        self.comments += o.comments;
        self.unknown_label += o.unknown_label;
        self.malformed += o.malformed;
    }
}

/// Every secret known for one client random.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    /// `CLIENT_RANDOM`: the TLS 1.2 master secret.
    pub master: Option<Secret>,
    pub client_handshake: Option<Secret>,
    pub server_handshake: Option<Secret>,
    pub client_traffic: Option<Secret>,
    pub server_traffic: Option<Secret>,
}

impl Secrets {
    /// The secret of one label.
    pub fn slot(&self, label: Label) -> &Option<Secret> {
        match label {
            Label::ClientRandom => &self.master,
            Label::ClientHandshakeTrafficSecret => &self.client_handshake,
            Label::ServerHandshakeTrafficSecret => &self.server_handshake,
            Label::ClientTrafficSecret0 => &self.client_traffic,
            Label::ServerTrafficSecret0 => &self.server_traffic,
        }
    }

    fn slot_mut(&mut self, label: Label) -> &mut Option<Secret> {
        match label {
            Label::ClientRandom => &mut self.master,
            Label::ClientHandshakeTrafficSecret => &mut self.client_handshake,
            Label::ServerHandshakeTrafficSecret => &mut self.server_handshake,
            Label::ClientTrafficSecret0 => &mut self.client_traffic,
            Label::ServerTrafficSecret0 => &mut self.server_traffic,
        }
    }
}

/// A key log that cannot be used: the run ends (exit 2) with this one line,
/// which names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyLogError {
    #[error("{path}: cannot read the key log: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no valid key log line ({skipped} lines skipped)")]
    NoValidLine { path: String, skipped: u64 },
}

impl KeyLogError {
    /// The file at fault, as given.
    pub fn path(&self) -> &str {
        match self {
            KeyLogError::Read { path, .. } | KeyLogError::NoValidLine { path, .. } => path,
        }
    }
}

impl From<KeyLogError> for crate::error::Error {
    /// Both kinds end the run like an unreadable capture: one line naming
    /// the file, exit 2.
    fn from(e: KeyLogError) -> Self {
        match e {
            KeyLogError::Read { path, source } => crate::error::Error::Io { path, source },
            e @ KeyLogError::NoValidLine { .. } => crate::error::Error::Input {
                path: e.path().to_string(),
                cause: "no valid key log line".to_string(),
            },
        }
    }
}

/// A file followed as it grows: where reading stopped, and the last line
/// when it had no line ending yet.
#[derive(Debug)]
struct Followed {
    path: PathBuf,
    offset: u64,
    /// The unterminated tail, kept to be completed by the next read.
    tail: Vec<u8>,
    /// The tail is longer than any key line: skip to the next line end.
    overlong: bool,
    /// The tail parsed as a valid line, taken provisionally.
    provisional: Option<Provisional>,
}

/// A last line without line ending that was taken: the slot it set and
/// what the slot held before.
#[derive(Debug, Clone, Copy)]
struct Provisional {
    random: [u8; RANDOM_LEN],
    label: Label,
    before: Option<Secret>,
}

/// The secrets of a run, by client random.
#[derive(Debug, Default)]
pub struct KeyLog {
    map: HashMap<[u8; RANDOM_LEN], Secrets>,
    stats: KeyLogStats,
    /// Bumped whenever a secret is added or changed, so that a connection
    /// waiting for keys looks them up again only when something is new.
    generation: u64,
    files: Vec<Followed>,
}

impl KeyLog {
    pub fn new() -> KeyLog {
        KeyLog::default()
    }

    /// Reads a key log file (`--keylog FILE`) and keeps following it for
    /// [`KeyLog::reload`]. An unreadable file, or one without a single
    /// valid line, is an error naming the file.
    pub fn load(&mut self, path: &Path) -> Result<KeyLogStats, KeyLogError> {
        let stats = self.follow(path)?;
        if stats.valid == 0 {
            return Err(KeyLogError::NoValidLine {
                path: path.display().to_string(),
                skipped: stats.skipped(),
            });
        }
        Ok(stats)
    }

    /// Like [`KeyLog::load`], but a file with no valid line yet is fine:
    /// for `sniff --keylog`, where the program writing it may not have
    /// made a connection yet.
    pub fn follow(&mut self, path: &Path) -> Result<KeyLogStats, KeyLogError> {
        self.files.push(Followed {
            path: path.to_path_buf(),
            offset: 0,
            tail: Vec::new(),
            overlong: false,
            provisional: None,
        });
        let i = self.files.len() - 1;
        let r = self.read_appended(i);
        if r.is_err() {
            self.files.pop();
        }
        r
    }

    /// Reads what every followed file gained since it was last read; a file
    /// that shrank was rewritten and is read again from its start. Returns
    /// the lines added.
    pub fn reload(&mut self) -> Result<KeyLogStats, KeyLogError> {
        let mut total = KeyLogStats::default();
        for i in 0..self.files.len() {
            total.add(&self.read_appended(i)?);
        }
        Ok(total)
    }

    /// Adds key log text that is complete (a pcapng Decryption Secrets
    /// Block, a test): its last line counts even without a line ending.
    pub fn add_text(&mut self, text: &str) -> KeyLogStats {
        let mut stats = KeyLogStats::default();
        for line in text.lines() {
            self.add_line(parse_line(line), &mut stats);
        }
        self.stats.add(&stats);
        stats
    }

    /// The secrets known for a connection.
    pub fn get(&self, client_random: &[u8; RANDOM_LEN]) -> Option<&Secrets> {
        self.map.get(client_random)
    }

    /// Changes whenever secrets are added.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Connections (client randoms) with at least one secret.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Lines read so far, all sources together.
    pub fn stats(&self) -> KeyLogStats {
        self.stats
    }

    fn add_line(&mut self, line: Line, stats: &mut KeyLogStats) {
        stats.count(&line);
        if let Line::Entry(e) = line {
            let slot = self
                .map
                .entry(e.client_random)
                .or_default()
                .slot_mut(e.label);
            if *slot != Some(e.secret) {
                *slot = Some(e.secret);
                self.generation += 1;
            }
        }
    }

    /// Reads file `i` from its offset to its end and takes in the complete
    /// lines; the unterminated rest waits for the next read. The file is
    /// read [`READ_CHUNK`] bytes at a time: a key log's size costs its
    /// entries, never a copy of its text.
    fn read_appended(&mut self, i: usize) -> Result<KeyLogStats, KeyLogError> {
        let mut stats = KeyLogStats::default();
        let mut file = self.open_new_bytes(i)?;
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut any = false;
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(i, e)),
            };
            if !any {
                // The provisional last line is read again, with what
                // follows it.
                self.undo_provisional(i);
                any = true;
            }
            self.files[i].offset += n as u64;
            self.take_lines(i, &chunk[..n], &mut stats);
        }
        if !any {
            return Ok(stats);
        }
        let f = &self.files[i];
        // A last line without its line ending is taken provisionally: a
        // file whose writer has finished may lack the final newline. It is
        // undone and read again when more comes; meanwhile a line still
        // being written gives at worst a shorter secret, which the suite's
        // hash length rejects when it is used.
        if let Line::Entry(e) = parse_bytes(&f.tail) {
            let before = self
                .map
                .get(&e.client_random)
                .and_then(|s| *s.slot(e.label));
            self.add_line(Line::Entry(e), &mut stats);
            self.files[i].provisional = Some(Provisional {
                random: e.client_random,
                label: e.label,
                before,
            });
        }
        self.stats.add(&stats);
        Ok(stats)
    }

    /// The complete lines of `data` (read from file `i`), joined to the
    /// tail a previous read left; the unterminated rest becomes the tail.
    fn take_lines(&mut self, i: usize, data: &[u8], stats: &mut KeyLogStats) {
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let f = &mut self.files[i];
            let line = if std::mem::take(&mut f.overlong) {
                Line::Malformed
            } else {
                f.tail.extend_from_slice(&rest[..nl]);
                parse_bytes(&std::mem::take(&mut f.tail))
            };
            self.add_line(line, stats);
            rest = &rest[nl + 1..];
        }
        let f = &mut self.files[i];
        if !f.overlong {
            f.tail.extend_from_slice(rest);
            // (+ 1: the tail may hold the line's `\r` already.)
            if f.tail.len() > MAX_LINE + 1 {
                f.tail = Vec::new();
                f.overlong = true;
            }
        }
    }

    fn read_error(&self, i: usize, source: io::Error) -> KeyLogError {
        KeyLogError::Read {
            path: self.files[i].path.display().to_string(),
            source,
        }
    }

    /// File `i` positioned at the bytes it gained since it was last read,
    /// up to its present end; a file that shrank was rewritten and is read
    /// from its start.
    fn open_new_bytes(&mut self, i: usize) -> Result<io::Take<File>, KeyLogError> {
        let mut file = File::open(&self.files[i].path).map_err(|e| self.read_error(i, e))?;
        let len = file.metadata().map_err(|e| self.read_error(i, e))?.len();
        if len < self.files[i].offset {
            self.undo_provisional(i);
            let f = &mut self.files[i];
            f.offset = 0;
            f.tail.clear();
            f.overlong = false;
        }
        let offset = self.files[i].offset;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.read_error(i, e))?;
        Ok(file.take(len - offset))
    }

    /// Takes back the provisional last line of file `i`: its slot gets
    /// what it held before, and it no longer counts as a valid line.
    fn undo_provisional(&mut self, i: usize) {
        let Some(p) = self.files[i].provisional.take() else {
            return;
        };
        self.stats.valid = self.stats.valid.saturating_sub(1);
        let Some(secrets) = self.map.get_mut(&p.random) else {
            return;
        };
        let slot = secrets.slot_mut(p.label);
        if *slot != p.before {
            *slot = p.before;
            self.generation += 1;
        }
        if *secrets == Secrets::default() {
            self.map.remove(&p.random);
        }
    }
}

fn parse_bytes(b: &[u8]) -> Line {
    match std::str::from_utf8(b) {
        Ok(s) => parse_line(s),
        Err(_) => Line::Malformed,
    }
}
