/**
 * The plugin SDK: the only module a plugin imports. A plugin is a folder with a `plugin.json`
 * manifest and an entry module that default-exports `definePlugin({...})`.
 *
 * @example
 * import { definePlugin, defineTool, z } from 'switchboard/sdk';
 *
 * export default definePlugin({
 *   tools: [
 *     defineTool({
 *       name: 'roll_dice',
 *       description: 'Roll a die with the given number of sides',
 *       args: z.object({ sides: z.number().int().min(2).max(100) }),
 *       run: async ({ sides }) => ({ rolled: 1 + Math.floor(Math.random() * sides) }),
 *     }),
 *   ],
 * });
 */
import { z } from 'zod';
import type { Logger } from '../core/logger.ts';

export { z };

/** Who is asking, where. */
export interface Caller {
  /** Platform-qualified user id (`telegram:42`, `http:alice`); null for anonymous sources such as feeds. */
  readonly userId: string | null;
  /** The chat the request came from (`telegram:-1001`, `http:alice`). */
  readonly address: string;
  readonly platform: string;
  readonly chatType: 'private' | 'group';
  readonly isAdmin: boolean;
  /** The conversation (history is kept per conversation): the address, or `address#name`. */
  readonly conversation: string;
}

/** A key-value store namespaced to the plugin: two plugins never see each other's keys. */
export interface PluginStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, options?: { readonly ttlMs?: number }): Promise<void>;
  del(...keys: string[]): Promise<number>;
  hset(key: string, fields: Readonly<Record<string, string>>): Promise<void>;
  hget(key: string, field: string): Promise<string | null>;
  hgetall(key: string): Promise<Record<string, string>>;
  hdel(key: string, ...fields: string[]): Promise<number>;
  incr(key: string, by?: number): Promise<number>;
}

/** Messages that start a new chain later, in the caller's conversation (they survive restarts). */
export interface Scheduler {
  /** Schedules `text` to arrive as the caller's message at `at`; returns the schedule id. */
  message(at: Date, text: string): Promise<string>;
  /** Cancels a scheduled message; false when it fired or was cancelled already. */
  cancel(id: string): Promise<boolean>;
}

/** What a tool or command gets besides its arguments. */
export interface PluginContext {
  readonly caller: Caller;
  /** The caller's private env values for the keys the manifest declares (set with /env); never logged. */
  readonly env: Readonly<Record<string, string>>;
  /** Operator settings the manifest declares, from the server's environment or their defaults. */
  readonly settings: Readonly<Record<string, string>>;
  readonly store: PluginStore;
  readonly schedule: Scheduler;
  readonly logger: Logger;
  /** Aborted when the tool times out (its `timeoutMs`, else TOOL_TIMEOUT_MS). A command's never fires. */
  readonly signal: AbortSignal;
  /**
   * Names this run of the tool or command: the same when a redelivered node runs it again, so it
   * makes a good idempotency key for outside calls.
   */
  readonly requestId: string;
}

/** Where a tool or command may be used. */
export interface Availability {
  /** `private` chats only, `group` chats only, or `any` (default). */
  readonly scope?: 'private' | 'group' | 'any';
  /** Platforms it serves (default: those of the manifest, else all). */
  readonly platforms?: readonly string[];
  /** Only ADMIN_USERS may use it (and only they see it). */
  readonly admin?: boolean;
}

/** A tool the LLM can call. */
export interface ToolDefinition<S extends z.ZodType = z.ZodType> extends Availability {
  /** `[a-z0-9_]`, unique across all plugins. */
  readonly name: string;
  readonly description: string;
  /** The arguments; their JSON Schema is what the LLM sees, and the LLM's arguments are validated with it. */
  readonly args: S;
  /** Ask the person before running (`/confirm`), always or depending on the arguments. */
  readonly confirm?: boolean | ((args: z.output<S>, ctx: PluginContext) => boolean);
  /** Default TOOL_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Returns the result the LLM reads: a string, or anything JSON can hold. */
  run(args: z.output<S>, ctx: PluginContext): Promise<unknown>;
}

/** A /command for people, answered without the LLM. */
export interface CommandDefinition<S extends z.ZodType = z.ZodType> extends Availability {
  /** Lower-case name without the slash, `[a-z0-9_]`. */
  readonly name: string;
  readonly description: string;
  /** Parses the text after the command (a string); default: the text as it is. */
  readonly args?: S;
  /** Shown in /help and when the arguments do not parse, e.g. `<minutes> <text>`. */
  readonly usage?: string;
  /**
   * The command changes nothing, it only reads. A command is otherwise run once per message: its
   * reply is remembered, and a message delivered again gets the remembered reply. A read-only one is
   * simply run again (saving two store round trips per command); the person still gets one reply.
   */
  readonly readOnly?: boolean;
  /** Returns the reply (Markdown). */
  run(args: z.output<S>, ctx: PluginContext): Promise<string>;
}

export type AnyTool = ToolDefinition<z.ZodType>;
export type AnyCommand = CommandDefinition<z.ZodType>;

export interface PluginDefinition {
  readonly tools?: readonly AnyTool[];
  readonly commands?: readonly AnyCommand[];
}

const NAME = /^[a-z0-9_]{1,64}$/;

/**
 * Declares a tool. The argument types follow from the zod schema.
 *
 * @example
 * defineTool({ name: 'echo', description: 'Say it back', args: z.object({ text: z.string() }), run: async ({ text }) => text });
 */
export function defineTool<S extends z.ZodType>(definition: ToolDefinition<S>): AnyTool {
  if (!NAME.test(definition.name)) throw new Error(`tool name "${definition.name}": use lower-case letters, digits and _`);
  // The registry calls run/confirm only with arguments parsed by this same schema, so widening is safe.
  return definition as unknown as AnyTool;
}

/**
 * Declares a /command.
 *
 * @example
 * defineCommand({ name: 'ping', description: 'Check that I am alive', run: async () => 'pong' });
 */
export function defineCommand<S extends z.ZodType = z.ZodString>(definition: CommandDefinition<S>): AnyCommand {
  if (!NAME.test(definition.name)) throw new Error(`command name "${definition.name}": use lower-case letters, digits and _`);
  // As for tools: run only ever receives the output of `args`.
  return definition as unknown as AnyCommand;
}

/** Declares a plugin: the default export of its entry module. */
export function definePlugin(definition: PluginDefinition): PluginDefinition {
  return definition;
}
