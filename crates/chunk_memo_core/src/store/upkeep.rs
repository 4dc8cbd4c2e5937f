//! Upkeep: raw records (export, import), deletion, access times,
//! verification, and the hooks of tests and benchmarks.

use super::{now_ms, rkey, CacheId, ChunkKey, Descriptor, Store};
use crate::error::{CoreError, Result};
use crate::planner::{key_digest, Grid};
use crate::record::{RecordBuilder, RecordView};
use heed::{RoTxn, WithoutTls};
use std::collections::HashMap;

/// Grids with more chunks than this are not scanned to rebuild index
/// entries: their damaged entries are dropped with their records.
const REPAIR_SCAN_LIMIT: u64 = 1 << 24;

/// What [`Store::repair`] did to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub chunk: ChunkKey,
    /// True: a new index entry was written from the record; false: the
    /// record and its entry were dropped.
    pub rebuilt: bool,
    /// The problem verify found.
    pub reason: String,
}

/// Access times are kept to this resolution (ms): LRU eviction orders
/// records by them, and a minute is far finer than any eviction budget.
const ATIME_RESOLUTION_MS: u64 = 60_000;

impl Store {
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
        Descriptor::decode(&desc.encode()).map_err(|e| CoreError::invalid(format!("bad descriptor: {}", e.message)))?;
        self.write(|s, t| {
            let key = rkey(cache, chunk);
            let merged = match s.records.get(t, &key)?.map(RecordView::parse) {
                Some(Ok(old)) if old.kind == incoming.kind && old.n == incoming.n => {
                    let mut b = RecordBuilder::from_view(&old)?;
                    for i in incoming.present_points() {
                        b.set_in(i, incoming.point(i), incoming.point_dict(i))?;
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

    /// Access times of a cache's records (ms): the later of the last read
    /// and the last write. A write does not touch the access-time table (one
    /// random-key insert less per chunk written); its time is the index
    /// entry's `updated_ms`.
    pub fn access_times(&self, cache: &CacheId) -> Result<HashMap<ChunkKey, u64>> {
        self.flush_access_times()?;
        self.read(|s, t| {
            let mut out = HashMap::new();
            for item in s.index.prefix_iter(t, cache)? {
                let (k, v) = item?;
                let Ok(c) = <[u8; 16]>::try_from(&k[16..32]) else { continue };
                let written = Descriptor::tail(v).map_or(0, |(_, _, _, ms)| ms);
                let read = s.atime.get(t, k)?.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes);
                out.insert(c, written.max(read));
            }
            Ok(out)
        })
    }

    /// Notes reads of records of `cache` (access times for LRU eviction;
    /// written later, in batches).
    pub fn note_accesses(&self, cache: &CacheId, chunks: &[ChunkKey]) {
        let now = now_ms();
        let mut p = self.pending_atime.lock().unwrap();
        p.extend(chunks.iter().map(|chunk| (rkey(cache, chunk), now)));
        // Amortised: reads never write; access times go out in batches
        // (large ones: a batch of random keys rewrites most leaf pages of the
        // atime table, so its cost follows the table, not the batch).
        if p.len() >= 1 << 16 {
            let batch = std::mem::take(&mut *p);
            drop(p);
            let _ = self.write_atimes(batch);
        }
    }

    /// Writes the access times noted since the last flush.
    pub fn flush_access_times(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending_atime.lock().unwrap());
        if batch.is_empty() {
            return Ok(());
        }
        self.write_atimes(batch)
    }

    /// Writes noted access times (record key, ms; a key may come several
    /// times: its latest time counts).
    fn write_atimes(&self, mut batch: Vec<([u8; 32], u64)>) -> Result<()> {
        // In key order: each leaf page is visited once, and the stored times
        // are read in one walk.
        batch.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        batch.dedup_by_key(|x| x.0);
        self.write(|s, t| {
            // A time already stored within ATIME_RESOLUTION_MS stays:
            // re-reading a sweep costs one walk, not a rewrite of the table.
            let mut fresh = vec![false; batch.len()];
            Store::walk_sorted(&s.atime, t, batch.iter().map(|x| x.0), |n, stored| {
                let old = <[u8; 8]>::try_from(stored).map_or(0, u64::from_le_bytes);
                fresh[n] = batch[n].1.saturating_sub(old) < ATIME_RESOLUTION_MS;
            })?;
            for (&(k, ms), fresh) in batch.iter().zip(fresh) {
                // Only for records that still exist.
                if !fresh && s.index.get(t, &k)?.is_some() {
                    s.atime.put(t, &k, &ms.to_le_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// Verifies every record of a cache: checksum, structure, and agreement
    /// with its index entry, whose own checksum and structure are checked
    /// too. Returns the bad chunk keys with the reason.
    pub fn verify(&self, cache: &CacheId) -> Result<Vec<(ChunkKey, String)>> {
        self.read(|s, t| s.verify_in(t, cache))
    }

    fn verify_in(&self, t: &RoTxn<'_, WithoutTls>, cache: &CacheId) -> Result<Vec<(ChunkKey, String)>> {
        let (good, mut bad) = self.descriptors_checked_in(t, cache)?;
        for (chunk, desc) in good {
            match self.records.get(t, &rkey(cache, &chunk))? {
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
        for item in self.records.prefix_iter(t, cache)? {
            let (k, _) = item?;
            if self.index.get(t, k)?.is_none() {
                bad.push((k[16..32].try_into().unwrap(), "record has no index entry".to_string()));
            }
        }
        Ok(bad)
    }

    /// Repairs what [`Store::verify`] finds, in one transaction. A valid
    /// record whose index entry is damaged, missing or disagrees with it
    /// gets a new entry when `grid` (the cache's current grid) has a chunk
    /// with its key and size; every other problem drops the record and its
    /// entry, so the next run recomputes exactly those points.
    pub fn repair(&self, cache: &CacheId, grid: Option<&Grid>) -> Result<Vec<Repair>> {
        let bad = self.verify(cache)?;
        if bad.is_empty() {
            return Ok(Vec::new());
        }
        // Chunk key -> bins of the grid, only for the keys in question. Keys
        // match by their digest part ([`key_digest`]): a record stored under
        // a plain key (digest prefix) or another prefix is the same chunk of
        // the grid.
        let mut bins_of: HashMap<ChunkKey, Vec<u32>> = HashMap::new();
        if let Some(g) = grid {
            let wanted: HashMap<_, ChunkKey> = bad.iter().map(|b| (key_digest(&b.0), b.0)).collect();
            let dims: Vec<u32> = (0..g.axes.len()).map(|a| g.n_bins(a) as u32).collect();
            let total: u64 = dims.iter().map(|&d| u64::from(d)).product();
            if total <= REPAIR_SCAN_LIMIT {
                let mut bins = vec![0u32; dims.len()];
                for _ in 0..total {
                    if let Some(k) = wanted.get(&key_digest(&g.chunk_key(&bins))) {
                        bins_of.insert(*k, bins.clone());
                    }
                    for a in (0..bins.len()).rev() {
                        bins[a] += 1;
                        if bins[a] < dims[a] {
                            break;
                        }
                        bins[a] = 0;
                    }
                }
            }
        }
        self.write(|s, t| {
            let mut out = Vec::new();
            for (chunk, reason) in &bad {
                let k = rkey(cache, chunk);
                let rebuilt = match (grid, bins_of.get(chunk), s.records.get(t, &k)?) {
                    (Some(g), Some(bins), Some(bytes)) => match RecordView::parse(bytes) {
                        Ok(v) => {
                            let axes: Vec<(String, Vec<u64>)> = g
                                .axes
                                .iter()
                                .enumerate()
                                .map(|(a, ax)| (ax.name.clone(), g.bin_hashes(a, bins[a]).to_vec()))
                                .collect();
                            let n: usize = axes.iter().map(|a| a.1.len()).product();
                            (n == v.n).then(|| Descriptor {
                                axes,
                                n: v.n as u32,
                                present: v.present as u32,
                                bytes: bytes.len() as u64,
                                updated_ms: now_ms(),
                            })
                        }
                        Err(_) => None,
                    },
                    _ => None,
                };
                match rebuilt {
                    Some(d) => {
                        s.index.put(t, &k, &d.encode())?;
                        out.push(Repair { chunk: *chunk, rebuilt: true, reason: reason.clone() });
                    }
                    None => {
                        s.records.delete(t, &k)?;
                        s.index.delete(t, &k)?;
                        s.atime.delete(t, &k)?;
                        out.push(Repair { chunk: *chunk, rebuilt: false, reason: reason.clone() });
                    }
                }
            }
            Ok(out)
        })
    }

    /// Overwrites an index entry's raw bytes, bypassing checks. Only for
    /// tests that plant damage.
    #[doc(hidden)]
    pub fn put_raw_index_for_tests(&self, cache: &CacheId, chunk: &ChunkKey, bytes: &[u8]) -> Result<()> {
        self.write(|s, t| Ok(s.index.put(t, &rkey(cache, chunk), bytes)?))
    }

    /// Raw index entry bytes (tests).
    #[doc(hidden)]
    pub fn get_raw_index_for_tests(&self, cache: &CacheId, chunk: &ChunkKey) -> Result<Option<Vec<u8>>> {
        self.read(|s, t| Ok(s.index.get(t, &rkey(cache, chunk))?.map(|b| b.to_vec())))
    }

    /// Overwrites a record's raw bytes, bypassing checks. Only for tests that
    /// plant corruption.
    #[doc(hidden)]
    pub fn put_raw_record_for_tests(&self, cache: &CacheId, chunk: &ChunkKey, bytes: &[u8]) -> Result<()> {
        self.write(|s, t| Ok(s.records.put(t, &rkey(cache, chunk), bytes)?))
    }

    /// Plain LMDB write of `blobs` as records of `cache` (keys 0, 1, ...) in
    /// one transaction, no record format, index or claims (the ceiling that
    /// benchmarks compare the store's write path with). The cache should be
    /// a throwaway id: these are not valid records.
    pub fn write_raw_records(&self, cache: &CacheId, blobs: &[&[u8]]) -> Result<()> {
        self.write(|s, t| {
            for (i, b) in blobs.iter().enumerate() {
                let mut chunk = [0u8; 16];
                chunk[..8].copy_from_slice(&(i as u64).to_be_bytes());
                s.records.put(t, &rkey(cache, &chunk), b)?;
            }
            Ok(())
        })
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
