import pLimit from 'p-limit';
import { z } from 'zod';
import { nextNode, type EnvelopeOf, type MessageBody, type ReplyBody, type StepBody, type TranscriptItem } from '../core/envelope.ts';
import type { Logger } from '../core/logger.ts';
import { allDone } from '../core/timing.ts';
import type { EnvelopeBus } from '../bus/envelope-bus.ts';
import type { Store } from '../store/store.ts';
import type { Fuse } from '../plugins/fuse.ts';
import type { PluginRegistry } from '../plugins/registry.ts';
import { maskSecrets, type ChainLog, type ChainNode, type ToolCallView } from './chain-log.ts';
import { Confirmations } from './confirmations.ts';
import type { ConversationHistory } from './history.ts';
import { fitHistory } from './context-window.ts';
import { LlmError, type ChatMessage, type Completion, type ToolCall } from './llm.ts';
import type { LlmGateway } from './llm-gateway.ts';
import { Outbox } from './outbox.ts';
import { callerOf, type ToolOutcome, type ToolRunner } from './tool-runner.ts';

export interface LlmNodeOptions {
  readonly bus: EnvelopeBus;
  readonly store: Store;
  /** Routes, meters and makes the LLM calls. */
  readonly llm: LlmGateway;
  readonly registry: PluginRegistry;
  readonly runner: ToolRunner;
  readonly fuse: Fuse;
  readonly confirmations: Confirmations;
  readonly history: ConversationHistory;
  readonly chains: ChainLog;
  readonly systemPrompt: string;
  readonly adminUsers: ReadonlySet<string>;
  readonly limits: {
    readonly chainMaxDepth: number;
    readonly toolCallsPerNode: number;
    readonly toolConcurrency: number;
  };
  /** How long a node's LLM answer is remembered, so a redelivered node does not ask again. */
  readonly memoTtlMs: number;
}

const CompletionMemoSchema = z.object({
  text: z.string(),
  toolCalls: z.array(z.object({ id: z.string(), name: z.string(), arguments: z.string() })),
  model: z.string(),
  usage: z.object({ promptTokens: z.number(), completionTokens: z.number() }).optional(),
});

type Node = EnvelopeOf<'message' | 'step'>;

/**
 * One LLM step of a chain: asks the model (with the tools this caller may use), runs the tool calls
 * it makes, and publishes the next node with their results; or parks the node when a tool asks
 * for confirmation; or, when the model answers in words, tells the person and ends the chain.
 */
export class LlmNode {
  constructor(private readonly options: LlmNodeOptions) {}

  async handle(node: Node, log: Logger): Promise<void> {
    const out = new Outbox(this.options.bus, node);
    // "Running" goes out at once and is confirmed while the model thinks; the node is not acked
    // before it is. The node's later outputs follow it on the same channel (only one the broker
    // refused and that was sent again can arrive after them: senders order a task's events by
    // envelope id, and a typing indicator ignores a status older than the chain's end).
    const running = out.emit({ kind: 'status', status: 'running' });
    await allDone([this.answer(node, out, log), running]);
  }

  private async answer(node: Node, out: Outbox, log: Logger): Promise<void> {
    const view: ChainNode = {
      nodeId: node.id,
      parentId: node.parentId,
      depth: node.depth,
      kind: 'llm',
      status: 'running',
      userId: node.user?.id ?? null,
      startedAt: new Date().toISOString(),
      toolCalls: [],
    };
    const text = node.body.kind === 'message' ? promptText(node.body) : node.body.text;
    let transcript: TranscriptItem[] = node.body.kind === 'step' ? node.body.transcript : [];
    try {
      await this.options.chains.put(node.chainId, view);

      if (node.body.kind === 'step' && node.body.pending) {
        const decided = await this.runDecided(node as EnvelopeOf<'step'>, transcript, out);
        transcript = decided.transcript;
        view.toolCalls = decided.views;
        await this.closeParked(node, decided.views);
      }
      const completion = await this.complete(node, text, transcript, log);
      Object.assign(view, { model: completion.model, ...(completion.usage ? { usage: completion.usage } : {}) });

      if (completion.toolCalls.length === 0) {
        // The conversation's next message waits for this node to finish, so the history only has to
        // be written by then, not before the reply.
        await allDone([
          this.options.history.append(callerOf(node, this.options.adminUsers).conversation, [
            { role: 'user', content: text, nodeId: node.chainId },
            { role: 'assistant', content: completion.text, nodeId: node.chainId },
          ]),
          this.finish(node, out, view, { kind: 'reply', text: completion.text, format: 'markdown', status: 'done' }),
        ]);
        return;
      }
      const limit = this.limitReached(node, completion);
      if (limit) return await this.finish(node, out, view, limit);

      const assistant: TranscriptItem = { role: 'assistant', content: completion.text || null, toolCalls: [...completion.toolCalls] };
      const outcomes = await this.runCalls(node, completion.toolCalls);
      view.toolCalls = [...view.toolCalls, ...outcomes.map(callView)];
      await this.noticeBlownFuses(outcomes, out);

      const waiting = outcomes.filter((o) => o.status === 'waiting');
      const done = outcomes.filter((o) => o.status !== 'waiting');
      const step: StepBody = { kind: 'step', text, transcript: [...transcript, assistant, ...done.map(toolMessage)] };
      if (waiting.length > 0) {
        await this.park(node, step, waiting, out);
        view.status = 'waiting';
        await this.options.chains.put(node.chainId, view);
        log.info({ tools: waiting.map((w) => w.name) }, 'chain waits for confirmation');
        return;
      }
      await this.options.bus.publish(nextNode(node, step));
      view.status = 'done';
      view.finishedAt = new Date().toISOString();
      await this.options.chains.put(node.chainId, view);
      log.info({ tools: outcomes.map((o) => `${o.name}:${o.status}`) }, 'tools ran; next node published');
    } catch (err) {
      if (!(err instanceof LlmError)) throw err;
      log.warn({ failure: err.failure, reason: err.message }, 'llm call failed');
      await this.finish(node, out, view, {
        kind: 'reply',
        text: err.userMessage,
        format: 'plain',
        status: 'failed',
        error: `${err.code}: ${err.message}`,
      });
    }
  }

