//! Every planned chunk's own record found without hashing a chunk key:
//! the cache's records and their index entries walked together in key
//! order, each record placed in the grid by its index entry. The fast path
//! of [`super::Store::resolve_plan`] for a plan of most of a grid: a status
//! or a run of a million one-point chunks would otherwise hash a million
//! keys, sort them and look each one up.

use super::catalog::{Aligned, Placed};
use super::resolve::{Own, OwnRecords, PARALLEL_RESOLVE_CHUNKS, RELEASE_EVERY};
use super::seek::halves;
use super::{rkey, ChunkKey, Store};
use crate::error::Result;
use heed::{RoTxn, WithoutTls};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Chunk keys sampled per part to cut the cache's key range into parts of
/// about as many records each.
const SAMPLES_PER_PART: usize = 64;

/// Parts of the key range per thread, at least.
const PARTS_PER_THREAD: usize = 4;

/// Planned chunks per part of the key range, at most (about): what a part
/// found is held until the part ends.
const PART_CHUNKS: usize = 1 << 16;

/// Chunks found are kept per planned chunk when at least 1 in this many
/// planned chunks has a record (else in a list).
const DENSE_FROM: usize = 8;

/// Records a part walks between reports of its count to the other parts.
const COUNT_EVERY: usize = 1024;

