//! The LMDB chunk store on real environments in temporary directories:
//! round trips, partial records, re-chunking, extended axes, axis order
//! (corruption, the environment registry, deletion and dictionaries:
//! `store_upkeep.rs`).

mod common;

use chunk_memo_core::store::ChunkKey;
use common::*;

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
        points: WritePoints::Given(&[0]),
        offsets: &[0, 1],
        data: b"x",
        dict: &[],
    };
    let err = store.write_chunks(&c, &[w]).unwrap_err();
    assert!(err.message.contains("cacheVersion"), "{}", err.message);
    // Wrong sizes are refused before anything is written.
    let w = f64_write(&geo, &g, WritePoints::Given(&[0]), &[0; 4]);
    assert!(store.write_chunks(&c, &[w]).is_err());
    let w = f64_write(&geo, &g, WritePoints::Given(&[99]), &[0; 8]);
    assert!(store.write_chunks(&c, &[w]).is_err());
}

#[test]
fn whole_chunk_writes_store_what_listed_points_store() {
    // Every requested point without a list (WritePoints::All) gives the
    // same records as the same points listed: for a chunk selecting whole
    // bins (dense) and for a selection inside bins (merged by request order).
    let g = grid(vec![axis("a", 0..7, 3), axis("b", 0..4, 4)]);
    for sel in [all(&g), vec![Some(vec![0, 2, 4]), Some(vec![1, 3])]] {
        let plan = g.plan(&sel).unwrap();
        let records = |whole: bool| {
            let root = TempRoot::new("whole-write");
            let store = Store::open(root.path()).unwrap();
            let c = cache_id(1);
            for i in 0..plan.n_chunks {
                let geo = ChunkGeometry::of(&plan, i);
                let req = geo.requested();
                let listed: Vec<u32> = (0..req as u32).collect();
                let data: Vec<u8> = (0..req).flat_map(|j| (i as f64 * 100.0 + j as f64).to_le_bytes()).collect();
                let points = if whole { WritePoints::All } else { WritePoints::Given(&listed) };
                let w = f64_write(&geo, &g, points, &data);
                store.write_chunks(&c, &[w]).unwrap();
            }
            let res = resolve(&store, &c, &g, &plan);
            let got: Vec<(Vec<bool>, Vec<u8>)> = res
                .iter()
                .map(|r| {
                    let d = store.read_chunk(&c, r).unwrap();
                    (d.present.clone(), d.data.clone())
                })
                .collect();
            (got, store.descriptors(&c).unwrap().into_iter().map(|(_, d)| (d.n, d.present)).collect::<Vec<_>>())
        };
        assert_eq!(records(true), records(false));
        let (chunks, _) = records(true);
        assert!(chunks.iter().all(|(present, _)| present.iter().all(|&p| p)));
    }
    // A whole write with bytes for another number of points is refused.
    let root = TempRoot::new("whole-write-bad");
    let store = Store::open(root.path()).unwrap();
    let plan = g.plan(&all(&g)).unwrap();
    let geo = ChunkGeometry::of(&plan, 0);
    let w = f64_write(&geo, &g, WritePoints::All, &[0; 8]);
    assert!(store.write_chunks(&cache_id(1), &[w]).is_err());
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
fn chunks_read_together_from_records_of_another_chunking_match_reads_one_by_one() {
    let root = TempRoot::new("read-memo");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    // Stored in chunks of 6 x 4; read as one-point chunks, every one served by a larger record.
    let big = grid(vec![axis("a", 0..12, 6), axis("b", 0..4, 4)]);
    assert_eq!(fill(&store, &c, &big, &all(&big), KIND_ITEMS, 1), 48);
    let small = grid(vec![axis("a", 0..12, 1), axis("b", 0..4, 1)]);
    let plan = small.plan(&all(&small)).unwrap();
    let res = resolve(&store, &c, &small, &plan);
    let one_by_one: Vec<ChunkData> = res.iter().map(|r| store.read_chunk(&c, r).unwrap()).collect();
    let together: Vec<ChunkData> = store
        .read(|s, t| {
            let mut memo = ReadMemo::default();
            res.iter()
                .map(|r| s.read_chunk_memo(t, &c, r, &mut memo))
                .collect::<chunk_memo_core::error::Result<Vec<_>>>()
        })
        .unwrap();
    assert_eq!(together, one_by_one);
    assert!(together.iter().all(|d| d.present == [true]));
}

#[test]
fn records_verified_ahead_on_several_threads_serve_a_subset_as_reads_one_by_one() {
    let root = TempRoot::new("verify-ahead");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    // 16 records of 10,000 points (more than VERIFY_AHEAD_BYTES in all),
    // read through a subset: a few points of every record.
    let g = grid(vec![axis("a", 0..400, 100), axis("b", 0..400, 100)]);
    fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1);
    let sel = [Some((0..400).step_by(7).collect()), Some((0..400).step_by(3).collect())];
    let plan = g.plan(&sel).unwrap();
    // One record damaged: its checksum fails.
    let res = resolve(&store, &c, &g, &plan);
    let damaged = res[5].sources[0].chunk;
    let mut bytes = store.get_record(&c, &damaged).unwrap().unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    store.put_raw_record_for_tests(&c, &damaged, &bytes).unwrap();
    let one_by_one: Vec<ChunkData> = res.iter().map(|r| store.read_chunk(&c, r).unwrap()).collect();
    let (ahead, together) = store
        .read(|s, t| {
            let mut memo = ReadMemo::default();
            let keys = res.iter().flat_map(|r| r.sources.iter().map(|src| src.chunk)).collect();
            let ahead = memo.verify_ahead(s, t, &c, keys)?;
            let d = res
                .iter()
                .map(|r| s.read_chunk_memo(t, &c, r, &mut memo))
                .collect::<chunk_memo_core::error::Result<Vec<_>>>()?;
            Ok((ahead, d))
        })
        .unwrap();
    assert!(ahead, "16 records of 10,000 points are verified ahead");
    assert_eq!(together, one_by_one);
    // The damage is reported, and the other chunks are read in full.
    assert_eq!(together[5].corrupt.len(), 1);
    assert!(together[5].present.iter().all(|p| !p));
    for (i, d) in together.iter().enumerate().filter(|&(i, _)| i != 5) {
        assert!(d.corrupt.is_empty() && d.present.iter().all(|&p| p), "chunk {i} read in full");
    }
}

