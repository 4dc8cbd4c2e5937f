//! The catalog of a cache's records, for resolutions across chunkings:
//! every record's layout (its axes and their value hashes) in flat lists,
//! the records holding each value, and the mapping of a chunk's requested
//! points to a record's points.

use super::{CacheId, ChunkKey, Descriptor, Store};
use crate::error::Result;
use crate::planner::{ChunkGeometry, Grid, HashKeyed};
use heed::{RoTxn, WithoutTls};

/// Per-plan lazily built view of all of a cache's records, to find records
/// laid out differently (another chunking, axis order or axis length).
#[derive(Default)]
pub struct Catalog {
    loaded: bool,
    pub(super) descs: FlatDescs,
    /// Damaged index entries found while loading, not yet reported.
    pub(super) bad: Vec<(ChunkKey, String)>,
    /// Per grid axis: value hash -> indices of descriptors holding it.
    pub(super) by_axis: Vec<Postings>,
    /// Per descriptor, per record axis: value hash -> index along that axis,
    /// made when a chunk first needs it (many small chunks read from one
    /// large record look it up once each).
    pub(super) held: Vec<Vec<Option<HashKeyed<usize>>>>,
    /// Whether every record is laid out and keyed as a chunk of the plan's
    /// grid or lies outside it (see [`Store::aligned_catalog`]); computed
    /// when first asked.
    aligned: Option<bool>,
}

impl Catalog {
    /// Remembers that every record is aligned, as a walk over all the
    /// cache's index entries in the plan's snapshot found.
    pub(super) fn know_aligned(&mut self) {
        self.aligned = Some(true);
    }
}

/// Where a record lies in a grid, as [`Aligned::place`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// Laid out and keyed as one chunk of the grid: the grid's axes in its
    /// order, each holding exactly the values of one of its bins.
    Chunk,
    /// Sharing no point with the grid: another number of axes, or an axis
    /// of the grid's name, at the grid's place, holding none of its values
    /// (a record of a longer axis, left out of a cache opened on fewer
    /// values).
    Outside,
    /// Anything else (another chunking, axis order or length), or an index
    /// entry that does not parse.
    Other,
}

/// Places records in a grid by their index entries. When every record of
/// a cache is a chunk of the grid or outside it, a chunk whose own key
/// finds no record has no stored points: any other record lacks its
/// values on some axis.
pub(super) struct Aligned<'g> {
    grid: &'g Grid,
}

/// How a record's axis lies along the grid's axis of its place.
enum AxisPlace {
    Bin(u32),
    Disjoint,
    Other,
}

impl<'g> Aligned<'g> {
    /// None for a grid without axes (its one chunk is checked in full).
    pub(super) fn new(grid: &'g Grid) -> Option<Self> {
        (!grid.axes.is_empty()).then_some(Aligned { grid })
    }

    /// What one thread places records in (see [`Aligned::place`]).
    pub(super) fn placing(&self) -> Placing {
        let n = self.grid.axes.len();
        Placing { bins: Vec::with_capacity(n), last: vec![None; n] }
    }

    /// Where the record keyed `key`, whose index entry is `entry`, lies in
    /// the grid; for a [`Placed::Chunk`], its bin per axis are in
    /// `at.bins`.
    pub(super) fn place(&self, key: &ChunkKey, entry: &[u8], at: &mut Placing) -> Placed {
        at.bins.clear();
        let (mut axes, mut disjoint, mut other) = (0usize, false, false);
        let parsed = Descriptor::parse_raw(entry, |name, bytes| {
            if !disjoint {
                match self.axis(axes, name, bytes, at) {
                    AxisPlace::Bin(b) => at.bins.push(b),
                    AxisPlace::Disjoint => disjoint = true,
                    AxisPlace::Other => other = true,
                }
            }
            axes += 1;
        });
        if parsed.is_err() {
            Placed::Other
        } else if axes != self.grid.axes.len() || disjoint {
            Placed::Outside
        } else if other || !self.grid.key_prefix_matches(&at.bins, key) {
            Placed::Other
        } else {
            Placed::Chunk
        }
    }

