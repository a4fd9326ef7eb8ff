import { v7 as uuidv7 } from 'uuid';
import { SwitchboardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { withTimeout } from '../core/timing.ts';
import {
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  deadLetterHeaders,
  type Bus,
  type BusMessage,
  type ConsumeOptions,
  type MessageHandler,
  type PublishOptions,
  type Subscription,
  type Topology,
} from './bus.ts';
import { busClosedError, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_DELIVERY_LIMIT, positiveInteger } from './bus-defaults.ts';
import { readSnapshot, SnapshotWriter, type BusSnapshot } from './memory-bus-snapshot.ts';
import { MemoryQueue, type QueueHooks, type StoredMessage } from './memory-queue.ts';

export interface MemoryBusOptions {
  readonly logger: Logger;
  /** Where queued messages survive a restart; without it the bus forgets everything on exit. */
  readonly snapshotFile?: string;
  /** Deliveries before a failing message is dead-lettered, for queues that set none (default 5). */
  readonly deliveryLimit?: number;
  /** How long close() lets handlers finish before taking their messages back (default 5000). */
  readonly closeTimeoutMs?: number;
}

/**
 * The embedded Bus: RabbitMQ topic-exchange semantics in one process, with an optional snapshot
 * file so queued and unacked messages survive a restart.
 *
 * @example
 * const bus = await MemoryBus.open({ logger, snapshotFile: 'data/bus.json' });
 */
export class MemoryBus implements Bus {
  private readonly exchanges = new Set<string>([DEAD_LETTER_EXCHANGE]);
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly logger: Logger;
  private readonly deliveryLimit: number;
  private readonly closeTimeoutMs: number;
  private readonly writer: SnapshotWriter | undefined;
  private readonly hooks: QueueHooks;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;

  private constructor(
    options: MemoryBusOptions,
    private readonly restored: BusSnapshot,
  ) {
    this.logger = options.logger.child({ component: 'memory-bus' });
    this.deliveryLimit = positiveInteger(options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT, 'deliveryLimit');
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.writer = options.snapshotFile ? new SnapshotWriter(options.snapshotFile, this.logger, () => this.collectSnapshot()) : undefined;
    this.hooks = {
      logger: this.logger,
      deadLetter: (msg, queue, reason) => this.deadLetter(msg, queue, reason),
      changed: () => this.writer?.changed(),
    };
    this.addQueue({ name: DEAD_LETTER_QUEUE, bindings: [{ exchange: DEAD_LETTER_EXCHANGE, pattern: '#' }] });
  }

  /** Opens the bus, restoring the snapshot file when there is one (a corrupt file is moved aside). */
  static async open(options: MemoryBusOptions): Promise<MemoryBus> {
    const restored = options.snapshotFile ? await readSnapshot(options.snapshotFile, options.logger) : new Map();
    return new MemoryBus(options, restored);
  }

  async declare(topology: Topology): Promise<void> {
    this.assertUsable('declare');
    for (const exchange of topology.exchanges) this.exchanges.add(exchange);
    for (const spec of topology.queues) {
      for (const binding of spec.bindings) {
        if (!this.exchanges.has(binding.exchange)) {
          throw new SwitchboardError('BUS_TOPOLOGY', `queue ${spec.name} binds to undeclared exchange ${binding.exchange}`);
        }
      }
      const existing = this.queues.get(spec.name);
      const deliveryLimit = spec.deliveryLimit ?? this.deliveryLimit;
      if (
        existing &&
        (existing.singleActiveConsumer !== (spec.singleActiveConsumer ?? false) || existing.deliveryLimit !== deliveryLimit)
      ) {
        throw new SwitchboardError('BUS_TOPOLOGY', `queue ${spec.name} is already declared with other arguments`);
      }
      this.addQueue(spec);
    }
  }

  async publish(exchange: string, routingKey: string, body: Buffer, options: PublishOptions = {}): Promise<void> {
    // Handlers still finishing during close() may publish their onward messages.
    if (this.state === 'closed') throw busClosedError('publish');
    if (!this.exchanges.has(exchange)) {
      throw new SwitchboardError('BUS_NO_EXCHANGE', `cannot publish to undeclared exchange ${exchange}`);
    }
    const headers = Object.freeze({ ...options.headers });
    this.route(exchange, routingKey, Buffer.from(body), options.messageId ?? uuidv7(), headers);
  }

  async consume(queue: string, handler: MessageHandler, options: ConsumeOptions): Promise<Subscription> {
    this.assertUsable('consume');
    const target = this.queues.get(queue);
    if (!target) throw new SwitchboardError('BUS_NO_QUEUE', `cannot consume from undeclared queue ${queue}`);
    return target.subscribe(handler, positiveInteger(options.prefetch, 'prefetch'));
  }

  async ping(): Promise<void> {
    if (this.state !== 'open') throw busClosedError('ping');
  }

  /** Cancels every consumer, aborts those still busy after closeTimeoutMs, then writes the snapshot. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closing';
    const queues = [...this.queues.values()];
    const timedOut = await withTimeout(Promise.all(queues.map((q) => q.cancelAll())), this.closeTimeoutMs, 'handlers still busy').then(
      () => false,
      () => true,
    );
    if (timedOut) {
      this.logger.warn({ timeoutMs: this.closeTimeoutMs }, 'handlers still busy at close; their messages go back to the queue');
      for (const queue of queues) queue.abortAll();
    }
    this.state = 'closed';
    await this.writer?.close();
  }

  private assertUsable(operation: string): void {
    if (this.state !== 'open') throw busClosedError(operation);
  }

  private addQueue(spec: Topology['queues'][number]): void {
    let queue = this.queues.get(spec.name);
    if (!queue) {
      const limit = positiveInteger(spec.deliveryLimit ?? this.deliveryLimit, 'deliveryLimit');
      queue = new MemoryQueue(spec.name, spec.singleActiveConsumer ?? false, limit, this.hooks);
      this.queues.set(spec.name, queue);
      const saved = this.restored.get(spec.name);
      if (saved) {
        this.restored.delete(spec.name);
        for (const msg of saved.ready) queue.enqueue({ ...msg });
        // Delivered before the restart and never acked: redelivered now.
        for (const msg of saved.unacked) queue.enqueue({ ...msg, deliveries: Math.max(1, msg.deliveries) });
        this.logger.info({ queue: spec.name, count: saved.ready.length + saved.unacked.length }, 'restored queued messages');
      }
    }
    for (const binding of spec.bindings) queue.addBinding(binding);
  }

  /** Enqueues a copy on every bound queue (once per queue); unroutable messages are dropped. */
  private route(exchange: string, routingKey: string, body: Buffer, messageId: string, headers: BusMessage['headers']): void {
    for (const queue of this.queues.values()) {
      if (queue.routes(exchange, routingKey)) {
        queue.enqueue({ messageId, exchange, routingKey, body, headers, deliveries: 0 });
      }
    }
  }

  private deadLetter(msg: BusMessage, queue: string, reason: string): void {
    if (queue === DEAD_LETTER_QUEUE) {
      // Dead-lettering from the dead-letter queue would loop; RabbitMQ drops such cycles too.
      this.logger.error({ messageId: msg.messageId, queue, reason }, 'dead letter failed again; dropped');
      return;
    }
    const headers = Object.freeze(deadLetterHeaders(msg, queue, reason));
    this.route(DEAD_LETTER_EXCHANGE, msg.routingKey, msg.body, msg.messageId, headers);
  }

  private collectSnapshot(): Map<string, { ready: readonly StoredMessage[]; unacked: readonly StoredMessage[] }> {
    // Messages restored for queues not declared (yet) in this run are kept, not lost.
    const snapshot = new Map(this.restored);
    for (const [name, queue] of this.queues) snapshot.set(name, queue.snapshot());
    return snapshot;
  }
}
