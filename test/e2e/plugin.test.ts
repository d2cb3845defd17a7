// End to end against the real thing: a real Docker Engine in swarm mode, the managed plugin
// built from plugin/ (no registry), a real OpenBao dev server, a busybox image made with
// `docker import`. Secrets are read back byte for byte from /run/secrets inside the tasks.
//
// Secret values never appear in output: comparisons are booleans with lengths in the message.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { secret } from '../support/capture';
import { OpenBao, repoRoot, startOpenBao, workDir } from '../support/openbao';
import { expectHeapFlagsKeptOutOfTheCacheTag } from '../support/heap-probe';
import { staticReadPolicy } from '../support/policies';
import { pluginEntrypoint } from '../support/process';
import {
  BUSYBOX_IMAGE,
  createTokenPlugin,
  docker,
  driverSecretArgs,
  engineReady,
  expectSameBytes,
  fileSize,
  pluginGet,
  pluginLogLines,
  pluginSocket,
  readInContainer,
  removeByPrefix,
  removeTokenPlugin,
  runningContainer,
  serviceCreateArgs,
  serviceTasks,
  stackDeploy,
  waitFor,
} from './docker';

const PREFIX = 'dsoe2e';
// Its own plugin name, so that a `dso` plugin set up by a user or `make demo` is left alone.
const PLUGIN = process.env.DSO_E2E_PLUGIN || 'dso-e2e';
const DOCKERD_LOG = process.env.DSO_DOCKERD_LOG || '/var/log/dso-dockerd.log';
const E2E_DIR = path.join(workDir, 'e2e');
const ETC_DSO = path.join(E2E_DIR, 'etc-dso');

interface StatusEntry {
  secret?: string;
  service?: string;
  task?: string;
  path?: string;
  outcome?: string;
  error?: string;
  at?: string;
}

const OK_OUTCOME = /^(ok|success|served|hit)$/i;

