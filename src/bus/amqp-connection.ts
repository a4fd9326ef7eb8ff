import { coalesceWrites } from '../core/coalesce-writes.ts';
import { connect, type Channel, type ChannelModel, type RecoveringChannelModel } from 'amqplib';
import { errorMessage, SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { withTimeout } from '../core/timing.ts';
import { busClosedError } from './bus-defaults.ts';

export interface ReconnectOptions {
  /** First delay before reconnecting (default 100 ms); doubles on every failed attempt. */
  readonly minDelayMs?: number;
  /** Longest delay between attempts (default 5000 ms). */
  readonly maxDelayMs?: number;
}

export interface AmqpConnectionOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly reconnect?: ReconnectOptions;
  /** Runs on every new connection before anyone else may use it (re-declares the topology). */
  readonly setup: (model: ChannelModel) => Promise<void>;
}

/** Attempts before open() gives up when the broker cannot be reached at all. */
const INITIAL_RETRIES = 4;
/** A TCP connect plus AMQP handshake that takes longer than this is abandoned and retried. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Longest wait for the broker to acknowledge closing a channel or the connection. */
const CLOSE_TIMEOUT_MS = 3000;

interface Waiter {
  resolve(model: ChannelModel): void;
  reject(err: Error): void;
}

/**
 * The socket under a channel model or a channel: amqplib keeps it as `connection.stream` (a channel's
 * `connection` is the same connection object), which its types leave out.
 */
export function socketOf(modelOrChannel: ChannelModel | Channel): unknown {
  const connection: unknown = Reflect.get(modelOrChannel, 'connection');
  return typeof connection === 'object' && connection !== null ? Reflect.get(connection, 'stream') : undefined;
}

/**
 * One AMQP connection that comes back by itself. amqplib's opt-in `recovery` reconnects with
 * exponential backoff and jitter and runs `setup` (our topology re-declare) on each new connection
 * before announcing it; this class turns that into `ready()`, the live connection or a promise of
 * the next one. Channels, consumers and unconfirmed publishes are recovered by their owners
 * (AmqpConsumer, ConfirmPublisher): amqplib's recovery only replaces the connection.
 */
export class AmqpConnection {
  private live: ChannelModel | undefined;
  private waiters: Waiter[] = [];
  private closed = false;
  private connections = 0;
  readonly reconnectDelay: { readonly min: number; readonly max: number };

  private constructor(
    private readonly recovering: RecoveringChannelModel,
    private readonly logger: Logger,
    private readonly where: string,
    delays: { min: number; max: number },
    /** Connections that have closed (those closed during setup included). */
    private readonly dead: WeakSet<ChannelModel>,
  ) {
    this.reconnectDelay = delays;
  }

