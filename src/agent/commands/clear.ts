import { defineCommand } from '../command-registry.ts';

export const clearCommand = defineCommand({
  name: 'clear',
  description: 'Forget this conversation',
  run: async (ctx) => {
    await ctx.history.clear(ctx.conversation);
    return 'Done: I have forgotten this conversation.';
  },
});
