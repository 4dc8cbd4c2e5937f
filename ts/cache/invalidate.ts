/**
 * `cache.invalidate()`: deletes the stored outputs of a view's points, in
 * every record that holds them (whatever chunking wrote it), so the next run
 * recomputes exactly those points.
 *
 * Records whose points all lie in the view are deleted. A record that the
 * view covers in part keeps its other points: they are read, the record is
 * deleted, and the kept points are written back through the ordinary write
 * path (same record layout, so the record key is unchanged).
 */
import { native, type BindingDescriptor } from '../binding/native.js';
import { ChunkMemoError, fromNative } from '../errors/index.js';
import { isInUse } from '../manage/hooks.js';
import { planOf, type ChunkCache } from './cache.js';

/** Result of `cache.invalidate()`. */
export interface InvalidateResult {
  /** Stored points of the view that were deleted. */
  readonly points: number;
  /** Records deleted whole. */
  readonly deletedRecords: number;
  /** Records the view covered in part, rewritten with their other points. */
  readonly rewrittenRecords: number;
}

interface KeptWrite {
  desc: BindingDescriptor;
  kind: number;
  /** Record-layout point indices of the kept points, per dictionary group. */
  groups: Array<{ points: Uint32Array; offsets: Uint32Array; data: Buffer; dict: Buffer }>;
}

/** u64 LE hashes of a buffer as bigints. */
function hashesOf(b: Buffer): BigUint64Array {
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new BigUint64Array(copy.buffer, 0, b.length >> 3);
}

/** A one-chunk plan over exactly a record's layout (its key is the record's). */
function recordPlan(desc: BindingDescriptor) {
  const grid = new native.BindingGrid(
    desc.axes.map((a) => a.name),
    desc.axes.map((a) => a.hashes),
    desc.axes.map((a) => Math.max(1, a.hashes.length >> 3)),
  );
  return grid.plan(desc.axes.map(() => null));
}

export function invalidateView(cache: ChunkCache): InvalidateResult {
  const where = 'invalidate';
  const core = cache._check();
  if (isInUse(core.root, core.id)) {
    throw new ChunkMemoError('ERR_IN_USE', `${where}: cache ${core.id} is in use by a run of this process; invalidate it after the run ends`);
  }
  const store = core.store;
  const id = core.idBytes;
  try {
    // Stored points of the view, counted once whatever records hold them.
    const resolved = planOf(cache).resolve(store, id);
    let points = 0;
    for (let i = 0; i < resolved.available.length; i++) points += resolved.available[i]!;

    // Value hashes of the view, per axis name (pinned axes included).
    const inView = new Map<string, Set<bigint>>();
    core.axisOrder.forEach((a, k) => {
      const all = core.hashes[k]!;
      const sel = cache._sel[k];
      const s = new Set<bigint>();
      if (sel) for (const i of sel) s.add(all[i]!);
      else for (let i = 0; i < all.length; i++) s.add(all[i]!);
      inView.set(a, s);
    });

    const whole: Buffer[] = [];
    const kept: KeptWrite[] = [];
    for (const desc of store.descriptors(id)) {
      if (desc.axes.length !== inView.size || desc.axes.some((a) => !inView.has(a.name))) continue;
      // Per record axis: which of its values the view selects.
      const masks: Uint8Array[] = [];
      let covered = 1;
      let all = true;
      for (const ax of desc.axes) {
        const hs = hashesOf(ax.hashes);
        const want = inView.get(ax.name)!;
        const m = new Uint8Array(hs.length);
        let c = 0;
        for (let j = 0; j < hs.length; j++) if (want.has(hs[j]!)) (m[j] = 1), c++;
        masks.push(m);
        covered *= c;
        if (c !== hs.length) all = false;
      }
      if (covered === 0) continue;
      if (all || desc.present === 0) {
        whole.push(desc.chunk);
        continue;
      }
      // Part of the record: read its points (in its own layout).
      const plan = recordPlan(desc);
      if (Buffer.compare(plan.chunkKey(0), desc.chunk) !== 0) {
        // Not a layout this version can rebuild: drop the record whole
        // rather than keep outputs that were asked to go.
        whole.push(desc.chunk);
        continue;
      }
      const rd = plan.read(store, id, 0);
      const lens = masks.map((m) => m.length);
      const keep: number[] = []; // record positions
      const keepW: number[] = []; // index among present points
      let w = 0;
      const n = rd.present.length;
      for (let r = 0; r < n; r++) {
        if (!rd.present[r]) continue;
        let x = r;
        let ok = true;
        for (let a = lens.length - 1; a >= 0; a--) {
          const j = x % lens[a]!;
          x = Math.floor(x / lens[a]!);
          if (!masks[a]![j]) ok = false;
        }
        if (!ok) {
          keep.push(r);
          keepW.push(w);
        }
        w++;
      }
      whole.push(desc.chunk);
      if (keep.length === 0) continue;
      const groups: KeptWrite['groups'] = [];
      if (rd.kind === 0) {
        const byDict = new Map<number, number[]>();
        keepW.forEach((pw, q) => {
          const g = rd.pointDicts[pw] ?? 0;
          const l = byDict.get(g) ?? [];
          l.push(q);
          byDict.set(g, l);
        });
        for (const [g, qs] of byDict) {
          const offsets = new Uint32Array(qs.length + 1);
          const parts: Buffer[] = [];
          let total = 0;
          qs.forEach((q, k) => {
            const pw = keepW[q]!;
            const part = rd.data.subarray(rd.offsets[pw]!, rd.offsets[pw + 1]!);
            parts.push(part);
            total += part.length;
            offsets[k + 1] = total;
          });
          groups.push({
            points: Uint32Array.from(qs, (q) => keep[q]!),
            offsets,
            data: Buffer.concat(parts, total),
            dict: rd.dicts[g] ?? Buffer.alloc(0),
          });
        }
      } else {
        const width = n > 0 && w > 0 ? rd.data.length / w : 0;
        const data = Buffer.alloc(keep.length * width);
        keepW.forEach((pw, k) => rd.data.copy(data, k * width, pw * width, (pw + 1) * width));
        groups.push({ points: Uint32Array.from(keep), offsets: new Uint32Array(0), data, dict: Buffer.alloc(0) });
      }
      kept.push({ desc, kind: rd.kind, groups });
    }

    if (whole.length) store.deleteRecords(id, whole);
    // Write the kept points back, each record in its own layout. The
    // records were deleted above, so nothing of the view is merged back.
    for (const k of kept) {
      const plan = recordPlan(k.desc);
      plan.writeBatch(store, id, k.groups.map((g) => ({ chunk: 0, kind: k.kind, points: g.points, offsets: g.offsets, data: g.data, dict: g.dict })));
    }
    return { points, deletedRecords: whole.length - kept.length, rewrittenRecords: kept.length };
  } catch (e) {
    if (e instanceof ChunkMemoError) throw e;
    throw fromNative(e, where);
  }
}
