/**
 * Telegram's send limits, kept in this process: about one message a second per chat with short bursts,
 * 20 a minute per group, 30 a second overall, plus the flood waits Telegram imposes with a 429.
 *
 * Hand-rolled rather than a library: the sender needs per-chat state with flood pauses, a non-blocking
 * try for typing indicators, FIFO fairness on the shared global window and waits that a shutdown can
 * abort, which none of the maintained Node 20 options (p-throttle, limiter) offer together.
 *
 * A chat's own limits are waited for before the global one, so a chat that waits (its bucket is empty, or
 * it serves a 429) never holds back another chat; only the global window is shared, first come first served.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface TelegramRateLimits {
  /** Sustained messages per second to one chat. */
  readonly perChatPerSecond: number;
  /** Messages one chat may get at once before the per-second pace applies. */
  readonly perChatBurst: number;
  /** Messages per sliding minute to one group or channel. */
  readonly perGroupPerMinute: number;
  /** Messages per sliding second to all chats together. */
  readonly globalPerSecond: number;
  /** This many chats in a 429 wait at once are taken as a bot-wide flood wait: every chat pauses. */
  readonly globalFloodChats: number;
}

export const DEFAULT_TELEGRAM_LIMITS: TelegramRateLimits = {
  perChatPerSecond: 1,
  perChatBurst: 3,
  perGroupPerMinute: 20,
  globalPerSecond: 30,
  globalFloodChats: 3,
};

/** Chat states kept before idle ones (full bucket, no wait, nobody acquiring) are dropped. */
const PRUNE_ABOVE = 1000;

/** A rate with a wait: 0 when one more event may happen now, else the milliseconds until it may. */
interface Rate {
  waitMs(now: number): number;
  take(now: number): void;
  /** Nothing of the past constrains the future any more: the state can be dropped. */
  idle(now: number): boolean;
}

/** `capacity` events at once, refilled at `perMs` events per millisecond. */
class TokenBucket implements Rate {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly perMs: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs);
  }

  take(now: number): void {
    this.refill(now);
    this.tokens -= 1;
  }

  idle(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }

  /** After a flood wait ending at `until`: one event then, and the steady pace after it, no burst. */
  restartAt(until: number): void {
    this.tokens = 1;
    this.last = Math.max(this.last, until);
  }

  private refill(now: number): void {
    if (now <= this.last) return;
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.perMs);
    this.last = now;
  }
}

/** At most `limit` events in any `windowMs` window (exact: remembers the last `limit` event times). */
class SlidingWindow implements Rate {
  private readonly times: number[] = [];

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  waitMs(now: number): number {
    this.forget(now);
    const oldest = this.times[0];
    return this.times.length < this.limit || oldest === undefined ? 0 : oldest + this.windowMs - now;
  }

  take(now: number): void {
    this.times.push(now);
    if (this.times.length > this.limit) this.times.shift();
  }

  idle(now: number): boolean {
    this.forget(now);
    return this.times.length === 0;
  }

  private forget(now: number): void {
    while (this.times.length > 0 && (this.times[0] ?? 0) + this.windowMs <= now) this.times.shift();
  }
}

interface ChatState {
  readonly bucket: TokenBucket;
  readonly group: SlidingWindow | undefined;
  pausedUntil: number;
  acquiring: number;
}

interface GlobalWaiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** The error a wait rejects with when the limiter is closed. */
export class LimiterClosedError extends Error {
  constructor() {
    super('the Telegram rate limiter was closed');
    this.name = 'LimiterClosedError';
  }
}

/**
 * Per-chat, per-group and global send limits with flood waits.
 *
 * @example
 * const limiter = new TelegramRateLimiter({ perChatPerSecond: 1 });
 * await limiter.acquire('12345', false, signal); // then send one message to chat 12345
 * if (limiter.tryAcquire('12345', false)) await sendTyping(); // never waits
 * limiter.floodWait('12345', false, 3); // Telegram answered 429 with retry_after 3
 */
export class TelegramRateLimiter {
  readonly limits: TelegramRateLimits;
  private readonly chats = new Map<string, ChatState>();
  private readonly global: SlidingWindow;
  private globalPausedUntil = 0;
  private readonly queue: GlobalWaiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly closing = new AbortController();

