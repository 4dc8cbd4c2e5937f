//! Operations queued on the store's writer thread (`plan.writeFlatBehind`,
//! `plan.claimFlatBehind`): the call returns a pending handle at once, and
//! JS settles it later, polling or waiting (`settle(wait)`). A failed
//! operation throws its error from `settle`, once.

use crate::claims::{BindingClaimBatch, ClaimBatch};
use crate::errors::{boundary, CoreResult};
use chunk_memo_core::store::Pending;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The outcome once the operation ended: `None` while it runs (always
/// waited for with `wait`), and after it was taken.
fn settle<T>(slot: &mut Option<Pending<T>>, wait: bool) -> Option<CoreResult<T>> {
    let p = slot.as_ref()?;
    let r = if wait { Some(p.wait()) } else { p.try_take() };
    if r.is_some() {
        *slot = None;
    }
    r
}

/// A write queued by `writeFlatBehind`.
#[napi]
pub struct BindingPendingWrite {
    pub(crate) pending: Option<Pending<()>>,
}

#[napi]
impl BindingPendingWrite {
    /// True once the write committed, false while it is queued or running
    /// (with `wait`, blocks until it ended). A failed write throws its
    /// error, once; after that it answers true.
    #[napi]
    pub fn settle(&mut self, env: Env, wait: bool) -> Result<bool> {
        match settle(&mut self.pending, wait) {
            None => Ok(self.pending.is_none()),
            Some(r) => boundary(&env, || r.map(|()| true)),
        }
    }
}

/// A claim queued by `claimFlatBehind`.
#[napi]
pub struct BindingPendingClaim {
    pub(crate) pending: Option<Pending<ClaimBatch>>,
}

#[napi]
impl BindingPendingClaim {
    /// The claim's answer (as `claimFlat` gives it) once its transaction
    /// committed, null while it is queued or running (with `wait`, blocks
    /// until it ended) and after the answer was taken. A failed claim
    /// throws its error, once.
    #[napi]
    pub fn settle(&mut self, env: Env, wait: bool) -> Result<Option<BindingClaimBatch>> {
        match settle(&mut self.pending, wait) {
            None => Ok(None),
            Some(r) => boundary(&env, || r.map(|b| Some(b.into()))),
        }
    }
}
