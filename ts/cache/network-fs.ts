/**
 * LMDB's locks do not work on network file systems: a root there may lose
 * data or compute points twice. Opening one warns, once per root.
 */
import { statfsSync } from 'node:fs';

/** statfs magic numbers of file systems whose locking LMDB cannot trust. */
const NETWORK_FS: ReadonlyMap<number, string> = new Map([
  [0x6969, 'NFS'],
  [0x517b, 'SMB'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x65735546, 'FUSE'],
  [0x01021997, '9P'],
  [0x0bd00bd0, 'Lustre'],
  [0x47504653, 'GPFS'],
  [0x00c36400, 'CephFS'],
  [0x013111a8, 'IBRIX'],
  [0x6b414653, 'AFS'],
]);

/** The network file system a statfs type number names, if it is one. */
export function networkFsName(type: number): string | undefined {
  return NETWORK_FS.get(type >>> 0);
}

const warned = new Set<string>();

/** Warns (`CHUNK_MEMO_NETWORK_FS`) when `root` lies on a network file system. */
export function warnIfNetworkFs(root: string): void {
  if (warned.has(root) || process.platform !== 'linux') return;
  warned.add(root);
  let type: number;
  try {
    type = Number(statfsSync(root).type);
  } catch {
    return;
  }
  const name = networkFsName(type);
  if (name) {
    process.emitWarning(
      `chunk-memo: the cache root ${root} is on a network file system (${name}); LMDB's locks are unsafe there, so processes sharing it may corrupt it or compute points twice. ` +
        'Keep the root on a local disk; for sweeps across hosts use bullmqExecutor (docs/distributed.md).',
      { code: 'CHUNK_MEMO_NETWORK_FS' },
    );
  }
}
