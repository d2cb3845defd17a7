// Rotation end to end in a real swarm: a new KV version reaches every task of the services
// that use the secret through a rolling update; look-alike services and services with
// rotation off are left alone; it still works after a plugin restart; a leased secret is
// rolled before its max TTL.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, startOpenBao, workDir } from '../support/openbao';
import { configureDatabaseEngine, sharedPostgres } from '../support/postgres';
import { createTokenPlugin, docker, engineReady, pluginSocket, readInContainer, removeTokenPlugin, waitFor } from './docker';
import { dynamicPolicy, staticReadPolicy } from '../support/policies';

const PREFIX = 'dsorot';
const PLUGIN = 'dso-e2e-rot';
const IMAGE = 'dso-busybox:latest';
const INTERVAL_MS = 3_000;
const ETC_DSO = path.join(workDir, 'e2e-rot', 'etc-dso');

async function containers(service: string): Promise<string[]> {
  return (await docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).split('\n').filter(Boolean);
}

async function runningTaskIds(service: string): Promise<string[]> {
  const out = await docker(['service', 'ps', service, '--filter', 'desired-state=running', '--no-trunc', '--format', '{{.ID}} {{.CurrentState}}']);
  return out.split('\n').filter((l) => l.includes('Running')).map((l) => l.split(' ')[0]).sort();
}

async function forceUpdate(service: string): Promise<number> {
  return Number(await docker(['service', 'inspect', service, '--format', '{{.Spec.TaskTemplate.ForceUpdate}}']));
}

/** Waits until exactly `replicas` containers of `service` run and all hold `value`. */
async function allRead(service: string, file: string, value: string, replicas: number, timeoutMs: number): Promise<void> {
  await waitFor(`${replicas} tasks of ${service} reading the new value`, timeoutMs, async () => {
    const ids = await containers(service);
    if (ids.length !== replicas) return undefined;
    for (const id of ids) {
      const read = await readInContainer(id, file).catch(() => undefined);
      if (read?.toString() !== value) return undefined;
    }
    return true;
  });
}

