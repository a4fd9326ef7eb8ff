/**
 * Per-user private env values (set by users with `/env KEY=VALUE`), encrypted at rest. They live in
 * the hash `env:<userId>`, field KEY → value sealed by the SecretBox with aad `<userId>\n<KEY>`, so a
 * sealed value copied to another user or another name does not open.
 *
 * @example
 * const env = new UserEnv(store, new SecretBox(config.secretKey));
 * await env.set('tg:42', 'GITHUB_TOKEN', 'ghp_123');
 * await env.values('tg:42', ['GITHUB_TOKEN', 'OTHER']); // { GITHUB_TOKEN: 'ghp_123' }
 */
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import type { SecretBox } from '../core/secret-box.ts';
import type { Store } from '../store/store.ts';

/** Longest value accepted, in characters. */
export const MAX_ENV_VALUE_LENGTH = 4096;

const KEY_RULE = 'names are 1-64 characters of A-Z, 0-9 and _, starting with an uppercase letter (e.g. GITHUB_TOKEN)';

/** A valid env key name. */
export const envKeySchema = z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, { error: `invalid name: ${KEY_RULE}` });

/** What `/env <text>` asks for; messages of `error` never contain the value the user typed. */
export type EnvAssignment =
  | { readonly kind: 'list' }
  | { readonly kind: 'set'; readonly key: string; readonly value: string }
  | { readonly kind: 'delete'; readonly key: string }
  | { readonly kind: 'error'; readonly message: string };

const USAGE = 'use /env KEY=VALUE to set, /env -KEY to delete, or /env to list';

/**
 * Parses the text after `/env`: '' → list, `-KEY` → delete, `KEY=VALUE` → set (split at the first
 * '=', both sides trimmed; the value may hold '=' and spaces but not be empty).
 */
export function parseEnvAssignment(text: string): EnvAssignment {
  const trimmed = text.trim();
  if (trimmed === '') return { kind: 'list' };
  const eq = trimmed.indexOf('=');
  if (eq === -1) {
    if (!trimmed.startsWith('-')) return { kind: 'error', message: `Expected KEY=VALUE: ${USAGE}.` };
    const key = trimmed.slice(1).trim();
    return envKeySchema.safeParse(key).success ? { kind: 'delete', key } : { kind: 'error', message: `Invalid name: ${KEY_RULE}.` };
  }
  const key = trimmed.slice(0, eq).trim();
  const value = trimmed.slice(eq + 1).trim();
  const problem = checkEntry(key, value);
  return problem === undefined ? { kind: 'set', key, value } : { kind: 'error', message: problem };
}

/** Why a key/value pair cannot be stored (without echoing the value), or undefined when it can. */
function checkEntry(key: string, value: string): string | undefined {
  if (!envKeySchema.safeParse(key).success) return `Invalid name: ${KEY_RULE}.`;
  if (value === '') return `Missing value for ${key}: ${USAGE}.`;
  if (value.length > MAX_ENV_VALUE_LENGTH) return `Value for ${key} is too long (at most ${MAX_ENV_VALUE_LENGTH} characters).`;
  return undefined;
}

export class UserEnv {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
  ) {}

  /** Stores (or replaces) a value. @throws ValidationError for a bad name or an empty or too long value. */
  async set(userId: string, key: string, value: string): Promise<void> {
    const problem = checkEntry(key, value);
    if (problem !== undefined) throw new ValidationError(problem);
    await this.store.hset(hashKey(userId), { [key]: this.box.seal(value, aad(userId, key)) });
  }

  /** Removes a value; false when there was none. @throws ValidationError for a bad name. */
  async delete(userId: string, key: string): Promise<boolean> {
    if (!envKeySchema.safeParse(key).success) throw new ValidationError(`Invalid name: ${KEY_RULE}.`);
    return (await this.store.hdel(hashKey(userId), key)) > 0;
  }

  /** The names the user has set, sorted; never the values. */
  async keys(userId: string): Promise<string[]> {
    return Object.keys(await this.store.hgetall(hashKey(userId))).sort();
  }

  /**
   * The values of the asked names that exist. A value that does not open (another SECRET_KEY, tampered,
   * moved from another user or name) is left out silently.
   */
  async values(userId: string, keys: readonly string[]): Promise<Record<string, string>> {
    const wanted = new Set(keys.filter((key) => envKeySchema.safeParse(key).success));
    if (wanted.size === 0) return {};
    const sealed = await this.store.hgetall(hashKey(userId));
    const result: Record<string, string> = {};
    for (const key of wanted) {
      if (!Object.hasOwn(sealed, key)) continue;
      const value = sealed[key];
      if (value === undefined) continue;
      try {
        result[key] = this.box.open(value, aad(userId, key));
      } catch {
        // Unreadable: skipped on purpose, and nothing about it is logged.
      }
    }
    return result;
  }
}

function hashKey(userId: string): string {
  return `env:${userId}`;
}

function aad(userId: string, key: string): string {
  return `${userId}\n${key}`;
}
