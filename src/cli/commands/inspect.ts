// `docker dso inspect <service>`: each secret the service mounts (from Docker), joined with
// what the plugin recorded when it served it (from the plugin's status route), so a
// failure Docker hides ("secret ... not found") shows its real reason.
import { shortName } from '../../docker/objects';
import type { CommandSpec, Parsed } from '../args';
import { Context, JSON_OPTION, PLUGIN_OPTION, pluginName, printJson, sameName } from '../context';
import type { SwarmServiceFull, SwarmTask } from '../../docker/api';
import { oneLine } from '../docker';
import { CliError, EXIT } from '../errors';
import { FixContext, fixFor } from '../fixes';
import { counted, formatTime, keyValues } from '../format';
import type { FetchRecord } from '../plugin-client';
import { composeContainers } from '../plainhost';
import { referenceOf } from '../../plugin/compose-protocol';

export const spec: CommandSpec = {
  path: ['inspect'],
  summary: 'Show each secret of a service: reference, last fetch, version or lease, DoNotReuse, last error',
  description: [
    'Ends with "Secret injection status: ACTIVE" when every DSO secret of the service was served,',
    'or "Secret injection status: FAILED: <reason>" (exit 1). The plugin keeps what it served in',
    'memory: after a plugin restart, secrets show as not fetched until a task asks again.',
    'Exit 3 when the plugin is absent, disabled or does not answer.',
  ].join('\n'),
  options: [JSON_OPTION, PLUGIN_OPTION],
  args: [{ name: 'service', required: true, description: 'service name or ID' }],
  examples: ['docker dso inspect myapp', 'docker dso inspect mystack_web --json'],
};

/** What Docker (or the compose route) says of a secret a service mounts. */
interface DockerFacts {
  secret: string;
  target: string;
  driver: string | null;
  /** Served by the DSO plugin (its driver is the plugin). */
  dso: boolean;
  reference: string | null;
  /** Rolled by the plugin when the value changes (dso.rotate label, else DSO_ROTATE). */
  rotate: boolean | null;
}

export type SecretReport = ReturnType<typeof secretReport>;

export interface InspectReport {
  service: { id: string; name: string };
  plugin: string;
  pluginState: 'enabled' | 'disabled' | 'absent' | 'unreachable';
  secrets: SecretReport[];
  tasks: { running: number; failed: number; lastError: string | null };
  status: 'ACTIVE' | 'FAILED' | 'NONE';
  reason: string | null;
  /** What will go wrong without action, with the command that prevents it. */
  warnings: string[];
}

function isRunning(t: SwarmTask): boolean {
  return t.DesiredState === 'running' && t.Status?.State === 'running';
}

/** A secret's report: what Docker says of it (`docker`) and what the plugin recorded when it served it. */
function secretReport(docker: DockerFacts, rec: FetchRecord | undefined, fix: FixContext) {
  const failed = rec?.outcome === 'error';
  return {
    ...docker,
    lastFetch: rec ? { at: rec.at, outcome: rec.outcome, task: rec.task, durationMs: rec.durationMs } : null,
    path: rec?.path ?? null,
    field: rec?.field ?? null,
    version: rec?.version ?? null,
    leaseExpiresAt: rec?.leaseExpiresAt ?? null,
    doNotReuse: rec?.doNotReuse ?? null,
    rotate: docker.rotate,
    lastError: failed ? (rec.error ?? 'failed') : null,
    code: failed ? (rec.code ?? null) : null,
    fix: failed ? fixFor(rec, { ...fix, path: rec.path }) : null,
  };
}

export function decide(
  secrets: SecretReport[],
  tasks: SwarmTask[],
  plugin: string,
  pluginState: InspectReport['pluginState'],
): Pick<InspectReport, 'status' | 'reason'> {
  const dso = secrets.filter((s) => s.dso);
  if (dso.length === 0) return { status: 'NONE', reason: `the service uses no secret of the driver ${plugin}` };
  const failed = dso.filter((s) => s.lastFetch?.outcome === 'error');
  if (failed.length) {
    const first = failed[0];
    const more = failed.length > 1 ? ` (and ${counted(failed.length - 1, 'more secret')})` : '';
    return { status: 'FAILED', reason: `${first.secret}: ${oneLine(first.lastError ?? 'failed')}${more}` };
  }
  if (pluginState !== 'enabled')
    return {
      status: 'FAILED',
      reason: `the plugin ${plugin} is ${pluginState}: no secret of this service can be served`,
    };
  const never = dso.filter((s) => !s.lastFetch);
  const running = tasks.filter(isRunning);
  if (never.length && running.length === 0) {
    const taskError = tasks.find((t) => t.Status?.Err)?.Status?.Err;
    return {
      status: 'FAILED',
      reason:
        `${never[0].secret} was never asked of the plugin ${plugin} and no task ` +
        `runs${taskError ? ` (task error: ${taskError})` : ''}`,
    };
  }
  return { status: 'ACTIVE', reason: null };
}

