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

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
