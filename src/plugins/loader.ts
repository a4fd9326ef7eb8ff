import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { PluginManifestSchema, type PluginManifest } from './manifest.ts';
import type { LoadedPlugin, PluginFailure } from './registry.ts';
import type { PluginDefinition } from './sdk.ts';

export interface LoadPluginsOptions {
  /** Folders whose sub-folders are plugins, in order (a later plugin cannot take an earlier one's name). */
  readonly dirs: readonly string[];
  /** Load only these (empty: all). */
  readonly enabled: readonly string[];
  /** Never load these. */
  readonly disabled: readonly string[];
  /** Where operator settings are read from (the process environment). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
}

export interface LoadedPlugins {
  readonly plugins: LoadedPlugin[];
  readonly failures: PluginFailure[];
}

/** The folder of the plugins that ship with Switchboard. */
export const BUNDLED_PLUGINS_DIR = fileURLToPath(new URL('../../plugins', import.meta.url));

const DefinitionSchema = z.object({
  tools: z
    .array(
      z.object({
        name: z.string(),
        description: z.string(),
        args: z.custom<z.ZodType>((v) => typeof v === 'object' && v !== null && 'safeParse' in v),
      }),
    )
    .optional(),
  commands: z.array(z.object({ name: z.string(), description: z.string() })).optional(),
});

/**
 * Finds plugin folders (`plugin.json` + entry module), validates each manifest, checks its npm
 * packages and imports its entry. A plugin that fails is reported and skipped; the others load.
 */
export async function loadPlugins(options: LoadPluginsOptions): Promise<LoadedPlugins> {
  const plugins: LoadedPlugin[] = [];
  const failures: PluginFailure[] = [];
  const seen = new Set<string>();
  for (const root of options.dirs) {
    for (const dir of await pluginFolders(root)) {
      const fallbackName = path.basename(dir);
      try {
        const manifest = await readManifest(dir);
        if (!selected(manifest.name, options)) continue;
        if (seen.has(manifest.name)) throw new Error(`another plugin named ${manifest.name} was loaded first`);
        seen.add(manifest.name);
        const missing = manifest.packages.filter((pkg) => !packageInstalled(pkg, dir));
        if (missing.length > 0)
          throw new Error(`needs npm packages that are not installed: ${missing.join(', ')} (npm install ${missing.join(' ')})`);
        const definition = await importEntry(dir, manifest);
        plugins.push({ manifest, definition, dir, settings: resolveSettings(manifest, options.env) });
        options.logger.info({ plugin: manifest.name, version: manifest.version, dir }, 'plugin loaded');
      } catch (err) {
        const hint = /require\(\)|require\(esm\)|Cannot use import statement/.test(errorMessage(err))
          ? ' (outside a package with "type": "module", name the entry index.mts)'
          : '';
        const failure = { name: fallbackName, dir, error: `${errorMessage(err)}${hint}` };
        failures.push(failure);
        options.logger.error({ plugin: failure.name, dir, error: failure.error }, 'plugin failed to load; the others run');
      }
    }
  }
  return { plugins, failures };
}

/** Operator settings the manifest declares: from the environment, else their defaults. */
function resolveSettings(manifest: PluginManifest, env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const [key, setting] of Object.entries(manifest.settings)) {
    const value = env[key]?.trim() || setting.default;
    if (value !== undefined) settings[key] = value;
  }
  return settings;
}

/** Whether PLUGINS_ENABLED / PLUGINS_DISABLED select a plugin (built-in ones other than system too). */
export function selected(name: string, options: Pick<LoadPluginsOptions, 'enabled' | 'disabled'>): boolean {
  if (options.disabled.includes(name)) return false;
  return options.enabled.length === 0 || options.enabled.includes(name);
}

async function pluginFolders(root: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory() && existsSync(path.join(root, e.name, 'plugin.json')))
    .map((e) => path.join(root, e.name))
    .sort();
}

async function readManifest(dir: string): Promise<PluginManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path.join(dir, 'plugin.json'), 'utf8'));
  } catch (err) {
    throw new Error(`plugin.json is not valid JSON: ${errorMessage(err)}`);
  }
  const parsed = PluginManifestSchema.safeParse(json);
  if (!parsed.success) throw new Error(`plugin.json: ${z.prettifyError(parsed.error).replaceAll('\n', ' ')}`);
  return parsed.data;
}

async function importEntry(dir: string, manifest: PluginManifest): Promise<PluginDefinition> {
  const entry = path.resolve(dir, manifest.main);
  if (!entry.startsWith(path.resolve(dir) + path.sep)) throw new Error(`main "${manifest.main}" points outside the plugin folder`);
  if (!existsSync(entry)) throw new Error(`entry module ${manifest.main} not found`);
  const module = (await import(pathToFileURL(entry).href)) as { default?: unknown };
  const parsed = DefinitionSchema.safeParse(module.default);
  if (!parsed.success) throw new Error(`${manifest.main} must default-export definePlugin({ tools, commands })`);
  return module.default as PluginDefinition;
}

/** True when `pkg` can be found from the plugin's folder upwards (node_modules resolution). */
function packageInstalled(pkg: string, from: string): boolean {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'node_modules', pkg, 'package.json'))) return true;
    if (path.dirname(dir) === dir) return false;
  }
}
