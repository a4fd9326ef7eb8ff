import { errorMessage } from '../core/errors.ts';
import { z } from 'zod';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import { withoutSecrets } from '../core/envelope.ts';
import type { Store } from '../store/store.ts';
import { DEAD_LETTER_QUEUE, DeadLetterHeaders, type Bus, type BusMessage, type Headers, type Subscription } from './bus.ts';

const KEY = 'dead-letters';
/** Headers the bus or RabbitMQ add when they dead-letter a message; a replay sends it without them. */
const ADDED_HEADERS: ReadonlySet<string> = new Set(Object.values(DeadLetterHeaders));
const isAddedHeader = (name: string): boolean => ADDED_HEADERS.has(name) || /^x-(death|first-death-|last-death-)/.test(name);

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

  /** Oldest first. A record that cannot be read (written by another version) is logged and skipped. */
  async list(limit = 100): Promise<DeadLetterRecord[]> {
    const all: DeadLetterRecord[] = [];
    for (const [id, raw] of Object.entries(await this.store.hgetall(KEY))) {
      const record = this.parse(id, raw);
      if (record) all.push(record);
    }
    return all.sort((a, b) => a.deadAt.localeCompare(b.deadAt) || a.messageId.localeCompare(b.messageId)).slice(0, limit);
  }

  /**
   * Publishes the dead letter again where it first went; false when there is no such id. It is
   * removed before the publish (and put back if the publish fails), so when it fails again at once
   * its new record is not the one removed.
   */
  async replay(messageId: string): Promise<boolean> {
    const raw = await this.store.hget(KEY, messageId);
    const record = raw === null ? undefined : this.parse(messageId, raw);
    if (raw === null || record === undefined || (await this.store.hdel(KEY, messageId)) === 0) return false;
    try {
      await this.bus.publish(record.exchange, record.routingKey, Buffer.from(record.body, 'base64'), {
        messageId: record.messageId,
        headers: record.headers,
      });
    } catch (err) {
      await this.store.hsetnx(KEY, messageId, raw);
      throw err;
    }
    this.logger.info({ messageId, exchange: record.exchange, routingKey: record.routingKey }, 'dead letter replayed');
    return true;
  }

  private parse(id: string, raw: string): DeadLetterRecord | undefined {
    try {
      return DeadLetterRecordSchema.parse(JSON.parse(raw));
    } catch (err) {
      this.logger.error({ messageId: id, err: errorMessage(err) }, 'unreadable dead-letter record skipped');
      return undefined;
    }
  }

  async replayAll(): Promise<number> {
    let count = 0;
    for (const record of await this.list(Number.MAX_SAFE_INTEGER)) if (await this.replay(record.messageId)) count++;
    return count;
  }

  private async keep(msg: BusMessage): Promise<void> {
    const headers: Record<string, string | number | boolean> = {};
    for (const [name, value] of Object.entries(msg.headers as Headers)) if (!isAddedHeader(name)) headers[name] = value;
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
      body: withoutSecrets(msg.body).toString('base64'),
    };
    await this.store.hset(KEY, { [record.messageId]: JSON.stringify(record) });
    this.options.metrics?.deadLetters.inc({ queue: record.queue });
    this.logger.debug({ messageId: record.messageId, queue: record.queue }, 'dead letter kept');
    await this.trim();
  }

  /**
   * Keeps at most `max`. When full, it drops the oldest tenth at once, so it reads every record
   * once per max/10 dead letters rather than on each one.
   */
  private async trim(): Promise<void> {
    if ((await this.store.hlen(KEY)) <= this.options.max) return;
    const keep = this.options.max - Math.floor(this.options.max / 10);
    const raw = await this.store.hgetall(KEY);
    const readable = await this.list(Number.MAX_SAFE_INTEGER);
    const ids = new Set(readable.map((r) => r.messageId));
    const unreadable = Object.keys(raw).filter((id) => !ids.has(id));
    const oldest = readable.slice(0, Math.max(0, readable.length - keep)).map((r) => r.messageId);
    if (unreadable.length + oldest.length > 0) await this.store.hdel(KEY, ...unreadable, ...oldest);
  }
}
