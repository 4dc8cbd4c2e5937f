//! `BindingGrid`: axis names, value hashes and chunk sizes; plans selections.

use crate::errors::{boundary, invalid};
use crate::plan::*;
use chunk_memo_core::planner::{Axis, Grid};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------
// Grid and plans

/// A grid: axis names, value hashes and chunk sizes.
#[napi]
pub struct BindingGrid {
    pub(crate) inner: Arc<Grid>,
}

/// Touched bins of one axis of a plan. A whole axis (`whole`: every value
/// selected) lists nothing per bin: bin b starts at value b x `chunk`, holds
/// up to `chunk` of its `values` and selects all of them.
#[napi(object)]
pub struct BindingAxisPlan {
    pub whole: bool,
    pub values: u32,
    pub chunk: u32,
    pub bin: Uint32Array,
    pub start: Uint32Array,
    pub len: Uint32Array,
    /// Position in the axis' selection of each bin's first selected offset.
    pub sel_pos: Uint32Array,
    /// Number of selected offsets of each bin.
    pub sel_count: Uint32Array,
    /// Selected offsets of all bins, concatenated.
    pub sel: Uint32Array,
}

#[napi]
impl BindingGrid {
    /// `hashes[i]` holds u64 LE value hashes of axis `names[i]`; `order[i]`,
    /// when given, the u32 LE order keys of its values (`hashAxisValues`), which
    /// chunk keys then start with. `keyOf`: a stored record's 16-byte key,
    /// for a grid of that record's own layout; its chunk keys start like it.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        names: Vec<String>,
        hashes: Vec<Buffer>,
        chunks: Vec<u32>,
        order: Option<Vec<Buffer>>,
        key_of: Option<Buffer>,
    ) -> Result<BindingGrid> {
        boundary(&env, || {
            if names.len() != hashes.len() || names.len() != chunks.len() {
                return Err(invalid("names, hashes and chunks differ in length"));
            }
            let axes = names
                .into_iter()
                .zip(hashes)
                .zip(chunks)
                .map(|((name, h), chunk)| Axis {
                    name,
                    hashes: h.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
                    chunk: chunk as usize,
                })
                .collect();
            let mut grid = Grid::new(axes)?;
            if let Some(order) = order {
                let keys = order
                    .iter()
                    .map(|b| b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4]))).collect())
                    .collect();
                grid = grid.with_order_keys(keys)?;
            }
            if let Some(k) = key_of {
                let k: [u8; 16] = k.as_ref().try_into().map_err(|_| invalid("keyOf must be a 16-byte chunk key"))?;
                grid = grid.with_key_prefix_of(&k);
            }
            Ok(BindingGrid { inner: Arc::new(grid) })
        })
    }

    /// Number of memo chunks of the whole grid.
    #[napi(getter)]
    pub fn chunk_count(&self) -> f64 {
        self.inner.n_chunks() as f64
    }

    /// Plans a selection: per axis `null` (all) or sorted distinct indices.
    #[napi]
    pub fn plan(&self, env: Env, selection: Vec<Option<Uint32Array>>) -> Result<BindingPlan> {
        boundary(&env, || {
            let sel: Vec<Option<Vec<u32>>> = selection.into_iter().map(|s| s.map(|a| a.to_vec())).collect();
            let plan = self.inner.plan(&sel)?;
            let n = plan.n_chunks;
            Ok(BindingPlan {
                grid: self.inner.clone(),
                plan: Arc::new(plan),
                state: Arc::new(Mutex::new(PlanState::new(n))),
            })
        })
    }
}
