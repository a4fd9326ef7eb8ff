import { createHash } from 'node:crypto';
import { z } from 'zod';
import { EnvelopeSchema, type EnvelopeOf } from '../core/envelope.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import type { Store } from '../store/store.ts';
import type { PluginRegistry } from '../plugins/registry.ts';

/** What confirmations need of the registry: a tool's schema, to check edited arguments. */
export type ToolLookup = Pick<PluginRegistry, 'tool'>;
import type { Timers } from './timers.ts';

const StashSchema = z.object({
  formId: z.string(),
  chainId: z.string(),
  nodeId: z.string(),
  userId: z.string().nullable(),
  expiresAt: z.iso.datetime(),
  /** The calls that wait, with the arguments the model gave. */
  calls: z.array(z.object({ id: z.string(), name: z.string(), args: z.unknown() })).min(1),
  /** The node that continues the chain once decided (its `pending` is filled in then). */
  next: EnvelopeSchema,
});
export type Stash = z.infer<typeof StashSchema>;

const DecisionSchema = z.object({
  decision: z.enum(['approve', 'reject', 'expired']),
  args: z.record(z.string(), z.unknown()).optional(),
  /** The request that decided (a /confirm node): its redelivery is told the same, not "already decided". */
  by: z.string().optional(),
  /** What the decider was told (repeated to its redelivery). */
  chainId: z.string().optional(),
  tools: z.array(z.string()).optional(),
});
type Decision = z.infer<typeof DecisionSchema>;

export type DecideResult =
  | { readonly ok: true; readonly decision: 'approve' | 'reject'; readonly chainId: string; readonly tools: string[] }
  | { readonly ok: false; readonly code: 'FORM_GONE' | 'FORM_FORBIDDEN' | 'INVALID_ARGS'; readonly message: string };

export interface DecideInput {
  readonly formId: string;
  /** Who decides: only the user who started the chain may. */
  readonly userId: string | null;
  readonly decision: 'approve' | 'reject';
  /** Edited arguments (approve only; the form must hold one call). */
  readonly args?: unknown;
  /** Names the request deciding; the same request deciding again gets the same answer. */
  readonly requestId?: string;
}

const EXPIRY_TIMER = 'form-expiry';
/** How long a decided or expired form is remembered after its TTL, so a late /confirm is told so. */
const GRACE_MS = 86_400_000;

/**
 * The stash: chain nodes parked until their user decides. A form is decided at most once (the
 * first to claim it wins: a /confirm, a /cancel, the API, or its expiry timer), and the decision
 * continues the chain by publishing the parked node's continuation.
 */
export class Confirmations {
  constructor(
    private readonly store: Store,
    private readonly bus: EnvelopeBus,
    private readonly registry: ToolLookup,
    private readonly timers: Timers | undefined,
    private readonly ttlMs: number,
  ) {
    timers?.on(EXPIRY_TIMER, (formId) => this.expire(formId));
  }

  private stashKey = (formId: string): string => `stash:${formId}`;
  private decisionKey = (formId: string): string => `stash:${formId}:decision`;

  /** The form id of a node: derived from its id, so a redelivered node parks under the same form. */
  static formIdOf(nodeId: string): string {
    return createHash('sha256').update(nodeId).digest('base64url').slice(0, 10).replace(/[-_]/g, 'x');
  }

  get ttl(): number {
    return this.ttlMs;
  }

  /**
   * Parks a node. A redelivered node keeps the form it parked first (and its expiry); returns the
   * form in force, or null when it was decided already.
   */
  async park(stash: Stash): Promise<Stash | null> {
    if ((await this.store.get(this.decisionKey(stash.formId))) !== null) return null;
    const ttlMs = Date.parse(stash.expiresAt) - Date.now() + GRACE_MS;
    const created = await this.store.set(this.stashKey(stash.formId), JSON.stringify(stash), { ttlMs, ifAbsent: true });
    const parked = created ? stash : await this.get(stash.formId);
    if (parked === null) return null;
    await this.timers?.add(EXPIRY_TIMER, parked.formId, new Date(parked.expiresAt), parked.formId);
    return parked;
  }

  async get(formId: string): Promise<Stash | null> {
    const raw = await this.store.get(this.stashKey(formId));
    return raw === null ? null : StashSchema.parse(JSON.parse(raw));
  }

