/** One native store handle per root directory in this thread. */
import { native, type BindingStore } from '../binding/native.js';
import { fromNative } from '../errors/index.js';
import { warnIfNetworkFs } from './network-fs.js';

const stores = new Map<string, BindingStore>();

/** Opens (or reuses) the store at an absolute root path. */
export function openStore(root: string): BindingStore {
  let s = stores.get(root);
  if (!s) {
    try {
      s = native.BindingStore.open(root);
    } catch (e) {
      throw fromNative(e, `cannot open cache root ${root}`);
    }
    stores.set(root, s);
    warnIfNetworkFs(root);
  }
  return s;
}
