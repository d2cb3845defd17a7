// The `docker dso` commands against a small fake of the docker CLI and of the plugin's
// routes: what they print, what they change, and the exit code, without any network.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { DockerClient, PluginInfo, RunOptions, RunResult } from '../../src/cli/docker';
import { engineAbsent, fakeEngine } from './fakes';
import { EXIT } from '../../src/cli/errors';
import type { VaultHealth } from '../../src/cli/health';
import {
  FetchRecord,
  PluginApi,
  PluginRouteError,
  PluginStatus,
  RotationReport,
  TestVaultResult,
} from '../../src/cli/plugin-client';
import { cliHarness } from '../support/cli';
import { tempDir } from '../support/cleanup';

const NOW = Date.parse('2030-01-01T12:00:00Z');

interface FakePlugin {
  Id: string;
  Name: string;
  Enabled: boolean;
  Settings: { Env: string[]; Mounts: { Name: string; Source: string; Destination: string }[] };
  Config: { Interface: { Socket: string }; Env: { Name: string; Settable: string[] }[] };
}

const SETTABLE = [
  'VAULT_ADDR',
  'VAULT_NAMESPACE',
  'VAULT_AUTH_METHOD',
  'VAULT_AUTH_MOUNT',
  'VAULT_TOKEN_FILE',
  'VAULT_ROLE_ID',
  'VAULT_ROLE_ID_FILE',
  'VAULT_SECRET_ID_FILE',
  'VAULT_SECRET_ID_WRAPPED',
  'VAULT_CACERT',
  'DSO_ALLOWED_PATHS',
  'DSO_LOG_LEVEL',
  'DSO_TIMEOUT',
];

function fakePlugin(name: string, env: string[], source: string, enabled = true): FakePlugin {
  return {
    Id: 'f'.repeat(64),
    Name: `${name}:latest`,
    Enabled: enabled,
    Settings: {
      Env: ['DSO_SOCKET=/run/docker/plugins/dso.sock', ...env],
      Mounts: [{ Name: 'etc-dso', Source: source, Destination: '/etc/dso' }],
    },
    Config: {
      Interface: { Socket: 'dso.sock' },
      Env: [...SETTABLE.map((n) => ({ Name: n, Settable: ['value'] })), { Name: 'DSO_SOCKET', Settable: [] }],
    },
  };
}

/**
 * A Docker engine that knows plugins, services, secrets, tasks and the swarm state, reached
 * through the Engine API (facts, plugin settings) or the docker CLI (install, stack deploy).
 * Every call is recorded in docker's own verbs: ['docker', ...argv] for the CLI,
 * ['engine', 'plugin', 'set', name, ...pairs] and so on for the API.
 */
class FakeDocker {
  plugins = new Map<string, FakePlugin>();
  services: Record<string, unknown>[] = [];
  secrets: Record<string, unknown>[] = [];
  tasks: Record<string, unknown>[] = [];
  swarm = { LocalNodeState: 'active', ControlAvailable: true };
  calls: string[][] = [];
  inputs: (string | undefined)[] = [];
  deployResult: RunResult = { code: 0, stdout: 'Creating service x_web\n', stderr: '' };
  /** Whether `stack deploy` knows --detach (a current CLI) or not (Debian's 20.10). */
  deployHasDetach = true;
  /** Running/desired tasks of the stack's one service (x_web), one answer per poll. */
  stackTasks: Array<[number, number]> = [];
  /** What `docker plugin install` finds in the image: its privileges; undefined: no such image. */
  image: { privileges: string[] } | undefined = {
    privileges: ['network: [host]', 'mount: [/var/run/docker.sock]', 'mount: [/etc/dso]'],
  };

  private plugin(name: string): FakePlugin | undefined {
    return this.plugins.get(name.replace(/:latest$/, ''));
  }

