import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startApp } from './app.ts';
import { loadConfig } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import { createLogger } from './core/logger.ts';
import { stopSignals } from './core/stop-signals.ts';
import { runDlqCommand } from './dlq-command.ts';
import { parseRoles } from './roles.ts';

const USAGE = `Usage:
  switchboard start [--role all|api|worker|sender:http|sender:telegram|receiver:telegram|receiver:rss[,...]]
  switchboard dlq list [--limit N]
  switchboard dlq replay <messageId> | --all

Roles (default: all, every role in one process):
  api                 the HTTP API (receiver of tasks)
  worker              the agent: commands and the LLM
  sender:http         records replies on API tasks and calls callback URLs
  sender:telegram     delivers answers to Telegram chats (needs TELEGRAM_BOT_TOKEN)
  receiver:telegram   the Telegram bot's inbox: polling or webhook (needs TELEGRAM_BOT_TOKEN)
  receiver:rss        polls subscribed feeds and fans new items out to their chats

Configuration comes from environment variables (and ./.env if present); see README.md.`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string', default: 'all' },
      all: { type: 'boolean', default: false },
      limit: { type: 'string', default: '100' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, action, id] = positionals;
  if (values.help || (command !== 'start' && command !== 'dlq')) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  if (command === 'dlq') {
    const limit = Number(values.limit);
    return runDlqCommand(
      config,
      logger,
      { action, id, all: values.all, limit: Number.isInteger(limit) && limit > 0 ? limit : 100 },
      (line) => process.stdout.write(`${line}\n`),
    );
  }
  // Listening before start-up: a signal during it stops the process once it has started.
  const signals = stopSignals(logger);
  try {
    const app = await startApp({ config, roles: parseRoles(values.role), logger });
    await signals.received;
    await app.stop();
  } finally {
    signals.dispose();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`switchboard: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
