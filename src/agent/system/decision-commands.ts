import { defineCommand, type AnyCommand } from '../../plugins/sdk.ts';
import type { DecideResult } from '../confirmations.ts';
import type { SystemServices } from './system-plugin.ts';

/** `/confirm <formId> [json]` and `/cancel <formId>`: the person's answer to a tool that asked. */
export function decisionCommands(services: SystemServices): AnyCommand[] {
  return [
    defineCommand({
      name: 'confirm',
      description: 'Allow a tool call the assistant asked for (optionally with edited JSON arguments)',
      usage: '<id> [{json arguments}]',
      run: async (args, ctx) => {
        const match = /^(\S+)(?:\s+([\s\S]+))?$/.exec(args.trim());
        if (!match?.[1]) return 'Usage: /confirm <id> [{json arguments}]';
        let edited: unknown;
        if (match[2] !== undefined) {
          try {
            edited = JSON.parse(match[2]);
          } catch {
            return 'The edited arguments are not valid JSON. Usage: /confirm <id> {"key": "value"}';
          }
        }
        const result = await services.confirmations.decide({
          formId: match[1],
          userId: ctx.caller.userId,
          decision: 'approve',
          requestId: ctx.requestId,
          ...(edited !== undefined ? { args: edited } : {}),
        });
        return describe(result);
      },
    }),
    defineCommand({
      name: 'cancel',
      description: 'Refuse a tool call the assistant asked for',
      usage: '<id>',
      run: async (args, ctx) => {
        const formId = args.trim();
        if (!formId) return 'Usage: /cancel <id>';
        return describe(
          await services.confirmations.decide({ formId, userId: ctx.caller.userId, decision: 'reject', requestId: ctx.requestId }),
        );
      },
    }),
  ];
}

function describe(result: DecideResult): string {
  if (!result.ok) return result.message;
  return result.decision === 'approve'
    ? `Confirmed: running ${result.tools.join(', ')}.`
    : `Cancelled: ${result.tools.join(', ')} will not run.`;
}
