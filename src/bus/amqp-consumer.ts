import type { Channel, ConsumeMessage } from 'amqplib';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  DeadLetterHeaders,
  type BusMessage,
  type MessageHandler,
  type Subscription,
} from './bus.ts';
import { channelClosed, closeQuietly, isChannelOpen, sleep, type AmqpConnection } from './amqp-connection.ts';
import type { ConfirmPublisher } from './amqp-publisher.ts';
import { isBrokerRefusal, isNotFound, toBusMessage, type Namespace } from './amqp-topology.ts';
import { settle } from './settle.ts';

export interface ConsumerContext {
  readonly connection: AmqpConnection;
  readonly publisher: ConfirmPublisher;
  readonly names: Namespace;
  readonly logger: Logger;
  /** The queue's delivery limit (as declared), for settle(). */
  readonly deliveryLimit: number;
  /** Told once the consumer has gone (cancelled or aborted). */
  readonly onGone: (consumer: AmqpConsumer) => void;
}

/**
 * One consumer on its own channel (so prefetch is per consumer and abort = close that channel).
 * Keeps itself subscribed: when its channel or connection dies it subscribes again on the next
 * connection; what it held unacked is redelivered by the broker, and the outcome of a handler that
 * finishes after its channel died is dropped.
 */
export class AmqpConsumer implements Subscription {
  private state: 'starting' | 'active' | 'cancelling' | 'gone' = 'starting';
  private channel: Channel | undefined;
  private consumerTag: string | undefined;
  /** The current subscribe attempt, so cancel() never races a half-made subscription. */
  private attaching: Promise<unknown> | undefined;
  private readonly running = new Set<Promise<void>>();
  private cancelling: Promise<void> | undefined;
  private abortedSignal!: () => void;
  private readonly aborted = new Promise<void>((resolve) => (this.abortedSignal = resolve));

  constructor(
    private readonly ctx: ConsumerContext,
    readonly queue: string,
    private readonly handler: MessageHandler,
    private readonly prefetch: number,
  ) {}

  /** Resolves once subscribed; rejects when the broker refuses (no such queue) or the bus closes. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      void this.maintain({ resolve, reject });
    });
  }

  cancel(): Promise<void> {
    this.cancelling ??= this.doCancel();
    return this.cancelling;
  }

  async abort(): Promise<void> {
    if (this.state === 'gone') return;
    this.state = 'gone';
    this.abortedSignal();
    const channel = this.channel;
    this.channel = undefined;
    if (this.running.size > 0) {
      this.ctx.logger.debug({ queue: this.queue, count: this.running.size }, 'consumer aborted; its unacked messages go back to the queue');
    }
    await closeQuietly(channel);
    this.ctx.onGone(this);
  }

  private async doCancel(): Promise<void> {
    if (this.state === 'gone') return;
    this.state = 'cancelling';
    // A subscription half made (consume sent, no consumer tag yet) is finished first; a consumer
    // waiting for the connection to come back has nothing to cancel.
    if (this.channel && !this.consumerTag) await Promise.race([this.attaching?.catch(() => undefined), this.aborted]);
    if (this.isGone()) return;
    const channel = this.channel;
    // No basic.cancel: on a single-active-consumer queue RabbitMQ would make the next consumer
    // active at once, while this one still finishes earlier messages, and a conversation's order
    // would break. Instead, deliveries that arrive from now on are left unhandled and unacked, and
    // closing the channel below returns them to the head of the queue, in order, to the next one.
    // Handlers in flight settle their messages on this channel before it closes.
    while (this.running.size > 0 && this.state === 'cancelling') {
      await Promise.race([Promise.allSettled([...this.running]), this.aborted]);
    }
    if (this.isGone()) return; // aborted meanwhile
    this.state = 'gone';
    this.channel = undefined;
    await closeQuietly(channel);
    this.ctx.onGone(this);
  }

  /** A method, so TypeScript does not keep its narrowing of `state` across awaits. */
  private isGone(): boolean {
    return this.state === 'gone';
  }

