// Completes package-lock.json with the per-platform optional packages that
// this machine's registry does not serve (npm leaves them out of the lock,
// and `npm ci` then refuses the lock). Each added entry is optional, so npm
// skips or tolerates it on platforms it does not fit. Run after `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [path, entry] of Object.entries(pkgs)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const local = `${path ? `${path}/` : ''}node_modules/${name}`;
    if (pkgs[local] || pkgs[`node_modules/${name}`]) continue;
    const version = String(spec).replace(/^[\^~=]/, '');
    const base = name.split('/').pop();
    pkgs[`node_modules/${name}`] = {
      version,
      resolved: `https://registry.npmjs.org/${name}/-/${base}-${version}.tgz`,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
    };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lock: added ${added} optional platform entries`);
