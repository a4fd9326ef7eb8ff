import { z } from 'zod';
import { ReplyBodySchema, type Command, type EnvelopeOf, type ReplyBody } from '../core/envelope.ts';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { allDone } from '../core/timing.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import type { Store } from '../store/store.ts';
import type { PluginRegistry, RegisteredCommand } from '../plugins/registry.ts';
import type { ChainLog } from './chain-log.ts';
import { Outbox } from './outbox.ts';
import { callerOf, scrub, type ToolRunner } from './tool-runner.ts';

export interface CommandNodeOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  readonly registry: PluginRegistry;
  readonly runner: ToolRunner;
  readonly chains: ChainLog;
  readonly adminUsers: ReadonlySet<string>;
  /** How long a command's reply is remembered, so a redelivered command is not run again. */
  readonly memoTtlMs: number;
}

/** What a command without an argument schema accepts (made once: a zod schema is not cheap to build). */
const ANY_TEXT = z.string();

/** A /command: answered by the plugin that defines it, without the LLM. One node, one reply. */
export class CommandNode {
  constructor(private readonly options: CommandNodeOptions) {}

  async handle(node: EnvelopeOf<'message'>, command: Command, log: Logger): Promise<void> {
    const { store, chains, memoTtlMs, registry } = this.options;
    const startedAt = new Date().toISOString();
    const registered = registry.command(command.name);
    let reply: ReplyBody;
    if (registered?.command.readOnly === true) {
      // Nothing to run twice: a redelivered read-only command answers again, under the same envelope id.
      reply = await this.run(node, command, registered, log);
    } else {
      const memoKey = `node:${node.id}:reply`;
      const memo = await store.get(memoKey);
      if (memo !== null) {
        log.info('command was answered before; re-sending its reply');
        reply = ReplyBodySchema.parse(JSON.parse(memo));
      } else {
        reply = await this.run(node, command, registered, log);
        await store.set(memoKey, JSON.stringify(reply), { ttlMs: memoTtlMs });
      }
    }
    // The chain log is for people reading it: written beside the reply, not after its confirm.
    await allDone([
      new Outbox(this.options.bus, node).emit(reply),
      chains.put(node.chainId, {
        nodeId: node.id,
        parentId: node.parentId,
        depth: node.depth,
        kind: 'command',
        command: command.name,
        status: reply.status === 'failed' ? 'failed' : 'done',
        userId: node.user?.id ?? null,
        startedAt,
        finishedAt: new Date().toISOString(),
        toolCalls: [],
        ...(reply.error ? { error: reply.error } : {}),
      }),
    ]);
    log.info({ command: command.name, status: reply.status }, 'command answered');
  }

  private async run(
    node: EnvelopeOf<'message'>,
    command: Command,
    registered: RegisteredCommand | undefined,
    log: Logger,
  ): Promise<ReplyBody> {
    const { registry, runner, adminUsers } = this.options;
    const caller = callerOf(node, adminUsers);
    // An admin command is unknown to others: they do not learn it exists.
    if (!registered || (registered.command.admin && !caller.isAdmin)) {
      return failed(`I don't know the command /${command.name}. Send /help to see what I can do.`, 'UNKNOWN_COMMAND');
    }
    const refusal = registry.refusal(registered.plugin, registered.command, caller);
    if (refusal) return failed(`The command /${command.name} is not available here: ${refusal}.`, 'COMMAND_NOT_ALLOWED');

    const schema = registered.command.args ?? ANY_TEXT;
    const args = schema.safeParse(command.args);
    if (!args.success) {
      const usage = registered.command.usage ? `Usage: /${command.name} ${registered.command.usage}\n` : '';
      return failed(`${usage}${z.prettifyError(args.error)}`, 'BAD_COMMAND_ARGS');
    }
    let env: Record<string, string> = {};
    try {
      env = await runner.envFor(registered, caller);
      const text = await registered.command.run(args.data, runner.context(registered, node, caller, env, undefined, node.id));
      return { kind: 'reply', text: scrub(text, env), format: 'markdown', status: 'done' };
    } catch (err) {
      const reason = scrub(errorMessage(err), env);
      log.error({ err: reason, command: command.name }, 'command failed');
      return failed(`/${command.name} failed. Please try again later.`, reason);
    }
  }
}

function failed(text: string, error: string): ReplyBody {
  return { kind: 'reply', text, format: 'plain', status: 'failed', error };
}
