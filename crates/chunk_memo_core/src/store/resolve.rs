//! Resolution: which stored points serve a planned chunk, from the chunk's
//! own record or from records of another chunking, axis order or length.

use super::catalog::{map_into, Catalog, MapScratch};
use super::{rkey, CacheId, ChunkKey, Descriptor, ReadMemo, Store};
use crate::error::Result;
use crate::planner::{ChunkGeometry, Grid, HashKeyed, Plan};
use crate::record::RecordView;
use heed::{RoTxn, WithoutTls};

/// A chunk's own complete, dense record, parsed, with its bytes (see
/// [`Store::whole_record_in`]).
pub type WholeRecord<'t> = (RecordView<'t>, &'t [u8]);

/// `bytes` as a [`WholeRecord`] when they parse as a complete, dense record
/// (its structure checked, not its checksum).
pub(super) fn whole_record(bytes: &[u8]) -> Option<WholeRecord<'_>> {
    RecordView::parse_header(bytes).ok().filter(|v| v.is_complete() && !v.is_sparse()).map(|v| (v, bytes))
}

/// Where requested points of a chunk come from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub chunk: ChunkKey,
    /// (requested point index, point index in the source record). Empty
    /// when `whole` is set.
    pub map: Vec<(u32, u32)>,
    /// The chunk's own complete record serves every requested point; the
    /// positions follow from the chunk geometry (not stored per point).
    pub whole: Option<WholeLayout>,
}

/// Requested offsets per axis and bin lengths of a chunk, from which the
/// record position of every requested point follows.
#[derive(Debug, Clone, Default)]
pub struct WholeLayout {
    pub sel: Vec<Vec<u32>>,
    pub lens: Vec<u32>,
}

impl Source {
    /// (requested point, record point) pairs, materialised.
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        match &self.whole {
            Some(w) => ChunkGeometry { bins: Vec::new(), sel: w.sel.clone(), lens: w.lens.clone() }
                .record_positions()
                .into_iter()
                .enumerate()
                .map(|(r, p)| (r as u32, p))
                .collect(),
            None => self.map.clone(),
        }
    }
}

/// The state of one planned chunk against the store.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub key: ChunkKey,
    pub requested: u32,
    pub available: u32,
    /// Per requested point; empty when every point is available.
    pub present: Vec<bool>,
    pub sources: Vec<Source>,
    /// Records that failed verification (treated as missing).
    pub corrupt: Vec<(ChunkKey, String)>,
}

impl Resolution {
    pub fn is_present(&self, i: usize) -> bool {
        self.present.is_empty() && self.available == self.requested || self.present.get(i).copied().unwrap_or(false)
    }
}

/// A chunk found by [`Store::resolve_plan`].
#[derive(Debug)]
pub enum Found {
    /// The chunk's own complete record serves all its `requested` points
    /// (the resolution follows from the geometry; nothing was built); it
    /// holds outputs of `kind`. `taken`: the resolution's [`TakeWhole`]
    /// took the record.
    Whole { requested: u32, kind: u8, taken: bool },
    /// Anything else with stored points or something to report.
    Other(Resolution),
}

/// Plans of at least this many chunks, every one of which must be looked
/// at, are looked at on several threads (a million one-point chunks: a key
/// hash and a B-tree lookup each).
pub(super) const PARALLEL_RESOLVE_CHUNKS: usize = 1 << 12;

/// Chunks looked at together on those threads (what they found is kept
/// per chunk until it is handed on; the map's pages they touched are
/// released between blocks).
const RESOLVE_BLOCK: usize = 1 << 14;

/// Threads that look at one plan at most (the calling thread included).
const RESOLVE_THREADS: usize = 4;

/// Chunks resolved one by one between checks of the map's resident pages
/// (see `Store::after_io`).
pub(super) const RELEASE_EVERY: usize = 4096;

/// A chunk served whole by its own record: its requested points, the
/// record's kind, and whether a [`TakeWhole`] took the record.
type Whole = (u32, u8, bool);

/// What a chunk's own record is, as [`OwnRecords`] finds it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Own {
    /// No record under the chunk's key.
    Absent,
    /// Complete: it serves the chunk whole.
    Whole(Whole),
    /// There, but partial, sparse, damaged or of another layout: the
    /// chunk is resolved in full.
    Other,
}

