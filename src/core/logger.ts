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

/**
 * `parent.child(bindings)`, made only when it first writes a line. A pino child serialises (and
 * redacts) its bindings when it is made; per message that was a measurable part of the hot path,
 * while most messages never log at the configured level. A call at a level that is off goes to
 * the parent's no-op without making the child (once made, the child answers everything).
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  return new Proxy(parent, new LazyChild(parent, bindings));
}

/**
 * The proxy handler behind lazyChild. A class rather than closures: it is made for every message,
 * and tsx gives each named closure it makes a name with a defineProperty call.
 */
class LazyChild implements ProxyHandler<Logger> {
  private child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}

  private real(): Logger {
    return (this.child ??= this.parent.child(this.bindings));
  }

  get(target: Logger, property: string | symbol): unknown {
    const { child } = this;
    if (child !== undefined) {
      const value = Reflect.get(child, property, child) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(child) : value;
    }
    const value = Reflect.get(target, property, target) as unknown;
    // Until the child exists it reads as its parent would (same level, same methods), and
    // looking at a method makes nothing: fastify checks each request logger's methods.
    if (typeof value !== 'function') return value;
    if (property === 'isLevelEnabled') return (value as (...args: unknown[]) => unknown).bind(target);
    // A level's method (pino's own list of levels) that is off: the parent's no-op.
    if (typeof property === 'string' && property in target.levels.values && !target.isLevelEnabled(property)) return value;
    if (property === 'child') {
      return (more: Record<string, unknown>, options?: object) =>
        options === undefined ? lazyChild(this.parent, { ...this.bindings, ...more }) : this.real().child(more, options);
    }
    return (...args: unknown[]) => {
      const logger = this.real();
      return (Reflect.get(logger, property, logger) as (...a: unknown[]) => unknown).apply(logger, args);
    };
  }

  set(_target: Logger, property: string | symbol, value: unknown): boolean {
    return Reflect.set(this.real(), property, value);
  }
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
