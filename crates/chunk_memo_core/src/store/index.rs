//! The index: one descriptor per record (its axes and value hashes, point
//! counts, size and update time), and cache totals read from it.

use super::{CacheId, ChunkKey, Store};
use crate::checksum::checksum;
use crate::error::{CoreError, Result};
use crate::planner::HashKeyed;
use heed::{RoTxn, WithoutTls};

/// The records holding points of a view ([`Store::records_in_view`]): the
/// keys of those holding no other point, and the descriptors of the others.
pub type RecordsInView = (Vec<ChunkKey>, Vec<(ChunkKey, Descriptor)>);

/// Chunk keys with the reason their entry or record is bad.
pub type BadEntries = Vec<(ChunkKey, String)>;

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

/// Index entries written since checksums were added: version 2 ends with
/// the xxh3-64 of every preceding byte. Version 1 entries (no checksum) are
/// still read.
const VERSION: u8 = 2;
const LEGACY: u8 = 1;
const SUM: usize = 8;
/// n, present, bytes, updated_ms.
const TAIL: usize = 24;

impl Descriptor {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.axes.iter().map(|a| a.0.len() + 8 + a.1.len() * 8).sum::<usize>());
        out.push(VERSION);
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
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The body of an entry (without its checksum), checked: version 2
    /// entries must match their checksum.
    fn body(b: &[u8]) -> Result<&[u8]> {
        match b.first() {
            Some(&VERSION) if b.len() >= 1 + TAIL + SUM => {
                let (body, sum) = b.split_at(b.len() - SUM);
                if checksum(body).to_le_bytes() != sum {
                    return Err(CoreError::corrupt("index entry checksum mismatch"));
                }
                Ok(body)
            }
            Some(&LEGACY) if b.len() > TAIL => Ok(b),
            _ => Err(CoreError::corrupt("bad index entry header")),
        }
    }

    /// (n, present) from an encoded descriptor without decoding the axes.
    pub fn counts(b: &[u8]) -> Result<(u32, u32)> {
        let (n, present, _, _) = Self::tail(b)?;
        Ok((n, present))
    }

    /// (n, present, bytes, updated_ms) from the fixed-size tail of an
    /// encoded descriptor, without decoding the axes (the checksum is
    /// checked).
    pub fn tail(b: &[u8]) -> Result<(u32, u32, u64, u64)> {
        let b = Self::body(b)?;
        let t = b.len() - TAIL;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        Ok((u32_at(t), u32_at(t + 4), u64_at(t + 8), u64_at(t + 16)))
    }

    /// Decodes and checks an entry (checksum, structure, exact length).
    pub fn decode(b: &[u8]) -> Result<Descriptor> {
        let mut axes = Vec::new();
        let (n, present, bytes, updated_ms) = Self::parse(b, |name, hashes| {
            axes.push((
                name.to_string(),
                hashes.chunks_exact(8).map(|h| u64::from_le_bytes(h.try_into().unwrap())).collect(),
            ));
        })?;
        Ok(Descriptor { axes, n, present, bytes, updated_ms })
    }

    /// Checks an entry (checksum, structure, exact length) and hands each
    /// of its axes to `axis`: the name and the value hashes' bytes (8 per
    /// value, little-endian), copying nothing. Returns (n, present, bytes,
    /// updated_ms). On an error, `axis` may have seen some axes already.
    pub(crate) fn parse(b: &[u8], mut axis: impl FnMut(&str, &[u8])) -> Result<(u32, u32, u64, u64)> {
        let mut named = true;
        let parsed = Self::parse_raw(b, |name, hashes| match std::str::from_utf8(name) {
            Ok(name) if named => axis(name, hashes),
            _ => named = false,
        })?;
        if !named {
            return Err(CoreError::corrupt("bad index entry structure"));
        }
        Ok(parsed)
    }

    /// [`Descriptor::parse`] handing each axis' name as its bytes, not
    /// checked to be UTF-8 (a caller comparing names with its own need not).
    pub(crate) fn parse_raw(b: &[u8], mut axis: impl FnMut(&[u8], &[u8])) -> Result<(u32, u32, u64, u64)> {
        let b = Self::body(b)?;
        let bad = || CoreError::corrupt("bad index entry structure");
        let mut p = 1usize;
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
        let na = u32_at(&mut p)? as usize;
        if na > b.len() / 8 {
            return Err(bad());
        }
        let mut points = Some(1u64);
        for _ in 0..na {
            let nl = u32_at(&mut p)? as usize;
            let name = b.get(p..p.saturating_add(nl)).ok_or_else(bad)?;
            p += nl;
            let nh = u32_at(&mut p)? as usize;
            if nh > (b.len() - p) / 8 {
                return Err(bad());
            }
            axis(name, &b[p..p + nh * 8]);
            p += nh * 8;
            points = points.and_then(|x| x.checked_mul(nh as u64));
        }
        let (n, present, bytes, updated_ms) = (u32_at(&mut p)?, u32_at(&mut p)?, u64_at(&mut p)?, u64_at(&mut p)?);
        if p != b.len() || present > n || points != Some(u64::from(n)) {
            return Err(bad());
        }
        Ok((n, present, bytes, updated_ms))
    }
}

