import { setTimeout as delay } from 'node:timers/promises';
import pRetry from 'p-retry';
import type { Telegram } from 'telegraf';
import { z } from 'zod';
import { KeyedSerial } from '../../core/keyed-serial.ts';
import { errorMessage, isPermanent, zodIssues } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { apiSignal } from './telegram-client.ts';
import type { TelegramInbox } from './telegram-inbox.ts';
import { ALLOWED_UPDATES } from './update-schema.ts';

/** Seconds a getUpdates long poll is held open when nothing happens. */
const POLL_TIMEOUT_S = 30;
const BATCH_LIMIT = 100;

/** Seconds a getUpdates may take beyond its long-poll timeout before it counts as lost. */
const POLL_GRACE_S = 15;

/** Each update of a batch needs an id (its offset); the inbox checks the rest, one update at a time. */
const UpdateIdSchema = z.looseObject({ update_id: z.number().int().nonnegative() });
/** The chat an update belongs to, when it says (updates of one chat are handled in order). */
const ChatOfSchema = z.union([
  z.looseObject({ message: z.looseObject({ chat: z.looseObject({ id: z.number() }) }) }).transform((u) => u.message.chat.id),
  z
    .looseObject({ callback_query: z.looseObject({ message: z.looseObject({ chat: z.looseObject({ id: z.number() }) }) }) })
    .transform((u) => u.callback_query.message.chat.id),
]);

interface RawUpdate {
  readonly updateId: number;
  readonly chatKey: string;
  readonly raw: unknown;
}

export interface TelegramPollingOptions {
  readonly telegram: Telegram;
  readonly inbox: TelegramInbox;
  readonly logger: Logger;
  /** First wait after a failed poll or publish; doubles up to maxBackoffMs (defaults 500 ms, 30 s). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/**
 * Long polling with a durable inbox. The offset that confirms a batch to Telegram is sent with the
 * next getUpdates, and only after every update of the batch was handled (its envelope confirmed by
 * the bus): a receiver that dies before that gets the batch again, and the inbox skips what it had
 * already published. Updates of one chat are handled in order; different chats concurrently.
 */
export class TelegramPolling {
  private offset = 0;
  /** Aborted by stop() and abort(): ends the long poll. */
  private readonly polling = new AbortController();
  /** Aborted by abort() only: gives up on the batch in hand (it comes again). */
  private readonly working = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly options: TelegramPollingOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Finishes the batch in hand, confirms it to Telegram, and stops. */
  async stop(): Promise<void> {
    this.polling.abort();
    await this.loop;
  }

  /**
   * Stops at once; the batch in hand is not confirmed, so Telegram sends it again. Does not wait for
   * a publish that hangs (the broker is away): closing the bus ends it.
   */
  async abort(): Promise<void> {
    this.working.abort();
    this.polling.abort();
    await Promise.race([this.loop, delay(50)]);
  }

  private async run(): Promise<void> {
    while (!this.polling.signal.aborted) {
      const batch = await this.retrying('getUpdates failed', this.polling.signal, () => this.fetchBatch()).catch(async (err: unknown) => {
        this.options.logger.error({ err }, 'Telegram receiver: getUpdates failed in a way retrying does not fix; polling again later');
        await delay(this.options.maxBackoffMs ?? 30_000, undefined, { signal: this.polling.signal }).catch(() => undefined);
        return { updates: [], next: undefined };
      });
      if (batch === undefined) break;
      if (!(await this.handleBatch(batch.updates))) return;
      if (batch.next !== undefined) this.offset = batch.next;
    }
    if (!this.working.signal.aborted) await this.confirm();
  }

  /** The updates of the next batch, and the offset that confirms it (undefined when it is empty). */
  private async fetchBatch(): Promise<{ updates: RawUpdate[]; next: number | undefined }> {
    const payload = { offset: this.offset, limit: BATCH_LIMIT, timeout: POLL_TIMEOUT_S, allowed_updates: [...ALLOWED_UPDATES] };
    const signal = AbortSignal.any([this.polling.signal, AbortSignal.timeout((POLL_TIMEOUT_S + POLL_GRACE_S) * 1000)]);
    const result: unknown = await this.options.telegram.callApi('getUpdates', payload, { signal: apiSignal(signal) });
    const updates: RawUpdate[] = [];
    let next: number | undefined;
    for (const raw of Array.isArray(result) ? (result as unknown[]) : []) {
      const id = UpdateIdSchema.safeParse(raw);
      if (!id.success) {
        this.options.logger.warn({ issues: zodIssues(id.error) }, 'Telegram sent an update without an id; skipped');
        continue;
      }
      const updateId = id.data.update_id;
      next = Math.max(next ?? 0, updateId + 1);
      const chat = ChatOfSchema.safeParse(raw);
      updates.push({ updateId, chatKey: chat.success ? `chat:${chat.data}` : `update:${updateId}`, raw });
    }
    return { updates, next };
  }

  /** True when every update was handled; false when abort() cut the batch short. */
  private async handleBatch(batch: readonly RawUpdate[]): Promise<boolean> {
    const serial = new KeyedSerial();
    const outcomes = await Promise.all(
      batch.map((update) =>
        serial.run(update.chatKey, () =>
          this.retrying('an update could not be handled', this.working.signal, async () => {
            await this.options.inbox.handle(update.raw);
            return true;
          }).catch((err: unknown) => {
            // Bad data or a bug, not an outage (those are retried): holding every later update back would be worse.
            this.options.logger.error({ err, updateId: update.updateId }, 'Telegram receiver: skipped an update that fails every time');
            return true;
          }),
        ),
      ),
    );
    return outcomes.every((handled) => handled === true);
  }

  /** Runs `op` until it succeeds, backing off between attempts; undefined when `signal` stops it. */
  private async retrying<T>(what: string, signal: AbortSignal, op: () => Promise<T>): Promise<T | undefined> {
    try {
      return await pRetry(op, {
        retries: Number.POSITIVE_INFINITY,
        factor: 2,
        minTimeout: this.options.minBackoffMs ?? 500,
        maxTimeout: this.options.maxBackoffMs ?? 30_000,
        signal,
        shouldRetry: ({ error }) => !signal.aborted && !isPermanent(error),
        onFailedAttempt: ({ error, attemptNumber }) => {
          if (!signal.aborted)
            this.options.logger.warn({ err: errorMessage(error), attemptNumber }, `Telegram receiver: ${what}; retrying`);
        },
      });
    } catch (err) {
      if (signal.aborted) return undefined;
      throw err;
    }
  }

  /** Tells Telegram the handled updates are done (a getUpdates that returns at once). */
  private async confirm(): Promise<void> {
    if (this.offset === 0) return;
    try {
      await this.options.telegram.callApi('getUpdates', { offset: this.offset, limit: 1, timeout: 0 });
    } catch (err) {
      this.options.logger.warn(
        { err: errorMessage(err) },
        'could not confirm the last updates to Telegram; they will come again and be skipped',
      );
    }
  }
}
