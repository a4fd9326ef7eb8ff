/**
 * `npm run bench:ceiling`: how much of the raw amqplib baseline the command path's own stack can
 * reach on this machine, and how close Switchboard is to it. Each round measures, in this order,
 * the raw baseline, (a) the command path, and the same path written by hand with the same
 * libraries and the same broker and store work per task (bench/hand-written-path.ts). The last
 * line is one JSON object. Needs RabbitMQ and Redis (AMQP_URL / REDIS_URL, default localhost).
 */
import { startSwitchboard } from '../test/helpers/switchboard.ts';
import { describeCpu, withCpu, type CpuPerUnit } from './cpu-usage.ts';
import { startHandWrittenPipeline, type HandWrittenPipeline } from './hand-written-path.ts';
import { freshNamespace, removeNamespace } from './namespaces.ts';
import { rawAmqpBaseline } from './raw-amqp.ts';
import { LOAD, log } from './settings.ts';
import type { Throughput } from './stats.ts';
import { BENCH_KEY, driveLoad, measureFastPath } from './switchboard-path.ts';

const { amqpUrl: AMQP, redisUrl: REDIS, count: COUNT, warmup: WARMUP, concurrency: CONCURRENCY } = LOAD;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** /help's reply as Switchboard sends it, so the hand-written path moves messages of the same size. */
async function helpReply(): Promise<string> {
  const harness = await startSwitchboard({ mode: 'distributed', env: { LOG_LEVEL: 'warn' } });
  try {
    const task = await harness.run('alice', { text: '/help' });
    const text = task.replies[0]?.text;
    if (task.status !== 'done' || text === undefined) throw new Error(`/help ended ${task.status} without a reply`);
    return text;
  } finally {
    await harness.stop();
  }
}

async function handWrittenPath(replyText: string): Promise<Throughput> {
  const namespace = freshNamespace();
  let pipeline: HandWrittenPipeline | undefined;
  try {
    pipeline = await startHandWrittenPipeline({ amqpUrl: AMQP, redisUrl: REDIS, namespace, apiKey: BENCH_KEY, replyText });
    return await driveLoad(pipeline.url, namespace, LOAD, () => '/help');
  } finally {
    await pipeline?.stop();
    await removeNamespace(namespace);
  }
}

const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000;

const replyText = await helpReply();
/** Every message or task a measurement sends, warm-up included: what its CPU reading covers. */
const UNITS = WARMUP + COUNT;
const rounds: {
  raw: number;
  command: number;
  handWritten: number;
  /** µs of CPU per task of each part; for the raw baseline, per message. */
  cpuPerTaskUs: Record<'raw' | 'command' | 'handWritten', CpuPerUnit>;
}[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const raw = await withCpu(UNITS, () => rawAmqpBaseline(AMQP, COUNT, CONCURRENCY, WARMUP));
  log(`round ${round}: raw amqplib baseline ${raw.result.perSecond} msg/s, p50 ${raw.result.p50Ms} ms`);
  log(`  CPU per message: ${describeCpu(raw.cpu)}`);
  const command = await withCpu(UNITS, () => measureFastPath('command', LOAD));
  log(
    `round ${round}: (a) command path   ${command.result.perSecond} tasks/s, p50 ${command.result.p50Ms} ms (${ratio(command.result.perSecond, raw.result.perSecond)} of raw)`,
  );
  log(`  CPU per task: ${describeCpu(command.cpu)}`);
  const hand = await withCpu(UNITS, () => handWrittenPath(replyText));
  log(
    `round ${round}: hand-written path  ${hand.result.perSecond} tasks/s, p50 ${hand.result.p50Ms} ms (${ratio(hand.result.perSecond, raw.result.perSecond)} of raw)`,
  );
  log(`  CPU per task: ${describeCpu(hand.cpu)}`);
  rounds.push({
    raw: raw.result.perSecond,
    command: command.result.perSecond,
    handWritten: hand.result.perSecond,
    cpuPerTaskUs: { raw: raw.cpu, command: command.cpu, handWritten: hand.cpu },
  });
}
const mean = (pick: (round: (typeof rounds)[number]) => number): number =>
  Math.round((rounds.reduce((sum, round) => sum + pick(round), 0) / rounds.length) * 10) / 10;
const raw = mean((r) => r.raw);
const command = mean((r) => r.command);
const handWritten = mean((r) => r.handWritten);
log(`means over ${ROUNDS} rounds: raw ${raw} msg/s, (a) ${command} tasks/s, hand-written ${handWritten} tasks/s`);
log(
  JSON.stringify({
    rawMessagesPerSecond: raw,
    commandPathTasksPerSecond: command,
    handWrittenTasksPerSecond: handWritten,
    commandPathRatio: ratio(command, raw),
    handWrittenRatio: ratio(handWritten, raw),
    /** (a) as a share of the hand-written path: how close Switchboard's own layers are to the stack's ceiling. */
    commandPathOfHandWritten: ratio(command, handWritten),
    rounds: rounds.map((r) => ({ ...r, commandRatio: ratio(r.command, r.raw), handWrittenRatio: ratio(r.handWritten, r.raw) })),
  }),
);
process.exit(0);
