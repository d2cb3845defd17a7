// The Docker side of `docker dso`. Facts (plugins, the swarm, services, secrets, tasks,
// containers) and plugin settings go through the one Engine API client the plugin uses too
// (../docker/api.ts), over the engine socket the user's docker reaches: -H, DOCKER_HOST or
// the docker context, as the docker CLI chooses it. The `docker` binary runs only where the
// user's own CLI behaviour is the point (plugin install with its privilege prompt, stack
// deploy, compose), with an argv array (never a shell string) and the global flags the user
// gave `docker` passed on. Credentials are never on any of these command lines.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DockerApi, DockerContainer, DockerInfo, SwarmSecret, SwarmServiceFull, SwarmTask } from '../docker/api';
import { DEFAULT_DOCKER_SOCKET, PluginInfo, pluginInfo } from '../docker/objects';
import { CliError, EXIT, ExitCode } from './errors';

export type { PluginInfo };

export interface RunOptions {
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
  /** Called with output as it arrives (the result still holds all of it). */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command; tests pass a fake. */
export type Runner = (command: string, args: string[], options?: RunOptions) => Promise<RunResult>;

/** Environment for child `docker` calls: the CLI-plugin handshake variables are the parent's, not theirs. */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('DOCKER_CLI_PLUGIN_')) out[k] = v;
  return out;
}

