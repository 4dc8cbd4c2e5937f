//! Memory of large outputs.
//!
//! A run's typed output is allocated by JS and then filled once, from stored
//! chunks or computed ones. A fresh allocation of many MB is mapped lazily,
//! so that first fill takes a page fault per 4 KiB page, which costs about
//! as much as the copy itself. Populating the pages in one system call (the
//! binding makes it on the libuv pool while the run fills the output) saves
//! the faults' trap and bookkeeping costs (huge pages would save more, but
//! the kernel may stall to compact memory for them).

/// Buffers smaller than this are left to fault in as they fill (a few
/// hundred page faults cost less than the call).
const MIN_BYTES: usize = 4 << 20;

/// Populates (allocates and maps, writable) the page-aligned part of `buf`
/// in one call (`MADV_POPULATE_WRITE`, Linux 5.14 and later), so that
/// filling it takes no page faults. Contents stay as they are: memory that
/// was never touched reads as zeros, as before. Returns whether pages were
/// populated (false for small buffers, older kernels and other platforms).
pub fn prefault(buf: &mut [u8]) -> bool {
    prefault_over(buf, MIN_BYTES)
}

/// [`prefault`] for buffers of at least `min` bytes: a caller about to fill
/// a stretch of a large output itself (a page fault costs more than its
/// share of the call once a stretch spans a few dozen pages).
pub fn prefault_over(buf: &mut [u8], min: usize) -> bool {
    if buf.len() < min {
        return false;
    }
    let page = page_size();
    let start = buf.as_mut_ptr() as usize;
    let first = start.div_ceil(page) * page;
    let end = (start + buf.len()) / page * page;
    end > first && populate(first, end - first)
}

/// The OS page size (LMDB's page size too).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(512)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate(addr: usize, len: usize) -> bool {
    // SAFETY: [addr, addr+len) lies inside `buf`, writable memory this
    // process owns; populating maps its pages and never changes contents.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) == 0 }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn populate(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident kB of this process (Linux).
    fn rss_kb() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/statm").ok()?;
        Some(s.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()? * page_size() as u64 / 1024)
    }

    #[test]
    fn populates_large_buffers_and_keeps_contents() {
        let mut small = vec![7u8; 4096];
        assert!(!prefault(&mut small));
        let mut data: Vec<u8> = (0..(9 << 20)).map(|i| (i % 251) as u8).collect();
        prefault(&mut data);
        assert!(data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        // A fresh zeroed allocation: lazily mapped until populated, and zeros after.
        let mut zeros = vec![0u8; 64 << 20];
        let before = rss_kb();
        if prefault(&mut zeros) {
            let (Some(a), Some(b)) = (before, rss_kb()) else { return };
            assert!(b >= a + 60 * 1024, "resident {a} kB -> {b} kB");
        }
        assert!(zeros.iter().all(|&b| b == 0));
    }
}
