// Plain Docker hosts (no swarm), with fakes only: the compose rewrite to file-based secrets,
// the files the plugin writes (tmpfs only, 0400, rewritten in place, restart, off), fresh
// credentials before a lease's max TTL, the liveness of compose owners for the reaper, and
// the plugin's compose routes (validation; no value in any reply).
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import YAML from 'yaml';
import { DockerClient, RunOptions, RunResult } from '../../src/cli/docker';
import { PluginApi, PluginRouteError, PluginStatus } from '../../src/cli/plugin-client';
import type { LeaseSummary } from '../../src/vault/leases';
import { secret } from '../support/capture';
import { cliHarness } from '../support/cli';
import { fakeEngine } from './fakes';
import { parseCompose, planFileSecrets, transformCompose } from '../../src/cli/compose';
import { DsoError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { createApp } from '../../src/plugin/app';
import type { ComposeFetch, ComposeUpRequest } from '../../src/plugin/compose-protocol';
import type { DriverResult } from '../../src/resolve/driver';
import type { RequestFacts } from '../../src/resolve/resolver';
import { ComposeLiveness, composeOwnerId, PENDING_GRACE_MS } from '../../src/rotation/compose-liveness';
import type { DockerApi, DockerContainer } from '../../src/docker/api';
import { ComposeFiles, refreshMode } from '../../src/rotation/files';
import { StatusStore } from '../../src/status/store';

const GUIDE = `
name: shop
services:
  app:
    image: busybox
    user: "1000:1001"
    environment:
      API_KEY: dso://secret/app/config#api_key
      DB_USER: dso://database/creds/app#username
      DB_PASSWORD: dso://database/creds/app#password
      LOG_LEVEL: info
  worker:
    image: busybox
    environment:
      API_KEY: dso://secret/app/config#api_key
    secrets: [report_key, plain]
secrets:
  report_key:
    driver: dso
    labels: { dso.ref: "dso://secret/app/report#key", dso.rotate: restart }
  plain:
    file: ./plain.txt
`;

describe('plain host: compose file rewritten to file-based secrets', () => {
  const plan = () => planFileSecrets(transformCompose(parseCompose(GUIDE, 'compose.yaml'), { driver: 'dso' }), 'dso');

  it('one file per service and DSO secret, with the labels, and the owner from user:', () => {
    const files = plan().files;
    const byKey = Object.fromEntries(files.map((f) => [f.Name, f]));
    expect(files.map((f) => `${f.Service}:${f.Name}`).sort()).to.deep.equal([
      'app:app_api_key',
      'app:db_password',
      'app:db_user',
      'worker:report_key',
      'worker:worker_api_key',
    ]);
    expect(byKey.db_password.Labels).to.deep.equal({ 'dso.ref': 'dso://database/creds/app#password' });
    expect(byKey.report_key.Labels['dso.rotate']).to.equal('restart');
    expect(byKey.db_user).to.include({ Uid: 1000, Gid: 1001 });
    expect(byKey.report_key.Uid).to.equal(undefined);
  });

  it('mounts each file where the swarm transform mounts the secret, keeps <VAR>_FILE and other secrets', () => {
    const doc = plan().finish((key) => `/run/docker/plugins/ID/compose/shop/${key}`) as any;
    expect(doc.secrets.db_password).to.deep.equal({ file: '/run/docker/plugins/ID/compose/shop/db_password' });
    expect(doc.secrets.plain).to.deep.equal({ file: './plain.txt' });
    expect(doc.secrets.api_key, 'the shared swarm secret is split per service').to.equal(undefined);
    expect(doc.services.app.secrets).to.deep.include.members([
      { source: 'app_api_key', target: 'api_key' },
      'db_user',
      'db_password',
    ]);
    expect(doc.services.worker.secrets).to.deep.include.members([
      { source: 'worker_api_key', target: 'api_key' },
      'report_key',
      'plain',
    ]);
    expect(doc.services.app.environment).to.deep.include({
      API_KEY_FILE: '/run/secrets/api_key',
      DB_PASSWORD_FILE: '/run/secrets/db_password',
      LOG_LEVEL: 'info',
    });
    expect(JSON.stringify(doc)).not.to.contain('driver');
    expect(doc.version).to.equal(undefined);
  });

  it('dso.rotate on a plain host: in place by default, restart, or off', () => {
    expect(refreshMode({})).to.equal('in-place');
    expect(refreshMode({ 'dso.rotate': 'true' })).to.equal('in-place');
    expect(refreshMode({ 'dso.rotate': 'restart' })).to.equal('restart');
    expect(refreshMode({ 'dso.rotate': 'false' })).to.equal('off');
    expect(() => refreshMode({ 'dso.rotate': 'sometimes' }))
      .to.throw(DsoError)
      .with.property('code', 'ERR_LABELS');
  });
});

class FakeDockerApi {
  containers$: DockerContainer[] = [];
  restarted: string[] = [];
  failContainers = false;
  async containers(labels: string[]): Promise<DockerContainer[]> {
    if (this.failContainers) throw new DsoError('ERR_INTERNAL', 'engine down');
    return this.containers$.filter((c) => labels.every((l) => c.Labels?.[l.split('=')[0]] === l.split('=')[1]));
  }
  async restartContainer(id: string): Promise<void> {
    this.restarted.push(id);
  }
}

const container = (id: string, project: string, service: string, state = 'running'): DockerContainer => ({
  Id: id,
  State: state,
  Labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service },
});

