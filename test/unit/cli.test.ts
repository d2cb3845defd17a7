// `docker dso` as Docker runs it: the metadata handshake, the arguments Docker passes, the
// command-line parser, help and exit codes, and the small pieces the commands share.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { commandHelp, CommandSpec, parseCommandLine } from '../../src/cli/args';
import { findCommand, metadata, runCli, splitInvocation } from '../../src/cli/cli';
import { hostPathOf, sameName } from '../../src/cli/context';
import { checkCredential, readCredentials, writePrivateFile } from '../../src/cli/credentials';
import { DockerClient, engineEndpoint, engineFor } from '../../src/cli/docker';
import { DockerApi } from '../../src/docker/api';
import { CliError, EXIT, UsageError } from '../../src/cli/errors';
import { fixFor } from '../../src/cli/fixes';
import { healthState } from '../../src/vault/errors';
import { PluginClient, PluginRouteError } from '../../src/cli/plugin-client';
import { loadSettings } from '../../src/config/settings';
import { createApp } from '../../src/plugin/app';
import { StatusStore } from '../../src/status/store';
import { buildPlugin } from '../../src/wiring';
import { silentLogger } from '../../src/log';
import { errorAndFix, formatDuration, formatTime, keyValues } from '../../src/cli/format';
import { cliHarness, CliHarness } from '../support/cli';
import { tempDir } from '../support/cleanup';
import { rejectedWith, thrownBy } from './helpers';

const SPEC: CommandSpec = {
  path: ['demo'],
  summary: 'a demo command',
  options: [
    { name: 'name', short: 'n', type: 'string', valueName: 'NAME', description: 'a name' },
    { name: 'addr', type: 'string', multiple: true, description: 'addresses' },
    { name: 'kind', type: 'string', choices: ['a', 'b'], description: 'kind' },
    { name: 'flag', short: 'x', type: 'boolean', description: 'a flag' },
  ],
  args: [
    { name: 'first', required: true, description: 'first' },
    { name: 'second', description: 'second' },
  ],
};

const usage = (fn: () => unknown): UsageError => thrownBy(UsageError, fn);

/** A context whose output is kept; no Docker, no plugin. */
function quietContext(): CliHarness {
  return cliHarness(
    { readStdin: async () => Buffer.alloc(0), stdinIsTTY: false, env: {}, cwd: '/' },
    {
      // An engine socket that does not exist: the engine "does not answer".
      docker: new DockerClient(
        async () => ({
          code: 1,
          stdout: '',
          stderr: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock',
        }),
        [],
        () => new DockerApi('/nonexistent/docker.sock'),
      ),
      runner: async () => ({ code: 1, stdout: '', stderr: '' }),
      connect: () => {
        throw new Error('no plugin in this test');
      },
      health: async (address) => ({ address, reachable: false, state: 'unreachable', healthy: false }),
      now: () => Date.parse('2030-01-01T00:00:00Z'),
      sleep: async () => undefined,
      version: '9.9.9',
    },
  );
}

