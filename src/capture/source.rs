//! Where a reader's bytes come from: a read-only memory map of a regular
//! file, or a pipe (stdin, a FIFO) read through a buffer that grows only to
//! the largest record. Both show the unread bytes as one window, so the
//! format parsers see a slice either way and packets are never copied.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, OnceLock};

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;

use crate::error::Error;

/// Read size for pipes.
const CHUNK: usize = 256 << 10;

/// Bytes of a mapped file read before the pages behind them are handed
/// back: RSS stays bounded whatever the file's size. Pages are handed back
/// only once this far behind the read position: other threads still read
/// the payloads of the last batches there (see `shard`).
const RELEASE_EVERY: usize = 8 << 20;

/// Page size assumed when the system does not say (or says nonsense).
const FALLBACK_PAGE: usize = 4096;

/// The system's memory page size: pages are handed back whole, and
/// `madvise` refuses a start that is not on a page boundary (16 KiB pages
/// on Apple silicon, 64 KiB on some arm64 and ppc64 kernels).
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value; no pointers.
        #[allow(unsafe_code)]
        let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        page_size_from(raw)
    })
}

/// A page size from sysconf's answer: -1 (unknown) or anything that is not
/// a power of two falls back to 4 KiB.
fn page_size_from(raw: libc::c_long) -> usize {
    match usize::try_from(raw) {
        Ok(p) if p.is_power_of_two() => p,
        _ => FALLBACK_PAGE,
    }
}

/// The bytes of one input and the reader's place in them.
pub(super) struct Source {
    kind: Kind,
    /// Offset in the input of the window's first byte.
    offset: u64,
}

enum Kind {
    Map {
        /// Shared with the threads that analyse a sharded run's packets,
        /// which read their payloads here rather than from copies.
        map: Arc<Mmap>,
        /// The read position.
        pos: usize,
        /// Pages before this offset were handed back.
        released: usize,
        /// The system refused to hand pages back: no more tries.
        release_refused: bool,
    },
    Empty,
    Stream {
        reader: Box<dyn Read + Send>,
        buf: Vec<u8>,
        /// Valid bytes are `buf[start..end]`.
        start: usize,
        end: usize,
        eof: bool,
    },
}

/// Compressed captures read transparently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    fn of(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }
}