thread_local! {
    /// Walks that served a resolution on this thread (tests check that a
    /// plan took the walk rather than falling back).
    static WALKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many resolutions on this thread were served by a walk over the
/// records with their index entries (tests).
#[doc(hidden)]
pub fn walks_for_tests() -> usize {
    WALKS.with(|w| w.get())
}

/// What [`OwnRecords::walk_index`] found: the planned chunks with their
/// own records, and the snapshot every part was read in (None when they
/// read different ones: a write committed meanwhile).
pub(super) struct Walked {
    found: Found,
    pub(super) snapshot: Option<u64>,
}

/// The chunks a walk found records of: per planned chunk when they are
/// many, else a list in chunk order (a walk of few records costs no
/// memory per planned chunk).
enum Found {
    Dense(Vec<Own>),
    Sparse(Vec<(u32, Own)>),
}

impl Walked {
    /// The planned chunks with their own records, in chunk order: with
    /// `absent`, every chunk (those without a record as [`Own::Absent`]),
    /// else only those with one.
    pub(super) fn chunks(self, n_chunks: usize, absent: bool) -> Box<dyn Iterator<Item = (usize, Own)>> {
        match (self.found, absent) {
            (Found::Dense(own), false) => {
                Box::new(own.into_iter().enumerate().filter(|(_, o)| !matches!(o, Own::Absent)))
            }
            (Found::Dense(own), true) => Box::new(own.into_iter().enumerate()),
            (Found::Sparse(list), false) => Box::new(list.into_iter().map(|(i, o)| (i as usize, o))),
            (Found::Sparse(list), true) => {
                let mut list = list.into_iter().peekable();
                Box::new((0..n_chunks).map(move |i| match list.next_if(|&(j, _)| j as usize == i) {
                    Some((_, o)) => (i, o),
                    None => (i, Own::Absent),
                }))
            }
        }
    }
}

/// The chunks the parts of a walk found, gathered as the parts end: in
/// lists while they are few, per planned chunk from
/// 1 in [`DENSE_FROM`] on.
struct Collect {
    n: usize,
    lists: Vec<Vec<(u32, Own)>>,
    dense: Option<Vec<Own>>,
    total: usize,
}

impl Collect {
    fn add(&mut self, found: Vec<(u32, Own)>) {
        self.total += found.len();
        if self.dense.is_none() && self.total >= self.n / DENSE_FROM {
            let mut dense = vec![Own::Absent; self.n];
            for list in self.lists.drain(..) {
                scatter(&mut dense, list);
            }
            self.dense = Some(dense);
        }
        match &mut self.dense {
            Some(dense) => scatter(dense, found),
            None => self.lists.push(found),
        }
    }

    fn finish(self) -> Found {
        if let Some(dense) = self.dense {
            return Found::Dense(dense);
        }
        let mut list: Vec<(u32, Own)> = self.lists.into_iter().flatten().collect();
        list.sort_unstable_by_key(|f| f.0);
        // A chunk two records were placed in (only damaged entries could
        // do that) is resolved in full.
        list.dedup_by(|next, kept| {
            next.0 == kept.0 && {
                kept.1 = Own::Other;
                true
            }
        });
        Found::Sparse(list)
    }
}

/// Puts what a part found in its place per planned chunk (a chunk found
/// twice is resolved in full).
fn scatter(dense: &mut [Own], found: Vec<(u32, Own)>) {
    for (i, o) in found {
        let at = &mut dense[i as usize];
        *at = if matches!(at, Own::Absent) { o } else { Own::Other };
    }
}

/// What one part of the walk found: (planned chunk, its own record) in key
/// order, and the snapshot read; None when the walk gave up.
struct Part {
    found: Vec<(u32, Own)>,
    snapshot: u64,
}

impl OwnRecords<'_> {
    /// Whether a plan is worth [`OwnRecords::walk_index`]: one of many
    /// chunks covering at least half of the grid (the walk visits every
    /// record of the cache, wanted or not), resolved without taking
    /// records.
    pub(super) fn walk_fits(&self) -> bool {
        self.take.is_none()
            && self.plan.n_chunks >= PARALLEL_RESOLVE_CHUNKS
            && (self.plan.n_chunks as u64).saturating_mul(2) >= self.grid.n_chunks()
    }

    /// Looks at every planned chunk's own record by walking all of the
    /// cache's records with their index entries, on `threads` threads, in
    /// parts of the key range: each record is placed in the grid by its
    /// entry ([`Aligned::place`]), where [`OwnRecords::sorted`] hashes every
    /// chunk's key, sorts the keys and looks each one up. Records outside
    /// the grid are passed over. Every record found is then a chunk's own
    /// record or outside the grid, so a chunk found without one has no
    /// stored points.
    ///
    /// None, having looked at some records for nothing, when the walk does
    /// not serve: a record laid out otherwise (another chunking: the
    /// chunks without their own record must be resolved in full), records
    /// and index entries that do not pair up (a damaged store), or more
    /// records than half as many again as the plan has chunks (a cache
    /// holding much more than this grid: looking each chunk up costs less).
    pub(super) fn walk_index(&self, t: &RoTxn<'_, WithoutTls>, threads: usize) -> Result<Option<Walked>> {
        let (plan, grid) = (self.plan, self.grid);
        let Some(aligned) = Aligned::new(grid) else { return Ok(None) };
        // Per axis, how its bins are planned: a whole axis follows from
        // its size, a selection is listed per bin.
        let bins: Vec<AxisBins> = (0..grid.axes.len())
            .map(|a| match plan.axes[a].whole_dims() {
                Some((n, chunk)) => AxisBins::Whole { n, chunk },
                None => {
                    let mut p = vec![PlannedBin { pos: u32::MAX, req: 0, len: 0 }; grid.n_bins(a)];
                    for (k, b) in plan.axes[a].iter().enumerate() {
                        p[b.bin as usize] = PlannedBin { pos: k as u32, req: b.sel.len() as u32, len: b.len };
                    }
                    AxisBins::Listed(p)
                }
            })
            .collect();
        let threads = threads.max(1);
        let (counted, gave_up) = (AtomicUsize::new(0), AtomicBool::new(false));
        // More parts than threads, taken in turn (a thread on a busy core
        // walks fewer of them), of at most about PART_CHUNKS planned
        // chunks each.
        let cuts = self.split_keys((threads * PARTS_PER_THREAD).max(plan.n_chunks / PART_CHUNKS));
        let walk = Walk {
            own: *self,
            aligned: &aligned,
            bins: &bins,
            limit: plan.n_chunks + plan.n_chunks / 2,
            per_part: plan.n_chunks / (cuts.len() + 1) + plan.n_chunks / (cuts.len() + 1) / 8,
            counted: &counted,
            gave_up: &gave_up,
        };
        let parts: Vec<KeyRange> = (0..=cuts.len())
            .map(|k| {
                let lo = rkey(self.cache, k.checked_sub(1).map_or(&[0; 16], |c| &cuts[c]));
                (lo, cuts.get(k).map(|c| rkey(self.cache, c)))
            })
            .collect();
        // Each part's chunks are handed on as the part ends: a walk keeps
        // per planned chunk what it found, plus the parts in flight.
        let collect = Mutex::new(Collect { n: plan.n_chunks, lists: Vec::new(), dense: None, total: 0 });
        let next = AtomicUsize::new(0);
        // Parts taken in turn; a thread that cannot start or open its
        // transaction leaves them to the others.
        let looked: Vec<Result<Option<u64>>> = self
            .store
            .on_threads(t, threads.min(parts.len()), |t, _| {
                let mut out = Vec::new();
                while let Some(&range) = parts.get(next.fetch_add(1, Relaxed)) {
                    out.push(walk.part(t, range).map(|part| {
                        part.map(|p| {
                            collect.lock().unwrap().add(p.found);
                            p.snapshot
                        })
                    }));
                }
                out
            })
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        if looked.len() != parts.len() {
            return Ok(None);
        }
        let snapshot = Store::snapshot_id(t);
        let mut same = true;
        for part in looked {
            let Some(read) = part? else { return Ok(None) };
            same &= read == snapshot;
        }
        if counted.load(Relaxed) > walk.limit {
            return Ok(None);
        }
        let found = collect.into_inner().unwrap().finish();
        let out = Walked { found, snapshot: same.then_some(snapshot) };
        WALKS.with(|w| w.set(w.get() + 1));
        Ok(Some(out))
    }

    /// Chunk keys that cut the cache's key range into `parts` parts of
    /// about as many of the plan's chunks each: quantiles of the keys of
    /// chunks sampled evenly over the plan.
    fn split_keys(&self, parts: usize) -> Vec<ChunkKey> {
        let n = self.plan.n_chunks;
        let samples = (parts * SAMPLES_PER_PART).min(n);
        if parts < 2 || samples < parts {
            return Vec::new();
        }
        let mut bins = Vec::new();
        let mut keys: Vec<ChunkKey> = (0..samples)
            .map(|k| {
                self.plan.chunk_bins_into((2 * k + 1) * n / (2 * samples), &mut bins);
                self.grid.chunk_key(&bins)
            })
            .collect();
        keys.sort_unstable();
        let mut cuts: Vec<ChunkKey> = (1..parts).map(|k| keys[k * samples / parts]).collect();
        cuts.dedup();
        cuts
    }
}