/// What [`OwnRecords::parallel`] found for a part of a block.
struct Looked {
    /// Per chunk, from [`OwnRecords::one`].
    own: Vec<Own>,
    /// The snapshot it was found in.
    snapshot: u64,
}

/// A chunk's own record (`bytes`) when it is complete, as the chunk's
/// `requested` points and the record's kind: parsed (with `verify`, its
/// checksum checked) and holding all `record_points` of the chunk's bins.
fn whole_head(bytes: &[u8], verify: bool, requested: u32, record_points: u64) -> Option<(u32, u8)> {
    let head = if verify { RecordView::verify_head(bytes) } else { RecordView::parse_head(bytes) };
    match head {
        Ok(v) if v.present == v.n && !v.sparse && v.n as u64 == record_points => Some((requested, v.kind)),
        _ => None,
    }
}

/// Takes the records of chunks requested in full and served whole by
/// their own records as a resolution finds them ([`Store::resolve_plan`]
/// with a taker): a run that wants every stored output copies them into
/// its output then, in the same walk over the records, instead of looking
/// them up again to read them. Called on the resolution's threads when it
/// looks at every chunk's own record on several (a cache of many records:
/// a plan of several chunks is then looked at on several threads).
pub trait TakeWhole: Sync {
    /// Chunks `chunks` of the plan are about to be looked at on this
    /// thread: returns what takes their records, offered chunk `i`'s own
    /// complete record (parsed, with its bytes; with the resolution's
    /// `verify` its checksum was checked, without it not) for each of them
    /// that it serves whole and requested in full. It returns whether it
    /// took the record: the chunk is then reported with `taken` (see
    /// [`Found::Whole`]).
    fn begin(&self, chunks: std::ops::Range<usize>) -> Taker<'_>;
}

/// Takes the records of one part of a plan, on one thread (see
/// [`TakeWhole::begin`]).
pub type Taker<'a> = Box<dyn FnMut(usize, &RecordView<'_>, &[u8]) -> bool + 'a>;

/// What looking at chunks' own records needs (the fast path of
/// [`Store::resolve_plan`]): the store, the cache, its grid and the plan,
/// whether records are verified, and what takes whole records.
#[derive(Clone, Copy)]
pub(super) struct OwnRecords<'a> {
    pub(super) store: &'a Store,
    pub(super) cache: &'a CacheId,
    pub(super) grid: &'a Grid,
    pub(super) plan: &'a Plan,
    pub(super) verify: bool,
    pub(super) take: Option<&'a dyn TakeWhole>,
}

