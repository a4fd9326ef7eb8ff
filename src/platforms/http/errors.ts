/**
 * Every error the HTTP API answers with: `{ error: { code, message, field? } }`. docs/api.md lists
 * the same codes (a unit test keeps the two in sync).
 */
export const API_ERRORS = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  UNAUTHORIZED: { status: 401, message: 'Missing or wrong API key: send Authorization: Bearer <secret>.' },
  FORBIDDEN_ADDRESS: { status: 403, message: 'Only admin clients may send to addresses other than their own.' },
  ADMIN_ONLY: { status: 403, message: 'Only clients listed in ADMIN_USERS may do this.' },
  TASK_NOT_FOUND: { status: 404, message: 'No such task.' },
  DEAD_LETTER_NOT_FOUND: { status: 404, message: 'No such dead letter.' },
  CHAIN_NOT_FOUND: { status: 404, message: 'No such chain.' },
  CONFIRMATION_FORBIDDEN: { status: 403, message: 'Only the user who started the chain can decide this confirmation.' },
  CONFIRMATION_CLOSED: { status: 409, message: 'This confirmation was already decided or has expired.' },
  SUBSCRIPTION_NOT_FOUND: { status: 404, message: 'No such subscription.' },
  SUBSCRIPTION_LIMIT: { status: 409, message: 'The address already has the most subscriptions allowed (RSS_MAX_SUBSCRIPTIONS).' },
  FEED_UNREADABLE: { status: 422, message: 'The URL could not be fetched or is not an RSS or Atom feed.' },
  NOT_FOUND: { status: 404, message: 'No such route.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'This Idempotency-Key was used before with a different body.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  UNAVAILABLE: { status: 503, message: 'The message bus or the store is unavailable; retry with the same Idempotency-Key.' },
  INTERNAL: { status: 500, message: 'Something went wrong on our side.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly field: string | undefined;

  constructor(code: ApiErrorCode, message?: string, field?: string) {
    super(message ?? API_ERRORS[code].message);
    this.code = code;
    this.status = API_ERRORS[code].status;
    this.field = field;
  }

  toBody(): { error: { code: ApiErrorCode; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}
