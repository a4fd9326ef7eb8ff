import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeGitHub } from '../fakes/fake-github.ts';
import { FakeOpenAi, echo, toolResults } from '../fakes/fake-openai.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

const TOKEN = 'ghp_fakeTokenForTests0123456789';

describe.each(MODES)('%s mode: the plugins that ship', (mode) => {
  let llm: FakeOpenAi;
  let github: FakeGitHub;
  let sb: Harness;

  beforeAll(async () => {
    llm = await FakeOpenAi.start();
    github = await FakeGitHub.start();
    sb = await startSwitchboard({
      mode,
      env: {
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: llm.baseURL,
        GITHUB_API_URL: github.baseURL,
        SECRET_KEY: 'shipped-plugins-secret-key',
      },
    });
  });
  afterAll(async () => {
    await sb.stop();
    await github.close();
    await llm.close();
  });

  it('github: create_issue waits for /confirm, then the fake GitHub receives the issue exactly once', async () => {
    await sb.run('alice', { text: `/env GITHUB_TOKEN=${TOKEN}` });
    llm.requests.length = 0;
    llm.respond((request) =>
      request.body.messages.some((m) => m.role === 'tool')
        ? { text: `Created: ${toolResults(request)[0]?.content ?? ''}` }
        : { toolCalls: [{ name: 'create_issue', arguments: { repo: 'acme/app', title: 'Login is broken', body: 'Steps: …' } }] },
    );
    const taskId = await sb.post('alice', { text: 'file a bug: login is broken' });
    const waiting = await sb.waitForStatus('alice', taskId, 'waiting');
    expect(waiting.confirmation?.tools).toEqual([
      { name: 'create_issue', args: { repo: 'acme/app', title: 'Login is broken', body: 'Steps: …' } },
    ]);
    expect(github.issues).toHaveLength(0);

    const approve = await sb.request('alice', 'POST', `/v1/confirmations/${waiting.confirmation?.formId ?? ''}`, { decision: 'approve' });
    expect(approve.status).toBe(200);
    const done = await sb.waitForTask('alice', taskId);
    expect(done.status).toBe('done');
    expect(github.issues).toEqual([
      expect.objectContaining({ owner: 'acme', repo: 'app', title: 'Login is broken', body: 'Steps: …', authorization: `Bearer ${TOKEN}` }),
    ]);
    expect(done.replies.at(-1)?.text).toMatch(/Created: .*"number":1.*issues\/1/);
    expect(JSON.stringify(llm.requests)).not.toContain(TOKEN);
    expect(sb.logs.join('')).not.toContain(TOKEN);
  });

  it('reminder: set before a restart, it fires after it', async () => {
    llm.respond(echo);
    const set = await sb.run('bob', { text: '/remind 2s stretch your legs' });
    expect(set.status).toBe('done');
    expect(set.replies[0]?.text).toMatch(/stretch your legs/);
    const listed = await sb.run('bob', { text: '/reminders' });
    expect(listed.replies[0]?.text).toContain('stretch your legs');

    sb = await sb.restart();
    await expect
      .poll(async () => JSON.stringify(await (await sb.request('bob', 'GET', '/v1/messages')).json()), { timeout: 15_000, interval: 200 })
      .toMatch(/echo: Scheduled reminder.*stretch your legs/);
    // It fired once: one chain, one reply.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const inbox = (await (await sb.request('bob', 'GET', '/v1/messages')).json()) as { messages: { text: string }[] };
    expect(inbox.messages.filter((m) => m.text.includes('stretch your legs'))).toHaveLength(1);
  });
});
