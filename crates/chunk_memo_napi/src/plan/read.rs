//! Reads: one chunk (`read`) or several in one call (`readMany`).

use super::{BindingPlan, PlanState};
use crate::errors::{boundary, invalid, CoreResult};
use crate::id16;
use crate::store::BindingStore;
use chunk_memo_core::canonical;
use chunk_memo_core::planner::{Plan, RowScratch};
use chunk_memo_core::record::{kind_width, RecordView, KIND_ITEMS};
use chunk_memo_core::store::{CacheId, ChunkData, ChunkKey, ReadMemo, ReadTxn, Store, TakeWhole, Taker};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Requested points of a chunk read from the store.
#[napi(object)]
pub struct BindingChunkData {
    /// 0 = items (msgpack per point), else a dtype code.
    pub kind: u32,
    /// One byte per requested point: 1 when read.
    pub present: Buffer,
    /// Items: offsets (present+1) into `data`.
    pub offsets: Uint32Array,
    pub data: Buffer,
    /// Items: dictionaries the present points were packed with (an empty
    /// one means plain msgpack).
    pub dicts: Vec<Buffer>,
    /// Items: per present point, the index of its dictionary in `dicts`.
    pub point_dicts: Uint16Array,
    /// Records that failed verification and were treated as missing.
    pub corrupt: Vec<String>,
}

pub(crate) fn chunk_data_to_js(d: ChunkData) -> Result<BindingChunkData> {
    Ok(BindingChunkData {
        kind: d.kind as u32,
        present: d.present.iter().map(|&p| u8::from(p)).collect::<Vec<u8>>().into(),
        offsets: d.offsets.into(),
        data: d.data.into(),
        dicts: d.dicts.into_iter().map(Into::into).collect(),
        point_dicts: d.point_dicts.into(),
        corrupt: d.corrupt.into_iter().map(|(c, r)| format!("{}: {r}", canonical::hex(&c))).collect(),
    })
}

/// Requested points of several chunks read in one call: one buffer and
/// flat arrays for all of them, so a batch costs one crossing of N-API and a
/// few allocations whatever the number of chunks.
#[napi(object)]
pub struct BindingChunkBatch {
    /// Per chunk: 1 when its outputs went straight into the gather output
    /// (no data here).
    pub gathered: Buffer,
    /// Per chunk: 0 = items (or nothing present), else a dtype code.
    pub kinds: Buffer,
    /// Per chunk: present points.
    pub counts: Uint32Array,
    /// Per requested point of every chunk with some points missing, chunks
    /// in order: 1 when read (a chunk whose every requested point was read,
    /// `counts` equal to its points, has no bytes here; nor has a gathered
    /// one).
    pub present: Buffer,
    /// Per chunk (and one more): where its bytes start in `data`. A typed
    /// chunk's bytes are its count times its width from there; each typed
    /// chunk starts at a multiple of 8 (padding follows a typed chunk).
    pub starts: Uint32Array,
    /// Items chunks, in order: count+1 offsets each, relative to the
    /// chunk's start in `data` (typed chunks have none). Empty when the
    /// batch has one dictionary or none: each chunk's bytes then decode as
    /// one msgpack sequence.
    pub offsets: Uint32Array,
    /// The chunks' bytes; empty when they are in the caller's scratch
    /// (`inScratch`).
    pub data: Buffer,
    /// True when the chunks' bytes were written to the start of the
    /// `scratch` given to `readMany` (up to `starts`' last entry), not to
    /// `data`.
    pub in_scratch: bool,
    /// Dictionaries of the present items points, every chunk together.
    pub dicts: Vec<Buffer>,
    /// Per present point of items chunks, in order: its index in `dicts`.
    /// Empty when `offsets` is.
    pub point_dicts: Uint16Array,
    /// Records that failed verification and were treated as missing.
    pub corrupt: Vec<String>,
}

#[derive(Default)]
pub struct ChunkBatch<'s> {
    gathered: Vec<u8>,
    kinds: Vec<u8>,
    counts: Vec<u32>,
    present: Vec<u8>,
    starts: Vec<u32>,
    offsets: Vec<u32>,
    data: Vec<u8>,
    /// The caller's memory for the chunks' bytes while they fit there and
    /// are all items (see `put`), with `in_scratch` bytes written.
    scratch: Option<&'s mut [u8]>,
    in_scratch: usize,
    dicts: Vec<Vec<u8>>,
    point_dicts: Vec<u16>,
    corrupt: Vec<String>,
}

