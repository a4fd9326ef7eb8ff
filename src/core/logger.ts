import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger };

/** Paths pino replaces with "[redacted]": API keys, tokens and anything named like a secret. */
export const REDACT_PATHS = [
  'secret',
  'token',
  'apiKey',
  'password',
  'authorization',
  '*.secret',
  '*.token',
  '*.apiKey',
  '*.password',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-switchboard-signature"]',
  'config.apiKeys',
  'config.openaiApiKey',
  'env',
  '*.env',
];

/** One JSON line per event; secrets redacted. Pass a destination to capture lines (tests). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'switchboard' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

const LEVEL_METHODS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);

/**
 * `parent.child(bindings)`, made only when it first writes a line. A pino child serialises (and
 * redacts) its bindings when it is made; per message that was a measurable part of the hot path,
 * while most messages never log at the configured level. A call at a level that is off goes to
 * the parent's no-op without making the child (once made, the child answers everything).
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings));
  return new Proxy(parent, {
    get(target, property) {
      if (child === undefined && typeof property === 'string' && LEVEL_METHODS.has(property) && !target.isLevelEnabled(property)) {
        return Reflect.get(target, property, target) as unknown;
      }
      const logger = real();
      const value = Reflect.get(logger, property, logger) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(logger) : value;
    },
    set(_target, property, value) {
      return Reflect.set(real(), property, value);
    },
  });
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
