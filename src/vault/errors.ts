// Vault failures as DsoErrors. Built from status codes and Vault's own error strings only:
// never from the raw transport error, whose request config holds the X-Vault-Token header.
import { DsoError, ErrorCode } from '../errors';

export class VaultApiError extends DsoError {
  constructor(
    readonly status: number,
    readonly vaultErrors: string[],
    readonly apiPath: string,
  ) {
    super(
      codeForStatus(status),
      `Vault answered ${status} for ${apiPath}${vaultErrors.length ? `: ${vaultErrors.join('; ')}` : ''}`,
    );
    this.name = 'VaultApiError';
  }

  /** Vault's own reason, or the HTTP status. */
  get reason(): string {
    return this.vaultErrors.length ? this.vaultErrors.join('; ') : `HTTP ${this.status}`;
  }
}

export class VaultUnavailableError extends DsoError {
  /** Failed at an address a Vault node redirected to, not at the address asked. */
  readonly viaRedirect: boolean;

  constructor(
    readonly address: string,
    readonly cause_: string,
    options: { viaRedirect?: boolean } = {},
  ) {
    super('ERR_VAULT_UNAVAILABLE', `Vault at ${address} is unreachable: ${cause_}`);
    this.name = 'VaultUnavailableError';
    this.viaRedirect = options.viaRedirect ?? false;
  }
}

/** An attempt abandoned by its abort signal (its share of the deadline, or the caller's). */
export class VaultAbortedError extends DsoError {
  constructor(readonly address: string) {
    super('ERR_TIMEOUT', `request to Vault at ${address} abandoned`);
    this.name = 'VaultAbortedError';
  }
}

function codeForStatus(status: number): ErrorCode {
  if (status === 403 || status === 401) return 'ERR_VAULT_DENIED';
  if (status === 404) return 'ERR_NOT_FOUND';
  if (status >= 500 || status === 429) return 'ERR_VAULT_UNAVAILABLE';
  return 'ERR_VAULT';
}

/** Vault's error strings, bounded, from a response body of any shape. */
export function vaultErrorStrings(body: unknown): string[] {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors)) return [];
  return errors
    .filter((e): e is string => typeof e === 'string')
    .map((e) => e.slice(0, 500))
    .slice(0, 5);
}

/** What a sys/health status code says of the node (undefined: nothing Vault documents). */
export function healthState(status: number): 'active' | 'standby' | 'uninitialized' | 'sealed' | undefined {
  if (status === 200) return 'active';
  if (status === 429 || status === 472 || status === 473) return 'standby';
  if (status === 501) return 'uninitialized';
  if (status === 503) return 'sealed';
  return undefined;
}
