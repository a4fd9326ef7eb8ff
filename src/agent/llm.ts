import { SwitchboardError } from '../core/errors.ts';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface Completion {
  readonly text: string;
  readonly model: string;
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number } | undefined;
}

/** The LLM port: one chat completion. The OpenAI adapter is the production one. */
export interface LlmClient {
  complete(messages: readonly ChatMessage[], signal?: AbortSignal): Promise<Completion>;
}

export type LlmFailure = 'unauthorized' | 'timeout' | 'rate_limited' | 'unavailable' | 'bad_request' | 'not_configured';

const USER_MESSAGES: Record<LlmFailure, string> = {
  unauthorized: 'The language model provider refused our credentials. An operator has to fix the API key.',
  timeout: 'The language model took too long to answer. Please try again.',
  rate_limited: 'The language model is busy right now. Please try again in a minute.',
  unavailable: 'The language model is unavailable right now. Please try again later.',
  bad_request: 'The language model could not handle this request.',
  not_configured: 'No LLM is configured on this server, so I can only run commands. Send /help to see them.',
};

/** An LLM call failed after the SDK's own retries; carries what to tell the person. */
export class LlmError extends SwitchboardError {
  readonly failure: LlmFailure;
  constructor(failure: LlmFailure, detail: string, options?: { cause?: unknown }) {
    super(`LLM_${failure.toUpperCase()}`, detail, options);
    this.failure = failure;
  }

  get userMessage(): string {
    return USER_MESSAGES[this.failure];
  }
}
