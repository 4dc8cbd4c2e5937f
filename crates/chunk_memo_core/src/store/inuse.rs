//! In-use marks that every process sharing a root sees.
//!
//! A run marks its cache in use when it starts and unmarks it when it ends;
//! eviction (`gc`) in any process skips the caches some live process marks.
//! A process marks a cache by holding a shared OS lock (flock semantics:
//! `File::lock_shared`) on the file `<root>/inuse/<cache hex>`, kept open
//! while it has marks of that cache (nested marks are counted in memory).
//! Another process tells whether a cache is marked by trying to lock its
//! file exclusively. Marking and unmarking write nothing (a store
//! transaction would sync twice per run), and the kernel drops the locks of
//! a process that dies, however it dies, so its marks end at once. Tokens
//! tie each unmark to its mark, so an unmark given twice is a no-op and
//! never ends another run's mark.
//!
//! Versions before lock files kept marks in the `inuse` database (key: the
//! cache id and the owner id; value: a u32 count, counted while the owner's
//! lock is held, [`crate::owner`]): its entries are still honoured and
//! swept.

use super::{CacheId, Store};
use crate::canonical::hex;
use crate::error::{CoreError, Result};
use crate::owner::OwnerId;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

const DIR: &str = "inuse";

/// 16 bytes from 32 hex digits.
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

fn count_of(v: Option<&[u8]>) -> u32 {
    v.and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_le_bytes)
}

/// Whether another process holds a lock on the mark file `path`: an
/// exclusive lock is refused while anyone holds a shared one. Another
/// process checking at the same moment holds it exclusively for a moment
/// too, so a refusal is tried again once before it counts.
fn locked_by_others(path: &Path) -> bool {
    let Ok(f) = File::open(path) else { return false };
    for attempt in 0..2 {
        match f.try_lock() {
            Ok(()) => return false,
            Err(TryLockError::WouldBlock) if attempt == 0 => std::thread::sleep(std::time::Duration::from_micros(200)),
            // Locked, or locks unsupported here (then count it as in use).
            Err(_) => return true,
        }
    }
    true
}

/// This process' in-use marks at one root (shared by its threads).
#[derive(Default)]
pub(crate) struct Marks {
    /// Live marks: token -> cache.
    live: HashMap<u64, CacheId>,
    /// The mark files of the caches with live marks, open and share-locked.
    files: HashMap<CacheId, File>,
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

