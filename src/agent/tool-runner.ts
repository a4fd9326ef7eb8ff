import { z } from 'zod';
import { parseAddress } from '../core/address.ts';
import { conversationKey, type Envelope } from '../core/envelope.ts';
import { errorMessage } from '../core/errors.ts';
import { lazyChild, type Logger } from '../core/logger.ts';
import type { Store } from '../store/store.ts';
import type { Fuse } from '../plugins/fuse.ts';
import { pluginStore } from '../plugins/plugin-store.ts';
import type { PluginRegistry, RegisteredTool } from '../plugins/registry.ts';
import type { Caller, PluginContext, PluginStore, Scheduler } from '../plugins/sdk.ts';
import type { ToolOutcomeStatus } from './chain-log.ts';
import type { ToolCall } from './llm.ts';
import type { UserEnv } from './user-env.ts';

/** What one tool call came to: the text the model reads, and how it ended. */
export interface ToolOutcome {
  readonly callId: string;
  readonly name: string;
  readonly status: ToolOutcomeStatus;
  readonly content: string;
  /** The parsed arguments (when they parsed). */
  readonly args?: unknown;
  /** This call switched its tool off (the fuse blew). */
  readonly fuseBlown?: boolean;
}

/** A decision taken by the person on a call that waited for /confirm. */
export interface Decision {
  readonly decision: 'approve' | 'reject' | 'expired';
  readonly args?: Record<string, unknown>;
}

export interface ToolRunnerOptions {
  readonly store: Store;
  readonly registry: PluginRegistry;
  readonly fuse: Fuse;
  readonly userEnv: UserEnv | undefined;
  readonly adminUsers: ReadonlySet<string>;
  /** The scheduler a run gets; `requestId` makes the ids it hands out the same on a redelivery. */
  readonly scheduler: (node: Envelope, requestId: string) => Scheduler;
  readonly defaultTimeoutMs: number;
  readonly resultMaxChars: number;
  /** How long a finished call is remembered (a redelivered node does not run it again). */
  readonly recordTtlMs: number;
  readonly logger: Logger;
}

/** The caller of a node: who wrote it, where, and whether they are an admin. */
export function callerOf(node: Envelope, adminUsers: ReadonlySet<string>): Caller {
  return {
    userId: node.user?.id ?? null,
    address: node.from,
    platform: parseAddress(node.from).platform,
    chatType: node.chatType,
    isAdmin: node.user !== null && adminUsers.has(node.user.id),
    conversation: conversationKey(node),
  };
}

/**
 * Runs the tool calls of a node. A finished call is recorded under (node id, call id) before its
 * result is used, so a redelivered node reads the record instead of running the tool again.
 * Refusals, bad arguments, errors and timeouts all become a result the model reads.
 */
export class ToolRunner {
  private readonly pluginStores = new Map<string, PluginStore>();

  constructor(private readonly options: ToolRunnerOptions) {}

  private recordKey = (nodeId: string, callId: string): string => `toolrun:${nodeId}:${callId}`;

  /**
   * One call of `node`. Returns status `waiting` (and records nothing) when the tool asks for
   * confirmation and no decision was given.
   */
  async run(node: Envelope, call: ToolCall, decision?: Decision): Promise<ToolOutcome> {
    const key = this.recordKey(node.id, call.id);
    const recorded = await this.options.store.get(key);
    if (recorded !== null) return JSON.parse(recorded) as ToolOutcome;
    const outcome = await this.attempt(node, call, decision).catch((err: unknown) => this.pluginThrew(call, err));
    // `waiting` is recorded too: a redelivered node must park again, not change its mind.
    await this.options.store.set(key, JSON.stringify(outcome), { ttlMs: this.options.recordTtlMs });
    return outcome;
  }

  private async attempt(node: Envelope, call: ToolCall, decision: Decision | undefined): Promise<ToolOutcome> {
    const { registry, fuse } = this.options;
    const base = { callId: call.id, name: call.name };
    const registered = registry.tool(call.name);
    const caller = callerOf(node, this.options.adminUsers);
    if (!registered) return { ...base, status: 'refused', content: `Error: there is no tool named ${call.name}.` };
    const refusal = registry.refusal(registered.plugin, registered.tool, caller);
    if (refusal) return { ...base, status: 'refused', content: `Error: the tool ${call.name} is not available here: ${refusal}.` };
    if (await fuse.blown(call.name)) {
      return { ...base, status: 'switched_off', content: switchedOffText(registered) };
    }

    const args = decision?.args ?? parseArguments(call.arguments);
    const parsed = registered.tool.args.safeParse(args);
    if (!parsed.success) {
      return { ...base, status: 'invalid', args, content: `Error: invalid arguments for ${call.name}: ${z.prettifyError(parsed.error)}` };
    }
    if (decision?.decision === 'reject')
      return { ...base, status: 'declined', args: parsed.data, content: 'The user declined this tool call; it was not run.' };
    if (decision?.decision === 'expired') {
      return {
        ...base,
        status: 'expired',
        args: parsed.data,
        content: 'The user did not answer the confirmation in time; the tool call was not run.',
      };
    }

    const env = await this.envFor(registered, caller);
    const missing = registered.plugin.manifest.env.filter((k) => env[k] === undefined);
    if (missing.length > 0) {
      const how = missing.map((k) => `/env ${k}=<value>`).join(' and ');
      return {
        ...base,
        status: 'needs_env',
        args: parsed.data,
        content: `The tool ${call.name} needs ${missing.join(', ')}. Ask the user to set it in a private chat with ${how}.`,
      };
    }

    const controller = new AbortController();
    const ctx = this.context(registered, node, caller, env, controller.signal, `${node.id}/${call.id}`);
    const confirm = registered.tool.confirm;
    if (decision === undefined && (typeof confirm === 'function' ? confirm(parsed.data, ctx) : confirm === true)) {
      return { ...base, status: 'waiting', args: parsed.data, content: 'Waiting for the user to confirm.' };
    }
    const outcome = await this.execute(registered, call.id, parsed.data, ctx, controller, env);
    // The model asked for other arguments: it must know what really ran.
    if (decision?.args && outcome.status === 'ok')
      return {
        ...outcome,
        content: `(The user edited the arguments to ${JSON.stringify(parsed.data)} before approving.)\n${outcome.content}`,
      };
    return outcome;
  }

