import { defineCommand, type AnyCommand, type Caller } from '../../plugins/sdk.ts';
import type { PluginRegistry } from '../../plugins/registry.ts';
import type { SystemServices } from './system-plugin.ts';

export function helpCommands(services: SystemServices): AnyCommand[] {
  return [
    defineCommand({
      name: 'help',
      description: 'List the commands and tools you can use here',
      readOnly: true,
      run: async (_args, ctx) =>
        [...whatYouCanUse(services.registry(), ctx.caller), '', 'Anything else you write goes to the assistant.'].join('\n'),
    }),
    defineCommand({
      name: 'start',
      description: 'Say hello and see what I can do',
      readOnly: true,
      run: async (_args, ctx) =>
        [
          'Hello! I am an assistant: write to me in your own words and I answer, using tools where they help.',
          ctx.caller.chatType === 'group'
            ? 'In this group I answer when you mention me, reply to one of my messages, or send a command.'
            : 'Every message you send me here is for me.',
          '',
          ...whatYouCanUse(services.registry(), ctx.caller),
        ].join('\n'),
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

/** The commands and tools this caller may use here, one per line. */
function whatYouCanUse(registry: PluginRegistry, caller: Caller): string[] {
  const commands = registry
    .commandsFor(caller)
    .map(({ command }) => `/${command.name}${command.usage ? ` ${command.usage}` : ''} — ${command.description}`);
  const tools = registry.toolsFor(caller).map(({ tool }) => `${tool.name} — ${tool.description}`);
  return [
    'Commands:',
    ...commands,
    '',
    tools.length > 0 ? 'Tools the assistant can use for you here:' : 'No tools are available here.',
    ...tools,
  ];
}
