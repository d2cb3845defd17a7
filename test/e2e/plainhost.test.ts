// The guide's plain-host journey end to end, on a Docker engine that is NOT in swarm mode: a
// second dockerd in its own network namespace (plainhost-engine.sh), the managed plugin
// built from plugin/ and created in that engine, a real OpenBao (reached through a forwarder
// on the namespace's bridge) and the tests' PostgreSQL. The guide's compose file, its
// `environment` holding dso:// references as written, goes through `docker dso up -d`; the
// app reads the values from /run/secrets, which are files on a tmpfs that DSO mounted
// itself (/tmp is on disk here), rewritten in place when Vault changes.
//
// Values never appear in output: they are registered with secret(), comparisons are
// booleans, and the CLI's output and the engine's log (the plugin's log) go to the leak scan.
import { expect } from 'chai';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { capture, secret } from '../support/capture';
import { OpenBao, policyToken, repoRoot, startOpenBao } from '../support/openbao';
import { dynamicPolicy, staticReadPolicy } from '../support/policies';
import { configureDatabaseEngine, Postgres, sharedPostgres } from '../support/postgres';
import { startTcpProxy } from '../support/proxy';
import { buildTokenPlugin, run, waitFor } from './docker';

const BASE = '/tmp/dsop';
const ETC_DSO = path.join(BASE, 'etc-dso');
const SOCK = path.join(BASE, 'docker.sock');
// dockerd fixes plugins' runtime directories at /run/docker/plugins/<id>, whatever its exec root.
const RUNTIME = '/run/docker/plugins';
const DATA_ROOT = path.join(BASE, 'data');
const PROJECT_DIR = path.join(BASE, 'project');
const DOCKER_CONFIG = path.join(BASE, 'docker-config');
const ENGINE_SCRIPT = path.join(repoRoot, 'test', 'e2e', 'plainhost-engine.sh');
const HOST_IP = '10.214.9.1';
const PLUGIN = 'dsop';
const PROJECT = 'dsop-guide';
const ROTATE_INTERVAL_MS = 3_000;
/** The README's bound for revocation once the containers are gone (reaper every 5 s). */
const REVOCATION_BOUND_MS = 15_000;
const DOCKER_CLIS = ['/usr/local/bin/docker', '/usr/bin/docker'].filter((d) => fs.existsSync(d));

interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Every regular file under `dir` that holds one of `values` (paths only, never contents). */
function filesHolding(dir: string, values: Buffer[]): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        let data: Buffer;
        try {
          if (fs.statSync(p).size > 512 * 1024 * 1024) continue;
          data = fs.readFileSync(p);
        } catch {
          continue;
        }
        if (values.some((v) => data.includes(v))) found.push(p);
      }
    }
  };
  walk(dir);
  return found;
}