impl<'s> ChunkBatch<'s> {
    /// An empty batch whose chunks' bytes go to `scratch` while they fit
    /// there (a run reuses one scratch for all its batches: fresh memory
    /// for every batch costs a page fault per 4 KiB).
    fn new(scratch: Option<&'s mut [u8]>) -> Self {
        ChunkBatch { starts: vec![0], scratch, ..Default::default() }
    }

    /// Bytes of chunk data so far.
    fn data_len(&self) -> usize {
        if self.scratch.is_some() {
            self.in_scratch
        } else {
            self.data.len()
        }
    }

    /// Appends chunk bytes: to the scratch while they fit, else (from then
    /// on) to `data`.
    fn put(&mut self, bytes: &[u8]) {
        if let Some(to) =
            self.scratch.as_deref_mut().and_then(|s| s.get_mut(self.in_scratch..self.in_scratch + bytes.len()))
        {
            to.copy_from_slice(bytes);
            self.in_scratch += bytes.len();
            return;
        }
        self.leave_scratch(bytes.len());
        self.data.extend_from_slice(bytes);
    }

    /// Moves the bytes in the scratch to `data` (with room for `more`);
    /// later bytes go to `data` too.
    fn leave_scratch(&mut self, more: usize) {
        if let Some(s) = self.scratch.take() {
            self.data.reserve(2 * self.in_scratch + more);
            self.data.extend_from_slice(&s[..self.in_scratch]);
        }
    }

    /// A whole chunk copied into the gather output: counted, no data and
    /// no presence bytes.
    fn push_gathered(&mut self, kind: u8, points: usize) {
        self.gathered.push(1);
        self.kinds.push(kind);
        self.counts.push(points as u32);
        self.starts.push(self.data_len() as u32);
    }

    /// A chunk whose every point is present, from its own complete dense
    /// record (record order is request order): its data area in one copy
    /// (no presence bytes: every point is there).
    fn push_record(&mut self, v: &RecordView<'_>) {
        match v.dense_items() {
            None => self.append::<&[u8]>(v.kind, v.n, v.data(), &[], &[], &[]),
            Some(items) => self.append(KIND_ITEMS, v.n, items.data, &items.offsets, &items.dicts, &items.point_dicts),
        }
    }

    /// Appends one chunk's `count` present points (their presence bytes are
    /// the caller's): `data`, aligned after a typed chunk (a typed chunk's
    /// bytes never go to the scratch: JS views them in place, and may keep
    /// the view as the chunk's outputs), and for items
    /// their `offsets` (count+1, relative to `data`), dictionaries and
    /// per-point dictionary indices, mapped to the batch's dictionaries.
    fn append<D: AsRef<[u8]>>(
        &mut self,
        kind: u8,
        count: usize,
        data: &[u8],
        offsets: &[u32],
        dicts: &[D],
        point_dicts: &[u16],
    ) {
        self.gathered.push(0);
        self.kinds.push(kind);
        self.counts.push(count as u32);
        if kind != KIND_ITEMS {
            self.leave_scratch(data.len());
        }
        self.put(data);
        if kind != KIND_ITEMS {
            self.align();
        }
        self.starts.push(self.data_len() as u32);
        if kind == KIND_ITEMS && count > 0 {
            self.offsets.extend_from_slice(offsets);
            let map: Vec<u16> = dicts.iter().map(|x| self.dict_index(x.as_ref())).collect();
            self.point_dicts.extend(point_dicts.iter().map(|&k| map[k as usize]));
        }
    }

    /// Index of `dict` in the batch's dictionaries (added when new).
    fn dict_index(&mut self, dict: &[u8]) -> u16 {
        match self.dicts.iter().position(|x| x.as_slice() == dict) {
            Some(k) => k as u16,
            None => {
                self.dicts.push(dict.to_vec());
                (self.dicts.len() - 1) as u16
            }
        }
    }

    /// Pads `data` to a multiple of 8 bytes after a typed chunk, so that
    /// every typed chunk starts aligned and JS can view it without a copy
    /// (a chunk's bytes are its count times its width from its start).
    fn align(&mut self) {
        let pad = (8 - self.data_len() % 8) % 8;
        self.put(&[0; 8][..pad]);
    }

