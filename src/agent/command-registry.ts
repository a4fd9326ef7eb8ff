import type { Logger } from '../core/logger.ts';
import type { EnvelopeOf } from '../core/envelope.ts';
import type { ConversationHistory } from './history.ts';

/** What a command handler gets: who asked, in which conversation, and the agent's services. */
export interface CommandContext {
  readonly envelope: EnvelopeOf<'message'>;
  /** Everything after the command name. */
  readonly args: string;
  readonly isAdmin: boolean;
  /** The conversation key (history is kept per conversation). */
  readonly conversation: string;
  readonly history: ConversationHistory;
  readonly commands: CommandRegistry;
  readonly logger: Logger;
}

export interface CommandDefinition {
  /** Lower-case name without the slash. */
  readonly name: string;
  readonly description: string;
  /** Only ADMIN_USERS may run it (and only they see it in /help). */
  readonly admin?: boolean;
  /** Returns the reply text (Markdown). */
  run(ctx: CommandContext): Promise<string>;
}

/**
 * Declares a command next to its handler.
 *
 * @example
 * export const ping = defineCommand({ name: 'ping', description: 'Check that I am alive', run: async () => 'pong' });
 */
export function defineCommand(definition: CommandDefinition): CommandDefinition {
  return definition;
}

/** The one table of /commands; the router only looks names up here. */
export class CommandRegistry {
  private readonly commands = new Map<string, CommandDefinition>();

  register(...definitions: CommandDefinition[]): this {
    for (const definition of definitions) {
      if (this.commands.has(definition.name)) throw new Error(`command /${definition.name} is registered twice`);
      this.commands.set(definition.name, definition);
    }
    return this;
  }

  get(name: string): CommandDefinition | undefined {
    return this.commands.get(name);
  }

  /** The commands a caller may run, sorted by name. */
  visibleTo(isAdmin: boolean): CommandDefinition[] {
    return [...this.commands.values()].filter((c) => isAdmin || !c.admin).sort((a, b) => a.name.localeCompare(b.name));
  }
}
