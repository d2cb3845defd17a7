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
import type { Logger } from '../../src/log';
import { parseAllowedWrites, WritePolicy } from '../../src/resolve/writes';
import { capturingLogger, rejected } from './helpers';

const PASSWORD = 'driver-canary-pw-0a9c3e';

interface Setup {
  mount: MountInfo;
  policy?: string[];
  answers?: Record<string, unknown>;
  leased?: (apiPath: string) => SecretRead;
  /** DSO_ALLOWED_WRITES as the setting is written. */
  writes?: string;
  pathTemplate?: string;
  logger?: Logger;
}

function driverFor({ mount, policy = [], answers = {}, leased, writes, pathTemplate, logger }: Setup) {
  const calls: SessionCall[] = [];
  const session = {
    async call(call: SessionCall) {
      calls.push(call);
      if (!(call.path in answers)) throw new VaultApiError(404, [], call.path);
      return answers[call.path];
    },
  } as unknown as VaultSession;
  const lookups: string[] = [];
  const lookup = async (path: string) => {
    lookups.push(path);
    return mount;
  };
  const mounts = { lookup, find: lookup } as unknown as MountResolver;
  const leasedReads: Array<{ apiPath: string; owner: unknown; write?: boolean }> = [];
  const leasedEngine = leased
    ? ({
        apiPath: (p: string) => p,
        async read(apiPath: string, _m: MountInfo, options: { owner?: unknown; write?: boolean }) {
          leasedReads.push({ apiPath, owner: options.owner, ...(options.write ? { write: true } : {}) });
          return leased(apiPath);
        },
      } as unknown as LeasedEngine)
    : undefined;
  const driver = new VaultSecretDriver({
    resolver: new Resolver(new PathPolicy(policy), pathTemplate),
    mounts,
    kv: new KvEngine(session),
    leased: leasedEngine,
    timeoutMs: 2000,
    writes: new WritePolicy(parseAllowedWrites(writes)),
    logger,
  });
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
/** A leased read of `apiPath` (database credentials, a certificate) that ends in 2030. */
const lease = (apiPath: string): SecretRead => ({
  apiPath,
  data: { username: 'v-user', password: PASSWORD },
  leased: true,
  lease: { id: `${apiPath}/abc`, expiresAt: Date.UTC(2030, 0, 1) },
});

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
    expect((await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password' }))).doNotReuse).to.equal(
      false,
    );
  });

  it('gives each task its own copy with dso.reuse=false', async () => {
    const { driver } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    expect(
      (await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password', 'dso.reuse': 'false' })))
        .doNotReuse,
    ).to.equal(true);
  });

  it('asks for the KV v2 version named by dso.version', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password', 'dso.version': '3' }));
    expect(calls[0].query).to.deep.equal({ version: 3 });
  });

  it('refuses dso.version on a KV v1 mount', async () => {
    const { driver } = driverFor({ mount: kv1, answers: { 'legacy/app': { data: { k: 'v' } } } });
    expect(
      (await rejected(driver.getSecret(req({ 'dso.ref': 'dso://legacy/app#k', 'dso.version': '2' })))).code,
    ).to.equal('ERR_LABELS');
  });

  it('applies the policy again to the final API path: a CLI path on a KV v1 mount is refused before any read', async () => {
    const { driver, calls } = driverFor({
      mount: { path: 'secret/', type: 'kv', kvVersion: 1 },
      policy: ['secret/data/app/*'],
      answers: { 'secret/app/db': { data: { password: PASSWORD } } },
    });
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
    expect((await rejected(driver.getSecret(req({ 'dso.ref': 'dso://database/creds/app#password' })))).code).to.equal(
      'ERR_UNSUPPORTED',
    );
  });

  describe('leased (dynamic) secrets', () => {
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
      const result = await driver.getSecret(
        req({ 'dso.ref': 'dso://database/creds/app#username', 'dso.reuse': 'true' }),
      );
      expect(result.doNotReuse).to.equal(false);
      expect(leasedReads[0].owner).to.deep.equal({ kind: 'service', id: 'svc-1' });
    });
  });

  it('stops once the request is aborted (deadline passed)', async () => {
    const { driver, calls } = driverFor({ mount: kv2, answers: { 'secret/data/app/db': v2answer } });
    const controller = new AbortController();
    controller.abort(new DsoError('ERR_TIMEOUT', 'deadline'));
    const err = await rejected(
      driver.getSecret(req({ 'dso.ref': 'dso://secret/data/app/db#password' }), controller.signal),
    );
    expect(err.code).to.equal('ERR_TIMEOUT');
    expect(calls).to.have.length(0);
  });
});

