//! Work claims on real environments: sessions of one owner, writes that
//! release, stored points, leases, dead owners (a child process killed with
//! SIGKILL) and concurrent claimers.

mod common;

use chunk_memo_core::canonical::DType;
use chunk_memo_core::claims::{ClaimOptions, ClaimOutcome, ClaimRequest, PlanRef};
use chunk_memo_core::planner::{Axis, Grid, Plan};
use chunk_memo_core::store::{CacheId, Catalog, ChunkGeometry, ChunkWrite, Store, WritePoints};
use common::{vh, TempRoot};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const F64: u8 = DType::F64 as u8;
const CACHE: CacheId = [7u8; 16];
const CHILD_ENV: &str = "CHUNK_MEMO_CLAIMS_TEST_CHILD";

/// x: 0..10 in bins of 5, y: 0..4 in one bin: two chunks of 20 points.
fn grid() -> Grid {
    Grid::new(vec![
        Axis { name: "x".into(), hashes: (0..10).map(vh).collect(), chunk: 5 },
        Axis { name: "y".into(), hashes: (0..4).map(vh).collect(), chunk: 4 },
    ])
    .unwrap()
}

fn all(plan: &Plan, chunk: usize) -> ClaimRequest {
    ClaimRequest::points(chunk, (0..plan.requested(chunk) as u32).collect())
}

fn claim(
    store: &Store,
    g: &Grid,
    plan: &Plan,
    session: u64,
    lease_ms: Option<u64>,
    reqs: &[ClaimRequest],
) -> Vec<ClaimOutcome> {
    let at = PlanRef { cache: &CACHE, grid: g, plan };
    store.claim(&at, &mut Catalog::default(), ClaimOptions { session, lease_ms }, reqs).unwrap()
}

fn claim_one(store: &Store, g: &Grid, plan: &Plan, session: u64, req: ClaimRequest) -> ClaimOutcome {
    claim(store, g, plan, session, None, &[req]).pop().unwrap()
}

/// Stores requested points `points` of chunk `chunk` (value = point index).
fn write(store: &Store, g: &Grid, plan: &Plan, chunk: usize, points: &[u32]) {
    let geo = ChunkGeometry::of(plan, chunk);
    let data: Vec<u8> = points.iter().flat_map(|&p| f64::from(p).to_le_bytes()).collect();
    let w = ChunkWrite {
        geo: &geo,
        grid: g,
        res: None,
        kind: F64,
        points: WritePoints::Given(points),
        offsets: &[],
        data: &data,
        dict: &[],
    };
    store.write_chunks(&CACHE, &[w]).unwrap();
}

#[test]
fn another_session_gets_nothing_the_same_session_gets_it_again() {
    let root = TempRoot::new("sessions");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    let a = claim(&store, &g, &plan, 1, None, &[all(&plan, 0), all(&plan, 1)]);
    assert_eq!(a[0].granted.len(), 20);
    assert_eq!(a[1].granted.len(), 20);
    assert_eq!(store.claim_count().unwrap(), 40);
    let b = claim_one(&store, &g, &plan, 2, all(&plan, 0));
    assert!(b.granted.is_empty());
    assert_eq!(b.held, (0..20).collect::<Vec<_>>());
    assert_eq!(b.taken_over, 0);
    let again = claim_one(&store, &g, &plan, 1, all(&plan, 0));
    assert_eq!(again.granted.len(), 20);
    assert_eq!(again.taken_over, 0);
    assert_eq!(store.claim_count().unwrap(), 40);
    // Status agrees without claiming.
    let at = PlanRef { cache: &CACHE, grid: &g, plan: &plan };
    let st = store
        .claim_status(&at, &mut Catalog::default(), ClaimOptions { session: 2, lease_ms: None }, &[all(&plan, 1)])
        .unwrap();
    assert_eq!(st[0].held.len(), 20);
    assert!(st[0].granted.is_empty() && st[0].stored.is_empty());
    assert_eq!(store.release_session(1).unwrap(), 40);
    assert_eq!(store.claim_count().unwrap(), 0);
    assert_eq!(claim_one(&store, &g, &plan, 2, all(&plan, 0)).granted.len(), 20);
}

