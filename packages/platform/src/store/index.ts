export { createStore, type Store, type StoreOptions } from './store.js';
export type { AgentRow, AgentRegistration, AgentListQuery, HeartbeatMark } from './agents.js';
export { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded.js';
export type {
  TaskRow,
  TaskSummaryRow,
  NewTask,
  TaskSpec,
  BatchTarget,
  StartedMark,
  ResultRecord,
  LogRecord,
  TaskListQuery,
  CancelOutcome,
  CreateOptions,
  FollowPage,
} from './tasks.js';
export type { TaskStatusName, TaskLimitsJson, EnforcedLimitJson } from './schema.js';
export type { ApiTokenRow, JoinTokenRow, NewApiToken, NewJoinToken } from './tokens.js';
export type { AgentCredentialRow, NewAgentCredential } from './credentials.js';
export type { AuditRow, AuditEntry } from './audit.js';
export type { Role } from './schema.js';
