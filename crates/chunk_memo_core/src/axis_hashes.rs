//! Value hashes of whole axes, remembered for the process.
//!
//! Opening a cache hashes every value of each of its axes (a BLAKE3 digest
//! per value: ~0.13 ms per thousand values, ~0.1 s per million), and a
//! process opens the same axes again and again: a cache and its views,
//! reopened caches, other params over the same grid, an extension that
//! merges the stored values. The hashes of the last few axis encodings are
//! therefore kept, keyed by their exact bytes, within a memory budget.

use crate::canonical::{hashes_and_order_keys, split_concatenated};
use crate::checksum::checksum;
use crate::error::Result;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The value hash and the order key of each value of an axis.
#[derive(Debug, PartialEq, Eq)]
pub struct AxisHashes {
    pub hashes: Vec<u64>,
    pub order: Vec<u32>,
}

/// Encodings shorter than this are hashed on each call (a single value, a
/// short list: hashing costs less than keeping it).
const REMEMBER_FROM: usize = 256;
/// Axes remembered at most, and the memory they may hold (their encodings,
/// hashes and order keys: ~21 bytes per integer value). An axis that would
/// take more than half of it (~400,000 integers) is not remembered: there
/// hashing is spread over every core, and decoding the stored grid to
/// compare it costs more than hashing anyway.
const MAX_ENTRIES: usize = 16;
const MAX_BYTES: usize = 16 << 20;

struct Entry {
    sum: u64,
    bytes: Vec<u8>,
    hashes: Arc<AxisHashes>,
}

impl Entry {
    fn size(&self) -> usize {
        self.bytes.len() + self.hashes.hashes.len() * 12
    }
}

static REMEMBERED: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

/// The value hashes and order keys of `concatenated` canonical encodings (an
/// axis' values), from the remembered ones when these very bytes were
/// hashed before.
pub fn axis_hashes(concatenated: &[u8]) -> Result<Arc<AxisHashes>> {
    let compute = || -> Result<AxisHashes> {
        let items = split_concatenated(concatenated)?;
        let (hashes, order) = hashes_and_order_keys(&items);
        Ok(AxisHashes { hashes, order })
    };
    if concatenated.len() < REMEMBER_FROM {
        return Ok(Arc::new(compute()?));
    }
    let sum = checksum(concatenated);
    {
        let mut kept = REMEMBERED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.iter().position(|e| e.sum == sum && e.bytes == concatenated) {
            let e = kept.remove(k).expect("found above");
            let hashes = e.hashes.clone();
            kept.push_front(e);
            return Ok(hashes);
        }
    }
    // Hashed outside the lock: other threads' lookups do not wait for it.
    let hashes = Arc::new(compute()?);
    let entry = Entry { sum, bytes: concatenated.to_vec(), hashes: hashes.clone() };
    if entry.size() <= MAX_BYTES / 2 {
        let mut kept = REMEMBERED.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_front(entry);
        let mut total: usize = kept.iter().map(Entry::size).sum();
        while kept.len() > MAX_ENTRIES || total > MAX_BYTES {
            let Some(old) = kept.pop_back() else { break };
            total -= old.size();
        }
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{encode, Value};

    fn axis(values: impl Iterator<Item = i64>) -> Vec<u8> {
        let mut buf = Vec::new();
        for v in values {
            buf.extend(encode(&Value::Int(v)).unwrap());
        }
        buf
    }

    fn direct(buf: &[u8]) -> AxisHashes {
        let (hashes, order) = hashes_and_order_keys(&split_concatenated(buf).unwrap());
        AxisHashes { hashes, order }
    }

    #[test]
    fn remembered_hashes_are_those_of_the_bytes_asked_for() {
        let a = axis(0..1000);
        let b = axis(1..1001);
        let first = axis_hashes(&a).unwrap();
        assert_eq!(*first, direct(&a));
        // The same bytes again: the remembered hashes.
        assert!(Arc::ptr_eq(&first, &axis_hashes(&a).unwrap()));
        // Other bytes (of the same length): their own hashes.
        assert_eq!(a.len(), b.len());
        let other = axis_hashes(&b).unwrap();
        assert_eq!(*other, direct(&b));
        assert_ne!(other.hashes, first.hashes);
        // Short lists are hashed every time, and the same.
        let short = axis(0..3);
        assert_eq!(*axis_hashes(&short).unwrap(), direct(&short));
        // Bad encodings fail, remembered or not.
        assert!(axis_hashes(&[0xff; 300]).is_err());
    }

    #[test]
    fn the_remembered_axes_stay_within_their_count() {
        let axes: Vec<Vec<u8>> = (0..MAX_ENTRIES as i64 + 4).map(|k| axis(k * 1000..k * 1000 + 100)).collect();
        for a in &axes {
            axis_hashes(a).unwrap();
        }
        assert!(REMEMBERED.lock().unwrap().len() <= MAX_ENTRIES);
        for a in &axes {
            assert_eq!(*axis_hashes(a).unwrap(), direct(a));
        }
    }
}