  readonly engine = fakeEngine(async (method, [kind, id, action], _query, body) => {
    const record = (...verbs: string[]) => {
      this.calls.push(['engine', ...verbs]);
      this.inputs.push(undefined);
    };
    if (kind === 'info') return { Swarm: this.swarm };
    if (kind === 'plugins') {
      record('plugin', action === 'json' ? 'inspect' : action, id, ...((body as string[] | undefined) ?? []));
      const p = this.plugin(id);
      if (!p) return engineAbsent(`plugin "${id}"`);
      if (action === 'json') return p;
      if (action === 'enable' || action === 'disable') p.Enabled = action === 'enable';
      if (action === 'set') {
        for (const pair of body as string[]) {
          const [k, v] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
          if (k === 'etc-dso.source') p.Settings.Mounts[0].Source = v;
          else p.Settings.Env = [...p.Settings.Env.filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
        }
      }
      return undefined;
    }
    const named = (list: Record<string, unknown>[]) =>
      list.find((x) => x.ID === id || (x.Spec as { Name: string }).Name === id);
    if (kind === 'services' && id) return named(this.services) ?? engineAbsent(`service ${id}`);
    if (kind === 'services') {
      record('stack', 'services');
      const [running, desired] = this.stackTasks.shift() ?? [1, 1];
      return [{ ID: 'w', Spec: { Name: 'x_web' }, ServiceStatus: { RunningTasks: running, DesiredTasks: desired } }];
    }
    if (kind === 'secrets') return named(this.secrets) ?? engineAbsent(`secret ${id}`);
    if (kind === 'tasks') return this.tasks;
    throw new Error(`fake engine: unexpected ${method} /${kind}`);
  });

  run = async (cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> => {
    this.calls.push([cmd, ...args]);
    this.inputs.push(options.input === undefined ? undefined : String(options.input));
    const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string) => ({ code: 1, stdout: '', stderr });
    const [a, b] = args;
    const last = args[args.length - 1];
    if (a === 'plugin' && b === 'install') {
      // As the docker CLI: show the privileges and ask, unless granted up front or none are asked.
      if (!this.image) return fail(`Error response from daemon: pull access denied for ${last}`);
      const privileges = this.image.privileges;
      const shown = privileges.length
        ? `Plugin "${last}" is requesting the following privileges:\n${privileges.map((p) => ` - ${p}\n`).join('')}Do you grant the above permissions? [y/N] `
        : '';
      if (
        !args.includes('--grant-all-permissions') &&
        privileges.length &&
        String(options.input ?? '')
          .trim()
          .toLowerCase() !== 'y'
      ) {
        return {
          code: 1,
          stdout: shown,
          stderr: `Error response from daemon: permission denied while installing plugin ${last}`,
        };
      }
      const alias = args[args.indexOf('--alias') + 1];
      this.plugins.set(alias, fakePlugin(alias, [], '/etc/dso', false));
      return ok(`Installed plugin ${last}\n`);
    }
    if (a === 'stack' && b === 'deploy' && args.includes('--help')) {
      const detach = this.deployHasDetach ? '  -d, --detach   Exit immediately\n' : '';
      return ok(`Options:\n  -c, --compose-file strings\n${detach}`);
    }
    if (a === 'stack' && b === 'deploy' && args.includes('--detach=false') && !this.deployHasDetach) {
      return fail('unknown flag: --detach');
    }
    if (a === 'stack' && b === 'deploy') {
      options.onStdout?.(this.deployResult.stdout);
      options.onStderr?.(this.deployResult.stderr);
      return this.deployResult;
    }
    return fail(`fake docker: unexpected ${args.join(' ')}`);
  };
}

/** A status with only the fields a test sets (the real one is checked against the contract). */
type Loose<T> = T extends (infer U)[] ? Loose<U>[] : T extends object ? { [K in keyof T]?: Loose<T[K]> } : T;

class FakePluginApi implements PluginApi {
  status$: Loose<PluginStatus> = {
    version: '0.1.0',
    problems: [],
    settings: { vaultAddresses: ['http://127.0.0.1:8200'], authMethod: 'approle', authMount: 'approle' },
  };
  test: TestVaultResult = {
    ok: true,
    login: { method: 'approle', mount: 'auth/approle', ttlSeconds: 3600, policies: ['default', 'app'] },
  };
  testedWith: (string | undefined)[] = [];
  queried: (string | undefined)[] = [];
  async status(service?: string) {
    this.queried.push(service);
    const secrets = (this.status$.secrets ?? []).filter(
      (r) => !service || r.serviceId === service || r.service === service,
    );
    return { ...this.status$, secrets } as PluginStatus;
  }
  async testVault(reference?: string) {
    this.testedWith.push(reference);
    return this.test;
  }
  rotation: RotationReport | Error = new Error('no rotation set');
  async rotate() {
    if (this.rotation instanceof Error) throw this.rotation;
    return this.rotation;
  }
  // No compose project in these tests: the plain-host journey has its own (plainhost.test.ts).
  runtimeDir = '/nonexistent/plugin-runtime';
  async composeUp(): Promise<never> {
    throw new Error('no compose project in this test');
  }
  async composeDown(): Promise<never> {
    throw new Error('no compose project in this test');
  }
  async composeList() {
    return { Projects: [] };
  }
}

function setup(options: { stdin?: string; cwd?: string; health?: VaultHealth; noBuildScript?: boolean } = {}) {
  const docker = new FakeDocker();
  const api = new FakePluginApi();
  const buildCalls: string[][] = [];
  const { cli } = cliHarness(
    {
      readStdin: async () => Buffer.from(options.stdin ?? ''),
      stdinIsTTY: false,
      env: {},
      cwd: options.cwd ?? os.tmpdir(),
    },
    {
      docker: new DockerClient(docker.run, [], () => docker.engine),
      runner: async (cmd, args) => {
        buildCalls.push([cmd, ...args]);
        const name = args[args.indexOf('--name') + 1];
        docker.plugins.set(name, fakePlugin(name, [], '/etc/dso', false));
        return { code: 0, stdout: '', stderr: '' };
      },
      connect: (_p: PluginInfo) => api,
      health: async (address) =>
        options.health ?? {
          address,
          reachable: true,
          status: 200,
          state: 'active',
          healthy: true,
          sealed: false,
          initialized: true,
          version: '2.1.0',
        },
      now: () => NOW,
      sleep: async () => undefined,
      buildScript: options.noBuildScript ? undefined : '/repo/plugin/build.sh',
      version: '0.1.0',
    },
  );
  return { docker, api, cli, buildCalls };
}

const tmpDir = () => tempDir('dso-cli-unit-');

/** setup() with the plugin dso installed and enabled. */
function setupWithPlugin(options: Parameters<typeof setup>[0] = {}) {
  const t = setup(options);
  t.docker.plugins.set('dso', fakePlugin('dso', [], tmpDir()));
  return t;
}

describe('cli: docker dso init', () => {
  /** `init` with a literal token for http://a:8200, the credential files in `dir`. */
  const tokenInit = (dir: string) => [
    'init',
    '--vault-address',
    'http://a:8200',
    '--vault-auth-method',
    'token',
    '--vault-token',
    'tok-1234567',
    '--config-dir',
    dir,
  ];

  it("configures an existing plugin from the seed's flags: files 0600, settings, disable/set/enable, login test", async () => {
    const dir = tmpDir();
    const { docker, api, cli } = setup();
    docker.plugins.set('dso', fakePlugin('dso', [], dir));
    const r = await cli(
      'init',
      '--mode',
      'cloud',
      '--provider',
      'vault',
      '--vault-address',
      'http://127.0.0.1:8200',
      '--vault-auth-method',
      'approle',
      '--vault-role-id',
      'role-123',
      '--vault-secret-id',
      'sid-abcdef',
      '--config-dir',
      dir,
    );
    expect(r.code, r.err).to.equal(0);
    expect(fs.readFileSync(path.join(dir, 'secret-id'), 'utf8')).to.equal('sid-abcdef\n');
    expect(fs.statSync(path.join(dir, 'secret-id')).mode & 0o777).to.equal(0o600);
    expect(fs.readFileSync(path.join(dir, 'role-id'), 'utf8')).to.equal('role-123\n');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dso-cli.json'), 'utf8'))).to.include({
      mode: 'cloud',
      provider: 'vault',
    });

    const verbs = docker.calls.filter((c) => c[1] === 'plugin').map((c) => c[2]);
    expect(verbs.filter((v) => v !== 'inspect')).to.deep.equal(['disable', 'set', 'enable']);
    const set = docker.calls.find((c) => c[2] === 'set')!;
    expect(set).to.include.members([
      'VAULT_ADDR=http://127.0.0.1:8200',
      'VAULT_AUTH_METHOD=approle',
      'VAULT_ROLE_ID_FILE=/etc/dso/role-id',
      'VAULT_ROLE_ID=',
      'VAULT_SECRET_ID_FILE=/etc/dso/secret-id',
    ]);
    expect(JSON.stringify(docker.calls), 'no credential on any docker command line').not.to.contain('sid-abcdef');
    expect(r.err, 'a literal secret id is accepted with a warning').to.contain(
      'WARNING: --vault-secret-id was given on the command line',
    );
    expect(api.testedWith).to.deep.equal([undefined]);
    expect(r.out).to.contain('Vault login:     OK: approle at auth/approle, token TTL 1h');
    expect(r.out).not.to.contain('sid-abcdef');
  });

