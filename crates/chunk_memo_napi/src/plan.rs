//! `BindingPlan`: a planned selection; resolves, reads and writes its
//! chunks, with a per-plan cache of resolutions.

use crate::errors::{boundary, invalid, CoreResult};
use crate::grid::*;
use crate::id16;
use crate::store::*;
use chunk_memo_core::canonical;
use chunk_memo_core::planner::{missing_blocks, Grid, Plan};
use chunk_memo_core::store::{Catalog, ChunkData, ChunkGeometry, ChunkWrite, Resolution, Source, Store, WholeLayout};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) struct PlanState {
    /// Store path and cache id the cached resolutions belong to.
    pub(crate) owner: Option<(std::path::PathBuf, [u8; 16])>,
    pub(crate) catalog: Catalog,
    /// Per chunk, what is known of its resolution (`UNKNOWN`, `EMPTY`,
    /// `WHOLE`, `KNOWN`): one byte a chunk, so a plan of a million chunks
    /// costs a megabyte, not a resolution each.
    flags: Vec<u8>,
    /// The resolutions of `KNOWN` chunks (partial, served by other
    /// records, or with damaged records).
    known: HashMap<usize, Resolution>,
}

/// Not resolved since the plan was made or the chunk was written.
const UNKNOWN: u8 = 0;
/// Nothing stored.
const EMPTY: u8 = 1;
/// The chunk's own complete record serves every point.
const WHOLE: u8 = 2;
/// In `PlanState::known`.
const KNOWN: u8 = 3;

impl PlanState {
    pub(crate) fn new(n_chunks: usize) -> PlanState {
        PlanState { owner: None, catalog: Catalog::default(), flags: vec![UNKNOWN; n_chunks], known: HashMap::new() }
    }

    /// Drops cached resolutions made for another store or cache.
    pub(crate) fn bind(&mut self, store: &Store, cache: &[u8; 16]) {
        let owner = (store.path().to_path_buf(), *cache);
        if self.owner.as_ref() != Some(&owner) {
            self.catalog = Catalog::default();
            self.forget_all();
            self.owner = Some(owner);
        }
    }

    fn forget_all(&mut self) {
        self.flags.iter_mut().for_each(|f| *f = UNKNOWN);
        self.known.clear();
    }

    /// Caches chunk `i`'s resolution.
    pub(crate) fn set(&mut self, i: usize, r: Resolution) {
        self.known.remove(&i);
        self.flags[i] = if !r.corrupt.is_empty() {
            self.known.insert(i, r);
            KNOWN
        } else if r.available == 0 {
            EMPTY
        } else if r.sources.len() == 1 && r.sources[0].whole.is_some() && r.available == r.requested {
            WHOLE
        } else {
            self.known.insert(i, r);
            KNOWN
        };
    }

    /// Forgets chunk `i`'s resolution (it was written).
    pub(crate) fn forget(&mut self, i: usize) {
        self.flags[i] = UNKNOWN;
        self.known.remove(&i);
    }

    /// The cached resolution of chunk `i`, rebuilt from the geometry for
    /// empty and whole chunks; `None` when not known.
    pub(crate) fn cached(&self, grid: &Grid, plan: &Plan, i: usize) -> Option<Resolution> {
        match self.flags[i] {
            EMPTY | WHOLE => {
                let geo = ChunkGeometry::of(plan, i);
                let key = grid.chunk_key(&geo.bins);
                let requested = geo.requested() as u32;
                let mut r = Resolution { key, requested, ..Default::default() };
                if self.flags[i] == WHOLE {
                    r.available = requested;
                    r.sources.push(Source {
                        chunk: key,
                        map: Vec::new(),
                        whole: Some(WholeLayout { sel: geo.sel, lens: geo.lens }),
                    });
                }
                Some(r)
            }
            KNOWN => self.known.get(&i).cloned(),
            _ => None,
        }
    }
}

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
    /// Per chunk: 0 = items (or nothing present), else a dtype code.
    pub kinds: Buffer,
    /// Per chunk: present points.
    pub counts: Uint32Array,
    /// Per requested point of every chunk, chunks in order: 1 when read.
    pub present: Buffer,
    /// Per chunk (and one more): where its bytes start in `data`.
    pub starts: Uint32Array,
    /// Items chunks, in order: count+1 offsets each, relative to the
    /// chunk's start in `data` (typed chunks have none).
    pub offsets: Uint32Array,
    pub data: Buffer,
    /// Dictionaries of the present items points, every chunk together.
    pub dicts: Vec<Buffer>,
    /// Per present point of items chunks, in order: its index in `dicts`.
    pub point_dicts: Uint16Array,
    /// Records that failed verification and were treated as missing.
    pub corrupt: Vec<String>,
}

