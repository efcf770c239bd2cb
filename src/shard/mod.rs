//! A sharded run (`--threads N`): N analyzers, one on the reading thread
//! and N - 1 on threads of their own. The reader decodes each packet and
//! finds its flow's share (by a symmetric hash of its 4-tuple: both
//! directions go to the same analyzer); a packet of its own share it
//! analyses at once, of another it copies the decoded TCP header and the
//! payload into a batch for the thread that owns the flow (decoded once,
//! the headers' bytes left behind). Each analyzer hands back the
//! connections it decides. The reader's share is smaller by what reading
//! costs, so that the threads finish together.
//!
//! What one analyzer would do across flows happens at the same points, so
//! that the output is the same as with one thread: connections are ordered
//! by the capture-wide number of their first TCP segment; ended flows are
//! purged every [`PURGE_EVERY`] segments of the capture, with that
//! segment's time, in every worker; secrets read from the capture (pcapng)
//! are added only once every packet before them is analysed; the capture's
//! last time ends every worker; the peaks of flows and buffered bytes are
//! replayed in the capture's order ([`peaks`]). The caps on flows and
//! buffered bytes are shared out among the workers: the README says what
//! differs when a cap is reached.

mod peaks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread;

use memmap2::Mmap;

use crate::Ts;
use crate::analyzer::{Analyzer, AnalyzerStats};
use crate::capture::Merged;
use crate::close::{ConnectionReport, Settings};
use crate::decode::{self, Endpoint, TcpSegment};
use crate::error::Error;
use crate::reassembly::{Limits, PURGE_EVERY, symmetric_hash};
use crate::report::Collector;
use peaks::{Change, Clock, Peaks};

/// Packets in a batch, at most.
const BATCH_PACKETS: usize = 2048;
/// Bytes of packets in a batch, at most (about; one packet may pass it).
const BATCH_BYTES: usize = 512 << 10;
/// Segments between two hand-overs of the reader's own connections.
const COLLECT_EVERY: u64 = 1024;

/// Batches on their way to a worker: enough to keep it busy while the
/// reader fills the next, few enough to bound memory.
const QUEUE: usize = 4;

/// One entry of a batch.
#[derive(Clone, Copy)]
enum Item {
    /// A TCP segment as the reader decoded it, without its payload,
    /// which is `[start..end]` of the batch's `data` or, with `input`, of
    /// that input's map (the worker's `maps`); `index` its number among
    /// the capture's TCP segments.
    Packet {
        ts: Ts,
        seg: TcpSegment<'static>,
        start: usize,
        end: usize,
        input: Option<u16>,
        index: u64,
    },
    /// Release the flows that ended more than the linger time before the
    /// `index`th segment, at its time.
    Purge { ts: Ts, index: u64 },
}

#[derive(Default)]
struct Batch {
    /// Payloads copied (from a pipe).
    data: Vec<u8>,
    /// Payload bytes of the batch left in a map: they count towards
    /// [`BATCH_BYTES`] too, so that a batch spans little of the file and
    /// the pages its payloads lie in are not yet handed back (see
    /// `capture::source`).
    mapped: usize,
    items: Vec<Item>,
    /// Every packet of the worker's flows up to here is in this batch or
    /// an earlier one.
    known_to: Clock,
    /// Connections the worker decided earlier, taken in by the reader:
    /// the worker drops them. Freed by the reader, their memory would go
    /// back to the worker's allocator arena under its lock, and every
    /// allocation of the worker waited for it (a tenth of the samples on a
    /// million short connections were that lock's futex).
    spent: Vec<Vec<ConnectionReport>>,
}

impl Batch {
    fn full(&self) -> bool {
        self.items.len() >= BATCH_PACKETS || self.data.len() + self.mapped >= BATCH_BYTES
    }
}

enum ToWorker {
    Batch(Batch),
    /// Answer once everything before is analysed.
    Sync,
    /// The capture is over; its last packet's time.
    End(Option<Ts>),
}