  it('reads the secret id from standard input and never writes it anywhere but the file', async () => {
    const dir = tmpDir();
    const { docker, cli } = setup({ stdin: 'from-stdin-secret\n' });
    docker.plugins.set(
      'dso',
      fakePlugin('dso', ['VAULT_ADDR=http://v:8200', 'VAULT_AUTH_METHOD=approle', 'VAULT_ROLE_ID=r'], dir),
    );
    const r = await cli('init', '--vault-secret-id', '-');
    expect(r.code, r.err).to.equal(0);
    expect(r.err).not.to.contain('WARNING');
    expect(fs.readFileSync(path.join(dir, 'secret-id'), 'utf8')).to.equal('from-stdin-secret\n');
    expect(JSON.stringify(docker.calls) + r.out + r.err).not.to.contain('from-stdin-secret');
  });

  it('creates the plugin with plugin/build.sh when it is absent, then sets and enables it', async () => {
    const dir = tmpDir();
    // The token on standard input; the two addresses in either of the forms --vault-address takes.
    const init = (...addresses: string[]) => [
      'init',
      '--plugin',
      'dso-x',
      ...addresses.flatMap((address) => ['--vault-address', address]),
      '--vault-auth-method',
      'token',
      '--vault-token',
      '-',
      '--config-dir',
      dir,
    ];
    const { cli, buildCalls } = setup();
    const r = await cli(...init('http://a:8200,http://b:8200'));
    expect(r.code, r.err).to.equal(EXIT.USAGE);
    expect(r.err, 'an empty token is refused before anything changes').to.contain('--vault-token: the value is empty');
    expect(buildCalls).to.deep.equal([]);

    const s = setup({ stdin: 'tok-123456' });
    const r2 = await s.cli(...init('http://a:8200', 'http://b:8200'));
    expect(r2.code, r2.err).to.equal(0);
    expect(s.buildCalls).to.deep.equal([
      ['bash', '/repo/plugin/build.sh', '--name', 'dso-x', '--fresh', '--no-enable'],
    ]);
    const set = s.docker.calls.find((c) => c[2] === 'set')!;
    expect(set).to.include.members([
      'VAULT_ADDR=http://a:8200,http://b:8200',
      'VAULT_TOKEN_FILE=/etc/dso/token',
      `etc-dso.source=${dir}`,
    ]);
    expect(s.docker.plugins.get('dso-x')!.Enabled).to.equal(true);
    expect(fs.readFileSync(path.join(dir, 'token'), 'utf8')).to.equal('tok-123456\n');
  });

  describe('--plugin-image: the privileges the image asks for need --grant-all-permissions', () => {
    const args = (dir: string) => [...tokenInit(dir), '--plugin-image', 'registry.example:5000/dso/vault:0.2.0'];

    it('without the flag: lists the privileges, installs nothing, changes nothing (exit 2)', async () => {
      const dir = tmpDir();
      const { docker, cli, buildCalls } = setup();
      const r = await cli(...args(dir));
      expect(r.code, r.err).to.equal(EXIT.USAGE);
      expect(r.err).to.contain('the plugin image registry.example:5000/dso/vault:0.2.0 asks for these privileges:');
      expect(r.err)
        .to.contain('  - network: [host]')
        .and.contain('  - mount: [/var/run/docker.sock]')
        .and.contain('nothing was installed');
      expect(r.err).to.contain('--grant-all-permissions');
      expect(docker.plugins.size).to.equal(0);
      expect(buildCalls).to.deep.equal([]);
      const installs = docker.calls.filter((c) => c[2] === 'install');
      expect(
        installs.every((c) => !c.includes('--grant-all-permissions')),
        "never granted on the user's behalf",
      ).to.equal(true);
      expect(docker.calls.some((c) => c[2] === 'set' || c[2] === 'enable')).to.equal(false);
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });

    it('with the flag: shows the privileges, installs with them granted, then configures the plugin', async () => {
      const dir = tmpDir();
      const { docker, cli } = setup();
      const r = await cli(...args(dir), '--grant-all-permissions');
      expect(r.code, r.err).to.equal(0);
      expect(r.out)
        .to.contain('granting the privileges it asks for (--grant-all-permissions):')
        .and.contain('  - mount: [/var/run/docker.sock]');
      expect(docker.calls.filter((c) => c[2] === 'install').pop()).to.deep.equal([
        'docker',
        'plugin',
        'install',
        '--grant-all-permissions',
        '--disable',
        '--alias',
        'dso',
        'registry.example:5000/dso/vault:0.2.0',
      ]);
      expect(docker.plugins.get('dso')!.Enabled).to.equal(true);
    });

    it('an image that asks for no privileges is installed without the flag; an image docker cannot pull is an error', async () => {
      const s1 = setup();
      s1.docker.image = { privileges: [] };
      expect((await s1.cli(...args(tmpDir()))).code).to.equal(0);
      expect(s1.docker.plugins.has('dso')).to.equal(true);
      const s2 = setup();
      s2.docker.image = undefined;
      const r = await s2.cli(...args(tmpDir()), '--grant-all-permissions');
      expect(r.code).to.equal(EXIT.FAILURE);
      expect(r.err).to.contain('pull access denied');
      expect(s2.docker.plugins.size).to.equal(0);
    });
  });

