/**
 * The wire contract (generated from proto/agentplatform/v1) and the only helpers
 * that touch generated types: enum <-> string names used in JSON and SQL.
 */
export {
  AgentServiceService,
  AgentServiceClient,
  AgentRegister,
  Heartbeat,
  RegisterResponse,
  ServerMessage,
  AgentMessage,
  EnrollRequest,
  EnrollResponse,
} from './gen/agentplatform/v1/agent.js';
export type { AgentServiceServer } from './gen/agentplatform/v1/agent.js';
export { Response } from './gen/agentplatform/v1/common.js';
export {
  TaskType,
  TaskStatus,
  ResourceLimits,
  TaskRequest,
  EnforcedLimit,
  TaskResult,
  TaskLog,
  TaskStarted,
  TaskCancel,
  ResultAck,
} from './gen/agentplatform/v1/task.js';
import { TaskStatus, TaskType } from './gen/agentplatform/v1/task.js';

/** Task type names used in JSON and SQL. */
export type TaskTypeName = 'shell' | 'python';
export const TASK_TYPE_NAMES: readonly TaskTypeName[] = ['shell', 'python'];

export function taskTypeToName(t: TaskType): TaskTypeName | undefined {
  switch (t) {
    case TaskType.TASK_TYPE_SHELL:
      return 'shell';
    case TaskType.TASK_TYPE_PYTHON:
      return 'python';
    default:
      return undefined;
  }
}

export function taskTypeFromName(name: TaskTypeName): TaskType {
  return name === 'shell' ? TaskType.TASK_TYPE_SHELL : TaskType.TASK_TYPE_PYTHON;
}

/** Task status names used in JSON and SQL (DESIGN.md "Task states"). */
export type TaskStatusName =
  | 'pending'
  | 'dispatched'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'canceled'
  | 'lost'
  | 'expired';

export const TASK_STATUS_NAMES: readonly TaskStatusName[] = [
  'pending',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'canceled',
  'lost',
  'expired',
];

export const TERMINAL_STATUSES: readonly TaskStatusName[] = [
  'succeeded',
  'failed',
  'timed_out',
  'canceled',
  'lost',
  'expired',
];

const statusByEnum = new Map<TaskStatus, TaskStatusName>([
  [TaskStatus.TASK_STATUS_PENDING, 'pending'],
  [TaskStatus.TASK_STATUS_DISPATCHED, 'dispatched'],
  [TaskStatus.TASK_STATUS_RUNNING, 'running'],
  [TaskStatus.TASK_STATUS_SUCCEEDED, 'succeeded'],
  [TaskStatus.TASK_STATUS_FAILED, 'failed'],
  [TaskStatus.TASK_STATUS_TIMED_OUT, 'timed_out'],
  [TaskStatus.TASK_STATUS_CANCELED, 'canceled'],
  [TaskStatus.TASK_STATUS_LOST, 'lost'],
  [TaskStatus.TASK_STATUS_EXPIRED, 'expired'],
]);
const enumByStatus = new Map<TaskStatusName, TaskStatus>([...statusByEnum].map(([k, v]) => [v, k]));

export function taskStatusToName(s: TaskStatus): TaskStatusName | undefined {
  return statusByEnum.get(s);
}

export function taskStatusFromName(name: TaskStatusName): TaskStatus {
  return enumByStatus.get(name) ?? TaskStatus.TASK_STATUS_UNSPECIFIED;
}

export function isTerminalStatus(name: TaskStatusName): boolean {
  return TERMINAL_STATUSES.includes(name);
}
export { trace } from './trace.js';
