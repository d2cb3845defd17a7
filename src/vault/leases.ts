// Leases of dynamic secrets. One lease per owner and path: every secret of one task that
// points at the same leased path gets its fields from the same response, so a username
// always matches its password and a certificate its key. Leases are renewed while their
// owner (a task, or a service for shared copies) exists and revoked once it is gone.
// No blind renewals: a renewal first asks whether its owner still exists; when the Docker
// Engine cannot say, the lease is not renewed past its current TTL (it is asked again
// every second while the lease lives), so an Engine API outage never keeps a gone task's
// credentials alive.
import { DsoError } from '../errors';
import { FaultLog } from '../log';
import type { Logger } from '../log';
import { RenewalTimer } from './renewal';
import type { VaultSession } from './session';
import { SingleFlight } from '../singleflight';
import { repeat } from '../timers';
import type { LeaseTokens } from './lease-tokens';

export interface LeaseOwner {
  kind: 'task' | 'service' | 'none';
  id: string;
}

/** Says which owners still exist; undefined when that cannot be known right now. */
export interface OwnerLiveness {
  alive(owners: LeaseOwner[]): Promise<Map<string, boolean> | undefined>;
}

/** A Vault answer that may carry a lease. */
export interface LeasedAnswer {
  lease_id?: string;
  lease_duration?: number;
  renewable?: boolean;
  data?: Record<string, unknown> | null;
}

export interface Lease {
  key: string;
  owner: LeaseOwner;
  path: string;
  /** Empty for answers without a lease (e.g. PKI certificates without generate_lease). */
  leaseId: string;
  data: Record<string, unknown>;
  renewable: boolean;
  ttlSeconds: number;
  expiresAt: number;
  /** The token that created the lease: when it ends, Vault revokes the lease. */
  token?: string;
  nearMaxTtl: boolean;
  /** The service to roll before the lease ends, when rotation is on for it. */
  serviceId?: string;
  rotate: boolean;
  rotationRequested: boolean;
}

export interface LeaseMeta {
  serviceId?: string;
  rotate?: boolean;
}

export interface LeaseManagerOptions {
  session: VaultSession;
  /** Counts each lease against the token that created it (./lease-tokens.ts). */
  tokens: Pick<LeaseTokens, 'hold' | 'release'>;
  logger: Logger;
  liveness?: OwnerLiveness;
  timeoutMs: number;
  reapIntervalMs?: number;
  random?: () => number;
  /** Told when a lease with rotation on learns that it will end (max TTL). */
  onEnding?: () => void;
}

export function ownerKey(owner: LeaseOwner): string {
  return `${owner.kind}:${owner.id}`;
}

/** A lease id safe to log: its path and last characters, enough to find it in `vault list`. */
export function safeLeaseId(leaseId: string): string {
  if (!leaseId) return '(no lease)';
  const cut = leaseId.lastIndexOf('/');
  return `${leaseId.slice(0, cut + 1)}…${leaseId.slice(-6)}`;
}

/** What the log and the status route say of a lease: its safe id, path and owner. */
const logged = (lease: Lease) => ({
  lease: safeLeaseId(lease.leaseId),
  path: lease.path,
  owner: ownerKey(lease.owner),
});

/** A lease as GET /DSO.Status shows it: no full lease id, no data. */
export type LeaseSummary = ReturnType<LeaseManager['describe']>[number];

export class LeaseManager {
  private readonly leases = new Map<string, Lease>();
  private readonly timers = new Map<string, RenewalTimer>();
  private readonly flights = new SingleFlight<Lease>();
  private stopReaper?: () => void;
  private readonly faults: FaultLog;
  /** When the last liveness question failed: for a second, others do not ask again. */
  private livenessFailedAt = -Infinity;
  private readonly random: () => number;
  renewals = 0;
  revocations = 0;

  constructor(private readonly options: LeaseManagerOptions) {
    this.random = options.random ?? Math.random;
    this.faults = new FaultLog(options.logger);
  }

