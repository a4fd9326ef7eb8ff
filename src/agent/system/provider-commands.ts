import { defineCommand, type AnyCommand } from '../../plugins/sdk.ts';
import { untilText } from '../llm-gateway.ts';
import { parseLogin } from '../logins.ts';
import type { CatalogModel } from '../models.ts';
import type { QuotaCounts, QuotaLimits } from '../quotas.ts';
import type { SystemServices } from './system-plugin.ts';

const NO_USER = 'This message has no user, so there is nothing to log in or count.';

/** `/model`, `/login`, `/logout`, `/usage`: which model answers, with whose key, and today's use. */
export function providerCommands(services: SystemServices): AnyCommand[] {
  const { router, quotas } = services;
  return [
    defineCommand({
      name: 'model',
      description: 'Show the models, or pick one for this chat',
      usage: '[name | default]',
      run: async (args, ctx) => {
        const { catalog } = router;
        const wanted = args.trim();
        if (wanted === '') {
          const picked = catalog.pick(await router.chatModel(ctx.caller.address));
          if (catalog.models.length === 0) return 'No shared model is configured on this server.';
          const own = ctx.caller.userId === null ? undefined : (await router.logins.get(ctx.caller.userId)).own;
          return [
            'Models:',
            ...catalog.models.map((m) => describe(m, m.name === catalog.defaultName, m.name === picked?.name)),
            '',
            'Pick one for this chat with /model <name>; /model default goes back to the default.',
            ...(own ? [`You use your own key, so your messages go to ${own.baseURL}${own.model ? ` (model ${own.model})` : ''}.`] : []),
          ].join('\n');
        }
        if (wanted === 'default') {
          await router.setChatModel(ctx.caller.address, null);
          return catalog.default ? `This chat uses the default model, ${catalog.default.name}.` : 'This chat uses the default model.';
        }
        const model = catalog.get(wanted);
        if (!model) return `There is no model named ${wanted}. Models: ${catalog.models.map((m) => m.name).join(', ') || '(none)'}.`;
        await router.setChatModel(ctx.caller.address, model.name);
        return `This chat now uses ${model.name}.`;
      },
    }),
    defineCommand({
      name: 'login',
      description: 'Use your own API key, or join a quota pool with its token',
      usage: '<baseURL> <apiKey> [model] | token <token>',
      scope: 'private',
      run: async (args, ctx) => {
        const userId = ctx.caller.userId;
        if (userId === null) return NO_USER;
        const parsed = parseLogin(args);
        switch (parsed.kind) {
          case 'error':
            return parsed.message;
          case 'pool': {
            const pool = router.catalog.poolByToken(parsed.token);
            if (!pool) return 'That token names no pool here. Check it with whoever gave it to you.';
            await router.logins.joinPool(userId, pool.name, parsed.token);
            return `You joined the pool ${pool.name}. Its limits: ${limitsText(pool.perUser)} per person${pool.total ? `, ${limitsText(pool.total)} for the whole pool` : ''}, per day. /usage shows your use.`;
          }
          case 'own': {
            if (!router.logins.ownKeysEnabled) return 'Own keys are switched off: the operator has not set SECRET_KEY.';
            await router.logins.setOwn(userId, parsed.own);
            const model = parsed.own.model ?? 'the model this chat picked (see /model)';
            return `Saved, encrypted. Your messages now go to ${parsed.own.baseURL} with your key, model ${model}, with no quota. /logout removes the key.`;
          }
        }
      },
    }),
    defineCommand({
      name: 'logout',
      description: 'Forget your own API key and pool token',
      run: async (_args, ctx) => {
        const userId = ctx.caller.userId;
        if (userId === null) return NO_USER;
        return (await router.logins.clear(userId))
          ? 'Done: your own key and pool token are forgotten. You use the shared model now.'
          : 'You were not logged in.';
      },
    }),
    defineCommand({
      name: 'usage',
      description: "Today's use of the language model and your limits",
      readOnly: true,
      run: async (_args, ctx) => {
        const userId = ctx.caller.userId;
        if (userId === null) return NO_USER;
        const scoped = await router.scopeOf(userId);
        if (!scoped) return 'You use your own API key: no quota applies, and your use is billed by your provider.';
        const { scope, pool } = scoped;
        const usage = await quotas.usage(scope, userId);
        const lines = [
          `Today (${usage.day}, ${quotas.timeZone}) on ${pool ? `the pool ${pool}` : 'the shared model'}:`,
          `• you: ${countsText(usage.user, scope.perUser)}`,
        ];
        if (usage.total && scope.total) lines.push(`• the whole pool: ${countsText(usage.total, scope.total)}`);
        lines.push(`It resets at 00:00 ${quotas.timeZone}, ${untilText(usage.resetsAt, quotas.now())}.`);
        return lines.join('\n');
      },
    }),
  ];
}

function describe(model: CatalogModel, isDefault: boolean, isPicked: boolean): string {
  const facts = [
    model.model !== model.name ? `model ${model.model}` : undefined,
    model.contextSize ? `${model.contextSize.toLocaleString('en-US')} tokens of context` : undefined,
    model.tools === 'prompt' ? 'tools through the prompt' : undefined,
    isDefault ? 'default' : undefined,
  ].filter(Boolean);
  return `• ${model.name}${model.description ? ` — ${model.description}` : ''}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}${isPicked ? ' ← this chat' : ''}`;
}

function countsText(counts: QuotaCounts, limits: QuotaLimits): string {
  const of = (used: number, limit: number | undefined): string =>
    limit === undefined
      ? `${used.toLocaleString('en-US')} (no limit)`
      : `${used.toLocaleString('en-US')} of ${limit.toLocaleString('en-US')}`;
  return `${of(counts.requests, limits.requestsPerDay)} requests, ${of(counts.tokens, limits.tokensPerDay)} tokens`;
}

function limitsText(limits: QuotaLimits): string {
  const parts = [
    limits.requestsPerDay === undefined ? undefined : `${limits.requestsPerDay} requests`,
    limits.tokensPerDay === undefined ? undefined : `${limits.tokensPerDay} tokens`,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(' and ') : 'no limit';
}
