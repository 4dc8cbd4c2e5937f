// After tsc: copy the generated loader and types (and the host addon when
// present) next to the compiled binding wrapper in dist/ts/binding. The addon
// copy serves runs from the clone only: package.json `files` leaves
// dist/ts/binding/*.node out of the published package, whose addon comes from
// the platform package (see scripts/pack.mjs).
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

for (const f of readdirSync('ts/binding')) {
  if (f.endsWith('.cjs') || f.endsWith('.d.cts') || f.endsWith('.node')) cpSync(join('ts/binding', f), join('dist/ts/binding', f));
}
