// Which Vault tokens own leases, next to the leases that count on them: Vault revokes a
// token's leases when the token ends, so a token replaced by a new login is kept renewed
// (up to its own max TTL) while it still owns leases, and revoked once it owns none (one
// request deadline later, so requests that took it just before the login still finish).
// The `token` method's token is the operator's: never revoked here.
import { DsoError } from '../errors';
import type { Logger } from '../log';
import type { VaultClient } from './client';
import { VaultApiError } from './errors';
import { RenewalTimer } from './renewal';
import type { TokenState } from './token';

export interface LeaseTokensOptions {
  vault: VaultClient;
  logger: Logger;
  /** The auth method's name: the `token` method's token is never revoked. */
  method: string;
  timeoutMs: number;
  now: () => number;
  random: () => number;
  /** The token in use now: never retired or revoked. */
  current: () => string | undefined;
  /** Renews a kept token for another TTL (the token manager's renew-self). */
  renew: (state: TokenState) => Promise<void>;
}

export class LeaseTokens {
  /** Leases per token: a token that still owns leases is kept alive after a new login. */
  private readonly holds = new Map<string, number>();
  /** Earlier tokens kept renewed for their leases, with their renewal timers. */
  private readonly retired = new Map<string, { state: TokenState; renewal: RenewalTimer }>();
  /** Earlier tokens waiting one request deadline before they are revoked. */
  private readonly revoking = new Map<string, NodeJS.Timeout>();
  /** Replaced tokens revoked once they owned no lease. */
  revoked = 0;
  private stopped = false;

  constructor(private readonly options: LeaseTokensOptions) {}

  /** Replaced tokens kept renewed for their leases. */
  get kept(): number {
    return this.retired.size;
  }

  /** Counts a lease owned by `token`. */
  hold(token: string): void {
    this.holds.set(token, (this.holds.get(token) ?? 0) + 1);
  }

  /** A lease of `token` ended; a retired token with no leases left is let go. */
  release(token: string): void {
    const left = (this.holds.get(token) ?? 1) - 1;
    if (left > 0) {
      this.holds.set(token, left);
      return;
    }
    this.holds.delete(token);
    const retired = this.retired.get(token);
    if (retired) {
      retired.renewal.clear();
      this.retired.delete(token);
      this.revokeLater(retired.state);
    }
  }

  /**
   * Revokes a replaced token that owns no lease, one request deadline from now: requests
   * that took it just before a new login still finish, and a lease one of them creates
   * meanwhile keeps it alive instead (checked again when the time comes).
   */
  private revokeLater(old: TokenState): void {
    const { method, current } = this.options;
    if (this.stopped || method === 'token' || this.revoking.has(old.token) || old.token === current()) return;
    const timer = setTimeout(() => {
      this.revoking.delete(old.token);
      if (old.token === this.options.current()) return;
      if (this.holds.has(old.token)) {
        this.retire(old);
        return;
      }
      void this.revokeToken(old);
    }, this.options.timeoutMs + 1_000);
    timer.unref();
    this.revoking.set(old.token, timer);
  }

  private async revokeToken(old: TokenState): Promise<void> {
    try {
      await this.options.vault.call({
        method: 'POST',
        path: 'auth/token/revoke-self',
        token: old.token,
        deadline: this.options.now() + this.options.timeoutMs,
      });
      this.revoked++;
      this.options.logger.info('earlier Vault token revoked: it owns no lease any more', {
        method: this.options.method,
      });
    } catch (err) {
      // Already expired or revoked is fine; anything else: it still ends at its TTL.
      if (err instanceof VaultApiError && err.status === 403) return;
      this.options.logger.warn('cannot revoke an earlier Vault token: it ends at its TTL', {
        method: this.options.method,
        endsAt: old.expiresAt === Infinity ? 'never' : new Date(old.expiresAt).toISOString(),
        error: err instanceof DsoError ? err.message : 'unexpected error',
      });
    }
  }

  /**
   * Vault revokes a token's leases when the token ends, so a replaced token that still owns
   * leases is kept renewed (up to its own max TTL) until they are released.
   */
  retire(old: TokenState): void {
    if (this.stopped) return;
    if (!this.holds.has(old.token)) {
      this.revokeLater(old);
      return;
    }
    if (old.expiresAt === Infinity) return;
    const entry = { state: old, renewal: new RenewalTimer(this.options.now, this.options.random) };
    this.retired.set(old.token, entry);
    const next = () => {
      if (!old.renewable || old.capped) {
        this.options.logger.warn(
          'an earlier Vault token still owns leases and cannot be renewed further: they end with it',
          {
            method: this.options.method,
            leases: this.holds.get(old.token) ?? 0,
            endsAt: new Date(old.expiresAt).toISOString(),
          },
        );
        return;
      }
      const renew = () =>
        void this.options
          .renew(old)
          .then(next)
          .catch(() => undefined);
      entry.renewal.arm(old.expiresAt, renew, { jitter: false });
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    for (const { renewal } of this.retired.values()) renewal.clear();
    this.retired.clear();
    for (const timer of this.revoking.values()) clearTimeout(timer);
    this.revoking.clear();
  }
}
