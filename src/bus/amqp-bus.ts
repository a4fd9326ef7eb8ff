import { v7 as uuidv7 } from 'uuid';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Channel } from 'amqplib';
import type { Logger } from '../core/logger.ts';
import { backoff, sleep, withTimeout } from '../core/timing.ts';
import type { Bus, ConsumeOptions, MessageHandler, PublishOptions, Subscription, Topology } from './bus.ts';
import { busClosedError, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_DELIVERY_LIMIT, positiveInteger } from './bus-defaults.ts';
import { AmqpConnection, closeQuietly, isChannelOpen, type ReconnectOptions } from './amqp-connection.ts';
import { AmqpConsumer } from './amqp-consumer.ts';
import { ConfirmPublisher } from './amqp-publisher.ts';
import { DELIVERY_COUNT_HEADER, isBrokerRefusal, Namespace, TopologyRegistry } from './amqp-topology.ts';

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
    const { min, max } = this.connection.reconnectDelay;
    for (let attempt = 1; ; attempt++) {
      const model = await this.connection.ready();
      let channel: Channel | undefined;
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
        if (this.connection.isClosed) throw busClosedError('declare');
        // Only a lost channel or connection is worth another try; anything else (an argument
        // amqplib cannot encode, a bug) would fail the same way forever.
        const lost = channel ? !isChannelOpen(channel) : !this.connection.isCurrent(model);
        if (!lost) throw err;
        const delay = backoff(attempt, min, max);
        this.logger.debug({ error: errorMessage(err), retryInMs: delay }, 'declare interrupted; trying again on the next connection');
        await sleep(delay);
      } finally {
        await closeQuietly(channel);
      }
    }
  }

  publish(exchange: string, routingKey: string, body: Buffer, options: PublishOptions = {}): Promise<void> {
    // Handlers still finishing during close() may publish their onward messages.
    if (this.state === 'closed') return Promise.reject(busClosedError('publish'));
    const headers: Record<string, string | number | boolean> = { ...options.headers };
    delete headers[DELIVERY_COUNT_HEADER]; // the broker's to set
    return this.publisher.publish(exchange, routingKey, Buffer.from(body), {
      persistent: true,
      messageId: options.messageId ?? uuidv7(),
      contentType: 'application/json',
      // Most messages have none: an empty table is still encoded by amqplib and decoded by the consumer.
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
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
    const roundTrip = async (): Promise<void> => {
      const channel = await this.connection.channel(await this.connection.ready());
      await closeQuietly(channel);
    };
    try {
      await withTimeout(roundTrip(), PING_TIMEOUT_MS, `RabbitMQ did not answer within ${PING_TIMEOUT_MS} ms`);
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      throw new SwitchboardError('BUS_UNREACHABLE', `RabbitMQ cannot be reached: ${errorMessage(err)}`, { cause: err });
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
    const cancelled = await withTimeout(Promise.all(consumers.map((c) => c.cancel())), this.closeTimeoutMs, 'handlers still busy').then(
      () => true,
      () => false,
    );
    if (!cancelled) {
      this.logger.warn({ timeoutMs: this.closeTimeoutMs }, 'handlers still busy at close; their messages go back to the queue');
      await Promise.all(consumers.map((c) => c.abort()));
    }
    if (this.publisher.pending > 0) {
      await withTimeout(this.publisher.idle(), Math.max(0, deadline - Date.now()), 'publishes still unconfirmed').catch(() =>
        this.logger.warn({ pending: this.publisher.pending }, 'publishes still unconfirmed at close; they fail'),
      );
    }
    this.state = 'closed';
    await this.publisher.stop(busClosedError('publish'));
    await this.connection.close();
  }

  private assertUsable(operation: string): void {
    if (this.state !== 'open') throw busClosedError(operation);
  }
}