export async function gatherInspect(ctx: Context, plugin: string, serviceName: string): Promise<InspectReport> {
  // A swarm service, else a service of a compose project that `docker dso up` started on a plain host.
  let service: SwarmServiceFull | undefined;
  try {
    service = await ctx.docker.service(serviceName);
  } catch (err) {
    const compose = await gatherComposeInspect(ctx, plugin, serviceName).catch(() => undefined);
    if (compose) return compose;
    throw err;
  }
  if (!service) {
    const compose = await gatherComposeInspect(ctx, plugin, serviceName);
    if (compose) return compose;
    throw new CliError(
      EXIT.FAILURE,
      `no such service: ${serviceName}`,
      'docker service ls lists the services (docker compose ls the compose projects)',
    );
  }
  const { ID: id, Spec: spec } = service;

  const info = await ctx.docker.plugin(plugin);
  const shown = info ? shortName(info.name) : plugin;
  let pluginState: InspectReport['pluginState'] = info ? (info.enabled ? 'enabled' : 'disabled') : 'absent';
  let records: FetchRecord[] = [];
  let method: string | undefined;
  let rotateDefault: boolean | undefined;
  const warnings: string[] = [];
  if (info?.enabled) {
    try {
      const status = await ctx.connect(info).status(id);
      records = status.secrets.filter((r) => r.serviceId === id || (!r.serviceId && r.service === spec.Name));
      method = status.settings.authMethod;
      rotateDefault = status.rotation?.default ?? status.settings.rotate;
      // Leases issued before the plugin (re)started are renewed by nobody: they end at their TTL.
      for (const u of status.rotation?.unmanagedLeases ?? []) {
        if (u.serviceId !== id) continue;
        warnings.push(
          `${u.secret}: running tasks hold leases of ${u.path} issued before the plugin started; ` +
            `they are not renewed and end at their TTL. Run: ${u.fix}`,
        );
      }
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      pluginState = 'unreachable';
    }
  }

  const secrets: SecretReport[] = [];
  for (const ref of spec.TaskTemplate.ContainerSpec?.Secrets ?? []) {
    const s = await ctx.docker.secret(ref.SecretID);
    const driver = s?.Spec.Driver?.Name || null;
    const dso = sameName(driver ?? undefined, plugin);
    const labels = s?.Spec.Labels ?? {};
    const labelled = labels['dso.rotate'];
    const docker = {
      secret: ref.SecretName,
      target: ref.File?.Name ?? ref.SecretName,
      driver,
      dso,
      reference: dso ? (referenceOf(labels) ?? '(no dso.ref label: DSO_PATH_TEMPLATE)') : null,
      rotate: !dso ? null : labelled !== undefined ? labelled === 'true' : (rotateDefault ?? null),
    };
    const rec = dso ? records.find((r) => r.secret === ref.SecretName) : undefined;
    secrets.push(secretReport(docker, rec, { plugin: shown, method }));
  }

  const tasks = await ctx.docker.tasks(id).catch(() => [] as SwarmTask[]);
  return conclude({ service: { id, name: spec.Name }, plugin: shown, pluginState, secrets, warnings }, tasks);
}

/** The report: the facts gathered, the tasks' counts, and the verdict. */
function conclude(facts: Omit<InspectReport, 'tasks' | 'status' | 'reason'>, tasks: SwarmTask[]): InspectReport {
  const failed = tasks.filter((t) => t.Status?.State === 'failed' || t.Status?.State === 'rejected').length;
  const lastError = tasks.find((t) => t.Status?.Err)?.Status?.Err ?? null;
  const verdict = decide(facts.secrets, tasks, facts.plugin, facts.pluginState);
  return { ...facts, tasks: { running: tasks.filter(isRunning).length, failed, lastError }, ...verdict };
}

