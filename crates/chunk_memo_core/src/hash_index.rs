//! Finding a value hash's place in a list of distinct hashes: an
//! open-addressing table of positions, 4 bytes a slot and at most half
//! full, checked against the list itself. A million values cost 8 MB,
//! where a `HashMap<u64, u32>` holds 32.

/// The positions of `hashes[k * stride]` (k = 0, 1, ...) by hash: with a
/// stride of one, every value of an axis; with the chunk size, the values
/// that start a bin.
pub(crate) struct HashIndex {
    slots: Vec<u32>,
    shift: u32,
    stride: usize,
}

const EMPTY: u32 = u32::MAX;

impl HashIndex {
    /// Indexes every `stride`-th hash of `hashes` (distinct, as a grid's
    /// axis holds them).
    pub(crate) fn new(hashes: &[u64], stride: usize) -> HashIndex {
        let n = hashes.len().div_ceil(stride);
        let cap = (2 * n).next_power_of_two().max(16);
        let mut index = HashIndex { slots: vec![EMPTY; cap], shift: 64 - cap.trailing_zeros(), stride };
        let mask = cap - 1;
        for k in 0..n {
            let mut s = index.slot(hashes[k * stride]);
            while index.slots[s] != EMPTY {
                s = (s + 1) & mask;
            }
            index.slots[s] = k as u32;
        }
        index
    }

    /// The position k of `h` (`hashes[k * stride] == h`), given the list
    /// the index was made of.
    #[inline]
    pub(crate) fn find(&self, hashes: &[u64], h: u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut s = self.slot(h);
        loop {
            let k = self.slots[s];
            if k == EMPTY {
                return None;
            }
            if hashes[k as usize * self.stride] == h {
                return Some(k);
            }
            s = (s + 1) & mask;
        }
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }
}

impl std::fmt::Debug for HashIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashIndex({} slots, stride {})", self.slots.len(), self.stride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_indexed_hash_and_nothing_else() {
        // Hashes that collide in their top bits (the slot) as well as random ones.
        let mut hashes: Vec<u64> = (0..5000u64).map(|i| i << 40).collect();
        hashes.extend((1..5000u64).map(|i| i.wrapping_mul(0xdead_beef_1234_5677)));
        for stride in [1, 3, 64] {
            let index = HashIndex::new(&hashes, stride);
            for (i, &h) in hashes.iter().enumerate() {
                let want = (i % stride == 0).then_some((i / stride) as u32);
                assert_eq!(index.find(&hashes, h), want, "hash {i}, stride {stride}");
            }
            assert_eq!(index.find(&hashes, 12345), None);
        }
        let empty = HashIndex::new(&[], 1);
        assert_eq!(empty.find(&[], 7), None);
    }
}
