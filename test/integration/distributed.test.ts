import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAi } from '../fakes/fake-openai.ts';
import { runSwitchboard, spawnSwitchboard, type SwitchboardProcess } from '../helpers/process.ts';
import { uniqueName } from '../helpers/services.ts';
import { cleanupNamespace, distributedEnv, startSwitchboard, type Harness } from '../helpers/switchboard.ts';

/**
 * One role per process on RabbitMQ and Redis: the api and sender:http run in this process (a
 * Harness in distributed mode), the workers as separate `switchboard start --role worker` processes.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Cluster {
  readonly sb: Harness;
  readonly llm: FakeOpenAi;
  readonly namespace: string;
  startWorker(): Promise<SwitchboardProcess>;
}

async function cluster(extraEnv: Record<string, string> = {}): Promise<Cluster> {
  const namespace = uniqueName('dist');
  cleanups.push(() => cleanupNamespace(namespace, Number(extraEnv.AGENT_SHARDS ?? 8)));
  const llm = await FakeOpenAi.start();
  cleanups.push(() => llm.close());
  const env = { OPENAI_API_KEY: 'sk-dist', OPENAI_BASE_URL: llm.baseURL, LLM_MAX_RETRIES: '0', ...extraEnv };
  const sb = await startSwitchboard({ mode: 'distributed', namespace, env, roles: ['api', 'sender:http'] });
  cleanups.push(() => sb.stop());
  const workerEnv = { ...(await distributedEnv(namespace)), ...env, LOG_LEVEL: 'info', API_KEYS: '' };
  return {
    sb,
    llm,
    namespace,
    async startWorker() {
      const worker = await spawnSwitchboard(workerEnv, ['start', '--role', 'worker']);
      cleanups.push(() => worker.kill('SIGKILL'));
      return worker;
    },
  };
}

describe('distributed mode, one role per process', () => {
  it('a worker killed with SIGKILL while it holds a message: another worker completes it, one reply', async () => {
    const { sb, llm, startWorker } = await cluster({ AGENT_SHARDS: '2' });
    const first = await startWorker();
    await startWorker();
    llm.respond((_request, index) => (index === 0 ? { text: 'never sent', delayMs: 30_000 } : { text: 'answered by the survivor' }));

    const post = await sb.request('alice', 'POST', '/v1/tasks', { text: 'survive a crash' });
    const { taskId } = (await post.json()) as { taskId: string };
    await expect.poll(() => llm.requests.length, { timeout: 10_000 }).toBe(1);
    // The first worker started is the single active consumer of every shard, so it holds the message;
    // had the other one held it, the 30 s answer would make this test time out.
    await first.kill('SIGKILL');

    const view = await sb.waitForTask('alice', taskId, 20_000);
    expect(view.status).toBe('done');
    expect(view.replies.map((r) => r.text)).toEqual(['answered by the survivor']);
    expect(llm.requests).toHaveLength(2);
  });

  it('a worker killed between two nodes of a chain: the chain finishes and no tool runs twice', async () => {
    const { sb, llm, startWorker } = await cluster({
      AGENT_SHARDS: '2',
      PLUGINS_DIRS: path.resolve(import.meta.dirname, '../fixtures/plugins'),
    });
    const first = await startWorker();
    await startWorker();
    llm.respond((request, index) => {
      if (!request.body.messages.some((m) => m.role === 'tool'))
        return { toolCalls: [{ id: 'add-1', name: 'add', arguments: { a: 20, b: 22 } }] };
      // The second node's first LLM call hangs on the first worker, which is killed meanwhile.
      return index === 1 ? { text: 'never sent', delayMs: 30_000 } : { text: 'the answer is 42' };
    });

    const taskId = await sb.post('alice', { text: 'add 20 and 22' });
    await expect.poll(() => llm.requests.length, { timeout: 10_000 }).toBe(2);
    await first.kill('SIGKILL');

    const view = await sb.waitForTask('alice', taskId, 20_000);
    expect(view.status).toBe('done');
    expect(view.replies.map((r) => r.text)).toEqual(['the answer is 42']);
    expect(await sb.app.store.get('plugin:testkit:runs:add')).toBe('1');
    expect(llm.requests).toHaveLength(3);
  });

  it('two workers, 20 conversations × 20 messages: every conversation is answered in the order sent', async () => {
    const { sb, llm, startWorker } = await cluster();
    await Promise.all([startWorker(), startWorker()]);
    llm.respond(() => ({ text: 'ok', delayMs: Math.floor(Math.random() * 15) }));

    const conversations = Array.from({ length: 20 }, (_, c) => `c${c}`);
    const taskIds = new Map<string, string[]>();
    await Promise.all(
      conversations.map(async (conversation) => {
        const ids: string[] = [];
        for (let m = 0; m < 20; m++) {
          const response = await sb.request('alice', 'POST', '/v1/tasks', { text: `${conversation}:${m}`, conversation });
          ids.push(((await response.json()) as { taskId: string }).taskId);
        }
        taskIds.set(conversation, ids);
      }),
    );
    for (const ids of taskIds.values()) for (const id of ids) expect((await sb.waitForTask('alice', id, 30_000)).status).toBe('done');

    // The order in which the LLM was asked, per conversation, is the order the messages were sent.
    const seen = new Map<string, number[]>();
    for (const request of llm.requests) {
      const last = request.body.messages.at(-1)?.content ?? '';
      const [conversation = '', m = ''] = last.split(':');
      seen.set(conversation, [...(seen.get(conversation) ?? []), Number(m)]);
    }
    for (const conversation of conversations) expect(seen.get(conversation)).toEqual(Array.from({ length: 20 }, (_, m) => m));
    expect(llm.requests).toHaveLength(400);
  }, 90_000);

  it('lists and replays dead letters from the command line', async () => {
    const { sb, namespace, startWorker } = await cluster({ AGENT_SHARDS: '1' });
    await startWorker();
    await sb.app.bus.publish('switchboard.inbound', 'agent.0.http', Buffer.from('not json'), { messageId: 'cli-dead-1' });
    const env = { ...(await distributedEnv(namespace)), AGENT_SHARDS: '1', LOG_LEVEL: 'silent' };
    await expect
      .poll(async () => (await runSwitchboard(env, ['dlq', 'list'])).stdout, { timeout: 15_000, interval: 500 })
      .toContain('"messageId":"cli-dead-1"');
    const listed = await runSwitchboard(env, ['dlq', 'list']);
    expect(listed.stdout).toContain('malformed envelope: not JSON');
    const replayed = await runSwitchboard(env, ['dlq', 'replay', 'cli-dead-1']);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toContain('replayed cli-dead-1');
  }, 60_000);
});
