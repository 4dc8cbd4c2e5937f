//! `Store::resolve_plan` (the whole-plan resolution that looks only at the
//! chunks the index entries touch when records are few) agrees with
//! resolving every chunk one by one.

mod common;

use chunk_memo_core::store::Found;
use common::*;

/// Available points per chunk from `resolve_plan` (0 for chunks it skips).
fn plan_available(store: &Store, c: &CacheId, g: &Grid, plan: &Plan) -> Vec<u32> {
    let mut out = vec![0u32; plan.n_chunks];
    let mut catalog = Catalog::default();
    store
        .resolve_plan(c, g, plan, &mut catalog, true, |i, found| {
            out[i] = match found {
                Found::Whole { requested, .. } => requested,
                Found::Other(r) => {
                    assert!(r.available > 0 || !r.corrupt.is_empty(), "chunk {i} reported with nothing");
                    r.available
                }
            };
        })
        .unwrap();
    out
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
    let root = TempRoot::new("rp-other");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(1);
    let coarse = grid(vec![axis("x", 0..40, 10), axis("y", 0..30, 10)]);
    let plan = coarse.plan(&all(&coarse)).unwrap();
    let res = resolve(&store, &c, &coarse, &plan);
    write_points(&store, &c, &coarse, &plan, &res, KIND_ITEMS, 1, |i, r| i == 5 || (i == 0 && r % 7 == 0));
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
