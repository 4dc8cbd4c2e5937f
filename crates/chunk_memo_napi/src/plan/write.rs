//! Writes: one chunk (`write`) or several in one transaction (`writeBatch`),
//! each merged with what is stored.

use super::BindingPlan;
use crate::errors::{boundary, invalid, CoreResult};
use crate::id16;
use crate::store::BindingStore;
use chunk_memo_core::store::{ChunkGeometry, ChunkWrite, Resolution, WritePoints};
use napi::bindgen_prelude::*;
use napi_derive::napi;

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

    /// Writes chunks in one transaction, each merged with what is stored
    /// (owned data: the operation may run on another thread).
    pub(crate) fn owned_batch_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        owned: Vec<OwnedWrite>,
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let me = self.share();
        let (store, cache) = (store.inner.clone(), id16(cache_id, "cache id")?);
        Ok(move || {
            let parts: Vec<WritePart<'_>> = owned
                .iter()
                .map(|w| WritePart {
                    chunk: w.chunk,
                    kind: w.kind,
                    points: WritePoints::Given(&w.points),
                    offsets: &w.offsets,
                    data: &w.data,
                    dict: &w.dict,
                })
                .collect();
            me.write_parts(&store, &cache, &parts)
        })
    }

    /// Writes chunks in one transaction, each merged with what is stored.
    fn write_parts(
        &self,
        store: &chunk_memo_core::store::Store,
        cache: &[u8; 16],
        parts: &[WritePart<'_>],
    ) -> CoreResult<()> {
        let res: Vec<Option<Resolution>> = {
            let mut st = self.state.lock().unwrap();
            st.bind(store, cache);
            // Only resolutions through other records matter to a write.
            parts.iter().map(|w| st.known.get(&w.chunk).cloned()).collect()
        };
        let geos: Vec<ChunkGeometry> = parts.iter().map(|w| ChunkGeometry::of(&self.plan, w.chunk)).collect();
        let writes: Vec<ChunkWrite<'_>> = parts
            .iter()
            .zip(&geos)
            .zip(&res)
            .map(|((w, geo), r)| ChunkWrite {
                geo,
                grid: &self.grid,
                res: r.as_ref(),
                kind: w.kind,
                points: w.points,
                offsets: w.offsets,
                data: w.data,
                dict: w.dict,
            })
            .collect();
        store.write_chunks(cache, &writes)?;
        let mut st = self.state.lock().unwrap();
        for w in parts {
            st.forget(w.chunk);
        }
        Ok(())
    }
}

