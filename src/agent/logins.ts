/**
 * Users' LLM credentials (`/login`): their own key for an OpenAI-compatible backend, sealed like /env
 * values, and the quota pool they joined with a pool token. Both live in the hash `login:<userId>`:
 * field `own` holds the sealed `{ baseURL, apiKey, model? }`, field `pool` holds `<pool>:<sha256 of
 * the token>`, so the token itself is never stored and a pool whose token the operator changes drops
 * the users who joined with the old one.
 *
 * @example
 * const logins = new Logins(store, box);
 * await logins.setOwn('tg:42', { baseURL: 'https://api.example.com/v1', apiKey: 'sk-…' });
 * await logins.get('tg:42'); // { own: { baseURL: 'https://api.example.com/v1', apiKey: 'sk-…' }, pool: undefined }
 */
import { z } from 'zod';
import type { SecretBox } from '../core/secret-box.ts';
import type { Store } from '../store/store.ts';
import { sha256Hex } from '../core/ids.ts';

const OwnKeySchema = z.object({ baseURL: z.url(), apiKey: z.string().min(1), model: z.string().min(1).optional() });

/** A user's own backend: every LLM call of theirs goes there with their key, with no quota. */
export type OwnKey = z.infer<typeof OwnKeySchema>;

export interface PoolMembership {
  readonly pool: string;
  readonly tokenDigest: string;
}

export interface UserLogin {
  readonly own: OwnKey | undefined;
  readonly pool: PoolMembership | undefined;
}

/**
 * Parses what follows `/login`: `<baseURL> <apiKey> [model]` or `token <token>`; `undefined` when it
 * is neither (messages never echo the key).
 */
export function parseLogin(
  args: string,
): { kind: 'own'; own: OwnKey } | { kind: 'pool'; token: string } | { kind: 'error'; message: string } {
  const words = args.trim().split(/\s+/).filter(Boolean);
  if (words[0] === 'token') {
    return words.length === 2 && words[1] !== undefined
      ? { kind: 'pool', token: words[1] }
      : { kind: 'error', message: 'Use /login token <token>.' };
  }
  if (words.length < 2 || words.length > 3) return { kind: 'error', message: USAGE };
  const [baseURL, apiKey, model] = words;
  const parsed = OwnKeySchema.safeParse({ baseURL, apiKey, ...(model ? { model } : {}) });
  if (!parsed.success || !/^https?:$/.test(new URL(parsed.data.baseURL).protocol)) {
    return { kind: 'error', message: `The first word must be the backend's base URL (http or https). ${USAGE}` };
  }
  return { kind: 'own', own: parsed.data };
}

const USAGE = 'Use /login <baseURL> <apiKey> [model], e.g. /login https://api.openai.com/v1 sk-… gpt-4o-mini, or /login token <token>.';

export class Logins {
  constructor(
    private readonly store: Store,
    /** Seals own keys; without it (no SECRET_KEY) only pool tokens can be used. */
    private readonly box: SecretBox | undefined,
  ) {}

  get ownKeysEnabled(): boolean {
    return this.box !== undefined;
  }

  async setOwn(userId: string, own: OwnKey): Promise<void> {
    if (!this.box) throw new Error('own keys need SECRET_KEY');
    await this.store.hset(hashKey(userId), { own: this.box.seal(JSON.stringify(own), aad(userId)) });
  }

  async joinPool(userId: string, pool: string, token: string): Promise<void> {
    await this.store.hset(hashKey(userId), { pool: `${pool}:${digest(token)}` });
  }

  /** Forgets the user's own key and pool; false when there was neither. */
  async clear(userId: string): Promise<boolean> {
    return (await this.store.hdel(hashKey(userId), 'own', 'pool')) > 0;
  }

  /** What the user logged in with. An own key that does not open (another SECRET_KEY) counts as none. */
  async get(userId: string): Promise<UserLogin> {
    const fields = await this.store.hgetall(hashKey(userId));
    let own: OwnKey | undefined;
    if (fields.own !== undefined && this.box) {
      try {
        own = OwnKeySchema.parse(JSON.parse(this.box.open(fields.own, aad(userId))));
      } catch {
        own = undefined; // unreadable: as if absent, and nothing about it is logged
      }
    }
    const colon = fields.pool?.lastIndexOf(':') ?? -1;
    const pool =
      fields.pool !== undefined && colon > 0 ? { pool: fields.pool.slice(0, colon), tokenDigest: fields.pool.slice(colon + 1) } : undefined;
    return { own, pool };
  }

  /** Whether a membership still holds: the pool's token is the one the user joined with. */
  static sameToken(membership: PoolMembership, token: string): boolean {
    return membership.tokenDigest === digest(token);
  }
}

function digest(token: string): string {
  return sha256Hex(token);
}

function hashKey(userId: string): string {
  return `login:${userId}`;
}

function aad(userId: string): string {
  return `${userId}\nLOGIN`;
}