impl Source {
    /// Opens `name` (`-` for stdin): a regular file is mapped, anything else
    /// (a FIFO, a character device) is read as a stream.
    pub(super) fn open(name: &str) -> Result<Source, Error> {
        if name == "-" {
            return Source::decompressed(name, Box::new(io::stdin()));
        }
        let mut file = File::open(name).map_err(|e| Error::io(name, e))?;
        let meta = file.metadata().map_err(|e| Error::io(name, e))?;
        if meta.is_dir() {
            return Err(Error::input(name, "is a directory"));
        }
        if !meta.is_file() {
            return Source::decompressed(name, Box::new(file));
        }
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(|e| Error::io(name, e))?;
        if Compression::of(&magic[..n]).is_some() {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io(name, e))?;
            return Source::decompressed(name, Box::new(file));
        }
        if meta.len() == 0 {
            return Ok(Source {
                kind: Kind::Empty,
                offset: 0,
            });
        }
        // SAFETY: the map is read-only; a capture file that is truncated
        // while being read is the documented risk of reading files by map
        // (tcpdump rotating in place does not truncate).
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(name, e))?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Source {
            kind: Kind::Map {
                map: Arc::new(map),
                pos: 0,
                released: 0,
                release_refused: false,
            },
            offset: 0,
        })
    }

    /// A stream that may be gzip- or zstd-compressed (as tshark reads gzip),
    /// told by its first bytes: decompressed as it is read.
    fn decompressed(name: &str, reader: Box<dyn Read + Send>) -> Result<Source, Error> {
        let mut r = BufReader::with_capacity(CHUNK, reader);
        let head = r.fill_buf().map_err(|e| Error::io(name, e))?;
        Ok(match Compression::of(head) {
            None => Source::stream(Box::new(r)),
            Some(Compression::Gzip) => Source::stream(Box::new(MultiGzDecoder::new(r))),
            Some(Compression::Zstd) => {
                let d =
                    zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::io(name, e))?;
                Source::stream(Box::new(d))
            }
        })
    }

    /// Any byte stream (a pipe, or bytes in memory for tests and fuzzing).
    pub(super) fn stream(reader: Box<dyn Read + Send>) -> Source {
        Source {
            kind: Kind::Stream {
                reader,
                buf: vec![0; CHUNK],
                start: 0,
                end: 0,
                eof: false,
            },
            offset: 0,
        }
    }

    /// Offset in the input of the window's first byte.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The input's size, when known (a regular file).
    pub(super) fn size(&self) -> Option<u64> {
        match &self.kind {
            Kind::Map { map, .. } => Some(map.len() as u64),
            Kind::Empty => Some(0),
            Kind::Stream { .. } => None,
        }
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub(super) fn window(&self) -> &[u8] {
        match &self.kind {
            Kind::Map { map, pos, .. } => &map[(*pos).min(map.len())..],
            Kind::Empty => &[],
            Kind::Stream {
                buf, start, end, ..
            } => &buf[*start..*end],
        }
    }

    /// The whole mapped file, for threads that read payloads in it
    /// (`None` for a pipe or an empty file).
    pub(super) fn map(&self) -> Option<&Arc<Mmap>> {
        match &self.kind {
            Kind::Map { map, .. } => Some(map),
            _ => None,
        }
    }

    /// Whether a pipe may still deliver bytes beyond the window.
    pub(super) fn more_may_come(&self) -> bool {
        matches!(&self.kind, Kind::Stream { eof: false, .. })
    }

    /// Moves the window's start `n` bytes on.
    #[inline]
    pub(super) fn consume(&mut self, n: usize) {
        self.offset += n as u64;
        match &mut self.kind {
            Kind::Map {
                map,
                pos,
                released,
                release_refused,
            } => {
                *pos += n;
                if *pos - *released >= 2 * RELEASE_EVERY && !*release_refused {
                    release_behind(map, *pos - RELEASE_EVERY, released, release_refused);
                }
            }
            Kind::Empty => {}
            Kind::Stream { start, end, .. } => *start = (*start + n).min(*end),
        }
    }

    /// Makes at least `want` bytes available in the window, if the input has
    /// them (maps always have all they have).
    pub(super) fn fill(&mut self, want: usize) -> io::Result<()> {
        let Kind::Stream {
            reader,
            buf,
            start,
            end,
            eof,
        } = &mut self.kind
        else {
            return Ok(());
        };
        while *end - *start < want && !*eof {
            let missing = want - (*end - *start);
            if buf.len() - *end < missing.max(4096) {
                // Move the unread bytes to the front, grow if a record needs it.
                buf.copy_within(*start..*end, 0);
                *end -= *start;
                *start = 0;
                if buf.len() < want.max(CHUNK) {
                    buf.resize(want.max(CHUNK), 0);
                }
            }
            match reader.read(&mut buf[*end..]) {
                Ok(0) => *eof = true,
                Ok(n) => *end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// How far a map's pages were handed back (tests).
    #[cfg(test)]
    fn released(&self) -> usize {
        match &self.kind {
            Kind::Map { released, .. } => *released,
            _ => 0,
        }
    }
}

/// Hands back the pages of `map` wholly before `pos` and after
/// `released`, on the system's page boundaries. A system that refuses is
/// not asked again (reading goes on; only RSS is not bounded).
#[cold]
fn release_behind(map: &Mmap, pos: usize, released: &mut usize, refused: &mut bool) {
    let upto = pos & !(page_size() - 1);
    if upto <= *released {
        return;
    }
    // SAFETY: a read-only shared file mapping (MAP_SHARED): handing pages
    // back drops them from the process, not their contents. The pages lie
    // wholly before the read position; a thread analysing a sharded run's
    // batch may still read payloads there, and a read faults the page back
    // in from the file, with the same bytes.
    #[allow(unsafe_code)]
    let res = unsafe {
        map.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            *released,
            upto - *released,
        )
    };
    match res {
        Ok(()) => *released = upto,
        Err(_) => *refused = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_the_systems_with_a_fallback() {
        // SAFETY: as in page_size.
        #[allow(unsafe_code)]
        let sys = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        assert_eq!(page_size() as libc::c_long, sys);
        assert_eq!(page_size_from(-1), 4096);
        assert_eq!(page_size_from(0), 4096);
        assert_eq!(page_size_from(3000), 4096);
        assert_eq!(page_size_from(16384), 16384);
        assert_eq!(page_size_from(65536), 65536);
    }

    /// Pages behind the read position of a big mapped file are handed back
    /// on the system's page boundaries: a release that `madvise` refused
    /// (a start off the boundary on a 16 or 64 KiB page system) would stop
    /// all further releases and leave `released` at 0.
    #[test]
    fn mapped_pages_are_released_on_page_boundaries() {
        let path = std::env::temp_dir().join(format!("wsclose-release-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 4 * RELEASE_EVERY]).unwrap();
        let mut src = Source::open(path.to_str().unwrap()).unwrap();
        // Odd steps, so the read position is rarely on a boundary itself.
        let mut read = 0;
        while read + 1499 < 4 * RELEASE_EVERY {
            src.consume(1499);
            read += 1499;
        }
        let _ = std::fs::remove_file(&path);
        let released = src.released();
        // Up to RELEASE_EVERY behind the read position, every RELEASE_EVERY.
        assert!(released >= 2 * RELEASE_EVERY, "released {released}");
        assert!(released <= read - RELEASE_EVERY, "released {released}");
        assert_eq!(released % page_size(), 0, "released {released}");
        assert_eq!(src.offset(), read as u64);
    }
}
