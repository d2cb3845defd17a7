// The secret driver end to end over in-memory collaborators: plan -> mount -> engine ->
// final policy check on the API path -> rendered bytes, and DoNotReuse per engine.
import { expect } from 'chai';
import type { SecretRead } from '../../src/engines/engine';
import { KvEngine } from '../../src/engines/kv';
import type { LeasedEngine } from '../../src/engines/leased';
import type { MountInfo, MountResolver } from '../../src/engines/mounts';
import { DsoError } from '../../src/errors';
import { leaseOwner, MisconfiguredDriver, VaultSecretDriver } from '../../src/resolve/driver';
import { PathPolicy } from '../../src/resolve/policy';
import { RequestFacts, Resolver } from '../../src/resolve/resolver';
import { VaultApiError } from '../../src/vault/errors';
import type { SessionCall, VaultSession } from '../../src/vault/session';
import { rejected } from './helpers';

const PASSWORD = 'driver-canary-pw-0a9c3e';

interface Setup {
  mount: MountInfo;
  policy?: string[];
  answers?: Record<string, unknown>;
  leased?: (apiPath: string) => SecretRead;
}

function driverFor({ mount, policy = [], answers = {}, leased }: Setup) {
  const calls: SessionCall[] = [];
  const session = {
    async call(call: SessionCall) {
      calls.push(call);
      if (!(call.path in answers)) throw new VaultApiError(404, [], call.path);
      return answers[call.path];
    },
  } as unknown as VaultSession;
  const lookups: string[] = [];
  const mounts = {
    async lookup(path: string) {
      lookups.push(path);
      return mount;
    },
  } as unknown as MountResolver;
  const leasedReads: Array<{ apiPath: string; owner: unknown }> = [];
  const leasedEngine = leased
    ? ({
        apiPath: (p: string) => p,
        async read(apiPath: string, _m: MountInfo, options: { owner?: unknown }) {
          leasedReads.push({ apiPath, owner: options.owner });
          return leased(apiPath);
        },
      } as unknown as LeasedEngine)
    : undefined;
  const driver = new VaultSecretDriver({ resolver: new Resolver(new PathPolicy(policy)), mounts, kv: new KvEngine(session), leased: leasedEngine, timeoutMs: 2000 });
  return { driver, calls, lookups, leasedReads };
}

const kv2: MountInfo = { path: 'secret/', type: 'kv', kvVersion: 2 };
const kv1: MountInfo = { path: 'legacy/', type: 'kv', kvVersion: 1 };
const db: MountInfo = { path: 'database/', type: 'database' };

const req = (labels: Record<string, string>, over: Partial<RequestFacts> = {}): RequestFacts => ({
  SecretName: 'db_password',
  ServiceID: 'svc-1',
  ServiceName: 'web',
  TaskID: 'task-1',
  TaskName: 'web.1.task-1',
  SecretLabels: labels,
  ...over,
});

const v2answer = { data: { data: { password: PASSWORD, user: 'web' }, metadata: { version: 7 } } };

