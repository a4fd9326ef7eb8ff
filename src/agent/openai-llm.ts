import OpenAI from 'openai';
import type {
  ChatCompletionFunctionTool,
  ChatCompletionMessage,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import type { ChatMessage, CompleteOptions, Completion, LlmClient, ToolCall, ToolSpec } from './llm.ts';
import { LlmError } from './llm.ts';

export interface OpenAiLlmOptions {
  readonly apiKey: string;
  readonly baseURL?: string | undefined;
  readonly model: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
}

/** Any OpenAI-compatible chat-completions server, through the official SDK (which retries 429/5xx). */
export class OpenAiLlm implements LlmClient {
  private readonly client: OpenAI;

  constructor(private readonly options: OpenAiLlmOptions) {
    this.client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
      // An API endpoint that redirects is misconfigured: the call fails (after the SDK's retries, as
      // a connection error) instead of following it with the key. It also spares fetch a copy of
      // every request body (kept to replay on a redirect): about 60 µs of CPU per call.
      fetchOptions: { redirect: 'error' },
    });
  }

  async complete(messages: readonly ChatMessage[], options: CompleteOptions = {}): Promise<Completion> {
    const tools = options.tools ?? [];
    try {
      const response = await this.client.chat.completions.create(
        {
          model: this.options.model,
          messages: messages.map(toMessageParam),
          // Some OpenAI-compatible servers reject an empty `tools` array, so it is sent only when there are tools.
          ...(tools.length > 0 ? { tools: tools.map(toToolParam) } : {}),
        },
        { signal: options.signal },
      );
      const message = response.choices[0]?.message;
      return {
        text: message?.content ?? '',
        toolCalls: message ? toToolCalls(message) : [],
        model: response.model,
        usage: response.usage
          ? { promptTokens: response.usage.prompt_tokens, completionTokens: response.usage.completion_tokens }
          : undefined,
      };
    } catch (err) {
      throw toLlmError(err);
    }
  }
}

function toMessageParam(message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'system':
      return { role: 'system', content: message.content };
    case 'user':
      return { role: 'user', content: message.content };
    case 'assistant': {
      const toolCalls = message.toolCalls ?? [];
      if (toolCalls.length === 0) return { role: 'assistant', content: message.content };
      return {
        role: 'assistant',
        content: message.content,
        tool_calls: toolCalls.map((call) => ({
          id: call.id,
          type: 'function',
          function: { name: call.name, arguments: call.arguments },
        })),
      };
    }
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
  }
}

function toToolParam(tool: ToolSpec): ChatCompletionFunctionTool {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: { ...tool.parameters } } };
}

/** Function tool calls in the order the model made them; other kinds (custom tools) are never offered, so ignored. */
function toToolCalls(message: ChatCompletionMessage): ToolCall[] {
  return (message.tool_calls ?? [])
    .filter((call): call is ChatCompletionMessageFunctionToolCall => call.type === 'function')
    .map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments }));
}

function toLlmError(err: unknown): LlmError {
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new LlmError('timeout', err.message, { cause: err });
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const status = err.status;
    const detail = `HTTP ${status}: ${err.message}`;
    if (status === 401 || status === 403) return new LlmError('unauthorized', detail, { cause: err });
    if (status === 429) return new LlmError('rate_limited', detail, { cause: err });
    if (status >= 500) return new LlmError('unavailable', detail, { cause: err });
    return new LlmError('bad_request', detail, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new LlmError('unavailable', message, { cause: err });
}
