import type { ConfirmChannel, Options } from 'amqplib';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { backoff, sleep } from '../core/timing.ts';
import { flushWrites } from '../core/coalesce-writes.ts';
import { channelClosed, closeQuietly, isChannelOpen, socketOf, watchChannel, type AmqpConnection } from './amqp-connection.ts';
import { isBrokerRefusal, isNotFound, type Namespace } from './amqp-topology.ts';

interface PublishJob {
  /** Submission order: jobs handed back by a dead channel are published again in this order. */
  readonly seq: number;
  readonly exchange: string;
  readonly routingKey: string;
  readonly body: Buffer;
  readonly properties: Options.Publish;
  /** Times the broker nacked it; each nack delays the next try a little more. */
  nacks: number;
  resolve(): void;
  reject(err: Error): void;
}

/** What the broker said about an exchange; 'retry' when the connection failed meanwhile. */
type ExchangeCheck = 'exists' | 'missing' | 'retry' | { readonly refused: unknown };

/**
 * Publishes with publisher confirms over one ConfirmChannel and never loses a publish to a dropped
 * connection: a job whose channel dies before its confirm goes back to the queue (in submission
 * order) and is published again on the next channel, until the broker confirms it. Only stop()
 * (the bus closing), an exchange that does not exist, or a publish the broker or amqplib refuses
 * rejects a job. Waits for 'drain' whenever the channel's write buffer is full.
 */