export function processRunner(env: NodeJS.ProcessEnv = process.env): Runner {
  return (command, args, options = {}) =>
    new Promise((resolve) => {
      const child = spawn(command, args, { cwd: options.cwd, env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timer: NodeJS.Timeout | undefined;
      if (options.timeoutMs) {
        timer = setTimeout(() => {
          stderr +=
            `\n(${path.basename(command)} did not finish within ` +
            `${Math.round(options.timeoutMs! / 1000)}s and was stopped)`;
          child.kill('SIGKILL');
        }, options.timeoutMs);
      }
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        options.onStdout?.(c);
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        options.onStderr?.(c);
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve({
          code: err.code === 'ENOENT' ? 127 : 1,
          stdout,
          stderr: `${stderr}${err.code === 'ENOENT' ? `${command}: command not found` : err.message}`,
        });
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    });
}

/**
 * The engine endpoint the docker CLI would use, by its own precedence: -H, then --context,
 * then DOCKER_HOST, then DOCKER_CONTEXT, then the config's currentContext (contexts are
 * stored under <config>/contexts/meta/<sha256 of the name>/meta.json).
 */
export function engineEndpoint(globalArgs: string[], env: NodeJS.ProcessEnv): string {
  const flag = (...names: string[]): string | undefined => {
    let value: string | undefined;
    for (let i = 0; i < globalArgs.length; i++) {
      const [name, inline] = globalArgs[i].split(/=(.*)/s, 2);
      if (names.includes(name)) value = inline ?? globalArgs[++i];
    }
    return value;
  };
  const host = flag('-H', '--host');
  if (host) return host;
  const configDir = flag('--config') ?? env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker');
  let context = flag('-c', '--context');
  if (!context && env.DOCKER_HOST) return env.DOCKER_HOST;
  context ??=
    env.DOCKER_CONTEXT || readJson<{ currentContext?: string }>(path.join(configDir, 'config.json'))?.currentContext;
  if (!context || context === 'default') return `unix://${DEFAULT_DOCKER_SOCKET}`;
  const digest = createHash('sha256').update(context).digest('hex');
  const meta = readJson<{ Endpoints?: { docker?: { Host?: string } } }>(
    path.join(configDir, 'contexts', 'meta', digest, 'meta.json'),
  );
  const endpoint = meta?.Endpoints?.docker?.Host;
  if (!endpoint) {
    throw new CliError(EXIT.DOCKER, `docker context "${context}" not found`, 'docker context ls lists the contexts');
  }
  return endpoint;
}

/** A JSON file's content; undefined when it is missing or not JSON. */
export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * The Engine API client for `endpoint`. The plugin's own socket, which most commands talk to,
 * exists only on the engine's host, so `docker dso` runs there and reaches the engine by its
 * Unix socket; a remote endpoint is refused with that reason rather than half working.
 */
export function engineFor(endpoint: string): DockerApi {
  if (!endpoint.startsWith('unix://')) {
    throw new CliError(
      EXIT.DOCKER,
      `docker dso works on the Docker host itself (the plugin's socket is there), and the engine ` +
        `endpoint ${endpoint} is not a Unix socket on this host`,
      'run docker dso on the Docker host (over ssh), where the engine answers on /var/run/docker.sock',
    );
  }
  return new DockerApi(endpoint.slice('unix://'.length), 30_000);
}

/** Docker for the CLI; every method throws a CliError a user can act on. */
export class DockerClient {
  constructor(
    private readonly runner: Runner,
    /** Global flags given to `docker` before `dso` (--context, -H, --config, --tls...). */
    private readonly globalArgs: string[],
    /** Made on first use: commands that never ask the engine anything never resolve its endpoint. */
    private readonly engineOf: () => DockerApi,
  ) {}

  private engineApi?: DockerApi;

  private get engine(): DockerApi {
    this.engineApi ??= this.engineOf();
    return this.engineApi;
  }

  run(args: string[], options?: RunOptions): Promise<RunResult> {
    return this.runner('docker', [...this.globalArgs, ...args], options);
  }

  /** Runs and returns stdout; a failure becomes a CliError naming the command. */
  async ok(args: string[], options?: RunOptions, exitCode: ExitCode = EXIT.FAILURE): Promise<string> {
    const res = await this.run(args, options);
    if (res.code !== 0) {
      throw (
        cliDaemonError(res) ??
        new CliError(
          exitCode,
          `docker ${args.slice(0, 3).join(' ')} failed: ${oneLine(res.stderr) || `exit code ${res.code}`}`,
        )
      );
    }
    return res.stdout;
  }

  /** Whether this docker CLI's `stack deploy` can wait (--detach=false); 20.10's cannot. */
  async stackDeployCanWait(): Promise<boolean> {
    this.deployWaits ??= this.run(['stack', 'deploy', '--help']).then((r) => r.stdout.includes('--detach'));
    return this.deployWaits;
  }

  private deployWaits?: Promise<boolean>;

  /**
   * One Engine API call, its failure as a CliError: `exitCode` for a refusal, EXIT.DOCKER when
   * the engine does not answer; a refusal with one of the `expected` statuses is `undefined`.
   */
  private async ask<T>(
    what: string,
    call: (engine: DockerApi) => Promise<T>,
    exitCode: ExitCode = EXIT.FAILURE,
    expected: number[] = [],
  ): Promise<T | undefined> {
    try {
      return await call(this.engine);
    } catch (err) {
      if (err instanceof CliError) throw err;
      const status = (err as { status?: number }).status;
      if (status !== undefined && expected.includes(status)) return undefined;
      const message = (err as Error).message;
      if (status !== undefined) throw new CliError(exitCode, `${what} failed: ${message}`);
      throw /EACCES/.test(message) ? socketDenied() : engineDown(message);
    }
  }

  /** As ask(), for a call whose every refusal is a failure. */
  private async required<T>(what: string, call: (engine: DockerApi) => Promise<T>, exitCode?: ExitCode): Promise<T> {
    return (await this.ask(what, call, exitCode)) as T;
  }

  /** The plugin, or undefined when Docker has none of that name. */
  async plugin(name: string): Promise<PluginInfo | undefined> {
    const p = await this.ask(`docker plugin inspect ${name}`, (e) => e.plugin(name), EXIT.DOCKER, [404]);
    return p && pluginInfo(p);
  }

  async setPlugin(name: string, pairs: string[]): Promise<void> {
    await this.required(`docker plugin set ${name}`, (e) => e.setPlugin(name, pairs));
  }

  async enablePlugin(name: string, timeoutSeconds = 60): Promise<void> {
    await this.required(`docker plugin enable ${name}`, (e) => e.enablePlugin(name, timeoutSeconds), EXIT.PLUGIN);
  }

  /** False when Docker refuses because secrets or containers use the plugin (and `force` is not set). */
  async disablePlugin(name: string, force = false): Promise<boolean> {
    const disabled = (e: DockerApi) => e.disablePlugin(name, force).then(() => true);
    return (await this.ask(`docker plugin disable ${name}`, disabled, EXIT.PLUGIN, [409])) ?? false;
  }

  /** The engine's swarm state: LocalNodeState (inactive, pending, active, error, locked) and ControlAvailable. */
  async swarm(): Promise<NonNullable<DockerInfo['Swarm']>> {
    return (await this.required('docker info', (e) => e.info(), EXIT.DOCKER)).Swarm ?? {};
  }

  service(nameOrId: string): Promise<SwarmServiceFull | undefined> {
    return this.ask(`docker service inspect ${nameOrId}`, (e) => e.service(nameOrId), EXIT.FAILURE, [404]);
  }

  secret(nameOrId: string): Promise<SwarmSecret | undefined> {
    return this.ask(`docker secret inspect ${nameOrId}`, (e) => e.secret(nameOrId), EXIT.FAILURE, [404]);
  }

  /** Tasks of a service, newest first. */
  async tasks(serviceId: string): Promise<SwarmTask[]> {
    const tasks = await this.required(`docker service ps ${serviceId}`, (e) => e.serviceTasks(serviceId));
    return tasks.sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? ''));
  }

  /** Each service of a stack with its running and desired task counts (ServiceStatus). */
  stackServices(stack: string): Promise<SwarmServiceFull[]> {
    return this.required(`docker stack services ${stack}`, (e) =>
      e.servicesWithStatus([`com.docker.stack.namespace=${stack}`]),
    );
  }

  /** Containers in any state carrying every `label=value` given. */
  containers(labels: string[]): Promise<DockerContainer[]> {
    return this.required(`docker ps`, (e) => e.containers(labels));
  }
}

const socketDenied = () =>
  new CliError(EXIT.DOCKER, 'permission denied on the Docker socket', 'run as root or as a member of the docker group');

const engineDown = (detail: string) =>
  new CliError(
    EXIT.DOCKER,
    `the Docker engine does not answer: ${detail}`,
    'start dockerd (systemctl start docker), or check DOCKER_HOST / --context',
  );

/** A `docker` command that failed because the CLI or the engine is unusable (rather than the command itself). */
function cliDaemonError(res: RunResult): CliError | undefined {
  const text = res.stderr;
  if (res.code === 127)
    return new CliError(
      EXIT.DOCKER,
      'the docker command was not found',
      'install the Docker CLI (Debian: apt-get install docker.io)',
    );
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i.test(text))
    return engineDown(oneLine(text));
  if (/permission denied while trying to connect to the Docker daemon/i.test(text)) return socketDenied();
  return undefined;
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
