//! `Store::resolve_plan` (the whole-plan resolution that looks only at the
//! chunks the index entries touch when records are few) agrees with
//! resolving every chunk one by one.

mod common;

use chunk_memo_core::record::RecordView;
use chunk_memo_core::store::{ChunkKey, Found, TakeWhole, Taker};
use common::*;

/// Available points per chunk from `resolve_plan` (0 for chunks it skips).
fn plan_available(store: &Store, c: &CacheId, g: &Grid, plan: &Plan) -> Vec<u32> {
    plan_available_on(1, true, store, c, g, plan).0
}

/// `resolve_plan` on `threads` threads: available points per chunk, and
/// the damaged records it reported.
fn plan_available_on(
    threads: usize,
    verify: bool,
    store: &Store,
    c: &CacheId,
    g: &Grid,
    plan: &Plan,
) -> (Vec<u32>, Vec<ChunkKey>) {
    let mut out = vec![0u32; plan.n_chunks];
    let mut corrupt = Vec::new();
    let mut catalog = Catalog::default();
    store
        .resolve_plan_on(threads, c, g, plan, &mut catalog, verify, None, |i, found| {
            out[i] = match found {
                Found::Whole { requested, .. } => requested,
                Found::Other(r) => {
                    assert!(r.available > 0 || !r.corrupt.is_empty(), "chunk {i} reported with nothing");
                    corrupt.extend(r.corrupt.iter().map(|(k, _)| *k));
                    r.available
                }
            };
        })
        .unwrap();
    (out, corrupt)
}

/// A store in a fresh root holding, for cache 1, the points of `g`'s whole
/// plan that `pick(chunk, point)` selects (items, generation 1).
struct Stored {
    store: Arc<Store>,
    c: CacheId,
    plan: Plan,
    /// The plan's resolutions before the write.
    res: Vec<Resolution>,
    /// Bind it first (`Stored { _root, .. }`): the root must outlive the
    /// store.
    _root: TempRoot,
}

fn stored(tag: &str, g: &Grid, pick: impl Fn(usize, usize) -> bool) -> Stored {
    let root = TempRoot::new(tag);
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let plan = g.plan(&all(g)).unwrap();
    let res = resolve(&store, &c, g, &plan);
    write_points(&store, &c, g, &plan, &res, KIND_ITEMS, 1, pick);
    Stored { store, c, plan, res, _root: root }
}

fn check(store: &Store, c: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>], what: &str) {
    let plan = g.plan(sel).unwrap();
    let want: Vec<u32> = resolve(store, c, g, &plan).iter().map(|r| r.available).collect();
    assert_eq!(plan_available(store, c, g, &plan), want, "{what}");
}

#[test]
fn few_records_of_the_same_chunking() {
    let root = TempRoot::new("rp-few");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..40, 2), axis("y", 0..30, 3)]);
    check(&store, &c, &g, &all(&g), "nothing stored");
    // Three points of three chunks (partial records), one whole chunk.
    let plan = g.plan(&all(&g)).unwrap();
    let res = resolve(&store, &c, &g, &plan);
    write_points(&store, &c, &g, &plan, &res, KIND_ITEMS, 1, |i, r| {
        (i == 7 && r == 1) || (i == 55 && r == 0) || i == 199
    });
    check(&store, &c, &g, &all(&g), "a few records");
    check(&store, &c, &g, &[Some(vec![1, 2, 3, 30, 31]), Some(vec![0, 4, 29])], "a subset");
    check(&store, &c, &g, &[Some(vec![5]), None], "a subset touching no record");
}

#[test]
fn records_of_another_chunking_serve_a_fine_plan() {
    let coarse = grid(vec![axis("x", 0..40, 10), axis("y", 0..30, 10)]);
    let Stored { _root, store, c, .. } = stored("rp-other", &coarse, |i, r| i == 5 || (i == 0 && r % 7 == 0));
    let fine = grid(vec![axis("x", 0..40, 1), axis("y", 0..30, 1)]);
    check(&store, &c, &fine, &all(&fine), "fine plan over coarse records");
    check(&store, &c, &fine, &[Some(vec![0, 7, 14, 21]), Some((0..30).collect())], "fine subset");
    // Another axis order.
    let swapped = grid(vec![axis("y", 0..30, 2), axis("x", 0..40, 3)]);
    check(&store, &c, &swapped, &all(&swapped), "swapped axes");
}

