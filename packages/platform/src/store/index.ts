export { createStore, type Store, type StoreOptions } from './store.js';
export type { AgentRow, AgentRegistration, AgentListQuery, HeartbeatMark } from './agents.js';
export { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded.js';
