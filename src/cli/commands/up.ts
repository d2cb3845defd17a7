// `docker dso up`: deploys a compose file whose `environment` holds dso:// references. Each
// becomes a driver-backed secret plus <VAR>_FILE=/run/secrets/<name>; the transformed file
// (references only, never a value) goes to `docker stack deploy -c -` on standard input,
// so nothing is written to disk. On a host that is not a swarm manager (or with --compose)
// the secrets become compose file-based secrets on a tmpfs (see ../plainhost.ts) and the
// file goes to `docker compose -p <project> up -d` instead.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, OptionSpec, Parsed } from '../args';
import {
  ComposeError,
  parseCompose,
  planFileSecrets,
  stackNameFrom,
  stringifyCompose,
  transformCompose,
  TransformResult,
} from '../compose';
import { checkProjectName, composeTool, linkProject, resolveFiles } from '../plainhost';
import { Context, PLUGIN_OPTION, pluginName } from '../context';
import { counted } from '../format';
import { CliError, EXIT, UsageError } from '../errors';

const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/** `-f FILE` of up and down; `purpose` says what the file is for. */
export function composeFileOption(purpose: string): OptionSpec {
  const defaults = `default: ${DEFAULT_FILES.join(', ')} in the current directory`;
  return { name: 'file', short: 'f', type: 'string', valueName: 'FILE', description: `${purpose} (${defaults})` };
}

/** The file given (relative to the current directory), else the first of Compose's default names there. */
export function composeFile(ctx: Context, file: string | undefined): string | undefined {
  if (file !== undefined) return path.resolve(ctx.io.cwd, file);
  return DEFAULT_FILES.map((f) => path.join(ctx.io.cwd, f)).find((f) => fs.existsSync(f));
}

export const spec: CommandSpec = {
  path: ['up'],
  summary:
    'Deploy a compose file whose environment holds dso:// references: a swarm stack, or docker compose without swarm',
  description: [
    'Every environment value dso://<path>[#<field>] becomes a secret of the DSO driver (label dso.ref)',
    'mounted in the service, and the variable VAR becomes VAR_FILE=/run/secrets/<name>: the application',
    'reads the value from that file. Secrets declared with driver: dso pass through (their driver is set',
    'to --plugin). No value is written to any file or environment variable: the compose file handed to',
    '`docker stack deploy` (on its standard input) holds references only.',
    'On a host that is not a swarm manager (or with --compose): each value is written by the plugin to a',
    'file on a tmpfs (memory only, mode 0400), mounted as a compose file-based secret at /run/secrets/<name>,',
    'and the file goes to `docker compose -p STACK up -d`; the plugin rewrites the files in place when Vault',
    'changes (dso.rotate=restart: restarts the containers instead; false: never). docker dso down removes them.',
    "STACK defaults to the file's top-level name:, else the name of the compose file's directory.",
  ].join('\n'),
  options: [
    composeFileOption('compose file, "-" for standard input'),
    {
      name: 'detach',
      short: 'd',
      type: 'boolean',
      description: 'return once the stack is created, without waiting for services to converge (the default)',
    },
    {
      name: 'wait',
      type: 'boolean',
      description:
        'wait until the services have converged (docker stack deploy --detach=false; with a docker CLI ' +
        'that lacks that flag, e.g. 20.10, docker dso watches the replicas itself)',
    },
    {
      name: 'resolve-image',
      type: 'string',
      valueName: 'WHEN',
      choices: ['always', 'changed', 'never'],
      description: 'passed to docker stack deploy --resolve-image',
    },
    {
      name: 'prune',
      type: 'boolean',
      description: 'remove services that are no longer in the file (docker stack deploy --prune)',
    },
    { name: 'with-registry-auth', type: 'boolean', description: 'send registry credentials to the swarm agents' },
    {
      name: 'dry-run',
      type: 'boolean',
      description: 'print the transformed compose file (references only) and deploy nothing',
    },
    {
      name: 'force-recreate',
      type: 'boolean',
      description:
        'plain hosts: recreate the containers (docker compose up --force-recreate), e.g. after the plugin restarted',
    },
    {
      name: 'compose',
      type: 'boolean',
      description:
        'use docker compose with secret files on a tmpfs even on a swarm manager (the default where there is no swarm)',
    },
    PLUGIN_OPTION,
  ],
  args: [{ name: 'stack', description: 'stack name (default: name: in the file, else the directory name)' }],
  examples: [
    'docker dso up -d                       # compose.yaml in the current directory, stack named after it',
    'docker dso up -f app.yml myapp',
    'docker dso up -f app.yml --dry-run     # show what would be deployed',
    'docker dso up -d --compose myproject   # plain docker compose, secret files on a tmpfs',
  ],
};

