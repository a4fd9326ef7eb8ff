import { createServer, type IncomingHttpHeaders, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './fake-openai.ts';

export interface RecordedIssue {
  readonly owner: string;
  readonly repo: string;
  readonly title: string;
  readonly body: string | undefined;
  /** The authorization header as sent (`Bearer <token>` or `token <token>`). */
  readonly authorization: string;
  readonly headers: IncomingHttpHeaders;
}

const CREATE_ISSUE = /^\/repos\/([^/]+)\/([^/]+)\/issues\/?$/;
const AUTHORIZATION = /^(bearer|token) \S+$/i;

/**
 * A GitHub REST server on loopback that can create issues (`POST /repos/:owner/:repo/issues`); point
 * the client's base URL at `baseURL`. Records every issue it created; everything else answers 404.
 *
 * @example
 * const github = await FakeGitHub.start();
 * github.failNext(502, 2); // the next two creates fail, the third succeeds
 * // ... exercise the code ...
 * expect(github.issues[0]?.title).toBe('Bug');
 * await github.close();
 */
export class FakeGitHub {
  /** Issues created, in order. */
  readonly issues: RecordedIssue[] = [];
  /** Create requests that reached the route with valid auth, failed ones included. */
  attempts = 0;
  private failure: { status: number; remaining: number } | undefined;
  private nextId = 1000;
  private readonly numbers = new Map<string, number>();

  private constructor(
    private readonly server: Server,
    readonly baseURL: string,
  ) {}

  static async start(): Promise<FakeGitHub> {
    let fake: FakeGitHub | undefined;
    const server = createServer((req, res) => {
      void (async () => {
        const raw = await readBody(req);
        const path = new URL(req.url ?? '/', 'http://fake').pathname;
        const match = CREATE_ISSUE.exec(path);
        if (!fake || req.method !== 'POST' || !match) {
          send(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
          return;
        }
        const authorization = req.headers.authorization;
        if (authorization === undefined || !AUTHORIZATION.test(authorization.trim())) {
          send(res, 401, { message: 'Requires authentication', documentation_url: 'https://docs.github.com/rest' });
          return;
        }
        fake.attempts += 1;
        if (fake.failure !== undefined && fake.failure.remaining > 0) {
          const { status } = fake.failure;
          fake.failure.remaining -= 1;
          if (fake.failure.remaining === 0) fake.failure = undefined;
          send(res, status, { message: `fake failure ${status}` });
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          send(res, 400, { message: 'Problems parsing JSON' });
          return;
        }
        const fields = (typeof body === 'object' && body !== null ? body : {}) as { title?: unknown; body?: unknown };
        if (
          typeof fields.title !== 'string' ||
          fields.title === '' ||
          (fields.body !== undefined && fields.body !== null && typeof fields.body !== 'string')
        ) {
          send(res, 422, { message: 'Validation Failed', errors: [{ resource: 'Issue', field: 'title', code: 'missing_field' }] });
          return;
        }
        const owner = decodeURIComponent(match[1] ?? '');
        const repo = decodeURIComponent(match[2] ?? '');
        const issueBody = typeof fields.body === 'string' ? fields.body : undefined;
        fake.issues.push({ owner, repo, title: fields.title, body: issueBody, authorization, headers: { ...req.headers } });
        const repoKey = `${owner}/${repo}`.toLowerCase();
        const number = (fake.numbers.get(repoKey) ?? 0) + 1;
        fake.numbers.set(repoKey, number);
        fake.nextId += 1;
        send(res, 201, {
          id: fake.nextId,
          number,
          title: fields.title,
          body: issueBody ?? null,
          html_url: `https://github.example/${owner}/${repo}/issues/${number}`,
          state: 'open',
        });
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    fake = new FakeGitHub(server, `http://127.0.0.1:${port}`);
    return fake;
  }

  /** The next `times` creates (with valid auth) answer `status` instead of creating an issue. */
  failNext(status: number, times = 1): void {
    this.failure = times > 0 ? { status, remaining: times } : undefined;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}
