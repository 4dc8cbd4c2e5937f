//! Memory advice for large outputs.

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Maps the pages of `bytes` (a freshly allocated output, about to be
/// filled) in one call, so that its first fill takes no page faults.
/// Returns whether it did (see `chunk_memo_core::memory::prefault`).
#[napi]
pub fn prefault(mut bytes: Uint8Array) -> bool {
    // SAFETY: the call is synchronous; populating pages never changes the
    // contents, so aliasing JS views are unaffected.
    chunk_memo_core::memory::prefault(unsafe { bytes.as_mut() })
}
