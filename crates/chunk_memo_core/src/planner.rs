//! Chunk planning: bins, memo chunks, grid order and selections.
//!
//! Grid order is the cartesian product over the axes in the grid's order,
//! first axis slowest. Each axis is cut into consecutive bins of its chunk
//! size (the last may be short); memo chunks are products of bins enumerated
//! in the same order. A selection keeps, per axis, a sorted list of indices;
//! the plan lists only the chunks it touches, so planning costs grow with the
//! chunks touched and the selected indices, not with the grid size.

use crate::canonical::DOMAIN;
use crate::error::{CoreError, Result};
use crate::hash_index::HashIndex;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

/// Axes a chunk key's bytes are laid out for on the stack (more take the incremental hasher).
const KEY_BUF_AXES: usize = 8;

/// One axis of a grid: its name, the hashes of its values (in order) and its
/// chunk size.
#[derive(Debug, Clone)]
pub struct Axis {
    pub name: String,
    pub hashes: Vec<u64>,
    pub chunk: usize,
}

/// A grid with its bins. Bin digests are computed once (bins of one value:
/// when needed) and combined into chunk keys.
#[derive(Debug, Clone)]
pub struct Grid {
    pub axes: Vec<Axis>,
    bin_digests: Vec<Vec<[u8; 32]>>,
    /// What chunk keys start with.
    prefix: KeyPrefix,
    /// Per axis: where its values lie, made when first asked.
    finders: Vec<Finders>,
}

/// Where an axis' values lie ([`Grid::bin_starting`],
/// [`Grid::value_index`]): each made when first asked, and shared by the
/// grid's clones.
#[derive(Debug, Clone, Default)]
struct Finders {
    starts: OnceLock<Arc<HashIndex>>,
    values: OnceLock<Arc<HashIndex>>,
}

/// Bytes of a chunk key's prefix ([`Grid::chunk_key`]): order keys, or the
/// digest's own bytes. The rest of the key is the digest's, whatever the
/// prefix.
const KEY_PREFIX: usize = 6;

/// The part of chunk key `key` that depends on the chunk's contents only:
/// keys of one chunk written with and without order keys share it.
pub fn key_digest(key: &[u8; 16]) -> [u8; 16 - KEY_PREFIX] {
    key[KEY_PREFIX..].try_into().expect("a chunk key is 16 bytes")
}

/// The first KEY_PREFIX bytes of chunk keys ([`Grid::chunk_key`]).
#[derive(Debug, Clone)]
enum KeyPrefix {
    /// The digest's own bytes (a grid without order keys).
    Digest,
    /// Per axis, the order key of each value.
    Order(Vec<Vec<u32>>),
    /// Given bytes: a grid of one stored record's layout, keyed like it.
    Fixed([u8; KEY_PREFIX]),
}

/// A bin of one axis touched by a selection, as [`AxisPlan::get`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinRef<'a> {
    /// Bin number along the axis.
    pub bin: u32,
    /// Global index of the bin's first value.
    pub start: u32,
    /// Number of values in the bin.
    pub len: u32,
    /// Selected offsets inside the bin (sorted).
    pub sel: &'a [u32],
    /// Position, in the axis' selection list, of the first selected offset.
    pub sel_pos: u32,
}

/// The bins one axis of a plan touches. A whole axis (every value selected)
/// stores nothing per bin: its bins follow from the axis length and chunk
/// size, so planning a million one-value bins costs no memory per bin.
#[derive(Debug, Clone)]
pub struct AxisPlan {
    /// Bins touched by a selection of some values (empty for a whole axis).
    bins: Vec<BinSel>,
    /// A whole axis: (values, chunk size).
    whole: Option<(u32, u32)>,
    /// 0, 1, ..., up to the chunk size: the selection of a whole axis' bins.
    iota: Vec<u32>,
}

