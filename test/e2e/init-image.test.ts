// `docker dso init --plugin-image` against a real registry (Debian's docker-registry on a
// free loopback port) and the real Docker engine, with both docker CLIs of this machine:
// the privileges the image asks for are listed and nothing is installed until the user
// grants them with --grant-all-permissions, as `docker plugin install` does.
import { ChildProcess, spawn } from 'node:child_process';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { capture, secret } from '../support/capture';
import { freePort, repoRoot, workDir } from '../support/openbao';
import { dockerQuiet, engineReady, run, waitFor } from './docker';

const DIR = path.join(workDir, 'e2e-init-image');
const PLUGIN = 'dso-e2e-img';
const CLIS = ['/usr/local/bin/docker', '/usr/bin/docker'].filter((f) => fs.existsSync(f));
const REGISTRY_BIN = '/usr/bin/docker-registry';

describe('e2e: docker dso init --plugin-image asks for the privileges to be granted', function () {
  this.timeout(240_000);
  let registry: ChildProcess | undefined;
  let image = '';
  const token = secret(`img-token-${process.pid}-${Date.now()}`);

  /** The CLI as `docker dso` runs it, with `dockerDir`'s docker first on PATH. */
  async function init(dockerDir: string, extra: string[]) {
    const configDir = path.join(DIR, 'etc-dso');
    fs.rmSync(configDir, { recursive: true, force: true });
    const res = await run(
      process.execPath,
      [
        path.join(repoRoot, 'dist', 'cli', 'docker-dso.js'),
        'dso',
        'init',
        '--plugin',
        PLUGIN,
        '--plugin-image',
        image,
        '--vault-address',
        'http://127.0.0.1:1',
        '--vault-auth-method',
        'token',
        '--vault-token',
        '-',
        '--config-dir',
        configDir,
        '--no-test',
        ...extra,
      ],
      { input: token, env: { ...process.env, PATH: `${dockerDir}:${process.env.PATH}` }, timeoutMs: 180_000 },
    );
    const out = res.stdout.toString('utf8');
    capture(out);
    capture(res.stderr);
    return { code: res.code, out, err: res.stderr, files: fs.existsSync(configDir) ? fs.readdirSync(configDir) : [] };
  }

  const installed = async () =>
    (await run('docker', ['plugin', 'inspect', '--format', '{{.Enabled}}', PLUGIN])).stdout.toString('utf8').trim();

  before(async function () {
    this.timeout(600_000);
    if (!fs.existsSync(REGISTRY_BIN))
      throw new Error(`${REGISTRY_BIN} is missing: install Debian's docker-registry package`);
    await engineReady('dsoimg');
    // Leftovers of an interrupted run: the plugin, and images pushed from a registry port of then.
    const names = (await run('docker', ['plugin', 'ls', '--format', '{{.Name}}'])).stdout.toString('utf8').split('\n');
    for (const name of names.filter((n) => n === `${PLUGIN}:latest` || /^127\.0\.0\.1:\d+\/dso\/vault:e2e$/.test(n)))
      await dockerQuiet(['plugin', 'rm', '-f', name], 120_000);
    fs.rmSync(DIR, { recursive: true, force: true });
    fs.mkdirSync(DIR, { recursive: true });
    const port = await freePort();
    fs.writeFileSync(
      path.join(DIR, 'registry.yml'),
      `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${DIR}/registry\nhttp:\n  addr: 127.0.0.1:${port}\n`,
    );
    registry = spawn(REGISTRY_BIN, ['serve', path.join(DIR, 'registry.yml')], { stdio: 'ignore' });
    await waitFor(
      'the registry',
      20_000,
      async () => ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.ok ? true : undefined),
      200,
    );
    // Docker trusts plain-HTTP registries on 127.0.0.0/8 without configuration.
    image = `127.0.0.1:${port}/dso/vault:e2e`;
    const build = await run(
      'bash',
      [path.join(repoRoot, 'plugin', 'build.sh'), '--name', image, '--fresh', '--no-enable'],
      { timeoutMs: 480_000 },
    );
    if (build.code !== 0) throw new Error(`plugin/build.sh failed (${build.code}):\n${build.stderr.trim()}`);
    const push = await run('docker', ['plugin', 'push', image], { timeoutMs: 300_000 });
    if (push.code !== 0) throw new Error(`docker plugin push failed: ${push.stderr.trim()}`);
    await dockerQuiet(['plugin', 'rm', '-f', image]);
  });

  after(async function () {
    this.timeout(120_000);
    await dockerQuiet(['plugin', 'rm', '-f', PLUGIN], 120_000);
    if (image) await dockerQuiet(['plugin', 'rm', '-f', image]);
    registry?.kill('SIGKILL');
    fs.rmSync(DIR, { recursive: true, force: true });
  });

  for (const cli of CLIS) {
    it(`without --grant-all-permissions lists the privileges and installs nothing (${cli})`, async () => {
      const r = await init(path.dirname(cli), []);
      expect(r.code, r.err).to.equal(2);
      expect(r.err).to.contain(`the plugin image ${image} asks for these privileges:`);
      expect(r.err)
        .to.contain('  - network: [host]')
        .and.contain('  - mount: [/var/run/docker.sock]')
        .and.contain('  - mount: [/etc/dso]');
      expect(r.err).to.contain('nothing was installed').and.contain('--grant-all-permissions');
      expect(await installed(), 'the plugin is not installed').to.equal('');
      expect(r.files, 'no credential file was written').to.deep.equal([]);
    });
  }

  it('with --grant-all-permissions shows the privileges, installs, configures and enables the plugin', async () => {
    const r = await init(path.dirname(CLIS[0]), ['--grant-all-permissions']);
    expect(r.code, r.err).to.equal(0);
    expect(r.out)
      .to.contain('granting the privileges it asks for (--grant-all-permissions):')
      .and.contain('  - network: [host]');
    expect(await installed()).to.equal('true');
    expect(r.files).to.include('token');
  });
});
