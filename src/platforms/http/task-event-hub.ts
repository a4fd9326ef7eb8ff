import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { Store } from '../../store/store.ts';
import { TASK_EVENTS_CHANNEL, TaskNoticeSchema, type TaskNotice } from './tasks.ts';

/** How long the hub keeps listening after its last stream closed, so that streams opened one after another share one subscription. */
const LINGER_MS = 30_000;

/**
 * One subscription to the task-events channel per api process, handed out to the event streams
 * of this process by task id (instead of one store subscription per open stream). The hub listens
 * only while a stream is open (and a little after): every recorded task event is announced on the
 * channel, and an api process with no open stream has no reason to receive them all.
 */
export class TaskEventHub {
  private readonly listeners = new Map<string, Set<(notice: TaskNotice) => void>>();
  private readonly streams = new Set<() => void>();
  /** The store subscription, while there is one (or one is being made). */
  private listening: Promise<() => Promise<void>> | undefined;
  private lingering: NodeJS.Timeout | undefined;
  /** The last store subscription failed (logged once until one succeeds). */
  private failing = false;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly lingerMs = LINGER_MS,
  ) {}

  /**
   * Opens a stream's subscription: `listener` hears each event recorded on the task from the
   * moment this resolves, and `end` is called by `endStreams()` when the server closes. Resolves
   * with the function that closes it. When the store subscription cannot be made, it resolves all
   * the same (logged): the stream then hears nothing and relies on reading the task now and then.
   */
  async subscribe(taskId: string, listener: (notice: TaskNotice) => void, end: () => void): Promise<() => void> {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    let set = this.listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.listeners.set(taskId, set);
    }
    set.add(listener);
    this.streams.add(end);
    const close = (): void => {
      this.streams.delete(end);
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(taskId) === set) this.listeners.delete(taskId);
      if (this.listeners.size === 0) this.linger();
    };
    try {
      await this.listen();
      this.failing = false;
    } catch (err) {
      // Once per outage; every new stream tries again.
      if (!this.failing) this.logger.warn({ err: errorMessage(err) }, 'cannot listen to task notices; event streams poll the store');
      this.failing = true;
    }
    return close;
  }

  /** Ends every open event stream (clients reconnect with Last-Event-ID). */
  endStreams(): void {
    for (const end of [...this.streams]) end();
  }

  async stop(): Promise<void> {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    this.listeners.clear();
    await this.unlisten();
  }

  private listen(): Promise<() => Promise<void>> {
    if (this.listening === undefined) {
      const listening = this.store.listen(TASK_EVENTS_CHANNEL, (message) => this.onNotice(message));
      this.listening = listening;
      // A failed subscription is not kept: the next stream tries again.
      listening.catch(() => {
        if (this.listening === listening) this.listening = undefined;
      });
    }
    return this.listening;
  }

  /** Stops listening once no stream has been open for a while. */
  private linger(): void {
    if (this.listening === undefined || this.lingering !== undefined) return;
    this.lingering = setTimeout(() => {
      this.lingering = undefined;
      if (this.listeners.size === 0) void this.unlisten();
    }, this.lingerMs);
    this.lingering.unref();
  }

  private async unlisten(): Promise<void> {
    const listening = this.listening;
    this.listening = undefined;
    if (listening === undefined) return;
    try {
      const stop = await listening;
      await stop();
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'task-events subscription already gone');
    }
  }

  private onNotice(message: string): void {
    // Every task's events are announced here, most of them for tasks no stream of this process follows.
    if (this.listeners.size === 0) return;
    let notice: TaskNotice;
    try {
      notice = TaskNoticeSchema.parse(JSON.parse(message));
    } catch (err) {
      this.logger.warn({ err }, 'ignored a malformed task notice');
      return;
    }
    for (const listener of this.listeners.get(notice.taskId) ?? []) listener(notice);
  }
}