impl AxisPlan {
    fn whole(len: u32, chunk: u32) -> AxisPlan {
        AxisPlan { bins: Vec::new(), whole: Some((len, chunk)), iota: (0..chunk.min(len)).collect() }
    }

    /// Number of bins touched.
    pub fn len(&self) -> usize {
        match self.whole {
            Some((n, c)) => n.div_ceil(c) as usize,
            None => self.bins.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For a whole axis (every value selected): its number of values and
    /// chunk size, from which its bins follow.
    pub fn whole_dims(&self) -> Option<(u32, u32)> {
        self.whole
    }

    /// Touched bin number `b` (0-based among the touched bins).
    pub fn get(&self, b: usize) -> BinRef<'_> {
        match self.whole {
            Some((n, c)) => {
                let start = b as u32 * c;
                let len = c.min(n - start);
                BinRef { bin: b as u32, start, len, sel: &self.iota[..len as usize], sel_pos: start }
            }
            None => {
                let x = &self.bins[b];
                BinRef { bin: x.bin, start: x.start, len: x.len, sel: &x.sel, sel_pos: x.sel_pos }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = BinRef<'_>> + '_ {
        (0..self.len()).map(|b| self.get(b))
    }

    pub fn last(&self) -> Option<BinRef<'_>> {
        self.len().checked_sub(1).map(|b| self.get(b))
    }
}

/// A bin touched by a selection of some values of an axis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BinSel {
    bin: u32,
    start: u32,
    len: u32,
    sel: Vec<u32>,
    sel_pos: u32,
}

/// The chunks a selection touches.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per axis, the bins touched (in order).
    pub axes: Vec<AxisPlan>,
    /// Per axis, the number of selected indices (the output grid's shape).
    pub shape: Vec<u32>,
    pub n_chunks: usize,
}

/// Hashes a value hash for a hash map: it is already uniform (the first
/// bytes of a digest), so one multiply spreads it; SipHash would cost more
/// than the whole duplicate check of a million values needs.
#[derive(Default)]
pub(crate) struct SpreadHasher(u64);

/// A hash map keyed by value hashes (see [`SpreadHasher`]).
pub(crate) type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<SpreadHasher>>;

impl Hasher for SpreadHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Grid {
    /// Builds a grid. Fails on a zero chunk size or on duplicate value
    /// hashes within an axis.
    pub fn new(axes: Vec<Axis>) -> Result<Grid> {
        let mut bin_digests = Vec::with_capacity(axes.len());
        for a in &axes {
            if a.chunk == 0 {
                return Err(CoreError::invalid(format!("chunk size of axis {:?} must be positive", a.name)));
            }
            let mut seen: HashKeyed<usize> = HashMap::with_capacity_and_hasher(a.hashes.len(), Default::default());
            for (i, h) in a.hashes.iter().enumerate() {
                if let Some(j) = seen.insert(*h, i) {
                    return Err(CoreError::new(
                        crate::error::ErrorCode::DuplicateAxisValue,
                        format!("axis {:?} has a duplicate value at indices {j} and {i}", a.name),
                    )
                    .with_detail(crate::error::ErrorDetail::DuplicateAxisValue {
                        axis: a.name.clone(),
                        first: j as u32,
                        second: i as u32,
                    }));
                }
            }
            // Bins of one value on a long axis are hashed when a key needs
            // them: a million of them would otherwise hold 32 MB of digests.
            // Up to ONE_VALUE_BINS_KEPT of them are kept (a 1,000 x 1,000
            // grid of one-point chunks then hashes once per key, not three
            // times).
            let digests = if a.chunk == 1 && a.hashes.len() > ONE_VALUE_BINS_KEPT {
                Vec::new()
            } else {
                a.hashes.chunks(a.chunk).map(|bin| bin_digest(&a.name, bin)).collect()
            };
            bin_digests.push(digests);
        }
        let finders = axes.iter().map(|_| Finders::default()).collect();
        Ok(Grid { axes, bin_digests, prefix: KeyPrefix::Digest, finders })
    }