/// A range of a cache's record keys: the first, and the end (excluded;
/// None: the cache's last key).
type KeyRange = ([u8; 32], Option<[u8; 32]>);

/// A bin of the grid as planned.
#[derive(Clone, Copy)]
struct PlannedBin {
    /// Its position among the planned bins of its axis; u32::MAX when not planned.
    pos: u32,
    /// Its requested values.
    req: u32,
    /// Its values.
    len: u32,
}

/// How an axis' bins are planned.
enum AxisBins {
    /// Every value: bin b is planned at position b, in full.
    Whole { n: u32, chunk: u32 },
    /// A selection: per bin of the axis.
    Listed(Vec<PlannedBin>),
}

impl AxisBins {
    #[inline]
    fn get(&self, b: u32) -> PlannedBin {
        match self {
            AxisBins::Whole { n, chunk } => {
                let len = (*chunk).min(n - b * chunk);
                PlannedBin { pos: b, req: len, len }
            }
            AxisBins::Listed(p) => p[b as usize],
        }
    }
}

/// What the parts of one walk share: what looks at records, what places
/// them, each bin as planned, and the records all parts may walk
/// (`limit`) with those walked so far.
#[derive(Clone, Copy)]
struct Walk<'a> {
    own: OwnRecords<'a>,
    aligned: &'a Aligned<'a>,
    bins: &'a [AxisBins],
    /// The chunks a part is expected to find when every chunk has a record.
    per_part: usize,
    limit: usize,
    counted: &'a AtomicUsize,
    gave_up: &'a AtomicBool,
}

impl Walk<'_> {
    /// Walks the records and index entries with keys in `range`, together;
    /// None when the walk gives up (on this part or another).
    fn part(&self, t: &RoTxn<'_, WithoutTls>, range: KeyRange) -> Result<Option<Part>> {
        let store = self.own.store;
        // Both tables from the part's first key on; where the part ends is
        // checked here, on keys as numbers (cheaper than the range's own
        // comparison of bytes).
        let from = (Bound::Included(&range.0[..]), Bound::Unbounded);
        let mut records = store.records.range(t, &from)?;
        let mut index = store.index.range(t, &from)?;
        let cache = u128::from_be_bytes(*self.own.cache);
        let end = range.1.map(|k| halves(&k).unwrap());
        let within = |k: (u128, u128)| match end {
            Some(end) => k < end,
            None => k.0 == cache,
        };
        let mut found = Vec::with_capacity(self.per_part);
        let mut at = self.aligned.placing();
        let mut n = 0usize;
        let give_up = || {
            self.gave_up.store(true, Relaxed);
            Ok(None)
        };
        loop {
            let rec = records.next().transpose()?.map(|(k, v)| (halves(k), v)).filter(|(k, _)| k.is_none_or(within));
            let ent = index.next().transpose()?.map(|(k, v)| (halves(k), v)).filter(|(k, _)| k.is_none_or(within));
            let (key, bytes, entry) = match (rec, ent) {
                (None, None) => break,
                (Some((Some(rk), bytes)), Some((Some(ik), entry))) if rk == ik => (rk.1, bytes, entry),
                _ => return give_up(),
            };
            n += 1;
            if n.is_multiple_of(COUNT_EVERY) {
                if self.gave_up.load(Relaxed) || self.counted.fetch_add(COUNT_EVERY, Relaxed) + COUNT_EVERY > self.limit
                {
                    return give_up();
                }
                if n.is_multiple_of(RELEASE_EVERY) {
                    store.after_io();
                }
            }
            match self.aligned.place(&key.to_be_bytes(), entry, &mut at) {
                Placed::Chunk => {}
                Placed::Outside => continue,
                Placed::Other => return give_up(),
            }
            // The planned chunk (mixed radix over the planned bins, first
            // axis slowest), its requested points and the record's.
            let (mut i, mut req, mut rec) = (0usize, 1u64, 1u64);
            let planned = at.bins.iter().enumerate().all(|(a, &b)| {
                let p = self.bins[a].get(b);
                i = i * self.own.plan.axes[a].len() + p.pos as usize;
                req *= u64::from(p.req);
                rec *= u64::from(p.len);
                p.pos != u32::MAX
            });
            if planned {
                found.push((i as u32, self.own.found(i, bytes, req as u32, rec, None)));
            }
        }
        self.counted.fetch_add(n % COUNT_EVERY, Relaxed);
        Ok(Some(Part { found, snapshot: Store::snapshot_id(t) }))
    }
}
