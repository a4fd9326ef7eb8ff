import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Store } from '../store/store.ts';

export type TimerHandler = (id: string, payload: string) => Promise<void>;

export interface TimersOptions {
  readonly store: Store;
  readonly logger: Logger;
  /** How often due timers are looked for. */
  readonly pollMs: number;
  /** A claimed timer whose handler did not finish (a crash) fires again after this long. */
  readonly leaseMs: number;
}

const DUE_KEY = 'timers:due';
const PAYLOAD_KEY = 'timers:payload';
const ATTEMPTS_KEY = 'timers:attempts';
const BATCH = 50;
/** A timer whose handler keeps failing is dropped after this many attempts (logged as an error). */
const MAX_ATTEMPTS = 5;

/**
 * Durable timers in the store (reminders, confirmation expiry). Any number of workers poll; a due
 * timer is claimed by one of them for a lease, fired, then removed, so it fires at least once and,
 * unless a worker dies mid-way, exactly once. Handlers must be idempotent.
 */
export class Timers {
  private readonly handlers = new Map<string, TimerHandler>();
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly options: TimersOptions) {}

  on(kind: string, handler: TimerHandler): this {
    this.handlers.set(kind, handler);
    return this;
  }

  /** Sets (or moves) a timer. */
  async add(kind: string, id: string, at: Date, payload: string): Promise<void> {
    const member = `${kind}:${id}`;
    await this.options.store.hset(PAYLOAD_KEY, { [member]: payload });
    await this.options.store.zadd(DUE_KEY, { [member]: at.getTime() });
  }

  /** False when the timer fired or was cancelled already. */
  async cancel(kind: string, id: string): Promise<boolean> {
    const member = `${kind}:${id}`;
    const removed = await this.options.store.zrem(DUE_KEY, member);
    await this.options.store.hdel(PAYLOAD_KEY, member);
    return removed > 0;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.tick = this.tick.then(() => this.fireDue());
    }, this.options.pollMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tick;
  }

  /** Fires what is due now (also called by the poll). */
  async fireDue(): Promise<void> {
    const { store, logger, leaseMs } = this.options;
    let claimed: string[];
    try {
      claimed = await store.zclaim(DUE_KEY, Date.now(), leaseMs, BATCH);
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, 'timers: could not look for due timers; trying again');
      return;
    }
    await Promise.all(claimed.map((member) => this.fire(member)));
  }

  private async fire(member: string): Promise<void> {
    const { store, logger } = this.options;
    const colon = member.indexOf(':');
    const kind = member.slice(0, colon);
    const id = member.slice(colon + 1);
    const handler = this.handlers.get(kind);
    try {
      const payload = await store.hget(PAYLOAD_KEY, member);
      if (payload !== null) {
        if (!handler) {
          logger.warn({ kind, id }, 'timers: no handler for this kind; it stays until one runs');
          return;
        }
        await handler(id, payload);
      }
      await this.remove(member);
    } catch (err) {
      const attempts = await store.hincr(ATTEMPTS_KEY, member).catch(() => 0);
      if (attempts >= MAX_ATTEMPTS) {
        logger.error({ kind, id, attempts, err: errorMessage(err) }, 'timers: handler failed too often; the timer is dropped');
        await this.remove(member).catch(() => undefined);
        return;
      }
      logger.warn({ kind, id, attempts, err: errorMessage(err) }, 'timers: handler failed; it fires again after its lease');
    }
  }

  private async remove(member: string): Promise<void> {
    await this.options.store.zrem(DUE_KEY, member);
    await this.options.store.hdel(PAYLOAD_KEY, member);
    await this.options.store.hdel(ATTEMPTS_KEY, member);
  }
}