describe('VaultSecretDriver', () => {
  it('reads a KV v2 field given in CLI form from the data/ API path', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    const result = await driver.getSecret(req({ 'dso.ref': 'dso://secret/app/db#password' }));
    expect(result.value.toString()).to.equal(PASSWORD);
    expect(result.source).to.deep.equal({ path: 'secret/data/app/db', field: 'password', version: 7 });
    expect(calls.map((c) => c.path)).to.deep.equal(['secret/data/app/db']);
  });

  it('sends the workload identity with the read', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password' }));
    expect(calls[0].workload).to.deep.equal({ service: 'web', task: 'web.1.task-1', secret: 'db_password' });
  });

  it('shares KV values among tasks by default (DoNotReuse false)', async () => {
    const { driver } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    expect((await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password' }))).doNotReuse).to.equal(false);
  });

  it('gives each task its own copy with dso.reuse=false', async () => {
    const { driver } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    expect((await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password', 'dso.reuse': 'false' }))).doNotReuse).to.equal(true);
  });

  it('asks for the KV v2 version named by dso.version', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password', 'dso.version': '3' }));
    expect(calls[0].query).to.deep.equal({ version: 3 });
  });

  it('refuses dso.version on a KV v1 mount', async () => {
    const { driver } = driverFor({ mount: kv1, answers: { 'legacy/app': { data: { k: 'v' } } } });
    expect((await rejected(driver.getSecret(req({ 'dso.ref': 'dso://legacy/app#k', 'dso.version': '2' })))).code).to.equal('ERR_LABELS');
  });

  it('applies the policy again to the final API path: a CLI path on a KV v1 mount is refused before any read', async () => {
    const { driver, calls } = driverFor({ mount: { path: 'secret/', type: 'kv', kvVersion: 1 }, policy: ['secret/data/app/*'], answers: { 'secret/app/db': { data: { password: PASSWORD } } } });
    const err = await rejected(driver.getSecret(req({ 'dso.ref': 'dso://secret/app/db#password' })));
    expect(err.code).to.equal('ERR_PATH_REFUSED');
    expect(err.source).to.deep.include({ path: 'secret/app/db', field: 'password' });
    expect(calls).to.have.length(0);
  });

  it('refuses a path the policy cannot allow before asking Vault anything', async () => {
    const { driver, calls, lookups } = driverFor({ mount: kv2, policy: ['secret/data/app/*'] });
    const err = await rejected(driver.getSecret(req({ 'dso.ref': 'dso://secret/data/other/db#password' })));
    expect(err.code).to.equal('ERR_PATH_REFUSED');
    expect(lookups).to.have.length(0);
    expect(calls).to.have.length(0);
  });

  it('maps a missing secret to ERR_NOT_FOUND with the path in its source', async () => {
    const { driver } = driverFor({ mount: kv2 });
    const err = await rejected(driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/none#password' })));
    expect(err.code).to.equal('ERR_NOT_FOUND');
    expect(err.source).to.deep.include({ path: 'secret/data/app/none', field: 'password' });
  });

  it('names the fields, not the values, when the field is missing', async () => {
    const { driver } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    const err = await rejected(driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#pasword' })));
    expect(err.code).to.equal('ERR_FIELD_MISSING');
    expect(err.message).to.include('"password"');
    expect(err.message).to.not.include(PASSWORD);
  });

  it('refuses an engine other than KV when no leased engine is wired', async () => {
    const { driver } = driverFor({ mount: db });
    expect((await rejected(driver.getSecret(req({ 'dso.ref': 'dso://database/creds/app#password' })))).code).to.equal('ERR_UNSUPPORTED');
  });

  describe('leased (dynamic) secrets', () => {
    const lease = (apiPath: string): SecretRead => ({ apiPath, data: { username: 'v-user', password: PASSWORD }, leased: true, lease: { id: 'database/creds/app/abc', expiresAt: Date.UTC(2030, 0, 1) } });

    it('gives each task its own copy by default (DoNotReuse true), owned by the task', async () => {
      const { driver, leasedReads } = driverFor({ mount: db, leased: lease });
      const result = await driver.getSecret(req({ 'dso.ref': 'dso://database/creds/app#username' }));
      expect(result.value.toString()).to.equal('v-user');
      expect(result.doNotReuse).to.equal(true);
      expect(result.source.leaseExpiresAt).to.equal('2030-01-01T00:00:00.000Z');
      expect(leasedReads[0]).to.deep.equal({ apiPath: 'database/creds/app', owner: { kind: 'task', id: 'task-1' } });
    });

    it('shares one copy owned by the service with dso.reuse=true', async () => {
      const { driver, leasedReads } = driverFor({ mount: db, leased: lease });
      const result = await driver.getSecret(req({ 'dso.ref': 'dso://database/creds/app#username', 'dso.reuse': 'true' }));
      expect(result.doNotReuse).to.equal(false);
      expect(leasedReads[0].owner).to.deep.equal({ kind: 'service', id: 'svc-1' });
    });
  });

  it('stops once the request is aborted (deadline passed)', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    const controller = new AbortController();
    controller.abort(new DsoError('ERR_TIMEOUT', 'deadline'));
    const err = await rejected(driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password' }), controller.signal));
    expect(err.code).to.equal('ERR_TIMEOUT');
    expect(calls).to.have.length(0);
  });
});

describe('leaseOwner', () => {
  it('is the task by default, the service with reuse, none without IDs', () => {
    expect(leaseOwner({ TaskID: 't', TaskName: 'n', ServiceID: 's' }, undefined)).to.deep.equal({ kind: 'task', id: 't' });
    expect(leaseOwner({ TaskName: 'n' }, false)).to.deep.equal({ kind: 'task', id: 'n' });
    expect(leaseOwner({ TaskID: 't', ServiceID: 's', ServiceName: 'web' }, true)).to.deep.equal({ kind: 'service', id: 's' });
    expect(leaseOwner({ ServiceName: 'web' }, true)).to.deep.equal({ kind: 'service', id: 'web' });
    expect(leaseOwner({}, undefined)).to.deep.equal({ kind: 'none', id: '' });
  });
});

describe('MisconfiguredDriver', () => {
  it('answers every request with ERR_SETTINGS naming each problem and how to fix them', async () => {
    const driver = new MisconfiguredDriver(['VAULT_ADDR is not set', 'DSO_TIMEOUT is invalid']);
    const err = await rejected(driver.getSecret());
    expect(err.code).to.equal('ERR_SETTINGS');
    expect(err.message).to.include('VAULT_ADDR is not set; DSO_TIMEOUT is invalid');
    expect(err.message).to.include('docker plugin set');
  });
});