    /// How a record's axis `a` (its name and value hashes, as the index
    /// stores them) lies along the grid's axis `a`.
    fn axis(&self, a: usize, name: &[u8], bytes: &[u8], at: &mut Placing) -> AxisPlace {
        let hashes = bytes.chunks_exact(8).map(|h| u64::from_le_bytes(h.try_into().unwrap()));
        let Some(axis) = self.grid.axes.get(a) else { return AxisPlace::Other };
        if name != axis.name.as_bytes() {
            return AxisPlace::Other;
        }
        if let Some(first) = hashes.clone().next() {
            // Records walked in key order often share their first axis'
            // bin with the record before.
            let bin = match at.last[a] {
                Some((h, b)) if h == first => Some(b),
                _ => self.grid.bin_starting(a, first),
            };
            if let Some(b) = bin {
                if hashes.clone().eq(self.grid.bin_hashes(a, b).iter().copied()) {
                    at.last[a] = Some((first, b));
                    return AxisPlace::Bin(b);
                }
            }
        }
        let mut hashes = hashes;
        if hashes.any(|h| self.grid.value_index(a, h).is_some()) {
            AxisPlace::Other
        } else {
            AxisPlace::Disjoint
        }
    }
}

/// What [`Aligned::place`] finds a record's bins in, and remembers from
/// record to record (one per thread: [`Aligned::placing`]).
pub(super) struct Placing {
    /// The bins of the record placed last, per axis.
    pub(super) bins: Vec<u32>,
    /// Per axis, the first value hash and bin of the last record placed
    /// in a bin.
    last: Vec<Option<(u64, u32)>>,
}

/// The descriptors of a cache's records in a few flat lists: loading a
/// catalog of a million records allocates nothing per record.
#[derive(Default)]
pub(super) struct FlatDescs {
    pub(super) keys: Vec<ChunkKey>,
    /// Per descriptor: where its axes end in `axes` (they start where the
    /// previous descriptor's end).
    ends: Vec<u32>,
    /// Per axis of each descriptor: its name (index in `names`) and where
    /// its value hashes lie in `hashes`.
    axes: Vec<(u32, u32, u32)>,
    names: Vec<String>,
    hashes: Vec<u64>,
}

impl FlatDescs {
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Appends the descriptor of record `key` from its index entry; on a
    /// damaged entry, leaves the lists as they were.
    fn push(&mut self, key: ChunkKey, entry: &[u8]) -> Result<()> {
        let (axes, hashes) = (self.axes.len(), self.hashes.len());
        let parsed = Descriptor::parse(entry, |name, bytes| {
            let id = match self.names.iter().position(|n| n == name) {
                Some(id) => id,
                None => {
                    self.names.push(name.to_string());
                    self.names.len() - 1
                }
            };
            let from = self.hashes.len() as u32;
            self.hashes.extend(bytes.chunks_exact(8).map(|h| u64::from_le_bytes(h.try_into().unwrap())));
            self.axes.push((id as u32, from, self.hashes.len() as u32));
        });
        if let Err(e) = parsed {
            self.axes.truncate(axes);
            self.hashes.truncate(hashes);
            return Err(e);
        }
        self.keys.push(key);
        self.ends.push(self.axes.len() as u32);
        Ok(())
    }

    pub(super) fn get(&self, d: usize) -> FlatDesc<'_> {
        let from = if d == 0 { 0 } else { self.ends[d - 1] as usize };
        FlatDesc { all: self, axes: &self.axes[from..self.ends[d] as usize] }
    }
}

/// One descriptor of a [`FlatDescs`].
#[derive(Clone, Copy)]
pub(super) struct FlatDesc<'a> {
    all: &'a FlatDescs,
    axes: &'a [(u32, u32, u32)],
}

/// A record's layout as [`map_into`] reads it: its axes in record order,
/// each a name and the hashes of its values.
pub(super) trait Layout {
    fn n_axes(&self) -> usize;
    fn axis(&self, a: usize) -> (&str, &[u64]);
}

impl Layout for Descriptor {
    fn n_axes(&self) -> usize {
        self.axes.len()
    }
    fn axis(&self, a: usize) -> (&str, &[u64]) {
        (&self.axes[a].0, &self.axes[a].1)
    }
}

