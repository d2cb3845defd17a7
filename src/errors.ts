// Errors with a stable `code`, so callers and tests branch on codes, not message text.
// Messages name what failed and how to fix it; they never carry a secret value or token.
import type { SecretSource } from './plugin/protocol';

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

/**
 * Where one code covers failures with different fixes, which one it is: a secrets engine
 * failed to issue (engine-failed) or has no such role or path (engine-path); an AppRole
 * wrapping token cannot be unwrapped (wrapping-token); no such auth method at the mount
 * (auth-mount). `docker dso` chooses its fix by code and subcode, never by message text.
 */
export type ErrorSubcode = 'engine-failed' | 'engine-path' | 'wrapping-token' | 'auth-mount';

/** A failure as the plugin reports it (status record, Vault test, compose file, route refusal). */
export interface Failure {
  code?: string;
  subcode?: ErrorSubcode;
  /** The plugin's message (names what failed, never a value). */
  error?: string;
}

export class DsoError extends Error {
  readonly code: ErrorCode;
  readonly subcode?: ErrorSubcode;
  /** What was being read when it failed (path, field), for the log line and status. */
  source?: SecretSource;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; subcode?: ErrorSubcode }) {
    super(message, options);
    this.name = 'DsoError';
    this.code = code;
    if (options?.subcode) this.subcode = options.subcode;
  }
}

/** A message safe to show: ours verbatim, anything else reduced to its class and code. */
export function describeError(err: unknown): { code: ErrorCode; message: string; subcode?: ErrorSubcode } {
  if (err instanceof DsoError)
    return { code: err.code, message: err.message, ...(err.subcode ? { subcode: err.subcode } : {}) };
  return { code: 'ERR_INTERNAL', message: 'internal error (see the plugin log)' };
}
