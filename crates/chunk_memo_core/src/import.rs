//! All-or-nothing import of caches: metadata and records written in ONE
//! write transaction.
//!
//! The TS layer validates an archive in full (streaming, bounded memory) and
//! writes the validated records to a *spool file*; this module then reads the
//! spool one record at a time and stores everything in a single transaction,
//! so a crash or an error leaves the store exactly as it was.
//!
//! Spool layout: a sequence of entries, all integers little-endian:
//!
//! ```text
//! 16  cache id
//! 16  chunk key
//! u32 n            points of the record
//! u64 updated_ms
//! u32 axes         then per axis: u32 name length, name (UTF-8),
//!                  u32 count, count x u64 value hashes
//! u64 length       then the record's bytes (crate::record layout)
//! ```
//!
//! Metadata updates are compare-and-swap: each carries the blob its merge was
//! computed from (`expected`, `None` = absent). If the stored blob differs
//! (another process changed it meanwhile), nothing is written and the cache
//! id is returned so the caller re-reads, re-merges and retries.

use crate::error::{CoreError, ErrorCode, Result};
use crate::record::{RecordBuilder, RecordView};
use crate::store::{now_ms, CacheId, ChunkKey, Descriptor, Store};
use heed::RwTxn;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

/// One metadata update of an import.
pub struct ImportMeta {
    pub cache: CacheId,
    /// New blob; `None` leaves the stored metadata as it is.
    pub blob: Option<Vec<u8>>,
    /// The stored blob the update was computed from (`None`: absent).
    pub expected: Option<Vec<u8>>,
}

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportSummary {
    /// A cache whose metadata changed since the caller read it: nothing
    /// was written; retry.
    pub conflict: Option<CacheId>,
    pub records: u64,
}

fn key(cache: &CacheId, chunk: &ChunkKey) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(cache);
    k[16..].copy_from_slice(chunk);
    k
}

fn spool_err(msg: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::InvalidArgument, format!("import spool: {}", msg.into()))
}

struct Spool {
    r: BufReader<File>,
}

/// One spooled record: cache, chunk, descriptor and record bytes.
type SpoolEntry = (CacheId, ChunkKey, Descriptor, Vec<u8>);

impl Spool {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.r.read_exact(buf).map_err(|e| spool_err(format!("truncated ({e})")))
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self, len: u64, what: &str) -> Result<Vec<u8>> {
        // Never trust a length for an allocation: read what is there.
        let mut v = Vec::new();
        let got = (&mut self.r).take(len).read_to_end(&mut v).map_err(|e| spool_err(e.to_string()))?;
        if got as u64 != len {
            return Err(spool_err(format!("truncated {what}")));
        }
        Ok(v)
    }

    /// The next entry, or `None` at the end of the file.
    fn next(&mut self) -> Result<Option<SpoolEntry>> {
        let mut cache = [0u8; 16];
        match self.r.read_exact(&mut cache) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            r => r.map_err(|e| spool_err(e.to_string()))?,
        }
        let mut chunk = [0u8; 16];
        self.exact(&mut chunk)?;
        let n = self.u32()?;
        let updated_ms = self.u64()?;
        let naxes = self.u32()?;
        let mut axes = Vec::new();
        for _ in 0..naxes {
            let l = self.u32()?;
            let name = String::from_utf8(self.bytes(l as u64, "axis name")?).map_err(|_| spool_err("axis name"))?;
            let count = self.u32()?;
            let raw = self.bytes(count as u64 * 8, "value hashes")?;
            axes.push((name, raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()));
        }
        let len = self.u64()?;
        let bytes = self.bytes(len, "record")?;
        Ok(Some((cache, chunk, Descriptor { axes, n, present: 0, bytes: 0, updated_ms }, bytes)))
    }
}

/// Checks a record's structure and checksum; returns (kind, n, present).
pub fn check_record(bytes: &[u8]) -> Result<(u8, u32, u32)> {
    let v = RecordView::parse(bytes)?;
    Ok((v.kind, v.n as u32, v.present as u32))
}

impl Store {
    /// Writes the metadata updates and every record of the spool file in
    /// one transaction (see the module doc). Records already stored are
    /// merged point by point, keeping stored points.
    pub fn import_spool(&self, metas: &[ImportMeta], spool: &Path) -> Result<ImportSummary> {
        self.write(|s, t| s.import_in(t, metas, spool))
    }

    fn import_in(&self, t: &mut RwTxn<'_>, metas: &[ImportMeta], spool: &Path) -> Result<ImportSummary> {
        // Compare first, write after: a conflict commits nothing.
        for m in metas {
            let cur = self.meta.get(t, &m.cache)?;
            if cur != m.expected.as_deref() {
                return Ok(ImportSummary { conflict: Some(m.cache), records: 0 });
            }
        }
        for m in metas {
            if let Some(b) = &m.blob {
                self.meta.put(t, &m.cache, b)?;
            }
        }
        let file = File::open(spool).map_err(|e| spool_err(format!("cannot open {}: {e}", spool.display())))?;
        let mut sp = Spool { r: BufReader::with_capacity(1 << 20, file) };
        let mut records = 0u64;
        while let Some((cache, chunk, desc, bytes)) = sp.next()? {
            self.import_record(t, &cache, &chunk, desc, &bytes)?;
            records += 1;
        }
        Ok(ImportSummary { conflict: None, records })
    }

