//! Lookups in key order: one cursor walking forward over a table, for
//! keys asked for in ascending order or close together (chunks close in
//! grid order have records close together).

use super::resolve::whole_record;
use super::{rkey, CacheId, ChunkKey, Store, WholeRecord};
use crate::error::Result;
use heed::types::Bytes;
use heed::{Database, RoTxn, WithoutTls};

/// Records stepped over, walking them in key order, before the walk seeks
/// the next wanted key afresh (about what a lookup from the root costs).
const SEEK_AFTER_STEPS: usize = 16;

/// Lookups in a table by one cursor walking forward: a key a few entries
/// past the last one found is reached by stepping there (a cursor step
/// per entry, where a lookup descends the whole B-tree); a key further on,
/// or behind, is sought afresh. Keys asked for in ascending order, or
/// close together, cost a step each; absent keys between the last one
/// asked for and the entry the walk is at cost a comparison.
pub(crate) struct Seek<'t> {
    table: Database<Bytes, Bytes>,
    t: &'t RoTxn<'t, WithoutTls>,
    walk: Option<heed::RoRange<'t, Bytes, Bytes>>,
    /// The entry the walk is at (None: past the end, or no walk yet).
    at: Option<(&'t [u8], &'t [u8])>,
    /// The key asked for last: the walk stands at the first entry from it
    /// on, so a key between the two has no entry (a run of absent keys
    /// costs a comparison each, not a seek each).
    lo: Vec<u8>,
}

impl<'t> Seek<'t> {
    pub(crate) fn new(table: Database<Bytes, Bytes>, t: &'t RoTxn<'t, WithoutTls>) -> Self {
        Seek { table, t, walk: None, at: None, lo: Vec::new() }
    }

    /// The value of `key`; None when the table does not hold it.
    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<&'t [u8]>> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        // Not behind the last key asked for: step on from the entry the
        // walk is at (every entry from that key on is still ahead of it).
        if self.walk.is_some() && key_cmp(&self.lo, key) != Greater {
            let mut steps = 0;
            loop {
                let Some((have, value)) = self.at else { return Ok(self.asked(key, None)) };
                match key_cmp(have, key) {
                    Greater => return Ok(self.asked(key, None)),
                    Equal => return Ok(self.asked(key, Some(value))),
                    Less if steps < SEEK_AFTER_STEPS => {
                        self.at = self.walk.as_mut().and_then(Iterator::next).transpose()?;
                        steps += 1;
                    }
                    Less => break,
                }
            }
        }
        // Behind, far ahead, or the first key: sought afresh.
        let mut walk = self.table.range(self.t, &(std::ops::Bound::Included(key), std::ops::Bound::Unbounded))?;
        self.at = walk.next().transpose()?;
        self.walk = Some(walk);
        let value = self.at.filter(|(have, _)| *have == key).map(|(_, value)| value);
        Ok(self.asked(key, value))
    }

    /// Remembers `key` as the last one asked for; returns `value`.
    fn asked(&mut self, key: &[u8], value: Option<&'t [u8]>) -> Option<&'t [u8]> {
        self.lo.clear();
        self.lo.extend_from_slice(key);
        value
    }
}

/// Compares two keys as LMDB orders them (bytewise): record keys (32
/// bytes) as two big-endian numbers each, in registers, rather than by a
/// call per comparison (a walk compares a key or two per step).
#[inline]
fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (halves(a), halves(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// A record key (32 bytes) as two big-endian numbers, which compare as
/// LMDB orders the bytes; None for a key of another length.
#[inline]
pub(super) fn halves(key: &[u8]) -> Option<(u128, u128)> {
    let key: &[u8; 32] = key.try_into().ok()?;
    let (a, b) = key.split_at(16);
    Some((u128::from_be_bytes(a.try_into().unwrap()), u128::from_be_bytes(b.try_into().unwrap())))
}

impl Store {
    /// Calls `found(n, value)` for the `n`-th of `keys` (in ascending
    /// order) that `table` holds, with its value: the table is walked
    /// forward once with one cursor (see [`Seek`]).
    pub(crate) fn walk_sorted<'t>(
        table: &Database<Bytes, Bytes>,
        t: &'t RoTxn<'_, WithoutTls>,
        keys: impl IntoIterator<Item = [u8; 32]>,
        mut found: impl FnMut(usize, &'t [u8]),
    ) -> Result<()> {
        let mut seek = Seek::new(*table, t);
        for (n, key) in keys.into_iter().enumerate() {
            if let Some(value) = seek.get(&key)? {
                found(n, value);
            }
        }
        Ok(())
    }

    /// [`Store::whole_record_in`] for each of `chunks` (keys of `cache`'s
    /// chunks, in any order), looked up in key order by one forward walk
    /// ([`Store::walk_sorted`]): for a batch of chunks close in grid order,
    /// whose records lie close together, that is a cursor step per chunk.
    pub fn whole_records_in<'t>(
        &self,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        chunks: &[ChunkKey],
    ) -> Result<Vec<Option<WholeRecord<'t>>>> {
        // Sorted by chunk key (the cache's prefix is the same for all).
        let mut wanted: Vec<(u128, u32)> =
            chunks.iter().enumerate().map(|(k, c)| (u128::from_be_bytes(*c), k as u32)).collect();
        wanted.sort_unstable_by_key(|w| w.0);
        let mut out = vec![None; chunks.len()];
        Store::walk_sorted(&self.records, t, wanted.iter().map(|w| rkey(cache, &w.0.to_be_bytes())), |n, bytes| {
            out[wanted[n].1 as usize] = whole_record(bytes);
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rkey;

    /// Lookups through one `Seek`, in any order (ahead, far ahead, behind,
    /// repeated, absent, past the last entry), agree with plain lookups.
    #[test]
    fn a_seek_finds_what_plain_lookups_find() {
        let dir = std::env::temp_dir().join(format!("chunk-memo-seek-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        let cache = [7u8; 16];
        let key = |i: u32| {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k
        };
        // Every third key of 0..3000 holds a record.
        for i in (0..3000).step_by(3) {
            store.put_raw_record_for_tests(&cache, &key(i), &i.to_le_bytes()).unwrap();
        }
        let mut asked: Vec<u32> = (0..400).collect();
        asked.extend([399, 398, 5, 6, 2999, 3000, 5000, 3, 1200, 1201, 1202, 90, 2997, 6000, 0]);
        asked.extend((0..3000).step_by(97));
        store
            .read(|s, t| {
                let mut seek = Seek::new(s.records, t);
                for &i in &asked {
                    let k = rkey(&cache, &key(i));
                    assert_eq!(seek.get(&k)?, s.records.get(t, &k)?, "key {i}");
                }
                Ok(())
            })
            .unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `key_cmp` orders keys as bytewise comparison does: keys differing
    /// at any one byte (either half), equal keys, and other lengths.
    #[test]
    fn keys_compare_bytewise() {
        let base: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        for at in 0..32 {
            for delta in [1u8, 0x80, 0xff] {
                let mut other = base;
                other[at] = other[at].wrapping_add(delta);
                for (a, b) in [(&base, &other), (&other, &base), (&base, &base)] {
                    assert_eq!(key_cmp(a, b), a.cmp(b), "byte {at}, delta {delta}");
                }
            }
        }
        assert_eq!(key_cmp(&base[..31], &base), std::cmp::Ordering::Less);
        assert_eq!(key_cmp(&base, &base[..16]), std::cmp::Ordering::Greater);
    }
}
