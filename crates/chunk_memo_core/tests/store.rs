//! The LMDB chunk store on real environments in temporary directories:
//! round trips, partial records, re-chunking, extended axes, axis order,
//! corruption, the shared environment registry and deletion.

use chunk_memo_core::canonical::{encode, value_hash, DType, Value};
use chunk_memo_core::planner::{Axis, Grid, Plan};
use chunk_memo_core::record::KIND_ITEMS;
use chunk_memo_core::store::{CacheId, Catalog, ChunkGeometry, ChunkWrite, Resolution, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const F64: u8 = DType::F64 as u8;

/// A unique directory under the system temp dir, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
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
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cache_id(n: u8) -> CacheId {
    let mut id = [0u8; 16];
    id[0] = 0xca;
    id[15] = n;
    id
}

/// Value hash of the integer `i` (as the TS layer computes axis hashes).
fn vh(i: i64) -> u64 {
    value_hash(&encode(&Value::Int(i)).unwrap())
}

fn axis(name: &str, values: impl IntoIterator<Item = i64>, chunk: usize) -> Axis {
    Axis { name: name.into(), hashes: values.into_iter().map(vh).collect(), chunk }
}

fn grid(axes: Vec<Axis>) -> Grid {
    Grid::new(axes).unwrap()
}

fn all(g: &Grid) -> Vec<Option<Vec<u32>>> {
    vec![None; g.axes.len()]
}

/// A point's identity: (axis name, value hash), sorted by axis name so it
/// does not depend on the grid's axis order.
type PointId = Vec<(String, u64)>;

/// Identities of the requested points of a chunk, in request order.
fn point_ids(g: &Grid, geo: &ChunkGeometry) -> Vec<PointId> {
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
fn output(kind: u8, gen: u32, p: &PointId) -> Vec<u8> {
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

fn resolve(store: &Store, cache: &CacheId, g: &Grid, plan: &Plan) -> Vec<Resolution> {
    let mut catalog = Catalog::default();
    store.resolve(cache, g, plan, 0..plan.n_chunks, &mut catalog).unwrap()
}

/// Writes the given requested points (per chunk) with generation `gen`, in
/// one transaction.
#[allow(clippy::too_many_arguments)]
fn write_points(
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
            points: &b.0,
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
fn fill(store: &Store, cache: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>], kind: u8, gen: u32) -> usize {
    let plan = g.plan(sel).unwrap();
    let res = resolve(store, cache, g, &plan);
    write_points(store, cache, g, &plan, &res, kind, gen, |i, r| !res[i].is_present(r))
}

/// Every requested point of a selection with its stored bytes, if any.
/// Also checks that reads agree with the resolution and never return a
/// point the resolution did not promise.
fn read_all(store: &Store, cache: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>]) -> Vec<(PointId, Option<Vec<u8>>)> {
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

fn available(res: &[Resolution]) -> u64 {
    res.iter().map(|r| u64::from(r.available)).sum()
}

fn requested(res: &[Resolution]) -> u64 {
    res.iter().map(|r| u64::from(r.requested)).sum()
}

// ---------------------------------------------------------------------------

#[test]
fn items_record_round_trip() {
    let root = TempRoot::new("items");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..5, 2), axis("y", 10..13, 2)]);
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1), 15);
    for (id, bytes) in read_all(&store, &c, &g, &all(&g)) {
        assert_eq!(bytes.as_deref(), Some(&output(KIND_ITEMS, 1, &id)[..]));
    }
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 2), 0, "nothing is computed twice");
    let descs = store.descriptors(&c).unwrap();
    assert_eq!(descs.len(), 6);
    assert!(descs.iter().all(|(_, d)| d.present == d.n));
    assert!(store.verify(&c).unwrap().is_empty());
    // A subset is served from the same records.
    let sub = vec![Some(vec![1, 4]), Some(vec![2])];
    let got = read_all(&store, &c, &g, &sub);
    assert_eq!(got.len(), 2);
    for (id, bytes) in got {
        assert_eq!(bytes.unwrap(), output(KIND_ITEMS, 1, &id));
    }
    // A grid without axes has one point in one record.
    let c0 = cache_id(2);
    let g0 = grid(vec![]);
    assert_eq!(fill(&store, &c0, &g0, &[], KIND_ITEMS, 1), 1);
    let got = read_all(&store, &c0, &g0, &[]);
    assert_eq!(got, vec![(Vec::new(), Some(b"g1".to_vec()))]);
    assert_eq!(fill(&store, &c0, &g0, &[], KIND_ITEMS, 2), 0);
}