    pub fn n_points(&self) -> u64 {
        self.axes.iter().map(|a| a.hashes.len() as u64).product()
    }

    pub fn n_bins(&self, axis: usize) -> usize {
        let a = &self.axes[axis];
        a.hashes.len().div_ceil(a.chunk)
    }

    /// Total memo chunks of the whole grid (1 for a grid without axes).
    pub fn n_chunks(&self) -> u64 {
        (0..self.axes.len()).map(|i| self.n_bins(i) as u64).product()
    }

    /// The digest of bin `bin` of axis `axis` (what chunk keys hash):
    /// computed once per bin when the grid was built, or now for a bin
    /// beyond those.
    fn bin_digest_of(&self, axis: usize, bin: u32) -> [u8; 32] {
        match self.bin_digests[axis].get(bin as usize) {
            Some(d) => *d,
            None => bin_digest(&self.axes[axis].name, self.bin_hashes(axis, bin)),
        }
    }

    /// The bin of axis `axis` whose first value has hash `h`, if any.
    pub(crate) fn bin_starting(&self, axis: usize, h: u64) -> Option<u32> {
        let a = &self.axes[axis];
        let index = self.finders[axis].starts.get_or_init(|| Arc::new(HashIndex::new(&a.hashes, a.chunk)));
        index.find(&a.hashes, h)
    }

    /// The index along axis `axis` of the value with hash `h`, if the axis
    /// holds it.
    pub(crate) fn value_index(&self, axis: usize, h: u64) -> Option<u32> {
        let a = &self.axes[axis];
        if a.chunk == 1 {
            return self.bin_starting(axis, h);
        }
        let index = self.finders[axis].values.get_or_init(|| Arc::new(HashIndex::new(&a.hashes, 1)));
        index.find(&a.hashes, h)
    }

    /// Value hashes of one bin.
    pub fn bin_hashes(&self, axis: usize, bin: u32) -> &[u64] {
        let a = &self.axes[axis];
        let s = bin as usize * a.chunk;
        let e = (s + a.chunk).min(a.hashes.len());
        &a.hashes[s..e]
    }

    /// Gives the grid the order keys of its values
    /// ([`crate::canonical::order_key`], one list per axis, each as long as
    /// the axis): chunk keys then start with the order of their first
    /// values, so chunks close in grid order are stored close together.
    pub fn with_order_keys(mut self, order: Vec<Vec<u32>>) -> Result<Grid> {
        if order.len() != self.axes.len() || order.iter().zip(&self.axes).any(|(o, a)| o.len() != a.hashes.len()) {
            return Err(CoreError::invalid("order keys must give one key per axis value"));
        }
        self.prefix = KeyPrefix::Order(order);
        Ok(self)
    }

    /// Makes every chunk key start with `key`'s prefix: for a grid
    /// of one record's own layout (its axes and values as stored), whose
    /// chunk key then equals the record's key when the record has that
    /// layout, whether it was written with or without order keys.
    pub fn with_key_prefix_of(mut self, key: &[u8; 16]) -> Grid {
        let mut p = [0u8; KEY_PREFIX];
        p.copy_from_slice(&key[..KEY_PREFIX]);
        self.prefix = KeyPrefix::Fixed(p);
        self
    }

