#![allow(clippy::type_complexity)] // AsyncTask<OpTask<core output, JS value>> signatures

//! Thin N-API binding of `chunk_memo_core`. It converts arguments, turns
//! core errors into JS errors that carry their stable code as `code` (see
//! [`errors`]) and offers every I/O call in a sync form and an async form
//! (`...Async`, an AsyncTask on the libuv pool). Data crosses once per chunk
//! as Buffers, never per point.

use chunk_memo_core::canonical;
use chunk_memo_core::planner::{missing_blocks, Axis, Grid, Plan};
use chunk_memo_core::store::{Catalog, ChunkData, ChunkGeometry, ChunkWrite, Descriptor, Resolution, Store};
use chunk_memo_core::CoreError;
use errors::{boundary, invalid, js_error, CoreResult};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub mod claims;
pub mod errors;
pub mod import;
pub mod meta;

fn id16(b: &[u8], what: &str) -> CoreResult<[u8; 16]> {
    b.try_into().map_err(|_| invalid(format!("{what} must be 16 bytes")))
}

/// Runs a core operation on the libuv pool and converts its result on the
/// JS thread; a core error is kept and becomes a JS error in `reject`.
pub struct OpTask<R: Send + 'static, J> {
    op: Option<Box<dyn FnOnce() -> CoreResult<R> + Send>>,
    to_js: fn(R) -> Result<J>,
    failed: Option<CoreError>,
}

impl<R: Send + 'static, J: ToNapiValue + TypeName> Task for OpTask<R, J> {
    type Output = R;
    type JsValue = J;
    fn compute(&mut self) -> Result<R> {
        (self.op.take().expect("task runs once"))().map_err(|e| {
            let placeholder = Error::new(Status::GenericFailure, e.message.clone());
            self.failed = Some(e);
            placeholder
        })
    }
    fn resolve(&mut self, _env: Env, output: R) -> Result<J> {
        (self.to_js)(output)
    }
    fn reject(&mut self, env: Env, err: Error) -> Result<J> {
        Err(match self.failed.take() {
            Some(e) => js_error(&env, e),
            None => err,
        })
    }
}

fn task<R: Send + 'static, J: ToNapiValue + TypeName>(
    op: impl FnOnce() -> CoreResult<R> + Send + 'static,
    to_js: fn(R) -> Result<J>,
    signal: Option<AbortSignal>,
) -> AsyncTask<OpTask<R, J>> {
    AsyncTask::with_optional_signal(OpTask { op: Some(Box::new(op)), to_js, failed: None }, signal)
}

fn unit(_: ()) -> Result<()> {
    Ok(())
}

// ---------------------------------------------------------------------------
// Hashing

/// BLAKE3 digest (hex, 64 chars) of one canonical encoding.
#[napi]
pub fn canonical_digest_hex(canonical_bytes: Buffer) -> String {
    canonical::hex(&canonical::digest(&canonical_bytes))
}

/// 16-byte identifier (digest prefix) of one canonical encoding.
#[napi]
pub fn canonical_id(canonical_bytes: Buffer) -> Buffer {
    canonical::id16(&canonical_bytes).to_vec().into()
}

/// Value hashes (u64 little-endian, 8 bytes each) of concatenated canonical
/// encodings.
#[napi]
pub fn hash_values(env: Env, concatenated: Buffer) -> Result<Buffer> {
    boundary(&env, || {
        let hs = canonical::hash_concatenated(&concatenated)?;
        let mut out = Vec::with_capacity(hs.len() * 8);
        for h in hs {
            out.extend_from_slice(&h.to_le_bytes());
        }
        Ok(out.into())
    })
}

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

fn summary_to_js(s: chunk_memo_core::store::CacheSummary) -> Result<BindingSummary> {
    Ok(BindingSummary {
        records: s.records as f64,
        points: s.points as f64,
        bytes: s.bytes as f64,
        last_write_ms: s.last_write_ms as f64,
    })
}

