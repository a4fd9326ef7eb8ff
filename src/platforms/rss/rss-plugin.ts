import { PluginManifestSchema } from '../../plugins/manifest.ts';
import type { LoadedPlugin } from '../../plugins/registry.ts';
import { defineCommand, definePlugin, defineTool, z, type Caller } from '../../plugins/sdk.ts';
import { FeedError } from './feed-error.ts';
import type { Subscription } from './subscription.ts';
import { SubscriptionError, type Subscriptions } from './subscriptions.ts';

/**
 * The built-in `rss` plugin: /subscribe, /unsubscribe, /subscriptions, and the same as tools the
 * assistant can call ("subscribe this chat to …"). Disable it with PLUGINS_DISABLED=rss.
 */
export function rssPlugin(subscriptions: Subscriptions): LoadedPlugin {
  const subscribe = async (caller: Caller, url: string, instruction: string | undefined): Promise<string> => {
    try {
      const { subscription, created } = await subscriptions.subscribe({
        feedUrl: url,
        to: caller.address,
        instruction,
        createdBy: caller.userId,
        chatType: caller.chatType,
      });
      const how = subscription.instruction ? ` Each new item goes through the assistant with: “${subscription.instruction}”.` : '';
      return created
        ? `Subscribed this chat to ${describe(subscription)} (id ${subscription.id}). New items will arrive here.${how}`
        : `This chat was already subscribed to ${describe(subscription)} (id ${subscription.id}); its instruction is updated.${how}`;
    } catch (err) {
      if (err instanceof FeedError) return `I could not subscribe to ${url}: ${err.message}.`;
      if (err instanceof SubscriptionError) return err.message;
      throw err;
    }
  };
  const unsubscribe = async (caller: Caller, feed: string): Promise<string> => {
    try {
      const removed = await subscriptions.unsubscribe(feed, caller.address);
      return `Unsubscribed this chat from ${describe(removed)}.`;
    } catch (err) {
      if (err instanceof SubscriptionError) return err.message;
      throw err;
    }
  };
  const list = async (caller: Caller): Promise<string> => {
    const all = await subscriptions.of(caller.address);
    if (all.length === 0) return 'This chat has no subscriptions. /subscribe <url> adds one.';
    return [
      'Subscriptions of this chat:',
      ...all.map((s) => `• ${s.id} — ${describe(s)}${s.instruction ? ` — “${s.instruction}”` : ''}`),
    ].join('\n');
  };

  return {
    manifest: PluginManifestSchema.parse({
      name: 'rss',
      version: '1.0.0',
      description: 'RSS and Atom subscriptions: new items of a feed arrive in the chat',
      main: '(built in)',
    }),
    dir: null,
    settings: {},
    definition: definePlugin({
      commands: [
        defineCommand({
          name: 'subscribe',
          description: 'Subscribe this chat to an RSS or Atom feed, optionally with an instruction for each item',
          usage: '<url> [instruction]',
          run: async (args, ctx) => {
            const match = /^(\S+)(?:\s+([\s\S]+))?$/.exec(args.trim());
            if (!match?.[1])
              return 'Usage: /subscribe <url> [instruction], e.g. /subscribe https://example.com/feed.xml summarise in two lines';
            return subscribe(ctx.caller, match[1], match[2]);
          },
        }),
        defineCommand({
          name: 'unsubscribe',
          description: 'Stop a subscription of this chat',
          usage: '<url | id>',
          run: async (args, ctx) => (args.trim() ? unsubscribe(ctx.caller, args.trim()) : 'Usage: /unsubscribe <url | id>'),
        }),
        defineCommand({
          name: 'subscriptions',
          description: "List this chat's feed subscriptions",
          run: async (_args, ctx) => list(ctx.caller),
        }),
      ],
      tools: [
        defineTool({
          name: 'subscribe_feed',
          description:
            'Subscribe the current chat to an RSS or Atom feed. New items are sent to the chat, through the assistant when an instruction is given.',
          args: z.object({
            url: z.string().describe('The feed URL (http or https)'),
            instruction: z.string().max(1000).optional().describe('What to do with each new item, e.g. "summarise in two lines"'),
          }),
          run: async ({ url, instruction }, ctx) => subscribe(ctx.caller, url, instruction),
        }),
        defineTool({
          name: 'unsubscribe_feed',
          description: 'Stop one of the current chat’s feed subscriptions',
          args: z.object({ feed: z.string().describe('The feed URL or the subscription id') }),
          run: async ({ feed }, ctx) => unsubscribe(ctx.caller, feed),
        }),
        defineTool({
          name: 'list_subscriptions',
          description: 'List the current chat’s feed subscriptions',
          args: z.object({}),
          run: async (_args, ctx) => list(ctx.caller),
        }),
      ],
    }),
  };
}

function describe(subscription: Subscription): string {
  return subscription.feedTitle ? `“${subscription.feedTitle}” (${subscription.feedUrl})` : subscription.feedUrl;
}
