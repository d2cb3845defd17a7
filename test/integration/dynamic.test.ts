// Dynamic secrets from a real OpenBao: database credentials on a real PostgreSQL (one
// lease per task and path, renewal, revocation when the task is gone) and PKI certificates.
import { expect } from 'chai';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { secret } from '../support/capture';
import { OpenBao, policyToken, sharedOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { configureDatabaseEngine, Postgres, sharedPostgres } from '../support/postgres';
import type { LeaseOwner, OwnerLiveness } from '../../src/vault/leases';
import { dynamicPolicy } from '../support/policies';

/** Tasks the test says are running; any other owner is gone. */
class FakeSwarm implements OwnerLiveness {
  readonly running = new Set<string>();
  async alive(owners: LeaseOwner[]): Promise<Map<string, boolean>> {
    return new Map(owners.map((o) => [`${o.kind}:${o.id}`, this.running.has(o.id)]));
  }
}

interface LeaseInfo {
  held: number;
  renewals: number;
  revocations: number;
  list: Array<{ path: string; owner: string; expiresAt: string }>;
}

describe('dynamic secrets from a real OpenBao and PostgreSQL', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  let pg: Postgres;
  let plugin: TestPlugin;
  const swarm = new FakeSwarm();
  const leases = () => plugin.plugin.describe().leases as LeaseInfo;

  const dbSecret = (task: string, field: string, extra: Record<string, string> = {}) => ({
    SecretName: `db_${field}`,
    ServiceName: 'api',
    ServiceID: 'svc-api',
    TaskID: task,
    TaskName: `api.${task}`,
    SecretLabels: { 'dso.ref': `dso://database/creds/app#${field}`, ...extra },
  });

  before(async function () {
    pg = sharedPostgres();
    bao = await sharedOpenBao();
    await configureDatabaseEngine(bao.api, pg, { defaultTtl: '6s', maxTtl: '1h' });
    await bao.api('POST', 'sys/mounts/pki', { type: 'pki', config: { max_lease_ttl: '48h' } }).catch(() => undefined);
    await bao.api('POST', 'pki/root/generate/internal', { common_name: 'DSO test CA', ttl: '48h' });
    await bao.api('POST', 'pki/roles/web', {
      allowed_domains: ['example.com'],
      allow_subdomains: true,
      max_ttl: '24h',
    });
    const token = await policyToken(bao, 'dso-dynamic', dynamicPolicy(['database/creds/app'], ['pki/issue/web']), '1h');
    plugin = startTestPlugin(
      {
        VAULT_ADDR: bao.addr,
        VAULT_AUTH_METHOD: 'token',
        VAULT_TOKEN_FILE: credentialFile('dynamic-token', token),
        DSO_TIMEOUT: '5s',
      },
      { liveness: swarm, reapIntervalMs: 300 },
    );
  });

  after(() => plugin?.stop());

  async function credentials(task: string): Promise<{ user: string; password: string; doNotReuse: boolean }> {
    const [user, password] = await Promise.all([
      plugin.get(dbSecret(task, 'username')),
      plugin.get(dbSecret(task, 'password')),
    ]);
    expect(user.reply.Err).to.equal('');
    expect(password.reply.Err).to.equal('');
    return {
      user: user.value!.toString(),
      password: secret(password.value!.toString()),
      doNotReuse: user.reply.DoNotReuse,
    };
  }

  it('gives one task a username and password from the same lease, and they log in to PostgreSQL', async () => {
    swarm.running.add('task-1');
    const { user, password, doNotReuse } = await credentials('task-1');
    expect(user).to.match(/^dso_app_/);
    expect(doNotReuse, 'leased secrets are per task by default').to.equal(true);
    expect(await pg.canLogin(user, password)).to.equal(true);
  });

  it('gives two tasks two different database users', async () => {
    swarm.running.add('task-2');
    const first = await credentials('task-1');
    const second = await credentials('task-2');
    expect(second.user).not.to.equal(first.user);
    expect(await pg.canLogin(second.user, second.password)).to.equal(true);
  });

  it('renews the lease while its task runs: the credentials outlive their first TTL', async () => {
    const { user, password } = await credentials('task-1');
    const ttlBefore = new Date(leases().list.find((l) => l.owner === 'task:task-1')!.expiresAt).getTime();
    await new Promise((r) => setTimeout(r, 8_000)); // default_ttl is 6 s
    const lease = leases().list.find((l) => l.owner === 'task:task-1')!;
    expect(new Date(lease.expiresAt).getTime()).to.be.greaterThan(ttlBefore);
    expect(leases().renewals).to.be.at.least(1);
    // Read back from OpenBao: the lease is still there, and the user still logs in.
    expect(await pg.canLogin(user, password)).to.equal(true);
  });

  it('revokes the lease when the task is gone, removing the role from pg_roles', async () => {
    const { user } = await credentials('task-2');
    expect(await pg.roles(user)).to.deep.equal([user]);
    swarm.running.delete('task-2');
    const end = Date.now() + 10_000;
    while ((await pg.roles(user)).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await pg.roles(user)).to.deep.equal([]);
    expect(leases().list.map((l) => l.owner)).not.to.include('task:task-2');
    expect(plugin.logs.some((l) => l.includes('"lease revoked"'))).to.equal(true);
  });

  it('shares one lease per service when dso.reuse=true', async () => {
    swarm.running.add('svc-api');
    const a = await plugin.get(dbSecret('task-7', 'username', { 'dso.reuse': 'true' }));
    const b = await plugin.get(dbSecret('task-8', 'username', { 'dso.reuse': 'true' }));
    expect(a.reply.DoNotReuse).to.equal(false);
    expect(a.value!.toString()).to.equal(b.value!.toString());
  });

  it('issues a certificate whose key matches, with the common name from the template', async () => {
    const ref = (field: string) => ({
      SecretName: `tls_${field}`,
      ServiceName: 'web',
      TaskID: 'task-pki',
      SecretLabels: { 'dso.ref': `dso://pki/issue/web?common_name={service}.example.com&ttl=1h#${field}` },
    });
    swarm.running.add('task-pki');
    const [cert, key, ca] = await Promise.all([
      plugin.get(ref('certificate')),
      plugin.get(ref('private_key')),
      plugin.get(ref('issuing_ca')),
    ]);
    secret(key.value!.toString());
    const x509 = new X509Certificate(cert.value!);
    expect(x509.subject).to.contain('CN=web.example.com');
    const publicFromKey = createPublicKey(createPrivateKey(key.value!)).export({ type: 'spki', format: 'pem' });
    expect(x509.publicKey.export({ type: 'spki', format: 'pem' })).to.equal(publicFromKey);
    expect(x509.verify(new X509Certificate(ca.value!).publicKey)).to.equal(true);
  });

  it('bundles key, certificate and chain with dso.format=pem', async () => {
    const { value, reply } = await plugin.get({
      SecretName: 'bundle',
      ServiceName: 'web',
      TaskID: 'task-pki',
      SecretLabels: { 'dso.ref': 'dso://pki/issue/web?common_name=bundle.example.com', 'dso.format': 'pem' },
    });
    expect(reply.Err).to.equal('');
    const pem = value!.toString();
    const blocks = pem.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g)!;
    expect(blocks.length).to.be.at.least(3);
    const key = createPrivateKey(blocks[0]);
    const cert = new X509Certificate(blocks[1]);
    expect(cert.subject).to.contain('CN=bundle.example.com');
    expect(cert.checkPrivateKey(key)).to.equal(true);
    secret(blocks[0]);
  });

  it("never serves, renews or revokes the plugin's own token, nor writes to cubbyhole", async () => {
    const tokenBefore = (plugin.plugin.describe().vault as { token: { ttlSeconds: number } }).token.ttlSeconds;
    for (const ref of [
      'dso://auth/token/lookup-self#id',
      'dso://auth/token/renew-self?increment=1s',
      'dso://sys/wrapping/lookup?token=x',
      'dso://cubbyhole/x?foo=bar',
      'dso://identity/entity/id',
    ]) {
      const { status, reply } = await plugin.get({
        SecretName: 's',
        ServiceName: 'evil',
        TaskID: 'task-evil',
        SecretLabels: { 'dso.ref': ref },
      });
      expect(status, ref).to.equal(500);
      expect(reply.Err, ref).to.match(/not a secret|not a secrets engine/);
    }
    const tokenAfter = (plugin.plugin.describe().vault as { token: { ttlSeconds: number } }).token.ttlSeconds;
    expect(tokenAfter).to.be.at.least(tokenBefore - 5);
  });

  it('says clearly when the database engine cannot issue credentials', async () => {
    await pg.stop();
    try {
      const started = Date.now();
      const { reply } = await plugin.get(dbSecret('task-9', 'username'));
      expect(reply.Err).to.match(/database engine at database\/ failed to serve database\/creds\/app/);
      expect(Date.now() - started).to.be.below(5_000);
    } finally {
      await pg.start();
    }
  });
});
