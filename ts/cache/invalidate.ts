/**
 * `cache.invalidate()`: deletes the stored outputs of a view's points, in
 * every record that holds them (whatever chunking wrote it), so the next run
 * recomputes exactly those points.
 *
 * Records whose points all lie in the view are deleted. A record that the
 * view covers in part keeps its other points, moved through the ordinary
 * write path so that no stored point is lost at any moment (see the steps
 * below); the record ends in its own layout, under its own key.
 */
import { native, type BindingChunkData, type BindingDescriptor, type BindingStore } from '../binding/native.js';
import { ChunkMemoError, fromNative } from '../errors/index.js';
import { planOf, type ViewState } from './core.js';
import { isInUseAnywhere } from '../store/in-use.js';

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
  /** Layout of the new record: axis names and u64 LE value hashes. */
  axes: Array<{ name: string; hashes: Buffer }>;
  /** A record's own layout: its key (the new record is written under it). */
  key?: Buffer;
  kind: number;
  /** Block point indices of the kept points, per dictionary group. */
  groups: Array<{ points: Uint32Array; offsets: Uint32Array; data: Buffer; dict: Buffer }>;
}

/** u64 LE hashes of a buffer as bigints. */
function hashesOf(b: Buffer): BigUint64Array {
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new BigUint64Array(copy.buffer, 0, b.length >> 3);
}

/** A one-chunk plan over exactly a layout (axis names and value hashes). */
function blockPlan(axes: ReadonlyArray<{ name: string; hashes: Buffer }>, keyOf?: Buffer) {
  const grid = new native.BindingGrid(
    axes.map((a) => a.name),
    axes.map((a) => a.hashes),
    axes.map((a) => Math.max(1, a.hashes.length >> 3)),
    undefined,
    keyOf,
  );
  return grid.plan(axes.map(() => null));
}

/** The plan of a record's own layout (its key is the record's). */
const recordPlan = (desc: BindingDescriptor) => blockPlan(desc.axes, desc.chunk);

/** @internal `cache.invalidate()` of a cache or view (see the module comment). */
export function invalidateView(cache: ViewState): InvalidateResult {
  const where = 'invalidate';
  const core = cache._check();
  if (isInUseAnywhere(core.store, core.root, core.id)) {
    throw new ChunkMemoError('ERR_IN_USE', `${where}: cache ${core.id} is in use by a run of this process; invalidate it after the run ends`);
  }
  const store = core.store;
  const id = core.idBytes;
  try {
    // Stored points of the view, counted once whatever records hold them.
    const resolved = planOf(cache).resolve(store, id);
    let points = 0;
    for (let i = 0; i < resolved.available.length; i++) points += resolved.available[i]!;
    // The records holding view points, found from the index in native code
    // (a million records: no object per record); only those that hold
    // other points too come back as descriptors.
    const { whole: inside, partial } = store.recordsInView(id, core.axisOrder, viewHashBuffers(cache));
    const whole: Buffer[] = [inside];
    const blocks: KeptWrite[] = [];
    const rewrite: KeptWrite[] = [];
    const inView = partial.length ? viewHashes(cache) : null;
    for (const desc of partial) {
      const masks = masksOf(desc, inView!);
      if (masks === null) continue;
      whole.push(desc.chunk);
      if (masks === 'all') continue;
      const split = splitRecord(store, id, desc, masks);
      if (!split) continue;
      blocks.push(...split.blocks);
      if (split.rewrite) rewrite.push(split.rewrite);
    }
    const deleted = Buffer.concat(whole);
    moveAndDelete(store, id, blocks, deleted, rewrite);
    const rewritten = rewrite.length;
    return { points, deletedRecords: deleted.length / 16 - rewritten, rewrittenRecords: rewritten };
  } catch (e) {
    if (e instanceof ChunkMemoError) throw e;
    throw fromNative(e, where);
  }
}

/** Value hashes (u64 LE) the view selects, per axis in the cache's axis order (pinned axes included). */
function viewHashBuffers(cache: ViewState): Buffer[] {
  const core = cache._core;
  return core.axisOrder.map((_, k) => {
    const all = core.hashes[k]!;
    const sel = cache._sel[k];
    const picked = sel ? BigUint64Array.from(sel, (i) => all[i]!) : all;
    return Buffer.from(picked.buffer, picked.byteOffset, picked.byteLength);
  });
}

/** Value hashes of the view, per axis name (pinned axes included). */
function viewHashes(cache: ViewState): Map<string, Set<bigint>> {
  const core = cache._core;
  const inView = new Map<string, Set<bigint>>();
  core.axisOrder.forEach((a, k) => {
    const all = core.hashes[k]!;
    const sel = cache._sel[k];
    const s = new Set<bigint>();
    if (sel) for (const i of sel) s.add(all[i]!);
    else for (let i = 0; i < all.length; i++) s.add(all[i]!);
    inView.set(a, s);
  });
  return inView;
}

/** Per record axis, which of its values the view selects; null: none of its points, 'all': every one. */
function masksOf(desc: BindingDescriptor, inView: Map<string, Set<bigint>>): Uint8Array[] | 'all' | null {
  if (desc.axes.length !== inView.size || desc.axes.some((a) => !inView.has(a.name))) return null;
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
  if (covered === 0) return null;
  return all ? 'all' : masks;
}

/**
 * A record the view covers in part: its points outside the view, as writes
 * of disjoint product blocks (block k takes in-view values on the axes
 * before k, the other values on axis k, and every value after k), and the
 * same points again in the record's own layout. Null: a layout this version
 * cannot rebuild (then the record is dropped whole rather than keep outputs
 * that were asked to go).
 */