#[test]
fn typed_f64_record_round_trip() {
    let root = TempRoot::new("typed");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("a", 0..7, 3), axis("b", 0..4, 4)]);
    assert_eq!(fill(&store, &c, &g, &all(&g), F64, 1), 28);
    let plan = g.plan(&all(&g)).unwrap();
    let res = resolve(&store, &c, &g, &plan);
    for (i, r) in res.iter().enumerate() {
        let d = store.read_chunk(&c, r).unwrap();
        assert_eq!(d.kind, F64);
        assert!(d.offsets.is_empty());
        // The raw little-endian array of the chunk, in grid order.
        let want: Vec<u8> =
            point_ids(&g, &ChunkGeometry::of(&plan, i)).iter().flat_map(|p| output(F64, 1, p)).collect();
        assert_eq!(d.data, want);
    }
    // Storing items into a typed chunk is refused with a clear error.
    let res = resolve(&store, &c, &g, &plan);
    let geo = ChunkGeometry::of(&plan, 0);
    let w = ChunkWrite {
        geo: &geo,
        grid: &g,
        res: Some(&res[0]),
        kind: KIND_ITEMS,
        points: &[0],
        offsets: &[0, 1],
        data: b"x",
        dict: &[],
    };
    let err = store.write_chunks(&c, &[w]).unwrap_err();
    assert!(err.message.contains("cacheVersion"), "{}", err.message);
    // Wrong sizes are refused before anything is written.
    let w =
        ChunkWrite { geo: &geo, grid: &g, res: None, kind: F64, points: &[0], offsets: &[], data: &[0; 4], dict: &[] };
    assert!(store.write_chunks(&c, &[w]).is_err());
    let w =
        ChunkWrite { geo: &geo, grid: &g, res: None, kind: F64, points: &[99], offsets: &[], data: &[0; 8], dict: &[] };
    assert!(store.write_chunks(&c, &[w]).is_err());
}

#[test]
fn partial_records_are_filled_never_overwritten() {
    let root = TempRoot::new("partial");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..5, 5), axis("y", 0..3, 3)]);
    let sub = vec![Some(vec![0, 3]), Some(vec![1])];
    assert_eq!(fill(&store, &c, &g, &sub, KIND_ITEMS, 1), 2);
    let descs = store.descriptors(&c).unwrap();
    assert_eq!(descs.len(), 1);
    assert_eq!((descs[0].1.n, descs[0].1.present), (15, 2));

    // The whole grid sees exactly the two stored points.
    let plan = g.plan(&all(&g)).unwrap();
    let res = resolve(&store, &c, &g, &plan);
    assert_eq!(available(&res), 2);
    let ids = point_ids(&g, &ChunkGeometry::of(&plan, 0));
    let early: Vec<PointId> =
        vec![vec![("x".into(), vh(0)), ("y".into(), vh(1))], vec![("x".into(), vh(3)), ("y".into(), vh(1))]];
    for (r, id) in ids.iter().enumerate() {
        assert_eq!(res[0].is_present(r), early.contains(id), "point {r}");
    }

    // A later run fills the rest; the earlier points keep their outputs.
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 2), 13);
    let check = |gen_late: u32| {
        for (id, bytes) in read_all(&store, &c, &g, &all(&g)) {
            let gen = if early.contains(&id) { 1 } else { gen_late };
            assert_eq!(bytes.unwrap(), output(KIND_ITEMS, gen, &id));
        }
    };
    check(2);
    let descs = store.descriptors(&c).unwrap();
    assert_eq!((descs[0].1.n, descs[0].1.present), (15, 15));

    // Writing every point again changes nothing.
    let res = resolve(&store, &c, &g, &plan);
    assert_eq!(write_points(&store, &c, &g, &plan, &res, KIND_ITEMS, 3, |_, _| true), 15);
    check(2);
    assert!(store.verify(&c).unwrap().is_empty());
}

