//! Randomized checks of the planner (`Grid::plan`, `chunk_key`,
//! `missing_blocks`) and of `ChunkGeometry::record_positions` against naive
//! enumerations. Deterministic: a fixed-seed PRNG, no extra dependencies.

use chunk_memo_core::planner::{missing_blocks, Axis, Grid, Plan};
use chunk_memo_core::store::ChunkGeometry;
use std::collections::{HashMap, HashSet};

/// SplitMix64: tiny, deterministic, good enough for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

fn distinct_hashes(rng: &mut Rng, n: usize, avoid: &HashSet<u64>) -> Vec<u64> {
    let mut seen = avoid.clone();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let h = rng.next();
        if seen.insert(h) {
            out.push(h);
        }
    }
    out
}

fn random_grid(rng: &mut Rng) -> Grid {
    let n_axes = rng.range(0, 3);
    let axes = (0..n_axes)
        .map(|k| {
            let len = rng.range(1, 12);
            Axis {
                name: format!("axis{k}"),
                hashes: distinct_hashes(rng, len, &HashSet::new()),
                chunk: rng.range(1, 13),
            }
        })
        .collect();
    Grid::new(axes).unwrap()
}

/// `None` (whole axis) or a random non-empty sorted subset.
fn random_selection(rng: &mut Rng, grid: &Grid) -> Vec<Option<Vec<u32>>> {
    grid.axes
        .iter()
        .map(|a| {
            if rng.chance(0.3) {
                return None;
            }
            let p = [0.1, 0.5, 0.9][rng.range(0, 2)];
            let mut idx: Vec<u32> = (0..a.hashes.len() as u32).filter(|_| rng.chance(p)).collect();
            if idx.is_empty() {
                idx.push(rng.range(0, a.hashes.len() - 1) as u32);
            }
            Some(idx)
        })
        .collect()
}

fn selected(grid: &Grid, sel: &[Option<Vec<u32>>]) -> Vec<Vec<u32>> {
    grid.axes.iter().zip(sel).map(|(a, s)| s.clone().unwrap_or_else(|| (0..a.hashes.len() as u32).collect())).collect()
}

/// Cartesian product in grid order (first list slowest).
fn product(lists: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new()];
    for l in lists {
        out = out
            .iter()
            .flat_map(|p| {
                l.iter().map(move |&x| {
                    let mut q = p.clone();
                    q.push(x);
                    q
                })
            })
            .collect();
    }
    out
}

