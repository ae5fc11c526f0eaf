// Regenerates packages/protocol/src/gen from proto/ with buf + ts-proto (both
// from npm, no download at install). CI runs this and fails on a diff.
import { execFileSync } from 'node:child_process';
const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
execFileSync(bin('buf'), ['lint'], { stdio: 'inherit' });
execFileSync(bin('buf'), ['generate'], {
  stdio: 'inherit',
  env: {
    ...process.env,
    PATH: `${new URL('../node_modules/.bin', import.meta.url).pathname}:${process.env.PATH}`,
  },
});
execFileSync(bin('prettier'), ['--log-level', 'warn', '--write', 'packages/protocol/src/gen'], {
  stdio: 'inherit',
});
