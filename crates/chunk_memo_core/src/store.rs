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
//!
//! Every write is one LMDB transaction: a crash leaves each record absent or
//! complete. The map starts large and doubles on `MDB_MAP_FULL`.

use crate::error::{CoreError, ErrorCode, Result};
use crate::owner::Owner;
use crate::planner::{Grid, Plan};
use crate::record::{RecordBuilder, RecordView};
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

pub type CacheId = [u8; 16];
pub type ChunkKey = [u8; 16];

// 16 GiB of address space to start (the file grows only as written); the map
// doubles on MDB_MAP_FULL, so this is no limit on the store's size.
const DEFAULT_MAP_SIZE: usize = 16 << 30;

/// Totals of one cache's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSummary {
    pub records: u64,
    pub points: u64,
    pub bytes: u64,
    pub last_write_ms: u64,
}

/// A record's descriptor as kept in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub axes: Vec<(String, Vec<u64>)>,
    pub n: u32,
    pub present: u32,
    pub bytes: u64,
    pub updated_ms: u64,
}

impl Descriptor {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.axes.iter().map(|a| a.0.len() + 8 + a.1.len() * 8).sum::<usize>());
        out.push(1);
        out.extend_from_slice(&(self.axes.len() as u32).to_le_bytes());
        for (name, hashes) in &self.axes {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
            for h in hashes {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.n.to_le_bytes());
        out.extend_from_slice(&self.present.to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        out.extend_from_slice(&self.updated_ms.to_le_bytes());
        out
    }

    /// (n, present) from an encoded descriptor without decoding the axes.
    pub fn counts(b: &[u8]) -> Result<(u32, u32)> {
        let (n, present, _, _) = Self::tail(b)?;
        Ok((n, present))
    }

    /// (n, present, bytes, updated_ms) from the fixed-size tail of an
    /// encoded descriptor, without decoding the axes.
    pub fn tail(b: &[u8]) -> Result<(u32, u32, u64, u64)> {
        if b.len() < 25 || b[0] != 1 {
            return Err(CoreError::corrupt("bad index descriptor"));
        }
        let t = b.len() - 24;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        Ok((u32_at(t), u32_at(t + 4), u64_at(t + 8), u64_at(t + 16)))
    }

    pub fn decode(b: &[u8]) -> Result<Descriptor> {
        let bad = || CoreError::corrupt("bad index descriptor");
        let mut p = 0usize;
        let u32_at = |p: &mut usize| -> Result<u32> {
            let v = b.get(*p..*p + 4).ok_or_else(bad)?;
            *p += 4;
            Ok(u32::from_le_bytes(v.try_into().unwrap()))
        };
        let u64_at = |p: &mut usize| -> Result<u64> {
            let v = b.get(*p..*p + 8).ok_or_else(bad)?;
            *p += 8;
            Ok(u64::from_le_bytes(v.try_into().unwrap()))
        };
        if b.first() != Some(&1) {
            return Err(bad());
        }
        p += 1;
        let na = u32_at(&mut p)? as usize;
        let mut axes = Vec::with_capacity(na);
        for _ in 0..na {
            let nl = u32_at(&mut p)? as usize;
            let name = std::str::from_utf8(b.get(p..p + nl).ok_or_else(bad)?).map_err(|_| bad())?.to_string();
            p += nl;
            let nh = u32_at(&mut p)? as usize;
            let mut hashes = Vec::with_capacity(nh);
            for _ in 0..nh {
                hashes.push(u64_at(&mut p)?);
            }
            axes.push((name, hashes));
        }
        Ok(Descriptor {
            axes,
            n: u32_at(&mut p)?,
            present: u32_at(&mut p)?,
            bytes: u64_at(&mut p)?,
            updated_ms: u64_at(&mut p)?,
        })
    }
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
    /// This process' owner identity at this root (work claims).
    pub(crate) owner: Owner,
    path: PathBuf,
    // Held shared by every transaction, exclusively while resizing the map.
    gate: RwLock<()>,
    // Access times noted by reads, flushed in batches.
    pending_atime: Mutex<HashMap<[u8; 32], u64>>,
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
            owner: Owner::create(&canon),
            path: canon.clone(),
            gate: RwLock::new(()),
            pending_atime: Mutex::new(HashMap::new()),
        });
        reg.retain(|_, w| w.strong_count() > 0);
        reg.insert(canon, Arc::downgrade(&store));
        drop(reg);
        store.purge_dead_owners()?;
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
                r => return f(self, &r?),
            }
        }
        Err(CoreError::new(ErrorCode::Storage, "the map keeps being resized by another process"))
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
                r => return r,
            }
        }
        Err(CoreError::new(ErrorCode::StoreFull, "the store map could not grow enough; set CHUNK_MEMO_MAP_SIZE"))
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

    /// Descriptors of every record of a cache.
    pub fn descriptors(&self, cache: &CacheId) -> Result<Vec<(ChunkKey, Descriptor)>> {
        self.read(|s, t| s.descriptors_in(t, cache))
    }

    fn descriptors_in(&self, t: &RoTxn<'_, WithoutTls>, cache: &CacheId) -> Result<Vec<(ChunkKey, Descriptor)>> {
        let mut out = Vec::new();
        for item in self.index.prefix_iter(t, cache)? {
            let (k, v) = item?;
            let chunk: ChunkKey = k[16..32].try_into().map_err(|_| CoreError::corrupt("bad index key"))?;
            out.push((chunk, Descriptor::decode(v)?));
        }
        Ok(out)
    }

    /// Totals of a cache's records, read from the index tails only (no
    /// value hashes decoded, nothing copied out per record).
    pub fn summary(&self, cache: &CacheId) -> Result<CacheSummary> {
        self.read(|s, t| {
            let mut out = CacheSummary::default();
            for item in s.index.prefix_iter(t, cache)? {
                let (_, v) = item?;
                let (_, present, bytes, updated) = Descriptor::tail(v)?;
                out.records += 1;
                out.points += present as u64;
                out.bytes += bytes;
                out.last_write_ms = out.last_write_ms.max(updated);
            }
            Ok(out)
        })
    }

    /// Raw record bytes (for export and verification).
    pub fn get_record(&self, cache: &CacheId, chunk: &ChunkKey) -> Result<Option<Vec<u8>>> {
        self.read(|s, t| Ok(s.records.get(t, &rkey(cache, chunk))?.map(|b| b.to_vec())))
    }

    /// Stores a record and its descriptor as they are (import). A record
    /// already present is merged point by point, keeping stored points.
    pub fn put_record(&self, cache: &CacheId, chunk: &ChunkKey, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let incoming = RecordView::parse(bytes)?;
        if incoming.n != desc.n as usize {
            return Err(CoreError::corrupt("record and descriptor disagree on the point count"));
        }
        self.write(|s, t| {
            let key = rkey(cache, chunk);
            let merged = match s.records.get(t, &key)?.map(RecordView::parse) {
                Some(Ok(old)) if old.kind == incoming.kind && old.n == incoming.n => {
                    let mut b = RecordBuilder::from_view(&old)?;
                    for i in 0..incoming.n {
                        if incoming.is_present(i) {
                            b.set_in(i, incoming.point(i), incoming.point_dict(i))?;
                        }
                    }
                    b.finish()
                }
                _ => bytes.to_vec(),
            };
            let view = RecordView::parse(&merged)?;
            let d = Descriptor {
                present: view.present as u32,
                bytes: merged.len() as u64,
                updated_ms: now_ms(),
                ..desc.clone()
            };
            s.records.put(t, &key, &merged)?;
            s.index.put(t, &key, &d.encode())?;
            Ok(())
        })
    }

    /// Deletes a cache: metadata, records, index and access times.
    pub fn delete_cache(&self, cache: &CacheId) -> Result<u64> {
        self.write(|s, t| {
            let mut n = 0;
            s.meta.delete(t, cache)?;
            for (j, db) in [s.records, s.index, s.atime, s.claims].into_iter().enumerate() {
                let keys: Vec<Vec<u8>> =
                    db.prefix_iter(t, cache)?.map(|r| r.map(|(k, _)| k.to_vec())).collect::<heed::Result<_>>()?;
                for k in &keys {
                    db.delete(t, k)?;
                }
                if j == 0 {
                    n = keys.len();
                }
            }
            Ok(n as u64)
        })
    }

    /// Deletes single records (eviction, repair).
    pub fn delete_records(&self, cache: &CacheId, chunks: &[ChunkKey]) -> Result<()> {
        self.write(|s, t| {
            for c in chunks {
                let k = rkey(cache, c);
                s.records.delete(t, &k)?;
                s.index.delete(t, &k)?;
                s.atime.delete(t, &k)?;
            }
            Ok(())
        })
    }

    /// Access times of a cache's records (ms; records never read report 0).
    pub fn access_times(&self, cache: &CacheId) -> Result<HashMap<ChunkKey, u64>> {
        self.flush_access_times()?;
        self.read(|s, t| {
            let mut out = HashMap::new();
            for item in s.atime.prefix_iter(t, cache)? {
                let (k, v) = item?;
                if let (Ok(c), Ok(ms)) = (<[u8; 16]>::try_from(&k[16..32]), <[u8; 8]>::try_from(v)) {
                    out.insert(c, u64::from_le_bytes(ms));
                }
            }
            Ok(out)
        })
    }

    fn note_access(&self, cache: &CacheId, chunk: &ChunkKey) {
        let mut p = self.pending_atime.lock().unwrap();
        p.insert(rkey(cache, chunk), now_ms());
        // Amortised: reads never write; access times go out in batches.
        if p.len() >= 1024 {
            let batch = std::mem::take(&mut *p);
            drop(p);
            let _ = self.write_atimes(&batch);
        }
    }

    /// Writes the access times noted since the last flush.
    pub fn flush_access_times(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending_atime.lock().unwrap());
        if batch.is_empty() {
            return Ok(());
        }
        self.write_atimes(&batch)
    }

    fn write_atimes(&self, batch: &HashMap<[u8; 32], u64>) -> Result<()> {
        self.write(|s, t| {
            for (k, ms) in batch {
                // Only for records that still exist.
                if s.index.get(t, k)?.is_some() {
                    s.atime.put(t, k, &ms.to_le_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// Verifies every record of a cache: checksum, structure, and agreement
    /// with its descriptor. Returns the bad chunk keys with the reason.
    pub fn verify(&self, cache: &CacheId) -> Result<Vec<(ChunkKey, String)>> {
        self.read(|s, t| {
            let mut bad = Vec::new();
            for (chunk, desc) in s.descriptors_in(t, cache)? {
                match s.records.get(t, &rkey(cache, &chunk))? {
                    None => bad.push((chunk, "indexed record is missing".to_string())),
                    Some(bytes) => match RecordView::parse(bytes) {
                        Err(e) => bad.push((chunk, e.message)),
                        Ok(v) if v.n != desc.n as usize || v.present != desc.present as usize => {
                            bad.push((chunk, "record disagrees with its index entry".to_string()))
                        }
                        Ok(_) => {}
                    },
                }
            }
            // Records without an index entry.
            for item in s.records.prefix_iter(t, cache)? {
                let (k, _) = item?;
                if s.index.get(t, k)?.is_none() {
                    bad.push((k[16..32].try_into().unwrap(), "record has no index entry".to_string()));
                }
            }
            Ok(bad)
        })
    }

    /// Overwrites a record's raw bytes, bypassing checks. Only for tests that
    /// plant corruption.
    #[doc(hidden)]
    pub fn put_raw_record_for_tests(&self, cache: &CacheId, chunk: &ChunkKey, bytes: &[u8]) -> Result<()> {
        self.write(|s, t| Ok(s.records.put(t, &rkey(cache, chunk), bytes)?))
    }

    /// Plain LMDB read loop over every record of a cache, touching each byte
    /// (the ceiling that benchmarks compare the store's read path with).
    /// Returns (records, bytes, fold of the bytes).
    pub fn scan_records(&self, cache: &CacheId) -> Result<(u64, u64, u64)> {
        self.read(|s, t| {
            let (mut n, mut bytes, mut fold) = (0u64, 0u64, 0u64);
            for item in s.records.prefix_iter(t, cache)? {
                let (_, v) = item?;
                n += 1;
                bytes += v.len() as u64;
                let mut acc = 0u64;
                for c in v.chunks(8) {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    acc ^= u64::from_le_bytes(w);
                }
                fold ^= acc;
            }
            Ok((n, bytes, fold))
        })
    }

    /// Environment size on disk in bytes.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(self.env.real_disk_size()?)
    }
}

// ---------------------------------------------------------------------------
// Resolution: which stored points serve a planned chunk.

/// Where requested points of a chunk come from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub chunk: ChunkKey,
    /// (requested point index, point index in the source record). Empty
    /// when `whole` is set.
    pub map: Vec<(u32, u32)>,
    /// The chunk's own complete record serves every requested point; the
    /// positions follow from the chunk geometry (not stored per point).
    pub whole: Option<WholeLayout>,
}

/// Requested offsets per axis and bin lengths of a chunk, from which the
/// record position of every requested point follows.
#[derive(Debug, Clone, Default)]
pub struct WholeLayout {
    pub sel: Vec<Vec<u32>>,
    pub lens: Vec<u32>,
}

impl Source {
    /// (requested point, record point) pairs, materialised.
    pub fn pairs(&self) -> Vec<(u32, u32)> {
        match &self.whole {
            Some(w) => ChunkGeometry { bins: Vec::new(), sel: w.sel.clone(), lens: w.lens.clone() }
                .record_positions()
                .into_iter()
                .enumerate()
                .map(|(r, p)| (r as u32, p))
                .collect(),
            None => self.map.clone(),
        }
    }
}

/// The state of one planned chunk against the store.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub key: ChunkKey,
    pub requested: u32,
    pub available: u32,
    /// Per requested point; empty when every point is available.
    pub present: Vec<bool>,
    pub sources: Vec<Source>,
    /// Records that failed verification (treated as missing).
    pub corrupt: Vec<(ChunkKey, String)>,
}

impl Resolution {
    pub fn is_present(&self, i: usize) -> bool {
        self.present.is_empty() && self.available == self.requested || self.present.get(i).copied().unwrap_or(false)
    }
}

/// Geometry of chunk `i` of a plan.
pub struct ChunkGeometry {
    pub bins: Vec<u32>,
    /// Per axis: selected offsets within the bin.
    pub sel: Vec<Vec<u32>>,
    /// Per axis: bin length (record layout dims).
    pub lens: Vec<u32>,
}

impl ChunkGeometry {
    pub fn of(plan: &Plan, i: usize) -> ChunkGeometry {
        let c = plan.chunk(i);
        ChunkGeometry {
            bins: c.iter().map(|b| b.bin).collect(),
            sel: c.iter().map(|b| b.sel.clone()).collect(),
            lens: c.iter().map(|b| b.len).collect(),
        }
    }

    pub fn requested(&self) -> usize {
        self.sel.iter().map(|s| s.len()).product()
    }

    pub fn record_points(&self) -> usize {
        self.lens.iter().map(|&l| l as usize).product()
    }

    /// Record position (in the chunk's own layout) of each requested point.
    pub fn record_positions(&self) -> Vec<u32> {
        let mut out = vec![0u32];
        for (a, sel) in self.sel.iter().enumerate() {
            let len = self.lens[a];
            let mut next = Vec::with_capacity(out.len() * sel.len());
            for &base in &out {
                for &s in sel {
                    next.push(base * len + s);
                }
            }
            out = next;
            let _ = a;
        }
        out
    }
}

/// Per-plan lazily built view of all of a cache's records, to find records
/// laid out differently (another chunking, axis order or axis length).
#[derive(Default)]
pub struct Catalog {
    loaded: bool,
    descs: Vec<(ChunkKey, Descriptor)>,
    // Per grid axis: value hash -> indices of descriptors holding it.
    by_axis: Vec<HashMap<u64, Vec<usize>>>,
}

impl Store {
    /// Resolves chunks `range` of `plan` for `cache`.
    pub fn resolve(
        &self,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        chunks: std::ops::Range<usize>,
        catalog: &mut Catalog,
    ) -> Result<Vec<Resolution>> {
        self.read(|s, t| {
            let mut out = Vec::with_capacity(chunks.len());
            for i in chunks.clone() {
                out.push(s.resolve_one(t, cache, grid, plan, i, catalog)?);
            }
            Ok(out)
        })
    }

    pub(crate) fn resolve_one(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        plan: &Plan,
        i: usize,
        catalog: &mut Catalog,
    ) -> Result<Resolution> {
        let geo = ChunkGeometry::of(plan, i);
        let key = grid.chunk_key(&geo.bins);
        let requested = geo.requested() as u32;
        let mut res = Resolution { key, requested, ..Default::default() };
        // Fast path: the chunk's own record is complete. Its checksum is
        // verified here (xxh3 over mapped pages, cheap next to the read that
        // follows): a bad record must be reported and its points treated as
        // missing, or callers that trust the resolution would never
        // recompute them.
        let mut exact_ok = true;
        match self.records.get(t, &rkey(cache, &key))?.map(RecordView::parse) {
            Some(Ok(v)) if v.is_complete() && v.n == geo.record_points() => {
                res.available = requested;
                res.sources.push(Source {
                    chunk: key,
                    map: Vec::new(),
                    whole: Some(WholeLayout { sel: geo.sel, lens: geo.lens }),
                });
                return Ok(res);
            }
            Some(Err(e)) => {
                res.corrupt.push((key, e.message));
                exact_ok = false;
            }
            // Partial, absent, or disagreeing with the chunk: the general
            // path checks every point.
            _ => {}
        }
        if requested == 0 {
            return Ok(res);
        }
        let exact_raw = if exact_ok { self.index.get(t, &rkey(cache, &key))? } else { None };
        let exact = if exact_ok { exact_raw.map(Descriptor::decode).transpose()? } else { None };
        res.present = vec![false; requested as usize];
        // Candidates: the exact record first, then every record sharing a
        // value of the first axis (all records for a grid without axes).
        let mut cands: Vec<(ChunkKey, Descriptor)> = Vec::new();
        if let Some(d) = exact {
            cands.push((key, d));
        }
        self.load_catalog(t, cache, grid, catalog)?;
        // Records holding at least one requested value on every axis.
        let mut seen: Vec<usize> = (0..catalog.descs.len()).collect();
        for (a, axis) in grid.axes.iter().enumerate() {
            let base = geo.bins[a] as usize * axis.chunk;
            let mut on_axis: Vec<usize> = Vec::new();
            if let Some(inv) = catalog.by_axis.get(a) {
                for &o in &geo.sel[a] {
                    if let Some(v) = inv.get(&axis.hashes[base + o as usize]) {
                        on_axis.extend(v.iter().copied());
                    }
                }
            }
            on_axis.sort_unstable();
            on_axis.dedup();
            let keep: std::collections::HashSet<usize> = on_axis.into_iter().collect();
            seen.retain(|d| keep.contains(d));
            if seen.is_empty() {
                break;
            }
        }
        for d in seen {
            let (k, desc) = &catalog.descs[d];
            if *k != key {
                cands.push((*k, desc.clone()));
            }
        }
        for (ck, desc) in cands {
            let Some(map) = map_into(grid, &geo, &desc) else { continue };
            let bytes = match self.records.get(t, &rkey(cache, &ck))? {
                Some(b) => b,
                None => continue,
            };
            let view = match RecordView::parse(bytes) {
                Ok(v) => v,
                Err(e) => {
                    res.corrupt.push((ck, e.message));
                    continue;
                }
            };
            let mut src = Source { chunk: ck, map: Vec::new(), whole: None };
            for (r, p) in map {
                if !res.present[r as usize] && view.is_present(p as usize) {
                    res.present[r as usize] = true;
                    src.map.push((r, p));
                }
            }
            if !src.map.is_empty() {
                res.available += src.map.len() as u32;
                res.sources.push(src);
            }
            if res.available == requested {
                break;
            }
        }
        if res.available == requested {
            res.present.clear();
        }
        Ok(res)
    }

    fn load_catalog(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        catalog: &mut Catalog,
    ) -> Result<()> {
        if catalog.loaded {
            return Ok(());
        }
        catalog.descs = self.descriptors_in(t, cache)?;
        catalog.by_axis = grid.axes.iter().map(|_| HashMap::new()).collect();
        for (a, axis) in grid.axes.iter().enumerate() {
            for (i, (_, d)) in catalog.descs.iter().enumerate() {
                if d.axes.len() != grid.axes.len() {
                    continue;
                }
                if let Some((_, hs)) = d.axes.iter().find(|(n, _)| *n == axis.name) {
                    for h in hs {
                        catalog.by_axis[a].entry(*h).or_default().push(i);
                    }
                }
            }
        }
        catalog.loaded = true;
        Ok(())
    }
}

/// Maps requested points of a chunk to point positions of a record with
/// descriptor `desc`; `None` when the record shares no point with it.
fn map_into(grid: &Grid, geo: &ChunkGeometry, desc: &Descriptor) -> Option<Vec<(u32, u32)>> {
    if desc.axes.len() != grid.axes.len() {
        return None;
    }
    // For each grid axis: its position in the record and, per requested
    // offset, the value's index along that record axis.
    let mut strides = vec![1u64; desc.axes.len()];
    for a in (0..desc.axes.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * desc.axes[a + 1].1.len() as u64;
    }
    // Per grid axis: (position among the requested offsets, offset in the
    // record) of the requested values the record holds. Only matches are
    // kept, so the cost follows the overlap, not the chunk size.
    let mut per_axis: Vec<Vec<(u32, u64)>> = Vec::with_capacity(grid.axes.len());
    for (a, axis) in grid.axes.iter().enumerate() {
        let ra = desc.axes.iter().position(|(n, _)| *n == axis.name)?;
        let lookup: HashMap<u64, usize> = desc.axes[ra].1.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        let base = geo.bins[a] as usize * axis.chunk;
        let col: Vec<(u32, u64)> = geo.sel[a]
            .iter()
            .enumerate()
            .filter_map(|(j, &o)| {
                lookup.get(&axis.hashes[base + o as usize]).map(|&i| (j as u32, i as u64 * strides[ra]))
            })
            .collect();
        if col.is_empty() {
            return None;
        }
        per_axis.push(col);
    }
    let dims: Vec<u32> = geo.sel.iter().map(|s| s.len() as u32).collect();
    let mut acc: Vec<(u32, u64)> = vec![(0, 0)];
    for (a, col) in per_axis.iter().enumerate() {
        let mut next = Vec::with_capacity(acc.len() * col.len());
        for &(r, p) in &acc {
            for &(j, off) in col {
                next.push((r * dims[a] + j, p + off));
            }
        }
        acc = next;
    }
    let out: Vec<(u32, u32)> = acc.into_iter().map(|(r, p)| (r, p as u32)).collect();
    Some(out)
}

// ---------------------------------------------------------------------------
// Reading and writing planned chunks.

/// Requested points of one chunk, read from the store: a presence flag per
/// requested point and the bytes of the present ones, in request order.
#[derive(Debug, Clone, Default)]
pub struct ChunkData {
    pub kind: u8,
    pub present: Vec<bool>,
    /// Items: n_present+1 offsets into `data`. Typed: empty.
    pub offsets: Vec<u32>,
    pub data: Vec<u8>,
    /// Items: the dictionaries of the present points, and per present point
    /// the index of its dictionary.
    pub dicts: Vec<Vec<u8>>,
    pub point_dicts: Vec<u16>,
    pub corrupt: Vec<(ChunkKey, String)>,
}

impl Store {
    /// Reads the available requested points of a resolved chunk.
    pub fn read_chunk(&self, cache: &CacheId, res: &Resolution) -> Result<ChunkData> {
        let out = self.read(|s, t| {
            let mut per: Vec<Option<(&[u8], &[u8])>> = vec![None; res.requested as usize];
            let mut kind: Option<u8> = None;
            let mut corrupt = Vec::new();
            for src in &res.sources {
                let Some(bytes) = s.records.get(t, &rkey(cache, &src.chunk))? else { continue };
                let view = match RecordView::parse(bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        corrupt.push((src.chunk, e.message));
                        continue;
                    }
                };
                // Points stored under another kind (the function changed its
                // return type) are left out and recomputed by the caller.
                if *kind.get_or_insert(view.kind) != view.kind {
                    continue;
                }
                for (r, p) in src.pairs() {
                    if (p as usize) < view.n && view.is_present(p as usize) {
                        per[r as usize] = Some((view.point(p as usize), view.point_dict(p as usize)));
                    }
                }
            }
            let mut d = ChunkData { kind: kind.unwrap_or(0), corrupt, ..Default::default() };
            d.present = per.iter().map(Option::is_some).collect();
            let total: usize = per.iter().flatten().map(|b| b.0.len()).sum();
            d.data.reserve_exact(total);
            let items = d.kind == crate::record::KIND_ITEMS;
            if items {
                d.offsets.reserve_exact(per.len() + 1);
                d.offsets.push(0);
                d.point_dicts.reserve_exact(per.len());
            }
            let mut last: Option<(&[u8], u16)> = None;
            for (b, dict) in per.iter().flatten() {
                d.data.extend_from_slice(b);
                if items {
                    d.offsets.push(d.data.len() as u32);
                    // Dictionaries are few; remember the last one seen.
                    let idx = match last {
                        Some((l, i)) if l.as_ptr() == dict.as_ptr() && l.len() == dict.len() => i,
                        _ => {
                            let i = match d.dicts.iter().position(|x| x.as_slice() == *dict) {
                                Some(i) => i as u16,
                                None => {
                                    d.dicts.push(dict.to_vec());
                                    (d.dicts.len() - 1) as u16
                                }
                            };
                            last = Some((dict, i));
                            i
                        }
                    };
                    d.point_dicts.push(idx);
                }
            }
            Ok(d)
        })?;
        for src in &res.sources {
            self.note_access(cache, &src.chunk);
        }
        Ok(out)
    }
}

/// New points for one chunk.
pub struct ChunkWrite<'a> {
    pub geo: &'a ChunkGeometry,
    pub grid: &'a Grid,
    pub res: Option<&'a Resolution>,
    pub kind: u8,
    /// Requested-point indices (request order) of the points given.
    pub points: &'a [u32],
    /// Items: points.len()+1 offsets into `data`. Typed: empty.
    pub offsets: &'a [u32],
    pub data: &'a [u8],
    /// Items: the dictionary every point of this write was packed with
    /// (empty for plain msgpack).
    pub dict: &'a [u8],
}