  it('tells the exact commands when the plugin is absent and cannot be built here (exit 3)', async () => {
    const { cli, buildCalls } = setup({ noBuildScript: true });
    const r = await cli(...tokenInit(tmpDir()));
    expect(r.code).to.equal(EXIT.PLUGIN);
    expect(r.err)
      .to.contain('the DSO plugin dso is not installed')
      .and.to.contain('docker plugin install --grant-all-permissions --disable --alias dso');
    expect(buildCalls).to.deep.equal([]);
  });

  it('refuses invalid values and misconfigurations before changing anything (exit 2)', async () => {
    const dir = tmpDir();
    const { docker, cli } = setup();
    docker.plugins.set('dso', fakePlugin('dso', [], dir));
    const cases: [string[], string][] = [
      [['--mode', 'local'], 'mode "cloud"'],
      [['--provider', 'aws'], '--provider vault or --provider openbao'],
      [['--vault-address', 'vault:8200'], 'not an http(s):// address'],
      [['--vault-auth-method', 'ldap'], 'must be one of token, approle, jwt, cert'],
      [['--set', 'NOPE=1'], 'unknown setting'],
      [['--set', 'DSO_LOG_LEVEL=loud'], 'DSO_LOG_LEVEL=loud is invalid'],
      [['--set', 'DSO_SOCKET=/x'], 'fixed inside the managed plugin'],
      [
        ['--vault-address', 'http://v:8200', '--vault-auth-method', 'approle'],
        'VAULT_ROLE_ID or VAULT_ROLE_ID_FILE must be set',
      ],
      [
        ['--vault-address', 'http://v:8200', '--vault-auth-method', 'approle', '--vault-role-id', 'r'],
        'VAULT_SECRET_ID_FILE is not set',
      ],
      [['--vault-cacert', '/nonexistent/ca.pem'], 'cannot read /nonexistent/ca.pem'],
    ];
    for (const [args, message] of cases) {
      const r = await cli('init', '--config-dir', dir, ...args);
      expect(r.code, args.join(' ')).to.equal(EXIT.USAGE);
      expect(r.err, args.join(' ')).to.contain(message);
    }
    expect(
      docker.calls.filter((c) => c[2] !== 'inspect'),
      'nothing but inspections',
    ).to.deep.equal([]);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('refuses settings that point at credential files the directory does not hold', async () => {
    const dir = tmpDir();
    const { docker, cli } = setup();
    docker.plugins.set(
      'dso',
      fakePlugin(
        'dso',
        ['VAULT_ADDR=http://v:8200', 'VAULT_AUTH_METHOD=token', 'VAULT_TOKEN_FILE=/etc/dso/token'],
        dir,
      ),
    );
    const r = await cli('init', '--set', 'DSO_LOG_LEVEL=debug');
    expect(r.code).to.equal(EXIT.USAGE);
    expect(r.err).to.contain(`${dir}/token does not exist: give --vault-token`);
  });

  it('exits 1 and shows the cause and the fix when the login through the plugin fails', async () => {
    const dir = tmpDir();
    const { docker, api, cli } = setup();
    docker.plugins.set(
      'dso',
      fakePlugin(
        'dso',
        ['VAULT_ADDR=http://v:8200', 'VAULT_AUTH_METHOD=approle', 'VAULT_ROLE_ID_FILE=/etc/dso/role-id'],
        dir,
      ),
    );
    fs.writeFileSync(path.join(dir, 'role-id'), 'r\n');
    api.test = {
      ok: false,
      stage: 'login',
      code: 'ERR_LOGIN',
      error: 'approle login at auth/approle failed: invalid role or secret ID',
    };
    const r = await cli('init', '--vault-secret-id', '@/dev/null');
    expect(r.code).to.equal(EXIT.USAGE); // /dev/null is empty
    fs.writeFileSync(path.join(dir, 'sid'), 'wrong-secret-id\n');
    const r2 = await cli('init', '--vault-secret-id', `@${path.join(dir, 'sid')}`);
    expect(r2.code).to.equal(EXIT.FAILURE);
    expect(r2.out)
      .to.contain('Vault login:     FAILED')
      .and.to.contain('invalid role or secret ID')
      .and.to.contain('vault write -f auth/approle/role/<role>/secret-id');
  });
});

describe('cli: docker dso system info / test-vault', () => {
  it('shows mode, provider, addresses, auth method, plugin state, token TTL, health and no problems (exit 0)', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'dso-cli.json'), JSON.stringify({ mode: 'cloud', provider: 'openbao' }));
    const { docker, api, cli } = setup();
    docker.plugins.set(
      'dso',
      fakePlugin('dso', ['VAULT_ADDR=http://127.0.0.1:8200', 'VAULT_AUTH_METHOD=approle'], dir),
    );
    api.status$.vault = {
      activeAddress: 'http://127.0.0.1:8200',
      token: {
        loggedIn: true,
        ttlSeconds: 3500,
        expiresAt: '2030-01-01T12:58:20.000Z',
        renewable: true,
        policies: ['default', 'app'],
      },
    };
    const r = await cli('system', 'info');
    expect(r.code, r.out + r.err).to.equal(0);
    expect(r.out).to.match(/Plugin:\s+dso: enabled \(id ffffffffffff\), version 0\.1\.0/);
    expect(r.out)
      .to.match(/Mode:\s+cloud/)
      .and.to.match(/Provider:\s+openbao/);
    expect(r.out).to.match(/Vault addresses:\s+http:\/\/127\.0\.0\.1:8200/);
    expect(r.out).to.match(/Auth method:\s+approle \(mount auth\/approle\)/);
    expect(r.out).to.match(
      /Token:\s+logged in, TTL 58m20s, expires 2030-01-01T12:58:20.000Z \(in 58m20s\), renewable, policies default, app/,
    );
    expect(r.out).to.match(/Vault health:\s+http:\/\/127\.0\.0\.1:8200 \(in use\): active, unsealed, version 2\.1\.0/);
    expect(r.out).to.match(/Problems:\s+none/);

    const json = JSON.parse((await cli('system', 'info', '--json')).out);
    expect(json.plugin).to.include({ name: 'dso', state: 'enabled' });
    expect(json.token.ttlSeconds).to.equal(3500);
    expect(json.health[0].healthy).to.equal(true);
  });

  it('shows an HA cluster as the plugin sees it: the address that answered, active and standby nodes, a sealed one skipped', async () => {
    const { docker, api, cli } = setup();
    const [a, b, c] = ['http://10.0.0.1:8200', 'http://10.0.0.2:8200', 'http://10.0.0.3:8200'];
    docker.plugins.set('dso', fakePlugin('dso', [`VAULT_ADDR=${a},${b},${c}`, 'VAULT_AUTH_METHOD=approle'], tmpDir()));
    api.status$.vault = {
      activeAddress: b,
      addresses: [
        {
          address: a,
          state: 'sealed',
          skipped: true,
          lastError: 'Vault answered 503 for secret/data/app: Vault is sealed',
        },
        { address: b, state: 'standby', skipped: false },
        { address: c, state: 'active', skipped: false },
      ],
      token: { loggedIn: true },
    };
    const r = await cli('system', 'info');
    expect(r.out).to.contain(
      `${a}: sealed, skipped by requests until it answers again (Vault answered 503 for secret/data/app: Vault is sealed)`,
    );
    expect(r.out).to.contain(`${b}: standby, answered last`);
    expect(r.out).to.contain(`${c}: active`);
    expect(r.out).to.match(/Plugin sees:/);
    expect(JSON.parse((await cli('system', 'info', '--json')).out).vaultNodes).to.have.length(3);
  });

  it('shows the allowed paths and the allowed writes', async () => {
    const { docker, api, cli } = setup();
    docker.plugins.set('dso', fakePlugin('dso', ['VAULT_ADDR=http://127.0.0.1:8200'], tmpDir()));
    api.status$.settings = {
      ...api.status$.settings,
      allowedPaths: ['secret/data/{stack}/*'],
      allowedWrites: ['transit/encrypt/app?plaintext', 'x/y?a,b'],
    };
    const r = await cli('system', 'info');
    expect(r.out)
      .to.match(/Allowed paths:\s+secret\/data\/\{stack\}\/\*/)
      .and.to.match(/Allowed writes:\s+transit\/encrypt\/app\?plaintext; x\/y\?a,b/);
    expect(JSON.parse((await cli('system', 'info', '--json')).out).allowedWrites).to.deep.equal([
      'transit/encrypt/app?plaintext',
      'x/y?a,b',
    ]);
  });

  it('shows invalid settings and an unhealthy Vault as problems (exit 1)', async () => {
    const { docker, api, cli } = setup({
      health: {
        address: 'http://127.0.0.1:8200',
        reachable: true,
        status: 503,
        state: 'sealed',
        healthy: false,
        sealed: true,
      },
    });
    docker.plugins.set('dso', fakePlugin('dso', ['VAULT_ADDR=http://127.0.0.1:8200'], tmpDir()));
    api.status$ = {
      version: '0.1.0',
      settings: { vaultAddresses: ['http://127.0.0.1:8200'], authMethod: 'token' },
      problems: ['VAULT_TOKEN_FILE is not set: the token method reads the token from this file, e.g. /etc/dso/token'],
    };
    const r = await cli('system', 'info');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.out)
      .to.contain('invalid setting: VAULT_TOKEN_FILE is not set')
      .and.to.contain('no Vault address is healthy')
      .and.to.contain('sealed');
  });

  it("shows the rotation watcher's health: where it runs, its driver names, its last pass and error; a failed pass is a problem", async () => {
    const { docker, api, cli } = setup();
    docker.plugins.set('dso', fakePlugin('dso', ['VAULT_ADDR=http://127.0.0.1:8200'], tmpDir()));
    api.status$.rotation = {
      intervalMs: 60_000,
      default: false,
      leader: true,
      driverNames: ['dso'],
      lastPass: { at: '2030-01-01T11:59:50.000Z', outcome: 'ok', durationMs: 12, rolls: 1 },
      lastError: null,
      unmanagedLeases: [],
    };
    const ok = await cli('system', 'info');
    expect(ok.code, ok.out).to.equal(0);
    expect(ok.out).to.match(
      /Rotation:\s+only for secrets labelled dso.rotate=true, checked every 1m\n\s+watcher: runs here \(this node is the swarm leader\)\n\s+driver names: dso\n\s+last pass: 2030-01-01T11:59:50.000Z \(10s ago\): ok, 1 roll\n/,
    );
    expect(ok.out, 'the key column keeps its width').to.match(/\nVault addresses: http/);
    api.status$.rotation = {
      ...api.status$.rotation,
      lastPass: { at: '2030-01-01T11:59:50.000Z', outcome: 'failed', durationMs: 5000, rolls: 0 },
      lastError: {
        at: '2030-01-01T11:59:55.000Z',
        message: 'cannot list tasks: Docker Engine at /var/run/docker.sock unreachable: no answer within 5000 ms',
      },
    };
    const failed = await cli('system', 'info');
    expect(failed.code).to.equal(EXIT.FAILURE);
    expect(failed.out).to.contain('last error: 2030-01-01T11:59:55.000Z (5s ago): cannot list tasks');
    expect(failed.out).to.contain("rotation's last pass failed: cannot list tasks");
    const json = JSON.parse((await cli('system', 'info', '--json')).out);
    expect(json.rotation).to.deep.include({ leader: true, driverNames: ['dso'] });
    api.status$.rotation = {
      ...api.status$.rotation,
      leader: false,
      lastPass: { at: '2030-01-01T11:59:50.000Z', outcome: 'not-leader', durationMs: 3, rolls: 0 },
      lastError: null,
    };
    expect((await cli('system', 'info')).out).to.match(/watcher: idle here \(runs on the swarm leader\)/);
  });

  it('says absent or disabled, with the fix (exit 3)', async () => {
    const { docker, cli } = setup();
    const absent = await cli('system', 'info');
    expect(absent.code).to.equal(EXIT.PLUGIN);
    expect(absent.out)
      .to.match(/Plugin:\s+dso: absent/)
      .and.to.contain('docker dso init');
    docker.plugins.set(
      'dso',
      fakePlugin('dso', ['VAULT_ADDR=http://127.0.0.1:8200', 'VAULT_AUTH_METHOD=token'], tmpDir(), false),
    );
    const disabled = await cli('system', 'info');
    expect(disabled.code).to.equal(EXIT.PLUGIN);
    expect(disabled.out)
      .to.match(/dso: disabled/)
      .and.to.match(/Auth method:\s+token/)
      .and.to.contain('docker plugin enable dso');
    const test = await cli('system', 'test-vault');
    expect(test.code).to.equal(EXIT.PLUGIN);
    expect(test.err).to.contain('the DSO plugin dso is disabled');
  });

  it('test-vault: OK with the read described but never the value (exit 0)', async () => {
    const { api, cli } = setupWithPlugin();
    api.test = {
      ok: true,
      login: { method: 'approle', mount: 'auth/approle', ttlSeconds: 60, policies: ['p'] },
      read: { path: 'secret/data/app', field: 'password', version: 3, bytes: 12 },
    };
    const r = await cli('system', 'test-vault', '--path', 'secret/data/app#password');
    expect(r.code).to.equal(0);
    expect(api.testedWith).to.deep.equal(['dso://secret/data/app#password']);
    expect(r.out)
      .to.contain('Test read:       OK: secret/data/app#password, version 3, 12 bytes (value not shown)')
      .and.to.contain('Result:          OK');
  });

  it('test-vault: a denied read names the path and the policy line to add (exit 1, also in JSON)', async () => {
    const { api, cli } = setupWithPlugin();
    api.test = {
      ok: false,
      stage: 'read',
      code: 'ERR_VAULT_DENIED',
      login: { method: 'approle', mount: 'auth/approle', ttlSeconds: 60, policies: ['p'] },
      error:
        'permission denied reading secret/data/denied/x: the plugin\'s Vault policy must allow "read" on it (permission denied)',
    };
    const r = await cli('system', 'test-vault', '--path', 'dso://secret/denied/x#v');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.out)
      .to.contain('Test read:       FAILED (dso://secret/denied/x#v)')
      .and.to.contain('Error: permission denied reading secret/data/denied/x');
    expect(r.out)
      .to.contain("Fix:   the plugin's Vault policy does not allow reading secret/data/denied/x")
      .and.to.contain('path "secret/data/denied/x" { capabilities = ["read"] }');
    const json = JSON.parse((await cli('system', 'test-vault', '--path', 'dso://secret/denied/x#v', '--json')).out);
    expect(json).to.include({ ok: false, stage: 'read', code: 'ERR_VAULT_DENIED' });
    expect(json.fix).to.contain('capabilities');
  });

  it('test-vault: invalid settings are reported as such', async () => {
    const { api, cli } = setupWithPlugin();
    api.test = {
      ok: false,
      stage: 'settings',
      code: 'ERR_SETTINGS',
      error: "the DSO plugin's settings are invalid: VAULT_ADDR is not set",
    };
    const r = await cli('system', 'test-vault');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.out).to.contain('Plugin settings: INVALID').and.to.contain('docker dso init');
  });
});

