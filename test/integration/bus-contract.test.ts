import { connect } from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { AmqpBus } from '../../src/bus/amqp-bus.ts';
import {
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  DeadLetterHeaders,
  type Bus,
  type BusMessage,
  type Subscription,
  type Topology,
} from '../../src/bus/bus.ts';
import { MemoryBus } from '../../src/bus/memory-bus.ts';
import { PermanentError, ValidationError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { amqpUrl, uniqueName } from '../helpers/services.ts';

/**
 * The behaviour of the Bus port that every adapter shares: the same scenarios run on the memory
 * bus and on RabbitMQ (each test in its own namespace, deleted afterwards).
 */

const EX = 'switchboard.inbound';

interface BusOptions {
  readonly deliveryLimit?: number;
  readonly closeTimeoutMs?: number;
}

interface Adapter {
  readonly name: string;
  /** A bus for the current test; closed in afterEach. */
  open(options?: BusOptions): Promise<Bus>;
  /** A second handle on the same bus: its own connection for RabbitMQ, the same bus in memory. */
  peer(bus: Bus): Promise<Bus>;
  cleanup(): Promise<void>;
}

/** Wraps a bus so the test remembers what it declared (to delete it on RabbitMQ afterwards). */
function tracked(bus: Bus, declared: { queues: Set<string>; exchanges: Set<string> }): Bus {
  return {
    declare: async (topology: Topology) => {
      for (const e of topology.exchanges) declared.exchanges.add(e);
      for (const q of topology.queues) declared.queues.add(q.name);
      await bus.declare(topology);
    },
    publish: (...args) => bus.publish(...args),
    consume: (...args) => bus.consume(...args),
    ping: () => bus.ping(),
    close: () => bus.close(),
  };
}

function memoryAdapter(): Adapter {
  const buses: Bus[] = [];
  return {
    name: 'memory',
    async open(options = {}) {
      const bus = await MemoryBus.open({ logger: silentLogger(), ...options });
      buses.push(bus);
      return bus;
    },
    async peer(bus) {
      return bus;
    },
    async cleanup() {
      await Promise.all(buses.splice(0).map((b) => b.close()));
    },
  };
}

function amqpAdapter(): Adapter {
  const buses: Bus[] = [];
  let namespace = uniqueName('contract');
  let declared = { queues: new Set<string>(), exchanges: new Set<string>() };
  let limit: number | undefined;
  const openOne = async (options: BusOptions = {}): Promise<Bus> => {
    const bus = await AmqpBus.open({
      url: await amqpUrl(),
      logger: silentLogger(),
      namespace,
      reconnect: { minDelayMs: 50, maxDelayMs: 500 },
      closeTimeoutMs: 2000,
      ...options,
    });
    buses.push(bus);
    return tracked(bus, declared);
  };
  return {
    name: 'amqp',
    async open(options = {}) {
      limit = options.deliveryLimit;
      return openOne(options);
    },
    async peer() {
      return openOne({ deliveryLimit: limit });
    },
    async cleanup() {
      await Promise.all(buses.splice(0).map((b) => b.close()));
      await deleteNamespace(namespace, [...declared.queues, DEAD_LETTER_QUEUE], [...declared.exchanges, DEAD_LETTER_EXCHANGE]);
      namespace = uniqueName('contract');
      declared = { queues: new Set(), exchanges: new Set() };
    },
  };
}

async function deleteNamespace(namespace: string, queues: string[], exchanges: string[]): Promise<void> {
  const connection = await connect(await amqpUrl());
  try {
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.deleteQueue(`${namespace}.${queue}`);
    for (const exchange of exchanges) await channel.deleteExchange(`${namespace}.${exchange}`);
    await channel.close();
  } finally {
    await connection.close();
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await sleep(5);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const text = (msg: BusMessage): string => msg.body.toString('utf8');

async function collect(bus: Bus, queue: string): Promise<{ messages: BusMessage[]; sub: Subscription }> {
  const messages: BusMessage[] = [];
  const sub = await bus.consume(queue, async (msg) => void messages.push(msg), { prefetch: 100 });
  return { messages, sub };
}

/**
 * What a new consumer of `queue` gets: waits for the first delivery, then a little longer for any
 * that should not come, and cancels.
 */
async function nextDeliveries(bus: Bus, queue: string): Promise<string[]> {
  const { messages, sub } = await collect(bus, queue);
  await waitFor(() => messages.length >= 1);
  await sleep(100);
  await sub.cancel();
  return messages.map(text);
}

const adapters: Adapter[] = [memoryAdapter(), amqpAdapter()];

describe.each(adapters)('Bus contract: $name', (adapter) => {
  afterEach(async () => {
    await adapter.cleanup();
  });

  const workQueue = async (options: BusOptions & { singleActiveConsumer?: boolean } = {}): Promise<Bus> => {
    const bus = await adapter.open(options);
    await bus.declare({
      exchanges: [EX],
      queues: [
        {
          name: 'work',
          bindings: [{ exchange: EX, pattern: 'agent.#' }],
          deliveryLimit: options.deliveryLimit,
          singleActiveConsumer: options.singleActiveConsumer,
        },
      ],
    });
    return bus;
  };

  it('routes by topic pattern: * is one word, # zero or more; one copy per queue; unroutable dropped', async () => {
    const bus = await adapter.open();
    await bus.declare({
      exchanges: [EX],
      queues: [
        { name: 'star', bindings: [{ exchange: EX, pattern: 'agent.*.message' }] },
        { name: 'hash', bindings: [{ exchange: EX, pattern: 'agent.#' }] },
        { name: 'telegram', bindings: [{ exchange: EX, pattern: 'out.telegram.#' }] },
        {
          name: 'both',
          bindings: [
            { exchange: EX, pattern: 'agent.#' },
            { exchange: EX, pattern: 'agent.*.message' },
          ],
        },
      ],
    });
    const star = await collect(bus, 'star');
    const hash = await collect(bus, 'hash');
    const telegram = await collect(bus, 'telegram');
    const both = await collect(bus, 'both');
    const keys = ['agent.7.message', 'agent.7.message.extra', 'agent', 'out.telegram', 'out.telegram.42.chunk', 'nobody.listens'];
    for (const key of keys) await bus.publish(EX, key, Buffer.from(key), { messageId: `id-${key}`, headers: { tenant: 't', n: 3 } });
    await waitFor(
      () => star.messages.length === 1 && hash.messages.length === 3 && telegram.messages.length === 2 && both.messages.length === 3,
    );
    await sleep(50);

    const routed = (c: { messages: BusMessage[] }): string[] => c.messages.map((m) => m.routingKey);
    expect(routed(star)).toEqual(['agent.7.message']);
    expect(routed(hash)).toEqual(['agent.7.message', 'agent.7.message.extra', 'agent']);
    expect(routed(telegram)).toEqual(['out.telegram', 'out.telegram.42.chunk']);
    expect(routed(both)).toEqual(['agent.7.message', 'agent.7.message.extra', 'agent']);
    expect(star.messages[0]).toMatchObject({
      messageId: 'id-agent.7.message',
      exchange: EX,
      redelivered: false,
      deliveryCount: 1,
      headers: { tenant: 't', n: 3 },
    });
    expect(text(star.messages[0] as BusMessage)).toBe('agent.7.message');
  });

  it('rejects a publish to an undeclared exchange and a consumer of an undeclared queue', async () => {
    const bus = await adapter.open();
    await expect(bus.publish('nope', 'a', Buffer.from('x'))).rejects.toThrow(/undeclared exchange/);
    await expect(bus.consume('nope', async () => undefined, { prefetch: 1 })).rejects.toThrow(/undeclared queue/);
    // The bus still works afterwards.
    const worker = await workQueue();
    const { messages } = await collect(worker, 'work');
    await worker.publish(EX, 'agent.1', Buffer.from('ok'));
    await waitFor(() => messages.length === 1);
  });

  it('keeps at most prefetch messages in flight and delivers in FIFO order to one consumer', async () => {
    const bus = await workQueue();
    for (let i = 0; i < 20; i++) await bus.publish(EX, 'agent.1', Buffer.from(String(i)));
    const order: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    await bus.consume(
      'work',
      async (msg) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        order.push(text(msg));
        await sleep(5);
        inFlight--;
      },
      { prefetch: 3 },
    );
    await waitFor(() => order.length === 20 && inFlight === 0);
    expect(maxInFlight).toBe(3);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });

  it('requeues after a plain Error and succeeds on a later try', async () => {
    const bus = await workQueue();
    const dead = await collect(bus, DEAD_LETTER_QUEUE);
    const attempts: BusMessage[] = [];
    await bus.consume(
      'work',
      async (msg) => {
        attempts.push(msg);
        if (attempts.length === 1) throw new Error('flaky');
      },
      { prefetch: 1 },
    );
    await bus.publish(EX, 'agent.1', Buffer.from('x'), { messageId: 'flaky-1' });
    await waitFor(() => attempts.length === 2);
    await sleep(50);
    expect(attempts.map((m) => [m.messageId, m.redelivered, m.deliveryCount])).toEqual([
      ['flaky-1', false, 1],
      ['flaky-1', true, 2],
    ]);
    expect(dead.messages).toHaveLength(0);
  });

  it('hands a failing message back only after a growing delay, while other messages go on', async () => {
    const bus = await workQueue();
    const seen: { text: string; at: number }[] = [];
    await bus.consume(
      'work',
      async (msg) => {
        seen.push({ text: text(msg), at: Date.now() });
        if (text(msg) === 'failing' && msg.deliveryCount < 3) throw new Error('outage');
      },
      { prefetch: 2 },
    );
    const tries = (): number[] => seen.filter((s) => s.text === 'failing').map((s) => s.at);
    await bus.publish(EX, 'agent.1', Buffer.from('failing'));
    await waitFor(() => tries().length === 2);
    // Published while the failing message waits for its third try: handled at once, not after it.
    await bus.publish(EX, 'agent.1', Buffer.from('other'));
    await waitFor(() => tries().length === 3 && seen.some((s) => s.text === 'other'));
    const [first, second, third] = tries() as [number, number, number];
    // settle() asks for 50 ms after the first failure, then 100 ms (a timer may fire a ms early).
    expect(second - first).toBeGreaterThanOrEqual(48);
    expect(third - second).toBeGreaterThanOrEqual(98);
    expect(seen.find((s) => s.text === 'other')?.at).toBeLessThan(third);
  });

  it('dead-letters after the delivery limit with the last error in the reason', async () => {
    const bus = await workQueue({ deliveryLimit: 3 });
    const dead = await collect(bus, DEAD_LETTER_QUEUE);
    let attempts = 0;
    await bus.consume(
      'work',
      async () => {
        attempts++;
        throw new Error(`boom ${attempts}`);
      },
      { prefetch: 1 },
    );
    await bus.publish(EX, 'agent.7.message', Buffer.from('payload'), { messageId: 'm-9', headers: { tenant: 't1' } });
    await waitFor(() => dead.messages.length === 1);
    await sleep(50);
    expect(attempts).toBe(3);
    const letter = dead.messages[0] as BusMessage;
    expect(letter).toMatchObject({ messageId: 'm-9', routingKey: 'agent.7.message', exchange: DEAD_LETTER_EXCHANGE });
    expect(text(letter)).toBe('payload');
    expect(letter.headers).toMatchObject({
      tenant: 't1',
      [DeadLetterHeaders.exchange]: EX,
      [DeadLetterHeaders.routingKey]: 'agent.7.message',
      [DeadLetterHeaders.queue]: 'work',
    });
    expect(String(letter.headers[DeadLetterHeaders.reason])).toMatch(/delivery limit 3.*boom 3/);
    expect(Number.isNaN(Date.parse(String(letter.headers[DeadLetterHeaders.deadAt])))).toBe(false);
  });

  it.each([
    ['ValidationError', new ValidationError('field "to" is required')],
    ['PermanentError', new PermanentError('no such plugin')],
  ])('dead-letters a %s at once with its message as the reason', async (_name, error) => {
    const bus = await workQueue();
    const dead = await collect(bus, DEAD_LETTER_QUEUE);
    let attempts = 0;
    await bus.consume(
      'work',
      async () => {
        attempts++;
        throw error;
      },
      { prefetch: 1 },
    );
    await bus.publish(EX, 'agent.3.http', Buffer.from('{}'));
    await waitFor(() => dead.messages.length === 1);
    await sleep(50);
    expect(attempts).toBe(1);
    expect(dead.messages[0]?.headers[DeadLetterHeaders.reason]).toBe(error.message);
    expect(dead.messages[0]?.headers[DeadLetterHeaders.routingKey]).toBe('agent.3.http');
    expect(dead.messages[0]?.routingKey).toBe('agent.3.http');
  });

  it('redelivers what an aborted consumer held to another consumer, and ignores its late outcome', async () => {
    const bus = await workQueue();
    await bus.publish(EX, 'agent.1', Buffer.from('m1'));
    await bus.publish(EX, 'agent.1', Buffer.from('m2'));

    const aHeld: Deferred[] = [];
    const subA = await bus.consume(
      'work',
      () => {
        const d = deferred();
        aHeld.push(d);
        return d.promise;
      },
      { prefetch: 10 },
    );
    await waitFor(() => aHeld.length === 2);
    await subA.abort();

    const bGot: BusMessage[] = [];
    const bHeld: Deferred[] = [];
    await bus.consume(
      'work',
      (msg) => {
        bGot.push(msg);
        const d = deferred();
        bHeld.push(d);
        return d.promise;
      },
      { prefetch: 10 },
    );
    await waitFor(() => bGot.length === 2);
    expect(bGot.map(text)).toEqual(['m1', 'm2']);
    expect(bGot.map((m) => [m.redelivered, m.deliveryCount])).toEqual([
      [true, 2],
      [true, 2],
    ]);

    // A's handlers finish late: one "acks", one fails. Neither may touch what B now holds.
    aHeld[0]?.resolve();
    aHeld[1]?.reject(new Error('late failure'));
    await sleep(50);
    expect(bGot).toHaveLength(2);

    // B fails m1 (so it was still unacked, not acked by A) and acks m2.
    bHeld[0]?.reject(new Error('try again'));
    bHeld[1]?.resolve();
    await waitFor(() => bGot.length === 3);
    expect(text(bGot[2] as BusMessage)).toBe('m1');
    expect(bGot[2]?.deliveryCount).toBe(3);
    bHeld[2]?.resolve();
    await sleep(50);
    expect(bGot).toHaveLength(3);
  });

  it('gives the single active consumer everything; the next one takes over after cancel', async () => {
    const bus = await workQueue({ singleActiveConsumer: true });
    const a = await collect(bus, 'work');
    const b = await collect(bus, 'work');
    for (let i = 0; i < 5; i++) await bus.publish(EX, 'agent.1', Buffer.from(String(i)));
    await waitFor(() => a.messages.length === 5);
    await sleep(50);
    expect(b.messages).toHaveLength(0);

    await a.sub.cancel();
    for (let i = 5; i < 8; i++) await bus.publish(EX, 'agent.1', Buffer.from(String(i)));
    await waitFor(() => b.messages.length === 3);
    expect(b.messages.map(text)).toEqual(['5', '6', '7']);
    expect(a.messages.map(text)).toEqual(['0', '1', '2', '3', '4']);
  });

  it('hands a single-active queue over after cancel without the next consumer overtaking what the first still finishes', async () => {
    const bus = await workQueue({ singleActiveConsumer: true });
    const order: string[] = [];
    // Like a worker keeping a conversation in order: handlers run one after another.
    let chain = Promise.resolve();
    const serial = async (msg: BusMessage): Promise<void> => {
      const turn = chain.then(async () => {
        await sleep(10);
        order.push(text(msg));
      });
      chain = turn;
      await turn;
    };
    const a = await bus.consume('work', serial, { prefetch: 5 });
    const b = await bus.consume('work', async (msg) => void order.push(text(msg)), { prefetch: 5 });
    for (let i = 0; i < 20; i++) await bus.publish(EX, 'agent.1', Buffer.from(String(i).padStart(2, '0')));
    await waitFor(() => order.length >= 2);
    await a.cancel();
    await waitFor(() => order.length === 20);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => String(i).padStart(2, '0')));
    await b.cancel();
  });

  it('settles what finished while an older message still runs: after an abort only the running one comes back', async () => {
    const bus = await workQueue();
    const handled: string[] = [];
    const never = new Promise<void>(() => undefined);
    const a = await bus.consume('work', (msg) => (text(msg) === '0' ? never : (handled.push(text(msg)), Promise.resolve())), {
      prefetch: 10,
    });
    for (let i = 0; i < 5; i++) await bus.publish(EX, 'agent.1', Buffer.from(String(i)));
    await waitFor(() => handled.length === 4);
    await sleep(50);
    await a.abort();
    // 1–4 were acked although 0 was not (an ack that covered 0 would have lost it).
    expect(await nextDeliveries(bus, 'work')).toEqual(['0']);
  });

  it('an abort right after a handler finished still settles that message: it is not delivered again', async () => {
    const bus = await workQueue();
    let sub: Subscription | undefined;
    let aborting: Promise<void> | undefined;
    sub = await bus.consume(
      'work',
      () => {
        // Queued before the consumer settles this message, so the abort comes in the same turn of
        // the loop as the settlement, before anything batched for the end of the turn is sent.
        setImmediate(() => (aborting = sub?.abort()));
        return Promise.resolve();
      },
      { prefetch: 10 },
    );
    await bus.publish(EX, 'agent.1', Buffer.from('done before the abort'));
    await waitFor(() => aborting !== undefined);
    await aborting;
    await bus.publish(EX, 'agent.1', Buffer.from('after'));
    expect(await nextDeliveries(bus, 'work')).toEqual(['after']);
  });

  it('cancel waits for in-flight handlers and stops deliveries to that consumer', async () => {
    const bus = await workQueue();
    const held = deferred();
    let received = 0;
    const sub = await bus.consume('work', () => (received++, held.promise), { prefetch: 5 });
    await bus.publish(EX, 'agent.1', Buffer.from('first'));
    await waitFor(() => received === 1);

    let cancelled = false;
    const cancelling = sub.cancel().then(() => (cancelled = true));
    await sleep(20);
    await bus.publish(EX, 'agent.1', Buffer.from('second'));
    await sleep(50);
    expect(cancelled).toBe(false);
    expect(received).toBe(1);

    held.resolve();
    await cancelling;
    const next = await collect(bus, 'work');
    await waitFor(() => next.messages.length === 1);
    await sleep(50);
    // 'first' was acked by the cancelled consumer; only 'second' is left.
    expect(next.messages.map(text)).toEqual(['second']);
  });

  it('resolves publish only once the message is consumable', async () => {
    const bus = await workQueue();
    const other = await adapter.peer(bus);
    await bus.publish(EX, 'agent.1', Buffer.from('durable'), { messageId: 'p-1' });
    // On RabbitMQ the publisher's connection goes away at once: the confirm meant the broker has it.
    if (other !== bus) await bus.close();
    const { messages } = await collect(other, 'work');
    await waitFor(() => messages.length === 1);
    expect(messages[0]).toMatchObject({ messageId: 'p-1', redelivered: false, deliveryCount: 1 });
  });

  it('answers ping while open; after close every method rejects', async () => {
    const bus = await workQueue({ closeTimeoutMs: 100 });
    await bus.ping();
    let received = 0;
    await bus.consume('work', () => (received++, new Promise<void>(() => undefined)), { prefetch: 1 });
    await bus.publish(EX, 'agent.1', Buffer.from('x'));
    await waitFor(() => received === 1);
    await bus.close();
    await expect(bus.ping()).rejects.toThrow(/closed/);
    await expect(bus.publish(EX, 'agent.1', Buffer.from('y'))).rejects.toThrow(/closed/);
    await expect(bus.consume('work', async () => undefined, { prefetch: 1 })).rejects.toThrow(/closed/);
    await expect(bus.declare({ exchanges: [EX], queues: [] })).rejects.toThrow(/closed/);
  });
});