describe('cli: Docker CLI plugin protocol', () => {
  it('answers docker-cli-plugin-metadata with the fields Docker 20.10+ expects', async () => {
    const { ctx, out } = quietContext();
    const code = await runCli(['docker-cli-plugin-metadata'], () => ctx);
    expect(code).to.equal(0);
    const meta = JSON.parse(out.join(''));
    expect(meta.SchemaVersion).to.equal('0.1.0');
    expect(meta.Vendor).to.be.a('string').and.not.equal('');
    expect(meta.Version).to.equal('9.9.9');
    expect(meta.ShortDescription).to.be.a('string').with.length.below(80);
    expect(meta).to.have.property('URL');
    expect(metadata('1.0.0').Version).to.equal('1.0.0');
  });

  it("strips the plugin name Docker passes first, and docker's global flags before it", () => {
    expect(splitInvocation(['dso', 'system', 'info'])).to.deep.equal({ dockerArgs: [], args: ['system', 'info'] });
    expect(splitInvocation(['-D', '--context', 'prod', 'dso', 'inspect', 'x'])).to.deep.equal({
      dockerArgs: ['-D', '--context', 'prod'],
      args: ['inspect', 'x'],
    });
    expect(splitInvocation(['-H=tcp://h:2376', '--tlsverify', 'dso', 'up'])).to.deep.equal({
      dockerArgs: ['-H=tcp://h:2376', '--tlsverify'],
      args: ['up'],
    });
    // A context named "dso" is a flag value, not the plugin name.
    expect(splitInvocation(['--context', 'dso', 'dso', 'up'])).to.deep.equal({
      dockerArgs: ['--context', 'dso'],
      args: ['up'],
    });
    // Run directly (not through docker): the arguments are ours.
    expect(splitInvocation(['system', 'info'])).to.deep.equal({ dockerArgs: [], args: ['system', 'info'] });
    expect(splitInvocation(['inspect', 'dso'])).to.deep.equal({ dockerArgs: [], args: ['inspect', 'dso'] });
  });

  it("passes docker's global flags on to every docker command it runs", async () => {
    const calls: string[][] = [];
    const docker = new DockerClient(
      async (cmd, args) => {
        calls.push([cmd, ...args]);
        return { code: 0, stdout: '  -d, --detach   Exit immediately', stderr: '' };
      },
      ['--context', 'prod'],
      () => new DockerApi('/nonexistent/docker.sock'),
    );
    expect(await docker.stackDeployCanWait()).to.equal(true);
    expect(calls[0]).to.deep.equal(['docker', '--context', 'prod', 'stack', 'deploy', '--help']);
  });

  it('reaches the engine the docker CLI would: -H, --context, DOCKER_HOST, DOCKER_CONTEXT, the current context', () => {
    const config = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-cli-contexts-'));
    const context = (name: string, host: string) => {
      const dir = path.join(config, 'contexts', 'meta', createHash('sha256').update(name).digest('hex'));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(
        path.join(dir, 'meta.json'),
        JSON.stringify({ Name: name, Endpoints: { docker: { Host: host } } }),
      );
    };
    context('prod', 'unix:///srv/prod.sock');
    context('mine', 'unix:///srv/mine.sock');
    const env = { DOCKER_CONFIG: config };
    expect(engineEndpoint([], env)).to.equal('unix:///var/run/docker.sock');
    expect(engineEndpoint(['-H', 'unix:///a.sock'], { ...env, DOCKER_HOST: 'unix:///b.sock' })).to.equal(
      'unix:///a.sock',
    );
    expect(engineEndpoint(['--host=unix:///a.sock'], env)).to.equal('unix:///a.sock');
    expect(engineEndpoint(['--context', 'prod'], { ...env, DOCKER_HOST: 'unix:///b.sock' })).to.equal(
      'unix:///srv/prod.sock',
    );
    expect(engineEndpoint([], { ...env, DOCKER_HOST: 'unix:///b.sock', DOCKER_CONTEXT: 'prod' })).to.equal(
      'unix:///b.sock',
    );
    expect(engineEndpoint([], { ...env, DOCKER_CONTEXT: 'prod' })).to.equal('unix:///srv/prod.sock');
    fs.writeFileSync(path.join(config, 'config.json'), JSON.stringify({ currentContext: 'mine' }));
    expect(engineEndpoint([], env)).to.equal('unix:///srv/mine.sock');
    expect(engineEndpoint(['--context', 'default'], env)).to.equal('unix:///var/run/docker.sock');
    const missing = thrownBy(CliError, () => engineEndpoint(['--context', 'nope'], env));
    expect(missing.exitCode).to.equal(EXIT.DOCKER);
    expect(missing.message).to.contain('docker context "nope" not found');
    fs.rmSync(config, { recursive: true, force: true });
  });

  it('refuses an engine endpoint that is not a Unix socket on this host, saying why', () => {
    const err = thrownBy(CliError, () => engineFor('tcp://10.0.0.5:2376'));
    expect(err.exitCode).to.equal(EXIT.DOCKER);
    expect(err.message).to.contain("the plugin's socket is there").and.contain('tcp://10.0.0.5:2376');
    expect(engineFor('unix:///var/run/docker.sock')).to.be.instanceOf(DockerApi);
  });

  it('says the engine does not answer (exit 4) when its socket is absent', async () => {
    const docker = new DockerClient(
      async () => ({ code: 0, stdout: '', stderr: '' }),
      [],
      () => new DockerApi('/nonexistent/docker.sock'),
    );
    const err = await docker.swarm().then(
      () => undefined,
      (e: CliError) => e,
    );
    expect(err?.exitCode).to.equal(EXIT.DOCKER);
    expect(err?.message).to.contain('the Docker engine does not answer');
  });
});

