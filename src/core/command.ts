import type { Command } from './envelope.ts';

export interface ParsedCommand extends Command {
  /** The bot a command was addressed to (`/help@mybot`), if any. */
  readonly target?: string;
}

const COMMAND = /^\/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+([\s\S]*))?$/;

/** Parses `/name[@bot] args`; returns undefined for text that is not a command. */
export function parseCommand(text: string): ParsedCommand | undefined {
  const match = COMMAND.exec(text.trim());
  if (!match) return undefined;
  const [, name = '', target, args = ''] = match;
  return { name: name.toLowerCase(), args: args.trim(), ...(target ? { target } : {}) };
}