function splitRecord(store: BindingStore, id: Buffer, desc: BindingDescriptor, masks: Uint8Array[]): { blocks: KeptWrite[]; rewrite: KeptWrite | null } | null {
  const plan = recordPlan(desc);
  if (Buffer.compare(plan.chunkKey(0), desc.chunk) !== 0) return null;
  const rd = plan.read(store, id, 0);
  const lens = masks.map((m) => m.length);
  const stored = storedPoints(rd);
  const idx = (a: number, inView: boolean | null): number[] => {
    const out: number[] = [];
    for (let j = 0; j < lens[a]!; j++) if (inView === null || !!masks[a]![j] === inView) out.push(j);
    return out;
  };
  const blocks: KeptWrite[] = [];
  const keptHere: number[] = [];
  for (let k = 0; k < lens.length; k++) {
    const sel = lens.map((_, a) => idx(a, a < k ? true : a === k ? false : null));
    if (sel.some((l) => l.length === 0)) continue;
    let pos = [0];
    for (let a = 0; a < sel.length; a++) {
      const next: number[] = [];
      for (const base of pos) for (const j of sel[a]!) next.push(base * lens[a]! + j);
      pos = next;
    }
    const groups = stored.groups(pos);
    if (groups.length === 0) continue;
    keptHere.push(...pos);
    blocks.push({
      axes: desc.axes.map((ax, a) => ({ name: ax.name, hashes: Buffer.concat(sel[a]!.map((j) => ax.hashes.subarray(j * 8, j * 8 + 8))) })),
      kind: rd.kind,
      groups,
    });
  }
  if (keptHere.length === 0) return { blocks, rewrite: null };
  keptHere.sort((x, y) => x - y);
  const rewrite = { axes: desc.axes, key: desc.chunk, kind: rd.kind, groups: stored.groups(keptHere).map((g) => ({ ...g, points: Uint32Array.from(g.points, (b) => keptHere[b]!) })) };
  return { blocks, rewrite };
}

/** The stored points of a read record, and their writes at record positions `pos[b]` as points `b` of a layout. */
function storedPoints(rd: BindingChunkData): { groups(pos: readonly number[]): KeptWrite['groups'] } {
  // Rank of each present record point among the present ones (-1: absent).
  const rank = new Int32Array(rd.present.length).fill(-1);
  let w = 0;
  for (let r = 0; r < rd.present.length; r++) if (rd.present[r]) rank[r] = w++;
  const width = rd.kind === 0 || w === 0 ? 0 : rd.data.length / w;
  const groups = (pos: readonly number[]): KeptWrite['groups'] => {
    const pts: number[] = [];
    for (let b = 0; b < pos.length; b++) if (rank[pos[b]!]! >= 0) pts.push(b);
    if (pts.length === 0) return [];
    if (rd.kind !== 0) {
      const data = Buffer.alloc(pts.length * width);
      pts.forEach((b, q) => {
        const pw = rank[pos[b]!]!;
        rd.data.copy(data, q * width, pw * width, (pw + 1) * width);
      });
      return [{ points: Uint32Array.from(pts), offsets: new Uint32Array(0), data, dict: Buffer.alloc(0) }];
    }
    const byDict = new Map<number, number[]>();
    for (const b of pts) {
      const g = rd.pointDicts[rank[pos[b]!]!] ?? 0;
      const l = byDict.get(g) ?? [];
      l.push(b);
      byDict.set(g, l);
    }
    return [...byDict].map(([g, bs]) => {
      const offsets = new Uint32Array(bs.length + 1);
      const parts: Buffer[] = [];
      let total = 0;
      bs.forEach((b, q) => {
        const pw = rank[pos[b]!]!;
        const part = rd.data.subarray(rd.offsets[pw]!, rd.offsets[pw + 1]!);
        parts.push(part);
        total += part.length;
        offsets[q + 1] = total;
      });
      return { points: Uint32Array.from(bs), offsets, data: Buffer.concat(parts, total), dict: rd.dicts[g] ?? Buffer.alloc(0) };
    });
  };
  return { groups };
}

/**
 * Nothing stored may be lost at any moment, so the kept points move in
 * steps, each one transaction:
 * 1. they are written as records of the blocks (layouts holding no point of
 *    the view; a block whose record exists already is merged into it);
 * 2. the records holding view points are deleted;
 * 3. the kept points are written back in their records' own layouts;
 * 4. the block records made in step 1 are deleted.
 * A crash between two steps leaves the kept points stored (twice at most);
 * before step 2 the view's points are also still there (invalidate again to
 * finish).
 */
function moveAndDelete(store: BindingStore, id: Buffer, blocks: KeptWrite[], whole: Buffer, rewrite: KeptWrite[]): void {
  const writesOf = (b: KeptWrite) => b.groups.map((g) => ({ chunk: 0, kind: b.kind, points: g.points, offsets: g.offsets, data: g.data, dict: g.dict }));
  const made: Buffer[] = [];
  for (const b of blocks) {
    const plan = blockPlan(b.axes);
    const key = plan.chunkKey(0);
    // A block record that existed before stays (merged into); a new one goes in step 4.
    if (store.getRecord(id, key) == null) made.push(key);
    plan.writeBatch(store, id, writesOf(b));
  }
  if (whole.length) store.deleteRecordKeys(id, whole);
  for (const r of rewrite) blockPlan(r.axes, r.key).writeBatch(store, id, writesOf(r));
  const drop = [...new Map(made.map((k) => [k.toString('hex'), k])).values()];
  if (drop.length) store.deleteRecords(id, drop);
}
