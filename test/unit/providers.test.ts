import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitHistory } from '../../src/agent/context-window.ts';
import { LlmGateway } from '../../src/agent/llm-gateway.ts';
import { LlmRouter, type LlmRoute, type RouteCaller } from '../../src/agent/llm-router.ts';
import type { ChatMessage, Completion, LlmClient } from '../../src/agent/llm.ts';
import { Logins, parseLogin } from '../../src/agent/logins.ts';
import { catalogOf, loadModelCatalog, ModelCatalog, ModelsFileSchema } from '../../src/agent/models.ts';
import { Quotas } from '../../src/agent/quotas.ts';
import { loadConfig } from '../../src/core/config.ts';
import { newMessageEnvelope, withoutSecrets } from '../../src/core/envelope.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { SecretBox } from '../../src/core/secret-box.ts';
import type { MemoryStore } from '../../src/store/memory-store.ts';
import { memoryStores } from '../helpers/memory-stores.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-providers-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openStore = memoryStores();

async function catalogFrom(name: string, text: string, env: Record<string, string> = {}): Promise<ModelCatalog> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return loadModelCatalog(loadConfig({ MODELS_FILE: file, ...env }));
}

describe('the models file', () => {
  it('reads YAML with defaults filled in and keys taken from the named variables', async () => {
    const catalog = await catalogFrom(
      'models.yaml',
      [
        'default: local',
        'models:',
        '  - name: gpt',
        '    model: gpt-4o-mini',
        '    contextSize: 128000',
        '    fallback: local',
        '  - name: local',
        '    baseURL: http://127.0.0.1:11434/v1',
        '    apiKeyEnv: OLLAMA_KEY',
        '    tools: prompt',
        'pools:',
        '  - name: school',
        '    token: school-token-123456',
        '    perUser: { requestsPerDay: 5 }',
      ].join('\n'),
      { OPENAI_API_KEY: 'sk-openai', OLLAMA_KEY: 'ollama' },
    );
    expect(catalog.default?.name).toBe('local');
    expect(catalog.get('gpt')).toMatchObject({
      model: 'gpt-4o-mini',
      apiKey: 'sk-openai',
      tools: 'native',
      baseURL: undefined,
      fallback: 'local',
    });
    expect(catalog.get('local')).toMatchObject({ model: 'local', apiKey: 'ollama', tools: 'prompt', contextSize: undefined });
    expect(catalog.pick('gpt')?.name).toBe('gpt');
    expect(catalog.pick('gone')?.name).toBe('local'); // a chat whose model was removed gets the default
    expect(catalog.poolByToken('school-token-123456')).toMatchObject({ name: 'school', perUser: { requestsPerDay: 5 }, total: undefined });
  });

  it('reads JSON; the first model is the default unless one is named', async () => {
    const catalog = await catalogFrom('models.json', JSON.stringify({ models: [{ name: 'a' }, { name: 'b' }] }), { OPENAI_API_KEY: 'k' });
    expect(catalog.default?.name).toBe('a');
  });

  it('without models, OPENAI_* define the one default model; without a key there is none', () => {
    const empty = ModelsFileSchema.parse({});
    const catalog = catalogOf(empty, loadConfig({ OPENAI_API_KEY: 'sk', OPENAI_MODEL: 'm1', OPENAI_TOOLS: 'prompt' }));
    expect(catalog.models).toEqual([expect.objectContaining({ name: 'm1', model: 'm1', apiKey: 'sk', tools: 'prompt' })]);
    expect(catalogOf(empty, loadConfig({})).default).toBeUndefined();
  });

  it.each([
    ['bad.yaml', 'models: [ {name: a', /is not valid YAML/],
    ['bad.json', '{"models": ', /is not valid JSON/],
    ['unknown.json', JSON.stringify({ modles: [] }), /Unrecognized key: "modles"/],
    [
      'nokey.json',
      JSON.stringify({ models: [{ name: 'a', apiKeyEnv: 'MISSING_KEY' }] }),
      /model a: its API key variable MISSING_KEY is not set/,
    ],
    ['default.json', JSON.stringify({ default: 'x', models: [{ name: 'a' }] }), /the default model "x" is not listed/],
    ['fallback.json', JSON.stringify({ models: [{ name: 'a', fallback: 'b' }] }), /its fallback "b" is not listed/],
    ['twice.json', JSON.stringify({ models: [{ name: 'a' }, { name: 'a' }] }), /two models are named "a"/],
    [
      'tokens.json',
      JSON.stringify({
        pools: [
          { name: 'p', token: 'same-token-1234' },
          { name: 'q', token: 'same-token-1234' },
        ],
      }),
      /two pools have the same token/,
    ],
    ['short.json', JSON.stringify({ pools: [{ name: 'p', token: 'short' }] }), /pools.0.token: at least 12 characters/],
  ])('%s is refused at start with a clear message', async (name, text, message) => {
    const error = await catalogFrom(name, text, { OPENAI_API_KEY: 'k' }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
  });

  it('a missing file is a ConfigError that names it', async () => {
    await expect(loadModelCatalog(loadConfig({ MODELS_FILE: path.join(dir, 'nope.yaml') }))).rejects.toThrow(
      /MODELS_FILE .*nope.yaml cannot be read/,
    );
  });
});

describe('/login credentials', () => {
  it('parses an own key or a pool token, and never echoes the key in an error', () => {
    expect(parseLogin('https://api.example.com/v1 sk-123 gpt-x')).toEqual({
      kind: 'own',
      own: { baseURL: 'https://api.example.com/v1', apiKey: 'sk-123', model: 'gpt-x' },
    });
    expect(parseLogin(' token abc ')).toEqual({ kind: 'pool', token: 'abc' });
    for (const bad of [
      'sk-secret-only',
      'ftp://x sk-secret-1',
      'notaurl sk-secret-1',
      'https://x sk-secret-1 m extra',
      'token',
      'token a b',
    ]) {
      const parsed = parseLogin(bad);
      expect(parsed.kind).toBe('error');
      expect(JSON.stringify(parsed)).not.toContain('sk-secret');
    }
  });

  it('keeps an own key sealed at rest and bound to its user; a pool membership keeps no token', async () => {
    const store = await openStore();
    const logins = new Logins(store, new SecretBox('operator-secret-key-0123'));
    await logins.setOwn('u1', { baseURL: 'https://api.example.com/v1', apiKey: 'sk-very-secret' });
    await logins.joinPool('u1', 'school', 'school-token-123456');
    const raw = JSON.stringify(await store.hgetall('login:u1'));
    expect(raw).not.toContain('sk-very-secret');
    expect(raw).not.toContain('school-token-123456');
    const login = await logins.get('u1');
    expect(login.own).toEqual({ baseURL: 'https://api.example.com/v1', apiKey: 'sk-very-secret' });
    expect(login.pool && Logins.sameToken(login.pool, 'school-token-123456')).toBe(true);
    expect(login.pool && Logins.sameToken(login.pool, 'rotated-token-000000')).toBe(false);

    // Copied to another user, the sealed key does not open.
    await store.hset('login:u2', { own: (await store.hgetall('login:u1')).own ?? '' });
    expect((await logins.get('u2')).own).toBeUndefined();
    expect(await logins.clear('u1')).toBe(true);
    expect(await logins.get('u1')).toEqual({ own: undefined, pool: undefined });
    expect(await logins.clear('u1')).toBe(false);
  });

  it('a dead-lettered /login keeps no key', () => {
    const env = newMessageEnvelope({
      from: 'telegram:1',
      user: { id: 'telegram:1' },
      text: '/login https://api.example.com/v1 sk-live-secret',
      command: { name: 'login', args: 'https://api.example.com/v1 sk-live-secret' },
    });
    const kept = withoutSecrets(Buffer.from(JSON.stringify(env))).toString('utf8');
    expect(kept).not.toContain('sk-live-secret');
    expect(JSON.parse(kept)).toMatchObject({ body: { text: '/login [redacted]' } });
  });
});

describe('the context window', () => {
  const entries = (n: number, size: number): { role: 'user'; content: string }[] =>
    Array.from({ length: n }, (_, i) => ({ role: 'user', content: `${i}`.padEnd(size, 'x') }));
  const system: ChatMessage = { role: 'system', content: 'be brief' };

  it('keeps the most recent history that fits beside the prompt, the tools and room for the answer', () => {
    const past = entries(10, 400); // about 104 tokens each
    expect(fitHistory(past, [system], [], undefined)).toHaveLength(10);
    const kept = fitHistory(past, [system], [], 1000); // 750 for the prompt and history
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(10);
    expect(kept.at(-1)).toBe(past.at(-1));
    const fewer = fitHistory(past, [system], [{ name: 't', description: 'x'.repeat(1200), parameters: {} }], 1000);
    expect(fewer.length).toBeLessThan(kept.length);
    expect(fitHistory(past, [system, { role: 'user', content: 'y'.repeat(4000) }], [], 1000)).toEqual([]);
  });
});

describe('the LLM gateway', () => {
  /** A router whose every route is the public scope on a given client. */
  class OneRoute extends LlmRouter {
    constructor(
      private readonly the: LlmClient,
      store: MemoryStore,
    ) {
      super({
        catalog: new ModelCatalog([], undefined),
        logins: new Logins(store, undefined),
        store,
        publicLimits: {},
        timeoutMs: 1000,
        maxRetries: 0,
        ownDefaultModel: 'm',
      });
    }
    override async route(caller: RouteCaller): Promise<LlmRoute> {
      return {
        kind: 'public',
        modelName: 'm',
        baseURL: undefined,
        client: this.the,
        contextSize: undefined,
        scope: { name: 'public', perUser: { requestsPerDay: 5 } },
        quotaUser: caller.userId ?? caller.address,
        fallback: undefined,
      };
    }
  }

  it('a node redelivered after it took its request (the worker died mid-call) does not take a second one', async () => {
    const store = await openStore();
    let calls = 0;
    const client: LlmClient = {
      async complete(): Promise<Completion> {
        calls += 1;
        if (calls === 1) throw new Error('worker killed during the call');
        return { text: 'hi', toolCalls: [], model: 'm', usage: { promptTokens: 3, completionTokens: 4 } };
      },
    };
    const quotas = new Quotas(store, { timeZone: 'UTC' });
    const gateway = new LlmGateway({ router: new OneRoute(client, store), quotas, store, memoTtlMs: 60_000 });
    const request = { nodeId: 'node-1', caller: { userId: 'u1', address: 'http:u1' }, messages: () => [], tools: [] };
    await expect(gateway.complete(request, silentLogger())).rejects.toThrow('worker killed');
    await expect(gateway.complete(request, silentLogger())).resolves.toMatchObject({ text: 'hi' });
    expect((await quotas.usage({ name: 'public', perUser: {} }, 'u1')).user).toEqual({ requests: 1, tokens: 7 });
    // Another node is another request.
    await gateway.complete({ ...request, nodeId: 'node-2' }, silentLogger());
    expect((await quotas.usage({ name: 'public', perUser: {} }, 'u1')).user).toEqual({ requests: 2, tokens: 14 });
  });
});
