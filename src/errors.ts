// Errors with a stable `code`, so callers and tests branch on codes, not message text.
// Messages name what failed and how to fix it; they never carry a secret value or token.

export type ErrorCode =
  | 'ERR_SETTINGS'
  | 'ERR_BAD_REQUEST'
  | 'ERR_LABELS'
  | 'ERR_REFERENCE'
  | 'ERR_TEMPLATE'
  | 'ERR_PATH_REFUSED'
  | 'ERR_WRITE_REFUSED'
  | 'ERR_NOT_FOUND'
  | 'ERR_FIELD_MISSING'
  | 'ERR_FORMAT'
  | 'ERR_VALUE_EMPTY'
  | 'ERR_VALUE_TOO_LARGE'
  | 'ERR_UNSUPPORTED'
  | 'ERR_NOT_TMPFS'
  | 'ERR_VAULT_UNAVAILABLE'
  | 'ERR_VAULT_DENIED'
  | 'ERR_VAULT'
  | 'ERR_LOGIN'
  | 'ERR_TIMEOUT'
  | 'ERR_INTERNAL';

export class DsoError extends Error {
  readonly code: ErrorCode;
  /** What was being read when it failed (path, field), for the log line and status. */
  source?: { path?: string; field?: string; version?: number; leaseExpiresAt?: string };

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DsoError';
    this.code = code;
  }
}

export function isDsoError(err: unknown): err is DsoError {
  return err instanceof DsoError;
}

/** A message safe to show: ours verbatim, anything else reduced to its class and code. */
export function describeError(err: unknown): { code: ErrorCode; message: string } {
  if (isDsoError(err)) return { code: err.code, message: err.message };
  return { code: 'ERR_INTERNAL', message: 'internal error (see the plugin log)' };
}
