//! Reliability of the store: a full disk (a small tmpfs), damaged index
//! entries, in-use marks seen by other processes, sparse partial records.

mod common;

use chunk_memo_core::canonical::DType;
use chunk_memo_core::error::ErrorCode;
use chunk_memo_core::planner::Grid;
use chunk_memo_core::store::{CacheId, Catalog, ChunkGeometry, ChunkWrite, Resolution, Store, WritePoints};
use common::{axis, cache_id, TempRoot};
use std::path::Path;
use std::process::Command;

const F64: u8 = DType::F64 as u8;
const BATCH: usize = 16;

/// Unmounts a tmpfs mounted on a test root when dropped (before the
/// TempRoot, declared earlier, removes the directory).
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).stderr(std::process::Stdio::null()).status();
    }
}

fn resolve_all(store: &Store, c: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>]) -> Vec<Resolution> {
    let plan = g.plan(sel).unwrap();
    store.resolve(c, g, &plan, 0..plan.n_chunks, &mut Catalog::default()).unwrap()
}

fn f64_of(chunk: usize, r: usize) -> [u8; 8] {
    (chunk as f64 * 1e6 + r as f64).to_le_bytes()
}

/// Writes every point of chunks `chunks` (f64 outputs) in one transaction.
fn write_full(store: &Store, c: &CacheId, g: &Grid, chunks: &[usize]) -> chunk_memo_core::error::Result<()> {
    let plan = g.plan(&vec![None; g.axes.len()]).unwrap();
    let geos: Vec<ChunkGeometry> = chunks.iter().map(|&i| ChunkGeometry::of(&plan, i)).collect();
    let bufs: Vec<(Vec<u32>, Vec<u8>)> = chunks
        .iter()
        .zip(&geos)
        .map(|(&i, geo)| {
            let n = geo.requested();
            ((0..n as u32).collect(), (0..n).flat_map(|r| f64_of(i, r)).collect())
        })
        .collect();
    let writes: Vec<ChunkWrite<'_>> = geos
        .iter()
        .zip(&bufs)
        .map(|(geo, b)| ChunkWrite {
            geo,
            grid: g,
            res: None,
            kind: F64,
            points: WritePoints::Given(&b.0),
            offsets: &[],
            data: &b.1,
            dict: &[],
        })
        .collect();
    store.write_chunks(c, &writes)
}

/// Mounts a tmpfs of `mb` MiB on `dir`; false where mounting is not allowed.
fn mount_tmpfs(dir: &Path, mb: u32) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_full_disk_is_store_full_and_keeps_what_was_committed() {
    let root = TempRoot::new("full");
    if !mount_tmpfs(root.path(), 20) {
        println!("SKIPPED: mounting a 20 MiB tmpfs is not permitted here (needs root)");
        return;
    }
    let _unmount = Unmount(root.path());
    let c = cache_id(1);
    // 400 chunks of 8,192 f64 (64 KiB each), written 16 per transaction.
    let g = Grid::new(vec![axis("c", 0..400, 1), axis("x", 0..8192, 8192)]).unwrap();
    let mut committed = Vec::new();
    let mut full = None;
    {
        let store = Store::open(root.path()).unwrap();
        for batch in (0..400).collect::<Vec<_>>().chunks(BATCH) {
            match write_full(&store, &c, &g, batch) {
                Ok(()) => committed.extend_from_slice(batch),
                Err(e) => {
                    assert_eq!(e.code, ErrorCode::StoreFull, "{e}");
                    assert!(e.message.contains("nothing committed before this write was lost"), "{e}");
                    full = Some(batch.to_vec());
                    break;
                }
            }
        }
        let batch = full.expect("400 x 64 KiB must not fit in 20 MiB");
        // What fits of the failed batch goes in one chunk at a time.
        for &i in &batch {
            if write_full(&store, &c, &g, &[i]).is_err() {
                break;
            }
            committed.push(i);
        }
        // Each chunk costs about 137 KiB (64 KiB of record, as much of index
        // entry: the value hashes of 8,192 points): about 149 fit.
        assert!(committed.len() > 120, "most of the 20 MiB holds records: {}", committed.len());
        assert!(store.verify(&c).unwrap().is_empty());
    }
    // Reopened (a fresh environment): everything committed is there.
    let store = Store::open(root.path()).unwrap();
    assert!(store.verify(&c).unwrap().is_empty());
    assert_eq!(store.summary(&c).unwrap().records as usize, committed.len());
    let res = resolve_all(&store, &c, &g, &[Some(committed.iter().map(|&i| i as u32).collect()), None]);
    for (k, r) in res.iter().enumerate() {
        assert_eq!(r.available, r.requested);
        let d = store.read_chunk(&c, r).unwrap();
        assert_eq!(&d.data[8 * 77..8 * 78], f64_of(committed[k], 77));
    }
    // Still usable: freeing space lets new writes in (LMDB reuses pages
    // freed by a transaction once a later one has committed).
    store.delete_records(&c, &res[..20].iter().map(|r| r.key).collect::<Vec<_>>()).unwrap();
    store.put_meta(&c, b"after the disk was full").unwrap();
    let next = (0..400).find(|i| !committed.contains(i)).unwrap();
    write_full(&store, &c, &g, &[next]).unwrap();
}