#[test]
fn rechunking_reuses_stored_points() {
    let root = TempRoot::new("rechunk");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g44 = grid(vec![axis("x", 0..8, 4), axis("y", 0..8, 4)]);
    assert_eq!(fill(&store, &c, &g44, &all(&g44), KIND_ITEMS, 1), 64);

    let g35 = grid(vec![axis("x", 0..8, 3), axis("y", 0..8, 5)]);
    let plan = g35.plan(&all(&g35)).unwrap();
    assert_eq!(plan.n_chunks, 6);
    let res = resolve(&store, &c, &g35, &plan);
    for r in &res {
        assert_eq!(r.available, r.requested, "every point of chunk {:?} is stored", r.key);
        assert!(r.corrupt.is_empty());
    }
    let got = read_all(&store, &c, &g35, &all(&g35));
    assert_eq!(got.len(), 64);
    for (id, bytes) in got {
        assert_eq!(bytes.unwrap(), output(KIND_ITEMS, 1, &id));
    }
    assert_eq!(fill(&store, &c, &g35, &all(&g35), KIND_ITEMS, 2), 0);
    // A subset under the new chunking too.
    let sub = vec![Some(vec![2, 3, 7]), Some(vec![0, 4, 5])];
    for (id, bytes) in read_all(&store, &c, &g35, &sub) {
        assert_eq!(bytes.unwrap(), output(KIND_ITEMS, 1, &id));
    }

    // Half stored under (4,4), the rest computed under (3,5): the new
    // records copy in the old points, so later reads need one record each.
    let c2 = cache_id(2);
    let half = vec![Some(vec![0, 1, 2, 3]), None];
    assert_eq!(fill(&store, &c2, &g44, &half, F64, 1), 32);
    let res = resolve(&store, &c2, &g35, &plan);
    assert_eq!(available(&res), 32);
    assert_eq!(fill(&store, &c2, &g35, &all(&g35), F64, 2), 32);
    for (id, bytes) in read_all(&store, &c2, &g35, &all(&g35)) {
        let x = id.iter().find(|(n, _)| n == "x").unwrap().1;
        let gen = if (0..4).any(|i| vh(i) == x) { 1 } else { 2 };
        assert_eq!(bytes.unwrap(), output(F64, gen, &id));
    }
    // Chunks of the first x bin (x 0..3) were fully stored and not written
    // again; the others were written, consolidating the old points.
    let res = resolve(&store, &c2, &g35, &plan);
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.available, r.requested);
        if plan.chunk(i)[0].bin > 0 {
            assert_eq!(r.sources.len(), 1, "chunk {i} consolidated into its own record");
            assert_eq!(r.sources[0].chunk, r.key);
        } else {
            assert!(r.sources.iter().all(|s| s.chunk != r.key), "chunk {i} is served by the (4,4) records");
        }
    }
    assert!(store.verify(&c2).unwrap().is_empty());
}

