//! The LMDB chunk store on real environments in temporary directories:
//! corruption, the shared environment registry, deletion and persistence,
//! dictionaries of merged writes.

mod common;

use common::*;

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
        points: WritePoints::Given(&[0, 2]),
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
        points: WritePoints::Given(&[1, 3]),
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
    assert_eq!(d, general_read(&store, &cache, &res[0]), "the whole-record read equals the point-by-point one");
    // Totals come from the index tails and agree with the descriptors.
    let sum = store.summary(&cache).unwrap();
    let descs = store.descriptors(&cache).unwrap();
    assert_eq!(sum.records, 1);
    assert_eq!(sum.points, 4);
    assert_eq!(sum.bytes, descs[0].1.bytes);
    assert_eq!(sum.last_write_ms, descs[0].1.updated_ms);
    assert_eq!(store.summary(&cache_id(78)).unwrap(), Default::default());
}

/// `res`'s points read point by point (the general path), not as a whole record.
fn general_read(store: &Store, cache: &[u8; 16], res: &Resolution) -> ChunkData {
    let mut r = res.clone();
    for src in &mut r.sources {
        assert!(src.whole.is_some(), "the resolution reads a whole record");
        src.map = src.pairs();
        src.whole = None;
    }
    store.read_chunk(cache, &r).unwrap()
}

#[test]
fn whole_records_read_like_point_by_point_reads() {
    let dir = TempRoot::new("whole");
    let store = Store::open(dir.path()).unwrap();
    let g = grid(vec![axis("a", 0..6, 3), axis("b", 0..5, 5)]);
    let plan = g.plan(&all(&g)).unwrap();
    for (n, kind) in [(1u8, KIND_ITEMS), (2, F64)] {
        let cache = cache_id(90 + n);
        fill(&store, &cache, &g, &all(&g), kind, 1);
        for r in resolve(&store, &cache, &g, &plan) {
            let whole = store.read_chunk(&cache, &r).unwrap();
            assert_eq!(whole.present, vec![true; 15]);
            assert_eq!(whole, general_read(&store, &cache, &r));
        }
    }
}

#[test]
fn a_record_verified_by_a_resolution_is_trusted_only_in_its_snapshot() {
    let root = TempRoot::new("snapshot");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(3);
    let g = grid(vec![axis("x", 0..4, 4)]);
    fill(&store, &c, &g, &all(&g), F64, 1);
    let plan = g.plan(&all(&g)).unwrap();
    let key = resolve(&store, &c, &g, &plan)[0].key;
    let whole = |store: &Store, snapshot: u64| {
        store
            .read(|s, t| s.read_whole_in(t, &c, &key, Store::snapshot_id(t) == snapshot, |v| v.data().to_vec()))
            .unwrap()
    };
    let snapshot = store.resolve_plan(&c, &g, &plan, &mut Catalog::default(), true, None, |_, _| {}).unwrap().unwrap();
    // The same snapshot: the record reads, as verified.
    assert_eq!(whole(&store, snapshot).map(|d| d.len()), Some(32));
    // Damaged after the resolution: a later snapshot, so verified again, and refused.
    let mut bytes = store.get_record(&c, &key).unwrap().unwrap();
    bytes[20] ^= 0x40;
    store.put_raw_record_for_tests(&c, &key, &bytes).unwrap();
    assert_eq!(whole(&store, snapshot), None, "a record damaged after the resolution is not trusted");
    // Verification is what refuses it: trusted blindly, it would read.
    assert!(store.read(|s, t| s.read_whole_in(t, &c, &key, true, |_| ())).unwrap().is_some());
}