    /// Key of the memo chunk with the given bin per axis (16 bytes): a
    /// digest of the axis names and value hashes of its bins, in grid order.
    /// It depends on the chunk's contents only, so the same chunk of two
    /// caches or two opens has the same key. With order keys, its first 6
    /// bytes are replaced by the order key of the chunk's first value on
    /// axis 0 (4 bytes, big-endian) and the top half of that on axis 1
    /// (docs/canonical-encoding.md §3): LMDB keeps keys sorted, so records
    /// of neighbouring chunks share pages, and a run that walks the grid
    /// touches few of them.
    pub fn chunk_key(&self, bins: &[u32]) -> [u8; 16] {
        // The bytes hashed: DOMAIN, "chunk", each axis' bin digest. Laid
        // out in one buffer and hashed at once (a status of a million
        // chunks hashes a million keys; one call costs less than an update
        // per part).
        const HEAD: usize = DOMAIN.len() + 5;
        let mut buf = [0u8; HEAD + 32 * KEY_BUF_AXES];
        let mut out = [0u8; 16];
        if bins.len() <= KEY_BUF_AXES {
            buf[..DOMAIN.len()].copy_from_slice(DOMAIN);
            buf[DOMAIN.len()..HEAD].copy_from_slice(b"chunk");
            let mut at = HEAD;
            for (axis, &b) in bins.iter().enumerate() {
                buf[at..at + 32].copy_from_slice(&self.bin_digest_of(axis, b));
                at += 32;
            }
            out.copy_from_slice(&blake3::hash(&buf[..at]).as_bytes()[..16]);
        } else {
            let mut h = blake3::Hasher::new();
            h.update(DOMAIN);
            h.update(b"chunk");
            for (axis, &b) in bins.iter().enumerate() {
                h.update(&self.bin_digest_of(axis, b));
            }
            out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        }
        match &self.prefix {
            KeyPrefix::Digest => {}
            KeyPrefix::Order(order) => {
                let first =
                    |a: usize| order.get(a).zip(bins.get(a)).map_or(0, |(o, &b)| o[b as usize * self.axes[a].chunk]);
                out[..4].copy_from_slice(&first(0).to_be_bytes());
                out[4..6].copy_from_slice(&((first(1) >> 16) as u16).to_be_bytes());
            }
            KeyPrefix::Fixed(p) => out[..KEY_PREFIX].copy_from_slice(p),
        }
        out
    }

    /// Whether `key` could be this grid's key of the chunk with `bins`
    /// given that a record keyed `key` has exactly that chunk's layout: its
    /// digest part then matches by construction, so only the prefix is
    /// compared (order keys, or a fixed prefix). Under a grid without
    /// order keys the prefix is part of the digest: the whole key is
    /// computed and compared.
    pub fn key_prefix_matches(&self, bins: &[u32], key: &[u8; 16]) -> bool {
        match &self.prefix {
            KeyPrefix::Digest => self.chunk_key(bins) == *key,
            KeyPrefix::Order(order) => {
                let first =
                    |a: usize| order.get(a).zip(bins.get(a)).map_or(0, |(o, &b)| o[b as usize * self.axes[a].chunk]);
                key[..4] == first(0).to_be_bytes() && key[4..6] == ((first(1) >> 16) as u16).to_be_bytes()
            }
            KeyPrefix::Fixed(p) => key[..KEY_PREFIX] == *p,
        }
    }