describe('plain host: liveness of compose owners', () => {
  it('alive while a container of the project and service exists, or while up is pending; old generations are gone', async () => {
    const engine = new FakeDockerApi();
    let now = 1_000_000;
    const liveness = new ComposeLiveness(undefined, engine as unknown as DockerApi, () => now);
    const app0 = { kind: 'task' as const, id: composeOwnerId('shop', 'app', 0) };
    const worker = { kind: 'service' as const, id: composeOwnerId('shop', 'worker') };
    expect((await liveness.alive([app0]))?.get(`task:${app0.id}`), 'unknown project, no containers').to.equal(false);
    liveness.expect('shop');
    expect((await liveness.alive([app0]))?.get(`task:${app0.id}`), 'pending').to.equal(true);
    now += PENDING_GRACE_MS + 1;
    expect((await liveness.alive([app0]))?.get(`task:${app0.id}`), 'grace over').to.equal(false);
    engine.containers$ = [container('c1', 'shop', 'app'), container('c2', 'other', 'worker')];
    const answer = await liveness.alive([app0, worker]);
    expect(answer?.get(`task:${app0.id}`)).to.equal(true);
    expect(answer?.get(`service:${worker.id}`), 'a worker of another project does not count').to.equal(false);
    expect(liveness.nextGeneration('shop', 'app')).to.equal(1);
    expect((await liveness.alive([app0]))?.get(`task:${app0.id}`), 'a replaced generation is gone').to.equal(false);
    expect(
      (await liveness.alive([{ kind: 'task', id: composeOwnerId('shop', 'app', 1) }]))?.get(
        `task:${composeOwnerId('shop', 'app', 1)}`,
      ),
    ).to.equal(true);
  });

  it('passes swarm owners to the swarm liveness, and a swarm failure does not hide compose answers', async () => {
    const engine = new FakeDockerApi();
    engine.containers$ = [container('c1', 'shop', 'app')];
    const swarm = {
      alive: async () => {
        throw new DsoError('ERR_INTERNAL', 'not a swarm manager');
      },
    };
    const liveness = new ComposeLiveness(swarm, engine as unknown as DockerApi);
    const answer = await liveness.alive([
      { kind: 'task', id: 'swarmtask1' },
      { kind: 'task', id: composeOwnerId('shop', 'app', 0) },
    ]);
    expect(answer?.get('task:swarmtask1'), 'unknown, so kept').to.equal(undefined);
    expect(answer?.get(`task:${composeOwnerId('shop', 'app', 0)}`)).to.equal(true);
    let error: unknown;
    await liveness.alive([{ kind: 'task', id: 'swarmtask1' }]).catch((e) => (error = e));
    expect(error, 'swarm-only questions fail as before').to.be.instanceOf(DsoError);
  });
});

