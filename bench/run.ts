/**
 * `npm run bench`: end-to-end throughput and latency of Switchboard on RabbitMQ and Redis, each
 * printed beside a raw amqplib baseline measured in the same run. The last line is one JSON object.
 * Needs RabbitMQ and Redis (AMQP_URL / REDIS_URL, default localhost). Not a test.
 */
import { readFileSync } from 'node:fs';
import { FakeOpenAi } from '../test/fakes/fake-openai.ts';
import { spawnSwitchboard } from '../test/helpers/process.ts';
import { freshNamespace, removeNamespace } from './namespaces.ts';
import { rawAmqpBaseline } from './raw-amqp.ts';
import { LOAD, log } from './settings.ts';
import { benchEnv, driveTasks, measureFastPath, startBenchApp } from './switchboard-path.ts';
import type { Throughput } from './stats.ts';

const { amqpUrl: AMQP, redisUrl: REDIS, count: COUNT, warmup: WARMUP, concurrency: CONCURRENCY } = LOAD;

async function slowLlm(): Promise<{
  tasksPerSecond: number;
  maxChainsInFlight: number;
  workerPeakRssMb: number;
  p50Ms: number;
  p99Ms: number;
}> {
  const namespace = freshNamespace();
  const llm = await FakeOpenAi.start();
  llm.respond(() => ({ text: 'slow answer', delayMs: 1000 }));
  const metricsPort = String(20_000 + Math.floor(Math.random() * 20_000));
  const env = benchEnv({ amqpUrl: AMQP, redisUrl: REDIS, namespace, llmBaseUrl: llm.baseURL });
  const app = await startBenchApp(env, ['api', 'sender:http']);
  const worker = await spawnSwitchboard(
    { ...env, METRICS_PORT: metricsPort, LOG_LEVEL: 'info', NODE_OPTIONS: '--max-semi-space-size=64' },
    ['start', '--role', 'worker'],
  );
  let maxInFlight = 0;
  const poll = setInterval(() => {
    fetch(`http://127.0.0.1:${metricsPort}/metrics`)
      .then((r) => r.text())
      .then((text) => {
        const value = Number(/^switchboard_chains_in_flight (\d+)/m.exec(text)?.[1] ?? 0);
        maxInFlight = Math.max(maxInFlight, value);
      })
      .catch(() => undefined);
  }, 100);
  try {
    const tasks = [];
    for (let m = 0; m < 10; m++) for (let c = 0; c < 200; c++) tasks.push({ text: `c${c} m${m}`, conversation: `c${c}` });
    // Warmed up, as (a) and (b) are (they with 2,000 tasks), with one message per conversation: the
    // most chains in flight and the peak RSS cover it too. Cold, the first requests on 200
    // new connections to a cold API overtook each other, and a conversation whose first message
    // landed behind a shard's prefetch window of later ones started one or more LLM calls late.
    const warmup = Array.from({ length: 200 }, (_, c) => ({ text: `c${c} warm-up`, conversation: `c${c}` }));
    const result = await driveTasks(app.url ?? '', { redisUrl: REDIS, namespace }, { warmup, tasks, concurrency: 200 });
    const status = readFileSync(`/proc/${worker.child.pid}/status`, 'utf8');
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return {
      tasksPerSecond: result.perSecond,
      maxChainsInFlight: maxInFlight,
      workerPeakRssMb: Math.round(hwmKb / 1024),
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
    };
  } finally {
    clearInterval(poll);
    await worker.kill('SIGTERM');
    await app.stop();
    await llm.close();
    await removeNamespace(namespace);
  }
}

/**
 * Two rounds of raw, (a) and (b), each side counting its better round. RabbitMQ is faster later in
 * a run (the raw baseline's second round was 15–50% above its first), so every side gets the same
 * number of tries at the same points of the run.
 */
const rounds: { raw: Throughput; command: Throughput; fast: Throughput }[] = [];
for (let round = 1; round <= 2; round++) {
  const raw = await rawAmqpBaseline(AMQP, COUNT, CONCURRENCY, WARMUP);
  log(`round ${round}: raw amqplib baseline ${raw.perSecond} msg/s, p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms`);
  const command = await measureFastPath('command', LOAD);
  log(`round ${round}: (a) command path     ${command.perSecond} tasks/s, p50 ${command.p50Ms} ms, p99 ${command.p99Ms} ms`);
  const fast = await measureFastPath('llm', LOAD);
  log(`round ${round}: (b) instant fake LLM ${fast.perSecond} tasks/s, p50 ${fast.p50Ms} ms, p99 ${fast.p99Ms} ms`);
  rounds.push({ raw, command, fast });
}
const best = (pick: (round: (typeof rounds)[number]) => Throughput): Throughput =>
  rounds.map(pick).reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
const baseline = best((r) => r.raw).perSecond;
const command = best((r) => r.command);
const fast = best((r) => r.fast);
log(`raw amqplib baseline: ${baseline} msg/s (the better of two rounds, as for (a) and (b))`);
log(`(a) command path:     ${command.perSecond} tasks/s, p50 ${command.p50Ms} ms, p99 ${command.p99Ms} ms`);
log(`(b) instant fake LLM: ${fast.perSecond} tasks/s, p50 ${fast.p50Ms} ms, p99 ${fast.p99Ms} ms`);
const slow = await slowLlm();
log(
  `(c) 1 s fake LLM, 2,000 tasks / 200 conversations, one worker: ${slow.tasksPerSecond} tasks/s, up to ${slow.maxChainsInFlight} chains in flight, worker peak RSS ${slow.workerPeakRssMb} MB`,
);
log(
  JSON.stringify({
    rawMessagesPerSecond: baseline,
    commandPathTasksPerSecond: command.perSecond,
    commandPathP50Ms: command.p50Ms,
    commandPathP99Ms: command.p99Ms,
    llmPathTasksPerSecond: fast.perSecond,
    llmPathP50Ms: fast.p50Ms,
    llmPathP99Ms: fast.p99Ms,
    commandPathRatio: Math.round((command.perSecond / baseline) * 1000) / 1000,
    llmPathRatio: Math.round((fast.perSecond / baseline) * 1000) / 1000,
    /** Every round, in order: the figures above are the better of each. */
    rounds: rounds.map((r) => ({
      raw: r.raw.perSecond,
      command: r.command.perSecond,
      commandP50Ms: r.command.p50Ms,
      commandRatio: Math.round((r.command.perSecond / r.raw.perSecond) * 1000) / 1000,
      llm: r.fast.perSecond,
    })),
    slowLlmTasksPerSecond: slow.tasksPerSecond,
    slowLlmMaxChainsInFlight: slow.maxChainsInFlight,
    workerPeakRssMb: slow.workerPeakRssMb,
  }),
);
process.exit(0);