#[derive(Default)]
pub struct ChunkBatch {
    kinds: Vec<u8>,
    counts: Vec<u32>,
    present: Vec<u8>,
    starts: Vec<u32>,
    offsets: Vec<u32>,
    data: Vec<u8>,
    dicts: Vec<Vec<u8>>,
    point_dicts: Vec<u16>,
    corrupt: Vec<String>,
}

impl ChunkBatch {
    fn push(&mut self, d: ChunkData) -> CoreResult<()> {
        let count = d.present.iter().filter(|&&p| p).count();
        self.kinds.push(d.kind);
        self.counts.push(count as u32);
        self.present.extend(d.present.iter().map(|&p| u8::from(p)));
        self.data.extend_from_slice(&d.data);
        if u32::try_from(self.data.len()).is_err() {
            return Err(invalid("a read batch over 4 GiB"));
        }
        self.starts.push(self.data.len() as u32);
        if d.kind == chunk_memo_core::record::KIND_ITEMS && count > 0 {
            self.offsets.extend_from_slice(&d.offsets);
            let map: Vec<u16> = d
                .dicts
                .into_iter()
                .map(|x| match self.dicts.iter().position(|y| *y == x) {
                    Some(k) => k as u16,
                    None => {
                        self.dicts.push(x);
                        (self.dicts.len() - 1) as u16
                    }
                })
                .collect();
            self.point_dicts.extend(d.point_dicts.iter().map(|&k| map[k as usize]));
        }
        self.corrupt.extend(d.corrupt.into_iter().map(|(c, r)| format!("{}: {r}", canonical::hex(&c))));
        Ok(())
    }
}

pub(crate) fn batch_to_js(b: ChunkBatch) -> Result<BindingChunkBatch> {
    Ok(BindingChunkBatch {
        kinds: b.kinds.into(),
        counts: b.counts.into(),
        present: b.present.into(),
        starts: b.starts.into(),
        offsets: b.offsets.into(),
        data: b.data.into(),
        dicts: b.dicts.into_iter().map(Into::into).collect(),
        point_dicts: b.point_dicts.into(),
        corrupt: b.corrupt,
    })
}

/// Missing points of a chunk.
pub struct Missing {
    pub(crate) blocks: Vec<chunk_memo_core::planner::Block>,
    pub(crate) points: Vec<u32>,
}

pub(crate) fn blocks_to_js(m: Missing) -> Result<BindingBlocks> {
    Ok(BindingBlocks {
        blocks: m.blocks.into_iter().map(|b| b.into_iter().map(Uint32Array::from).collect()).collect(),
        points: m.points.into(),
    })
}

/// Missing points of a chunk as product blocks.
#[napi(object)]
pub struct BindingBlocks {
    /// Per block, per axis: positions into the chunk's selected offsets.
    pub blocks: Vec<Vec<Uint32Array>>,
    /// Requested-point indices of every block's points, blocks in order,
    /// each in its grid order.
    pub points: Uint32Array,
}

/// A planned selection of a grid; resolves, reads and writes its chunks.
#[napi]
pub struct BindingPlan {
    pub(crate) grid: Arc<Grid>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) state: Arc<Mutex<PlanState>>,
}