#[test]
fn a_write_releases_and_stored_points_are_never_granted() {
    let root = TempRoot::new("write");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    assert_eq!(claim_one(&store, &g, &plan, 1, all(&plan, 0)).granted.len(), 20);
    write(&store, &g, &plan, 0, &(0..10).collect::<Vec<_>>());
    assert_eq!(store.claim_count().unwrap(), 10);
    let b = claim_one(&store, &g, &plan, 2, all(&plan, 0));
    assert_eq!(b.stored, (0..10).collect::<Vec<_>>());
    assert_eq!(b.held, (10..20).collect::<Vec<_>>());
    assert!(b.granted.is_empty());
    assert_eq!(b.resolution.available, 10);
    write(&store, &g, &plan, 0, &(10..20).collect::<Vec<_>>());
    assert_eq!(store.claim_count().unwrap(), 0);
    let c = claim_one(&store, &g, &plan, 2, all(&plan, 0));
    assert_eq!(c.stored.len(), 20);
    assert!(c.granted.is_empty() && c.held.is_empty());
    assert_eq!(store.claim_count().unwrap(), 0);
}

#[test]
fn claims_through_different_selections_agree() {
    let root = TempRoot::new("selections");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let whole = g.plan(&[None, None]).unwrap();
    // x = 2, 3 and y = 1, 3: four points of chunk 0.
    let part = g.plan(&[Some(vec![2, 3]), Some(vec![1, 3])]).unwrap();
    assert_eq!(part.n_chunks, 1);
    let a = claim_one(&store, &g, &part, 1, all(&part, 0));
    assert_eq!(a.granted, vec![0, 1, 2, 3]);
    let b = claim_one(&store, &g, &whole, 2, all(&whole, 0));
    // Positions x*4+y of the whole chunk.
    assert_eq!(b.held, vec![9, 11, 13, 15]);
    assert_eq!(b.granted.len(), 16);
    // A write through the whole plan releases the part's claims.
    write(&store, &g, &whole, 0, &[9, 11, 13, 15]);
    assert_eq!(store.claim_count().unwrap(), 16);
    let c = claim_one(&store, &g, &part, 1, all(&part, 0));
    assert_eq!(c.stored, vec![0, 1, 2, 3]);
}

#[test]
fn an_expired_lease_is_taken_over_and_counted() {
    let root = TempRoot::new("lease");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    claim_one(&store, &g, &plan, 1, ClaimRequest::points(1, vec![0, 1, 2, 3]));
    let fresh = claim(&store, &g, &plan, 2, Some(60_000), &[all(&plan, 1)]).pop().unwrap();
    assert_eq!((fresh.granted.len(), fresh.held.len(), fresh.taken_over), (16, 4, 0));
    std::thread::sleep(std::time::Duration::from_millis(30));
    let late = claim(&store, &g, &plan, 3, Some(20), &[all(&plan, 1)]).pop().unwrap();
    assert_eq!(late.granted.len(), 20);
    assert_eq!(late.taken_over, 20);
    // Everything moved to session 3: nothing counted twice.
    assert_eq!(store.claim_count().unwrap(), 20);
    assert_eq!(store.release_session(1).unwrap(), 0);
    assert_eq!(store.release_session(3).unwrap(), 20);
}

#[test]
fn bad_requests_are_refused() {
    let root = TempRoot::new("bad");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    let at = PlanRef { cache: &CACHE, grid: &g, plan: &plan };
    let opts = ClaimOptions::default();
    assert!(store.claim(&at, &mut Catalog::default(), opts, &[ClaimRequest::points(2, vec![])]).is_err());
    assert!(store.claim(&at, &mut Catalog::default(), opts, &[ClaimRequest::points(0, vec![20])]).is_err());
    assert_eq!(store.claim_count().unwrap(), 0);
}

