//! Per-plan cache of chunk resolutions: one byte a chunk, full resolutions
//! only for chunks that need them.

use chunk_memo_core::planner::{Grid, Plan};
use chunk_memo_core::store::{Catalog, ChunkGeometry, Resolution, Source, Store, WholeLayout};
use std::collections::HashMap;

pub(crate) struct PlanState {
    /// Store path and cache id the cached resolutions belong to.
    pub(crate) owner: Option<(std::path::PathBuf, [u8; 16])>,
    pub(crate) catalog: Catalog,
    /// Per chunk, what is known of its resolution (`UNKNOWN`, `EMPTY`,
    /// `WHOLE`, `KNOWN`): one byte a chunk, so a plan of a million chunks
    /// costs a megabyte, not a resolution each.
    pub(super) flags: Vec<u8>,
    /// The resolutions of `KNOWN` chunks (partial, served by other
    /// records, or with damaged records).
    pub(super) known: HashMap<usize, Resolution>,
    /// The snapshot in which the last whole-plan resolution verified the
    /// records of its `WHOLE` chunks: a read in the same snapshot need not
    /// verify them again.
    pub(crate) whole_verified_in: Option<u64>,
}

/// Not resolved since the plan was made or the chunk was written.
const UNKNOWN: u8 = 0;
/// Nothing stored.
pub(super) const EMPTY: u8 = 1;
/// The chunk's own complete record serves every point.
pub(super) const WHOLE: u8 = 2;
/// In `PlanState::known`.
const KNOWN: u8 = 3;

impl PlanState {
    pub(crate) fn new(n_chunks: usize) -> PlanState {
        PlanState {
            owner: None,
            catalog: Catalog::default(),
            flags: vec![UNKNOWN; n_chunks],
            known: HashMap::new(),
            whole_verified_in: None,
        }
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

    pub(super) fn forget_all(&mut self) {
        self.flags.iter_mut().for_each(|f| *f = UNKNOWN);
        self.known.clear();
        self.whole_verified_in = None;
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

    /// True when chunk `i`'s own complete record serves all its points.
    pub(crate) fn is_whole(&self, i: usize) -> bool {
        self.flags[i] == WHOLE
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
