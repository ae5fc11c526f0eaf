export { startAgent, type Agent, type AgentOptions } from './agent.js';
export { loadOrCreateAgentId, parseLabels, hostIpAddresses } from './identity.js';
export { AGENT_VERSION } from './version.js';
export * from './connection/index.js';
export * from './enrollment/index.js';
export {
  createTaskJournal,
  LOST_ERROR,
  TASK_ID_ENV,
  JournalError,
  JOURNAL_ERRORS,
  type TaskJournal,
  type TaskJournalOptions,
  type JournalState,
  type JournalErrorCode,
} from './journal/index.js';
export { createTaskRunner, type TaskRunner, type TaskRunnerOptions } from './runner/index.js';