#[test]
fn many_records_and_no_axes() {
    let root = TempRoot::new("rp-many");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let g = grid(vec![axis("x", 0..12, 1), axis("y", 0..5, 5)]);
    fill(&store, &c, &g, &all(&g), KIND_ITEMS, 1);
    check(&store, &c, &g, &all(&g), "every chunk stored");
    let c0 = cache_id(2);
    let g0 = grid(vec![]);
    check(&store, &c0, &g0, &[], "no axes, nothing stored");
    fill(&store, &c0, &g0, &[], KIND_ITEMS, 1);
    check(&store, &c0, &g0, &[], "no axes, stored");
}

#[test]
fn a_large_plan_looked_at_on_several_threads_agrees_with_one_by_one() {
    // 72,000 chunks of two points: more than one block of the threaded path.
    let g = grid(vec![axis("x", 0..600, 1), axis("y", 0..240, 2)]);
    // Most chunks whole, every 7th missing, every 11th with one point.
    let Stored { _root, store, c, plan, .. } = stored("rp-threads", &g, |i, r| i % 7 != 3 && (i % 11 != 5 || r == 0));
    // Records of another cache in the same tables.
    fill(&store, &cache_id(2), &g, &[Some((0..600).step_by(5).collect()), None], KIND_ITEMS, 1);
    // Damaged records here and there.
    let res = resolve(&store, &c, &g, &plan);
    let mut damaged = Vec::new();
    for i in [0usize, 40_002, 71_997] {
        let key = res[i].key;
        let mut bytes = store.get_record(&c, &key).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        store.put_raw_record_for_tests(&c, &key, &bytes).unwrap();
        damaged.push(key);
    }
    let want: Vec<u32> = resolve(&store, &c, &g, &plan).iter().map(|r| r.available).collect();
    assert!(want.iter().filter(|&&a| a == 2).count() > 50_000, "most chunks whole");
    for threads in [1, 2, 3] {
        let (got, corrupt) = plan_available_on(threads, true, &store, &c, &g, &plan);
        assert_eq!(got, want, "{threads} threads");
        assert_eq!(corrupt, damaged, "{threads} threads report the damaged records");
        // Unverified: damaged records look whole (their reads verify them).
        let (unverified, _) = plan_available_on(threads, false, &store, &c, &g, &plan);
        for (i, (&u, &w)) in unverified.iter().zip(&want).enumerate() {
            assert!(u == w || damaged.contains(&res[i].key), "{threads} threads unverified, chunk {i}");
        }
    }
    // A subset of every other x: the walk over the records skips those in between.
    let sub = [Some((0..600).step_by(2).collect()), Some((0..240).step_by(2).collect())];
    let plan = g.plan(&sub).unwrap();
    let want: Vec<u32> = resolve(&store, &c, &g, &plan).iter().map(|r| r.available).collect();
    assert!(plan.n_chunks >= 1 << 15, "the subset is large enough for threads");
    for threads in [2, 3] {
        assert_eq!(plan_available_on(threads, true, &store, &c, &g, &plan).0, want, "subset, {threads} threads");
    }
}

#[test]
fn whole_records_looked_up_together_agree_with_one_by_one() {
    let g = grid(vec![axis("x", 0..300, 1), axis("y", 0..8, 4)]);
    // Whole chunks, partly stored ones (every third: one point), and none
    // at all (every fifth), under another cache's records too.
    let Stored { _root, store, c, plan, res } =
        stored("rp-whole-records", &g, |i, r| i % 5 != 0 && (i % 3 != 0 || r == 0));
    write_points(&store, &cache_id(2), &g, &plan, &res, KIND_ITEMS, 2, |i, _| i % 2 == 0);
    let mut bins = Vec::new();
    let mut keys: Vec<ChunkKey> = (0..plan.n_chunks)
        .map(|i| {
            plan.chunk_bins_into(i, &mut bins);
            g.chunk_key(&bins)
        })
        .collect();
    // In an order unrelated to the keys', with a key twice and one of no chunk.
    keys.reverse();
    keys.swap(3, 400);
    keys.push(keys[10]);
    keys.push([7u8; 16]);
    store
        .read(|s, t| {
            let together = s.whole_records_in(t, &c, &keys)?;
            assert_eq!(together.len(), keys.len());
            let mut found = 0;
            for (key, got) in keys.iter().zip(&together) {
                let one = s.whole_record_in(t, &c, key)?;
                assert_eq!(got.as_ref().map(|(v, b)| (v.n, v.present, *b)), one.map(|(v, b)| (v.n, v.present, b)));
                found += usize::from(got.is_some());
            }
            // 600 chunks: 120 empty, 160 partly stored (i % 3 == 0, i % 5 != 0), one looked up twice.
            assert_eq!(found, 600 - 120 - 160 + 1);
            Ok(())
        })
        .unwrap();
}

