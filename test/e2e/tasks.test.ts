import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAi } from '../fakes/fake-openai.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

describe.each(MODES)('%s mode', (mode) => {
  let llm: FakeOpenAi;
  let sb: Harness;

  beforeAll(async () => {
    llm = await FakeOpenAi.start();
    sb = await startSwitchboard({ mode, env: { OPENAI_API_KEY: 'sk-test-key', OPENAI_BASE_URL: llm.baseURL, OPENAI_MODEL: 'fake-model' } });
  });
  afterAll(async () => {
    await sb.stop();
    await llm.close();
  });
  afterEach(() => {
    llm.requests.length = 0;
    llm.respond((request) => {
      const last = [...request.body.messages].reverse().find((m) => m.role === 'user');
      return { text: `echo: ${last?.content ?? ''}` };
    });
  });

  describe('a task through api → bus → agent → sender', () => {
    it('answers with the LLM, readable from GET', async () => {
      const post = await sb.request('alice', 'POST', '/v1/tasks', { text: 'hello there' });
      expect(post.status).toBe(202);
      const accepted = (await post.json()) as { taskId: string; chainId: string; status: string };
      expect(accepted.status).toBe('queued');
      expect(accepted.chainId).toBeTruthy();

      const view = await sb.waitForTask('alice', accepted.taskId);
      expect(view.status).toBe('done');
      expect(view.replies.map((r) => r.text)).toEqual(['echo: hello there']);
      expect(llm.requests).toHaveLength(1);
      expect(llm.requests[0]?.body.model).toBe('fake-model');
      expect(llm.requests[0]?.authorization).toBe('Bearer sk-test-key');
    });

    it('counts what crosses the bus on GET /metrics: published, consumed per queue, processing time, chains in flight', async () => {
      const metric = async (pattern: RegExp): Promise<number> => {
        const text = await (await fetch(`${sb.url}/metrics`)).text();
        return Number(pattern.exec(text)?.[1] ?? 0);
      };
      const published = /^switchboard_messages_published_total\{exchange="switchboard\.outbound"\} (\d+)/m;
      const consumed = /^switchboard_messages_consumed_total\{queue="out\.http",outcome="ok"\} (\d+)/m;
      const timed = /^switchboard_message_processing_seconds_count\{queue="out\.http"\} (\d+)/m;
      const before = { published: await metric(published), consumed: await metric(consumed), timed: await metric(timed) };
      await sb.run('alice', { text: '/help' });
      await sb.run('alice', { text: '/help' });
      await expect.poll(() => metric(consumed)).toBe(before.consumed + 2);
      expect(await metric(published)).toBe(before.published + 2);
      expect(await metric(timed)).toBe(before.timed + 2);
      const text = await (await fetch(`${sb.url}/metrics`)).text();
      expect(text).toMatch(/^switchboard_message_processing_seconds_bucket\{le="[^"]+",queue="agent\.\d+"\} \d+/m);
      expect(text).toMatch(/^switchboard_chains_in_flight \d+/m);
    });

    it('streams the reply and the final status as server-sent events', async () => {
      llm.respond(() => ({ text: 'streamed answer', delayMs: 150 }));
      const post = await sb.request('alice', 'POST', '/v1/tasks', { text: 'stream me' });
      const { taskId } = (await post.json()) as { taskId: string };
      const response = await sb.request('alice', 'GET', `/v1/tasks/${taskId}/events`);
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      const text = await response.text(); // the stream closes itself when the task is done
      const events = parseSse(text);
      expect(events.map((e) => e.event)).toEqual(['status', 'reply', 'status']);
      expect(events[0]?.data).toEqual({ status: 'running' });
      expect(events[1]?.data).toMatchObject({ text: 'streamed answer' });
      expect(events[2]?.data).toEqual({ status: 'done' });
    });

    it('resumes an event stream after Last-Event-ID', async () => {
      const view = await sb.run('alice', { text: 'resume' });
      const all = parseSse(await (await sb.request('alice', 'GET', `/v1/tasks/${view.taskId}/events`)).text());
      const afterFirst = parseSse(
        await (
          await sb.request('alice', 'GET', `/v1/tasks/${view.taskId}/events`, undefined, { 'last-event-id': all[0]?.id ?? '' })
        ).text(),
      );
      expect(afterFirst).toEqual(all.slice(1));
    });

    it('keeps two conversations apart', async () => {
      await sb.run('alice', { text: 'my name is Ann', conversation: 'one' });
      await sb.run('alice', { text: 'I like tea', conversation: 'two' });
      await sb.run('alice', { text: 'what is my name?', conversation: 'one' });
      await sb.run('bob', { text: 'who am I?', conversation: 'one' });

      const [, , third, fourth] = llm.prompts;
      expect(third).toEqual([
        expect.stringMatching(/^system: /),
        'user: my name is Ann',
        'assistant: echo: my name is Ann',
        'user: what is my name?',
      ]);
      // Bob's conversation "one" is not Alice's "one".
      expect(fourth).toEqual([expect.stringMatching(/^system: /), 'user: who am I?']);
    });

    it('makes one task of POSTs retried with the same Idempotency-Key', async () => {
      const headers = { 'idempotency-key': 'retry-1' };
      const bodies = await Promise.all(
        [1, 2, 3].map(async () => {
          const response = await sb.request('alice', 'POST', '/v1/tasks', { text: 'only once' }, headers);
          expect(response.status).toBe(202);
          return (await response.json()) as { taskId: string };
        }),
      );
      expect(new Set(bodies.map((b) => b.taskId)).size).toBe(1);
      await sb.waitForTask('alice', bodies[0]?.taskId ?? '');
      expect(llm.requests).toHaveLength(1);

      const reused = await sb.request('alice', 'POST', '/v1/tasks', { text: 'something else' }, headers);
      expect(reused.status).toBe(422);
      // Another client's identical key is its own.
      const bobs = await sb.request('bob', 'POST', '/v1/tasks', { text: 'only once' }, headers);
      expect(((await bobs.json()) as { taskId: string }).taskId).not.toBe(bodies[0]?.taskId);
    });

    it('turns an LLM 500 into a failed task with a message for the person', async () => {
      llm.respond(() => ({ status: 500, message: 'upstream exploded' }));
      const view = await sb.run('alice', { text: 'break please' });
      expect(view.status).toBe('failed');
      expect(view.error).toContain('500');
      expect(view.replies).toHaveLength(1);
      expect(view.replies[0]?.text).toMatch(/unavailable/i);
    });

    it('delivers mode "deliver" as it is, without the LLM', async () => {
      const view = await sb.run('alice', { text: 'plain **notice**', mode: 'deliver' });
      expect(view.status).toBe('done');
      expect(view.replies.map((r) => r.text)).toEqual(['plain **notice**']);
      expect(llm.requests).toHaveLength(0);
    });

    it('lets an admin deliver to another client, who finds it in its messages', async () => {
      const view = await sb.run('ops', { text: 'maintenance at noon', mode: 'deliver', to: ['http:bob'] });
      expect(view.status).toBe('done');
      const inbox = (await (await sb.request('bob', 'GET', '/v1/messages')).json()) as { messages: { text: string }[] };
      expect(inbox.messages.map((m) => m.text)).toContain('maintenance at noon');
      const alices = (await (await sb.request('alice', 'GET', '/v1/messages')).json()) as { messages: { text: string }[] };
      expect(alices.messages.map((m) => m.text)).not.toContain('maintenance at noon');
    });

    it('runs /help and /clear without the LLM', async () => {
      const help = await sb.run('alice', { text: '/help' });
      expect(help.status).toBe('done');
      expect(help.replies[0]?.text).toContain('/clear');
      expect(help.replies[0]?.text).toContain('/help');

      await sb.run('alice', { text: 'remember the number 42', conversation: 'clearme' });
      const cleared = await sb.run('alice', { text: '/clear', conversation: 'clearme' });
      expect(cleared.replies[0]?.text).toMatch(/forgotten/);
      await sb.run('alice', { text: 'what number?', conversation: 'clearme' });
      expect(llm.prompts.at(-1)).toEqual([expect.stringMatching(/^system: /), 'user: what number?']);

      const unknown = await sb.run('alice', { text: '/nosuchcommand' });
      expect(unknown.replies[0]?.text).toContain('/help');
      expect(llm.requests).toHaveLength(2);
    });
  });

  describe('API errors', () => {
    it('401 without or with a wrong key', async () => {
      expect((await sb.request(null, 'POST', '/v1/tasks', { text: 'x' })).status).toBe(401);
      const wrong = await fetch(`${sb.url}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: 'Bearer nope-nope-nope', 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'x' }),
      });
      expect(wrong.status).toBe(401);
      expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    });

    it('400 naming the field that is wrong', async () => {
      const missing = await sb.request('alice', 'POST', '/v1/tasks', { conversation: 'x' });
      expect(missing.status).toBe(400);
      expect(((await missing.json()) as { error: { field: string } }).error.field).toBe('text');

      const badMode = await sb.request('alice', 'POST', '/v1/tasks', { text: 'x', mode: 'shout' });
      expect(((await badMode.json()) as { error: { field: string } }).error.field).toBe('mode');

      const badAddress = await sb.request('ops', 'POST', '/v1/tasks', { text: 'x', to: ['nocolon'] });
      expect(badAddress.status).toBe(400);
      expect(((await badAddress.json()) as { error: { field: string } }).error.field).toBe('to.0');

      const notJson = await fetch(`${sb.url}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: 'Bearer alice-secret-123', 'content-type': 'application/json' },
        body: '{"text": ',
      });
      expect(notJson.status).toBe(400);
    });

    it('403 when a non-admin names another address', async () => {
      const response = await sb.request('alice', 'POST', '/v1/tasks', { text: 'x', to: ['telegram:123'] });
      expect(response.status).toBe(403);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN_ADDRESS');
    });

    it("404 for an unknown task and for another client's task", async () => {
      expect((await sb.request('alice', 'GET', '/v1/tasks/does-not-exist')).status).toBe(404);
      const view = await sb.run('alice', { text: 'mine' });
      expect((await sb.request('bob', 'GET', `/v1/tasks/${view.taskId}`)).status).toBe(404);
      expect((await sb.request('bob', 'GET', `/v1/tasks/${view.taskId}/events`)).status).toBe(404);
    });
  });

  describe('operations', () => {
    it('answers health, readiness and the OpenAPI document', async () => {
      expect((await fetch(`${sb.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${sb.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ bus: 'ok', store: 'ok' });
      const doc = (await (await fetch(`${sb.url}/docs/json`)).json()) as { openapi: string; paths: Record<string, unknown> };
      expect(doc.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/tasks', '/v1/tasks/{taskId}', '/v1/tasks/{taskId}/events']));
    });

    it('never writes an API secret or the LLM key to the logs', async () => {
      await sb.run('alice', { text: 'log me' });
      const all = sb.logs.join('');
      expect(all).toContain('task accepted');
      expect(all).not.toContain('alice-secret-123');
      expect(all).not.toContain('sk-test-key');
    });
  });
});

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: unknown;
}

export function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line && !line.startsWith(':')))
    .filter((lines) => lines.length > 0)
    .map((lines) => {
      const field = (name: string): string | undefined => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      return { id: field('id'), event: field('event') ?? 'message', data: JSON.parse(field('data') ?? 'null') as unknown };
    });
}
