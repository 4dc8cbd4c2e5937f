//! `BindingPlan`: a planned selection; resolves, reads and writes its
//! chunks, with a per-plan cache of resolutions.
//!
//! [`state`]: the per-plan resolution cache; [`read`], [`missing`],
//! [`write`]: the chunk operations.

mod missing;
mod read;
mod state;
mod write;

pub use missing::{BindingBlocks, Missing};
pub use read::{BindingChunkBatch, BindingChunkData, ChunkBatch};
pub(crate) use state::PlanState;
use state::{EMPTY, WHOLE};
pub use write::BindingChunkWrite;

use crate::errors::{boundary, invalid, CoreResult};
use crate::grid::*;
use crate::id16;
use crate::store::*;
use chunk_memo_core::canonical;
use chunk_memo_core::planner::{Grid, Plan};
use chunk_memo_core::store::{Catalog, ChunkGeometry, Found, ReadTxn, Resolution, Store, TakeWhole};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::{Arc, Mutex};

/// A planned selection of a grid; resolves, reads and writes its chunks.
#[napi]
pub struct BindingPlan {
    pub(crate) grid: Arc<Grid>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) state: Arc<Mutex<PlanState>>,
}

/// Available points per chunk, damage found, the kind whole chunks share,
/// and per chunk whether it was gathered (empty without a gather).
pub(crate) type Resolved = (Vec<u32>, Vec<String>, Option<u8>, Vec<u8>);

pub(crate) fn resolved_to_js(r: Resolved) -> Result<BindingResolved> {
    Ok(BindingResolved { available: r.0.into(), corrupt: r.1, whole_kind: r.2.map(u32::from), gathered: r.3.into() })
}

/// Per chunk: how many requested points are stored.
#[napi(object)]
pub struct BindingResolved {
    pub available: Uint32Array,
    pub corrupt: Vec<String>,
    /// The output kind every chunk served whole by its own record holds,
    /// when there are such chunks and they agree (a run can make its
    /// output before it reads any).
    pub whole_kind: Option<u32>,
    /// With a gather (`resolve`'s `gatherKind` and `gatherOut`), per chunk:
    /// 1 when its outputs were copied into the gather output as the
    /// resolution found its record (a whole chunk requested in full, of the
    /// gather's dtype, whose record passed its checksum); empty without one.
    pub gathered: Uint8Array,
}

