//! Work claims: processes sharing a root never compute the same point at
//! once (SPEC §4.3, §6).
//!
//! The `claims` database is keyed like `records` (cache id + chunk key). Its
//! value lists the claims on that chunk, one entry per (owner, session):
//! the owner ([`crate::owner`]), a session number chosen by the caller (one
//! per run, so two runs of one process do not share work), the time of the
//! entry's latest claim and the claimed points as record positions in the
//! chunk's own layout ([`ChunkGeometry::record_positions`]), so claims made
//! through different selections of one chunking agree.
//!
//! Claims do not protect two processes that run the same sweep with
//! *different* chunkSpecs at the same time: their chunks have different keys.
//! Each claim still re-checks the store, including the records of other
//! chunkings known to the plan's catalog, so what is stored is never
//! recomputed; only work in flight in both at once can be done twice.
//!
//! A claim is one short write transaction that re-resolves the chunk (its
//! own record is read fresh), drops stored points and points a live other
//! (owner, session) holds, takes over points of dead owners and expired
//! leases, and records the rest as ours. Nothing is computed inside it.
//! Writing points releases every claim on them in the write's transaction
//! ([`Store::release_stored_in`]); a run releases what is left with
//! [`Store::release_session`]. Claims of dead owners are swept when found
//! and when a root is opened, so the table only holds work in flight.

use crate::error::{CoreError, Result};
use crate::owner::{Liveness, OwnerId};
use crate::planner::{Grid, Plan};
use crate::store::{now_ms, rkey, CacheId, Catalog, ChunkGeometry, Resolution, Store};
use heed::{RoTxn, RwTxn, WithoutTls};
use std::borrow::Cow;
use std::collections::HashSet;

/// One (owner, session)'s claims on one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    owner: OwnerId,
    session: u64,
    at_ms: u64,
    /// Sorted, distinct record positions.
    points: Vec<u32>,
}

const VERSION: u8 = 1;

/// `VERSION`, then per entry: owner (16 B), session (u64), claimed at (u64
/// ms), a u32 count of ranges and the ranges of points as (start, end) u32
/// pairs: claims are product blocks, whose positions come in runs.
fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![VERSION];
    for e in entries {
        encode_entry(&mut out, e.owner, e.session, e.at_ms, ranges(&e.points));
    }
    out
}

/// The runs of consecutive values of sorted `points`, as [start, end) ranges.
fn ranges(points: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = *points.get(i)?;
        let mut end = start + 1;
        i += 1;
        while i < points.len() && points[i] == end {
            end += 1;
            i += 1;
        }
        Some((start, end))
    })
}

/// Appends one entry: owner, session, claim time, and its points as ranges.
fn encode_entry(out: &mut Vec<u8>, owner: OwnerId, session: u64, at_ms: u64, ranges: impl Iterator<Item = (u32, u32)>) {
    out.extend_from_slice(&owner);
    out.extend_from_slice(&session.to_le_bytes());
    out.extend_from_slice(&at_ms.to_le_bytes());
    let at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut n = 0u32;
    for (start, end) in ranges {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
        n += 1;
    }
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

fn decode(b: &[u8]) -> Result<Vec<Entry>> {
    let bad = || CoreError::corrupt("bad claims entry");
    if b.first() != Some(&VERSION) {
        return Err(bad());
    }
    let mut p = 1;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(p..p + n).ok_or_else(bad)?;
        p += n;
        Ok(s)
    };
    let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
    let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
    let mut out = Vec::new();
    let mut left = b.len() - 1;
    while left > 0 {
        let owner: OwnerId = take(16)?.try_into().unwrap();
        let session = u64_of(take(8)?);
        let at_ms = u64_of(take(8)?);
        let n = u32_of(take(4)?);
        let mut points = Vec::new();
        for _ in 0..n {
            let start = u32_of(take(4)?);
            let end = u32_of(take(4)?);
            if end < start || points.last().is_some_and(|&l| l >= start) {
                return Err(bad());
            }
            points.extend(start..end);
        }
        left -= 36 + 8 * n as usize;
        out.push(Entry { owner, session, at_ms, points });
    }
    Ok(out)
}

/// `a` minus the sorted `b`, in place.
fn remove_sorted(a: &mut Vec<u32>, b: &[u32]) {
    if !b.is_empty() {
        a.retain(|p| b.binary_search(p).is_err());
    }
}

/// What a claim entry means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The caller's own (owner, session).
    Mine,
    /// A live other (owner, session) within its lease: wait for it.
    Held,
    /// A dead owner's, or an expired lease: free to take over.
    Free { dead: bool },
}