describe('e2e: rotation in a real swarm', function () {
  this.timeout(300_000);
  let bao: OpenBao;
  const v = (n: number) => secret(`rotation-value-v${n}-${process.pid}`);
  const write = (n: number) => bao.api('POST', 'secret/data/rot/app', { data: { v: v(n) } });

  before(async function () {
    this.timeout(600_000);
    await engineReady(PREFIX);
    bao = await startOpenBao({ audit: false });
    await write(1);
    await bao.api('POST', 'secret/data/rot/other', { data: { v: 'other' } });
    const pg = sharedPostgres();
    await configureDatabaseEngine(bao.api, pg, { role: 'rot', defaultTtl: '9s', maxTtl: '30s' });
    await bao.api('PUT', 'sys/policies/acl/dso-e2e-rot', {
      policy: [staticReadPolicy('secret/data/rot/*'), dynamicPolicy(['database/creds/rot'])].join('\n'),
    });
    const token = secret((await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['dso-e2e-rot'], ttl: '2h' })).auth.client_token);
    await createTokenPlugin(PLUGIN, ETC_DSO, token, bao.addr, [`DSO_ROTATE_INTERVAL=${INTERVAL_MS}ms`]);

    const mk = (name: string, labels: string[]) => docker(['secret', 'create', '--driver', PLUGIN, ...labels.flatMap((l) => ['--label', l]), name]);
    await mk(`${PREFIX}-app-v`, ['dso.ref=dso://secret/data/rot/app#v', 'dso.rotate=true']);
    await mk(`${PREFIX}-app-v-off`, ['dso.ref=dso://secret/data/rot/app#v', 'dso.rotate=false']);
    await mk(`${PREFIX}-other`, ['dso.ref=dso://secret/data/rot/other#v', 'dso.rotate=true']);
    const svc = (name: string, secretName: string, replicas: number) =>
      docker([
        'service', 'create', '--detach', '--no-resolve-image', '--stop-grace-period', '1s', '--update-order', 'start-first',
        '--name', name, '--replicas', String(replicas), '--secret', secretName, IMAGE, 'sh', '-c', 'exec sleep 3600',
      ]);
    await svc(`${PREFIX}-app`, `${PREFIX}-app-v`, 2);
    await svc(`${PREFIX}-app-2`, `${PREFIX}-other`, 1);
    await svc(`${PREFIX}-off`, `${PREFIX}-app-v-off`, 1);
    await allRead(`${PREFIX}-app`, `/run/secrets/${PREFIX}-app-v`, v(1), 2, 120_000);
    await allRead(`${PREFIX}-off`, `/run/secrets/${PREFIX}-app-v-off`, v(1), 1, 120_000);
    await waitFor('the look-alike service running', 120_000, async () => ((await containers(`${PREFIX}-app-2`)).length === 1 ? true : undefined));
  });

  after(async function () {
    this.timeout(180_000);
    await removeTokenPlugin(PLUGIN, ETC_DSO, PREFIX);
    if (bao) await bao.stop();
  });

  it('rolls the service that uses a changed secret within two intervals, and only that one', async () => {
    const lookAlike = await runningTaskIds(`${PREFIX}-app-2`);
    const off = await runningTaskIds(`${PREFIX}-off`);
    const before = await forceUpdate(`${PREFIX}-app`);
    await new Promise((r) => setTimeout(r, INTERVAL_MS + 1_000)); // a check has seen v1
    await write(2);
    const written = Date.now();
    await waitFor('the service to be rolled', 2 * INTERVAL_MS + 3_000, async () => ((await forceUpdate(`${PREFIX}-app`)) > before ? true : undefined));
    expect(Date.now() - written).to.be.below(2 * INTERVAL_MS + 3_000);
    await allRead(`${PREFIX}-app`, `/run/secrets/${PREFIX}-app-v`, v(2), 2, 90_000);
    expect(await runningTaskIds(`${PREFIX}-app-2`), 'the look-alike service keeps its tasks').to.deep.equal(lookAlike);
    expect(await runningTaskIds(`${PREFIX}-off`), 'rotation off: tasks untouched').to.deep.equal(off);
    const offContainer = (await containers(`${PREFIX}-off`))[0];
    expect((await readInContainer(offContainer, `/run/secrets/${PREFIX}-app-v-off`)).toString() === v(1), 'rotation off keeps v1').to.equal(true);
  });

  it('still rolls after the plugin was restarted between two changes', async () => {
    await docker(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
    await docker(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
    const { socket } = await pluginSocket(PLUGIN);
    await waitFor('the plugin socket', 30_000, async () => (fs.existsSync(socket) ? true : undefined));
    const before = await forceUpdate(`${PREFIX}-app`);
    await new Promise((r) => setTimeout(r, INTERVAL_MS + 2_000)); // the new process takes its baseline
    await write(3);
    await waitFor('the service to be rolled again', 2 * INTERVAL_MS + 5_000, async () => ((await forceUpdate(`${PREFIX}-app`)) > before ? true : undefined));
    await allRead(`${PREFIX}-app`, `/run/secrets/${PREFIX}-app-v`, v(3), 2, 90_000);
  });

  it('rolls a service whose leased secret reaches its max TTL before it expires', async () => {
    const service = `${PREFIX}-db`;
    await docker(['secret', 'create', '--driver', PLUGIN, '--label', 'dso.ref=dso://database/creds/rot#username', '--label', 'dso.rotate=true', `${PREFIX}-db-user`]);
    await docker([
      'service', 'create', '--detach', '--no-resolve-image', '--stop-grace-period', '1s', '--update-order', 'start-first',
      '--name', service, '--secret', `${PREFIX}-db-user`, IMAGE, 'sh', '-c', 'exec sleep 3600',
    ]);
    const first = await waitFor('the database task', 60_000, async () => (await containers(service))[0]);
    const started = Date.now();
    const user1 = (await readInContainer(first, `/run/secrets/${PREFIX}-db-user`)).toString();
    // max_ttl is 30 s: renewals (every ~6 s) learn of the end about 6 s before it, and the
    // service must be rolled right then, not at the next rotation pass.
    await waitFor('a roll before max TTL', 30_000, async () => ((await forceUpdate(service)) > 0 ? true : undefined));
    const rolledAfter = Date.now() - started;
    console.log(`      (rolled ${rolledAfter} ms after the task started; max TTL 30 s)`);
    expect(rolledAfter).to.be.below(30_000);
    const second = await waitFor('a new task with new credentials', 60_000, async () => {
      const ids = await containers(service);
      if (ids.length !== 1 || ids[0] === first) return undefined;
      const user = (await readInContainer(ids[0], `/run/secrets/${PREFIX}-db-user`).catch(() => Buffer.from(''))).toString();
      return user && user !== user1 ? user : undefined;
    });
    expect(second).to.match(/^dso_rot_/);
  });
});