describe('cli: command line', () => {
  it('parses long, short, inline, repeated and boolean options and arguments', () => {
    const p = parseCommandLine(SPEC, ['--name', 'x', 'one', '--addr=a', '--addr', 'b', '-x', 'two', '--kind=b']);
    expect(p.options).to.deep.equal({ name: 'x', addr: ['a', 'b'], flag: true, kind: 'b' });
    expect(p.args).to.deep.equal({ first: 'one', second: 'two' });
    expect(parseCommandLine(SPEC, ['-nfoo', 'one']).options.name).to.equal('foo');
    expect(parseCommandLine(SPEC, ['--flag=false', 'one']).options.flag).to.equal(false);
    expect(parseCommandLine(SPEC, ['one', '--', '--name']).args.second).to.equal('--name');
    expect(parseCommandLine(SPEC, ['-', '-n', '-']).args.first, 'a lone "-" is an argument').to.equal('-');
  });

  it('reports usage errors precisely', () => {
    expect(usage(() => parseCommandLine(SPEC, ['one', '--nmae', 'x'])).message).to.contain('unknown flag --nmae');
    expect(usage(() => parseCommandLine(SPEC, ['one', '--nmae', 'x'])).fix).to.contain('did you mean --name');
    expect(usage(() => parseCommandLine(SPEC, ['one', '-z'])).message).to.contain('unknown flag -z');
    expect(usage(() => parseCommandLine(SPEC, ['one', '--name'])).message).to.contain('--name needs a value');
    expect(usage(() => parseCommandLine(SPEC, ['one', '--kind', 'c'])).message).to.contain('must be one of a, b');
    expect(usage(() => parseCommandLine(SPEC, ['one', '--flag=yes'])).message).to.contain('takes no value');
    expect(usage(() => parseCommandLine(SPEC, [])).message).to.contain('missing argument FIRST');
    expect(usage(() => parseCommandLine(SPEC, ['a', 'b', 'c'])).message).to.contain('unexpected argument "c"');
  });

  it('lets --help through even when arguments are missing', () => {
    expect(parseCommandLine(SPEC, ['--help']).options.help).to.equal(true);
    expect(parseCommandLine(SPEC, ['-h']).options.help).to.equal(true);
  });

  it('writes help with usage, every option, choices and repeatability', () => {
    const help = commandHelp(SPEC, 'FOOTER');
    expect(help).to.contain('Usage:  docker dso demo [OPTIONS] FIRST [SECOND]');
    for (const o of ['-n, --name NAME', '--addr VALUE', '--kind', '-x, --flag', '-h, --help'])
      expect(help).to.contain(o);
    expect(help).to.contain('(one of: a, b)').and.to.contain('(may be repeated)').and.to.contain('FOOTER');
  });

  it('finds commands, including the two-word system commands and flags before the command', () => {
    expect(findCommand(['system', 'info']).command?.spec.path).to.deep.equal(['system', 'info']);
    expect(findCommand(['--plugin', 'x', 'system', '--json', 'test-vault']).rest).to.deep.equal([
      '--plugin',
      'x',
      '--json',
    ]);
    expect(findCommand(['inspect', 'svc']).rest).to.deep.equal(['svc']);
    expect(findCommand([]).help).to.contain('Commands:');
    expect(findCommand(['system']).help).to.contain('test-vault');
    expect(findCommand(['help', 'dso']).help, '`docker help dso`').to.contain('Commands:');
    expect(findCommand(['help', 'up']).help).to.contain('docker dso up');
  });
});

