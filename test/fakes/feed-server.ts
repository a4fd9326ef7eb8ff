import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FeedEntry {
  readonly id: string;
  readonly title: string;
  readonly summary?: string;
  /** ISO time; default: entries later in the list are newer. */
  readonly published?: string;
}

/** How one path answers. */
export interface FeedSpec {
  format: 'rss' | 'atom';
  title: string;
  /** Oldest first; served newest first, as feeds do. */
  entries: FeedEntry[];
  /** Answer this status with an empty body instead of the feed. */
  status?: number;
  /** Serve this text instead of the feed. */
  body?: string;
  /** RSS <ttl> in minutes. */
  ttl?: number;
  /** Send an ETag and answer If-None-Match with 304 (default true). */
  etag?: boolean;
  /** Send Cache-Control: max-age=<seconds>. */
  maxAge?: number;
}

export interface FeedRequest {
  readonly path: string;
  readonly at: number;
  readonly ifNoneMatch: string | undefined;
  readonly status: number;
}

/** A local feed server (RSS 2.0 and Atom) whose feeds a test changes as it goes. */
export class FeedServer {
  readonly requests: FeedRequest[] = [];
  private readonly feeds = new Map<string, FeedSpec>();

  private constructor(
    private readonly server: Server,
    readonly baseURL: string,
  ) {}

  static async start(): Promise<FeedServer> {
    let self: FeedServer | undefined;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const spec = self?.feeds.get(path);
      const record = (status: number): void =>
        void self?.requests.push({ path, at: Date.now(), ifNoneMatch: req.headers['if-none-match'], status });
      if (!spec) {
        record(404);
        res.writeHead(404).end('not found');
        return;
      }
      if (spec.status !== undefined) {
        record(spec.status);
        res.writeHead(spec.status).end();
        return;
      }
      const body = spec.body ?? render(spec, self?.baseURL ?? '');
      const tag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
      if (spec.etag !== false && req.headers['if-none-match'] === tag) {
        record(304);
        res.writeHead(304, { etag: tag, ...(spec.maxAge !== undefined ? { 'cache-control': `max-age=${spec.maxAge}` } : {}) }).end();
        return;
      }
      record(200);
      res.writeHead(200, {
        'content-type': spec.format === 'atom' ? 'application/atom+xml' : 'application/rss+xml',
        ...(spec.etag !== false ? { etag: tag } : {}),
        ...(spec.maxAge !== undefined ? { 'cache-control': `max-age=${spec.maxAge}` } : {}),
      });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    self = new FeedServer(server, `http://127.0.0.1:${port}`);
    return self;
  }

  /** Serves a feed at a path; returns its URL. */
  serve(path: string, spec: FeedSpec): string {
    this.feeds.set(path, spec);
    return `${this.baseURL}${path}`;
  }

  feed(path: string): FeedSpec {
    const spec = this.feeds.get(path);
    if (!spec) throw new Error(`no feed at ${path}`);
    return spec;
  }

  /** Adds entries (newest last) to a feed. */
  add(path: string, ...entries: FeedEntry[]): void {
    this.feed(path).entries.push(...entries);
  }

  requestsTo(path: string): FeedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function render(spec: FeedSpec, baseURL: string): string {
  const base = Date.UTC(2026, 0, 1);
  const dated = spec.entries.map((entry, i) => ({ ...entry, published: entry.published ?? new Date(base + i * 60_000).toISOString() }));
  const newestFirst = [...dated].reverse();
  if (spec.format === 'atom') {
    return [
      '<?xml version="1.0" encoding="utf-8"?>',
      '<feed xmlns="http://www.w3.org/2005/Atom">',
      `<title>${xml(spec.title)}</title><id>urn:feed:${xml(spec.title)}</id><updated>${new Date(base).toISOString()}</updated>`,
      ...newestFirst.map(
        (e) =>
          `<entry><id>urn:entry:${xml(e.id)}</id><title>${xml(e.title)}</title><link href="${baseURL}/posts/${xml(e.id)}"/>` +
          `<updated>${e.published}</updated><summary>${xml(e.summary ?? '')}</summary></entry>`,
      ),
      '</feed>',
    ].join('\n');
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<rss version="2.0"><channel>',
    `<title>${xml(spec.title)}</title><link>${baseURL}</link><description>test feed</description>`,
    ...(spec.ttl !== undefined ? [`<ttl>${spec.ttl}</ttl>`] : []),
    ...newestFirst.map(
      (e) =>
        `<item><guid isPermaLink="false">${xml(e.id)}</guid><title>${xml(e.title)}</title><link>${baseURL}/posts/${xml(e.id)}</link>` +
        `<pubDate>${new Date(e.published).toUTCString()}</pubDate><description>${xml(e.summary ?? '')}</description></item>`,
    ),
    '</channel></rss>',
  ].join('\n');
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
