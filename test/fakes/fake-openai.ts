import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One message of a chat-completions request, as it arrives on the wire. */
export interface RecordedMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** One tool offered in a chat-completions request. */
export interface RecordedTool {
  type: string;
  function: { name: string; description?: string; parameters?: unknown };
}

export interface RecordedRequest {
  readonly path: string;
  readonly authorization: string | undefined;
  readonly body: { model: string; messages: RecordedMessage[]; tools?: RecordedTool[] } & Record<string, unknown>;
}

type FakeUsage = { prompt: number; completion: number };

/** One tool call the fake model makes: object arguments are JSON-encoded, string arguments sent as is. */
export interface FakeToolCall {
  readonly name: string;
  readonly arguments: unknown;
  /** Default: `call_<requestIndex>_<i>`. */
  readonly id?: string;
}

/** What the fake answers to one request. */
export type FakeAnswer =
  | { readonly text: string; readonly delayMs?: number; readonly usage?: FakeUsage }
  | { readonly toolCalls: readonly FakeToolCall[]; readonly text?: string; readonly delayMs?: number; readonly usage?: FakeUsage }
  | { readonly status: number; readonly message?: string; readonly delayMs?: number };

export type Responder = (request: RecordedRequest, index: number) => FakeAnswer | Promise<FakeAnswer>;

/** The text of the last user message of a request ('' when there is none). */
export function lastUserText(request: RecordedRequest): string {
  const last = [...request.body.messages].reverse().find((m) => m.role === 'user');
  return last?.content ?? '';
}

/** The names of the tools a request offered, in order. */
export function offeredTools(request: RecordedRequest): string[] {
  return (request.body.tools ?? []).map((t) => t.function.name);
}

/** The tool-result messages of a request, in order. */
export function toolResults(request: RecordedRequest): { toolCallId: string; content: string }[] {
  return request.body.messages
    .filter((m) => m.role === 'tool')
    .map((m) => ({ toolCallId: m.tool_call_id ?? '', content: m.content ?? '' }));
}

/** Default: answers "echo: <last user message>". */
export const echo: Responder = (request) => ({ text: `echo: ${lastUserText(request)}` });

/**
 * An OpenAI-compatible chat-completions server on loopback, driven through the real openai SDK by
 * pointing OPENAI_BASE_URL at `baseURL`. Records every request it receives.
 */
export class FakeOpenAi {
  readonly requests: RecordedRequest[] = [];
  private responder: Responder = echo;
  private constructor(
    private readonly server: Server,
    readonly baseURL: string,
  ) {}

  static async start(): Promise<FakeOpenAi> {
    let fake: FakeOpenAi | undefined;
    const server = createServer((req, res) => {
      void (async () => {
        const body = JSON.parse(await readBody(req)) as RecordedRequest['body'];
        const recorded: RecordedRequest = { path: req.url ?? '', authorization: req.headers.authorization, body };
        if (!fake || req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }));
          return;
        }
        const index = fake.requests.push(recorded) - 1;
        const answer = await fake.responder(recorded, index);
        if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
        if ('status' in answer) {
          res.writeHead(answer.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: answer.message ?? `fake error ${answer.status}`, type: 'fake', code: null } }));
          return;
        }
        const usage = answer.usage ?? { prompt: 10, completion: 5 };
        const choice =
          'toolCalls' in answer
            ? {
                index: 0,
                finish_reason: 'tool_calls',
                message: {
                  role: 'assistant',
                  content: answer.text ?? null,
                  tool_calls: answer.toolCalls.map((call, i) => ({
                    id: call.id ?? `call_${index}_${i}`,
                    type: 'function',
                    function: {
                      name: call.name,
                      arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
                    },
                  })),
                },
              }
            : { index: 0, finish_reason: 'stop', message: { role: 'assistant', content: answer.text } };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: `chatcmpl-${index}`,
            object: 'chat.completion',
            created: Math.floor(Date.now() / 1000),
            model: body.model,
            choices: [choice],
            usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion },
          }),
        );
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    fake = new FakeOpenAi(server, `http://127.0.0.1:${port}/v1`);
    return fake;
  }

  /** Replaces how the fake answers (the default echoes). */
  respond(responder: Responder): void {
    this.responder = responder;
  }

  /** Every message of every request as `role: content` lines, as the LLM saw them (null content as ''). */
  get prompts(): string[][] {
    return this.requests.map((r) => r.body.messages.map((m) => `${m.role}: ${m.content ?? ''}`));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
