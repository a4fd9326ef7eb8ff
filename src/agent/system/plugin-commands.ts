import { defineCommand, z, type AnyCommand } from '../../plugins/sdk.ts';
import type { SystemServices } from './system-plugin.ts';

export function pluginCommands(services: SystemServices): AnyCommand[] {
  return [
    defineCommand({
      name: 'plugins',
      description: 'Show every plugin and tool with its state',
      readOnly: true,
      run: async (_args, ctx) => {
        const registry = services.registry();
        const blown = await services.fuse.allBlown();
        const { isAdmin } = ctx.caller;
        const lines: string[] = [];
        for (const plugin of registry.plugins) {
          const { name, version, description } = plugin.manifest;
          lines.push(`${name} ${version}: on — ${description}`);
          // Admin-only items, and why a fuse blew (another user's error), are for admins' eyes.
          for (const tool of (plugin.definition.tools ?? []).filter((t) => isAdmin || !t.admin)) {
            const fuse = blown.get(tool.name);
            const off = isAdmin && fuse ? `switched off (${fuse.reason})` : 'switched off';
            lines.push(`  • ${tool.name}: ${fuse ? off : 'on'}`);
          }
          for (const command of (plugin.definition.commands ?? []).filter((c) => isAdmin || !c.admin)) lines.push(`  • /${command.name}`);
        }
        for (const failure of registry.failures) lines.push(`${failure.name}: failed to load — ${failure.error}`);
        return lines.join('\n');
      },
    }),
    defineCommand({
      name: 'plugin',
      description: 'Switch a plugin\u2019s tools (or one tool) back on after its fuse blew',
      usage: 'reset <plugin or tool>',
      admin: true,
      args: z.string().regex(/^reset\s+\S+$/, 'usage: /plugin reset <plugin or tool>'),
      run: async (args) => {
        const name = args.split(/\s+/)[1] ?? '';
        const registry = services.registry();
        const plugin = registry.plugins.find((p) => p.manifest.name === name);
        const tools = plugin ? (plugin.definition.tools ?? []).map((t) => t.name) : registry.tool(name) ? [name] : undefined;
        if (tools === undefined) return `There is no plugin or tool named ${name}.`;
        const reset = await services.fuse.reset(tools);
        return reset.length > 0 ? `Switched back on: ${reset.join(', ')}.` : `Nothing of ${name} was switched off.`;
      },
    }),
  ];
}
