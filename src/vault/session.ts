// Authenticated Vault calls: the current token, the workload's identity in audit headers,
// and one retry with a fresh login when Vault refuses a token that went stale.
import type { VaultCall, VaultClient } from './client';
import { VaultApiError } from './errors';
import type { TokenManager } from './token';

/** Who asked, sent as X-DSO-* headers so Vault's audit log (with audited headers) shows it. */
export interface Workload {
  service?: string;
  task?: string;
  secret?: string;
}

/** What encodeURIComponent leaves as it is: such a name is its own header value. */
const UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]{0,256}$/;

function headerValue(text: string): string {
  // Header values must be visible ASCII; anything else is percent-encoded. At most 256
  // characters, cut between characters so an escape is never split.
  if (UNRESERVED.test(text)) return text;
  let out = '';
  for (const char of text) {
    let encoded: string;
    try {
      encoded = encodeURIComponent(char);
    } catch {
      encoded = '%EF%BF%BD'; // a lone surrogate: U+FFFD
    }
    if (out.length + encoded.length > 256) break;
    out += encoded;
  }
  return out;
}

/** The audit headers of `workload`, added to `headers` (a new object when not given). */
export function auditHeaders(workload?: Workload, headers: Record<string, string> = {}): Record<string, string> {
  if (workload?.service) headers['X-DSO-Service'] = headerValue(workload.service);
  if (workload?.task) headers['X-DSO-Task'] = headerValue(workload.task);
  if (workload?.secret) headers['X-DSO-Secret'] = headerValue(workload.secret);
  return headers;
}

export type SessionCall = Omit<VaultCall, 'token'> & {
  workload?: Workload;
  /** Told which token made the successful call (leases belong to that token). */
  usedToken?: (token: string) => void;
};

/** How long a token that lookup-self accepted counts as alive when Vault answers 403. */
const VERIFIED_FOR_MS = 1_000;

/**
 * OpenBao's standbys serve reads from their own copy of the storage (2.x, by default), which
 * trails the active node: a token minted moments ago may not have reached the node that
 * answers, which then refuses it (403) although it is valid. From OpenBao 2.7 the storage
 * index the client sends (consistency.ts) makes such a standby forward instead; for servers
 * without it, a token this young that is refused is asked again, with the same token, until
 * it reaches that node; a fresh login would mint another token with the same lag.
 */
const REPLICATION_GRACE_MS = 5_000;
const REPLICATION_RETRY_MS = [50, 100, 200, 400, 800];

export class VaultSession {
  private verified?: { token: string; at: number };

  constructor(
    readonly vault: VaultClient,
    readonly tokens: TokenManager,
    /** REPLICATION_GRACE_MS; 0 turns the wait off (unit tests of the stale-token path). */
    private readonly replicationGraceMs = REPLICATION_GRACE_MS,
  ) {}

  async call<T = Record<string, unknown>>(request: SessionCall): Promise<T> {
    const { workload, usedToken } = request;
    // Object.assign, not a spread: V8 adds properties to a spread copy ten times slower.
    const headers = auditHeaders(workload, Object.assign({}, request.headers));
    // A valid token is used at once; only a login costs a wait.
    const token = this.tokens.validToken() ?? (await this.tokens.token(request.deadline));
    // Written out: V8 copies a spread object and then adds properties to it in microseconds.
    const call: VaultCall = {
      method: request.method,
      path: request.path,
      query: request.query,
      body: request.body,
      headers,
      token,
      deadline: request.deadline,
      signal: request.signal,
    };
    try {
      const body = await this.vault.call<T>(call);
      usedToken?.(token);
      return body;
    } catch (err) {
      // 403 is a policy denial, or a token revoked or expired behind our back: only the
      // latter earns a fresh login and one retry (a denial must not cause a login storm).
      if (!(err instanceof VaultApiError) || err.status !== 403) throw err;
      if (await this.tokenAlive(token, call.deadline)) throw err;
      const replicated = await this.afterReplication<T>(call);
      if (replicated) {
        usedToken?.(token);
        return replicated.body;
      }
      this.tokens.invalidate(token);
      const fresh = await this.tokens.token(call.deadline);
      if (fresh === token) throw err;
      const body = await this.vault.call<T>({ ...call, token: fresh });
      usedToken?.(fresh);
      return body;
    }
  }

  /** The call again with its young token while the node that refused it may not have it yet; undefined if not. */
  private async afterReplication<T>(call: VaultCall): Promise<{ body: T } | undefined> {
    // At most half the time left goes to waiting: the other half stays for a login and a retry.
    const waitUntil = call.deadline - (call.deadline - Date.now()) / 2;
    for (const wait of REPLICATION_RETRY_MS) {
      const age = call.token === undefined ? undefined : this.tokens.ageOf(call.token);
      if (age === undefined || age + wait > this.replicationGraceMs || Date.now() + wait > waitUntil) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
      try {
        return { body: await this.vault.call<T>(call) };
      } catch (err) {
        if (!(err instanceof VaultApiError) || err.status !== 403) throw err;
      }
    }
    return undefined;
  }

  private async tokenAlive(token: string, deadline: number): Promise<boolean> {
    if (this.verified?.token === token && Date.now() - this.verified.at < VERIFIED_FOR_MS) return true;
    try {
      await this.vault.call({ method: 'GET', path: 'auth/token/lookup-self', token, deadline });
      this.verified = { token, at: Date.now() };
      return true;
    } catch (err) {
      return !(err instanceof VaultApiError && err.status === 403);
    }
  }
}