  /** The calls that waited for /confirm: run, declined or expired as the person decided. */
  private async runDecided(
    node: EnvelopeOf<'step'>,
    transcript: TranscriptItem[],
    out: Outbox,
  ): Promise<{ transcript: TranscriptItem[]; views: ToolCallView[] }> {
    const pending = node.body.pending;
    const lastAssistant = [...transcript].reverse().find((t) => t.role === 'assistant');
    if (!pending || !lastAssistant || lastAssistant.role !== 'assistant') return { transcript, views: [] };
    const calls = lastAssistant.toolCalls.filter((c) => pending.callIds.includes(c.id));
    const decision = { decision: pending.decision, ...(pending.args ? { args: pending.args } : {}) };
    const outcomes = await Promise.all(calls.map((call) => this.options.runner.run(node, call, decision)));
    await this.noticeBlownFuses(outcomes, out);
    // Tool messages answer the calls in the order the model made them.
    const cut = transcript.lastIndexOf(lastAssistant) + 1;
    const results = [...transcript.slice(cut), ...outcomes.map(toolMessage)];
    const order = new Map(lastAssistant.toolCalls.map((c, i) => [c.id, i]));
    results.sort((a, b) => (a.role === 'tool' && b.role === 'tool' ? (order.get(a.toolCallId) ?? 0) - (order.get(b.toolCallId) ?? 0) : 0));
    return { transcript: [...transcript.slice(0, cut), ...results], views: outcomes.map(callView) };
  }

  /** The parked node is done waiting: its view shows how the waiting calls ended. */
  private async closeParked(node: Node, decided: readonly ToolCallView[]): Promise<void> {
    if (node.parentId === null) return;
    const byId = new Map(decided.map((d) => [d.id, d]));
    await this.options.chains.update(node.chainId, node.parentId, (parked) => ({
      ...parked,
      status: 'done',
      finishedAt: parked.finishedAt ?? new Date().toISOString(),
      toolCalls: parked.toolCalls.map((c) => byId.get(c.id) ?? c),
    }));
  }

  /** The model's answer for this node, asked once: a redelivered node reads the memo. */
  private async complete(node: Node, text: string, transcript: readonly TranscriptItem[], log: Logger): Promise<Completion> {
    const { store, llm, history, systemPrompt, registry, fuse, adminUsers, memoTtlMs } = this.options;
    const memoKey = `node:${node.id}:completion`;
    const caller = callerOf(node, adminUsers);
    // Only reads: all at once, though a memo (a redelivered node) makes the other two unneeded.
    const [memo, blown, past] = await Promise.all([store.get(memoKey), fuse.allBlown(), history.load(caller.conversation)]);
    if (memo !== null) {
      log.info('node was answered before; using that answer');
      const { usage, ...rest } = CompletionMemoSchema.parse(JSON.parse(memo));
      return { ...rest, usage };
    }
    const tools = registry
      .toolsFor(caller)
      .filter((t) => !blown.has(t.tool.name))
      .map((t) => t.spec);
    // The model knows no clock: tools that take times (reminders) need it.
    const system: ChatMessage = { role: 'system', content: `${systemPrompt}\nThe current time is ${new Date().toISOString()} (UTC).` };
    const current: ChatMessage[] = [{ role: 'user', content: text }, ...transcript.map(toChatMessage)];
    const messages = (contextSize: number | undefined): ChatMessage[] => [
      system,
      ...fitHistory(past, [system, ...current], tools, contextSize).map((entry) => ({ role: entry.role, content: entry.content })),
      ...current,
    ];
    const completion = await llm.complete({ nodeId: node.id, caller, messages, tools }, log);
    log.info({ model: completion.model, usage: completion.usage, toolCalls: completion.toolCalls.length }, 'llm answered');
    await store.set(memoKey, JSON.stringify(completion), { ttlMs: memoTtlMs });
    return completion;
  }