    fn check_size(&self) -> CoreResult<()> {
        if u32::try_from(self.data_len()).is_err() {
            return Err(invalid("a read batch over 4 GiB"));
        }
        Ok(())
    }

    fn push(&mut self, d: ChunkData) -> CoreResult<()> {
        let count = d.present.iter().filter(|&&p| p).count();
        if count < d.present.len() {
            self.present.extend(d.present.iter().map(|&p| u8::from(p)));
        }
        self.append(d.kind, count, &d.data, &d.offsets, &d.dicts, &d.point_dicts);
        self.check_size()?;
        self.corrupt.extend(d.corrupt.into_iter().map(|(c, r)| format!("{}: {r}", canonical::hex(&c))));
        Ok(())
    }
}

pub(crate) fn batch_to_js(b: ChunkBatch<'_>) -> Result<BindingChunkBatch> {
    // Offsets and per-point dictionaries matter only to tell dictionaries
    // apart (the chunks' bytes are msgpack sequences).
    let several = b.dicts.len() > 1;
    Ok(BindingChunkBatch {
        gathered: b.gathered.into(),
        kinds: b.kinds.into(),
        counts: b.counts.into(),
        present: b.present.into(),
        starts: b.starts.into(),
        offsets: if several { b.offsets } else { Vec::new() }.into(),
        data: b.data.into(),
        in_scratch: b.scratch.is_some(),
        dicts: b.dicts.into_iter().map(Into::into).collect(),
        point_dicts: if several { b.point_dicts } else { Vec::new() }.into(),
        corrupt: b.corrupt,
    })
}

impl BindingPlan {
    /// The key of chunk `i` when it is requested in full and its own
    /// complete record serves it (`PlanState::is_whole`): such a chunk is
    /// read straight from that record. `bins` is scratch space.
    fn whole_key(&self, state: &PlanState, i: usize, bins: &mut Vec<u32>) -> Option<ChunkKey> {
        let (req, rec) = self.plan.chunk_bins_into(i, bins);
        (req == rec && state.is_whole(i)).then(|| self.grid.chunk_key(bins))
    }

