//! The layout of one chunk record.
//!
//! ```text
//! 0   magic  b"CMR1"
//! 4   kind   u8   0 = items (one msgpack value per point), else a DType
//! 5   0u8 x 3
//! 8   n      u32  points in the chunk (product of its bin lengths)
//! 12  present u32 points stored
//! 16  presence bitmap, ceil(n/8) bytes, zero padded to a multiple of 4
//! ..  items only: the dictionaries: u32 count, then per dictionary a u32
//!     length and its bytes, zero padded to a multiple of 4; then one u16
//!     per point naming the dictionary its bytes were packed with (padded
//!     to a multiple of 4); then n+1 u32 offsets into the data area
//! ..  data   items: concatenated msgpack; typed: n little-endian elements
//! end-8 checksum: xxh3-64 of every preceding byte, little-endian
//! ```
//!
//! Any subset of points is read through the offsets (or the fixed element
//! width) without decoding the others. Absent points have empty items or
//! zeroed elements.
//!
//! Sparse form (partial records with few points; the writer picks whichever
//! form is smaller, a complete record is always dense), so that size and
//! rewrite cost follow the points present, not the chunk size:
//!
//! ```text
//! 0   magic  b"CMR2"
//! 4   kind   u8
//! 5   flags  u8   bit 0: sparse (set)
//! 6   0u8 x 2
//! 8   n      u32
//! 12  present u32 (p)
//! 16  p u32 point indices, strictly ascending, each < n
//! ..  items only: the dictionaries as above; p u16 dictionary indices
//!     (padded to a multiple of 4); p+1 u32 offsets into the data area
//! ..  data   items: concatenated msgpack; typed: p elements, index order
//! end-8 checksum
//! ```
//!
//! Presence is a binary search in the index list; dense records written
//! before the sparse form existed read as before.
//!
//! A dictionary is opaque here: the TS layer packs the points of one write
//! with msgpack record structures and stores the structure list once per
//! record instead of repeating keys in every point; an empty dictionary
//! means plain msgpack. Points merged from several writes keep their own
//! dictionary, so merging never re-encodes.

use crate::canonical::DType;
use crate::error::{CoreError, Result};
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: &[u8; 4] = b"CMR1";
pub const MAGIC_SPARSE: &[u8; 4] = b"CMR2";
const FLAG_SPARSE: u8 = 1;
pub const KIND_ITEMS: u8 = 0;
const HEADER: usize = 16;

/// Element width of a record kind, `None` for items.
pub fn kind_width(kind: u8) -> Result<Option<usize>> {
    if kind == KIND_ITEMS {
        return Ok(None);
    }
    DType::from_u8(kind)
        .map(|d| Some(d.size()))
        .ok_or_else(|| CoreError::invalid(format!("unknown output kind {kind}")))
}

fn bitmap_len(n: usize) -> usize {
    n.div_ceil(8).div_ceil(4) * 4
}

