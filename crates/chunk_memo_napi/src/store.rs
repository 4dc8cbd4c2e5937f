//! `BindingStore`: one LMDB environment at a cache root, its metadata,
//! descriptors, records and upkeep.

use crate::errors::{boundary, invalid, CoreResult};
use crate::grid::BindingGrid;
use crate::id16;
use chunk_memo_core::store::{Descriptor, Store};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::Path;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Store

/// Metadata entry of one cache.
#[napi(object)]
pub struct BindingMetaEntry {
    pub id: Buffer,
    pub blob: Buffer,
}

/// An axis of a record descriptor.
#[napi(object)]
pub struct BindingDescAxis {
    pub name: String,
    /// u64 LE value hashes.
    pub hashes: Buffer,
}

/// The records holding points of a view (`BindingStore::records_in_view`).
#[napi(object)]
pub struct BindingRecordsInView {
    /// Keys (16 bytes each, one after another) of the records holding no
    /// other point.
    pub whole: Buffer,
    /// Descriptors of the records holding other points too.
    pub partial: Vec<BindingDescriptor>,
}

/// Index entry of one stored record.
#[napi(object)]
pub struct BindingDescriptor {
    pub chunk: Buffer,
    pub axes: Vec<BindingDescAxis>,
    pub n: u32,
    pub present: u32,
    pub bytes: f64,
    pub updated_ms: f64,
}

/// Totals of one cache's records.
#[napi(object)]
pub struct BindingSummary {
    pub records: f64,
    pub points: f64,
    pub bytes: f64,
    /// Latest record write (ms since the epoch; 0 without records).
    pub last_write_ms: f64,
}

fn summary_to_js(s: chunk_memo_core::store::CacheSummary) -> BindingSummary {
    BindingSummary {
        records: s.records as f64,
        points: s.points as f64,
        bytes: s.bytes as f64,
        last_write_ms: s.last_write_ms as f64,
    }
}

/// A record that failed verification.
#[napi(object)]
pub struct BindingBadRecord {
    pub chunk: Buffer,
    pub reason: String,
}

/// What `repair` did to one record.
#[napi(object)]
pub struct BindingRepair {
    pub chunk: Buffer,
    /// True: a new index entry was written from the (valid) record; false:
    /// the record and its index entry were dropped.
    pub rebuilt: bool,
    /// The problem `verify` found.
    pub reason: String,
}

/// Last access time of one record.
#[napi(object)]
pub struct BindingAccess {
    pub chunk: Buffer,
    pub ms: f64,
}

pub(crate) fn desc_to_js(chunk: [u8; 16], d: Descriptor) -> BindingDescriptor {
    BindingDescriptor {
        chunk: chunk.to_vec().into(),
        axes: d
            .axes
            .into_iter()
            .map(|(name, hs)| BindingDescAxis {
                name,
                hashes: hs.iter().flat_map(|h| h.to_le_bytes()).collect::<Vec<u8>>().into(),
            })
            .collect(),
        n: d.n,
        present: d.present,
        bytes: d.bytes as f64,
        updated_ms: d.updated_ms as f64,
    }
}

pub(crate) fn desc_from_js(d: &BindingDescriptor) -> CoreResult<Descriptor> {
    let mut axes = Vec::new();
    for a in &d.axes {
        if a.hashes.len() % 8 != 0 {
            return Err(invalid("descriptor hashes must be a multiple of 8 bytes"));
        }
        axes.push((a.name.clone(), a.hashes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()));
    }
    Ok(Descriptor { axes, n: d.n, present: d.present, bytes: d.bytes as u64, updated_ms: d.updated_ms as u64 })
}

/// One LMDB environment at a cache root, shared by every thread of the
/// process.
#[napi]
pub struct BindingStore {
    pub(crate) inner: Arc<Store>,
}

#[napi]
impl BindingStore {
    /// Opens (creating if needed) the store at `root`.
    #[napi(factory)]
    pub fn open(env: Env, root: String) -> Result<BindingStore> {
        boundary(&env, || Ok(BindingStore { inner: Store::open(Path::new(&root))? }))
    }

