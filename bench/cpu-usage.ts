/**
 * Where a bench round's CPU goes, from Linux's /proc: RabbitMQ's (every `beam.smp` process) and
 * Redis's (every `redis-server`) on this machine, the event loop's thread of this process, and
 * the rest of this process (V8's helper threads and the load generator's thread). Elsewhere, or
 * with the services on other machines, the missing parts are left out.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export type CpuPart = 'rabbitmq' | 'redis' | 'eventLoop' | 'restOfProcess';

/** Seconds of CPU (user and system) each part has used so far. */
export type CpuReading = Partial<Record<CpuPart, number>>;

/** Microseconds of CPU each part used per unit of work (a task, or a message of the raw baseline). */
export type CpuPerUnit = Partial<Record<CpuPart, number>>;

const TICKS_PER_SECOND = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a /proc stat file, in seconds; undefined when it cannot be read. */
function cpuSeconds(statPath: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(statPath, 'utf8');
  } catch {
    return undefined;
  }
  // The command name in parentheses may hold spaces and parentheses: the fields after its last
  // ") " are space-separated, utime and stime the 12th and 13th of them.
  const fields = text.slice(text.lastIndexOf(') ') + 2).split(' ');
  const user = Number(fields[11]);
  const system = Number(fields[12]);
  return Number.isFinite(user) && Number.isFinite(system) ? (user + system) / TICKS_PER_SECOND : undefined;
}

/** The processes of this machine with each of `names` as their command name. */
function processesNamed(names: readonly string[]): Map<string, string[]> {
  const found = new Map<string, string[]>(names.map((name) => [name, []]));
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    // no /proc
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      found.get(readFileSync(`/proc/${pid}/comm`, 'utf8').trim())?.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function sumOf(pids: readonly string[]): number | undefined {
  const seconds = pids.map((pid) => cpuSeconds(`/proc/${pid}/stat`)).filter((s) => s !== undefined);
  return seconds.length === 0 ? undefined : seconds.reduce((a, b) => a + b, 0);
}

/** Reads every part now. The process's own figure includes its threads that have ended. */
export function readCpu(): CpuReading {
  const reading: CpuReading = {};
  const services = processesNamed(['beam.smp', 'redis-server']);
  const rabbitmq = sumOf(services.get('beam.smp') ?? []);
  const redis = sumOf(services.get('redis-server') ?? []);
  const eventLoop = cpuSeconds(`/proc/self/task/${process.pid}/stat`);
  const whole = cpuSeconds('/proc/self/stat');
  if (rabbitmq !== undefined) reading.rabbitmq = rabbitmq;
  if (redis !== undefined) reading.redis = redis;
  if (eventLoop !== undefined && whole !== undefined) {
    reading.eventLoop = eventLoop;
    reading.restOfProcess = whole - eventLoop;
  }
  return reading;
}

/** Microseconds of CPU per unit of work (task or message) each part used between two readings. */
export function cpuPerUnit(before: CpuReading, after: CpuReading, units: number): CpuPerUnit {
  const perUnit: CpuPerUnit = {};
  for (const part of Object.keys(after) as CpuPart[]) {
    const start = before[part];
    const end = after[part];
    if (start !== undefined && end !== undefined) perUnit[part] = Math.round(((end - start) * 1e6) / units);
  }
  return perUnit;
}

/** "RabbitMQ 410 µs, Redis 60 µs, …" for a log line; empty when nothing could be read. */
export function describeCpu(perUnit: CpuPerUnit): string {
  const names: Record<CpuPart, string> = {
    rabbitmq: 'RabbitMQ',
    redis: 'Redis',
    eventLoop: 'event loop',
    restOfProcess: 'rest of the process',
  };
  return (Object.keys(perUnit) as CpuPart[]).map((part) => `${names[part]} ${perUnit[part]} µs`).join(', ');
}

/** Runs `measure` and reports, beside its result, the CPU per unit of the `units` it sends. */
export async function withCpu<T>(units: number, measure: () => Promise<T>): Promise<{ result: T; cpu: CpuPerUnit }> {
  const before = readCpu();
  const result = await measure();
  return { result, cpu: cpuPerUnit(before, readCpu(), units) };
}