/// A parsed, borrowed record.
#[derive(Debug, Clone)]
pub struct RecordView<'a> {
    pub kind: u8,
    pub n: usize,
    pub present: usize,
    /// Dense: the presence bitmap. Sparse: empty.
    bitmap: &'a [u8],
    /// Sparse: the present point indices (u32 LE, ascending). Dense: None.
    indices: Option<&'a [u8]>,
    dicts: Vec<&'a [u8]>,
    point_dicts: &'a [u8],
    offsets: Option<&'a [u8]>,
    data: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Parses and verifies a record (structure and checksum).
    pub fn parse(bytes: &'a [u8]) -> Result<RecordView<'a>> {
        if bytes.len() < 8 {
            return Err(CoreError::corrupt("record shorter than its checksum"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if xxh3_64(body).to_le_bytes() != sum {
            return Err(CoreError::corrupt("record checksum mismatch"));
        }
        Self::parse_unchecked(body)
    }

    /// Parses the structure without hashing the body (for presence checks on
    /// a hot path; data reads always go through [`RecordView::parse`]).
    pub fn parse_header(bytes: &'a [u8]) -> Result<RecordView<'a>> {
        if bytes.len() < 8 {
            return Err(CoreError::corrupt("record shorter than its checksum"));
        }
        Self::parse_unchecked(&bytes[..bytes.len() - 8])
    }

    fn parse_unchecked(body: &'a [u8]) -> Result<RecordView<'a>> {
        if body.len() < HEADER {
            return Err(CoreError::corrupt("bad record header"));
        }
        let sparse = match &body[..4] {
            m if m == MAGIC => false,
            m if m == MAGIC_SPARSE && body[5] == FLAG_SPARSE => true,
            _ => return Err(CoreError::corrupt("bad record header")),
        };
        let kind = body[4];
        let n = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
        let present = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
        // Slots: the points that have a dictionary index, an offset, an
        // element (every point when dense, the present ones when sparse).
        let slots = if sparse { present } else { n };
        if present > n {
            return Err(CoreError::corrupt("more points present than the record holds"));
        }
        let mut pos = HEADER;
        let (bitmap, indices): (&[u8], Option<&[u8]>) = if sparse {
            let il = present.checked_mul(4).ok_or_else(|| CoreError::corrupt("truncated point indices"))?;
            let idx = body.get(pos..pos + il).ok_or_else(|| CoreError::corrupt("truncated point indices"))?;
            pos += il;
            let mut last: Option<u32> = None;
            for c in idx.chunks_exact(4) {
                let i = u32::from_le_bytes(c.try_into().unwrap());
                if i as usize >= n || last.is_some_and(|l| l >= i) {
                    return Err(CoreError::corrupt("point indices out of order or out of range"));
                }
                last = Some(i);
            }
            (&[], Some(idx))
        } else {
            let bl = bitmap_len(n);
            let b = body.get(pos..pos + bl).ok_or_else(|| CoreError::corrupt("truncated bitmap"))?;
            pos += bl;
            (b, None)
        };
        let width = kind_width(kind).map_err(|_| CoreError::corrupt(format!("unknown kind {kind}")))?;
        let mut dicts = Vec::new();
        let mut point_dicts: &[u8] = &[];
        if width.is_none() {
            let count = body.get(pos..pos + 4).ok_or_else(|| CoreError::corrupt("truncated dictionaries"))?;
            let count = u32::from_le_bytes(count.try_into().unwrap()) as usize;
            pos += 4;
            for _ in 0..count {
                let l = body.get(pos..pos + 4).ok_or_else(|| CoreError::corrupt("truncated dictionary"))?;
                let l = u32::from_le_bytes(l.try_into().unwrap()) as usize;
                pos += 4;
                dicts.push(body.get(pos..pos + l).ok_or_else(|| CoreError::corrupt("truncated dictionary"))?);
                pos += l;
            }
            pos = pos.div_ceil(4) * 4;
            let pl = (slots * 2).div_ceil(4) * 4;
            point_dicts = body.get(pos..pos + pl).ok_or_else(|| CoreError::corrupt("truncated dictionary indices"))?;
            pos += pl;
        }
        let (offsets, data) = match width {
            None => {
                let ol = (slots + 1) * 4;
                let offsets = body.get(pos..pos + ol).ok_or_else(|| CoreError::corrupt("truncated offsets"))?;
                let data = &body[pos + ol..];
                let at = |k: usize| u32::from_le_bytes(offsets[k * 4..k * 4 + 4].try_into().unwrap()) as usize;
                if at(slots) != data.len() {
                    return Err(CoreError::corrupt("offsets do not match the data size"));
                }
                if sparse && (0..slots).any(|k| at(k) > at(k + 1)) {
                    return Err(CoreError::corrupt("offsets decrease"));
                }
                (Some(offsets), data)
            }
            Some(w) => {
                let data = &body[pos..];
                if data.len() != slots * w {
                    return Err(CoreError::corrupt("typed data size does not match the point count"));
                }
                (None, data)
            }
        };
        let v = RecordView { kind, n, present, bitmap, indices, dicts, point_dicts, offsets, data };
        if v.offsets.is_some() {
            let bad = match v.indices {
                Some(_) => (0..slots).any(|k| v.slot_dict(k) as usize >= v.dicts.len()),
                None => (0..n).any(|i| v.is_present(i) && v.slot_dict(i) as usize >= v.dicts.len()),
            };
            if bad {
                return Err(CoreError::corrupt("point names a missing dictionary"));
            }
        }
        Ok(v)
    }

    /// Whether the record is in the sparse form.
    pub fn is_sparse(&self) -> bool {
        self.indices.is_some()
    }

    fn index_at(&self, k: usize) -> u32 {
        let idx = self.indices.unwrap();
        u32::from_le_bytes(idx[k * 4..k * 4 + 4].try_into().unwrap())
    }

    /// The slot of point `i` (its position among the stored slots), if
    /// present.
    #[inline]
    fn slot(&self, i: usize) -> Option<usize> {
        match self.indices {
            None => (i < self.n && self.bitmap[i >> 3] & (1 << (i & 7)) != 0).then_some(i),
            Some(_) => {
                let (mut lo, mut hi) = (0usize, self.present);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match (self.index_at(mid) as usize).cmp(&i) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return Some(mid),
                    }
                }
                None
            }
        }
    }

    /// The present points, ascending (cost: the points present when sparse,
    /// the chunk's size when dense).
    pub fn present_points(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match self.indices {
            Some(_) => Box::new((0..self.present).map(move |k| self.index_at(k) as usize)),
            None => Box::new((0..self.n).filter(move |&i| self.bitmap[i >> 3] & (1 << (i & 7)) != 0)),
        }
    }

    #[inline]
    pub fn is_present(&self, i: usize) -> bool {
        self.slot(i).is_some()
    }

    fn offset(&self, k: usize) -> usize {
        let o = self.offsets.unwrap();
        u32::from_le_bytes(o[k * 4..k * 4 + 4].try_into().unwrap()) as usize
    }

    fn slot_bytes(&self, k: usize) -> &'a [u8] {
        match self.offsets {
            Some(_) => &self.data[self.offset(k)..self.offset(k + 1)],
            None => {
                let slots = if self.indices.is_some() { self.present } else { self.n };
                let w = self.data.len() / slots.max(1);
                &self.data[k * w..(k + 1) * w]
            }
        }
    }

    fn slot_dict(&self, k: usize) -> u16 {
        u16::from_le_bytes(self.point_dicts[k * 2..k * 2 + 2].try_into().unwrap())
    }

    /// Bytes of point `i` (msgpack for items, one element for typed); empty
    /// for an absent point of a sparse record.
    pub fn point(&self, i: usize) -> &'a [u8] {
        match (self.indices, self.slot(i)) {
            (None, _) => self.slot_bytes(i),
            (Some(_), Some(k)) => self.slot_bytes(k),
            (Some(_), None) => &[],
        }
    }

    /// Index of the dictionary point `i` was packed with (items only).
    pub fn dict_index(&self, i: usize) -> u16 {
        match (self.indices, self.slot(i)) {
            (None, _) => self.slot_dict(i),
            (Some(_), Some(k)) => self.slot_dict(k),
            (Some(_), None) => 0,
        }
    }

    /// Dictionaries of the record (items only).
    pub fn dicts(&self) -> &[&'a [u8]] {
        &self.dicts
    }

    /// Dictionary of point `i` (empty for typed records and plain msgpack).
    pub fn point_dict(&self, i: usize) -> &'a [u8] {
        if self.offsets.is_none() {
            return &[];
        }
        self.dicts.get(self.dict_index(i) as usize).copied().unwrap_or(&[])
    }

    /// The whole data area (typed records: the raw array when dense, the
    /// present elements in index order when sparse).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn is_complete(&self) -> bool {
        self.present == self.n
    }
}

