// Rotation end to end in a real swarm, with start-first services and one plugin shared by
// every case: a change written within 2 s of the tasks starting is rolled within two
// intervals (the baseline is what tasks hold, not what the watcher first saw); a roll does
// not repeat; a change written while the plugin is disabled is rolled within two intervals
// of enabling it, and rotation keeps working after; look-alike services and services with
// rotation off are left alone; `test-vault` on a database path leaves no PostgreSQL role;
// a leased secret is rolled before its max TTL, and at once after a plugin restart (its
// lease is one the new process never issued and cannot renew).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PluginClient } from '../../src/cli/plugin-client';
import { secret } from '../support/capture';
import { OpenBao, policyToken, startOpenBao, workDir } from '../support/openbao';
import { configureDatabaseEngine, Postgres, sharedPostgres } from '../support/postgres';
import {
  createTokenPlugin,
  docker,
  driverSecretArgs,
  engineReady,
  pluginGet,
  pluginSocket,
  readInContainer,
  removeTokenPlugin,
  serviceContainers,
  serviceCreateArgs,
  sleep,
  waitFor,
} from './docker';
import { dynamicPolicy, staticReadPolicy } from '../support/policies';

const PREFIX = 'dsorot';
const PLUGIN = 'dso-e2e-rot';
const INTERVAL_MS = 3_000;
/** "Within two intervals", plus what polling `docker service inspect` every 0.5 s adds. */
const TWO_INTERVALS = 2 * INTERVAL_MS + 1_000;
const ETC_DSO = path.join(workDir, 'e2e-rot', 'etc-dso');
const APP = `${PREFIX}-app`;
const APP_FILE = `/run/secrets/${PREFIX}-app-v`;

async function runningTaskIds(service: string): Promise<string[]> {
  const out = await docker([
    'service',
    'ps',
    service,
    '--filter',
    'desired-state=running',
    '--no-trunc',
    '--format',
    '{{.ID}} {{.CurrentState}}',
  ]);
  return out
    .split('\n')
    .filter((l) => l.includes('Running'))
    .map((l) => l.split(' ')[0])
    .sort();
}

async function forceUpdate(service: string): Promise<number> {
  return Number(await docker(['service', 'inspect', service, '--format', '{{.Spec.TaskTemplate.ForceUpdate}}']));
}

/** Waits until `service`'s ForceUpdate passes `before`; returns the ms it took from `since`. */
async function rolledWithin(service: string, before: number, since: number, timeoutMs: number): Promise<number> {
  await waitFor(`${service} to be rolled`, timeoutMs, async () =>
    (await forceUpdate(service)) > before ? true : undefined,
  );
  return Date.now() - since;
}

/** Waits until exactly `replicas` containers of `service` run and all hold `value`. */
async function allRead(
  service: string,
  file: string,
  value: string,
  replicas: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(`${replicas} tasks of ${service} reading the expected value`, timeoutMs, async () => {
    const ids = await serviceContainers(service);
    if (ids.length !== replicas) return undefined;
    for (const id of ids) {
      const read = await readInContainer(id, file).catch(() => undefined);
      if (read?.toString() !== value) return undefined;
    }
    return true;
  });
}

function createService(name: string, secretName: string, replicas: number): Promise<string> {
  return docker(
    serviceCreateArgs(name, [secretName], ['--update-order', 'start-first', '--replicas', String(replicas)]),
  );
}

/** disable -f then enable, as an operator restarting or upgrading the plugin; returns when enabled. */
async function restartPlugin(between?: () => Promise<unknown>): Promise<number> {
  await docker(['plugin', 'disable', '-f', PLUGIN], { timeoutMs: 60_000 });
  await between?.();
  await docker(['plugin', 'enable', PLUGIN], { timeoutMs: 60_000 });
  const enabled = Date.now();
  const { socket } = await pluginSocket(PLUGIN);
  await waitFor('the plugin socket', 30_000, async () => (fs.existsSync(socket) ? true : undefined));
  return enabled;
}

