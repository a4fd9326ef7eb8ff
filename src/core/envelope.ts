import { z } from 'zod';
import { AddressSchema } from './address.ts';
import { emittedId, newId } from './ids.ts';

/**
 * The one message format on the bus (the seed's "TaskHeader"). Versioned: a consumer that meets a
 * version it does not know dead-letters the message instead of guessing.
 */
export const ENVELOPE_VERSION = 1;

export const UserSchema = z.object({
  /** Stable user id, platform-qualified: `http:ops`, `telegram:12345`. */
  id: z.string().min(1).max(256),
  name: z.string().max(256).optional(),
});
export type User = z.infer<typeof UserSchema>;

export const AttachmentSchema = z.object({
  kind: z.enum(['photo', 'document', 'audio', 'video', 'file']),
  fileId: z.string().min(1),
  mime: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  caption: z.string().optional(),
});
export type Attachment = z.infer<typeof AttachmentSchema>;

export const CommandSchema = z.object({
  /** Lower-case command name without the slash: `help` for `/help`. */
  name: z.string().regex(/^[a-z0-9_]{1,32}$/),
  /** Everything after the command name, trimmed. */
  args: z.string(),
});
export type Command = z.infer<typeof CommandSchema>;

/** A person (or a source such as a feed) said something: the root of a chain. */
export const MessageBodySchema = z.object({
  kind: z.literal('message'),
  text: z.string(),
  attachments: z.array(AttachmentSchema).default([]),
  command: CommandSchema.optional(),
});

export const ToolCallSchema = z.object({
  id: z.string().min(1).max(256),
  name: z.string().min(1).max(128),
  /** The raw JSON text the model wrote. */
  arguments: z.string(),
});

/** What a chain said and learned after the person's message: the model's tool calls and their results. */
export const TranscriptItemSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('assistant'), content: z.string().nullable(), toolCalls: z.array(ToolCallSchema).default([]) }),
  z.object({ role: z.literal('tool'), toolCallId: z.string(), content: z.string() }),
]);
export type TranscriptItem = z.infer<typeof TranscriptItemSchema>;

/**
 * The next node of a chain: the person's message, what happened since, and (after a /confirm) the
 * decision on the tool calls that waited for it. The worker runs the decided calls, then asks the model.
 */
