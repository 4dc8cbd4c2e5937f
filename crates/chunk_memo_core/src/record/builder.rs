//! Building a record point by point; [`RecordBuilder::finish`] writes the
//! smaller of the dense and the sparse form.

use super::{bitmap_len, kind_width, RecordView, FLAG_SPARSE, HEADER, KIND_ITEMS, MAGIC, MAGIC_SPARSE, STRETCH};
use crate::checksum::{checksum, Checksum};
use crate::error::{CoreError, Result};

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

    /// The dense complete record of a typed `kind` whose `n` points are
    /// `data` (raw little-endian elements in record order): what a builder
    /// with every point set would finish to, in one pass over the data.
    pub fn dense_typed(kind: u8, n: usize, data: &[u8]) -> Result<Vec<u8>> {
        let head = Self::dense_typed_head(kind, n, data)?;
        let mut out = Vec::with_capacity(head.len() + data.len() + 8);
        Self::write_dense_typed(&mut out, &head, data).expect("writing to a Vec does not fail");
        Ok(out)
    }

    /// Writes the dense typed record of `head` ([`RecordBuilder::dense_typed_head`])
    /// and `data` to `w` (a `Vec`, or the store's page: no record-sized
    /// copy): head, data, checksum. Each stretch of the data is hashed right
    /// after it is written, while it is in cache: one pass over the data.
    pub fn write_dense_typed(w: &mut impl std::io::Write, head: &[u8], data: &[u8]) -> std::io::Result<()> {
        let mut h = Checksum::new();
        h.update(head);
        w.write_all(head)?;
        for stretch in data.chunks(STRETCH) {
            w.write_all(stretch)?;
            h.update(stretch);
        }
        w.write_all(&h.digest().to_le_bytes())
    }

    /// The head of [`RecordBuilder::dense_typed`], after checking that
    /// `data` holds `n` elements of `kind`.
    pub fn dense_typed_head(kind: u8, n: usize, data: &[u8]) -> Result<Vec<u8>> {
        let Some(w) = kind_width(kind)? else {
            return Err(CoreError::invalid("dense_typed needs a typed kind"));
        };
        if data.len() != n * w || n > u32::MAX as usize {
            return Err(CoreError::invalid(format!("typed data of {} bytes for {n} points of {w} bytes", data.len())));
        }
        Ok(dense_complete_head(kind, n, 0))
    }

    /// The dense complete items record of `n` points packed with one
    /// dictionary `dict`: point `i` is `data[offsets[i]..offsets[i + 1]]`.
    /// What a builder with every point set would finish to, in one pass.
    pub fn dense_items(n: usize, offsets: &[u32], data: &[u8], dict: &[u8]) -> Result<Vec<u8>> {
        if n == 0 || n > u32::MAX as usize || offsets.len() != n + 1 || offsets[n] as usize > data.len() {
            return Err(CoreError::invalid("dense_items: offsets do not match the points and data"));
        }
        let base = offsets[0];
        let body = &data[base as usize..offsets[n] as usize];
        if offsets.windows(2).any(|w| w[0] > w[1]) || u32::try_from(body.len()).is_err() {
            return Err(CoreError::invalid("dense_items: offsets must not decrease, data under 4 GiB"));
        }
        let dict_bytes = pad4(4 + 4 + dict.len());
        let mut out = dense_complete_head(KIND_ITEMS, n, dict_bytes + pad4(n * 2) + (n + 1) * 4 + body.len());
        // One dictionary, used by every point (index 0).
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        out.extend_from_slice(dict);
        out.resize(pad4(out.len()), 0);
        out.resize(out.len() + n * 2, 0);
        out.resize(pad4(out.len()), 0);
        for &o in offsets {
            out.extend_from_slice(&(o - base).to_le_bytes());
        }
        out.extend_from_slice(body);
        Ok(seal(out))
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
        seal(out)
    }
}

/// Header and full presence bitmap of a dense record of `n` points, all
/// present, with room for `body` more bytes and the checksum.
fn dense_complete_head(kind: u8, n: usize, body: usize) -> Vec<u8> {
    let bitmap = bitmap_len(n);
    let mut out = Vec::with_capacity(HEADER + bitmap + body + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    let at = out.len();
    out.resize(at + bitmap, 0);
    out[at..at + n / 8].fill(0xff);
    if !n.is_multiple_of(8) {
        out[at + n / 8] = (1u8 << (n % 8)) - 1;
    }
    out
}

/// Appends the record checksum (xxh3 of everything before it).
pub(super) fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}