  /** A plugin's own code (a confirm function, a schema refinement) threw outside run(). */
  private async pluginThrew(call: ToolCall, err: unknown): Promise<ToolOutcome> {
    const registered = this.options.registry.tool(call.name);
    const outcome: ToolOutcome = {
      callId: call.id,
      name: call.name,
      status: 'error',
      content: `Error: the tool ${call.name} failed: ${errorMessage(err)}`,
    };
    this.options.logger.warn({ tool: call.name, err: errorMessage(err) }, 'tool failed before it ran');
    return registered ? this.failed(outcome, registered, errorMessage(err)) : outcome;
  }

  private async execute(
    registered: RegisteredTool,
    callId: string,
    args: unknown,
    ctx: PluginContext,
    controller: AbortController,
    env: Readonly<Record<string, string>>,
  ): Promise<ToolOutcome> {
    const { tool } = registered;
    const base = { callId, name: tool.name, args };
    const timeoutMs = tool.timeoutMs ?? this.options.defaultTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const result = await Promise.race([tool.run(args, ctx), timedOut]);
      if (result === 'timeout') {
        controller.abort(new Error(`timed out after ${timeoutMs} ms`));
        return this.failed(
          { ...base, status: 'timeout', content: `Error: the tool ${tool.name} did not finish within ${timeoutMs} ms.` },
          registered,
          'timeout',
        );
      }
      await this.options.fuse.success(tool.name);
      return { ...base, status: 'ok', content: this.bound(scrub(stringify(result), env)) };
    } catch (err) {
      const message = scrub(errorMessage(err), env);
      ctx.logger.warn({ err: message }, 'tool failed');
      return this.failed(
        { ...base, status: 'error', content: this.bound(`Error: the tool ${tool.name} failed: ${message}`) },
        registered,
        message,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  private async failed(outcome: ToolOutcome, registered: RegisteredTool, reason: string): Promise<ToolOutcome> {
    const blew = await this.options.fuse.failure(registered.tool.name, reason);
    if (!blew) return outcome;
    this.options.logger.warn(
      { tool: registered.tool.name, plugin: registered.plugin.manifest.name },
      'tool switched off after repeated failures',
    );
    return { ...outcome, fuseBlown: true, content: `${outcome.content}\n${switchedOffText(registered)}` };
  }

  /** The context a tool or command of this plugin runs with. */
  context(
    registered: Pick<RegisteredTool, 'plugin'>,
    node: Envelope,
    caller: Caller,
    env: Readonly<Record<string, string>>,
    /** Fires when the run is cut short; without one, the context's signal never fires. */
    abort: AbortSignal | undefined,
    requestId: string,
  ): PluginContext {
    const { plugin } = registered;
    const { scheduler, logger } = this.options;
    let schedule: Scheduler | undefined;
    let log: Logger | undefined;
    let signal = abort;
    // The scheduler, the logger and a signal that never fires are made when the plugin first looks
    // at them: most never do.
    return {
      caller,
      env,
      settings: plugin.settings,
      store: this.storeOf(plugin.manifest.name),
      get schedule() {
        return (schedule ??= scheduler(node, requestId));
      },
      get logger() {
        return (log ??= lazyChild(logger, { plugin: plugin.manifest.name, chainId: node.chainId }));
      },
      get signal() {
        return (signal ??= new AbortController().signal);
      },
      requestId,
    };
  }

  /** A plugin's view of the store holds no state of its own: one per plugin, made on first use. */
  private storeOf(pluginName: string): PluginStore {
    let store = this.pluginStores.get(pluginName);
    if (store === undefined) {
      store = pluginStore(this.options.store, pluginName);
      this.pluginStores.set(pluginName, store);
    }
    return store;
  }

  /** The caller's env values for the keys the plugin declared (nothing else). */
  async envFor(registered: Pick<RegisteredTool, 'plugin'>, caller: Caller): Promise<Record<string, string>> {
    const keys = registered.plugin.manifest.env;
    if (keys.length === 0 || caller.userId === null || !this.options.userEnv) return {};
    return this.options.userEnv.values(caller.userId, keys);
  }

  private bound(text: string): string {
    const max = this.options.resultMaxChars;
    return text.length <= max ? text : `${text.slice(0, max)}\n[truncated: ${text.length - max} more characters (TOOL_RESULT_MAX_CHARS)]`;
  }
}

function switchedOffText(registered: RegisteredTool): string {
  return `The tool ${registered.tool.name} is switched off after repeated failures; an administrator can switch it back on with /plugin reset ${registered.plugin.manifest.name}.`;
}

function parseArguments(raw: string): unknown {
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function stringify(result: unknown): string {
  if (typeof result === 'string') return result;
  if (result === undefined) return 'Done.';
  return JSON.stringify(result);
}

/** A tool's result never carries the caller's secrets on to the model, logs or the API. */
export function scrub(text: string, env: Readonly<Record<string, string>>): string {
  let out = text;
  for (const value of Object.values(env)) if (value.length >= 4) out = out.split(value).join('***');
  return out;
}
