import { connect } from 'amqplib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AmqpBus } from '../../src/bus/amqp-bus.ts';
import { DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, type BusMessage } from '../../src/bus/bus.ts';
import { createLogger } from '../../src/core/logger.ts';
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

  async function openBus(): Promise<AmqpBus> {
    const target = new URL(await amqpUrl());
    const url = `amqp://${target.username || 'guest'}:${target.password || 'guest'}@127.0.0.1:${proxy.port}${target.pathname}`;
    const logger = createLogger('info', { write: (line: string) => void logs.push(line) });
    bus = await AmqpBus.open({ url, logger, namespace, reconnect: { minDelayMs: 50, maxDelayMs: 400 }, closeTimeoutMs: 2000 });
    return bus;
  }

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

  it('redelivers and handles what a consumer held unacked when the connection is cut', async () => {
    const bus = await openBus();
    await bus.declare({ exchanges: [EX], queues: [{ name: 'work', bindings: [{ exchange: EX, pattern: 'agent.#' }] }] });
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
    await waitFor(() => again.length === ids.length, 10_000, 'all five redelivered');
    expect(again.map((m) => m.messageId).sort()).toEqual(ids);
    for (const msg of again) expect(msg.deliveryCount).toBeGreaterThanOrEqual(2);

    // The first handlers finish now, on a dead channel: their outcomes are dropped, nothing breaks.
    release();
    await sleep(200);
    expect(again).toHaveLength(ids.length);
    expect(first).toHaveLength(ids.length);
    await bus.ping();
    await bus.publish(EX, 'agent.1', Buffer.from('h6'), { messageId: 'h6' });
    await waitFor(() => first.some((m) => m.messageId === 'h6'), 5000, 'a new message after recovery');
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
