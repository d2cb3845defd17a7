// The plugin's Vault token: one login in flight at a time (callers share it), renewal at
// about two thirds of the TTL with jitter (./renewal.ts, the timer leases use too), a new
// login when renewal is refused or the max TTL is near, and on demand when Vault says a
// token went stale. What becomes of a replaced token (kept renewed while it owns leases,
// else revoked) is ./lease-tokens.ts's, next to the leases.
import { DsoError } from '../errors';
import type { Logger } from '../log';
import type { AuthMethod, LoginResult } from './auth/method';
import type { VaultClient } from './client';
import { VaultApiError } from './errors';
import { LeaseTokens } from './lease-tokens';
import { RenewalTimer } from './renewal';

/** A login's result (`ttlSeconds` is the TTL renewals ask for) and what became of it since. */
export interface TokenState extends LoginResult {
  /** Epoch ms; Infinity for a token that never expires. */
  expiresAt: number;
  /** Renewal came back shorter than asked: max TTL is near, the next step is a login. */
  capped: boolean;
  obtainedAt: number;
}

/** What GET /DSO.Status shows of the token: never the token. */
export type TokenStatus = ReturnType<TokenManager['status']>;

export interface TokenManagerOptions {
  vault: VaultClient;
  method: AuthMethod;
  logger: Logger;
  /** Deadline for background logins and renewals. */
  timeoutMs: number;
  /** A failed login is not retried sooner than this; requests meanwhile get its error. */
  retryAfterFailureMs?: number;
  now?: () => number;
  random?: () => number;
}

/**
 * A token this close to expiry is not handed out: a request could not finish with it.
 * At most a fifth of its TTL, so the scheduled renewal (at ~2/3) still comes first.
 */
const EXPIRY_MARGIN_MS = 1_000;
const EXPIRY_MARGIN_FRACTION = 0.2;