fn check_plan(grid: &Grid, sel: &[Option<Vec<u32>>], plan: &Plan) {
    let chosen = selected(grid, sel);
    // Shape and totals.
    let shape: Vec<u32> = chosen.iter().map(|c| c.len() as u32).collect();
    assert_eq!(plan.shape, shape);
    assert_eq!(plan.total_requested(), shape.iter().map(|&s| u64::from(s)).product::<u64>());

    // Naive touched bins per axis, in order, and the chunks as their product.
    let touched: Vec<Vec<u32>> = grid
        .axes
        .iter()
        .zip(&chosen)
        .map(|(a, c)| {
            let mut bins: Vec<u32> = c.iter().map(|&i| i / a.chunk as u32).collect();
            bins.dedup();
            bins
        })
        .collect();
    let chunks = product(&touched);
    assert_eq!(plan.n_chunks, chunks.len());
    if sel.iter().all(Option::is_none) {
        assert_eq!(plan.n_chunks as u64, grid.n_chunks());
    }

    let mut covered: HashMap<Vec<u32>, u32> = HashMap::new();
    for (i, bins) in chunks.iter().enumerate() {
        let c = plan.chunk(i);
        let got: Vec<u32> = c.iter().map(|b| b.bin).collect();
        assert_eq!(&got, bins, "chunk {i} out of grid order");
        let mut per_axis_points: Vec<Vec<u32>> = Vec::new();
        for (a, b) in c.iter().enumerate() {
            let ax = &grid.axes[a];
            let start = b.bin as usize * ax.chunk;
            assert_eq!(b.start as usize, start);
            assert_eq!(b.len as usize, ax.chunk.min(ax.hashes.len() - start));
            let want: Vec<u32> = chosen[a]
                .iter()
                .filter(|&&x| x as usize >= start && (x as usize) < start + ax.chunk)
                .map(|&x| x - start as u32)
                .collect();
            assert_eq!(b.sel, want, "chunk {i} axis {a}: requested offsets");
            assert!(!b.sel.is_empty());
            let first = chosen[a].iter().position(|&x| x == start as u32 + b.sel[0]).unwrap();
            assert_eq!(b.sel_pos as usize, first, "chunk {i} axis {a}: sel_pos");
            assert_eq!(grid.bin_hashes(a, b.bin), &ax.hashes[start..start + b.len as usize]);
            per_axis_points.push(b.sel.iter().map(|&o| o + b.start).collect());
        }
        let pts = product(&per_axis_points);
        assert_eq!(plan.requested(i), pts.len() as u64);
        // Naive: each requested point's row-major index in the output (its
        // position in each axis' selection, over the plan's shape), in
        // request order, against the rows out_rows gives.
        let want_out: Vec<u64> = pts
            .iter()
            .map(|p| {
                p.iter().enumerate().fold(0u64, |acc, (a, &g)| {
                    acc * u64::from(shape[a]) + chosen[a].iter().position(|&x| x == g).unwrap() as u64
                })
            })
            .collect();
        let (starts, len) = plan.out_rows(i);
        let got_out: Vec<u64> = starts.iter().flat_map(|&s| (0..len as u64).map(move |k| s + k)).collect();
        assert_eq!(got_out, want_out, "chunk {i}: output rows");
        for p in pts {
            *covered.entry(p).or_default() += 1;
        }
        check_geometry(plan, i);
    }
    let want = product(&chosen);
    assert_eq!(covered.len(), want.len(), "the chunks cover the selection");
    for p in want {
        assert_eq!(covered.get(&p), Some(&1), "point {p:?} covered exactly once");
    }
}

fn check_geometry(plan: &Plan, i: usize) {
    let geo = ChunkGeometry::of(plan, i);
    let c = plan.chunk(i);
    assert_eq!(geo.bins, c.iter().map(|b| b.bin).collect::<Vec<_>>());
    assert_eq!(geo.lens, c.iter().map(|b| b.len).collect::<Vec<_>>());
    assert_eq!(geo.requested() as u64, plan.requested(i));
    assert_eq!(geo.record_points(), c.iter().map(|b| b.len as usize).product::<usize>());
    // Naive: requested points in grid order, each at its row-major position
    // in the chunk's own layout (bin lengths as dims).
    let mut strides = vec![1usize; c.len()];
    for a in (0..c.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * c[a + 1].len as usize;
    }
    let want: Vec<u32> = product(&geo.sel)
        .iter()
        .map(|p| p.iter().zip(&strides).map(|(&o, &s)| o as usize * s).sum::<usize>() as u32)
        .collect();
    let got = geo.record_positions();
    assert_eq!(got, want, "record positions of chunk {i}");
    let distinct: HashSet<u32> = got.iter().copied().collect();
    assert_eq!(distinct.len(), got.len());
    assert!(got.iter().all(|&p| (p as usize) < geo.record_points()));
}

#[test]
fn plans_match_naive_enumeration() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..2000 {
        let grid = random_grid(&mut rng);
        let sel = random_selection(&mut rng, &grid);
        let plan = grid.plan(&sel).unwrap();
        check_plan(&grid, &sel, &plan);
        // The whole grid, too.
        let all = vec![None; grid.axes.len()];
        check_plan(&grid, &all, &grid.plan(&all).unwrap());
    }
}

