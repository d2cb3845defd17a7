// Helpers for the end-to-end suites, also used by the cluster bed and the bench: the docker
// CLI, the arguments of test services and secrets, bounded polling, the plugin's build and
// status route. Nothing here prints secret values: command errors carry the command line and
// stderr only, callers never pass values on a command line, byte comparisons give lengths.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { capture } from '../support/capture';
import { repoRoot } from '../support/openbao';

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command without a shell; never rejects (look at `code`). */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 120_000,
        killSignal: 'SIGKILL',
        env: opts.env ?? process.env,
        cwd: opts.cwd ?? repoRoot,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
        resolve({ code, stdout: stdout as Buffer, stderr: (stderr as Buffer).toString('utf8') });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs `docker ...` and returns its trimmed stdout; throws with stderr on failure. */
export async function docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const res = await run('docker', args, opts);
  if (res.code !== 0) {
    throw new Error(`docker ${args.join(' ')} failed (${res.code}): ${res.stderr.trim()}`);
  }
  return res.stdout.toString('utf8').trim();
}

/** The busybox image scripts/docker-up.sh imports (and cluster-bed.sh on each node): no registry. */
export const BUSYBOX_IMAGE = 'dso-busybox:latest';

/**
 * `docker service create` arguments for a test service with the `secrets`: returns at once,
 * uses the local image as it is, stops in 1 s. `options` are further flags (--replicas,
 * --restart-condition, ...); `command` is what its task runs.
 */
export function serviceCreateArgs(
  name: string,
  secrets: string[],
  options: string[] = [],
  command = ['sleep', '3600'],
): string[] {
  return [
    'service',
    'create',
    '--detach',
    '--no-resolve-image',
    '--stop-grace-period',
    '1s',
    ...options,
    '--name',
    name,
    ...secrets.flatMap((secret) => ['--secret', secret]),
    BUSYBOX_IMAGE,
    ...command,
  ];
}

/** `docker secret create` arguments for a secret served by `driver` (it takes no data). */
export function driverSecretArgs(driver: string, name: string, labels: string[]): string[] {
  return ['secret', 'create', '--driver', driver, ...labels.flatMap((label) => ['--label', label]), name];
}

/** `docker ...` that may fail (removals of things that may not exist). */
export async function dockerQuiet(args: string[], timeoutMs = 60_000): Promise<boolean> {
  return (await run('docker', args, { timeoutMs })).code === 0;
}

let detachFlag: Promise<string[]> | undefined;

/**
 * `docker stack deploy ...` that returns without waiting for convergence with either CLI:
 * a current CLI waits unless told `--detach=true`, Debian's 20.10 CLI has no such flag
 * (and never waits).
 */
export async function stackDeploy(args: string[]): Promise<string> {
  detachFlag ??= run('docker', ['stack', 'deploy', '--help']).then((r) =>
    r.stdout.toString('utf8').includes('--detach') ? ['--detach=true'] : [],
  );
  return docker(['stack', 'deploy', ...(await detachFlag), ...args]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a value other than undefined, at most `timeoutMs`.
 * A probe error is retried, unless it carries `fatal: true`.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 500,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      last = err;
    }
    if (Date.now() > end) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

/** The non-blank lines of a command's output, trimmed. */
export function lines(s: string): string[] {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** The docker CLI against one engine: `out` is trimmed stdout (throws on failure), `ok` whether it succeeded. */
export interface DockerCli {
  out(args: string[]): Promise<string>;
  ok(args: string[]): Promise<boolean>;
}

/** The host's engine, as `docker` finds it. */
export const hostDocker: DockerCli = { out: (args) => docker(args), ok: (args) => dockerQuiet(args) };

/**
 * Removes every stack, service and secret whose name starts with `prefix` from `cli`'s
 * swarm, and waits until their containers on its engine are gone. Safe when nothing is there.
 */
export async function removeByPrefix(prefix: string, cli: DockerCli = hostDocker): Promise<void> {
  const named = async (kind: 'stack' | 'service' | 'secret') =>
    lines(await cli.out([kind, 'ls', '--format', '{{.Name}}'])).filter((n) => n.startsWith(prefix));
  // Nothing to list (e.g. not a swarm yet) is nothing to remove; the waits below retry instead.
  for (const s of await named('stack').catch(() => [])) await cli.ok(['stack', 'rm', s]);
  const services = await named('service').catch(() => []);
  if (services.length) await cli.ok(['service', 'rm', ...services]);
  await waitFor(`services ${prefix}* to be removed`, 60_000, async () =>
    (await named('service')).length === 0 ? true : undefined,
  );
  await waitFor(`secrets ${prefix}* to be removed`, 60_000, async () => {
    const left = await named('secret');
    if (left.length === 0) return true;
    await cli.ok(['secret', 'rm', ...left]);
    return undefined;
  });
  await waitFor(`containers of ${prefix}* to stop`, 60_000, async () => {
    const ids = lines(
      await cli.out([
        'ps',
        '--filter',
        'label=com.docker.swarm.service.name',
        '--format',
        '{{.ID}} {{.Label "com.docker.swarm.service.name"}}',
      ]),
    ).filter((l) => (l.split(' ')[1] ?? '').startsWith(prefix));
    return ids.length === 0 ? true : undefined;
  });
}

export interface TaskState {
  state: string;
  error: string;
  id: string;
}

/** The tasks of a service, newest first. */
export async function serviceTasks(service: string): Promise<TaskState[]> {
  const out = await docker([
    'service',
    'ps',
    service,
    '--no-trunc',
    '--format',
    '{{.ID}}\t{{.CurrentState}}\t{{.Error}}',
  ]);
  return lines(out).map((l) => {
    const [id, state, error] = l.split('\t');
    return { id: id ?? '', state: state ?? '', error: error ?? '' };
  });
}

/** The IDs of the containers of `service` running on this engine. */
export async function serviceContainers(service: string): Promise<string[]> {
  return lines(await docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]));
}

