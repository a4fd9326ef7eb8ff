import type { Logger } from '../core/logger.ts';
import type { Binding, BusMessage, Headers, MessageHandler, Subscription } from './bus.ts';
import { pause, stopController } from './bus-defaults.ts';
import { settle, topicMatches } from './settle.ts';

/** A message as one queue holds it. `deliveries` counts the deliveries so far (0 = never delivered). */
export interface StoredMessage {
  readonly messageId: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly body: Buffer;
  readonly headers: Headers;
  deliveries: number;
}

/** Position in the queue: a requeued message goes back to where it was, ahead of later messages. */
interface QueuedMessage extends StoredMessage {
  readonly seq: number;
}

/** What a queue needs from its bus. */
export interface QueueHooks {
  readonly logger: Logger;
  /** Route a copy of `msg` to the dead-letter exchange; `queue` is where it died. */
  deadLetter(msg: BusMessage, queue: string, reason: string): void;
  /** Something the snapshot holds has changed. */
  changed(): void;
}

interface Delivery {
  readonly stored: QueuedMessage;
  readonly message: BusMessage;
}

interface Consumer {
  readonly id: number;
  readonly handler: MessageHandler;
  readonly prefetch: number;
  state: 'active' | 'cancelling' | 'gone';
  /** Delivered and not settled yet, including failed ones waiting out their requeue delay. */
  readonly inFlight: Set<Delivery>;
  readonly drained: Promise<void>;
  readonly resolveDrained: () => void;
  /** Aborted on cancel or abort: failed messages waiting out their requeue delay go back at once. */
  readonly stopper: AbortController;
}

/** Ready messages in order; O(1) at both ends, sorted insert for requeues. */
class ReadyList {
  private items: (QueuedMessage | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(msg: QueuedMessage): void {
    this.items.push(msg);
  }

  shift(): QueuedMessage | undefined {
    if (this.head >= this.items.length) return undefined;
    const msg = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return msg;
  }

  /** Put a message back at its original position (before every message enqueued after it). */
  insertBySeq(msg: QueuedMessage): void {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as QueuedMessage).seq < msg.seq) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.head && this.head > 0) this.items[--this.head] = msg;
    else this.items.splice(lo, 0, msg);
  }

  toArray(): QueuedMessage[] {
    return this.items.slice(this.head) as QueuedMessage[];
  }
}

/**
 * One queue of the memory bus with its consumers: FIFO, per-consumer prefetch, round-robin or
 * single active consumer, settlement through `settle()`.
 */
export class MemoryQueue {
  readonly bindings: Binding[] = [];
  private readonly ready = new ReadyList();
  private readonly consumers: Consumer[] = [];
  private roundRobin = 0;
  private nextSeq = 0;
  private nextConsumerId = 1;
  private dispatchScheduled = false;

  constructor(
    readonly name: string,
    readonly singleActiveConsumer: boolean,
    readonly deliveryLimit: number,
    private readonly hooks: QueueHooks,
  ) {}

  addBinding(binding: Binding): void {
    const known = this.bindings.some((b) => b.exchange === binding.exchange && b.pattern === binding.pattern);
    if (!known) this.bindings.push({ exchange: binding.exchange, pattern: binding.pattern });
  }

  /** True when any binding routes (exchange, routingKey) here; a queue gets at most one copy. */
  routes(exchange: string, routingKey: string): boolean {
    return this.bindings.some((b) => b.exchange === exchange && topicMatches(b.pattern, routingKey));
  }

  enqueue(msg: StoredMessage): void {
    this.ready.push({ ...msg, seq: this.nextSeq++ });
    this.hooks.changed();
    this.schedule();
  }

  /** Ready messages in order, then the unacked ones (in queue order). */
  snapshot(): { ready: StoredMessage[]; unacked: StoredMessage[] } {
    const unacked = this.consumers.flatMap((c) => [...c.inFlight].map((d) => d.stored)).sort((a, b) => a.seq - b.seq);
    return { ready: this.ready.toArray(), unacked };
  }

  subscribe(handler: MessageHandler, prefetch: number): Subscription {
    let resolveDrained!: () => void;
    const drained = new Promise<void>((resolve) => (resolveDrained = resolve));
    const consumer: Consumer = {
      id: this.nextConsumerId++,
      handler,
      prefetch,
      state: 'active',
      inFlight: new Set(),
      drained,
      resolveDrained,
      stopper: stopController(),
    };
    this.consumers.push(consumer);
    this.schedule();
    return {
      cancel: () => this.cancel(consumer),
      abort: async () => this.abort(consumer),
    };
  }

  /** Cancel every consumer; resolves when all their handlers have settled. */
  cancelAll(): Promise<void> {
    return Promise.all([...this.consumers].map((c) => this.cancel(c))).then(() => undefined);
  }

