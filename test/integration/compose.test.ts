// The plugin's compose route (plain hosts) against a real OpenBao and PostgreSQL, without
// Docker: the plugin runs in this process with its runtime directory on /dev/shm (a tmpfs),
// so it writes the files there. Proves that compose projects go through the same policy
// ({stack} is the project), audit headers and leases (username and password of a service
// from one lease) as swarm tasks, and that the reply never carries a value.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { secret } from '../support/capture';
import { OpenBao, sharedOpenBao } from '../support/openbao';
import { startTestPlugin, TestPlugin, tokenLoginSettings } from '../support/plugin';
import { dynamicPolicy, staticReadPolicy } from '../support/policies';
import { configureDatabaseEngine, Postgres, sharedPostgres } from '../support/postgres';

const SHM = '/dev/shm';

describe('compose projects (plain hosts) through the plugin, real OpenBao and PostgreSQL', function () {
  this.timeout(60_000);
  let bao: OpenBao;
  let pg: Postgres;
  let plugin: TestPlugin;
  let runtime = '';
  const value = secret(`compose-integration-value-${process.pid}`);
  const other = secret(`compose-integration-other-${process.pid}`);

  const up = (project: string, secrets: Array<{ Name: string; Service: string; ref: string }>) =>
    request(plugin.app)
      .post('/DSO.ComposeUp')
      .send(
        Buffer.from(
          JSON.stringify({
            Project: project,
            Secrets: secrets.map((s) => ({ Name: s.Name, Service: s.Service, Labels: { 'dso.ref': s.ref } })),
          }),
        ),
      );

  before(async function () {
    if (!fs.existsSync(SHM) || fs.statfsSync(SHM).type !== 0x01021994) this.skip();
    pg = sharedPostgres();
    bao = await sharedOpenBao();
    await configureDatabaseEngine(bao.api, pg, { mount: 'composedb', role: 'app', defaultTtl: '1h', maxTtl: '2h' });
    await bao.api('POST', 'secret/data/shop/api', { data: { key: value } });
    await bao.api('POST', 'secret/data/other/api', { data: { key: other } });
    for (const header of ['X-DSO-Service', 'X-DSO-Task', 'X-DSO-Secret']) {
      await bao.api('PUT', `sys/config/auditing/request-headers/${header}`, { hmac: false });
    }
    runtime = fs.mkdtempSync(path.join(SHM, 'dso-compose-it-'));
    plugin = startTestPlugin({
      // Vault would allow secret/data/other: the refusal below is DSO_ALLOWED_PATHS's.
      ...(await tokenLoginSettings(
        bao,
        'dso-compose',
        [staticReadPolicy('secret/data/*'), dynamicPolicy(['composedb/creds/app'])].join('\n'),
      )),
      DSO_ALLOWED_PATHS: 'secret/data/{stack}/*,composedb/creds/app',
      DSO_SOCKET: path.join(runtime, 'dso.sock'),
      // No engine here: liveness is unknown, so leases are kept until down + reap.
      DSO_DOCKER_SOCKET: path.join(runtime, 'no-engine.sock'),
    });
  });

  after(async () => {
    plugin?.stop();
    // Without an engine the reaper cannot see the project gone: drop its database users here.
    await bao?.api('PUT', 'sys/leases/revoke-prefix/composedb/creds/app', {}).catch(() => undefined);
    if (runtime) fs.rmSync(runtime, { recursive: true, force: true });
  });

  it("writes the project's values to files on the tmpfs; a username and password of one service come from one lease", async () => {
    const res = await up('shop', [
      { Name: 'api_key', Service: 'web', ref: 'dso://secret/shop/api#key' },
      { Name: 'db_user', Service: 'web', ref: 'dso://composedb/creds/app#username' },
      { Name: 'db_password', Service: 'web', ref: 'dso://composedb/creds/app#password' },
    ]);
    expect(res.status, res.text).to.equal(200);
    expect(res.text.includes(value), 'the reply carries no value').to.equal(false);
    const dir = path.join(runtime, 'compose', 'shop');
    expect(fs.readFileSync(path.join(dir, 'api_key'), 'utf8') === value).to.equal(true);
    const user = fs.readFileSync(path.join(dir, 'db_user'), 'utf8');
    const password = secret(fs.readFileSync(path.join(dir, 'db_password'), 'utf8'));
    expect(await pg.canLogin(user, password), 'username and password belong together').to.equal(true);
    const leases = (plugin.plugin.describe().leases as { list: Array<{ owner: string; path: string }> }).list;
    expect(leases.filter((l) => l.owner === 'task:compose:shop/web#0')).to.have.length(1);

    const audited = bao
      .auditEntries()
      .find(
        (e) => e.type === 'request' && e.request?.path === 'secret/data/shop/api' && e.request?.headers?.['x-dso-task'],
      );
    expect(audited?.request?.headers).to.deep.include({
      'x-dso-service': ['web'],
      'x-dso-task': ['shop-web'],
      'x-dso-secret': ['api_key'],
    });
  });

  it('DSO_ALLOWED_PATHS with {stack}: a project reads only its own subtree, and nothing is left of a refused request', async () => {
    const res = await up('intruder', [{ Name: 'stolen', Service: 'web', ref: 'dso://secret/shop/api#key' }]);
    expect(res.status).to.equal(500);
    expect(JSON.parse(res.text)).to.include({ code: 'ERR_PATH_REFUSED' });
    expect(JSON.parse(res.text).Err).to.contain('secret stolen of service web').and.to.contain('DSO_ALLOWED_PATHS');
    expect(fs.existsSync(path.join(runtime, 'compose', 'intruder'))).to.equal(false);
  });

  it('down removes the files', async () => {
    const res = await request(plugin.app)
      .post('/DSO.ComposeDown')
      .send(Buffer.from(JSON.stringify({ Project: 'shop' })));
    expect(JSON.parse(res.text)).to.deep.equal({ Project: 'shop', Removed: 3 });
    expect(fs.existsSync(path.join(runtime, 'compose', 'shop'))).to.equal(false);
  });
});