enum FromWorker {
    /// A batch analysed: the connections it decided, and the changes to the
    /// worker's flows and buffered bytes.
    Batch {
        worker: usize,
        reports: Vec<ConnectionReport>,
        changes: Vec<Change>,
        known_to: Clock,
        capped: bool,
    },
    Synced,
    Done(Vec<ConnectionReport>, AnalyzerStats, bool),
}

/// A worker's analyzer, and what it held after its last step.
struct Worker {
    id: usize,
    analyzer: Analyzer,
    /// Every input's map (`None` for a pipe), where the payloads of a
    /// mapped file are read in place.
    maps: Vec<Option<Arc<Mmap>>>,
    flows: u64,
    buffered: u64,
    changes: Vec<Change>,
}

impl Worker {
    /// Notes the step at `at` if it changed what the worker holds.
    fn step(&mut self, at: Clock, packet: bool) {
        let (flows, buffered, step) = self.analyzer.table_state();
        let (flows, buffered) = (flows as u64, buffered as u64);
        let settled = if packet {
            step.settled as u64
        } else {
            buffered
        };
        let inserted = packet && step.inserted;
        if inserted || settled != self.buffered || buffered != self.buffered || flows != self.flows
        {
            self.changes.push(Change {
                at,
                settled,
                inserted: inserted.then_some(flows),
                flows,
                buffered,
            });
            (self.flows, self.buffered) = (flows, buffered);
        }
    }

    fn analyse(&mut self, b: &Batch) {
        for item in &b.items {
            match *item {
                Item::Packet {
                    ts,
                    seg,
                    start,
                    end,
                    input,
                    index,
                } => {
                    let bytes: &[u8] = match input {
                        None => &b.data,
                        Some(i) => match self.maps.get(usize::from(i)) {
                            Some(Some(map)) => map,
                            _ => &[],
                        },
                    };
                    let seg = TcpSegment {
                        payload: bytes.get(start..end).unwrap_or(&[]),
                        ..seg
                    };
                    self.analyzer.packet_numbered(ts, &seg, index);
                    self.step(2 * index + 1, true);
                }
                Item::Purge { ts, index } => {
                    self.analyzer.purge(ts);
                    self.step(2 * index, false);
                }
            }
        }
    }
}

/// The caps of one of `n` workers: the run's, shared out.
fn worker_limits(limits: Limits, n: usize) -> Limits {
    Limits {
        max_flows: (limits.max_flows / n).max(1),
        max_buffered_total: limits.max_buffered_total / n,
        ..limits
    }
}

/// Flows are dealt out in this many buckets.
const BUCKETS: usize = 64;

/// What reading a packet for another thread (decoding, copying, handing
/// over) costs against analysing it; the reading thread also takes the
/// page faults of the capture's first touch, and files every decided
/// connection. With 2 threads on 2 cores, in paired runs on the generated
/// captures, 0.5 and 0.6 gave the shortest runs, 0.4 runs up to 10 %
/// longer (and 0.2 and 0.3 longer still before the workers dropped their
/// own reports; 0: 10 to 60 % longer).
const READ_COST: f64 = 0.5;

/// The buckets the reading thread analyses itself, of [`BUCKETS`], with
/// `threads` in all: its share less what reading costs it.
fn reader_buckets(threads: usize) -> usize {
    let n = threads as f64;
    let share = ((1.0 - (n - 1.0) * READ_COST) / n).max(0.0);
    (share * BUCKETS as f64).round() as usize
}

/// The bucket of a segment's flow: the same for both directions, and the
/// same from run to run.
fn bucket_of(src: &Endpoint, dst: &Endpoint) -> usize {
    // The high bits: the low ones of a multiplicative hash are the weakest.
    ((symmetric_hash(src, dst) >> 32) as usize) % BUCKETS
}

