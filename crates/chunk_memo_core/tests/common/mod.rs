//! Helpers of the store tests (`store.rs`, `store_upkeep.rs`): temporary
//! roots, grids of integer axes, a test "function" and read-back of every
//! requested point.

#![allow(dead_code, unused_imports)] // each test file uses a part

pub use chunk_memo_core::canonical::{encode, value_hash, DType, Value};
pub use chunk_memo_core::planner::{Axis, Grid, Plan};
pub use chunk_memo_core::record::KIND_ITEMS;
pub use chunk_memo_core::store::{
    CacheId, Catalog, ChunkData, ChunkGeometry, ChunkWrite, ReadMemo, Resolution, Store, WritePoints,
};
pub use std::path::{Path, PathBuf};
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::Arc;

pub const F64: u8 = DType::F64 as u8;

/// A unique directory under the system temp dir, removed on drop.
pub struct TempRoot(pub PathBuf);

impl TempRoot {
    pub fn new(tag: &str) -> TempRoot {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!(
            "chunk-memo-store-test-{}-{tag}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn cache_id(n: u8) -> CacheId {
    let mut id = [0u8; 16];
    id[0] = 0xca;
    id[15] = n;
    id
}

/// Value hash of the integer `i` (as the TS layer computes axis hashes).
pub fn vh(i: i64) -> u64 {
    value_hash(&encode(&Value::Int(i)).unwrap())
}

pub fn axis(name: &str, values: impl IntoIterator<Item = i64>, chunk: usize) -> Axis {
    Axis { name: name.into(), hashes: values.into_iter().map(vh).collect(), chunk }
}

pub fn grid(axes: Vec<Axis>) -> Grid {
    Grid::new(axes).unwrap()
}

pub fn all(g: &Grid) -> Vec<Option<Vec<u32>>> {
    vec![None; g.axes.len()]
}

/// A point's identity: (axis name, value hash), sorted by axis name so it
/// does not depend on the grid's axis order.
pub type PointId = Vec<(String, u64)>;

/// Identities of the requested points of a chunk, in request order.
pub fn point_ids(g: &Grid, geo: &ChunkGeometry) -> Vec<PointId> {
    let mut out: Vec<PointId> = vec![Vec::new()];
    for (a, ax) in g.axes.iter().enumerate() {
        let base = geo.bins[a] as usize * ax.chunk;
        let mut next = Vec::new();
        for p in &out {
            for &o in &geo.sel[a] {
                let mut q = p.clone();
                q.push((ax.name.clone(), ax.hashes[base + o as usize]));
                next.push(q);
            }
        }
        out = next;
    }
    for p in &mut out {
        p.sort();
    }
    out
}

/// The output a test "function" of generation `gen` gives a point.
pub fn output(kind: u8, gen: u32, p: &PointId) -> Vec<u8> {
    if kind == KIND_ITEMS {
        let mut s = format!("g{gen}");
        for (n, h) in p {
            s.push_str(&format!(";{n}={h:x}"));
        }
        s.into_bytes()
    } else {
        assert_eq!(kind, F64);
        let mut x = f64::from(gen) * 1e6;
        for (k, (_, h)) in p.iter().enumerate() {
            x += (h % 1000) as f64 * 10f64.powi(k as i32 * 3) + 0.25;
        }
        x.to_le_bytes().to_vec()
    }
}

pub fn resolve(store: &Store, cache: &CacheId, g: &Grid, plan: &Plan) -> Vec<Resolution> {
    let mut catalog = Catalog::default();
    store.resolve(cache, g, plan, 0..plan.n_chunks, &mut catalog).unwrap()
}

/// Writes the given requested points (per chunk) with generation `gen`, in
/// one transaction.
#[allow(clippy::too_many_arguments)]
pub fn write_points(
    store: &Store,
    cache: &CacheId,
    g: &Grid,
    plan: &Plan,
    res: &[Resolution],
    kind: u8,
    gen: u32,
    pick: impl Fn(usize, usize) -> bool,
) -> usize {
    let geos: Vec<ChunkGeometry> = (0..plan.n_chunks).map(|i| ChunkGeometry::of(plan, i)).collect();
    let mut bufs: Vec<(Vec<u32>, Vec<u32>, Vec<u8>)> = Vec::new();
    for (i, geo) in geos.iter().enumerate() {
        let ids = point_ids(g, geo);
        let (mut points, mut offsets, mut data) = (Vec::new(), vec![0u32], Vec::new());
        for (r, id) in ids.iter().enumerate() {
            if pick(i, r) {
                points.push(r as u32);
                data.extend_from_slice(&output(kind, gen, id));
                offsets.push(data.len() as u32);
            }
        }
        if kind != KIND_ITEMS {
            offsets.clear();
        }
        bufs.push((points, offsets, data));
    }
    let writes: Vec<ChunkWrite<'_>> = geos
        .iter()
        .zip(&bufs)
        .enumerate()
        .filter(|(_, (_, b))| !b.0.is_empty())
        .map(|(i, (geo, b))| ChunkWrite {
            geo,
            grid: g,
            res: Some(&res[i]),
            kind,
            points: WritePoints::Given(&b.0),
            offsets: &b.1,
            data: &b.2,
            dict: &[],
        })
        .collect();
    let n = bufs.iter().map(|b| b.0.len()).sum();
    if !writes.is_empty() {
        store.write_chunks(cache, &writes).unwrap();
    }
    n
}

/// Computes and stores every missing point of a selection (as a run would);
/// returns how many points were computed.
pub fn fill(store: &Store, cache: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>], kind: u8, gen: u32) -> usize {
    let plan = g.plan(sel).unwrap();
    let res = resolve(store, cache, g, &plan);
    write_points(store, cache, g, &plan, &res, kind, gen, |i, r| !res[i].is_present(r))
}

/// Every requested point of a selection with its stored bytes, if any.
/// Also checks that reads agree with the resolution and never return a
/// point the resolution did not promise.
pub fn read_all(store: &Store, cache: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>]) -> Vec<(PointId, Option<Vec<u8>>)> {
    let plan = g.plan(sel).unwrap();
    let res = resolve(store, cache, g, &plan);
    let mut out = Vec::new();
    for (i, r) in res.iter().enumerate() {
        let geo = ChunkGeometry::of(&plan, i);
        let ids = point_ids(g, &geo);
        assert_eq!(r.requested as usize, ids.len());
        let d = store.read_chunk(cache, r).unwrap();
        assert_eq!(d.present.len(), ids.len());
        let width = if d.kind == KIND_ITEMS { None } else { Some(DType::from_u8(d.kind).unwrap().size()) };
        let mut k = 0usize;
        for (j, id) in ids.into_iter().enumerate() {
            if d.present[j] {
                assert!(r.is_present(j), "read returned a point the resolution did not report");
                let bytes = match width {
                    None => d.data[d.offsets[k] as usize..d.offsets[k + 1] as usize].to_vec(),
                    Some(w) => d.data[k * w..(k + 1) * w].to_vec(),
                };
                k += 1;
                out.push((id, Some(bytes)));
            } else {
                if d.corrupt.is_empty() {
                    assert!(!r.is_present(j), "a reported point was not read");
                }
                out.push((id, None));
            }
        }
        match width {
            None => assert_eq!(d.offsets.len(), k + 1),
            Some(w) => assert_eq!(d.data.len(), k * w),
        }
    }
    out
}

pub fn available(res: &[Resolution]) -> u64 {
    res.iter().map(|r| u64::from(r.available)).sum()
}

pub fn requested(res: &[Resolution]) -> u64 {
    res.iter().map(|r| u64::from(r.requested)).sum()
}

/// A write of float64 outputs (`data`, raw little-endian) for `points` of
/// the chunk `geo`, resolved against nothing.
pub fn f64_write<'a>(
    geo: &'a ChunkGeometry,
    grid: &'a Grid,
    points: WritePoints<'a>,
    data: &'a [u8],
) -> ChunkWrite<'a> {
    ChunkWrite { geo, grid, res: None, kind: F64, points, offsets: &[], data, dict: &[] }
}
