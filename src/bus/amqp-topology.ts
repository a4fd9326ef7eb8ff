import { createHash } from 'node:crypto';
import type { Channel, ConsumeMessage } from 'amqplib';
import {
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  deadLetterHeaders,
  DeadLetterHeaders,
  type BusMessage,
  type HeaderValue,
  type QueueSpec,
  type Topology,
} from './bus.ts';
import { positiveInteger } from './bus-defaults.ts';

/** The quorum queue's own redelivery counter; the bus turns it into `deliveryCount` and hides it. */
export const DELIVERY_COUNT_HEADER = 'x-delivery-count';

/**
 * Logical names (what callers use) to physical names (what RabbitMQ holds): with a namespace, every
 * exchange and queue is `${namespace}.${name}`, so several deployments or test runs share a broker.
 */
export class Namespace {
  constructor(private readonly prefix: string) {}

  physical(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  logical(physical: string): string {
    const head = `${this.prefix}.`;
    return this.prefix !== '' && physical.startsWith(head) ? physical.slice(head.length) : physical;
  }
}

interface DeclaredQueue {
  readonly spec: QueueSpec;
  readonly deliveryLimit: number;
}

/**
 * Everything this bus declared so far, so a new connection can declare it again before consumers
 * resume. The dead-letter exchange and queue are always part of it.
 */
export class TopologyRegistry {
  private readonly exchanges = new Set<string>();
  private readonly queues = new Map<string, DeclaredQueue>();

  constructor(
    private readonly names: Namespace,
    readonly defaultDeliveryLimit: number,
  ) {}

  /** The delivery limit of a queue this bus declared, else the bus default. */
  deliveryLimitOf(queue: string): number {
    return this.queues.get(queue)?.deliveryLimit ?? this.defaultDeliveryLimit;
  }

  record(topology: Topology): void {
    for (const exchange of topology.exchanges) this.exchanges.add(exchange);
    for (const spec of topology.queues) {
      const known = this.queues.get(spec.name);
      const bindings = [...(known?.spec.bindings ?? [])];
      for (const b of spec.bindings) {
        if (!bindings.some((k) => k.exchange === b.exchange && k.pattern === b.pattern)) bindings.push(b);
      }
      this.queues.set(spec.name, { spec: { ...spec, bindings }, deliveryLimit: this.limitOf(spec) });
    }
  }

  /** Physical names of every exchange declared so far, the dead-letter exchange included. */
  physicalExchanges(): string[] {
    return [DEAD_LETTER_EXCHANGE, ...this.exchanges].map((e) => this.names.physical(e));
  }

  /** Declares the dead-letter exchange and queue, then `topology` (everything so far by default). */
  async apply(channel: Channel, topology: Topology = this.all()): Promise<void> {
    const dlx = this.names.physical(DEAD_LETTER_EXCHANGE);
    await channel.assertExchange(dlx, 'topic', { durable: true });
    const dlq = this.names.physical(DEAD_LETTER_QUEUE);
    // No dead-letter exchange of its own: dead-lettering out of the dead-letter queue would loop.
    await channel.assertQueue(dlq, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': this.defaultDeliveryLimit },
    });
    await channel.bindQueue(dlq, dlx, '#');
    for (const exchange of topology.exchanges) {
      await channel.assertExchange(this.names.physical(exchange), 'topic', { durable: true });
    }
    for (const spec of topology.queues) {
      if (spec.name === DEAD_LETTER_QUEUE) continue;
      const queue = this.names.physical(spec.name);
      await channel.assertQueue(queue, { durable: true, arguments: this.queueArguments(spec) });
      for (const binding of spec.bindings) {
        await channel.bindQueue(queue, this.names.physical(binding.exchange), binding.pattern);
      }
    }
  }

  private all(): Topology {
    return { exchanges: [...this.exchanges], queues: [...this.queues.values()].map((q) => q.spec) };
  }

  private limitOf(spec: QueueSpec): number {
    return positiveInteger(spec.deliveryLimit ?? this.defaultDeliveryLimit, `deliveryLimit of queue ${spec.name}`);
  }

  /** RabbitMQ 3.10 quorum queues have no default delivery limit, so it is always set. */
  private queueArguments(spec: QueueSpec): Record<string, string | number | boolean> {
    const args: Record<string, string | number | boolean> = {
      'x-queue-type': 'quorum',
      'x-dead-letter-exchange': this.names.physical(DEAD_LETTER_EXCHANGE),
      'x-delivery-limit': this.limitOf(spec),
    };
    if (spec.singleActiveConsumer) args['x-single-active-consumer'] = true;
    return args;
  }
}

/**
 * The port's view of a delivery from `queue` (logical name). Headers that cannot be read are
 * dropped (or turned into strings) rather than failing the message: a message with odd headers is
 * still handled.
 */
