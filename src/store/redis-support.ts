import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { withTimeout } from '../core/timing.ts';

/** Small helpers of the Redis store: Lua scripts from files, timeouts, error scrubbing. */

export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** ioredis puts the command with its arguments (our values) on errors; keep only its name. */
export function scrub(err: unknown): unknown {
  if (err instanceof Error && 'command' in err) {
    const command = (err as { command?: { name?: unknown } }).command;
    (err as { command?: unknown }).command = { name: command?.name };
  }
  return err;
}

export async function quit(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  try {
    await withTimeout(redis.quit(), timeoutMs, 'quit');
  } catch {
    // Unreachable or slow: drop the connection below.
  } finally {
    redis.disconnect();
  }
}

/** host:port of a Redis URL, without credentials. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return '(unparsable url)';
  }
}

export function readPackageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const version = (pkg as { version?: unknown }).version;
  if (typeof version !== 'string') throw new Error('package.json has no version');
  return version;
}

export function loadScripts(version: string): { command: string; numberOfKeys: number; lua: string }[] {
  const dir = new URL('./lua/', import.meta.url);
  return readdirSync(dir)
    .filter((file) => file.endsWith('.lua'))
    .map((file) => {
      const match = /^(.+)-(\d+)\.lua$/.exec(file);
      if (match?.[1] === undefined || match[2] === undefined) throw new Error(`Lua script ${file} is not named <name>-<numKeys>.lua`);
      // The version line makes the SHA differ per release, so deployed versions never share a script.
      const lua = `-- switchboard ${version}\n${readFileSync(new URL(file, dir), 'utf8')}`;
      return { command: `${match[1]}:${version}`, numberOfKeys: Number(match[2]), lua };
    });
}