  constructor(limits: Partial<TelegramRateLimits> = {}) {
    this.limits = { ...DEFAULT_TELEGRAM_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isFinite(value) || value <= 0) throw new RangeError(`Telegram limit ${name} must be a positive number, got ${value}`);
    }
    this.global = new SlidingWindow(Math.max(1, Math.floor(this.limits.globalPerSecond)), 1000);
  }

  /** Waits until one more message may go to `chat` (a group when `group`), and counts it. */
  async acquire(chat: string, group: boolean, signal?: AbortSignal): Promise<void> {
    this.checkOpen();
    const state = this.state(chat, group);
    const aborted = signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal;
    state.acquiring += 1;
    try {
      for (;;) {
        const now = Date.now();
        const wait = Math.max(state.pausedUntil - now, state.bucket.waitMs(now), state.group?.waitMs(now) ?? 0);
        if (wait <= 0) break;
        try {
          await sleep(wait, undefined, { signal: aborted });
        } catch (err) {
          this.checkOpen();
          throw err;
        }
      }
      const now = Date.now();
      state.bucket.take(now);
      state.group?.take(now);
    } finally {
      state.acquiring -= 1;
    }
    await this.takeGlobal(signal);
  }

  /** Counts one message to `chat` if it may go right now; false (nothing counted) when it would have to wait. */
  tryAcquire(chat: string, group: boolean): boolean {
    if (this.closed || this.queue.length > 0) return false;
    const state = this.state(chat, group);
    const now = Date.now();
    const wait = Math.max(
      state.pausedUntil - now,
      this.globalPausedUntil - now,
      state.bucket.waitMs(now),
      state.group?.waitMs(now) ?? 0,
      this.global.waitMs(now),
    );
    if (wait > 0) return false;
    state.bucket.take(now);
    state.group?.take(now);
    this.global.take(now);
    return true;
  }

  /**
   * Telegram answered 429 for `chat`: nothing goes to it for `seconds`. When `globalFloodChats` chats are
   * in such a wait at once, the flood is taken as bot-wide and every chat pauses until the longest ends.
   */
  floodWait(chat: string, group: boolean, seconds: number): number {
    const now = Date.now();
    const until = now + Math.max(0, seconds) * 1000;
    const state = this.state(chat, group);
    state.pausedUntil = Math.max(state.pausedUntil, until);
    state.bucket.restartAt(state.pausedUntil);
    const waiting = [...this.chats.values()].filter((s) => s.pausedUntil > now);
    if (waiting.length >= this.limits.globalFloodChats) {
      this.globalPausedUntil = Math.max(this.globalPausedUntil, ...waiting.map((s) => s.pausedUntil));
    }
    return state.pausedUntil;
  }

  /** Milliseconds until `chat` may be sent to again after a flood wait (0 when it is not waiting). */
  pausedFor(chat: string): number {
    return Math.max(0, (this.chats.get(chat)?.pausedUntil ?? 0) - Date.now(), this.globalPausedUntil - Date.now());
  }

  /** Rejects every wait in progress with LimiterClosedError; later calls reject at once. */
  close(): void {
    this.closed = true;
    this.closing.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.queue.splice(0)) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new LimiterClosedError());
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new LimiterClosedError();
  }

  private state(chat: string, group: boolean): ChatState {
    const known = this.chats.get(chat);
    if (known) return known;
    if (this.chats.size >= PRUNE_ABOVE) this.prune();
    const { perChatBurst, perChatPerSecond, perGroupPerMinute } = this.limits;
    const state: ChatState = {
      bucket: new TokenBucket(perChatBurst, perChatPerSecond / 1000, Date.now()),
      group: group ? new SlidingWindow(Math.max(1, Math.floor(perGroupPerMinute)), 60_000) : undefined,
      pausedUntil: 0,
      acquiring: 0,
    };
    this.chats.set(chat, state);
    return state;
  }

  private prune(): void {
    const now = Date.now();
    for (const [chat, state] of this.chats) {
      if (state.acquiring === 0 && state.pausedUntil <= now && state.bucket.idle(now) && (state.group?.idle(now) ?? true)) {
        this.chats.delete(chat);
      }
    }
  }

  /** The shared window, first come first served: a chat that arrived earlier is never overtaken. */
  private takeGlobal(signal: AbortSignal | undefined): Promise<void> {
    if (this.queue.length === 0 && this.globalWaitMs(Date.now()) <= 0) {
      this.global.take(Date.now());
      return Promise.resolve();
    }
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const waiter: GlobalWaiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.queue.indexOf(waiter);
          if (at >= 0) this.queue.splice(at, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      this.schedule();
    });
  }

  private globalWaitMs(now: number): number {
    return Math.max(this.globalPausedUntil - now, this.global.waitMs(now));
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    const wait = this.globalWaitMs(Date.now());
    this.timer = setTimeout(() => this.drain(), Math.max(0, wait));
  }

  private drain(): void {
    this.timer = undefined;
    for (;;) {
      const waiter = this.queue[0];
      if (!waiter) return;
      const now = Date.now();
      if (this.globalWaitMs(now) > 0) break;
      this.queue.shift();
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      this.global.take(now);
      waiter.resolve();
    }
    this.schedule();
  }
}