pub(crate) type Resolved = (Vec<u32>, Vec<String>);

pub(crate) fn resolved_to_js(r: Resolved) -> Result<BindingResolved> {
    Ok(BindingResolved { available: r.0.into(), corrupt: r.1 })
}

/// Per chunk: how many requested points are stored.
#[napi(object)]
pub struct BindingResolved {
    pub available: Uint32Array,
    pub corrupt: Vec<String>,
}

impl BindingPlan {
    pub(crate) fn resolve_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
    ) -> CoreResult<impl FnOnce() -> CoreResult<Resolved> + Send + 'static> {
        let (store, grid, plan, state, cache) = (
            store.inner.clone(),
            self.grid.clone(),
            self.plan.clone(),
            self.state.clone(),
            id16(cache_id, "cache id")?,
        );
        Ok(move || {
            let mut st = state.lock().unwrap();
            st.bind(&store, &cache);
            let st = &mut *st;
            st.catalog = Catalog::default();
            st.forget_all();
            let mut avail = vec![0u32; plan.n_chunks];
            let mut corrupt = Vec::new();
            let mut found: Vec<(usize, Resolution)> = Vec::new();
            store.resolve_plan(&cache, &grid, &plan, &mut st.catalog, |i, r| {
                avail[i] = r.available;
                corrupt.extend(r.corrupt.iter().map(|(c, m)| format!("{}: {m}", canonical::hex(c))));
                found.push((i, r));
            })?;
            // Every chunk not found has nothing stored.
            st.flags.iter_mut().for_each(|f| *f = EMPTY);
            for (i, r) in found {
                st.set(i, r);
            }
            Ok((avail, corrupt))
        })
    }

    pub(crate) fn resolution(&self, store: &Store, cache: &[u8; 16], i: usize) -> CoreResult<Resolution> {
        let mut st = self.state.lock().unwrap();
        st.bind(store, cache);
        if let Some(r) = st.cached(&self.grid, &self.plan, i) {
            return Ok(r);
        }
        let st = &mut *st;
        let r = store.resolve(cache, &self.grid, &self.plan, i..i + 1, &mut st.catalog)?.pop().unwrap();
        st.set(i, r.clone());
        Ok(r)
    }

    /// A handle on the same plan and state.
    pub(crate) fn share(&self) -> BindingPlan {
        BindingPlan { grid: self.grid.clone(), plan: self.plan.clone(), state: self.state.clone() }
    }

    /// Prepares a per-chunk operation: checks the chunk index and the cache
    /// id, runs `f` when called.
    pub(crate) fn chunk_op<T: Send + 'static>(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
        f: impl FnOnce(&BindingPlan, &Store, &[u8; 16], usize) -> CoreResult<T> + Send + 'static,
    ) -> CoreResult<impl FnOnce() -> CoreResult<T> + Send + 'static> {
        let i = self.check(i)?;
        let me = self.share();
        let (store, cache) = (store.inner.clone(), id16(cache_id, "cache id")?);
        Ok(move || f(&me, &store, &cache, i))
    }

    pub(crate) fn presence_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<Vec<u8>> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            Ok((0..r.requested as usize).map(|k| u8::from(r.is_present(k))).collect())
        })
    }

    pub(crate) fn missing_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<Missing> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            let geo = ChunkGeometry::of(&me.plan, i);
            let dims: Vec<usize> = geo.sel.iter().map(|s| s.len()).collect();
            let missing: Vec<bool> = (0..r.requested as usize).map(|k| !r.is_present(k)).collect();
            let blocks = missing_blocks(&dims, &missing);
            let mut points = Vec::new();
            for b in &blocks {
                let mut acc = vec![0u32];
                for (a, idx) in b.iter().enumerate() {
                    let d = dims[a] as u32;
                    acc = acc.iter().flat_map(|&base| idx.iter().map(move |&x| base * d + x)).collect();
                }
                points.extend(acc);
            }
            Ok(Missing { blocks, points })
        })
    }

    pub(crate) fn check(&self, i: u32) -> CoreResult<usize> {
        if (i as usize) < self.plan.n_chunks {
            Ok(i as usize)
        } else {
            Err(invalid(format!("chunk {i} out of range")))
        }
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

    pub(crate) fn read_many_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        chunks: &[u32],
    ) -> CoreResult<impl FnOnce() -> CoreResult<ChunkBatch> + Send + 'static> {
        let chunks: Vec<usize> = chunks.iter().map(|&i| self.check(i)).collect::<CoreResult<_>>()?;
        let me = self.share();
        let (store, cache) = (store.inner.clone(), id16(cache_id, "cache id")?);
        Ok(move || {
            let mut b = ChunkBatch { starts: vec![0], ..Default::default() };
            for i in chunks {
                let r = me.resolution(&store, &cache, i)?;
                if r.sources.is_empty() && r.corrupt.is_empty() {
                    // Nothing stored: no read.
                    b.push(ChunkData { present: vec![false; r.requested as usize], ..Default::default() })?;
                } else {
                    b.push(store.read_chunk(&cache, &r)?)?;
                }
            }
            Ok(b)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
        kind: u32,
        points: &[u32],
        offsets: &[u32],
        data: &[u8],
        dict: &[u8],
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let w = OwnedWrite {
            chunk: self.check(i)?,
            kind: kind as u8,
            points: points.to_vec(),
            offsets: offsets.to_vec(),
            data: data.to_vec(),
            dict: dict.to_vec(),
        };
        self.owned_batch_op(store, cache_id, vec![w])
    }
}

