/** Process logger for long-running commands: JSON lines on stderr, so stdout stays for output. */
import { pino, type Logger } from 'pino';

export function createProcessLogger(service: string, level = process.env.AP_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service } }, pino.destination({ fd: 2, sync: false }));
}