/// A record that failed verification.
#[napi(object)]
pub struct BindingBadRecord {
    pub chunk: Buffer,
    pub reason: String,
}

/// Last access time of one record.
#[napi(object)]
pub struct BindingAccess {
    pub chunk: Buffer,
    pub ms: f64,
}

fn desc_to_js(chunk: [u8; 16], d: Descriptor) -> BindingDescriptor {
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

fn desc_from_js(d: &BindingDescriptor) -> CoreResult<Descriptor> {
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
    inner: Arc<Store>,
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

    #[napi]
    pub fn descriptors(&self, env: Env, id: Buffer) -> Result<Vec<BindingDescriptor>> {
        boundary(&env, || {
            Ok(self.inner.descriptors(&id16(&id, "id")?)?.into_iter().map(|(c, d)| desc_to_js(c, d)).collect())
        })
    }

    /// Totals of a cache's records, from the index alone.
    #[napi]
    pub fn summary(&self, env: Env, id: Buffer) -> Result<BindingSummary> {
        summary_to_js(boundary(&env, || self.inner.summary(&id16(&id, "id")?))?)
    }

    /// Async form of `summary`.
    #[napi(ts_return_type = "Promise<BindingSummary>")]
    pub fn summary_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<chunk_memo_core::store::CacheSummary, BindingSummary>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(move || inner.summary(&id), summary_to_js, signal))
        })
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

    /// Async form of `open`.
    #[napi(ts_return_type = "Promise<BindingStore>")]
    pub fn open_async(root: String, signal: Option<AbortSignal>) -> AsyncTask<OpTask<Arc<Store>, BindingStore>> {
        task(move || Store::open(Path::new(&root)), |inner| Ok(BindingStore { inner }), signal)
    }

    /// Async form of `putMeta`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn put_meta_async(
        &self,
        env: Env,
        id: Buffer,
        blob: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<(), ()>>> {
        boundary(&env, || {
            let (inner, id, blob) = (self.inner.clone(), id16(&id, "id")?, blob.to_vec());
            Ok(task(move || inner.put_meta(&id, &blob), unit, signal))
        })
    }

    /// Async form of `getMeta`.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn get_meta_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Option<Vec<u8>>, Option<Buffer>>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(move || inner.get_meta(&id), |o| Ok(o.map(Into::into)), signal))
        })
    }

    /// Async form of `listMeta`.
    #[napi(ts_return_type = "Promise<Array<BindingMetaEntry>>")]
    pub fn list_meta_async(
        &self,
        signal: Option<AbortSignal>,
    ) -> AsyncTask<OpTask<Vec<([u8; 16], Vec<u8>)>, Vec<BindingMetaEntry>>> {
        let inner = self.inner.clone();
        task(
            move || inner.list_meta(),
            |v| {
                Ok(v.into_iter()
                    .map(|(id, blob)| BindingMetaEntry { id: id.to_vec().into(), blob: blob.into() })
                    .collect())
            },
            signal,
        )
    }

    /// Async form of `deleteCache`.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_cache_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<u64, u32>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(move || inner.delete_cache(&id), |n| Ok(n as u32), signal))
        })
    }

    /// Async form of `deleteRecords`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_records_async(
        &self,
        env: Env,
        id: Buffer,
        chunks: Vec<Buffer>,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<(), ()>>> {
        boundary(&env, || {
            let keys = chunks.iter().map(|c| id16(c, "chunk")).collect::<CoreResult<Vec<_>>>()?;
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(move || inner.delete_records(&id, &keys), unit, signal))
        })
    }

    /// Async form of `descriptors`.
    #[napi(ts_return_type = "Promise<Array<BindingDescriptor>>")]
    pub fn descriptors_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Vec<([u8; 16], Descriptor)>, Vec<BindingDescriptor>>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(
                move || inner.descriptors(&id),
                |v| Ok(v.into_iter().map(|(c, d)| desc_to_js(c, d)).collect()),
                signal,
            ))
        })
    }

    /// Async form of `getRecord`.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn get_record_async(
        &self,
        env: Env,
        id: Buffer,
        chunk: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Option<Vec<u8>>, Option<Buffer>>>> {
        boundary(&env, || {
            let (inner, id, chunk) = (self.inner.clone(), id16(&id, "id")?, id16(&chunk, "chunk")?);
            Ok(task(move || inner.get_record(&id, &chunk), |o| Ok(o.map(Into::into)), signal))
        })
    }

    /// Async form of `putRecord`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn put_record_async(
        &self,
        env: Env,
        id: Buffer,
        desc: BindingDescriptor,
        bytes: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<(), ()>>> {
        boundary(&env, || {
            let d = desc_from_js(&desc)?;
            let (inner, id, chunk, bytes) =
                (self.inner.clone(), id16(&id, "id")?, id16(&desc.chunk, "chunk")?, bytes.to_vec());
            Ok(task(move || inner.put_record(&id, &chunk, &d, &bytes), unit, signal))
        })
    }

    /// Async form of `accessTimes`.
    #[napi(ts_return_type = "Promise<Array<BindingAccess>>")]
    pub fn access_times_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<std::collections::HashMap<[u8; 16], u64>, Vec<BindingAccess>>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(
                move || inner.access_times(&id),
                |m| {
                    Ok(m.into_iter().map(|(c, ms)| BindingAccess { chunk: c.to_vec().into(), ms: ms as f64 }).collect())
                },
                signal,
            ))
        })
    }

    /// Async form of `flushAccessTimes`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush_access_times_async(&self, signal: Option<AbortSignal>) -> AsyncTask<OpTask<(), ()>> {
        let inner = self.inner.clone();
        task(move || inner.flush_access_times(), unit, signal)
    }

    /// Async form of `verify`.
    #[napi(ts_return_type = "Promise<Array<BindingBadRecord>>")]
    pub fn verify_async(
        &self,
        env: Env,
        id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Vec<([u8; 16], String)>, Vec<BindingBadRecord>>>> {
        boundary(&env, || {
            let (inner, id) = (self.inner.clone(), id16(&id, "id")?);
            Ok(task(
                move || inner.verify(&id),
                |v| {
                    Ok(v.into_iter().map(|(c, reason)| BindingBadRecord { chunk: c.to_vec().into(), reason }).collect())
                },
                signal,
            ))
        })
    }

    /// Overwrites raw record bytes (tests plant corruption with it).
    #[napi]
    pub fn put_raw_record_for_tests(&self, env: Env, id: Buffer, chunk: Buffer, bytes: Buffer) -> Result<()> {
        boundary(&env, || self.inner.put_raw_record_for_tests(&id16(&id, "id")?, &id16(&chunk, "chunk")?, &bytes))
    }

    /// Plain LMDB read loop over a cache's records touching every byte:
    /// `[records, bytes, fold]` (a benchmark ceiling).
    #[napi]
    pub fn scan_records(&self, env: Env, id: Buffer) -> Result<Vec<f64>> {
        boundary(&env, || {
            let (n, b, f) = self.inner.scan_records(&id16(&id, "id")?)?;
            Ok(vec![n as f64, b as f64, (f & 0xffff_ffff) as f64])
        })
    }

    /// Size of the environment's data file in bytes.
    #[napi]
    pub fn disk_bytes(&self, env: Env) -> Result<f64> {
        boundary(&env, || Ok(self.inner.disk_bytes()? as f64))
    }
}

