//! Reads: one chunk (`read`) or several in one call (`readMany`).

use super::BindingPlan;
use crate::errors::{boundary, invalid, CoreResult};
use crate::id16;
use crate::store::BindingStore;
use chunk_memo_core::canonical;
use chunk_memo_core::store::ChunkData;
use napi::bindgen_prelude::*;
use napi_derive::napi;

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
    /// A chunk whose every point is present, typed: `data` in request order.
    fn push_whole(&mut self, kind: u8, points: usize, data: &[u8]) {
        self.kinds.push(kind);
        self.counts.push(points as u32);
        self.present.resize(self.present.len() + points, 1);
        self.data.extend_from_slice(data);
        self.starts.push(self.data.len() as u32);
    }

    fn check_size(&self) -> CoreResult<()> {
        if u32::try_from(self.data.len()).is_err() {
            return Err(invalid("a read batch over 4 GiB"));
        }
        Ok(())
    }

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

impl BindingPlan {
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
            let mut bins = Vec::new();
            for i in chunks {
                // A whole typed chunk requested in full: its raw array, one copy.
                let (req, rec) = me.plan.chunk_bins_into(i, &mut bins);
                if req == rec && me.state.lock().unwrap().is_whole(i) {
                    let key = me.grid.chunk_key(&bins);
                    if store.read_whole_typed(&cache, &key, |kind, data| b.push_whole(kind, req as usize, data))? {
                        b.check_size()?;
                        continue;
                    }
                }
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
}

#[napi]
impl BindingPlan {
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
}
