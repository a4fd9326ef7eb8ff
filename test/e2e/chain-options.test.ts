import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAi, toolResults, type RecordedRequest } from '../fakes/fake-openai.ts';
import { MODES, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

const FIXTURE_PLUGINS = path.resolve(import.meta.dirname, '../fixtures/plugins');

describe.each(MODES)('%s mode: confirmation expiry and the prompt fallback', (mode) => {
  let llm: FakeOpenAi;

  beforeAll(async () => {
    llm = await FakeOpenAi.start();
  });
  afterAll(async () => {
    await llm.close();
  });

  describe('with CONFIRM_TTL=1', () => {
    let sb: Harness;
    beforeAll(async () => {
      sb = await startSwitchboard({
        mode,
        env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseURL, PLUGINS_DIRS: FIXTURE_PLUGINS, CONFIRM_TTL: '1' },
      });
    });
    afterAll(async () => {
      await sb.stop();
    });

    it('an unanswered confirmation expires: the model is told, the chain goes on, a late /confirm is refused', async () => {
      llm.requests.length = 0;
      llm.respond((request) =>
        request.body.messages.some((m) => m.role === 'tool')
          ? { text: `result: ${toolResults(request)[0]?.content ?? ''}` }
          : { toolCalls: [{ name: 'dangerous', arguments: { target: 'prod' } }] },
      );
      const taskId = await sb.post('alice', { text: 'dangerous, then walk away' });
      const waiting = await sb.waitForStatus('alice', taskId, 'waiting');
      const formId = waiting.confirmation?.formId ?? '';
      const done = await sb.waitForTask('alice', taskId, 10_000);
      expect(done.status).toBe('done');
      expect(done.replies.at(-1)?.text).toMatch(/result: The user did not answer the confirmation in time/);
      expect(await sb.app.store.get('plugin:testkit:runs:dangerous')).toBeNull();
      const late = await sb.request('alice', 'POST', `/v1/confirmations/${formId}`, { decision: 'approve' });
      expect(late.status).toBe(409);
      expect(llm.requests).toHaveLength(2);
    });
  });

  describe('with OPENAI_TOOLS=prompt (a model without tool calling)', () => {
    let sb: Harness;
    beforeAll(async () => {
      sb = await startSwitchboard({
        mode,
        env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseURL, PLUGINS_DIRS: FIXTURE_PLUGINS, OPENAI_TOOLS: 'prompt' },
      });
    });
    afterAll(async () => {
      await sb.stop();
    });

    it('describes the tools in the prompt, runs the JSON tool call and answers with the result', async () => {
      llm.requests.length = 0;
      llm.respond((request) => {
        const last = request.body.messages.at(-1)?.content ?? '';
        if (last.startsWith('Result of tool add')) return { text: '{"answer": "It is 42."}' };
        return { text: 'Sure.\n```json\n{"tool_calls": [{"name": "add", "arguments": {"a": 40, "b": 2}}]}\n```' };
      });
      const view = await sb.run('alice', { text: 'what is 40 + 2?' });
      expect(view.status).toBe('done');
      expect(view.replies.map((r) => r.text)).toEqual(['It is 42.']);
      const [first, second] = llm.requests as [RecordedRequest, RecordedRequest];
      expect(first.body.tools).toBeUndefined();
      expect(first.body.messages[0]?.content).toContain('add');
      expect(second.body.messages.at(-1)?.content).toMatch(/^Result of tool add .*: 42$/);
    });

    it('takes an answer that is not JSON, after one retry, as plain text', async () => {
      llm.requests.length = 0;
      llm.respond(() => ({ text: 'just words' }));
      const view = await sb.run('alice', { text: 'chat' });
      expect(view.replies.map((r) => r.text)).toEqual(['just words']);
      expect(llm.requests).toHaveLength(2);
    });
  });
});