impl Store {
    /// Descriptors of every record of a cache.
    pub fn descriptors(&self, cache: &CacheId) -> Result<Vec<(ChunkKey, Descriptor)>> {
        self.read(|s, t| s.descriptors_in(t, cache))
    }

    /// Descriptors of a cache's records whose index entries are sound;
    /// damaged entries are left out (as if their records were absent).
    pub(crate) fn descriptors_in(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
    ) -> Result<Vec<(ChunkKey, Descriptor)>> {
        Ok(self.descriptors_checked_in(t, cache)?.0)
    }

    /// The records of `cache` that hold points of a view, from the index
    /// alone: `view` gives, per axis name, the value hashes the view
    /// selects. Returns the keys of those holding no other point (every
    /// value of theirs in the view on every axis, or no point stored at
    /// all), and the descriptors of those holding other points too.
    /// Records on other axes, and damaged index entries, are left out (as
    /// `descriptors` leaves them out).
    pub fn records_in_view(&self, cache: &CacheId, view: &[(String, Vec<u64>)]) -> Result<RecordsInView> {
        let sets: Vec<(&str, HashKeyed<()>)> =
            view.iter().map(|(name, hs)| (name.as_str(), hs.iter().map(|&h| (h, ())).collect())).collect();
        self.read(|s, t| {
            let (mut whole, mut partial) = (Vec::new(), Vec::new());
            for item in s.index.prefix_iter(t, cache)? {
                let (k, v) = item?;
                let Ok(chunk) = <ChunkKey>::try_from(&k[16..]) else { continue };
                // Per record axis: its values in the view, and whether all are.
                let (mut axes, mut covered, mut all, mut known) = (0usize, 1u64, true, true);
                let parsed = Descriptor::parse(v, |name, bytes| {
                    axes += 1;
                    let Some((_, set)) = sets.iter().find(|(n, _)| *n == name) else {
                        known = false;
                        return;
                    };
                    let hashes = bytes.chunks_exact(8).map(|h| u64::from_le_bytes(h.try_into().unwrap()));
                    let inside = hashes.filter(|h| set.contains_key(h)).count();
                    covered = covered.saturating_mul(inside as u64);
                    all &= inside == bytes.len() / 8;
                });
                let Ok((_, present, _, _)) = parsed else { continue };
                if !known || axes != sets.len() || covered == 0 {
                    continue;
                }
                if all || present == 0 {
                    whole.push(chunk);
                } else if let Ok(d) = Descriptor::decode(v) {
                    partial.push((chunk, d));
                }
            }
            Ok((whole, partial))
        })
    }

    /// Sound descriptors, and the damaged index entries with the reason.
    pub(crate) fn descriptors_checked_in(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
    ) -> Result<(Vec<(ChunkKey, Descriptor)>, BadEntries)> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for item in self.index.prefix_iter(t, cache)? {
            let (k, v) = item?;
            let Ok(chunk) = <ChunkKey>::try_from(&k[16..]) else { continue };
            match Descriptor::decode(v) {
                Ok(d) => good.push((chunk, d)),
                Err(e) => bad.push((chunk, format!("damaged index entry: {}", e.message))),
            }
        }
        Ok((good, bad))
    }

    /// Totals of a cache's records, read from the index tails only (no
    /// value hashes decoded, nothing copied out per record).
    pub fn summary(&self, cache: &CacheId) -> Result<CacheSummary> {
        self.read(|s, t| {
            let mut out = CacheSummary::default();
            for item in s.index.prefix_iter(t, cache)? {
                let (_, v) = item?;
                // A damaged entry counts as an absent record.
                let Ok((_, present, bytes, updated)) = Descriptor::tail(v) else { continue };
                out.records += 1;
                out.points += present as u64;
                out.bytes += bytes;
                out.last_write_ms = out.last_write_ms.max(updated);
            }
            Ok(out)
        })
    }
}