impl BindingPlan {
    /// Resolves every chunk (see `resolve`); with `gather`, whole chunks
    /// requested in full are copied into it as their records are found.
    pub(crate) fn resolve_in(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        verify: bool,
        gather: Option<&read::Gather<'_>>,
    ) -> CoreResult<Resolved> {
        let (store, grid, plan, cache) = (&*store.inner, &*self.grid, &*self.plan, id16(cache_id, "cache id")?);
        let mut st = self.state.lock().unwrap();
        st.bind(store, &cache);
        let st = &mut *st;
        st.catalog = Catalog::default();
        st.forget_all();
        let mut avail = vec![0u32; plan.n_chunks];
        let mut corrupt = Vec::new();
        let mut found: Vec<(usize, Resolution)> = Vec::new();
        // Every chunk not found has nothing stored (no resolution is
        // known after forget_all: whole chunks need only their flag).
        let mut flags = std::mem::take(&mut st.flags);
        flags.fill(EMPTY);
        // The kind the whole chunks share: None before the first, Some(None) once two differ.
        let mut kinds: Option<Option<u8>> = None;
        let take = gather.map(|gather| read::TakeInto { plan, gather, verify: !verify });
        let mut gathered = if gather.is_some() { vec![0u8; plan.n_chunks] } else { Vec::new() };
        let snapshot = store.resolve_plan(
            &cache,
            grid,
            plan,
            &mut st.catalog,
            verify,
            take.as_ref().map(|t| t as &dyn TakeWhole),
            |i, r| match r {
                Found::Whole { requested, kind, taken } => {
                    avail[i] = requested;
                    flags[i] = WHOLE;
                    kinds = Some(kinds.map_or(Some(kind), |k| k.filter(|&k| k == kind)));
                    if taken {
                        gathered[i] = 1;
                    }
                }
                Found::Other(r) => {
                    avail[i] = r.available;
                    corrupt.extend(r.corrupt.iter().map(|(c, m)| format!("{}: {m}", canonical::hex(c))));
                    found.push((i, r));
                }
            },
        );
        st.flags = flags;
        let snapshot = snapshot?;
        // Unverified whole records are verified by the reads that serve them.
        st.whole_verified_in = snapshot.filter(|_| verify);
        for (i, r) in found {
            st.set(i, r);
        }
        // The catalog (every descriptor of the cache) is memory V8 does
        // not see: a plan kept for a status would hold it until a late
        // GC. A later per-chunk resolution loads it again when needed.
        st.catalog = Catalog::default();
        Ok((avail, corrupt, kinds.flatten(), gathered))
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

    /// [`BindingPlan::resolution`] in the caller's read transaction.
    pub(crate) fn resolution_in(
        &self,
        store: &Store,
        t: &ReadTxn<'_>,
        cache: &[u8; 16],
        i: usize,
    ) -> CoreResult<Resolution> {
        let mut st = self.state.lock().unwrap();
        st.bind(store, cache);
        if let Some(r) = st.cached(&self.grid, &self.plan, i) {
            return Ok(r);
        }
        let st = &mut *st;
        let r = store.resolve_one(t, cache, &self.grid, &self.plan, i, &mut st.catalog)?;
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

    pub(crate) fn check(&self, i: u32) -> CoreResult<usize> {
        if (i as usize) < self.plan.n_chunks {
            Ok(i as usize)
        } else {
            Err(invalid(format!("chunk {i} out of range")))
        }
    }
}

#[napi]
impl BindingPlan {
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
    /// them, first axis slowest. Whole axes list nothing per bin (see
    /// `BindingAxisPlan`).
    #[napi]
    pub fn describe(&self) -> Vec<BindingAxisPlan> {
        self.plan
            .axes
            .iter()
            .map(|bins| {
                if let Some((values, chunk)) = bins.whole_dims() {
                    let none = || Uint32Array::from(Vec::<u32>::new());
                    return BindingAxisPlan {
                        whole: true,
                        values,
                        chunk,
                        bin: none(),
                        start: none(),
                        len: none(),
                        sel_pos: none(),
                        sel_count: none(),
                        sel: none(),
                    };
                }
                BindingAxisPlan {
                    whole: false,
                    values: 0,
                    chunk: 0,
                    bin: bins.iter().map(|b| b.bin).collect::<Vec<u32>>().into(),
                    start: bins.iter().map(|b| b.start).collect::<Vec<u32>>().into(),
                    len: bins.iter().map(|b| b.len).collect::<Vec<u32>>().into(),
                    sel_pos: bins.iter().map(|b| b.sel_pos).collect::<Vec<u32>>().into(),
                    sel_count: bins.iter().map(|b| b.sel.len() as u32).collect::<Vec<u32>>().into(),
                    sel: bins.iter().flat_map(|b| b.sel.iter().copied()).collect::<Vec<u32>>().into(),
                }
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
    /// With `verify` false (default true), the records that serve whole
    /// chunks are checked for their structure only, and `readMany` verifies
    /// each as it reads it (one pass over the bytes, not two): a caller
    /// that reads the chunks it was told are stored must then compute the
    /// points a read did not return (a damaged record, reported in the
    /// read's `corrupt`). With `gatherKind` and `gatherOut` (the bytes of
    /// the plan's flat output, a typed array of that dtype), the whole
    /// chunks requested in full whose records hold that dtype are copied to
    /// their place in it as their records are found (verified while copied
    /// when `verify` is false), and marked in `gathered`: a run need not
    /// read them again.
    #[napi]
    pub fn resolve(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        verify: Option<bool>,
        gather_kind: Option<u32>,
        mut gather_out: Option<Uint8Array>,
    ) -> Result<BindingResolved> {
        resolved_to_js(boundary(&env, || {
            let gather = read::Gather::of_js(gather_kind, gather_out.as_mut())?;
            self.resolve_in(store, &cache_id, verify.unwrap_or(true), gather.as_ref())
        })?)
    }

    /// The output kind of the first record the cache has (in key order;
    /// none when it has none): a run that reads every stored chunk makes
    /// its typed output of that kind before `resolve`, to gather into it.
    #[napi]
    pub fn first_stored_kind(&self, env: Env, store: &BindingStore, cache_id: Buffer) -> Result<Option<u32>> {
        boundary(&env, || Ok(store.inner.first_record_kind(&id16(&cache_id, "cache id")?)?.map(u32::from)))
    }
}
