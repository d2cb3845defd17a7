// Faults under a steady request load, against a real OpenBao and PostgreSQL: OpenBao
// killed and restarted, sealed and unsealed, its token revoked behind the plugin's back,
// slowed beyond DSO_TIMEOUT, PostgreSQL down. Every request gets the right value or a clear
// Err within the deadline, the plugin recovers within a second of the fault ending, and
// the fault and the recovery are logged once each.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, startOpenBao, workDir } from '../support/openbao';
import { credentialFile, startTestPlugin, TestPlugin } from '../support/plugin';
import { configureDatabaseEngine, sharedPostgres } from '../support/postgres';
import { startTcpProxy, TcpProxy } from '../support/proxy';
import type { LeaseOwner, OwnerLiveness } from '../../src/vault/leases';
import { dynamicPolicy, staticReadPolicy } from '../support/policies';

const VALUE = secret('faults-canary-value-61af3b');
const ROLE_ID = 'faults-role-id-0001';
const SECRET_ID = secret('faults-secret-id-7d9e2c41');
const TIMEOUT_MS = 1_500;

interface Outcome {
  at: number;
  ms: number;
  ok: boolean;
  err: string;
}

const everyoneAlive: OwnerLiveness = {
  async alive(owners: LeaseOwner[]) {
    return new Map(owners.map((o) => [`${o.kind}:${o.id}`, true]));
  },
};

/** Seeds OpenBao as the plugin expects it: data, policy, AppRole with fixed credentials. */
async function seed(bao: OpenBao): Promise<void> {
  await bao.api('POST', 'secret/data/faults/app', { data: { key: VALUE } });
  await bao.api('PUT', 'sys/policies/acl/dso-faults', {
    policy: [staticReadPolicy('secret/data/faults/*'), dynamicPolicy(['database/creds/faults'])].join('\n'),
  });
  await bao.api('POST', 'sys/auth/approle', { type: 'approle' }).catch(() => undefined);
  await bao.api('POST', 'auth/approle/role/faults', { token_policies: ['dso-faults'], token_ttl: '1h' });
  await bao.api('POST', 'auth/approle/role/faults/role-id', { role_id: ROLE_ID });
  await bao.api('POST', 'auth/approle/role/faults/custom-secret-id', { secret_id: SECRET_ID });
}

