// Rotation's decisions, with a fake Engine API and a fake reader: what changed, which
// services roll, one Vault read per path, retries on version conflicts; the baseline is
// the running tasks' age (KV v2), never what an earlier pass saw; an Engine API outage is
// one warning and one recovery line.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log';
import type { Logger } from '../../src/log';
import type { SwarmApi, SwarmSecret, SwarmServiceFull, SwarmTask } from '../../src/docker/api';
import { servicesUsing } from '../../src/docker/objects';
import {
  changeReason,
  forcedSpec,
  RotationReader,
  RotationWatcher,
  staleTasks,
  WatcherOptions,
} from '../../src/rotation/watcher';
import type { SecretTarget } from '../../src/resolve/driver';
import type { LeaseManager } from '../../src/vault/leases';
import { DsoError } from '../../src/errors';
import { capturingLogger } from './helpers';

function service(
  id: string,
  name: string,
  secretIds: string[],
  extra: Partial<SwarmServiceFull> = {},
): SwarmServiceFull {
  return {
    ID: id,
    Version: { Index: 10 },
    Spec: {
      Name: name,
      TaskTemplate: {
        ForceUpdate: 0,
        ContainerSpec: { Secrets: secretIds.map((s) => ({ SecretID: s, SecretName: s })) },
      },
      UpdateConfig: { Order: 'start-first', Parallelism: 1 },
    },
    ...extra,
  };
}

function driverSecret(id: string, name: string, labels: Record<string, string>, driver = 'dso'): SwarmSecret {
  return { ID: id, Spec: { Name: name, Labels: labels, Driver: { Name: driver } } };
}

class FakeSwarm implements SwarmApi {
  leader = true;
  secretList: SwarmSecret[] = [];
  serviceList: SwarmServiceFull[] = [];
  updates: Array<{ id: string; version: number; force: number | undefined; order: unknown }> = [];
  conflicts = 0;
  taskList: SwarmTask[] = [];
  /** Makes the named listings fail, as an unreachable or stalled Engine API would. */
  down = new Set<string>();
  /** The clock new tasks of a roll get as CreatedAt. */
  clock = () => Date.now();
  private fail(what: string) {
    if (this.down.has(what))
      throw new DsoError(
        'ERR_INTERNAL',
        `Docker Engine at /var/run/docker.sock unreachable: no answer within 5000 ms (${what})`,
      );
  }
  async runningTasks() {
    this.fail('tasks');
    return this.taskList;
  }
  /** Replaces a service's tasks with `n` new ones created now (what a finished roll leaves). */
  replaceTasks(serviceId: string, n: number) {
    this.taskList = this.taskList.filter((t) => t.ServiceID !== serviceId);
    for (let i = 0; i < n; i++) this.taskList.push(task(serviceId, this.clock()));
  }
  async isLeader() {
    this.fail('nodes');
    return this.leader;
  }
  async secrets() {
    this.fail('secrets');
    return this.secretList;
  }
  async services() {
    this.fail('services');
    return this.serviceList;
  }
  async service(id: string) {
    const s = this.serviceList.find((x) => x.ID === id)!;
    return structuredClone(s);
  }
  async updateService(id: string, version: number, spec: SwarmServiceFull['Spec']) {
    if (this.conflicts > 0) {
      this.conflicts--;
      const s = this.serviceList.find((x) => x.ID === id)!;
      s.Version.Index++;
      throw new Error('rpc error: code = Unknown desc = update out of sequence');
    }
    this.updates.push({
      id,
      version,
      force: spec.TaskTemplate.ForceUpdate,
      order: (spec as { UpdateConfig?: { Order?: string } }).UpdateConfig?.Order,
    });
  }
  async taskService() {
    return undefined;
  }
}

let taskSeq = 0;
function task(serviceId: string, createdAt: number, state = 'running'): SwarmTask {
  return {
    ID: `task-${++taskSeq}`,
    ServiceID: serviceId,
    DesiredState: 'running',
    CreatedAt: new Date(createdAt).toISOString(),
    Status: { State: state },
  };
}