// ---------------------------------------------------------------------------
// Damaged index entries

/// Writes points `points` (requested indices) of chunk `i` of the plan of
/// `sel`, f64 outputs `f64_of(tag, position in the chunk's record)`.
fn write_some(store: &Store, c: &CacheId, g: &Grid, sel: &[Option<Vec<u32>>], i: usize, points: &[u32]) {
    let plan = g.plan(sel).unwrap();
    let res = store.resolve(c, g, &plan, i..i + 1, &mut Catalog::default()).unwrap();
    let geo = ChunkGeometry::of(&plan, i);
    let pos = geo.record_positions();
    let data: Vec<u8> = points.iter().flat_map(|&r| f64_of(1000 + i, pos[r as usize] as usize)).collect();
    let w = ChunkWrite {
        geo: &geo,
        grid: g,
        res: Some(&res[0]),
        kind: F64,
        points: WritePoints::Given(points),
        offsets: &[],
        data: &data,
        dict: &[],
    };
    store.write_chunks(c, &[w]).unwrap();
}

fn available_points(store: &Store, c: &CacheId, g: &Grid) -> (u64, usize) {
    let res = resolve_all(store, c, g, &vec![None; g.axes.len()]);
    for r in &res {
        // Reads never fail and return what the resolution promised.
        let d = store.read_chunk(c, r).unwrap();
        assert_eq!(d.present.iter().filter(|&&p| p).count() as u32, r.available);
    }
    (res.iter().map(|r| u64::from(r.available)).sum(), res.iter().map(|r| r.corrupt.len()).sum())
}

/// Stores `good`, the index entry of `key`, with one bit flipped inside its value hashes.
fn damage_index_entry(store: &Store, c: &CacheId, key: &[u8; 16], good: &[u8]) {
    let mut b = good.to_vec();
    let at = b.len() / 3;
    b[at] ^= 0x04;
    store.put_raw_index_for_tests(c, key, &b).unwrap();
}

#[test]
fn damaged_index_entries_are_missing_reported_and_repaired() {
    let root = TempRoot::new("index");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(2);
    let g4 = Grid::new(vec![axis("x", 0..8, 4), axis("y", 0..4, 4)]).unwrap();
    // Chunk 0 partial (5 of 16 points), chunk 1 complete.
    write_some(&store, &c, &g4, &[None, None], 0, &[0, 3, 5, 9, 15]);
    write_some(&store, &c, &g4, &[None, None], 1, &(0..16).collect::<Vec<_>>());
    let keys: Vec<_> = resolve_all(&store, &c, &g4, &[None, None]).iter().map(|r| r.key).collect();
    // The same points seen through another chunking (x in bins of 2).
    let g2 = Grid::new(vec![axis("x", 0..8, 2), axis("y", 0..4, 2)]).unwrap();
    assert_eq!(available_points(&store, &c, &g2), (21, 0));

    let good: Vec<Vec<u8>> = keys.iter().map(|k| store.get_raw_index_for_tests(&c, k).unwrap().unwrap()).collect();
    let damage = |store: &Store| {
        for (k, raw) in keys.iter().zip(&good) {
            damage_index_entry(store, &c, k, raw);
        }
    };
    damage(&store);

    // verify names both (it used to throw), summary leaves them out.
    let v = store.verify(&c).unwrap();
    let mut named: Vec<_> = v.iter().map(|b| b.0).collect();
    named.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(named, sorted);
    assert!(v.iter().all(|b| b.1.contains("damaged index entry")), "{v:?}");
    assert_eq!(store.summary(&c).unwrap().records, 0);
    assert!(store.descriptors(&c).unwrap().is_empty());
    // The own chunking still reads its records (they are valid); another
    // chunking treats them as missing and reports them, without an error.
    assert_eq!(available_points(&store, &c, &g4).0, 21);
    assert_eq!(available_points(&store, &c, &g2), (0, 2));

    // Repair with the grid rebuilds both entries from their records.
    let r = store.repair(&c, Some(&g4)).unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|x| x.rebuilt));
    assert!(store.verify(&c).unwrap().is_empty());
    assert_eq!(store.summary(&c).unwrap().points, 21);
    assert_eq!(available_points(&store, &c, &g2), (21, 0));

    // Without a grid that knows them, records and entries are dropped.
    damage(&store);
    let r = store.repair(&c, Some(&g2)).unwrap();
    assert!(r.iter().all(|x| !x.rebuilt));
    assert!(store.verify(&c).unwrap().is_empty());
    assert!(store.get_record(&c, &keys[0]).unwrap().is_none());
    assert_eq!(available_points(&store, &c, &g4), (0, 0));
}

