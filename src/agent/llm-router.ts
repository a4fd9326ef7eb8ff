/**
 * Which backend answers a caller, with whose credentials, under which quota. First that applies:
 * the user's own key (`/login <baseURL> <apiKey>`, no quota); a pool they joined (`/login token`),
 * the server's key under the pool's limits; else the server's key under the public limits. The model
 * is the one the chat picked with `/model`, else the catalog's default.
 *
 * @example
 * const route = await router.route({ userId: 'telegram:42', address: 'telegram:42' });
 * if (route === undefined) return 'no LLM configured';
 * const verdict = route.scope ? await quotas.check(route.scope, route.quotaUser) : { ok: true };
 * const answer = await route.client.complete(messages, { tools });
 */
import type { Store } from '../store/store.ts';
import type { LlmClient } from './llm.ts';
import { Logins, type UserLogin } from './logins.ts';
import type { CatalogModel, ModelCatalog, QuotaPool } from './models.ts';
import { OpenAiLlm } from './openai-llm.ts';
import { PromptToolsLlm } from './prompt-tools-llm.ts';
import type { QuotaLimits, QuotaScope } from './quotas.ts';
import { sha256Hex } from '../core/ids.ts';

/** Where one LLM call of a caller goes. */
export interface LlmRoute {
  readonly kind: 'own' | 'pool' | 'public';
  /** The model as users know it (a catalog name, or an own key's model id). */
  readonly modelName: string;
  /** The backend, for messages (an own key's base URL; a catalog model's, or undefined for OpenAI's). */
  readonly baseURL: string | undefined;
  readonly client: LlmClient;
  readonly contextSize: number | undefined;
  /** The quota this call counts against; undefined for an own key. */
  readonly scope: QuotaScope | undefined;
  /** Whose allowance it takes from inside the scope. */
  readonly quotaUser: string;
  /** Answers when the client fails after its retries (never for an own key). */
  readonly fallback: { readonly modelName: string; readonly client: LlmClient } | undefined;
}

export interface LlmRouterOptions {
  readonly catalog: ModelCatalog;
  readonly logins: Logins;
  readonly store: Store;
  readonly publicLimits: QuotaLimits;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  /** The model an own key uses when the user named none and the catalog is empty. */
  readonly ownDefaultModel: string;
}

/** The caller fields routing needs. */
export interface RouteCaller {
  readonly userId: string | null;
  /** The chat: its `/model` choice applies to everyone in it. */
  readonly address: string;
}

/** Own-key clients kept for reuse (least recently used go first). */
const OWN_CLIENTS_MAX = 500;

export class LlmRouter {
  private readonly catalogClients = new Map<string, LlmClient>();
  private readonly ownClients = new Map<string, LlmClient>();

  constructor(private readonly options: LlmRouterOptions) {
    for (const model of options.catalog.models) {
      this.catalogClients.set(model.name, this.client(model.baseURL, model.apiKey, model.model, model.tools));
    }
  }

  get catalog(): ModelCatalog {
    return this.options.catalog;
  }

  get logins(): Logins {
    return this.options.logins;
  }

  /** The route of a caller, or undefined when nothing can answer them (no server model, no own key). */
  async route(caller: RouteCaller): Promise<LlmRoute | undefined> {
    const { catalog } = this.options;
    const quotaUser = caller.userId ?? caller.address;
    const [login, picked] = await Promise.all([
      caller.userId === null ? undefined : this.options.logins.get(caller.userId),
      this.chatModel(caller.address),
    ]);
    const model = catalog.pick(picked);
    if (login?.own) {
      const own = login.own;
      const id = own.model ?? model?.model ?? this.options.ownDefaultModel;
      return {
        kind: 'own',
        modelName: id,
        baseURL: own.baseURL,
        client: this.ownClient(own.baseURL, own.apiKey, id),
        contextSize: own.model === undefined ? model?.contextSize : undefined,
        scope: undefined,
        quotaUser,
        fallback: undefined,
      };
    }
    if (model === undefined) return undefined;
    const pool = this.poolOf(login);
    const fallbackModel = model.fallback === undefined ? undefined : catalog.get(model.fallback);
    return {
      kind: pool ? 'pool' : 'public',
      modelName: model.name,
      baseURL: model.baseURL,
      client: this.catalogClient(model),
      contextSize: model.contextSize,
      scope: pool ? poolScope(pool) : { name: 'public', perUser: this.options.publicLimits },
      quotaUser,
      fallback: fallbackModel ? { modelName: fallbackModel.name, client: this.catalogClient(fallbackModel) } : undefined,
    };
  }

  /** The quota scope of a user, for /usage; undefined when they use their own key. */
  async scopeOf(userId: string): Promise<{ scope: QuotaScope; pool: string | undefined } | undefined> {
    const login = await this.options.logins.get(userId);
    if (login.own) return undefined;
    const pool = this.poolOf(login);
    return pool
      ? { scope: poolScope(pool), pool: pool.name }
      : { scope: { name: 'public', perUser: this.options.publicLimits }, pool: undefined };
  }

  /** The model the chat picked, or null for the default. */
  async chatModel(address: string): Promise<string | null> {
    return this.options.store.get(chatModelKey(address));
  }

  /** Picks a catalog model for the chat; null goes back to the default. */
  async setChatModel(address: string, name: string | null): Promise<void> {
    if (name === null) await this.options.store.del(chatModelKey(address));
    else await this.options.store.set(chatModelKey(address), name);
  }

  /** The pool the user joined, while it exists and its token is still the one they joined with. */
  private poolOf(login: UserLogin | undefined): QuotaPool | undefined {
    const membership = login?.pool;
    if (!membership) return undefined;
    const pool = this.options.catalog.pool(membership.pool);
    return pool && Logins.sameToken(membership, pool.token) ? pool : undefined;
  }

  private catalogClient(model: CatalogModel): LlmClient {
    const client = this.catalogClients.get(model.name);
    if (!client) throw new Error(`no client for model ${model.name}`);
    return client;
  }

  private ownClient(baseURL: string, apiKey: string, model: string): LlmClient {
    const key = sha256Hex(`${baseURL}\n${apiKey}\n${model}`);
    let client = this.ownClients.get(key);
    if (client) {
      this.ownClients.delete(key); // re-inserted below: the map's order is the use order
    } else {
      client = this.client(baseURL, apiKey, model, 'native');
      if (this.ownClients.size >= OWN_CLIENTS_MAX) {
        const oldest = this.ownClients.keys().next().value;
        if (oldest !== undefined) this.ownClients.delete(oldest);
      }
    }
    this.ownClients.set(key, client);
    return client;
  }

  private client(baseURL: string | undefined, apiKey: string, model: string, tools: 'native' | 'prompt'): LlmClient {
    const llm = new OpenAiLlm({ apiKey, baseURL, model, timeoutMs: this.options.timeoutMs, maxRetries: this.options.maxRetries });
    return tools === 'prompt' ? new PromptToolsLlm(llm) : llm;
  }
}

function poolScope(pool: QuotaPool): QuotaScope {
  return { name: `pool:${pool.name}`, perUser: pool.perUser, ...(pool.total ? { total: pool.total } : {}) };
}

function chatModelKey(address: string): string {
  return `chatmodel:${address}`;
}
