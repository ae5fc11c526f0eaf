export { startAgent, type Agent, type AgentOptions } from './agent.js';
export { loadOrCreateAgentId, parseLabels, hostIpAddresses } from './identity.js';
export { AGENT_VERSION } from './version.js';
export * from './connection/index.js';