/// A taker that keeps what it took (and refuses every 7th chunk), and the
/// chunk ranges it was told of, per thread.
#[derive(Default)]
struct Keep {
    taken: std::sync::Mutex<Vec<(usize, Vec<u8>, std::thread::ThreadId)>>,
    begun: std::sync::Mutex<Vec<(std::ops::Range<usize>, std::thread::ThreadId)>>,
}

impl TakeWhole for Keep {
    fn begin(&self, chunks: std::ops::Range<usize>) -> Taker<'_> {
        self.begun.lock().unwrap().push((chunks.clone(), std::thread::current().id()));
        Box::new(move |i: usize, record: &RecordView<'_>, bytes: &[u8]| {
            assert!(chunks.contains(&i), "chunk {i} is in the part begun ({chunks:?})");
            assert!(record.verify(bytes), "chunk {i}: a taken record is the one stored");
            if i % 7 == 6 {
                return false;
            }
            self.taken.lock().unwrap().push((i, record.data().to_vec(), std::thread::current().id()));
            true
        })
    }
}

#[test]
fn a_large_plan_offers_whole_records_requested_in_full_to_its_taker() {
    // 12,000 chunks of two points; every 5th missing, every 9th with one point.
    let g = grid(vec![axis("x", 0..200, 1), axis("y", 0..120, 2)]);
    let Stored { _root, store, c, plan, res } = stored("rp-take", &g, |i, r| i % 5 != 0 && (i % 9 != 4 || r == 0));
    let data_of = |i: usize| {
        let bytes = store.get_record(&c, &res[i].key).unwrap().unwrap();
        RecordView::parse(&bytes).unwrap().data().to_vec()
    };
    for threads in [1, 2, 3] {
        for verify in [true, false] {
            let keep = Keep::default();
            let mut whole = Vec::new();
            let mut catalog = Catalog::default();
            store
                .resolve_plan_on(threads, &c, &g, &plan, &mut catalog, verify, Some(&keep), |i, found| {
                    if let Found::Whole { taken, .. } = found {
                        whole.push((i, taken));
                    }
                })
                .unwrap();
            let what = format!("{threads} threads, verify {verify}");
            let want: Vec<usize> = (0..plan.n_chunks).filter(|i| i % 5 != 0 && i % 9 != 4).collect();
            assert_eq!(whole.iter().map(|w| w.0).collect::<Vec<_>>(), want, "{what}");
            let mut taken = keep.taken.into_inner().unwrap();
            taken.sort_by_key(|t| t.0);
            let begun = keep.begun.into_inner().unwrap();
            if threads == 1 {
                // One thread looks at chunks one by one and takes nothing.
                assert!(taken.is_empty() && begun.is_empty() && whole.iter().all(|w| !w.1), "{what}");
                continue;
            }
            let took: Vec<usize> = want.iter().copied().filter(|i| i % 7 != 6).collect();
            assert_eq!(taken.iter().map(|t| t.0).collect::<Vec<_>>(), took, "{what}");
            assert_eq!(whole.iter().filter(|w| w.1).map(|w| w.0).collect::<Vec<_>>(), took, "{what}: reported taken");
            for (i, data, _) in &taken {
                assert_eq!(data, &data_of(*i), "{what}: chunk {i}'s data");
            }
            // Each chunk was taken on the thread that was told of it first.
            let mut told = vec![None; plan.n_chunks];
            for (range, thread) in &begun {
                for i in range.clone() {
                    assert!(told[i].is_none(), "{what}: chunk {i} begun twice");
                    told[i] = Some(*thread);
                }
            }
            assert!(told.iter().all(Option::is_some), "{what}: every chunk begun");
            assert!(taken.iter().all(|(i, _, th)| told[*i] == Some(*th)), "{what}: taken on its thread");
        }
    }
    // A subset requests chunks in part: nothing is offered.
    let sub = [None, Some((0..120).step_by(2).collect())];
    let plan = g.plan(&sub).unwrap();
    let keep = Keep::default();
    let mut found = 0;
    store
        .resolve_plan_on(3, &c, &g, &plan, &mut Catalog::default(), true, Some(&keep), |_, f| {
            found += usize::from(matches!(f, Found::Whole { taken: false, .. }));
        })
        .unwrap();
    assert!(found > 5_000 && keep.taken.into_inner().unwrap().is_empty());
    // A small plan (180 chunks) with a taker is looked at on threads too.
    let plan = g.plan(&[Some(vec![1, 2, 3]), None]).unwrap();
    let keep = Keep::default();
    let mut taken = 0;
    store
        .resolve_plan_on(2, &c, &g, &plan, &mut Catalog::default(), false, Some(&keep), |_, f| {
            taken += usize::from(matches!(f, Found::Whole { taken: true, .. }));
        })
        .unwrap();
    assert!(taken > 100 && taken == keep.taken.into_inner().unwrap().len(), "{taken} taken");
}

