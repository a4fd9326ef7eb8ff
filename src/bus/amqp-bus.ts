import { v7 as uuidv7 } from 'uuid';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Bus, ConsumeOptions, MessageHandler, PublishOptions, Subscription, Topology } from './bus.ts';
import { AmqpConnection, closedError, closeQuietly, sleep, type ReconnectOptions } from './amqp-connection.ts';
import { AmqpConsumer } from './amqp-consumer.ts';
import { ConfirmPublisher } from './amqp-publisher.ts';
import { DELIVERY_COUNT_HEADER, isBrokerRefusal, Namespace, positiveInteger, TopologyRegistry } from './amqp-topology.ts';

export interface AmqpBusOptions {
  readonly url: string;
  readonly logger: Logger;
  /** Prefix of every physical exchange and queue name: `${namespace}.${name}` (default: none). */
  readonly namespace?: string;
  /** Deliveries before a failing message is dead-lettered, for queues that set none (default 5). */
  readonly deliveryLimit?: number;
  /** How long close() lets handlers finish before handing their messages back (default 5000). */
  readonly closeTimeoutMs?: number;
  /** Backoff between reconnect attempts. */
  readonly reconnect?: ReconnectOptions;
}

const DEFAULT_DELIVERY_LIMIT = 5;
const DEFAULT_CLOSE_TIMEOUT_MS = 5000;
const PING_TIMEOUT_MS = 2000;

/**
 * The Bus on RabbitMQ: durable topic exchanges, quorum queues with a delivery limit and a
 * dead-letter exchange, publisher confirms, one channel per consumer. Survives lost connections
 * and channels: it reconnects with backoff, declares again what it declared, resumes every
 * consumer and publishes again whatever was not confirmed.
 *
 * @example
 * const bus = await AmqpBus.open({ url: 'amqp://guest:guest@localhost:5672', logger, namespace: 'prod' });
 */
export class AmqpBus implements Bus {
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private readonly consumers = new Set<AmqpConsumer>();

  private constructor(
    private readonly connection: AmqpConnection,
    private readonly publisher: ConfirmPublisher,
    private readonly topology: TopologyRegistry,
    private readonly names: Namespace,
    private readonly logger: Logger,
    private readonly closeTimeoutMs: number,
  ) {}

  static async open(options: AmqpBusOptions): Promise<AmqpBus> {
    const deliveryLimit = positiveInteger(options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT, 'deliveryLimit');
    const names = new Namespace(options.namespace ?? '');
    const topology = new TopologyRegistry(names, deliveryLimit);
    const holder: { publisher?: ConfirmPublisher } = {};
    const connection = await AmqpConnection.open({
      url: options.url,
      logger: options.logger,
      reconnect: options.reconnect,
      // Every new connection declares everything declared so far before consumers resume on it.
      setup: async (model) => {
        const channel = await model.createChannel();
        channel.on('error', () => undefined);
        try {
          await topology.apply(channel);
        } finally {
          await closeQuietly(channel);
        }
        holder.publisher?.knownExchanges(topology.physicalExchanges());
      },
    });
    const publisher = new ConfirmPublisher(connection, names, options.logger);
    holder.publisher = publisher;
    publisher.knownExchanges(topology.physicalExchanges());
    return new AmqpBus(connection, publisher, topology, names, options.logger, options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
  }

  async declare(topology: Topology): Promise<void> {
    this.assertUsable('declare');
    for (const spec of topology.queues)
      positiveInteger(spec.deliveryLimit ?? this.topology.defaultDeliveryLimit, `deliveryLimit of queue ${spec.name}`);
    let delay = this.connection.reconnectDelay.min;
    for (;;) {
      const model = await this.connection.ready();
      let channel;
      try {
        channel = await this.connection.channel(model);
        await this.topology.apply(channel, topology);
        this.topology.record(topology);
        this.publisher.knownExchanges(topology.exchanges.map((e) => this.names.physical(e)));
        return;
      } catch (err) {
        if (isBrokerRefusal(err)) {
          throw new SwitchboardError('BUS_TOPOLOGY', `RabbitMQ refused the topology: ${errorMessage(err)}`, { cause: err });
        }
        if (this.connection.isClosed) throw closedError();
        this.logger.debug({ error: errorMessage(err) }, 'declare interrupted; trying again on the next connection');
        await sleep(delay);
        delay = Math.min(delay * 2, this.connection.reconnectDelay.max);
      } finally {
        await closeQuietly(channel);
      }
    }
  }

  async publish(exchange: string, routingKey: string, body: Buffer, options: PublishOptions = {}): Promise<void> {
    // Handlers still finishing during close() may publish their onward messages.
    if (this.state === 'closed') throw closedError();
    const headers: Record<string, string | number | boolean> = { ...options.headers };
    delete headers[DELIVERY_COUNT_HEADER]; // the broker's to set
    await this.publisher.publish(exchange, routingKey, Buffer.from(body), {
      persistent: true,
      messageId: options.messageId ?? uuidv7(),
      contentType: 'application/json',
      headers,
    });
  }

  async consume(queue: string, handler: MessageHandler, options: ConsumeOptions): Promise<Subscription> {
    this.assertUsable('consume');
    const consumer = new AmqpConsumer(
      {
        connection: this.connection,
        publisher: this.publisher,
        names: this.names,
        logger: this.logger,
        deliveryLimit: this.topology.deliveryLimitOf(queue),
        onGone: (c) => this.consumers.delete(c),
      },
      queue,
      handler,
      positiveInteger(options.prefetch, 'prefetch'),
    );
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (err) {
      this.consumers.delete(consumer);
      throw err;
    }
    return consumer;
  }

  /** Throws unless the connection is up and the broker answers (a channel opened and closed). */
  async ping(): Promise<void> {
    this.assertUsable('ping');
    if (!this.connection.isUp) throw new SwitchboardError('BUS_UNREACHABLE', 'RabbitMQ connection is down; reconnecting');
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        (async () => {
          const channel = await this.connection.channel(await this.connection.ready());
          await closeQuietly(channel);
        })(),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new SwitchboardError('BUS_UNREACHABLE', `RabbitMQ did not answer within ${PING_TIMEOUT_MS} ms`)),
            PING_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      throw new SwitchboardError('BUS_UNREACHABLE', `RabbitMQ cannot be reached: ${errorMessage(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Cancels every consumer (handlers get closeTimeoutMs to settle; then their messages are handed
   * back), waits for unconfirmed publishes in the time left, then closes the connection.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closing';
    const deadline = Date.now() + this.closeTimeoutMs;
    const consumers = [...this.consumers];
    const cancelled = await within(Promise.all(consumers.map((c) => c.cancel())), this.closeTimeoutMs);
    if (!cancelled) {
      this.logger.warn({ timeoutMs: this.closeTimeoutMs }, 'handlers still busy at close; their messages go back to the queue');
      await Promise.all(consumers.map((c) => c.abort()));
    }
    if (this.publisher.pending > 0 && !(await within(this.publisher.idle(), Math.max(0, deadline - Date.now())))) {
      this.logger.warn({ pending: this.publisher.pending }, 'publishes still unconfirmed at close; they fail');
    }
    this.state = 'closed';
    await this.publisher.stop(closedError());
    await this.connection.close();
  }

  private assertUsable(operation: string): void {
    if (this.state !== 'open') throw new SwitchboardError('BUS_CLOSED', `amqp bus is closed; cannot ${operation}`);
  }
}

/** true when `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
