/**
 * SIGINT/SIGTERM run `stop` once; a second signal exits at once. The process
 * exits when `stop` settles.
 */
export function onShutdownSignal(
  stop: (signal: NodeJS.Signals) => Promise<void>,
  log: (msg: string) => void,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    log(`${signal}: shutting down`);
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
