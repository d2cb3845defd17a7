// What the plugin remembers of each GetSecret: a bounded history and the latest per secret.
import { expect } from 'chai';
import { FetchRecord, StatusStore } from '../../src/status/store';

let n = 0;
const rec = (over: Partial<FetchRecord> = {}): FetchRecord => ({
  at: new Date(1_700_000_000_000 + n++ * 1000).toISOString(),
  service: 'web',
  serviceId: 'svc-web',
  task: 'web.1.x',
  secret: 'db',
  outcome: 'ok',
  durationMs: 1,
  ...over,
});

describe('StatusStore', () => {
  it('keeps a bounded history, oldest dropped first', () => {
    const store = new StatusStore(3);
    for (let i = 1; i <= 5; i++) store.record(rec({ task: `web.${i}.x` }));
    expect(store.recentRecords().map((r) => r.task)).to.deep.equal(['web.3.x', 'web.4.x', 'web.5.x']);
  });

  it('keeps 200 records by default', () => {
    const store = new StatusStore();
    for (let i = 0; i < 250; i++) store.record(rec({ task: `t${i}` }));
    expect(store.recentRecords()).to.have.length(200);
    expect(store.recentRecords()[0].task).to.equal('t50');
  });

  it('keeps the latest record per service and secret', () => {
    const store = new StatusStore();
    store.record(rec({ secret: 'db', outcome: 'error', code: 'ERR_NOT_FOUND' }));
    store.record(rec({ secret: 'api' }));
    store.record(rec({ secret: 'db', outcome: 'ok', version: 4 }));
    const latest = store.latestRecords();
    expect(latest).to.have.length(2);
    expect(latest.find((r) => r.secret === 'db')).to.include({ outcome: 'ok', version: 4 });
  });

  it('tells apart two services that use a secret of the same name', () => {
    const store = new StatusStore();
    store.record(rec({ service: 'web', serviceId: 'svc-web' }));
    store.record(rec({ service: 'api', serviceId: 'svc-api' }));
    expect(store.latestRecords()).to.have.length(2);
  });

  it('keys by service name when the request carried no service ID', () => {
    const store = new StatusStore();
    store.record(rec({ serviceId: '', service: 'web' }));
    store.record(rec({ serviceId: '', service: 'web', outcome: 'error' }));
    store.record(rec({ serviceId: '', service: 'api' }));
    expect(store.latestRecords()).to.have.length(2);
  });

  it('filters by service name or service ID', () => {
    const store = new StatusStore();
    store.record(rec({ service: 'web', serviceId: 'svc-web', secret: 'a' }));
    store.record(rec({ service: 'web', serviceId: 'svc-web', secret: 'b' }));
    store.record(rec({ service: 'api', serviceId: 'svc-api', secret: 'a' }));
    expect(store.latestRecords('web').map((r) => r.secret)).to.deep.equal(['a', 'b']);
    expect(store.latestRecords('svc-api').map((r) => r.service)).to.deep.equal(['api']);
    expect(store.latestRecords('nope')).to.deep.equal([]);
    expect(store.latestRecords()).to.have.length(3);
  });

  it('bounds the tracked secrets, forgetting the least recently served', () => {
    const store = new StatusStore(200, 2);
    store.record(rec({ secret: 'a' }));
    store.record(rec({ secret: 'b' }));
    store.record(rec({ secret: 'a' }));
    store.record(rec({ secret: 'c' }));
    expect(
      store
        .latestRecords()
        .map((r) => r.secret)
        .sort(),
    ).to.deep.equal(['a', 'c']);
  });

  it('when every secret was served again since it was placed, forgets the one served longest ago', () => {
    const store = new StatusStore(200, 2);
    for (const secret of ['a', 'b', 'a', 'b', 'c']) store.record(rec({ secret }));
    expect(store.latestRecords().map((r) => r.secret)).to.have.members(['b', 'c']);
    store.record(rec({ secret: 'd' }));
    expect(store.latestRecords().map((r) => r.secret)).to.have.members(['c', 'd']);
  });

  it('hands out copies, not its own history', () => {
    const store = new StatusStore();
    store.record(rec());
    store.recentRecords().pop();
    expect(store.recentRecords()).to.have.length(1);
  });

  it('gives back every field of a record as it was given, absent fields absent', () => {
    const store = new StatusStore();
    const ok = rec({
      secret: 'ok',
      path: 'secret/data/app/db',
      field: 'password',
      version: 7,
      leaseExpiresAt: '2026-12-02T15:00:00.000Z',
      doNotReuse: true,
      durationMs: 1.234,
    });
    const failed = rec({
      secret: 'failed',
      outcome: 'error',
      code: 'ERR_VAULT',
      subcode: 'engine-failed',
      error: 'the engine answered 500',
      durationMs: 10.001,
    });
    const odd = rec({ secret: 'odd', at: 'not a time' });
    for (const r of [ok, failed, odd]) store.record(r);
    expect(store.latestRecords()).to.deep.equal([ok, failed, odd]);
    expect(store.recentRecords()).to.deep.equal([ok, failed, odd]);
    expect(JSON.stringify(store.latestRecords())).to.equal(JSON.stringify([ok, failed, odd]));
  });

  it('gives back any text as it was given: quotes, backslashes, line breaks, other scripts', () => {
    const store = new StatusStore();
    const odd = rec({
      task: 'web.1.\u00e9\u4e2d',
      secret: 'db "main"',
      path: 'secret/data/a\\b',
      field: 'pass\nword',
      outcome: 'error',
      code: 'ERR_VAULT',
      error: 'Vault said: "no" \\ [1,2]\n\tnull',
    });
    store.record(odd);
    expect(store.latestRecords()).to.deep.equal([odd]);
    expect(store.recentRecords()).to.deep.equal([odd]);
  });

  it('keeps records apart whose service ID is the same and name is not', () => {
    const store = new StatusStore();
    store.record(rec({ service: 'web', serviceId: 'svc-1', secret: 'a' }));
    store.record(rec({ service: 'web-2', serviceId: 'svc-1', secret: 'a' }));
    expect(store.latestRecords().map((r) => r.service)).to.deep.equal(['web', 'web-2']);
    expect(store.latestRecords('svc-1')).to.have.length(2);
  });

  it('with a bound of one keeps the last secret served, of whichever service', () => {
    const one = new StatusStore(200, 1);
    one.record(rec({ serviceId: 'svc-a', secret: 'x' }));
    one.record(rec({ serviceId: 'svc-b', secret: 'x' }));
    one.record(rec({ serviceId: 'svc-b', secret: 'y' }));
    expect(one.latestRecords().map((r) => `${r.serviceId}/${r.secret}`)).to.deep.equal(['svc-b/y']);
    one.record(rec({ serviceId: 'svc-a', secret: 'x' }));
    expect(one.latestRecords().map((r) => `${r.serviceId}/${r.secret}`)).to.deep.equal(['svc-a/x']);
  });

  it('forgets the least recently served secret of the least recently served service beyond the bound', () => {
    const store = new StatusStore(200, 3);
    store.record(rec({ serviceId: 'svc-a', secret: 'x' }));
    store.record(rec({ serviceId: 'svc-b', secret: 'x' }));
    store.record(rec({ serviceId: 'svc-a', secret: 'y' }));
    // svc-b was served least recently: its one secret goes, though svc-a's x is older.
    store.record(rec({ serviceId: 'svc-c', secret: 'x' }));
    expect(store.latestRecords().map((r) => `${r.serviceId}/${r.secret}`)).to.have.members([
      'svc-a/x',
      'svc-a/y',
      'svc-c/x',
    ]);
    store.record(rec({ serviceId: 'svc-d', secret: 'x' }));
    expect(store.latestRecords().map((r) => `${r.serviceId}/${r.secret}`)).to.have.members([
      'svc-a/y',
      'svc-c/x',
      'svc-d/x',
    ]);
  });
});