    pub(crate) fn read_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<ChunkData> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            store.read_chunk(cache, &r)
        })
    }

    /// Reads chunks in one read transaction. With `gather`, whole chunks of
    /// the gather's dtype are copied straight into its output (at their rows
    /// of the plan's flat output) instead of into the batch. The chunks'
    /// bytes go to `scratch` while they fit there and are all items.
    pub(crate) fn read_many_in<'s>(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        chunks: &[u32],
        gather: Option<Gather<'_>>,
        scratch: Option<&'s mut [u8]>,
    ) -> CoreResult<ChunkBatch<'s>> {
        let chunks: Vec<usize> = chunks.iter().map(|&i| self.check(i)).collect::<CoreResult<_>>()?;
        let (store, cache) = (&store.inner, id16(cache_id, "cache id")?);
        let mut b = ChunkBatch::new(scratch);
        let mut bins = Vec::new();
        let mut touched: Vec<ChunkKey> = Vec::new();
        store.read(|s, t| {
            // Records the plan's resolution verified in this very snapshot
            // are not verified again; others are verified as they are read
            // (gathered ones while they are copied: one pass).
            let verified = self.state.lock().unwrap().whole_verified_in == Some(Store::snapshot_id(t));
            // Whole chunks of the gather's dtype go straight into its
            // output, together; the rest (and any that fail their checksum)
            // one by one below.
            let gathered = match gather.as_ref() {
                Some(g) => self.gather_whole(s, t, &cache, &chunks, g, verified)?,
                None => Vec::new(),
            };
            // Each chunk's way: gathered above, straight from its own whole
            // record, or resolved (again) and read from its sources.
            enum Way<'t> {
                Gathered(u8, usize, ChunkKey),
                Whole(chunk_memo_core::record::RecordView<'t>, ChunkKey),
                Resolved(chunk_memo_core::store::Resolution, bool),
            }
            let mut ways = Vec::with_capacity(chunks.len());
            for (k, &i) in chunks.iter().enumerate() {
                if let Some(Some((kind, n, key))) = gathered.get(k) {
                    ways.push(Way::Gathered(*kind, *n, *key));
                    continue;
                }
                // A whole chunk requested in full: straight from its own
                // record (typed: its raw array, one copy).
                let mut resolved_again = false;
                let whole = self.whole_key(&self.state.lock().unwrap(), i, &mut bins);
                if let Some(key) = whole {
                    let read = match s.whole_record_in(t, &cache, &key)? {
                        None => None,
                        Some((v, bytes)) => match gather.as_ref() {
                            // Of the gather's dtype yet not gathered above: its
                            // checksum failed there.
                            Some(g) if g.kind == v.kind => None,
                            _ if !verified && !v.verify(bytes) => None,
                            _ => Some(v),
                        },
                    };
                    if let Some(v) = read {
                        ways.push(Way::Whole(v, key));
                        continue;
                    }
                    // Damaged, or changed since the plan was resolved: the
                    // chunk is resolved again below, which reports the
                    // damage and serves what other records hold.
                    self.state.lock().unwrap().forget(i);
                    resolved_again = true;
                }
                ways.push(Way::Resolved(self.resolution_in(s, t, &cache, i)?, resolved_again));
            }
            // A record serving several chunks in a row is parsed once; the
            // sources of many chunks (a few points from each of many large
            // records) are verified ahead, on every core.
            let mut memo = ReadMemo::default();
            let sources: Vec<ChunkKey> = ways
                .iter()
                .filter_map(|w| match w {
                    Way::Resolved(r, _) => Some(r.sources.iter().map(|src| src.chunk)),
                    _ => None,
                })
                .flatten()
                .collect();
            if sources.len() > 1 {
                memo.verify_ahead(s, t, &cache, sources)?;
            }
            for way in ways {
                match way {
                    Way::Gathered(kind, n, key) => {
                        b.push_gathered(kind, n);
                        touched.push(key);
                    }
                    Way::Whole(v, key) => {
                        b.push_record(&v);
                        b.check_size()?;
                        touched.push(key);
                    }
                    Way::Resolved(r, resolved_again) => {
                        let mut d = if r.sources.is_empty() && r.corrupt.is_empty() {
                            // Nothing stored: no read.
                            ChunkData { present: vec![false; r.requested as usize], ..Default::default() }
                        } else {
                            touched.extend(r.sources.iter().map(|src| src.chunk));
                            s.read_chunk_memo(t, &cache, &r, &mut memo)?
                        };
                        if resolved_again {
                            // Damage the plan's resolution did not see (and so did not report).
                            d.corrupt.extend(r.corrupt);
                        }
                        b.push(d)?;
                    }
                }
            }
            Ok(())
        })?;
        store.note_accesses(&cache, &touched);
        Ok(b)
    }
}

/// Stored bytes of at least this much in one read are copied into the
/// gather output by several threads (page faults of a fresh output and the
/// checksum then run on every core; one thread copied 80 MB at ~1.6 GB/s).
const PARALLEL_GATHER_BYTES: usize = 4 << 20;

/// Reads of at least this many chunks are gathered on several threads
/// too, however few their bytes (their keys and lookups are the work).
const PARALLEL_GATHER_CHUNKS: usize = 2048;

/// Threads that copy one read into the gather output at most (the calling
/// thread included).
const GATHER_THREADS: usize = 4;

/// Consecutive rows of a gathered chunk of at least this many bytes are
/// mapped in one call before they are filled.
const PREFAULT_ROWS_BYTES: usize = 64 << 10;

/// Stretches of rows (after joining those end to end) beyond which
/// `Gather::map_rows` leaves the rows to fault in rather than sort them.
const MAP_ROWS_SORTED_MAX: usize = 1 << 16;

/// Bytes a gathering thread takes at a time (whole chunks, one at least).
const GATHER_STEP_BYTES: usize = 256 << 10;