interface Source {
  text: string;
  /** For messages. */
  label: string;
  /** Directory relative paths in the file are resolved against. */
  dir: string;
}

async function readSource(ctx: Context, file: string | undefined): Promise<Source> {
  if (file === '-')
    return { text: (await ctx.io.readStdin()).toString('utf8'), label: 'standard input', dir: ctx.io.cwd };
  const chosen = composeFile(ctx, file);
  if (!chosen)
    throw new UsageError(
      `no compose file in ${ctx.io.cwd} (looked for ${DEFAULT_FILES.join(', ')})`,
      'give one: docker dso up -f FILE',
    );
  try {
    return { text: fs.readFileSync(chosen, 'utf8'), label: chosen, dir: path.dirname(chosen) };
  } catch (err) {
    throw new UsageError(`cannot read ${chosen} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function describeTransform(result: TransformResult, stack: string, plugin: string): string {
  const lines: string[] = [];
  for (const i of result.injected) {
    lines.push(
      `  ${i.service}: ${i.variable} -> ${i.variable}_FILE=${i.file} (secret ${stack}_${i.secret}, ${i.reference})`,
    );
  }
  for (const s of result.passedThrough) lines.push(`  secret ${stack}_${s}: declared with driver ${plugin}, kept`);
  const head =
    `Stack ${stack}: ${counted(result.injected.length, 'reference')} from environment, ` +
    `${counted(result.passedThrough.length, 'declared DSO secret')} (driver ${plugin})`;
  return `${[head, ...lines].join('\n')}\n`;
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const plugin = pluginName(ctx, parsed);
  const o = parsed.options;
  const source = await readSource(ctx, o.file as string | undefined);

  let result: TransformResult;
  try {
    result = transformCompose(parseCompose(source.text, source.label), { driver: plugin });
  } catch (err) {
    if (err instanceof ComposeError) throw new CliError(EXIT.FAILURE, `${source.label}: ${err.message}`);
    throw err;
  }

  const stack =
    parsed.args.stack ?? result.name ?? (o.file === '-' ? undefined : stackNameFrom(path.basename(source.dir)));
  if (!stack) throw new UsageError('give the stack name: docker dso up -f - STACK');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(stack))
    throw new UsageError(
      `invalid stack name "${stack}": letters, digits, "_", "." and "-", starting with a letter or digit`,
    );

  for (const w of result.warnings) ctx.io.err(`WARNING: ${w}\n`);
  const yaml = stringifyCompose(result.compose);
  if (o['dry-run']) {
    ctx.io.err(describeTransform(result, stack, plugin));
    ctx.io.out(yaml);
    return EXIT.OK;
  }

  const swarm = o.compose ? undefined : await ctx.docker.swarm();
  const state = swarm?.LocalNodeState || 'inactive';
  if (!swarm || state === 'inactive')
    return upPlainHost(ctx, plugin, stack, result, source.dir, {
      wait: o.wait === true,
      recreate: o['force-recreate'] === true,
    });
  if (state !== 'active') {
    throw new CliError(
      EXIT.DOCKER,
      `this Docker engine is not in swarm mode (swarm state: ${state}): docker dso up ` +
        `deploys a stack, and secrets drivers work only in a swarm`,
      'docker swarm init (or join this node to a swarm as a manager), then run docker dso up again',
    );
  }
  if (!swarm.ControlAvailable)
    throw new CliError(
      EXIT.DOCKER,
      'this node is a swarm worker: stacks are deployed from a manager node',
      'run docker dso up on a manager (docker node ls shows them), or docker dso up ' +
        '--compose to run the project with docker compose on this node',
    );

  if (result.injected.length || result.passedThrough.length) {
    const info = await ctx.docker.plugin(plugin);
    if (!info || !info.enabled) {
      throw new CliError(
        EXIT.PLUGIN,
        `the DSO plugin ${plugin} is ${info ? 'disabled' : 'not installed'}: the stack's secrets could not be served`,
        info ? `docker plugin enable ${plugin}` : `docker dso init --plugin ${plugin} ... creates and configures it`,
      );
    }
  }

  ctx.io.out(describeTransform(result, stack, plugin));
  const args = ['stack', 'deploy', '--compose-file', '-'];
  if (o['resolve-image']) args.push('--resolve-image', o['resolve-image'] as string);
  if (o.prune) args.push('--prune');
  if (o['with-registry-auth']) args.push('--with-registry-auth');
  // A current CLI waits when told --detach=false; 20.10's has no --detach and never waits.
  const cliWaits = o.wait === true && (await ctx.docker.stackDeployCanWait());
  if (cliWaits) args.push('--detach=false');
  args.push(stack);
  const res = await ctx.docker.run(args, {
    input: yaml,
    cwd: source.dir,
    onStdout: (c) => ctx.io.out(c),
    onStderr: (c) => ctx.io.err(c),
  });
  if (res.code !== 0) {
    ctx.io.err(`docker stack deploy failed (exit ${res.code})\n`);
    return EXIT.FAILURE;
  }
  if (o.wait && !cliWaits) await waitForStack(ctx, stack);
  if (result.injected.length || result.passedThrough.length)
    ctx.io.out(`Check the secrets of a service with: docker dso inspect ${stack}_<service>\n`);
  return EXIT.OK;
}