describe('cli: docker dso inspect', () => {
  const service = (secrets: { id: string; name: string; target?: string }[]) => ({
    ID: 'svc1234567890abcdef',
    Spec: {
      Name: 'app',
      TaskTemplate: {
        ContainerSpec: {
          Secrets: secrets.map((s) => ({ SecretID: s.id, SecretName: s.name, File: { Name: s.target ?? s.name } })),
        },
      },
    },
  });
  const dsoSecret = (id: string, name: string, labels: Record<string, string>, driver = 'dso') => ({
    ID: id,
    Spec: { Name: name, Labels: labels, Driver: { Name: driver } },
  });
  const record = (secret: string, extra: Partial<FetchRecord>): FetchRecord => ({
    at: '2030-01-01T11:55:00.000Z',
    service: 'app',
    serviceId: 'svc1234567890abcdef',
    task: 'app.1.abc',
    secret,
    outcome: 'ok',
    durationMs: 12,
    ...extra,
  });

  const runningTask = (id: string, createdAt: string) => ({
    ID: id,
    DesiredState: 'running',
    CreatedAt: createdAt,
    Status: { State: 'running', Err: '' },
  });
  /** The task Docker rejected because the plugin gave it no value for s1. */
  const rejectedTask = () => ({
    ID: 't1',
    DesiredState: 'shutdown',
    CreatedAt: '2030-01-01T11:59:00Z',
    Status: { State: 'rejected', Err: 'secret s1 not found' },
  });
  /** setup() with the plugin dso and the service app: one task, one DSO secret (s1, `name`, of `ref`). */
  function appWithOneSecret(name: string, ref: string, task: Record<string, unknown>) {
    const t = setupWithPlugin();
    t.docker.services.push(service([{ id: 's1', name }]));
    t.docker.secrets.push(dsoSecret('s1', name, { 'dso.ref': ref }));
    t.docker.tasks.push(task);
    return t;
  }

  it('ACTIVE: every DSO secret served; shows reference, last fetch, version, DoNotReuse; plain secrets are named as such', async () => {
    const { docker, api, cli } = setupWithPlugin();
    docker.services.push(
      service([
        { id: 's1', name: 'db_password' },
        { id: 's2', name: 'tls', target: 'tls.pem' },
        { id: 's3', name: 'creds' },
      ]),
    );
    docker.secrets.push(
      dsoSecret('s1', 'db_password', { 'dso.ref': 'dso://secret/data/app/db#password' }),
      { ID: 's2', Spec: { Name: 'tls', Labels: {} } },
      dsoSecret('s3', 'creds', { 'dso.path': 'database/creds/app', 'dso.field': 'username' }, 'dso:latest'),
    );
    docker.tasks.push(runningTask('t1', '2030-01-01T11:55:00Z'));
    api.status$.secrets = [
      record('db_password', { path: 'secret/data/app/db', field: 'password', version: 4, doNotReuse: false }),
      record('creds', {
        path: 'database/creds/app',
        field: 'username',
        leaseExpiresAt: '2030-01-01T13:00:00.000Z',
        doNotReuse: true,
      }),
    ];
    const r = await cli('inspect', 'app');
    expect(r.code, r.out + r.err).to.equal(0);
    expect(api.queried).to.deep.equal(['svc1234567890abcdef']);
    expect(r.out).to.contain('Service app (id svc123456789): 2 secrets from plugin dso (enabled); tasks running: 1');
    expect(r.out).to.match(/reference:\s+dso:\/\/secret\/data\/app\/db#password/);
    expect(r.out).to.match(/last fetch:\s+2030-01-01T11:55:00.000Z \(5m ago\): ok, task app\.1\.abc/);
    expect(r.out).to.match(/version:\s+4/);
    expect(r.out).to.match(/DoNotReuse:\s+false/);
    expect(r.out).to.match(/reference:\s+dso:\/\/database\/creds\/app#username/);
    expect(r.out).to.match(/lease expires:\s+2030-01-01T13:00:00.000Z \(in 1h\)/);
    expect(r.out).to.contain('tls  (not served by DSO: driver none, a plain Swarm secret)');
    expect(r.out.trim().split('\n').pop()).to.equal('Secret injection status: ACTIVE');
  });

  it("FAILED with the plugin's real reason and the fix (exit 1, also in JSON)", async () => {
    const { api, cli } = appWithOneSecret('denied', 'dso://secret/data/denied/x#v', rejectedTask());
    api.status$.secrets = [
      record('denied', {
        outcome: 'error',
        code: 'ERR_VAULT_DENIED',
        path: 'secret/data/denied/x',
        error:
          'permission denied reading secret/data/denied/x: the plugin\'s Vault policy must allow "read" on it (permission denied)',
      }),
    ];
    const r = await cli('inspect', 'app');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.out).to.match(/last error:\s+permission denied reading secret\/data\/denied\/x/);
    expect(r.out).to.contain('path "secret/data/denied/x" { capabilities = ["read"] }');
    expect(r.out.trim().split('\n').pop()).to.equal(
      'Secret injection status: FAILED: denied: permission denied reading secret/data/denied/x: the plugin\'s Vault policy must allow "read" on it (permission denied)',
    );
    const json = JSON.parse((await cli('inspect', 'app', '--json')).out);
    expect(json.status).to.equal('FAILED');
    expect(json.secrets[0]).to.include({ secret: 'denied', code: 'ERR_VAULT_DENIED', dso: true });
  });

  it('a secret never fetched: FAILED when no task runs (with the task error), ACTIVE when tasks run', async () => {
    const { docker, cli } = appWithOneSecret('pw', 'dso://secret/x#y', rejectedTask());
    const r = await cli('inspect', 'app');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.out).to.match(/last fetch:\s+never \(since the plugin started\)/);
    expect(r.out).to.contain(
      'FAILED: pw was never asked of the plugin dso and no task runs (task error: secret s1 not found)',
    );
    docker.tasks.unshift(runningTask('t2', '2030-01-01T11:59:59Z'));
    expect((await cli('inspect', 'app')).code).to.equal(0);
  });

  it('warns, with the command, when running tasks hold leases issued before the plugin started', async () => {
    const { api, cli } = appWithOneSecret(
      'db_user',
      'dso://database/creds/app#username',
      runningTask('t1', '2030-01-01T11:55:00Z'),
    );
    api.status$.rotation = {
      unmanagedLeases: [
        {
          service: 'app',
          serviceId: 'svc1234567890abcdef',
          secret: 'db_user',
          path: 'database/creds/app',
          fix: 'docker service update --force app',
        },
        {
          service: 'other',
          serviceId: 'svc-other',
          secret: 'x',
          path: 'database/creds/x',
          fix: 'docker service update --force other',
        },
      ],
    };
    const r = await cli('inspect', 'app');
    expect(r.out).to.contain(
      'Warning: db_user: running tasks hold leases of database/creds/app issued before the plugin started; they are not renewed and end at their TTL. Run: docker service update --force app',
    );
    expect(r.out).to.not.contain('other');
    const json = JSON.parse((await cli('inspect', 'app', '--json')).out);
    expect(json.warnings).to.have.length(1);
  });

  it('no such service (exit 1); a service without DSO secrets (NONE, exit 1); plugin absent (exit 3)', async () => {
    const { docker, cli } = setupWithPlugin();
    const none = await cli('inspect', 'nope');
    expect(none.code).to.equal(EXIT.FAILURE);
    expect(none.err).to.contain('no such service: nope');
    docker.services.push(service([]));
    const plain = await cli('inspect', 'app');
    expect(plain.code).to.equal(EXIT.FAILURE);
    expect(plain.out).to.contain('Secret injection status: NONE: the service uses no secret of the driver dso');
    docker.plugins.clear();
    docker.services[0] = service([{ id: 's1', name: 'pw' }]);
    docker.secrets.push(dsoSecret('s1', 'pw', { 'dso.ref': 'dso://secret/x#y' }));
    const absent = await cli('inspect', 'app');
    expect(absent.code).to.equal(EXIT.PLUGIN);
    expect(absent.out).to.contain('FAILED: the plugin dso is absent');
  });
});