/**
 * Waits for a running task of `service` and returns its container ID. Fails fast, with
 * the task's error, when the task fails instead.
 */
export async function runningContainer(service: string, timeoutMs = 90_000): Promise<string> {
  return waitFor(`a running task of ${service}`, timeoutMs, async () => {
    const tasks = await serviceTasks(service);
    const failed = tasks.find((t) => /^(Failed|Rejected)/.test(t.state));
    if (failed && !tasks.some((t) => t.state.startsWith('Running'))) {
      throw Object.assign(new Error(`task of ${service} failed: ${failed.error}`), { fatal: true });
    }
    if (!tasks.some((t) => t.state.startsWith('Running'))) return undefined;
    return (await serviceContainers(service))[0];
  });
}

/** Asserts equality of bytes without ever printing them: the message gives lengths only. */
export function expectSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  expect(
    actual.equals(expected),
    `${what}: read ${actual.length} bytes, expected ${expected.length} bytes (contents differ)`,
  ).to.equal(true);
}

/** Reads a file in a container as raw bytes. */
export async function readInContainer(container: string, file: string): Promise<Buffer> {
  const res = await run('docker', ['exec', container, 'cat', file]);
  if (res.code !== 0) throw new Error(`reading ${file} in ${container} failed: ${res.stderr.trim()}`);
  return res.stdout;
}

/** GET on the plugin's socket, e.g. /DSO.Status; parses JSON. */
export function pluginGet(socketPath: string, route: string, timeoutMs = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: route, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        capture(text); // status replies are scanned for leaks like everything else
        if ((res.statusCode ?? 0) >= 300) return reject(new Error(`GET ${route}: HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`GET ${route}: not JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${route}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Host path of a managed plugin's socket. */
export async function pluginSocket(plugin: string, socketName = 'dso.sock'): Promise<{ id: string; socket: string }> {
  const id = await docker(['plugin', 'inspect', '--format', '{{.Id}}', plugin]);
  return { id, socket: path.join('/run/docker/plugins', id, socketName) };
}

/** Lines that dockerd logged for a plugin since `offset` in its log file ([] if none is readable). */
export function pluginLogLines(logFile: string, offset: number, pluginId: string): string[] {
  let data: Buffer;
  try {
    const fd = fs.openSync(logFile, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const from = Math.min(offset, size);
      data = Buffer.alloc(size - from);
      fs.readSync(fd, data, 0, data.length, from);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  return data
    .toString('utf8')
    .split('\n')
    .filter((l) => l.includes(`plugin=${pluginId}`));
}

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** A fresh host directory for a plugin's /etc/dso (mode 0700) holding its token file (0600). */
export function freshTokenDir(etcDir: string, token: string): void {
  fs.rmSync(etcDir, { recursive: true, force: true });
  fs.mkdirSync(etcDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(etcDir, 'token'), token, { mode: 0o600 });
}

/**
 * plugin/build.sh: builds the rootfs and (re)creates the plugin `name` with token login to
 * `vaultAddr` (the token in /etc/dso/token), the extra `settings` (NAME=value) and /etc/dso
 * mounted from `etcDir`. `env` is the build's environment (e.g. DOCKER_HOST for another engine).
 */
export async function buildTokenPlugin(
  name: string,
  etcDir: string,
  vaultAddr: string,
  settings: string[] = [],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<void> {
  const build = await run(
    'bash',
    [
      path.join(repoRoot, 'plugin', 'build.sh'),
      '--name',
      name,
      '--fresh',
      `VAULT_ADDR=${vaultAddr}`,
      'VAULT_AUTH_METHOD=token',
      'VAULT_TOKEN_FILE=/etc/dso/token',
      ...settings,
      `etc-dso.source=${etcDir}`,
    ],
    { env: opts.env, timeoutMs: opts.timeoutMs ?? 480_000 },
  );
  if (build.code !== 0) throw new Error(`plugin/build.sh failed (${build.code}):\n${build.stderr.trim()}`);
}

/**
 * A fresh /etc/dso with the token, then buildTokenPlugin(); `dsoJson`, when given, becomes
 * /etc/dso/dso.json (for settings the plugin's config.json does not let `docker plugin set` change).
 */
export async function createTokenPlugin(
  name: string,
  etcDir: string,
  token: string,
  vaultAddr: string,
  settings: string[] = [],
  dsoJson?: Record<string, unknown>,
): Promise<void> {
  freshTokenDir(etcDir, token);
  if (dsoJson) fs.writeFileSync(path.join(etcDir, 'dso.json'), JSON.stringify(dsoJson), { mode: 0o600 });
  await buildTokenPlugin(name, etcDir, vaultAddr, settings);
}

/** Removes what createTokenPlugin made, and the suite's services, stacks and secrets. */
export async function removeTokenPlugin(name: string, etcDir: string, prefix: string): Promise<void> {
  await removeByPrefix(prefix).catch(() => undefined);
  await dockerQuiet(['plugin', 'rm', '-f', name], 120_000);
  fs.rmSync(etcDir, { recursive: true, force: true });
}

/** docker-up.sh, then removes leftovers of an earlier run of the suite. */
export async function engineReady(prefix: string): Promise<void> {
  const up = await run('bash', [path.join(repoRoot, 'scripts', 'docker-up.sh')], { timeoutMs: 300_000 });
  if (up.code !== 0) throw new Error(`scripts/docker-up.sh failed: ${up.stderr.trim()}`);
  await removeByPrefix(prefix);
}