    /// Plans a selection. `selection[axis]` is `None` for the whole axis or a
    /// sorted list of distinct indices.
    pub fn plan(&self, selection: &[Option<Vec<u32>>]) -> Result<Plan> {
        if selection.len() != self.axes.len() {
            return Err(CoreError::invalid(format!(
                "selection has {} axes, the grid has {}",
                selection.len(),
                self.axes.len()
            )));
        }
        let mut axes = Vec::with_capacity(self.axes.len());
        let mut shape = Vec::with_capacity(self.axes.len());
        for (a, sel) in self.axes.iter().zip(selection) {
            let len = a.hashes.len() as u32;
            let chunk = a.chunk as u32;
            let mut bins: Vec<BinSel> = Vec::new();
            match sel {
                None => {
                    axes.push(AxisPlan::whole(len, chunk));
                    shape.push(len);
                    continue;
                }
                Some(idx) => {
                    let mut prev: Option<u32> = None;
                    for (pos, &i) in idx.iter().enumerate() {
                        if i >= len {
                            return Err(CoreError::invalid(format!(
                                "index {i} out of range for axis {:?} of length {len}",
                                a.name
                            )));
                        }
                        if prev.is_some_and(|p| p >= i) {
                            return Err(CoreError::invalid(format!(
                                "selection of axis {:?} must be sorted and distinct",
                                a.name
                            )));
                        }
                        prev = Some(i);
                        let bin = i / chunk;
                        let start = bin * chunk;
                        if bins.last().map(|b| b.bin) != Some(bin) {
                            bins.push(BinSel {
                                bin,
                                start,
                                len: chunk.min(len - start),
                                sel: Vec::new(),
                                sel_pos: pos as u32,
                            });
                        }
                        bins.last_mut().unwrap().sel.push(i - start);
                    }
                    shape.push(idx.len() as u32);
                }
            }
            axes.push(AxisPlan { bins, whole: None, iota: Vec::new() });
        }
        let n_chunks = axes.iter().map(|b| b.len()).product();
        Ok(Plan { axes, shape, n_chunks })
    }
}

/// One-value bins of an axis whose digests a grid keeps at most (512 KB,
/// hashed in ~2 ms when the grid is made).
const ONE_VALUE_BINS_KEPT: usize = 1 << 14;

fn bin_digest(name: &str, hashes: &[u64]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&(name.len() as u32).to_le_bytes());
    h.update(name.as_bytes());
    h.update(&(hashes.len() as u32).to_le_bytes());
    for x in hashes {
        h.update(&x.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

impl Plan {
    /// Bin choice (index into `axes[a]`) per axis of chunk `i`, in grid order.
    pub fn chunk_bins(&self, mut i: usize) -> Vec<usize> {
        let mut out = vec![0; self.axes.len()];
        for a in (0..self.axes.len()).rev() {
            let n = self.axes[a].len();
            out[a] = i % n;
            i /= n;
        }
        out
    }

    /// Bin numbers of chunk `i` into `bins` (reused: no allocation once
    /// grown); returns (requested points, record points).
    pub fn chunk_bins_into(&self, mut i: usize, bins: &mut Vec<u32>) -> (u64, u64) {
        let n = self.axes.len();
        bins.clear();
        bins.resize(n, 0);
        let (mut req, mut rec) = (1u64, 1u64);
        for a in (0..n).rev() {
            let m = self.axes[a].len();
            let b = self.axes[a].get(i % m);
            i /= m;
            bins[a] = b.bin;
            req *= b.sel.len() as u64;
            rec *= b.len as u64;
        }
        (req, rec)
    }

    /// The bin of each axis for chunk `i`.
    pub fn chunk(&self, i: usize) -> Vec<BinRef<'_>> {
        self.chunk_bins(i).iter().enumerate().map(|(a, &b)| self.axes[a].get(b)).collect()
    }

    /// Number of requested points in chunk `i`.
    pub fn requested(&self, i: usize) -> u64 {
        self.chunk(i).iter().map(|b| b.sel.len() as u64).product()
    }

    /// Where chunk `i`'s requested points go in the plan's flat output
    /// (row-major over `shape`, first axis slowest): in request order they
    /// are rows of `len` points (the last axis' selection in the chunk), row
    /// `r` at output index `starts[r]` onwards.
    pub fn out_rows(&self, i: usize) -> (Vec<u64>, usize) {
        let mut starts = Vec::new();
        let len = self.out_rows_into(i, &mut RowScratch::default(), &mut starts);
        (starts, len)
    }

    /// [`Plan::out_rows`] appending chunk `i`'s row starts to `starts`, with
    /// `scratch` reused (no allocation once grown); returns the row length.
    pub fn out_rows_into(&self, i: usize, scratch: &mut RowScratch, starts: &mut Vec<u64>) -> usize {
        let n = self.axes.len();
        if n == 0 {
            starts.push(0);
            return 1;
        }
        // Per axis but the last: (output index of the bin's first selected
        // value times the axis stride, the stride, selected values); the
        // rows are every combination, first axis slowest.
        scratch.axes.clear();
        let mut stride = 1u64;
        let mut first = 0u64;
        let mut len = 0usize;
        let mut rest = i;
        for a in (0..n).rev() {
            // Chunk i's bin of axis a, counted among the plan's (as in `chunk_bins`).
            let b = self.axes[a].get(rest % self.axes[a].len());
            rest /= self.axes[a].len();
            if a == n - 1 {
                len = b.sel.len();
                first = b.sel_pos as u64;
            } else {
                first += b.sel_pos as u64 * stride;
                scratch.axes.push((stride, b.sel.len() as u32));
            }
            stride *= self.shape[a] as u64;
        }
        scratch.axes.reverse();
        let rows: usize = scratch.axes.iter().map(|&(_, c)| c as usize).product();
        starts.reserve(rows);
        scratch.at.clear();
        scratch.at.resize(scratch.axes.len(), 0);
        let mut x = first;
        for _ in 0..rows {
            starts.push(x);
            // The next combination: the last axis of the odometer fastest.
            for a in (0..scratch.axes.len()).rev() {
                let (stride, count) = scratch.axes[a];
                scratch.at[a] += 1;
                x += stride;
                if scratch.at[a] < count {
                    break;
                }
                x -= stride * count as u64;
                scratch.at[a] = 0;
            }
        }
        len
    }

    pub fn total_requested(&self) -> u64 {
        self.shape.iter().map(|&s| s as u64).product()
    }
}

/// Memory [`Plan::out_rows_into`] reuses from chunk to chunk.
#[derive(Debug, Default)]
pub struct RowScratch {
    /// Per axis but the last: (stride in the output, selected values).
    axes: Vec<(u64, u32)>,
    /// Per axis but the last: the current selected value.
    at: Vec<u32>,
}

/// Geometry of chunk `i` of a plan.
pub struct ChunkGeometry {
    pub bins: Vec<u32>,
    /// Per axis: selected offsets within the bin.
    pub sel: Vec<Vec<u32>>,
    /// Per axis: bin length (record layout dims).
    pub lens: Vec<u32>,
}

impl ChunkGeometry {
    pub fn of(plan: &Plan, i: usize) -> ChunkGeometry {
        let c = plan.chunk(i);
        ChunkGeometry {
            bins: c.iter().map(|b| b.bin).collect(),
            sel: c.iter().map(|b| b.sel.to_vec()).collect(),
            lens: c.iter().map(|b| b.len).collect(),
        }
    }

    pub fn requested(&self) -> usize {
        self.sel.iter().map(|s| s.len()).product()
    }

    pub fn record_points(&self) -> usize {
        self.lens.iter().map(|&l| l as usize).product()
    }

    /// True when the chunk requests every point of its bins in record
    /// order (each axis selects 0, 1, ..., len-1): request index = record
    /// position.
    pub fn selects_whole_bins(&self) -> bool {
        self.sel
            .iter()
            .zip(&self.lens)
            .all(|(s, &len)| s.len() == len as usize && s.iter().enumerate().all(|(j, &x)| x as usize == j))
    }

    /// Record position (in the chunk's own layout) of each requested point.
    pub fn record_positions(&self) -> Vec<u32> {
        let mut out = vec![0u32];
        for (a, sel) in self.sel.iter().enumerate() {
            let len = self.lens[a];
            let mut next = Vec::with_capacity(out.len() * sel.len());
            for &base in &out {
                for &s in sel {
                    next.push(base * len + s);
                }
            }
            out = next;
            let _ = a;
        }
        out
    }
}

/// A product block of points inside one chunk: per axis, a sorted list of
/// positions into that chunk's requested offsets (`BinSel::sel`).
pub type Block = Vec<Vec<u32>>;

/// Decomposes the set of points marked in `missing` (a flag per requested
/// point of a chunk, in grid order over `dims`) into disjoint product blocks.
/// Values of the first axis with the same pattern over the remaining axes
/// are grouped, recursively, so common shapes (a new axis value, a complement
/// of an earlier subset) give few blocks. No point appears twice.
pub fn missing_blocks(dims: &[usize], missing: &[bool]) -> Vec<Block> {
    debug_assert_eq!(missing.len(), dims.iter().product::<usize>());
    let all: Vec<usize> = (0..missing.len()).collect();
    let mut out = Vec::new();
    decompose(dims, missing, &all, &mut out);
    out
}

// `cells` lists flat indices (into `missing`) of the sub-grid over `dims`
// being decomposed, in grid order; rows of `dims[0]`.
fn decompose(dims: &[usize], missing: &[bool], cells: &[usize], out: &mut Vec<Block>) {
    if dims.is_empty() {
        if missing[cells[0]] {
            out.push(Vec::new());
        }
        return;
    }
    let rest: usize = dims[1..].iter().product();
    // Group rows by their missing pattern over the rest of the axes.
    let mut groups: Vec<(Vec<bool>, Vec<u32>)> = Vec::new();
    for r in 0..dims[0] {
        let row = &cells[r * rest..(r + 1) * rest];
        let pattern: Vec<bool> = row.iter().map(|&c| missing[c]).collect();
        if !pattern.iter().any(|&m| m) {
            continue;
        }
        match groups.iter_mut().find(|g| g.0 == pattern) {
            Some(g) => g.1.push(r as u32),
            None => groups.push((pattern, vec![r as u32])),
        }
    }
    for (pattern, rows) in groups {
        let sub: Vec<usize> = (0..rest).collect();
        let mut inner = Vec::new();
        decompose(&dims[1..], &pattern, &sub, &mut inner);
        for mut b in inner {
            b.insert(0, rows.clone());
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lens: &[usize], chunks: &[usize]) -> Grid {
        let axes = lens
            .iter()
            .zip(chunks)
            .enumerate()
            .map(|(k, (&l, &c))| Axis {
                name: format!("ax{k}"),
                hashes: (0..l as u64).map(|i| i * 7919 + k as u64 * 1_000_003).collect(),
                chunk: c,
            })
            .collect();
        Grid::new(axes).unwrap()
    }

    #[test]
    fn chunk_counts() {
        let g = grid(&[10, 7], &[3, 7]);
        assert_eq!(g.n_chunks(), 4);
        let p = g.plan(&[None, None]).unwrap();
        assert_eq!(p.n_chunks, 4);
        assert_eq!(p.axes[0].last().unwrap().len, 1);
        let s = grid(&[], &[]);
        assert_eq!(s.n_chunks(), 1);
        assert_eq!(s.plan(&[]).unwrap().n_chunks, 1);
    }

    #[test]
    fn errors() {
        let g = grid(&[5], &[2]);
        assert!(g.plan(&[Some(vec![5])]).is_err());
        assert!(g.plan(&[Some(vec![2, 1])]).is_err());
        let dup = Grid::new(vec![Axis { name: "x".into(), hashes: vec![5, 1, 1], chunk: 1 }]).unwrap_err();
        assert_eq!(
            dup.detail,
            Some(crate::error::ErrorDetail::DuplicateAxisValue { axis: "x".into(), first: 1, second: 2 })
        );
    }

    #[test]
    fn blocks_cover_missing_exactly() {
        let dims = [3usize, 4];
        let mut missing = vec![false; 12];
        for i in [1, 2, 5, 6, 11] {
            missing[i] = true;
        }
        let blocks = missing_blocks(&dims, &missing);
        let mut seen = [0; 12];
        for b in &blocks {
            for &r in &b[0] {
                for &c in &b[1] {
                    seen[r as usize * 4 + c as usize] += 1;
                }
            }
        }
        for i in 0..12 {
            assert_eq!(seen[i], usize::from(missing[i]));
        }
        assert_eq!(blocks.len(), 2);
    }
}
