import { z } from 'zod';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../store/store.ts';
import { DEAD_LETTER_QUEUE, DeadLetterHeaders, type Bus, type BusMessage, type Headers, type Subscription } from './bus.ts';

const KEY = 'dead-letters';

export const DeadLetterRecordSchema = z.object({
  messageId: z.string(),
  reason: z.string(),
  exchange: z.string(),
  routingKey: z.string(),
  queue: z.string(),
  deadAt: z.string(),
  /** The original headers, without the ones the bus added when it dead-lettered the message. */
  headers: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  /** The original body, base64. */
  body: z.string(),
});
export type DeadLetterRecord = z.infer<typeof DeadLetterRecordSchema>;

/** What people see of a dead letter: its body as text, without the transport headers. */
export type DeadLetterView = Omit<DeadLetterRecord, 'headers'>;

export function deadLetterView({ headers: _headers, body, ...rest }: DeadLetterRecord): DeadLetterView {
  return { ...rest, body: Buffer.from(body, 'base64').toString('utf8') };
}

/**
 * Keeps what reaches the dead-letter queue where people can see it: each dead letter is moved into
 * the store (keyed by message id, newest `max` kept), listed for admins, and replayed to its
 * original exchange and routing key on request.
 */
export class DeadLetters {
  private subscription: Subscription | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: { max: number; metrics?: Metrics },
  ) {}

  /** Starts moving dead letters off the queue into the store. */
  async start(): Promise<void> {
    this.subscription = await this.bus.consume(DEAD_LETTER_QUEUE, (msg) => this.keep(msg), { prefetch: 50 });
  }

  async stop(): Promise<void> {
    await this.subscription?.cancel();
  }

  async abort(): Promise<void> {
    await this.subscription?.abort();
  }

  /** Oldest first. */
  async list(limit = 100): Promise<DeadLetterRecord[]> {
    const all = Object.values(await this.store.hgetall(KEY)).map((raw) => DeadLetterRecordSchema.parse(JSON.parse(raw)));
    return all.sort((a, b) => a.deadAt.localeCompare(b.deadAt) || a.messageId.localeCompare(b.messageId)).slice(0, limit);
  }

  /** Publishes the dead letter again where it first went, then forgets it; false when there is no such id. */
  async replay(messageId: string): Promise<boolean> {
    const raw = await this.store.hget(KEY, messageId);
    if (raw === null) return false;
    const record = DeadLetterRecordSchema.parse(JSON.parse(raw));
    await this.bus.publish(record.exchange, record.routingKey, Buffer.from(record.body, 'base64'), {
      messageId: record.messageId,
      headers: record.headers,
    });
    await this.store.hdel(KEY, messageId);
    this.logger.info({ messageId, exchange: record.exchange, routingKey: record.routingKey }, 'dead letter replayed');
    return true;
  }

  async replayAll(): Promise<number> {
    let count = 0;
    for (const record of await this.list(Number.MAX_SAFE_INTEGER)) if (await this.replay(record.messageId)) count++;
    return count;
  }

  private async keep(msg: BusMessage): Promise<void> {
    const added = new Set<string>(Object.values(DeadLetterHeaders));
    const headers: Record<string, string | number | boolean> = {};
    for (const [name, value] of Object.entries(msg.headers as Headers))
      if (!added.has(name) && !name.startsWith('x-death')) headers[name] = value;
    const header = (name: string, fallback: string): string => {
      const value = msg.headers[name];
      return value === undefined ? fallback : String(value);
    };
    const record: DeadLetterRecord = {
      messageId: msg.messageId,
      reason: header(DeadLetterHeaders.reason, 'rejected by the broker (delivery limit)'),
      exchange: header(DeadLetterHeaders.exchange, msg.exchange),
      routingKey: header(DeadLetterHeaders.routingKey, msg.routingKey),
      queue: header(DeadLetterHeaders.queue, ''),
      deadAt: header(DeadLetterHeaders.deadAt, new Date().toISOString()),
      headers,
      body: msg.body.toString('base64'),
    };
    await this.store.hset(KEY, { [record.messageId]: JSON.stringify(record) });
    this.options.metrics?.deadLetters.inc({ queue: record.queue });
    this.logger.warn({ messageId: record.messageId, queue: record.queue, reason: record.reason }, 'message dead-lettered');
    await this.trim();
  }

  /** Drops the oldest beyond `max`; reads them all only when there are too many. */
  private async trim(): Promise<void> {
    if ((await this.store.hlen(KEY)) <= this.options.max) return;
    const all = await this.list(Number.MAX_SAFE_INTEGER);
    const excess = all.length - this.options.max;
    if (excess > 0) await this.store.hdel(KEY, ...all.slice(0, excess).map((r) => r.messageId));
  }
}
