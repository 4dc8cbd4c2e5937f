//! Work claims across N-API (see `chunk_memo_core::claims`).
//!
//! API (batch per call, never per point):
//!
//! * `plan.claimFlat(store, cacheId, session, chunks, ends, points, leaseMs?)`:
//!   one write transaction. Chunk `chunks[k]` of the plan asks for the
//!   requested-point indices `points[ends[k-1]..ends[k]]` (request order,
//!   like `writeBatch`'s `points`). The chunk is re-resolved against the
//!   store (its own record read fresh, other chunkings through the plan's
//!   catalog) and each point gets a state byte: 0 granted (now claimed by
//!   this store's owner and `session`: compute it; points it already held
//!   are granted again and their claim time refreshed), 1 stored (read it),
//!   2 held (claimed by a live other owner, or by another session of this
//!   process, within `leaseMs` when given: wait for it). `takenOver[k]`
//!   counts granted points taken from a dead owner (its OS lock is gone) or
//!   an expired lease, `available[k]` the chunk's stored points. The plan's
//!   cached resolution of each chunk is refreshed, so later reads and writes
//!   see what is stored now. A waiting runner simply claims again.
//! * `plan.claimFlatBehind(...)`, same arguments: the claim queued on the
//!   store's writer thread (before the writes queued there); its handle's
//!   `settle(wait)` gives the same answer.
//! * Every write (`write`, `writeBatch`, ...) releases all claims on the
//!   points it stores, in the same transaction.
//! * `store.releaseSession(session)`: drops every claim of this owner and
//!   session (end of a run, failure, abort); returns the points released.
//! * `store.claimCount()`: claimed points in the root, all owners.
//! * `store.ownerId`: this process' owner id at the root (32 hex chars).
//!
//! `session` is a non-negative integer (at most 2^53) chosen by the caller,
//! one per run; `leaseMs` a non-negative number of milliseconds.

use crate::behind::BindingPendingClaim;
use crate::errors::{boundary, invalid, CoreResult};
use crate::{id16, BindingPlan, BindingStore};
use chunk_memo_core::canonical;
use chunk_memo_core::claims::{ClaimOptions, ClaimRequest, PlanRef};
use chunk_memo_core::store::Store;
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn session_of(session: f64) -> CoreResult<u64> {
    if session.is_finite() && session >= 0.0 && session.fract() == 0.0 && session <= 9_007_199_254_740_992.0 {
        Ok(session as u64)
    } else {
        Err(invalid(format!("session must be a non-negative integer (got {session})")))
    }
}

fn options(session: f64, lease_ms: Option<f64>) -> CoreResult<ClaimOptions> {
    let lease_ms = match lease_ms {
        None => None,
        Some(l) if l.is_finite() && l >= 0.0 => Some(l as u64),
        Some(l) => return Err(invalid(format!("leaseMs must be a non-negative number (got {l})"))),
    };
    Ok(ClaimOptions { session: session_of(session)?, lease_ms })
}

/// The answer of `claimFlat`: one byte per requested point instead of three
/// arrays per chunk (a batch of a thousand chunks is three allocations).
#[napi(object)]
pub struct BindingClaimBatch {
    /// Per requested point of each entry not granted whole, entry after
    /// entry in order (an entry claimed whole counts every requested point
    /// of its chunk, in request order): 0 granted, 1 stored, 2 held.
    pub state: Buffer,
    /// Per entry: 1 when every one of its points was granted (it has no
    /// `state` bytes).
    pub whole: Buffer,
    /// Per chunk: granted points taken over from dead owners or expired leases.
    pub taken_over: Uint32Array,
    /// Per chunk: stored points of the whole chunk.
    pub available: Uint32Array,
}

/// `BindingClaimBatch` before it crosses (made on any thread).
pub(crate) struct ClaimBatch {
    state: Vec<u8>,
    whole: Vec<u8>,
    taken_over: Vec<u32>,
    available: Vec<u32>,
}

impl From<ClaimBatch> for BindingClaimBatch {
    fn from(b: ClaimBatch) -> Self {
        BindingClaimBatch {
            state: b.state.into(),
            whole: b.whole.into(),
            taken_over: b.taken_over.into(),
            available: b.available.into(),
        }
    }
}

/// A `claimFlat` call, checked: what its transaction needs.
struct ClaimCall {
    cache: [u8; 16],
    requests: Vec<ClaimRequest>,
    opts: ClaimOptions,
}