#[test]
fn records_under_plain_keys_with_damaged_index_entries_are_repaired_not_dropped() {
    let root = TempRoot::new("index-plain");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(4);
    // Written under plain keys (a grid without order keys, as older releases stored them).
    let plain = Grid::new(vec![axis("x", 0..8, 4), axis("y", 0..4, 4)]).unwrap();
    write_some(&store, &c, &plain, &[None, None], 0, &[0, 3, 5]);
    write_some(&store, &c, &plain, &[None, None], 1, &(0..16).collect::<Vec<_>>());
    let keys: Vec<_> = resolve_all(&store, &c, &plain, &[None, None]).iter().map(|r| r.key).collect();
    for k in &keys {
        damage_index_entry(&store, &c, k, &store.get_raw_index_for_tests(&c, k).unwrap().unwrap());
    }
    // Repair with the grid as a cache opens it now (order-prefixed keys).
    let ordered = plain.clone().with_order_keys(vec![(0..8).collect(), (0..4).collect()]).unwrap();
    let r = store.repair(&c, Some(&ordered)).unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|x| x.rebuilt), "{r:?}");
    assert!(store.verify(&c).unwrap().is_empty());
    assert_eq!(store.summary(&c).unwrap().points, 19);
    assert!(keys.iter().all(|k| store.get_record(&c, k).unwrap().is_some()));
}