describe('cli: dispatcher and exit codes', () => {
  /** Each run in a context of its own. */
  const cli = (args: string[]) => quietContext().cli(...args);

  it('prints help for no command, --help, and each command, with the exit codes (exit 0)', async () => {
    for (const args of [
      [],
      ['--help'],
      ['help'],
      ['init', '--help'],
      ['system', 'info', '-h'],
      ['system', 'test-vault', '--help'],
      ['inspect', '--help'],
      ['up', '--help'],
      ['rotate', '--help'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).to.equal(0);
      expect(r.out, args.join(' ')).to.contain('Usage:');
    }
    const r = await cli(['up', '--help']);
    expect(r.out).to.contain('Exit codes:').and.to.contain('3  the DSO plugin is absent');
    expect((await cli(['--help'])).out).to.contain('4  the Docker engine');
  });

  it('documents every flag of init that the seed uses', async () => {
    const r = await cli(['init', '--help']);
    for (const flag of [
      '--mode',
      '--provider',
      '--vault-address',
      '--vault-auth-method',
      '--vault-role-id',
      '--vault-secret-id',
      '--vault-token',
      '--vault-cacert',
      '--vault-namespace',
      '--config-dir',
      '--plugin',
    ]) {
      expect(r.out).to.contain(flag);
    }
  });

  it('exits 2 on an unknown command or flag, with a hint', async () => {
    const unknown = await cli(['inspcet', 'x']);
    expect(unknown.code).to.equal(EXIT.USAGE);
    expect(unknown.err)
      .to.contain('unknown command: docker dso inspcet')
      .and.to.contain('did you mean: docker dso inspect');
    const info = await cli(['info']);
    expect(info.err).to.contain('docker dso system info');
    const flag = await cli(['inspect', 'x', '--bogus']);
    expect(flag.code).to.equal(EXIT.USAGE);
    expect(flag.err).to.contain('unknown flag --bogus');
    expect((await cli(['system', 'nope'])).code).to.equal(EXIT.USAGE);
    expect((await cli(['inspect'])).code).to.equal(EXIT.USAGE);
  });

  it('exits 4 when the Docker engine does not answer', async () => {
    const r = await cli(['system', 'info']);
    expect(r.code).to.equal(EXIT.DOCKER);
    expect(r.err).to.contain('the Docker engine does not answer').and.to.contain('Fix:');
  });

  it('prints its version', async () => {
    expect((await cli(['version'])).out).to.equal('docker-dso 9.9.9\n');
    expect((await cli(['--version'])).out).to.equal('docker-dso 9.9.9\n');
  });

  it('refuses a malformed --plugin name (exit 2)', async () => {
    const r = await cli(['system', 'info', '--plugin', 'Bad Name']);
    expect(r.code).to.equal(EXIT.USAGE);
    expect(r.err).to.contain('invalid plugin name');
  });
});

describe('cli: credentials', () => {
  const io = (stdin: string) => ({
    out: () => undefined,
    err: () => undefined,
    readStdin: async () => Buffer.from(stdin),
    stdinIsTTY: false,
    env: {},
    cwd: os.tmpdir(),
  });

  it('reads a credential from standard input, a file, or the argument, trimming the line end', async () => {
    const file = path.join(tempDir('dso-cli-unit-'), 'id');
    fs.writeFileSync(file, 'from-file\n');
    const got = await readCredentials(
      [
        { flag: '--a', spec: '-' },
        { flag: '--b', spec: `@${file}` },
        { flag: '--c', spec: 'literal' },
      ],
      io('from-stdin\r\n'),
    );
    expect(got.get('--a')).to.deep.equal({ value: 'from-stdin', from: 'stdin' });
    expect(got.get('--b')).to.deep.equal({ value: 'from-file', from: 'file' });
    expect(got.get('--c')).to.deep.equal({ value: 'literal', from: 'argument' });
  });

  it('allows standard input for one credential only, and refuses empty, multi-line or spaced values', async () => {
    const twoFromStdin = await rejectedWith(
      UsageError,
      readCredentials(
        [
          { flag: '--a', spec: '-' },
          { flag: '--b', spec: '-' },
        ],
        io('x'),
      ),
    );
    expect(twoFromStdin.message).to.contain('only one credential');
    expect(usage(() => checkCredential('  \n', '--x')).message).to.contain('empty');
    expect(usage(() => checkCredential('a\nb', '--x')).message).to.contain('several lines');
    expect(usage(() => checkCredential('a b', '--x')).message).to.contain('whitespace');
  });

  it('names an unreadable @file without showing anything else', async () => {
    const unreadable = await rejectedWith(
      UsageError,
      readCredentials([{ flag: '--vault-secret-id', spec: '@/nonexistent/dso-x' }], io('')),
    );
    expect(unreadable.message).to.equal('--vault-secret-id: cannot read /nonexistent/dso-x (ENOENT)');
  });

  it('writes private files with mode 0600 from the start, replacing the old one atomically', () => {
    const dir = tempDir('dso-cli-unit-');
    const old = process.umask(0);
    try {
      writePrivateFile(dir, 'secret-id', 'one\n');
      writePrivateFile(dir, 'secret-id', 'two\n');
    } finally {
      process.umask(old);
    }
    const file = path.join(dir, 'secret-id');
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.readFileSync(file, 'utf8')).to.equal('two\n');
    expect(fs.readdirSync(dir), 'no temporary file left').to.deep.equal(['secret-id']);
  });
});

