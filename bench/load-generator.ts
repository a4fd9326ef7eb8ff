/**
 * The bench's clients, run on their own thread (see `driveTasks`): they POST tasks to the API and
 * hear each task's completion on the store's task-events channel, as an API client following its
 * tasks would. On its own thread the generator's CPU is not taken from the event loop of the
 * roles it measures (a real load comes from other machines; this one shares two cores).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { createLogger } from '../src/core/logger.ts';
import { TASK_EVENTS_CHANNEL, type TaskNotice } from '../src/platforms/http/tasks.ts';
import { RedisStore } from '../src/store/redis-store.ts';

export interface LoadJob {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  /** Sent first and not measured: the JIT of both sides warms up, and RabbitMQ's queues settle. */
  readonly warmup: readonly BenchTask[];
  /** Measured. */
  readonly tasks: readonly BenchTask[];
  /** Requests in flight. */
  readonly concurrency: number;
}

export interface BenchTask {
  readonly text: string;
  readonly conversation: string;
}

export interface LoadResult {
  readonly latenciesMs: number[];
  readonly seconds: number;
}

async function run(job: LoadJob): Promise<LoadResult> {
  const store = await RedisStore.open({ url: job.redisUrl, keyPrefix: job.keyPrefix, logger: createLogger('warn') });
  const waiting = new Map<string, (at: number) => void>();
  const early = new Map<string, number>();
  // Our own notices: JSON.parse is enough here, the generator is not a boundary of the system.
  const stopListening = await store.listen(TASK_EVENTS_CHANNEL, (message) => {
    const notice = JSON.parse(message) as Pick<TaskNotice, 'taskId' | 'status'>;
    if (notice.status !== 'done' && notice.status !== 'failed') return;
    const at = performance.now();
    const resolve = waiting.get(notice.taskId);
    if (resolve === undefined) early.set(notice.taskId, at);
    else {
      waiting.delete(notice.taskId);
      resolve(at);
    }
  });
  const completion = (taskId: string): Promise<number> => {
    const at = early.get(taskId);
    if (at === undefined) return new Promise((resolve) => waiting.set(taskId, resolve));
    early.delete(taskId);
    return Promise.resolve(at);
  };
  // undici's request API on keep-alive connections: the cheapest well-kept client (fetch, through
  // web streams, and node:http each cost more CPU than the API they drove).
  const pool = new Pool(job.apiUrl, { connections: job.concurrency });
  const headers = { authorization: `Bearer ${job.apiKey}`, 'content-type': 'application/json' };
  /** Sends `tasks` with `job.concurrency` requests in flight; resolves when every one is done. */
  const drive = async (tasks: readonly BenchTask[]): Promise<LoadResult> => {
    const latenciesMs: number[] = [];
    const completions: Promise<void>[] = [];
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (next < tasks.length) {
          const task = tasks[next++];
          if (!task) break;
          const sentAt = performance.now();
          const response = await pool.request({ path: '/v1/tasks', method: 'POST', headers, body: JSON.stringify(task) });
          const text = await response.body.text();
          if (response.statusCode !== 202) throw new Error(`POST answered ${response.statusCode}: ${text}`);
          const { taskId } = JSON.parse(text) as { taskId: string };
          completions.push(completion(taskId).then((at) => void latenciesMs.push(at - sentAt)));
        }
      }),
    );
    await Promise.all(completions);
    return { latenciesMs, seconds: (performance.now() - started) / 1000 };
  };
  try {
    await drive(job.warmup);
    return await drive(job.tasks);
  } finally {
    await pool.close();
    await stopListening();
    await store.close();
  }
}

if (parentPort !== null) {
  const port = parentPort;
  run(workerData as LoadJob).then(
    (result) => port.postMessage({ ok: true, result }),
    (err: unknown) => port.postMessage({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  );
}