/// One worker: analyses the batches it is given, hands back what it
/// decides, and the empty batches for reuse.
fn work(mut w: Worker, rx: Receiver<ToWorker>, out: Sender<FromWorker>, empty: Sender<Batch>) {
    for msg in rx {
        match msg {
            ToWorker::Batch(mut b) => {
                for mut spent in b.spent.drain(..) {
                    spent.clear();
                    let reports = w.analyzer.reports_mut();
                    if reports.capacity() == 0 {
                        *reports = spent;
                    }
                }
                w.analyse(&b);
                let done = FromWorker::Batch {
                    worker: w.id,
                    reports: std::mem::take(w.analyzer.reports_mut()),
                    changes: std::mem::take(&mut w.changes),
                    known_to: b.known_to,
                    capped: w.analyzer.capped(),
                };
                if out.send(done).is_err() {
                    return;
                }
                b.data.clear();
                b.items.clear();
                b.mapped = 0;
                let _ = empty.send(b);
            }
            ToWorker::Sync => {
                if out.send(FromWorker::Synced).is_err() {
                    return;
                }
            }
            ToWorker::End(ts) => {
                if let Some(ts) = ts {
                    w.analyzer.note_time(ts);
                }
                let capped = w.analyzer.capped();
                let (reports, stats, _) = w.analyzer.finish_live();
                let _ = out.send(FromWorker::Done(reports, stats, capped));
                return;
            }
        }
    }
}

/// The reader's side of a sharded run.
struct Reader<'a> {
    /// The analyzer of the reader's own share (buckets below `own`).
    inline: Worker,
    own: usize,
    /// The worker of each bucket from `own` on (a division a packet
    /// otherwise).
    worker_of: Vec<usize>,
    to: Vec<SyncSender<ToWorker>>,
    filling: Vec<Batch>,
    /// Every input's map (`None` for a pipe): a payload found in one is sent
    /// as its place there, not copied (see `in_map`).
    maps: Vec<Option<Arc<Mmap>>>,
    empty: Receiver<Batch>,
    from: Receiver<FromWorker>,
    collector: &'a mut Collector,
    stats: AnalyzerStats,
    peaks: Peaks,
    /// The clock of the last packet read.
    clock: Clock,
    /// A worker reached a cap across flows (or nearly).
    capped: bool,
    done: usize,
}

/// A worker that stopped before the end: it panicked (a bug); its
/// message is already on stderr.
fn worker_gone() -> Error {
    Error::io(
        "an analysis thread",
        std::io::Error::other("stopped unexpectedly"),
    )
}

impl Reader<'_> {
    fn send(&mut self, w: usize, msg: ToWorker) -> Result<(), Error> {
        self.to[w].send(msg).map_err(|_| worker_gone())
    }

    /// Sends worker `w` its batch, and takes a new one to fill.
    fn flush(&mut self, w: usize) -> Result<(), Error> {
        if self.filling[w].items.is_empty() {
            return Ok(());
        }
        let next = self.empty.try_recv().unwrap_or_default();
        let mut full = std::mem::replace(&mut self.filling[w], next);
        full.known_to = self.clock;
        self.send(w, ToWorker::Batch(full))?;
        self.take_inline()?;
        self.collect(false).map(|_| ())
    }

    /// Takes what the reader's own analyzer decided and changed.
    fn take_inline(&mut self) -> Result<(), Error> {
        self.collector.take_from(&mut self.inline.analyzer)?;
        self.peaks
            .add(self.inline.id, &self.inline.changes, self.clock);
        self.inline.changes.clear();
        self.capped |= self.inline.analyzer.capped();
        Ok(())
    }

    /// Takes what the workers handed back; with `wait`, waits for one
    /// message at least.
    fn collect(&mut self, wait: bool) -> Result<usize, Error> {
        let mut synced = 0;
        let mut next = if wait {
            Some(self.from.recv().map_err(|_| worker_gone())?)
        } else {
            self.from.try_recv().ok()
        };
        while let Some(msg) = next {
            match msg {
                FromWorker::Batch {
                    worker,
                    reports,
                    changes,
                    known_to,
                    capped,
                } => {
                    self.collector.add_all(&reports)?;
                    if let Some(b) = self.filling.get_mut(worker) {
                        b.spent.push(reports);
                    }
                    self.peaks.add(worker, &changes, known_to);
                    self.capped |= capped;
                }
                FromWorker::Synced => synced += 1,
                FromWorker::Done(rs, stats, capped) => {
                    self.capped |= capped;
                    self.collector.add_all(&rs)?;
                    self.stats.add(&stats);
                    self.done += 1;
                }
            }
            next = self.from.try_recv().ok();
        }
        Ok(synced)
    }

    /// Waits until every worker has analysed everything sent so far.
    fn sync(&mut self) -> Result<(), Error> {
        for w in 0..self.to.len() {
            self.flush(w)?;
            self.send(w, ToWorker::Sync)?;
        }
        let mut synced = 0;
        while synced < self.to.len() {
            synced += self.collect(true)?;
        }
        Ok(())
    }

    /// Ends every analyzer and gathers their counters, with the peaks one
    /// analyzer would have seen; and whether a cap was reached.
    fn end(mut self, last: Option<Ts>) -> Result<(AnalyzerStats, bool), Error> {
        for w in 0..self.to.len() {
            self.flush(w)?;
            self.send(w, ToWorker::End(last))?;
        }
        while self.done < self.to.len() {
            self.collect(true)?;
        }
        self.take_inline()?;
        for w in 0..=self.to.len() {
            self.peaks.add(w, &[], Clock::MAX);
        }
        let mut own = self.inline.analyzer;
        if let Some(ts) = last {
            own.note_time(ts);
        }
        let capped = self.capped || own.capped();
        let (stats, _) = self.collector.finish_from(own)?;
        self.stats.add(&stats);
        let mut stats = self.stats;
        stats.reassembly.peak_flows = self.peaks.peak_flows;
        stats.reassembly.peak_buffered = self.peaks.peak_buffered;
        Ok((stats, capped))
    }
}