export class ConfirmPublisher {
  private queue: PublishJob[] = [];
  private readonly unconfirmed = new Set<PublishJob>();
  private channel: ConfirmChannel | undefined;
  private opening: Promise<ConfirmChannel> | undefined;
  /** Physical exchanges known to exist (declared by us or checked); cleared on a 404. */
  private readonly known = new Set<string>();
  private nextSeq = 0;
  private pumping = false;
  private pumpScheduled = false;
  private lastChannelFailed = false;
  private stopped: Error | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly connection: AmqpConnection,
    private readonly names: Namespace,
    private readonly logger: Logger,
  ) {}

  /** Exchanges declared by this bus: no need to check that they exist. */
  knownExchanges(physical: Iterable<string>): void {
    for (const name of physical) this.known.add(name);
  }

  publish(exchange: string, routingKey: string, body: Buffer, properties: Options.Publish): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        seq: this.nextSeq++,
        exchange: this.names.physical(exchange),
        routingKey,
        body,
        properties,
        nacks: 0,
        resolve,
        reject,
      });
      this.schedulePump();
    });
  }

  get pending(): number {
    return this.queue.length + this.unconfirmed.size;
  }

  /** Resolves when every publish so far is confirmed (or rejected). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Rejects every publish not yet confirmed and every later one. */
  async stop(reason: Error): Promise<void> {
    this.stopped ??= reason;
    const jobs = [...this.queue, ...this.unconfirmed];
    this.queue = [];
    this.unconfirmed.clear();
    for (const job of jobs) job.reject(reason);
    this.notifyIdle();
    const channel = this.channel;
    this.channel = undefined;
    await closeQuietly(channel);
  }

  /** Always on a later turn: never re-enter the pump from inside an amqplib callback. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.pumping || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (this.pumping || this.stopped) return;
      this.pumping = true;
      void this.pump()
        .catch((err: unknown) => this.logger.error({ error: errorMessage(err) }, 'publisher failed; retrying'))
        .finally(() => {
          this.pumping = false;
          // The pump runs from a setImmediate: its batch leaves now, not on the next turn of the loop.
          if (this.channel !== undefined) flushWrites(socketOf(this.channel));
          if (this.queue.length > 0) this.schedulePump();
        });
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      let channel = this.channel;
      if (channel === undefined || !isChannelOpen(channel)) {
        try {
          channel = await this.confirmChannel();
        } catch {
          return; // stopped
        }
      }
      const job = this.queue[0] as PublishJob;
      if (!this.known.has(job.exchange)) {
        const check = await this.checkExchange(job.exchange);
        if (check === 'retry') continue; // the connection went away; try again on the next one
        // A job handed back by a dead channel may have gone ahead meanwhile: start again from the head.
        if (this.stopped || this.queue[0] !== job) continue;
        if (check !== 'exists') {
          this.queue.shift();
          const exchange = this.names.logical(job.exchange);
          job.reject(
            check === 'missing'
              ? new SwitchboardError('BUS_NO_EXCHANGE', `cannot publish to undeclared exchange ${exchange}`)
              : new SwitchboardError('BUS_PUBLISH_REFUSED', `cannot publish to exchange ${exchange}: ${errorMessage(check.refused)}`, {
                  cause: check.refused,
                }),
          );
          this.notifyIdle();
          continue;
        }
      }
      const { min, max } = this.connection.reconnectDelay;
      if (job.nacks > 0) await sleep(backoff(job.nacks + 1, min, max));
      if (this.stopped || this.queue[0] !== job) continue;
      if (!isChannelOpen(channel)) continue;
      this.queue.shift();
      this.unconfirmed.add(job);
      let writable: boolean;
      try {
        writable = channel.publish(job.exchange, job.routingKey, job.body, job.properties, (err: unknown) => this.confirmed(job, err));
      } catch (err) {
        this.unconfirmed.delete(job);
        if (isChannelOpen(channel) && !(err instanceof Error && err.name === 'IllegalOperationError')) {
          // Not the channel's fault (headers too large to encode, say): retrying cannot help.
          job.reject(err instanceof Error ? err : new Error(String(err)));
          this.notifyIdle();
        } else {
          if (this.channel === channel) this.channel = undefined;
          this.requeue(job);
        }
        continue;
      }
      if (!writable) {
        flushWrites(socketOf(channel));
        this.logger.debug({ pending: this.pending }, 'publisher channel buffer full; waiting for drain');
        await drained(channel);
      }
    }
  }

  private confirmed(job: PublishJob, err: unknown): void {
    if (!this.unconfirmed.delete(job)) return; // rejected by stop() already
    if (err === null || err === undefined) {
      job.resolve();
      this.notifyIdle();
      return;
    }
    const message = errorMessage(err);
    if (message === 'message nacked') {
      job.nacks++;
      this.logger.warn(
        { messageId: job.properties.messageId, exchange: this.names.logical(job.exchange), nacks: job.nacks },
        'broker nacked a publish; publishing again',
      );
    } else {
      this.logger.debug(
        { messageId: job.properties.messageId, error: message },
        'publish not confirmed before its channel closed; publishing again',
      );
    }
    this.requeue(job);
  }

  /** Back into the queue at its submission position. */
  private requeue(job: PublishJob): void {
    if (this.stopped) {
      job.reject(this.stopped);
      this.notifyIdle();
      return;
    }
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1] as PublishJob).seq > job.seq) i--;
    this.queue.splice(i, 0, job);
    this.schedulePump();
  }

  private notifyIdle(): void {
    if (this.pending > 0) return;
    const waiters = this.idleWaiters.splice(0);
    for (const resolve of waiters) resolve();
  }

  private confirmChannel(): Promise<ConfirmChannel> {
    if (this.channel && isChannelOpen(this.channel)) return Promise.resolve(this.channel);
    this.opening ??= this.openChannel().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async openChannel(): Promise<ConfirmChannel> {
    for (;;) {
      if (this.stopped) throw this.stopped;
      if (this.lastChannelFailed) await sleep(this.connection.reconnectDelay.min);
      const model = await this.connection.ready();
      try {
        const channel = await model.createConfirmChannel();
        watchChannel(channel, this.logger);
        this.lastChannelFailed = false;
        channel.on('error', (err: unknown) => {
          this.lastChannelFailed = true;
          // The exchange of some publish is gone: check every exchange again before using it.
          if (isNotFound(err)) this.known.clear();
          this.logger.warn({ error: errorMessage(err) }, 'publisher channel closed by the broker');
        });
        void channelClosed(channel).then(() => {
          if (this.channel === channel) this.channel = undefined;
        });
        if (this.stopped) {
          await closeQuietly(channel);
          throw this.stopped;
        }
        this.channel = channel;
        return channel;
      } catch (err) {
        if (this.stopped) throw this.stopped;
        this.lastChannelFailed = true;
        this.logger.debug({ error: errorMessage(err) }, 'could not open the publisher channel; retrying');
      }
    }
  }

  private async checkExchange(exchange: string): Promise<ExchangeCheck> {
    let model;
    try {
      model = await this.connection.ready();
    } catch {
      return 'retry';
    }
    let channel;
    try {
      channel = await this.connection.channel(model);
      await channel.checkExchange(exchange);
      this.known.add(exchange);
      return 'exists';
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      // Refused by the broker (403 on the default exchange, say), or by amqplib (a name too long)
      // on a channel that is still open: the same publish would fail again.
      const lost = channel ? !isChannelOpen(channel) : !this.connection.isCurrent(model);
      if (isBrokerRefusal(err) || !lost) return { refused: err };
      await sleep(this.connection.reconnectDelay.min);
      return 'retry';
    } finally {
      await closeQuietly(channel);
    }
  }
}

/** Resolves when the channel can take more ('drain') or is gone. */
function drained(channel: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('drain', done);
      channel.off('close', done);
      resolve();
    };
    channel.on('drain', done);
    channel.on('close', done);
  });
}
