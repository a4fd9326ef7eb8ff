import type { CommandDefinition } from '../command-registry.ts';
import { clearCommand } from './clear.ts';
import { helpCommand } from './help.ts';

/** The commands every deployment has. */
export const builtinCommands: readonly CommandDefinition[] = [helpCommand, clearCommand];
