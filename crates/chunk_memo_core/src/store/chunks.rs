//! Reading and writing planned chunks.

use super::seek::Seek;
use super::{now_ms, rkey, CacheId, ChunkKey, Descriptor, Resolution, Store};
use crate::error::{CoreError, ErrorCode, Result};
use crate::planner::{ChunkGeometry, Grid};
use crate::record::{RecordBuilder, RecordView};
use heed::{RoTxn, RwTxn, WithoutTls};

/// Requested points of one chunk, read from the store: a presence flag per
/// requested point and the bytes of the present ones, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkData {
    pub kind: u8,
    pub present: Vec<bool>,
    /// Items: n_present+1 offsets into `data`. Typed: empty.
    pub offsets: Vec<u32>,
    pub data: Vec<u8>,
    /// Items: the dictionaries of the present points, and per present point
    /// the index of its dictionary.
    pub dicts: Vec<Vec<u8>>,
    pub point_dicts: Vec<u16>,
    pub corrupt: Vec<(ChunkKey, String)>,
}

impl ChunkData {
    /// Every point of a complete dense record, in record order.
    fn whole(v: &RecordView<'_>) -> ChunkData {
        let mut d = ChunkData { kind: v.kind, present: vec![true; v.n], ..Default::default() };
        match v.dense_items() {
            None => d.data = v.data().to_vec(),
            Some(items) => {
                d.data = items.data.to_vec();
                d.offsets = items.offsets;
                d.point_dicts = items.point_dicts;
                d.dicts = items.dicts.iter().map(|x| x.to_vec()).collect();
            }
        }
        d
    }
}

impl Store {
    /// Reads the available requested points of a resolved chunk.
    pub fn read_chunk(&self, cache: &CacheId, res: &Resolution) -> Result<ChunkData> {
        let out = self.read(|s, t| s.read_chunk_in(t, cache, res))?;
        self.note_accesses(cache, &res.sources.iter().map(|src| src.chunk).collect::<Vec<_>>());
        Ok(out)
    }

    /// [`Store::read_chunk`] in the caller's read transaction, without
    /// noting the access (see [`Store::note_accesses`]).
    pub fn read_chunk_in(&self, t: &RoTxn<'_, WithoutTls>, cache: &CacheId, res: &Resolution) -> Result<ChunkData> {
        self.read_chunk_memo(t, cache, res, &mut ReadMemo::default())
    }

