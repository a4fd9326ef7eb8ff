import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { INBOUND_EXCHANGE, inboundRoutingKey } from '../../src/bus/topology.ts';
import { signBody } from '../../src/platforms/http/callback.ts';
import { FakeOpenAi, readBody } from '../fakes/fake-openai.ts';
import { CLIENTS, MODES, startSwitchboard, type Harness, type Mode } from '../helpers/switchboard.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.each(MODES)('%s mode', (mode: Mode) => {
  async function withLlm(env: Record<string, string> = {}, dataDir?: string): Promise<{ sb: Harness; llm: FakeOpenAi }> {
    const llm = await FakeOpenAi.start();
    cleanups.push(() => llm.close());
    const sb = await startSwitchboard({
      mode,
      env: { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: llm.baseURL, ...env },
      ...(dataDir ? { dataDir } : {}),
    });
    return { sb, llm };
  }

  describe('without an LLM configured', () => {
    it('still runs commands and says clearly that no LLM is configured', async () => {
      const sb = await startSwitchboard({ mode });
      cleanups.push(() => sb.stop());
      const chat = await sb.run('alice', { text: 'hello?' });
      expect(chat.status).toBe('failed');
      expect(chat.replies[0]?.text).toMatch(/No LLM is configured/);
      const help = await sb.run('alice', { text: '/help' });
      expect(help.status).toBe('done');
      expect(help.replies[0]?.text).toContain('/help');
    });
  });

  describe('LLM failures', () => {
    it('a timeout becomes a failed task that says so', async () => {
      const { sb, llm } = await withLlm({ LLM_TIMEOUT_MS: '1000' });
      cleanups.push(() => sb.stop());
      llm.respond(() => ({ text: 'too late', delayMs: 1500 }));
      const view = await sb.run('alice', { text: 'slow' });
      expect(view.status).toBe('failed');
      expect(view.replies[0]?.text).toMatch(/too long/);
      expect(view.error).toMatch(/TIMEOUT/);
    });

    it('a 401 from the provider becomes a failed task naming the credentials', async () => {
      const { sb, llm } = await withLlm();
      cleanups.push(() => sb.stop());
      llm.respond(() => ({ status: 401, message: 'bad key' }));
      const view = await sb.run('alice', { text: 'who are you' });
      expect(view.status).toBe('failed');
      expect(view.replies[0]?.text).toMatch(/credentials/);
      expect(view.error).toMatch(/UNAUTHORIZED/);
    });
  });

  describe('callbacks', () => {
    it('POSTs each reply signed with the client secret, retrying a failing endpoint, once', async () => {
      const received: { body: string; signature: string | undefined; delivery: string | undefined }[] = [];
      let calls = 0;
      const hook = createServer((req, res) => {
        void readBody(req).then((body) => {
          calls++;
          if (calls <= 2) {
            res.writeHead(503).end();
            return;
          }
          received.push({
            body,
            signature: req.headers['x-switchboard-signature'] as string,
            delivery: req.headers['x-switchboard-delivery'] as string,
          });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => new Promise((resolve) => hook.close(() => resolve())));
      const callbackUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;

      const { sb } = await withLlm();
      cleanups.push(() => sb.stop());
      const view = await sb.run('alice', { text: 'call me back', callbackUrl });
      expect(view.status).toBe('done');
      await expect.poll(() => received.length, { timeout: 5000 }).toBe(1);
      const [delivery] = received;
      expect(delivery?.signature).toBe(signBody(delivery?.body ?? '', CLIENTS.alice));
      expect(JSON.parse(delivery?.body ?? '{}')).toMatchObject({
        taskId: view.taskId,
        status: 'done',
        reply: { text: 'echo: call me back' },
      });
      expect(calls).toBe(3);
    });
  });

  describe('shutdown', () => {
    it('ends open event streams instead of waiting for them', async () => {
      const { sb, llm } = await withLlm();
      llm.respond(() => ({ text: 'late', delayMs: 10_000 }));
      const post = await sb.request('alice', 'POST', '/v1/tasks', { text: 'keep streaming' });
      const { taskId } = (await post.json()) as { taskId: string };
      const stream = await sb.request('alice', 'GET', `/v1/tasks/${taskId}/events`);
      const body = stream.text();
      const started = Date.now();
      await sb.stop();
      await body; // the stream ended
      expect(Date.now() - started).toBeLessThan(5000);
    });
  });

  describe('restart', () => {
    it('keeps a conversation written before a stop and uses it after a start', async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-restart-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const first = await withLlm({}, dataDir);
      const before = await first.sb.run('alice', { text: 'my favourite colour is green', conversation: 'c1' });

      const second = await first.sb.restart();
      cleanups.push(() => second.stop());
      await second.run('alice', { text: 'what is my favourite colour?', conversation: 'c1' });
      expect(first.llm.prompts.at(-1)).toEqual([
        expect.stringMatching(/^system: /),
        'user: my favourite colour is green',
        'assistant: echo: my favourite colour is green',
        'user: what is my favourite colour?',
      ]);
      // The task from before the restart is still readable.
      const again = await second.request('alice', 'GET', `/v1/tasks/${before.taskId}`);
      expect(((await again.json()) as { status: string }).status).toBe('done');
    });

    it('hands back a message that was queued when it stopped and answers it after the start', async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-restart-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const first = await withLlm({ SHUTDOWN_TIMEOUT_MS: '200' }, dataDir);
      first.llm.respond(() => ({ text: 'slow answer', delayMs: 1000 }));
      const post = await first.sb.request('alice', 'POST', '/v1/tasks', { text: 'survive the restart' });
      const { taskId } = (await post.json()) as { taskId: string };
      await expect.poll(() => first.llm.requests.length).toBe(1);

      first.llm.respond(() => ({ text: 'answered after restart' }));
      const second = await first.sb.restart();
      cleanups.push(() => second.stop());
      const view = await second.waitForTask('alice', taskId);
      expect(view.status).toBe('done');
      expect(view.replies.map((r) => r.text)).toEqual(['answered after restart']);
    });
  });

  describe('bad input on the bus', () => {
    it('dead-letters a malformed message with its zod error, the next valid one is answered, and an admin can see it', async () => {
      const { sb } = await withLlm({ AGENT_SHARDS: '1' });
      cleanups.push(() => sb.stop());
      await sb.app.bus.publish(INBOUND_EXCHANGE, inboundRoutingKey(0, 'http'), Buffer.from(JSON.stringify({ v: 1, id: 'x', text: 'no' })), {
        messageId: 'malformed-1',
      });
      const view = await sb.run('alice', { text: 'still here?' });
      expect(view.replies[0]?.text).toBe('echo: still here?');

      type Listing = { deadLetters: { messageId: string; reason: string; routingKey: string; queue: string }[] };
      const list = async (): Promise<Listing> => (await (await sb.request('ops', 'GET', '/v1/dead-letters')).json()) as Listing;
      await expect.poll(async () => (await list()).deadLetters.length, { timeout: 5000 }).toBe(1);
      const [dead] = (await list()).deadLetters;
      expect(dead?.messageId).toBe('malformed-1');
      expect(dead?.reason).toMatch(/^malformed envelope: /);
      expect(dead?.reason).toContain('chainId');
      expect(dead?.routingKey).toBe(inboundRoutingKey(0, 'http'));
      expect(dead?.queue).toBe('agent.0');
      expect((await sb.request('alice', 'GET', '/v1/dead-letters')).status).toBe(403);

      // Replaying it puts it back on its queue; it fails validation again and comes back.
      const replay = await sb.request('ops', 'POST', '/v1/dead-letters/malformed-1/replay');
      expect(await replay.json()).toEqual({ replayed: 1 });
      await expect.poll(async () => (await list()).deadLetters.map((d) => d.messageId), { timeout: 5000 }).toEqual(['malformed-1']);
      expect((await sb.request('ops', 'POST', '/v1/dead-letters/nope/replay')).status).toBe(404);
    });
  });
});
