//! The LMDB chunk store.
//!
//! One environment per root directory per process, shared through a
//! registry of weak references so every thread (and every worker thread of a
//! Node process, which share this library) gets the same handle. Databases:
//!
//! * `meta`:    cache id (16 B) -> opaque metadata written by the TS layer
//! * `records`: cache id + chunk key (32 B) -> record ([`crate::record`])
//! * `index`:   same key -> descriptor: the record's axes and value hashes,
//!   point counts, size and update time. Used to find records that serve a
//!   chunk of another chunking or a longer axis.
//! * `atime`:   same key -> last access time (ms), written in batches.
//! * `claims`:  same key -> work in flight on that chunk ([`crate::claims`]).
//! * `inuse`:   cache id + owner id -> in-use marks of versions before mark
//!   files (`<root>/inuse/`, see [`inuse`]); still honoured and swept.
//!
//! Every write is one LMDB transaction: a crash leaves each record absent or
//! complete. The map starts large and doubles on `MDB_MAP_FULL`.
//!
//! Submodules: [`index`] (descriptors and totals), [`resolve`] (which stored
//! points serve a planned chunk), [`chunks`] (reading and writing planned
//! chunks), [`upkeep`] (raw records, deletion, access times, verification),
//! [`pages`] (the resident memory of the data file's mapping), [`behind`]
//! (write jobs on the store's writer thread).

mod behind;
mod catalog;
mod chunks;
mod index;
mod inuse;
mod own_walk;
mod pages;
mod resolve;
mod seek;
mod upkeep;

pub use crate::planner::ChunkGeometry;
pub use behind::Pending;
pub use catalog::Catalog;
pub use chunks::{ChunkData, ChunkWrite, ReadMemo, WritePoints};
pub use index::{CacheSummary, Descriptor};
pub use own_walk::walks_for_tests;
pub use resolve::{Found, Resolution, Source, TakeWhole, Taker, WholeLayout, WholeRecord};
pub use upkeep::Repair;

use crate::error::{CoreError, ErrorCode, Result};
use crate::owner::Owner;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

pub type CacheId = [u8; 16];
pub type ChunkKey = [u8; 16];
/// A read transaction of a store (see [`Store::read`]).
pub type ReadTxn<'t> = RoTxn<'t, WithoutTls>;

// 16 GiB of address space to start (the file grows only as written); the map
// doubles on MDB_MAP_FULL, so this is no limit on the store's size.
const DEFAULT_MAP_SIZE: usize = 16 << 30;

/// Free space under which an `EIO` from a write means a full disk: a short
/// write stops when the file system is full, so what is left is below one
/// block unless space was freed since.
const LOW_SPACE: u64 = 4 << 20;