const VALUES: Record<string, string> = {
  'secret/app/config#api_key': secret('plainhost-unit-value-one-71c2'),
  'secret/app/report#key': secret('plainhost-unit-report-value-0d9e'),
};
const tempDirs: string[] = [];
after(() => {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

class FakeDriver {
  readonly requests: RequestFacts[] = [];
  values = { ...VALUES };
  fail?: string;
  async getSecret(req: RequestFacts): Promise<DriverResult> {
    this.requests.push(req);
    const ref = String(req.SecretLabels?.['dso.ref']).replace('dso://', '');
    if (this.fail === ref) throw new DsoError('ERR_PATH_REFUSED', `path ${ref} is not allowed by DSO_ALLOWED_PATHS`);
    const value = ref.startsWith('database/') ? `${ref}:${req.TaskID}` : this.values[ref];
    const leaseExpiresAt = ref.startsWith('database/') ? new Date(Date.now() + 3_600_000).toISOString() : undefined;
    return {
      value: Buffer.from(value),
      doNotReuse: true,
      source: { path: ref.split('#')[0], field: ref.split('#')[1], version: 1, leaseExpiresAt },
    };
  }
}

function filesSetup(tmpfs = true, now: () => number = Date.now) {
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-plainhost-unit-'));
  tempDirs.push(runtimeDir);
  const engine = new FakeDockerApi();
  const driver = new FakeDriver();
  const liveness = new ComposeLiveness(undefined, engine as unknown as DockerApi, now);
  const leases: LeaseSummary[] = [];
  const files = new ComposeFiles({
    driver,
    leases: { describe: () => leases },
    liveness,
    docker: engine,
    logger: silentLogger(),
    runtimeDir,
    intervalMs: 1_000,
    isTmpfs: () => tmpfs,
  });
  const fetches: ComposeFetch[] = [];
  const up = (secrets: Array<{ Name: string; Service: string; ref: string; rotate?: string; Uid?: number }>) =>
    files.up(
      {
        Project: 'shop',
        Secrets: secrets.map((s) => ({
          Name: s.Name,
          Service: s.Service,
          Labels: { 'dso.ref': `dso://${s.ref}`, ...(s.rotate ? { 'dso.rotate': s.rotate } : {}) },
          ...(s.Uid !== undefined ? { Uid: s.Uid } : {}),
        })),
      },
      (f) => fetches.push(f),
    );
  return {
    runtimeDir,
    engine,
    driver,
    liveness,
    leases,
    files,
    up,
    fetches,
    dir: path.join(runtimeDir, 'compose', 'shop'),
  };
}

describe('plain host: the plugin writes compose secret files', () => {
  it('writes each value 0400 under compose/<project>, with the request facts of a project service', async () => {
    const { files, up, dir, driver, fetches } = filesSetup();
    const reply = await up([
      { Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key', Uid: process.getuid?.() },
      { Name: 'db_user', Service: 'app', ref: 'database/creds/app#username' },
    ]);
    expect(reply.Files.map((f) => f.File)).to.deep.equal(['compose/shop/api_key', 'compose/shop/db_user']);
    expect(JSON.stringify(reply)).not.to.contain(VALUES['secret/app/config#api_key']);
    expect(fs.readFileSync(path.join(dir, 'api_key'), 'utf8')).to.equal(VALUES['secret/app/config#api_key']);
    expect(fs.statSync(path.join(dir, 'api_key')).mode & 0o777).to.equal(0o400);
    expect(driver.requests[0]).to.deep.include({
      SecretName: 'api_key',
      ServiceName: 'app',
      ServiceID: 'compose:shop/app',
      TaskName: 'shop-app',
      TaskID: 'compose:shop/app#0',
    });
    expect(driver.requests[0].ServiceLabels).to.deep.equal({
      'com.docker.stack.namespace': 'shop',
      'com.docker.compose.project': 'shop',
    });
    expect(fetches.map((f) => f.ok)).to.deep.equal([true, true]);
    expect(files.list().Projects[0].Files[0]).to.include({
      Name: 'api_key',
      Reference: 'dso://secret/app/config#api_key',
      Refresh: 'in-place',
    });
  });

  it('refuses to write anywhere that is not a tmpfs (ERR_NOT_TMPFS), before reading anything', async () => {
    const { up, driver } = filesSetup(false);
    let error: unknown;
    await up([{ Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key' }]).catch((e) => (error = e));
    expect(error).to.be.instanceOf(DsoError).with.property('code', 'ERR_NOT_TMPFS');
    expect(driver.requests).to.have.length(0);
  });

  it('a refused secret fails the whole request, names it, and leaves no file', async () => {
    const { up, driver, dir, fetches } = filesSetup();
    driver.fail = 'secret/app/report#key';
    let error: unknown;
    await up([
      { Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key' },
      { Name: 'report_key', Service: 'worker', ref: 'secret/app/report#key' },
    ]).catch((e) => (error = e));
    expect(error).to.be.instanceOf(DsoError).with.property('code', 'ERR_PATH_REFUSED');
    expect((error as Error).message).to.contain('secret report_key of service worker');
    expect(fs.existsSync(dir)).to.equal(false);
    expect(fetches.map((f) => f.ok)).to.deep.equal([true, false]);
  });

  it('rewrites a changed value in place (same inode), restarts for dso.rotate=restart, leaves dso.rotate=false alone', async () => {
    const { files, up, dir, driver, engine } = filesSetup();
    await up([
      { Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key' },
      { Name: 'report_key', Service: 'worker', ref: 'secret/app/report#key', rotate: 'restart' },
      { Name: 'frozen', Service: 'app', ref: 'secret/app/config#api_key', rotate: 'false' },
    ]);
    engine.containers$ = [
      container('app1', 'shop', 'app'),
      container('worker1', 'shop', 'worker'),
      container('worker2', 'shop', 'worker', 'exited'),
    ];
    const inode = fs.statSync(path.join(dir, 'api_key')).ino;
    await files.check();
    expect(engine.restarted, 'nothing changed, nothing restarted').to.deep.equal([]);
    driver.values['secret/app/config#api_key'] = 'plainhost-unit-value-two-longer-than-before-55aa';
    driver.values['secret/app/report#key'] = 'short-unit-value-9f';
    await files.check();
    expect(fs.readFileSync(path.join(dir, 'api_key'), 'utf8')).to.equal(
      'plainhost-unit-value-two-longer-than-before-55aa',
    );
    expect(fs.statSync(path.join(dir, 'api_key')).ino).to.equal(inode);
    expect(fs.readFileSync(path.join(dir, 'report_key'), 'utf8'), 'a shorter value is cut to length').to.equal(
      'short-unit-value-9f',
    );
    expect(fs.readFileSync(path.join(dir, 'frozen'), 'utf8')).to.equal(VALUES['secret/app/config#api_key']);
    expect(engine.restarted, 'the running worker only').to.deep.equal(['worker1']);
  });

  it('gives a service fresh credentials when its lease nears its max TTL, so the old lease is revoked', async () => {
    const { files, up, dir, liveness, leases } = filesSetup();
    await up([{ Name: 'db_user', Service: 'app', ref: 'database/creds/app#username' }]);
    expect(fs.readFileSync(path.join(dir, 'db_user'), 'utf8')).to.equal(
      'database/creds/app#username:compose:shop/app#0',
    );
    leases.push({
      lease: 'database/creds/app/…abcdef',
      owner: 'task:compose:shop/app#0',
      path: 'database/creds/app',
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
      renewable: true,
      nearMaxTtl: false,
    });
    await files.check();
    expect(liveness.generation('shop', 'app'), 'renewable and not near its end: kept').to.equal(0);
    leases[0].nearMaxTtl = true;
    leases[0].expiresAt = new Date(Date.now() + 3_000).toISOString();
    await files.check();
    expect(liveness.generation('shop', 'app')).to.equal(1);
    expect(fs.readFileSync(path.join(dir, 'db_user'), 'utf8')).to.equal(
      'database/creds/app#username:compose:shop/app#1',
    );
  });

  it('rotate on demand: a KV secret is re-read, a dynamic one gets fresh credentials for its service; unknown names are not ours', async () => {
    const { files, up, dir, liveness } = filesSetup();
    await up([
      { Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key' },
      { Name: 'db_user', Service: 'app', ref: 'database/creds/app#username' },
      { Name: 'db_password', Service: 'app', ref: 'database/creds/app#password' },
    ]);
    expect(await files.refreshNow('nope')).to.equal(undefined);
    const report = await files.refreshNow('shop/db_password');
    expect(report).to.deep.equal({
      secret: 'shop/db_password',
      reason: 'on-demand',
      services: [{ service: 'shop-app', serviceId: 'compose:shop/app', outcome: 'rolled' }],
    });
    expect(liveness.generation('shop', 'app')).to.equal(1);
    expect(fs.readFileSync(path.join(dir, 'db_user'), 'utf8'), 'the username follows its password').to.equal(
      'database/creds/app#username:compose:shop/app#1',
    );
    await files.refreshNow('shop_api_key');
    expect(liveness.generation('shop', 'app'), 'KV: no new lease').to.equal(1);
  });

  it('leaves a project alone once its containers are gone (no leases made only to be revoked)', async () => {
    let now = 1_000_000;
    const { files, up, driver, engine } = filesSetup(true, () => now);
    await up([{ Name: 'db_user', Service: 'app', ref: 'database/creds/app#username' }]);
    const asked = driver.requests.length;
    await files.check();
    expect(driver.requests.length, 'pending after up: refreshed').to.equal(asked + 1);
    now += PENDING_GRACE_MS + 1;
    await files.check();
    expect(driver.requests.length, 'no container, grace over: not refreshed').to.equal(asked + 1);
    engine.containers$ = [container('app1', 'shop', 'app', 'exited')];
    await files.check();
    expect(driver.requests.length, 'a stopped container still counts').to.equal(asked + 2);
  });

  it('down removes the files and the project; the liveness forgets it', async () => {
    const { files, up, dir, liveness } = filesSetup();
    await up([{ Name: 'api_key', Service: 'app', ref: 'secret/app/config#api_key' }]);
    liveness.nextGeneration('shop', 'app');
    expect(await files.down('shop')).to.deep.equal({ Project: 'shop', Removed: 1 });
    expect(fs.existsSync(dir)).to.equal(false);
    expect(files.list().Projects).to.deep.equal([]);
    expect(liveness.generation('shop', 'app')).to.equal(0);
  });
});

describe("plain host: the plugin's compose routes", () => {
  const setupApp = () => {
    const f = filesSetup();
    const status = new StatusStore();
    const app = createApp({
      driver: {
        getSecret: async () => {
          throw new Error('unused');
        },
      },
      logger: silentLogger(),
      status,
      timeoutMs: 5_000,
      compose: f.files,
    });
    return { ...f, app, status };
  };

  it('POST /DSO.ComposeUp: files, no value in the reply, a status record per secret; GET /DSO.Compose lists them', async () => {
    const { app, status } = setupApp();
    const res = await request(app)
      .post('/DSO.ComposeUp')
      .send(
        Buffer.from(
          JSON.stringify({
            Project: 'shop',
            Secrets: [{ Name: 'api_key', Service: 'app', Labels: { 'dso.ref': 'dso://secret/app/config#api_key' } }],
          }),
        ),
      );
    expect(res.status, res.text).to.equal(200);
    expect(res.text).not.to.contain(VALUES['secret/app/config#api_key']);
    expect(JSON.parse(res.text).Files[0]).to.include({ Name: 'api_key', File: 'compose/shop/api_key' });
    expect(status.latestRecords('compose:shop/app')[0]).to.include({
      secret: 'api_key',
      service: 'app',
      outcome: 'ok',
    });
    const list = await request(app).get('/DSO.Compose?project=shop');
    expect(JSON.parse(list.text).Projects[0].Files).to.have.length(1);
    const down = await request(app)
      .post('/DSO.ComposeDown')
      .send(Buffer.from(JSON.stringify({ Project: 'shop' })));
    expect(JSON.parse(down.text)).to.deep.equal({ Project: 'shop', Removed: 1 });
  });

  it('refuses malformed requests with 400 and a code: bad project name, path-like secret names, extra fields', async () => {
    const { app } = setupApp();
    for (const body of [
      { Project: '../etc', Secrets: [] },
      { Project: 'Shop', Secrets: [] },
      { Project: 'shop', Secrets: [{ Name: '../../x', Service: 'app', Labels: {} }] },
      { Project: 'shop', Secrets: [{ Name: 'a', Service: 'app', Labels: {}, Path: '/etc' }] },
    ]) {
      const res = await request(app)
        .post('/DSO.ComposeUp')
        .send(Buffer.from(JSON.stringify(body)));
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(JSON.parse(res.text).code).to.equal('ERR_BAD_REQUEST');
    }
    const notJson = await request(app).post('/DSO.ComposeDown').send(Buffer.from('{'));
    expect(notJson.status).to.equal(400);
  });
});

describe('plain host: docker dso up -d / down (CLI, fake docker and plugin)', () => {
  function cliSetup(options: { tmpfsFirst?: boolean } = {}) {
    // /dev/shm is a tmpfs: the CLI's own tmpfs check passes there without mounting anything.
    const runtimeDir = fs.mkdtempSync(
      path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'dso-plainhost-cli-'),
    );
    tempDirs.push(runtimeDir);
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-plainhost-cli-project-'));
    tempDirs.push(project);
    fs.writeFileSync(path.join(project, 'compose.yaml'), GUIDE);
    const calls: string[][] = [];
    const inputs: string[] = [];
    const upRequests: ComposeUpRequest[] = [];
    let refuseTmpfs = options.tmpfsFirst === true;
    const plugin = {
      Id: 'a'.repeat(64),
      Name: 'dso:latest',
      Enabled: true,
      Settings: { Env: [], Mounts: [] },
      Config: { Interface: { Socket: 'dso.sock' }, Env: [] },
    };
    const run = async (cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> => {
      calls.push([cmd, ...args]);
      if (o.input !== undefined) inputs.push(String(o.input));
      const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
      if (args[0] === 'compose') return ok(args.includes('version') ? '2.40.3' : '');
      return { code: 1, stdout: '', stderr: `unexpected ${args.join(' ')}` };
    };
    // No swarm; the plugin enabled; no container left after `down`.
    const engine = fakeEngine(async (_method, [kind, id, action]) => {
      if (kind === 'info') return { Swarm: { LocalNodeState: 'inactive', ControlAvailable: false } };
      if (kind === 'plugins') {
        calls.push(['engine', 'plugin', action === 'json' ? 'inspect' : action, id]);
        return action === 'json' ? plugin : undefined;
      }
      if (kind === 'containers') return [];
      throw new Error(`fake engine: unexpected /${kind}`);
    });
    const api: PluginApi = {
      runtimeDir,
      status: async () => ({}) as PluginStatus,
      testVault: async () => ({ ok: true }),
      rotate: async () => Promise.reject(new Error('unused')),
      composeUp: async (req) => {
        upRequests.push(req);
        if (refuseTmpfs) {
          refuseTmpfs = false;
          throw new PluginRouteError('not on a tmpfs', 'ERR_NOT_TMPFS');
        }
        return {
          Project: req.Project,
          Files: req.Secrets.map((s) => ({
            Name: s.Name,
            Service: s.Service,
            File: `compose/${req.Project}/${s.Name}`,
            Refresh: refreshMode(s.Labels),
          })),
        };
      },
      composeDown: async (p) => ({ Project: p, Removed: 5 }),
      composeList: async () => ({ Projects: [] }),
    };
    const { cli } = cliHarness(
      {
        readStdin: async () => Buffer.alloc(0),
        stdinIsTTY: false,
        env: { DSO_RUN_DIR: path.join(project, 'run-dso') },
        cwd: project,
      },
      {
        docker: new DockerClient(run, [], () => engine),
        runner: run,
        connect: () => api,
        health: async () => {
          throw new Error('unused');
        },
        now: () => Date.now(),
        sleep: async () => undefined,
        version: '0.1.0',
      },
    );
    return { cli, calls, inputs, upRequests, runtimeDir, project };
  }

  it('asks the plugin for files, then runs docker compose -p <project> up -d with the rewritten file on stdin', async () => {
    const { cli, calls, inputs, upRequests, runtimeDir, project } = cliSetup();
    const r = await cli('up', '-d');
    expect(r.code, r.err).to.equal(0);
    expect(upRequests[0].Project).to.equal('shop');
    expect(upRequests[0].Secrets.find((s) => s.Name === 'db_user')).to.deep.include({
      Service: 'app',
      Uid: 1000,
      Gid: 1001,
    });
    const compose = calls.find((c) => c[1] === 'compose' && c.includes('up'))!;
    expect(compose.slice(1)).to.deep.equal([
      'compose',
      '-p',
      'shop',
      '--project-directory',
      project,
      '-f',
      '-',
      'up',
      '-d',
    ]);
    const doc = YAML.parse(inputs[inputs.length - 1]);
    const link = path.join(project, 'run-dso', 'shop');
    expect(doc.secrets.db_password).to.deep.equal({ file: path.join(link, 'db_password') });
    expect(fs.readlinkSync(link), "/run/dso/<project> points to the plugin's files").to.equal(
      path.join(runtimeDir, 'compose/shop'),
    );
    expect(doc.services.app.environment.DB_PASSWORD_FILE).to.equal('/run/secrets/db_password');
    expect(r.out).to.contain('db_password').and.to.contain('refresh: in-place');
  });

  it('when the plugin refuses for want of a tmpfs: restarts the plugin once (its directory is one now) and asks again', async () => {
    const { cli, calls, upRequests } = cliSetup({ tmpfsFirst: true });
    const r = await cli('up', '-d');
    expect(r.code, r.err).to.equal(0);
    expect(upRequests).to.have.length(2);
    expect(calls.map((c) => c.slice(1, 3).join(' '))).to.include.members(['plugin disable', 'plugin enable']);
    expect(
      calls.some((c) => c[0] === 'mount'),
      'already a tmpfs: nothing mounted',
    ).to.equal(false);
  });

  it('down: docker compose -p <project> down, then the plugin removes the files', async () => {
    const { cli, calls, project } = cliSetup();
    expect((await cli('up', '-d')).code).to.equal(0);
    const r = await cli('down');
    expect(fs.existsSync(path.join(project, 'run-dso', 'shop')), 'the link is removed').to.equal(false);
    expect(r.code, r.err).to.equal(0);
    expect(calls.find((c) => c[1] === 'compose' && c.includes('down'))!.slice(1)).to.deep.equal([
      'compose',
      '-p',
      'shop',
      'down',
    ]);
    expect(r.out).to.contain('5 secret files removed');
  });
});
