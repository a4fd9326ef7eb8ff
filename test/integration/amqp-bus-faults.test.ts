import { connect } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AmqpBus } from '../../src/bus/amqp-bus.ts';
import { AmqpConnection } from '../../src/bus/amqp-connection.ts';
import { DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DeadLetterHeaders, type BusMessage } from '../../src/bus/bus.ts';
import { createLogger } from '../../src/core/logger.ts';
import { withTimeout } from '../../src/core/timing.ts';
import { amqpUrl, uniqueName } from '../helpers/services.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * The AMQP bus through a TCP proxy that cuts its connections, as a network failure or a broker
 * restart would: publishes are confirmed in the end, held messages come back, the bus recovers.
 */

const EX = 'switchboard.inbound';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('AmqpBus under connection faults', () => {
  let proxy: TcpProxy;
  let bus: AmqpBus | undefined;
  let namespace: string;
  let logs: string[];
  const queues = ['first', 'second', 'work'];

  beforeEach(async () => {
    const target = new URL(await amqpUrl());
    proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5672) });
    namespace = uniqueName('faults');
    logs = [];
  });

  afterEach(async () => {
    await bus?.close();
    bus = undefined;
    await proxy.close();
    const connection = await connect(await amqpUrl());
    try {
      const channel = await connection.createChannel();
      for (const q of [...queues, DEAD_LETTER_QUEUE]) await channel.deleteQueue(`${namespace}.${q}`);
      for (const e of [EX, DEAD_LETTER_EXCHANGE]) await channel.deleteExchange(`${namespace}.${e}`);
      await channel.close();
    } finally {
      await connection.close();
    }
  });

  async function proxiedUrl(): Promise<string> {
    const target = new URL(await amqpUrl());
    return `amqp://${target.username || 'guest'}:${target.password || 'guest'}@127.0.0.1:${proxy.port}${target.pathname}`;
  }

  const testLogger = () => createLogger('info', { write: (line: string) => void logs.push(line) });

  async function openBus(): Promise<AmqpBus> {
    const url = await proxiedUrl();
    bus = await AmqpBus.open({
      url,
      logger: testLogger(),
      namespace,
      reconnect: { minDelayMs: 50, maxDelayMs: 400 },
      closeTimeoutMs: 2000,
    });
    return bus;
  }

  const workTopology = { exchanges: [EX], queues: [{ name: 'work', bindings: [{ exchange: EX, pattern: 'agent.#' }] }] };

  const logged = (text: string): boolean => logs.some((line) => line.includes(text));

  it('delivers all of 1,000 messages at least once when the connection is cut mid-stream', async ({ annotate }) => {
    const bus = await openBus();
    await bus.declare({
      exchanges: [EX],
      queues: [
        { name: 'first', bindings: [{ exchange: EX, pattern: 'in.#' }] },
        { name: 'second', bindings: [{ exchange: EX, pattern: 'out.#' }] },
      ],
    });
    // Forwards each message to the second queue, then acks it.
    await bus.consume('first', (msg) => bus.publish(EX, `out.${msg.routingKey}`, msg.body, { messageId: msg.messageId }), { prefetch: 50 });
    const arrivals = new Map<string, number>();
    await bus.consume('second', async (msg) => void arrivals.set(msg.messageId, (arrivals.get(msg.messageId) ?? 0) + 1), { prefetch: 100 });

    const total = 1000;
    const ids = Array.from({ length: total }, (_, i) => `msg-${String(i).padStart(4, '0')}`);
    let published = 0;
    let arrivedAtCut = -1;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const id = ids[next++] as string;
        await bus.publish(EX, `in.${id}`, Buffer.from(id), { messageId: id });
        published++;
        if (published === 400) {
          arrivedAtCut = arrivals.size;
          void proxy.cut(); // while 600 are still to publish and the consumers are busy
        }
      }
    };
    await Promise.all(Array.from({ length: 20 }, () => worker()));
    expect(published).toBe(total);
    expect(arrivedAtCut).toBeGreaterThanOrEqual(0);
    expect(arrivedAtCut).toBeLessThan(total);

    await waitFor(() => arrivals.size === total, 20_000, 'every message at the second queue');
    expect([...arrivals.keys()].sort()).toEqual(ids);
    const duplicates = [...arrivals.values()].reduce((sum, n) => sum + n - 1, 0);
    expect(duplicates).toBeGreaterThanOrEqual(0);
    await annotate(`cut after ${arrivedAtCut} arrivals; ${duplicates} duplicate deliveries at the second queue`);
    expect(logged('RabbitMQ connection lost')).toBe(true);
    expect(logged('reconnected to RabbitMQ')).toBe(true);

    // The bus keeps working on the new connection.
    await bus.ping();
    await bus.publish(EX, 'in.after', Buffer.from('after'), { messageId: 'after' });
    await waitFor(() => arrivals.has('after'), 5000, 'a message published after recovery');
  });

  it('redelivers what a consumer held unacked when the connection is cut, once its handlers have finished', async () => {
    const bus = await openBus();
    await bus.declare(workTopology);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const first: BusMessage[] = [];
    const again: BusMessage[] = [];
    let lateFailure = true;
    await bus.consume(
      'work',
      async (msg) => {
        if (!msg.redelivered) {
          first.push(msg);
          await gate; // still held when the connection goes
          if (lateFailure) {
            lateFailure = false;
            throw new Error('fails after its channel died');
          }
          return;
        }
        again.push(msg);
      },
      { prefetch: 10 },
    );
    const ids = ['h1', 'h2', 'h3', 'h4', 'h5'];
    for (const id of ids) await bus.publish(EX, 'agent.1', Buffer.from(id), { messageId: id });
    await waitFor(() => first.length === ids.length, 5000, 'all five held');

    await proxy.cut();
    // The connection is back within a few hundred ms, but the consumer waits for the handlers of
    // the lost channel: no second copy runs next to the first.
    await waitFor(() => logged('reconnected to RabbitMQ'), 5000, 'the reconnect');
    await sleep(300);
    expect(again).toHaveLength(0);

    // The first handlers finish now, on a dead channel: their outcomes are dropped, nothing breaks.
    release();
    await waitFor(() => again.length === ids.length, 10_000, 'all five redelivered');
    expect(again.map((m) => m.messageId).sort()).toEqual(ids);
    for (const msg of again) expect(msg.deliveryCount).toBeGreaterThanOrEqual(2);
    await sleep(200);
    expect(again).toHaveLength(ids.length);
    expect(first).toHaveLength(ids.length);
    await bus.ping();
    await bus.publish(EX, 'agent.1', Buffer.from('h6'), { messageId: 'h6' });
    await waitFor(() => first.some((m) => m.messageId === 'h6'), 5000, 'a new message after recovery');
  });

  it('starts the redelivered copy of a message only after the copy on the lost channel finished', async () => {
    const bus = await openBus();
    await bus.declare(workTopology);
    const runs: { redelivered: boolean; start: number; end: number }[] = [];
    await bus.consume(
      'work',
      async (msg) => {
        const run = { redelivered: msg.redelivered, start: Date.now(), end: 0 };
        runs.push(run);
        await sleep(msg.redelivered ? 0 : 500);
        run.end = Date.now();
      },
      { prefetch: 10 },
    );
    await bus.publish(EX, 'agent.1', Buffer.from('slow'), { messageId: 'slow' });
    await waitFor(() => runs.length === 1, 5000, 'the first copy');
    await sleep(50);
    await proxy.cut();
    await waitFor(() => runs.length === 2 && runs.every((run) => run.end !== 0), 10_000, 'both copies finished');
    const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(first.redelivered).toBe(false);
    expect(second.redelivered).toBe(true);
    expect(second.start).toBeGreaterThanOrEqual(first.end);
  });

  it('connects again when the connection closes while its setup runs', async () => {
    let setups = 0;
    const connection = await AmqpConnection.open({
      url: await proxiedUrl(),
      logger: testLogger(),
      reconnect: { minDelayMs: 50, maxDelayMs: 400 },
      setup: async (model) => {
        setups++;
        if (setups > 1) return;
        // The connection dies after the setup's last broker round trip, before it returns.
        const closed = new Promise((resolve) => model.once('close', resolve));
        void proxy.cut();
        await closed;
      },
    });
    try {
      await withTimeout(connection.ready(), 5000, 'no connection after one closed during setup');
      expect(setups).toBeGreaterThanOrEqual(2);
      expect(connection.isUp).toBe(true);
    } finally {
      await connection.close();
    }
  });

  it('rejects a consume when the bus closes before the consumer is subscribed', async () => {
    const bus = await openBus();
    await bus.declare(workTopology);
    // Closed at once, while the consumer opens its channel.
    const consuming = bus.consume('work', async () => undefined, { prefetch: 1 });
    consuming.catch(() => undefined); // asserted below
    const closing = bus.close();
    await expect(withTimeout(consuming, 5000, 'consume() never settled')).rejects.toThrow(/closed/);
    await closing;

    // Closed while the consumer subscribes and another consumer's handler keeps the connection open.
    const busy = await openBus();
    await busy.declare(workTopology);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let held = 0;
    await busy.consume('work', () => (held++, gate), { prefetch: 1 });
    await busy.publish(EX, 'agent.1', Buffer.from('held'));
    await waitFor(() => held === 1, 5000, 'the held message');
    const subscribing = busy.consume('work', async () => undefined, { prefetch: 1 });
    subscribing.catch(() => undefined);
    const closingBusy = busy.close();
    await sleep(300); // its channel is open by now, on a connection close() has not reached yet
    release();
    await expect(withTimeout(subscribing, 5000, 'consume() never settled')).rejects.toThrow(/closed/);
    await closingBusy;

    // Closed while the consumer waits for the connection to come back.
    logs.length = 0;
    const other = await openBus();
    const refusing = proxy.cut(1000);
    await waitFor(() => logged('RabbitMQ connection lost'), 5000, 'the connection loss');
    const waiting = other.consume('work', async () => undefined, { prefetch: 1 });
    waiting.catch(() => undefined);
    await sleep(100);
    await other.close();
    await expect(withTimeout(waiting, 5000, 'consume() never settled')).rejects.toThrow(/closed/);
    await refusing;
  });

  it('records where the broker dead-lettered a message that exceeded the delivery limit', async () => {
    const bus = await openBus();
    await bus.declare({ exchanges: [EX], queues: [{ name: 'work', bindings: [{ exchange: EX, pattern: 'agent.#' }], deliveryLimit: 2 }] });
    const dead: BusMessage[] = [];
    await bus.consume(DEAD_LETTER_QUEUE, async (msg) => void dead.push(msg), { prefetch: 10 });
    await bus.publish(EX, 'agent.7.message', Buffer.from('poison'), { messageId: 'poison-1', headers: { tenant: 't1' } });

    // A consumer that dies with the message every time (nack + requeue, as a crash would): the
    // broker itself dead-letters it past x-delivery-limit, without our headers.
    const connection = await connect(await amqpUrl());
    try {
      const channel = await connection.createChannel();
      for (let i = 0; i < 10 && dead.length === 0; i++) {
        const raw = await channel.get(`${namespace}.work`);
        if (raw) channel.nack(raw, false, true);
        await sleep(50);
      }
      await channel.close();
    } finally {
      await connection.close();
    }
    await waitFor(() => dead.length === 1, 5000, 'the dead letter');
    const letter = dead[0] as BusMessage;
    expect(letter).toMatchObject({ messageId: 'poison-1', exchange: DEAD_LETTER_EXCHANGE, routingKey: 'agent.7.message' });
    expect(letter.headers).toMatchObject({
      tenant: 't1',
      [DeadLetterHeaders.exchange]: EX,
      [DeadLetterHeaders.routingKey]: 'agent.7.message',
      [DeadLetterHeaders.queue]: 'work',
    });
    expect(String(letter.headers[DeadLetterHeaders.reason])).toMatch(/delivery limit/);
    expect(Number.isNaN(Date.parse(String(letter.headers[DeadLetterHeaders.deadAt])))).toBe(false);
  });

  it('rejects a declare or a publish that fails for a reason other than a lost connection', async () => {
    const bus = await openBus();
    // Names too long for AMQP: amqplib refuses to encode them, on a channel that stays open.
    const tooLong = 'x'.repeat(300);
    await expect(
      withTimeout(bus.declare({ exchanges: [EX], queues: [{ name: tooLong, bindings: [] }] }), 8000, 'declare() never settled'),
    ).rejects.toThrow(/255/);
    await expect(withTimeout(bus.publish(tooLong, 'k', Buffer.from('x')), 8000, 'publish() never settled')).rejects.toThrow(/255/);
    // The bus still works.
    await bus.declare(workTopology);
    const received: BusMessage[] = [];
    await bus.consume('work', async (msg) => void received.push(msg), { prefetch: 1 });
    await bus.publish(EX, 'agent.1', Buffer.from('fine'));
    await waitFor(() => received.length === 1, 5000, 'a message after the failures');
  });

  it('resolves a publish made while the broker cannot be reached once the connection is back', async () => {
    const bus = await openBus();
    await bus.declare({ exchanges: [EX], queues: [{ name: 'work', bindings: [{ exchange: EX, pattern: 'agent.#' }] }] });
    const received: BusMessage[] = [];
    await bus.consume('work', async (msg) => void received.push(msg), { prefetch: 10 });

    const started = Date.now();
    const refusing = proxy.cut(1000);
    let resolvedAt = 0;
    const publishing = bus
      .publish(EX, 'agent.1', Buffer.from('during outage'), { messageId: 'outage-1' })
      .then(() => (resolvedAt = Date.now()));
    await sleep(300);
    expect(resolvedAt).toBe(0);
    await expect(bus.ping()).rejects.toThrow(/RabbitMQ/);
    await refusing;
    await publishing;
    expect(resolvedAt - started).toBeGreaterThanOrEqual(900);
    await waitFor(() => received.length === 1, 5000, 'the message published during the outage');
    expect(received[0]?.messageId).toBe('outage-1');
    await bus.ping();
  });
});
