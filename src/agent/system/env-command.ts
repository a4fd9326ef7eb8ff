import { defineCommand, type AnyCommand } from '../../plugins/sdk.ts';
import { parseEnvAssignment } from '../user-env.ts';
import type { SystemServices } from './system-plugin.ts';

/** `/env KEY=VALUE`, `/env -KEY`, `/env`: private values for the tools that declare them. */
export function envCommand(services: SystemServices): AnyCommand {
  return defineCommand({
    name: 'env',
    description: 'Set (KEY=VALUE), delete (-KEY) or list your private values for tools',
    usage: '[KEY=VALUE | -KEY]',
    scope: 'private',
    run: async (args, ctx) => {
      const { userEnv } = services;
      const userId = ctx.caller.userId;
      if (!userEnv) return 'Private values are switched off: the operator has not set SECRET_KEY.';
      if (userId === null) return 'Private values belong to a person; this message has no user.';
      const parsed = parseEnvAssignment(args);
      switch (parsed.kind) {
        case 'error':
          return parsed.message;
        case 'list': {
          const keys = await userEnv.keys(userId);
          return keys.length > 0
            ? `Your keys: ${keys.join(', ')} (values are never shown).`
            : 'You have no private values. Set one with /env KEY=VALUE.';
        }
        case 'set':
          await userEnv.set(userId, parsed.key, parsed.value);
          return `Saved ${parsed.key}. Only the tools that declare it can read it.`;
        case 'delete':
          return (await userEnv.delete(userId, parsed.key)) ? `Deleted ${parsed.key}.` : `You had no ${parsed.key}.`;
      }
    },
  });
}
