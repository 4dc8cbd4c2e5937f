//! Binding of the all-or-nothing archive import (`chunk_memo_core::import`).

use super::errors::boundary;
use crate::task::{task, OpTask};
use crate::{id16, BindingStore};
use chunk_memo_core::import::{check_record, ImportMeta, ImportSummary};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

/// One metadata update of an import (compare-and-swap on `expected`).
#[napi(object)]
pub struct BindingImportMeta {
    pub id: Buffer,
    /// New metadata blob; absent leaves the stored one as it is.
    pub blob: Option<Buffer>,
    /// The stored blob this update was computed from; absent: no metadata.
    pub expected: Option<Buffer>,
}

/// Result of `importSpool`.
#[napi(object)]
pub struct BindingImportResult {
    /// Id of a cache whose metadata changed meanwhile: nothing was written.
    pub conflict: Option<Buffer>,
    pub records: f64,
}

/// Structure of a record that passed its checksum.
#[napi(object)]
pub struct BindingRecordInfo {
    pub kind: u32,
    pub n: u32,
    pub present: u32,
}

/// Checks a record's structure and checksum (throws `ERR_CORRUPT_RECORD`).
#[napi]
pub fn check_record_bytes(env: Env, bytes: Buffer) -> Result<BindingRecordInfo> {
    boundary(&env, || {
        let (kind, n, present) = check_record(&bytes)?;
        Ok(BindingRecordInfo { kind: kind as u32, n, present })
    })
}

fn import_to_js(s: ImportSummary) -> Result<BindingImportResult> {
    Ok(BindingImportResult { conflict: s.conflict.map(|c| c.to_vec().into()), records: s.records as f64 })
}

#[napi]
impl BindingStore {
    /// Writes metadata updates and every record of a spool file (layout in
    /// `chunk_memo_core::import`) in one transaction, on the libuv pool
    /// (async only: a whole archive in one write transaction would block
    /// the event loop; napi-rs naming, `foo` is the async form).
    #[napi(ts_return_type = "Promise<BindingImportResult>")]
    pub fn import_spool(
        &self,
        env: Env,
        metas: Vec<BindingImportMeta>,
        spool: String,
    ) -> Result<AsyncTask<OpTask<ImportSummary, BindingImportResult>>> {
        boundary(&env, || {
            let mut ms = Vec::with_capacity(metas.len());
            for m in &metas {
                ms.push(ImportMeta {
                    cache: id16(&m.id, "id")?,
                    blob: m.blob.as_ref().map(|b| b.to_vec()),
                    expected: m.expected.as_ref().map(|b| b.to_vec()),
                });
            }
            let (inner, path) = (self.inner.clone(), PathBuf::from(spool));
            Ok(task(move || inner.import_spool(&ms, &path), import_to_js, None))
        })
    }
}