#[test]
fn deleting_a_cache_deletes_its_claims() {
    let root = TempRoot::new("delete");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    claim_one(&store, &g, &plan, 1, all(&plan, 0));
    store.delete_cache(&CACHE).unwrap();
    assert_eq!(store.claim_count().unwrap(), 0);
}

/// Run as a child process by the dead-owner tests: claims chunk 0 of
/// [`grid`] with session 9, says so, and waits to be killed.
#[test]
fn child_claims_and_waits() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return };
    let store = Store::open(Path::new(&root)).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    let o = claim_one(&store, &g, &plan, 9, all(&plan, 0));
    println!("CLAIMED {} {}", o.granted.len(), chunk_memo_core::canonical::hex(store.owner_id()));
    std::thread::sleep(std::time::Duration::from_secs(120));
}

/// Starts the child; returns it with the points it claimed and its owner id.
fn spawn_claimer(root: &Path) -> (std::process::Child, usize, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_claims_and_waits", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        // libtest prints the test's name on the same line.
        if let Some(rest) = line.split_once("CLAIMED ").map(|x| x.1) {
            let (n, owner) = rest.split_once(' ').unwrap();
            return (child, n.parse().unwrap(), owner.to_string());
        }
    }
    kill(child);
    panic!("the child exited before claiming");
}

