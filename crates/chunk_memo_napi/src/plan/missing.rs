//! Presence and missing points of a chunk (product blocks).

use super::BindingPlan;
use crate::errors::{boundary, CoreResult};
use crate::store::BindingStore;
use chunk_memo_core::planner::missing_blocks;
use chunk_memo_core::store::ChunkGeometry;
use napi::bindgen_prelude::*;
use napi_derive::napi;

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

impl BindingPlan {
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
}

#[napi]
impl BindingPlan {
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
}