impl OwnRecords<'_> {
    /// Chunk `i`'s own record: absent, complete (as its requested points
    /// and kind; parsed, and with `verify` its checksum checked, as in
    /// `resolve_one`), or anything else, which sends the chunk to a full
    /// resolution. Builds no
    /// geometry (`bins` is reused). Nothing is taken: a plan looked at one
    /// chunk at a time is small, and its reads copy on every core.
    fn one(&self, t: &RoTxn<'_, WithoutTls>, i: usize, bins: &mut Vec<u32>) -> Result<Own> {
        let (req, rec) = self.plan.chunk_bins_into(i, bins);
        let key = rkey(self.cache, &self.grid.chunk_key(bins));
        Ok(match self.store.records.get(t, &key)? {
            None => Own::Absent,
            Some(bytes) => match whole_head(bytes, self.verify, req as u32, rec) {
                Some((requested, kind)) => Own::Whole((requested, kind, false)),
                None => Own::Other,
            },
        })
    }

    /// Chunk `i`'s own record `bytes` (see `whole_head`), offered to
    /// `taker` when it serves the chunk requested in full.
    pub(super) fn found(
        &self,
        i: usize,
        bytes: &[u8],
        requested: u32,
        record_points: u64,
        taker: Option<&mut Taker<'_>>,
    ) -> Own {
        let Some((requested, kind)) = whole_head(bytes, self.verify, requested, record_points) else {
            return Own::Other;
        };
        let taken = match taker {
            Some(take) if requested as u64 == record_points => {
                RecordView::parse_header(bytes).is_ok_and(|v| take(i, &v, bytes))
            }
            _ => false,
        };
        Own::Whole((requested, kind, taken))
    }

    /// [`OwnRecords::one`] for every chunk of `part`, in key order: the
    /// chunks' keys are sorted and the records walked forward once (a
    /// cursor step per record, where a lookup per chunk descends the whole
    /// B-tree), seeking afresh past a stretch of records no chunk wants.
    fn sorted(&self, t: &RoTxn<'_, WithoutTls>, part: std::ops::Range<usize>) -> Result<Vec<Own>> {
        let mut bins = Vec::new();
        // (chunk key as a number, position in part, requested points,
        // record points), sorted by key (the cache's prefix is the same for
        // all: comparing numbers is cheaper than comparing record keys).
        let mut wanted: Vec<(u128, u32, u32, u64)> = part
            .clone()
            .enumerate()
            .map(|(k, i)| {
                let (req, rec) = self.plan.chunk_bins_into(i, &mut bins);
                (u128::from_be_bytes(self.grid.chunk_key(&bins)), k as u32, req as u32, rec)
            })
            .collect();
        wanted.sort_unstable_by_key(|w| w.0);
        let mut out = vec![Own::Absent; part.len()];
        let mut taker = self.take.map(|tk| tk.begin(part.clone()));
        let keys = wanted.iter().map(|w| rkey(self.cache, &w.0.to_be_bytes()));
        Store::walk_sorted(&self.store.records, t, keys, |n, bytes| {
            let (_, k, req, rec) = wanted[n];
            out[k as usize] = self.found(part.start + k as usize, bytes, req, rec, taker.as_mut());
        })?;
        Ok(out)
    }

    /// [`OwnRecords::sorted`] for every chunk of `block`, on `threads`
    /// threads ([`Store::on_threads`]), a part each. Returns each part with
    /// what was found; a part whose thread could not start or open a
    /// transaction is looked at here, in `t`.
    fn parallel(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        block: std::ops::Range<usize>,
        threads: usize,
    ) -> Result<Vec<(std::ops::Range<usize>, Looked)>> {
        let size = block.len().div_ceil(threads);
        let parts: Vec<std::ops::Range<usize>> = (0..threads)
            .map(|k| (block.start + k * size).min(block.end)..(block.start + (k + 1) * size).min(block.end))
            .collect();
        let look = |t: &RoTxn<'_, WithoutTls>, part: std::ops::Range<usize>| -> Result<Looked> {
            Ok(Looked { own: self.sorted(t, part)?, snapshot: Store::snapshot_id(t) })
        };
        let found = self.store.on_threads(t, threads, |t, k| look(t, parts[k].clone()));
        parts
            .into_iter()
            .zip(found)
            .map(|(part, looked)| {
                let looked = match looked {
                    Some(r) => r?,
                    None => look(t, part.clone())?,
                };
                Ok((part, looked))
            })
            .collect()
    }
}

impl Store {
    /// Runs `work(t, 0)` on this thread in its transaction `t`, and
    /// `work(t, k)` for k = 1 .. `threads` on helper threads, each in a read
    /// transaction of its own. Returns what each returned, in k order; None
    /// for a helper that could not start or open its transaction, or that
    /// panicked (the caller does its work otherwise).
    pub(super) fn on_threads<R: Send>(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        threads: usize,
        work: impl Fn(&RoTxn<'_, WithoutTls>, usize) -> R + Sync,
    ) -> Vec<Option<R>> {
        std::thread::scope(|sc| {
            // The calling thread holds the map's gate for `t`; the helpers
            // open their transactions under it (taking the gate again could
            // wait behind a resize waiting for this thread).
            let work = &work;
            let helpers: Vec<_> = (1..threads)
                .map(|k| {
                    std::thread::Builder::new()
                        .spawn_scoped(sc, move || self.env.read_txn().ok().map(|t| work(&t, k)))
                        .ok()
                })
                .collect();
            let mut out = vec![Some(work(t, 0))];
            out.extend(helpers.into_iter().map(|h| h.and_then(|h| h.join().unwrap_or(None))));
            out
        })
    }

    /// Resolves chunks `range` of `plan` for `cache`.
    pub fn resolve(
        &self,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        chunks: std::ops::Range<usize>,
        catalog: &mut Catalog,
    ) -> Result<Vec<Resolution>> {
        self.read(|s, t| {
            let mut out = Vec::with_capacity(chunks.len());
            for i in chunks.clone() {
                out.push(s.resolve_one(t, cache, grid, plan, i, catalog)?);
            }
            Ok(out)
        })
    }

    /// Resolves every chunk of `plan` and calls `f` with each chunk that
    /// holds stored points or has something to report, in chunk order;
    /// every other chunk has nothing stored. When the cache has few records
    /// next to the plan's chunks, only the chunks their index entries touch
    /// are looked at, so the cost follows the records, not the chunk count;
    /// otherwise large plans are looked at on several threads. Returns the
    /// snapshot it read ([`Store::snapshot_id`]), or None when its threads
    /// read different ones (a write committed meanwhile): with `verify`, the
    /// records it found whole were verified in that snapshot. Without it, a
    /// whole chunk's own record is looked at for its head only (constant
    /// time, one page): a caller that reads every such record next verifies
    /// each while it reads it, one pass over the bytes instead of two, and
    /// must treat a record that fails then as missing. With `take`, the
    /// records of chunks requested in full and served whole by their own
    /// records are offered to it as they are found (on the resolution's
    /// threads; see [`TakeWhole`]).
    #[allow(clippy::too_many_arguments)]
    pub fn resolve_plan(
        &self,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        catalog: &mut Catalog,
        verify: bool,
        take: Option<&dyn TakeWhole>,
        f: impl FnMut(usize, Found),
    ) -> Result<Option<u64>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(RESOLVE_THREADS);
        self.resolve_plan_on(threads, cache, grid, plan, catalog, verify, take, f)
    }