describe('e2e: DSO managed plugin in a real swarm', function () {
  this.timeout(300_000);

  let bao: OpenBao;
  let socket = '';
  let pluginId = '';
  let logOffset = 0;
  // Values made fresh per run: a leftover of an earlier run can never pass for them, and
  // the nonce found anywhere in a log means a value leaked.
  const nonce = crypto.randomBytes(6).toString('hex');
  const password = Buffer.from(`pässwörd-✓-${nonce}`, 'utf8'); // no trailing newline, non-ASCII
  const multi = Buffer.from(`line one ${nonce}\n\ttab, ümlaut, 🔑\nlast line\n`, 'utf8');
  const other = Buffer.from(`other-${nonce}`, 'utf8');
  const values = [password, multi, other];
  for (const v of values) secret(v.toString('utf8'));

  async function status(): Promise<StatusEntry[]> {
    const body = await pluginGet(socket, '/DSO.Status');
    expect(body, 'GET /DSO.Status answers an object').to.be.an('object');
    expect(body.recent, 'GET /DSO.Status has a `recent` array').to.be.an('array');
    const text = JSON.stringify(body);
    for (const v of values) {
      expect(text.includes(v.toString('utf8')), 'the status route never shows a secret value').to.equal(false);
    }
    return body.recent as StatusEntry[];
  }

  async function statusFor(secret: string, ok: boolean): Promise<StatusEntry> {
    return waitFor(`a status entry for ${secret}`, 30_000, async () => {
      const recent = await status();
      return recent.find((e) => e.secret === secret && OK_OUTCOME.test(String(e.outcome ?? '')) === ok);
    });
  }

  before(async function () {
    this.timeout(600_000);
    await engineReady(PREFIX);

    // OpenBao with the test's secrets, a read-only policy and a non-root token for the plugin.
    bao = await startOpenBao();
    await bao.api('POST', 'secret/data/e2e/app', {
      data: { password: password.toString('utf8'), multi: multi.toString('utf8') },
    });
    await bao.api('POST', 'secret/data/other/x', { data: { v: other.toString('utf8') } });
    await bao.api('PUT', 'sys/policies/acl/dso-e2e', {
      policy: [
        staticReadPolicy('secret/data/e2e/*'),
        // Readable for Vault: the refusal below must come from DSO_ALLOWED_PATHS.
        staticReadPolicy('secret/data/other/*'),
      ].join('\n'),
    });
    const created = await bao.api('POST', 'auth/token/create', { policies: ['dso-e2e'], ttl: '1h', renewable: true });
    const token: string = secret(created.auth.client_token as string);

    // Build the rootfs and (re)create the plugin, configured for this OpenBao.
    await createTokenPlugin(PLUGIN, ETC_DSO, token, bao.addr, [
      'DSO_ALLOWED_PATHS=secret/data/e2e/*',
      'DSO_LOG_LEVEL=debug',
    ]);
    ({ id: pluginId, socket } = await pluginSocket(PLUGIN));
    logOffset = fileSize(DOCKERD_LOG);
    // The plugin listens on its socket at once (Vault is not needed for that).
    await waitFor('the plugin socket', 30_000, async () => (fs.existsSync(socket) ? true : undefined));
    await status();
  });

  after(async function () {
    this.timeout(180_000);
    if (process.env.DSO_E2E_KEEP_PLUGIN) await removeByPrefix(PREFIX).catch(() => undefined);
    else await removeTokenPlugin(PLUGIN, ETC_DSO, PREFIX);
    if (bao) await bao.stop();
  });

  it('is a swarm-scoped secret provider plugin, enabled, with the settings given', async () => {
    const info = JSON.parse(await docker(['plugin', 'inspect', PLUGIN]))[0];
    expect(info.Enabled).to.equal(true);
    // Docker's API writes interface types as strings ("docker.secretprovider/1.0").
    const types = info.Config.Interface.Types.map((t: any) =>
      typeof t === 'string' ? t : `${t.Prefix}.${t.Capability}/${t.Version}`,
    );
    expect(types).to.deep.equal(['docker.secretprovider/1.0']);
    expect(info.Config.Interface.Socket).to.equal('dso.sock');
    expect(info.Config.Network.Type).to.equal('host');
    expect(info.Config.Linux.Capabilities ?? []).to.deep.equal([]);
    expect(info.Settings.Env).to.include('DSO_SOCKET=/run/docker/plugins/dso.sock');
    const etc = info.Settings.Mounts.find((m: any) => m.Destination === '/etc/dso');
    expect(etc.Source).to.equal(ETC_DSO);
    expect(etc.Options).to.include('ro');
  });

  it("carries no CA store: Vault is verified against node's built-in CAs or VAULT_CACERT only", () => {
    // README (VAULT_CACERT): the host's store is not read, so a private CA must be given. A copy
    // of the build host's bundle in the rootfs would suggest otherwise, and node never opens it.
    const rootfs = path.join(repoRoot, 'plugin', 'build', 'rootfs');
    const node = path.join(rootfs, 'usr', 'local', 'bin', 'node');
    expect(fs.existsSync(node), 'the rootfs built in before()').to.equal(true);
    expect(fs.existsSync(path.join(rootfs, 'etc', 'ssl'))).to.equal(false);
  });

  it("sizes its heap with the entrypoint's flags, and its node still uses the built-in code cache", function () {
    // The node and main.js the rootfs ships, run from the host: with the heap flags counted in
    // V8's flag hash, node 20 and 22 compile their own modules from source (13-21 ms of the
    // cold start); src/heap-flags.ts takes them out of it once the heap is created.
    this.timeout(60_000);
    const rootfs = path.join(repoRoot, 'plugin', 'build', 'rootfs');
    const [node, ...args] = pluginEntrypoint(path.join(rootfs, '..', 'config.json')).map((arg) =>
      arg.startsWith('/') ? path.join(rootfs, arg) : arg,
    );
    expectHeapFlagsKeptOutOfTheCacheTag(node, args.slice(0, -1), args[args.length - 1]);
  });

  it('serves a driver secret to a service: exact bytes, no trailing newline, non-ASCII', async () => {
    const secret = `${PREFIX}-password`;
    const service = `${PREFIX}-svc`;
    // A driver-backed secret takes no data: the CLI reads no file and no stdin.
    await docker(driverSecretArgs(PLUGIN, secret, ['dso.ref=dso://secret/data/e2e/app#password']));
    const spec = JSON.parse(await docker(['secret', 'inspect', secret]))[0].Spec;
    expect(spec.Driver.Name).to.equal(PLUGIN);
    expect(spec.Data ?? null, 'no value is stored in the swarm').to.equal(null);

    await docker(
      serviceCreateArgs(service, [secret], [], ['sh', '-c', `cat /run/secrets/${secret} >/dev/null; exec sleep 3600`]),
    );
    const container = await runningContainer(service);
    expectSameBytes(await readInContainer(container, `/run/secrets/${secret}`), password, `/run/secrets/${secret}`);

    const entry = await statusFor(secret, true);
    expect(entry.service).to.equal(service);
    expect(String(entry.task ?? '')).to.match(new RegExp(`^${service}\\.1\\.`));
  });

  it('deploys a compose file (3.8) whose secrets use the driver and dso.ref labels', async () => {
    const stack = `${PREFIX}stack`;
    const compose = [
      'version: "3.8"',
      'services:',
      '  app:',
      `    image: ${BUSYBOX_IMAGE}`,
      '    command: ["sh", "-c", "exec sleep 3600"]',
      '    stop_grace_period: 1s',
      '    secrets:',
      '      - db_password',
      '      - source: db_multi',
      '        target: multi.txt',
      'secrets:',
      '  db_password:',
      `    driver: ${PLUGIN}`,
      '    labels:',
      '      dso.ref: "dso://secret/data/e2e/app#password"',
      '  db_multi:',
      `    driver: ${PLUGIN}`,
      '    labels:',
      // The path as the Vault CLI writes it: data/ is added on a KV v2 mount.
      '      dso.ref: "dso://secret/e2e/app#multi"',
      '',
    ].join('\n');
    fs.mkdirSync(E2E_DIR, { recursive: true });
    const file = path.join(E2E_DIR, 'stack.yml');
    fs.writeFileSync(file, compose);
    await stackDeploy(['--resolve-image', 'never', '-c', file, stack]);

    const names = (await docker(['secret', 'ls', '--format', '{{.Name}}'])).split('\n');
    expect(names).to.include.members([`${stack}_db_password`, `${stack}_db_multi`]);
    const labels = JSON.parse(await docker(['secret', 'inspect', `${stack}_db_password`]))[0].Spec.Labels;
    expect(labels['com.docker.stack.namespace']).to.equal(stack);

    const container = await runningContainer(`${stack}_app`);
    expectSameBytes(await readInContainer(container, '/run/secrets/db_password'), password, 'db_password');
    expectSameBytes(await readInContainer(container, '/run/secrets/multi.txt'), multi, 'db_multi (multi-line)');

    const entry = await statusFor(`${stack}_db_multi`, true);
    expect(entry.service).to.equal(`${stack}_app`);
  });

  it('refuses a path outside DSO_ALLOWED_PATHS: the task fails and the plugin says why', async () => {
    const secret = `${PREFIX}-denied`;
    const service = `${PREFIX}-denied-svc`;
    await docker(driverSecretArgs(PLUGIN, secret, ['dso.ref=dso://secret/data/other/x#v']));
    await docker(serviceCreateArgs(service, [secret], ['--restart-condition', 'none']));
    // Docker hides the plugin's Err: the task just fails with "secret <id> not found".
    const failed = await waitFor(`the task of ${service} to fail`, 90_000, async () => {
      const tasks = await serviceTasks(service);
      if (tasks.some((t) => t.state.startsWith('Running'))) {
        throw Object.assign(new Error('the task runs although its secret is outside DSO_ALLOWED_PATHS'), {
          fatal: true,
        });
      }
      return tasks.find((t) => /^(Failed|Rejected)/.test(t.state) && t.error);
    });
    expect(failed.error).to.match(/secret \S+ not found/);

    // The plugin makes the reason visible itself: on its status route...
    const entry = await statusFor(secret, false);
    expect(entry.service).to.equal(service);
    expect(String(entry.error ?? ''), 'the status entry names the reason').to.match(
      /DSO_ALLOWED_PATHS|not allowed|allowed/i,
    );
    expect(String(entry.path ?? '')).to.contain('secret/data/other/x');

    // ...and in its log, which dockerd keeps (checked when dockerd logs to the file we know).
    const lines = pluginLogLines(DOCKERD_LOG, logOffset, pluginId);
    if (lines.length > 0) {
      const mine = lines.filter((l) => l.includes(secret));
      expect(mine.length, `a plugin log line names ${secret}`).to.be.greaterThan(0);
      expect(
        mine.some((l) => /DSO_ALLOWED_PATHS|not allowed|allowed/i.test(l)),
        'the log line names the reason',
      ).to.equal(true);
    }
  });

  it('never writes a secret value or the token to its log', async function () {
    const lines = pluginLogLines(DOCKERD_LOG, logOffset, pluginId);
    if (lines.length === 0) this.skip();
    const token = fs.readFileSync(path.join(ETC_DSO, 'token'), 'utf8');
    // dockerd quotes the plugin's output: compare against the JSON-escaped forms as well.
    const forms = (b: Buffer) => {
      const s = b.toString('utf8');
      return [s, JSON.stringify(s).slice(1, -1), JSON.stringify(JSON.stringify(s).slice(1, -1)).slice(1, -1)];
    };
    const leaks = lines.filter(
      (l) => l.includes(nonce) || [...values, Buffer.from(token)].some((v) => forms(v).some((f) => f && l.includes(f))),
    );
    expect(leaks.length, `${leaks.length} plugin log line(s) hold a secret value or the token`).to.equal(0);
  });
});