#[test]
fn write_behind_jobs_commit_in_order_and_report_their_outcome() {
    let root = TempRoot::new("behind");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = Arc::new(grid(vec![axis("x", 0..40, 4)]));
    let plan = Arc::new(g.plan(&all(&g)).unwrap());
    let res = Arc::new(resolve(&store, &c, &g, &plan));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    // One job per chunk, queued at once; job 3 fails (a point out of range).
    let jobs: Vec<_> = (0..plan.n_chunks)
        .map(|i| {
            let (g, plan, res, order) = (g.clone(), plan.clone(), res.clone(), order.clone());
            store.behind(false, move |s| {
                order.lock().unwrap().push(i);
                if i == 3 {
                    let geo = ChunkGeometry::of(&plan, i);
                    return s.write_chunks(&c, &[f64_write(&geo, &g, WritePoints::Given(&[9]), &[0; 8])]);
                }
                write_points(s, &c, &g, &plan, &res, F64, 1, |k, _| k == i);
                Ok(())
            })
        })
        .collect();
    for (i, j) in jobs.iter().enumerate() {
        let r = j.wait();
        assert_eq!(r.is_err(), i == 3, "job {i}: {r:?}");
        // An outcome is taken once.
        assert!(j.try_take().is_none());
    }
    assert_eq!(*order.lock().unwrap(), (0..plan.n_chunks).collect::<Vec<_>>());
    // Every chunk but 3 is stored, as a write on this thread stores it.
    for (id, bytes) in read_all(&store, &c, &g, &all(&g)) {
        let x = id[0].1;
        let in3 = (12..16).any(|v| vh(v) == x);
        assert_eq!(bytes.is_none(), in3);
        if let Some(b) = bytes {
            assert_eq!(b, output(F64, 1, &id));
        }
    }
}

