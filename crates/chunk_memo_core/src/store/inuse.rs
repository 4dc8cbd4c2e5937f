//! In-use marks that every process sharing a root sees.
//!
//! A run marks its cache in use when it starts and unmarks it when it ends;
//! eviction (`gc`) in any process skips the caches some live process marks.
//! The `inuse` database maps cache id + owner id (32 B) to a u32 count of
//! that owner's marks. An owner is this process' store handle
//! ([`crate::owner`]): its marks count only while its OS lock is held, so the
//! marks of a process that died, however it died, are ignored at once and
//! swept when a root is opened. Tokens tie each unmark to its mark, so an
//! unmark given twice is a no-op and never ends another run's mark.

use super::{CacheId, Store};
use crate::error::{CoreError, Result};
use crate::owner::OwnerId;
use std::collections::HashSet;
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

impl Store {
    /// Marks `cache` in use by this process until [`Store::unmark_in_use`]
    /// with the returned token (or until the process ends). Marks nest.
    pub fn mark_in_use(&self, cache: &CacheId) -> Result<u64> {
        let k = key(cache, self.owner.id());
        self.write(|s, t| {
            let n = count_of(s.inuse.get(t, &k)?);
            s.inuse.put(t, &k, &n.saturating_add(1).to_le_bytes())?;
            Ok(())
        })?;
        let token = self.next_mark.fetch_add(1, Ordering::Relaxed) + 1;
        self.marks.lock().unwrap().insert(token, *cache);
        Ok(token)
    }

    /// Ends the mark `token` of `cache`; false (and nothing changed) when
    /// the token is unknown, already ended or belongs to another cache.
    pub fn unmark_in_use(&self, cache: &CacheId, token: u64) -> Result<bool> {
        {
            let mut marks = self.marks.lock().unwrap();
            if marks.get(&token) != Some(cache) {
                return Ok(false);
            }
            marks.remove(&token);
        }
        let k = key(cache, self.owner.id());
        self.write(|s, t| {
            match count_of(s.inuse.get(t, &k)?) {
                0 | 1 => {
                    s.inuse.delete(t, &k)?;
                }
                n => s.inuse.put(t, &k, &(n - 1).to_le_bytes())?,
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Caches that a live process (this one included) marks in use, sorted.
    pub fn caches_in_use(&self) -> Result<Vec<CacheId>> {
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
                out.push((c, o));
            }
            Ok(out)
        })?;
        let mut live = self.owner.liveness();
        let caches: HashSet<CacheId> = entries.into_iter().filter(|(_, o)| live.alive(o)).map(|(c, _)| c).collect();
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
