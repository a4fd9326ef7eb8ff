import { setTimeout as delay } from 'node:timers/promises';
import pRetry from 'p-retry';
import type { Telegram } from 'telegraf';
import { z } from 'zod';
import { KeyedSerial } from '../../core/keyed-serial.ts';
import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { apiSignal } from './telegram-client.ts';
import type { TelegramInbox } from './telegram-inbox.ts';
import { ALLOWED_UPDATES } from './update-schema.ts';

/** Seconds a getUpdates long poll is held open when nothing happens. */
const POLL_TIMEOUT_S = 30;
const BATCH_LIMIT = 100;

/** Just enough of each update to commit offsets and keep a chat's updates in order; the inbox checks the rest. */
const BatchSchema = z.array(
  z.looseObject({
    update_id: z.number().int().nonnegative(),
    message: z.looseObject({ chat: z.looseObject({ id: z.number() }) }).optional(),
    callback_query: z.looseObject({ message: z.looseObject({ chat: z.looseObject({ id: z.number() }) }).optional() }).optional(),
  }),
);
type RawUpdate = z.infer<typeof BatchSchema>[number];

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

  /** Stops at once; the batch in hand is not confirmed, so Telegram sends it again. */
  async abort(): Promise<void> {
    this.working.abort();
    this.polling.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.polling.signal.aborted) {
      const batch = await this.retrying('getUpdates failed', this.polling.signal, () => this.fetchBatch()).catch(async (err: unknown) => {
        this.options.logger.error({ err }, 'Telegram receiver: getUpdates failed in a way retrying does not fix; polling again later');
        await delay(this.options.maxBackoffMs ?? 30_000, undefined, { signal: this.polling.signal }).catch(() => undefined);
        return [];
      });
      if (batch === undefined) break;
      if (!(await this.handleBatch(batch))) return;
      const last = batch.at(-1);
      if (last) this.offset = last.update_id + 1;
    }
    if (!this.working.signal.aborted) await this.confirm();
  }

  private async fetchBatch(): Promise<RawUpdate[]> {
    const payload = { offset: this.offset, limit: BATCH_LIMIT, timeout: POLL_TIMEOUT_S, allowed_updates: [...ALLOWED_UPDATES] };
    const result: unknown = await this.options.telegram.callApi('getUpdates', payload, { signal: apiSignal(this.polling.signal) });
    return BatchSchema.parse(result);
  }

  /** True when every update was handled; false when abort() cut the batch short. */
  private async handleBatch(batch: readonly RawUpdate[]): Promise<boolean> {
    const serial = new KeyedSerial();
    const outcomes = await Promise.all(
      batch.map((update) =>
        serial.run(chatKey(update), () =>
          this.retrying('an update could not be handled', this.working.signal, async () => {
            await this.options.inbox.handle(update);
            return true;
          }).catch((err: unknown) => {
            // A bug, not an outage (those are retried): holding every later update back would be worse.
            this.options.logger.error({ err, updateId: update.update_id }, 'Telegram receiver: skipped an update that fails every time');
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
        shouldRetry: () => !signal.aborted,
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

function chatKey(update: RawUpdate): string {
  const chatId = update.message?.chat.id ?? update.callback_query?.message?.chat.id;
  return chatId === undefined ? `update:${update.update_id}` : `chat:${chatId}`;
}