impl<'a> FlatDesc<'a> {
    /// Axis `a`: its name and value hashes, borrowed from the lists.
    fn axis_in(&self, a: usize) -> (&'a str, &'a [u64]) {
        let (name, from, to) = self.axes[a];
        (&self.all.names[name as usize], &self.all.hashes[from as usize..to as usize])
    }
}

impl Layout for FlatDesc<'_> {
    fn n_axes(&self) -> usize {
        self.axes.len()
    }
    fn axis(&self, a: usize) -> (&str, &[u64]) {
        self.axis_in(a)
    }
}

/// Value hash -> the descriptors (indices, ascending) holding it, in one
/// list (no allocation per value).
#[derive(Default)]
pub(super) struct Postings {
    /// Per value hash: where its descriptors lie in `list`.
    at: HashKeyed<(u32, u32)>,
    list: Vec<u32>,
}

impl Postings {
    /// The postings of every descriptor's values on the axis named `name`
    /// (descriptors with another number of axes than `n_axes` hold none).
    fn build(descs: &FlatDescs, name: &str, n_axes: usize) -> Postings {
        let values = |d: usize| -> Option<&[u64]> {
            let desc = descs.get(d);
            if desc.n_axes() != n_axes {
                return None;
            }
            (0..n_axes).map(|a| desc.axis_in(a)).find(|(n, _)| *n == name).map(|(_, h)| h)
        };
        let mut at: HashKeyed<(u32, u32)> = HashKeyed::default();
        for d in 0..descs.len() {
            for h in values(d).unwrap_or(&[]) {
                at.entry(*h).or_default().1 += 1;
            }
        }
        let mut next = 0u32;
        for (start, count) in at.values_mut() {
            (*start, next) = (next, next + *count);
            *count = 0;
        }
        let mut list = vec![0u32; next as usize];
        for d in 0..descs.len() {
            for h in values(d).unwrap_or(&[]) {
                let (start, count) = at.get_mut(h).expect("counted above");
                list[(*start + *count) as usize] = d as u32;
                *count += 1;
            }
        }
        Postings { at, list }
    }

    pub(super) fn get(&self, h: &u64) -> Option<&[u32]> {
        self.at.get(h).map(|&(start, count)| &self.list[start as usize..(start + count) as usize])
    }

    pub(super) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

impl Store {
    /// Loads `catalog` (once per plan): every index entry of `cache`, and
    /// the postings of the grid's axes.
    pub(super) fn load_catalog(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        catalog: &mut Catalog,
    ) -> Result<()> {
        if catalog.loaded {
            return Ok(());
        }
        (catalog.descs, catalog.bad) = (FlatDescs::default(), Vec::new());
        for item in self.index.prefix_iter(t, cache)? {
            let (k, v) = item?;
            let Ok(chunk) = <ChunkKey>::try_from(&k[16..]) else { continue };
            if let Err(e) = catalog.descs.push(chunk, v) {
                catalog.bad.push((chunk, format!("damaged index entry: {}", e.message)));
            }
        }
        catalog.by_axis = grid.axes.iter().map(|a| Postings::build(&catalog.descs, &a.name, grid.axes.len())).collect();
        catalog.held = vec![Vec::new(); catalog.descs.len()];
        catalog.loaded = true;
        Ok(())
    }

    /// Whether every record of `cache` is laid out and keyed as a chunk of
    /// `grid` or lies outside it (see [`Placed`]), remembered in `catalog`
    /// for the plan. The
    /// index entries are looked at in one pass, keeping nothing: loading
    /// the catalog (every descriptor, and the postings of every value)
    /// costs several times that, and a cache whose records are all aligned
    /// never needs it. False when an index entry is damaged (its record's
    /// layout is unknown).
    pub(super) fn aligned_catalog(
        &self,
        t: &RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        grid: &Grid,
        catalog: &mut Catalog,
    ) -> Result<bool> {
        if catalog.aligned.is_none() {
            catalog.aligned = Some(self.index_aligned(t, cache, grid)?);
        }
        Ok(catalog.aligned == Some(true))
    }