#[test]
fn plan_rejects_bad_selections() {
    let mut rng = Rng(7);
    for _ in 0..200 {
        let grid = random_grid(&mut rng);
        let mut too_many = vec![None; grid.axes.len()];
        too_many.push(None);
        assert!(grid.plan(&too_many).is_err());
        if let Some(a) = grid.axes.first() {
            let len = a.hashes.len() as u32;
            let mut sel: Vec<Option<Vec<u32>>> = vec![None; grid.axes.len()];
            sel[0] = Some(vec![len]);
            assert!(grid.plan(&sel).is_err(), "out of range");
            if len >= 2 {
                sel[0] = Some(vec![1, 0]);
                assert!(grid.plan(&sel).is_err(), "unsorted");
                sel[0] = Some(vec![1, 1]);
                assert!(grid.plan(&sel).is_err(), "repeated");
            }
        }
    }
    assert!(Grid::new(vec![Axis { name: "x".into(), hashes: vec![1, 2], chunk: 0 }]).is_err());
}

/// A grid that shares axis names with `g`, derived by extending, truncating,
/// altering or re-chunking its axes.
fn related_grid(rng: &mut Rng, g: &Grid) -> Grid {
    let axes = g
        .axes
        .iter()
        .map(|a| {
            let mut hashes = a.hashes.clone();
            let used: HashSet<u64> = hashes.iter().copied().collect();
            match rng.range(0, 4) {
                0 => {}
                1 => {
                    let extra = rng.range(1, 6);
                    hashes.extend(distinct_hashes(rng, extra, &used));
                }
                2 => {
                    let keep = rng.range(1, hashes.len());
                    hashes.truncate(keep);
                }
                3 => {
                    let i = rng.range(0, hashes.len() - 1);
                    hashes[i] = distinct_hashes(rng, 1, &used)[0];
                }
                _ => hashes.reverse(),
            }
            let chunk = if rng.chance(0.5) { a.chunk } else { rng.range(1, 13) };
            Axis { name: a.name.clone(), hashes, chunk }
        })
        .collect();
    Grid::new(axes).unwrap()
}

fn all_bin_choices(g: &Grid) -> Vec<Vec<u32>> {
    let per_axis: Vec<Vec<u32>> = (0..g.axes.len()).map(|a| (0..g.n_bins(a) as u32).collect()).collect();
    product(&per_axis)
}

#[test]
fn chunk_keys_depend_on_bin_contents_only() {
    let mut rng = Rng(0xC0FFEE);
    for _ in 0..300 {
        let a = random_grid(&mut rng);
        let b = related_grid(&mut rng, &a);
        // key -> contents and contents -> key must both be functions.
        let mut by_key: HashMap<[u8; 16], Vec<Vec<u64>>> = HashMap::new();
        let mut by_contents: HashMap<Vec<Vec<u64>>, [u8; 16]> = HashMap::new();
        for g in [&a, &b] {
            for bins in all_bin_choices(g) {
                let contents: Vec<Vec<u64>> =
                    bins.iter().enumerate().map(|(ax, &bn)| g.bin_hashes(ax, bn).to_vec()).collect();
                let key = g.chunk_key(&bins);
                assert_eq!(key, g.chunk_key(&bins), "deterministic");
                if let Some(c) = by_key.insert(key, contents.clone()) {
                    assert_eq!(c, contents, "one key for two different chunks");
                }
                if let Some(k) = by_contents.insert(contents, key) {
                    assert_eq!(k, key, "two keys for one chunk");
                }
            }
        }
        // Extending an axis keeps the keys of the chunks made of full bins.
        if !a.axes.is_empty() {
            let mut ext_axes = a.axes.clone();
            let used: HashSet<u64> = ext_axes[0].hashes.iter().copied().collect();
            let n_extra = ext_axes[0].chunk;
            ext_axes[0].hashes.extend(distinct_hashes(&mut rng, n_extra, &used));
            let ext = Grid::new(ext_axes).unwrap();
            let full_bins = (a.axes[0].hashes.len() / a.axes[0].chunk) as u32;
            for bins in all_bin_choices(&a) {
                if bins[0] < full_bins {
                    assert_eq!(a.chunk_key(&bins), ext.chunk_key(&bins));
                } else {
                    assert_ne!(a.chunk_key(&bins), ext.chunk_key(&bins), "the short last bin grew");
                }
            }
        }
    }
}