// ---------------------------------------------------------------------------
// Grid and plans

/// A grid: axis names, value hashes and chunk sizes.
#[napi]
pub struct BindingGrid {
    inner: Arc<Grid>,
}

/// Touched bins of one axis of a plan.
#[napi(object)]
pub struct BindingAxisPlan {
    pub bin: Vec<u32>,
    pub start: Vec<u32>,
    pub len: Vec<u32>,
    /// Position in the axis' selection of each bin's first selected offset.
    pub sel_pos: Vec<u32>,
    /// Number of selected offsets of each bin.
    pub sel_count: Vec<u32>,
    /// Selected offsets of all bins, concatenated.
    pub sel: Uint32Array,
}

#[napi]
impl BindingGrid {
    /// `hashes[i]` holds u64 LE value hashes of axis `names[i]`.
    #[napi(constructor)]
    pub fn new(env: Env, names: Vec<String>, hashes: Vec<Buffer>, chunks: Vec<u32>) -> Result<BindingGrid> {
        boundary(&env, || {
            if names.len() != hashes.len() || names.len() != chunks.len() {
                return Err(invalid("names, hashes and chunks differ in length"));
            }
            let axes = names
                .into_iter()
                .zip(hashes)
                .zip(chunks)
                .map(|((name, h), chunk)| Axis {
                    name,
                    hashes: h.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
                    chunk: chunk as usize,
                })
                .collect();
            Ok(BindingGrid { inner: Arc::new(Grid::new(axes)?) })
        })
    }

