/**
 * The Bus port: RabbitMQ's model (topic exchanges, durable named queues, prefetch, ack after work,
 * dead letters) reduced to what Switchboard uses. The memory adapter and the AMQP adapter both
 * implement it; nothing outside the composition root knows which one runs.
 *
 * @example
 * await bus.declare({ exchanges: ['switchboard.inbound'], queues: [{ name: 'agent.0',
 *   bindings: [{ exchange: 'switchboard.inbound', pattern: 'agent.0.#' }] }] });
 * const sub = await bus.consume('agent.0', async (msg) => { ...work...; }, { prefetch: 100 });
 * await bus.publish('switchboard.inbound', 'agent.0.http', Buffer.from('{}'));
 */

export type HeaderValue = string | number | boolean;
export type Headers = Readonly<Record<string, HeaderValue>>;

export interface BusMessage {
  /** The publisher's message id (stable across redeliveries). */
  readonly messageId: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly body: Buffer;
  readonly headers: Headers;
  /** True when this message was delivered before and not acked. */
  readonly redelivered: boolean;
  /** 1 on the first delivery, 2 on the first redelivery, ... */
  readonly deliveryCount: number;
}

/**
 * Handles one message. Resolving acks it. Throwing lets the bus decide from the error's class
 * (src/bus/settle.ts): a PermanentError is dead-lettered with its message as the reason; anything
 * else is handed back for redelivery until the queue's delivery limit, then dead-lettered.
 */
export type MessageHandler = (msg: BusMessage) => Promise<void>;

export interface Binding {
  readonly exchange: string;
  /** Topic pattern: words separated by '.', '*' matches one word, '#' zero or more. */
  readonly pattern: string;
}

export interface QueueSpec {
  readonly name: string;
  readonly bindings: readonly Binding[];
  /** Only one consumer receives messages at a time; the next takes over when it goes away. */
  readonly singleActiveConsumer?: boolean;
  /** Deliveries after which a message that keeps failing is dead-lettered (default: the bus's). */
  readonly deliveryLimit?: number;
}

export interface Topology {
  readonly exchanges: readonly string[];
  readonly queues: readonly QueueSpec[];
}

export interface PublishOptions {
  readonly messageId?: string;
  readonly headers?: Headers;
}

export interface ConsumeOptions {
  /** Most messages held unacked at once by this consumer. */
  readonly prefetch: number;
}

export interface Subscription {
  /** Stop receiving; wait for the handlers in flight to finish and settle their messages. */
  cancel(): Promise<void>;
  /**
   * Go away without settling, as a consumer that died would: every message it holds unacked
   * goes back to its queue and is redelivered (to another consumer, if there is one).
   */
  abort(): Promise<void>;
}

/** A message that could not be processed, as it sits in the dead-letter queue. */
export interface DeadLetter {
  readonly messageId: string;
  readonly reason: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly queue: string;
  readonly body: Buffer;
  readonly deadAt: string;
}

export interface Bus {
  /** Declare exchanges, queues and bindings; idempotent. */
  declare(topology: Topology): Promise<void>;
  /** Resolves once the bus has the message safely (publisher confirm). Unroutable messages are dropped by design, as in AMQP. */
  publish(exchange: string, routingKey: string, body: Buffer, options?: PublishOptions): Promise<void>;
  consume(queue: string, handler: MessageHandler, options: ConsumeOptions): Promise<Subscription>;
  /** Throws when the bus cannot be reached. */
  ping(): Promise<void>;
  /** Stop every consumer (handing back what it holds) and release connections or files. */
  close(): Promise<void>;
}

/** Names shared by every adapter. */
export const DEAD_LETTER_EXCHANGE = 'switchboard.dead';
export const DEAD_LETTER_QUEUE = 'switchboard.dead-letters';
/** Headers the bus adds to a dead-lettered message. */
export const DeadLetterHeaders = {
  reason: 'x-switchboard-reason',
  exchange: 'x-switchboard-original-exchange',
  routingKey: 'x-switchboard-original-routing-key',
  queue: 'x-switchboard-original-queue',
  deadAt: 'x-switchboard-dead-at',
} as const;

/**
 * The headers of the copy of `msg` that goes to the dead-letter exchange: its own, plus where it
 * died and why. `msg.exchange` and `msg.routingKey` are where it was first published.
 */
export function deadLetterHeaders(
  msg: Pick<BusMessage, 'headers' | 'exchange' | 'routingKey'>,
  queue: string,
  reason: string,
  deadAt: Date = new Date(),
): Record<string, HeaderValue> {
  return {
    ...msg.headers,
    [DeadLetterHeaders.reason]: reason,
    [DeadLetterHeaders.exchange]: msg.exchange,
    [DeadLetterHeaders.routingKey]: msg.routingKey,
    [DeadLetterHeaders.queue]: queue,
    [DeadLetterHeaders.deadAt]: deadAt.toISOString(),
  };
}
