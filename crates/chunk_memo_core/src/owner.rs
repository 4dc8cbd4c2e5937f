//! Owners of work claims and their liveness.
//!
//! Every [`crate::store::Store`] (one per root per process) is an owner: a
//! random 16-byte id and a lock file `<root>/owners/<hex>.lock` on which it
//! holds an exclusive OS lock (flock semantics: `File::try_lock`) for its
//! whole life. The kernel drops the lock when the process dies, however it
//! dies, so liveness does not depend on pids (reuse, namespaces) or clocks:
//! another owner is alive iff its lock file exists and we cannot lock it.
//!
//! The file is created under a temporary name, locked, then renamed into
//! place, so nobody ever sees an unlocked lock file of a live owner.

use crate::canonical::hex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Identity of one owner (one store handle of one process).
pub type OwnerId = [u8; 16];

const DIR: &str = "owners";

/// The owners directory of a root.
pub(crate) fn owners_dir(root: &Path) -> PathBuf {
    root.join(DIR)
}

fn lock_path(dir: &Path, id: &OwnerId) -> PathBuf {
    dir.join(format!("{}.lock", hex(id)))
}

/// 16 bytes that no other owner has: std's per-process random hasher keys
/// mixed with the pid, the time and a counter.
fn random_id() -> OwnerId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    for i in 0..4u64 {
        let mut s = std::collections::hash_map::RandomState::new().build_hasher();
        s.write_u64(i);
        h.update(&s.finish().to_le_bytes());
    }
    h.update(&std::process::id().to_le_bytes());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.update(&nanos.to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    id
}

/// This process' owner identity at one root, with its lock held.
pub struct Owner {
    id: OwnerId,
    dir: PathBuf,
    /// The locked file; `None` when the root does not allow one (then other
    /// processes see our claims as dead, which costs duplicate work, never
    /// lost work).
    file: Option<File>,
}

impl Owner {
    /// A new owner at `root`, holding its lock.
    pub(crate) fn create(root: &Path) -> Owner {
        let id = random_id();
        let dir = owners_dir(root);
        let file = Self::lock_new(&dir, &id).ok();
        Owner { id, dir, file }
    }

    fn lock_new(dir: &Path, id: &OwnerId) -> std::io::Result<File> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{}.lock.tmp", hex(id)));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
        if let Err(e) = file.try_lock() {
            let _ = std::fs::remove_file(&tmp);
            return Err(match e {
                TryLockError::Error(e) => e,
                TryLockError::WouldBlock => std::io::Error::other("new owner file is locked"),
            });
        }
        if let Err(e) = std::fs::rename(&tmp, lock_path(dir, id)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(file)
    }

    pub fn id(&self) -> &OwnerId {
        &self.id
    }

    /// Whether this owner holds its OS lock (false on a root where the lock
    /// file could not be made).
    pub fn is_locked(&self) -> bool {
        self.file.is_some()
    }

    pub(crate) fn liveness(&self) -> Liveness {
        Liveness { dir: self.dir.clone(), me: self.id, known: HashMap::new(), dead: Vec::new() }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Removed while still locked, then the lock goes with the file.
        if self.file.is_some() {
            let _ = std::fs::remove_file(lock_path(&self.dir, &self.id));
        }
    }
}

/// Liveness answers cached for one operation. Dead owners found stay locked
/// by us until [`Liveness::remove_dead`] deletes their files.
pub(crate) struct Liveness {
    dir: PathBuf,
    me: OwnerId,
    known: HashMap<OwnerId, bool>,
    dead: Vec<(OwnerId, Option<File>)>,
}

impl Liveness {
    pub(crate) fn me(&self) -> &OwnerId {
        &self.me
    }

    /// Whether `owner` is alive: ourselves, or its lock file exists and is
    /// locked by someone else. An unreadable lock file counts as alive
    /// (a lease, when given, still ends its claims).
    pub(crate) fn alive(&mut self, owner: &OwnerId) -> bool {
        if *owner == self.me {
            return true;
        }
        if let Some(&a) = self.known.get(owner) {
            return a;
        }
        let alive = match File::open(lock_path(&self.dir, owner)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.dead.push((*owner, None));
                false
            }
            Err(_) => true,
            Ok(f) => match f.try_lock() {
                Ok(()) => {
                    self.dead.push((*owner, Some(f)));
                    false
                }
                Err(_) => true,
            },
        };
        self.known.insert(*owner, alive);
        alive
    }

    /// Owners found dead so far.
    pub(crate) fn dead(&self) -> Vec<OwnerId> {
        self.dead.iter().map(|d| d.0).collect()
    }

    /// Deletes the lock files of the dead owners found (their claims must be
    /// gone first), releasing our locks on them.
    pub(crate) fn remove_dead(self) {
        for (id, file) in self.dead {
            if file.is_some() {
                let _ = std::fs::remove_file(lock_path(&self.dir, &id));
            }
        }
    }
}

/// Removes lock files (and unfinished temporary ones) of dead owners left in
/// `<root>/owners`, e.g. by killed processes that held no claims.
pub(crate) fn remove_stale_lock_files(root: &Path, me: &OwnerId) {
    let dir = owners_dir(root);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mine = hex(me);
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".lock") && !name.ends_with(".lock.tmp") || name.starts_with(&mine) {
            continue;
        }
        // A temporary file may belong to an owner being created right now.
        if name.ends_with(".tmp") {
            let young = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if young.is_none_or(|age| age.as_secs() < 60) {
                continue;
            }
        }
        if let Ok(f) = File::open(e.path()) {
            if f.try_lock().is_ok() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