fn kill(mut child: std::process::Child) {
    let _ = child.kill(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn a_killed_owner_is_taken_over_at_once() {
    let root = TempRoot::new("killed");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    let (child, n, owner) = spawn_claimer(root.path());
    assert_eq!(n, 20);
    let lock = root.path().join("owners").join(format!("{owner}.lock"));
    assert!(lock.exists());
    // Alive: nothing granted, whatever the lease says (it is fresh).
    let b = claim(&store, &g, &plan, 1, Some(60_000), &[all(&plan, 0)]).pop().unwrap();
    assert!(b.granted.is_empty());
    assert_eq!(b.held.len(), 20);
    kill(child);
    let c = claim_one(&store, &g, &plan, 1, all(&plan, 0));
    assert_eq!(c.granted.len(), 20);
    assert_eq!(c.taken_over, 20);
    assert_eq!(store.claim_count().unwrap(), 20);
    assert!(!lock.exists(), "the dead owner's lock file is removed");
}

#[test]
fn opening_a_root_purges_dead_owners() {
    let root = TempRoot::new("purge");
    let (child, n, owner) = spawn_claimer(root.path());
    assert_eq!(n, 20);
    kill(child);
    // A lock file that nobody holds, as a killed process leaves it.
    let stale = root.path().join("owners").join(format!("{}.lock", "ab".repeat(16)));
    std::fs::write(&stale, b"").unwrap();
    let store = Store::open(root.path()).unwrap();
    assert_eq!(store.claim_count().unwrap(), 0);
    assert!(!root.path().join("owners").join(format!("{owner}.lock")).exists());
    assert!(!stale.exists());
    let mine = root.path().join("owners").join(format!("{}.lock", chunk_memo_core::canonical::hex(store.owner_id())));
    assert!(mine.exists());
    drop(store);
    assert!(!mine.exists(), "a closed store removes its lock file");
}

#[test]
fn concurrent_sessions_are_granted_each_point_once() {
    let root = TempRoot::new("threads");
    let store = Store::open(root.path()).unwrap();
    let g = Arc::new(
        Grid::new(vec![
            Axis { name: "x".into(), hashes: (0..40).map(vh).collect(), chunk: 10 },
            Axis { name: "y".into(), hashes: (0..30).map(vh).collect(), chunk: 30 },
        ])
        .unwrap(),
    );
    let plan = Arc::new(g.plan(&[None, None]).unwrap());
    let handles: Vec<_> = (0..4u64)
        .map(|k| {
            let (store, g, plan) = (store.clone(), g.clone(), plan.clone());
            std::thread::spawn(move || {
                let mut granted: Vec<(usize, u32)> = Vec::new();
                // Overlapping windows of 60 points, each thread in its own
                // order over the chunks and the windows.
                for round in 0..20u64 {
                    let chunk = ((k + round) % plan.n_chunks as u64) as usize;
                    let start = ((round * 37 + k * 101) % 300) as u32;
                    let points: Vec<u32> = (start..start + 60).map(|p| p % 300).collect();
                    let o = claim(&store, &g, &plan, k, None, &[ClaimRequest::points(chunk, points)]).pop().unwrap();
                    granted.extend(o.granted.iter().map(|&p| (chunk, p)));
                }
                for chunk in 0..plan.n_chunks {
                    let o = claim_one(&store, &g, &plan, k, all(&plan, chunk));
                    granted.extend(o.granted.iter().map(|&p| (chunk, p)));
                }
                granted
            })
        })
        .collect();
    let mut per_session: Vec<Vec<(usize, u32)>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut seen = std::collections::HashMap::new();
    for (k, g) in per_session.iter_mut().enumerate() {
        g.sort_unstable();
        g.dedup();
        for &pt in g.iter() {
            assert!(seen.insert(pt, k).is_none(), "point {pt:?} granted to two sessions");
        }
    }
    assert_eq!(seen.len(), 40 * 30, "every point granted to someone");
    assert_eq!(store.claim_count().unwrap(), 1200);
    for k in 0..4 {
        store.release_session(k).unwrap();
    }
    assert_eq!(store.claim_count().unwrap(), 0);
}

#[test]
fn whole_chunk_requests_claim_like_full_point_lists() {
    let root = TempRoot::new("whole");
    let store = Store::open(root.path()).unwrap();
    let g = grid();
    let plan = g.plan(&[None, None]).unwrap();
    // Nothing stored, nobody claims: every point granted, and recorded as
    // claims another session's point list runs into.
    let a = claim_one(&store, &g, &plan, 1, ClaimRequest::whole(0));
    assert_eq!(a.granted, (0..20).collect::<Vec<_>>());
    assert_eq!(store.claim_count().unwrap(), 20);
    let b = claim_one(&store, &g, &plan, 2, all(&plan, 0));
    assert_eq!(b.held, (0..20).collect::<Vec<_>>());
    // Some points stored: a whole request of another session splits into
    // stored, held (session 1's) and granted exactly like a list would.
    write(&store, &g, &plan, 1, &[0, 1, 2]);
    claim_one(&store, &g, &plan, 1, ClaimRequest::points(1, vec![3, 4]));
    let c = claim_one(&store, &g, &plan, 3, ClaimRequest::whole(1));
    assert_eq!(c.stored, vec![0, 1, 2]);
    assert_eq!(c.held, vec![3, 4]);
    assert_eq!(c.granted, (5..20).collect::<Vec<_>>());
    let at = PlanRef { cache: &CACHE, grid: &g, plan: &plan };
    let st = store
        .claim_status(
            &at,
            &mut Catalog::default(),
            ClaimOptions { session: 3, lease_ms: None },
            &[ClaimRequest::whole(1)],
        )
        .unwrap();
    assert_eq!((st[0].stored.len(), st[0].held.len(), st[0].granted.len()), (3, 2, 15));
    // A selection that requests part of each chunk: a whole request claims
    // the record positions of the selected points only.
    let root = TempRoot::new("whole-sub");
    let store = Store::open(root.path()).unwrap();
    let sub = g.plan(&[Some(vec![6, 8]), Some(vec![1, 3])]).unwrap();
    let d = claim_one(&store, &g, &sub, 4, ClaimRequest::whole(0));
    assert_eq!(d.granted, vec![0, 1, 2, 3]);
    let e = claim_one(&store, &g, &plan, 5, all(&plan, 1));
    let pos = |x: u32, y: u32| (x - 5) * 4 + y;
    assert_eq!(e.held, vec![pos(6, 1), pos(6, 3), pos(8, 1), pos(8, 3)]);
    assert_eq!(e.granted.len(), 16);
}
