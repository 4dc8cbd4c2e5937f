//! Resident memory of the data file's mapping.
//!
//! LMDB reads through a read-only shared mapping of the data file, so every
//! page a transaction touches counts towards this process' resident memory
//! until it is unmapped; over a long sweep of a large store that would be
//! the whole file. After its transactions the store therefore checks, at
//! most every [`CHECK_MS`], how much file-backed memory the process has
//! mapped in since its last release, and drops its mapping of the data
//! file's pages once that exceeds a budget (`CHUNK_MEMO_MAP_RESIDENT_MB`,
//! default [`DEFAULT_BUDGET_MB`]). The pages stay in the OS page cache and
//! come back on the next access, so nothing is lost; releasing only over
//! the budget keeps a store smaller than it resident, instead of faulting
//! its hot pages back in again and again.

use super::Store;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// How often (at most) the resident size is checked after a transaction
/// (reading it costs about 2 µs).
const CHECK_MS: u64 = 1;
/// Resident pages of the map allowed before they are released. Twice the
/// 16 MB it was: a warm run over a store a little larger than the budget
/// (a million small objects take about 18 MB) released all of it after each
/// run and faulted it back in on the next, which cost a quarter of such a
/// run. Above the budget a sweep keeps at most this much more resident.
const DEFAULT_BUDGET_MB: u64 = 32;

pub(super) struct MapPages {
    /// When the resident size was last checked (ms).
    checked_ms: AtomicU64,
    /// The process' file-backed resident pages right after the last release
    /// (lowered when other mappings shrink), the base of the budget.
    floor: AtomicU64,
    budget_pages: u64,
    page: usize,
    /// Where the data file is mapped: (map size, address, length).
    mapping: Mutex<Option<(usize, usize, usize)>>,
}

impl MapPages {
    pub(super) fn new() -> MapPages {
        let page = crate::memory::page_size();
        let mb = std::env::var("CHUNK_MEMO_MAP_RESIDENT_MB").ok().and_then(|s| s.trim().parse::<u64>().ok());
        MapPages {
            checked_ms: AtomicU64::new(0),
            floor: AtomicU64::new(file_resident_pages().unwrap_or(0)),
            budget_pages: mb.unwrap_or(DEFAULT_BUDGET_MB).saturating_mul(1 << 20) / page as u64,
            page,
            mapping: Mutex::new(None),
        }
    }
}

/// This process' file-backed (and shared) resident pages, from
/// /proc/self/statm; `None` where there is no such file.
fn file_resident_pages() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    s.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// Start and length of this process' mapping of `file` (LMDB does not
/// report where it mapped the data file unless the address was fixed); on
/// Linux from /proc/self/maps, elsewhere none.
fn data_mapping(file: &Path) -> Option<(usize, usize)> {
    let want = file.to_str()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        // "start-end perms offset dev inode   path"
        let mut cols = line.splitn(6, ' ');
        let range = cols.next()?;
        let path = cols.nth(4).map(str::trim_start);
        if path != Some(want) {
            continue;
        }
        let (a, b) = range.split_once('-')?;
        let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
        return Some((a, b.checked_sub(a)?));
    }
    None
}

impl Store {
    /// After a transaction: at most every [`CHECK_MS`], releases the map's
    /// pages when the process mapped in more than the budget since the last
    /// release. Where /proc cannot be read, the mapping cannot be found
    /// either: nothing is released.
    pub(super) fn after_io(&self) {
        let p = &self.pages;
        let now = super::now_ms();
        let last = p.checked_ms.load(Relaxed);
        if now.saturating_sub(last) < CHECK_MS || p.checked_ms.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
            return;
        }
        let Some(cur) = file_resident_pages() else { return };
        let floor = p.floor.fetch_min(cur, Relaxed).min(cur);
        if cur - floor <= p.budget_pages {
            return;
        }
        if self.release_map_pages() {
            p.floor.store(file_resident_pages().unwrap_or(cur), Relaxed);
        }
    }

    /// Drops this process' mapping of the data file's pages (they stay in
    /// the OS page cache and come back on the next access). The map is read
    /// only (LMDB writes through the file), so nothing can be lost. Returns
    /// whether the pages were released.
    pub(super) fn release_map_pages(&self) -> bool {
        // Never waits: a resize in progress (or a caller inside a
        // transaction) just skips this round.
        let Ok(_g) = self.gate.try_read() else { return false };
        let info = self.env.info();
        // LMDB's page size is the OS page size.
        let used = (info.last_page_number + 1).saturating_mul(self.pages.page);
        // The mapping moves only when the map is resized.
        let mut cached = self.pages.mapping.lock().unwrap();
        let (addr, len) = match *cached {
            Some((size, addr, len)) if size == info.map_size => (addr, len),
            _ => {
                let Some((addr, len)) = data_mapping(&self.path.join("data.mdb")) else { return false };
                *cached = Some((info.map_size, addr, len));
                (addr, len)
            }
        };
        let len = len.min(used);
        if len == 0 {
            return false;
        }
        // SAFETY: the range lies within LMDB's shared, read-only file
        // mapping, which the gate keeps from being remapped meanwhile;
        // MADV_DONTNEED on such a mapping only drops page-table entries.
        unsafe {
            libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
        true
    }
}
