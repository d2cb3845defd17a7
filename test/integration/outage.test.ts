// OpenBao goes away and comes back: every request gets a clear Err within DSO_TIMEOUT
// while it is gone, and the plugin recovers by itself, without a restart.
import { expect } from 'chai';
import { secret } from '../support/capture';
import { OpenBao, startOpenBao } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';

const VALUE = secret('outage-canary-value-8e21aa');

describe('OpenBao stopped and started again', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  let plugin: TestPlugin;
  const request = {
    SecretName: 'k',
    ServiceName: 'svc',
    SecretLabels: { 'dso.ref': 'dso://secret/data/outage/app#key' },
  };

  async function seed(): Promise<void> {
    await bao.api('POST', 'secret/data/outage/app', { data: { key: VALUE } });
  }

  before(async () => {
    bao = await startOpenBao({ audit: false });
    await seed();
    // Root, on purpose: a dev server keeps nothing in memory across the restart these tests
    // make but its root token id, so only that token works before and after it.
    plugin = startTestPlugin({
      VAULT_ADDR: bao.addr,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('outage-token', secret(bao.rootToken)),
      DSO_TIMEOUT: '2s',
    });
  });

  after(async () => {
    plugin?.stop();
    await bao?.stop();
  });

  it('serves while OpenBao is up', async () => {
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
  });

  it('answers with a clear Err within the deadline while OpenBao is down', async () => {
    await bao.stop();
    const started = Date.now();
    const { status, reply } = await plugin.get(request);
    const elapsed = Date.now() - started;
    expect(status).to.equal(500);
    expect(reply.Err)
      .to.match(/unreachable: connection refused/)
      .and.contain(bao.addr);
    expect(elapsed).to.be.below(2_000);
  });

  it('recovers without a restart once OpenBao is back', async () => {
    await bao.start();
    await seed();
    const { value, reply } = await plugin.get(request);
    expect(reply.Err).to.equal('');
    expect(value!.toString()).to.equal(VALUE);
  });

  it('answers within DSO_TIMEOUT when Vault accepts connections but never replies', async () => {
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const blackhole = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    const port = (blackhole.address() as import('node:net').AddressInfo).port;
    const stuck = startTestPlugin({
      VAULT_ADDR: `http://127.0.0.1:${port}`,
      VAULT_AUTH_METHOD: 'token',
      VAULT_TOKEN_FILE: credentialFile('stuck-token', secret(bao.rootToken)),
      DSO_TIMEOUT: '1500ms',
    });
    try {
      const started = Date.now();
      const { status, reply } = await stuck.get(request);
      const elapsed = Date.now() - started;
      expect(status).to.equal(500);
      expect(reply.Err).to.match(/DSO_TIMEOUT/);
      expect(elapsed).to.be.within(1_000, 1_500);
    } finally {
      stuck.stop();
      sockets.forEach((s) => s.destroy());
      blackhole.close();
    }
  });
});
