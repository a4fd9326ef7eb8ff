import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../../src/core/logger.ts';
import { BUNDLED_PLUGINS_DIR, loadPlugins } from '../../src/plugins/loader.ts';
import { pluginStore } from '../../src/plugins/plugin-store.ts';
import type { LoadedPlugin } from '../../src/plugins/registry.ts';
import type { AnyCommand, AnyTool, Caller, PluginContext, Scheduler } from '../../src/plugins/sdk.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FakeGitHub } from '../fakes/fake-github.ts';

const TOKEN = 'ghp_TestTokenThatMustNeverLeak42';
const MINUTE = 60_000;

let plugins: Map<string, LoadedPlugin>;
const stores: MemoryStore[] = [];

beforeAll(async () => {
  const loaded = await loadPlugins({ dirs: [BUNDLED_PLUGINS_DIR], enabled: [], disabled: [], env: {}, logger: silentLogger() });
  expect(loaded.failures).toEqual([]);
  plugins = new Map(loaded.plugins.map((p) => [p.manifest.name, p]));
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

function plugin(name: string): LoadedPlugin {
  const found = plugins.get(name);
  if (!found) throw new Error(`plugin ${name} did not load`);
  return found;
}

function tool(pluginName: string, name: string): AnyTool {
  const found = plugin(pluginName).definition.tools?.find((t) => t.name === name);
  if (!found) throw new Error(`tool ${name} not found`);
  return found;
}

function command(pluginName: string, name: string): AnyCommand {
  const found = plugin(pluginName).definition.commands?.find((c) => c.name === name);
  if (!found) throw new Error(`command /${name} not found`);
  return found;
}

/** A scheduler that records what it was asked. */
class FakeScheduler implements Scheduler {
  readonly scheduled: Array<{ id: string; at: Date; text: string }> = [];
  readonly cancelled: string[] = [];
  private next = 0;

  async message(at: Date, text: string): Promise<string> {
    const id = `sched-${++this.next}`;
    this.scheduled.push({ id, at, text });
    return id;
  }

  async cancel(id: string): Promise<boolean> {
    if (this.cancelled.includes(id) || !this.scheduled.some((s) => s.id === id)) return false;
    this.cancelled.push(id);
    return true;
  }
}

interface Harness {
  readonly ctx: PluginContext;
  readonly scheduler: FakeScheduler;
  readonly store: MemoryStore;
}

async function harness(options: {
  pluginName: string;
  env?: Record<string, string>;
  settings?: Record<string, string>;
  caller?: Partial<Caller>;
  store?: MemoryStore;
  scheduler?: FakeScheduler;
}): Promise<Harness> {
  let store = options.store;
  if (!store) {
    store = await MemoryStore.open({ logger: silentLogger(), sweepIntervalMs: 0 });
    stores.push(store);
  }
  const scheduler = options.scheduler ?? new FakeScheduler();
  const caller: Caller = {
    userId: 'telegram:42',
    address: 'telegram:42',
    platform: 'telegram',
    chatType: 'private',
    isAdmin: false,
    conversation: 'telegram:42',
    ...options.caller,
  };
  const ctx: PluginContext = {
    requestId: 'node-1/call-1',
    caller,
    env: options.env ?? {},
    settings: { ...plugin(options.pluginName).settings, ...options.settings },
    store: pluginStore(store, options.pluginName),
    schedule: scheduler,
    logger: silentLogger(),
    signal: new AbortController().signal,
  };
  return { ctx, scheduler, store };
}

/** Runs a tool as the tool runner does: arguments through its schema first. */
async function runTool(t: AnyTool, args: unknown, ctx: PluginContext): Promise<unknown> {
  return t.run(t.args.parse(args), ctx);
}

/** Runs a command as the command node does: the text through its schema, usage when it does not parse. */
async function runCommand(c: AnyCommand, text: string, ctx: PluginContext): Promise<string> {
  const parsed = (c.args ?? z.string()).safeParse(text);
  if (!parsed.success) return `${c.usage ? `Usage: /${c.name} ${c.usage}\n` : ''}${z.prettifyError(parsed.error)}`;
  return c.run(parsed.data, ctx);
}

describe('bundled plugins', () => {
  it('loads github and reminder from plugins/ with their manifests', () => {
    expect(plugin('github').manifest).toMatchObject({ version: '1.0.0', env: ['GITHUB_TOKEN'] });
    expect(plugin('github').settings).toEqual({ GITHUB_API_URL: 'https://api.github.com' });
    expect(plugin('reminder').manifest.env).toEqual([]);
    expect(plugin('github').definition.tools?.map((t) => t.name)).toEqual(['create_issue']);
    expect(plugin('reminder').definition.tools?.map((t) => t.name)).toEqual(['set_reminder']);
    expect(plugin('reminder').definition.commands?.map((c) => c.name)).toEqual(['remind', 'reminders']);
  });
});

describe('github: create_issue', () => {
  let github: FakeGitHub;

  beforeAll(async () => {
    github = await FakeGitHub.start();
  });

  afterAll(async () => {
    await github.close();
  });

  const setup = (): Promise<Harness> =>
    harness({ pluginName: 'github', env: { GITHUB_TOKEN: TOKEN }, settings: { GITHUB_API_URL: `${github.baseURL}/` } });

  it('asks for confirmation and has its own timeout', () => {
    const createIssue = tool('github', 'create_issue');
    expect(createIssue.confirm).toBe(true);
    expect(createIssue.timeoutMs).toBe(15_000);
  });

  it('creates exactly one issue with the Bearer token and returns its number and URL', async () => {
    const { ctx } = await setup();
    const before = github.issues.length;
    const result = await runTool(
      tool('github', 'create_issue'),
      { repo: 'octo-org/hello.world', title: 'Crash on start', body: 'Steps:\n1. start' },
      ctx,
    );
    expect(github.issues.length).toBe(before + 1);
    const issue = github.issues.at(-1);
    expect(issue).toMatchObject({ owner: 'octo-org', repo: 'hello.world', title: 'Crash on start', body: 'Steps:\n1. start' });
    expect(issue?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(issue?.headers).toMatchObject({
      accept: 'application/vnd.github+json',
      'x-github-api-version': '2022-11-28',
      'user-agent': 'switchboard',
    });
    expect(result).toEqual({ number: 1, url: 'https://github.example/octo-org/hello.world/issues/1' });
  });

  it('sends an empty body when none is given', async () => {
    const { ctx } = await setup();
    await runTool(tool('github', 'create_issue'), { repo: 'octocat/empty', title: 'No body' }, ctx);
    expect(github.issues.at(-1)).toMatchObject({ repo: 'empty', title: 'No body', body: '' });
  });

  it.each([401, 500])('throws on a %i answer with GitHub’s message and without the token', async (status) => {
    const { ctx } = await setup();
    const before = github.issues.length;
    github.failNext(status);
    const error = await runTool(tool('github', 'create_issue'), { repo: 'octocat/hello', title: 'T' }, ctx).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(String(status));
    expect(message).toContain(`fake failure ${status}`);
    expect(message).not.toContain(TOKEN);
    expect(github.issues.length).toBe(before);
  });

  it('explains a rejected token', async () => {
    const { ctx } = await harness({ pluginName: 'github', env: { GITHUB_TOKEN: '' }, settings: { GITHUB_API_URL: github.baseURL } });
    await expect(runTool(tool('github', 'create_issue'), { repo: 'octocat/hello', title: 'T' }, ctx)).rejects.toThrow(
      /401: Requires authentication.*\/env GITHUB_TOKEN=/,
    );
  });

  it('rejects a malformed repository, title or body through the args schema', () => {
    const { args } = tool('github', 'create_issue');
    for (const repo of ['hello', 'octocat/', '/hello', 'octo cat/hello', 'octocat/hello/issues', 'octocat/..', 'octocat/.', '-x/hello']) {
      expect(args.safeParse({ repo, title: 'T' }).success, repo).toBe(false);
    }
    expect(args.safeParse({ repo: 'octocat/hello', title: '' }).success).toBe(false);
    expect(args.safeParse({ repo: 'octocat/hello', title: 'x'.repeat(257) }).success).toBe(false);
    expect(args.safeParse({ repo: 'octocat/hello', title: 'T', body: 'x'.repeat(65_537) }).success).toBe(false);
    expect(args.safeParse({ repo: 'octocat/hello_world.js', title: 'T' }).data).toEqual({
      repo: 'octocat/hello_world.js',
      title: 'T',
      body: '',
    });
  });
});

describe('reminder', () => {
  it('set_reminder with inMinutes schedules a message about N minutes ahead and records it', async () => {
    const { ctx, scheduler, store } = await harness({ pluginName: 'reminder' });
    const before = Date.now();
    const result = (await runTool(tool('reminder', 'set_reminder'), { text: 'call mom', inMinutes: 30 }, ctx)) as {
      id: string;
      at: string;
    };
    expect(scheduler.scheduled).toHaveLength(1);
    const [scheduled] = scheduler.scheduled;
    expect(scheduled?.at.getTime()).toBeGreaterThanOrEqual(before + 30 * MINUTE);
    expect(scheduled?.at.getTime()).toBeLessThanOrEqual(Date.now() + 30 * MINUTE);
    expect(scheduled?.text).toContain('call mom');
    expect(result.id).toBe(scheduled?.id);
    expect(Math.abs(Date.parse(result.at) - (scheduled?.at.getTime() ?? 0))).toBeLessThan(1000);
    const record = await store.hget('plugin:reminder:reminders:telegram:42', result.id);
    expect(JSON.parse(record ?? '{}')).toEqual({ at: scheduled?.at.toISOString(), text: 'call mom' });
  });

  it('set_reminder with at schedules at that time; a past time is an answer, not a schedule', async () => {
    const { ctx, scheduler } = await harness({ pluginName: 'reminder' });
    const setReminder = tool('reminder', 'set_reminder');
    const at = new Date(Date.now() + 3 * 86_400_000);
    at.setUTCMilliseconds(0);
    await runTool(setReminder, { text: 'dentist', at: at.toISOString() }, ctx);
    expect(scheduler.scheduled[0]?.at.getTime()).toBe(at.getTime());
    const past = await runTool(setReminder, { text: 'too late', at: '2001-01-01T00:00:00Z' }, ctx);
    expect(past).toMatch(/^Error: .*not in the future/);
    expect(scheduler.scheduled).toHaveLength(1);
  });

  it('set_reminder needs exactly one of inMinutes and at, within a year', () => {
    const { args } = tool('reminder', 'set_reminder');
    const neither = args.safeParse({ text: 'x' });
    expect(neither.success).toBe(false);
    expect(z.prettifyError(neither.error!)).toContain('exactly one of inMinutes');
    expect(args.safeParse({ text: 'x', inMinutes: 5, at: '2030-01-01T00:00:00Z' }).success).toBe(false);
    expect(args.safeParse({ text: 'x', inMinutes: 0 }).success).toBe(false);
    expect(args.safeParse({ text: 'x', inMinutes: 525_601 }).success).toBe(false);
    expect(args.safeParse({ text: '', inMinutes: 5 }).success).toBe(false);
    expect(args.safeParse({ text: 'x', at: 'tomorrow' }).success).toBe(false);
    expect(args.safeParse({ text: 'x', at: '2030-01-01T10:00:00' }).success, 'no time zone').toBe(false);
    expect(args.safeParse({ text: 'x', at: '2030-01-01T10:00:00+02:00' }).success).toBe(true);
    expect(args.safeParse({ text: 'x', inMinutes: 5 }).success).toBe(true);
  });

  it('/remind 10m call mom schedules in ten minutes and says when', async () => {
    const { ctx, scheduler } = await harness({ pluginName: 'reminder' });
    const before = Date.now();
    const reply = await runCommand(command('reminder', 'remind'), '10m call mom', ctx);
    const scheduled = scheduler.scheduled[0];
    expect(scheduled?.at.getTime()).toBeGreaterThanOrEqual(before + 10 * MINUTE);
    expect(scheduled?.at.getTime()).toBeLessThanOrEqual(Date.now() + 10 * MINUTE);
    expect(scheduled?.text).toContain('call mom');
    expect(reply).toContain('in 10 min');
    expect(reply).toContain('call mom');
    expect(reply).toContain(`/reminders cancel ${scheduled?.id}`);
  });

  it.each(['30s', '2h', '1.5h', '1d'])('/remind parses %s', (duration) => {
    const parsed = command('reminder', 'remind').args?.safeParse(`${duration} stretch`);
    expect(parsed?.success).toBe(true);
  });

  it.each(['soon x', '10 x', '10m', '', '10y x', '0s x'])('/remind %j answers with the usage', async (text) => {
    const { ctx, scheduler } = await harness({ pluginName: 'reminder' });
    const reply = await runCommand(command('reminder', 'remind'), text, ctx);
    expect(reply).toMatch(/^Usage: \/remind <duration> <text>/);
    expect(scheduler.scheduled).toHaveLength(0);
  });

  it('/reminders lists pending reminders, drops past ones, and cancels only the caller’s own', async () => {
    const { ctx, scheduler, store } = await harness({ pluginName: 'reminder' });
    const reminders = command('reminder', 'reminders');
    expect(await runCommand(reminders, '', ctx)).toContain('no pending reminders');

    await runCommand(command('reminder', 'remind'), '2h water plants', ctx);
    await runCommand(command('reminder', 'remind'), '10m call mom', ctx);
    const key = 'plugin:reminder:reminders:telegram:42';
    await store.hset(key, { old: JSON.stringify({ at: '2001-01-01T00:00:00.000Z', text: 'long gone' }) });

    const list = await runCommand(reminders, '', ctx);
    const [first, second] = scheduler.scheduled;
    expect(list).toContain(`${second?.id} — ${second?.at.toISOString().replace(/\.\d{3}Z$/, 'Z')} — call mom`);
    expect(list).toContain('water plants');
    expect(list.indexOf('call mom')).toBeLessThan(list.indexOf('water plants'));
    expect(list).not.toContain('long gone');
    expect(await store.hget(key, 'old')).toBeNull();

    const other = await harness({ pluginName: 'reminder', store, scheduler, caller: { userId: 'telegram:7', address: 'telegram:7' } });
    expect(await runCommand(reminders, `cancel ${first?.id}`, other.ctx)).toContain(`no reminder with the id ${first?.id}`);
    expect(scheduler.cancelled).toEqual([]);

    expect(await runCommand(reminders, `cancel ${first?.id}`, ctx)).toContain('Cancelled the reminder');
    expect(scheduler.cancelled).toEqual([first?.id]);
    expect(await runCommand(reminders, '', ctx)).not.toContain('water plants');
    expect(await runCommand(reminders, `cancel ${first?.id}`, ctx)).toContain('no reminder with the id');
    expect(await runCommand(reminders, 'cancel nope', ctx)).toContain('no reminder with the id nope');
    expect(await runCommand(reminders, 'delete all', ctx)).toMatch(/^Usage: \/reminders/);
  });
});