  abortAll(): void {
    for (const consumer of [...this.consumers]) this.abort(consumer);
  }

  private cancel(consumer: Consumer): Promise<void> {
    if (consumer.state === 'active') {
      consumer.state = 'cancelling';
      consumer.stopper.abort();
      if (consumer.inFlight.size === 0) this.remove(consumer);
    }
    return consumer.drained;
  }

  private abort(consumer: Consumer): void {
    if (consumer.state === 'gone') return;
    consumer.stopper.abort();
    const held = [...consumer.inFlight];
    consumer.inFlight.clear();
    for (const delivery of held) this.ready.insertBySeq(delivery.stored);
    if (held.length > 0) {
      this.hooks.logger.debug(
        { queue: this.name, consumer: consumer.id, count: held.length },
        'consumer aborted; its unacked messages go back to the queue',
      );
      this.hooks.changed();
    }
    this.remove(consumer);
  }

  private remove(consumer: Consumer): void {
    consumer.state = 'gone';
    const index = this.consumers.indexOf(consumer);
    if (index >= 0) {
      this.consumers.splice(index, 1);
      if (this.roundRobin > index) this.roundRobin--;
    }
    consumer.resolveDrained();
    this.schedule();
  }

  /** Deliveries are never made inside publish or a settlement: always on a later turn. */
  private schedule(): void {
    if (this.dispatchScheduled || this.consumers.length === 0) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.ready.length > 0) {
      const consumer = this.pickConsumer();
      if (!consumer) return;
      this.deliver(consumer, this.ready.shift() as QueuedMessage);
    }
  }

  private pickConsumer(): Consumer | undefined {
    const hasRoom = (c: Consumer): boolean => c.state === 'active' && c.inFlight.size < c.prefetch;
    if (this.singleActiveConsumer) {
      // The earliest registered consumer is the active one; while it drains after cancel(), nobody
      // else receives, so messages of one queue are never handled out of order by two consumers.
      const active = this.consumers[0];
      return active && hasRoom(active) ? active : undefined;
    }
    const count = this.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.roundRobin + i) % count;
      const consumer = this.consumers[index] as Consumer;
      if (hasRoom(consumer)) {
        this.roundRobin = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  private deliver(consumer: Consumer, stored: QueuedMessage): void {
    stored.deliveries += 1;
    const message: BusMessage = Object.freeze({
      messageId: stored.messageId,
      exchange: stored.exchange,
      routingKey: stored.routingKey,
      body: stored.body,
      headers: stored.headers,
      redelivered: stored.deliveries > 1,
      deliveryCount: stored.deliveries,
    });
    const delivery: Delivery = { stored, message };
    consumer.inFlight.add(delivery);
    this.hooks.changed();
    let outcome: Promise<void>;
    try {
      outcome = Promise.resolve(consumer.handler(message));
    } catch (err) {
      outcome = Promise.reject(err);
    }
    outcome.then(
      () => this.finish(consumer, delivery, undefined),
      // A rejection without a reason must not count as success.
      (err: unknown) => this.finish(consumer, delivery, err ?? new Error('handler rejected without a reason')),
    );
  }

  private finish(consumer: Consumer, delivery: Delivery, error: unknown): void {
    // Not held any more: the consumer was aborted and the message handed to someone else.
    if (!consumer.inFlight.has(delivery)) return;
    const { message } = delivery;
    const outcome = settle(error, message, this.deliveryLimit);
    const context = { messageId: message.messageId, queue: this.name, deliveryCount: message.deliveryCount };
    if (outcome.action === 'requeue') {
      this.hooks.logger.warn({ ...context, error: outcome.error, retryInMs: outcome.delayMs }, 'handler failed; message requeued');
      // Held (as RabbitMQ holds an unacked message) until the delay is over, then put back in its
      // place; the consumer's other deliveries go on meanwhile. Cancel and abort cut the wait short.
      void pause(outcome.delayMs, consumer.stopper.signal).then(() => this.putBack(consumer, delivery));
      return;
    }
    consumer.inFlight.delete(delivery);
    if (outcome.action === 'dead-letter') {
      this.hooks.logger.warn({ ...context, reason: outcome.reason }, 'message dead-lettered');
      this.hooks.deadLetter(message, this.name, outcome.reason);
    }
    this.settled(consumer);
  }

  private putBack(consumer: Consumer, delivery: Delivery): void {
    // Aborted meanwhile: abort() has put it back already.
    if (!consumer.inFlight.delete(delivery)) return;
    this.ready.insertBySeq(delivery.stored);
    this.settled(consumer);
  }

  private settled(consumer: Consumer): void {
    this.hooks.changed();
    if (consumer.state === 'cancelling' && consumer.inFlight.size === 0) this.remove(consumer);
    else this.schedule();
  }
}
