import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ChatMessage, CompleteOptions, Completion, LlmClient, ToolCall, ToolSpec } from './llm.ts';

const ANSWER_FORMAT = [
  'Reply with exactly one JSON object and nothing else, in one of these two forms:',
  '- to call one or more tools: {"tool_calls":[{"name":"<tool name>","arguments":{<arguments matching the tool\'s parameters>}}]}',
  '- to answer the user directly: {"answer":"<your answer>"}',
].join('\n');

const ReplySchema = z.union([
  z.object({
    tool_calls: z
      .array(
        z.object({
          name: z.string().min(1),
          // A JSON object as asked; a JSON text inside a string is tolerated and passed on as is.
          arguments: z.union([z.record(z.string(), z.unknown()), z.string()]).optional(),
        }),
      )
      .min(1),
  }),
  z.object({ answer: z.string() }),
]);
type Reply = z.infer<typeof ReplySchema>;

type Parsed = { readonly ok: true; readonly reply: Reply } | { readonly ok: false; readonly problem: string };

/**
 * Tool calling for models without native support (configured as `tools: "prompt"`): the tools and a
 * JSON answer format are described in the system prompt, and the model's JSON reply is parsed back
 * into tool calls. The wrapped client never sees tools or tool-specific roles.
 *
 * @example
 * const llm = new PromptToolsLlm(new OpenAiLlm({ apiKey, baseURL, model: 'small-local-model', timeoutMs, maxRetries }));
 * const completion = await llm.complete(messages, { tools });
 */
export class PromptToolsLlm implements LlmClient {
  constructor(private readonly inner: LlmClient) {}

  async complete(messages: readonly ChatMessage[], options: CompleteOptions = {}): Promise<Completion> {
    const tools = options.tools ?? [];
    const conversation = toPlainConversation(messages);
    const signalOnly: CompleteOptions = options.signal ? { signal: options.signal } : {};
    if (tools.length === 0) return this.inner.complete(conversation, signalOnly);

    const prompted = withToolInstructions(conversation, tools);
    const first = await this.inner.complete(prompted, signalOnly);
    const firstParsed = parseReply(first.text);
    if (firstParsed.ok) return toCompletion(firstParsed.reply, first, first.usage, messages.length);

    const retry: ChatMessage[] = [
      ...prompted,
      { role: 'assistant', content: first.text },
      { role: 'user', content: `Your last reply could not be used: ${firstParsed.problem}.\n${ANSWER_FORMAT}` },
    ];
    const second = await this.inner.complete(retry, signalOnly);
    const usage = sumUsage(first.usage, second.usage);
    const secondParsed = parseReply(second.text);
    if (secondParsed.ok) return toCompletion(secondParsed.reply, second, usage, messages.length);
    // Twice off-format: the model most likely just answered in prose, so that is the answer.
    return { text: second.text, toolCalls: [], model: second.model, usage };
  }
}

/** The tools and the answer format, appended to the first system message (or as a new one). */
function withToolInstructions(messages: readonly ChatMessage[], tools: readonly ToolSpec[]): ChatMessage[] {
  const instructions = describeTools(tools);
  const index = messages.findIndex((m) => m.role === 'system');
  const system = messages[index];
  if (system?.role !== 'system') return [{ role: 'system', content: instructions }, ...messages];
  const copy = [...messages];
  copy[index] = { role: 'system', content: `${system.content}\n\n${instructions}` };
  return copy;
}

function describeTools(tools: readonly ToolSpec[]): string {
  const list = tools.map((t) => `- ${t.name}: ${t.description}\n  parameters (JSON Schema): ${JSON.stringify(t.parameters)}`);
  return ['You can call these tools:', ...list, '', ANSWER_FORMAT].join('\n');
}

/** Rewrites assistant tool calls and tool results as the plain text the model would have exchanged. */
function toPlainConversation(messages: readonly ChatMessage[]): ChatMessage[] {
  const toolNames = new Map<string, string>();
  return messages.map((message): ChatMessage => {
    if (message.role === 'tool') {
      const name = toolNames.get(message.toolCallId) ?? 'unknown';
      return { role: 'user', content: `Result of tool ${name} (call ${message.toolCallId}): ${message.content}` };
    }
    if (message.role !== 'assistant' || !message.toolCalls?.length) return message;
    for (const call of message.toolCalls) toolNames.set(call.id, call.name);
    const said = { tool_calls: message.toolCalls.map((call) => ({ name: call.name, arguments: argumentsValue(call.arguments) })) };
    return { role: 'assistant', content: JSON.stringify(said) };
  });
}

function argumentsValue(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function parseReply(text: string): Parsed {
  const json = extractJsonObject(text);
  if (json === undefined) return { ok: false, problem: 'it contains no JSON object' };
  const result = ReplySchema.safeParse(json);
  if (!result.success) return { ok: false, problem: 'the JSON object has neither a non-empty "tool_calls" list nor an "answer" string' };
  return { ok: true, reply: result.data };
}

/** The whole text as JSON, else the first parseable {...} object in it (inside a ```json fence or prose). */
function extractJsonObject(text: string): unknown {
  const whole = tryParse(text.trim());
  if (isObject(whole)) return whole;
  for (let start = text.indexOf('{'); start !== -1; start = text.indexOf('{', start + 1)) {
    const end = matchingBrace(text, start);
    if (end === -1) continue;
    const candidate = tryParse(text.slice(start, end + 1));
    if (isObject(candidate)) return candidate;
  }
  return undefined;
}

/** Index of the brace closing the one at `start`, skipping braces inside JSON strings; -1 if unbalanced. */
function matchingBrace(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toCompletion(reply: Reply, raw: Completion, usage: Completion['usage'], conversationLength: number): Completion {
  if ('answer' in reply) return { text: reply.answer, toolCalls: [], model: raw.model, usage };
  // Deterministic for the same reply at the same point of the conversation; unique within the completion by index.
  const prefix = createHash('sha256').update(`${conversationLength}\n${raw.text}`).digest('hex').slice(0, 12);
  const toolCalls: ToolCall[] = reply.tool_calls.map((call, i) => ({
    id: `call_${prefix}_${i}`,
    name: call.name,
    arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {}),
  }));
  return { text: '', toolCalls, model: raw.model, usage };
}

function sumUsage(a: Completion['usage'], b: Completion['usage']): Completion['usage'] {
  if (!a) return b;
  if (!b) return a;
  return { promptTokens: a.promptTokens + b.promptTokens, completionTokens: a.completionTokens + b.completionTokens };
}
