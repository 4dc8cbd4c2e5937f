//! In-use marks that every process sharing a root sees.
//!
//! A run marks its cache in use when it starts and unmarks it when it ends;
//! eviction (`gc`) in any process skips the caches some live process marks.
//! The `inuse` database maps cache id + owner id (32 B) to a u32 (1: that
//! owner marks the cache; nested marks are counted in the owner's memory).
//! An owner is this process' store handle ([`crate::owner`]): its marks count only while its OS lock is held, so the
//! marks of a process that died, however it died, are ignored at once and
//! swept when a root is opened. Tokens tie each unmark to its mark, so an
//! unmark given twice is a no-op and never ends another run's mark.

use super::{CacheId, Store};
use crate::error::{CoreError, Result};
use crate::owner::OwnerId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

fn key(cache: &CacheId, owner: &OwnerId) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(cache);
    k[16..].copy_from_slice(owner);
    k
}

fn count_of(v: Option<&[u8]>) -> u32 {
    v.and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_le_bytes)
}

/// This process' in-use marks at one root (shared by its threads).
#[derive(Default)]
pub(crate) struct Marks {
    /// Live marks: token -> cache.
    live: HashMap<u64, CacheId>,
    /// Caches this owner has an entry for in the `inuse` table.
    written: HashSet<CacheId>,
}

impl Marks {
    fn has_live(&self, cache: &CacheId) -> bool {
        self.live.values().any(|c| c == cache)
    }
}

impl Store {
    /// Marks `cache` in use by this process until [`Store::unmark_in_use`]
    /// with the returned token (or until the process ends). Marks nest; the
    /// table is written only when this process had no entry for the cache.
    pub fn mark_in_use(&self, cache: &CacheId) -> Result<u64> {
        let mut m = self.marks.lock().unwrap();
        if !m.written.contains(cache) {
            let k = key(cache, self.owner.id());
            self.write(|s, t| Ok(s.inuse.put(t, &k, &1u32.to_le_bytes())?))?;
            m.written.insert(*cache);
        }
        let token = self.next_mark.fetch_add(1, Ordering::Relaxed) + 1;
        m.live.insert(token, *cache);
        Ok(token)
    }

    /// Ends the mark `token` of `cache`; false (and nothing changed) when
    /// the token is unknown, already ended or belongs to another cache.
    /// The last mark of a cache removes its table entry.
    pub fn unmark_in_use(&self, cache: &CacheId, token: u64) -> Result<bool> {
        let mut m = self.marks.lock().unwrap();
        if m.live.get(&token) != Some(cache) {
            return Ok(false);
        }
        m.live.remove(&token);
        if !m.has_live(cache) && m.written.contains(cache) {
            let k = key(cache, self.owner.id());
            self.write(|s, t| Ok(s.inuse.delete(t, &k).map(|_| ())?))?;
            m.written.remove(cache);
        }
        Ok(true)
    }

    /// Caches that a live process (this one included) marks in use, sorted.
    /// This process' own marks come from memory.
    pub fn caches_in_use(&self) -> Result<Vec<CacheId>> {
        let me = *self.owner.id();
        let entries: Vec<(CacheId, OwnerId)> = self.read(|s, t| {
            let mut out = Vec::new();
            for item in s.inuse.iter(t)? {
                let (k, v) = item?;
                if count_of(Some(v)) == 0 {
                    continue;
                }
                let (Ok(c), Ok(o)) = (<CacheId>::try_from(&k[..16]), <OwnerId>::try_from(&k[16..])) else {
                    return Err(CoreError::corrupt("bad in-use key"));
                };
                if o != me {
                    out.push((c, o));
                }
            }
            Ok(out)
        })?;
        let mut live = self.owner.liveness();
        let mut caches: HashSet<CacheId> = entries.into_iter().filter(|(_, o)| live.alive(o)).map(|(c, _)| c).collect();
        caches.extend(self.marks.lock().unwrap().live.values().copied());
        let mut out: Vec<CacheId> = caches.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Deletes the marks of owners that are not alive (when a root opens).
    pub(crate) fn purge_dead_marks(&self) -> Result<()> {
        let keys: Vec<[u8; 32]> = self.read(|s, t| {
            let mut out = Vec::new();
            for item in s.inuse.iter(t)? {
                let (k, _) = item?;
                if let Ok(k) = <[u8; 32]>::try_from(k) {
                    out.push(k);
                }
            }
            Ok(out)
        })?;
        let mut live = self.owner.liveness();
        let dead: Vec<[u8; 32]> =
            keys.into_iter().filter(|k| !live.alive(&<OwnerId>::try_from(&k[16..]).unwrap())).collect();
        if !dead.is_empty() {
            self.write(|s, t| {
                for k in &dead {
                    s.inuse.delete(t, k)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