#[test]
fn extended_axes_report_exactly_the_new_points_missing() {
    let root = TempRoot::new("extend");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..8, 3), axis("y", 0..8, 3)]);
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1), 64);

    // New values after the old ones, and before them (indices shift).
    for xs in [(0..11).collect::<Vec<i64>>(), (-3..8).collect()] {
        let ext = grid(vec![axis("x", xs.iter().copied(), 3), axis("y", 0..8, 3)]);
        let plan = ext.plan(&all(&ext)).unwrap();
        let res = resolve(&store, &c, &ext, &plan);
        assert_eq!(requested(&res), 88);
        assert_eq!(available(&res), 64);
        let old: Vec<u64> = (0..8).map(vh).collect();
        for (i, r) in res.iter().enumerate() {
            for (j, id) in point_ids(&ext, &ChunkGeometry::of(&plan, i)).iter().enumerate() {
                let x = id.iter().find(|(n, _)| n == "x").unwrap().1;
                assert_eq!(r.is_present(j), old.contains(&x), "chunk {i} point {j}");
            }
        }
        for (id, bytes) in read_all(&store, &c, &ext, &all(&ext)) {
            let x = id.iter().find(|(n, _)| n == "x").unwrap().1;
            assert_eq!(bytes.is_some(), old.contains(&x));
            if let Some(b) = bytes {
                assert_eq!(b, output(KIND_ITEMS, 1, &id));
            }
        }
    }
    // Running the extension computes only the new points.
    let ext = grid(vec![axis("x", 0..11, 3), axis("y", 0..8, 3)]);
    assert_eq!(fill(&store, &c, &ext, &all(&ext), KIND_ITEMS, 2), 24);
    assert_eq!(fill(&store, &c, &ext, &all(&ext), KIND_ITEMS, 3), 0);
    // A new axis value on the second axis as well.
    let ext2 = grid(vec![axis("x", 0..11, 3), axis("y", 0..9, 3)]);
    assert_eq!(fill(&store, &c, &ext2, &all(&ext2), KIND_ITEMS, 4), 11);
}

#[test]
fn another_axis_order_finds_the_points() {
    let root = TempRoot::new("order");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let xy = grid(vec![axis("x", 0..6, 4), axis("y", 0..5, 2)]);
    assert_eq!(fill(&store, &c, &xy, &all(&xy), KIND_ITEMS, 1), 30);
    for chunks in [(2usize, 4usize), (5, 6), (1, 1)] {
        let yx = grid(vec![axis("y", 0..5, chunks.0), axis("x", 0..6, chunks.1)]);
        let plan = yx.plan(&all(&yx)).unwrap();
        let res = resolve(&store, &c, &yx, &plan);
        assert_eq!(available(&res), 30);
        for (id, bytes) in read_all(&store, &c, &yx, &all(&yx)) {
            assert_eq!(bytes.unwrap(), output(KIND_ITEMS, 1, &id));
        }
    }
    let yx = grid(vec![axis("y", 0..5, 3), axis("x", 0..6, 4)]);
    assert_eq!(fill(&store, &c, &yx, &all(&yx), KIND_ITEMS, 2), 0);
}

#[test]
fn corrupt_records_are_reported_and_treated_as_missing() {
    let root = TempRoot::new("corrupt");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..4, 2), axis("y", 0..4, 2)]);
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1), 16);
    // A partial record in the last chunk: fill only some of its points.
    let c_part = cache_id(2);
    assert_eq!(fill(&store, &c_part, &g, &[Some(vec![2, 3]), Some(vec![2])], KIND_ITEMS, 1), 2);

    let plan = g.plan(&all(&g)).unwrap();
    let res = resolve(&store, &c, &g, &plan);
    let bad = res[0].key;
    let bytes = store.get_record(&c, &bad).unwrap().unwrap();
    let mut flipped = bytes.clone();
    let k = bytes.len() - 12; // in the data area, before the checksum
    flipped[k] ^= 0x20;
    store.put_raw_record_for_tests(&c, &bad, &flipped).unwrap();
    let part_key = resolve(&store, &c_part, &g, &plan)[3].key;
    let pb = store.get_record(&c_part, &part_key).unwrap().unwrap();
    store.put_raw_record_for_tests(&c_part, &part_key, &pb[..pb.len() / 2]).unwrap();

    // verify names exactly the bad records.
    let v = store.verify(&c).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, bad);
    assert!(v[0].1.contains("checksum"), "{}", v[0].1);
    let v = store.verify(&c_part).unwrap();
    assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), vec![part_key]);

    // resolve reports them and counts their points as missing.
    for (cache, chunk) in [(c, 0usize), (c_part, 3)] {
        let res = resolve(&store, &cache, &g, &plan);
        let r = &res[chunk];
        assert_eq!(r.corrupt.len(), 1, "corruption reported in the resolution");
        assert_eq!(r.available, 0, "nothing of a bad record is available");
        for j in 0..r.requested as usize {
            assert!(!r.is_present(j));
        }
        for (i, r) in res.iter().enumerate() {
            if i != chunk {
                assert!(r.corrupt.is_empty());
            }
        }
        // Reads never return data from the bad record, even through a
        // resolution made before the corruption was known.
        let d = store.read_chunk(&cache, r).unwrap();
        assert!(d.present.iter().all(|&p| !p));
        assert!(d.data.is_empty());
    }
    let stale = Resolution { sources: res[0].sources.clone(), ..res[0].clone() };
    let d = store.read_chunk(&c, &stale).unwrap();
    assert!(d.present.iter().all(|&p| !p));
    assert_eq!(d.corrupt.len(), 1);

    // A re-run recomputes exactly the lost points and repairs the records.
    assert_eq!(fill(&store, &c, &g, &all(&g), KIND_ITEMS, 2), 4);
    assert!(store.verify(&c).unwrap().is_empty());
    let bad_ids = point_ids(&g, &ChunkGeometry::of(&plan, 0));
    for (id, bytes) in read_all(&store, &c, &g, &all(&g)) {
        let gen = if bad_ids.contains(&id) { 2 } else { 1 };
        assert_eq!(bytes.unwrap(), output(KIND_ITEMS, gen, &id));
    }
    assert_eq!(fill(&store, &c_part, &g, &all(&g), KIND_ITEMS, 2), 16);
    assert!(store.verify(&c_part).unwrap().is_empty());
}