impl BindingPlan {
    /// Copies every one of `chunks` that is whole, of the gather's dtype
    /// and read from its own record straight into the gather output.
    /// Returns, per chunk, its kind, points and key when it was placed;
    /// `None` leaves it to the one-by-one path (another kind, not whole, or
    /// a record that fails its checksum: that path reports the damage and
    /// serves what other records hold, overwriting the rows copied here).
    ///
    /// Threads take stretches of about GATHER_STEP_BYTES of chunks as they
    /// go, the calling thread among them, so one that is slowed (by page
    /// faults, or another thread on its core) holds the others up by one
    /// stretch at most. Each computes its stretch's keys, looks the records
    /// up in one walk in key order (chunks close in grid order have records
    /// close together: a cursor step each) and copies them; a helper thread
    /// does so in a read transaction of its own in the same snapshot.
    fn gather_whole(
        &self,
        s: &Store,
        t: &ReadTxn<'_>,
        cache: &CacheId,
        chunks: &[usize],
        g: &Gather<'_>,
        verified: bool,
    ) -> CoreResult<Vec<Option<(u8, usize, ChunkKey)>>> {
        // Which chunks the plan's resolution found whole, and their bytes.
        let mut bytes = 0usize;
        let whole: Vec<bool> = {
            let state = self.state.lock().unwrap();
            let mut bins = Vec::new();
            chunks
                .iter()
                .map(|&i| {
                    let (req, rec) = self.plan.chunk_bins_into(i, &mut bins);
                    let whole = req == rec && state.is_whole(i);
                    bytes += if whole { req as usize * g.width } else { 0 };
                    whole
                })
                .collect()
        };
        let threads = if bytes >= PARALLEL_GATHER_BYTES || chunks.len() >= PARALLEL_GATHER_CHUNKS {
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(GATHER_THREADS)
        } else {
            1
        };
        let step = (GATHER_STEP_BYTES * chunks.len()).div_ceil(bytes.max(1)).max(1);
        let next = AtomicUsize::new(0);
        // (position in `chunks`, kind, points, key) of each chunk placed
        type Placed = Vec<(usize, u8, usize, ChunkKey)>;
        let work = |t: &ReadTxn<'_>| -> CoreResult<Placed> {
            let mut placed = Vec::new();
            let (mut bins, mut keys, mut at, mut rows) = (Vec::new(), Vec::new(), Vec::new(), Rows::default());
            loop {
                let from = next.fetch_add(step, Relaxed);
                if from >= chunks.len() {
                    return Ok(placed);
                }
                keys.clear();
                at.clear();
                for k in from..(from + step).min(chunks.len()) {
                    if whole[k] {
                        self.plan.chunk_bins_into(chunks[k], &mut bins);
                        keys.push(self.grid.chunk_key(&bins));
                        at.push(k);
                    }
                }
                let jobs: Vec<_> = s
                    .whole_records_in(t, cache, &keys)?
                    .into_iter()
                    .zip(at.iter().zip(&keys))
                    .filter_map(|(r, (&k, key))| r.filter(|(v, _)| v.kind == g.kind).map(|(v, r)| (k, v, r, *key)))
                    .collect();
                rows.clear();
                for (k, ..) in &jobs {
                    rows.push(&self.plan, chunks[*k]);
                }
                // SAFETY: the rows of the chunks taken here are theirs alone.
                unsafe { g.map_rows(rows.iter()) };
                for ((k, v, r, key), (starts, len)) in jobs.iter().zip(rows.iter()) {
                    // SAFETY: each chunk's rows are its own points' places
                    // in the output, so threads placing different chunks
                    // write disjoint bytes (each chunk is taken once).
                    if unsafe { g.place(starts, len, v, (!verified).then_some(*r)) }? {
                        placed.push((*k, v.kind, v.n, *key));
                    }
                }
            }
        };
        let snapshot = Store::snapshot_id(t);
        let found = std::thread::scope(|sc| {
            // A thread the OS will not start, or that cannot read this
            // snapshot, takes no stretch: the others take its share.
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(sc, || s.read_beside(snapshot, work)).ok())
                .collect();
            let mut found = vec![work(t)];
            for h in helpers {
                match h.join() {
                    Ok(Some(r)) => found.push(r),
                    Ok(None) => {}
                    Err(_) => found.push(Err(invalid("a thread gathering stored chunks panicked"))),
                }
            }
            found
        });
        let mut out = vec![None; chunks.len()];
        for placed in found {
            for (k, kind, n, key) in placed? {
                out[k] = Some((kind, n, key));
            }
        }
        Ok(out)
    }
}

/// Whole chunks of a plan copied into a gather output as the plan's
/// resolution finds their records (`Store::resolve_plan` with a taker): a run
/// that reads every stored chunk then walks the records once, not twice.
pub(crate) struct TakeInto<'a, 'g> {
    pub(crate) plan: &'a Plan,
    pub(crate) gather: &'a Gather<'g>,
    /// Verify each record's checksum while it is copied (the resolution
    /// did not).
    pub(crate) verify: bool,
}