    /// [`Store::read_chunk_in`] for one of several chunks read in the same
    /// transaction: a source record that served the previous chunk is not
    /// verified and parsed again (small chunks read from a large record of
    /// another chunking each need a few of its points).
    pub fn read_chunk_memo<'t>(
        &self,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        res: &Resolution,
        memo: &mut ReadMemo<'t>,
    ) -> Result<ChunkData> {
        // The chunk's own complete record serves every point in record
        // order: its data area in one copy (and its tables, for items).
        // (Only when every point of the record is requested: the record is
        // not looked up, nor hashed, twice for a subset of it.)
        if let [src] = res.sources.as_slice() {
            let all = src
                .whole
                .as_ref()
                .is_some_and(|w| w.lens.iter().map(|&l| l as u64).product::<u64>() == res.requested as u64);
            if all {
                let whole = self.read_whole_in(t, cache, &src.chunk, false, |v| {
                    (v.n == res.requested as usize).then(|| ChunkData::whole(v))
                })?;
                if let Some(Some(d)) = whole {
                    return Ok(d);
                }
            }
        }
        let mut per: Vec<Option<(&[u8], &[u8])>> = vec![None; res.requested as usize];
        let mut kind: Option<u8> = None;
        let mut corrupt = Vec::new();
        for src in &res.sources {
            let view = match memo.record(self, t, cache, &src.chunk)? {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    corrupt.push((src.chunk, e.clone()));
                    continue;
                }
                None => continue,
            };
            // Points stored under another kind (the function changed its
            // return type) are left out and recomputed by the caller.
            if *kind.get_or_insert(view.kind) != view.kind {
                continue;
            }
            let mut put = |r: u32, p: u32| {
                if (p as usize) < view.n && view.is_present(p as usize) {
                    per[r as usize] = Some((view.point(p as usize), view.point_dict(p as usize)));
                }
            };
            match src.whole {
                None => src.map.iter().for_each(|&(r, p)| put(r, p)),
                Some(_) => src.pairs().into_iter().for_each(|(r, p)| put(r, p)),
            }
        }
        let mut d = ChunkData { kind: kind.unwrap_or(0), corrupt, ..Default::default() };
        d.present = per.iter().map(Option::is_some).collect();
        let total: usize = per.iter().flatten().map(|b| b.0.len()).sum();
        d.data.reserve_exact(total);
        let items = d.kind == crate::record::KIND_ITEMS;
        if items {
            d.offsets.reserve_exact(per.len() + 1);
            d.offsets.push(0);
            d.point_dicts.reserve_exact(per.len());
        }
        let mut last: Option<(&[u8], u16)> = None;
        for (b, dict) in per.iter().flatten() {
            d.data.extend_from_slice(b);
            if items {
                d.offsets.push(d.data.len() as u32);
                // Dictionaries are few; remember the last one seen.
                let idx = match last {
                    Some((l, i)) if l.as_ptr() == dict.as_ptr() && l.len() == dict.len() => i,
                    _ => {
                        let i = match d.dicts.iter().position(|x| x.as_slice() == *dict) {
                            Some(i) => i as u16,
                            None => {
                                d.dicts.push(dict.to_vec());
                                (d.dicts.len() - 1) as u16
                            }
                        };
                        last = Some((dict, i));
                        i
                    }
                };
                d.point_dicts.push(idx);
            }
        }
        Ok(d)
    }
}

/// The source record read last in a transaction, parsed and verified (see
/// [`Store::read_chunk_memo`]), and a walk over the records from there (the
/// records a chunk reads from, and those of the next chunks, lie close
/// together in key order).
#[derive(Default)]
pub struct ReadMemo<'t> {
    last: Option<(ChunkKey, Parsed<'t>)>,
    seek: Option<Seek<'t>>,
    /// Records looked up ahead ([`ReadMemo::verify_ahead`]), in key order;
    /// parsed and verified there, or when first asked for.
    ahead: Vec<Ahead<'t>>,
}

/// A record parsed and verified, or why it is damaged.
type Parsed<'t> = std::result::Result<RecordView<'t>, String>;

/// A record looked up ahead: its key, its bytes (`None`: not stored), and
/// what parsing them gave once done.
struct Ahead<'t> {
    key: ChunkKey,
    bytes: Option<&'t [u8]>,
    parsed: std::cell::OnceCell<Parsed<'t>>,
}

fn parse(bytes: &[u8]) -> Parsed<'_> {
    RecordView::parse(bytes).map_err(|e| e.message)
}

/// Records of at least this many bytes in all, to be read in one
/// transaction, are verified ahead on several threads (hashing them is most
/// of the work of reading a few points from each of many large records).
pub const VERIFY_AHEAD_BYTES: usize = 2 << 20;

/// Threads that verify records ahead at most (the calling thread included).
const VERIFY_THREADS: usize = 4;

