//! Atomic metadata updates across N-API.

use crate::errors::js_error;
use crate::{id16, BindingStore};
use chunk_memo_core::CoreError;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi]
impl BindingStore {
    /// Read-modify-write of a cache's metadata in ONE write transaction (no
    /// update of a concurrent open is lost): `update` is called synchronously
    /// with the stored blob (`null` when absent) and returns the blob to
    /// store, or `null`/`undefined` to leave it as it is. An exception thrown
    /// by `update` aborts the transaction (nothing written) and is rethrown
    /// as it is. `update` must be quick and pure: it runs while the root's
    /// write lock is held, may run again if the map grows, and must not call
    /// the store. Returns whether a blob was written.
    #[napi(ts_args_type = "id: Buffer, update: (old: Buffer | null) => Buffer | null | undefined")]
    pub fn update_meta(
        &self,
        env: Env,
        id: Buffer,
        update: Function<'_, Option<Buffer>, Option<Buffer>>,
    ) -> Result<bool> {
        let id = id16(&id, "id").map_err(|e| js_error(&env, e))?;
        let mut thrown: Option<Error> = None;
        let r = self.inner.update_meta(&id, |old| match update.call(old.map(|b| Buffer::from(b.to_vec()))) {
            Ok(new) => Ok(new.map(|b| b.to_vec())),
            Err(e) => {
                thrown = Some(e);
                Err(CoreError::invalid("the metadata update threw"))
            }
        });
        match thrown {
            Some(e) => Err(e),
            None => r.map_err(|e| js_error(&env, e)),
        }
    }
}
