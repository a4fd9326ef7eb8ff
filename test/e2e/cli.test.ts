import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAi } from '../fakes/fake-openai.ts';
import { runSwitchboard, spawnSwitchboard } from '../helpers/process.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the switchboard command', () => {
  it('serves tasks and exits 0 on SIGTERM after finishing the one in flight', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-cli-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const llm = await FakeOpenAi.start();
    cleanups.push(() => llm.close());
    llm.respond(() => ({ text: 'finished despite SIGTERM', delayMs: 500 }));

    const env = { HTTP_PORT: '0', DATA_DIR: dataDir, API_KEYS: 'cli:cli-secret-1234' };
    const sb = await spawnSwitchboard({ ...env, OPENAI_API_KEY: 'sk-cli', OPENAI_BASE_URL: llm.baseURL });
    cleanups.push(() => sb.kill('SIGKILL'));
    const post = await fetch(`${sb.url}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: 'Bearer cli-secret-1234', 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hi' }),
    });
    expect(post.status).toBe(202);
    await expect.poll(() => llm.requests.length).toBe(1);
    expect(await sb.kill('SIGTERM')).toBe(0);
    expect(sb.output()).toContain('"msg":"stopped"');

    // The answer that was in flight at SIGTERM was finished and kept.
    const again = await spawnSwitchboard(env);
    cleanups.push(() => again.kill('SIGKILL'));
    const { taskId } = (await post.json()) as { taskId: string };
    const response = await fetch(`${again.url}/v1/tasks/${taskId}`, { headers: { authorization: 'Bearer cli-secret-1234' } });
    const view = (await response.json()) as { status: string; replies: { text: string }[] };
    expect(view.status).toBe('done');
    expect(view.replies[0]?.text).toBe('finished despite SIGTERM');
    expect(await again.kill('SIGINT')).toBe(0);
  });

  it('stops at start-up with a message that names a bad variable', async () => {
    const { code, stderr } = await runSwitchboard({ HTTP_PORT: 'eighty' }, ['start']);
    expect(code).toBe(1);
    expect(stderr).toContain('HTTP_PORT');
  });

  it('refuses an unknown role', async () => {
    const { code, stderr } = await runSwitchboard({}, ['start', '--role', 'juggler']);
    expect(code).toBe(1);
    expect(stderr).toContain('unknown role "juggler"');
  });

  it('refuses a single role without RabbitMQ and Redis, and half of distributed mode', async () => {
    const single = await runSwitchboard({}, ['start', '--role', 'worker']);
    expect(single.code).toBe(1);
    expect(single.stderr).toContain('use --role all');
    const half = await runSwitchboard({ AMQP_URL: 'amqp://127.0.0.1:5672' }, ['start']);
    expect(half.code).toBe(1);
    expect(half.stderr).toContain('REDIS_URL');
  });
});