    /// Number of memo chunks of the whole grid.
    #[napi(getter)]
    pub fn chunk_count(&self) -> f64 {
        self.inner.n_chunks() as f64
    }

    /// Plans a selection: per axis `null` (all) or sorted distinct indices.
    #[napi]
    pub fn plan(&self, env: Env, selection: Vec<Option<Uint32Array>>) -> Result<BindingPlan> {
        boundary(&env, || {
            let sel: Vec<Option<Vec<u32>>> = selection.into_iter().map(|s| s.map(|a| a.to_vec())).collect();
            let plan = self.inner.plan(&sel)?;
            let n = plan.n_chunks;
            Ok(BindingPlan {
                grid: self.inner.clone(),
                plan: Arc::new(plan),
                state: Arc::new(Mutex::new(PlanState {
                    owner: None,
                    catalog: Catalog::default(),
                    resolutions: vec![None; n],
                })),
            })
        })
    }
}

struct PlanState {
    /// Store path and cache id the cached resolutions belong to.
    owner: Option<(std::path::PathBuf, [u8; 16])>,
    catalog: Catalog,
    resolutions: Vec<Option<Resolution>>,
}

impl PlanState {
    /// Drops cached resolutions made for another store or cache.
    fn bind(&mut self, store: &Store, cache: &[u8; 16]) {
        let owner = (store.path().to_path_buf(), *cache);
        if self.owner.as_ref() != Some(&owner) {
            self.catalog = Catalog::default();
            self.resolutions.iter_mut().for_each(|r| *r = None);
            self.owner = Some(owner);
        }
    }
}

/// Requested points of a chunk read from the store.
#[napi(object)]
pub struct BindingChunkData {
    /// 0 = items (msgpack per point), else a dtype code.
    pub kind: u32,
    /// One byte per requested point: 1 when read.
    pub present: Buffer,
    /// Items: offsets (present+1) into `data`.
    pub offsets: Uint32Array,
    pub data: Buffer,
    /// Items: dictionaries the present points were packed with (an empty
    /// one means plain msgpack).
    pub dicts: Vec<Buffer>,
    /// Items: per present point, the index of its dictionary in `dicts`.
    pub point_dicts: Uint16Array,
    /// Records that failed verification and were treated as missing.
    pub corrupt: Vec<String>,
}

fn chunk_data_to_js(d: ChunkData) -> Result<BindingChunkData> {
    Ok(BindingChunkData {
        kind: d.kind as u32,
        present: d.present.iter().map(|&p| u8::from(p)).collect::<Vec<u8>>().into(),
        offsets: d.offsets.into(),
        data: d.data.into(),
        dicts: d.dicts.into_iter().map(Into::into).collect(),
        point_dicts: d.point_dicts.into(),
        corrupt: d.corrupt.into_iter().map(|(c, r)| format!("{}: {r}", canonical::hex(&c))).collect(),
    })
}

/// Missing points of a chunk, computed off the JS thread.
pub struct Missing {
    blocks: Vec<chunk_memo_core::planner::Block>,
    points: Vec<u32>,
}