describe('VaultSecretDriver: no shareable answer when the answer depends on who asks', () => {
  const kvAnswers = { 'secret/data/shop/cfg': v2answer, 'secret/data/web/cfg': v2answer };

  it('keeps a KV answer shareable when neither the path nor the policy uses the requester', async () => {
    const { driver } = driverFor({ mount: kv2, policy: ['secret/data/*', 'x/{secret}/*'], answers: kvAnswers });
    const result = await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/shop/cfg#password' }));
    expect(result.doNotReuse).to.equal(false);
  });

  for (const pattern of ['secret/data/{stack}/*', 'secret/data/{service}/*', 'x/{task}', 'y/{node}/*']) {
    it(`answers DoNotReuse=true for every secret when DSO_ALLOWED_PATHS has ${pattern}`, async () => {
      const { driver } = driverFor({ mount: kv2, policy: [pattern, 'secret/data/*'], answers: kvAnswers });
      const result = await driver.getSecret(
        req(
          { 'dso.ref': 'dso://secret/data/shop/cfg#password' },
          { ServiceLabels: { 'com.docker.stack.namespace': 'shop' } },
        ),
      );
      expect(result.doNotReuse).to.equal(true);
    });
  }

  it('answers DoNotReuse=true when the reference uses {service}, and false for {secret} alone (one secret, one name)', async () => {
    const { driver } = driverFor({ mount: kv2, answers: { ...kvAnswers, 'secret/data/db_password/cfg': v2answer } });
    expect(
      (await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/{service}/cfg#password' }))).doNotReuse,
    ).to.equal(true);
    expect((await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/{secret}/cfg#password' }))).doNotReuse).to.equal(
      false,
    );
  });

  it('answers DoNotReuse=true when DSO_PATH_TEMPLATE uses {stack}', async () => {
    const { driver } = driverFor({ mount: kv2, answers: kvAnswers, pathTemplate: 'secret/data/{stack}/cfg#password' });
    const result = await driver.getSecret(req({}, { ServiceLabels: { 'com.docker.stack.namespace': 'shop' } }));
    expect(result.doNotReuse).to.equal(true);
  });

  it('answers DoNotReuse=true when a parameter uses {service}, and gives the lease to the task despite dso.reuse=true', async () => {
    const pki: MountInfo = { path: 'pki/', type: 'pki' };
    const { driver, leasedReads } = driverFor({ mount: pki, leased: lease });
    const result = await driver.getSecret(
      req({ 'dso.ref': 'dso://pki/issue/web?common_name={service}.example.com#username', 'dso.reuse': 'true' }),
    );
    expect(result.doNotReuse).to.equal(true);
    expect(leasedReads[0].owner).to.deep.equal({ kind: 'task', id: 'task-1' });
  });

  it('answers DoNotReuse=true when DSO_ALLOWED_WRITES has {stack}', async () => {
    const { driver } = driverFor({ mount: kv2, answers: kvAnswers, writes: 'transit/encrypt/{stack}?plaintext' });
    expect((await driver.getSecret(req({ 'dso.ref': 'dso://secret/data/shop/cfg#password' }))).doNotReuse).to.equal(
      true,
    );
  });

  it('overrides dso.reuse=true, saying why once per secret in the log', async () => {
    const { logger, records } = capturingLogger();
    const { driver } = driverFor({ mount: kv2, policy: ['secret/data/{stack}/*'], answers: kvAnswers, logger });
    const shop = { ServiceLabels: { 'com.docker.stack.namespace': 'shop' } };
    for (let i = 0; i < 3; i++) {
      const result = await driver.getSecret(
        req({ 'dso.ref': 'dso://secret/data/shop/cfg#password', 'dso.reuse': 'true' }, shop),
      );
      expect(result.doNotReuse).to.equal(true);
    }
    await driver.getSecret(
      req({ 'dso.ref': 'dso://secret/data/shop/cfg#password', 'dso.reuse': 'true' }, { ...shop, SecretName: 'other' }),
    );
    const warnings = records().filter((r) => String(r.message).startsWith('dso.reuse=true overridden'));
    expect(warnings.map((w) => w.secret)).to.deep.equal(['db_password', 'other']);
    expect(String(warnings[0].reason)).to.include('{stack} in DSO_ALLOWED_PATHS');
  });
});

describe('VaultSecretDriver: writes only where allowed', () => {
  const pki: MountInfo = { path: 'pki/', type: 'pki' };
  const ssh: MountInfo = { path: 'ssh-client/', type: 'ssh' };
  const transit: MountInfo = { path: 'transit/', type: 'transit' };
  const issued = (apiPath: string): SecretRead => ({
    apiPath,
    data: { certificate: 'CERT', signed_key: 'KEY', ciphertext: 'vault:v1:x', username: 'u' },
    leased: true,
  });

  it('writes to a PKI issue path with certificate parameters, and to an SSH sign path', async () => {
    const a = driverFor({ mount: pki, leased: issued });
    await a.driver.getSecret(
      req({ 'dso.ref': 'dso://pki/issue/web?common_name=web.example.com&alt_names=a.example.com&ttl=1h#certificate' }),
    );
    await a.driver.getSecret(req({ 'dso.ref': 'dso://pki/issue/web#certificate' }));
    expect(a.leasedReads.map((r) => r.write)).to.deep.equal([true, true]);
    const b = driverFor({ mount: ssh, leased: issued });
    await b.driver.getSecret(
      req({ 'dso.ref': 'dso://ssh-client/sign/ops?public_key=ssh-ed25519%20AAAA&valid_principals=ops#signed_key' }),
    );
    expect(b.leasedReads[0]).to.include({ apiPath: 'ssh-client/sign/ops', write: true });
  });

  it('reads (GET) a leased path without a query string', async () => {
    const { driver, leasedReads } = driverFor({ mount: db, leased: issued });
    await driver.getSecret(req({ 'dso.ref': 'dso://database/creds/app#username' }));
    expect(leasedReads[0].write).to.equal(undefined);
  });

  const refusals: Array<[string, MountInfo, string, RegExp]> = [
    [
      'a parameter PKI issue does not take by default',
      pki,
      'dso://pki/issue/web?common_name=a.example.com&not_after=9999-12-31T23:59:59Z#certificate',
      /not_after.*DSO_ALLOWED_WRITES/,
    ],
    [
      'pki sign-verbatim (ignores the role)',
      pki,
      'dso://pki/sign-verbatim/web?csr=x#certificate',
      /DSO_ALLOWED_WRITES/,
    ],
    [
      'a PKI root rotation dressed as a read',
      pki,
      'dso://pki/root/rotate/internal?common_name=x#certificate',
      /add pki\/root\/rotate\/internal\?common_name to DSO_ALLOWED_WRITES/,
    ],
    [
      'SSH sign with extensions',
      ssh,
      'dso://ssh-client/sign/ops?public_key=k&extensions=permit-pty#signed_key',
      /extensions/,
    ],
    ['a transit decrypt', transit, 'dso://transit/decrypt/app?ciphertext=vault:v1:abc#plaintext', /DSO_ALLOWED_WRITES/],
    ['a database root rotation', db, 'dso://database/rotate-root/pg?x=1#username', /DSO_ALLOWED_WRITES/],
    [
      'a query string on a KV path',
      kv2,
      'dso://secret/data/app/db?password=new#password',
      /KV secret, which DSO only reads/,
    ],
  ];
  for (const [what, mount, ref, message] of refusals) {
    it(`refuses ${what} before Vault sees the write (ERR_WRITE_REFUSED naming the setting)`, async () => {
      const { driver, leasedReads, calls } = driverFor({
        mount,
        leased: issued,
        answers: { 'secret/data/app/db': v2answer },
      });
      const err = await rejected(driver.getSecret(req({ 'dso.ref': ref })));
      expect(err.code).to.equal('ERR_WRITE_REFUSED');
      expect(err.message).to.match(message);
      expect(leasedReads).to.have.length(0);
      expect(calls).to.have.length(0);
    });
  }

  it('allows a write DSO_ALLOWED_WRITES names, with only the parameters it lists', async () => {
    const { driver, leasedReads } = driverFor({
      mount: transit,
      leased: issued,
      writes: 'transit/encrypt/app?plaintext,context; pki/issue/*?not_after',
    });
    await driver.getSecret(req({ 'dso.ref': 'dso://transit/encrypt/app?plaintext=aGk=#ciphertext' }));
    expect(leasedReads[0]).to.include({ apiPath: 'transit/encrypt/app', write: true });
    const err = await rejected(
      driver.getSecret(req({ 'dso.ref': 'dso://transit/encrypt/app?plaintext=aGk=&key_version=1#ciphertext' })),
    );
    expect(err.code).to.equal('ERR_WRITE_REFUSED');
    expect(
      (await rejected(driver.getSecret(req({ 'dso.ref': 'dso://transit/encrypt/other?plaintext=aGk=#ciphertext' }))))
        .code,
    ).to.equal('ERR_WRITE_REFUSED');
  });

  it('decides by the mount type Vault reports, not by the path: an "issue" path on a KV-like mount is no PKI issue', async () => {
    const fake: MountInfo = { path: 'pki/', type: 'transit' };
    const { driver, leasedReads } = driverFor({ mount: fake, leased: issued });
    expect(
      (await rejected(driver.getSecret(req({ 'dso.ref': 'dso://pki/issue/web?common_name=x#certificate' })))).code,
    ).to.equal('ERR_WRITE_REFUSED');
    expect(leasedReads).to.have.length(0);
  });
});

describe("VaultSecretDriver: Vault's own machinery is never reachable", () => {
  const any = (apiPath: string): SecretRead => ({ apiPath, data: { secret_id: 'x' }, leased: true });
  const cases: Array<[string, MountInfo]> = [
    ['team-a/auth/approle/role/x/secret-id?metadata=x#secret_id', { path: 'team-a/auth/approle/', type: 'approle' }],
    // Auth methods whose type is also a secrets engine's: told apart by Vault's auth_ accessor / auth/ path.
    ['team-a/auth/kubernetes/role/x#token', { path: 'team-a/auth/kubernetes/', type: 'kubernetes', authMethod: true }],
    ['team-a/auth/aws/role/x#token', { path: 'team-a/auth/aws/', type: 'aws', authMethod: true }],
    ['team-a/auth/token/lookup-self#id', { path: 'team-a/auth/token/', type: 'ns_token' }],
    ['team-a/sys/mounts#x', { path: 'team-a/sys/', type: 'ns_system' }],
    ['team-a/cubbyhole/x#x', { path: 'team-a/cubbyhole/', type: 'ns_cubbyhole' }],
    ['team-a/identity/entity/id#x', { path: 'team-a/identity/', type: 'ns_identity' }],
    ['cubbyhole/x#x', { path: 'cubbyhole/', type: 'cubbyhole' }],
    ['identity/entity/id#x', { path: 'identity/', type: 'identity' }],
    ['custom/creds/x#x', { path: 'custom/', type: 'vault-plugin-secrets-unknown' }],
    // A mount that does not contain the requested path (OpenBao answers "token/" for auth/token/...).
    ['team-a/x/creds/y#x', { path: 'token/', type: 'database' }],
    ['team-a/x/creds/y#x', { path: 'team-a/x/creds/y/z/', type: 'database' }],
  ];
  for (const [ref, mount] of cases) {
    it(`refuses dso://${ref} (mount ${mount.path}, type ${mount.type}) before any read or write`, async () => {
      const { driver, leasedReads, calls } = driverFor({ mount, leased: any, writes: 'team-a/*?metadata' });
      const err = await rejected(driver.getSecret(req({ 'dso.ref': `dso://${ref}` })));
      expect(err.code).to.equal('ERR_PATH_REFUSED');
      expect(leasedReads).to.have.length(0);
      expect(calls).to.have.length(0);
    });
  }

  it('serves a secrets engine inside a namespace', async () => {
    const { driver, leasedReads } = driverFor({ mount: { path: 'team-a/database/', type: 'database' }, leased: any });
    await driver.getSecret(req({ 'dso.ref': 'dso://team-a/database/creds/app#secret_id' }));
    expect(leasedReads[0].apiPath).to.equal('team-a/database/creds/app');
  });
});

describe('leaseOwner', () => {
  it('is the task by default, the service with reuse, none without IDs', () => {
    expect(leaseOwner({ TaskID: 't', TaskName: 'n', ServiceID: 's' }, undefined)).to.deep.equal({
      kind: 'task',
      id: 't',
    });
    expect(leaseOwner({ TaskName: 'n' }, false)).to.deep.equal({ kind: 'task', id: 'n' });
    expect(leaseOwner({ TaskID: 't', ServiceID: 's', ServiceName: 'web' }, true)).to.deep.equal({
      kind: 'service',
      id: 's',
    });
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
