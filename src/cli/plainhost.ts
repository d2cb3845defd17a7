// `docker dso up`/`down` on a Docker host that is not a swarm manager: secrets drivers do not
// exist there, so the plugin (the only holder of Vault credentials) resolves the project's
// references over its root-only socket and writes each value to a file on a tmpfs in its
// runtime directory; the compose file, rewritten to mount those files as file-based
// secrets, goes to `docker compose -p <project> up -d` on standard input. Values never pass
// through this process. Where the plugin's directory is not on a tmpfs (a host whose /run is
// on disk), this mounts one there and restarts the plugin once so that it sees the mount.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_NAME } from '../plugin/compose-protocol';
import type { ComposeUpReply, ComposeUpRequest } from '../plugin/compose-protocol';
import type { DockerContainer } from '../docker/api';
import { PROJECT_LABEL, SERVICE_LABEL } from '../rotation/compose-liveness';
import { isTmpfs } from '../rotation/files';
import type { Context } from './context';
import { requirePlugin, waitForPlugin } from './context';
import { oneLine, RunOptions, RunResult } from './docker';
import { CliError, EXIT, UsageError } from './errors';
import type { PluginApi } from './plugin-client';
import { PluginRouteError } from './plugin-client';

/** Where `/run/dso/<project>` points to the project's files (DSO_RUN_DIR overrides it, for tests). */
export const RUN_DIR = '/run/dso';

/** Size of the tmpfs DSO mounts for compose secret files (values are under 512 KB each). */
export const COMPOSE_TMPFS_SIZE = '16m';

export function checkProjectName(project: string): void {
  if (!PROJECT_NAME.test(project)) {
    throw new UsageError(
      `invalid compose project name "${project}": lowercase letters, digits, "_" and "-", ` +
        `starting with a letter or digit`,
    );
  }
}

/** How to run Docker Compose: the v2 CLI plugin (`docker compose`), else the v1 `docker-compose`. */
export interface ComposeTool {
  run(args: string[], options: { input?: string; cwd: string; echo: boolean }): Promise<RunResult>;
  name: string;
}

export async function composeTool(ctx: Context): Promise<ComposeTool> {
  const echo = (o: boolean) =>
    o ? { onStdout: (c: string) => ctx.io.out(c), onStderr: (c: string) => ctx.io.err(c) } : {};
  const tools: Array<[string, (args: string[], o?: RunOptions) => Promise<RunResult>]> = [
    ['docker compose', (args, o) => ctx.docker.run(['compose', ...args], o)],
    ['docker-compose', (args, o) => ctx.runner('docker-compose', args, o)],
  ];
  for (const [name, run] of tools) {
    if ((await run(['version', '--short'])).code === 0)
      return { name, run: (args, o) => run(args, { input: o.input, cwd: o.cwd, ...echo(o.echo) }) };
  }
  throw new CliError(
    EXIT.DOCKER,
    'Docker Compose is not installed: neither `docker compose` (v2) nor `docker-compose` (v1) runs',
    'install Docker Compose v2 as a Docker CLI plugin (this repository: ' +
      'scripts/install-compose.sh builds it from source)',
  );
}

/**
 * Makes the plugin's compose directory a tmpfs the plugin sees: mounts one on the host
 * (root only) and restarts the plugin, whose runtime directory dockerd bind-mounts afresh.
 */
async function provideTmpfs(ctx: Context, plugin: string, api: PluginApi): Promise<PluginApi> {
  if (!api.runtimeDir)
    throw new CliError(
      EXIT.FAILURE,
      "the plugin's runtime directory on this host is unknown: cannot mount a tmpfs for its files",
    );
  const dir = path.join(api.runtimeDir, 'compose');
  if (!isTmpfs(fs.existsSync(dir) ? dir : api.runtimeDir)) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CliError(
        EXIT.FAILURE,
        `cannot create ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        'run docker dso as root (sudo docker dso up ...)',
      );
    }
    const res = await ctx.runner('mount', [
      '-t',
      'tmpfs',
      '-o',
      `mode=0700,size=${COMPOSE_TMPFS_SIZE},nosuid,nodev,noexec`,
      'dso-compose',
      dir,
    ]);
    if (res.code !== 0 || !isTmpfs(dir)) {
      throw new CliError(
        EXIT.FAILURE,
        `cannot mount a tmpfs on ${dir} for the secret files: ${oneLine(res.stderr) || `exit ${res.code}`}`,
        'run docker dso as root; or run dockerd with its exec root on a tmpfs (/run on most systemd hosts)',
      );
    }
    ctx.io.err(`Mounted a tmpfs (${COMPOSE_TMPFS_SIZE}, memory only) on ${dir} for secret files.\n`);
  }
  ctx.io.err(`Restarting the plugin ${plugin} once so that it sees the tmpfs...\n`);
  await ctx.docker.disablePlugin(plugin, true);
  await ctx.docker.enablePlugin(plugin);
  return (await waitForPlugin(ctx, plugin)).api;
}

/** Asks the plugin for the project's files; provides a tmpfs first when the plugin refuses for want of one. */
export async function resolveFiles(
  ctx: Context,
  plugin: string,
  request: ComposeUpRequest,
): Promise<{ reply: ComposeUpReply; runtimeDir: string }> {
  let { api } = await requirePlugin(ctx, plugin);
  for (let attempt = 0; ; attempt++) {
    try {
      const reply = await api.composeUp(request);
      return { reply, runtimeDir: api.runtimeDir };
    } catch (err) {
      if (err instanceof PluginRouteError && err.code === 'ERR_NOT_TMPFS' && attempt === 0) {
        api = await provideTmpfs(ctx, plugin, api);
        continue;
      }
      if (err instanceof PluginRouteError) {
        throw new CliError(
          EXIT.FAILURE,
          `the plugin could not resolve project ${request.Project}: ${err.message}`,
          `docker dso inspect <service> shows each secret's last error; docker dso system ` +
            `test-vault checks the Vault connection`,
        );
      }
      throw err;
    }
  }
}

/** The containers (in any state) of a compose project, or of one of its services. */
export function composeContainers(ctx: Context, project: string, service?: string): Promise<DockerContainer[]> {
  const labels = [`${PROJECT_LABEL}=${project}`];
  if (service) labels.push(`${SERVICE_LABEL}=${service}`);
  return ctx.docker.containers(labels);
}

/**
 * `/run/dso/<project>`: a symbolic link to the project's directory in the plugin's runtime
 * directory, so that the compose file, `docker inspect` and people see one stable path,
 * whatever the plugin's id. It holds no value itself (the files stay on the tmpfs).
 */
export function linkProject(ctx: Context, project: string, target: string): string {
  const root = ctx.io.env.DSO_RUN_DIR || RUN_DIR;
  const link = path.join(root, project);
  try {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const existing = fs.lstatSync(link, { throwIfNoEntry: false });
    if (existing && !existing.isSymbolicLink()) {
      throw new CliError(
        EXIT.FAILURE,
        `${link} exists and is not DSO's link to the project's secret files`,
        `remove it (rm -r ${link}), then run docker dso up again`,
      );
    }
    const tmp = path.join(root, `.${project}.${process.pid}`);
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, link);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      EXIT.FAILURE,
      `cannot link ${link} to the project's secret files (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'run docker dso as root (sudo docker dso up ...)',
    );
  }
  return link;
}

export function unlinkProject(ctx: Context, project: string): void {
  const link = path.join(ctx.io.env.DSO_RUN_DIR || RUN_DIR, project);
  if (fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) fs.rmSync(link, { force: true });
}