export const StepBodySchema = z.object({
  kind: z.literal('step'),
  /** The person's message that started the chain. */
  text: z.string(),
  transcript: z.array(TranscriptItemSchema),
  pending: z
    .object({
      formId: z.string(),
      /** Ids of the calls of the last assistant message that waited for the decision. */
      callIds: z.array(z.string()).min(1),
      decision: z.enum(['approve', 'reject', 'expired']),
      /** Edited arguments for the (single) waiting call, already validated against the tool's schema. */
      args: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
});

/** A button under a message (Telegram inline keyboards); pressing it sends `command` as the person. */
export const ButtonSchema = z.object({ text: z.string().min(1).max(64), command: z.string().min(1).max(64) });

/** A question to the person that a chain waits for (/confirm): what the API shows while a task waits. */
export const FormSchema = z.object({
  formId: z.string(),
  expiresAt: z.iso.datetime(),
  tools: z.array(z.object({ name: z.string(), args: z.unknown() })),
});
export type Form = z.infer<typeof FormSchema>;

/** What a chain tells a person. `status` set means the chain reached that state with this reply. */
export const ReplyBodySchema = z.object({
  kind: z.literal('reply'),
  text: z.string(),
  format: z.enum(['markdown', 'plain']).default('markdown'),
  status: z.enum(['done', 'failed']).optional(),
  /** Why the chain failed (for API clients and logs); the text is what the person reads. */
  error: z.string().optional(),
  buttons: z.array(ButtonSchema).max(8).optional(),
  form: FormSchema.optional(),
});

/** A chain changed state without saying anything: a worker took it ("typing"), or it waits for the person. */
export const StatusBodySchema = z.object({
  kind: z.literal('status'),
  status: z.enum(['running', 'waiting']),
});

export const BodySchema = z.discriminatedUnion('kind', [MessageBodySchema, StepBodySchema, ReplyBodySchema, StatusBodySchema]);
export type Body = z.infer<typeof BodySchema>;
export type MessageBody = z.infer<typeof MessageBodySchema>;
export type ReplyBody = z.infer<typeof ReplyBodySchema>;
export type StepBody = z.infer<typeof StepBodySchema>;

export const EnvelopeSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  id: z.string().min(1),
  chainId: z.string().min(1),
  parentId: z.string().nullable(),
  depth: z.number().int().nonnegative(),
  /** The receiver's correlation reference (an API task id), carried by every envelope of the chain. */
  ref: z.string().optional(),
  at: z.iso.datetime(),
  from: AddressSchema,
  /** Who wrote it; null for anonymous sources such as feeds. */
  user: UserSchema.nullable(),
  /** Names a conversation within the `from` address; history is kept per (from, conversation). */
  conversation: z.string().max(128).default(''),
  chatType: z.enum(['private', 'group']).default('private'),
  to: z.array(AddressSchema).min(1),
  body: BodySchema,
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type EnvelopeOf<K extends Body['kind']> = Envelope & { body: Extract<Body, { kind: K }> };

/** The key of a conversation: history and ordering are per conversation. */
export function conversationKey(envelope: Pick<Envelope, 'from' | 'conversation'>): string {
  return envelope.conversation ? `${envelope.from}#${envelope.conversation}` : envelope.from;
}

export interface NewMessage {
  readonly from: string;
  readonly user: User | null;
  readonly text: string;
  readonly to?: readonly string[];
  readonly conversation?: string;
  readonly chatType?: 'private' | 'group';
  readonly ref?: string;
  readonly command?: Command;
  readonly attachments?: readonly Attachment[];
  /** A fixed id (scheduled messages use the schedule's id, so firing twice starts one chain). */
  readonly id?: string;
}

/** The root envelope of a new chain. */
export function newMessageEnvelope(input: NewMessage): EnvelopeOf<'message'> {
  const id = input.id ?? newId();
  return {
    v: ENVELOPE_VERSION,
    id,
    chainId: id,
    parentId: null,
    depth: 0,
    ref: input.ref,
    at: new Date().toISOString(),
    from: input.from,
    user: input.user,
    conversation: input.conversation ?? '',
    chatType: input.chatType ?? 'private',
    to: input.to && input.to.length > 0 ? [...input.to] : [input.from],
    body: { kind: 'message', text: input.text, attachments: [...(input.attachments ?? [])], command: input.command },
  };
}

/** Where a node's output goes: its `to` addresses, and its origin, which is told how the chain ended. */
export function audience(node: Pick<Envelope, 'to' | 'from'>): string[] {
  return [...new Set([...node.to, node.from])];
}

/** The next node of a chain: a child of `node`, one level deeper, with a deterministic id. */
export function nextNode(node: Envelope, body: StepBody, suffix = 'next'): EnvelopeOf<'step'> {
  return { ...child(node, `${node.id}.${suffix}`, node.depth + 1, node.to), body };
}

/**
 * The n-th envelope a node emits towards one address: same chain, deterministic id (see emittedId),
 * so a redelivered node re-emits identical envelopes that senders recognise.
 */
export function emitted(node: Envelope, n: number, to: string, body: Body): Envelope {
  return { ...child(node, emittedId(node.id, n), node.depth, [to]), body };
}

/** An envelope of the same chain, made by `node`: everything but the body. */
function child(node: Envelope, id: string, depth: number, to: readonly string[]): Omit<Envelope, 'body'> {
  return {
    v: ENVELOPE_VERSION,
    id,
    chainId: node.chainId,
    parentId: node.id,
    depth,
    ref: node.ref,
    at: new Date().toISOString(),
    from: node.from,
    user: node.user,
    conversation: node.conversation,
    chatType: node.chatType,
    to: [...to],
  };
}

/** Commands whose arguments are secrets (`/env KEY=VALUE`, `/login <url> <key>`): never kept where people can read them. */
const SECRET_COMMANDS: ReadonlySet<string> = new Set(['env', 'login']);

/**
 * The raw bytes of a message as they may be kept for people to read (dead letters): a secret
 * command's text and arguments are replaced. Anything that is not such an envelope is returned as is.
 */
export function withoutSecrets(raw: Buffer): Buffer {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    return raw;
  }
  const parsed = MessageBodySchema.safeParse((json as { body?: unknown } | null)?.body);
  if (!parsed.success || !parsed.data.command || !SECRET_COMMANDS.has(parsed.data.command.name)) return raw;
  const name = parsed.data.command.name;
  const body = { ...parsed.data, text: `/${name} [redacted]`, command: { name, args: '[redacted]' } };
  return Buffer.from(JSON.stringify({ ...(json as object), body }));
}