  static async open(options: AmqpConnectionOptions): Promise<AmqpConnection> {
    const min = Math.max(1, options.reconnect?.minDelayMs ?? 100);
    const max = Math.max(min, options.reconnect?.maxDelayMs ?? 5000);
    const holder: { connection?: AmqpConnection } = {};
    const dead = new WeakSet<ChannelModel>();
    const recovering = await connect(options.url, {
      noDelay: true,
      timeout: HANDSHAKE_TIMEOUT_MS,
      recovery: {
        initialDelay: min,
        maxDelay: max,
        factor: 2,
        jitter: 0.2,
        maxRetries: Infinity,
        initialMaxRetries: INITIAL_RETRIES,
        waitForConnect: false,
        setup: async (model: ChannelModel) => {
          // Before anything else: amqplib listens on the model only once setup has succeeded.
          model.on('error', (err: Error) => options.logger.debug({ error: err.message }, 'AMQP connection error'));
          // Batch what is written to the socket per turn of the event loop.
          coalesceWrites(socketOf(model));
          model.once('close', () => {
            dead.add(model);
            holder.connection?.forget(model);
          });
          await options.setup(model);
          // Closed during the last steps of setup: amqplib would announce it as connected and, having
          // missed its 'close', never reconnect. Failing setup makes it close the model and retry.
          if (dead.has(model)) throw new Error('the connection closed during setup');
        },
      },
    });
    const connection = new AmqpConnection(recovering, options.logger, describe(options.url), { min, max }, dead);
    holder.connection = connection;
    connection.listen();
    try {
      await recovering.waitForConnect();
    } catch (err) {
      await connection.close();
      throw new SwitchboardError('BUS_UNREACHABLE', `cannot connect to RabbitMQ at ${connection.where}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    return connection;
  }

  /** True while a connection is open. */
  get isUp(): boolean {
    return this.live !== undefined;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while `model` is the open connection (false once it closed or another replaced it). */
  isCurrent(model: ChannelModel): boolean {
    return this.live === model;
  }

  /** The open connection, or the next one (after its topology is declared again). */
  ready(): Promise<ChannelModel> {
    if (this.closed) return Promise.reject(busClosedError());
    if (this.live) return Promise.resolve(this.live);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** A channel with an error listener (an unheard 'error' event would crash the process). */
  async channel(model: ChannelModel): Promise<Channel> {
    const channel = await model.createChannel();
    watchChannel(channel, this.logger);
    return channel;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live = undefined;
    const waiters = this.waiters.splice(0);
    for (const waiter of waiters) waiter.reject(busClosedError());
    await withTimeout(this.recovering.close(), CLOSE_TIMEOUT_MS, 'the broker did not acknowledge closing the connection').catch(
      (err: unknown) => this.logger.debug({ error: errorMessage(err) }, 'error while closing the AMQP connection'),
    );
  }

  /** `model` has closed. */
  private forget(model: ChannelModel): void {
    if (this.live === model) this.live = undefined;
  }

  private listen(): void {
    const r = this.recovering;
    r.on('connect', (model: ChannelModel) => {
      if (this.closed || this.dead.has(model)) return;
      this.live = model;
      this.connections++;
      if (this.connections === 1) this.logger.info({ broker: this.where }, 'connected to RabbitMQ');
      else this.logger.info({ broker: this.where, connections: this.connections }, 'reconnected to RabbitMQ');
      const waiters = this.waiters.splice(0);
      for (const waiter of waiters) waiter.resolve(model);
    });
    r.on('disconnect', (err: Error) => {
      this.live = undefined;
      if (!this.closed) this.logger.warn({ broker: this.where, error: err.message }, 'RabbitMQ connection lost; reconnecting');
    });
    r.on('reconnect-scheduled', (info: { attempt: number; delay: number; error: Error }) => {
      if (this.closed) return;
      const fields = { attempt: info.attempt, delayMs: info.delay, error: info.error.message };
      // A few attempts are routine (a broker restart); more mean the broker stays away or refuses us.
      if (info.attempt <= 3) this.logger.info(fields, 'RabbitMQ reconnect scheduled');
      else this.logger.warn(fields, 'RabbitMQ still unreachable; reconnect scheduled');
    });
    r.on('reconnect-failed', (err: Error) => {
      const waiters = this.waiters.splice(0);
      for (const waiter of waiters) waiter.reject(err);
    });
    r.on('blocked', (reason: string) => this.logger.warn({ reason }, 'RabbitMQ blocked this connection (resource alarm)'));
    r.on('unblocked', () => this.logger.info('RabbitMQ unblocked this connection'));
    r.on('error', (err: Error) => this.logger.debug({ error: err.message }, 'AMQP connection error'));
    r.on('handler-error', (err: Error, event: string) => this.logger.error({ error: err.message, event }, 'AMQP event handler failed'));
  }
}

const closedChannels = new WeakSet<Channel>();

/** Listens for errors (an unheard 'error' event would crash the process) and remembers the close. */
export function watchChannel(channel: Channel, logger: Logger): void {
  channel.on('error', (err: Error) => logger.debug({ error: err.message }, 'AMQP channel error'));
  channel.on('handler-error', (err: Error, event: string) => logger.error({ error: err.message, event }, 'AMQP channel handler failed'));
  channel.once('close', () => closedChannels.add(channel));
}

export function isChannelOpen(channel: Channel): boolean {
  return !closedChannels.has(channel);
}

/** Resolves when the channel closes, for whatever reason (at once if it is closed already). */
export function channelClosed(channel: Channel): Promise<void> {
  if (closedChannels.has(channel)) return Promise.resolve();
  return new Promise((resolve) => channel.once('close', () => resolve()));
}

/**
 * Closes a channel, ignoring that it may be closed already. Also resolves when the connection
 * dies during the close handshake (amqplib's close() would never settle then).
 */
export async function closeQuietly(channel: Channel | undefined): Promise<void> {
  if (!channel || closedChannels.has(channel)) return;
  // A stalled connection must not hang a close.
  const closing = channel.close().then(
    () => undefined,
    () => undefined,
  );
  await withTimeout(Promise.race([closing, channelClosed(channel)]), CLOSE_TIMEOUT_MS, 'channel close not acknowledged').catch(
    () => undefined,
  );
}

/** host:port only: the URL may carry a password. */
function describe(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5672'}${parsed.pathname && parsed.pathname !== '/' ? parsed.pathname : ''}`;
  } catch {
    return 'the configured broker';
  }
}