/// How a sharded run ended.
pub(crate) enum Sharded {
    /// Every packet analysed, as one analyzer would have.
    Done(AnalyzerStats),
    /// A worker reached a cap across flows (or nearly): what it evicted or
    /// gave up may differ from one analyzer's choice. `Some`: analysed to
    /// the end anyway (the input cannot be read again); `None`: stopped.
    Capped(Option<AnalyzerStats>),
}

/// What a sharded run is given besides its packets.
pub(crate) struct Plan<'a> {
    /// Analyzers in all, the reader's included (2 or more).
    pub threads: usize,
    pub settings: &'a Settings,
    pub limits: Limits,
    pub stop: Option<&'a AtomicBool>,
    /// Stop at a cap: the caller reads the input again on one thread.
    pub stop_at_cap: bool,
}

/// Analyses every packet of `merged` with `plan.threads` analyzers into
/// `collector` (see the module's notes).
pub(crate) fn run(
    merged: &mut Merged,
    plan: &Plan<'_>,
    mut on_packet: impl FnMut(u64, &Merged),
    collector: &mut Collector,
) -> Result<Sharded, Error> {
    let (n, settings, limits) = (plan.threads.max(2), plan.settings, plan.limits);
    let maps = merged.maps();
    let worker = |id| Worker {
        id,
        analyzer: Analyzer::new_worker(settings.clone(), worker_limits(limits, n)),
        maps: maps.clone(),
        flows: 0,
        buffered: 0,
        changes: Vec::new(),
    };
    let (out_tx, from) = channel();
    let (empty_tx, empty) = channel();
    thread::scope(|scope| {
        let mut to = Vec::with_capacity(n - 1);
        for id in 0..n - 1 {
            let (tx, rx) = sync_channel(QUEUE);
            let (w, out, empty) = (worker(id), out_tx.clone(), empty_tx.clone());
            scope.spawn(move || work(w, rx, out, empty));
            to.push(tx);
        }
        let own = reader_buckets(n);
        let mut r = Reader {
            inline: worker(n - 1),
            own,
            worker_of: (0..BUCKETS)
                .map(|b| b.saturating_sub(own) % (n - 1))
                .collect(),
            to,
            filling: (0..n - 1).map(|_| Batch::default()).collect(),
            maps: maps.clone(),
            empty,
            from,
            collector,
            stats: AnalyzerStats::default(),
            peaks: Peaks::new(n),
            clock: 0,
            capped: false,
            done: 0,
        };
        // On an error the reader's senders go with it: the workers end, and
        // the scope joins them.
        let last = read(&mut r, merged, plan, &mut on_packet)?;
        Ok(match r.end(last)? {
            (stats, false) => Sharded::Done(stats),
            (_, true) if plan.stop_at_cap => Sharded::Capped(None),
            (stats, true) => Sharded::Capped(Some(stats)),
        })
    })
}