fn blocks_to_js(m: Missing) -> Result<BindingBlocks> {
    Ok(BindingBlocks {
        blocks: m.blocks.into_iter().map(|b| b.into_iter().map(Uint32Array::from).collect()).collect(),
        points: m.points.into(),
    })
}

/// Missing points of a chunk as product blocks.
#[napi(object)]
pub struct BindingBlocks {
    /// Per block, per axis: positions into the chunk's selected offsets.
    pub blocks: Vec<Vec<Uint32Array>>,
    /// Requested-point indices of every block's points, blocks in order,
    /// each in its grid order.
    pub points: Uint32Array,
}

/// A planned selection of a grid; resolves, reads and writes its chunks.
#[napi]
pub struct BindingPlan {
    grid: Arc<Grid>,
    plan: Arc<Plan>,
    state: Arc<Mutex<PlanState>>,
}

type Resolved = (Vec<u32>, Vec<String>);

fn resolved_to_js(r: Resolved) -> Result<BindingResolved> {
    Ok(BindingResolved { available: r.0.into(), corrupt: r.1 })
}

/// Per chunk: how many requested points are stored.
#[napi(object)]
pub struct BindingResolved {
    pub available: Uint32Array,
    pub corrupt: Vec<String>,
}

impl BindingPlan {
    fn resolve_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
    ) -> CoreResult<impl FnOnce() -> CoreResult<Resolved> + Send + 'static> {
        let (store, grid, plan, state, cache) = (
            store.inner.clone(),
            self.grid.clone(),
            self.plan.clone(),
            self.state.clone(),
            id16(cache_id, "cache id")?,
        );
        Ok(move || {
            let mut st = state.lock().unwrap();
            st.bind(&store, &cache);
            st.catalog = Catalog::default();
            let res = store.resolve(&cache, &grid, &plan, 0..plan.n_chunks, &mut st.catalog)?;
            let avail = res.iter().map(|r| r.available).collect();
            let corrupt =
                res.iter().flat_map(|r| r.corrupt.iter().map(|(c, m)| format!("{}: {m}", canonical::hex(c)))).collect();
            st.resolutions = res.into_iter().map(Some).collect();
            Ok((avail, corrupt))
        })
    }

    fn resolution(&self, store: &Store, cache: &[u8; 16], i: usize) -> CoreResult<Resolution> {
        let mut st = self.state.lock().unwrap();
        st.bind(store, cache);
        if let Some(Some(r)) = st.resolutions.get(i) {
            return Ok(r.clone());
        }
        let st = &mut *st;
        let r = store.resolve(cache, &self.grid, &self.plan, i..i + 1, &mut st.catalog)?.pop().unwrap();
        st.resolutions[i] = Some(r.clone());
        Ok(r)
    }

    /// A handle on the same plan and state, movable to the libuv pool.
    fn share(&self) -> BindingPlan {
        BindingPlan { grid: self.grid.clone(), plan: self.plan.clone(), state: self.state.clone() }
    }

    /// Prepares a per-chunk operation: checks the chunk index and the cache
    /// id on the JS thread, runs `f` later (sync call or AsyncTask).
    fn chunk_op<T: Send + 'static>(
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

    fn presence_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<Vec<u8>> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            Ok((0..r.requested as usize).map(|k| u8::from(r.is_present(k))).collect())
        })
    }

    fn missing_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<Missing> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            let geo = ChunkGeometry::of(&me.plan, i);
            let dims: Vec<usize> = geo.sel.iter().map(|s| s.len()).collect();
            let missing: Vec<bool> = (0..r.requested as usize).map(|k| !r.is_present(k)).collect();
            let blocks = missing_blocks(&dims, &missing);
            let mut points = Vec::new();
            for b in &blocks {
                let mut acc = vec![0u32];
                for (a, idx) in b.iter().enumerate() {
                    let d = dims[a] as u32;
                    acc = acc.iter().flat_map(|&base| idx.iter().map(move |&x| base * d + x)).collect();
                }
                points.extend(acc);
            }
            Ok(Missing { blocks, points })
        })
    }

    fn check(&self, i: u32) -> CoreResult<usize> {
        if (i as usize) < self.plan.n_chunks {
            Ok(i as usize)
        } else {
            Err(invalid(format!("chunk {i} out of range")))
        }
    }

    fn read_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
    ) -> CoreResult<impl FnOnce() -> CoreResult<ChunkData> + Send + 'static> {
        self.chunk_op(store, cache_id, i, |me, store, cache, i| {
            let r = me.resolution(store, cache, i)?;
            store.read_chunk(cache, &r)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        i: u32,
        kind: u32,
        points: &[u32],
        offsets: &[u32],
        data: &[u8],
        dict: &[u8],
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let w = OwnedWrite {
            chunk: self.check(i)?,
            kind: kind as u8,
            points: points.to_vec(),
            offsets: offsets.to_vec(),
            data: data.to_vec(),
            dict: dict.to_vec(),
        };
        self.owned_batch_op(store, cache_id, vec![w])
    }
}

