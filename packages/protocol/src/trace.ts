/**
 * A timing probe of the task path, off unless AP_TRACE_FILE names a file:
 * then each call appends `<step> <task id> <epoch ms, µs precision> <pid>` to
 * it, written at once (one write(2), no buffering: a SIGKILLed process keeps
 * its lines). The platform and the agent mark the steps of every task; the
 * clocks are the host's, so processes on one machine line up. `npm run
 * bench:trace` reads the file into a per-step table (docs/performance.md).
 * Disabled, a call is one comparison.
 */
import { openSync, writeSync } from 'node:fs';

const file = process.env.AP_TRACE_FILE;
const fd = file ? openSync(file, 'a') : -1;

export function trace(step: string, taskId: string): void {
  if (fd < 0) return;
  writeSync(
    fd,
    `${step} ${taskId} ${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid}\n`,
  );
}