/// Where `payload` lies in the map of input `i`: its offset there, and the
/// input's number. `None` when the input is a pipe (it has no map), or when
/// the payload is not inside the map (which does not happen).
#[inline]
fn in_map(maps: &[Option<Arc<Mmap>>], i: usize, payload: &[u8]) -> Option<(usize, u16)> {
    let map = maps.get(i)?.as_deref()?;
    let start = (payload.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
    let end = start.checked_add(payload.len())?;
    (end <= map.len()).then_some((start, u16::try_from(i).ok()?))
}

/// The reader's loop: returns the capture's last time.
fn read(
    r: &mut Reader<'_>,
    merged: &mut Merged,
    plan: &Plan<'_>,
    on_packet: &mut impl FnMut(u64, &Merged),
) -> Result<Option<Ts>, Error> {
    let (n, settings, stop) = (r.to.len(), plan.settings, plan.stop);
    let mut packets: u64 = 0;
    let mut index: u64 = 0;
    let mut last: Option<Ts> = None;
    while !stop.is_some_and(|s| s.load(Ordering::Relaxed)) && merged.advance()? {
        if r.capped && plan.stop_at_cap {
            break;
        }
        packets += 1;
        if merged.has_secrets() {
            let secrets = merged.take_secrets();
            r.sync()?;
            if let Ok(mut k) = settings.keys.write() {
                for t in &secrets {
                    k.add_text(t);
                }
            }
        }
        on_packet(packets, merged);
        let input = merged.current_input();
        let Some((pkt, counts)) = merged.current_mut() else {
            break;
        };
        last = Some(last.map_or(pkt.ts, |l| l.max(pkt.ts)));
        // By reference: the segment stays where it was decoded (see
        // `pipeline::feed`).
        let decoded = decode::decode(pkt.linktype, pkt.data);
        let seg = match &decoded {
            Ok(seg) => seg,
            Err(skip) => {
                counts.skipped(*skip == decode::Skip::NotTcp);
                continue;
            }
        };
        index += 1;
        if index % PURGE_EVERY == 0 {
            // Every worker purges here; each then reports up to here, so
            // that the replay of the peaks never waits far behind.
            for b in &mut r.filling {
                b.items.push(Item::Purge { ts: pkt.ts, index });
            }
            r.inline.analyzer.purge(pkt.ts);
            r.inline.step(2 * index, false);
            r.clock = 2 * index;
            for w in 0..n {
                r.flush(w)?;
            }
        }
        let bucket = bucket_of(&seg.src, &seg.dst);
        if bucket < r.own {
            r.inline.analyzer.packet_numbered(pkt.ts, seg, index);
            r.inline.step(2 * index + 1, true);
            r.clock = 2 * index + 1;
            if index % COLLECT_EVERY == 0 {
                r.take_inline()?;
            }
            continue;
        }
        let w = r.worker_of.get(bucket).copied().unwrap_or(0);
        let b = &mut r.filling[w];
        let (start, end, input) = match input.and_then(|i| in_map(&r.maps, i, seg.payload)) {
            Some((start, input)) => {
                b.mapped += seg.payload.len();
                (start, start + seg.payload.len(), Some(input))
            }
            None => {
                let start = b.data.len();
                b.data.extend_from_slice(seg.payload);
                (start, b.data.len(), None)
            }
        };
        b.items.push(Item::Packet {
            ts: pkt.ts,
            seg: TcpSegment {
                payload: &[],
                ..*seg
            },
            start,
            end,
            input,
            index,
        });
        r.clock = 2 * index + 1;
        if b.full() {
            r.flush(w)?;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's bound on packets on their way to another thread: a
    /// batch's entries (at most `BATCH_PACKETS`) take at most 128 bytes
    /// each besides the payload's bytes.
    #[test]
    fn batch_entries_stay_small() {
        let size = std::mem::size_of::<Item>();
        assert!(size <= 128, "Item is {size} bytes");
        assert_eq!(BATCH_PACKETS * 128, 256 << 10);
    }
}