/** Every replica of every service of the stack running; the deadline is --wait's own. */
async function waitForStack(ctx: Context, stack: string, timeoutMs = 600_000): Promise<void> {
  const end = ctx.now() + timeoutMs;
  let last = '';
  for (;;) {
    const services = await ctx.docker.stackServices(stack);
    const pending = services
      .map((s) => [s.Spec.Name, s.ServiceStatus?.RunningTasks ?? 0, s.ServiceStatus?.DesiredTasks ?? 0] as const)
      .filter(([, running, desired]) => running !== desired)
      .map(([name, running, desired]) => `${name} ${running}/${desired}`);
    if (services.length > 0 && pending.length === 0) {
      ctx.io.out(`Stack ${stack}: every service has converged\n`);
      return;
    }
    const now = pending.join(', ');
    if (now !== last) ctx.io.out(`Waiting for ${now || 'the services to appear'}\n`);
    last = now;
    if (ctx.now() > end) {
      throw new CliError(
        EXIT.FAILURE,
        `the stack ${stack} did not converge within ${timeoutMs / 1000}s: ${now}`,
        `docker stack ps --no-trunc ${stack} shows why its tasks do not run`,
      );
    }
    await ctx.sleep(1_000);
  }
}

/** No swarm: compose file-based secrets on a tmpfs, written by the plugin, then `docker compose up -d`. */
async function upPlainHost(
  ctx: Context,
  plugin: string,
  project: string,
  result: TransformResult,
  dir: string,
  flags: { wait: boolean; recreate: boolean },
): Promise<number> {
  checkProjectName(project);
  const tool = await composeTool(ctx);
  const plan = planFileSecrets(result, plugin);
  let yaml: string;
  if (plan.files.length) {
    const { reply, runtimeDir } = await resolveFiles(ctx, plugin, { Project: project, Secrets: plan.files });
    const link = linkProject(ctx, project, path.join(runtimeDir, 'compose', project));
    const files = new Map(reply.Files.map((f) => [f.Name, path.join(link, path.basename(f.File))]));
    yaml = stringifyCompose(plan.finish((key) => files.get(key)!));
    ctx.io.out(
      `Project ${project}: ${counted(reply.Files.length, 'secret file')} on a tmpfs (${link} -> ` +
        `${path.join(runtimeDir, 'compose', project)})\n`,
    );
    for (const f of reply.Files) {
      ctx.io.out(
        `  ${f.Service}: /run/secrets/${f.Name} <- ` +
          `${f.Path ?? '?'}${f.Field ? `#${f.Field}` : ''} (refresh: ${f.Refresh})\n`,
      );
    }
  } else {
    yaml = stringifyCompose(plan.finish(() => ''));
  }
  const args = ['-p', project, '--project-directory', dir, '-f', '-', 'up', '-d'];
  if (flags.wait) args.push('--wait');
  if (flags.recreate) args.push('--force-recreate');
  const res = await tool.run(args, { input: yaml, cwd: dir, echo: true });
  if (res.code !== 0) {
    ctx.io.err(`${tool.name} up failed (exit ${res.code}); the secret files stay until: docker dso down ${project}\n`);
    return EXIT.FAILURE;
  }
  if (plan.files.length)
    ctx.io.out(
      `Check the secrets of a service with: docker dso inspect <service>; remove everything ` +
        `with: docker dso down ${project}\n`,
    );
  return EXIT.OK;
}
