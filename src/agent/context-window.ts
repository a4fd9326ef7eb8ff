import type { ChatMessage, ToolSpec } from './llm.ts';

/** Rough tokens of a text: about 4 characters each (English; other scripts count higher, which errs safe). */
const CHARS_PER_TOKEN = 4;
/** Per-message framing the chat format adds. */
const MESSAGE_OVERHEAD = 4;

/**
 * The most recent part of `past` that fits a model's context window beside the messages that must be
 * sent (`fixed`: system prompt, the user's text, the chain's transcript) and the tools, with room left
 * for the answer (a quarter of the window, at most 4,096 tokens). Without a known window, all of it.
 * The estimate is coarse on purpose: it only has to keep long histories from overflowing the window.
 */
export function fitHistory<T extends { readonly content: string }>(
  past: readonly T[],
  fixed: readonly ChatMessage[],
  tools: readonly ToolSpec[],
  contextSize: number | undefined,
): T[] {
  if (contextSize === undefined) return [...past];
  const answer = Math.min(Math.floor(contextSize / 4), 4096);
  let budget = contextSize - answer - tokensOf(JSON.stringify(tools)) - fixed.reduce((sum, m) => sum + messageTokens(m), 0);
  let kept = past.length;
  while (kept > 0) {
    const entry = past[kept - 1] as T;
    const cost = tokensOf(entry.content) + MESSAGE_OVERHEAD;
    if (cost > budget) break;
    budget -= cost;
    kept -= 1;
  }
  return past.slice(kept);
}

function messageTokens(message: ChatMessage): number {
  const calls = message.role === 'assistant' ? JSON.stringify(message.toolCalls ?? []) : '';
  return tokensOf((message.content ?? '') + calls) + MESSAGE_OVERHEAD;
}

function tokensOf(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}