describe('cli: docker dso up', () => {
  const COMPOSE = `
services:
  web:
    image: app
    environment:
      DB_PASSWORD: dso://secret/data/app/db#password
      MODE: prod
`;

  it('deploys the transformed file on standard input: references only, driver follows --plugin', async () => {
    const dir = path.join(tmpDir(), 'My-Shop');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'compose.yaml'), COMPOSE);
    const { docker, cli } = setup({ cwd: dir });
    docker.plugins.set('dso-x', fakePlugin('dso-x', [], tmpDir()));
    const r = await cli('up', '-d', '--plugin', 'dso-x', '--resolve-image', 'never');
    expect(r.code, r.err).to.equal(0);
    const deploy = docker.calls.find((c) => c[1] === 'stack')!;
    expect(deploy).to.deep.equal([
      'docker',
      'stack',
      'deploy',
      '--compose-file',
      '-',
      '--resolve-image',
      'never',
      'my-shop',
    ]);
    const sent = YAML.parse(docker.inputs[docker.calls.indexOf(deploy)]!);
    expect(sent.services.web.environment).to.deep.equal({ DB_PASSWORD_FILE: '/run/secrets/db_password', MODE: 'prod' });
    expect(sent.secrets.db_password).to.deep.equal({
      driver: 'dso-x',
      labels: { 'dso.ref': 'dso://secret/data/app/db#password' },
    });
    expect(r.out).to.contain(
      'web: DB_PASSWORD -> DB_PASSWORD_FILE=/run/secrets/db_password (secret my-shop_db_password, dso://secret/data/app/db#password)',
    );
    expect(r.out).to.contain('Creating service x_web');
  });

  it('--wait: a current CLI waits (--detach=false); with 20.10 (no such flag) docker dso watches the replicas', async () => {
    const dir = path.join(tmpDir(), 'shop');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'compose.yaml'), COMPOSE);
    for (const current of [true, false]) {
      const { docker, cli } = setupWithPlugin({ cwd: dir });
      docker.deployHasDetach = current;
      docker.stackTasks = [
        [0, 2],
        [1, 2],
        [2, 2],
      ];
      const r = await cli('up', '--wait');
      expect(r.code, r.err).to.equal(0);
      const deploy = docker.calls.find((c) => c[1] === 'stack' && c[2] === 'deploy' && !c.includes('--help'))!;
      const polls = docker.calls.filter((c) => c[0] === 'engine' && c[1] === 'stack' && c[2] === 'services');
      if (current) {
        expect(deploy).to.include('--detach=false');
        expect(polls).to.have.length(0);
      } else {
        expect(deploy.some((a) => a.startsWith('--detach'))).to.equal(false);
        expect(polls).to.have.length(3);
        expect(r.out).to.contain('Waiting for x_web 0/2').and.contain('Stack shop: every service has converged');
      }
    }
  });

  it('--dry-run prints the file and touches no engine', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'app.yml'), COMPOSE);
    const { docker, cli } = setup({ cwd: dir });
    const r = await cli('up', '-f', 'app.yml', 'shop', '--dry-run');
    expect(r.code).to.equal(0);
    expect(YAML.parse(r.out).secrets.db_password.driver).to.equal('dso');
    expect(docker.calls).to.deep.equal([]);
  });

  it('a clear error in a broken swarm state (exit 4), on a worker, and without the plugin (exit 3)', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'compose.yml'), COMPOSE);
    const { docker, cli } = setup({ cwd: dir });
    // (No swarm at all, "inactive", is the plain-host journey: test/unit/plainhost.test.ts.)
    docker.swarm = { LocalNodeState: 'error', ControlAvailable: false };
    const r = await cli('up', 'shop');
    expect(r.code).to.equal(EXIT.DOCKER);
    expect(r.err).to.contain('not in swarm mode (swarm state: error)').and.to.contain('Fix: docker swarm init');
    docker.swarm = { LocalNodeState: 'active', ControlAvailable: false };
    expect((await cli('up', 'shop')).err).to.contain('swarm worker');
    docker.swarm = { LocalNodeState: 'active', ControlAvailable: true };
    const absent = await cli('up', 'shop');
    expect(absent.code).to.equal(EXIT.PLUGIN);
    expect(absent.err).to.contain('the DSO plugin dso is not installed');
    expect(docker.calls.some((c) => c[1] === 'stack')).to.equal(false);
  });

  it('usage and file errors: no compose file (2), bad reference (1), stdin without a stack name (2), deploy failure (1)', async () => {
    const dir = tmpDir();
    const { docker, cli } = setupWithPlugin({ cwd: dir, stdin: COMPOSE });
    const missing = await cli('up');
    expect(missing.code).to.equal(EXIT.USAGE);
    expect(missing.err).to.contain('no compose file in');
    fs.writeFileSync(path.join(dir, 'bad.yml'), 'services: { a: { image: x, environment: { X: "dso://a//b" } } }');
    const bad = await cli('up', '-f', 'bad.yml', 's');
    expect(bad.code).to.equal(EXIT.FAILURE);
    expect(bad.err).to.contain('bad.yml: services.a.environment.X');
    expect((await cli('up', '-f', '-')).code).to.equal(EXIT.USAGE);
    docker.deployResult = { code: 1, stdout: '', stderr: 'failed to create secret' };
    const failed = await cli('up', '-f', '-', 'shop');
    expect(failed.code).to.equal(EXIT.FAILURE);
    expect(failed.err).to.contain('failed to create secret');
  });
});