export function formatInspect(r: InspectReport, now: number): string {
  const out: string[] = [];
  const dso = r.secrets.filter((s) => s.dso);
  out.push(
    `Service ${r.service.name} (id ${r.service.id.slice(0, 12)}): ${counted(dso.length, 'secret')} ` +
      `from plugin ${r.plugin} (${r.pluginState}); ` +
      `tasks running: ${r.tasks.running}`,
  );
  for (const s of r.secrets) {
    out.push('');
    if (!s.dso) {
      out.push(`${s.secret}  (not served by DSO: driver ${s.driver ?? 'none, a plain Swarm secret'})`);
      continue;
    }
    out.push(`${s.secret}${s.target !== s.secret ? ` -> /run/secrets/${s.target}` : ''}`);
    const rows: [string, string][] = [['reference', s.reference ?? '-']];
    if (s.path) rows.push(['read from', `${s.path}${s.field ? `#${s.field}` : ''}`]);
    rows.push([
      'last fetch',
      s.lastFetch
        ? `${formatTime(s.lastFetch.at, now)}: ` +
          `${s.lastFetch.outcome === 'ok' ? 'ok' : 'FAILED'}${s.lastFetch.task ? `, task ${s.lastFetch.task}` : ''}`
        : r.pluginState === 'enabled'
          ? 'never (since the plugin started)'
          : `unknown (plugin ${r.pluginState})`,
    ]);
    if (s.version !== null) rows.push(['version', String(s.version)]);
    if (s.leaseExpiresAt) rows.push(['lease expires', formatTime(s.leaseExpiresAt, now)]);
    if (s.lastFetch) rows.push(['DoNotReuse', s.doNotReuse === null ? '-' : String(s.doNotReuse)]);
    if (s.rotate !== null)
      rows.push(['rotation', s.rotate ? 'on (services are rolled when the value changes)' : 'off']);
    rows.push(['last error', s.lastError ? oneLine(s.lastError) : '-']);
    if (s.fix) rows.push(['fix', s.fix]);
    out.push(keyValues(rows, '  '));
  }
  out.push('');
  for (const w of r.warnings ?? []) out.push(`Warning: ${w}`);
  out.push(
    r.status === 'ACTIVE' ? 'Secret injection status: ACTIVE' : `Secret injection status: ${r.status}: ${r.reason}`,
  );
  return `${out.join('\n')}\n`;
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const plugin = pluginName(ctx, parsed);
  const report = await gatherInspect(ctx, plugin, parsed.args.service!);
  if (parsed.options.json) printJson(ctx, report);
  else ctx.io.out(formatInspect(report, ctx.now()));
  if (report.pluginState !== 'enabled') return EXIT.PLUGIN;
  return report.status === 'ACTIVE' ? EXIT.OK : EXIT.FAILURE;
}

/**
 * A service of a compose project on a plain host (`docker dso up` without swarm): its files
 * from the plugin's compose route, what the plugin recorded when it resolved them, and the
 * project's containers. NAME is the service, or PROJECT_SERVICE / PROJECT-SERVICE when several
 * projects have a service of that name. Undefined when no project has such a service.
 */
export async function gatherComposeInspect(
  ctx: Context,
  plugin: string,
  name: string,
): Promise<InspectReport | undefined> {
  const info = await ctx.docker.plugin(plugin);
  if (!info?.enabled) return undefined;
  const api = ctx.connect(info);
  const list = await api.composeList();
  const matches = list.Projects.flatMap((p) =>
    p.Files.filter(
      (f) => f.Service === name || `${p.Project}_${f.Service}` === name || `${p.Project}-${f.Service}` === name,
    ).map((f) => ({ project: p.Project, file: f })),
  );
  const projects = [...new Set(matches.map((m) => m.project))];
  if (projects.length === 0) return undefined;
  if (projects.length > 1)
    throw new CliError(
      EXIT.USAGE,
      `several compose projects have a service ${name}: ${projects.join(', ')}`,
      `name one: docker dso inspect ${projects[0]}_${name}`,
    );
  const project = projects[0];
  const service = matches[0].file.Service;
  const shown = shortName(info.name);
  const owner = `compose:${project}/${service}`;
  const status = await api.status();
  const records = status.secrets.filter((r) => r.serviceId === owner);
  const secrets: SecretReport[] = matches.map(({ file: f }) => {
    const docker = { secret: f.Name, target: f.Name, driver: shown, dso: true, reference: f.Reference ?? null };
    const rec = records.find((r) => r.secret === f.Name);
    const report = secretReport({ ...docker, rotate: f.Refresh !== 'off' }, rec, {
      plugin: shown,
      method: status.settings.authMethod,
    });
    return {
      ...report,
      path: f.Path ?? report.path,
      field: f.Field ?? report.field,
      version: f.Version ?? report.version,
      leaseExpiresAt: f.LeaseExpiresAt ?? report.leaseExpiresAt,
      lastError: report.lastError ?? f.Error ?? null,
    };
  });
  const containers = await composeContainers(ctx, project, service).catch(() => []);
  const tasks: SwarmTask[] = containers.map((c) => ({ ID: c.Id, DesiredState: 'running', Status: { State: c.State } }));
  const shownAs = `${service} (compose project ${project}, secret files on a tmpfs)`;
  // A compose project's leases are the plugin's own (no swarm leader change to outlive): no warnings.
  return conclude(
    { service: { id: owner, name: shownAs }, plugin: shown, pluginState: 'enabled', secrets, warnings: [] },
    tasks,
  );
}