export class TokenManager {
  private state?: TokenState;
  /** Which tokens own leases: a replaced token is kept renewed for them, else revoked. */
  readonly leaseTokens: LeaseTokens;
  private inflight?: Promise<TokenState>;
  private lastFailure?: { at: number; error: DsoError };
  private readonly renewal: RenewalTimer;
  private stopped = false;
  private lastLoginAt?: number;
  private lastRenewalAt?: number;
  private logins = 0;
  private renewals = 0;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly options: TokenManagerOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.renewal = new RenewalTimer(this.now, this.random);
    this.leaseTokens = new LeaseTokens({
      vault: options.vault,
      logger: options.logger,
      method: options.method.name,
      timeoutMs: options.timeoutMs,
      now: this.now,
      random: this.random,
      current: () => this.state?.token,
      renew: (state) => this.renew(state),
    });
  }

  /** A valid token, logging in first if there is none (shared with concurrent callers). */
  async token(deadline: number): Promise<string> {
    return this.validToken() ?? (await this.login(deadline)).token;
  }

  /** The token when it is valid as it is (no login needed), else undefined: the usual case, without a promise. */
  validToken(): string | undefined {
    const state = this.state;
    if (
      state &&
      state.expiresAt - this.now() > Math.min(EXPIRY_MARGIN_MS, state.ttlSeconds * 1000 * EXPIRY_MARGIN_FRACTION)
    )
      return state.token;
    return undefined;
  }

  /** How long ago the login that gave `token` was (ms); undefined when it is not the current token. */
  ageOf(token: string): number | undefined {
    return this.state?.token === token ? this.now() - this.state.obtainedAt : undefined;
  }

  /** Vault refused `token` as stale: forget it, so the next call logs in again. */
  invalidate(token: string): void {
    if (this.state?.token === token) {
      this.options.logger.info('Vault token refused; logging in again', { method: this.options.method.name });
      this.state = undefined;
      this.renewal.clear();
    }
  }

  login(deadline = this.now() + this.options.timeoutMs): Promise<TokenState> {
    if (this.inflight) return this.inflight;
    const failure = this.lastFailure;
    if (failure && this.now() - failure.at < (this.options.retryAfterFailureMs ?? 250))
      return Promise.reject(failure.error);
    this.inflight = this.doLogin(deadline).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async doLogin(deadline: number): Promise<TokenState> {
    const { method, vault, logger } = this.options;
    try {
      const result = await method.login({ vault, deadline });
      const now = this.now();
      const previous = this.state;
      const expiresAt = result.ttlSeconds > 0 ? now + result.ttlSeconds * 1000 : Infinity;
      this.state = { ...result, expiresAt, capped: false, obtainedAt: now };
      if (previous && previous.token !== result.token) this.leaseTokens.retire(previous);
      const recovered = this.lastFailure !== undefined;
      this.lastFailure = undefined;
      this.lastLoginAt = now;
      this.logins++;
      logger.info(recovered ? 'Vault login succeeded again' : 'Vault login succeeded', {
        method: method.name,
        mount: method.mount,
        ttlSeconds: result.ttlSeconds,
        renewable: result.renewable,
        policies: result.policies,
      });
      this.schedule();
      return this.state;
    } catch (err) {
      const error = this.loginError(err);
      const repeated = this.lastFailure?.error.message === error.message;
      this.lastFailure = { at: this.now(), error };
      // Logged once per distinct failure, not once per waiting request.
      if (!repeated)
        logger.error('Vault login failed', {
          method: method.name,
          mount: method.mount,
          code: error.code,
          error: error.message,
        });
      throw error;
    }
  }

  private loginError(err: unknown): DsoError {
    const { method } = this.options;
    if (err instanceof VaultApiError && (err.code === 'ERR_VAULT_DENIED' || err.code === 'ERR_VAULT')) {
      const message = `${method.name} login at ${method.mount} failed: ${err.reason}. Hint: ${method.hint(err.reason)}`;
      return new DsoError('ERR_LOGIN', message, { subcode: method.refusal?.(err.reason) });
    }
    if (err instanceof DsoError && err.code === 'ERR_LOGIN') return err;
    if (err instanceof DsoError) {
      const message = `${method.name} login at ${method.mount} failed: ${err.message}`;
      return new DsoError(err.code, message, { subcode: err.subcode });
    }
    return new DsoError('ERR_LOGIN', `${method.name} login at ${method.mount} failed unexpectedly`);
  }

  /** Next step at about two thirds of the remaining lifetime, with jitter. */
  private schedule(): void {
    const state = this.state;
    if (!state || this.stopped) this.renewal.clear();
    else this.renewal.arm(state.expiresAt, () => void this.refresh());
  }

  /** Renew when possible; log in when renewal is refused or max TTL is near. */
  private async refresh(): Promise<void> {
    const state = this.state;
    if (!state || this.stopped) return;
    if (state.renewable && !state.capped) {
      try {
        await this.renew(state);
        return;
      } catch (err) {
        this.options.logger.warn('Vault token renewal failed; logging in again', {
          method: this.options.method.name,
          error: err instanceof DsoError ? err.message : 'unexpected error',
        });
      }
    }
    try {
      await this.login();
    } catch {
      // Logged by doLogin. Try again soon unless the old token is gone anyway.
      const retryMs = Math.max(1_000, (this.options.retryAfterFailureMs ?? 250) * 4);
      if (!this.stopped) this.renewal.after(retryMs, () => void this.refresh());
    }
  }

  /** Renews `state` (the current token, or one kept for its leases) for another TTL. */
  private async renew(state: TokenState): Promise<void> {
    const deadline = this.now() + this.options.timeoutMs;
    const body = await this.options.vault.call<{ auth?: { lease_duration?: number; renewable?: boolean } }>({
      method: 'POST',
      path: 'auth/token/renew-self',
      token: state.token,
      body: { increment: `${state.ttlSeconds}s` },
      deadline,
    });
    const ttl = body.auth?.lease_duration ?? 0;
    const now = this.now();
    state.expiresAt = ttl > 0 ? now + ttl * 1000 : Infinity;
    state.renewable = body.auth?.renewable ?? state.renewable;
    // Vault grants less than asked only when the max TTL caps it.
    state.capped = ttl < state.ttlSeconds * 0.9;
    this.lastRenewalAt = now;
    this.renewals++;
    this.options.logger.debug('Vault token renewed', {
      method: this.options.method.name,
      ttlSeconds: ttl,
      nearMaxTtl: state.capped,
    });
    if (this.state === state) this.schedule();
  }

  status() {
    const s = this.state;
    const iso = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());
    const expires = s && s.expiresAt !== Infinity ? s.expiresAt : undefined;
    return {
      loggedIn: !!s,
      method: this.options.method.name,
      mount: this.options.method.mount,
      /** Seconds left; 0 for a token that never expires. */
      ttlSeconds: s && (expires === undefined ? 0 : Math.max(0, Math.round((expires - this.now()) / 1000))),
      expiresAt: iso(expires),
      renewable: s?.renewable,
      policies: s?.policies,
      lastLoginAt: iso(this.lastLoginAt),
      lastRenewalAt: iso(this.lastRenewalAt),
      lastError: this.lastFailure?.error.message,
      logins: this.logins,
      renewals: this.renewals,
      retiredTokensKeptForLeases: this.leaseTokens.kept,
      retiredTokensRevoked: this.leaseTokens.revoked,
    };
  }

  stop(): void {
    this.stopped = true;
    this.renewal.clear();
    this.leaseTokens.stop();
  }
}