impl Store {
    /// Writes new points of several chunks in one transaction, merging with
    /// each chunk's stored record and copying in points that other records
    /// (another chunking) hold, so later reads need one record. Points
    /// already stored are never overwritten.
    pub fn write_chunks(&self, cache: &CacheId, writes: &[ChunkWrite<'_>]) -> Result<()> {
        // Validate before opening the transaction.
        for w in writes {
            let width = crate::record::kind_width(w.kind)?;
            let req = w.geo.requested();
            if let Some(&bad) = w.points.iter().find(|&&p| p as usize >= req) {
                return Err(CoreError::invalid(format!(
                    "point {bad} out of range for a chunk of {req} requested points"
                )));
            }
            match width {
                None => {
                    if w.offsets.len() != w.points.len() + 1 || *w.offsets.last().unwrap() as usize != w.data.len() {
                        return Err(CoreError::invalid("item offsets do not match the points and data"));
                    }
                    if w.offsets.windows(2).any(|x| x[0] > x[1]) {
                        return Err(CoreError::invalid("item offsets must not decrease"));
                    }
                }
                Some(sz) => {
                    if w.data.len() != w.points.len() * sz {
                        return Err(CoreError::invalid(format!(
                            "typed data of {} bytes for {} points of {sz} bytes",
                            w.data.len(),
                            w.points.len()
                        )));
                    }
                }
            }
        }
        self.write(|s, t| {
            for w in writes {
                s.write_one(t, cache, w)?;
            }
            Ok(())
        })
    }

    fn write_one(&self, t: &mut RwTxn<'_>, cache: &CacheId, w: &ChunkWrite<'_>) -> Result<()> {
        let key = w.grid.chunk_key(&w.geo.bins);
        let rk = rkey(cache, &key);
        let n = w.geo.record_points();
        let mut builder = match self.records.get(t, &rk)?.map(RecordView::parse) {
            Some(Ok(old)) if old.n == n => {
                if old.kind != w.kind {
                    return Err(CoreError::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "this chunk's outputs are stored as {} but the function now returns {}; use a new cacheVersion",
                            kind_name(old.kind),
                            kind_name(w.kind)
                        ),
                    ));
                }
                RecordBuilder::from_view(&old)?
            }
            // Absent, corrupt or of another layout: start afresh.
            _ => RecordBuilder::new(w.kind, n)?,
        };
        let positions = w.geo.record_positions();
        let width = crate::record::kind_width(w.kind)?;
        for (j, &r) in w.points.iter().enumerate() {
            let bytes = match width {
                None => &w.data[w.offsets[j] as usize..w.offsets[j + 1] as usize],
                Some(sz) => &w.data[j * sz..(j + 1) * sz],
            };
            builder.set_in(positions[r as usize] as usize, bytes, w.dict)?;
        }
        // Consolidate from other records (another chunking or axis order).
        if builder.present() < n {
            if let Some(res) = w.res {
                for src in res.sources.iter().filter(|s| s.chunk != key) {
                    let Some(bytes) = self.records.get(t, &rkey(cache, &src.chunk))? else { continue };
                    let Ok(view) = RecordView::parse(bytes) else { continue };
                    if view.kind != w.kind {
                        continue;
                    }
                    for &(r, p) in &src.map {
                        if view.is_present(p as usize) {
                            builder.set_in(
                                positions[r as usize] as usize,
                                view.point(p as usize),
                                view.point_dict(p as usize),
                            )?;
                        }
                    }
                }
            }
        }
        let bytes = builder.finish();
        let desc = Descriptor {
            axes: w
                .grid
                .axes
                .iter()
                .enumerate()
                .map(|(a, ax)| (ax.name.clone(), w.grid.bin_hashes(a, w.geo.bins[a]).to_vec()))
                .collect(),
            n: n as u32,
            present: builder.present() as u32,
            bytes: bytes.len() as u64,
            updated_ms: now_ms(),
        };
        self.records.put(t, &rk, &bytes)?;
        self.index.put(t, &rk, &desc.encode())?;
        self.atime.put(t, &rk, &desc.updated_ms.to_le_bytes())?;
        // Stored points need no claim: released in this transaction.
        self.release_stored_in(t, &rk, |p| builder.is_set(p))
    }
}

fn kind_name(kind: u8) -> String {
    if kind == crate::record::KIND_ITEMS {
        "items (any values)".to_string()
    } else {
        crate::canonical::DType::from_u8(kind).map_or("unknown".into(), |d| format!("a typed array of {}", d.name()))
    }
}