describe('e2e: rotation in a real swarm', function () {
  this.timeout(300_000);
  let bao: OpenBao;
  let pg: Postgres;
  const v = (n: number) => secret(`rotation-value-v${n}-${process.pid}`);
  const write = (n: number) => bao.api('POST', 'secret/data/rot/app', { data: { v: v(n) } });

  before(async function () {
    this.timeout(600_000);
    await engineReady(PREFIX);
    bao = await startOpenBao({ audit: false });
    await write(1);
    await bao.api('POST', 'secret/data/rot/other', { data: { v: 'other' } });
    pg = sharedPostgres();
    await configureDatabaseEngine(bao.api, pg, { role: 'rot', defaultTtl: '9s', maxTtl: '30s' });
    await configureDatabaseEngine(bao.api, pg, { role: 'rotprobe', defaultTtl: '1h', maxTtl: '2h' });
    const token = await policyToken(
      bao,
      'dso-e2e-rot',
      [staticReadPolicy('secret/data/rot/*'), dynamicPolicy(['database/creds/rot', 'database/creds/rotprobe'])].join(
        '\n',
      ),
      '2h',
    );
    await createTokenPlugin(PLUGIN, ETC_DSO, token, bao.addr, [`DSO_ROTATE_INTERVAL=${INTERVAL_MS}ms`]);

    const mk = (name: string, labels: string[]) => docker(driverSecretArgs(PLUGIN, name, labels));
    await mk(`${PREFIX}-app-v`, ['dso.ref=dso://secret/data/rot/app#v', 'dso.rotate=true']);
    await mk(`${PREFIX}-app-v-off`, ['dso.ref=dso://secret/data/rot/app#v', 'dso.rotate=false']);
    await mk(`${PREFIX}-other`, ['dso.ref=dso://secret/data/rot/other#v', 'dso.rotate=true']);
    await createService(`${PREFIX}-app-2`, `${PREFIX}-other`, 1);
    await createService(`${PREFIX}-off`, `${PREFIX}-app-v-off`, 1);
    await allRead(`${PREFIX}-off`, `/run/secrets/${PREFIX}-app-v-off`, v(1), 1, 120_000);
    await waitFor('the look-alike service running', 120_000, async () =>
      (await serviceContainers(`${PREFIX}-app-2`)).length === 1 ? true : undefined,
    );
  });

  after(async function () {
    this.timeout(180_000);
    await removeTokenPlugin(PLUGIN, ETC_DSO, PREFIX);
    if (bao) await bao.stop();
  });

  it('(1) rolls a change written within 2 s of the tasks starting, within two intervals', async () => {
    await createService(APP, `${PREFIX}-app-v`, 2);
    await allRead(APP, APP_FILE, v(1), 2, 120_000);
    const started = Date.now();
    const before = await forceUpdate(APP);
    await write(2);
    const written = Date.now();
    expect(written - started, 'the change lands right after the tasks start').to.be.below(2_000);
    const took = await rolledWithin(APP, before, written, TWO_INTERVALS + 5_000);
    console.log(`      (rolled ${took} ms after the write; interval ${INTERVAL_MS} ms)`);
    expect(took).to.be.below(TWO_INTERVALS);
    await allRead(APP, APP_FILE, v(2), 2, 90_000);

    // The watcher's health, as `docker dso system info` shows it.
    const status = await pluginGet((await pluginSocket(PLUGIN)).socket, '/DSO.Status');
    expect(status.rotation).to.include({ leader: true });
    expect(status.rotation.driverNames).to.include(PLUGIN);
    expect(status.rotation.lastPass.outcome).to.equal('ok');
  });

  it('(3) does not roll again for 5 intervals after a roll, and leaves look-alike and rotation-off services alone', async () => {
    const lookAlike = await runningTaskIds(`${PREFIX}-app-2`);
    const off = await runningTaskIds(`${PREFIX}-off`);
    const after = await forceUpdate(APP);
    const tasks = await runningTaskIds(APP);
    await sleep(5 * INTERVAL_MS);
    expect(await forceUpdate(APP), 'no roll loop').to.equal(after);
    expect(await runningTaskIds(APP)).to.deep.equal(tasks);
    expect(await runningTaskIds(`${PREFIX}-app-2`), 'the look-alike service keeps its tasks').to.deep.equal(lookAlike);
    expect(await runningTaskIds(`${PREFIX}-off`), 'rotation off: tasks untouched').to.deep.equal(off);
    const offContainer = (await serviceContainers(`${PREFIX}-off`))[0];
    expect(
      (await readInContainer(offContainer, `/run/secrets/${PREFIX}-app-v-off`)).toString() === v(1),
      'rotation off keeps v1',
    ).to.equal(true);
  });

  it('(2) rolls a change written while the plugin is disabled within two intervals of enabling it', async () => {
    const before = await forceUpdate(APP);
    const enabled = await restartPlugin(() => write(3));
    const took = await rolledWithin(APP, before, enabled, TWO_INTERVALS + 5_000);
    console.log(`      (rolled ${took} ms after enabling the plugin)`);
    expect(took).to.be.below(TWO_INTERVALS);
    await allRead(APP, APP_FILE, v(3), 2, 90_000);
  });

  it('(4) keeps rotating after disable/enable: the next change is rolled within two intervals', async () => {
    const before = await forceUpdate(APP);
    await write(4);
    const written = Date.now();
    expect(await rolledWithin(APP, before, written, TWO_INTERVALS + 5_000)).to.be.below(TWO_INTERVALS);
    await allRead(APP, APP_FILE, v(4), 2, 90_000);
    expect(await forceUpdate(APP), 'one roll for one change').to.equal(before + 1);
  });

  it('(5) test-vault on a database path revokes its lease at once: no PostgreSQL role is left behind', async () => {
    const before = await pg.roles('dso_rotprobe_%');
    // The exact call `docker dso system test-vault --path ...` makes on the plugin's socket.
    const result = await new PluginClient((await pluginSocket(PLUGIN)).socket, PLUGIN).testVault(
      'dso://database/creds/rotprobe#username',
    );
    expect(result, JSON.stringify(result)).to.include({ ok: true });
    expect(result.read).to.include({ path: 'database/creds/rotprobe', leaseRevoked: true });
    expect(await pg.roles('dso_rotprobe_%'), 'the test read made a role and dropped it').to.deep.equal(before);
  });

  it('rolls a leased secret before its max TTL, and at once after a restart (a lease the new process cannot renew)', async () => {
    const service = `${PREFIX}-db`;
    await docker(
      driverSecretArgs(PLUGIN, `${PREFIX}-db-user`, ['dso.ref=dso://database/creds/rot#username', 'dso.rotate=true']),
    );
    await createService(service, `${PREFIX}-db-user`, 1);
    const first = await waitFor('the database task', 60_000, async () => (await serviceContainers(service))[0]);
    const started = Date.now();
    const user1 = (await readInContainer(first, `/run/secrets/${PREFIX}-db-user`)).toString();
    // max_ttl is 30 s: renewals (every ~6 s) learn of the end about 6 s before it, and the
    // service must be rolled right then, not at the next rotation pass.
    await waitFor('a roll before max TTL', 30_000, async () => ((await forceUpdate(service)) > 0 ? true : undefined));
    const rolledAfter = Date.now() - started;
    console.log(`      (rolled ${rolledAfter} ms after the task started; max TTL 30 s)`);
    expect(rolledAfter).to.be.below(30_000);
    const fresh = async (not: string[]) =>
      waitFor('a new task with new credentials', 60_000, async () => {
        const ids = await serviceContainers(service);
        if (ids.length !== 1 || not.includes(ids[0])) return undefined;
        const user = (
          await readInContainer(ids[0], `/run/secrets/${PREFIX}-db-user`).catch(() => Buffer.from(''))
        ).toString();
        return user && user !== user1 ? { id: ids[0], user } : undefined;
      });
    const second = await fresh([first]);
    expect(second.user).to.match(/^dso_rot_/);

    // The restarted plugin never issued this task's lease: nobody renews it (TTL 9 s), so
    // the service is rolled at the first pass.
    const before = await forceUpdate(service);
    const enabled = await restartPlugin();
    const took = await rolledWithin(service, before, enabled, TWO_INTERVALS + 5_000);
    console.log(`      (rolled ${took} ms after enabling the plugin)`);
    expect(took).to.be.below(TWO_INTERVALS);
    const third = await fresh([first, second.id]);
    expect(third.user)
      .to.match(/^dso_rot_/)
      .and.not.equal(second.user);
  });
});