/// (available per chunk, damage reported) by resolving every chunk one by
/// one: the reference the whole-plan resolution must agree with.
fn one_by_one(store: &Store, c: &CacheId, g: &Grid, plan: &Plan) -> (Vec<u32>, Vec<ChunkKey>) {
    let res = resolve(store, c, g, plan);
    let mut corrupt: Vec<ChunkKey> = res.iter().flat_map(|r| r.corrupt.iter().map(|(k, _)| *k)).collect();
    corrupt.sort_unstable();
    (res.iter().map(|r| r.available).collect(), corrupt)
}

/// The whole-plan resolution agrees with `one_by_one` on 1 to 3 threads.
fn agrees(store: &Store, c: &CacheId, g: &Grid, plan: &Plan, what: &str) {
    let want = one_by_one(store, c, g, plan);
    for threads in [1, 2, 3] {
        let (got, mut corrupt) = plan_available_on(threads, true, store, c, g, plan);
        corrupt.sort_unstable();
        assert_eq!((got, corrupt), want, "{what}, {threads} threads");
    }
}

#[test]
fn chunks_without_their_own_record_are_served_by_records_laid_out_or_keyed_otherwise() {
    // 6,000 one-point chunks, keyed with order keys as a cache keys them;
    // more than a quarter of them stored, so every chunk's own record is
    // looked at (on several threads) rather than only those the index
    // entries touch.
    let order = vec![(0..120).map(|v| v * 7).collect(), (0..50).map(|v| (v * 11) << 16).collect()];
    let plain = grid(vec![axis("x", 0..120, 1), axis("y", 0..50, 1)]);
    let g = plain.clone().with_order_keys(order).unwrap();
    let plan = g.plan(&all(&g)).unwrap();
    let Stored { _root, store, c, .. } = stored("rp-aligned", &g, |i, _| i % 5 < 3 && i < 5000);
    let (avail, _) = one_by_one(&store, &c, &g, &plan);
    assert_eq!(avail.iter().filter(|&&a| a == 1).count(), 3000);
    // Every record laid out and keyed as a chunk of the grid: chunks
    // without one have nothing stored.
    agrees(&store, &c, &g, &plan, "aligned records");

    // Records of another chunking (10 x 10 chunks) over the chunks past
    // 5,000, which have no record of their own.
    let coarse = grid(vec![axis("x", 0..120, 10), axis("y", 0..50, 10)]);
    let cplan = coarse.plan(&all(&coarse)).unwrap();
    let cres = resolve(&store, &c, &coarse, &cplan);
    write_points(&store, &c, &coarse, &cplan, &cres, KIND_ITEMS, 1, |i, r| i >= 50 && r % 3 == 0);
    let (avail, _) = one_by_one(&store, &c, &g, &plan);
    assert!(avail[5000..].iter().filter(|&&a| a == 1).count() > 200, "the coarse records serve fine chunks");
    agrees(&store, &c, &g, &plan, "records of another chunking");

    // Records laid out as the grid's chunks but keyed without order keys
    // (as another version keyed them): no chunk finds them by its own key.
    let p_plan = plain.plan(&all(&plain)).unwrap();
    let Stored { _root: _root2, store: store2, c: c2, .. } = stored("rp-keyed", &plain, |i, _| i % 2 == 0);
    let (avail, _) = one_by_one(&store2, &c2, &g, &plan);
    assert_eq!(avail.iter().filter(|&&a| a == 1).count(), 3000, "found through the catalog");
    agrees(&store2, &c2, &g, &plan, "records keyed otherwise");
    agrees(&store2, &c2, &plain, &p_plan, "the grid that keyed them");

    // A damaged index entry among aligned records: reported, as one by one.
    let key = resolve(&store2, &c2, &plain, &p_plan)[10].key;
    let mut entry = store2.get_raw_index_for_tests(&c2, &key).unwrap().unwrap();
    let at = entry.len() / 3;
    entry[at] ^= 0x04;
    store2.put_raw_index_for_tests(&c2, &key, &entry).unwrap();
    let (_, corrupt) = one_by_one(&store2, &c2, &plain, &p_plan);
    assert_eq!(corrupt, vec![key]);
    agrees(&store2, &c2, &plain, &p_plan, "a damaged index entry");
}

