// On `npm install` in a clone (sources present), build the addon and the TS.
// Installed as a dependency from npm, the package ships built files and a
// prebuilt platform package, so there is nothing to do.
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';

if (existsSync('crates') && existsSync('ts/index.ts')) {
  execSync('node scripts/ensure-built.mjs', { stdio: 'inherit' });
}