  /** The lease for this owner and path: the existing one, or one made by `fetch`. */
  acquire(
    key: string,
    owner: LeaseOwner,
    path: string,
    fetch: (usedToken: (token: string) => void) => Promise<LeasedAnswer>,
    meta: LeaseMeta = {},
  ): Promise<Lease> {
    const existing = this.leases.get(key);
    if (existing && existing.expiresAt - Date.now() > 1_000) {
      if (meta.rotate) existing.rotate = true;
      return Promise.resolve(existing);
    }
    return this.flights.run(key, async () => {
      let token: string | undefined;
      const answer = await fetch((t) => (token = t));
      if (!answer.data) throw new DsoError('ERR_NOT_FOUND', `Vault returned no data for ${path}`);
      const ttl = answer.lease_duration ?? 0;
      const lease: Lease = {
        key,
        owner,
        path,
        leaseId: answer.lease_id ?? '',
        data: answer.data,
        renewable: answer.renewable ?? false,
        ttlSeconds: ttl,
        expiresAt: ttl > 0 ? Date.now() + ttl * 1000 : Infinity,
        token,
        nearMaxTtl: false,
        serviceId: meta.serviceId,
        rotate: meta.rotate ?? false,
        rotationRequested: false,
      };
      // Without an owner nothing could ever revoke it: hand it out, keep nothing.
      if (owner.kind === 'none') return lease;
      // A lease replaced close to its end lets go of its token, which may then be retired.
      const replaced = this.leases.get(key);
      if (replaced) this.forget(replaced);
      this.leases.set(key, lease);
      if (lease.leaseId && token) this.options.tokens.hold(token);
      this.options.logger.info('lease issued', {
        ...logged(lease),
        ttlSeconds: ttl,
        renewable: lease.renewable,
      });
      this.schedule(lease);
      return lease;
    });
  }

  private schedule(lease: Lease): void {
    this.clearTimer(lease.key);
    if (!lease.leaseId || !lease.renewable || lease.expiresAt - Date.now() < 1_000) return;
    this.timer(lease.key).arm(lease.expiresAt, () => void this.renew(lease), { minDelayMs: 500 });
  }

  /** Asks again in a second while the lease has more than `leftMs` to live. */
  private retry(lease: Lease, leftMs: number): void {
    if (lease.expiresAt - Date.now() > leftMs) this.timer(lease.key).after(1_000, () => void this.renew(lease));
  }

  private timer(key: string): RenewalTimer {
    let timer = this.timers.get(key);
    if (!timer) this.timers.set(key, (timer = new RenewalTimer(Date.now, this.random)));
    return timer;
  }

  private clearTimer(key: string): void {
    this.timers.get(key)?.clear();
    this.timers.delete(key);
  }

  /** Whether `owner` still exists: true, false, or undefined when the Engine cannot say. */
  private async ownerAlive(owner: LeaseOwner): Promise<boolean | undefined> {
    if (!this.options.liveness) return true; // no way to ask (plain tests): leases follow their TTL and renewals
    if (Date.now() - this.livenessFailedAt < 1_000) return undefined;
    return (await this.askLiveness([owner]))?.get(ownerKey(owner));
  }

  /** Which of `owners` exist; undefined when the Engine cannot say (logged once per outage). */
  private async askLiveness(owners: LeaseOwner[]): Promise<Map<string, boolean> | undefined> {
    let alive: Map<string, boolean> | undefined;
    let error: unknown;
    try {
      alive = await this.options.liveness?.alive(owners);
    } catch (err) {
      error = err;
    }
    if (alive) {
      const back = 'the Docker Engine tells again which tasks run: lease renewals and revocations resume';
      this.faults.recovered('liveness', back, {});
      return alive;
    }
    this.livenessFailedAt = Date.now();
    const message =
      'cannot tell which tasks still run: leases are not renewed past their current TTL until the Docker Engine ' +
      'answers';
    this.faults.fault('liveness', message, {
      error: error instanceof DsoError ? error.message : error === undefined ? 'no answer' : 'unexpected error',
    });
    return undefined;
  }

  private async renew(lease: Lease): Promise<void> {
    if (this.leases.get(lease.key) !== lease) return;
    const { logger, session, timeoutMs } = this.options;
    const alive = await this.ownerAlive(lease.owner);
    if (this.leases.get(lease.key) !== lease) return;
    if (alive === false) {
      await this.revoke(lease, `${lease.owner.kind} is gone`);
      return;
    }
    if (alive === undefined) {
      // Renewing now could keep a gone task's credentials for another TTL: ask again soon.
      this.retry(lease, 1_500);
      return;
    }
    try {
      const answer = await session.call<LeasedAnswer>({
        method: 'PUT',
        path: 'sys/leases/renew',
        body: { lease_id: lease.leaseId, increment: lease.ttlSeconds },
        deadline: Date.now() + timeoutMs,
      });
      const granted = answer.lease_duration ?? 0;
      lease.expiresAt = Date.now() + granted * 1000;
      this.renewals++;
      // Vault grants the increment asked for unless the max TTL is in the way: any shortfall
      // means the end is known now, early enough for rotation to roll the service.
      if (granted < lease.ttlSeconds && !lease.nearMaxTtl) {
        lease.nearMaxTtl = true;
        logger.warn('lease reaches its max TTL: its credentials end then', {
          ...logged(lease),
          endsAt: new Date(lease.expiresAt).toISOString(),
        });
        // The end may be only a third of a TTL away: rotation must not wait for its next pass.
        if (lease.rotate) this.options.onEnding?.();
      }
      logger.debug('lease renewed', { lease: safeLeaseId(lease.leaseId), ttlSeconds: granted });
      this.schedule(lease);
    } catch (err) {
      logger.error('lease renewal failed', {
        ...logged(lease),
        error: err instanceof DsoError ? err.message : 'unexpected error',
      });
      // Try again while the lease lives; a lease Vault no longer knows is dropped.
      if (err instanceof DsoError && (err.code === 'ERR_VAULT' || err.code === 'ERR_NOT_FOUND')) this.forget(lease);
      else this.retry(lease, 2_000);
    }
  }

