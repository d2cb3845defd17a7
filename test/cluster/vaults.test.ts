// Several Vaults from one swarm: the same plugin installed twice on every manager, as
// `dso-a` and `dso-b`, each with its own OpenBao and token. One stack uses both drivers
// for the same Vault path: each service reads the value of its own driver's Vault, and a
// change in one Vault rolls only the services that use that Vault's secret.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, policyToken, startOpenBao, workDir } from '../support/openbao';
import { staticReadPolicy } from '../support/policies';
import { expectSameBytes, sleep, waitFor } from '../e2e/docker';
import {
  allRead,
  containersOf,
  dk,
  ensureBed,
  explained,
  forceUpdate,
  HOST_IP,
  installPlugin,
  NODES,
  readIn,
  removeByPrefix,
  REPOSITORY,
} from './bed';

const STACK = 'dsocv';
const INTERVAL_MS = 3_000;
const DIR = path.join(workDir, 'cluster-vaults');

describe('cluster: two plugins, two Vaults, one stack', function () {
  this.timeout(300_000);
  const baos: Record<'a' | 'b', OpenBao | undefined> = { a: undefined, b: undefined };
  const nonce = crypto.randomBytes(6).toString('hex');
  const val = (which: 'a' | 'b', n: number) => Buffer.from(secret(`vault-${which}-v${n}-${nonce}`));
  const write = (which: 'a' | 'b', n: number) =>
    baos[which]!.api('POST', 'secret/data/app/shared', { data: { v: val(which, n).toString() } });
  const svc = (s: string) => `${STACK}_${s}`;

  before(async function () {
    this.timeout(600_000);
    await ensureBed();
    await removeByPrefix(STACK);
    for (const which of ['a', 'b'] as const) {
      const bao = await startOpenBao({ host: HOST_IP, audit: false });
      baos[which] = bao;
      const token = await policyToken(bao, 'dso', staticReadPolicy('secret/data/app/*'), '2h');
      await write(which, 1);
      // `:latest` here: what `docker plugin install dso/vault` without a tag gets.
      for (const n of NODES)
        await installPlugin(n, `dso-${which}`, `${REPOSITORY}:latest`, bao.addr, token, [
          `DSO_ROTATE_INTERVAL=${INTERVAL_MS}ms`,
        ]);
    }
    fs.mkdirSync(DIR, { recursive: true });
    fs.writeFileSync(
      path.join(DIR, 'stack.yml'),
      [
        'version: "3.8"',
        'x-task: &task',
        '  image: dso-busybox:latest',
        '  command: ["sh", "-c", "exec sleep 3600"]',
        '  stop_grace_period: 1s',
        '  deploy: { update_config: { order: start-first } }',
        'services:',
        '  a: { <<: *task, secrets: [from_a] }',
        '  b: { <<: *task, secrets: [from_b] }',
        '  ab: { <<: *task, secrets: [from_a, from_b] }',
        'secrets:',
        '  from_a: { driver: dso-a, labels: { dso.ref: "dso://secret/data/app/shared#v", dso.rotate: "true" } }',
        '  from_b: { driver: dso-b, labels: { dso.ref: "dso://secret/data/app/shared#v", dso.rotate: "true" } }',
        '',
      ].join('\n'),
    );
  });

  after(async function () {
    this.timeout(180_000);
    await removeByPrefix(STACK).catch(() => undefined);
    for (const n of NODES)
      for (const p of ['dso-a', 'dso-b']) await dk(n, ['plugin', 'rm', '-f', p]).catch(() => undefined);
    for (const bao of Object.values(baos)) if (bao) await bao.stop();
    fs.rmSync(DIR, { recursive: true, force: true });
  });

  it("serves each service the value of its own driver's Vault", async () => {
    await dk(1, ['stack', 'deploy', '--resolve-image', 'never', '-c', path.join(DIR, 'stack.yml'), STACK]);
    await allRead(svc('a'), '/run/secrets/from_a', val('a', 1), 1, 120_000);
    await allRead(svc('b'), '/run/secrets/from_b', val('b', 1), 1, 120_000);
    const [ab] = await allRead(svc('ab'), '/run/secrets/from_a', val('a', 1), 1, 120_000);
    expectSameBytes(await readIn(ab, '/run/secrets/from_b'), val('b', 1), 'from_b in the service that uses both');
  });

  it("rolls only the services that use the changed Vault's secret, once", async () => {
    await sleep(INTERVAL_MS + 1_000); // every plugin's leader pass has a baseline
    const before = {
      a: await forceUpdate(1, svc('a')),
      b: await forceUpdate(1, svc('b')),
      ab: await forceUpdate(1, svc('ab')),
    };
    const bTask = (await containersOf(svc('b')))[0];

    await write('a', 2);
    await explained(
      [svc('a'), svc('ab')],
      waitFor('a and ab rolled', 2 * INTERVAL_MS + 5_000, async () =>
        (await forceUpdate(1, svc('a'))) > before.a && (await forceUpdate(1, svc('ab'))) > before.ab ? true : undefined,
      ),
    );
    await allRead(svc('a'), '/run/secrets/from_a', val('a', 2), 1, 60_000);
    const [ab] = await allRead(svc('ab'), '/run/secrets/from_a', val('a', 2), 1, 60_000);
    expectSameBytes(await readIn(ab, '/run/secrets/from_b'), val('b', 1), 'from_b unchanged in ab');
    await sleep(2 * INTERVAL_MS);
    expect(await forceUpdate(1, svc('a')), 'a rolled once').to.equal(before.a + 1);
    expect(await forceUpdate(1, svc('ab')), 'ab rolled once').to.equal(before.ab + 1);
    expect(await forceUpdate(1, svc('b')), "b (the other Vault's) not rolled").to.equal(before.b);
    expect((await containersOf(svc('b')))[0].id, 'b keeps its task').to.equal(bTask.id);

    await write('b', 2);
    await explained(
      [svc('b'), svc('ab')],
      waitFor('b and ab rolled', 2 * INTERVAL_MS + 5_000, async () =>
        (await forceUpdate(1, svc('b'))) > before.b && (await forceUpdate(1, svc('ab'))) > before.ab + 1
          ? true
          : undefined,
      ),
    );
    await allRead(svc('b'), '/run/secrets/from_b', val('b', 2), 1, 60_000);
    await sleep(2 * INTERVAL_MS);
    expect(await forceUpdate(1, svc('a')), "a (the other Vault's) not rolled again").to.equal(before.a + 1);
    expect(await forceUpdate(1, svc('b')), 'b rolled once').to.equal(before.b + 1);
  });
});