describe('cli: shared helpers', () => {
  it('formats durations and times', () => {
    expect(formatDuration(0)).to.equal('0s');
    expect(formatDuration(59)).to.equal('59s');
    expect(formatDuration(3600)).to.equal('1h');
    expect(formatDuration(3725)).to.equal('1h2m5s');
    expect(formatDuration(90061)).to.equal('1d1h1m1s');
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(formatTime('2029-12-31T23:57:00.000Z', now)).to.equal('2029-12-31T23:57:00.000Z (3m ago)');
    expect(formatTime('2030-01-01T01:00:00.000Z', now)).to.equal('2030-01-01T01:00:00.000Z (in 1h)');
    expect(formatTime(undefined, now)).to.equal('-');
  });

  it('aligns key/value rows, multi-line values included', () => {
    expect(
      keyValues([
        ['A', '1'],
        ['Long key', 'x\ny'],
      ]),
    ).to.equal('A:        1\nLong key: x\n          y');
    expect(errorAndFix('bad', 'do this\nthen that')).to.equal('  Error: bad\n  Fix:   do this\n         then that');
  });

  it('maps plugin paths under /etc/dso to the host directory', () => {
    expect(hostPathOf('/etc/dso/ca.pem', '/srv/dso')).to.equal('/srv/dso/ca.pem');
    expect(hostPathOf('/other/ca.pem', '/srv/dso')).to.equal(undefined);
    expect(hostPathOf(undefined, '/srv/dso')).to.equal(undefined);
  });

  it('treats name and name:latest as the same plugin', () => {
    expect(sameName('dso:latest', 'dso')).to.equal(true);
    expect(sameName('dso', 'dso:latest')).to.equal(true);
    expect(sameName('dso-x:latest', 'dso')).to.equal(false);
    expect(sameName(undefined, 'dso')).to.equal(false);
  });

  it('gives the README troubleshooting fix for each failure', () => {
    const ctx = { plugin: 'dso' };
    expect(
      fixFor(
        { code: 'ERR_LOGIN', error: 'approle login at auth/approle failed: invalid role or secret ID' },
        { ...ctx, method: 'approle', mount: 'auth/approle' },
      ),
    )
      .to.contain('vault write -f auth/approle/role/<role>/secret-id')
      .and.to.contain('docker dso init --plugin dso --vault-secret-id -');
    expect(
      fixFor(
        { code: 'ERR_LOGIN', error: 'token login at auth/token failed: permission denied' },
        { ...ctx, method: 'token' },
      ),
    ).to.contain('--vault-token -');
    expect(fixFor({ code: 'ERR_WRITE_REFUSED', error: 'the reference writes to x' }, ctx))
      .to.contain('DSO_ALLOWED_WRITES')
      .and.contain('--set');
    expect(
      fixFor(
        {
          code: 'ERR_VAULT_DENIED',
          error:
            'permission denied reading secret/data/app/x: the plugin\'s Vault policy must allow "read" on it (permission denied)',
        },
        ctx,
      ),
    ).to.contain('path "secret/data/app/x" { capabilities = ["read"] }');
    expect(fixFor({ code: 'ERR_PATH_REFUSED', error: 'path x is not allowed by DSO_ALLOWED_PATHS' }, ctx)).to.contain(
      'DSO_ALLOWED_PATHS',
    );
    expect(fixFor({ code: 'ERR_VAULT_UNAVAILABLE', error: 'Vault at http://x is unreachable' }, ctx)).to.contain(
      '--vault-address',
    );
    expect(fixFor({ code: 'ERR_TIMEOUT', error: 'no answer' }, ctx)).to.contain('DSO_TIMEOUT');
    expect(fixFor({ code: 'ERR_SETTINGS', error: 'VAULT_ADDR is not set' }, ctx)).to.contain('docker dso init');
    expect(fixFor({ code: 'ERR_VALUE_TOO_LARGE', error: 'x' }, ctx)).to.contain('511,999');
    expect(fixFor({ code: undefined, error: 'x' }, ctx)).to.contain("plugin's log");
    expect(
      fixFor(
        {
          code: 'ERR_VAULT_UNAVAILABLE',
          subcode: 'engine-failed',
          error: 'database engine at database/ failed to serve database/creds/app: connection refused',
        },
        ctx,
      ),
    ).to.contain('database down or role misconfigured');
    expect(
      fixFor(
        {
          code: 'ERR_NOT_FOUND',
          subcode: 'engine-path',
          error: 'database engine at database/ cannot serve database/creds/nope: unknown role',
        },
        ctx,
      ),
    ).to.contain('no such role');
    // The fix follows the code and subcode, not the words of the message.
    expect(fixFor({ code: 'ERR_NOT_FOUND', error: 'x engine at y cannot serve z' }, ctx)).to.contain(
      'nothing is stored at that path',
    );
    const approle = { ...ctx, method: 'approle', mount: 'auth/approle' };
    expect(fixFor({ code: 'ERR_LOGIN', subcode: 'wrapping-token' }, approle)).to.contain('--vault-secret-id-wrapped');
    expect(fixFor({ code: 'ERR_LOGIN', subcode: 'auth-mount' }, approle)).to.contain('vault auth enable approle');
    expect(fixFor({ code: 'ERR_LOGIN', error: 'approle: permission denied, wrapping token' }, approle)).to.contain(
      'vault write -f auth/approle/role/<role>/secret-id',
    );
  });

  it('carries an exit code and a fix on every CLI error', () => {
    const e = new CliError(EXIT.PLUGIN, 'gone', 'bring it back');
    expect(e.exitCode).to.equal(3);
    expect(e.fix).to.equal('bring it back');
  });
});