impl TakeWhole for TakeInto<'_, '_> {
    fn begin(&self, chunks: std::ops::Range<usize>) -> Taker<'_> {
        let mut rows = Rows::default();
        for i in chunks.clone() {
            rows.push(self.plan, i);
        }
        // SAFETY: the resolution looks at each chunk on one thread, the one
        // it began the chunk's part on: these rows are this thread's alone.
        unsafe { self.gather.map_rows(rows.iter()) };
        Box::new(move |i: usize, record: &RecordView<'_>, bytes: &[u8]| {
            if record.kind != self.gather.kind || !chunks.contains(&i) {
                return false;
            }
            let (starts, len) = rows.get(i - chunks.start);
            // SAFETY: as above: chunk i's rows are written by this thread
            // alone. A record that fails its checksum is not taken (the
            // rows then hold bytes the run's read of the chunk overwrites).
            unsafe { self.gather.place(starts, len, record, self.verify.then_some(bytes)) }.unwrap_or(false)
        })
    }
}

/// The output rows of several chunks, one after another (as
/// `Plan::out_rows` gives each), in flat lists reused from part to part.
#[derive(Default)]
struct Rows {
    starts: Vec<u64>,
    /// Per chunk: where its starts end in `starts`, and its row length.
    ends: Vec<(usize, usize)>,
    scratch: RowScratch,
}

impl Rows {
    fn clear(&mut self) {
        self.starts.clear();
        self.ends.clear();
    }

    /// Appends chunk `i`'s rows.
    fn push(&mut self, plan: &Plan, i: usize) {
        let len = plan.out_rows_into(i, &mut self.scratch, &mut self.starts);
        self.ends.push((self.starts.len(), len));
    }

    /// The rows of the `k`-th chunk pushed: their starts and length.
    fn get(&self, k: usize) -> (&[u64], usize) {
        let from = if k == 0 { 0 } else { self.ends[k - 1].0 };
        let (to, len) = self.ends[k];
        (&self.starts[from..to], len)
    }

    fn iter(&self) -> impl Iterator<Item = (&[u64], usize)> {
        (0..self.ends.len()).map(|k| self.get(k))
    }
}

/// The flat output of a run, for whole typed chunks to be copied into.
pub(crate) struct Gather<'a> {
    kind: u8,
    width: usize,
    out: *mut u8,
    len: usize,
    /// The output's bytes, borrowed for as long as the gather lives.
    _out: std::marker::PhantomData<&'a mut [u8]>,
}

// SAFETY: a gather only writes through `out` in `place`, whose callers
// place different chunks from different threads (disjoint rows).
unsafe impl Sync for Gather<'_> {}

impl<'a> Gather<'a> {
    fn new(kind: u8, width: usize, out: &'a mut [u8]) -> Self {
        Gather { kind, width, out: out.as_mut_ptr(), len: out.len(), _out: std::marker::PhantomData }
    }