#[test]
fn chunk_keys_depend_on_axis_names() {
    let x = Grid::new(vec![Axis { name: "x".into(), hashes: vec![1, 2, 3], chunk: 2 }]).unwrap();
    let y = Grid::new(vec![Axis { name: "y".into(), hashes: vec![1, 2, 3], chunk: 2 }]).unwrap();
    assert_ne!(x.chunk_key(&[0]), y.chunk_key(&[0]));
    let empty = Grid::new(vec![]).unwrap();
    assert_eq!(empty.chunk_key(&[]), Grid::new(vec![]).unwrap().chunk_key(&[]));
}

fn check_blocks(dims: &[usize], missing: &[bool]) -> usize {
    let blocks = missing_blocks(dims, missing);
    let n: usize = dims.iter().product();
    let mut count = vec![0u32; n];
    for b in &blocks {
        assert_eq!(b.len(), dims.len(), "a block has one list per axis");
        for (a, l) in b.iter().enumerate() {
            assert!(!l.is_empty(), "empty block list");
            assert!(l.windows(2).all(|w| w[0] < w[1]), "block lists are sorted and distinct");
            assert!(l.iter().all(|&x| (x as usize) < dims[a]));
        }
        let lists: Vec<Vec<u32>> = b.clone();
        for p in product(&lists) {
            let flat = p.iter().zip(dims).fold(0usize, |acc, (&x, &d)| acc * d + x as usize);
            count[flat] += 1;
        }
    }
    for (i, (&c, &m)) in count.iter().zip(missing).enumerate() {
        assert_eq!(c, u32::from(m), "point {i} of dims {dims:?}: covered {c} times, missing {m}");
    }
    blocks.len()
}

#[test]
fn missing_blocks_cover_random_masks_exactly() {
    let mut rng = Rng(0xB10C);
    for _ in 0..3000 {
        let n_axes = rng.range(0, 3);
        let dims: Vec<usize> = (0..n_axes).map(|_| rng.range(1, 9)).collect();
        let n: usize = dims.iter().product();
        let p = [0.0, 0.1, 0.5, 0.9, 1.0][rng.range(0, 4)];
        let missing: Vec<bool> = (0..n).map(|_| rng.chance(p)).collect();
        let k = check_blocks(&dims, &missing);
        if missing.iter().all(|&m| !m) {
            assert_eq!(k, 0);
        }
        if missing.iter().all(|&m| m) {
            assert_eq!(k, 1, "a fully missing chunk is one block");
        }
    }
}

#[test]
fn missing_blocks_common_shapes_are_few_blocks() {
    // A new value of the first axis: its whole row is missing.
    let dims = [5usize, 4, 3];
    let n = 60;
    let mut m = vec![false; n];
    for (i, x) in m.iter_mut().enumerate() {
        *x = i / 12 == 4;
    }
    assert_eq!(check_blocks(&dims, &m), 1);
    // A new value of the last axis: the same pattern in every row.
    let m: Vec<bool> = (0..n).map(|i| i % 3 == 2).collect();
    assert_eq!(check_blocks(&dims, &m), 1);
    // The complement of an earlier product subset {0,1}x{0,1}x{all}.
    let m: Vec<bool> = (0..n).map(|i| !((i / 12) < 2 && (i / 3) % 4 < 2)).collect();
    assert!(check_blocks(&dims, &m) <= 2);
    // A grid without axes has one point.
    assert_eq!(check_blocks(&[], &[true]), 1);
    assert_eq!(check_blocks(&[], &[false]), 0);
}

/// A numeric axis: value hashes and order keys of `values`.
fn numeric_axis(name: &str, values: impl Iterator<Item = i64>, chunk: usize) -> (Axis, Vec<u32>) {
    let enc: Vec<Vec<u8>> = values
        .map(|v| chunk_memo_core::canonical::encode(&chunk_memo_core::canonical::Value::Int(v)).unwrap())
        .collect();
    let hashes = enc.iter().map(|e| chunk_memo_core::canonical::value_hash(e)).collect();
    let order = enc.iter().map(|e| chunk_memo_core::canonical::order_key(e)).collect();
    (Axis { name: name.into(), hashes, chunk }, order)
}

