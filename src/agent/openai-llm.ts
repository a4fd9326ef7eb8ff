import OpenAI from 'openai';
import type { ChatMessage, Completion, LlmClient } from './llm.ts';
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
    });
  }

  async complete(messages: readonly ChatMessage[], signal?: AbortSignal): Promise<Completion> {
    try {
      const response = await this.client.chat.completions.create(
        { model: this.options.model, messages: messages.map((m) => ({ role: m.role, content: m.content })) },
        { signal },
      );
      const choice = response.choices[0];
      return {
        text: choice?.message.content ?? '',
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
