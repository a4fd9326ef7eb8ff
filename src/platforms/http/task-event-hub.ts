import type { Logger } from '../../core/logger.ts';
import type { Store } from '../../store/store.ts';
import { TASK_EVENTS_CHANNEL, TaskNoticeSchema, type TaskNotice } from './tasks.ts';

/**
 * One subscription to the task-events channel per api process, handed out to the event streams
 * of this process by task id (instead of one store subscription per open stream).
 */
export class TaskEventHub {
  private readonly listeners = new Map<string, Set<(notice: TaskNotice) => void>>();
  private stopListening: (() => Promise<void>) | undefined;
  private readonly streams = new Set<() => void>();

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.stopListening = await this.store.listen(TASK_EVENTS_CHANNEL, (message) => {
      // Every task's events are announced here; most of the time no stream of this process listens.
      if (this.listeners.size === 0) return;
      let notice: TaskNotice;
      try {
        notice = TaskNoticeSchema.parse(JSON.parse(message));
      } catch (err) {
        this.logger.warn({ err }, 'ignored a malformed task notice');
        return;
      }
      for (const listener of this.listeners.get(notice.taskId) ?? []) listener(notice);
    });
  }

  /**
   * Opens a stream's subscription: `listener` hears each event recorded on the task, and `end`
   * is called by `endStreams()` when the server closes. Returns the function that closes it.
   */
  subscribe(taskId: string, listener: (notice: TaskNotice) => void, end: () => void): () => void {
    let set = this.listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.listeners.set(taskId, set);
    }
    set.add(listener);
    this.streams.add(end);
    return () => {
      this.streams.delete(end);
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(taskId) === set) this.listeners.delete(taskId);
    };
  }

  /** Ends every open event stream (clients reconnect with Last-Event-ID). */
  endStreams(): void {
    for (const end of [...this.streams]) end();
  }

  async stop(): Promise<void> {
    await this.stopListening?.();
    this.listeners.clear();
  }
}