#[test]
fn chunk_keys_with_order_keys_sort_like_the_grid() {
    // One axis of 5,000 one-value chunks, and a 40 x 300 grid: the keys of
    // chunks in grid order are sorted (so LMDB stores them side by side).
    let (a, oa) = numeric_axis("a", 0..5000, 1);
    let g = Grid::new(vec![a.clone()]).unwrap().with_order_keys(vec![oa.clone()]).unwrap();
    let keys: Vec<[u8; 16]> = (0..5000).map(|b| g.chunk_key(&[b])).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "1-D keys follow grid order");
    // The order prefix replaces the first 6 bytes only; without order keys the key is the plain digest.
    let plain = Grid::new(vec![a]).unwrap();
    for b in [0u32, 17, 4999] {
        assert_eq!(g.chunk_key(&[b])[6..], plain.chunk_key(&[b])[6..]);
        assert_ne!(g.chunk_key(&[b])[..6], plain.chunk_key(&[b])[..6]);
    }
    let (x, ox) = numeric_axis("x", 0..40, 1);
    let (y, oy) = numeric_axis("y", (0..300).map(|v| v * 1000), 1);
    let g2 = Grid::new(vec![x.clone(), y.clone()]).unwrap().with_order_keys(vec![ox.clone(), oy.clone()]).unwrap();
    // Axis 1 contributes only its top 16 bits, so keys are not strictly in
    // grid order, but every run of 256 consecutive chunks occupies a narrow
    // slice of the sorted keys (its records share pages).
    let walk: Vec<[u8; 16]> = (0..40).flat_map(|i| (0..300).map(move |j| [i, j])).map(|b| g2.chunk_key(&b)).collect();
    let mut sorted = walk.clone();
    sorted.sort();
    let rank = |k: &[u8; 16]| sorted.binary_search(k).unwrap();
    for w in walk.chunks(256) {
        let (lo, hi) = w.iter().fold((usize::MAX, 0), |(lo, hi), k| (lo.min(rank(k)), hi.max(rank(k))));
        assert!(hi - lo < 2 * w.len(), "256 neighbours spread over {} keys", hi - lo);
    }
    let plain2 = Grid::new(vec![x.clone(), y.clone()]).unwrap();
    let mut p2: Vec<[u8; 16]> = (0..300).map(|j| plain2.chunk_key(&[0, j])).collect();
    let first: Vec<[u8; 16]> = p2[..256].to_vec();
    p2.sort();
    let spread = first.iter().map(|k| p2.binary_search(k).unwrap()).max().unwrap()
        - first.iter().map(|k| p2.binary_search(k).unwrap()).min().unwrap();
    assert!(spread > 256, "without order keys neighbours scatter ({spread})");
    // The same contents give the same key under another chunking that has the bin.
    let (x2, ox2) = numeric_axis("x", 0..80, 1);
    let g3 = Grid::new(vec![x2, y]).unwrap().with_order_keys(vec![ox2, oy]).unwrap();
    assert_eq!(g2.chunk_key(&[7, 123]), g3.chunk_key(&[7, 123]));
    assert!(Grid::new(vec![x]).unwrap().with_order_keys(vec![vec![0; 3]]).is_err(), "one key per value");
}

#[test]
fn axis_hashes_over_threads_match_one_by_one_and_duplicates_are_found() {
    use chunk_memo_core::canonical::{hashes_and_order_keys, order_key, value_hash};
    // 300,000 integers: long enough to be split across threads.
    let enc: Vec<Vec<u8>> = (0..300_000i64)
        .map(|v| {
            let mut b = vec![0x03u8];
            b.extend_from_slice(&(v * 7 - 1000).to_le_bytes());
            b
        })
        .collect();
    let items: Vec<&[u8]> = enc.iter().map(Vec::as_slice).collect();
    let (hashes, keys) = hashes_and_order_keys(&items);
    assert_eq!(hashes, items.iter().map(|e| value_hash(e)).collect::<Vec<_>>());
    assert_eq!(keys, items.iter().map(|e| order_key(e)).collect::<Vec<_>>());
    // A grid of those values builds; the same hash twice is reported with both positions.
    assert!(Grid::new(vec![Axis { name: "v".into(), hashes: hashes.clone(), chunk: 1000 }]).is_ok());
    let mut dup = hashes;
    dup[250_000] = dup[17];
    let err = Grid::new(vec![Axis { name: "v".into(), hashes: dup, chunk: 1000 }]).unwrap_err();
    assert!(err.message.contains("indices 17 and 250000"), "{}", err.message);
}

