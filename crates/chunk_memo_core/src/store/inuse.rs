//! In-use marks that every process sharing a root sees.
//!
//! A run marks its cache in use when it starts and unmarks it when it ends;
//! eviction (`gc`) in any process skips the caches some live process marks.
//! A mark is an empty file `<root>/inuse/<cache hex>.<owner hex>` (nested
//! marks are counted in the owner's memory): making and removing one costs
//! no sync of the store, which a transaction would (two per run). Nothing
//! is lost with a mark file after a crash: an owner is this process' store
//! handle ([`crate::owner`]), and its marks count only while its OS lock is
//! held, so the marks of a process that died, however it died, are ignored
//! at once and swept when a root is opened. Tokens tie each unmark to its
//! mark, so an unmark given twice is a no-op and never ends another run's
//! mark.
//!
//! Versions before mark files kept marks in the `inuse` database (cache id
//! + owner id -> a u32 count): its entries are still honoured and swept.

use super::{CacheId, Store};
use crate::canonical::hex;
use crate::error::{CoreError, ErrorCode, Result};
use crate::owner::OwnerId;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

const DIR: &str = "inuse";

fn mark_file(dir: &Path, cache: &CacheId, owner: &OwnerId) -> PathBuf {
    dir.join(format!("{}.{}", hex(cache), hex(owner)))
}

/// 16 bytes from 32 lowercase or uppercase hex digits.
fn unhex16(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (k, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * k])? << 4 | digit(b[2 * k + 1])?;
    }
    Some(out)
}

/// The cache and owner a mark file names.
fn parse_mark(name: &str) -> Option<(CacheId, OwnerId)> {
    let (c, o) = name.split_once('.')?;
    Some((unhex16(c)?, unhex16(o)?))
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
    fn marks_dir(&self) -> PathBuf {
        self.path.join(DIR)
    }

    /// Marks `cache` in use by this process until [`Store::unmark_in_use`]
    /// with the returned token (or until the process ends). Marks nest; the
    /// mark file is made only when this process had none for the cache.
    pub fn mark_in_use(&self, cache: &CacheId) -> Result<u64> {
        let mut m = self.marks.lock().unwrap();
        if !m.written.contains(cache) {
            let dir = self.marks_dir();
            let made = std::fs::create_dir_all(&dir).and_then(|()| {
                std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(mark_file(
                    &dir,
                    cache,
                    self.owner.id(),
                ))
            });
            if let Err(e) = made {
                return Err(CoreError::new(
                    ErrorCode::Storage,
                    format!("cannot mark cache {} in use under {}: {e}", hex(cache), dir.display()),
                ));
            }
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
            let file = mark_file(&self.marks_dir(), cache, self.owner.id());
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CoreError::new(
                        ErrorCode::Storage,
                        format!("cannot remove in-use mark {}: {e}", file.display()),
                    ))
                }
            }
            m.written.remove(cache);
        }
        Ok(true)
    }

    /// The marks of other owners: mark files, and entries of the `inuse`
    /// table (written by earlier versions).
    fn others_marks(&self) -> Result<Vec<(CacheId, OwnerId)>> {
        let me = *self.owner.id();
        let mut out: Vec<(CacheId, OwnerId)> = self.read(|s, t| {
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
        if let Ok(entries) = std::fs::read_dir(self.marks_dir()) {
            out.extend(entries.flatten().filter_map(|e| parse_mark(e.file_name().to_str()?)));
        }
        out.retain(|(_, o)| *o != me);
        Ok(out)
    }

    /// Caches that a live process (this one included) marks in use, sorted.
    /// This process' own marks come from memory.
    pub fn caches_in_use(&self) -> Result<Vec<CacheId>> {
        let entries = self.others_marks()?;
        let mut live = self.owner.liveness();
        let mut caches: HashSet<CacheId> = entries.into_iter().filter(|(_, o)| live.alive(o)).map(|(c, _)| c).collect();
        caches.extend(self.marks.lock().unwrap().live.values().copied());
        let mut out: Vec<CacheId> = caches.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Deletes the marks of owners that are not alive (when a root opens).
    pub(crate) fn purge_dead_marks(&self) -> Result<()> {
        let dir = self.marks_dir();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut live = self.owner.liveness();
            for e in entries.flatten() {
                let Some((_, owner)) = e.file_name().to_str().and_then(parse_mark) else { continue };
                if !live.alive(&owner) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::Owner;

    /// Marks of earlier versions, in the `inuse` table, count while their
    /// owner lives and are swept once it is dead.
    #[test]
    fn table_marks_of_earlier_versions_are_honoured_and_swept() {
        let root =
            std::env::temp_dir().join(format!("cm-inuse-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let other = Owner::create(store.path());
        let cache: CacheId = [5; 16];
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&cache);
        k[16..].copy_from_slice(other.id());
        store.write(|s, t| Ok(s.inuse.put(t, &k, &1u32.to_le_bytes())?)).unwrap();
        assert_eq!(store.caches_in_use().unwrap(), vec![cache]);
        drop(other);
        assert!(store.caches_in_use().unwrap().is_empty());
        store.purge_dead_marks().unwrap();
        assert!(store.read(|s, t| Ok(s.inuse.iter(t)?.count())).unwrap() == 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn mark_file_names_round_trip() {
        let (c, o): (CacheId, OwnerId) = ([0xab; 16], [0x01; 16]);
        let name = mark_file(Path::new(""), &c, &o).to_str().unwrap().to_string();
        assert_eq!(parse_mark(&name), Some((c, o)));
        assert_eq!(parse_mark("x.y"), None);
        assert_eq!(parse_mark(&format!("{}.{}", hex(&c), "zz")), None);
    }
}
