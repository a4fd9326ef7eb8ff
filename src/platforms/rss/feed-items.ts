import { v5 as uuidv5 } from 'uuid';
import { newMessageEnvelope, type Envelope } from '../../core/envelope.ts';
import type { FeedItem } from './feed-fetcher.ts';
import type { Subscription } from './subscription.ts';
import { sha256Hex } from '../../core/ids.ts';

/** Summaries are cut here (characters), at a word when one is near. */
const SUMMARY_MAX = 300;
/** uuid v5 namespace of feed-item envelopes. */
const ITEM_NAMESPACE = '6f1d3a52-8a8e-4a54-9d0a-3c1f0b8f2e41';

/** What makes an item itself across polls: its guid, else its link, else its title. */
export function itemKey(item: FeedItem): string | undefined {
  const identity = item.guid ?? item.link ?? item.title;
  return identity === undefined ? undefined : sha256Hex(identity, 32);
}

/** A short stable id of a feed URL (store keys, the feed's address). */
export function feedId(url: string): string {
  return sha256Hex(url, 16);
}

/** The feed's address as a source of envelopes. */
export function feedAddress(url: string): string {
  return `rss:${feedId(url)}`;
}

/**
 * The envelope that brings one item to one subscriber: straight to its sender as a formatted message,
 * or, when the subscription has an instruction, to the agent as that subscriber's request. Its id is
 * derived from the subscription and the item, so a retried fan-out (or the first items sent when
 * subscribing) is recognised by senders and the worker and delivered once. `at` orders items that
 * are delivered together (the oldest gets the earliest time).
 */
export function itemEnvelope(subscription: Subscription, feedTitle: string | undefined, item: FeedItem, key: string, at: Date): Envelope {
  const id = uuidv5(`${subscription.id}\n${key}`, ITEM_NAMESPACE);
  if (subscription.instruction === undefined) {
    const envelope = newMessageEnvelope({ id, from: feedAddress(subscription.feedUrl), user: null, text: '', to: [subscription.to] });
    return {
      ...envelope,
      at: at.toISOString(),
      body: { kind: 'reply', text: formatItem(item, feedTitle), format: 'markdown', status: 'done' },
    };
  }
  // The subscriber asks: in a conversation of its own for this feed, on their quota, answered to them.
  return newMessageEnvelope({
    id,
    from: subscription.to,
    user: subscription.createdBy === null ? null : { id: subscription.createdBy },
    conversation: `rss-${subscription.id}`,
    chatType: subscription.chatType,
    to: [subscription.to],
    text: [
      subscription.instruction,
      '',
      `New item in the feed ${feedTitle ?? subscription.feedUrl}:`,
      `Title: ${item.title ?? '(none)'}`,
      `Link: ${item.link ?? '(none)'}`,
      `Summary: ${shorten(item.summary ?? '', SUMMARY_MAX * 4) || '(none)'}`,
    ].join('\n'),
  });
}

/** Title (bold, linked when there is a link), a short summary, and the feed's name. */
export function formatItem(item: FeedItem, feedTitle: string | undefined): string {
  const title = escapeMarkdown(item.title ?? item.link ?? 'New item');
  const lines = [item.link ? `**[${title}](${item.link})**` : `**${title}**`];
  const summary = shorten(item.summary ?? '', SUMMARY_MAX);
  if (summary) lines.push('', escapeMarkdown(summary));
  if (feedTitle) lines.push('', `_${escapeMarkdown(feedTitle)}_`);
  return lines.join('\n');
}

function shorten(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

function escapeMarkdown(text: string): string {
  return text.replace(/([\\`*_[\]<>#|~])/g, '\\$1');
}
