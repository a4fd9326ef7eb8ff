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

  /** Parks a node; false when its form was decided already (a redelivered node must not ask again). */
  async park(stash: Stash): Promise<boolean> {
    if ((await this.store.get(this.decisionKey(stash.formId))) !== null) return false;
    const ttlMs = Date.parse(stash.expiresAt) - Date.now() + GRACE_MS;
    await this.store.set(this.stashKey(stash.formId), JSON.stringify(stash), { ttlMs, ifAbsent: true });
    await this.timers?.add(EXPIRY_TIMER, stash.formId, new Date(stash.expiresAt), stash.formId);
    return true;
  }

  async get(formId: string): Promise<Stash | null> {
    const raw = await this.store.get(this.stashKey(formId));
    return raw === null ? null : StashSchema.parse(JSON.parse(raw));
  }

  async decide(input: DecideInput): Promise<DecideResult> {
    const gone = { ok: false, code: 'FORM_GONE', message: `The request ${input.formId} was already decided or has expired.` } as const;
    const stash = await this.get(input.formId);
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
    const decision: Decision = { decision: input.decision, ...(args ? { args } : {}) };
    const ttlMs = Date.parse(stash.expiresAt) - Date.now() + GRACE_MS;
    if (!(await this.store.set(this.decisionKey(input.formId), JSON.stringify(decision), { ttlMs, ifAbsent: true }))) return gone;
    try {
      await this.continueChain(stash, decision);
    } catch (err) {
      await this.store.del(this.decisionKey(input.formId));
      throw err;
    }
    await this.timers?.cancel(EXPIRY_TIMER, input.formId);
    return { ok: true, decision: input.decision, chainId: stash.chainId, tools: stash.calls.map((c) => c.name) };
  }

  /** The expiry timer: nobody answered in time (or a decision's publish was cut off: finish it). */
  async expire(formId: string): Promise<void> {
    const stash = await this.get(formId);
    if (stash === null) return;
    const expired: Decision = { decision: 'expired' };
    const claimed = await this.store.set(this.decisionKey(formId), JSON.stringify(expired), { ttlMs: GRACE_MS, ifAbsent: true });
    const raw = claimed ? null : await this.store.get(this.decisionKey(formId));
    const decision = raw === null ? expired : DecisionSchema.parse(JSON.parse(raw));
    await this.continueChain(stash, decision);
  }

  private async continueChain(stash: Stash, decision: Decision): Promise<void> {
    const next = stash.next as EnvelopeOf<'step'>;
    const pending = { formId: stash.formId, callIds: stash.calls.map((c) => c.id), ...decision };
    await this.bus.publish({ ...next, at: new Date().toISOString(), body: { ...next.body, pending } });
    await this.store.del(this.stashKey(stash.formId));
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
