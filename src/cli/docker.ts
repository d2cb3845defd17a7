// The Docker side of `docker dso`: the `docker` binary run with an argv array (never a
// shell string), with the global flags the user gave `docker` (--context, -H ...) passed
// on, so it reaches the engine the user's docker reaches, with their config. What it reads
// are the Engine API's own objects (../docker/objects.ts), read as the plugin reads them.
// Credentials are never on any of these command lines.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { SwarmSecret, SwarmServiceFull } from '../docker/api';
import { DockerPlugin, PluginInfo, pluginInfo } from '../docker/objects';
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

export interface SwarmState {
  /** inactive, pending, active, error, locked */
  state: string;
  manager: boolean;
}

export interface ServiceSecretRef {
  secretId: string;
  secretName: string;
  target: string;
}

export interface ServiceInfo {
  id: string;
  name: string;
  secrets: ServiceSecretRef[];
}

export interface SecretInfo {
  id: string;
  name: string;
  driver?: string;
  labels: Record<string, string>;
}

export interface TaskInfo {
  id: string;
  name: string;
  desiredState: string;
  currentState: string;
  error: string;
}

/** Docker through its CLI; every method throws a CliError a user can act on. */
export class DockerClient {
  constructor(
    private readonly runner: Runner,
    /** Global flags given to `docker` before `dso` (--context, -H, --config, --tls...). */
    private readonly globalArgs: string[] = [],
  ) {}

  run(args: string[], options?: RunOptions): Promise<RunResult> {
    return this.runner('docker', [...this.globalArgs, ...args], options);
  }

  /** Runs and returns stdout; a failure becomes a CliError naming the command. */
  async ok(args: string[], options?: RunOptions, exitCode: ExitCode = EXIT.FAILURE): Promise<string> {
    const res = await this.run(args, options);
    if (res.code !== 0) {
      throw (
        daemonError(res) ??
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

  /** The plugin, or undefined when Docker has none of that name. */
  async plugin(name: string): Promise<PluginInfo | undefined> {
    const res = await this.run(['plugin', 'inspect', '--format', '{{json .}}', name]);
    if (res.code !== 0) {
      const daemon = daemonError(res);
      if (daemon) throw daemon;
      if (/not found|no such plugin|not exist/i.test(res.stderr)) return undefined;
      throw new CliError(EXIT.DOCKER, `docker plugin inspect ${name} failed: ${oneLine(res.stderr)}`);
    }
    return pluginInfo(JSON.parse(res.stdout) as DockerPlugin);
  }

  async swarm(): Promise<SwarmState> {
    const out = await this.ok(['info', '--format', '{{json .Swarm}}'], undefined, EXIT.DOCKER);
    const swarm = JSON.parse(out.trim() || '{}') as { LocalNodeState?: string; ControlAvailable?: boolean };
    return { state: swarm.LocalNodeState || 'inactive', manager: swarm.ControlAvailable === true };
  }

  async service(nameOrId: string): Promise<ServiceInfo | undefined> {
    const res = await this.run(['service', 'inspect', '--format', '{{json .}}', nameOrId]);
    if (res.code !== 0) {
      const daemon = daemonError(res);
      if (daemon) throw daemon;
      if (/no such service|not found/i.test(res.stderr)) return undefined;
      throw new CliError(EXIT.FAILURE, `docker service inspect ${nameOrId} failed: ${oneLine(res.stderr)}`);
    }
    const s = JSON.parse(res.stdout) as SwarmServiceFull;
    const secrets = s.Spec.TaskTemplate?.ContainerSpec?.Secrets ?? [];
    return {
      id: s.ID,
      name: s.Spec.Name,
      secrets: secrets.map((x) => ({
        secretId: x.SecretID,
        secretName: x.SecretName,
        target: x.File?.Name ?? x.SecretName,
      })),
    };
  }

  async secret(nameOrId: string): Promise<SecretInfo | undefined> {
    const res = await this.run(['secret', 'inspect', '--format', '{{json .}}', nameOrId]);
    if (res.code !== 0) {
      const daemon = daemonError(res);
      if (daemon) throw daemon;
      return undefined;
    }
    const s = JSON.parse(res.stdout) as SwarmSecret;
    return { id: s.ID, name: s.Spec.Name, driver: s.Spec.Driver?.Name || undefined, labels: s.Spec.Labels ?? {} };
  }

  /** Tasks of a service, newest first. */
  async tasks(serviceId: string): Promise<TaskInfo[]> {
    const out = await this.ok(['service', 'ps', '--no-trunc', '--format', '{{json .}}', serviceId]);
    return out
      .split('\n')
      .filter((l) => l.trim())
      .map(
        (l) => JSON.parse(l) as { ID: string; Name: string; DesiredState: string; CurrentState: string; Error: string },
      )
      .map((t) => ({
        id: t.ID,
        name: t.Name,
        desiredState: t.DesiredState,
        currentState: t.CurrentState,
        error: t.Error,
      }));
  }
}

/** A failure that means the engine itself is unusable (rather than the object being absent). */
function daemonError(res: RunResult): CliError | undefined {
  const text = res.stderr;
  if (res.code === 127)
    return new CliError(
      EXIT.DOCKER,
      'the docker command was not found',
      'install the Docker CLI (Debian: apt-get install docker.io)',
    );
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i.test(text)) {
    return new CliError(
      EXIT.DOCKER,
      `the Docker engine does not answer: ${oneLine(text)}`,
      'start dockerd (systemctl start docker), or check DOCKER_HOST / --context',
    );
  }
  if (/permission denied while trying to connect to the Docker daemon/i.test(text)) {
    return new CliError(
      EXIT.DOCKER,
      'permission denied on the Docker socket',
      'run as root or as a member of the docker group',
    );
  }
  return undefined;
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