/// A chunk key as docs/canonical-encoding.md §3 defines it, through a
/// hasher fed part by part: the reference `Grid::chunk_key` must match.
fn reference_key(grid: &Grid, bins: &[u32]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(chunk_memo_core::canonical::DOMAIN);
    h.update(b"chunk");
    for (a, &b) in bins.iter().enumerate() {
        let hashes = grid.bin_hashes(a, b);
        let mut d = blake3::Hasher::new();
        d.update(&(grid.axes[a].name.len() as u32).to_le_bytes());
        d.update(grid.axes[a].name.as_bytes());
        d.update(&(hashes.len() as u32).to_le_bytes());
        for x in hashes {
            d.update(&x.to_le_bytes());
        }
        h.update(d.finalize().as_bytes());
    }
    h.finalize().as_bytes()[..16].try_into().unwrap()
}

#[test]
fn chunk_keys_match_their_definition_for_any_number_of_axes_and_bin_sizes() {
    let name = |k: usize| "axis-".repeat(k + 1);
    // One to ten axes (keys hashed from the stack up to eight, through a
    // hasher beyond), one-value bins of a long axis (digests not kept),
    // bins short and long enough to be hashed either way.
    for n_axes in 1..=10 {
        let axes: Vec<Axis> = (0..n_axes)
            .map(|a| match a {
                0 => Axis { name: name(a), hashes: (0..20_000u64).map(|x| x * 7919).collect(), chunk: 1 },
                1 => Axis { name: name(40), hashes: (0..90u64).collect(), chunk: 45 },
                _ => Axis { name: name(a), hashes: (0..3u64).collect(), chunk: 1 + a % 3 },
            })
            .collect();
        let grid = Grid::new(axes).unwrap();
        for i in [0u32, 1, 2, 17_000, 19_999] {
            let bins: Vec<u32> = (0..n_axes).map(|a| if a == 0 { i } else { i % grid.n_bins(a) as u32 }).collect();
            assert_eq!(grid.chunk_key(&bins), reference_key(&grid, &bins), "{n_axes} axes, bins {bins:?}");
        }
    }
}

/// Chunk keys name stored records: the same grid must give the same keys in
/// every version. Pinned for grids of 0, 1, 2 and 9 axes (more than the
/// keys laid out on the stack), including a bin past the digested ones.
#[test]
fn chunk_keys_are_the_ones_stores_hold() {
    let grid = |n: usize| {
        Grid::new(
            (0..n)
                .map(|a| Axis {
                    name: format!("axis{a}"),
                    hashes: (0..5).map(|v| (a * 100 + v) as u64 * 0x9e37_79b9).collect(),
                    chunk: 2,
                })
                .collect(),
        )
        .unwrap()
    };
    let hex = |k: [u8; 16]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let keys: Vec<String> = [(0usize, 0u32), (1, 0), (1, 2), (2, 1), (9, 2)]
        .iter()
        .map(|&(n, b)| hex(grid(n).chunk_key(&vec![b; n])))
        .collect();
    assert_eq!(keys, PINNED_KEYS);
}

const PINNED_KEYS: [&str; 5] = [
    "439c88d6bbdec175eb0806e4c4e79e0c",
    "583108b3ea09cb6641f2fe059dc1b846",
    "dfb108af6053258f8f001d7623d745e6",
    "e668226e78f175c244c0139877962bce",
    "f98780c9b52385043be05d26df968770",
];