    /// [`Store::resolve_plan`] on at most `threads` threads (tests check
    /// the threaded path on machines of any size).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn resolve_plan_on(
        &self,
        threads: usize,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        catalog: &mut Catalog,
        verify: bool,
        take: Option<&dyn TakeWhole>,
        mut f: impl FnMut(usize, Found),
    ) -> Result<Option<u64>> {
        self.read(|s, t| {
            let mut bins = Vec::new();
            let mut memo = ReadMemo::default();
            let mut snapshot = Some(Store::snapshot_id(t));
            // A chunk whose own record is not complete (or is damaged) is
            // resolved in full; one without a record too, unless every
            // record of the cache is laid out and keyed as a chunk of this
            // grid or lies outside it (then its own record is the only one
            // that could hold its points).
            let mut one = |i: usize, own: Own, catalog: &mut Catalog| -> Result<()> {
                match own {
                    Own::Whole((requested, kind, taken)) => f(i, Found::Whole { requested, kind, taken }),
                    Own::Absent if s.aligned_catalog(t, cache, grid, catalog)? => {}
                    _ => {
                        let r = s.resolve_one_memo(t, cache, grid, plan, i, catalog, &mut memo)?;
                        if r.available > 0 || !r.corrupt.is_empty() {
                            f(i, Found::Other(r));
                        }
                    }
                }
                Ok(())
            };
            let own = OwnRecords { store: s, cache, grid, plan, verify, take };
            // Most of the grid planned: the cache's records are walked with
            // their index entries, no chunk key hashed.
            if own.walk_fits() {
                if let Some(walked) = own.walk_index(t, threads)? {
                    // Read in this snapshot, every record is a chunk's own
                    // or outside the grid: chunks without one are empty.
                    // Else they are looked at again here.
                    let known = walked.snapshot == snapshot;
                    if known {
                        catalog.know_aligned();
                    } else {
                        snapshot = None;
                    }
                    for (k, (i, o)) in walked.chunks(plan.n_chunks, !known).enumerate() {
                        one(i, o, catalog)?;
                        if k % RELEASE_EVERY == RELEASE_EVERY - 1 {
                            s.after_io();
                        }
                    }
                    return Ok(snapshot);
                }
            }
            // A large plan touches many pages of the map in this one
            // transaction: they are released as it goes (the transaction
            // still sees the same bytes when it touches them again).
            let candidates = s.candidates(t, cache, grid, plan, catalog)?;
            s.after_io();
            match candidates {
                // With a taker, any plan of several chunks: its threads copy
                // what they take, as a read would on every core.
                None if threads > 1
                    && (plan.n_chunks >= PARALLEL_RESOLVE_CHUNKS || take.is_some() && plan.n_chunks > 1) =>
                {
                    for from in (0..plan.n_chunks).step_by(RESOLVE_BLOCK) {
                        s.after_io();
                        let block = from..(from + RESOLVE_BLOCK).min(plan.n_chunks);
                        for (part, looked) in own.parallel(t, block, threads)? {
                            if Some(looked.snapshot) != snapshot {
                                snapshot = None;
                            }
                            for (i, own) in part.zip(looked.own) {
                                one(i, own, catalog)?;
                            }
                        }
                    }
                }
                // One by one: the chunks the index entries touch, or all.
                list => {
                    let chunks: Box<dyn Iterator<Item = usize>> = match list {
                        Some(list) => Box::new(list.into_iter()),
                        None => Box::new(0..plan.n_chunks),
                    };
                    for (k, i) in chunks.enumerate() {
                        one(i, own.one(t, i, &mut bins)?, catalog)?;
                        if k % RELEASE_EVERY == RELEASE_EVERY - 1 {
                            s.after_io();
                        }
                    }
                }
            }
            Ok(snapshot)
        })
    }

    /// The kind of the first record of `cache` in key order (`None`: no
    /// record, or one that does not parse): what a run that reads a warm
    /// cache can expect its stored outputs to hold before it resolves them.
    pub fn first_record_kind(&self, cache: &CacheId) -> Result<Option<u8>> {
        self.read(|s, t| {
            let first = s.records.prefix_iter(t, cache)?.next().transpose()?;
            Ok(first.and_then(|(_, bytes)| RecordView::parse_head(bytes).ok()).map(|h| h.kind))
        })
    }

    /// The id of the snapshot a read transaction sees: two transactions
    /// with the same id see the same bytes (no write was committed between
    /// them), so what one verified the other need not verify again.
    pub fn snapshot_id(t: &RoTxn<'_, WithoutTls>) -> u64 {
        t.id() as u64
    }

    /// Calls `f` with the record of chunk `chunk` when it is complete and
    /// dense (its points in record order, as a whole chunk requested in
    /// full wants them), in the caller's read transaction; `None` when the
    /// record is absent, partial, sparse, or damaged (does not parse or
    /// fails its checksum; the caller then takes the general path, which
    /// reports damage). With `verified` (the
    /// record was verified in this very snapshot, see
    /// [`Store::snapshot_id`]) its checksum is not computed again. The
    /// access is not noted (see [`Store::note_accesses`]).
    pub fn read_whole_in<R>(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        chunk: &ChunkKey,
        verified: bool,
        f: impl FnOnce(&RecordView<'_>) -> R,
    ) -> Result<Option<R>> {
        Ok(self.whole_record_in(t, cache, chunk)?.and_then(|(v, bytes)| (verified || v.verify(bytes)).then(|| f(&v))))
    }

    /// [`Store::read_whole_in`] with the record's structure checked but not
    /// its checksum: the record of `chunk` when it is complete and dense,
    /// parsed, with its bytes, both borrowed from the transaction; `None`
    /// otherwise. The caller must verify them ([`RecordView::verify`], or
    /// [`RecordView::verify_taking_data`] while it copies the data out: one
    /// pass over the bytes).
    pub fn whole_record_in<'t>(
        &self,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        chunk: &ChunkKey,
    ) -> Result<Option<WholeRecord<'t>>> {
        Ok(self.records.get(t, &rkey(cache, chunk))?.and_then(whole_record))
    }

    /// The chunks of `plan` that records of `cache` may serve, from the
    /// index entries; `None` when every chunk must be looked at: many
    /// records, damaged index entries, or records and entries that do not
    /// pair up.
    fn candidates(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        catalog: &mut Catalog,
    ) -> Result<Option<Vec<usize>>> {
        if grid.axes.is_empty() {
            return Ok(None);
        }
        // Many records: every chunk is looked at (counted on the records
        // alone, so that a large cache costs one partial scan here).
        let limit = plan.n_chunks / 4;
        for (k, r) in self.records.prefix_iter(t, cache)?.enumerate() {
            r?;
            if k == limit {
                return Ok(None);
            }
            if k % RELEASE_EVERY == RELEASE_EVERY - 1 {
                self.after_io();
            }
        }
        // Every record must have its index entry (and the other way round).
        let mut n = 0usize;
        {
            let mut recs = self.records.prefix_iter(t, cache)?;
            let mut idx = self.index.prefix_iter(t, cache)?;
            loop {
                match (recs.next().transpose()?, idx.next().transpose()?) {
                    (None, None) => break,
                    (Some((a, _)), Some((b, _))) if a == b => n += 1,
                    _ => return Ok(None),
                }
                if n.saturating_mul(4) > plan.n_chunks {
                    return Ok(None);
                }
            }
        }
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        self.load_catalog(t, cache, grid, catalog)?;
        if !catalog.bad.is_empty() {
            return Ok(None);
        }
        // Per record: per axis, the planned bins (positions in the plan)
        // holding a requested value the record has.
        let na = grid.axes.len();
        // Indexed by descriptor (records are few next to the plan's chunks).
        let mut touch: Vec<Vec<Vec<u32>>> = vec![Vec::new(); catalog.descs.len()];
        for (a, axis) in grid.axes.iter().enumerate() {
            let inv = &catalog.by_axis[a];
            if inv.is_empty() {
                return Ok(Some(Vec::new()));
            }
            for (pb, b) in plan.axes[a].iter().enumerate() {
                let base = b.bin as usize * axis.chunk;
                for &o in b.sel {
                    let Some(ds) = inv.get(&axis.hashes[base + o as usize]) else { continue };
                    for &d in ds {
                        let e = &mut touch[d as usize];
                        if e.is_empty() {
                            e.resize(na, Vec::new());
                        }
                        if e[a].last() != Some(&(pb as u32)) {
                            e[a].push(pb as u32);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for per in touch.iter().filter(|per| !per.is_empty()) {
            if per.iter().any(Vec::is_empty) {
                continue;
            }
            // Chunk index: mixed radix over the planned bins, first axis slowest.
            let mut acc = vec![0usize];
            for (a, ps) in per.iter().enumerate() {
                let m = plan.axes[a].len();
                acc = acc.iter().flat_map(|&x| ps.iter().map(move |&p| x * m + p as usize)).collect();
            }
            out.extend(acc);
        }
        out.sort_unstable();
        out.dedup();
        Ok(Some(out))
    }

    /// Resolves chunk `i` of `plan` in the caller's read transaction.
    pub fn resolve_one(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        i: usize,
        catalog: &mut Catalog,
    ) -> Result<Resolution> {
        self.resolve_one_memo(t, cache, grid, plan, i, catalog, &mut ReadMemo::default())
    }

    /// [`Store::resolve_one`] for one of several chunks resolved in the same
    /// transaction (a record of another chunking that served the previous
    /// chunk is not parsed and verified again).
    #[allow(clippy::too_many_arguments)]
    fn resolve_one_memo<'t>(
        &self,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        i: usize,
        catalog: &mut Catalog,
        memo: &mut ReadMemo<'t>,
    ) -> Result<Resolution> {
        let geo = ChunkGeometry::of(plan, i);
        let key = grid.chunk_key(&geo.bins);
        let requested = geo.requested() as u32;
        let mut res = Resolution { key, requested, ..Default::default() };
        // Fast path: the chunk's own record is complete. Its checksum is
        // verified here (xxh3 over mapped pages, cheap next to the read that
        // follows): a bad record must be reported and its points treated as
        // missing, or callers that trust the resolution would never
        // recompute them.
        let mut exact_ok = true;
        let own = self.records.get(t, &rkey(cache, &key))?;
        // No record of its own, and every record laid out and keyed as a
        // chunk of this grid: nothing stored (no record shares all its
        // values), without looking through the catalog.
        if own.is_none() && requested > 0 && self.aligned_catalog(t, cache, grid, catalog)? {
            res.present = vec![false; requested as usize];
            return Ok(res);
        }
        match own.map(RecordView::parse) {
            Some(Ok(v)) if v.is_complete() && v.n == geo.record_points() => {
                res.available = requested;
                res.sources.push(Source {
                    chunk: key,
                    map: Vec::new(),
                    whole: Some(WholeLayout { sel: geo.sel, lens: geo.lens }),
                });
                return Ok(res);
            }
            Some(Err(e)) => {
                res.corrupt.push((key, e.message));
                exact_ok = false;
            }
            // Partial, absent, or disagreeing with the chunk: the general
            // path checks every point.
            _ => {}
        }
        if requested == 0 {
            return Ok(res);
        }
        // The chunk's own record is laid out by the chunk's bins: its
        // descriptor follows from the grid, so a damaged index entry does
        // not hide it.
        let exact = match exact_ok && self.index.get(t, &rkey(cache, &key))?.is_some() {
            true => Some(Descriptor {
                axes: grid
                    .axes
                    .iter()
                    .enumerate()
                    .map(|(a, ax)| (ax.name.clone(), grid.bin_hashes(a, geo.bins[a]).to_vec()))
                    .collect(),
                n: geo.record_points() as u32,
                present: 0,
                bytes: 0,
                updated_ms: 0,
            }),
            false => None,
        };
        res.present = vec![false; requested as usize];
        // Candidates: the exact record first, then every record sharing a
        // value on every axis (all records for a grid without axes).
        self.load_catalog(t, cache, grid, catalog)?;
        // Damaged index entries are reported once per plan; their records
        // count as absent (verify reports them, repair rebuilds or drops).
        res.corrupt.append(&mut catalog.bad);
        // Records holding at least one requested value on every axis (all
        // records for a grid without axes). The cost follows the matches,
        // not the number of records.
        // The axes by how many records hold a requested value on them,
        // fewest first: an axis whose requested values no record holds ends
        // the search at once, before thousands of records holding a value
        // of another axis are gathered.
        let postings = |a: usize| {
            let (axis, base) = (&grid.axes[a], geo.bins[a] as usize * grid.axes[a].chunk);
            let inv = catalog.by_axis.get(a);
            geo.sel[a].iter().filter_map(move |&o| inv?.get(&axis.hashes[base + o as usize]))
        };
        let mut axes: Vec<(usize, usize)> =
            (0..grid.axes.len()).map(|a| (postings(a).map(<[u32]>::len).sum::<usize>(), a)).collect();
        axes.sort_unstable();
        let mut seen: Option<Vec<usize>> = None;
        for &(_, a) in &axes {
            let mut on_axis: Vec<usize> = Vec::new();
            for v in postings(a) {
                on_axis.extend(v.iter().map(|&d| d as usize));
            }
            on_axis.sort_unstable();
            on_axis.dedup();
            let next = match seen {
                None => on_axis,
                Some(mut s) => {
                    s.retain(|d| on_axis.binary_search(d).is_ok());
                    s
                }
            };
            let empty = next.is_empty();
            seen = Some(next);
            if empty {
                break;
            }
        }
        let seen = seen.unwrap_or_else(|| (0..catalog.descs.len()).collect());
        // The exact record (not a catalog entry), then the catalog's records by index.
        let order = exact
            .is_some()
            .then_some(None)
            .into_iter()
            .chain(seen.into_iter().filter(|&d| catalog.descs.keys[d] != key).map(Some));
        // Per axis, the requested values' positions by value hash: made once
        // for the chunk when its records hold fewer values than it asks for.
        let mut wanted: Vec<Option<HashKeyed<u32>>> = vec![None; grid.axes.len()];
        let mut scratch = MapScratch::default();
        for d in order {
            let (ck, mapped) = match (d, &exact) {
                (Some(d), _) => {
                    let desc = catalog.descs.get(d);
                    (
                        catalog.descs.keys[d],
                        map_into(grid, &geo, &desc, &mut wanted, Some(&mut catalog.held[d]), &mut scratch),
                    )
                }
                (None, Some(e)) => (key, map_into(grid, &geo, e, &mut wanted, None, &mut scratch)),
                (None, None) => unreachable!("the exact record is a candidate only when it exists"),
            };
            if !mapped {
                continue;
            }
            let view = match memo.record(self, t, cache, &ck)? {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    res.corrupt.push((ck, e.clone()));
                    continue;
                }
                None => continue,
            };
            let mut src = Source { chunk: ck, map: Vec::new(), whole: None };
            for &(r, p) in &scratch.pairs {
                let p = p as u32;
                if !res.present[r as usize] && (p as usize) < view.n && view.is_present(p as usize) {
                    res.present[r as usize] = true;
                    src.map.push((r, p));
                }
            }
            if !src.map.is_empty() {
                res.available += src.map.len() as u32;
                res.sources.push(src);
            }
            if res.available == requested {
                break;
            }
        }
        if res.available == requested {
            res.present.clear();
        }
        Ok(res)
    }
}
