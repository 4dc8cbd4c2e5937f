/**
 * Layered roots: read-only shared roots under a local root
 * (`ChunkCache.open({ sharedRoots })`). Before a run, every chunk of the plan
 * that the local root does not hold completely is looked up in each shared
 * root; records there that hold points of such a chunk are copied into the
 * local root (checksum-verified, merged with what is stored locally). The
 * shared roots are only read: no metadata, record or access time is written
 * to them.
 */
import type { BindingPlan, BindingStore } from '../binding/native.js';
import type { ChunkCache } from './cache.js';
import { openStore } from './stores.js';
import { fromNative } from '../errors/index.js';
import { AxisBins, PlanGeometry } from './geometry.js';
import { hashesOf, isCacheRoot } from './root.js';

/** What a fill from shared roots copied. */
export interface SharedFill {
  readonly copiedRecords: number;
  readonly skippedCorrupt: number;
}

/**
 * Copies into the local root the shared-root records that hold points of
 * the plan's chunks that are not fully stored locally.
 */
export function fillFromShared(cache: ChunkCache, plan: BindingPlan): SharedFill {
  const core = cache._core;
  const out = { copiedRecords: 0, skippedCorrupt: 0 };
  const shared = core.sharedRoots.filter((r) => r !== core.root && isCacheRoot(r));
  if (shared.length === 0) return out;
  let resolved;
  try {
    resolved = plan.resolve(core.store, core.idBytes);
  } catch (e) {
    throw fromNative(e, 'sharedRoots');
  }
  const axes = plan.describe().map((ax) => new AxisBins(ax));
  const n = core.axisOrder.length;
  // Per axis: requested value hash -> position of its bin in the plan.
  const binOf: Map<bigint, number>[] = axes.map((ax, k) => {
    const m = new Map<bigint, number>();
    const hashes = core.hashes[k]!;
    for (let b = 0; b < ax.count; b++) {
      const start = ax.start(b);
      const sel = ax.sel(b);
      for (let j = 0; j < sel.length; j++) m.set(hashes[start + sel[j]!]!, b);
    }
    return m;
  });
  const radix = axes.map((ax) => ax.count);
  const G = new PlanGeometry(plan);
  // Requested points per chunk, to compare with what is available locally.
  const requested = Array.from({ length: plan.chunkCount }, (_, i) => G.chunk(i).points);
  const want = new Set<number>();
  for (let i = 0; i < plan.chunkCount; i++) if (resolved.available[i]! < requested[i]!) want.add(i);
  if (want.size === 0) return out;

  // Local records that are complete need nothing from a shared copy.
  const complete = new Set<string>();
  for (const d of core.store.descriptors(core.idBytes)) if (d.present >= d.n) complete.add(d.chunk.toString('hex'));

  for (const root of shared) {
    if (want.size === 0) break;
    let store: BindingStore;
    try {
      store = openStore(root);
    } catch (e) {
      process.emitWarning(`chunk-memo: shared root ${root} cannot be opened (${(e as Error).message}); it is skipped`, { code: 'CHUNK_MEMO_SHARED_ROOT' });
      continue;
    }
    for (const d of store.descriptors(core.idBytes)) {
      if (d.axes.length !== n) continue;
      // Bins of the plan this record touches, per axis.
      const touched: number[][] = [];
      for (let k = 0; k < n; k++) {
        const ax = d.axes.find((a) => a.name === core.axisOrder[k]);
        if (!ax) break;
        const bins = new Set<number>();
        for (const h of hashesOf(ax.hashes)) {
          const b = binOf[k]!.get(h);
          if (b !== undefined) bins.add(b);
        }
        if (bins.size === 0) break;
        touched.push([...bins]);
      }
      if (touched.length !== n) continue;
      const served = chunksOf(touched, radix).filter((i) => want.has(i));
      if (served.length === 0) continue;
      const key = d.chunk.toString('hex');
      if (complete.has(key)) continue;
      const bytes = store.getRecord(core.idBytes, d.chunk);
      if (!bytes) continue;
      try {
        core.store.putRecord(core.idBytes, d, bytes);
      } catch (e) {
        out.skippedCorrupt++;
        process.emitWarning(`chunk-memo: shared root ${root}: record ${key} of cache ${core.id} is not valid (${(e as Error).message}); it is recomputed instead`, { code: 'CHUNK_MEMO_SHARED_CORRUPT' });
        continue;
      }
      if (d.present >= d.n) complete.add(key);
      out.copiedRecords++;
    }
    // Chunks now complete need nothing from the next shared roots.
    if (shared.length > 1) {
      const again = plan.resolve(core.store, core.idBytes);
      for (const i of [...want]) if (again.available[i]! >= requested[i]!) want.delete(i);
    }
  }
  return out;
}

/** Chunk indices (mixed radix, first axis slowest) of a product of bin positions. */
function chunksOf(touched: number[][], radix: number[]): number[] {
  let acc = [0];
  for (let k = 0; k < touched.length; k++) {
    const next: number[] = [];
    for (const x of acc) for (const b of touched[k]!) next.push(x * radix[k]! + b);
    acc = next;
  }
  return acc;
}