    /// Canonical path of the root.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    #[napi]
    pub fn put_meta(&self, env: Env, id: Buffer, blob: Buffer) -> Result<()> {
        boundary(&env, || self.inner.put_meta(&id16(&id, "id")?, &blob))
    }

    #[napi]
    pub fn get_meta(&self, env: Env, id: Buffer) -> Result<Option<Buffer>> {
        boundary(&env, || Ok(self.inner.get_meta(&id16(&id, "id")?)?.map(Into::into)))
    }

    #[napi]
    pub fn list_meta(&self, env: Env) -> Result<Vec<BindingMetaEntry>> {
        boundary(&env, || {
            Ok(self
                .inner
                .list_meta()?
                .into_iter()
                .map(|(id, blob)| BindingMetaEntry { id: id.to_vec().into(), blob: blob.into() })
                .collect())
        })
    }

    /// Deletes a cache and all its records; returns the number of records.
    #[napi]
    pub fn delete_cache(&self, env: Env, id: Buffer) -> Result<u32> {
        boundary(&env, || Ok(self.inner.delete_cache(&id16(&id, "id")?)? as u32))
    }

    #[napi]
    pub fn delete_records(&self, env: Env, id: Buffer, chunks: Vec<Buffer>) -> Result<()> {
        boundary(&env, || {
            let keys = chunks.iter().map(|c| id16(c, "chunk")).collect::<CoreResult<Vec<_>>>()?;
            self.inner.delete_records(&id16(&id, "id")?, &keys)
        })
    }

    /// Deletes records given as one buffer of 16-byte keys (see
    /// `recordsInView`): no Buffer per record.
    #[napi]
    pub fn delete_record_keys(&self, env: Env, id: Buffer, keys: Buffer) -> Result<()> {
        boundary(&env, || {
            if !keys.len().is_multiple_of(16) {
                return Err(invalid("record keys must be 16 bytes each"));
            }
            let keys: Vec<[u8; 16]> = keys.chunks_exact(16).map(|k| k.try_into().unwrap()).collect();
            self.inner.delete_records(&id16(&id, "id")?, &keys)
        })
    }

    /// The records of cache `id` holding points of a view, from the index
    /// alone: `names[a]` and `hashes[a]` (u64 LE each) are an axis and the
    /// value hashes the view selects on it. Records on other axes and
    /// damaged index entries are left out.
    #[napi]
    pub fn records_in_view(
        &self,
        env: Env,
        id: Buffer,
        names: Vec<String>,
        hashes: Vec<Buffer>,
    ) -> Result<BindingRecordsInView> {
        boundary(&env, || {
            if names.len() != hashes.len() {
                return Err(invalid("names and hashes differ in length"));
            }
            let view: Vec<(String, Vec<u64>)> = names
                .into_iter()
                .zip(&hashes)
                .map(|(n, h)| (n, h.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect()))
                .collect();
            let (whole, partial) = self.inner.records_in_view(&id16(&id, "id")?, &view)?;
            Ok(BindingRecordsInView {
                whole: whole.concat().into(),
                partial: partial.into_iter().map(|(c, d)| desc_to_js(c, d)).collect(),
            })
        })
    }

    #[napi]
    pub fn descriptors(&self, env: Env, id: Buffer) -> Result<Vec<BindingDescriptor>> {
        boundary(&env, || {
            Ok(self.inner.descriptors(&id16(&id, "id")?)?.into_iter().map(|(c, d)| desc_to_js(c, d)).collect())
        })
    }

    /// Totals of a cache's records, from the index alone.
    #[napi]
    pub fn summary(&self, env: Env, id: Buffer) -> Result<BindingSummary> {
        Ok(summary_to_js(boundary(&env, || self.inner.summary(&id16(&id, "id")?))?))
    }

    #[napi]
    pub fn get_record(&self, env: Env, id: Buffer, chunk: Buffer) -> Result<Option<Buffer>> {
        boundary(&env, || Ok(self.inner.get_record(&id16(&id, "id")?, &id16(&chunk, "chunk")?)?.map(Into::into)))
    }