impl<'t> ReadMemo<'t> {
    /// Record `key` parsed and verified (or why it is damaged); `None`
    /// when absent. Taken from the memo when it was the last one asked for
    /// or was looked up ahead.
    pub(crate) fn record(
        &mut self,
        store: &Store,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        key: &ChunkKey,
    ) -> Result<Option<&Parsed<'t>>> {
        if self.last.as_ref().is_some_and(|(k, _)| k == key) {
            return Ok(self.last.as_ref().map(|(_, r)| r));
        }
        if let Ok(k) = self.ahead.binary_search_by(|a| a.key.cmp(key)) {
            let a = &self.ahead[k];
            return Ok(a.bytes.map(|b| a.parsed.get_or_init(|| parse(b))));
        }
        let seek = self.seek.get_or_insert_with(|| Seek::new(store.records, t));
        let Some(bytes) = seek.get(&rkey(cache, key))? else { return Ok(None) };
        self.last = Some((*key, parse(bytes)));
        Ok(self.last.as_ref().map(|(_, r)| r))
    }

    /// Looks up `keys` (records of `cache`, in any order, repeats allowed)
    /// in one walk, so that [`ReadMemo::record`] hands them out without a
    /// lookup; when they hold [`VERIFY_AHEAD_BYTES`] or more, also verifies
    /// and parses them now on every core (up to four threads). Smaller
    /// sets are verified one by one as they are asked for. Returns whether
    /// the records were verified ahead.
    pub fn verify_ahead(
        &mut self,
        store: &Store,
        t: &'t RoTxn<'_, WithoutTls>,
        cache: &CacheId,
        mut keys: Vec<ChunkKey>,
    ) -> Result<bool> {
        keys.sort_unstable();
        keys.dedup();
        let mut bytes = 0usize;
        let seek = self.seek.get_or_insert_with(|| Seek::new(store.records, t));
        self.ahead.clear();
        for key in keys {
            let b = seek.get(&rkey(cache, &key))?;
            bytes += b.map_or(0, <[u8]>::len);
            self.ahead.push(Ahead { key, bytes: b, parsed: std::cell::OnceCell::new() });
        }
        if bytes < VERIFY_AHEAD_BYTES {
            return Ok(false);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(VERIFY_THREADS);
        // Contiguous parts of about equal bytes, one per thread.
        let found: Vec<Option<&'t [u8]>> = self.ahead.iter().map(|a| a.bytes).collect();
        let per = bytes.div_ceil(threads);
        let mut parts: Vec<&[Option<&'t [u8]>]> = Vec::with_capacity(threads);
        let (mut from, mut acc) = (0, 0);
        for (k, b) in found.iter().enumerate() {
            acc += b.map_or(0, <[u8]>::len);
            if acc >= per && parts.len() + 1 < threads {
                parts.push(&found[from..=k]);
                (from, acc) = (k + 1, 0);
            }
        }
        parts.push(&found[from..]);
        let parse_all =
            |part: &[Option<&'t [u8]>]| -> Vec<Option<Parsed<'t>>> { part.iter().map(|b| b.map(parse)).collect() };
        let done = std::thread::scope(|sc| {
            // A thread the OS will not start leaves its part to this one.
            let helpers: Vec<_> = parts[1..]
                .iter()
                .map(|part| (part, std::thread::Builder::new().spawn_scoped(sc, || parse_all(part)).ok()))
                .collect();
            let mut done = parse_all(parts[0]);
            for (part, h) in helpers {
                match h.map(|h| h.join()) {
                    Some(Ok(d)) => done.extend(d),
                    Some(Err(_)) => {
                        return Err(CoreError::new(ErrorCode::Storage, "a thread verifying stored records panicked"))
                    }
                    None => done.extend(parse_all(part)),
                }
            }
            Ok(done)
        })?;
        for (a, p) in self.ahead.iter().zip(done) {
            if let Some(p) = p {
                let _ = a.parsed.set(p);
            }
        }
        Ok(true)
    }
}

/// New points for one chunk.
pub struct ChunkWrite<'a> {
    pub geo: &'a ChunkGeometry,
    pub grid: &'a Grid,
    pub res: Option<&'a Resolution>,
    pub kind: u8,
    /// Which requested points the write gives.
    pub points: WritePoints<'a>,
    /// Items: one offset per point given, plus one, into `data`. Typed: empty.
    pub offsets: &'a [u32],
    pub data: &'a [u8],
    /// Items: the dictionary every point of this write was packed with
    /// (empty for plain msgpack).
    pub dict: &'a [u8],
}

/// The requested points a [`ChunkWrite`] gives outputs for.
#[derive(Clone, Copy, Debug)]
pub enum WritePoints<'a> {
    /// Every requested point of the chunk, in request order (no list: a
    /// whole chunk computed at once).
    All,
    /// These requested-point indices, in the order of the outputs.
    Given(&'a [u32]),
}

impl WritePoints<'_> {
    /// How many points are given, for a chunk of `requested` points.
    pub fn count(&self, requested: usize) -> usize {
        match self {
            WritePoints::All => requested,
            WritePoints::Given(p) => p.len(),
        }
    }

    /// The request index of the `j`-th point given.
    fn at(&self, j: usize) -> u32 {
        match self {
            WritePoints::All => j as u32,
            WritePoints::Given(p) => p[j],
        }
    }
}

