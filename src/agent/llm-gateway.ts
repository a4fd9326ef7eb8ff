/**
 * One LLM call of a chain node, the way the product promises it: routed to the caller's backend
 * (own key, pool, public), counted against their daily quota before the call (atomically; a refused
 * call never reaches the model), answered by the fallback model when the primary fails after the
 * SDK's retries, and its tokens recorded from the response's usage afterwards.
 */
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../store/store.ts';
import { LlmError, type ChatMessage, type Completion, type LlmClient, type ToolSpec } from './llm.ts';
import type { LlmRoute, LlmRouter, RouteCaller } from './llm-router.ts';
import type { QuotaCheck, Quotas, QuotaScope } from './quotas.ts';

export interface LlmGatewayOptions {
  readonly router: LlmRouter;
  readonly quotas: Quotas;
  readonly store: Store;
  /** How long a node remembers that it took its request from the quota. */
  readonly memoTtlMs: number;
  readonly metrics?: Metrics;
}

export interface LlmCallRequest {
  /** The chain node asking: a redelivered node does not take a second request from the quota. */
  readonly nodeId: string;
  readonly caller: RouteCaller;
  /** The messages to send, given the model's context window (undefined when unknown). */
  readonly messages: (contextSize: number | undefined) => ChatMessage[];
  readonly tools: readonly ToolSpec[];
}

export class LlmGateway {
  constructor(private readonly options: LlmGatewayOptions) {}

  /** @throws LlmError: not_configured, quota_exceeded, or the backend's failure (after the fallback). */
  async complete(request: LlmCallRequest, log: Logger): Promise<Completion> {
    const { router, quotas, store } = this.options;
    const marker = `node:${request.nodeId}:quota`;
    // Both reads at once: a marker means this node took its request before (a redelivery).
    const [route, taken] = await Promise.all([router.route(request.caller), store.get(marker)]);
    if (route === undefined) {
      throw new LlmError('not_configured', 'no model is configured and the user has no own key', {
        ...(router.logins.ownKeysEnabled ? { userMessage: NO_MODEL_BUT_LOGIN } : {}),
      });
    }
    if (route.scope && taken === null) await this.takeRequest(route, route.scope, marker);
    const messages = request.messages(route.contextSize);
    const options = { tools: request.tools };
    let completion: Completion;
    try {
      completion = await this.timed(route.client, messages, options);
    } catch (err) {
      if (!(err instanceof LlmError)) throw err;
      if (route.kind === 'own' && err.failure === 'unauthorized') {
        throw new LlmError('unauthorized', `own key refused: ${err.message}`, { cause: err, userMessage: ownKeyRefused(route) });
      }
      if (!route.fallback) throw err;
      log.warn({ model: route.modelName, fallback: route.fallback.modelName, failure: err.failure }, 'model failed; asking the fallback');
      completion = await this.timed(route.fallback.client, messages, options);
    }
    if (route.scope) {
      const tokens = (completion.usage?.promptTokens ?? 0) + (completion.usage?.completionTokens ?? 0);
      await quotas.record(route.scope, route.quotaUser, tokens);
    }
    return completion;
  }

  /** Takes this node's one request from the quota, and leaves `marker` so a redelivery does not take another. */
  private async takeRequest(route: LlmRoute, scope: QuotaScope, marker: string): Promise<void> {
    const { quotas, store, memoTtlMs, metrics } = this.options;
    const verdict = await quotas.check(scope, route.quotaUser);
    if (!verdict.ok) {
      metrics?.quotaRefusals.inc({ scope: scope.name, limit: verdict.reason });
      throw new LlmError('quota_exceeded', `${scope.name} ${verdict.scope} ${verdict.reason} limit ${verdict.limit} reached`, {
        userMessage: this.refusal(route, verdict),
      });
    }
    await store.set(marker, '1', { ttlMs: memoTtlMs });
  }

  private refusal(route: LlmRoute, verdict: Extract<QuotaCheck, { ok: false }>): string {
    const what = verdict.reason === 'requests' ? `${verdict.limit} requests` : `${verdict.limit} tokens`;
    const whose =
      route.kind === 'pool'
        ? verdict.scope === 'total'
          ? `Your pool has used up its shared allowance of ${what} for today.`
          : `You have used up your pool allowance of ${what} for today.`
        : `You have used up today's allowance of ${what} on the shared model.`;
    const lines = [
      whose,
      `It resets at 00:00 ${this.options.quotas.timeZone}, ${untilText(verdict.resetsAt, this.options.quotas.now())}. Send /usage to see your use.`,
    ];
    if (this.options.router.logins.ownKeysEnabled)
      lines.push('With your own API key there is no limit: /login <baseURL> <apiKey> [model] in a private chat.');
    return lines.join('\n');
  }

  /** One attempt, with its latency and tokens in the metrics. */
  private async timed(client: LlmClient, messages: ChatMessage[], options: { tools: readonly ToolSpec[] }): Promise<Completion> {
    const metrics = this.options.metrics;
    const stop = metrics?.llmLatency.startTimer();
    try {
      const completion = await client.complete(messages, options);
      stop?.({ model: completion.model, outcome: 'ok' });
      metrics?.llmTokens.inc({ model: completion.model, kind: 'prompt' }, completion.usage?.promptTokens ?? 0);
      metrics?.llmTokens.inc({ model: completion.model, kind: 'completion' }, completion.usage?.completionTokens ?? 0);
      return completion;
    } catch (err) {
      stop?.({ model: 'unknown', outcome: err instanceof LlmError ? err.failure : 'error' });
      throw err;
    }
  }
}

const NO_MODEL_BUT_LOGIN =
  'No shared language model is configured on this server. You can use your own: send /login <baseURL> <apiKey> [model] in a private chat. Send /help for the commands.';

function ownKeyRefused(route: LlmRoute): string {
  const where = route.baseURL ? new URL(route.baseURL).host : 'the backend';
  return `Your API key was refused by ${where}. Send /login <baseURL> <apiKey> [model] again in a private chat with a valid key, or /logout to use the shared model.`;
}

/** "in 3 h 5 min" until an instant (at least a minute). */
export function untilText(at: Date, now: Date): string {
  const minutes = Math.max(1, Math.ceil((at.getTime() - now.getTime()) / 60_000));
  const hours = Math.floor(minutes / 60);
  return hours > 0 ? `in ${hours} h ${minutes % 60} min` : `in ${minutes} min`;
}
