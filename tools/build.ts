// The package build, run by `prepack`: JavaScript + declarations into dist/ (tsconfig.build.json),
// plus the Lua scripts the Redis code reads beside itself. Development never needs it: the sources
// run as they are.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
let copied = 0;
for (const file of readdirSync(path.join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
  // Lua scripts, and the status page's own files (served as they are, no build step).
  if (!file.endsWith('.lua') && !file.startsWith(path.join('http', 'page') + path.sep)) continue;
  cpSync(path.join(root, 'src', file), path.join(dist, 'src', file));
  copied++;
}
process.stdout.write(`built dist/ (${copied} Lua scripts and page files copied)\n`);
