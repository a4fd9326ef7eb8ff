import { adapterMode, openAdapters } from './adapters.ts';
import { DeadLetters, deadLetterView } from './bus/dead-letters.ts';
import type { Config } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';

/**
 * `switchboard dlq list [--limit N]` and `switchboard dlq replay <id>|--all`: dead letters of a
 * distributed deployment (workers move them from RabbitMQ's dead-letter queue into Redis).
 */
export async function runDlqCommand(
  config: Config,
  logger: Logger,
  args: { action: string | undefined; id: string | undefined; all: boolean; limit: number },
  out: (line: string) => void,
): Promise<number> {
  if (adapterMode(config) === 'embedded') {
    throw new ConfigError(
      'dlq: the embedded bus lives inside the running process; set AMQP_URL and REDIS_URL, or use GET /v1/dead-letters and POST /v1/dead-letters/:id/replay as an admin',
    );
  }
  const { bus, store } = await openAdapters(config, logger);
  try {
    const deadLetters = new DeadLetters(bus, store, logger, { max: config.bus.deadLettersMax });
    if (args.action === 'list') {
      const all = await deadLetters.list(args.limit);
      for (const record of all) out(JSON.stringify(deadLetterView(record)));
      out(`${all.length} dead letter(s)`);
      return 0;
    }
    if (args.action === 'replay') {
      if (args.all) {
        out(`replayed ${await deadLetters.replayAll()}`);
        return 0;
      }
      if (!args.id) throw new ConfigError('dlq replay: give a message id or --all');
      const replayed = await deadLetters.replay(args.id);
      out(replayed ? `replayed ${args.id}` : `no dead letter ${args.id}`);
      return replayed ? 0 : 1;
    }
    throw new ConfigError('dlq: expected "list" or "replay"');
  } finally {
    await bus.close();
    await store.close();
  }
}
