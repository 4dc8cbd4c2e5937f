//! Hooks for tests and benchmarks, compiled only with the cargo feature
//! `test-hooks` (`npm run build:native` enables it; the release build,
//! `npm run build:native:release`, leaves it out, so a published addon has
//! none of these methods).

use crate::errors::boundary;
use crate::id16;
use crate::store::BindingStore;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi]
impl BindingStore {
    /// Overwrites raw record bytes (tests plant corruption with it).
    /// Development builds only (cargo feature `test-hooks`).
    #[napi]
    pub fn put_raw_record_for_tests(&self, env: Env, id: Buffer, chunk: Buffer, bytes: Buffer) -> Result<()> {
        boundary(&env, || self.inner.put_raw_record_for_tests(&id16(&id, "id")?, &id16(&chunk, "chunk")?, &bytes))
    }

    /// Overwrites a raw index entry (tests plant damage with it).
    /// Development builds only (cargo feature `test-hooks`).
    #[napi]
    pub fn put_raw_index_for_tests(&self, env: Env, id: Buffer, chunk: Buffer, bytes: Buffer) -> Result<()> {
        boundary(&env, || self.inner.put_raw_index_for_tests(&id16(&id, "id")?, &id16(&chunk, "chunk")?, &bytes))
    }

    /// A raw index entry (tests). Development builds only (cargo feature
    /// `test-hooks`).
    #[napi]
    pub fn get_raw_index_for_tests(&self, env: Env, id: Buffer, chunk: Buffer) -> Result<Option<Buffer>> {
        boundary(&env, || {
            Ok(self.inner.get_raw_index_for_tests(&id16(&id, "id")?, &id16(&chunk, "chunk")?)?.map(Into::into))
        })
    }

    /// Plain LMDB read loop over a cache's records touching every byte:
    /// `[records, bytes, fold]` (a benchmark ceiling). Development builds
    /// only (cargo feature `test-hooks`).
    #[napi]
    pub fn scan_records(&self, env: Env, id: Buffer) -> Result<Vec<f64>> {
        boundary(&env, || {
            let (n, b, f) = self.inner.scan_records(&id16(&id, "id")?)?;
            Ok(vec![n as f64, b as f64, (f & 0xffff_ffff) as f64])
        })
    }

    /// Plain LMDB write of `blobs` under the throwaway cache id `id` in one
    /// transaction (a benchmark ceiling for the write path). Development
    /// builds only (cargo feature `test-hooks`).
    #[napi]
    pub fn write_raw_records(&self, env: Env, id: Buffer, blobs: Vec<Uint8Array>) -> Result<()> {
        boundary(&env, || {
            let parts: Vec<&[u8]> = blobs.iter().map(|b| b.as_ref()).collect();
            self.inner.write_raw_records(&id16(&id, "id")?, &parts)
        })
    }
}
