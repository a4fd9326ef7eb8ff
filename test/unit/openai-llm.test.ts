import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage, ToolSpec } from '../../src/agent/llm.ts';
import { LlmError } from '../../src/agent/llm.ts';
import { OpenAiLlm } from '../../src/agent/openai-llm.ts';
import { echo, FakeOpenAi, offeredTools, toolResults } from '../fakes/fake-openai.ts';

const weather: ToolSpec = {
  name: 'weather',
  description: 'Current weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const clock: ToolSpec = { name: 'clock', description: 'The current time', parameters: { type: 'object', properties: {} } };

describe('OpenAiLlm', () => {
  let fake: FakeOpenAi;
  let llm: OpenAiLlm;

  beforeAll(async () => {
    fake = await FakeOpenAi.start();
    llm = new OpenAiLlm({ apiKey: 'sk-test', baseURL: fake.baseURL, model: 'fake-model', timeoutMs: 5_000, maxRetries: 0 });
  });
  afterAll(() => fake.close());
  beforeEach(() => {
    fake.requests.length = 0;
    fake.respond(echo);
  });

  it('answers plain text without sending a tools field', async () => {
    const completion = await llm.complete([{ role: 'user', content: 'hi' }]);
    expect(completion).toEqual({ text: 'echo: hi', toolCalls: [], model: 'fake-model', usage: { promptTokens: 10, completionTokens: 5 } });
    expect(fake.requests[0]?.body).not.toHaveProperty('tools');
    expect(fake.requests[0]?.body.messages).toEqual([{ role: 'user', content: 'hi' }]);
  });

  it('sends no tools field for an empty tool list', async () => {
    await llm.complete([{ role: 'user', content: 'hi' }], { tools: [] });
    expect(fake.requests[0]?.body).not.toHaveProperty('tools');
  });

  it('sends the offered tools as function tools', async () => {
    await llm.complete([{ role: 'user', content: 'weather?' }], { tools: [weather, clock] });
    const request = fake.requests[0];
    if (!request) throw new Error('no request');
    expect(offeredTools(request)).toEqual(['weather', 'clock']);
    expect(request.body.tools).toEqual([
      { type: 'function', function: { name: 'weather', description: weather.description, parameters: weather.parameters } },
      { type: 'function', function: { name: 'clock', description: clock.description, parameters: clock.parameters } },
    ]);
  });

  it('returns the tool calls in order with the raw argument JSON', async () => {
    fake.respond(() => ({
      toolCalls: [
        { name: 'weather', arguments: '{ "city":  "Oslo" }' },
        { name: 'clock', arguments: {} },
        { name: 'weather', arguments: { city: 'Lima' }, id: 'call_custom' },
      ],
      usage: { prompt: 30, completion: 12 },
    }));
    const completion = await llm.complete([{ role: 'user', content: 'weather?' }], { tools: [weather, clock] });
    expect(completion).toEqual({
      text: '',
      toolCalls: [
        { id: 'call_0_0', name: 'weather', arguments: '{ "city":  "Oslo" }' },
        { id: 'call_0_1', name: 'clock', arguments: '{}' },
        { id: 'call_custom', name: 'weather', arguments: '{"city":"Lima"}' },
      ],
      model: 'fake-model',
      usage: { promptTokens: 30, completionTokens: 12 },
    });
  });

  it('keeps the text the model wrote next to its tool calls', async () => {
    fake.respond(() => ({ toolCalls: [{ name: 'clock', arguments: {} }], text: 'let me check' }));
    const completion = await llm.complete([{ role: 'user', content: 'time?' }], { tools: [clock] });
    expect(completion.text).toBe('let me check');
    expect(completion.toolCalls.map((c) => c.name)).toEqual(['clock']);
  });

  it('sends assistant tool calls and tool results in the wire shape', async () => {
    const conversation: ChatMessage[] = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'weather in Oslo and the time?' },
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
      { role: 'assistant', content: 'Rainy, and it is noon.' },
      { role: 'user', content: 'thanks' },
    ];
    await llm.complete(conversation, { tools: [weather, clock] });
    const request = fake.requests[0];
    if (!request) throw new Error('no request');
    expect(request.body.messages).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'weather in Oslo and the time?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
          { id: 'call_b', type: 'function', function: { name: 'clock', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: 'rain, 4°C' },
      { role: 'tool', tool_call_id: 'call_b', content: '12:00' },
      { role: 'assistant', content: 'Rainy, and it is noon.' },
      { role: 'user', content: 'thanks' },
    ]);
    expect(toolResults(request)).toEqual([
      { toolCallId: 'call_a', content: 'rain, 4°C' },
      { toolCallId: 'call_b', content: '12:00' },
    ]);
    expect(fake.prompts[0]?.[2]).toBe('assistant: ');
  });

  it('reports an endpoint that redirects as unavailable, and does not send the key on', async () => {
    const seen: string[] = [];
    const redirecting = createServer((req, res) => {
      seen.push(`${req.url ?? ''} ${req.headers.authorization ?? ''}`);
      res.writeHead(307, { location: `${fake.baseURL}/chat/completions` }).end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = redirecting.address() as AddressInfo;
      const moved = new OpenAiLlm({
        apiKey: 'sk-test',
        baseURL: `http://127.0.0.1:${port}/v1`,
        model: 'fake-model',
        timeoutMs: 5_000,
        maxRetries: 0,
      });
      const failure = await moved.complete([{ role: 'user', content: 'hi' }]).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(LlmError);
      expect((failure as LlmError).failure).toBe('unavailable');
      expect(seen).toEqual(['/v1/chat/completions Bearer sk-test']);
      expect(fake.requests).toHaveLength(0);
    } finally {
      redirecting.closeAllConnections();
      await new Promise((resolve) => redirecting.close(resolve));
    }
  });

  it('still maps provider errors to LlmError', async () => {
    fake.respond(() => ({ status: 401, message: 'bad key' }));
    const failure = await llm.complete([{ role: 'user', content: 'hi' }], { tools: [clock] }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(LlmError);
    expect((failure as LlmError).failure).toBe('unauthorized');
  });
});