    /// [`Store::aligned_catalog`] from `cache`'s index entries: false at
    /// the first entry that is damaged, or neither a chunk of the grid nor
    /// outside it.
    fn index_aligned(&self, t: &RoTxn<'_, WithoutTls>, cache: &CacheId, grid: &Grid) -> Result<bool> {
        let Some(check) = Aligned::new(grid) else { return Ok(false) };
        let mut at = check.placing();
        for item in self.index.prefix_iter(t, cache)? {
            let (k, v) = item?;
            let Ok(key) = <ChunkKey>::try_from(&k[16..]) else { return Ok(false) };
            if check.place(&key, v, &mut at) == Placed::Other {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Memory [`map_into`] reuses from record to record of a chunk.
#[derive(Default)]
pub(super) struct MapScratch {
    /// Per record axis: its stride in the record.
    strides: Vec<u64>,
    /// Per grid axis: (position among the requested offsets, offset in the
    /// record) of the requested values the record holds.
    per_axis: Vec<Vec<(u32, u64)>>,
    /// The result: (requested point, record point) pairs.
    pub(super) pairs: Vec<(u32, u64)>,
    next: Vec<(u32, u64)>,
}

/// Maps requested points of a chunk to point positions of a record with
/// descriptor `desc`, into `scratch.pairs` (request order); false when the
/// record shares no point with it.
pub(super) fn map_into(
    grid: &Grid,
    geo: &ChunkGeometry,
    desc: &impl Layout,
    wanted: &mut [Option<HashKeyed<u32>>],
    mut held_maps: Option<&mut Vec<Option<HashKeyed<usize>>>>,
    scratch: &mut MapScratch,
) -> bool {
    let n = desc.n_axes();
    if n != grid.axes.len() {
        return false;
    }
    let MapScratch { strides, per_axis, pairs, next } = scratch;
    // For each grid axis: its position in the record and, per requested
    // offset, the value's index along that record axis.
    strides.clear();
    strides.resize(n, 1);
    for a in (0..n.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * desc.axis(a + 1).1.len() as u64;
    }
    // Only matches are kept, so the cost follows the overlap, not the
    // chunk size.
    if per_axis.len() < grid.axes.len() {
        per_axis.resize(grid.axes.len(), Vec::new());
    }
    for (a, axis) in grid.axes.iter().enumerate() {
        let Some(ra) = (0..n).position(|ra| desc.axis(ra).0 == axis.name) else { return false };
        let held = desc.axis(ra).1;
        let base = geo.bins[a] as usize * axis.chunk;
        let sel = &geo.sel[a];
        let col = &mut per_axis[a];
        col.clear();
        // Look the smaller list up in a map of the larger one: reading a
        // large chunk from many small records costs their values, not the
        // chunk's values once per record.
        if held.len() < sel.len() {
            let by_hash = wanted[a].get_or_insert_with(|| {
                sel.iter().enumerate().map(|(j, &o)| (axis.hashes[base + o as usize], j as u32)).collect()
            });
            col.extend(
                held.iter().enumerate().filter_map(|(i, h)| by_hash.get(h).map(|&j| (j, i as u64 * strides[ra]))),
            );
            col.sort_unstable_by_key(|&(j, _)| j);
        } else {
            let build = || -> HashKeyed<usize> { held.iter().enumerate().map(|(i, h)| (*h, i)).collect() };
            let mut local = None;
            let lookup: &HashKeyed<usize> = match held_maps.as_deref_mut() {
                Some(maps) => {
                    if maps.len() < n {
                        maps.resize(n, None);
                    }
                    maps[ra].get_or_insert_with(build)
                }
                None => local.insert(build()),
            };
            col.extend(sel.iter().enumerate().filter_map(|(j, &o)| {
                lookup.get(&axis.hashes[base + o as usize]).map(|&i| (j as u32, i as u64 * strides[ra]))
            }));
        }
        if col.is_empty() {
            return false;
        }
    }
    pairs.clear();
    pairs.push((0, 0));
    for (a, col) in per_axis[..grid.axes.len()].iter().enumerate() {
        let dim = geo.sel[a].len() as u32;
        next.clear();
        next.reserve(pairs.len() * col.len());
        for &(r, p) in pairs.iter() {
            for &(j, off) in col {
                next.push((r * dim + j, p + off));
            }
        }
        std::mem::swap(pairs, next);
    }
    true
}
