//! Reading a record: parse and verify either form, then read points in place.

use super::{bitmap_len, kind_width, FLAG_SPARSE, HEADER, MAGIC, MAGIC_SPARSE, STRETCH};
use crate::checksum::{checksum, Checksum};
use crate::error::{CoreError, Result};

/// A record's head (see [`RecordView::parse_head`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    pub kind: u8,
    pub n: usize,
    pub present: usize,
    pub sparse: bool,
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
        Self::parse_unchecked(checked_body(bytes)?)
    }

    /// The record's head alone (kind, point counts, form), without its
    /// tables or checksum: constant time, for a resolution that leaves the
    /// rest to the read that follows ([`RecordView::parse_header`] then
    /// checks the structure and [`RecordView::verify_taking_data`] the
    /// checksum).
    pub fn parse_head(bytes: &[u8]) -> Result<RecordHead> {
        if bytes.len() < 8 {
            return Err(CoreError::corrupt("record shorter than its checksum"));
        }
        Self::head_of(&bytes[..bytes.len() - 8])
    }

    /// The head of a record's body (without its checksum): magic, form,
    /// kind and point counts checked.
    fn head_of(body: &[u8]) -> Result<RecordHead> {
        if body.len() < HEADER {
            return Err(CoreError::corrupt("bad record header"));
        }
        let sparse = match &body[..4] {
            m if m == MAGIC => false,
            m if m == MAGIC_SPARSE && body[5] == FLAG_SPARSE => true,
            _ => return Err(CoreError::corrupt("bad record header")),
        };
        let kind = body[4];
        kind_width(kind).map_err(|_| CoreError::corrupt(format!("unknown kind {kind}")))?;
        let n = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
        let present = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
        if present > n {
            return Err(CoreError::corrupt("more points present than the record holds"));
        }
        Ok(RecordHead { kind, n, present, sparse })
    }

    /// Parses the structure without hashing the body (for presence checks on
    /// a hot path; data reads always go through [`RecordView::parse`]).
    pub fn parse_header(bytes: &'a [u8]) -> Result<RecordView<'a>> {
        if bytes.len() < 8 {
            return Err(CoreError::corrupt("record shorter than its checksum"));
        }
        Self::parse_unchecked(&bytes[..bytes.len() - 8])
    }

    /// Checks a record (structure and checksum) as [`RecordView::parse`]
    /// does, and returns its head: keeps nothing, so allocates nothing (a
    /// resolution checks a million one-point records this way).
    pub fn verify_head(bytes: &[u8]) -> Result<RecordHead> {
        RecordView::parse_body(checked_body(bytes)?, &mut DictCount(0)).map(|v| v.head())
    }

    fn parse_unchecked(body: &'a [u8]) -> Result<RecordView<'a>> {
        let mut dicts = Vec::new();
        let v = Self::parse_body(body, &mut dicts)?;
        Ok(RecordView { dicts, ..v })
    }

    /// Parses and checks a record's body, handing its dictionaries to
    /// `dicts` (the view returned has none).
    fn parse_body(body: &'a [u8], dicts: &mut impl Dicts<'a>) -> Result<RecordView<'a>> {
        let RecordHead { kind, n, present, sparse } = Self::head_of(body)?;
        // Slots: the points that have a dictionary index, an offset, an
        // element (every point when dense, the present ones when sparse).
        let slots = if sparse { present } else { n };
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
        let width = kind_width(kind)?;
        let mut point_dicts: &[u8] = &[];
        if width.is_none() {
            let count = body.get(pos..pos + 4).ok_or_else(|| CoreError::corrupt("truncated dictionaries"))?;
            let count = u32::from_le_bytes(count.try_into().unwrap()) as usize;
            pos += 4;
            for _ in 0..count {
                let l = body.get(pos..pos + 4).ok_or_else(|| CoreError::corrupt("truncated dictionary"))?;
                let l = u32::from_le_bytes(l.try_into().unwrap()) as usize;
                pos += 4;
                dicts.add(body.get(pos..pos + l).ok_or_else(|| CoreError::corrupt("truncated dictionary"))?);
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
                // Each offset against the next, branch-free and without a
                // carried value (records are parsed on every read; this
                // compiles to vector compares).
                if offsets_decrease(offsets) {
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
        let v = RecordView { kind, n, present, bitmap, indices, dicts: Vec::new(), point_dicts, offsets, data };
        if v.offsets.is_some() {
            // Every stored point names one of the dictionaries: the largest
            // raw index first (a vector max), presence looked up only when
            // some index is out of range.
            let ndicts = dicts.count();
            let raw = &v.point_dicts[..slots * 2];
            if (max_u16(raw) as usize) < ndicts {
                return Ok(v);
            }
            let mut out_of_range = raw
                .chunks_exact(2)
                .enumerate()
                .filter(|(_, d)| u16::from_le_bytes([d[0], d[1]]) as usize >= ndicts)
                .map(|(k, _)| k);
            let bad = match v.indices {
                Some(_) => out_of_range.next().is_some(),
                None => out_of_range.any(|i| v.is_present(i)),
            };
            if bad {
                return Err(CoreError::corrupt("point names a missing dictionary"));
            }
        }
        Ok(v)
    }

    /// The record's head.
    pub fn head(&self) -> RecordHead {
        RecordHead { kind: self.kind, n: self.n, present: self.present, sparse: self.is_sparse() }
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

    /// Verifies the checksum of `bytes`, the record this view was parsed
    /// from with [`RecordView::parse_header`], handing `take` each stretch
    /// of the data (its offset in [`RecordView::data`] and its bytes) right
    /// after hashing it, while the stretch is still in cache: a caller that
    /// copies the data out reads the record once instead of twice. Returns
    /// false when the checksum does not match (or `bytes` is not this
    /// view's record); `take` has then been given bytes to discard.
    pub fn verify_taking_data(&self, bytes: &[u8], mut take: impl FnMut(usize, &[u8])) -> bool {
        let Some(body_len) = bytes.len().checked_sub(8) else { return false };
        let Some(head_len) = body_len.checked_sub(self.data.len()) else { return false };
        let mut h = Checksum::new();
        h.update(&bytes[..head_len]);
        for (k, stretch) in self.data.chunks(STRETCH).enumerate() {
            h.update(stretch);
            take(k * STRETCH, stretch);
        }
        // The data is the body's tail: hashing it from the view is hashing
        // the record only when the view was parsed from these very bytes.
        std::ptr::eq(self.data.as_ptr(), bytes[head_len..].as_ptr()) && h.digest().to_le_bytes() == bytes[body_len..]
    }

    /// Verifies the checksum of `bytes`, the record this view was parsed
    /// from with [`RecordView::parse_header`].
    pub fn verify(&self, bytes: &[u8]) -> bool {
        self.verify_taking_data(bytes, |_, _| {})
    }

    pub fn is_complete(&self) -> bool {
        self.present == self.n
    }

    /// Every point of a dense items record as tables (see [`DenseItems`]);
    /// `None` for typed and sparse records. Parsing checked the tables:
    /// offsets that never decrease up to the data's end, and a dictionary
    /// for every present point.
    pub fn dense_items(&self) -> Option<DenseItems<'a>> {
        let (Some(o), None) = (self.offsets, self.indices) else { return None };
        Some(DenseItems {
            data: self.data,
            offsets: o[..(self.n + 1) * 4]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            point_dicts: self.point_dicts[..self.n * 2]
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect(),
            dicts: self.dicts.clone(),
        })
    }
}

/// A record's body (all but its checksum), once its checksum matches.
fn checked_body(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() < 8 {
        return Err(CoreError::corrupt("record shorter than its checksum"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if checksum(body).to_le_bytes() != sum {
        return Err(CoreError::corrupt("record checksum mismatch"));
    }
    Ok(body)
}

/// Where [`RecordView::parse_body`] hands a record's dictionaries.
trait Dicts<'a> {
    fn add(&mut self, dict: &'a [u8]);
    fn count(&self) -> usize;
}

/// Keeps them (a view that reads points).
impl<'a> Dicts<'a> for Vec<&'a [u8]> {
    fn add(&mut self, dict: &'a [u8]) {
        self.push(dict);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// Counts them (a check that keeps nothing).
struct DictCount(usize);

impl Dicts<'_> for DictCount {
    fn add(&mut self, _: &[u8]) {
        self.0 += 1;
    }
    fn count(&self) -> usize {
        self.0
    }
}

/// Every point of a dense items record, in record order: point `i` is
/// `data[offsets[i]..offsets[i + 1]]` (n+1 offsets), packed with dictionary
/// `dicts[point_dicts[i]]`.
pub struct DenseItems<'a> {
    pub data: &'a [u8],
    pub offsets: Vec<u32>,
    pub point_dicts: Vec<u16>,
    pub dicts: Vec<&'a [u8]>,
}

/// Whether some little-endian u32 of `offsets` is smaller than the one
/// before it.
pub(super) fn offsets_decrease(offsets: &[u8]) -> bool {
    let words = offsets.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let next = words.clone().skip(1);
    words.zip(next).fold(false, |d, (a, b)| d | (b < a))
}

/// The largest little-endian u16 of `raw` (0 when empty).
pub(super) fn max_u16(raw: &[u8]) -> u16 {
    raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).fold(0, u16::max)
}
