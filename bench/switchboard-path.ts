import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { startApp, type RunningApp } from '../src/app.ts';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import type { RoleName } from '../src/roles.ts';
import { TASK_EVENTS_CHANNEL, TaskNoticeSchema } from '../src/platforms/http/tasks.ts';
import type { Store } from '../src/store/store.ts';
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

/** Resolves each task's completion when the http sender records its final event (the task-events channel). */
export async function taskCompletions(store: Store): Promise<{ waitFor(taskId: string): Promise<number>; close(): Promise<void> }> {
  const waiting = new Map<string, (at: number) => void>();
  const early = new Map<string, number>();
  const stop = await store.listen(TASK_EVENTS_CHANNEL, (message) => {
    const notice = TaskNoticeSchema.parse(JSON.parse(message));
    if (notice.status !== 'done' && notice.status !== 'failed') return;
    const at = performance.now();
    const resolve = waiting.get(notice.taskId);
    if (resolve) resolve(at);
    else early.set(notice.taskId, at);
  });
  return {
    waitFor(taskId) {
      const at = early.get(taskId);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => waiting.set(taskId, resolve));
    },
    close: stop,
  };
}

/**
 * End-to-end tasks through api → RabbitMQ → worker → RabbitMQ → sender:http: from the POST to the
 * moment the http sender has recorded the final reply on the task (what GET would now return).
 */
export async function driveTasks(
  apiUrl: string,
  store: Store,
  tasks: readonly { text: string; conversation: string }[],
  concurrency: number,
): Promise<Throughput & { latenciesMs: number[] }> {
  const sink = await taskCompletions(store);
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
        const response = await postJson(`${apiUrl}/v1/tasks`, task, { authorization: `Bearer ${BENCH_KEY}` });
        if (response.status !== 202) throw new Error(`POST answered ${response.status}: ${response.body}`);
        const { taskId } = JSON.parse(response.body) as { taskId: string };
        completions.push(sink.waitFor(taskId).then((at) => void latencies.push(at - sentAt)));
      }
    }),
  );
  await Promise.all(completions);
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  return { ...summarise(latencies, seconds), latenciesMs: latencies };
}

/**
 * The load generator's client: node:http on keep-alive sockets. (fetch, through undici and web
 * streams, cost the generator more CPU than the API it drives, on the same two cores.)
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function postJson(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

export function uniqueNamespace(): string {
  return `bench-${randomUUID().slice(0, 8)}`;
}
