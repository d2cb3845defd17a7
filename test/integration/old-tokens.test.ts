// Old tokens end, against a real OpenBao: after a new login (here the Vault test's), the
// previous AppRole token is revoked once it owns no lease, one DSO_TIMEOUT later; a token
// that still owns a lease lives until that lease is gone, then is revoked too.
import { expect } from 'chai';
import { secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { configureDatabaseEngine, sharedPostgres } from '../support/postgres';
import type { LeaseOwner, OwnerLiveness } from '../../src/vault/leases';
import { dynamicPolicy } from '../support/policies';

const MOUNT = 'approle-old-tokens';
const ROLE = 'dso-old-tokens';

/** Tasks the test says are running; any other owner is gone. */
class FakeSwarm implements OwnerLiveness {
  readonly running = new Set<string>();
  async alive(owners: LeaseOwner[]): Promise<Map<string, boolean>> {
    return new Map(owners.map((o) => [`${o.kind}:${o.id}`, this.running.has(o.id)]));
  }
}

describe('old Vault tokens end (real OpenBao)', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  let plugin: TestPlugin | undefined;
  const swarm = new FakeSwarm();

  /** Live tokens this role issued, counted by accessor (root: only the test may list them). */
  async function liveTokens(): Promise<number> {
    const list = await bao.api<{ data: { keys: string[] } }>('LIST', 'auth/token/accessors');
    let n = 0;
    for (const accessor of list.data.keys) {
      const info = await bao
        .api<{ data: { meta?: { role_name?: string } | null; path?: string } }>('POST', 'auth/token/lookup-accessor', {
          accessor,
        })
        .catch(() => undefined);
      if (info?.data.path?.startsWith(`auth/${MOUNT}/`)) n++;
    }
    return n;
  }

  const waitTokens = async (want: number, ms: number) => {
    const end = Date.now() + ms;
    let n = await liveTokens();
    while (n !== want && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 250));
      n = await liveTokens();
    }
    return n;
  };

  before(async () => {
    bao = await sharedOpenBao();
    const pg = sharedPostgres();
    await configureDatabaseEngine(bao.api, pg, { role: 'oldtok', defaultTtl: '1h', maxTtl: '2h' });
    await bao.api('PUT', 'sys/policies/acl/dso-old-tokens', { policy: dynamicPolicy(['database/creds/oldtok']) });
    await bao.api('POST', `sys/auth/${MOUNT}`, { type: 'approle' }).catch(() => undefined);
    await bao.api('POST', `auth/${MOUNT}/role/${ROLE}`, {
      token_policies: ['dso-old-tokens'],
      token_ttl: '1h',
      token_max_ttl: '2h',
    });
    const roleId = (await bao.api<{ data: { role_id: string } }>('GET', `auth/${MOUNT}/role/${ROLE}/role-id`)).data
      .role_id;
    const secretId = secret(
      (await bao.api<{ data: { secret_id: string } }>('POST', `auth/${MOUNT}/role/${ROLE}/secret-id`)).data.secret_id,
    );
    plugin = startTestPlugin(
      {
        VAULT_ADDR: bao.addr,
        VAULT_AUTH_METHOD: 'approle',
        VAULT_AUTH_MOUNT: MOUNT,
        VAULT_ROLE_ID: roleId,
        VAULT_SECRET_ID_FILE: credentialFile('old-tokens-secret-id', secretId),
        DSO_TIMEOUT: '1s',
      },
      { liveness: swarm, reapIntervalMs: 300 },
    );
  });

  after(() => plugin?.stop());

  it('revokes the previous token after a new login when it owns no lease', async () => {
    expect((await plugin!.plugin.testVault(undefined)).ok).to.equal(true);
    expect(await waitTokens(1, 5_000), 'the start login and one more: one token left').to.equal(1);
    expect(await plugin!.plugin.testVault(undefined)).to.include({ ok: true });
    expect(await waitTokens(1, 5_000)).to.equal(1);
  });

  it('keeps a previous token while it owns a lease, and revokes it once the lease is gone', async () => {
    swarm.running.add('task-old-token');
    const got = await plugin!.get({
      SecretName: 'db_user',
      ServiceName: 'api',
      ServiceID: 'svc-api',
      TaskID: 'task-old-token',
      SecretLabels: { 'dso.ref': 'dso://database/creds/oldtok#username' },
    });
    expect(got.status).to.equal(200);
    await plugin!.plugin.testVault(undefined); // a new login: the lease's token is retired, not revoked
    await new Promise((r) => setTimeout(r, 2_500)); // past the 1 s + 1 s grace
    expect(await liveTokens(), 'the lease keeps its token').to.equal(2);
    swarm.running.delete('task-old-token'); // the task is gone: its lease is revoked, then its token
    expect(await waitTokens(1, 8_000)).to.equal(1);
  });
});
