//! The index: one descriptor per record (its axes and value hashes, point
//! counts, size and update time), and cache totals read from it.

use super::{CacheId, ChunkKey, Store};
use crate::error::{CoreError, Result};
use heed::{RoTxn, WithoutTls};

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

impl Store {
    /// Descriptors of every record of a cache.
    pub fn descriptors(&self, cache: &CacheId) -> Result<Vec<(ChunkKey, Descriptor)>> {
        self.read(|s, t| s.descriptors_in(t, cache))
    }

    pub(crate) fn descriptors_in(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
    ) -> Result<Vec<(ChunkKey, Descriptor)>> {
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
}
