// `docker dso rotate <secret>`: asks the plugin to roll, now, every service that uses the
// secret (POST /DSO.Rotate): `ForceUpdate` + 1 under each service's own update config, so
// new tasks fetch the current value from Vault. A refusal (no such secret, invalid
// settings...) is shown with the plugin's code and its fix.
import { shortName } from '../../docker/objects';
import type { CommandSpec, Parsed } from '../args';
import { Context, JSON_OPTION, PLUGIN_OPTION, pluginName, printJson, requirePlugin } from '../context';
import { CliError, EXIT } from '../errors';
import { fixFor } from '../fixes';
import { counted } from '../format';
import { PluginRouteError, RotationReport } from '../plugin-client';

export const spec: CommandSpec = {
  path: ['rotate'],
  summary: 'Roll every service that uses a DSO secret now, so new tasks fetch its current value',
  description: [
    'Docker secrets are immutable: a new value reaches containers only through new tasks. The plugin',
    'forces an update of each service that uses the secret (each under its own update config; use',
    '--update-order start-first on a service for zero downtime). Exits 0 when every service was rolled,',
    '1 when one failed or was mid-update (try again when it has finished), or when the plugin refused.',
  ].join('\n'),
  options: [JSON_OPTION, PLUGIN_OPTION],
  args: [{ name: 'secret', required: true, description: 'name or ID of a secret created with the DSO driver' }],
  examples: ['docker dso rotate myapp_db_password'],
};

const OUTCOME_TEXT: Record<string, string> = {
  rolled: 'rolled',
  'skipped-updating': 'skipped: an update of the service is in progress; run rotate again when it has finished',
  failed: 'FAILED',
};

export function formatRotation(report: RotationReport): string {
  if (report.services.length === 0) return `No service uses ${report.secret}: nothing to roll.\n`;
  const lines = [`Rotation of ${report.secret}: ${counted(report.services.length, 'service')}`];
  for (const s of report.services)
    lines.push(`  ${s.service}: ${OUTCOME_TEXT[s.outcome] ?? s.outcome}${s.error ? ` (${s.error})` : ''}`);
  return `${lines.join('\n')}\n`;
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const name = pluginName(ctx, parsed);
  const secretName = parsed.args.secret!;
  const { info, api } = await requirePlugin(ctx, name);
  const shown = shortName(info.name);
  let report: RotationReport;
  try {
    report = await api.rotate(secretName);
  } catch (err) {
    if (!(err instanceof PluginRouteError) || err.fix) throw err;
    throw new CliError(EXIT.FAILURE, err.message, fixFor({ code: err.code, subcode: err.subcode }, { plugin: shown }));
  }
  const ok = report.services.every((s) => s.outcome === 'rolled');
  if (parsed.options.json) printJson(ctx, { plugin: shown, ok, ...report });
  else ctx.io.out(formatRotation(report));
  return ok ? EXIT.OK : EXIT.FAILURE;
}
