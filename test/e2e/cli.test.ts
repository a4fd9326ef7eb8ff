import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAi } from '../fakes/fake-openai.ts';

const BIN = path.resolve('bin/switchboard.js');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly output: () => string;
  readonly exit: Promise<number | null>;
}

/** Runs `switchboard start` as a user would, and waits for its "started" log line. */
async function startCli(env: Record<string, string>, args = ['start']): Promise<Started> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exit;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start line in 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      const match = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', check);
    void exit.then((code) => reject(new Error(`exited with ${code}:\n${out}`)));
  });
  return { child, url, output: () => out, exit };
}

describe('the switchboard command', () => {
  it('serves tasks and exits 0 on SIGTERM after finishing the one in flight', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-cli-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const llm = await FakeOpenAi.start();
    cleanups.push(() => llm.close());
    llm.respond(() => ({ text: 'finished despite SIGTERM', delayMs: 500 }));

    const sb = await startCli({
      HTTP_PORT: '0',
      DATA_DIR: dataDir,
      API_KEYS: 'cli:cli-secret-1234',
      OPENAI_API_KEY: 'sk-cli',
      OPENAI_BASE_URL: llm.baseURL,
    });
    const post = await fetch(`${sb.url}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: 'Bearer cli-secret-1234', 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hi' }),
    });
    expect(post.status).toBe(202);
    await expect.poll(() => llm.requests.length).toBe(1);
    sb.child.kill('SIGTERM');
    expect(await sb.exit).toBe(0);
    expect(sb.output()).toContain('"msg":"stopped"');

    // The answer that was in flight at SIGTERM was finished and kept.
    const again = await startCli({ HTTP_PORT: '0', DATA_DIR: dataDir, API_KEYS: 'cli:cli-secret-1234' });
    const { taskId } = (await post.json()) as { taskId: string };
    const view = (await (await fetch(`${again.url}/v1/tasks/${taskId}`, { headers: { authorization: 'Bearer cli-secret-1234' } })).json()) as {
      status: string;
      replies: { text: string }[];
    };
    expect(view.status).toBe('done');
    expect(view.replies[0]?.text).toBe('finished despite SIGTERM');
    again.child.kill('SIGINT');
    expect(await again.exit).toBe(0);
  });

  it('stops at start-up with a message that names a bad variable', async () => {
    const child = spawn(process.execPath, [BIN, 'start'], { env: { PATH: process.env.PATH ?? '', HTTP_PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(err).toContain('HTTP_PORT');
  });

  it('refuses an unknown role', async () => {
    const child = spawn(process.execPath, [BIN, 'start', '--role', 'juggler'], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    expect(await new Promise((resolve) => child.on('exit', resolve))).toBe(1);
    expect(err).toContain('unknown role "juggler"');
  });
});