  /** Subscribes, and subscribes again whenever the channel dies, until cancelled or aborted. */
  private async maintain(first: { resolve(): void; reject(err: Error): void }): Promise<void> {
    const { connection, logger } = this.ctx;
    let started = false;
    let delay = connection.reconnectDelay.min;
    while (this.state === 'starting' || this.state === 'active') {
      let channel: Channel;
      try {
        const attempt = this.attach();
        this.attaching = attempt;
        channel = await attempt;
      } catch (err) {
        if (!started && (isBrokerRefusal(err) || connection.isClosed)) {
          this.state = 'gone';
          first.reject(
            isNotFound(err)
              ? new SwitchboardError('BUS_NO_QUEUE', `cannot consume from undeclared queue ${this.queue}`, { cause: err })
              : err instanceof Error
                ? err
                : new Error(String(err)),
          );
          return;
        }
        if (this.state !== 'active' && this.state !== 'starting') return;
        if (connection.isClosed) return;
        logger.warn({ queue: this.queue, error: errorMessage(err), retryInMs: delay }, 'could not resume consumer; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, connection.reconnectDelay.max);
        continue;
      }
      if (this.state !== 'starting' && this.state !== 'active') {
        await closeQuietly(channel); // cancelled or aborted while subscribing
        return;
      }
      delay = connection.reconnectDelay.min;
      if (!started) {
        started = true;
        this.state = 'active';
        first.resolve();
      } else {
        logger.info({ queue: this.queue }, 'consumer resumed');
      }
      await channelClosed(channel);
      if (this.state === 'active' && !connection.isClosed) {
        logger.warn({ queue: this.queue, held: this.running.size }, 'consumer channel lost; resubscribing');
      }
    }
  }

  private async attach(): Promise<Channel> {
    const model = await this.ctx.connection.ready();
    const channel = await this.ctx.connection.channel(model);
    this.channel = channel;
    this.consumerTag = undefined;
    try {
      await channel.prefetch(this.prefetch);
      if (this.state !== 'starting' && this.state !== 'active') return channel;
      const queue = this.ctx.names.physical(this.queue);
      const ok = await channel.consume(queue, (raw) => this.onDelivery(channel, raw), { noAck: false });
      if (this.channel === channel) this.consumerTag = ok.consumerTag;
      return channel;
    } catch (err) {
      if (this.channel === channel) this.channel = undefined;
      await closeQuietly(channel);
      throw err;
    }
  }

  /** Called synchronously by amqplib: must never throw. */
  private onDelivery(channel: Channel, raw: ConsumeMessage | null): void {
    if (raw === null) {
      // The broker cancelled us (the queue was deleted, or its leader moved): subscribe again.
      this.ctx.logger.warn({ queue: this.queue }, 'consumer cancelled by the broker; resubscribing');
      void closeQuietly(channel);
      return;
    }
    // Aborted or cancelling: not handled, not settled; the broker redelivers it once the channel is closed.
    if (this.state === 'gone' || this.state === 'cancelling') return;
    let message: BusMessage;
    try {
      message = toBusMessage(raw, this.ctx.names);
    } catch (err) {
      this.ctx.logger.error({ queue: this.queue, error: errorMessage(err) }, 'cannot read a delivery; requeued');
      nack(channel, raw);
      return;
    }
    const run = this.handle(channel, raw, message);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private async handle(channel: Channel, raw: ConsumeMessage, message: BusMessage): Promise<void> {
    let failed = false;
    let error: unknown;
    try {
      await this.handler(message);
    } catch (err) {
      failed = true;
      error = err ?? new Error('handler rejected without a reason');
    }
    const { logger } = this.ctx;
    const context = { messageId: message.messageId, queue: this.queue, deliveryCount: message.deliveryCount };
    if (this.state === 'gone' || !isChannelOpen(channel)) {
      logger.debug(context, 'handler finished after its channel closed; outcome dropped, the broker redelivers the message');
      return;
    }
    const outcome = settle(failed ? error : undefined, message, this.ctx.deliveryLimit);
    try {
      if (outcome.action === 'ack') {
        channel.ack(raw);
      } else if (outcome.action === 'requeue') {
        logger.warn({ ...context, error: outcome.error }, 'handler failed; message requeued');
        channel.nack(raw, false, true);
      } else {
        await this.deadLetter(channel, raw, message, outcome.reason);
      }
    } catch (err) {
      // The channel died between the check and the settlement: the broker redelivers.
      logger.debug({ ...context, error: errorMessage(err) }, 'could not settle a delivery; the broker redelivers it');
    }
  }

  /** A copy goes to the dead-letter exchange (confirmed), then the original is acked. */
  private async deadLetter(channel: Channel, raw: ConsumeMessage, message: BusMessage, reason: string): Promise<void> {
    const { logger, publisher } = this.ctx;
    if (this.queue === DEAD_LETTER_QUEUE) {
      // Dead-lettering from the dead-letter queue would loop; dropped, as the memory bus does.
      logger.error({ messageId: message.messageId, queue: this.queue, reason }, 'dead letter failed again; dropped');
      channel.ack(raw);
      return;
    }
    logger.warn({ messageId: message.messageId, queue: this.queue, reason }, 'message dead-lettered');
    const headers = {
      ...message.headers,
      [DeadLetterHeaders.reason]: reason,
      [DeadLetterHeaders.exchange]: message.exchange,
      [DeadLetterHeaders.routingKey]: message.routingKey,
      [DeadLetterHeaders.queue]: this.queue,
      [DeadLetterHeaders.deadAt]: new Date().toISOString(),
    };
    try {
      await publisher.publish(DEAD_LETTER_EXCHANGE, message.routingKey, message.body, {
        persistent: true,
        messageId: message.messageId,
        contentType: typeof raw.properties.contentType === 'string' ? raw.properties.contentType : 'application/json',
        headers,
      });
    } catch (err) {
      // The bus is closing: the original stays unacked and comes back.
      logger.warn(
        { messageId: message.messageId, queue: this.queue, error: errorMessage(err) },
        'could not dead-letter; message left for redelivery',
      );
      return;
    }
    if (this.state !== 'gone' && isChannelOpen(channel)) channel.ack(raw);
  }
}

function nack(channel: Channel, raw: ConsumeMessage): void {
  try {
    channel.nack(raw, false, true);
  } catch {
    // Channel gone: the broker redelivers.
  }
}
