import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { loadPlugins } from '../../src/plugins/loader.ts';
import { PluginRegistry } from '../../src/plugins/registry.ts';
import type { Caller } from '../../src/plugins/sdk.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/plugins');
const logger = createLogger('silent');
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A folder of plugins written for one test: name → files. */
async function pluginDir(plugins: Record<string, Record<string, string>>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'plugins-'));
  dirs.push(root);
  for (const [name, files] of Object.entries(plugins)) {
    await mkdir(path.join(root, name));
    for (const [file, text] of Object.entries(files)) await writeFile(path.join(root, name, file), text);
  }
  return root;
}

const manifest = (fields: Record<string, unknown>): string =>
  JSON.stringify({ name: 'demo', version: '1.0.0', description: 'A demo plugin', ...fields });
const entry = `import { definePlugin, defineTool, z } from 'switchboard/sdk';
export default definePlugin({ tools: [defineTool({ name: 'demo_tool', description: 'd', args: z.object({ n: z.number().int().describe('a number') }), run: async ({ n }) => n * 2 })] });`;

const caller = (overrides: Partial<Caller> = {}): Caller => ({
  userId: 'http:alice',
  address: 'http:alice',
  platform: 'http',
  chatType: 'private',
  isAdmin: false,
  conversation: 'http:alice',
  ...overrides,
});

describe('plugin loader', () => {
  it('loads a plugin, and reports a broken one without stopping the others', async () => {
    const { plugins, failures } = await loadPlugins({ dirs: [FIXTURES], enabled: [], disabled: [], env: {}, logger });
    expect(plugins.map((p) => p.manifest.name)).toEqual(['testkit', 'vault']);
    expect(failures).toEqual([expect.objectContaining({ name: 'broken', error: 'this plugin is broken on purpose' })]);
  });

  it('selects plugins with PLUGINS_ENABLED and PLUGINS_DISABLED', async () => {
    const only = await loadPlugins({ dirs: [FIXTURES], enabled: ['vault'], disabled: [], env: {}, logger });
    expect(only.plugins.map((p) => p.manifest.name)).toEqual(['vault']);
    const without = await loadPlugins({ dirs: [FIXTURES], enabled: [], disabled: ['testkit', 'broken'], env: {}, logger });
    expect(without.plugins.map((p) => p.manifest.name)).toEqual(['vault']);
    expect(without.failures).toEqual([]);
  });

  it('refuses a bad manifest, a missing npm package and a missing entry, naming what is wrong', async () => {
    const root = await pluginDir({
      badname: { 'plugin.json': manifest({ name: 'Bad Name' }), 'index.ts': entry },
      nopkg: { 'plugin.json': manifest({ name: 'nopkg', packages: ['left-pad-that-is-not-installed'] }), 'index.ts': entry },
      noentry: { 'plugin.json': manifest({ name: 'noentry', main: 'missing.ts' }) },
      notjson: { 'plugin.json': '{ nope' },
      noexport: { 'plugin.json': manifest({ name: 'noexport' }), 'index.ts': 'export const x = 1;' },
    });
    const { plugins, failures } = await loadPlugins({ dirs: [root], enabled: [], disabled: [], env: {}, logger });
    expect(plugins).toEqual([]);
    const errors = Object.fromEntries(failures.map((f) => [f.name, f.error]));
    expect(errors.badname).toMatch(/plugin\.json:.*name/);
    expect(errors.nopkg).toMatch(/npm install left-pad-that-is-not-installed/);
    expect(errors.noentry).toMatch(/entry module missing\.ts not found/);
    expect(errors.notjson).toMatch(/not valid JSON/);
    expect(errors.noexport).toMatch(/must default-export definePlugin/);
  });

  it('resolves settings from the environment, else their defaults', async () => {
    const root = await pluginDir({
      demo: { 'plugin.json': manifest({ settings: { DEMO_URL: { default: 'https://demo.example' }, DEMO_MODE: {} } }), 'index.ts': entry },
    });
    const { plugins, failures } = await loadPlugins({ dirs: [root], enabled: [], disabled: [], env: { DEMO_MODE: 'fast' }, logger });
    expect(failures).toEqual([]);
    expect(plugins[0]?.settings).toEqual({ DEMO_URL: 'https://demo.example', DEMO_MODE: 'fast' });
  });

  it('generates the JSON Schema the LLM sees from the zod arguments', async () => {
    const root = await pluginDir({ demo: { 'plugin.json': manifest({}), 'index.ts': entry } });
    const registry = new PluginRegistry((await loadPlugins({ dirs: [root], enabled: [], disabled: [], env: {}, logger })).plugins);
    expect(registry.tool('demo_tool')?.spec).toEqual({
      name: 'demo_tool',
      description: 'd',
      parameters: expect.objectContaining({
        type: 'object',
        properties: { n: expect.objectContaining({ type: 'integer', description: 'a number' }) },
        required: ['n'],
      }),
    });
  });

  it('refuses a plugin whose tool name another plugin took first', async () => {
    const root = await pluginDir({
      a: { 'plugin.json': manifest({ name: 'a' }), 'index.ts': entry },
      b: { 'plugin.json': manifest({ name: 'b' }), 'index.ts': entry },
    });
    const loaded = await loadPlugins({ dirs: [root], enabled: [], disabled: [], env: {}, logger });
    const registry = new PluginRegistry(loaded.plugins, loaded.failures);
    expect(registry.plugins.map((p) => p.manifest.name)).toEqual(['a']);
    expect(registry.failures).toEqual([expect.objectContaining({ name: 'b', error: 'tool demo_tool is already defined by plugin a' })]);
  });

  it('applies scope, platform and admin rules the same way to what is offered and what is allowed', async () => {
    const { plugins } = await loadPlugins({ dirs: [FIXTURES], enabled: ['testkit'], disabled: [], env: {}, logger });
    const registry = new PluginRegistry(plugins);
    const names = (c: Caller): string[] => registry.toolsFor(c).map((t) => t.tool.name);
    expect(names(caller())).not.toContain('group_tool');
    expect(names(caller())).not.toContain('admin_tool');
    expect(names(caller({ chatType: 'group' }))).toContain('group_tool');
    expect(names(caller({ isAdmin: true }))).toContain('admin_tool');
    // Each kind of caller keeps its own answer, however the calls interleave.
    expect(names(caller({ chatType: 'group', isAdmin: true }))).toEqual(expect.arrayContaining(['group_tool', 'admin_tool']));
    expect(names(caller())).not.toContain('group_tool');
    expect(names(caller({ isAdmin: true }))).not.toContain('group_tool');
    expect(registry.commandsFor(caller()).map((c) => c.command.name)).toEqual(['peek', 'tally']);
    const group = registry.tool('group_tool');
    expect(group && registry.refusal(group.plugin, group.tool, caller())).toBe('it works only in group chats');
    const telegramOnly = { ...plugins[0]!, manifest: { ...plugins[0]!.manifest, platforms: ['telegram'] } };
    expect(new PluginRegistry([telegramOnly]).toolsFor(caller())).toEqual([]);
  });
});