describe('e2e: plain Docker host (no swarm): docker dso up -d / down with compose', function () {
  this.timeout(300_000);

  let bao: OpenBao;
  let pg: Postgres;
  let fwd: { port: number; close(): Promise<void> } | undefined;
  const nonce = crypto.randomBytes(6).toString('hex');
  const apiKey = secret(`api-kéy-${nonce}`);
  const apiKey2 = secret(`api-key-rotated-${nonce}`);
  const reportKey = secret(`report-key-${nonce}`);
  const reportKey2 = secret(`report-key-2-${nonce}`);
  const values = () => [apiKey, apiKey2, reportKey, reportKey2, ...dbValues].map((v) => Buffer.from(v));
  const dbValues: string[] = [];
  let dbUser = '';
  const env = { ...process.env, DOCKER_HOST: `unix://${SOCK}`, DOCKER_CONFIG, DSO_PLUGIN: PLUGIN };

  async function engine(args: string[], timeoutMs = 60_000): Promise<string> {
    const res = await run('docker', args, { env, timeoutMs });
    if (res.code !== 0)
      throw new Error(`docker ${args.slice(0, 3).join(' ')} failed (${res.code}): ${res.stderr.trim()}`);
    return res.stdout.toString('utf8').trim();
  }

  /** `docker dso ...` through a real docker binary (both CLIs of the machine take turns). */
  async function dso(args: string[], cli = DOCKER_CLIS[0]): Promise<CliResult> {
    const res = await run(cli, ['dso', ...args], { env, cwd: PROJECT_DIR, timeoutMs: 240_000 });
    const out = res.stdout.toString('utf8');
    capture(out);
    capture(res.stderr);
    return { code: res.code, out, err: res.stderr };
  }
  const shown = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`;

  async function container(service: string): Promise<string> {
    return waitFor(`a running container of ${service}`, 60_000, async () => {
      const out = await engine([
        'ps',
        '-q',
        '--filter',
        `label=com.docker.compose.project=${PROJECT}`,
        '--filter',
        `label=com.docker.compose.service=${service}`,
      ]);
      return out.split('\n').filter(Boolean)[0];
    });
  }

  async function readFile(id: string, file: string): Promise<string> {
    const res = await run('docker', ['exec', id, 'cat', file], { env });
    if (res.code !== 0) throw new Error(`reading ${file} failed: ${res.stderr.trim()}`);
    return res.stdout.toString('utf8');
  }

  /** Reads the app's database user (into dbUser) and password (registered for the leak scan). */
  async function readDbCredentials(app: string): Promise<string> {
    dbUser = await readFile(app, '/run/secrets/db_user');
    const dbPassword = secret(await readFile(app, '/run/secrets/db_password'));
    dbValues.push(dbPassword);
    return dbPassword;
  }

  /** Whether the pair logs in to PostgreSQL: retried, as a login may time out on a busy machine. */
  async function logsIn(user: string, password: string, what: string): Promise<boolean> {
    const loggedIn = async () => ((await pg.canLogin(user, password)) ? true : undefined);
    return waitFor(what, 30_000, loggedIn, 1_000).catch(() => false);
  }

  const hostFiles = () => path.join(RUNTIME, pluginId, 'compose', PROJECT);
  let pluginId = '';

  before(async function () {
    this.timeout(600_000);
    // The engine's directory holds the plugin's /etc/dso: token (0600) and the engine socket.
    // Leftovers of an interrupted run first (engine, mounts, namespace), then their files.
    const stop = await run('bash', [ENGINE_SCRIPT, 'stop'], {
      env: { ...process.env, DSOP_BASE: BASE, DSOP_ETC: ETC_DSO },
      timeoutMs: 120_000,
    });
    if (stop.code !== 0) throw new Error(`plainhost-engine.sh stop failed: ${stop.stderr.trim()}`);
    fs.rmSync(BASE, { recursive: true, force: true });
    fs.mkdirSync(ETC_DSO, { recursive: true, mode: 0o700 });
    fs.mkdirSync(PROJECT_DIR, { recursive: true });
    const start = await run('bash', [ENGINE_SCRIPT, 'start'], {
      env: { ...process.env, DSOP_BASE: BASE, DSOP_ETC: ETC_DSO },
      timeoutMs: 180_000,
    });
    if (start.code !== 0) throw new Error(`plainhost-engine.sh start failed: ${start.stderr.trim()}`);

    pg = sharedPostgres();
    bao = await startOpenBao({ audit: false });
    // A forwarder on the bridge, so the plugin in the namespace reaches OpenBao on loopback.
    fwd = await startTcpProxy(Number(new URL(bao.addr).port), HOST_IP);
    await configureDatabaseEngine(bao.api, pg, { role: 'app', defaultTtl: '1h', maxTtl: '2h' });
    await bao.api('POST', 'secret/data/app/config', { data: { api_key: apiKey } });
    await bao.api('POST', 'secret/data/app/report', { data: { key: reportKey } });
    // The README's policies for this journey: KV reads under secret/data/app/*, database/creds/app.
    const token = await policyToken(
      bao,
      'dsop',
      [staticReadPolicy('secret/data/app/*'), dynamicPolicy(['database/creds/app'])].join('\n'),
      '2h',
    );
    fs.writeFileSync(path.join(ETC_DSO, 'token'), token, { mode: 0o600 });
    // The plugin's docker.sock mount is the host engine's: this engine's socket is in /etc/dso.
    fs.writeFileSync(path.join(ETC_DSO, 'dso.json'), JSON.stringify({ DSO_DOCKER_SOCKET: '/etc/dso/engine.sock' }), {
      mode: 0o600,
    });

    await buildTokenPlugin(
      PLUGIN,
      ETC_DSO,
      `http://${HOST_IP}:${fwd.port}`,
      [
        `DSO_ROTATE_INTERVAL=${ROTATE_INTERVAL_MS / 1000}s`,
        'DSO_ALLOWED_PATHS=secret/data/{stack}/*,secret/data/app/*,database/creds/app',
      ],
      { env },
    );
    pluginId = await engine(['plugin', 'inspect', '--format', '{{.Id}}', PLUGIN]);
    const install = await run('bash', [path.join(repoRoot, 'scripts', 'install-cli.sh')], { env, timeoutMs: 180_000 });
    if (install.code !== 0) throw new Error(`scripts/install-cli.sh failed: ${install.stderr.trim()}`);

    // The guide's compose file, references as written; a second service whose secret restarts it.
    fs.writeFileSync(
      path.join(PROJECT_DIR, 'compose.yaml'),
      [
        `name: ${PROJECT}`,
        'services:',
        '  app:',
        '    image: dso-busybox:latest',
        '    command: ["sh", "-c", "exec sleep 3600"]',
        '    stop_grace_period: 1s',
        '    environment:',
        '      API_KEY: dso://secret/app/config#api_key',
        '      DB_USER: dso://database/creds/app#username',
        '      DB_PASSWORD: dso://database/creds/app#password',
        '      LOG_LEVEL: info',
        '  worker:',
        '    image: dso-busybox:latest',
        '    command: ["sh", "-c", "exec sleep 3600"]',
        '    stop_grace_period: 1s',
        '    secrets: [report_key]',
        'secrets:',
        '  report_key:',
        '    driver: dso',
        '    labels:',
        '      dso.ref: "dso://secret/app/report#key"',
        '      dso.rotate: restart',
        '',
      ].join('\n'),
    );
  });

  after(async function () {
    this.timeout(180_000);
    // The plugin logs to this engine's log: it goes to the leak scan.
    try {
      capture(fs.readFileSync(path.join(BASE, 'dockerd.log'), 'utf8'));
    } catch {
      // no log: the engine never started
    }
    fs.rmSync(`/run/dso/${PROJECT}`, { force: true });
    try {
      fs.rmdirSync('/run/dso'); // only when nothing else of DSO is there
    } catch {
      // not empty, or not there
    }
    // DSOP_KEEP=1 leaves the engine running for a look (the next run cleans it up).
    if (!process.env.DSOP_KEEP)
      await run('bash', [ENGINE_SCRIPT, 'stop'], {
        env: { ...process.env, DSOP_BASE: BASE, DSOP_ETC: ETC_DSO },
        timeoutMs: 120_000,
      });
    await fwd?.close();
    if (bao) await bao.stop();
    // Roles left by a failed run: Vault is gone, so drop them here (they end at their TTL anyway).
  });

  it('the engine is not in swarm mode and Docker Compose v2 works with both docker CLIs', async () => {
    expect(await engine(['info', '--format', '{{.Swarm.LocalNodeState}}'])).to.equal('inactive');
    for (const cli of DOCKER_CLIS) {
      const res = await run(cli, ['compose', 'version', '--short'], { env });
      expect(res.code, `${cli} compose version: ${res.stderr}`).to.equal(0);
      expect(res.stdout.toString().trim()).to.match(/^2\./);
    }
  });

  it('docker dso up -d: values in /run/secrets from files on a tmpfs, nowhere else', async () => {
    const up = await dso(['up', '-d']);
    expect(up.code, shown(up)).to.equal(0);
    expect(up.err, 'DSO mounts a tmpfs itself where the plugin directory is on disk').to.contain('Mounted a tmpfs');

    const app = await container('app');
    expect((await readFile(app, '/run/secrets/api_key')) === apiKey, 'API key from /run/secrets/api_key').to.equal(
      true,
    );
    const dbPassword = await readDbCredentials(app);
    expect(dbUser).to.match(/^dso_app_/);
    // Retried, but a wrong pair never logs in.
    const login = await logsIn(
      dbUser,
      dbPassword,
      'a PostgreSQL login with the username and password from /run/secrets',
    );
    expect(login, 'the username and password from /run/secrets log in to PostgreSQL').to.equal(true);
    const worker = await container('worker');
    expect((await readFile(worker, '/run/secrets/report_key')) === reportKey).to.equal(true);

    // <VAR>_FILE variables, no values in the environment or in docker inspect.
    const envOut = (await run('docker', ['exec', app, 'env'], { env })).stdout.toString();
    expect(envOut)
      .to.contain('API_KEY_FILE=/run/secrets/api_key')
      .and.to.contain('DB_PASSWORD_FILE=/run/secrets/db_password');
    expect(/^(API_KEY|DB_USER|DB_PASSWORD)=/m.test(envOut), 'no reference variable is left').to.equal(false);
    const inspect = await engine(['inspect', app, worker]);
    for (const v of [...values(), Buffer.from(dbUser)].filter((v) => v.length)) {
      expect(envOut.includes(v.toString()), 'docker exec env shows no value').to.equal(false);
      expect(inspect.includes(v.toString()), 'docker inspect shows no value').to.equal(false);
    }

    // The files: mode 0400, on a tmpfs, and the only place on the host that holds a value.
    expect(
      (await run('docker', ['exec', app, 'stat', '-c', '%a', '/run/secrets/api_key'], { env })).stdout
        .toString()
        .trim(),
    ).to.equal('400');
    const dir = hostFiles();
    expect(fs.realpathSync(`/run/dso/${PROJECT}`), '/run/dso/<project> leads to the files').to.equal(dir);
    const mounts = JSON.parse(inspect)[0].Mounts as Array<{ Source: string; Destination: string }>;
    expect(mounts.find((m) => m.Destination === '/run/secrets/api_key')?.Source).to.match(
      new RegExp(`^(/run/dso/${PROJECT}|${dir})/api_key$`),
    );
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['api_key', 'db_password', 'db_user', 'report_key']);
    expect(fs.statfsSync(dir).type, 'the files are on a tmpfs').to.equal(0x01021994);
    expect(filesHolding(DATA_ROOT, values()), `files under the engine's data root holding a value`).to.deep.equal([]);
    expect(filesHolding(PROJECT_DIR, values()), 'files under the project directory holding a value').to.deep.equal([]);
  });

  it('docker dso inspect <service> and system info work for the compose project (both docker CLIs)', async () => {
    for (const cli of DOCKER_CLIS) {
      const inspect = await dso(['inspect', 'app'], cli);
      expect(inspect.code, shown(inspect)).to.equal(0);
      expect(inspect.out)
        .to.contain('Secret injection status: ACTIVE')
        .and.to.contain('dso://database/creds/app#password');
      const info = await dso(['system', 'info'], cli);
      expect(info.code, shown(info)).to.equal(0);
      expect(info.out).to.match(new RegExp(`Compose projects: +${PROJECT}: 4 secret files on a tmpfs`));
    }
  });

  it("a Vault change reaches the running container's file in place, without a restart, within two rotation intervals", async () => {
    const app = await container('app');
    const inode = (await run('docker', ['exec', app, 'stat', '-c', '%i', '/run/secrets/api_key'], { env })).stdout
      .toString()
      .trim();
    const startedAt = await engine(['inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', app]);
    await bao.api('POST', 'secret/data/app/config', { data: { api_key: apiKey2 } });
    const changedAt = Date.now();
    await waitFor(
      'the new value in the running container',
      2 * ROTATE_INTERVAL_MS + 2_000,
      async () => ((await readFile(app, '/run/secrets/api_key')) === apiKey2 ? true : undefined),
      200,
    );
    const took = Date.now() - changedAt;
    expect(took, `took ${took} ms`).to.be.below(2 * ROTATE_INTERVAL_MS + 1_000);
    expect(
      (await run('docker', ['exec', app, 'stat', '-c', '%i', '/run/secrets/api_key'], { env })).stdout
        .toString()
        .trim(),
      'same inode',
    ).to.equal(inode);
    expect(
      await engine(['inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', app]),
      'the container was not restarted',
    ).to.equal(startedAt);
  });

  it("dso.rotate=restart restarts the service's container with the new value instead", async () => {
    const worker = await container('worker');
    const startedAt = await engine(['inspect', '--format', '{{.State.StartedAt}}', worker]);
    await bao.api('POST', 'secret/data/app/report', { data: { key: reportKey2 } });
    await waitFor(
      'the worker restarted',
      2 * ROTATE_INTERVAL_MS + 15_000,
      async () =>
        (await engine(['inspect', '--format', '{{.State.StartedAt}}', worker])) !== startedAt ? true : undefined,
      250,
    );
    expect(
      (await readFile(worker, '/run/secrets/report_key')) === reportKey2,
      'the restarted container reads the new value',
    ).to.equal(true);
  });

  it('docker dso rotate <secret>: fresh database credentials in place; the old user is revoked', async () => {
    const app = await container('app');
    const startedAt = await engine(['inspect', '--format', '{{.State.StartedAt}}', app]);
    const rotate = await dso(['rotate', 'db_password'], DOCKER_CLIS[DOCKER_CLIS.length - 1]);
    expect(rotate.code, shown(rotate)).to.equal(0);
    const oldUser = dbUser;
    const dbPassword = await readDbCredentials(app);
    expect(dbUser, 'a new user').to.not.equal(oldUser);
    const login = await logsIn(dbUser, dbPassword, 'a login with the new credentials');
    expect(login, 'the new username and password log in').to.equal(true);
    expect(await engine(['inspect', '--format', '{{.State.StartedAt}}', app]), 'without a restart').to.equal(startedAt);
    await waitFor(`the old user to be dropped within ${REVOCATION_BOUND_MS} ms`, REVOCATION_BOUND_MS, async () =>
      (await pg.roles(oldUser)).length === 0 ? true : undefined,
    );
  });

  it('docker dso down removes the files and, once the containers are gone, the database user', async () => {
    const down = await dso(['down'], DOCKER_CLIS[DOCKER_CLIS.length - 1]);
    expect(down.code, shown(down)).to.equal(0);
    expect(fs.existsSync(hostFiles()), "the project's files are removed").to.equal(false);
    expect(fs.existsSync(`/run/dso/${PROJECT}`), 'and the /run/dso link').to.equal(false);
    expect(await engine(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`])).to.equal('');
    const downAt = Date.now();
    await waitFor(`the database user to be dropped within ${REVOCATION_BOUND_MS} ms`, REVOCATION_BOUND_MS, async () =>
      (await pg.roles(dbUser)).length === 0 ? true : undefined,
    );
    expect(Date.now() - downAt).to.be.below(REVOCATION_BOUND_MS);
  });
});
