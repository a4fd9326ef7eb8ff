import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { FormSchema, type Form } from '../../core/envelope.ts';
import type { Store } from '../../store/store.ts';
import type { TaskStatus, TaskView } from './schemas.ts';

export const TaskRecordSchema = z.object({
  taskId: z.string(),
  chainId: z.string(),
  /** The API client that created it; only it can read it. */
  owner: z.string(),
  address: z.string(),
  mode: z.enum(['agent', 'deliver']),
  callbackUrl: z.string().optional(),
  createdAt: z.string(),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

export const TaskEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('reply'),
    text: z.string(),
    at: z.string(),
    status: z.enum(['done', 'failed']).optional(),
    error: z.string().optional(),
    /** The reply asks the person to decide (/confirm). */
    form: FormSchema.optional(),
  }),
  z.object({ type: z.literal('status'), status: z.enum(['running', 'waiting']), at: z.string() }),
]);
export type TaskEvent = z.infer<typeof TaskEventSchema>;

/** One event of a task with the id of the envelope it came from (ids sort in the order things happened). */
export interface StoredEvent {
  readonly id: string;
  readonly event: TaskEvent;
}

/** What an event stream sends: a reply, or a change of status. */
export type StreamItem =
  | { readonly id: string; readonly type: 'reply'; readonly data: { text: string; at: string } }
  | { readonly id: string; readonly type: 'status'; readonly data: { status: TaskStatus; error?: string } };

/** The store channel on which every recorded task event is announced (one per deployment, not per task). */
export const TASK_EVENTS_CHANNEL = 'task-events';

export const TaskNoticeSchema = z.object({
  taskId: z.string(),
  eventId: z.string(),
  status: z.enum(['running', 'waiting', 'done', 'failed']).optional(),
});
export type TaskNotice = z.infer<typeof TaskNoticeSchema>;

/** Records kept in memory per process, and for how long (well within a record's own time to live). */
const RECORDS_CACHED = 10_000;
const RECORD_CACHE_MS = 10 * 60_000;

const TERMINAL: ReadonlySet<TaskStatus> = new Set(['done', 'failed']);
export const isTerminal = (status: TaskStatus): boolean => TERMINAL.has(status);

/**
 * API tasks in the store. A task's events live in a hash keyed by envelope id, so recording the
 * same envelope twice (a redelivery) changes nothing, and its state is derived from the events in
 * id order whatever order they were recorded in.
 */
export class TaskStore {
  /**
   * Records this process wrote, or its sender read, lately. A record never changes once written,
   * so the sender reads a task's record once rather than per event, and not at all when the api of
   * the same process created the task. Only records that exist are kept, and only those the
   * process knows to stay: its own (deleted here, if the POST fails), and those of tasks whose
   * message was delivered (a POST deletes its record only when the message was not published).
   */
  private readonly records = new LRUCache<string, Readonly<TaskRecord>>({ max: RECORDS_CACHED, ttl: RECORD_CACHE_MS });

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  private recordKey = (taskId: string): string => `task:${taskId}`;
  private eventsKey = (taskId: string): string => `task:${taskId}:events`;

  async create(record: TaskRecord): Promise<void> {
    await this.store.set(this.recordKey(record.taskId), JSON.stringify(record), { ttlMs: this.ttlMs });
    this.records.set(record.taskId, Object.freeze({ ...record }));
  }

  async delete(taskId: string): Promise<void> {
    this.records.delete(taskId);
    await this.store.del(this.recordKey(taskId), this.eventsKey(taskId));
    this.records.delete(taskId); // a read that raced the delete may have kept it
  }

  /**
   * The task's record. `keep`: remember it, for a reader that knows the task's message was
   * delivered (the sender); other readers only use what is remembered.
   */
  async get(taskId: string, options: { keep?: boolean } = {}): Promise<Readonly<TaskRecord> | null> {
    const cached = this.records.get(taskId);
    if (cached !== undefined) return cached;
    const raw = await this.store.get(this.recordKey(taskId));
    if (raw === null) return null;
    const record = Object.freeze(TaskRecordSchema.parse(JSON.parse(raw)));
    if (options.keep === true) this.records.set(taskId, record);
    return record;
  }

  /** Records an event once per envelope id; returns false when it was recorded before. */
  async record(taskId: string, eventId: string, event: TaskEvent): Promise<boolean> {
    const notice: TaskNotice = { taskId, eventId, ...('status' in event && event.status ? { status: event.status } : {}) };
    // The notice goes out with the write, in the same step, and only when this call wrote.
    return this.store.hsetnx(this.eventsKey(taskId), eventId, JSON.stringify(event), {
      ttlMs: this.ttlMs,
      notify: { channel: TASK_EVENTS_CHANNEL, message: JSON.stringify(notice) },
    });
  }

  async events(taskId: string): Promise<StoredEvent[]> {
    const raw = await this.store.hgetall(this.eventsKey(taskId));
    return Object.keys(raw)
      .sort()
      .map((id) => ({ id, event: TaskEventSchema.parse(JSON.parse(raw[id] ?? 'null')) }));
  }
}

/** The stream of a task: each reply, and each change of status, in order. */
export function streamItems(events: readonly StoredEvent[]): StreamItem[] {
  const items: StreamItem[] = [];
  let status: TaskStatus = 'queued';
  for (const { id, event } of events) {
    if (event.type === 'reply') items.push({ id, type: 'reply', data: { text: event.text, at: event.at } });
    const next = event.status;
    if (next !== undefined && next !== status) {
      status = next;
      const error = event.type === 'reply' ? event.error : undefined;
      items.push({ id: `${id}.s`, type: 'status', data: { status, ...(error ? { error } : {}) } });
    }
  }
  return items;
}

export function taskView(record: TaskRecord, events: readonly StoredEvent[]): TaskView {
  let status: TaskStatus = 'queued';
  let error: string | undefined;
  let form: Form | undefined;
  const replies: { text: string; at: string }[] = [];
  let updatedAt = record.createdAt;
  for (const item of streamItems(events)) {
    if (item.type === 'reply') {
      replies.push(item.data);
      updatedAt = item.data.at;
    } else {
      status = item.data.status;
      error = item.data.error;
    }
  }
  for (const { event } of events) {
    if (event.at > updatedAt) updatedAt = event.at;
    if (event.type === 'reply' && event.form) form = event.form;
  }
  return {
    taskId: record.taskId,
    chainId: record.chainId,
    status,
    replies,
    ...(error ? { error } : {}),
    ...(status === 'waiting' && form ? { confirmation: form } : {}),
    createdAt: record.createdAt,
    updatedAt,
  };
}
