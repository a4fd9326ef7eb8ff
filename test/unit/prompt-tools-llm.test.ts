import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage, ToolSpec } from '../../src/agent/llm.ts';
import { OpenAiLlm } from '../../src/agent/openai-llm.ts';
import { PromptToolsLlm } from '../../src/agent/prompt-tools-llm.ts';
import { echo, FakeOpenAi, lastUserText, type FakeAnswer, type RecordedRequest } from '../fakes/fake-openai.ts';

const weather: ToolSpec = {
  name: 'weather',
  description: 'Current weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const clock: ToolSpec = { name: 'clock', description: 'The current time', parameters: { type: 'object', properties: {} } };
const tools = [weather, clock];
const ask: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful bot.' },
  { role: 'user', content: 'weather in Oslo?' },
];

function request(fake: FakeOpenAi, index: number): RecordedRequest {
  const found = fake.requests[index];
  if (!found) throw new Error(`no request ${index}`);
  return found;
}

describe('PromptToolsLlm', () => {
  let fake: FakeOpenAi;
  let llm: PromptToolsLlm;

  beforeAll(async () => {
    fake = await FakeOpenAi.start();
    llm = new PromptToolsLlm(
      new OpenAiLlm({ apiKey: 'sk-test', baseURL: fake.baseURL, model: 'small-model', timeoutMs: 5_000, maxRetries: 0 }),
    );
  });
  afterAll(() => fake.close());
  beforeEach(() => {
    fake.requests.length = 0;
    fake.respond(echo);
  });

  function answers(...texts: string[]): void {
    fake.respond((_request, index): FakeAnswer => ({ text: texts[index] ?? 'no more answers', usage: { prompt: 100, completion: 10 } }));
  }

  it('describes the tools in the system prompt and sends no tools field', async () => {
    answers('{"answer":"fine"}');
    await llm.complete(ask, { tools });
    const sent = request(fake, 0).body;
    expect(sent).not.toHaveProperty('tools');
    expect(sent.messages).toHaveLength(2);
    const system = sent.messages[0];
    expect(system?.role).toBe('system');
    expect(system?.content).toMatch(/^You are a helpful bot\.\n\n/);
    expect(system?.content).toContain('weather: Current weather of a city');
    expect(system?.content).toContain(JSON.stringify(weather.parameters));
    expect(system?.content).toContain('clock: The current time');
    expect(system?.content).toContain('{"tool_calls":[{"name":');
    expect(system?.content).toContain('{"answer":');
    expect(sent.messages[1]).toEqual({ role: 'user', content: 'weather in Oslo?' });
  });

  it('adds a system message when the conversation has none', async () => {
    answers('{"answer":"fine"}');
    await llm.complete([{ role: 'user', content: 'hi' }], { tools });
    expect(fake.prompts[0]).toEqual([expect.stringMatching(/^system: You can call these tools:/), 'user: hi']);
  });

  it('turns a JSON tool call answer into tool calls', async () => {
    answers(
      '{"tool_calls":[{"name":"weather","arguments":{"city":"Oslo"}},{"name":"clock","arguments":{}},{"name":"launch","arguments":{}}]}',
    );
    const completion = await llm.complete(ask, { tools });
    expect(completion.text).toBe('');
    expect(completion.model).toBe('small-model');
    expect(completion.usage).toEqual({ promptTokens: 100, completionTokens: 10 });
    expect(completion.toolCalls.map(({ name, arguments: args }) => ({ name, args }))).toEqual([
      { name: 'weather', args: '{"city":"Oslo"}' },
      { name: 'clock', args: '{}' },
      // Not offered, still returned: the worker refuses unknown tools.
      { name: 'launch', args: '{}' },
    ]);
    const ids = completion.toolCalls.map((c) => c.id);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^call_\w+_\d$/);

    fake.requests.length = 0;
    const again = await llm.complete(ask, { tools });
    expect(again.toolCalls.map((c) => c.id)).toEqual(ids);
  });

  it('defaults missing arguments to an empty object', async () => {
    answers('{"tool_calls":[{"name":"clock"}]}');
    const completion = await llm.complete(ask, { tools });
    expect(completion.toolCalls.map((c) => [c.name, c.arguments])).toEqual([['clock', '{}']]);
  });

  it('turns {"answer": ...} into a plain answer', async () => {
    answers('{"answer":"It is sunny in {Oslo}."}');
    const completion = await llm.complete(ask, { tools });
    expect(completion).toEqual({
      text: 'It is sunny in {Oslo}.',
      toolCalls: [],
      model: 'small-model',
      usage: { promptTokens: 100, completionTokens: 10 },
    });
    expect(fake.requests).toHaveLength(1);
  });

  it('reads a ```json fenced answer with prose around it', async () => {
    answers('Sure, let me check.\n```json\n{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}\n```\nDone.');
    const completion = await llm.complete(ask, { tools });
    expect(completion.toolCalls.map((c) => [c.name, c.arguments])).toEqual([['weather', '{"city":"Oslo"}']]);
    expect(fake.requests).toHaveLength(1);
  });

  it('retries once on an invalid reply, then uses the valid one and sums the usage', async () => {
    answers('{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"', '{"answer":"Rain in Oslo."}');
    const completion = await llm.complete(ask, { tools });
    expect(completion.text).toBe('Rain in Oslo.');
    expect(completion.toolCalls).toEqual([]);
    expect(completion.usage).toEqual({ promptTokens: 200, completionTokens: 20 });
    expect(fake.requests).toHaveLength(2);
    const retry = request(fake, 1).body.messages;
    expect(retry.slice(0, 2)).toEqual(request(fake, 0).body.messages);
    expect(retry[2]).toEqual({ role: 'assistant', content: '{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"' });
    expect(retry[3]?.role).toBe('user');
    expect(lastUserText(request(fake, 1))).toContain('{"answer":');
    expect(lastUserText(request(fake, 1))).toContain('{"tool_calls":');
  });

  it('retries a JSON object of the wrong shape', async () => {
    answers('{"reply":"hello"}', '{"tool_calls":[{"name":"clock","arguments":{}}]}');
    const completion = await llm.complete(ask, { tools });
    expect(completion.toolCalls.map((c) => c.name)).toEqual(['clock']);
    expect(fake.requests).toHaveLength(2);
  });

  it('takes a second invalid reply as the plain answer', async () => {
    answers('I think it rains.', 'It rains in Oslo, I promise.');
    const completion = await llm.complete(ask, { tools });
    expect(completion).toEqual({
      text: 'It rains in Oslo, I promise.',
      toolCalls: [],
      model: 'small-model',
      usage: { promptTokens: 200, completionTokens: 20 },
    });
    expect(fake.requests).toHaveLength(2);
  });

  it('sends tool calls and tool results to the model as plain text', async () => {
    answers('{"answer":"Rain, 4°C."}');
    const conversation: ChatMessage[] = [
      ...ask,
      {
        role: 'assistant',
        content: null,
        toolCalls: [
          { id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}' },
          { id: 'call_b', name: 'clock', arguments: '{}' },
        ],
      },
      { role: 'tool', toolCallId: 'call_a', content: 'rain, 4°C' },
      { role: 'tool', toolCallId: 'call_b', content: '12:00' },
    ];
    const completion = await llm.complete(conversation, { tools });
    expect(completion.text).toBe('Rain, 4°C.');
    const sent = request(fake, 0).body.messages;
    for (const m of sent) {
      expect(['system', 'user', 'assistant']).toContain(m.role);
      expect(m).not.toHaveProperty('tool_calls');
      expect(m).not.toHaveProperty('tool_call_id');
    }
    expect(fake.prompts[0]?.slice(2)).toEqual([
      'assistant: {"tool_calls":[{"name":"weather","arguments":{"city":"Oslo"}},{"name":"clock","arguments":{}}]}',
      'user: Result of tool weather (call call_a): rain, 4°C',
      'user: Result of tool clock (call call_b): 12:00',
    ]);
  });

  it('passes a conversation through unchanged when no tools are offered', async () => {
    const completion = await llm.complete(ask);
    expect(completion.text).toBe('echo: weather in Oslo?');
    expect(request(fake, 0).body.messages).toEqual(ask);
    expect(request(fake, 0).body).not.toHaveProperty('tools');
  });
});
