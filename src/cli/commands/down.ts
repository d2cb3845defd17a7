// `docker dso down`: the end of a plain-host project started by `docker dso up` (no swarm):
// `docker compose -p <project> down`, then the plugin removes the project's secret files
// from its tmpfs. The plugin's lease reaper revokes the project's leases (database users...)
// once it sees that the project's containers are gone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, Parsed } from '../args';
import { parseCompose, stackNameFrom } from '../compose';
import { Context, PLUGIN_OPTION, pluginName, requirePlugin } from '../context';
import { EXIT, UsageError } from '../errors';
import { counted } from '../format';
import { checkProjectName, composeContainers, composeTool, unlinkProject } from '../plainhost';
import { composeFile, composeFileOption } from './up';

export const spec: CommandSpec = {
  path: ['down'],
  summary: 'Stop a compose project started by docker dso up on a plain host, remove its secret files',
  description: [
    "Runs `docker compose -p PROJECT down`, then asks the plugin to remove the project's secret files",
    "from its tmpfs. The leases of the project's dynamic secrets (database users...) are revoked by the",
    "plugin once the project's containers are gone (within a few seconds).",
    "PROJECT defaults to the compose file's top-level name:, else the name of the current directory.",
  ].join('\n'),
  options: [
    composeFileOption('compose file to take the project name from'),
    {
      name: 'volumes',
      short: 'v',
      type: 'boolean',
      description: "also remove the project's named volumes (docker compose down --volumes)",
    },
    PLUGIN_OPTION,
  ],
  args: [
    { name: 'project', description: 'compose project name (default: name: in the file, else the directory name)' },
  ],
  examples: ['docker dso down', 'docker dso down myproject'],
};

function projectFrom(ctx: Context, file: string | undefined): string {
  const chosen = composeFile(ctx, file);
  if (chosen) {
    try {
      const doc = parseCompose(fs.readFileSync(chosen, 'utf8'), chosen);
      if (doc.name !== undefined) return String(doc.name);
      return stackNameFrom(path.basename(path.dirname(chosen)));
    } catch (err) {
      if (file !== undefined) throw new UsageError(`cannot read ${chosen}: ${(err as Error).message}`);
    }
  }
  return stackNameFrom(path.basename(ctx.io.cwd));
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const plugin = pluginName(ctx, parsed);
  const project = parsed.args.project ?? projectFrom(ctx, parsed.options.file as string | undefined);
  checkProjectName(project);
  const tool = await composeTool(ctx);
  const args = ['-p', project, 'down'];
  if (parsed.options.volumes) args.push('--volumes');
  const res = await tool.run(args, { cwd: ctx.io.cwd, echo: true });
  if (res.code !== 0) {
    ctx.io.err(
      `${tool.name} down failed (exit ${res.code}): the secret files are kept while containers may still use them\n`,
    );
    return EXIT.FAILURE;
  }
  const left = await composeContainers(ctx, project);
  if (left.length)
    ctx.io.err(
      `WARNING: ${left.length} container(s) of project ${project} remain: their leases are ` +
        `kept until they are removed\n`,
    );
  unlinkProject(ctx, project);
  const { api } = await requirePlugin(ctx, plugin);
  const reply = await api.composeDown(project);
  ctx.io.out(
    `Project ${project}: ${counted(reply.Removed, 'secret file')} ` +
      `removed; its leases are revoked once its containers are gone\n`,
  );
  return EXIT.OK;
}
