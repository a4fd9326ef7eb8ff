import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAi } from '../fakes/fake-openai.ts';
import { amqpUrl, redisUrl, uniqueName } from '../helpers/services.ts';
import { cleanupNamespace, startSwitchboard, type Harness } from '../helpers/switchboard.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';

/** Every role in this process on RabbitMQ and Redis, reached through TCP proxies the tests can cut. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function behindProxies(): Promise<{ sb: Harness; llm: FakeOpenAi; rabbit: TcpProxy; redis: TcpProxy }> {
  const namespace = uniqueName('fault');
  cleanups.push(() => cleanupNamespace(namespace));
  const rabbit = await TcpProxy.start(hostPort(await amqpUrl(), 5672));
  const redis = await TcpProxy.start(hostPort(await redisUrl(), 6379));
  cleanups.push(
    () => rabbit.close(),
    () => redis.close(),
  );
  const llm = await FakeOpenAi.start();
  cleanups.push(() => llm.close());
  const sb = await startSwitchboard({
    mode: 'distributed',
    namespace,
    env: {
      OPENAI_API_KEY: 'sk-fault',
      OPENAI_BASE_URL: llm.baseURL,
      AMQP_URL: `amqp://guest:guest@127.0.0.1:${rabbit.port}`,
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      LOG_LEVEL: 'info',
    },
  });
  cleanups.push(() => sb.stop());
  return { sb, llm, rabbit, redis };
}

function hostPort(url: string, fallback: number): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || fallback) };
}

/** POSTs tasks with at most `concurrency` requests open at once; returns their ids in order. */
async function postMany(sb: Harness, count: number, concurrency: number, onPosted?: (n: number) => void): Promise<string[]> {
  const ids: string[] = new Array<string>(count);
  let next = 0;
  let posted = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const response = await sb.request('alice', 'POST', '/v1/tasks', { text: `task ${i}`, conversation: `conv-${i % 50}` });
        expect(response.status).toBe(202);
        ids[i] = ((await response.json()) as { taskId: string }).taskId;
        onPosted?.(++posted);
      }
    }),
  );
  return ids;
}

describe('faults on the way to RabbitMQ and Redis', () => {
  it('the RabbitMQ connection cut while 1,000 tasks flow: every task completes with exactly one reply', async () => {
    const { sb, rabbit } = await behindProxies();
    let cut: Promise<void> | undefined;
    const ids = await postMany(sb, 1000, 40, (n) => {
      if (n === 300) cut = rabbit.cut(500);
    });
    await cut;
    for (const id of ids) {
      const view = await sb.waitForTask('alice', id, 30_000);
      expect(view.status).toBe('done');
      expect(view.replies).toHaveLength(1);
    }
    expect(sb.logs.join('')).toMatch(/reconnect/i);
  }, 120_000);

  it('the Redis connection cut while a worker runs: work waits, then completes; nothing crashes', async () => {
    const { sb, llm, redis } = await behindProxies();
    llm.respond((request) => ({ text: `done: ${request.body.messages.at(-1)?.content ?? ''}`, delayMs: 200 }));
    const ids = await postMany(sb, 50, 10);
    await redis.cut(1500);
    for (const id of ids) {
      const view = await sb.waitForTask('alice', id, 30_000);
      expect(view.status).toBe('done');
      expect(view.replies).toHaveLength(1);
    }
    expect((await fetch(`${sb.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${sb.url}/readyz`)).status).toBe(200);
  }, 60_000);
});
