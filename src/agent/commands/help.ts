import { defineCommand } from '../command-registry.ts';

export const helpCommand = defineCommand({
  name: 'help',
  description: 'List the commands you can use',
  run: async (ctx) => {
    const lines = ctx.commands.visibleTo(ctx.isAdmin).map((c) => `/${c.name} — ${c.description}`);
    return ['Commands:', ...lines, '', 'Anything else you write goes to the assistant.'].join('\n');
  },
});