export function toBusMessage(raw: ConsumeMessage, names: Namespace, queue: string): BusMessage {
  let headers = readHeaders(raw.properties?.headers);
  const counted = headers[DELIVERY_COUNT_HEADER];
  delete headers[DELIVERY_COUNT_HEADER];
  const previous = typeof counted === 'number' && Number.isFinite(counted) && counted > 0 ? Math.floor(counted) : 0;
  const redelivered = raw.fields.redelivered === true;
  const exchange = names.logical(raw.fields.exchange);
  const messageId =
    typeof raw.properties?.messageId === 'string' && raw.properties.messageId !== ''
      ? raw.properties.messageId
      : fallbackMessageId(exchange, raw.fields.routingKey, raw.content);
  if (queue === DEAD_LETTER_QUEUE && headers[DeadLetterHeaders.reason] === undefined) {
    headers = withBrokerDeath(headers, raw, names);
  }
  return Object.freeze({
    messageId,
    exchange,
    routingKey: raw.fields.routingKey,
    body: raw.content,
    headers: Object.freeze(headers),
    redelivered,
    // x-delivery-count counts earlier failed deliveries (absent on the first); a redelivered
    // message is never reported as a first delivery, even by brokers that count only nacks.
    deliveryCount: Math.max(previous + 1, redelivered ? 2 : 1),
  });
}

function readHeaders(input: unknown): Record<string, HeaderValue> {
  const headers: Record<string, HeaderValue> = {};
  if (input === null || typeof input !== 'object') return headers;
  let entries: [string, unknown][];
  try {
    entries = Object.entries(input);
  } catch {
    return headers;
  }
  for (const [name, value] of entries) {
    try {
      const converted = headerValue(value);
      if (converted !== undefined) headers[name] = converted;
    } catch {
      // An unreadable header is left out; the message is still handled.
    }
  }
  return headers;
}

function headerValue(value: unknown): HeaderValue | undefined {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value === null || value === undefined) return undefined;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  // Tables and arrays (x-death, for instance) and typed values ({ '!': 'timestamp', ... }).
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Stable across redeliveries, for messages published without a message id by someone else. */
function fallbackMessageId(exchange: string, routingKey: string, body: Buffer): string {
  return createHash('sha256').update(exchange).update('\0').update(routingKey).update('\0').update(body).digest('hex').slice(0, 32);
}

/**
 * A message the broker dead-lettered itself (a quorum queue's x-delivery-limit exceeded) carries
 * none of our headers, and its exchange is the dead-letter exchange. RabbitMQ's x-first-death-*
 * headers and x-death entry say where it died: the same DeadLetterHeaders the bus would have set,
 * in logical names. Unchanged when they are missing (not a broker-made dead letter).
 */
function withBrokerDeath(headers: Record<string, HeaderValue>, raw: ConsumeMessage, names: Namespace): Record<string, HeaderValue> {
  const text = (name: string): string | undefined => {
    const value = headers[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const reason = text('x-first-death-reason');
  const exchange = text('x-first-death-exchange');
  const queue = text('x-first-death-queue');
  if (reason === undefined || queue === undefined) return headers;
  const death = deathEntry(raw.properties?.headers, queue, reason);
  const routingKeys = death?.['routing-keys'];
  const routingKey = Array.isArray(routingKeys) && typeof routingKeys[0] === 'string' ? routingKeys[0] : raw.fields.routingKey;
  const seconds = timestampSeconds(death?.time);
  return deadLetterHeaders(
    // x-first-death-exchange is empty for a message published to the default exchange.
    { headers, exchange: names.logical(exchange ?? ''), routingKey },
    names.logical(queue),
    reason === 'delivery_limit' ? 'delivery limit reached (dead-lettered by RabbitMQ)' : `dead-lettered by RabbitMQ: ${reason}`,
    seconds === undefined ? undefined : new Date(seconds * 1000),
  );
}

/** The x-death entry of the first death (queue and reason), else the most recent one. */
function deathEntry(raw: unknown, queue: string, reason: string): Record<string, unknown> | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const deaths: unknown = (raw as Record<string, unknown>)['x-death'];
  if (!Array.isArray(deaths)) return undefined;
  const entries = deaths.filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object');
  return entries.find((d) => d.queue === queue && d.reason === reason) ?? entries[0];
}

/** amqplib reads an AMQP timestamp as { '!': 'timestamp', value: seconds }. */
function timestampSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (value === null || typeof value !== 'object' || !('value' in value)) return undefined;
  const seconds = (value as { value: unknown }).value;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : undefined;
}

/**
 * True when the broker refused an operation on a channel (403 access refused, 404 not found,
 * 405 resource locked, 406 precondition failed): retrying the same thing cannot help. Anything
 * else (a dropped connection, a closed channel) may pass once the connection is back.
 */
export function isBrokerRefusal(err: unknown): boolean {
  if (err === null || typeof err !== 'object' || !('code' in err)) return false;
  const code = (err as { code: unknown }).code;
  return code === 403 || code === 404 || code === 405 || code === 406;
}

export function isNotFound(err: unknown): boolean {
  return err !== null && typeof err === 'object' && 'code' in err && (err as { code: unknown }).code === 404;
}