/// New points of one chunk, for `writeBatch`.
#[napi(object)]
pub struct BindingChunkWrite {
    pub chunk: u32,
    pub kind: u32,
    pub points: Uint32Array,
    pub offsets: Uint32Array,
    pub data: Buffer,
    /// Items: the dictionary the points were packed with.
    pub dict: Option<Buffer>,
}

pub(crate) struct OwnedWrite {
    pub(crate) chunk: usize,
    pub(crate) kind: u8,
    pub(crate) points: Vec<u32>,
    pub(crate) offsets: Vec<u32>,
    pub(crate) data: Vec<u8>,
    pub(crate) dict: Vec<u8>,
}

impl BindingPlan {
    pub(crate) fn batch_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        writes: Vec<BindingChunkWrite>,
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let mut owned = Vec::with_capacity(writes.len());
        for w in writes {
            owned.push(OwnedWrite {
                chunk: self.check(w.chunk)?,
                kind: w.kind as u8,
                points: w.points.to_vec(),
                offsets: w.offsets.to_vec(),
                data: w.data.to_vec(),
                dict: w.dict.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
        self.owned_batch_op(store, cache_id, owned)
    }

    /// Writes chunks in one transaction, each merged with what is stored.
    pub(crate) fn owned_batch_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        owned: Vec<OwnedWrite>,
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let me = self.share();
        let (store, cache) = (store.inner.clone(), id16(cache_id, "cache id")?);
        Ok(move || {
            let res: Vec<Option<Resolution>> = {
                let mut st = me.state.lock().unwrap();
                st.bind(&store, &cache);
                // Only resolutions through other records matter to a write.
                owned.iter().map(|w| st.known.get(&w.chunk).cloned()).collect()
            };
            let geos: Vec<ChunkGeometry> = owned.iter().map(|w| ChunkGeometry::of(&me.plan, w.chunk)).collect();
            let writes: Vec<ChunkWrite<'_>> = owned
                .iter()
                .zip(&geos)
                .zip(&res)
                .map(|((w, geo), r)| ChunkWrite {
                    geo,
                    grid: &me.grid,
                    res: r.as_ref(),
                    kind: w.kind,
                    points: &w.points,
                    offsets: &w.offsets,
                    data: &w.data,
                    dict: &w.dict,
                })
                .collect();
            store.write_chunks(&cache, &writes)?;
            let mut st = me.state.lock().unwrap();
            for w in &owned {
                st.forget(w.chunk);
            }
            Ok(())
        })
    }
}

#[napi]
impl BindingPlan {
    /// Writes new points of several chunks in one transaction.
    #[napi]
    pub fn write_batch(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        writes: Vec<BindingChunkWrite>,
    ) -> Result<()> {
        boundary(&env, || self.batch_op(store, &cache_id, writes)?())
    }