/// New points of one chunk, for `writeBatch`.
#[napi(object)]
pub struct BindingChunkWrite {
    pub chunk: u32,
    pub kind: u32,
    pub points: Uint32Array,
    pub offsets: Uint32Array,
    pub data: Buffer,
    /// Items: the dictionary the points were packed with.
    pub dict: Option<Buffer>,
}

struct OwnedWrite {
    chunk: usize,
    kind: u8,
    points: Vec<u32>,
    offsets: Vec<u32>,
    data: Vec<u8>,
    dict: Vec<u8>,
}

impl BindingPlan {
    fn batch_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        writes: Vec<BindingChunkWrite>,
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let mut owned = Vec::with_capacity(writes.len());
        for w in writes {
            owned.push(OwnedWrite {
                chunk: self.check(w.chunk)?,
                kind: w.kind as u8,
                points: w.points.to_vec(),
                offsets: w.offsets.to_vec(),
                data: w.data.to_vec(),
                dict: w.dict.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
        self.owned_batch_op(store, cache_id, owned)
    }

    /// Writes chunks in one transaction, each merged with what is stored.
    fn owned_batch_op(
        &self,
        store: &BindingStore,
        cache_id: &[u8],
        owned: Vec<OwnedWrite>,
    ) -> CoreResult<impl FnOnce() -> CoreResult<()> + Send + 'static> {
        let me = self.share();
        let (store, cache) = (store.inner.clone(), id16(cache_id, "cache id")?);
        Ok(move || {
            let res: Vec<Option<Resolution>> = {
                let mut st = me.state.lock().unwrap();
                st.bind(&store, &cache);
                owned.iter().map(|w| st.resolutions[w.chunk].clone()).collect()
            };
            let geos: Vec<ChunkGeometry> = owned.iter().map(|w| ChunkGeometry::of(&me.plan, w.chunk)).collect();
            let writes: Vec<ChunkWrite<'_>> = owned
                .iter()
                .zip(&geos)
                .zip(&res)
                .map(|((w, geo), r)| ChunkWrite {
                    geo,
                    grid: &me.grid,
                    res: r.as_ref(),
                    kind: w.kind,
                    points: &w.points,
                    offsets: &w.offsets,
                    data: &w.data,
                    dict: &w.dict,
                })
                .collect();
            store.write_chunks(&cache, &writes)?;
            let mut st = me.state.lock().unwrap();
            for w in &owned {
                st.resolutions[w.chunk] = None;
            }
            Ok(())
        })
    }
}

#[napi]
impl BindingPlan {
    /// Writes new points of several chunks in one transaction.
    #[napi]
    pub fn write_batch(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        writes: Vec<BindingChunkWrite>,
    ) -> Result<()> {
        boundary(&env, || self.batch_op(store, &cache_id, writes)?())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn write_batch_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        writes: Vec<BindingChunkWrite>,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<(), ()>>> {
        boundary(&env, || Ok(task(self.batch_op(store, &cache_id, writes)?, unit, signal)))
    }

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
    /// them, first axis slowest.
    #[napi]
    pub fn describe(&self) -> Vec<BindingAxisPlan> {
        self.plan
            .axes
            .iter()
            .map(|bins| BindingAxisPlan {
                bin: bins.iter().map(|b| b.bin).collect(),
                start: bins.iter().map(|b| b.start).collect(),
                len: bins.iter().map(|b| b.len).collect(),
                sel_pos: bins.iter().map(|b| b.sel_pos).collect(),
                sel_count: bins.iter().map(|b| b.sel.len() as u32).collect(),
                sel: bins.iter().flat_map(|b| b.sel.iter().copied()).collect::<Vec<u32>>().into(),
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
    #[napi]
    pub fn resolve(&self, env: Env, store: &BindingStore, cache_id: Buffer) -> Result<BindingResolved> {
        resolved_to_js(boundary(&env, || self.resolve_op(store, &cache_id)?())?)
    }

    #[napi(ts_return_type = "Promise<BindingResolved>")]
    pub fn resolve_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Resolved, BindingResolved>>> {
        boundary(&env, || Ok(task(self.resolve_op(store, &cache_id)?, resolved_to_js, signal)))
    }

    /// One byte per requested point of chunk `i`: 1 when stored.
    #[napi]
    pub fn presence(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<Buffer> {
        boundary(&env, || Ok(self.presence_op(store, &cache_id, i)?()?.into()))
    }

    /// Async form of `presence`.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn presence_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Vec<u8>, Buffer>>> {
        boundary(&env, || Ok(task(self.presence_op(store, &cache_id, i)?, |v| Ok(v.into()), signal)))
    }

    /// Missing points of chunk `i` as disjoint product blocks.
    #[napi]
    pub fn missing(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<BindingBlocks> {
        blocks_to_js(boundary(&env, || self.missing_op(store, &cache_id, i)?())?)
    }

    /// Async form of `missing`.
    #[napi(ts_return_type = "Promise<BindingBlocks>")]
    pub fn missing_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<Missing, BindingBlocks>>> {
        boundary(&env, || Ok(task(self.missing_op(store, &cache_id, i)?, blocks_to_js, signal)))
    }

    /// Reads the stored requested points of chunk `i`.
    #[napi]
    pub fn read(&self, env: Env, store: &BindingStore, cache_id: Buffer, i: u32) -> Result<BindingChunkData> {
        chunk_data_to_js(boundary(&env, || self.read_op(store, &cache_id, i)?())?)
    }

    #[napi(ts_return_type = "Promise<BindingChunkData>")]
    pub fn read_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<ChunkData, BindingChunkData>>> {
        boundary(&env, || Ok(task(self.read_op(store, &cache_id, i)?, chunk_data_to_js, signal)))
    }

    /// Writes new points of chunk `i`: `points` are requested-point
    /// indices; items give `offsets` (points+1) into `data` and the
    /// `dict` they were packed with, typed kinds give raw little-endian
    /// elements.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        kind: u32,
        points: Uint32Array,
        offsets: Uint32Array,
        data: Buffer,
        dict: Option<Buffer>,
    ) -> Result<()> {
        boundary(&env, || {
            self.write_op(store, &cache_id, i, kind, &points, &offsets, &data, dict.as_deref().unwrap_or(&[]))?()
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    #[allow(clippy::too_many_arguments)]
    pub fn write_async(
        &self,
        env: Env,
        store: &BindingStore,
        cache_id: Buffer,
        i: u32,
        kind: u32,
        points: Uint32Array,
        offsets: Uint32Array,
        data: Buffer,
        dict: Option<Buffer>,
        signal: Option<AbortSignal>,
    ) -> Result<AsyncTask<OpTask<(), ()>>> {
        boundary(&env, || {
            Ok(task(
                self.write_op(store, &cache_id, i, kind, &points, &offsets, &data, dict.as_deref().unwrap_or(&[]))?,
                unit,
                signal,
            ))
        })
    }
}