/** Runs `workers` request loops until `durationMs`, while `fault` runs; returns every outcome. */
async function underLoad(
  plugin: TestPlugin,
  body: object,
  durationMs: number,
  fault: () => Promise<number>,
): Promise<{ outcomes: Outcome[]; faultEnd: number }> {
  const outcomes: Outcome[] = [];
  const start = Date.now();
  const end = start + durationMs;
  const worker = async () => {
    while (Date.now() < end) {
      const at = Date.now();
      const { reply, value } = await plugin.get(body as never);
      outcomes.push({ at, ms: Date.now() - at, ok: reply.Err === '' && value !== undefined, err: reply.Err });
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const [faultEnd] = await Promise.all([fault(), ...Array.from({ length: 4 }, worker)]);
  return { outcomes, faultEnd };
}

function count(logs: string[], message: string): number {
  return logs.filter((l) => (JSON.parse(l) as { message: string }).message === message).length;
}

function checkRun(outcomes: Outcome[], faultEnd: number, expectValue: (o: Outcome) => boolean): void {
  expect(outcomes.length).to.be.greaterThan(20);
  const slow = outcomes.filter((o) => o.ms > TIMEOUT_MS + 250);
  expect(
    slow.map((o) => o.ms),
    'every reply within DSO_TIMEOUT',
  ).to.deep.equal([]);
  const bad = outcomes.filter((o) => !o.ok && o.err === '');
  expect(bad.length, 'a failure always has an Err').to.equal(0);
  expect(outcomes.filter((o) => o.ok).every(expectValue)).to.equal(true);
  const late = outcomes.filter((o) => o.at > faultEnd + 1_000);
  expect(late.length, 'requests after recovery').to.be.greaterThan(5);
  expect(
    late.filter((o) => !o.ok).map((o) => o.err),
    'recovered within a second of the fault ending',
  ).to.deep.equal([]);
  expect(
    outcomes.some((o) => !o.ok),
    'the fault was felt',
  ).to.equal(true);
}

describe('faults under load', function () {
  this.timeout(120_000);
  let bao: OpenBao;
  let plugin: TestPlugin;
  const request = {
    SecretName: 'k',
    ServiceName: 'load',
    TaskID: 'load-task',
    SecretLabels: { 'dso.ref': 'dso://secret/data/faults/app#key' },
  };
  const isValue = () => true;

  before(async () => {
    // Root, on purpose: these tests kill and restart the dev server, which keeps nothing but
    // its root token id across a restart.
    bao = await startOpenBao({ audit: false, rootToken: secret('faults-root-token-3c2b') });
    await seed(bao);
    plugin = startTestPlugin(
      {
        VAULT_ADDR: bao.addr,
        VAULT_AUTH_METHOD: 'approle',
        VAULT_ROLE_ID: ROLE_ID,
        VAULT_SECRET_ID_FILE: credentialFile('faults-secret-id', SECRET_ID),
        DSO_TIMEOUT: `${TIMEOUT_MS}ms`,
      },
      { liveness: everyoneAlive },
    );
    expect((await plugin.get(request)).value!.toString()).to.equal(VALUE);
  });

  after(async () => {
    plugin?.stop();
    await bao?.stop();
  });

  it('OpenBao killed and restarted', async () => {
    const logsBefore = plugin.logs.length;
    const { outcomes, faultEnd } = await underLoad(plugin, request, 5_000, async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      await bao.stop();
      await new Promise((r) => setTimeout(r, 1_000));
      await bao.start();
      await seed(bao);
      return Date.now();
    });
    checkRun(outcomes, faultEnd, isValue);
    const logs = plugin.logs.slice(logsBefore);
    expect(count(logs, 'Vault not answering')).to.equal(1);
    expect(count(logs, 'Vault answering again')).to.equal(1);
  });

  it('OpenBao sealed and unsealed', async () => {
    const log = fs.readFileSync(path.join(workDir, `openbao-${bao.port}.log`), 'utf8');
    const keys = [...log.matchAll(/Unseal Key: (\S+)/g)].map((m) => m[1]);
    const unsealKey = secret(keys[keys.length - 1]);
    const logsBefore = plugin.logs.length;
    // Sealed for longer than DSO_TIMEOUT: a request that waits the seal out cannot be served
    // in time, so the fault is felt whatever the client's retry timing (1 s was sometimes not).
    const { outcomes, faultEnd } = await underLoad(plugin, request, 6_000, async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      await bao.api('PUT', 'sys/seal');
      await new Promise((r) => setTimeout(r, TIMEOUT_MS + 1_000));
      await bao.api('PUT', 'sys/unseal', { key: unsealKey });
      return Date.now();
    });
    checkRun(outcomes, faultEnd, isValue);
    expect(
      outcomes.filter((o) => !o.ok).every((o) => /sealed|503|unreachable|not answering|DSO_TIMEOUT/i.test(o.err)),
    ).to.equal(true);
    const logs = plugin.logs.slice(logsBefore);
    expect(count(logs, 'Vault not answering')).to.equal(1);
    expect(count(logs, 'Vault answering again')).to.equal(1);
  });

  it('its token revoked behind its back: logs in again without a failed request', async () => {
    const logsBefore = plugin.logs.length;
    const outcomes: Outcome[] = [];
    const { outcomes: run } = await underLoad(plugin, request, 3_000, async () => {
      await new Promise((r) => setTimeout(r, 1_000));
      const accessors = await bao.api<{ data: { keys: string[] } }>('LIST', 'auth/token/accessors');
      for (const accessor of accessors.data.keys) {
        const info = await bao.api<{ data: { path: string } }>('POST', 'auth/token/lookup-accessor', { accessor });
        if (info.data.path.startsWith('auth/approle/login'))
          await bao.api('POST', 'auth/token/revoke-accessor', { accessor });
      }
      return Date.now();
    });
    outcomes.push(...run);
    expect(outcomes.filter((o) => !o.ok).map((o) => o.err)).to.deep.equal([]);
    expect(count(plugin.logs.slice(logsBefore), 'Vault token refused; logging in again')).to.equal(1);
  });

  describe('slowed beyond DSO_TIMEOUT', () => {
    let proxy: TcpProxy;
    let slowPlugin: TestPlugin;
    before(async () => {
      proxy = await startTcpProxy(bao.port);
      slowPlugin = startTestPlugin({
        VAULT_ADDR: `http://127.0.0.1:${proxy.port}`,
        VAULT_AUTH_METHOD: 'approle',
        VAULT_ROLE_ID: ROLE_ID,
        VAULT_SECRET_ID_FILE: credentialFile('faults-secret-id-2', SECRET_ID),
        DSO_TIMEOUT: `${TIMEOUT_MS}ms`,
      });
    });
    after(async () => {
      slowPlugin?.stop();
      await proxy?.close();
    });

    it('answers with an Err within the deadline while slow, and recovers', async () => {
      expect((await slowPlugin.get(request)).reply.Err).to.equal('');
      const logsBefore = slowPlugin.logs.length;
      const { outcomes, faultEnd } = await underLoad(slowPlugin, request, 6_000, async () => {
        await new Promise((r) => setTimeout(r, 500));
        proxy.delayMs = 3 * TIMEOUT_MS;
        await new Promise((r) => setTimeout(r, 2_500));
        proxy.delayMs = 0;
        return Date.now();
      });
      checkRun(outcomes, faultEnd, isValue);
      expect(outcomes.filter((o) => !o.ok).every((o) => /DSO_TIMEOUT/.test(o.err))).to.equal(true);
      expect(count(slowPlugin.logs.slice(logsBefore), 'Vault not answering')).to.equal(1);
    });
  });

  describe('PostgreSQL down while database credentials are requested', () => {
    it('answers with a clear Err, logs the fault once, and recovers', async () => {
      const pg = sharedPostgres();
      await configureDatabaseEngine(bao.api, pg, { role: 'faults', defaultTtl: '1h' });
      let task = 0;
      const dbRequest = () => ({
        SecretName: 'u',
        ServiceName: 'db',
        TaskID: `db-task-${task++}`,
        SecretLabels: { 'dso.ref': 'dso://database/creds/faults#username' },
      });
      expect((await plugin.get(dbRequest())).reply.Err).to.equal('');
      const logsBefore = plugin.logs.length;
      const outcomes: Outcome[] = [];
      const end = Date.now() + 8_000;
      let faultEnd = Infinity;
      const fault = (async () => {
        await new Promise((r) => setTimeout(r, 500));
        await pg.stop();
        await new Promise((r) => setTimeout(r, 1_500));
        await pg.start();
        faultEnd = Date.now();
      })();
      while (Date.now() < end) {
        const at = Date.now();
        const { reply } = await plugin.get(dbRequest());
        outcomes.push({ at, ms: Date.now() - at, ok: reply.Err === '', err: reply.Err });
        await new Promise((r) => setTimeout(r, 50));
      }
      await fault;
      expect(outcomes.filter((o) => o.ms > TIMEOUT_MS + 250).length, 'every reply within DSO_TIMEOUT').to.equal(0);
      const failures = outcomes.filter((o) => !o.ok);
      expect(failures.length, 'the fault was felt').to.be.greaterThan(0);
      expect(failures.every((o) => /database engine at database\/|DSO_TIMEOUT/.test(o.err))).to.equal(true);
      const late = outcomes.filter((o) => o.at > faultEnd + 1_000);
      expect(late.length).to.be.greaterThan(3);
      expect(late.filter((o) => !o.ok).map((o) => o.err)).to.deep.equal([]);
      const logs = plugin.logs.slice(logsBefore);
      expect(count(logs, 'secrets engine failing')).to.equal(1);
      expect(count(logs, 'secrets engine serving again')).to.equal(1);
    });
  });
});
