import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAi, lastUserText } from '../fakes/fake-openai.ts';
import { FakeTelegram } from '../fakes/fake-telegram.ts';
import { spawnSwitchboard } from '../helpers/process.ts';
import { uniqueName } from '../helpers/services.ts';
import { MODES, cleanupNamespace, distributedEnv } from '../helpers/switchboard.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.each(MODES)('receiver:telegram killed, %s mode', (mode) => {
  it('killed with SIGKILL after publishing and before confirming the offset: after a restart nothing is lost or answered twice', async () => {
    const [telegram, llm] = await Promise.all([FakeTelegram.start(), FakeOpenAi.start()]);
    cleanups.push(() => Promise.all([telegram.close(), llm.close()]));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-tg-crash-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const namespace = uniqueName('tgcrash');
    if (mode === 'distributed') cleanups.push(() => cleanupNamespace(namespace));
    const env = {
      ...(mode === 'distributed' ? await distributedEnv(namespace) : {}),
      DATA_DIR: dataDir,
      HTTP_PORT: '0',
      LOG_LEVEL: 'info',
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.apiRoot,
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: llm.baseURL,
      LLM_MAX_RETRIES: '0',
    };

    // The getUpdates that would confirm the first message is held, as if the process died before sending it.
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(async () => release());
    telegram.respondWith('getUpdates', async (params) => {
      if (typeof params.offset !== 'number' || params.offset <= 0) return undefined;
      await gate;
      return { result: [] };
    });

    const first = await spawnSwitchboard(env);
    cleanups.push(() => first.kill('SIGKILL'));
    const update = telegram.sendText({ chatId: 9001, text: 'before the crash' });
    await telegram.waitUntil(() => telegram.messagesTo(9001).length > 0, 15_000);
    await telegram.waitUntil(() => telegram.callsOf('getUpdates').some((c) => Number(c.params.offset) > update.update_id), 5000);
    // The embedded bus and store reach their files within about 250 ms of a change.
    await new Promise((resolve) => setTimeout(resolve, 600));
    await first.kill('SIGKILL');
    expect(telegram.confirmedOffset).toBeLessThanOrEqual(update.update_id);
    expect(telegram.pendingUpdates.map((u) => u.update_id)).toContain(update.update_id);

    telegram.respondWith('getUpdates', undefined);
    const second = await spawnSwitchboard(env);
    cleanups.push(() => second.kill('SIGKILL'));
    await telegram.waitUntil(() => telegram.confirmedOffset > update.update_id, 15_000);
    telegram.sendText({ chatId: 9001, text: 'after the restart' });
    await telegram.waitUntil(() => telegram.messagesTo(9001).length > 1, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(telegram.messagesTo(9001)).toEqual(['echo: before the crash', 'echo: after the restart']);
    expect(llm.requests.map(lastUserText).filter((text) => text === 'before the crash')).toHaveLength(1);
    expect(second.output()).toMatch(/came again after it was published: skipped/);
  });
});
