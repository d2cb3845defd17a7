// `docker dso` end to end: the real `docker` binary with the CLI plugin installed by
// scripts/install-cli.sh, the real engine in swarm mode, the managed plugin (created by
// `docker dso init` itself), and a real OpenBao with AppRole and a read-only policy.
//
// Everything the CLI prints is kept for the leak scan; every credential and value used here
// is registered with secret(). Comparisons of values are booleans with lengths only.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { capture, secret } from '../support/capture';
import { OpenBao, repoRoot, startOpenBao, workDir } from '../support/openbao';
import {
  BUSYBOX_IMAGE,
  docker,
  dockerQuiet,
  driverSecretArgs,
  readInContainer,
  removeByPrefix,
  run,
  runningContainer,
  serviceCreateArgs,
  serviceTasks,
  waitFor,
} from './docker';

const PREFIX = 'dsocli';
// A plugin of its own: `dso` (users, `make demo`) and the other suites' plugins are left alone.
const PLUGIN = 'dso-cli-e2e';
const DIR = path.join(workDir, 'e2e-cli');
const ETC_DSO = path.join(DIR, 'etc-dso');
const DOCKER_CONFIG = path.join(DIR, 'docker-config');

interface CliResult {
  code: number;
  out: string;
  err: string;
}

describe('e2e: docker dso (the Docker CLI plugin)', function () {
  this.timeout(300_000);

  let bao: OpenBao;
  const nonce = crypto.randomBytes(6).toString('hex');
  const password = secret(`cli-pässword-${nonce}`);
  const user = secret(`cli-user-${nonce}`);
  let roleId = '';
  let secretId = '';
  const env = { ...process.env, DOCKER_CONFIG };

  /** `docker dso ...` through the real docker binary; output kept for the leak scan. */
  async function dso(args: string[], input?: string): Promise<CliResult> {
    const res = await run('docker', ['dso', ...args], { env, input, timeoutMs: 240_000 });
    const out = res.stdout.toString('utf8');
    capture(out);
    capture(res.stderr);
    return { code: res.code, out, err: res.stderr };
  }

  const describeRun = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`;

  before(async function () {
    this.timeout(600_000);
    const up = await run('bash', [path.join(repoRoot, 'scripts', 'docker-up.sh')], { timeoutMs: 300_000 });
    if (up.code !== 0) throw new Error(`scripts/docker-up.sh failed: ${up.stderr.trim()}`);
    await removeByPrefix(PREFIX);
    await dockerQuiet(['plugin', 'rm', '-f', PLUGIN], 120_000);
    fs.rmSync(DIR, { recursive: true, force: true });
    fs.mkdirSync(DIR, { recursive: true });

    const install = await run('bash', [path.join(repoRoot, 'scripts', 'install-cli.sh')], { env, timeoutMs: 180_000 });
    if (install.code !== 0) throw new Error(`scripts/install-cli.sh failed: ${install.stderr.trim()}`);

    // OpenBao: secrets, a policy that reads only secret/data/cli/*, an AppRole with it.
    bao = await startOpenBao({ audit: false });
    await bao.api('POST', 'sys/auth/approle', { type: 'approle' });
    await bao.api('POST', 'secret/data/cli/app', { data: { password, user } });
    await bao.api('POST', 'secret/data/denied/x', { data: { v: secret(`denied-${nonce}`) } });
    await bao.api('PUT', 'sys/policies/acl/dso-cli', {
      policy: 'path "secret/data/cli/*" { capabilities = ["read"] }',
    });
    await bao.api('POST', 'auth/approle/role/dso-cli', {
      token_policies: ['dso-cli'],
      token_ttl: '1h',
      token_max_ttl: '4h',
    });
    roleId = (await bao.api('GET', 'auth/approle/role/dso-cli/role-id')).data.role_id;
    secretId = secret((await bao.api('POST', 'auth/approle/role/dso-cli/secret-id', {})).data.secret_id as string);
  });

  after(async function () {
    this.timeout(180_000);
    await removeByPrefix(PREFIX).catch(() => undefined);
    await dockerQuiet(['plugin', 'rm', '-f', PLUGIN], 120_000);
    if (bao) await bao.stop();
    fs.rmSync(DIR, { recursive: true, force: true });
  });

  it('is a Docker CLI plugin: listed by `docker --help`, answers the metadata handshake, installs idempotently', async () => {
    const help = await run('docker', ['--help'], { env });
    expect(help.stdout.toString('utf8')).to.match(/^\s+dso\*?\s+Vault and OpenBao secrets for Docker Swarm/m);
    const meta = await run(path.join(DOCKER_CONFIG, 'cli-plugins', 'docker-dso'), ['docker-cli-plugin-metadata'], {
      env,
    });
    expect(JSON.parse(meta.stdout.toString('utf8'))).to.include({ SchemaVersion: '0.1.0', Vendor: 'DSO' });
    const again = await run('bash', [path.join(repoRoot, 'scripts', 'install-cli.sh')], { env });
    expect(again.code).to.equal(0);
    expect(again.stderr).to.contain('is up to date');

    const usage = await dso(['--help']);
    expect(usage.code).to.equal(0);
    expect(usage.out).to.contain('system test-vault').and.to.contain('Exit codes:');
    expect((await dso(['inspect', '--help'])).out).to.contain('Secret injection status: ACTIVE');
    const bad = await dso(['nope']);
    expect(bad.code, 'unknown command: usage error').to.equal(2);
    const absent = await dso(['system', 'info', '--plugin', `${PLUGIN}-absent`]);
    expect(absent.code, 'absent plugin').to.equal(3);
    expect(absent.out).to.match(/Plugin:\s+dso-cli-e2e-absent: absent/);
  });

  it("init with the seed's flags creates the plugin, writes the secret id (0600) and passes no credential to Docker", async () => {
    const r = await dso(
      [
        'init',
        '--mode',
        'cloud',
        '--provider',
        'openbao',
        '--vault-address',
        bao.addr,
        '--vault-auth-method',
        'approle',
        '--vault-role-id',
        roleId,
        '--vault-secret-id',
        '-',
        '--config-dir',
        ETC_DSO,
        '--plugin',
        PLUGIN,
        '--set',
        'DSO_LOG_LEVEL=debug',
      ],
      `${secretId}\n`,
    );
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.out)
      .to.contain(`Plugin ${PLUGIN}: enabled`)
      .and.to.match(/Vault login:\s+OK: approle at auth\/approle/);
    expect(r.err, 'a secret id from standard input draws no warning').not.to.contain('WARNING');

    const file = path.join(ETC_DSO, 'secret-id');
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.readFileSync(file, 'utf8').trim() === secretId, 'the secret id file holds the secret id').to.equal(true);
    const info = JSON.parse(await docker(['plugin', 'inspect', PLUGIN]))[0];
    expect(info.Enabled).to.equal(true);
    expect(info.Settings.Env).to.include.members([
      `VAULT_ADDR=${bao.addr}`,
      'VAULT_AUTH_METHOD=approle',
      'VAULT_SECRET_ID_FILE=/etc/dso/secret-id',
      'VAULT_ROLE_ID_FILE=/etc/dso/role-id',
    ]);
    expect(JSON.stringify(info).includes(secretId), 'no secret id in the plugin settings').to.equal(false);
    expect(info.Settings.Mounts.find((m: { Destination: string }) => m.Destination === '/etc/dso').Source).to.equal(
      ETC_DSO,
    );
  });

  it('system info shows mode, provider, address, auth method, plugin state, token TTL and Vault health', async () => {
    const r = await dso(['system', 'info', '--plugin', PLUGIN]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.out).to.match(new RegExp(`Plugin:\\s+${PLUGIN}: enabled \\(id [0-9a-f]{12}\\)`));
    expect(r.out)
      .to.match(/Mode:\s+cloud/)
      .and.to.match(/Provider:\s+openbao/);
    expect(r.out).to.contain(`Vault addresses: ${bao.addr}`);
    expect(r.out).to.match(/Auth method:\s+approle \(mount auth\/approle\)/);
    expect(r.out).to.match(/Token:\s+logged in, TTL (59m|1h)/);
    expect(r.out).to.match(
      new RegExp(`Vault health:\\s+${bao.addr.replace(/[.]/g, '\\.')} \\(in use\\): active, unsealed`),
    );
    expect(r.out).to.match(/Problems:\s+none/);

    const json = JSON.parse((await dso(['system', 'info', '--plugin', PLUGIN, '--json'])).out);
    expect(json.plugin.state).to.equal('enabled');
    expect(json.vaultAddresses).to.deep.equal([bao.addr]);
    expect(json.token.loggedIn).to.equal(true);
    expect(json.token.policies).to.include('dso-cli');
  });

  it('system test-vault passes for a readable path, and for a denied path names the path and the policy fix', async () => {
    const ok = await dso(['system', 'test-vault', '--plugin', PLUGIN, '--path', 'dso://secret/cli/app#password']);
    expect(ok.code, describeRun(ok)).to.equal(0);
    expect(ok.out).to.match(/Test read:\s+OK: secret\/data\/cli\/app#password, version 1, \d+ bytes/);

    const denied = await dso(['system', 'test-vault', '--plugin', PLUGIN, '--path', 'dso://secret/denied/x#v']);
    expect(denied.code, describeRun(denied)).to.equal(1);
    expect(denied.out).to.match(/Test read:\s+FAILED/);
    expect(denied.out).to.match(/Error: permission denied (reading|for) secret\/(data\/)?denied\/x/);
    expect(denied.out).to.contain('capabilities = ["read"]');
    const json = JSON.parse(
      (await dso(['system', 'test-vault', '--plugin', PLUGIN, '--path', 'secret/denied/x#v', '--json'])).out,
    );
    expect(json).to.include({ ok: false, stage: 'read', code: 'ERR_VAULT_DENIED' });
  });

  it('inspect: ACTIVE for a working service, FAILED with the real reason for a denied path', async () => {
    await docker(driverSecretArgs(PLUGIN, `${PREFIX}-pw`, ['dso.ref=dso://secret/cli/app#password']));
    await docker(driverSecretArgs(PLUGIN, `${PREFIX}-denied`, ['dso.ref=dso://secret/denied/x#v']));
    await docker(serviceCreateArgs(`${PREFIX}-ok`, [`${PREFIX}-pw`]));
    await docker(serviceCreateArgs(`${PREFIX}-bad`, [`${PREFIX}-denied`], ['--restart-condition', 'none']));

    await runningContainer(`${PREFIX}-ok`);
    const ok = await dso(['inspect', `${PREFIX}-ok`, '--plugin', PLUGIN]);
    expect(ok.code, describeRun(ok)).to.equal(0);
    expect(ok.out).to.match(/reference:\s+dso:\/\/secret\/cli\/app#password/);
    expect(ok.out).to.match(/last fetch:\s+\S+ \(.*\): ok, task dsocli-ok\.1\./);
    expect(ok.out).to.match(/version:\s+1/);
    expect(ok.out).to.match(/DoNotReuse:\s+(true|false)/);
    expect(ok.out.trim().split('\n').pop()).to.equal('Secret injection status: ACTIVE');

    // Docker only says "secret ... not found"; inspect shows why.
    await waitFor(`the task of ${PREFIX}-bad to fail`, 90_000, async () => {
      const tasks = await serviceTasks(`${PREFIX}-bad`);
      return tasks.find((t) => /^(Failed|Rejected)/.test(t.state)) ? true : undefined;
    });
    const bad = await dso(['inspect', `${PREFIX}-bad`, '--plugin', PLUGIN]);
    expect(bad.code, describeRun(bad)).to.equal(1);
    expect(bad.out).to.match(/last error:\s+permission denied/);
    expect(bad.out.trim().split('\n').pop()).to.match(
      /^Secret injection status: FAILED: dsocli-denied: permission denied (reading|for) secret\/(data\/)?denied\/x/,
    );
    const json = JSON.parse((await dso(['inspect', `${PREFIX}-bad`, '--plugin', PLUGIN, '--json'])).out);
    expect(json.status).to.equal('FAILED');
    expect(json.secrets[0]).to.include({ secret: `${PREFIX}-denied`, code: 'ERR_VAULT_DENIED' });
  });

  it('up deploys dso:// environment references as secrets read from <VAR>_FILE; no value in the container config', async () => {
    const stack = `${PREFIX}stack`;
    const dir = path.join(DIR, 'shop');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'compose.yaml');
    fs.writeFileSync(
      file,
      [
        'services:',
        '  app:',
        `    image: ${BUSYBOX_IMAGE}`,
        '    command: ["sh", "-c", "exec sleep 3600"]',
        '    stop_grace_period: 1s',
        '    environment:',
        '      DB_PASSWORD: dso://secret/cli/app#password',
        '      DB_USER: "dso://secret/data/cli/app#user"',
        '      PLAIN: hello',
        '',
      ].join('\n'),
    );
    // --wait: a current docker CLI waits itself (--detach=false); 20.10's cannot, docker dso watches.
    const r = await dso(['up', '--wait', '-f', file, '--resolve-image', 'never', '--plugin', PLUGIN, stack]);
    expect(r.code, describeRun(r)).to.equal(0);
    const replicas = await docker(['service', 'ls', '--filter', `name=${stack}_app`, '--format', '{{.Replicas}}']);
    expect(replicas.trim(), 'up --wait returned once the service had converged').to.match(/^1\/1/);
    expect(r.out).to.contain(
      `app: DB_PASSWORD -> DB_PASSWORD_FILE=/run/secrets/db_password (secret ${stack}_db_password`,
    );
    expect(fs.readdirSync(dir), 'no transformed file left on disk').to.deep.equal(['compose.yaml']);

    const spec = JSON.parse(await docker(['secret', 'inspect', `${stack}_db_password`]))[0].Spec;
    expect(spec.Driver.Name).to.equal(PLUGIN);
    expect(spec.Labels['dso.ref']).to.equal('dso://secret/cli/app#password');

    const container = await runningContainer(`${stack}_app`);
    const fromFile = await run('docker', ['exec', container, 'sh', '-c', 'cat "$DB_PASSWORD_FILE"']);
    expect(
      fromFile.stdout.toString('utf8') === password,
      `value read through $DB_PASSWORD_FILE (${fromFile.stdout.length} bytes)`,
    ).to.equal(true);
    const userFile = await readInContainer(container, '/run/secrets/db_user');
    expect(userFile.toString('utf8') === user, `/run/secrets/db_user (${userFile.length} bytes)`).to.equal(true);

    const inspected = await docker(['inspect', container]);
    expect(inspected.includes(password) || inspected.includes(user), 'docker inspect shows no secret value').to.equal(
      false,
    );
    const envList: string[] = JSON.parse(inspected)[0].Config.Env;
    expect(envList).to.include.members([
      'DB_PASSWORD_FILE=/run/secrets/db_password',
      'DB_USER_FILE=/run/secrets/db_user',
      'PLAIN=hello',
    ]);
    expect(
      envList.some((e) => e.startsWith('DB_PASSWORD=') || e.startsWith('DB_USER=')),
      'the variables themselves are gone',
    ).to.equal(false);
    const serviceText = await docker(['service', 'inspect', `${stack}_app`]);
    expect(serviceText.includes(password) || serviceText.includes(user), 'the service spec holds no value').to.equal(
      false,
    );

    const status = await dso(['inspect', `${stack}_app`, '--plugin', PLUGIN]);
    expect(status.code, describeRun(status)).to.equal(0);
    expect(status.out.trim().split('\n').pop()).to.equal('Secret injection status: ACTIVE');
  });

  it('rotate rolls the services that use a secret', async () => {
    const stack = `${PREFIX}stack`;
    const before = (await serviceTasks(`${stack}_app`)).length;
    const r = await dso(['rotate', `${stack}_db_password`, '--plugin', PLUGIN]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.out).to.contain(`${stack}_app: rolled`);
    await waitFor('a new task after the roll', 60_000, async () =>
      (await serviceTasks(`${stack}_app`)).length > before ? true : undefined,
    );
  });

  it('a wrong secret id: init and test-vault fail with the cause and the fix; a good one restores the login', async () => {
    // The seed's literal form: accepted, with a warning that ps shows it.
    const wrong = secret(`00000000-0000-4000-8000-${nonce}0000`);
    const r = await dso(['init', '--plugin', PLUGIN, '--vault-secret-id', wrong]);
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.err).to.contain('WARNING: --vault-secret-id was given on the command line');
    expect(r.out)
      .to.match(/Vault login:\s+FAILED/)
      .and.to.contain('invalid role or secret ID');
    expect(r.out)
      .to.contain('vault write -f auth/approle/role/<role>/secret-id')
      .and.to.contain(`docker dso init --plugin ${PLUGIN} --vault-secret-id -`);

    const test = await dso(['system', 'test-vault', '--plugin', PLUGIN]);
    expect(test.code, describeRun(test)).to.equal(1);
    expect(test.out)
      .to.match(/Vault login:\s+FAILED/)
      .and.to.contain('invalid role or secret ID');
    const info = await dso(['system', 'info', '--plugin', PLUGIN]);
    expect(info.code).to.equal(1);
    expect(info.out).to.match(/Token:\s+not logged in: .*invalid role or secret ID/);

    const good = path.join(DIR, 'good-secret-id');
    fs.writeFileSync(good, secretId, { mode: 0o600 });
    const fixed = await dso(['init', '--plugin', PLUGIN, '--vault-secret-id', `@${good}`]);
    expect(fixed.code, describeRun(fixed)).to.equal(0);
    expect(fixed.out).to.match(/Vault login:\s+OK/);
  });
});
