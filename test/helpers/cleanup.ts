import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE } from '../../src/bus/bus.ts';
import { SENDER_PLATFORMS, switchboardTopology } from '../../src/bus/topology.ts';

/** Deletes the queues and exchanges a test's namespace declared on RabbitMQ. */
export async function deleteAmqpNamespace(
  url: string,
  namespace: string,
  shards: number,
  platforms: readonly string[] = SENDER_PLATFORMS,
): Promise<void> {
  const topology = switchboardTopology(shards, platforms);
  const connection = await amqplib.connect(url);
  try {
    const channel = await connection.createChannel();
    for (const queue of [...topology.queues.map((q) => q.name), DEAD_LETTER_QUEUE]) await channel.deleteQueue(`${namespace}.${queue}`);
    for (const exchange of [...topology.exchanges, DEAD_LETTER_EXCHANGE]) await channel.deleteExchange(`${namespace}.${exchange}`);
    await channel.close();
  } finally {
    await connection.close();
  }
}

/** Deletes every Redis key under a test's prefix. */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
