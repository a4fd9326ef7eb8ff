import { z } from 'zod';
import { ConfigError, zodIssues } from './errors.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));
const optionalUrl = optionalString.pipe(z.url().optional());
/** A whole number ≥ 0, or empty for none. */
const optionalCount = optionalString.pipe(z.coerce.number<string | undefined>().int().min(0).optional());

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** `name:secret,name:secret`: the name is the client's user id, its address is `http:<name>`. */
const apiKeys = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const clients = new Map<string, string>();
    for (const part of raw
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const colon = part.indexOf(':');
      const name = part.slice(0, colon);
      const secret = part.slice(colon + 1);
      if (colon <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(name) || secret.length < 8) {
        ctx.addIssue({
          code: 'custom',
          message: 'each entry must be name:secret (name of letters, digits, _ . -; secret of at least 8 characters)',
        });
        return z.NEVER;
      }
      clients.set(name, secret);
    }
    return clients;
  });

const list = z
  .string()
  .default('')
  .transform((raw) =>
    raw
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  );

/**
 * Every environment variable Switchboard reads, with its default. README.md and .env.example list
 * the same variables (a unit test keeps them in sync).
 */
export const ConfigSchema = z.object({
  HTTP_HOST: z.string().default('127.0.0.1'),
  HTTP_PORT: int(0, 65535).default(8080),
  API_KEYS: apiKeys,
  ADMIN_USERS: list,
  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalUrl,
  OPENAI_MODEL: z.string().default('gpt-4o-mini'),
  SYSTEM_PROMPT: z.string().default('You are Switchboard, a helpful assistant. Answer concisely.'),
  LLM_TIMEOUT_MS: int(1000, 600_000).default(60_000),
  LLM_MAX_RETRIES: int(0, 10).default(2),
  HISTORY_MAX_TURNS: int(1, 1000).default(20),
  MESSAGE_MAX_CHARS: int(1, 1_000_000).default(16_000),
  DATA_DIR: z.string().default('./data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  AMQP_URL: optionalUrl,
  REDIS_URL: optionalUrl,
  BUS_NAMESPACE: z
    .string()
    .regex(/^([A-Za-z0-9_-]{1,64})?$/, 'letters, digits, _ or -')
    .default(''),
  REDIS_PREFIX: z.string().max(64).default('switchboard:'),
  METRICS_PORT: optionalString.pipe(z.coerce.number<string | undefined>().int().min(1).max(65535).optional()),
  DEAD_LETTERS_MAX: int(1, 1_000_000).default(10_000),
  AGENT_SHARDS: int(1, 256).default(8),
  BUS_PREFETCH: int(1, 10_000).default(100),
  BUS_DELIVERY_LIMIT: int(1, 1000).default(5),
  CALLBACK_MAX_ATTEMPTS: int(1, 20).default(5),
  TASK_TTL_DAYS: int(1, 3650).default(7),
  SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  OPENAI_TOOLS: z.enum(['native', 'prompt']).default('native'),
  PLUGINS_DIRS: list,
  PLUGINS_ENABLED: list,
  PLUGINS_DISABLED: list,
  PLUGIN_FAILURE_LIMIT: int(1, 1000).default(3),
  TOOL_TIMEOUT_MS: int(100, 600_000).default(30_000),
  TOOL_RESULT_MAX_CHARS: int(100, 1_000_000).default(8_000),
  TOOL_CALLS_PER_NODE: int(1, 64).default(8),
  TOOL_CONCURRENCY: int(1, 64).default(4),
  CHAIN_MAX_DEPTH: int(1, 64).default(8),
  CONFIRM_TTL: int(1, 7 * 86_400).default(600),
  SECRET_KEY: optionalString.pipe(z.string().min(16, 'at least 16 characters').optional()),
  MODELS_FILE: optionalString,
  QUOTA_PUBLIC_REQUESTS_PER_DAY: optionalCount,
  QUOTA_PUBLIC_TOKENS_PER_DAY: optionalCount,
  QUOTA_TZ: z.string().default('UTC').refine(isTimeZone, 'an IANA time zone name such as UTC, Europe/Berlin or Asia/Tokyo'),
  TELEGRAM_BOT_TOKEN: optionalString,
  TELEGRAM_API_ROOT: z.url().default('https://api.telegram.org'),
  TELEGRAM_MAX_CHUNKS: int(1, 100).default(8),
  TELEGRAM_MODE: z.enum(['polling', 'webhook']).default('polling'),
  TELEGRAM_WEBHOOK_URL: optionalUrl,
  TELEGRAM_WEBHOOK_SECRET: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,256}$/, '1 to 256 letters, digits, _ or -')
      .optional(),
  ),
  TELEGRAM_MAX_UPDATE_AGE: int(1, 86_400).default(600),
  RSS_INTERVAL: int(1, 7 * 86_400).default(600),
  RSS_MAX_SUBSCRIPTIONS: int(1, 10_000).default(50),
  RSS_INITIAL_ITEMS: int(0, 20).default(1),
  RSS_MAX_FAILURES: int(1, 1000).default(5),
  RSS_TIMEOUT_MS: int(100, 120_000).default(15_000),
  RSS_MAX_BYTES: int(1024, 100_000_000).default(5_000_000),
  RSS_ALLOW_PRIVATE: z
    .enum(['0', '1', 'true', 'false'])
    .default('0')
    .transform((v) => v === '1' || v === 'true'),
});