    #[napi(getter)]
    pub fn chunk_count(&self) -> u32 {
        self.plan.n_chunks as u32
    }

    /// Selected points per axis.
    #[napi(getter)]
    pub fn shape(&self) -> Vec<u32> {
        self.plan.shape.clone()
    }

    /// Touched bins per axis; chunk `i` is the mixed-radix combination of
    /// them, first axis slowest.
    #[napi]
    pub fn describe(&self) -> Vec<BindingAxisPlan> {
        self.plan
            .axes
            .iter()
            .map(|bins| BindingAxisPlan {
                bin: bins.iter().map(|b| b.bin).collect(),
                start: bins.iter().map(|b| b.start).collect(),
                len: bins.iter().map(|b| b.len).collect(),
                sel_pos: bins.iter().map(|b| b.sel_pos).collect(),
                sel_count: bins.iter().map(|b| b.sel.len() as u32).collect(),
                sel: bins.iter().flat_map(|b| b.sel.iter().copied()).collect::<Vec<u32>>().into(),
            })
            .collect()
    }

    /// Key (16 bytes) of chunk `i`'s record.
    #[napi]
    pub fn chunk_key(&self, env: Env, i: u32) -> Result<Buffer> {
        boundary(&env, || {
            let i = self.check(i)?;
            Ok(self.grid.chunk_key(&ChunkGeometry::of(&self.plan, i).bins).to_vec().into())
        })
    }

    /// Resolves every chunk against the store: stored points per chunk.
    #[napi]
    pub fn resolve(&self, env: Env, store: &BindingStore, cache_id: Buffer) -> Result<BindingResolved> {
        resolved_to_js(boundary(&env, || self.resolve_op(store, &cache_id)?())?)
    }

    /// One byte per requested point of chunk `i`: 1 when stored.
    #[napi]
    pub fn presence(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<Buffer> {
        boundary(&env, || Ok(self.presence_op(store, &cache_id, i)?()?.into()))
    }

    /// Missing points of chunk `i` as disjoint product blocks.
    #[napi]
    pub fn missing(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<BindingBlocks> {
        blocks_to_js(boundary(&env, || self.missing_op(store, &cache_id, i)?())?)
    }

    /// Reads the stored requested points of chunk `i`.
    #[napi]
    pub fn read(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<BindingChunkData> {
        chunk_data_to_js(boundary(&env, || self.read_op(store, &cache_id, i)?())?)
    }

    /// Reads the stored requested points of several chunks (one call for
    /// the batch; see `BindingChunkBatch`).
    #[napi]
    pub fn read_many(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        chunks: Uint32Array,
    ) -> Result<BindingChunkBatch> {
        batch_to_js(boundary(&env, || self.read_many_op(store, &cache_id, &chunks)?())?)
    }

    /// Writes new points of chunk `i`: `points` are requested-point
    /// indices; items give `offsets` (points+1) into `data` and the
    /// `dict` they were packed with, typed kinds give raw little-endian
    /// elements.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        kind: u32,
        points: Uint32Array,
        offsets: Uint32Array,
        data: Buffer,
        dict: Option<Buffer>,
    ) -> Result<()> {
        boundary(&env, || {
            self.write_op(store, &cache_id, i, kind, &points, &offsets, &data, dict.as_deref().unwrap_or(&[]))?()
        })
    }
}