  /** Revokes a lease (its owner is gone) and forgets it; false when Vault refused or failed. */
  async revoke(lease: Lease, reason: string): Promise<boolean> {
    this.forget(lease);
    if (!lease.leaseId) return true;
    try {
      await this.options.session.call({
        method: 'PUT',
        path: 'sys/leases/revoke',
        body: { lease_id: lease.leaseId },
        deadline: Date.now() + this.options.timeoutMs,
      });
      this.revocations++;
      this.options.logger.info('lease revoked', {
        ...logged(lease),
        reason,
      });
      return true;
    } catch (err) {
      this.options.logger.error('lease revocation failed: it ends at its TTL', {
        ...logged(lease),
        endsAt: lease.expiresAt === Infinity ? 'never' : new Date(lease.expiresAt).toISOString(),
        error: err instanceof DsoError ? err.message : 'unexpected error',
      });
      return false;
    }
  }

  private forget(lease: Lease): void {
    if (this.leases.get(lease.key) !== lease) return;
    this.leases.delete(lease.key);
    this.clearTimer(lease.key);
    if (lease.leaseId && lease.token) this.options.tokens.release(lease.token);
  }

  /** Revokes the leases of owners that no longer exist; drops leases that expired. */
  async reap(): Promise<void> {
    const now = Date.now();
    for (const lease of [...this.leases.values()]) if (lease.expiresAt <= now) this.forget(lease);
    if (this.leases.size === 0 || !this.options.liveness) return;
    const owners = new Map<string, LeaseOwner>();
    for (const lease of this.leases.values()) owners.set(ownerKey(lease.owner), lease.owner);
    const alive = await this.askLiveness([...owners.values()]);
    if (!alive) return;
    for (const lease of [...this.leases.values()]) {
      if (alive.get(ownerKey(lease.owner)) === false) await this.revoke(lease, `${lease.owner.kind} is gone`);
    }
  }

  start(): void {
    if (!this.options.liveness) return;
    const interval = this.options.reapIntervalMs ?? 5_000;
    this.stopReaper ??= repeat(
      () => this.reap(),
      interval,
      () => interval,
    );
  }

  stop(): void {
    this.stopReaper?.();
    this.stopReaper = undefined;
    for (const key of [...this.timers.keys()]) this.clearTimer(key);
  }

  /**
   * Leases with rotation on that end (max TTL, or not renewable) within `withinMs` and
   * were not handed to rotation yet; marked as handed.
   */
  takeEnding(withinMs: number): Lease[] {
    const limit = Date.now() + withinMs;
    const ending = [...this.leases.values()].filter(
      (l) => l.rotate && !l.rotationRequested && l.expiresAt <= limit && (l.nearMaxTtl || !l.renewable),
    );
    for (const lease of ending) lease.rotationRequested = true;
    return ending;
  }

  /** Whether a lease of one of `owners` for `path` is held (and renewed) by this process. */
  holds(owners: LeaseOwner[], path: string): boolean {
    const keys = new Set(owners.map(ownerKey));
    return [...this.leases.values()].some((l) => l.path === path && keys.has(ownerKey(l.owner)));
  }

  /** Revokes every lease of `owner` now (a one-off read such as the Vault test); false if one failed. */
  async revokeOwner(owner: LeaseOwner, reason: string): Promise<boolean> {
    let ok = true;
    for (const lease of [...this.leases.values()].filter((l) => ownerKey(l.owner) === ownerKey(owner)))
      ok = (await this.revoke(lease, reason)) && ok;
    return ok;
  }

  held(): number {
    return [...this.leases.values()].filter((l) => l.leaseId).length;
  }

  /** For the status route: no lease ids in full, no data. */
  describe() {
    return [...this.leases.values()].map((l) => ({
      ...logged(l),
      expiresAt: l.expiresAt === Infinity ? null : new Date(l.expiresAt).toISOString(),
      renewable: l.renewable,
      nearMaxTtl: l.nearMaxTtl,
    }));
  }
}