  async decide(input: DecideInput): Promise<DecideResult> {
    const gone = { ok: false, code: 'FORM_GONE', message: `The request ${input.formId} was already decided or has expired.` } as const;
    const stash = await this.get(input.formId);
    // The same /confirm delivered again (its worker died after deciding): same answer, and finish the job.
    const earlier = input.requestId === undefined ? null : await this.decisionOf(input.formId);
    if (earlier && earlier.by === input.requestId && earlier.decision !== 'expired' && earlier.chainId && earlier.tools) {
      if (stash) await this.continueChain(stash, earlier);
      return { ok: true, decision: earlier.decision, chainId: earlier.chainId, tools: earlier.tools };
    }
    if (stash === null || Date.parse(stash.expiresAt) <= Date.now()) return gone;
    if (stash.userId === null || stash.userId !== input.userId) {
      return { ok: false, code: 'FORM_FORBIDDEN', message: 'Only the person who started this request can decide it.' };
    }
    let args: Record<string, unknown> | undefined;
    if (input.args !== undefined) {
      const checked = this.checkArgs(stash, input.args);
      if (typeof checked === 'string') return { ok: false, code: 'INVALID_ARGS', message: checked };
      args = checked;
    }
    const decided = { ok: true, decision: input.decision, chainId: stash.chainId, tools: stash.calls.map((c) => c.name) } as const;
    const decision: Decision = {
      decision: input.decision,
      ...(args ? { args } : {}),
      ...(input.requestId ? { by: input.requestId } : {}),
      chainId: decided.chainId,
      tools: decided.tools,
    };
    const ttlMs = Date.parse(stash.expiresAt) - Date.now() + GRACE_MS;
    if (!(await this.store.set(this.decisionKey(input.formId), JSON.stringify(decision), { ttlMs, ifAbsent: true }))) return gone;
    try {
      await this.publishContinuation(stash, decision);
    } catch (err) {
      // Nothing was published: the form is open again.
      await this.store.del(this.decisionKey(input.formId));
      throw err;
    }
    await this.afterContinuation(stash);
    return decided;
  }

  private async decisionOf(formId: string): Promise<Decision | null> {
    const raw = await this.store.get(this.decisionKey(formId));
    return raw === null ? null : DecisionSchema.parse(JSON.parse(raw));
  }

  /** The expiry timer: nobody answered in time (or a decision's publish was cut off: finish it). */
  async expire(formId: string): Promise<void> {
    const stash = await this.get(formId);
    if (stash === null) return;
    const expired: Decision = { decision: 'expired' };
    const claimed = await this.store.set(this.decisionKey(formId), JSON.stringify(expired), { ttlMs: GRACE_MS, ifAbsent: true });
    const decision = (claimed ? null : await this.decisionOf(formId)) ?? expired;
    await this.continueChain(stash, decision);
  }

  /** Publishes the continuation (its id is fixed, so publishing it again is harmless), then tidies up. */
  private async continueChain(stash: Stash, decision: Decision): Promise<void> {
    await this.publishContinuation(stash, decision);
    await this.afterContinuation(stash);
  }

  private async publishContinuation(stash: Stash, decision: Decision): Promise<void> {
    const next = stash.next as EnvelopeOf<'step'>;
    const pending = {
      formId: stash.formId,
      callIds: stash.calls.map((c) => c.id),
      decision: decision.decision,
      ...(decision.args ? { args: decision.args } : {}),
    };
    await this.bus.publish({ ...next, at: new Date().toISOString(), body: { ...next.body, pending } });
  }

  /** Best effort: a stash left behind only makes its expiry timer publish the same continuation again. */
  private async afterContinuation(stash: Stash): Promise<void> {
    await this.store.del(this.stashKey(stash.formId)).catch(() => 0);
    await this.timers?.cancel(EXPIRY_TIMER, stash.formId).catch(() => false);
  }

  /** Edited arguments, validated against the tool's schema; a string says what is wrong. */
  private checkArgs(stash: Stash, args: unknown): Record<string, unknown> | string {
    if (stash.calls.length !== 1) return 'This request holds several tool calls; edited arguments are only possible for one.';
    const [call] = stash.calls;
    const registered = call && this.registry.tool(call.name);
    if (!registered) return `The tool ${call?.name ?? ''} is no longer available.`;
    const parsed = registered.tool.args.safeParse(args);
    if (!parsed.success) return `Invalid arguments for ${registered.tool.name}: ${z.prettifyError(parsed.error)}`;
    if (parsed.data === null || typeof parsed.data !== 'object' || Array.isArray(parsed.data))
      return 'The arguments must be a JSON object.';
    return parsed.data as Record<string, unknown>;
  }
}
