import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startApp } from './app.ts';
import { loadConfig } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import { createLogger } from './core/logger.ts';
import { parseRoles } from './roles.ts';

const USAGE = `Usage: switchboard start [--role all|api|worker|sender:http[,...]]

Roles (default: all, every role in one process):
  api           the HTTP API (receiver of tasks)
  worker        the agent: commands and the LLM
  sender:http   records replies on API tasks and calls callback URLs

Configuration comes from environment variables (and ./.env if present); see README.md.`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { role: { type: 'string', default: 'all' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command] = positionals;
  if (values.help || command !== 'start') {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(process.env);
  const roles = parseRoles(values.role);
  const logger = createLogger(config.logLevel);
  const app = await startApp({ config, roles, logger });

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'signal received');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await app.stop();
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
