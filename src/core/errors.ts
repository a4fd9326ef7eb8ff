/**
 * Errors by where they came from. The bus decides ack / retry / dead-letter from the class alone
 * (see src/bus/settle.ts), so throw the class that says what should happen next.
 */
export class SwitchboardError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration variable is missing or has a bad value; start-up stops with this message. */
export class ConfigError extends SwitchboardError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/**
 * The message can never be processed, however often it is retried (it failed validation, it names
 * something that does not exist). The bus dead-letters it with this error's message as the reason.
 */
export class PermanentError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'PERMANENT', message, options);
  }
}

/** A message off the bus or a request body did not match its schema. */
export class ValidationError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'VALIDATION' });
  }
}

/**
 * Something outside us failed in a way that may pass (a network error, a 5xx). The bus hands the
 * message back for redelivery until its delivery limit.
 */
export class TransientError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TRANSIENT', message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A zod error as one line per problem, each led by the path it is at (`root` names the top level). */
export function zodIssues(
  error: { readonly issues: readonly { readonly path: readonly PropertyKey[]; readonly message: string }[] },
  root = '(root)',
): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.') || root}: ${issue.message}`);
}

/**
 * Errors that the same input will meet again however often it is retried: refusals, bad data and
 * programming errors. Anything else (an outage, a timeout) is worth waiting out.
 */
export function isPermanent(err: unknown): boolean {
  return (
    err instanceof PermanentError ||
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof SyntaxError ||
    (err instanceof Error && err.name === 'ZodError')
  );
}
