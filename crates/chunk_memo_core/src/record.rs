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
//! A dictionary is opaque here: the TS layer packs the points of one write
//! with msgpack record structures and stores the structure list once per
//! record instead of repeating keys in every point; an empty dictionary
//! means plain msgpack. Points merged from several writes keep their own
//! dictionary, so merging never re-encodes.

use crate::canonical::DType;
use crate::error::{CoreError, Result};
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: &[u8; 4] = b"CMR1";
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
    bitmap: &'a [u8],
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
        if body.len() < HEADER || &body[..4] != MAGIC {
            return Err(CoreError::corrupt("bad record header"));
        }
        let kind = body[4];
        let n = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
        let present = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
        let bl = bitmap_len(n);
        let mut pos = HEADER;
        let bitmap = body.get(pos..pos + bl).ok_or_else(|| CoreError::corrupt("truncated bitmap"))?;
        pos += bl;
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
            let pl = (n * 2).div_ceil(4) * 4;
            point_dicts = body.get(pos..pos + pl).ok_or_else(|| CoreError::corrupt("truncated dictionary indices"))?;
            pos += pl;
        }
        let (offsets, data) = match width {
            None => {
                let ol = (n + 1) * 4;
                let offsets = body.get(pos..pos + ol).ok_or_else(|| CoreError::corrupt("truncated offsets"))?;
                let data = &body[pos + ol..];
                let last = u32::from_le_bytes(offsets[n * 4..].try_into().unwrap()) as usize;
                if last != data.len() {
                    return Err(CoreError::corrupt("offsets do not match the data size"));
                }
                (Some(offsets), data)
            }
            Some(w) => {
                let data = &body[pos..];
                if data.len() != n * w {
                    return Err(CoreError::corrupt("typed data size does not match the point count"));
                }
                (None, data)
            }
        };
        let v = RecordView { kind, n, present, bitmap, dicts, point_dicts, offsets, data };
        if v.offsets.is_some() {
            for i in 0..n {
                if v.is_present(i) && v.dict_index(i) as usize >= v.dicts.len() {
                    return Err(CoreError::corrupt("point names a missing dictionary"));
                }
            }
        }
        Ok(v)
    }

    #[inline]
    pub fn is_present(&self, i: usize) -> bool {
        self.bitmap[i >> 3] & (1 << (i & 7)) != 0
    }

    fn offset(&self, i: usize) -> usize {
        let o = self.offsets.unwrap();
        u32::from_le_bytes(o[i * 4..i * 4 + 4].try_into().unwrap()) as usize
    }

    /// Bytes of point `i` (msgpack for items, one element for typed).
    pub fn point(&self, i: usize) -> &'a [u8] {
        match self.offsets {
            Some(_) => &self.data[self.offset(i)..self.offset(i + 1)],
            None => {
                let w = self.data.len() / self.n.max(1);
                &self.data[i * w..(i + 1) * w]
            }
        }
    }

    /// Index of the dictionary point `i` was packed with (items only).
    pub fn dict_index(&self, i: usize) -> u16 {
        u16::from_le_bytes(self.point_dicts[i * 2..i * 2 + 2].try_into().unwrap())
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

    /// The whole data area (typed records: the raw array).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn is_complete(&self) -> bool {
        self.present == self.n
    }
}

/// Builds a record point by point. Points may be set in any order; unset
/// points are absent.
pub struct RecordBuilder {
    kind: u8,
    width: Option<usize>,
    n: usize,
    present: Vec<bool>,
    /// Items: (start, len) of each present point's bytes in `arena`.
    items: Vec<Option<(u32, u32)>>,
    arena: Vec<u8>,
    item_dicts: Vec<u16>,
    dicts: Vec<Vec<u8>>,
    typed: Vec<u8>,
}

