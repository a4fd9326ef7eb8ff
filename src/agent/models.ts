/**
 * The model catalog: which models the agent may use, on which backends, and the quota pools. It comes
 * from MODELS_FILE (JSON, or YAML for .yaml/.yml) when set; without it, or when the file lists no
 * models, the OPENAI_* variables define one default model.
 *
 * @example models.yaml
 * default: gpt-4o-mini
 * models:
 *   - name: gpt-4o-mini
 *     baseURL: https://api.openai.com/v1
 *     apiKeyEnv: OPENAI_API_KEY
 *     contextSize: 128000
 *     fallback: local
 *   - name: local
 *     model: llama3.1:8b
 *     baseURL: http://127.0.0.1:11434/v1
 *     apiKeyEnv: OLLAMA_KEY
 *     tools: prompt
 * pools:
 *   - name: school
 *     token: 8f3c-long-random-token
 *     perUser: { requestsPerDay: 100 }
 *     total: { tokensPerDay: 2000000 }
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Config } from '../core/config.ts';
import { ConfigError, zodIssues } from '../core/errors.ts';
import type { QuotaLimits } from './quotas.ts';

const limit = z.number().int().min(0);
const LimitsSchema = z.strictObject({ requestsPerDay: limit.optional(), tokensPerDay: limit.optional() });
const nameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'letters, digits, _ . : - (at most 64)');

const ModelSchema = z.strictObject({
  /** What users call it in /model. */
  name: nameSchema,
  /** The id the backend knows it by (default: the name). */
  model: z.string().min(1).optional(),
  description: z.string().optional(),
  /** The backend's OpenAI-compatible base URL (default: the SDK's, api.openai.com). */
  baseURL: z.url().optional(),
  /** The environment variable holding the backend's API key. */
  apiKeyEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
    .default('OPENAI_API_KEY'),
  tools: z.enum(['native', 'prompt']).default('native'),
  /** The context window in tokens: older history is left out to stay within it. */
  contextSize: z.number().int().min(256).optional(),
  /** A model (by name) that answers when this one fails after the SDK's retries. */
  fallback: nameSchema.optional(),
});

const PoolSchema = z.strictObject({
  name: nameSchema,
  /** What users send with `/login token <token>`. */
  token: z.string().min(12, 'at least 12 characters'),
  perUser: LimitsSchema.default({}),
  total: LimitsSchema.optional(),
});

export const ModelsFileSchema = z.strictObject({
  /** The model of chats that picked none (default: the first listed). */
  default: nameSchema.optional(),
  models: z.array(ModelSchema).default([]),
  pools: z.array(PoolSchema).default([]),
});

export type ModelsFile = z.infer<typeof ModelsFileSchema>;

/** A model ready to call: its key read from the environment. */
export interface CatalogModel {
  readonly name: string;
  readonly model: string;
  readonly description: string | undefined;
  readonly baseURL: string | undefined;
  readonly apiKey: string;
  readonly tools: 'native' | 'prompt';
  readonly contextSize: number | undefined;
  readonly fallback: string | undefined;
}

export interface QuotaPool {
  readonly name: string;
  readonly token: string;
  readonly perUser: QuotaLimits;
  readonly total: QuotaLimits | undefined;
}

export class ModelCatalog {
  private readonly byName: ReadonlyMap<string, CatalogModel>;
  private readonly poolsByName: ReadonlyMap<string, QuotaPool>;

  /** @throws ConfigError when names repeat or a default or fallback names no model. */
  constructor(
    readonly models: readonly CatalogModel[],
    readonly defaultName: string | undefined,
    readonly pools: readonly QuotaPool[] = [],
  ) {
    this.byName = uniqueBy(models, 'model');
    this.poolsByName = uniqueBy(pools, 'pool');
    uniqueBy(
      pools.map((p) => ({ name: p.token })),
      'pool token',
      () => 'two pools have the same token',
    );
    if (defaultName !== undefined && !this.byName.has(defaultName))
      throw new ConfigError(`the default model "${defaultName}" is not listed`);
    for (const model of models) {
      if (model.fallback === undefined) continue;
      if (!this.byName.has(model.fallback)) throw new ConfigError(`model ${model.name}: its fallback "${model.fallback}" is not listed`);
      if (model.fallback === model.name) throw new ConfigError(`model ${model.name} cannot be its own fallback`);
    }
  }

  /** The chat's model: the one it picked, when still listed, else the default. */
  pick(name: string | null | undefined): CatalogModel | undefined {
    return (name ? this.byName.get(name) : undefined) ?? this.default;
  }

  get default(): CatalogModel | undefined {
    return this.defaultName === undefined ? undefined : this.byName.get(this.defaultName);
  }

  get(name: string): CatalogModel | undefined {
    return this.byName.get(name);
  }

  pool(name: string): QuotaPool | undefined {
    return this.poolsByName.get(name);
  }

  poolByToken(token: string): QuotaPool | undefined {
    return this.pools.find((pool) => pool.token === token);
  }
}

/** The catalog the config describes: MODELS_FILE, else (or for an empty model list) OPENAI_*. */
export async function loadModelCatalog(config: Config): Promise<ModelCatalog> {
  const file = config.llm.modelsFile === undefined ? undefined : await readModelsFile(config.llm.modelsFile);
  return catalogOf(file ?? ModelsFileSchema.parse({}), config);
}

/** Builds the catalog from a parsed models file; each model's key is read from `config.env`. */
export function catalogOf(file: ModelsFile, config: Config): ModelCatalog {
  const pools = file.pools.map((p) => ({ name: p.name, token: p.token, perUser: p.perUser, total: p.total }));
  if (file.models.length === 0) {
    if (file.default !== undefined) throw new ConfigError(`the default model "${file.default}" is not listed`);
    const { apiKey, baseURL, model, tools } = config.llm;
    if (apiKey === undefined) return new ModelCatalog([], undefined, pools);
    const only: CatalogModel = {
      name: model,
      model,
      description: undefined,
      baseURL,
      apiKey,
      tools,
      contextSize: undefined,
      fallback: undefined,
    };
    return new ModelCatalog([only], model, pools);
  }
  const models = file.models.map((m): CatalogModel => {
    const apiKey = config.env[m.apiKeyEnv]?.trim();
    if (!apiKey) throw new ConfigError(`model ${m.name}: its API key variable ${m.apiKeyEnv} is not set`);
    return {
      name: m.name,
      model: m.model ?? m.name,
      description: m.description,
      baseURL: m.baseURL,
      apiKey,
      tools: m.tools,
      contextSize: m.contextSize,
      fallback: m.fallback,
    };
  });
  return new ModelCatalog(models, file.default ?? models[0]?.name, pools);
}

/** Reads and validates a models file; every problem is a ConfigError naming the file. */
export async function readModelsFile(file: string): Promise<ModelsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`MODELS_FILE ${file} cannot be read: ${(err as Error).message}`);
  }
  const yaml = /^\.ya?ml$/i.test(path.extname(file));
  let raw: unknown;
  try {
    raw = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`MODELS_FILE ${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  const parsed = ModelsFileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = zodIssues(parsed.error, '(file)');
    throw new ConfigError(`MODELS_FILE ${file} is invalid:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}

function uniqueBy<T extends { readonly name: string }>(items: readonly T[], what: string, message?: () => string): Map<string, T> {
  const map = new Map<string, T>();
  for (const item of items) {
    if (map.has(item.name)) throw new ConfigError(message?.() ?? `two ${what}s are named "${item.name}"`);
    map.set(item.name, item);
  }
  return map;
}