describe('cli: docker dso rotate', () => {
  it('asks the plugin to roll the services of the secret and reports each (exit 0; 1 when one was not rolled)', async () => {
    const { api, cli } = setupWithPlugin();
    api.rotation = {
      secret: 'pw',
      reason: 'on-demand',
      services: [
        { service: 'app', serviceId: 's1', outcome: 'rolled' },
        { service: 'web', serviceId: 's2', outcome: 'rolled' },
      ],
    };
    const r = await cli('rotate', 'pw');
    expect(r.code).to.equal(0);
    expect(r.out).to.equal('Rotation of pw: 2 services\n  app: rolled\n  web: rolled\n');
    api.rotation = {
      secret: 'pw',
      reason: 'on-demand',
      services: [{ service: 'app', serviceId: 's1', outcome: 'skipped-updating' }],
    };
    const skipped = await cli('rotate', 'pw');
    expect(skipped.code).to.equal(EXIT.FAILURE);
    expect(skipped.out).to.contain('an update of the service is in progress');
    api.rotation = { secret: 'pw', reason: 'on-demand', services: [] };
    expect((await cli('rotate', 'pw')).out).to.contain('No service uses pw');
    const json = JSON.parse((await cli('rotate', 'pw', '--json')).out);
    expect(json).to.include({ ok: true, secret: 'pw' });
  });

  it('a refusal of the plugin (invalid settings) is shown with its fix, never as an unsupported version (exit 1)', async () => {
    const { api, cli } = setupWithPlugin();
    api.rotation = new PluginRouteError(
      'the plugin dso refused POST /DSO.Rotate: VAULT_ADDR is not set',
      'ERR_SETTINGS',
    );
    const r = await cli('rotate', 'pw');
    expect(r.code).to.equal(EXIT.FAILURE);
    expect(r.err)
      .to.contain('VAULT_ADDR is not set')
      .and.contain('docker dso init --plugin dso')
      .and.not.contain('version');
  });
});
