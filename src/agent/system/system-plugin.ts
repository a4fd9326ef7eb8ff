import type { Fuse } from '../../plugins/fuse.ts';
import { PluginManifestSchema } from '../../plugins/manifest.ts';
import type { LoadedPlugin, PluginRegistry } from '../../plugins/registry.ts';
import { definePlugin } from '../../plugins/sdk.ts';
import type { Confirmations } from '../confirmations.ts';
import type { ConversationHistory } from '../history.ts';
import type { LlmRouter } from '../llm-router.ts';
import type { Quotas } from '../quotas.ts';
import type { UserEnv } from '../user-env.ts';
import { decisionCommands } from './decision-commands.ts';
import { envCommand } from './env-command.ts';
import { helpCommands } from './help-commands.ts';
import { pluginCommands } from './plugin-commands.ts';
import { providerCommands } from './provider-commands.ts';

/** What the built-in commands reach that ordinary plugins do not. */
export interface SystemServices {
  /** The registry (built after this plugin, hence a function). */
  readonly registry: () => PluginRegistry;
  readonly history: ConversationHistory;
  readonly fuse: Fuse;
  readonly userEnv: UserEnv | undefined;
  readonly confirmations: Confirmations;
  readonly router: LlmRouter;
  readonly quotas: Quotas;
}

/** The built-in plugin: /help, /clear, /plugins, /plugin reset, /env, /confirm, /cancel, /model, /login, /logout, /usage. */
export function systemPlugin(services: SystemServices): LoadedPlugin {
  return {
    manifest: PluginManifestSchema.parse({
      name: 'system',
      version: '1.0.0',
      description: 'Built-in commands: help, history, plugins, private env, confirmations, models and quotas',
      main: '(built in)',
    }),
    dir: null,
    settings: {},
    definition: definePlugin({
      commands: [
        ...helpCommands(services),
        ...pluginCommands(services),
        envCommand(services),
        ...decisionCommands(services),
        ...providerCommands(services),
      ],
    }),
  };
}
