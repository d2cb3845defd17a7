// Rotation's decisions, with a fake Engine API and a fake reader: what changed, which
// services roll, one Vault read per path, retries on version conflicts.
import { expect } from 'chai';
import { silentLogger } from '../../src/log';
import type { SwarmApi, SwarmSecret, SwarmServiceFull } from '../../src/rotation/docker';
import { changeReason, forcedSpec, RotationReader, RotationWatcher, servicesUsing } from '../../src/rotation/watcher';
import type { SecretTarget } from '../../src/resolve/driver';

function service(id: string, name: string, secretIds: string[], extra: Partial<SwarmServiceFull> = {}): SwarmServiceFull {
  return {
    ID: id,
    Version: { Index: 10 },
    Spec: {
      Name: name,
      TaskTemplate: { ForceUpdate: 0, ContainerSpec: { Secrets: secretIds.map((s) => ({ SecretID: s, SecretName: s })) } },
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
  async isLeader() {
    return this.leader;
  }
  async secrets() {
    return this.secretList;
  }
  async services() {
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
    this.updates.push({ id, version, force: spec.TaskTemplate.ForceUpdate, order: (spec as { UpdateConfig?: { Order?: string } }).UpdateConfig?.Order });
  }
  async taskService() {
    return undefined;
  }
}

class FakeReader implements RotationReader {
  data: Record<string, { data: Record<string, unknown>; version?: number }> = {};
  reads: string[] = [];
  async target(request: { SecretLabels?: Record<string, string> | null }): Promise<SecretTarget> {
    const apiPath = request.SecretLabels!['dso.ref'].replace('dso://', '').split('#')[0];
    return { apiPath, mount: { path: 'secret/', type: 'kv', kvVersion: 2 }, kv: true };
  }
  async readKv(target: SecretTarget) {
    this.reads.push(target.apiPath);
    return this.data[target.apiPath];
  }
}

function watcher(swarm: FakeSwarm, reader: FakeReader, rotateDefault = false) {
  return new RotationWatcher({
    api: swarm,
    reader,
    logger: silentLogger(),
    intervalMs: 1000,
    timeoutMs: 1000,
    rotateDefault,
    driverNames: async () => new Set(['dso']),
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
        driverSecret('sec-4', 'other_driver', { 'dso.ref': 'dso://secret/data/app#v', 'dso.rotate': 'true' }, 'someone-else'),
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
      expect(reports.flatMap((r) => r.services).find((s) => s.serviceId === 's1')!.outcome).to.equal('skipped-updating');
      swarm.serviceList[0].UpdateStatus = { State: 'completed' };
      const again = await w.check();
      expect(again.flatMap((r) => r.services).filter((s) => s.serviceId === 's1').map((s) => s.outcome)).to.deep.equal(['rolled']);
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