class FakeReader implements RotationReader {
  data: Record<string, { data: Record<string, unknown>; version?: number; versionCreatedAt?: string }> = {};
  leased = new Set<string>();
  reads: string[] = [];
  async target(request: { SecretLabels?: Record<string, string> | null }): Promise<SecretTarget> {
    const apiPath = request.SecretLabels!['dso.ref'].replace('dso://', '').split('#')[0];
    if (this.leased.has(apiPath)) return { apiPath, mount: { path: 'database/', type: 'database' }, kv: false };
    return { apiPath, mount: { path: 'secret/', type: 'kv', kvVersion: 2 }, kv: true };
  }
  async readKv(target: SecretTarget) {
    this.reads.push(target.apiPath);
    return this.data[target.apiPath];
  }
}

function watcher(swarm: FakeSwarm, reader: FakeReader, rotateDefault = false, extra: Partial<WatcherOptions> = {}) {
  return new RotationWatcher({
    api: swarm,
    reader,
    logger: silentLogger() as Logger,
    intervalMs: 1000,
    timeoutMs: 1000,
    rotateDefault,
    driverNames: async () => new Set(['dso']),
    ...extra,
  });
}

describe('rotation decisions', () => {
  it('takes the first sight as the baseline, then names a new version or a changed value', () => {
    expect(changeReason(undefined, { version: 1, hash: 'a' })).to.equal(undefined);
    expect(changeReason({ version: 1, hash: 'a' }, { version: 1, hash: 'a' })).to.equal(undefined);
    expect(changeReason({ version: 1, hash: 'a' }, { version: 2, hash: 'b' })).to.equal('new-version');
    expect(changeReason({ hash: 'a' }, { hash: 'b' })).to.equal('changed-value');
  });

  it('finds services by secret ID, not by similar names', () => {
    const services = [service('s1', 'app', ['sec-1']), service('s2', 'app-2', ['sec-2']), service('s3', 'app', [])];
    expect(servicesUsing('sec-1', services).map((s) => s.ID)).to.deep.equal(['s1']);
  });

  it('adds one to ForceUpdate and keeps the rest of the spec, update config included', () => {
    const s = service('s1', 'app', ['sec-1']);
    const spec = forcedSpec(s);
    expect(spec.TaskTemplate.ForceUpdate).to.equal(1);
    expect(spec).to.deep.include({ UpdateConfig: { Order: 'start-first', Parallelism: 1 } });
    expect(s.Spec.TaskTemplate.ForceUpdate, 'the original is not changed').to.equal(0);
  });

  describe('a check', () => {
    let swarm: FakeSwarm;
    let reader: FakeReader;
    beforeEach(() => {
      swarm = new FakeSwarm();
      reader = new FakeReader();
      reader.data['secret/data/app'] = { data: { v: 'one' }, version: 1 };
      swarm.secretList = [
        driverSecret('sec-1', 'app_pw', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' }),
        driverSecret('sec-2', 'app_pw_copy', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' }),
        driverSecret('sec-3', 'app_pw_off', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'false' }),
        driverSecret(
          'sec-4',
          'other_driver',
          { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' },
          'someone-else',
        ),
      ];
      swarm.serviceList = [
        service('s1', 'app', ['sec-1']),
        service('s2', 'app-copy', ['sec-2']),
        service('s3', 'app-off', ['sec-3']),
        service('s4', 'app-other', ['sec-4']),
        service('s5', 'app-1', []),
      ];
    });

    it('rolls exactly the services whose rotating secret changed, reading each path once', async () => {
      const w = watcher(swarm, reader);
      expect(await w.check()).to.deep.equal([]);
      expect(reader.reads).to.deep.equal(['secret/data/app']);
      reader.data['secret/data/app'] = { data: { v: 'two' }, version: 2 };
      const reports = await w.check();
      expect(reader.reads).to.deep.equal(['secret/data/app', 'secret/data/app']);
      expect(reports.map((r) => r.reason)).to.deep.equal(['new-version', 'new-version']);
      expect(swarm.updates.map((u) => u.id).sort()).to.deep.equal(['s1', 's2']);
      expect(swarm.updates.every((u) => u.force === 1 && u.order === 'start-first')).to.equal(true);
      expect(await w.check(), 'no second roll for the same change').to.deep.equal([]);
    });

    it('follows DSO_ROTATE for secrets without a dso.rotate label', async () => {
      swarm.secretList = [driverSecret('sec-1', 'app_pw', { 'dso.ref': 'dso://secret/data/app#v' })];
      swarm.serviceList = [service('s1', 'app', ['sec-1'])];
      const off = watcher(swarm, reader, false);
      await off.check();
      expect(reader.reads).to.deep.equal([]);
      const on = watcher(swarm, reader, true);
      await on.check();
      reader.data['secret/data/app'] = { data: { v: 'changed' }, version: 1 };
      expect((await on.check()).map((r) => r.reason)).to.deep.equal(['changed-value']);
    });

    it('retries with the new version when Docker reports a conflicting update', async () => {
      const w = watcher(swarm, reader);
      await w.check();
      reader.data['secret/data/app'] = { data: { v: 'two' }, version: 2 };
      swarm.conflicts = 2;
      const reports = await w.check();
      expect(reports.flatMap((r) => r.services.map((s) => s.outcome))).to.deep.equal(['rolled', 'rolled']);
      expect(swarm.updates.find((u) => u.id === 's1')!.version).to.be.greaterThan(10);
    });

    it('does not update a service that is mid-update, and tries again next time', async () => {
      const w = watcher(swarm, reader);
      await w.check();
      reader.data['secret/data/app'] = { data: { v: 'two' }, version: 2 };
      swarm.serviceList[0].UpdateStatus = { State: 'updating' };
      const reports = await w.check();
      expect(reports.flatMap((r) => r.services).find((s) => s.serviceId === 's1')!.outcome).to.equal(
        'skipped-updating',
      );
      swarm.serviceList[0].UpdateStatus = { State: 'completed' };
      const again = await w.check();
      expect(
        again
          .flatMap((r) => r.services)
          .filter((s) => s.serviceId === 's1')
          .map((s) => s.outcome),
      ).to.deep.equal(['rolled']);
    });

    it('does nothing on a manager that is not the leader', async () => {
      swarm.leader = false;
      const w = watcher(swarm, reader);
      await w.check();
      reader.data['secret/data/app'] = { data: { v: 'two' }, version: 2 };
      expect(await w.check()).to.deep.equal([]);
      expect(reader.reads).to.deep.equal([]);
    });

    it('rolls on demand every service of one secret, and says when the secret is not ours', async () => {
      const w = watcher(swarm, reader);
      const report = await w.rotateNow('app_pw_off');
      expect(report).to.deep.include({ secret: 'app_pw_off', reason: 'on-demand' });
      expect(swarm.updates.map((u) => u.id)).to.deep.equal(['s3']);
      try {
        await w.rotateNow('other_driver');
        expect.fail('expected an error');
      } catch (err) {
        expect((err as { code: string }).code).to.equal('ERR_NOT_FOUND');
      }
    });
  });
});

describe('rotation baseline: what running tasks hold (KV v2)', () => {
  const SKEW = 2_000;
  let swarm: FakeSwarm;
  let reader: FakeReader;
  let now: number;
  const T0 = Date.parse('2026-01-01T10:00:00Z');
  const write = (version: number, at: number) => {
    reader.data['secret/data/app'] = {
      data: { v: `value-${version}` },
      version,
      versionCreatedAt: new Date(at).toISOString(),
    };
  };
  const rolledIds = () => swarm.updates.map((u) => u.id);
  /** The fake Docker finishes every roll at once: the service's tasks are new. */
  const finishRolls = () => {
    for (const id of new Set(rolledIds())) swarm.replaceTasks(id, 2);
  };

  beforeEach(() => {
    now = T0;
    swarm = new FakeSwarm();
    swarm.clock = () => now;
    reader = new FakeReader();
    swarm.secretList = [
      driverSecret('sec-1', 'app_pw', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' }),
    ];
    swarm.serviceList = [service('s1', 'app', ['sec-1'])];
    swarm.taskList = [task('s1', T0), task('s1', T0)];
  });

  const w = (extra: Partial<WatcherOptions> = {}) =>
    watcher(swarm, reader, false, { now: () => now, skewMs: SKEW, ...extra });

  it('counts tasks created before the version (plus the skew margin) as stale, and only tasks that got their secrets', () => {
    const tasks = [
      task('s1', T0 - 5_000),
      task('s1', T0 + 1_000),
      task('s1', T0 + 3_000),
      task('s1', T0 - 5_000, 'pending'),
      task('s2', T0 - 5_000),
    ];
    expect(staleTasks('s1', tasks, T0, SKEW).map((t) => t.ID)).to.deep.equal([tasks[0].ID, tasks[1].ID]);
  });

  it('rolls a change written 2 s after the tasks started on the very first pass: no baseline of its own is needed', async () => {
    write(2, T0 + 2_000);
    now = T0 + 5_000; // first pass after a (re)start, a new secret or a leader change
    const reports = await w().check();
    expect(reports.map((r) => r.reason)).to.deep.equal(['new-version']);
    expect(rolledIds()).to.deep.equal(['s1']);
  });

  it('leaves tasks newer than the version alone, however many passes run', async () => {
    write(1, T0 - 60_000);
    const watcher = w();
    for (let i = 0; i < 5; i++) {
      now += 1_000;
      expect(await watcher.check()).to.deep.equal([]);
    }
    expect(swarm.updates).to.deep.equal([]);
  });

  it('waits out the skew margin before rolling, then rolls once and never again for that change', async () => {
    const watcher = w();
    write(2, T0 + 500);
    now = T0 + 1_000; // the version is only 0.5 s old: tasks a roll made now could count as older
    expect(await watcher.check()).to.deep.equal([]);
    now = T0 + 500 + SKEW + 100;
    expect((await watcher.check()).map((r) => r.reason)).to.deep.equal(['new-version']);
    finishRolls();
    for (let i = 0; i < 5; i++) {
      now += 1_000;
      expect(await watcher.check(), 'no roll loop').to.deep.equal([]);
    }
    expect(rolledIds()).to.deep.equal(['s1']);
    // A new change rolls again.
    write(3, now);
    now += SKEW + 100;
    await watcher.check();
    expect(rolledIds()).to.deep.equal(['s1', 's1']);
  });

  it('does not roll a service Docker is updating, rolls it once it is done if its tasks are still old', async () => {
    const watcher = w();
    write(2, T0 + 1_000);
    now = T0 + 10_000;
    swarm.serviceList[0].UpdateStatus = { State: 'updating' };
    expect(await watcher.check()).to.deep.equal([]);
    swarm.serviceList[0].UpdateStatus = { State: 'completed' };
    expect((await watcher.check()).map((r) => r.reason)).to.deep.equal(['new-version']);
  });

  it('rolls a paused service once per change and says so once, instead of rolling it in a loop', async () => {
    const log = capturingLogger('debug');
    const watcher = w({ logger: log.logger });
    write(2, T0 + 1_000);
    now = T0 + 10_000;
    await watcher.check();
    swarm.serviceList[0].UpdateStatus = { State: 'paused' }; // its new tasks failed; the old ones still run
    for (let i = 0; i < 3; i++) await watcher.check();
    expect(rolledIds()).to.deep.equal(['s1']);
    const paused = log.records().filter((r) => String(r.message).includes('roll of a service is paused'));
    expect(paused).to.have.length(1);
    expect(paused[0].fix).to.include('docker service update --force app');
  });

  it('ignores a pinned dso.version', async () => {
    reader.target = async () => ({
      apiPath: 'secret/data/app',
      mount: { path: 'secret/', type: 'kv', kvVersion: 2 },
      kv: true,
      version: 1,
    });
    write(2, T0 + 1_000);
    now = T0 + 10_000;
    expect(await w().check()).to.deep.equal([]);
  });
});

describe('rotation health and Engine API outages', () => {
  let swarm: FakeSwarm;
  let reader: FakeReader;
  beforeEach(() => {
    swarm = new FakeSwarm();
    reader = new FakeReader();
    reader.data['secret/data/app'] = {
      data: { v: 'one' },
      version: 1,
      versionCreatedAt: new Date(Date.now() + 60_000).toISOString(),
    };
    swarm.secretList = [
      driverSecret('sec-1', 'app_pw', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' }),
    ];
    swarm.serviceList = [service('s1', 'app', ['sec-1'])];
    swarm.taskList = [task('s1', Date.now() - 60_000)];
  });

  it('shows leader, driver names, last pass and last error', async () => {
    const w = watcher(swarm, reader, false, { skewMs: 0 });
    expect(w.health()).to.deep.include({ leader: null, lastPass: null, lastError: null });
    await w.check();
    const h = w.health();
    expect(h.leader).to.equal(true);
    expect(h.driverNames).to.deep.equal(['dso']);
    expect(h.lastPass).to.include({ outcome: 'ok' });
    swarm.leader = false;
    await w.check();
    expect(w.health()).to.deep.include({ leader: false });
    expect(w.health().lastPass).to.include({ outcome: 'not-leader' });
  });

  it('says once, with the setting to fix, when it recognises no driver name of its own', async () => {
    const log = capturingLogger('debug');
    const w = watcher(swarm, reader, false, { logger: log.logger, driverNames: async () => new Set<string>() });
    await w.check();
    await w.check();
    const lines = log
      .records()
      .filter((r) => r.message === 'rotation recognises no driver name of its own: no secret is watched');
    expect(lines).to.have.length(1);
    expect(String(lines[0].fix)).to.include('DSO_DRIVER_NAME');
    expect(w.health().driverNames).to.deep.equal([]);
  });

  for (const what of ['secrets', 'services', 'tasks', 'nodes']) {
    it(`warns once when it cannot list ${what}, rolls nothing meanwhile, and says once when it can again`, async () => {
      const log = capturingLogger('debug');
      const w = watcher(swarm, reader, false, { logger: log.logger });
      swarm.down.add(what);
      for (let i = 0; i < 4; i++) expect(await w.check()).to.deep.equal([]);
      expect(swarm.updates).to.deep.equal([]);
      const h = w.health();
      expect(h.lastPass).to.include({ outcome: 'failed' });
      expect(h.lastError!.message).to.include(`cannot list ${what}`);
      swarm.down.clear();
      await w.check();
      await w.check();
      const lines = log.records().filter((r) => String(r.message).startsWith('rotation'));
      expect(
        lines.filter((r) => r.message === `rotation pass cannot list ${what}: no service is rolled until it can`),
        'one warning per fault',
      ).to.have.length(1);
      expect(
        lines.filter((r) => r.message === `rotation can list ${what} again`),
        'one line at recovery',
      ).to.have.length(1);
      expect(
        lines.find((r) => r.message === `rotation pass cannot list ${what}: no service is rolled until it can`),
      ).to.include({ level: 'warn' });
      expect(w.health().lastPass).to.include({ outcome: 'ok' });
    });
  }
});

describe('rotation after a restart: leases this process never issued', () => {
  let swarm: FakeSwarm;
  let reader: FakeReader;
  const started = Date.now();
  const noLeases = { holds: () => false, takeEnding: () => [] } as unknown as LeaseManager;
  beforeEach(() => {
    swarm = new FakeSwarm();
    reader = new FakeReader();
    reader.leased.add('database/creds/app');
    swarm.secretList = [
      driverSecret('sec-1', 'db_on', { 'dso.ref': 'dso://database/creds/app#username', 'dso.rotate': 'true' }),
      driverSecret('sec-2', 'db_off', { 'dso.ref': 'dso://database/creds/app#username' }),
    ];
    swarm.serviceList = [service('s1', 'api', ['sec-1']), service('s2', 'worker', ['sec-2'])];
    swarm.taskList = [task('s1', started - 60_000), task('s2', started - 60_000)];
  });

  it('rolls a service with rotation on whose tasks predate this start once; names the others with the fix', async () => {
    const log = capturingLogger('debug');
    const w = watcher(swarm, reader, false, { leases: noLeases, startedAt: started, logger: log.logger });
    const reports = await w.check();
    expect(reports.map((r) => r.reason)).to.deep.equal(['lease-not-renewed']);
    expect(swarm.updates.map((u) => u.id)).to.deep.equal(['s1']);
    expect(w.health().unmanagedLeases).to.deep.equal([
      {
        service: 'worker',
        serviceId: 's2',
        secret: 'db_off',
        path: 'database/creds/app',
        fix: 'docker service update --force worker',
      },
    ]);
    await w.check();
    expect(
      swarm.updates.map((u) => u.id),
      'rolled once',
    ).to.deep.equal(['s1']);
    expect(log.records().filter((r) => String(r.message).startsWith('tasks hold leases issued before'))).to.have.length(
      1,
    );
  });

  it('leaves services alone whose leases it holds, and tasks created since it started', async () => {
    const held = { holds: () => true, takeEnding: () => [] } as unknown as LeaseManager;
    const w = watcher(swarm, reader, false, { leases: held, startedAt: started });
    expect(await w.check()).to.deep.equal([]);
    swarm.taskList = [task('s1', started + 1), task('s2', started + 1)];
    const w2 = watcher(swarm, reader, false, { leases: noLeases, startedAt: started });
    expect(await w2.check()).to.deep.equal([]);
    expect(w2.health().unmanagedLeases).to.deep.equal([]);
  });
});

describe('Engine API deadlines', () => {
  it('cuts off a daemon that accepts the call but never finishes its answer', async function () {
    this.timeout(5_000);
    const net = await import('node:net');
    const os = await import('node:os');
    const path = await import('node:path');
    const fs = await import('node:fs');
    const { DockerApi } = await import('../../src/docker/api');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-engine-'));
    const socket = path.join(dir, 'docker.sock');
    const drips: NodeJS.Timeout[] = [];
    // Headers at once, then one byte every 100 ms: an idle timeout alone would never fire.
    const server = net.createServer((conn) => {
      conn.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[');
      const t = setInterval(() => conn.write(' '), 100);
      drips.push(t);
      conn.on('close', () => clearInterval(t));
      conn.on('error', () => clearInterval(t));
    });
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const started = Date.now();
      const err = await new DockerApi(socket, 600).request('GET', '/tasks').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(DsoError);
      expect(Date.now() - started).to.be.below(1_500);
      expect((err as DsoError).message).to.match(/600 ms/);
    } finally {
      drips.forEach(clearInterval);
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DockerApi: tasks and services by id', () => {
  it('asks about many ids in batches small enough for any server, and about none for no ids', async () => {
    const { DockerApi } = await import('../../src/docker/api');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-engine-'));
    const socket = path.join(dir, 'docker.sock');
    const asked: number[] = [];
    // Like Node's own server: a request line over 16 KiB is refused (431).
    const server = http.createServer((req, res) => {
      const ids = (
        JSON.parse(new URL(req.url ?? '/', 'http://x').searchParams.get('filters') ?? '{}') as { id: string[] }
      ).id;
      asked.push(ids.length);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(ids.map((id) => ({ ID: id }))));
    });
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const api = new DockerApi(socket, 2_000);
      const ids = Array.from({ length: 450 }, (_, i) => `task-${String(i).padStart(25, '0')}`);
      const tasks = await api.tasks(ids);
      expect(tasks.map((t) => t.ID)).to.deep.equal(ids);
      expect(asked).to.deep.equal([100, 100, 100, 100, 50]);
      expect(await api.services([])).to.deep.equal([]);
      expect(asked).to.have.length(5);
    } finally {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rotation after a leader change', () => {
  it('counts tasks created before this node became leader again as holding leases it never issued', async () => {
    const swarm = new FakeSwarm();
    const reader = new FakeReader();
    reader.leased.add('database/creds/app');
    let now = Date.parse('2026-01-01T10:00:00Z');
    const started = now - 3_600_000; // the plugin started an hour ago, as a follower
    swarm.secretList = [
      driverSecret('sec-1', 'db_on', { 'dso.ref': 'dso://database/creds/app#username', 'dso.rotate': 'true' }),
    ];
    swarm.serviceList = [service('s1', 'api', ['sec-1'])];
    swarm.taskList = [task('s1', now - 60_000)]; // served by the old leader's plugin
    const noLeases = { holds: () => false, takeEnding: () => [] } as unknown as LeaseManager;
    const w = watcher(swarm, reader, false, { leases: noLeases, startedAt: started, now: () => now });
    swarm.leader = false;
    expect(await w.check()).to.deep.equal([]);
    swarm.leader = true;
    now += 1_000;
    expect((await w.check()).map((r) => r.reason)).to.deep.equal(['lease-not-renewed']);
    expect(swarm.updates.map((u) => u.id)).to.deep.equal(['s1']);
  });
});