/// New points of one chunk, borrowed from the caller's buffers.
struct WritePart<'a> {
    chunk: usize,
    kind: u8,
    points: WritePoints<'a>,
    offsets: &'a [u32],
    data: &'a [u8],
    dict: &'a [u8],
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

    /// Writes new points of chunks `from..to` of a flat batch in one
    /// transaction (one crossing for the batch, nothing per chunk): chunk k
    /// is plan chunk `chunks[k]` of record kind `kinds[k]`; its points are
    /// `points[pointEnds[k-1]..pointEnds[k]]`, or with `whole[k]` = 1 every
    /// requested point in request order (then none are listed), and its bytes lie in buffer
    /// `data[partOf[k]]`, up to `dataEnds[k]`, from the end of the previous
    /// chunk in the same buffer (0 for the first chunk of a buffer:
    /// large typed outputs come as buffers of their own, not copied into
    /// the batch's); an items chunk of n points takes
    /// the next n+1 `offsets` (relative to its bytes; items chunks in batch
    /// order); `dictOf[k]` is 0 (no dictionary) or 1 + an index into `dicts`.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn write_flat(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        chunks: Uint32Array,
        kinds: Uint8Array,
        point_ends: Uint32Array,
        whole: Uint8Array,
        points: Uint32Array,
        offsets: Uint32Array,
        part_of: Uint32Array,
        data_ends: Uint32Array,
        data: Vec<Buffer>,
        dict_of: Uint32Array,
        dicts: Vec<Buffer>,
        from: u32,
        to: u32,
    ) -> Result<()> {
        let batch =
            FlatBatch { chunks, kinds, point_ends, whole, points, offsets, part_of, data_ends, data, dict_of, dicts };
        boundary(&env, || {
            let cache = id16(&cache_id, "cache id")?;
            self.write_parts(&store.inner, &cache, &batch.parts(self, from, to)?)
        })
    }

    /// `writeFlat` on the store's writer thread: returns at once, and the
    /// transaction commits while the caller goes on (the arguments are
    /// held, not copied: the caller must not change them until the write
    /// settled). Writes queued this way commit in the order queued.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn write_flat_behind(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        chunks: Uint32Array,
        kinds: Uint8Array,
        point_ends: Uint32Array,
        whole: Uint8Array,
        points: Uint32Array,
        offsets: Uint32Array,
        part_of: Uint32Array,
        data_ends: Uint32Array,
        data: Vec<Buffer>,
        dict_of: Uint32Array,
        dicts: Vec<Buffer>,
        from: u32,
        to: u32,
    ) -> Result<crate::behind::BindingPendingWrite> {
        let batch =
            FlatBatch { chunks, kinds, point_ends, whole, points, offsets, part_of, data_ends, data, dict_of, dicts };
        boundary(&env, || {
            let cache = id16(&cache_id, "cache id")?;
            // Checked here, so a malformed batch fails at the call.
            batch.parts(self, from, to)?;
            let me = self.share();
            let pending = store.inner.behind(false, move |s| me.write_parts(s, &cache, &batch.parts(&me, from, to)?));
            Ok(crate::behind::BindingPendingWrite { pending: Some(pending) })
        })
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

/// The arguments of `writeFlat` (see there).
struct FlatBatch {
    chunks: Uint32Array,
    kinds: Uint8Array,
    point_ends: Uint32Array,
    whole: Uint8Array,
    points: Uint32Array,
    offsets: Uint32Array,
    part_of: Uint32Array,
    data_ends: Uint32Array,
    data: Vec<Buffer>,
    dict_of: Uint32Array,
    dicts: Vec<Buffer>,
}

impl FlatBatch {
    /// Chunks `from..to` as write parts, checked against the plan and the arrays.
    fn parts(&self, plan: &BindingPlan, from: u32, to: u32) -> CoreResult<Vec<WritePart<'_>>> {
        let n = self.chunks.len();
        let (from, to) = (from as usize, to as usize);
        if [self.kinds.len(), self.point_ends.len(), self.whole.len(), self.data_ends.len(), self.dict_of.len()]
            .iter()
            .any(|&l| l != n)
            || from > to
            || to > n
        {
            return Err(invalid("writeFlat: the per-chunk arrays differ in length or the range is outside them"));
        }
        let bad = || invalid("writeFlat: point, offset or byte ranges outside their arrays");
        let mut owned = Vec::with_capacity(to - from);
        let mut off_at = 0usize;
        // Where the next chunk's bytes start, per buffer.
        let mut part_at = vec![0usize; self.data.len()];
        for k in 0..to {
            let items = self.kinds[k] == chunk_memo_core::record::KIND_ITEMS;
            let p0 = if k == 0 { 0 } else { self.point_ends[k - 1] as usize };
            let p1 = self.point_ends[k] as usize;
            let listed = p1.checked_sub(p0).ok_or_else(bad)?;
            let chunk = plan.check(self.chunks[k])?;
            let (points, count) = match self.whole[k] {
                0 => (WritePoints::Given(self.points.get(p0..p1).ok_or_else(bad)?), listed),
                1 if listed == 0 => (WritePoints::All, plan.plan.requested(chunk) as usize),
                _ => return Err(invalid("writeFlat: whole[k] must be 0, or 1 with no points listed for chunk k")),
            };
            let offs = if items {
                let o = self.offsets.get(off_at..off_at + count + 1).ok_or_else(bad)?;
                off_at += count + 1;
                o
            } else {
                &[][..]
            };
            let p = self.part_of[k] as usize;
            let part = self.data.get(p).ok_or_else(bad)?;
            let d0 = std::mem::replace(&mut part_at[p], self.data_ends[k] as usize);
            if k < from {
                continue;
            }
            let dict: &[u8] = match self.dict_of[k] {
                0 => &[],
                d => self.dicts.get(d as usize - 1).ok_or_else(bad)?,
            };
            owned.push(WritePart {
                chunk,
                kind: self.kinds[k],
                points,
                offsets: offs,
                data: part.get(d0..self.data_ends[k] as usize).ok_or_else(bad)?,
                dict,
            });
        }
        Ok(owned)
    }
}
