// Several Vault addresses: two real OpenBao servers holding the same data. The first is
// down, killed mid-run, or sealed, and every request is still answered correctly; a
// redirecting front is followed; the audit log shows which workload asked.
import { expect } from 'chai';
import * as http from 'node:http';
import { secret } from '../support/capture';
import { freePort, OpenBao, sharedOpenBao, startOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';

const VALUE = secret('failover-canary-value-5d2e08');
const ROOT = secret('failover-shared-root-token');

describe('failover across VAULT_ADDR', function () {
  this.timeout(60_000);
  let first: OpenBao;
  let second: OpenBao;
  const plugins: TestPlugin[] = [];
  const request = (i = 0) => ({
    SecretName: 'k',
    ServiceName: 'svc',
    TaskName: `svc.${i}`,
    SecretLabels: { 'dso.ref': 'dso://secret/data/failover/app#key' },
  });
  const start = (addresses: string[]) => {
    const plugin = startTestPlugin({
      VAULT_ADDR: addresses.join(','),
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('failover-token', ROOT),
      DSO_TIMEOUT: '5s',
    });
    plugins.push(plugin);
    return plugin;
  };
  const seed = (bao: OpenBao) => bao.api('POST', 'secret/data/failover/app', { data: { key: VALUE } });
  const active = (plugin: TestPlugin) => (plugin.plugin.describe().vault as { activeAddress: string }).activeAddress;

  before(async () => {
    // Same root token id on both: the same token file works on either, as on a real HA cluster.
    first = await startOpenBao({ rootToken: ROOT, audit: false });
    second = await startOpenBao({ rootToken: ROOT, audit: false });
    await seed(first);
    await seed(second);
  });

  after(async () => {
    plugins.forEach((p) => p.stop());
    await first?.stop();
    await second?.stop();
  });

  it('serves from the second address when the first is down', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const plugin = start([dead, second.addr]);
    const { value, reply } = await plugin.get(request());
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
    expect(active(plugin)).to.equal(second.addr);
    expect(plugin.logs.some((l) => l.includes('switched Vault address'))).to.equal(true);
  });

  it('keeps serving under load while the first address is killed mid-run', async () => {
    const plugin = start([first.addr, second.addr]);
    expect((await plugin.get(request())).reply.Err).to.equal('');
    const errors: string[] = [];
    let served = 0;
    const end = Date.now() + 3_000;
    const worker = async (n: number) => {
      while (Date.now() < end) {
        const { value, reply } = await plugin.get(request(n));
        if (reply.Err || value?.toString() !== VALUE) errors.push(reply.Err || 'wrong value');
        else served++;
      }
    };
    const killer = new Promise<void>((resolve) => setTimeout(() => void first.stop().then(resolve), 1_000));
    await Promise.all([...Array.from({ length: 8 }, (_, n) => worker(n)), killer]);
    expect(errors, 'every request answered correctly').to.deep.equal([]);
    expect(served).to.be.greaterThan(50);
    expect(active(plugin)).to.equal(second.addr);
    await first.start();
    await seed(first);
  });

  it('moves on from a sealed first address', async () => {
    const plugin = start([first.addr, second.addr]);
    expect((await plugin.get(request())).reply.Err).to.equal('');
    expect(active(plugin)).to.equal(first.addr);
    await first.api('PUT', 'sys/seal');
    const { value, reply } = await plugin.get(request(1));
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
    expect(active(plugin)).to.equal(second.addr);
  });

  it('follows a 307 redirect from a front that is not Vault', async () => {
    const redirects: string[] = [];
    const front = http.createServer((req, res) => {
      redirects.push(req.url ?? '');
      res.writeHead(307, { Location: `${second.addr}${req.url}` }).end();
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    try {
      const plugin = start([`http://127.0.0.1:${(front.address() as { port: number }).port}`]);
      const { value, reply } = await plugin.get(request());
      expect(reply.Err).to.equal('');
      expect(value!.toString()).to.equal(VALUE);
      expect(redirects.some((u) => u.startsWith('/v1/secret/data/failover/app'))).to.equal(true);
    } finally {
      front.close();
    }
  });

  it('gives up with a clear Err within DSO_TIMEOUT when every address is down', async () => {
    const plugin = start([`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`]);
    const started = Date.now();
    const { reply } = await plugin.get(request());
    expect(reply.Err).to.match(/unreachable: connection refused/);
    expect(Date.now() - started).to.be.below(5_000);
  });
});

describe("audit context in Vault's audit log", function () {
  this.timeout(30_000);
  it('shows the service, task and secret of a GetSecret', async () => {
    const bao = await sharedOpenBao();
    for (const header of ['X-DSO-Service', 'X-DSO-Task', 'X-DSO-Secret']) {
      await bao.api('PUT', `sys/config/auditing/request-headers/${header}`, { hmac: false });
    }
    await bao.api('POST', 'secret/data/audit/app', { data: { key: VALUE } });
    const plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('audit-token', secret(bao.rootToken)),
    });
    try {
      const { reply } = await plugin.get({
        SecretName: 'audited_secret',
        ServiceName: 'audited-web',
        TaskName: 'audited-web.1.q8r7',
        SecretLabels: { 'dso.ref': 'dso://secret/data/audit/app#key' },
      });
      expect(reply.Err).to.equal('');
      const entry = bao
        .auditEntries()
        .find(
          (e) =>
            e.type === 'request' &&
            e.request?.path === 'secret/data/audit/app' &&
            e.request?.headers?.['x-dso-service'],
        );
      expect(entry, 'an audited read with the DSO headers').to.not.equal(undefined);
      expect(entry!.request!.headers).to.deep.include({
        'x-dso-service': ['audited-web'],
        'x-dso-task': ['audited-web.1.q8r7'],
        'x-dso-secret': ['audited_secret'],
      });
    } finally {
      plugin.stop();
    }
  });
});