fn classify(e: &Entry, session: u64, lease_ms: Option<u64>, now: u64, live: &mut Liveness) -> Class {
    if e.owner == *live.me() && e.session == session {
        return Class::Mine;
    }
    if !live.alive(&e.owner) {
        return Class::Free { dead: true };
    }
    match lease_ms {
        Some(l) if now.saturating_sub(e.at_ms) >= l => Class::Free { dead: false },
        _ => Class::Held,
    }
}

/// Points of one chunk that a runner wants to compute.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Chunk index in the plan.
    pub chunk: usize,
    /// Requested-point indices (request order), distinct.
    pub points: Vec<u32>,
    /// Every requested point of the chunk (`points` is then ignored): a
    /// whole chunk claimed with no list of its points.
    pub whole: bool,
}

impl ClaimRequest {
    /// Points `points` (request indices, distinct) of chunk `chunk`.
    pub fn points(chunk: usize, points: Vec<u32>) -> ClaimRequest {
        ClaimRequest { chunk, points, whole: false }
    }

    /// Every requested point of chunk `chunk`.
    pub fn whole(chunk: usize) -> ClaimRequest {
        ClaimRequest { chunk, points: Vec::new(), whole: true }
    }

    /// The request indices asked for, in order (a whole request: every
    /// requested point of the chunk in `plan`).
    pub fn requested_points(&self, plan: &Plan) -> Cow<'_, [u32]> {
        if self.whole {
            Cow::Owned((0..plan.requested(self.chunk) as u32).collect())
        } else {
            Cow::Borrowed(&self.points)
        }
    }
}

/// The answer for one [`ClaimRequest`]; every point of the request is in
/// exactly one of `granted`, `stored`, `held`.
#[derive(Debug, Clone, Default)]
pub struct ClaimOutcome {
    /// Points the caller's (owner, session) holds now: compute them.
    pub granted: Vec<u32>,
    /// Points stored now: read them.
    pub stored: Vec<u32>,
    /// Points a live other (owner, session) holds: wait for them.
    pub held: Vec<u32>,
    /// Granted points taken over from a dead owner or an expired lease.
    pub taken_over: u32,
    /// The chunk's resolution, fresh from this transaction.
    pub resolution: Resolution,
}

/// Options of a claim.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimOptions {
    /// The caller's session (one per run).
    pub session: u64,
    /// Claims older than this (ms since their entry's latest claim) are taken
    /// over even from a live owner that seems to hang.
    pub lease_ms: Option<u64>,
}

/// What a claim call needs of a plan.
pub struct PlanRef<'a> {
    pub cache: &'a CacheId,
    pub grid: &'a Grid,
    pub plan: &'a Plan,
}