/// Builds a record point by point. Points may be set in any order; unset
/// points are absent. Memory and time follow the points set (plus a bitset
/// of the chunk's size, zero pages until touched).
pub struct RecordBuilder {
    kind: u8,
    width: Option<usize>,
    n: usize,
    seen: Vec<u64>,
    slots: Vec<Slot>,
    arena: Vec<u8>,
    dicts: Vec<Vec<u8>>,
}

#[derive(Clone, Copy)]
struct Slot {
    i: u32,
    start: u32,
    len: u32,
    dict: u16,
}

fn pad4(x: usize) -> usize {
    x.div_ceil(4) * 4
}

impl RecordBuilder {
    pub fn new(kind: u8, n: usize) -> Result<RecordBuilder> {
        let width = kind_width(kind)?;
        if n > u32::MAX as usize {
            return Err(CoreError::invalid(format!("a record of {n} points is over 2^32")));
        }
        Ok(RecordBuilder {
            kind,
            width,
            n,
            seen: vec![0u64; n.div_ceil(64)],
            slots: Vec::new(),
            arena: Vec::new(),
            dicts: Vec::new(),
        })
    }

    /// Starts from an existing record (same kind and size required).
    pub fn from_view(v: &RecordView<'_>) -> Result<RecordBuilder> {
        let mut b = RecordBuilder::new(v.kind, v.n)?;
        b.slots.reserve(v.present);
        for i in v.present_points() {
            b.set_in(i, v.point(i), v.point_dict(i))?;
        }
        Ok(b)
    }

