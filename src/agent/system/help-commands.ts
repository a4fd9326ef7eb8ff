import { defineCommand, type AnyCommand } from '../../plugins/sdk.ts';
import type { SystemServices } from './system-plugin.ts';

export function helpCommands(services: SystemServices): AnyCommand[] {
  return [
    defineCommand({
      name: 'help',
      description: 'List the commands and tools you can use here',
      run: async (_args, ctx) => {
        const registry = services.registry();
        const commands = registry
          .commandsFor(ctx.caller)
          .map(({ command }) => `/${command.name}${command.usage ? ` ${command.usage}` : ''} — ${command.description}`);
        const tools = registry.toolsFor(ctx.caller).map(({ tool }) => `${tool.name} — ${tool.description}`);
        return [
          'Commands:',
          ...commands,
          '',
          tools.length > 0 ? 'Tools the assistant can use for you here:' : 'No tools are available here.',
          ...tools,
          '',
          'Anything else you write goes to the assistant.',
        ].join('\n');
      },
    }),
    defineCommand({
      name: 'clear',
      description: 'Forget this conversation',
      run: async (_args, ctx) => {
        await services.history.clear(ctx.caller.conversation);
        return 'Done: I have forgotten this conversation.';
      },
    }),
  ];
}
