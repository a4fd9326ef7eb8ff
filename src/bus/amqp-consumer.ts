import type { Channel, ConsumeMessage } from 'amqplib';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { backoff, withTimeout } from '../core/timing.ts';
import {
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  deadLetterHeaders,
  type BusMessage,
  type MessageHandler,
  type Subscription,
} from './bus.ts';
import { busClosedError, pause, stopController } from './bus-defaults.ts';
import { channelClosed, closeQuietly, isChannelOpen, type AmqpConnection } from './amqp-connection.ts';
import { ChannelAcks } from './amqp-acks.ts';
import type { ConfirmPublisher } from './amqp-publisher.ts';
import { isBrokerRefusal, isNotFound, toBusMessage, type Namespace } from './amqp-topology.ts';
import { settle } from './settle.ts';

/** Longest wait for the handlers of a lost channel before subscribing again anyway. */
const LOST_CHANNEL_DRAIN_MS = 30_000;

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
 * connection, once the handlers still running on the lost channel have finished (the broker
 * redelivers what they held, and a second copy must not run next to the first or overtake it); the
 * outcome of a handler that finishes after its channel died is dropped.
 */
export class AmqpConsumer implements Subscription {
  private state: 'starting' | 'active' | 'cancelling' | 'gone' = 'starting';
  private channel: Channel | undefined;
  /** The acks of the current channel, sent once per turn of the loop. */
  private acks: ChannelAcks | undefined;
  private consumerTag: string | undefined;
  /** The current subscribe attempt, so cancel() never races a half-made subscription. */
  private attaching: Promise<unknown> | undefined;
  private readonly running = new Set<Promise<void>>();
  private cancelling: Promise<void> | undefined;
  private abortedSignal!: () => void;
  private readonly aborted = new Promise<void>((resolve) => (this.abortedSignal = resolve));
  /** Aborted on cancel or abort: ends the wait between two subscribe attempts. */
  private readonly stopper = stopController();
  /** Aborted when the current channel closes or on cancel or abort: ends its requeue delays. */
  private channelStopper: AbortController | undefined;

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
    this.stop();
    const channel = this.channel;
    this.channel = undefined;
    flushQuietly(this.acks);
    if (this.running.size > 0) {
      this.ctx.logger.debug({ queue: this.queue, count: this.running.size }, 'consumer aborted; its unacked messages go back to the queue');
    }
    await closeQuietly(channel);
    this.ctx.onGone(this);
  }

  private async doCancel(): Promise<void> {
    if (this.state === 'gone') return;
    this.state = 'cancelling';
    this.stop();
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
    // What the finished handlers acked leaves before the channel closes.
    flushQuietly(this.acks);
    await closeQuietly(channel);
    this.ctx.onGone(this);
  }

  private stop(): void {
    this.stopper.abort();
    this.channelStopper?.abort();
  }

  /** A method, so TypeScript does not keep its narrowing of `state` across awaits. */
  private isGone(): boolean {
    return this.state === 'gone';
  }

  /** Neither cancelled nor aborted (a method, for the same reason as isGone). */
  private isWanted(): boolean {
    return this.state === 'starting' || this.state === 'active';
  }

  /**
   * Subscribes, and subscribes again whenever the channel dies, until cancelled or aborted.
   * Settles `first` exactly once: resolved when first subscribed, rejected on any way out before.
   */
  private async maintain(first: { resolve(): void; reject(err: Error): void }): Promise<void> {
    let started = false;
    try {
      await this.subscribeLoop(() => {
        started = true;
        first.resolve();
      });
    } catch (err) {
      // The broker refused the subscription (no such queue, say).
      if (!started) first.reject(err instanceof Error ? err : new Error(String(err)));
    } finally {
      // Cancelled, aborted or closed before ever subscribing: consume() must still settle.
      if (!started) {
        if (this.isWanted()) this.state = 'gone';
        first.reject(busClosedError('consume'));
      }
    }
  }

  /** Throws only when the first subscription is refused by the broker. */
  private async subscribeLoop(started: () => void): Promise<void> {
    const { connection, logger } = this.ctx;
    let failures = 0;
    while (this.isWanted()) {
      let channel: Channel;
      try {
        const attempt = this.attach();
        this.attaching = attempt;
        channel = await attempt;
      } catch (err) {
        if (connection.isClosed || !this.isWanted()) return;
        if (this.state === 'starting' && isBrokerRefusal(err)) {
          this.state = 'gone';
          throw isNotFound(err)
            ? new SwitchboardError('BUS_NO_QUEUE', `cannot consume from undeclared queue ${this.queue}`, { cause: err })
            : err;
        }
        failures++;
        const delay = backoff(failures, connection.reconnectDelay.min, connection.reconnectDelay.max);
        logger.warn({ queue: this.queue, error: errorMessage(err), retryInMs: delay }, 'could not resume consumer; retrying');
        await pause(delay, this.stopper.signal);
        continue;
      }
      if (!this.isWanted()) {
        await closeQuietly(channel); // cancelled or aborted while subscribing
        return;
      }
      failures = 0;
      if (this.state === 'starting') {
        this.state = 'active';
        started();
      } else {
        logger.info({ queue: this.queue }, 'consumer resumed');
      }
      await channelClosed(channel);
      if (!this.isWanted() || connection.isClosed) return;
      logger.warn({ queue: this.queue, held: this.running.size }, 'consumer channel lost; resubscribing');
      await this.drainLostChannel();
    }
  }

  /**
   * Waits for the handlers still running on a lost channel. The broker redelivers what they hold
   * as soon as a new subscription exists: subscribing earlier would run a second copy of a message
   * next to the first, and let later messages of its conversation overtake it.
   */
  private async drainLostChannel(): Promise<void> {
    if (this.running.size === 0) return;
    // Aborted: no resubscribe follows, nothing to wait for.
    const finished = Promise.race([Promise.allSettled([...this.running]), this.aborted]);
    await withTimeout(finished, LOST_CHANNEL_DRAIN_MS, 'handlers of the lost channel still running').catch(() => {
      if (!this.isWanted()) return;
      this.ctx.logger.warn(
        { queue: this.queue, running: this.running.size, waitedMs: LOST_CHANNEL_DRAIN_MS },
        'handlers of a lost channel still running; resubscribing anyway (their messages may run twice at once)',
      );
    });
  }

  private async attach(): Promise<Channel> {
    const model = await this.ctx.connection.ready();
    const channel = await this.ctx.connection.channel(model);
    this.channel = channel;
    const acks = new ChannelAcks(channel);
    this.acks = acks;
    this.consumerTag = undefined;
    const stopper = stopController();
    this.channelStopper = stopper;
    void channelClosed(channel).then(() => stopper.abort());
    if (!this.isWanted()) stopper.abort();
    try {
      await channel.prefetch(this.prefetch);
      if (!this.isWanted()) return channel;
      const queue = this.ctx.names.physical(this.queue);
      const ok = await channel.consume(queue, (raw) => this.onDelivery(channel, acks, stopper.signal, raw), { noAck: false });
      if (this.channel === channel) this.consumerTag = ok.consumerTag;
      return channel;
    } catch (err) {
      if (this.channel === channel) this.channel = undefined;
      await closeQuietly(channel);
      throw err;
    }
  }

  /** Called synchronously by amqplib: must never throw. */
  private onDelivery(channel: Channel, acks: ChannelAcks, channelStop: AbortSignal, raw: ConsumeMessage | null): void {
    if (raw === null) {
      // The broker cancelled us (the queue was deleted, or its leader moved): subscribe again.
      this.ctx.logger.warn({ queue: this.queue }, 'consumer cancelled by the broker; resubscribing');
      // What was acked this turn leaves first: amqplib sends nothing on a closing channel.
      flushQuietly(acks);
      void closeQuietly(channel);
      return;
    }
    acks.delivered(raw);
    // Aborted or cancelling: not handled, not settled; the broker redelivers it once the channel is closed.
    if (this.state === 'gone' || this.state === 'cancelling') return;
    let message: BusMessage;
    try {
      message = toBusMessage(raw, this.ctx.names, this.queue);
    } catch (err) {
      this.ctx.logger.error({ queue: this.queue, error: errorMessage(err) }, 'cannot read a delivery; requeued');
      requeueQuietly(acks, raw);
      return;
    }
    const run = this.handle(channel, acks, channelStop, raw, message);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private async handle(
    channel: Channel,
    acks: ChannelAcks,
    channelStop: AbortSignal,
    raw: ConsumeMessage,
    message: BusMessage,
  ): Promise<void> {
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
        acks.ack(raw);
      } else if (outcome.action === 'requeue') {
        logger.warn({ ...context, error: outcome.error, retryInMs: outcome.delayMs }, 'handler failed; message requeued');
        // Held (unacked, in its prefetch slot) for the delay while other deliveries go on; cancel,
        // abort and a lost channel cut it short.
        await pause(outcome.delayMs, channelStop);
        // Aborted, or the channel is gone: the broker has it back already.
        if (this.isGone() || !isChannelOpen(channel)) return;
        acks.requeue(raw);
      } else {
        await this.deadLetter(channel, acks, raw, message, outcome.reason);
      }
    } catch (err) {
      // The channel died between the check and the settlement: the broker redelivers.
      logger.debug({ ...context, error: errorMessage(err) }, 'could not settle a delivery; the broker redelivers it');
    }
  }

  /** A copy goes to the dead-letter exchange (confirmed), then the original is acked. */
  private async deadLetter(channel: Channel, acks: ChannelAcks, raw: ConsumeMessage, message: BusMessage, reason: string): Promise<void> {
    const { logger, publisher } = this.ctx;
    if (this.queue === DEAD_LETTER_QUEUE) {
      // Dead-lettering from the dead-letter queue would loop; dropped, as the memory bus does.
      logger.error({ messageId: message.messageId, queue: this.queue, reason }, 'dead letter failed again; dropped');
      acks.ack(raw);
      return;
    }
    logger.warn({ messageId: message.messageId, queue: this.queue, reason }, 'message dead-lettered');
    const headers = deadLetterHeaders(message, this.queue, reason);
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
    if (this.state !== 'gone' && isChannelOpen(channel)) acks.ack(raw);
  }
}

function requeueQuietly(acks: ChannelAcks, raw: ConsumeMessage): void {
  try {
    acks.requeue(raw);
  } catch {
    // Channel gone: the broker redelivers.
  }
}

function flushQuietly(acks: ChannelAcks | undefined): void {
  try {
    acks?.flush();
  } catch {
    // Channel gone: the broker redelivers.
  }
}