  private limitReached(node: Node, completion: Completion): ReplyBody | undefined {
    const { chainMaxDepth, toolCallsPerNode } = this.options.limits;
    const stop = (text: string, error: string): ReplyBody => ({ kind: 'reply', text, format: 'plain', status: 'failed', error });
    if (completion.toolCalls.length > toolCallsPerNode) {
      return stop(
        `I stopped: the assistant asked for ${completion.toolCalls.length} tool calls in one step, more than the limit of ${toolCallsPerNode} (TOOL_CALLS_PER_NODE).`,
        'TOOL_CALLS_LIMIT',
      );
    }
    if (node.depth + 1 >= chainMaxDepth) {
      return stop(
        `I stopped after ${chainMaxDepth} steps without a final answer: that is the limit (CHAIN_MAX_DEPTH). Please ask again more simply.`,
        'CHAIN_DEPTH_LIMIT',
      );
    }
    return undefined;
  }

  /** Runs the calls, at most `toolConcurrency` at once; outcomes in the order of the calls. */
  private runCalls(node: Node, calls: readonly ToolCall[]): Promise<ToolOutcome[]> {
    const limit = pLimit(this.options.limits.toolConcurrency);
    return Promise.all(calls.map((call) => limit(() => this.options.runner.run(node, call))));
  }

  private async noticeBlownFuses(outcomes: readonly ToolOutcome[], out: Outbox): Promise<void> {
    for (const outcome of outcomes.filter((o) => o.fuseBlown)) {
      const registered = this.options.registry.tool(outcome.name);
      const plugin = registered?.plugin.manifest.name ?? outcome.name;
      await out.emit(
        {
          kind: 'reply',
          text: `⚠️ The tool ${outcome.name} failed too often and is switched off. An administrator can switch it back on with /plugin reset ${plugin}.`,
          format: 'plain',
        },
        out.origin,
      );
    }
  }

  /** Parks the node until its user decides, and asks them. */
  private async park(node: Node, step: StepBody, waiting: readonly ToolOutcome[], out: Outbox): Promise<void> {
    const { confirmations } = this.options;
    const formId = Confirmations.formIdOf(node.id);
    const expiresAt = new Date(Date.now() + confirmations.ttl).toISOString();
    const calls = waiting.map((w) => ({ id: w.callId, name: w.name, args: w.args }));
    const next = nextNode(node, step, 'resume');
    const parked = await confirmations.park({
      formId,
      chainId: node.chainId,
      nodeId: node.id,
      userId: node.user?.id ?? null,
      expiresAt,
      calls,
      next,
    });
    // Decided already (this is a redelivery): the messages below were sent before, with these ids.
    if (parked === null) return;
    const shown = calls.map((c) => `• ${c.name}\n\`\`\`json\n${JSON.stringify(maskSecrets(c.args), null, 2)}\n\`\`\``).join('\n');
    const minutes = Math.round(confirmations.ttl / 60_000);
    await out.emit(
      {
        kind: 'reply',
        text: [
          `The assistant wants to run:`,
          shown,
          `Send /confirm ${formId} to allow it, or /cancel ${formId} to refuse (expires in ${minutes} min).`,
          `To change the arguments: /confirm ${formId} {"key": "value", …}`,
        ].join('\n'),
        format: 'markdown',
        buttons: [
          { text: 'Confirm', command: `/confirm ${formId}` },
          { text: 'Cancel', command: `/cancel ${formId}` },
        ],
        form: { formId, expiresAt: parked.expiresAt, tools: calls.map((c) => ({ name: c.name, args: maskSecrets(c.args) })) },
      },
      out.origin,
    );
    await out.emit({ kind: 'status', status: 'waiting' });
  }

  private async finish(node: Node, out: Outbox, view: ChainNode, reply: ReplyBody): Promise<void> {
    view.status = reply.status === 'failed' ? 'failed' : 'done';
    view.finishedAt = new Date().toISOString();
    if (reply.error) view.error = reply.error;
    // The chain log is for people reading it; it need not wait for the reply's confirm.
    await allDone([out.emit(reply), this.options.chains.put(node.chainId, view)]);
  }
}

/** The person's message as the model reads it: the text, then a line for each file they attached. */
export function promptText(body: MessageBody): string {
  const files = body.attachments.map((a) => {
    const details = [a.mime, a.size !== undefined ? `${a.size} bytes` : undefined, `file id ${a.fileId}`].filter(Boolean).join(', ');
    return `[attached ${a.kind}: ${details}]`;
  });
  return [body.text, ...files].filter((line) => line !== '').join('\n');
}

function toolMessage(outcome: ToolOutcome): TranscriptItem {
  return { role: 'tool', toolCallId: outcome.callId, content: outcome.content };
}

function callView(outcome: ToolOutcome): ToolCallView {
  return { id: outcome.callId, name: outcome.name, args: outcome.args, status: outcome.status, result: outcome.content };
}

function toChatMessage(item: TranscriptItem): ChatMessage {
  return item.role === 'assistant' ? { role: 'assistant', content: item.content, toolCalls: item.toolCalls } : item;
}