#[test]
fn write_behind_jobs_queued_first_overtake_queued_ones() {
    let root = TempRoot::new("behind-first");
    let store = Store::open(root.path()).unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The first job holds the thread until every other one is queued.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let hold = store.behind(false, move |_| {
        wait.recv().unwrap();
        Ok(())
    });
    let jobs: Vec<_> = [(1, false), (2, false), (3, true), (4, false), (5, true)]
        .into_iter()
        .map(|(n, first)| {
            let order = order.clone();
            store.behind(first, move |_| {
                order.lock().unwrap().push(n);
                Ok(n)
            })
        })
        .collect();
    go.send(()).unwrap();
    hold.wait().unwrap();
    for (k, j) in jobs.iter().enumerate() {
        assert_eq!(j.wait().unwrap(), [1, 2, 3, 4, 5][k]);
    }
    assert_eq!(*order.lock().unwrap(), vec![3, 5, 1, 2, 4]);
}

#[test]
fn records_in_view_are_split_into_those_holding_only_view_points_and_the_others() {
    let root = TempRoot::new("in-view");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    // 4 x 3 chunks of 3 x 2 points, every point stored.
    let g = grid(vec![axis("x", 0..12, 3), axis("y", 0..6, 2)]);
    fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1);
    // A record of other axes, and one of another cache: never in view.
    fill(&store, &c, &grid(vec![axis("z", 0..4, 4)]), &[None], KIND_ITEMS, 1);
    fill(&store, &cache_id(2), &g, &all(&g), KIND_ITEMS, 1);
    let hashes = |a: usize, idx: &[usize]| idx.iter().map(|&i| g.axes[a].hashes[i]).collect::<Vec<u64>>();
    let keys = |sel: &[Option<Vec<u32>>]| -> Vec<ChunkKey> {
        let plan = g.plan(sel).unwrap();
        let mut k: Vec<ChunkKey> = resolve(&store, &c, &g, &plan).iter().map(|r| r.key).collect();
        k.sort_unstable();
        k
    };
    // x in 0..6 (two whole bins), y in 0..3 (a bin and a half).
    let view = vec![("x".to_string(), hashes(0, &[0, 1, 2, 3, 4, 5])), ("y".to_string(), hashes(1, &[0, 1, 2]))];
    let (mut whole, partial) = store.records_in_view(&c, &view).unwrap();
    whole.sort_unstable();
    assert_eq!(whole, keys(&[Some(vec![0, 1, 2, 3, 4, 5]), Some(vec![0, 1])]), "the chunks of x bins 0-1, y bin 0");
    let mut part: Vec<ChunkKey> = partial.iter().map(|(k, _)| *k).collect();
    part.sort_unstable();
    assert_eq!(part, keys(&[Some(vec![0, 1, 2, 3, 4, 5]), Some(vec![2, 3])]), "y bin 1, half in view");
    assert!(partial.iter().all(|(_, d)| d.axes.len() == 2 && d.present == 6));
    // Axes named otherwise than the view's: nothing.
    let other = vec![("x".to_string(), hashes(0, &[0])), ("w".to_string(), vec![1, 2])];
    assert_eq!(store.records_in_view(&c, &other).unwrap(), (Vec::new(), Vec::new()));
    // Nothing of the view stored: nothing.
    let none = vec![("x".to_string(), vec![12345]), ("y".to_string(), hashes(1, &[0]))];
    assert_eq!(store.records_in_view(&c, &none).unwrap().0.len(), 0);
}