export type RawConfig = z.infer<typeof ConfigSchema>;

export interface Config {
  readonly http: { readonly host: string; readonly port: number };
  /** API client name → secret. */
  readonly apiKeys: ReadonlyMap<string, string>;
  readonly adminUsers: ReadonlySet<string>;
  readonly llm: {
    readonly apiKey: string | undefined;
    readonly baseURL: string | undefined;
    readonly model: string;
    readonly systemPrompt: string;
    readonly timeoutMs: number;
    readonly maxRetries: number;
    /** `prompt`: the model has no tool calling; tools are described in its prompt. */
    readonly tools: 'native' | 'prompt';
    /** Models, backends and quota pools (JSON or YAML); without it OPENAI_* define one model. */
    readonly modelsFile: string | undefined;
  };
  readonly quotas: {
    /** Daily limits per user on the public provider (the server's key); undefined = none. */
    readonly publicRequestsPerDay: number | undefined;
    readonly publicTokensPerDay: number | undefined;
    /** The time zone whose midnight starts a new quota day. */
    readonly timeZone: string;
  };
  readonly plugins: {
    /** Extra folders of plugins, after the bundled plugins/ folder. */
    readonly dirs: readonly string[];
    readonly enabled: readonly string[];
    readonly disabled: readonly string[];
    readonly failureLimit: number;
    readonly toolTimeoutMs: number;
    readonly toolResultMaxChars: number;
    readonly toolCallsPerNode: number;
    readonly toolConcurrency: number;
    readonly chainMaxDepth: number;
    readonly confirmTtlMs: number;
  };
  readonly telegram: {
    /** Without it the Telegram roles do nothing (under --role all) or refuse to start (alone). */
    readonly token: string | undefined;
    readonly apiRoot: string;
    /** An answer longer than this many messages goes as a .md document. */
    readonly maxChunks: number;
    /** How the receiver gets updates: long polling, or Telegram posting them to the api's webhook route. */
    readonly mode: 'polling' | 'webhook';
    /** The public URL Telegram posts updates to (webhook mode); its path is the api's route. */
    readonly webhookUrl: string | undefined;
    /** The X-Telegram-Bot-Api-Secret-Token the webhook route requires (default: derived from the token). */
    readonly webhookSecret: string | undefined;
    /** Updates older than this when they arrive get one "I was offline" notice per chat instead of an answer. */
    readonly maxUpdateAgeMs: number;
  };
  readonly rss: {
    readonly intervalMs: number;
    readonly maxSubscriptions: number;
    readonly initialItems: number;
    readonly maxFailures: number;
    readonly timeoutMs: number;
    readonly maxBytes: number;
    readonly allowPrivate: boolean;
  };
  /** Encrypts users' private env values; /env is off without it. */
  readonly secretKey: string | undefined;
  /** The environment as given: plugins read the operator settings they declare from it. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly limits: {
    readonly historyMaxTurns: number;
    readonly messageMaxChars: number;
    readonly callbackMaxAttempts: number;
    readonly taskTtlMs: number;
  };
  readonly dataDir: string;
  readonly logLevel: RawConfig['LOG_LEVEL'];
  readonly amqpUrl: string | undefined;
  readonly redisUrl: string | undefined;
  readonly bus: {
    readonly shards: number;
    readonly prefetch: number;
    readonly deliveryLimit: number;
    /** Prefix of every RabbitMQ exchange and queue name ('' = none). */
    readonly namespace: string;
    readonly deadLettersMax: number;
  };
  readonly redisPrefix: string;
  /** Serve /metrics on this port in processes that do not run the api role. */
  readonly metricsPort: number | undefined;
  readonly shutdownTimeoutMs: number;
}

