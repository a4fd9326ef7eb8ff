import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { startApp, type RunningApp } from '../src/app.ts';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import type { RoleName } from '../src/roles.ts';
import { summarise, type Throughput } from './stats.ts';

export const BENCH_KEY = 'bench-secret-123456';

export interface BenchEnv {
  readonly amqpUrl: string;
  readonly redisUrl: string;
  readonly namespace: string;
  readonly llmBaseUrl?: string;
}

export function benchEnv(env: BenchEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    AMQP_URL: env.amqpUrl,
    REDIS_URL: env.redisUrl,
    BUS_NAMESPACE: env.namespace,
    REDIS_PREFIX: `${env.namespace}:`,
    API_KEYS: `bench:${BENCH_KEY}`,
    HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    ...(env.llmBaseUrl ? { OPENAI_API_KEY: 'sk-bench', OPENAI_BASE_URL: env.llmBaseUrl, LLM_MAX_RETRIES: '0' } : {}),
    ...extra,
  };
}

export async function startBenchApp(env: Record<string, string>, roles: RoleName[]): Promise<RunningApp> {
  const config = loadConfig(env);
  return startApp({ config, roles, logger: createLogger(config.logLevel) });
}

/** A callback receiver: resolves each task's completion when its final reply is POSTed back. */
export async function callbackSink(): Promise<{ url: string; waitFor(taskId: string): Promise<number>; close(): Promise<void> }> {
  const waiting = new Map<string, (at: number) => void>();
  const early = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const payload = JSON.parse(Buffer.concat(chunks).toString()) as { taskId: string; status: string };
      res.writeHead(204).end();
      if (payload.status !== 'done' && payload.status !== 'failed') return;
      const resolve = waiting.get(payload.taskId);
      if (resolve) resolve(at);
      else early.set(payload.taskId, at);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/done`,
    waitFor(taskId) {
      const at = early.get(taskId);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => waiting.set(taskId, resolve));
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * End-to-end tasks through api → RabbitMQ → worker → RabbitMQ → sender:http: from the POST to the
 * final reply arriving at the task's callback URL.
 */
export async function driveTasks(
  apiUrl: string,
  tasks: readonly { text: string; conversation: string }[],
  concurrency: number,
): Promise<Throughput & { latenciesMs: number[] }> {
  const sink = await callbackSink();
  const latencies: number[] = [];
  const completions: Promise<void>[] = [];
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) {
        const task = tasks[next++];
        if (!task) break;
        const sentAt = performance.now();
        const response = await fetch(`${apiUrl}/v1/tasks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${BENCH_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...task, callbackUrl: sink.url }),
        });
        if (response.status !== 202) throw new Error(`POST answered ${response.status}: ${await response.text()}`);
        const { taskId } = (await response.json()) as { taskId: string };
        completions.push(sink.waitFor(taskId).then((at) => void latencies.push(at - sentAt)));
      }
    }),
  );
  await Promise.all(completions);
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  return { ...summarise(latencies, seconds), latenciesMs: latencies };
}

export function uniqueNamespace(): string {
  return `bench-${randomUUID().slice(0, 8)}`;
}
