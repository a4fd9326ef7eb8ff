import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAi, lastUserText } from '../fakes/fake-openai.ts';
import { MODES, startSwitchboard, type ClientName, type Harness, type HarnessOptions } from '../helpers/switchboard.ts';

const SECRET_KEY = 'test-secret-key-0123456789';

describe.each(MODES)('providers and quotas, %s mode', (mode) => {
  let primary: FakeOpenAi;
  let second: FakeOpenAi;
  let dir: string;
  const harnesses: Harness[] = [];

  beforeAll(async () => {
    [primary, second] = await Promise.all([FakeOpenAi.start(), FakeOpenAi.start()]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-models-'));
  });
  afterAll(async () => {
    await Promise.all([primary.close(), second.close(), rm(dir, { recursive: true, force: true })]);
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.stop()));
    for (const fake of [primary, second]) {
      fake.requests.length = 0;
      fake.respond((request) => ({ text: `echo: ${lastUserText(request)}` }));
    }
  });

  async function start(env: Record<string, string>, options: Omit<HarnessOptions, 'mode' | 'env'> = {}): Promise<Harness> {
    const sb = await startSwitchboard({
      mode,
      env: { OPENAI_API_KEY: 'sk-server', OPENAI_BASE_URL: primary.baseURL, OPENAI_MODEL: 'main-model', SECRET_KEY, ...env },
      ...options,
    });
    harnesses.push(sb);
    return sb;
  }

  async function say(sb: Harness, client: ClientName, text: string, conversation?: string): Promise<{ status: string; text: string }> {
    const view = await sb.run(client, { text, ...(conversation ? { conversation } : {}) });
    return { status: view.status, text: view.replies.map((r) => r.text).join('\n') };
  }

  it('50 concurrent requests against a limit of 10: exactly 10 reach the LLM, the rest are told when it resets', async () => {
    primary.respond((request) => ({ text: `echo: ${lastUserText(request)}`, delayMs: 50 }));
    const sb = await start({ QUOTA_PUBLIC_REQUESTS_PER_DAY: '10' });
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => sb.post('alice', { text: `question ${i}`, conversation: `c${i}` })));
    const views = await Promise.all(ids.map((id) => sb.waitForTask('alice', id, 20_000)));

    expect(primary.requests).toHaveLength(10);
    expect(views.filter((v) => v.status === 'done')).toHaveLength(10);
    const refused = views.filter((v) => v.status === 'failed');
    expect(refused).toHaveLength(40);
    for (const view of refused) {
      expect(view.replies[0]?.text).toContain("You have used up today's allowance of 10 requests on the shared model.");
      expect(view.replies[0]?.text).toMatch(/It resets at 00:00 UTC, in \d+ h \d+ min\./);
      expect(view.error).toMatch(/^LLM_QUOTA_EXCEEDED/);
    }
    // Another user has an allowance of their own.
    expect((await say(sb, 'bob', 'me too')).text).toBe('echo: me too');
  });

  it('the day turns at 00:00 in QUOTA_TZ (an injected clock crosses midnight in Tokyo)', async () => {
    let now = new Date('2026-11-21T14:58:30Z'); // 23:58:30 in Tokyo
    const sb = await start({ QUOTA_PUBLIC_REQUESTS_PER_DAY: '1', QUOTA_TZ: 'Asia/Tokyo' }, { clock: () => now });
    expect((await say(sb, 'alice', 'first')).status).toBe('done');
    const refused = await say(sb, 'alice', 'second');
    expect(refused.status).toBe('failed');
    expect(refused.text).toContain('It resets at 00:00 Asia/Tokyo, in 2 min.');
    expect((await say(sb, 'alice', '/usage')).text).toContain(
      'Today (2026-11-21, Asia/Tokyo) on the shared model:\n• you: 1 of 1 requests',
    );

    now = new Date('2026-11-21T15:00:01Z'); // 00:00:01 on the 22nd in Tokyo, still the 21st in UTC
    expect(await say(sb, 'alice', 'third')).toEqual({ status: 'done', text: 'echo: third' });
    expect((await say(sb, 'alice', '/usage')).text).toContain(
      'Today (2026-11-22, Asia/Tokyo) on the shared model:\n• you: 1 of 1 requests',
    );
    expect(primary.requests.map(lastUserText)).toEqual(['first', 'third']);
  });

  it("a user's own key sends their requests to their backend with their key and no quota; others are unaffected", async () => {
    const sb = await start({ QUOTA_PUBLIC_REQUESTS_PER_DAY: '1' });
    const login = await say(sb, 'alice', `/login ${second.baseURL} sk-alice-own their-model`);
    expect(login.text).toContain(`Your messages now go to ${second.baseURL} with your key, model their-model`);
    expect(login.text).not.toContain('sk-alice-own');

    for (const text of ['one', 'two', 'three']) expect(await say(sb, 'alice', text)).toEqual({ status: 'done', text: `echo: ${text}` });
    expect(second.requests.map((r) => [r.authorization, r.body.model, lastUserText(r)])).toEqual([
      ['Bearer sk-alice-own', 'their-model', 'one'],
      ['Bearer sk-alice-own', 'their-model', 'two'],
      ['Bearer sk-alice-own', 'their-model', 'three'],
    ]);
    expect((await say(sb, 'alice', '/usage')).text).toContain('You use your own API key: no quota applies');

    expect(await say(sb, 'bob', 'bob here')).toEqual({ status: 'done', text: 'echo: bob here' });
    expect(primary.requests.map((r) => [r.authorization, r.body.model, lastUserText(r)])).toEqual([
      ['Bearer sk-server', 'main-model', 'bob here'],
    ]);

    // Their key stops working: they are told to log in again, and nothing falls back to the server's key.
    second.respond(() => ({ status: 401, message: 'invalid api key' }));
    const refused = await say(sb, 'alice', 'four');
    expect(refused.status).toBe('failed');
    expect(refused.text).toContain(`Your API key was refused by ${new URL(second.baseURL).host}. Send /login`);
    expect(primary.requests).toHaveLength(1);

    expect((await say(sb, 'alice', '/logout')).text).toContain('You use the shared model now.');
    expect(await say(sb, 'alice', 'five')).toEqual({ status: 'done', text: 'echo: five' });
    expect(primary.requests.at(-1)?.authorization).toBe('Bearer sk-server');
  });

  it("a pool's limits are shared by the users of its token, per person and in total", async () => {
    const file = path.join(dir, `pool-${mode}.yaml`);
    await writeFile(
      file,
      [
        'pools:',
        '  - name: school',
        '    token: school-token-123456',
        '    perUser: { requestsPerDay: 2 }',
        '    total: { requestsPerDay: 3 }',
      ].join('\n'),
    );
    const sb = await start({ MODELS_FILE: file, QUOTA_PUBLIC_REQUESTS_PER_DAY: '0' });
    expect((await say(sb, 'alice', 'before joining')).text).toContain("today's allowance of 0 requests on the shared model");
    expect((await say(sb, 'alice', '/login token wrong-token-000000')).text).toContain('That token names no pool here.');
    expect((await say(sb, 'alice', '/login token school-token-123456')).text).toContain('You joined the pool school.');
    expect((await say(sb, 'bob', '/login token school-token-123456')).text).toContain('You joined the pool school.');

    expect((await say(sb, 'alice', 'a1')).status).toBe('done');
    expect((await say(sb, 'alice', 'a2')).status).toBe('done');
    expect((await say(sb, 'alice', 'a3')).text).toContain('You have used up your pool allowance of 2 requests for today.');
    expect((await say(sb, 'bob', 'b1')).status).toBe('done');
    expect((await say(sb, 'bob', 'b2')).text).toContain('Your pool has used up its shared allowance of 3 requests for today.');
    expect(primary.requests.map(lastUserText)).toEqual(['a1', 'a2', 'b1']);

    const usage = (await say(sb, 'bob', '/usage')).text;
    expect(usage).toContain('on the pool school:');
    expect(usage).toContain('• you: 1 of 2 requests');
    expect(usage).toContain('• the whole pool: 3 of 3 requests');
  });

  it("token accounting follows the response's usage, and a token limit refuses the next call", async () => {
    primary.respond((request) => ({ text: `echo: ${lastUserText(request)}`, usage: { prompt: 70, completion: 13 } }));
    const sb = await start({ QUOTA_PUBLIC_TOKENS_PER_DAY: '150' });
    expect((await say(sb, 'alice', 'one')).status).toBe('done');
    expect((await say(sb, 'alice', '/usage')).text).toContain('• you: 1 (no limit) requests, 83 of 150 tokens');
    expect((await say(sb, 'alice', 'two')).status).toBe('done'); // 83 < 150: allowed, and it crosses the limit
    expect((await say(sb, 'alice', '/usage')).text).toContain('• you: 2 (no limit) requests, 166 of 150 tokens');
    expect((await say(sb, 'alice', 'three')).text).toContain("today's allowance of 150 tokens");
    expect(primary.requests).toHaveLength(2);
  });

  it('the fallback model answers after the primary fails; /model lists the models and picks one per chat', async () => {
    const file = path.join(dir, `models-${mode}.json`);
    await writeFile(
      file,
      JSON.stringify({
        default: 'big',
        models: [
          { name: 'big', model: 'big-v2', baseURL: primary.baseURL, apiKeyEnv: 'PRIMARY_KEY', contextSize: 128000, fallback: 'small' },
          { name: 'small', baseURL: second.baseURL, apiKeyEnv: 'SECOND_KEY', description: 'fast and cheap' },
        ],
      }),
    );
    const sb = await start({ MODELS_FILE: file, PRIMARY_KEY: 'sk-primary', SECOND_KEY: 'sk-second' });
    primary.respond(() => ({ status: 503, message: 'overloaded' }));

    expect(await say(sb, 'alice', 'hello')).toEqual({ status: 'done', text: 'echo: hello' });
    expect(primary.requests.map((r) => [r.authorization, r.body.model])).toEqual([['Bearer sk-primary', 'big-v2']]);
    expect(second.requests.map((r) => [r.authorization, r.body.model])).toEqual([['Bearer sk-second', 'small']]);

    const list = (await say(sb, 'alice', '/model')).text;
    expect(list).toContain('• big (model big-v2, 128,000 tokens of context, default) ← this chat');
    expect(list).toContain('• small — fast and cheap');
    expect((await say(sb, 'alice', '/model huge')).text).toBe('There is no model named huge. Models: big, small.');
    expect((await say(sb, 'alice', '/model small')).text).toBe('This chat now uses small.');
    expect((await say(sb, 'alice', 'again')).text).toBe('echo: again');
    expect(primary.requests).toHaveLength(1);
    expect(second.requests.at(-1)?.body.model).toBe('small');
    // Another chat keeps the default.
    await say(sb, 'bob', 'bob asks');
    expect(primary.requests.at(-1)?.body.model).toBe('big-v2');
  });

  it('/login says why it cannot: no SECRET_KEY, or arguments that are not a URL and a key', async () => {
    const sb = await start({ SECRET_KEY: '' });
    expect((await say(sb, 'alice', `/login ${second.baseURL} sk-alice-own`)).text).toBe(
      'Own keys are switched off: the operator has not set SECRET_KEY.',
    );
    expect((await say(sb, 'alice', '/login nonsense')).text).toContain('Use /login <baseURL> <apiKey> [model]');
  });
});