#[test]
fn a_plan_of_most_of_the_grid_walks_the_records_with_their_index_entries() {
    use chunk_memo_core::store::walks_for_tests;
    // 9,600 chunks (80 x 240 values, y in bins of 2); records of a longer
    // x axis (0..100): those past 80 lie outside the grid. Every 7th chunk
    // missing, every 11th with one point of two.
    let long = grid(vec![axis("x", 0..100, 1), axis("y", 0..240, 2)]);
    let Stored { _root, store, c, .. } = stored("rp-walk", &long, |i, r| i % 7 != 3 && (i % 11 != 5 || r == 0));
    let g = grid(vec![axis("x", 0..80, 1), axis("y", 0..240, 2)]);
    let walked = |plan: &Plan, what: &str| {
        let before = walks_for_tests();
        agrees(&store, &c, &g, plan, what);
        walks_for_tests() - before
    };
    let plan = g.plan(&all(&g)).unwrap();
    let (avail, _) = one_by_one(&store, &c, &g, &plan);
    assert!(avail.iter().filter(|&&a| a == 2).count() > 7_000 && avail.contains(&1));
    assert_eq!(walked(&plan, "the whole grid"), 3, "the walk serves 1, 2 and 3 threads");
    // Most of the grid: records of bins not planned are passed over, and
    // chunks requested in part are served by their own records.
    let most = [Some((0..60).collect()), Some((0..240).filter(|y| y % 40 != 7).collect())];
    assert_eq!(walked(&g.plan(&most).unwrap(), "most of the grid"), 3);
    // A third of the grid: each chunk is looked up by its key instead.
    let third = [Some((0..80).step_by(3).collect()), None];
    assert_eq!(walked(&g.plan(&third).unwrap(), "a third of the grid"), 0);
    // A record without its index entry (under the key of a chunk with
    // none): the walk cannot place it and gives way to the lookups.
    let res = resolve(&store, &c, &g, &plan);
    let empty = (0..plan.n_chunks).find(|&i| res[i].available == 0).unwrap();
    let bytes = store.get_record(&c, &res[0].key).unwrap().unwrap();
    store.put_raw_record_for_tests(&c, &res[empty].key, &bytes).unwrap();
    assert_eq!(walked(&plan, "a record without its index entry"), 0);

    // A cache holding more than half as many records again as the plan has
    // chunks (a grid of 2.5 times as many x values): looked up by key.
    let longer = grid(vec![axis("x", 0..200, 1), axis("y", 0..240, 2)]);
    let Stored { _root: _root2, store, c, .. } = stored("rp-walk-more", &longer, |i, _| i % 3 != 0);
    let before = walks_for_tests();
    agrees(&store, &c, &g, &plan, "a cache of many more records");
    assert_eq!(walks_for_tests(), before, "gave up on too many records");
}