    /// Stores a verified record (import), merging with a stored one.
    #[napi]
    pub fn put_record(&self, env: Env, id: Buffer, desc: BindingDescriptor, bytes: Buffer) -> Result<()> {
        boundary(&env, || {
            let d = desc_from_js(&desc)?;
            self.inner.put_record(&id16(&id, "id")?, &id16(&desc.chunk, "chunk")?, &d, &bytes)
        })
    }

    #[napi]
    pub fn access_times(&self, env: Env, id: Buffer) -> Result<Vec<BindingAccess>> {
        boundary(&env, || {
            Ok(self
                .inner
                .access_times(&id16(&id, "id")?)?
                .into_iter()
                .map(|(c, ms)| BindingAccess { chunk: c.to_vec().into(), ms: ms as f64 })
                .collect())
        })
    }

    #[napi]
    pub fn flush_access_times(&self, env: Env) -> Result<()> {
        boundary(&env, || self.inner.flush_access_times())
    }

    /// Checks every record of a cache; returns the bad ones.
    #[napi]
    pub fn verify(&self, env: Env, id: Buffer) -> Result<Vec<BindingBadRecord>> {
        boundary(&env, || {
            Ok(self
                .inner
                .verify(&id16(&id, "id")?)?
                .into_iter()
                .map(|(c, reason)| BindingBadRecord { chunk: c.to_vec().into(), reason })
                .collect())
        })
    }

    /// Repairs what `verify` finds, in one transaction: a valid record whose
    /// index entry is damaged, missing or disagrees with it gets a new entry
    /// when `grid` (the cache's current grid) has a chunk with its key and
    /// size; every other problem drops the record and its entry (the next
    /// run recomputes those points). Returns what was done per bad record.
    #[napi]
    pub fn repair(&self, env: Env, id: Buffer, grid: Option<&BindingGrid>) -> Result<Vec<BindingRepair>> {
        boundary(&env, || {
            Ok(self
                .inner
                .repair(&id16(&id, "id")?, grid.map(|g| &*g.inner))?
                .into_iter()
                .map(|r| BindingRepair { chunk: r.chunk.to_vec().into(), rebuilt: r.rebuilt, reason: r.reason })
                .collect())
        })
    }

    /// Marks cache `id` in use by this process until `unmarkInUse(id,
    /// token)` with the returned token, or until the process ends, however
    /// it ends. Every process sharing the root sees the mark in
    /// `cachesInUse` (eviction skips those caches). Marks nest.
    #[napi]
    pub fn mark_in_use(&self, env: Env, id: Buffer) -> Result<f64> {
        boundary(&env, || Ok(self.inner.mark_in_use(&id16(&id, "id")?)? as f64))
    }

    /// Ends the mark `token` of cache `id`; false when the token is unknown,
    /// already ended or of another cache (nothing changes then).
    #[napi]
    pub fn unmark_in_use(&self, env: Env, id: Buffer, token: f64) -> Result<bool> {
        boundary(&env, || {
            if !(token >= 1.0 && token.fract() == 0.0 && token < 9_007_199_254_740_992.0) {
                return Ok(false);
            }
            self.inner.unmark_in_use(&id16(&id, "id")?, token as u64)
        })
    }

    /// Hex ids of the caches of this root that a live process (this one
    /// included) marks in use, sorted.
    #[napi]
    pub fn caches_in_use(&self, env: Env) -> Result<Vec<String>> {
        boundary(&env, || Ok(self.inner.caches_in_use()?.iter().map(|c| chunk_memo_core::canonical::hex(c)).collect()))
    }

    /// Whether a live process (this one included) marks cache `id` in use:
    /// `cachesInUse` asked of one cache (it looks at that cache's mark only).
    #[napi]
    pub fn is_cache_in_use(&self, env: Env, id: Buffer) -> Result<bool> {
        boundary(&env, || self.inner.is_in_use(&id16(&id, "id")?))
    }

    /// Size of the environment's data file in bytes.
    #[napi]
    pub fn disk_bytes(&self, env: Env) -> Result<f64> {
        boundary(&env, || Ok(self.inner.disk_bytes()? as f64))
    }
}
