import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeBus } from '../../src/bus/envelope-bus.ts';
import { newMessageEnvelope } from '../../src/core/envelope.ts';
import { FakeOpenAi, echo, offeredTools, toolResults, type FakeAnswer, type RecordedRequest } from '../fakes/fake-openai.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

const FIXTURE_PLUGINS = path.resolve(import.meta.dirname, '../fixtures/plugins');
const SECRET = 'sk-super-secret-value-4711';

/** Answers in order: the n-th request of the test gets the n-th answer (then the last one again). */
function script(...answers: FakeAnswer[]): (request: RecordedRequest, index: number) => FakeAnswer {
  return (_request, index) => answers[Math.min(index, answers.length - 1)] as FakeAnswer;
}

interface ChainJson {
  chainId: string;
  root: ChainNodeJson;
}
interface ChainNodeJson {
  nodeId: string;
  status: string;
  kind: string;
  model?: string;
  usage?: { promptTokens: number; completionTokens: number };
  toolCalls: { id: string; name: string; args: unknown; status: string; result?: string }[];
  children: ChainNodeJson[];
}

describe.each(MODES)('%s mode: chains, plugins and /confirm', (mode) => {
  let llm: FakeOpenAi;
  let sb: Harness;

  const runs = async (tool: string): Promise<number> => Number((await sb.app.store.get(`plugin:testkit:runs:${tool}`)) ?? 0);
  const chain = async (client: 'alice' | 'bob' | 'ops', chainId: string): Promise<Response> =>
    sb.request(client, 'GET', `/v1/chains/${chainId}`);
  const decide = (client: 'alice' | 'bob', formId: string, body: Record<string, unknown>): Promise<Response> =>
    sb.request(client, 'POST', `/v1/confirmations/${formId}`, body);

  beforeAll(async () => {
    llm = await FakeOpenAi.start();
    sb = await startSwitchboard({
      mode,
      env: {
        OPENAI_API_KEY: 'sk-test-key',
        OPENAI_BASE_URL: llm.baseURL,
        OPENAI_MODEL: 'fake-model',
        PLUGINS_DIRS: FIXTURE_PLUGINS,
        PLUGIN_FAILURE_LIMIT: '2',
        CHAIN_MAX_DEPTH: '4',
        SECRET_KEY: 'test-secret-key-0123456789',
        CONFIRM_TTL: '600',
      },
    });
  });
  afterAll(async () => {
    await sb.stop();
    await llm.close();
  });
  afterEach(() => {
    llm.requests.length = 0;
    llm.respond(echo);
  });

  it('runs two parallel tool calls, then the model answers with both results in order', async () => {
    llm.respond(
      script(
        {
          toolCalls: [
            { id: 'c1', name: 'add', arguments: { a: 1, b: 2 } },
            { id: 'c2', name: 'add', arguments: { a: 30, b: 4 } },
          ],
        },
        { text: 'The sums are 3 and 34.' },
      ),
    );
    const view = await sb.run('alice', { text: 'add 1+2 and 30+4' });
    expect(view.status).toBe('done');
    expect(view.replies.map((r) => r.text)).toEqual(['The sums are 3 and 34.']);
    expect(llm.requests).toHaveLength(2);
    expect(toolResults(llm.requests[1] as RecordedRequest)).toEqual([
      { toolCallId: 'c1', content: '3' },
      { toolCallId: 'c2', content: '34' },
    ]);

    const response = await chain('alice', view.chainId);
    expect(response.status).toBe(200);
    const tree = (await response.json()) as ChainJson;
    expect(tree.root.toolCalls.map((c) => [c.name, c.status, c.result])).toEqual([
      ['add', 'ok', '3'],
      ['add', 'ok', '34'],
    ]);
    expect(tree.root.model).toBe('fake-model');
    expect(tree.root.usage).toEqual({ promptTokens: 10, completionTokens: 5 });
    expect(tree.root.children).toHaveLength(1);
    expect(tree.root.children[0]?.status).toBe('done');
    // Another user does not see it; an admin does.
    expect((await chain('bob', view.chainId)).status).toBe(404);
    expect((await chain('ops', view.chainId)).status).toBe(200);
  });

  it('ends a chain that reaches CHAIN_MAX_DEPTH with a message that says so', async () => {
    llm.respond(() => ({ toolCalls: [{ name: 'add', arguments: { a: 1, b: 1 } }] }));
    const view = await sb.run('alice', { text: 'loop forever' });
    expect(view.status).toBe('failed');
    expect(view.replies.at(-1)?.text).toContain('CHAIN_MAX_DEPTH');
    expect(llm.requests).toHaveLength(4);
  });

  it('ends a node that asks for more than TOOL_CALLS_PER_NODE calls', async () => {
    llm.respond(() => ({ toolCalls: Array.from({ length: 9 }, (_, i) => ({ name: 'add', arguments: { a: i, b: 0 } })) }));
    const before = await runs('add');
    const view = await sb.run('alice', { text: 'nine calls' });
    expect(view.status).toBe('failed');
    expect(view.replies.at(-1)?.text).toContain('TOOL_CALLS_PER_NODE');
    expect(await runs('add')).toBe(before);
  });

  it('gives the model a validation error for bad arguments and an error result for a tool that throws or times out', async () => {
    llm.respond(
      script(
        {
          toolCalls: [
            { id: 'bad', name: 'add', arguments: { a: 'one' } },
            { id: 'slow', name: 'slow', arguments: {} },
            { id: 'nope', name: 'no_such_tool', arguments: {} },
            { id: 'picky', name: 'picky', arguments: {} },
          ],
        },
        { text: 'sorry' },
      ),
    );
    const view = await sb.run('alice', { text: 'try things' });
    expect(view.replies.map((r) => r.text)).toEqual(['sorry']);
    const results = toolResults(llm.requests[1] as RecordedRequest);
    expect(results.map((r) => r.toolCallId)).toEqual(['bad', 'slow', 'nope', 'picky']);
    expect(results[0]?.content).toMatch(/invalid arguments for add/);
    expect(results[1]?.content).toMatch(/did not finish within 200 ms/);
    expect(results[2]?.content).toMatch(/no tool named no_such_tool/);
    // A plugin's own rule that throws is that tool's error, not a stuck chain.
    expect(results[3]?.content).toMatch(/the tool picky failed: confirm rule broke/);
  });

  it('fuses a tool off after PLUGIN_FAILURE_LIMIT failures in a row; an admin resets it', async () => {
    llm.respond((request) =>
      request.body.messages.some((m) => m.role === 'tool') ? { text: 'that failed' } : { toolCalls: [{ name: 'boom', arguments: {} }] },
    );
    const first = await sb.run('alice', { text: 'boom once' });
    expect(first.replies.map((r) => r.text)).toEqual(['that failed']);
    expect(toolResults(llm.requests[1] as RecordedRequest)[0]?.content).toContain('kaboom');

    const second = await sb.run('alice', { text: 'boom twice' });
    expect(second.replies.map((r) => r.text)).toEqual([expect.stringContaining('switched off'), 'that failed']);
    expect(await runs('boom')).toBe(2);

    llm.requests.length = 0;
    const third = await sb.run('alice', { text: 'boom thrice' });
    expect(offeredTools(llm.requests[0] as RecordedRequest)).not.toContain('boom');
    expect(toolResults(llm.requests[1] as RecordedRequest)[0]?.content).toContain('switched off');
    expect(third.status).toBe('done');
    expect(await runs('boom')).toBe(2);

    const plugins = await sb.run('alice', { text: '/plugins' });
    expect(plugins.replies[0]?.text).toMatch(/boom: switched off\n/);
    // Why it blew (another user's error) and admin-only tools are for admins' eyes.
    expect(plugins.replies[0]?.text).not.toContain('kaboom');
    expect(plugins.replies[0]?.text).not.toContain('admin_tool');
    const adminView = await sb.run('ops', { text: '/plugins' });
    expect(adminView.replies[0]?.text).toMatch(/boom: switched off \(2 failures in a row; the last: kaboom\)/);
    expect(adminView.replies[0]?.text).toContain('admin_tool');
    expect(plugins.replies[0]?.text).toMatch(/broken: failed to load — this plugin is broken on purpose/);
    const refused = await sb.run('alice', { text: '/plugin reset testkit' });
    expect(refused.replies[0]?.text).toMatch(/don't know the command \/plugin/);
    const reset = await sb.run('ops', { text: '/plugin reset testkit' });
    expect(reset.replies[0]?.text).toBe('Switched back on: boom.');

    llm.requests.length = 0;
    llm.respond(() => ({ text: 'ok' }));
    await sb.run('alice', { text: 'what tools?' });
    expect(offeredTools(llm.requests[0] as RecordedRequest)).toContain('boom');
  });

  describe('confirmation', () => {
    const askDangerous = (target: string) => (request: RecordedRequest) =>
      request.body.messages.some((m) => m.role === 'tool')
        ? { text: `result: ${toolResults(request)[0]?.content ?? ''}` }
        : { toolCalls: [{ id: 'd1', name: 'dangerous', arguments: { target } }] };

    it('waits for the user; approve runs the tool once; a second decision and another user are refused', async () => {
      llm.respond(askDangerous('prod'));
      const before = await runs('dangerous');
      const taskId = await sb.post('alice', { text: 'do the dangerous thing' });
      const waiting = await sb.waitForStatus('alice', taskId, 'waiting');
      expect(waiting.status).toBe('waiting');
      const formId = waiting.confirmation?.formId ?? '';
      expect(waiting.confirmation?.tools).toEqual([{ name: 'dangerous', args: { target: 'prod' } }]);
      expect(waiting.replies[0]?.text).toContain(`/confirm ${formId}`);
      expect(await runs('dangerous')).toBe(before);

      expect((await decide('bob', formId, { decision: 'approve' })).status).toBe(403);
      const approved = await decide('alice', formId, { decision: 'approve' });
      expect(approved.status).toBe(200);
      const done = await sb.waitForTask('alice', taskId);
      expect(done.status).toBe('done');
      expect(done.replies.at(-1)?.text).toBe('result: done to prod');
      expect(await runs('dangerous')).toBe(before + 1);
      // The parked node's view shows how its waiting call ended; its continuation is a child.
      const tree = (await (await chain('alice', done.chainId)).json()) as ChainJson;
      expect(tree.root.status).toBe('done');
      expect(tree.root.toolCalls.map((c) => [c.name, c.status])).toEqual([['dangerous', 'ok']]);
      expect(tree.root.children.map((c) => c.nodeId)).toEqual([`${tree.root.nodeId}.resume`]);

      const again = await decide('alice', formId, { decision: 'approve' });
      expect(again.status).toBe(409);
      const chat = await sb.run('alice', { text: `/confirm ${formId}` });
      expect(chat.replies[0]?.text).toMatch(/already decided or has expired/);
      expect(await runs('dangerous')).toBe(before + 1);
    });

    it('/cancel in chat: the model is told the user declined and the tool does not run', async () => {
      llm.respond(askDangerous('staging'));
      const before = await runs('dangerous');
      const taskId = await sb.post('alice', { text: 'maybe dangerous' });
      const formId = (await sb.waitForStatus('alice', taskId, 'waiting')).confirmation?.formId ?? '';
      const bobTries = await sb.run('bob', { text: `/cancel ${formId}` });
      expect(bobTries.replies[0]?.text).toMatch(/Only the person who started/);
      const cancel = await sb.run('alice', { text: `/cancel ${formId}` });
      expect(cancel.replies[0]?.text).toMatch(/Cancelled/);
      const done = await sb.waitForTask('alice', taskId);
      expect(done.replies.at(-1)?.text).toMatch(/result: The user declined/);
      expect(await runs('dangerous')).toBe(before);
    });

    it('edited arguments are validated, then used', async () => {
      llm.respond(askDangerous('prod'));
      const taskId = await sb.post('alice', { text: 'dangerous, edited' });
      const formId = (await sb.waitForStatus('alice', taskId, 'waiting')).confirmation?.formId ?? '';
      const invalid = await decide('alice', formId, { decision: 'approve', args: { target: 5 } });
      expect(invalid.status).toBe(400);
      const viaChat = await sb.run('alice', { text: `/confirm ${formId} {"target": ""}` });
      expect(viaChat.replies[0]?.text).toMatch(/Invalid arguments for dangerous/);
      const ok = await sb.run('alice', { text: `/confirm ${formId} {"target": "sandbox"}` });
      expect(ok.replies[0]?.text).toMatch(/Confirmed: running dangerous/);
      const done = await sb.waitForTask('alice', taskId);
      // The model learns that the user changed the arguments, and what ran.
      expect(done.replies.at(-1)?.text).toMatch(
        /^result: \(The user edited the arguments to \{"target":"sandbox"\} before approving\.\)\ndone to sandbox$/,
      );
      expect(await sb.app.store.get('plugin:testkit:last-target')).toBe('sandbox');
    });
  });

  it('offers group-only and admin tools only where they are allowed, and refuses them elsewhere', async () => {
    llm.respond((request) =>
      request.body.messages.some((m) => m.role === 'tool')
        ? {
            text: `got: ${toolResults(request)
              .map((r) => r.content)
              .join(' | ')}`,
          }
        : {
            toolCalls: [
              { name: 'group_tool', arguments: {} },
              { name: 'admin_tool', arguments: {} },
            ],
          },
    );
    const privateChat = await sb.run('alice', { text: 'use the special tools' });
    expect(offeredTools(llm.requests[0] as RecordedRequest)).not.toEqual(expect.arrayContaining(['group_tool']));
    expect(offeredTools(llm.requests[0] as RecordedRequest)).not.toEqual(expect.arrayContaining(['admin_tool']));
    expect(privateChat.replies.at(-1)?.text).toMatch(/got: Error: the tool group_tool is not available here: it works only in group chats/);
    expect(privateChat.replies.at(-1)?.text).toMatch(/admin_tool is not available here: only administrators/);

    llm.requests.length = 0;
    const admin = await sb.run('ops', { text: 'use the special tools' });
    expect(offeredTools(llm.requests[0] as RecordedRequest)).toContain('admin_tool');
    expect(admin.replies.at(-1)?.text).toMatch(/admin ok/);

    // A group chat (as a receiver would publish it): the group tool is offered and runs.
    llm.requests.length = 0;
    const bus = new EnvelopeBus(sb.app.bus, 8);
    await bus.publish(newMessageEnvelope({ from: 'http:alice', user: { id: 'http:alice' }, text: 'in the group', chatType: 'group' }));
    await expect.poll(() => llm.requests.length, { timeout: 10_000 }).toBe(2);
    expect(offeredTools(llm.requests[0] as RecordedRequest)).toContain('group_tool');
    expect(toolResults(llm.requests[1] as RecordedRequest)[0]?.content).toBe('group ok');

    // Direct commands obey the same rules: /env is for private chats.
    const commandEnvelope = newMessageEnvelope({
      from: 'http:alice',
      user: { id: 'http:alice' },
      text: `/env TEST_TOKEN=${SECRET}`,
      chatType: 'group',
      command: { name: 'env', args: `TEST_TOKEN=${SECRET}` },
    });
    await bus.publish(commandEnvelope);
    await expect
      .poll(async () => JSON.stringify(await (await sb.request('alice', 'GET', '/v1/messages')).json()), { timeout: 10_000 })
      .toMatch(/The command \/env is not available here: it works only in private chats/);
    const inbox = JSON.stringify(await (await sb.request('alice', 'GET', '/v1/messages')).json());
    expect(inbox).not.toContain(SECRET);
  });

  it('keeps /env values secret: not in prompts, logs or API answers, yet the declaring tool gets them', async () => {
    const missing = await (async () => {
      llm.respond(script({ toolCalls: [{ name: 'secret_echo', arguments: {} }] }, { text: 'checked' }));
      await sb.run('bob', { text: 'read my token' });
      return toolResults(llm.requests[1] as RecordedRequest)[0]?.content ?? '';
    })();
    expect(missing).toMatch(/needs TEST_TOKEN.*\/env TEST_TOKEN=<value>/);

    const set = await sb.run('alice', { text: `/env TEST_TOKEN=${SECRET}` });
    expect(set.replies[0]?.text).toBe('Saved TEST_TOKEN. Only the tools that declare it can read it.');
    const list = await sb.run('alice', { text: '/env' });
    expect(list.replies[0]?.text).toContain('TEST_TOKEN');

    llm.requests.length = 0;
    llm.respond(script({ toolCalls: [{ name: 'secret_echo', arguments: {} }] }, { text: 'checked' }));
    const used = await sb.run('alice', { text: 'read my token' });
    const result = toolResults(llm.requests[1] as RecordedRequest)[0]?.content ?? '';
    expect(JSON.parse(result)).toEqual({ token: '***', length: SECRET.length });

    const failed = await sb.run('alice', { text: '/vault_fail' });
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe('the vault refused ***');

    const chainView = await (await chain('alice', used.chainId)).text();
    const setView = await (await chain('alice', set.chainId)).text();
    const taskView = await (await sb.request('alice', 'GET', `/v1/tasks/${set.taskId}`)).text();
    for (const text of [
      JSON.stringify(llm.requests),
      sb.logs.join(''),
      chainView,
      setView,
      taskView,
      JSON.stringify(used),
      JSON.stringify(failed),
    ]) {
      expect(text).not.toContain(SECRET);
    }
    expect(JSON.stringify(await sb.app.store.hgetall('env:http:alice'))).not.toContain(SECRET);
    await sb.run('alice', { text: '/env -TEST_TOKEN' });
    expect((await sb.run('alice', { text: '/env' })).replies[0]?.text).toMatch(/no private values/);
  });

  it('does not run a tool twice when a node is delivered twice', async () => {
    llm.respond(script({ toolCalls: [{ id: 'once', name: 'add', arguments: { a: 2, b: 2 } }] }, { text: 'four' }));
    const before = await runs('add');
    const bus = new EnvelopeBus(sb.app.bus, 8);
    const node = newMessageEnvelope({ from: 'http:alice', user: { id: 'http:alice' }, text: 'twice please' });
    await bus.publish(node);
    await bus.publish(node);
    await expect
      .poll(async () => JSON.stringify(await (await sb.request('alice', 'GET', '/v1/messages')).json()), { timeout: 10_000 })
      .toContain('four');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await runs('add')).toBe(before + 1);
    // The model was asked once per node: the duplicate read the memo.
    expect(llm.requests).toHaveLength(2);
  });

  it('a command delivered twice runs once and answers once; a read-only one runs again and still answers once', async () => {
    const bus = new EnvelopeBus(sb.app.bus, 8);
    const before = { tally: await runs('tally'), peek: await runs('peek') };
    const tally = newMessageEnvelope({
      from: 'http:alice',
      user: { id: 'http:alice' },
      text: '/tally',
      command: { name: 'tally', args: '' },
    });
    const peek = newMessageEnvelope({ from: 'http:alice', user: { id: 'http:alice' }, text: '/peek', command: { name: 'peek', args: '' } });
    for (const node of [tally, tally, peek, peek]) await bus.publish(node);
    const inbox = async (): Promise<string[]> => {
      const body = (await (await sb.request('alice', 'GET', '/v1/messages')).json()) as { messages: { text: string }[] };
      return body.messages.map((m) => m.text).filter((text) => text.startsWith('tally') || text === 'peeked');
    };
    await expect.poll(async () => (await runs('peek')) - before.peek, { timeout: 10_000 }).toBe(2);
    await expect.poll(inbox, { timeout: 10_000 }).toEqual([`tally ${before.tally + 1}`, 'peeked']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await runs('tally')).toBe(before.tally + 1);
    expect(await inbox()).toEqual([`tally ${before.tally + 1}`, 'peeked']);
    expect(await sb.app.store.get(`node:${peek.id}:reply`)).toBeNull();
    expect(await sb.app.store.get(`node:${tally.id}:reply`)).not.toBeNull();
  });
});
