export {
  createTaskService,
  taskRequestFromRow,
  type TaskService,
  type TaskServiceOptions,
} from './task-service.js';
export { validateNewTask, TASK_LIMITS, type CreateTaskInput } from './validate.js';
export { createEventWriter, type EventWriter, type TaskEventKind, type TaskEnded } from './event-writer.js';