impl Store {
    /// Claims points of several chunks in one write transaction (see the
    /// module docs). Points already held by the caller's (owner, session) are
    /// granted again and their claim time refreshed.
    pub fn claim(
        &self,
        at: &PlanRef<'_>,
        catalog: &mut Catalog,
        opts: ClaimOptions,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        for r in requests {
            check_request(at, r)?;
        }
        let (out, live) = self.write(|s, t| {
            let now = now_ms();
            let mut live = s.owner.liveness();
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                out.push(s.claim_in(t, at, catalog, opts, now, &mut live, r)?);
            }
            let dead = live.dead();
            if !dead.is_empty() {
                s.sweep_owners_in(t, &dead)?;
            }
            Ok((out, live))
        })?;
        live.remove_dead();
        Ok(out)
    }

    /// Re-resolves chunks and reports, without claiming, which requested
    /// points are stored, held by the caller's session (`granted`), or held
    /// by a live other (`held`); the rest are free to claim.
    pub fn claim_status(
        &self,
        at: &PlanRef<'_>,
        catalog: &mut Catalog,
        opts: ClaimOptions,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>> {
        for r in requests {
            check_request(at, r)?;
        }
        self.read(|s, t| {
            let now = now_ms();
            let mut live = s.owner.liveness();
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                let res = s.resolve_one(t, at.cache, at.grid, at.plan, r.chunk, catalog)?;
                let entries = s.entries_in(t, &rkey(at.cache, &res.key))?;
                let classes: Vec<Class> =
                    entries.iter().map(|e| classify(e, opts.session, opts.lease_ms, now, &mut live)).collect();
                let positions = ChunkGeometry::of(at.plan, r.chunk).record_positions();
                let mut o = ClaimOutcome::default();
                for &q in r.requested_points(at.plan).iter() {
                    if res.is_present(q as usize) {
                        o.stored.push(q);
                        continue;
                    }
                    let p = positions[q as usize];
                    let has = |c: Class| {
                        entries.iter().zip(&classes).any(|(e, &k)| k == c && e.points.binary_search(&p).is_ok())
                    };
                    if has(Class::Mine) {
                        o.granted.push(q);
                    } else if has(Class::Held) {
                        o.held.push(q);
                    }
                }
                o.resolution = res;
                out.push(o);
            }
            Ok(out)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn claim_in(
        &self,
        t: &mut RwTxn<'_>,
        at: &PlanRef<'_>,
        catalog: &mut Catalog,
        opts: ClaimOptions,
        now: u64,
        live: &mut Liveness,
        r: &ClaimRequest,
    ) -> Result<ClaimOutcome> {
        let res = self.resolve_one(t, at.cache, at.grid, at.plan, r.chunk, catalog)?;
        // Request index q is record position q when the chunk is requested
        // in full; else the positions come from the geometry.
        let geo = ChunkGeometry::of(at.plan, r.chunk);
        let positions = (geo.requested() != geo.record_points()).then(|| geo.record_positions());
        let position = |q: u32| positions.as_ref().map_or(q, |p| p[q as usize]);
        let key = rkey(at.cache, &res.key);
        let mut entries = self.entries_in(t, &key)?;
        let mut o = ClaimOutcome::default();
        let points = r.requested_points(at.plan);
        if entries.is_empty() && res.available == 0 {
            // Nothing stored and nobody claims this chunk: every point is
            // ours, in bulk, as this session's one entry (a whole chunk in
            // its record's order is one range: no list of positions).
            if !points.is_empty() {
                let mut value = vec![VERSION];
                let me = *live.me();
                if r.whole && positions.is_none() {
                    encode_entry(&mut value, me, opts.session, now, std::iter::once((0, points.len() as u32)));
                } else {
                    let mut granted: Vec<u32> = points.iter().map(|&q| position(q)).collect();
                    granted.sort_unstable();
                    encode_entry(&mut value, me, opts.session, now, ranges(&granted));
                }
                self.claims.put(t, &key, &value)?;
            }
            o.granted = points.into_owned();
            o.resolution = res;
            return Ok(o);
        }
        let classes: Vec<Class> = entries.iter().map(|e| classify(e, opts.session, opts.lease_ms, now, live)).collect();
        let (mut granted, mut stored) = (Vec::new(), Vec::new());
        for &q in points.iter() {
            let p = position(q);
            if res.is_present(q as usize) {
                o.stored.push(q);
                stored.push(p);
                continue;
            }
            let (mut mine, mut held, mut free) = (false, false, false);
            for (e, c) in entries.iter().zip(&classes) {
                if e.points.binary_search(&p).is_ok() {
                    match c {
                        Class::Mine => mine = true,
                        Class::Held => held = true,
                        Class::Free { .. } => free = true,
                    }
                }
            }
            if held && !mine {
                o.held.push(q);
                continue;
            }
            o.granted.push(q);
            granted.push(p);
            if free && !mine {
                o.taken_over += 1;
            }
        }
        granted.sort_unstable();
        granted.dedup();
        stored.sort_unstable();
        let before = entries.clone();
        // Dead owners lose everything; expired leases lose what we take;
        // nobody keeps a claim on a stored point.
        for (e, c) in entries.iter_mut().zip(&classes) {
            match c {
                Class::Free { dead: true } => e.points.clear(),
                Class::Free { dead: false } => remove_sorted(&mut e.points, &granted),
                _ => {}
            }
            remove_sorted(&mut e.points, &stored);
        }
        if !granted.is_empty() {
            let me = *live.me();
            match entries.iter_mut().find(|e| e.owner == me && e.session == opts.session) {
                Some(e) => {
                    e.points.extend_from_slice(&granted);
                    e.points.sort_unstable();
                    e.points.dedup();
                    e.at_ms = now;
                }
                None => entries.push(Entry { owner: me, session: opts.session, at_ms: now, points: granted }),
            }
        }
        entries.retain(|e| !e.points.is_empty());
        if entries != before {
            self.put_entries_in(t, &key, &entries)?;
        }
        o.resolution = res;
        Ok(o)
    }

    fn entries_in(&self, t: &RoTxn<'_, WithoutTls>, key: &[u8; 32]) -> Result<Vec<Entry>> {
        // Claims are advisory: an unreadable value counts as no claims.
        Ok(self.claims.get(t, key)?.and_then(|b| decode(b).ok()).unwrap_or_default())
    }

    fn put_entries_in(&self, t: &mut RwTxn<'_>, key: &[u8; 32], entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            self.claims.delete(t, key)?;
        } else {
            self.claims.put(t, key, &encode(entries))?;
        }
        Ok(())
    }

    /// Removes every claim on the record positions for which `stored` is
    /// true, in the caller's transaction (a write releases its points).
    pub(crate) fn release_stored_in(
        &self,
        t: &mut RwTxn<'_>,
        key: &[u8; 32],
        stored: impl Fn(usize) -> bool,
    ) -> Result<()> {
        let Some(raw) = self.claims.get(t, key)? else { return Ok(()) };
        let mut entries = decode(raw).unwrap_or_default();
        for e in &mut entries {
            e.points.retain(|&p| !stored(p as usize));
        }
        entries.retain(|e| !e.points.is_empty());
        self.put_entries_in(t, key, &entries)
    }

    /// Removes every claim on a chunk whose points are all stored now, in
    /// the caller's transaction (nothing to decode).
    pub(crate) fn release_all_in(&self, t: &mut RwTxn<'_>, key: &[u8; 32]) -> Result<()> {
        self.claims.delete(t, key)?;
        Ok(())
    }

    /// Rewrites every claims value through `f`; returns the points removed.
    fn rewrite_all_in(&self, t: &mut RwTxn<'_>, mut f: impl FnMut(&Entry) -> bool) -> Result<u64> {
        let mut changes: Vec<(Vec<u8>, Vec<Entry>)> = Vec::new();
        let mut removed = 0u64;
        for item in self.claims.iter(t)? {
            let (k, v) = item?;
            let entries = decode(v).unwrap_or_default();
            let n = entries.len();
            let mut kept = Vec::with_capacity(n);
            for e in entries {
                if f(&e) {
                    removed += e.points.len() as u64;
                } else {
                    kept.push(e);
                }
            }
            if kept.len() != n || kept.is_empty() {
                changes.push((k.to_vec(), kept));
            }
        }
        for (k, entries) in changes {
            let key: [u8; 32] = match k.as_slice().try_into() {
                Ok(k) => k,
                Err(_) => {
                    self.claims.delete(t, &k)?;
                    continue;
                }
            };
            self.put_entries_in(t, &key, &entries)?;
        }
        Ok(removed)
    }

    fn sweep_owners_in(&self, t: &mut RwTxn<'_>, dead: &[OwnerId]) -> Result<u64> {
        self.rewrite_all_in(t, |e| dead.contains(&e.owner))
    }

    /// Releases every claim of this store's owner and `session` (the end of
    /// a run, also after a failure or an abort). Returns the points released.
    pub fn release_session(&self, session: u64) -> Result<u64> {
        let me = *self.owner.id();
        self.write(|s, t| s.rewrite_all_in(t, |e| e.owner == me && e.session == session))
    }

    /// Claimed points in the root, every owner and session together.
    pub fn claim_count(&self) -> Result<u64> {
        self.read(|s, t| {
            let mut n = 0;
            for item in s.claims.iter(t)? {
                let (_, v) = item?;
                n += decode(v).unwrap_or_default().iter().map(|e| e.points.len() as u64).sum::<u64>();
            }
            Ok(n)
        })
    }

    /// This store's owner id.
    pub fn owner_id(&self) -> &OwnerId {
        self.owner.id()
    }

    /// Removes the claims and lock files of dead owners (at open).
    pub(crate) fn purge_dead_owners(&self) -> Result<()> {
        let owners: HashSet<OwnerId> = self.read(|s, t| {
            let mut out = HashSet::new();
            for item in s.claims.iter(t)? {
                let (_, v) = item?;
                out.extend(decode(v).unwrap_or_default().into_iter().map(|e| e.owner));
            }
            Ok(out)
        })?;
        let mut live = self.owner.liveness();
        let dead: Vec<OwnerId> = owners.into_iter().filter(|o| !live.alive(o)).collect();
        if !dead.is_empty() {
            self.write(|s, t| s.sweep_owners_in(t, &dead))?;
        }
        live.remove_dead();
        crate::owner::remove_stale_lock_files(self.path(), self.owner.id());
        Ok(())
    }
}

fn check_request(at: &PlanRef<'_>, r: &ClaimRequest) -> Result<()> {
    if r.chunk >= at.plan.n_chunks {
        return Err(CoreError::invalid(format!("chunk {} out of range", r.chunk)));
    }
    let req = at.plan.requested(r.chunk);
    if r.whole {
        return Ok(());
    }
    if let Some(&bad) = r.points.iter().find(|&&p| p as u64 >= req) {
        return Err(CoreError::invalid(format!("point {bad} out of range for a chunk of {req} requested points")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_as_ranges() {
        let es = vec![
            Entry { owner: [1; 16], session: 7, at_ms: 123, points: vec![0, 1, 2, 5, 9, 10] },
            Entry { owner: [2; 16], session: 0, at_ms: 0, points: vec![] },
        ];
        let b = encode(&es);
        assert_eq!(b.len(), 1 + (36 + 3 * 8) + 36);
        assert_eq!(decode(&b).unwrap(), es);
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn removal() {
        let mut a = vec![1, 2, 3, 4];
        remove_sorted(&mut a, &[2, 4, 9]);
        assert_eq!(a, vec![1, 3]);
    }
}
