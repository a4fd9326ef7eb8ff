/**
 * Fetches and parses one feed (RSS 2.0, RSS 1.0 or Atom) the way a polite poller does: a conditional
 * GET with the ETag and Last-Modified of the last answer, a time limit, a size limit (after
 * decompression), at most 5 redirects, and, unless allowed, no private, loopback or link-local
 * addresses at any hop.
 *
 * @example
 * const result = await fetchFeed('https://example.com/feed.xml', { etag: '"abc"' }, { timeoutMs: 10_000, maxBytes: 2_000_000, allowPrivate: false });
 * if (result.status === 'ok') logger.info({ title: result.feed.title, items: result.feed.items.length }, 'feed read');
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable } from 'node:stream';
import Parser from 'rss-parser';
import { checkLiteralHost, publicOnlyLookup } from './address-guard.ts';
import { FeedError } from './feed-error.ts';

export interface FetchOptions {
  readonly timeoutMs: number;
  /** The most bytes of the (decompressed) body read. */
  readonly maxBytes: number;
  /** Allow private, loopback and link-local addresses (tests, intranets). */
  readonly allowPrivate: boolean;
}

/** Validators from the last answer, sent back for a conditional GET. */
export interface Validators {
  readonly etag?: string | undefined;
  readonly lastModified?: string | undefined;
}

export interface FeedItem {
  readonly guid: string | undefined;
  readonly link: string | undefined;
  readonly title: string | undefined;
  readonly summary: string | undefined;
  readonly publishedAt: string | undefined;
}

export interface Feed {
  readonly title: string | undefined;
  readonly link: string | undefined;
  /** As the feed lists them (newest first, for almost every feed). */
  readonly items: readonly FeedItem[];
  /** RSS `<ttl>`: minutes the feed may be cached. */
  readonly ttlMinutes: number | undefined;
}

export type FetchResult =
  | { readonly status: 'ok'; readonly feed: Feed; readonly validators: Validators; readonly maxAgeSeconds: number | undefined }
  | { readonly status: 'not_modified'; readonly maxAgeSeconds: number | undefined };

const MAX_REDIRECTS = 5;
const USER_AGENT = 'Switchboard feed reader (+https://github.com/switchboard)';

const parser = new Parser<{ ttl?: string }, { id?: string }>();

export async function fetchFeed(url: string, validators: Validators, options: FetchOptions): Promise<FetchResult> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  let target = parseFeedUrl(url);
  for (let hop = 0; ; hop++) {
    const response = await get(target, hop === 0 ? validators : {}, options, signal);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (status >= 300 && status < 400 && status !== 304 && location) {
      response.resume();
      if (hop >= MAX_REDIRECTS) throw new FeedError('http', `more than ${MAX_REDIRECTS} redirects`);
      target = parseFeedUrl(new URL(location, target).toString());
      continue;
    }
    const maxAgeSeconds = maxAge(response);
    if (status === 304) {
      response.resume();
      return { status: 'not_modified', maxAgeSeconds };
    }
    if (status < 200 || status >= 300) {
      response.resume();
      throw new FeedError('http', `the server answered HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''}`);
    }
    const text = await readBody(response, options.maxBytes, signal);
    const feed = await parse(text);
    const etag = header(response, 'etag');
    const lastModified = header(response, 'last-modified');
    return { status: 'ok', feed, validators: { etag, lastModified }, maxAgeSeconds };
  }
}

/** A feed URL as given by a person: http or https, with a host. */
export function parseFeedUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new FeedError('bad_url', `"${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FeedError('bad_url', 'a feed URL starts with http:// or https://');
  if (url.username || url.password) throw new FeedError('bad_url', 'a feed URL cannot carry a user name or password');
  url.hash = '';
  return url;
}

function get(url: URL, validators: Validators, options: FetchOptions, signal: AbortSignal): Promise<IncomingMessage> {
  if (!options.allowPrivate) checkLiteralHost(url);
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    accept: 'application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5',
    'accept-encoding': 'gzip, deflate, br',
  };
  if (validators.etag) headers['if-none-match'] = validators.etag;
  if (validators.lastModified) headers['if-modified-since'] = validators.lastModified;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, { headers, signal, ...(options.allowPrivate ? {} : { lookup: publicOnlyLookup }) }, resolve);
    request.on('error', (err) => reject(networkError(err, signal)));
  });
}

async function readBody(response: IncomingMessage, maxBytes: number, signal: AbortSignal): Promise<string> {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.destroy();
    throw tooLarge(maxBytes);
  }
  const body = decoded(response);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw err instanceof FeedError ? err : networkError(err, signal);
  } finally {
    response.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

function decoded(response: IncomingMessage): Readable {
  switch (header(response, 'content-encoding')?.toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return response.pipe(createGunzip());
    case 'deflate':
      return response.pipe(createInflate());
    case 'br':
      return response.pipe(createBrotliDecompress());
    default:
      return response;
  }
}

async function parse(text: string): Promise<Feed> {
  let output: Awaited<ReturnType<typeof parser.parseString>>;
  try {
    output = await parser.parseString(text);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0] ?? 'unreadable';
    throw new FeedError('not_a_feed', `this is not an RSS or Atom feed (${reason})`, { cause: err });
  }
  const ttl = Number(output.ttl);
  return {
    title: clean(output.title),
    link: clean(output.link),
    ttlMinutes: Number.isFinite(ttl) && ttl > 0 ? ttl : undefined,
    items: output.items.map((item) => ({
      guid: clean(item.guid ?? item.id),
      link: clean(item.link),
      title: clean(item.title),
      summary: clean(item.contentSnippet ?? item.summary),
      publishedAt: item.isoDate,
    })),
  };
}

/** Seconds the answer may be cached: Cache-Control max-age, else Expires. */
function maxAge(response: IncomingMessage): number | undefined {
  const cacheControl = header(response, 'cache-control');
  const match = cacheControl ? /(?:^|,)\s*max-age=(\d+)/i.exec(cacheControl) : null;
  if (match?.[1]) return Number(match[1]);
  const expires = header(response, 'expires');
  const date = Date.parse(header(response, 'date') ?? '') || Date.now();
  const at = expires ? Date.parse(expires) : NaN;
  return Number.isFinite(at) ? Math.max(0, Math.round((at - date) / 1000)) : undefined;
}

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function clean(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function tooLarge(maxBytes: number): FeedError {
  return new FeedError('too_large', `the feed is larger than ${Math.round(maxBytes / 1024)} KiB (RSS_MAX_BYTES)`);
}

function networkError(err: unknown, signal: AbortSignal): FeedError {
  if (err instanceof FeedError) return err;
  if (signal.aborted) return new FeedError('timeout', 'the feed did not answer in time', { cause: err });
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof FeedError) return cause;
  return new FeedError('network', `the feed cannot be reached (${(err as Error).message})`, { cause: err });
}