    /// The gather a synchronous call was given (`gatherKind` and
    /// `gatherOut`, both or neither): `out` is the caller's own output,
    /// which JS cannot touch while the call runs.
    pub(crate) fn of_js(kind: Option<u32>, out: Option<&'a mut Uint8Array>) -> CoreResult<Option<Gather<'a>>> {
        match (kind, out) {
            (Some(kind), Some(out)) => {
                let kind = u8::try_from(kind).map_err(|_| invalid(format!("gatherKind {kind} is not a dtype")))?;
                let Some(width) = kind_width(kind)? else {
                    return Err(invalid("gatherKind must be a typed dtype, not items"));
                };
                // SAFETY: the call is synchronous, so JS cannot touch the
                // array while it is written; it is the caller's own
                // output, not shared with other threads.
                Ok(Some(Gather::new(kind, width, unsafe { out.as_mut() })))
            }
            (None, None) => Ok(None),
            _ => Err(invalid("give gatherKind and gatherOut together")),
        }
    }

    /// Maps (populates) the output's pages under `rows` (chunks' rows, as
    /// `Plan::out_rows` gives them) before they are filled: a fresh output
    /// would take a page fault per 4 KiB. Rows that lie end to end, within
    /// a chunk or across chunks, are mapped in one call per stretch; shorter
    /// stretches than PREFAULT_ROWS_BYTES are left to fault in.
    ///
    /// # Safety
    /// The rows must be ones the caller alone fills (see `place`).
    unsafe fn map_rows<'r>(&self, rows: impl Iterator<Item = (&'r [u64], usize)>) {
        let width = self.width;
        // Rows end to end in the order given are joined as they come (the
        // rows of chunks cut along the first axis need no sorting).
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let all = rows
            .flat_map(|(starts, len)| starts.iter().map(move |&s| (s as usize * width, (s as usize + len) * width)));
        for (from, to) in all.filter(|&(_, end)| end <= self.len) {
            match spans.last_mut() {
                Some(last) if last.1 == from => last.1 = to,
                _ => spans.push((from, to)),
            }
        }
        // Many short rows apart from each other (chunks cut along the last
        // axis): sorting them would cost more than their page faults.
        if spans.len() > MAP_ROWS_SORTED_MAX {
            return;
        }
        spans.sort_unstable();
        let mut k = 0;
        while k < spans.len() {
            let (from, mut to) = spans[k];
            k += 1;
            while k < spans.len() && spans[k].0 == to {
                to = spans[k].1;
                k += 1;
            }
            // SAFETY: [from, to) lies in the output (rows past its end were
            // left out above); populating never changes contents.
            chunk_memo_core::memory::prefault_over(
                unsafe { std::slice::from_raw_parts_mut(self.out.add(from), to - from) },
                PREFAULT_ROWS_BYTES,
            );
        }
    }

    /// Copies a chunk's outputs (`v`'s data, request order) to its rows
    /// (`starts`, each `len` points: `Plan::out_rows`). With `verify` (the
    /// record's bytes), the record's checksum is checked as the data is
    /// copied, stretch by stretch; false when it does not match (the rows
    /// then hold bytes the caller must overwrite).
    ///
    /// # Safety
    /// Calls running at the same time must place different chunks (whose
    /// rows are disjoint).
    unsafe fn place(&self, starts: &[u64], len: usize, v: &RecordView<'_>, verify: Option<&[u8]>) -> CoreResult<bool> {
        let row = len * self.width;
        let data = v.data();
        if data.len() != starts.len() * row {
            return Err(invalid("a gathered chunk's data does not match its rows"));
        }
        if starts.iter().any(|&s| s as usize * self.width + row > self.len) {
            return Err(invalid("the gather output is smaller than the plan's output"));
        }
        let (out, width) = (self.out, self.width);
        // Bytes `bytes` at `off` of the data go to their rows (a stretch may
        // span several rows, or part of one).
        let copy = |mut off: usize, mut bytes: &[u8]| {
            while !bytes.is_empty() {
                let (r, in_row) = (off / row, off % row);
                let n = bytes.len().min(row - in_row);
                let at = starts[r] as usize * width + in_row;
                // SAFETY: at + n <= len (checked above: the row lies in the
                // output), and the source is the record, not the output.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(at), n) };
                (off, bytes) = (off + n, &bytes[n..]);
            }
        };
        Ok(match verify {
            Some(record) => v.verify_taking_data(record, copy),
            None => {
                if row > 0 {
                    copy(0, data);
                }
                true
            }
        })
    }
}

#[napi]
impl BindingPlan {
    /// Reads the stored requested points of chunk `i`.
    #[napi]
    pub fn read(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<BindingChunkData> {
        chunk_data_to_js(boundary(&env, || self.read_op(store, &cache_id, i)?())?)
    }

    /// Reads the stored requested points of several chunks (one call for
    /// the batch; see `BindingChunkBatch`). With `gatherKind` and
    /// `gatherOut` (the bytes of the plan's flat output, a typed array of
    /// that dtype), whole chunks of that dtype are copied straight to their
    /// place in it and marked in `gathered`, with no data in the batch.
    /// With `scratch` (memory of the caller's that nothing else views),
    /// the chunks' bytes are written there instead of to a new `data` when
    /// they fit and are all items (`inScratch`); the caller may reuse it
    /// once it has decoded them (decoded values keep no view of it).
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn read_many(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        chunks: Uint32Array,
        gather_kind: Option<u32>,
        mut gather_out: Option<Uint8Array>,
        mut scratch: Option<Buffer>,
    ) -> Result<BindingChunkBatch> {
        batch_to_js(boundary(&env, || {
            let gather = Gather::of_js(gather_kind, gather_out.as_mut())?;
            let scratch = scratch.as_mut().map(|s| s.as_mut());
            self.read_many_in(store, &cache_id, &chunks, gather, scratch)
        })?)
    }
}