/// Bytes available to unprivileged writers on the file system of `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some).
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn rkey(cache: &CacheId, chunk: &ChunkKey) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(cache);
    k[16..].copy_from_slice(chunk);
    k
}
/// A store: one LMDB environment at a root.
pub struct Store {
    env: Env<WithoutTls>,
    pub(crate) meta: Database<Bytes, Bytes>,
    pub(crate) records: Database<Bytes, Bytes>,
    pub(crate) index: Database<Bytes, Bytes>,
    atime: Database<Bytes, Bytes>,
    pub(crate) claims: Database<Bytes, Bytes>,
    inuse: Database<Bytes, Bytes>,
    /// This process' owner identity at this root (work claims).
    pub(crate) owner: Owner,
    path: PathBuf,
    // Held shared by every transaction, exclusively while resizing the map.
    gate: RwLock<()>,
    /// Reads noted (record key, ms), not yet written (see `note_accesses`).
    pending_atime: Mutex<Vec<([u8; 32], u64)>>,
    // In-use marks of this process at this root.
    marks: Mutex<inuse::Marks>,
    next_mark: std::sync::atomic::AtomicU64,
    // Resident pages of the data file's mapping.
    pages: pages::MapPages,
    // The writer thread of write-behind jobs.
    writer: behind::Writer,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Store>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Weak<Store>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Store {
    /// Opens (creating if needed) the store at `root`. Every call for the
    /// same directory in one process returns the same shared handle.
    pub fn open(root: &Path) -> Result<Arc<Store>> {
        std::fs::create_dir_all(root).map_err(|e| {
            CoreError::new(ErrorCode::Storage, format!("cannot create cache root {}: {e}", root.display()))
        })?;
        let canon = root.canonicalize().map_err(|e| {
            CoreError::new(ErrorCode::Storage, format!("cannot resolve cache root {}: {e}", root.display()))
        })?;
        let mut reg = registry().lock().unwrap();
        if let Some(s) = reg.get(&canon).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let map_size =
            std::env::var("CHUNK_MEMO_MAP_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_MAP_SIZE);
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(map_size).max_dbs(8).max_readers(512);
        // SAFETY: the environment lives on a local directory that only LMDB
        // manages; the registry guarantees one open per process.
        let env = unsafe { opts.open(&canon)? };
        let mut wtxn = env.write_txn()?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        let records = env.create_database(&mut wtxn, Some("records"))?;
        let index = env.create_database(&mut wtxn, Some("index"))?;
        let atime = env.create_database(&mut wtxn, Some("atime"))?;
        let claims = env.create_database(&mut wtxn, Some("claims"))?;
        let inuse = env.create_database(&mut wtxn, Some("inuse"))?;
        wtxn.commit()?;
        // Reader slots of killed processes would pin old pages forever.
        env.clear_stale_readers()?;
        let store = Arc::new(Store {
            env,
            meta,
            records,
            index,
            atime,
            claims,
            inuse,
            owner: Owner::create(&canon),
            path: canon.clone(),
            gate: RwLock::new(()),
            pending_atime: Mutex::new(Vec::new()),
            marks: Mutex::new(inuse::Marks::default()),
            next_mark: std::sync::atomic::AtomicU64::new(0),
            pages: pages::MapPages::new(),
            writer: behind::Writer::default(),
        });
        reg.retain(|_, w| w.strong_count() > 0);
        reg.insert(canon, Arc::downgrade(&store));
        drop(reg);
        store.purge_dead_owners()?;
        store.purge_dead_marks()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a read transaction.
    pub fn read<T>(&self, f: impl FnOnce(&Store, &RoTxn<'_, WithoutTls>) -> Result<T>) -> Result<T> {
        for _ in 0..2 {
            let g = self.gate.read().unwrap();
            match self.env.read_txn() {
                Err(heed::Error::Mdb(heed::MdbError::MapResized)) => {
                    drop(g);
                    self.adopt_map_size()?;
                }
                r => {
                    let out = f(self, &r?);
                    drop(g);
                    self.after_io();
                    return out;
                }
            }
        }
        Err(CoreError::new(ErrorCode::Storage, "the map keeps being resized by another process"))
    }

    /// Runs `f` in a read transaction of its own, beside one the calling
    /// code holds in snapshot `snapshot` (see [`Store::snapshot_id`]), for
    /// a thread that shares that transaction's work: `None` when no
    /// transaction could be opened or it sees another snapshot (a write
    /// committed in between), so that `f` never mixes two snapshots.
    /// Call it only while that transaction is open: it opens this one under
    /// the same hold on the map (taking the hold again could wait behind a
    /// resize that waits for the caller).
    pub fn read_beside<T>(&self, snapshot: u64, f: impl FnOnce(&RoTxn<'_, WithoutTls>) -> T) -> Option<T> {
        let t = self.env.read_txn().ok()?;
        (Store::snapshot_id(&t) == snapshot).then(|| f(&t))
    }

    /// Another process grew the map: adopt its size (no txn of ours open).
    fn adopt_map_size(&self) -> Result<()> {
        let _g = self.gate.write().unwrap();
        // SAFETY: the exclusive gate guarantees no transaction of this
        // process is open.
        unsafe { self.env.resize(0)? };
        Ok(())
    }

    /// Runs `f` in a write transaction and commits; grows the map and retries
    /// when it is full.
    pub fn write<T>(&self, mut f: impl FnMut(&Store, &mut RwTxn<'_>) -> Result<T>) -> Result<T> {
        for _ in 0..8 {
            let r = {
                let g = self.gate.read().unwrap();
                let mut txn = match self.env.write_txn() {
                    Err(heed::Error::Mdb(heed::MdbError::MapResized)) => {
                        drop(g);
                        self.adopt_map_size()?;
                        continue;
                    }
                    r => r?,
                };
                match f(self, &mut txn) {
                    Ok(v) => txn.commit().map(|_| v).map_err(CoreError::from),
                    Err(e) => Err(e),
                }
            };
            match r {
                Err(e) if e.code == ErrorCode::MapFull => self.grow()?,
                Err(e) => return Err(self.classify_write_error(e)),
                r => {
                    self.after_io();
                    return r;
                }
            }
        }
        Err(CoreError::new(ErrorCode::StoreFull, "the store map could not grow enough; set CHUNK_MEMO_MAP_SIZE"))
    }

    /// LMDB reports a write that could not extend the data file (a full
    /// disk on file systems that write short, tmpfs among them) as `EIO`:
    /// when the file system under the root has (almost) no space left, that
    /// is `ERR_STORE_FULL`. An `EIO` with space left stays `ERR_STORAGE`.
    fn classify_write_error(&self, e: CoreError) -> CoreError {
        if e.code == ErrorCode::Storage && e.os_error == Some(crate::error::EIO) {
            if let Some(free) = free_bytes(&self.path) {
                if free < LOW_SPACE {
                    let mut full = CoreError::new(
                        ErrorCode::StoreFull,
                        crate::error::store_full_message(format_args!(
                            "a write could not extend the data file; {free} bytes are free on its file system"
                        )),
                    );
                    full.os_error = e.os_error;
                    return full;
                }
            }
        }
        e
    }

    fn grow(&self) -> Result<()> {
        let _g = self.gate.write().unwrap();
        let cur = self.env.info().map_size;
        let next = cur.saturating_mul(2);
        // An optional cap (CHUNK_MEMO_MAX_MAP_SIZE) bounds the store like a
        // full disk would.
        if let Some(max) = std::env::var("CHUNK_MEMO_MAX_MAP_SIZE").ok().and_then(|s| s.parse::<usize>().ok()) {
            if next > max {
                return Err(CoreError::new(
                    ErrorCode::StoreFull,
                    format!(
                        "the store is full: it would grow to {next} bytes, over CHUNK_MEMO_MAX_MAP_SIZE={max}; \
                         raise or unset it, or free space with gc; nothing committed before this write was lost"
                    ),
                ));
            }
        }
        // SAFETY: the exclusive gate guarantees no transaction of this
        // process is open.
        unsafe { self.env.resize(next)? };
        Ok(())
    }

    // ----- metadata -----

    pub fn put_meta(&self, cache: &CacheId, blob: &[u8]) -> Result<()> {
        self.write(|s, t| Ok(s.meta.put(t, cache, blob)?))
    }

    /// Read-modify-write of a cache's metadata in one write transaction, so
    /// concurrent updates (opens adding axis values) are never lost: `f`
    /// gets the stored blob (`None` when absent) and returns the blob to
    /// store, or `None` to leave it as it is. An error from `f` aborts the
    /// transaction. `f` may run again when the map grows; it must not use
    /// the store. Returns whether a blob was written.
    pub fn update_meta(
        &self,
        cache: &CacheId,
        mut f: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
    ) -> Result<bool> {
        self.write(|s, t| {
            let new = f(s.meta.get(t, cache)?)?;
            match new {
                Some(blob) => {
                    s.meta.put(t, cache, &blob)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    pub fn get_meta(&self, cache: &CacheId) -> Result<Option<Vec<u8>>> {
        self.read(|s, t| Ok(s.meta.get(t, cache)?.map(|b| b.to_vec())))
    }

    pub fn list_meta(&self) -> Result<Vec<(CacheId, Vec<u8>)>> {
        self.read(|s, t| {
            let mut out = Vec::new();
            for item in s.meta.iter(t)? {
                let (k, v) = item?;
                if let Ok(id) = <[u8; 16]>::try_from(k) {
                    out.push((id, v.to_vec()));
                }
            }
            Ok(out)
        })
    }
}