/** Parses the environment; a bad value throws a ConfigError that names the variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) {
    const lines = zodIssues(result.error, '(env)');
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const c = result.data;
  return {
    http: { host: c.HTTP_HOST, port: c.HTTP_PORT },
    apiKeys: c.API_KEYS,
    adminUsers: new Set(c.ADMIN_USERS),
    llm: {
      apiKey: c.OPENAI_API_KEY,
      baseURL: c.OPENAI_BASE_URL,
      model: c.OPENAI_MODEL,
      systemPrompt: c.SYSTEM_PROMPT,
      timeoutMs: c.LLM_TIMEOUT_MS,
      maxRetries: c.LLM_MAX_RETRIES,
      tools: c.OPENAI_TOOLS,
      modelsFile: c.MODELS_FILE,
    },
    quotas: {
      publicRequestsPerDay: c.QUOTA_PUBLIC_REQUESTS_PER_DAY,
      publicTokensPerDay: c.QUOTA_PUBLIC_TOKENS_PER_DAY,
      timeZone: c.QUOTA_TZ,
    },
    plugins: {
      dirs: c.PLUGINS_DIRS,
      enabled: c.PLUGINS_ENABLED,
      disabled: c.PLUGINS_DISABLED,
      failureLimit: c.PLUGIN_FAILURE_LIMIT,
      toolTimeoutMs: c.TOOL_TIMEOUT_MS,
      toolResultMaxChars: c.TOOL_RESULT_MAX_CHARS,
      toolCallsPerNode: c.TOOL_CALLS_PER_NODE,
      toolConcurrency: c.TOOL_CONCURRENCY,
      chainMaxDepth: c.CHAIN_MAX_DEPTH,
      confirmTtlMs: c.CONFIRM_TTL * 1000,
    },
    telegram: {
      token: c.TELEGRAM_BOT_TOKEN,
      apiRoot: c.TELEGRAM_API_ROOT.replace(/\/+$/, ''),
      maxChunks: c.TELEGRAM_MAX_CHUNKS,
      mode: c.TELEGRAM_MODE,
      webhookUrl: c.TELEGRAM_WEBHOOK_URL,
      webhookSecret: c.TELEGRAM_WEBHOOK_SECRET,
      maxUpdateAgeMs: c.TELEGRAM_MAX_UPDATE_AGE * 1000,
    },
    rss: {
      intervalMs: c.RSS_INTERVAL * 1000,
      maxSubscriptions: c.RSS_MAX_SUBSCRIPTIONS,
      initialItems: c.RSS_INITIAL_ITEMS,
      maxFailures: c.RSS_MAX_FAILURES,
      timeoutMs: c.RSS_TIMEOUT_MS,
      maxBytes: c.RSS_MAX_BYTES,
      allowPrivate: c.RSS_ALLOW_PRIVATE,
    },
    secretKey: c.SECRET_KEY,
    env,
    limits: {
      historyMaxTurns: c.HISTORY_MAX_TURNS,
      messageMaxChars: c.MESSAGE_MAX_CHARS,
      callbackMaxAttempts: c.CALLBACK_MAX_ATTEMPTS,
      taskTtlMs: c.TASK_TTL_DAYS * 86_400_000,
    },
    dataDir: c.DATA_DIR,
    logLevel: c.LOG_LEVEL,
    amqpUrl: c.AMQP_URL,
    redisUrl: c.REDIS_URL,
    bus: {
      shards: c.AGENT_SHARDS,
      prefetch: c.BUS_PREFETCH,
      deliveryLimit: c.BUS_DELIVERY_LIMIT,
      namespace: c.BUS_NAMESPACE,
      deadLettersMax: c.DEAD_LETTERS_MAX,
    },
    redisPrefix: c.REDIS_PREFIX,
    metricsPort: c.METRICS_PORT,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
  };
}
