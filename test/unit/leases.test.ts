// Leases without Vault: no blind renewals while the Docker Engine cannot say whether a
// lease's task still runs (one warning, one recovery line, renewals resume), and a lease
// replaced close to its end lets go of the token that created it.
import { expect } from 'chai';
import { DsoError } from '../../src/errors';
import type { VaultSession, SessionCall } from '../../src/vault/session';
import type { LeaseTokens } from '../../src/vault/lease-tokens';
import { LeaseManager, LeaseOwner, OwnerLiveness } from '../../src/vault/leases';
import { capturingLogger, sleep } from './helpers';

/** Liveness as the Docker Engine would answer it; `down` makes every question fail. */
class FakeLiveness implements OwnerLiveness {
  down = false;
  gone = new Set<string>();
  asked = 0;
  async alive(owners: LeaseOwner[]): Promise<Map<string, boolean>> {
    this.asked++;
    if (this.down)
      throw new DsoError('ERR_INTERNAL', 'Docker Engine at /var/run/docker.sock unreachable: no answer within 5000 ms');
    return new Map(owners.map((o) => [`${o.kind}:${o.id}`, !this.gone.has(o.id)]));
  }
}

function setup(ttlSeconds: number) {
  const calls: SessionCall[] = [];
  const session = {
    async call(call: SessionCall) {
      calls.push(call);
      if (call.path === 'sys/leases/renew')
        return { lease_id: (call.body as { lease_id: string }).lease_id, lease_duration: ttlSeconds, renewable: true };
      return {};
    },
  } as unknown as VaultSession;
  const holds: string[] = [];
  const releases: string[] = [];
  const tokens: Pick<LeaseTokens, 'hold' | 'release'> = {
    hold: (t) => void holds.push(t),
    release: (t) => void releases.push(t),
  };
  const liveness = new FakeLiveness();
  const log = capturingLogger('debug');
  const leases = new LeaseManager({
    session,
    tokens,
    logger: log.logger,
    liveness,
    timeoutMs: 1000,
    reapIntervalMs: 200,
    random: () => 0.5,
  });
  const acquire = (key: string, owner: LeaseOwner, token: string, id = `database/creds/app/${key}`) =>
    leases.acquire(key, owner, 'database/creds/app', async (used) => {
      used(token);
      return { lease_id: id, lease_duration: ttlSeconds, renewable: true, data: { username: 'u' } };
    });
  return {
    leases,
    calls,
    holds,
    releases,
    liveness,
    log,
    acquire,
    renewals: () => calls.filter((c) => c.path === 'sys/leases/renew'),
  };
}

describe('LeaseManager', () => {
  const managers: LeaseManager[] = [];
  afterEach(() => managers.splice(0).forEach((m) => m.stop()));

  it('does not renew a lease past its TTL while the Engine API is down, warns once, and renews again once it answers', async function () {
    this.timeout(10_000);
    const t = setup(2);
    managers.push(t.leases);
    t.leases.start();
    await t.acquire('k1', { kind: 'task', id: 'task-1' }, 'tok-1');
    t.liveness.down = true;
    await sleep(2_300); // renewal was due at ~1.33 s; the lease's TTL (2 s) passed
    expect(t.renewals(), 'no renewal while liveness is unknown').to.have.length(0);
    expect(t.leases.held(), 'the lease ended at its TTL').to.equal(0);

    const warnings = t.log.records().filter((r) => String(r.message).startsWith('cannot tell which tasks still run'));
    expect(warnings, 'one warning for the whole outage').to.have.length(1);
    expect(warnings[0]).to.include({ level: 'warn' });

    t.liveness.down = false;
    await t.acquire('k2', { kind: 'task', id: 'task-2' }, 'tok-1');
    await sleep(1_700); // renewal at ~1.33 s, liveness known again
    expect(t.renewals().length, 'renewals resume').to.be.greaterThan(0);
    const recovered = t.log
      .records()
      .filter((r) => String(r.message).startsWith('the Docker Engine tells again which tasks run'));
    expect(recovered, 'one line at recovery').to.have.length(1);
    expect(
      t.log.records().filter((r) => String(r.message).startsWith('cannot tell which tasks still run')),
    ).to.have.length(1);
  });

  it('revokes instead of renewing when the renewal finds the task gone', async function () {
    this.timeout(5_000);
    const t = setup(2);
    managers.push(t.leases);
    await t.acquire('k1', { kind: 'task', id: 'task-1' }, 'tok-1');
    t.liveness.gone.add('task-1');
    const end = Date.now() + 3_000; // renewal due at ~1.33 s
    while (t.calls.length === 0 && Date.now() < end) await sleep(50);
    expect(t.renewals()).to.have.length(0);
    expect(t.calls.map((c) => c.path)).to.deep.equal(['sys/leases/revoke']);
    expect(t.releases).to.deep.equal(['tok-1']);
  });

  it('lets go of the creating token when a lease close to its end is replaced', async () => {
    const t = setup(1);
    managers.push(t.leases);
    await t.acquire('k1', { kind: 'task', id: 'task-1' }, 'tok-old', 'database/creds/app/first');
    await sleep(50);
    // Within 1 s of its end the lease is not handed out again: a new one replaces it.
    (t.leases as unknown as { leases: Map<string, { expiresAt: number }> }).leases.get('k1')!.expiresAt =
      Date.now() + 500;
    await t.acquire('k1', { kind: 'task', id: 'task-1' }, 'tok-new', 'database/creds/app/second');
    expect(t.holds).to.deep.equal(['tok-old', 'tok-new']);
    expect(t.releases, 'the replaced lease released its token').to.deep.equal(['tok-old']);
    expect(t.leases.held()).to.equal(1);
  });

  it('revokes every lease of one owner at once (the Vault test)', async () => {
    const t = setup(60);
    managers.push(t.leases);
    await t.acquire('k1', { kind: 'task', id: 'probe' }, 'tok-1');
    await t.acquire('k2', { kind: 'task', id: 'other' }, 'tok-1');
    expect(t.leases.holds([{ kind: 'task', id: 'probe' }], 'database/creds/app')).to.equal(true);
    expect(await t.leases.revokeOwner({ kind: 'task', id: 'probe' }, 'test read')).to.equal(true);
    expect(
      t.calls.filter((c) => c.path === 'sys/leases/revoke').map((c) => (c.body as { lease_id: string }).lease_id),
    ).to.deep.equal(['database/creds/app/k1']);
    expect(t.leases.holds([{ kind: 'task', id: 'probe' }], 'database/creds/app')).to.equal(false);
    expect(t.leases.held()).to.equal(1);
  });
});