    fn import_record(
        &self,
        t: &mut RwTxn<'_>,
        cache: &CacheId,
        chunk: &ChunkKey,
        desc: Descriptor,
        bytes: &[u8],
    ) -> Result<()> {
        let incoming = RecordView::parse(bytes)?;
        if incoming.n != desc.n as usize {
            return Err(CoreError::corrupt("record and descriptor disagree on the point count"));
        }
        let k = key(cache, chunk);
        let merged = match self.records.get(t, &k)?.map(RecordView::parse) {
            Some(Ok(old)) if old.kind == incoming.kind && old.n == incoming.n => {
                let mut b = RecordBuilder::from_view(&old)?;
                for i in incoming.present_points() {
                    b.set_in(i, incoming.point(i), incoming.point_dict(i))?;
                }
                Some(b.finish())
            }
            _ => None,
        };
        let out: &[u8] = merged.as_deref().unwrap_or(bytes);
        let present = RecordView::parse_header(out)?.present;
        let d = Descriptor {
            present: present as u32,
            bytes: out.len() as u64,
            updated_ms: now_ms().max(desc.updated_ms),
            ..desc
        };
        self.records.put(t, &k, out)?;
        self.index.put(t, &k, &d.encode())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KIND_ITEMS;
    use std::io::Write;

    fn record(points: &[usize]) -> Vec<u8> {
        let mut b = RecordBuilder::new(KIND_ITEMS, 4).unwrap();
        for &i in points {
            b.set(i, &[0x90 + i as u8]).unwrap();
        }
        b.finish()
    }

    fn spool(path: &Path, cache: &CacheId, entries: &[(ChunkKey, Vec<u8>)]) {
        let mut f = File::create(path).unwrap();
        for (chunk, rec) in entries {
            f.write_all(cache).unwrap();
            f.write_all(chunk).unwrap();
            f.write_all(&4u32.to_le_bytes()).unwrap();
            f.write_all(&7u64.to_le_bytes()).unwrap();
            f.write_all(&1u32.to_le_bytes()).unwrap();
            f.write_all(&1u32.to_le_bytes()).unwrap();
            f.write_all(b"x").unwrap();
            f.write_all(&4u32.to_le_bytes()).unwrap();
            for h in 0..4u64 {
                f.write_all(&h.to_le_bytes()).unwrap();
            }
            f.write_all(&(rec.len() as u64).to_le_bytes()).unwrap();
            f.write_all(rec).unwrap();
        }
    }

    #[test]
    fn import_is_all_or_nothing_and_compares_metadata() {
        let dir = std::env::temp_dir().join(format!("cm-import-{}-{}", std::process::id(), now_ms()));
        let store = Store::open(&dir).unwrap();
        let cache = [1u8; 16];
        let sp = dir.join("spool");
        spool(&sp, &cache, &[([2u8; 16], record(&[0, 2])), ([3u8; 16], record(&[1]))]);
        let meta = |blob: &[u8], expected: Option<&[u8]>| ImportMeta {
            cache,
            blob: Some(blob.to_vec()),
            expected: expected.map(|e| e.to_vec()),
        };
        let r = store.import_spool(&[meta(b"m1", None)], &sp).unwrap();
        assert!(r.conflict.is_none());
        assert_eq!(r.records, 2);
        assert_eq!(store.get_meta(&cache).unwrap().as_deref(), Some(&b"m1"[..]));
        let d = store.descriptors(&cache).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.iter().map(|(_, d)| d.present).sum::<u32>(), 3);

        // Stale expectation: nothing written.
        spool(&sp, &cache, &[([4u8; 16], record(&[3]))]);
        let r = store.import_spool(&[meta(b"m2", None)], &sp).unwrap();
        assert_eq!(r.conflict, Some(cache));
        assert_eq!(store.get_meta(&cache).unwrap().as_deref(), Some(&b"m1"[..]));
        assert_eq!(store.descriptors(&cache).unwrap().len(), 2);

        // A damaged record after a good one: nothing written, not even the good one.
        let mut bad = record(&[3]);
        let k = bad.len() / 2;
        bad[k] ^= 0xff;
        spool(&sp, &cache, &[([5u8; 16], record(&[1, 3])), ([2u8; 16], bad)]);
        assert!(store.import_spool(&[meta(b"m3", Some(b"m1"))], &sp).is_err());
        assert_eq!(store.get_meta(&cache).unwrap().as_deref(), Some(&b"m1"[..]));
        assert_eq!(store.descriptors(&cache).unwrap().len(), 2);

        // Merge into a stored record keeps stored points and adds new ones.
        spool(&sp, &cache, &[([2u8; 16], record(&[1, 2]))]);
        store.import_spool(&[meta(b"m4", Some(b"m1"))], &sp).unwrap();
        let d = store.descriptors(&cache).unwrap();
        let two = d.iter().find(|(c, _)| *c == [2u8; 16]).unwrap();
        assert_eq!(two.1.present, 3);
        let rec = store.get_record(&cache, &[2u8; 16]).unwrap().unwrap();
        let v = RecordView::parse(&rec).unwrap();
        assert_eq!(v.point(0), &[0x90]);
        assert_eq!(v.point(1), &[0x91]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
