import { randomUUID } from 'node:crypto';
import amqplib from 'amqplib';
import { summarise, type Throughput } from './stats.ts';

/**
 * The baseline: what plain amqplib does on this machine with the same guarantees as our path —
 * persistent 1 KB messages with publisher confirms, topic exchange → durable (quorum) queue →
 * consume → republish with confirm → second durable queue → ack.
 */
export async function rawAmqpBaseline(url: string, count: number, concurrency: number, warmup = 0): Promise<Throughput> {
  const ns = `bench-raw-${randomUUID().slice(0, 8)}`;
  const connection = await amqplib.connect(url, { noDelay: true });
  const publisher = await connection.createConfirmChannel();
  const relay = await connection.createConfirmChannel();
  const sink = await connection.createChannel();
  const exchange = `${ns}.inbound`;
  const first = `${ns}.first`;
  const second = `${ns}.second`;
  const args = { 'x-queue-type': 'quorum' };
  await publisher.assertExchange(exchange, 'topic', { durable: true });
  await publisher.assertExchange(`${ns}.outbound`, 'topic', { durable: true });
  await publisher.assertQueue(first, { durable: true, arguments: args });
  await publisher.assertQueue(second, { durable: true, arguments: args });
  await publisher.bindQueue(first, exchange, 'agent.#');
  await publisher.bindQueue(second, `${ns}.outbound`, 'http.#');
  await relay.prefetch(100);
  await sink.prefetch(100);

  const body = Buffer.alloc(1024, 'x');
  const sentAt = new Map<string, number>();
  let latencies: number[] = [];
  let expected = 0;
  let resolveDone: () => void = () => undefined;

  await relay.consume(first, (msg) => {
    if (!msg) return;
    relay.publish(
      `${ns}.outbound`,
      'http.reply',
      msg.content,
      { persistent: true, messageId: msg.properties.messageId as string },
      (err) => {
        if (err) throw err;
        relay.ack(msg);
      },
    );
  });
  await sink.consume(second, (msg) => {
    if (!msg) return;
    const id = msg.properties.messageId as string;
    latencies.push(performance.now() - (sentAt.get(id) ?? 0));
    sink.ack(msg);
    if (latencies.length === expected) resolveDone();
  });

  /** Sends `n` messages with `concurrency` publishes in flight; resolves when all went through both queues. */
  const drive = async (n: number): Promise<number> => {
    latencies = [];
    expected = n;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const id = randomUUID();
          sentAt.set(id, performance.now());
          await new Promise<void>((resolve, reject) =>
            publisher.publish(exchange, 'agent.0.http', body, { persistent: true, messageId: id }, (err) =>
              err ? reject(err) : resolve(),
            ),
          );
        }
      }),
    );
    await done;
    return (performance.now() - started) / 1000;
  };
  // Warmed up like (a) and (b): the JIT, the channels and the new queues settle before measuring.
  if (warmup > 0) await drive(warmup);
  const seconds = await drive(count);
  for (const queue of [first, second]) await publisher.deleteQueue(queue);
  await publisher.deleteExchange(exchange);
  await publisher.deleteExchange(`${ns}.outbound`);
  await connection.close();
  return summarise(latencies, seconds);
}
