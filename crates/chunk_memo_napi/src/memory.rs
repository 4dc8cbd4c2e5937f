//! Memory advice for large outputs.

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The work of `prefaultInBackground`: holds the array (and so keeps its
/// memory alive) until the pages are mapped.
pub struct Prefault {
    bytes: Uint8Array,
}

impl Task for Prefault {
    type Output = bool;
    type JsValue = bool;
    fn compute(&mut self) -> Result<bool> {
        // SAFETY: populating pages never changes the contents, so the JS
        // thread may read and write the array meanwhile (it is filling it);
        // `bytes` keeps the memory alive until the task is over.
        Ok(chunk_memo_core::memory::prefault(unsafe { self.bytes.as_mut() }))
    }
    fn resolve(&mut self, _env: Env, done: bool) -> Result<bool> {
        Ok(done)
    }
}

/// Maps the pages of `bytes` (a freshly allocated output, about to be
/// filled; see `chunk_memo_core::memory::prefault`) on the libuv pool: they
/// are mapped by another thread while the calling thread starts filling it (a fill that
/// overtakes the mapping faults its pages itself). Resolves to whether it
/// mapped them.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn prefault_in_background(bytes: Uint8Array) -> AsyncTask<Prefault> {
    AsyncTask::new(Prefault { bytes })
}