describe('cli: the plugin socket client', () => {
  let dir: string;
  let server: http.Server | undefined;
  const routes = new Map<string, (body: string) => [number, unknown]>();
  const seen: { method: string; url: string; body: string }[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dso-cli-sock-'));
    routes.clear();
    seen.length = 0;
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        seen.push({ method: req.method ?? '', url: req.url ?? '', body });
        const route = routes.get(`${req.method} ${(req.url ?? '').split('?')[0]}`);
        const [status, reply] = route ? route(body) : [404, { Err: `unknown plugin route ${req.method} ${req.url}` }];
        res.writeHead(status).end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((resolve) => server!.listen(path.join(dir, 'dso.sock'), resolve));
  });

  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const client = () => new PluginClient(path.join(dir, 'dso.sock'), 'dso');

  const SETTINGS = { vaultAddresses: ['http://v:8200'], authMethod: 'approle', authMount: 'approle' };
  const STATUS = { version: '0.1.0', problems: [], settings: SETTINGS, secrets: [], recent: [] };

  const refused = (call: () => Promise<unknown>): Promise<CliError> => rejectedWith(CliError, call());

  it('asks GET /DSO.Status, with ?service= when given', async () => {
    routes.set('GET /DSO.Status', () => [200, STATUS]);
    expect((await client().status('my svc')).version).to.equal('0.1.0');
    expect(seen[0].url).to.equal('/DSO.Status?service=my%20svc');
  });

  it('a reply that does not match the contract is said to be one (exit 3), naming what is wrong', async () => {
    routes.set('GET /DSO.Status', () => [200, { version: '0.1.0', problems: 'none', secrets: [], recent: [] }]);
    const err = await refused(() => client().status());
    expect(err.exitCode).to.equal(EXIT.PLUGIN);
    expect(err.message).to.contain('GET /DSO.Status with a reply this docker dso does not understand');
    expect(err.message).to.contain("must have required property 'settings'").and.contain('/problems must be array');
    expect(err.fix).to.contain('same DSO version');
    routes.set('POST /DSO.TestVault', () => [200, { ok: 'yes' }]);
    expect((await refused(() => client().testVault())).message).to.contain('/ok must be boolean');
  });

  it('posts the reference to /DSO.TestVault as {"Reference": ...}', async () => {
    routes.set('POST /DSO.TestVault', () => [200, { ok: true }]);
    expect(await client().testVault('dso://a/b#c')).to.deep.equal({ ok: true });
    expect(JSON.parse(seen[0].body)).to.deep.equal({ Reference: 'dso://a/b#c' });
  });

  it('rotate: a report; a refusal carries the plugin code and subcode (exit 1), a secret not of this plugin its fix', async () => {
    routes.set('POST /DSO.Rotate', (body) => {
      const name = JSON.parse(body).Secret;
      if (name === 'mine') return [200, { secret: 'mine', reason: 'on-demand', services: [] }];
      if (name === 'broken') return [500, { Err: 'VAULT_ADDR is not set', code: 'ERR_SETTINGS' }];
      return [404, { Err: `no secret named ${name} uses this plugin as its driver`, code: 'ERR_NOT_FOUND' }];
    });
    expect(await client().rotate('mine')).to.deep.equal({ secret: 'mine', reason: 'on-demand', services: [] });
    const other = await refused(() => client().rotate('other'));
    expect(other.exitCode).to.equal(EXIT.FAILURE);
    expect(other.message).to.contain('no secret named other');
    expect(other.fix).to.contain('docker secret ls');
    const broken = await refused(() => client().rotate('broken'));
    expect(broken).to.be.instanceOf(PluginRouteError);
    expect(broken).to.include({ exitCode: EXIT.FAILURE, code: 'ERR_SETTINGS' });
    expect(broken.message).to.contain('VAULT_ADDR is not set').and.not.contain('version');
  });

  it("the plugin's own routes satisfy the contract, also with invalid settings (rotate and compose say why, never 'unsupported')", async () => {
    const { settings, problems } = loadSettings({});
    expect(problems).to.not.deep.equal([]);
    const plugin = buildPlugin(settings, problems, silentLogger());
    const app = createApp({ ...plugin, logger: silentLogger(), status: new StatusStore(), timeoutMs: 5_000 });
    await new Promise((resolve) => server?.close(resolve));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server!.listen(path.join(dir, 'dso.sock'), resolve));
    const status = await client().status();
    expect(status.problems).to.deep.equal(problems);
    expect(await client().testVault()).to.include({ ok: false, stage: 'settings', code: 'ERR_SETTINGS' });
    const rotate = await refused(() => client().rotate('pw'));
    expect(rotate).to.include({ exitCode: EXIT.FAILURE, code: 'ERR_SETTINGS' });
    expect(rotate.message).to.contain(problems[0]);
    const secrets = [{ Name: 'pw', Service: 'web', Labels: { 'dso.ref': 'dso://secret/app#pw' } }];
    const up = await refused(() => client().composeUp({ Project: 'shop', Secrets: secrets }));
    expect(up).to.include({ exitCode: EXIT.FAILURE, code: 'ERR_SETTINGS' });
    expect(up.message).to.contain(problems[0]);
    expect(await client().composeList()).to.deep.equal({ Projects: [] });
  });

  it('a socket that does not answer is exit 3, with where to look', async () => {
    const gone = new PluginClient(path.join(dir, 'nothing.sock'), 'dso');
    const err = await rejectedWith(CliError, gone.status());
    expect(err.exitCode).to.equal(EXIT.PLUGIN);
    expect(err.message).to.contain('does not answer').and.to.contain('ENOENT');
    expect(err.fix).to.contain('docker plugin disable dso && docker plugin enable dso');
  });

  it('reads Vault health codes as Vault documents them', () => {
    expect(healthState(200)).to.equal('active');
    expect(healthState(429)).to.equal('standby');
    expect(healthState(473)).to.equal('standby');
    expect(healthState(501)).to.equal('uninitialized');
    expect(healthState(503)).to.equal('sealed');
    expect(healthState(500)).to.equal(undefined);
  });
});