impl Store {
    /// Writes new points of several chunks in one transaction, merging with
    /// each chunk's stored record and copying in points that other records
    /// (another chunking) hold, so later reads need one record. Points
    /// already stored are never overwritten.
    pub fn write_chunks(&self, cache: &CacheId, writes: &[ChunkWrite<'_>]) -> Result<()> {
        // Validate before opening the transaction.
        for w in writes {
            let width = crate::record::kind_width(w.kind)?;
            let req = w.geo.requested();
            if let WritePoints::Given(points) = w.points {
                if let Some(&bad) = points.iter().find(|&&p| p as usize >= req) {
                    return Err(CoreError::invalid(format!(
                        "point {bad} out of range for a chunk of {req} requested points"
                    )));
                }
            }
            let count = w.points.count(req);
            match width {
                None => {
                    if w.offsets.len() != count + 1 || *w.offsets.last().unwrap() as usize != w.data.len() {
                        return Err(CoreError::invalid("item offsets do not match the points and data"));
                    }
                    if w.offsets.windows(2).any(|x| x[0] > x[1]) {
                        return Err(CoreError::invalid("item offsets must not decrease"));
                    }
                }
                Some(sz) => {
                    if w.data.len() != count * sz {
                        return Err(CoreError::invalid(format!(
                            "typed data of {} bytes for {count} points of {sz} bytes",
                            w.data.len()
                        )));
                    }
                }
            }
        }
        self.write(|s, t| {
            for w in writes {
                s.write_one(t, cache, w)?;
            }
            Ok(())
        })
    }

    fn write_one(&self, t: &mut RwTxn<'_>, cache: &CacheId, w: &ChunkWrite<'_>) -> Result<()> {
        let key = w.grid.chunk_key(&w.geo.bins);
        let rk = rkey(cache, &key);
        let n = w.geo.record_points();
        let width = crate::record::kind_width(w.kind)?;
        let old = self.records.get(t, &rk)?.map(RecordView::parse);
        let fresh = !matches!(old, Some(Ok(ref v)) if v.n == n);
        // Every point of the chunk, in record order, and nothing stored: the
        // dense record straight from the data (no builder). A whole chunk
        // whose selection is its bins in order needs no positions at all.
        let positions = match w.points {
            WritePoints::All if w.geo.selects_whole_bins() => None,
            _ => Some(w.geo.record_positions()),
        };
        let in_record_order = match (&positions, w.points) {
            (None, _) => true,
            (Some(p), WritePoints::Given(points)) => {
                points.len() == n && points.iter().enumerate().all(|(j, &r)| p[r as usize] as usize == j)
            }
            (Some(_), WritePoints::All) => false,
        };
        let builder = if fresh && n > 0 && in_record_order {
            None
        } else {
            let positions = positions.unwrap_or_else(|| w.geo.record_positions());
            Some(self.merged_record(t, cache, &key, w, old, &positions, width)?)
        };
        // A whole typed chunk is written straight into its LMDB page (head,
        // the caller's bytes, checksum): no record-sized copy.
        let (record_len, present) = match (&builder, width) {
            (None, Some(_)) => {
                let head = RecordBuilder::dense_typed_head(w.kind, n, w.data)?;
                let len = head.len() + w.data.len() + 8;
                self.records.put_reserved(t, &rk, len, |r| RecordBuilder::write_dense_typed(r, &head, w.data))?;
                (len, n)
            }
            (None, None) => {
                let bytes = RecordBuilder::dense_items(n, w.offsets, w.data, w.dict)?;
                self.records.put(t, &rk, &bytes)?;
                (bytes.len(), n)
            }
            (Some(b), _) => {
                let bytes = b.finish();
                self.records.put(t, &rk, &bytes)?;
                (bytes.len(), b.present())
            }
        };
        let desc = Descriptor {
            axes: w
                .grid
                .axes
                .iter()
                .enumerate()
                .map(|(a, ax)| (ax.name.clone(), w.grid.bin_hashes(a, w.geo.bins[a]).to_vec()))
                .collect(),
            n: n as u32,
            present: present as u32,
            bytes: record_len as u64,
            updated_ms: now_ms(),
        };
        self.index.put(t, &rk, &desc.encode())?;
        // Stored points need no claim: released in this transaction.
        match &builder {
            None => self.release_all_in(t, &rk),
            Some(b) => self.release_stored_in(t, &rk, |p| b.is_set(p)),
        }
    }

    /// The record of chunk `key` after `w`: its stored points (`old`, when
    /// it has this layout), the new ones, and points other records of the
    /// resolution hold (another chunking or axis order).
    #[allow(clippy::too_many_arguments)]
    fn merged_record(
        &self,
        t: &RwTxn<'_>,
        cache: &CacheId,
        key: &ChunkKey,
        w: &ChunkWrite<'_>,
        old: Option<Result<RecordView<'_>>>,
        positions: &[u32],
        width: Option<usize>,
    ) -> Result<RecordBuilder> {
        let n = w.geo.record_points();
        let mut builder = match old {
            Some(Ok(old)) if old.n == n => {
                if old.kind != w.kind {
                    return Err(CoreError::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "this chunk's outputs are stored as {} but the function now returns {}; use a new cacheVersion",
                            kind_name(old.kind),
                            kind_name(w.kind)
                        ),
                    ));
                }
                RecordBuilder::from_view(&old)?
            }
            // Absent, corrupt or of another layout: start afresh.
            _ => RecordBuilder::new(w.kind, n)?,
        };
        for j in 0..w.points.count(w.geo.requested()) {
            let r = w.points.at(j);
            let bytes = match width {
                None => &w.data[w.offsets[j] as usize..w.offsets[j + 1] as usize],
                Some(sz) => &w.data[j * sz..(j + 1) * sz],
            };
            builder.set_in(positions[r as usize] as usize, bytes, w.dict)?;
        }
        // Consolidate from other records (another chunking or axis order).
        if builder.present() < n {
            if let Some(res) = w.res {
                for src in res.sources.iter().filter(|s| s.chunk != *key) {
                    let Some(bytes) = self.records.get(t, &rkey(cache, &src.chunk))? else { continue };
                    let Ok(view) = RecordView::parse(bytes) else { continue };
                    if view.kind != w.kind {
                        continue;
                    }
                    for &(r, p) in &src.map {
                        if (p as usize) < view.n && view.is_present(p as usize) {
                            builder.set_in(
                                positions[r as usize] as usize,
                                view.point(p as usize),
                                view.point_dict(p as usize),
                            )?;
                        }
                    }
                }
            }
        }
        Ok(builder)
    }
}

fn kind_name(kind: u8) -> String {
    if kind == crate::record::KIND_ITEMS {
        "items (any values)".to_string()
    } else {
        crate::canonical::DType::from_u8(kind).map_or("unknown".into(), |d| format!("a typed array of {}", d.name()))
    }
}