#[test]
fn legacy_index_entries_without_checksum_are_read() {
    let root = TempRoot::new("legacy");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(3);
    let g = Grid::new(vec![axis("x", 0..4, 4)]).unwrap();
    write_some(&store, &c, &g, &[None], 0, &[1, 2]);
    let key = resolve_all(&store, &c, &g, &[None])[0].key;
    let v2 = store.get_raw_index_for_tests(&c, &key).unwrap().unwrap();
    assert_eq!(v2[0], 2);
    // Version 1: the same fields, no checksum.
    let mut v1 = v2[..v2.len() - 8].to_vec();
    v1[0] = 1;
    store.put_raw_index_for_tests(&c, &key, &v1).unwrap();
    assert!(store.verify(&c).unwrap().is_empty());
    assert_eq!(store.summary(&c).unwrap().points, 2);
    let g2 = Grid::new(vec![axis("x", 0..4, 1)]).unwrap();
    assert_eq!(available_points(&store, &c, &g2), (2, 0));
    // A version 2 entry whose version byte reads 1 is not taken as legacy.
    let mut fake = v2.clone();
    fake[0] = 1;
    store.put_raw_index_for_tests(&c, &key, &fake).unwrap();
    assert_eq!(store.verify(&c).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// In-use marks across processes

const CHILD_ENV: &str = "CHUNK_MEMO_TEST_INUSE_CHILD";

/// The child side: marks caches, then follows the parent's commands on
/// stdin, answering each on stdout.
fn in_use_child(root: &str) {
    use std::io::{BufRead, Write};
    let store = Store::open(Path::new(root)).unwrap();
    let (a, b) = (cache_id(7), cache_id(8));
    let t1 = store.mark_in_use(&a).unwrap();
    let t2 = store.mark_in_use(&a).unwrap();
    let t3 = store.mark_in_use(&b).unwrap();
    assert!(store.unmark_in_use(&b, t3).unwrap());
    assert!(!store.unmark_in_use(&b, t3).unwrap(), "an unmark given twice is a no-op");
    assert!(!store.unmark_in_use(&a, t3).unwrap(), "a token of another cache is refused");
    let mut out = std::io::stdout();
    writeln!(out, "@ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().as_str() {
            "unmark1" => assert!(store.unmark_in_use(&a, t1).unwrap()),
            "unmark2" => assert!(store.unmark_in_use(&a, t2).unwrap()),
            "mark9" => {
                store.mark_in_use(&cache_id(9)).unwrap();
            }
            _ => return,
        }
        writeln!(out, "@done").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn in_use_marks_are_seen_by_other_processes() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    if let Ok(root) = std::env::var(CHILD_ENV) {
        in_use_child(&root);
        return;
    }
    let root = TempRoot::new("inuse");
    let store = Store::open(root.path()).unwrap();
    let mine = store.mark_in_use(&cache_id(1)).unwrap();
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1)]);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "in_use_marks_are_seen_by_other_processes", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |what: &str| {
        for l in lines.by_ref() {
            if l.unwrap().trim().ends_with(what) {
                return;
            }
        }
        panic!("the child ended before {what}");
    };
    wait_for("@ready");
    // The child's nested marks of cache 7 count; its ended mark of 8 not.
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1), cache_id(7)]);
    // Asked of one cache: the same answers.
    assert!(store.is_in_use(&cache_id(7)).unwrap() && store.is_in_use(&cache_id(1)).unwrap());
    assert!(!store.is_in_use(&cache_id(8)).unwrap() && !store.is_in_use(&cache_id(9)).unwrap());
    let mut say = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        wait_for("@done");
    };
    say("unmark1");
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1), cache_id(7)], "one of two marks is left");
    say("unmark2");
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1)]);
    say("mark9");
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1), cache_id(9)]);
    // Killed without unmarking: the kernel drops its owner lock, its mark
    // stops counting at once, and the next open sweeps it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(store.caches_in_use().unwrap(), vec![cache_id(1)]);
    assert!(store.unmark_in_use(&cache_id(1), mine).unwrap());
    assert!(store.caches_in_use().unwrap().is_empty());
    // Marks are OS locks on files under <root>/inuse, one per cache: the
    // files stay, and count only while someone holds their lock (the killed
    // child's file of 9 counts no more).
    let mut names: Vec<String> = std::fs::read_dir(root.path().join("inuse"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let hex = |c: u8| chunk_memo_core::canonical::hex(&cache_id(c));
    assert_eq!(names, vec![hex(1), hex(7), hex(8), hex(9)]);
    assert!(store.caches_in_use().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Sparse partial records

#[test]
fn a_huge_chunk_with_few_points_costs_its_points() {
    let root = TempRoot::new("sparse");
    let store = Store::open(root.path()).unwrap();
    let c = cache_id(4);
    // One chunk of 10,000 x 10,000 points.
    let g = Grid::new(vec![axis("x", 0..10_000, 10_000), axis("y", 0..10_000, 10_000)]).unwrap();
    let pts = [(0u32, 0u32), (1, 2), (9_999, 9_999), (5_000, 17), (17, 5_000), (4_242, 4_243)];
    for &(x, y) in &pts {
        write_some(&store, &c, &g, &[Some(vec![x]), Some(vec![y])], 0, &[0]);
    }
    let key = resolve_all(&store, &c, &g, &[None, None])[0].key;
    let six = store.get_record(&c, &key).unwrap().unwrap();
    assert!(six.len() < 256, "6 points take {} bytes", six.len());
    // One more point rewrites a record of 7 points, not of 10^8.
    let t0 = std::time::Instant::now();
    write_some(&store, &c, &g, &[Some(vec![123]), Some(vec![456])], 0, &[0]);
    let took = t0.elapsed();
    let seven = store.get_record(&c, &key).unwrap().unwrap();
    assert_eq!(seven.len() - six.len(), 12, "4 bytes of index and 8 of element");
    eprintln!("one more point: {took:?}");
    assert!(took.as_millis() < 500, "{took:?}");
    // Every point reads back, through the chunk and through a selection.
    let axis_sel = |f: fn(&(u32, u32)) -> u32, extra: u32| {
        let mut v: Vec<u32> = pts.iter().map(f).chain([extra]).collect();
        v.sort_unstable();
        v.dedup();
        Some(v)
    };
    let sel = [axis_sel(|p| p.0, 123), axis_sel(|p| p.1, 456)];
    let res = resolve_all(&store, &c, &g, &sel);
    assert_eq!(res[0].available, 7);
    let d = store.read_chunk(&c, &res[0]).unwrap();
    assert_eq!(d.data.len(), 7 * 8);
    assert!(store.verify(&c).unwrap().is_empty());
    assert_eq!(store.summary(&c).unwrap().points, 7);
}