impl BindingPlan {
    /// Checks a `claimFlat` call's arguments against each other and the
    /// plan (see there) and makes its requests.
    #[allow(clippy::too_many_arguments)]
    fn claim_call(
        &self,
        cache_id: &[u8],
        session: f64,
        chunks: &[u32],
        ends: &[u32],
        points: &[u32],
        lease_ms: Option<f64>,
        whole: Option<&[u8]>,
    ) -> CoreResult<ClaimCall> {
        if chunks.len() != ends.len() || ends.last().map_or(0, |&e| e as usize) != points.len() {
            return Err(invalid("chunks, ends and points do not agree"));
        }
        if whole.is_some_and(|w| w.len() != chunks.len()) {
            return Err(invalid("whole must have one byte per chunk entry"));
        }
        let mut start = 0usize;
        let mut requests = Vec::with_capacity(chunks.len());
        for (&c, &e) in chunks.iter().zip(ends) {
            let e = e as usize;
            if e < start || e > points.len() {
                return Err(invalid("ends must not decrease"));
            }
            let chunk = self.check(c)?;
            requests.push(match whole.map_or(0, |w| w[requests.len()]) {
                0 => ClaimRequest::points(chunk, points[start..e].to_vec()),
                _ if e == start => ClaimRequest::whole(chunk),
                _ => return Err(invalid("an entry claimed whole lists no points")),
            });
            start = e;
        }
        Ok(ClaimCall { cache: id16(cache_id, "cache id")?, requests, opts: options(session, lease_ms)? })
    }
}

impl BindingPlan {
    /// The claim: chunk `k`'s points are `points[ends[k-1]..ends[k]]`. The
    /// plan's state is locked before any LMDB transaction (the lock order
    /// of every plan call) and takes the fresh resolutions.
    fn claim_flat_op(&self, store: &Store, ClaimCall { cache, requests, opts }: &ClaimCall) -> CoreResult<ClaimBatch> {
        let mut st = self.state.lock().unwrap();
        st.bind(store, cache);
        let at = PlanRef { cache, grid: &self.grid, plan: &self.plan };
        let outcomes = store.claim(&at, &mut st.catalog, *opts, requests)?;
        let mut state = Vec::new();
        let mut taken_over = Vec::with_capacity(requests.len());
        let mut available = Vec::with_capacity(requests.len());
        let mut whole = Vec::with_capacity(requests.len());
        for (r, o) in requests.iter().zip(outcomes) {
            // Each list is the request's points in order, less the others.
            let granted_whole = o.stored.is_empty() && o.held.is_empty();
            whole.push(u8::from(granted_whole));
            // The common case, granted whole, needs no per-point state.
            if !granted_whole {
                let (mut s, mut h) = (0, 0);
                for &q in r.requested_points(&self.plan).iter() {
                    if o.stored.get(s) == Some(&q) {
                        state.push(1u8);
                        s += 1;
                    } else if o.held.get(h) == Some(&q) {
                        state.push(2u8);
                        h += 1;
                    } else {
                        state.push(0u8);
                    }
                }
            }
            taken_over.push(o.taken_over);
            available.push(o.resolution.available);
            st.set(r.chunk, o.resolution);
        }
        Ok(ClaimBatch { state, whole, taken_over, available })
    }
}

#[napi]
impl BindingPlan {
    /// Claims points of many chunks in one write transaction, flat arrays
    /// in and out (see `BindingClaimBatch`): chunk `chunks[k]` claims
    /// `points[ends[k-1]..ends[k]]`, or every requested point of the chunk
    /// when `whole[k]` is 1 (its range of `points` is then empty: a whole
    /// chunk is claimed without a list of its points).
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn claim_flat(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        session: f64,
        chunks: Uint32Array,
        ends: Uint32Array,
        points: Uint32Array,
        lease_ms: Option<f64>,
        whole: Option<Uint8Array>,
    ) -> Result<BindingClaimBatch> {
        boundary(&env, || {
            let call = self.claim_call(&cache_id, session, &chunks, &ends, &points, lease_ms, whole.as_deref())?;
            Ok(self.claim_flat_op(&store.inner, &call)?.into())
        })
    }

    /// `claimFlat` on the store's writer thread, before the writes queued
    /// there and after the claims: returns at once; the answer comes from
    /// the handle's `settle`. Lets a run claim its next batch while it
    /// computes.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn claim_flat_behind(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        session: f64,
        chunks: Uint32Array,
        ends: Uint32Array,
        points: Uint32Array,
        lease_ms: Option<f64>,
        whole: Option<Uint8Array>,
    ) -> Result<BindingPendingClaim> {
        boundary(&env, || {
            let call = self.claim_call(&cache_id, session, &chunks, &ends, &points, lease_ms, whole.as_deref())?;
            let me = self.share();
            let pending = store.inner.behind(true, move |s| me.claim_flat_op(s, &call));
            Ok(BindingPendingClaim { pending: Some(pending) })
        })
    }
}

#[napi]
impl BindingStore {
    /// This process' owner id at this root (hex).
    #[napi(getter)]
    pub fn owner_id(&self) -> String {
        canonical::hex(self.inner.owner_id())
    }

    /// Claimed points in the root, every owner and session together.
    #[napi]
    pub fn claim_count(&self, env: Env) -> Result<f64> {
        boundary(&env, || Ok(self.inner.claim_count()? as f64))
    }

    /// Releases every claim of this owner and `session`; returns the points
    /// released.
    #[napi]
    pub fn release_session(&self, env: Env, session: f64) -> Result<f64> {
        boundary(&env, || Ok(self.inner.release_session(session_of(session)?)? as f64))
    }
}