#[test]
fn one_environment_per_root_shared_by_threads() {
    let root = TempRoot::new("shared");
    let s1 = Store::open(root.path()).unwrap();
    let s2 = Store::open(root.path()).unwrap();
    assert!(Arc::ptr_eq(&s1, &s2));
    // Another spelling of the same directory.
    std::fs::create_dir_all(root.path().join("sub")).unwrap();
    let s3 = Store::open(&root.path().join("sub").join("..")).unwrap();
    assert!(Arc::ptr_eq(&s1, &s3));
    let other = TempRoot::new("shared-other");
    let s4 = Store::open(other.path()).unwrap();
    assert!(!Arc::ptr_eq(&s1, &s4));
    drop(s4);

    let c = cache_id(1);
    let g = Arc::new(grid(vec![axis("x", 0..16, 2), axis("y", 0..6, 3)]));
    let plan = Arc::new(g.plan(&all(&g)).unwrap());
    assert_eq!(plan.n_chunks, 16);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (root, s1, g, plan) = (root.path().to_path_buf(), s1.clone(), g.clone(), plan.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                assert!(Arc::ptr_eq(&store, &s1));
                for i in (t..plan.n_chunks).step_by(4) {
                    let res = resolve(&store, &c, &g, &plan);
                    // Write chunk i in two transactions: first half, then the rest.
                    write_points(&store, &c, &g, &plan, &res, F64, 1, |ci, r| ci == i && r % 2 == 0);
                    let res = resolve(&store, &c, &g, &plan);
                    write_points(&store, &c, &g, &plan, &res, F64, 1, |ci, r| ci == i && !res[ci].is_present(r));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let res = resolve(&s1, &c, &g, &plan);
    assert_eq!(available(&res), 96);
    for (id, bytes) in read_all(&s2, &c, &g, &all(&g)) {
        assert_eq!(bytes.unwrap(), output(F64, 1, &id));
    }
    assert!(s1.verify(&c).unwrap().is_empty());
    assert_eq!(s1.descriptors(&c).unwrap().len(), 16);
}

#[test]
fn delete_cache_removes_everything_and_data_persists() {
    let root = TempRoot::new("delete");
    let (a, b) = (cache_id(1), cache_id(2));
    let g = grid(vec![axis("x", 0..6, 4), axis("y", 0..3, 2)]);
    {
        let store = Store::open(root.path()).unwrap();
        store.put_meta(&a, b"meta a").unwrap();
        store.put_meta(&b, b"meta b").unwrap();
        assert_eq!(fill(&store, &a, &g, &all(&g), KIND_ITEMS, 1), 18);
        assert_eq!(fill(&store, &b, &g, &all(&g), F64, 1), 18);
        // Reads note access times.
        read_all(&store, &a, &g, &all(&g));
        assert_eq!(store.access_times(&a).unwrap().len(), 4);

        assert_eq!(store.delete_cache(&a).unwrap(), 4);
        assert_eq!(store.get_meta(&a).unwrap(), None);
        assert!(store.descriptors(&a).unwrap().is_empty());
        assert!(store.access_times(&a).unwrap().is_empty());
        let plan = g.plan(&all(&g)).unwrap();
        let res = resolve(&store, &a, &g, &plan);
        assert_eq!(available(&res), 0);
        for r in &res {
            assert_eq!(store.get_record(&a, &r.key).unwrap(), None);
        }
        assert!(store.verify(&a).unwrap().is_empty());
        // The other cache is untouched.
        let metas = store.list_meta().unwrap();
        assert_eq!(metas, vec![(b, b"meta b".to_vec())]);
        assert_eq!(store.descriptors(&b).unwrap().len(), 4);
        assert_eq!(store.delete_cache(&a).unwrap(), 0, "deleting twice is harmless");
    }
    // Everything committed survives closing and reopening the environment.
    let store = Store::open(root.path()).unwrap();
    assert_eq!(store.get_meta(&b).unwrap().as_deref(), Some(&b"meta b"[..]));
    for (id, bytes) in read_all(&store, &b, &g, &all(&g)) {
        assert_eq!(bytes.unwrap(), output(F64, 1, &id));
    }
    assert_eq!(fill(&store, &a, &g, &all(&g), KIND_ITEMS, 2), 18, "a deleted cache starts afresh");
    assert!(store.disk_bytes().unwrap() > 0);
}

#[test]
fn points_keep_the_dictionary_of_their_write() {
    let dir = TempRoot::new("dicts");
    let store = Store::open(dir.path()).unwrap();
    let cache = cache_id(77);
    let g = grid(vec![axis("x", 0..4, 4)]);
    let plan = g.plan(&[None]).unwrap();
    let geo = ChunkGeometry::of(&plan, 0);
    let mut cat = Catalog::default();
    let res = store.resolve(&cache, &g, &plan, 0..1, &mut cat).unwrap();
    let w1 = ChunkWrite {
        geo: &geo,
        grid: &g,
        res: Some(&res[0]),
        kind: KIND_ITEMS,
        points: &[0, 2],
        offsets: &[0, 1, 3],
        data: b"abb",
        dict: b"D1",
    };
    store.write_chunks(&cache, &[w1]).unwrap();
    let w2 = ChunkWrite {
        geo: &geo,
        grid: &g,
        res: None,
        kind: KIND_ITEMS,
        points: &[1, 3],
        offsets: &[0, 2, 3],
        data: b"ccd",
        dict: b"D2",
    };
    store.write_chunks(&cache, &[w2]).unwrap();
    let mut cat = Catalog::default();
    let res = store.resolve(&cache, &g, &plan, 0..1, &mut cat).unwrap();
    let d = store.read_chunk(&cache, &res[0]).unwrap();
    assert_eq!(d.data, b"accbbd");
    assert_eq!(d.offsets, vec![0, 1, 3, 5, 6]);
    assert_eq!(d.dicts, vec![b"D1".to_vec(), b"D2".to_vec()]);
    assert_eq!(d.point_dicts, vec![0, 1, 0, 1]);
    // Totals come from the index tails and agree with the descriptors.
    let sum = store.summary(&cache).unwrap();
    let descs = store.descriptors(&cache).unwrap();
    assert_eq!(sum.records, 1);
    assert_eq!(sum.points, 4);
    assert_eq!(sum.bytes, descs[0].1.bytes);
    assert_eq!(sum.last_write_ms, descs[0].1.updated_ms);
    assert_eq!(store.summary(&cache_id(78)).unwrap(), Default::default());
}