    pub fn kind(&self) -> u8 {
        self.kind
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn is_set(&self, i: usize) -> bool {
        i < self.n && self.seen[i >> 6] & (1 << (i & 63)) != 0
    }

    pub fn present(&self) -> usize {
        self.slots.len()
    }

    /// Sets point `i` (plain msgpack for items). A point already present
    /// keeps its first value: stored outputs are never overwritten.
    pub fn set(&mut self, i: usize, bytes: &[u8]) -> Result<()> {
        self.set_in(i, bytes, &[])
    }

    /// Sets point `i`, packed with dictionary `dict` (items only; ignored for
    /// typed records).
    pub fn set_in(&mut self, i: usize, bytes: &[u8], dict: &[u8]) -> Result<()> {
        if i >= self.n {
            return Err(CoreError::invalid(format!("point {i} out of range for a record of {} points", self.n)));
        }
        if self.is_set(i) {
            return Ok(());
        }
        let d = match self.width {
            None => match self.dicts.iter().position(|x| x == dict) {
                Some(d) => d,
                None => {
                    if self.dicts.len() >= u16::MAX as usize {
                        return Err(CoreError::invalid("too many dictionaries in one record"));
                    }
                    self.dicts.push(dict.to_vec());
                    self.dicts.len() - 1
                }
            },
            Some(w) => {
                if bytes.len() != w {
                    return Err(CoreError::invalid(format!("typed point of {} bytes, expected {w}", bytes.len())));
                }
                0
            }
        };
        if self.arena.len() + bytes.len() > u32::MAX as usize {
            return Err(CoreError::invalid("a record's data would exceed 4 GiB"));
        }
        self.slots.push(Slot { i: i as u32, start: self.arena.len() as u32, len: bytes.len() as u32, dict: d as u16 });
        self.arena.extend_from_slice(bytes);
        self.seen[i >> 6] |= 1 << (i & 63);
        Ok(())
    }

    /// Serializes the record with its checksum, in the smaller of the dense
    /// and the sparse form (always dense when complete).
    pub fn finish(&self) -> Vec<u8> {
        let mut order: Vec<Slot> = self.slots.clone();
        if !order.is_sorted_by_key(|s| s.i) {
            order.sort_unstable_by_key(|s| s.i);
        }
        let p = order.len();
        let n = self.n;
        // Only dictionaries that a present point uses are kept.
        let mut remap = vec![u16::MAX; self.dicts.len()];
        let mut kept: Vec<&Vec<u8>> = Vec::new();
        if self.width.is_none() {
            for s in &order {
                if remap[s.dict as usize] == u16::MAX {
                    remap[s.dict as usize] = kept.len() as u16;
                    kept.push(&self.dicts[s.dict as usize]);
                }
            }
        }
        let dict_bytes = pad4(4 + kept.iter().map(|d| 4 + d.len()).sum::<usize>());
        let data_len: usize = order.iter().map(|s| s.len as usize).sum();
        let size = |slots: usize, head: usize| {
            HEADER
                + head
                + match self.width {
                    None => dict_bytes + pad4(slots * 2) + (slots + 1) * 4 + data_len,
                    Some(w) => slots * w,
                }
                + 8
        };
        let dense_size = size(n, bitmap_len(n));
        let sparse_size = size(p, p * 4);
        let sparse = p < n && sparse_size < dense_size;
        let mut out = Vec::with_capacity(if sparse { sparse_size } else { dense_size });
        out.extend_from_slice(if sparse { MAGIC_SPARSE } else { MAGIC });
        out.extend_from_slice(&[self.kind, if sparse { FLAG_SPARSE } else { 0 }, 0, 0]);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&(p as u32).to_le_bytes());
        if sparse {
            for s in &order {
                out.extend_from_slice(&s.i.to_le_bytes());
            }
        } else {
            let at = out.len();
            out.resize(at + bitmap_len(n), 0);
            for s in &order {
                out[at + (s.i as usize >> 3)] |= 1 << (s.i & 7);
            }
        }
        let bytes_of = |s: &Slot| &self.arena[s.start as usize..(s.start + s.len) as usize];
        match self.width {
            None => {
                out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
                for d in &kept {
                    out.extend_from_slice(&(d.len() as u32).to_le_bytes());
                    out.extend_from_slice(d);
                }
                while out.len() % 4 != 0 {
                    out.push(0);
                }
                if sparse {
                    for s in &order {
                        out.extend_from_slice(&remap[s.dict as usize].to_le_bytes());
                    }
                } else {
                    let at = out.len();
                    out.resize(at + n * 2, 0);
                    for s in &order {
                        let k = at + s.i as usize * 2;
                        out[k..k + 2].copy_from_slice(&remap[s.dict as usize].to_le_bytes());
                    }
                }
                while out.len() % 4 != 0 {
                    out.push(0);
                }
                let mut off = 0u32;
                out.extend_from_slice(&off.to_le_bytes());
                if sparse {
                    for s in &order {
                        off += s.len;
                        out.extend_from_slice(&off.to_le_bytes());
                    }
                } else {
                    let mut it = order.iter().peekable();
                    for i in 0..n as u32 {
                        if let Some(s) = it.next_if(|s| s.i == i) {
                            off += s.len;
                        }
                        out.extend_from_slice(&off.to_le_bytes());
                    }
                }
                for s in &order {
                    out.extend_from_slice(bytes_of(s));
                }
            }
            Some(w) => {
                if sparse {
                    for s in &order {
                        out.extend_from_slice(bytes_of(s));
                    }
                } else {
                    let at = out.len();
                    out.resize(at + n * w, 0);
                    for s in &order {
                        let k = at + s.i as usize * w;
                        out[k..k + w].copy_from_slice(bytes_of(s));
                    }
                }
            }
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_partial() {
        let mut b = RecordBuilder::new(KIND_ITEMS, 5).unwrap();
        b.set(0, b"a").unwrap();
        b.set(3, b"dddd").unwrap();
        let bytes = b.finish();
        let v = RecordView::parse(&bytes).unwrap();
        assert_eq!(v.present, 2);
        assert!(v.is_present(0) && !v.is_present(1) && v.is_present(3));
        assert_eq!(v.point(3), b"dddd");
        assert_eq!(v.point(1), b"");
    }

    #[test]
    fn typed_round_trip() {
        let mut b = RecordBuilder::new(DType::F64 as u8, 3).unwrap();
        for i in 0..3 {
            b.set(i, &(i as f64 * 1.5).to_le_bytes()).unwrap();
        }
        let bytes = b.finish();
        let v = RecordView::parse(&bytes).unwrap();
        assert!(v.is_complete());
        assert_eq!(v.point(2), 3.0f64.to_le_bytes());
        assert!(b.set(0, &[0u8; 4]).is_ok(), "present points are kept, not rewritten");
    }

    #[test]
    fn dictionaries_are_kept_per_point_and_deduplicated() {
        let mut b = RecordBuilder::new(KIND_ITEMS, 4).unwrap();
        b.set_in(0, b"p0", b"dictA").unwrap();
        b.set_in(1, b"p1", b"dictB").unwrap();
        b.set_in(2, b"p2", b"dictA").unwrap();
        b.set(3, b"plain").unwrap();
        let bytes = b.finish();
        let v = RecordView::parse(&bytes).unwrap();
        assert_eq!(v.dicts().len(), 3);
        assert_eq!(v.point_dict(0), b"dictA");
        assert_eq!(v.point_dict(1), b"dictB");
        assert_eq!(v.point_dict(2), b"dictA");
        assert_eq!(v.point_dict(3), b"");
        // Rebuilding from the view keeps each point's dictionary.
        let again = RecordBuilder::from_view(&v).unwrap().finish();
        assert_eq!(again, bytes);
        // A dictionary no present point uses is dropped.
        let mut c = RecordBuilder::new(KIND_ITEMS, 2).unwrap();
        c.set_in(1, b"x", b"only").unwrap();
        let v = RecordView::parse(&c.finish()).unwrap().dicts().len();
        assert_eq!(v, 1);
    }

    #[test]
    fn corruption_detected() {
        let mut b = RecordBuilder::new(KIND_ITEMS, 2).unwrap();
        b.set(1, b"xyz").unwrap();
        let mut bytes = b.finish();
        let k = bytes.len() - 10;
        bytes[k] ^= 0x40;
        assert!(RecordView::parse(&bytes).is_err());
        assert!(RecordView::parse(&bytes[..5]).is_err());
    }

    /// A tiny deterministic generator (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[test]
    fn random_writes_and_reads_match_a_reference_map() {
        use std::collections::BTreeMap;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let kind = if round % 2 == 0 { KIND_ITEMS } else { DType::F32 as u8 };
            let n = [1usize, 7, 64, 1000, 5000][rng.below(5) as usize];
            // Densities from a few points to complete records.
            let writes = [1usize, 3, 10, n / 2, n * 3][rng.below(5) as usize].max(1);
            let mut reference: BTreeMap<usize, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
            let mut bytes = RecordBuilder::new(kind, n).unwrap().finish();
            // Several updates, each a rebuild from the stored record as the
            // store does.
            for _ in 0..1 + rng.below(4) {
                let v = RecordView::parse(&bytes).unwrap();
                let mut b = RecordBuilder::from_view(&v).unwrap();
                for _ in 0..writes / 2 + 1 {
                    let i = rng.below(n as u64) as usize;
                    let (val, dict) = if kind == KIND_ITEMS {
                        let len = rng.below(6) as usize;
                        let val: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                        let dict = [b"".to_vec(), b"d1".to_vec(), b"d2".to_vec()][rng.below(3) as usize].clone();
                        (val, dict)
                    } else {
                        ((rng.next() as u32).to_le_bytes().to_vec(), Vec::new())
                    };
                    b.set_in(i, &val, &dict).unwrap();
                    reference.entry(i).or_insert((val, dict));
                }
                bytes = b.finish();
            }
            let v = RecordView::parse(&bytes).unwrap();
            assert_eq!(v.n, n);
            assert_eq!(v.present, reference.len());
            assert_eq!(v.is_complete(), reference.len() == n);
            if v.is_complete() {
                assert!(!v.is_sparse(), "complete records are dense");
            }
            if reference.len() * 10 < n {
                assert!(v.is_sparse(), "a record with few points is sparse (n {n}, {})", reference.len());
            }
            for i in 0..n {
                match reference.get(&i) {
                    Some((val, dict)) => {
                        assert!(v.is_present(i));
                        assert_eq!(v.point(i), val.as_slice());
                        assert_eq!(v.point_dict(i), dict.as_slice());
                    }
                    None => assert!(!v.is_present(i)),
                }
            }
            assert_eq!(v.present_points().collect::<Vec<_>>(), reference.keys().copied().collect::<Vec<_>>());
            // Rebuilding gives the same bytes; any flipped byte is caught.
            assert_eq!(RecordBuilder::from_view(&v).unwrap().finish(), bytes);
            let mut bad = bytes.clone();
            let k = rng.below(bad.len() as u64) as usize;
            bad[k] ^= 1 << rng.below(8);
            assert!(RecordView::parse(&bad).is_err());
        }
    }

    #[test]
    fn a_sparse_record_costs_its_points_not_its_chunk() {
        // 10,000 x 10,000 points, 6 present.
        let n = 100_000_000;
        let mut b = RecordBuilder::new(DType::F64 as u8, n).unwrap();
        for (k, i) in [5usize, 99, 123_456, 50_000_000, 77_777_777, n - 1].into_iter().enumerate() {
            b.set(i, &(k as f64).to_le_bytes()).unwrap();
        }
        let bytes = b.finish();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let v = RecordView::parse(&bytes).unwrap();
        assert!(v.is_sparse() && v.present == 6 && v.is_present(77_777_777) && !v.is_present(77_777_778));
        assert_eq!(v.point(n - 1), 5f64.to_le_bytes());
        let mut items = RecordBuilder::new(KIND_ITEMS, n).unwrap();
        items.set_in(42, b"\x93\x01\x02\x03", b"dict").unwrap();
        let bytes = items.finish();
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
        assert_eq!(RecordView::parse(&bytes).unwrap().point_dict(42), b"dict");
    }

    #[test]
    fn records_of_the_first_format_are_read() {
        // A CMR1 items record of 3 points written by the first writer:
        // point 1 = "ab" packed with dictionary "D".
        let mut old = Vec::new();
        old.extend_from_slice(b"CMR1");
        old.extend_from_slice(&[KIND_ITEMS, 0, 0, 0]);
        old.extend_from_slice(&3u32.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&[0b010, 0, 0, 0]); // bitmap
        old.extend_from_slice(&1u32.to_le_bytes()); // one dictionary
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(b"D\0\0\0"); // "D", padded
        old.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // 3 u16 + pad
        for o in [0u32, 0, 2, 2] {
            old.extend_from_slice(&o.to_le_bytes());
        }
        old.extend_from_slice(b"ab");
        let sum = xxh3_64(&old);
        old.extend_from_slice(&sum.to_le_bytes());
        let v = RecordView::parse(&old).unwrap();
        assert!(!v.is_sparse());
        assert_eq!((v.present, v.point(1), v.point_dict(1)), (1, &b"ab"[..], &b"D"[..]));
        assert!(!v.is_present(0) && !v.is_present(2));
    }
}
