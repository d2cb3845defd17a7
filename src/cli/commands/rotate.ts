// `docker dso rotate <secret>`: asks the plugin for an on-demand rotation (POST /DSO.Rotate).
// This version of the plugin has no rotation: the command says so, exits 5, and names the
// services to roll by hand so that new tasks fetch the value again.
import type { CommandSpec, Parsed } from '../args';
import { Context, JSON_OPTION, PLUGIN_OPTION, pluginName, printJson, requirePlugin } from '../context';
import { EXIT } from '../errors';

export const spec: CommandSpec = {
  path: ['rotate'],
  summary: 'Ask the plugin to roll the services that use a secret (not supported yet: exits 5)',
  description: [
    'Rotation is not part of this version of the DSO plugin: the command exits 5 and prints the',
    '`docker service update --force` commands that make new tasks fetch the current value from Vault.',
    'Once the plugin offers on-demand rotation, this command asks it to roll the services.',
  ].join('\n'),
  options: [JSON_OPTION, PLUGIN_OPTION],
  args: [{ name: 'secret', required: true, description: 'name or ID of a secret of the DSO driver' }],
  examples: ['docker dso rotate myapp_db_password'],
};

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const name = pluginName(ctx, parsed);
  const secretName = parsed.args.secret!;
  const { info, api } = await requirePlugin(ctx, name);
  const shown = info.name.replace(/:latest$/, '');
  const answer = await api.rotate(secretName);
  if (answer) {
    if (parsed.options.json) printJson(ctx, { plugin: shown, secret: secretName, supported: true, ...answer });
    else ctx.io.out(`Rotation of ${secretName} requested: ${JSON.stringify(answer)}\n`);
    return EXIT.OK;
  }
  const secret = await ctx.docker.secret(secretName);
  const services = secret ? await ctx.docker.servicesUsingSecret(secret.id) : [];
  const commands = services.map((s) => `docker service update --force ${s}`);
  if (parsed.options.json) {
    printJson(ctx, { plugin: shown, secret: secretName, supported: false, services, commands });
  } else {
    ctx.io.err(`On-demand rotation is not supported by this version of the plugin ${shown} (it has no rotation route yet).\n`);
    if (!secret) ctx.io.err(`There is no secret ${secretName} in this swarm either.\n`);
    else if (commands.length) ctx.io.err(`New tasks fetch the current value from Vault; to roll the services that use ${secretName}:\n${commands.map((c) => `  ${c}`).join('\n')}\n`);
    else ctx.io.err(`No service uses ${secretName}.\n`);
  }
  return EXIT.UNSUPPORTED;
}
