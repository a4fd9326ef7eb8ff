import { z } from 'zod';
import type { Store } from '../store/store.ts';

export const TOOL_OUTCOMES = [
  'ok',
  'error',
  'timeout',
  'invalid',
  'refused',
  'needs_env',
  'switched_off',
  'waiting',
  'declined',
  'expired',
] as const;
export type ToolOutcomeStatus = (typeof TOOL_OUTCOMES)[number];

export const ToolCallViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** The arguments the model gave (values of secret-looking fields masked). */
  args: z.unknown(),
  status: z.enum(TOOL_OUTCOMES),
  result: z.string().optional(),
});
export type ToolCallView = z.infer<typeof ToolCallViewSchema>;

export const ChainNodeSchema = z.object({
  nodeId: z.string(),
  parentId: z.string().nullable(),
  depth: z.number().int(),
  kind: z.enum(['command', 'llm']),
  status: z.enum(['running', 'waiting', 'done', 'failed']),
  /** Who started the chain: only they (and admins) may read it. */
  userId: z.string().nullable(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  command: z.string().optional(),
  model: z.string().optional(),
  usage: z.object({ promptTokens: z.number(), completionTokens: z.number() }).optional(),
  toolCalls: z.array(ToolCallViewSchema).default([]),
  error: z.string().optional(),
});
export type ChainNode = z.infer<typeof ChainNodeSchema>;

export type ChainTree = Omit<ChainNode, 'userId'> & { children: ChainTree[] };

/** How much of a tool result the chain view keeps. */
const VIEW_RESULT_MAX = 2_000;
const SECRET_FIELD = /token|secret|password|passwd|api[-_]?key|authorization|credential|cookie/i;

/**
 * What each node of a chain did, for `GET /v1/chains/:chainId`: one hash per chain, a field per
 * node, rewritten as the node moves on (a redelivered node overwrites its own entry).
 */
export class ChainLog {
  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  private key = (chainId: string): string => `chain:${chainId}`;

  async put(chainId: string, node: ChainNode): Promise<void> {
    const bounded = { ...node, toolCalls: node.toolCalls.map((c) => ({ ...c, args: maskSecrets(c.args), result: clip(c.result) })) };
    await this.store.hset(this.key(chainId), { [node.nodeId]: JSON.stringify(bounded) }, { ttlMs: this.ttlMs });
  }

  /** Rewrites one node's entry (a parked node, once its confirmation is decided). */
  async update(chainId: string, nodeId: string, change: (node: ChainNode) => ChainNode): Promise<void> {
    const raw = await this.store.hget(this.key(chainId), nodeId);
    const parsed = raw === null ? undefined : ChainNodeSchema.safeParse(JSON.parse(raw));
    if (parsed?.success) await this.put(chainId, change(parsed.data));
  }

  async nodes(chainId: string): Promise<ChainNode[]> {
    const raw = await this.store.hgetall(this.key(chainId));
    return Object.values(raw)
      .map((value) => ChainNodeSchema.safeParse(JSON.parse(value)))
      .flatMap((parsed) => (parsed.success ? [parsed.data] : []));
  }
}

/** The nodes as a tree from the root; children in id order. */
export function chainTree(nodes: readonly ChainNode[]): ChainTree | null {
  const byParent = new Map<string | null, ChainNode[]>();
  for (const node of nodes) byParent.set(node.parentId, [...(byParent.get(node.parentId) ?? []), node]);
  const build = (node: ChainNode): ChainTree => {
    const { userId: _owner, ...view } = node;
    const children = (byParent.get(node.nodeId) ?? []).sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    return { ...view, children: children.map(build) };
  };
  const root = byParent.get(null)?.[0];
  return root ? build(root) : null;
}

/** Replaces the values of secret-looking fields, at any depth. */
export function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_FIELD.test(k) ? '***' : maskSecrets(v)]));
  }
  return value;
}

function clip(text: string | undefined): string | undefined {
  if (text === undefined || text.length <= VIEW_RESULT_MAX) return text;
  return `${text.slice(0, VIEW_RESULT_MAX)}… (${text.length - VIEW_RESULT_MAX} more characters)`;
}
