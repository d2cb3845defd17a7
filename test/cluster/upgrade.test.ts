// Upgrades on every manager, the README's way: the next version is pushed to the
// registry, each node runs `docker plugin upgrade dso <registry>/dso/vault:<next>` (node 2
// with Debian's docker 20.10 CLI, the others with the one first on PATH), keeps every
// setting and serves again; rolling back to the previous version does the same. Also
// `docker plugin set docker-sock.source=...` with both CLIs.
//
// Found here: after an upgrade, Engine 20.10 still shows the mount settings in `plugin
// inspect` but mounts the config's default sources at the next enable, until they are
// set again; the README's procedure (and this test) sets them again before enabling.
import { expect } from 'chai';
import { driverSecretArgs } from '../e2e/docker';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { secret } from '../support/capture';
import { OpenBao, startOpenBao } from '../support/openbao';
import { staticReadPolicy } from '../support/policies';
import {
  allRead,
  cliFor,
  DEBIAN_CLI,
  dk,
  ensureBed,
  HOST_IP,
  installPlugin,
  NodeNo,
  NODES,
  pushPlugin,
  removeByPrefix,
  REPOSITORY,
  serviceArgs,
  sock,
  VERSION,
} from './bed';

const PREFIX = 'dsocu';
const PLUGIN = 'dso';
const NEXT = VERSION.replace(/(\d+)$/, (p) => String(Number(p) + 1));

describe('cluster: docker plugin upgrade and rollback on three managers', function () {
  this.timeout(300_000);
  let bao: OpenBao;
  const nonce = crypto.randomBytes(6).toString('hex');
  const value = Buffer.from(secret(`upgrade-value-${nonce}`));
  const cli = cliFor;
  const settings = (n: NodeNo) => dk(n, ['plugin', 'inspect', '--format', '{{json .Settings}}', PLUGIN]);

  /** The version in the rootfs node `n` runs (the version plugin-push wrote into it). */
  async function versionOnDisk(n: NodeNo): Promise<string> {
    const id = await dk(n, ['plugin', 'inspect', '--format', '{{.Id}}', PLUGIN]);
    return JSON.parse(fs.readFileSync(`/var/lib/dsoc/n${n}/plugins/${id}/rootfs/app/package.json`, 'utf8')).version;
  }

  /** The README's upgrade: disable, upgrade, set the mount sources again, enable; on every node. */
  async function upgradeAll(tag: string): Promise<void> {
    const ref = `${REPOSITORY}:${tag}`;
    for (const n of NODES) {
      const before = await settings(n);
      await dk(n, ['plugin', 'disable', '-f', PLUGIN], { cli: cli(n) });
      await dk(n, ['plugin', 'upgrade', '--skip-remote-check', '--grant-all-permissions', PLUGIN, ref], {
        cli: cli(n),
        timeoutMs: 180_000,
      });
      expect(await settings(n), `node ${n} keeps every setting`).to.equal(before);
      const mounts = await dk(n, [
        'plugin',
        'inspect',
        '--format',
        '{{range .Settings.Mounts}}{{.Name}}.source={{.Source}} {{end}}',
        PLUGIN,
      ]);
      await dk(n, ['plugin', 'set', PLUGIN, ...mounts.split(' ').filter(Boolean)], { cli: cli(n) });
      await dk(n, ['plugin', 'enable', PLUGIN], { cli: cli(n) });
      expect(await dk(n, ['plugin', 'inspect', '--format', '{{.PluginReference}} {{.Enabled}}', PLUGIN])).to.equal(
        `${ref} true`,
      );
      expect(await versionOnDisk(n), `node ${n} runs ${tag}`).to.equal(tag);
      expect(await settings(n), `node ${n} keeps every setting`).to.equal(before);
    }
  }

  /** A new secret and service: its task reads the value through the (upgraded) plugin. */
  async function serves(tag: string): Promise<void> {
    await dk(1, driverSecretArgs(PLUGIN, `${PREFIX}-${tag}`, ['dso.ref=dso://secret/data/app/up#v']));
    await dk(1, serviceArgs(`${PREFIX}-${tag}`, [`${PREFIX}-${tag}`], 1));
    await allRead(`${PREFIX}-${tag}`, `/run/secrets/${PREFIX}-${tag}`, value, 1, 120_000);
  }

  before(async function () {
    this.timeout(600_000);
    await ensureBed();
    await removeByPrefix(PREFIX);
    bao = await startOpenBao({ host: HOST_IP, audit: false });
    await bao.api('POST', 'secret/data/app/up', { data: { v: value.toString() } });
    await bao.api('PUT', 'sys/policies/acl/dso', { policy: staticReadPolicy('secret/data/app/*') });
    const token = secret(
      (await bao.api<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['dso'], ttl: '2h' }))
        .auth.client_token,
    );
    for (const n of NODES)
      await installPlugin(n, PLUGIN, `${REPOSITORY}:${VERSION}`, bao.addr, token, ['DSO_LOG_LEVEL=debug']);
    await serves('v1');
    const t = Date.now();
    await pushPlugin(NEXT);
    console.log(`      (version ${NEXT} built and pushed in ${Date.now() - t} ms)`);
  });

  after(async function () {
    this.timeout(180_000);
    await removeByPrefix(PREFIX).catch(() => undefined);
    for (const n of NODES) await dk(n, ['plugin', 'rm', '-f', PLUGIN]).catch(() => undefined);
    if (bao) await bao.stop();
  });

  it('sets the docker.sock source with both docker CLIs', async () => {
    const n: NodeNo = 3;
    await dk(n, ['plugin', 'disable', '-f', PLUGIN]);
    const source = () =>
      dk(n, [
        'plugin',
        'inspect',
        '--format',
        '{{range .Settings.Mounts}}{{if eq .Name "docker-sock"}}{{.Source}}{{end}}{{end}}',
        PLUGIN,
      ]);
    expect(await source()).to.equal(sock(n));
    await dk(n, ['plugin', 'set', PLUGIN, 'docker-sock.source=/run/user/1000/docker.sock'], { cli: 'docker' });
    expect(await source()).to.equal('/run/user/1000/docker.sock');
    await dk(n, ['plugin', 'set', PLUGIN, `docker-sock.source=${sock(n)}`], { cli: DEBIAN_CLI });
    expect(await source()).to.equal(sock(n));
    await dk(n, ['plugin', 'enable', PLUGIN]);
  });

  it(`upgrades to ${NEXT}, keeps every setting and serves`, async () => {
    await upgradeAll(NEXT);
    await serves('v2');
  });

  it(`rolls back to ${VERSION}, keeps every setting and serves`, async () => {
    await upgradeAll(VERSION);
    await serves('v3');
  });
});
