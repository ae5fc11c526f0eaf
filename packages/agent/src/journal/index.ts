/**
 * The agent's journal: durable record of accepted tasks and unacknowledged
 * results in the state directory. See task-journal.ts and docs/agent.md.
 */
export {
  createTaskJournal,
  LOST_ERROR,
  type TaskJournal,
  type TaskJournalOptions,
  type JournalState,
} from './task-journal.js';
export type { JournalIo } from './log-file.js';
export { JournalError, JOURNAL_ERRORS, type JournalErrorCode } from './errors.js';
export { TASK_ID_ENV, findTaskProcesses, killTaskProcesses } from './orphans.js';
