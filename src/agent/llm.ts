import { SwitchboardError } from '../core/errors.ts';

/** One tool call the model asked for. `arguments` is the raw JSON text the model wrote. */
export interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

/** A message of the conversation sent to the model (the OpenAI chat shape, SDK-neutral). */
export type ChatMessage =
  | { readonly role: 'system' | 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string | null; readonly toolCalls?: readonly ToolCall[] }
  | { readonly role: 'tool'; readonly toolCallId: string; readonly content: string };

/** A tool offered to the model: its parameters as a JSON Schema object. */
export interface ToolSpec {
  readonly name: string;
  readonly description: string;
  readonly parameters: Readonly<Record<string, unknown>>;
}

export interface Completion {
  /** The answer text ('' when the model only called tools). */
  readonly text: string;
  /** Tool calls in the order the model made them (empty for a plain answer). */
  readonly toolCalls: readonly ToolCall[];
  readonly model: string;
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number } | undefined;
}

export interface CompleteOptions {
  /** Tools the model may call; none offered when empty or absent. */
  readonly tools?: readonly ToolSpec[];
  readonly signal?: AbortSignal;
}

/** The LLM port: one chat completion. The OpenAI adapter is the production one. */
export interface LlmClient {
  complete(messages: readonly ChatMessage[], options?: CompleteOptions): Promise<Completion>;
}

export type LlmFailure = 'unauthorized' | 'timeout' | 'rate_limited' | 'unavailable' | 'bad_request' | 'not_configured' | 'quota_exceeded';

const USER_MESSAGES: Record<LlmFailure, string> = {
  unauthorized: 'The language model provider refused our credentials. An operator has to fix the API key.',
  timeout: 'The language model took too long to answer. Please try again.',
  rate_limited: 'The language model is busy right now. Please try again in a minute.',
  unavailable: 'The language model is unavailable right now. Please try again later.',
  bad_request: 'The language model could not handle this request.',
  not_configured: 'No LLM is configured on this server, so I can only run commands. Send /help to see them.',
  quota_exceeded: 'You have used up your allowance of the language model for today.',
};

/** An LLM call failed after the SDK's own retries; carries what to tell the person. */
export class LlmError extends SwitchboardError {
  readonly failure: LlmFailure;
  readonly #userMessage: string | undefined;
  /** `options.userMessage` replaces the standard text for the failure (e.g. "your own key was refused"). */
  constructor(failure: LlmFailure, detail: string, options?: { cause?: unknown; userMessage?: string }) {
    super(`LLM_${failure.toUpperCase()}`, detail, options);
    this.failure = failure;
    this.#userMessage = options?.userMessage;
  }

  get userMessage(): string {
    return this.#userMessage ?? USER_MESSAGES[this.failure];
  }
}