    /// The mark file of `cache`, opened (made when missing) and locked
    /// shared (waiting while another process checks it).
    fn lock_mark(&self, cache: &CacheId) -> std::io::Result<File> {
        let dir = self.marks_dir();
        let path = dir.join(hex(cache));
        let open = || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                open()?
            }
            r => r?,
        };
        f.lock_shared()?;
        Ok(f)
    }

    /// Marks `cache` in use by this process until [`Store::unmark_in_use`]
    /// with the returned token (or until the process ends). Marks nest; the
    /// mark file is locked only when this process had no mark of the cache.
    /// Where the file cannot be made or locked (a read-only root, a file
    /// system without locks), the mark is kept in this process only, as
    /// the marks of an owner without a lock file are (other processes then
    /// may evict what this one reads, which it recomputes, never loses).
    pub fn mark_in_use(&self, cache: &CacheId) -> Result<u64> {
        let mut m = self.marks.lock().unwrap();
        if !m.files.contains_key(cache) {
            if let Ok(f) = self.lock_mark(cache) {
                m.files.insert(*cache, f);
            }
        }
        let token = self.next_mark.fetch_add(1, Ordering::Relaxed) + 1;
        m.live.insert(token, *cache);
        Ok(token)
    }

    /// Ends the mark `token` of `cache`; false (and nothing changed) when
    /// the token is unknown, already ended or belongs to another cache.
    /// The last mark of a cache closes its mark file (which drops the lock).
    pub fn unmark_in_use(&self, cache: &CacheId, token: u64) -> Result<bool> {
        let mut m = self.marks.lock().unwrap();
        if m.live.get(&token) != Some(cache) {
            return Ok(false);
        }
        m.live.remove(&token);
        if !m.has_live(cache) {
            m.files.remove(cache);
        }
        Ok(true)
    }

    /// Caches that a live process (this one included) marks in use, sorted.
    /// This process' own marks come from memory.
    pub fn caches_in_use(&self) -> Result<Vec<CacheId>> {
        let mut caches = self.table_marks(None)?;
        let mine: HashSet<CacheId> = self.marks.lock().unwrap().live.values().copied().collect();
        if let Ok(files) = std::fs::read_dir(self.marks_dir()) {
            for e in files.flatten() {
                let Some(cache) = e.file_name().to_str().and_then(unhex16) else { continue };
                if !mine.contains(&cache) && !caches.contains(&cache) && locked_by_others(&e.path()) {
                    caches.insert(cache);
                }
            }
        }
        caches.extend(mine);
        let mut out: Vec<CacheId> = caches.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Whether a live process (this one included) marks `cache` in use:
    /// [`Store::caches_in_use`] asked of one cache (its mark file alone).
    pub fn is_in_use(&self, cache: &CacheId) -> Result<bool> {
        if self.marks.lock().unwrap().has_live(cache) || locked_by_others(&self.marks_dir().join(hex(cache))) {
            return Ok(true);
        }
        Ok(!self.table_marks(Some(cache))?.is_empty())
    }

    /// Caches of table marks (of earlier versions) made by other owners
    /// that are alive: of `cache` only, or of every cache.
    fn table_marks(&self, cache: Option<&CacheId>) -> Result<HashSet<CacheId>> {
        let me = *self.owner.id();
        let entries: Vec<(CacheId, OwnerId)> = self.read(|s, t| {
            let mut out = Vec::new();
            let mut take = |(k, v): (&[u8], &[u8])| -> Result<()> {
                if count_of(Some(v)) == 0 {
                    return Ok(());
                }
                let (Ok(c), Ok(o)) = (<CacheId>::try_from(&k[..16]), <OwnerId>::try_from(&k[16..])) else {
                    return Err(CoreError::corrupt("bad in-use key"));
                };
                if o != me {
                    out.push((c, o));
                }
                Ok(())
            };
            match cache {
                Some(c) => s.inuse.prefix_iter(t, c)?.try_for_each(|item| take(item?))?,
                None => s.inuse.iter(t)?.try_for_each(|item| take(item?))?,
            }
            Ok(out)
        })?;
        let mut live = self.owner.liveness();
        Ok(entries.into_iter().filter(|(_, o)| live.alive(o)).map(|(c, _)| c).collect())
    }

    /// Deletes the table marks (of earlier versions) of owners that are not
    /// alive (when a root opens). Mark files need no sweeping: a dead
    /// process holds no lock.
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
        assert!(store.is_in_use(&cache).unwrap() && !store.is_in_use(&[7; 16]).unwrap());
        drop(other);
        assert!(store.caches_in_use().unwrap().is_empty());
        assert!(!store.is_in_use(&cache).unwrap());
        store.purge_dead_marks().unwrap();
        assert!(store.read(|s, t| Ok(s.inuse.iter(t)?.count())).unwrap() == 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Where mark files cannot be made, marks are kept in this process.
    #[test]
    fn marks_without_mark_files_stay_in_this_process() {
        let root = std::env::temp_dir().join(format!("cm-inuse-nofile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        std::fs::write(root.join(DIR), b"not a directory").unwrap();
        let cache: CacheId = [6; 16];
        let token = store.mark_in_use(&cache).unwrap();
        assert_eq!(store.caches_in_use().unwrap(), vec![cache]);
        assert!(store.unmark_in_use(&cache, token).unwrap());
        assert!(store.caches_in_use().unwrap().is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn mark_file_names_round_trip() {
        let c: CacheId = [0xab; 16];
        assert_eq!(unhex16(&hex(&c)), Some(c));
        assert_eq!(unhex16(&hex(&c).to_uppercase()), Some(c));
        assert_eq!(unhex16("zz"), None);
        assert_eq!(unhex16(&format!("{}.tmp", hex(&c))), None);
    }
}