impl RecordBuilder {
    pub fn new(kind: u8, n: usize) -> Result<RecordBuilder> {
        let width = kind_width(kind)?;
        Ok(RecordBuilder {
            kind,
            width,
            n,
            present: vec![false; n],
            items: if width.is_none() { vec![None; n] } else { Vec::new() },
            arena: Vec::new(),
            item_dicts: if width.is_none() { vec![0; n] } else { Vec::new() },
            dicts: Vec::new(),
            typed: width.map(|w| vec![0u8; n * w]).unwrap_or_default(),
        })
    }

    /// Starts from an existing record (same kind and size required).
    pub fn from_view(v: &RecordView<'_>) -> Result<RecordBuilder> {
        let mut b = RecordBuilder::new(v.kind, v.n)?;
        for i in 0..v.n {
            if v.is_present(i) {
                b.set_in(i, v.point(i), v.point_dict(i))?;
            }
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
        self.present[i]
    }

    pub fn present(&self) -> usize {
        self.present.iter().filter(|&&p| p).count()
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
        if self.present[i] {
            return Ok(());
        }
        match self.width {
            None => {
                let d = match self.dicts.iter().position(|x| x == dict) {
                    Some(d) => d,
                    None => {
                        if self.dicts.len() >= u16::MAX as usize {
                            return Err(CoreError::invalid("too many dictionaries in one record"));
                        }
                        self.dicts.push(dict.to_vec());
                        self.dicts.len() - 1
                    }
                };
                self.item_dicts[i] = d as u16;
                self.items[i] = Some((self.arena.len() as u32, bytes.len() as u32));
                self.arena.extend_from_slice(bytes);
            }
            Some(w) => {
                if bytes.len() != w {
                    return Err(CoreError::invalid(format!("typed point of {} bytes, expected {w}", bytes.len())));
                }
                self.typed[i * w..(i + 1) * w].copy_from_slice(bytes);
            }
        }
        self.present[i] = true;
        Ok(())
    }

    /// Serializes the record with its checksum.
    pub fn finish(&self) -> Vec<u8> {
        let bl = bitmap_len(self.n);
        let data_len = match self.width {
            None => self.items.iter().map(|x| x.map_or(0, |v| v.1 as usize)).sum::<usize>() + (self.n + 1) * 4,
            Some(w) => self.n * w,
        };
        let mut out = Vec::with_capacity(HEADER + bl + data_len + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[self.kind, 0, 0, 0]);
        out.extend_from_slice(&(self.n as u32).to_le_bytes());
        out.extend_from_slice(&(self.present() as u32).to_le_bytes());
        let mut bitmap = vec![0u8; bl];
        for (i, &p) in self.present.iter().enumerate() {
            if p {
                bitmap[i >> 3] |= 1 << (i & 7);
            }
        }
        out.extend_from_slice(&bitmap);
        if self.width.is_none() {
            // Only dictionaries that a present point uses are kept.
            let mut used = vec![false; self.dicts.len()];
            for (i, &p) in self.present.iter().enumerate() {
                if p {
                    used[self.item_dicts[i] as usize] = true;
                }
            }
            let mut remap = vec![0u16; self.dicts.len()];
            let mut kept: Vec<&Vec<u8>> = Vec::new();
            for (d, dict) in self.dicts.iter().enumerate() {
                if used[d] {
                    remap[d] = kept.len() as u16;
                    kept.push(dict);
                }
            }
            out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
            for d in kept {
                out.extend_from_slice(&(d.len() as u32).to_le_bytes());
                out.extend_from_slice(d);
            }
            while out.len() % 4 != 0 {
                out.push(0);
            }
            for (i, &p) in self.present.iter().enumerate() {
                let d = if p { remap[self.item_dicts[i] as usize] } else { 0 };
                out.extend_from_slice(&d.to_le_bytes());
            }
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        match self.width {
            None => {
                let mut off = 0u32;
                out.extend_from_slice(&off.to_le_bytes());
                for it in &self.items {
                    off += it.map_or(0, |v| v.1);
                    out.extend_from_slice(&off.to_le_bytes());
                }
                for &(start, len) in self.items.iter().flatten() {
                    out.extend_from_slice(&self.arena[start as usize..(start + len) as usize]);
                }
            }
            Some(_) => out.extend_from_slice(&self.typed),
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
}
