// `docker dso system info`: the plugin's state as Docker and the plugin itself report it,
// plus Vault's health asked from here. Exit 0 when all is well, 1 when something is wrong
// (invalid settings, no Vault login, Vault unhealthy), 3 when the plugin is absent or down.
import { vaultAddresses } from '../../config/settings';
import { shortName } from '../../docker/objects';
import type { CommandSpec, Parsed } from '../args';
import { Context, hostPathOf, JSON_OPTION, PLUGIN_OPTION, pluginName, printJson, readCliMeta } from '../context';
import type { PluginInfo } from '../docker';
import { CliError, EXIT } from '../errors';
import { counted, formatDuration, formatTime, keyValues } from '../format';
import type { VaultHealth } from '../health';
import type { PluginStatus, TokenStatus } from '../plugin-client';
import type { RotationHealth } from '../../rotation/watcher';

export const spec: CommandSpec = {
  path: ['system', 'info'],
  summary: 'Show the mode, provider, Vault addresses, auth method, plugin state, token TTL, Vault health and problems',
  description: [
    'Learned from Docker (plugin state, settings) and from the plugin itself over its socket (settings',
    'problems, token, the address that answered last, each address as active, standby, sealed or skipped);',
    'Vault health is also asked of each address from this host (GET /v1/sys/health).',
    'Exits 0 when all is well, 1 when a problem is shown, 3 when the plugin is absent, disabled or down.',
  ].join('\n'),
  options: [JSON_OPTION, PLUGIN_OPTION],
  args: [],
  examples: ['docker dso system info', 'docker dso system info --json | jq .token.ttlSeconds'],
};

export interface InfoReport {
  plugin: {
    name: string;
    state: 'enabled' | 'disabled' | 'absent' | 'unreachable';
    id?: string;
    version?: string;
    configDir?: string;
  };
  mode: string;
  provider: string;
  vaultAddresses: string[];
  activeAddress?: string;
  /** Each address as the plugin sees it: role, skipped after a failure, last error. */
  vaultNodes?: NonNullable<NonNullable<PluginStatus['vault']>['addresses']>;
  namespace?: string;
  authMethod?: string;
  authMount?: string;
  token?: Pick<TokenStatus, 'loggedIn' | 'ttlSeconds' | 'expiresAt' | 'renewable' | 'policies' | 'lastError'>;
  allowedPaths?: string[];
  allowedWrites?: string[];
  timeoutMs?: number;
  /** DSO_ROTATE and its interval, and the watcher's own report (absent while the settings are invalid). */
  rotation?: { default: boolean; intervalSeconds: number } & Partial<
    Pick<RotationHealth, 'leader' | 'driverNames' | 'lastPass' | 'lastError'>
  >;
  health: VaultHealth[];
  /** Compose projects on a plain host (docker dso up without swarm): their secret files. */
  composeProjects?: Array<{ project: string; files: number; failing: string[] }>;
  problems: string[];
}

export async function gatherInfo(ctx: Context, name: string): Promise<{ report: InfoReport; exit: number }> {
  const plugin: PluginInfo | undefined = await ctx.docker.plugin(name);
  const shown = plugin ? shortName(plugin.name) : name;
  const meta = readCliMeta(plugin?.etcDsoSource);
  const report: InfoReport = {
    plugin: {
      name: shown,
      state: plugin ? (plugin.enabled ? 'enabled' : 'disabled') : 'absent',
      id: plugin?.id,
      configDir: plugin?.etcDsoSource,
    },
    mode: meta.mode ?? 'cloud',
    provider: meta.provider ?? 'vault',
    vaultAddresses: vaultAddresses(plugin?.env.VAULT_ADDR),
    namespace: plugin?.env.VAULT_NAMESPACE || undefined,
    authMethod: plugin ? plugin.env.VAULT_AUTH_METHOD || 'token' : undefined,
    health: [],
    problems: [],
  };
  if (!plugin) {
    report.problems.push(
      `the plugin ${name} is not installed: docker dso init --plugin ${name} ... creates and configures it`,
    );
    return { report, exit: EXIT.PLUGIN };
  }

  let status: PluginStatus | undefined;
  let exit: number = EXIT.OK;
  if (!plugin.enabled) {
    report.problems.push(`the plugin ${shown} is disabled: docker plugin enable ${shown}`);
    exit = EXIT.PLUGIN;
  } else {
    try {
      status = await ctx.connect(plugin).status();
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      report.plugin.state = 'unreachable';
      report.problems.push(err.message + (err.fix ? ` (${err.fix})` : ''));
      exit = EXIT.PLUGIN;
    }
  }

  if (status) {
    const s = status.settings;
    report.plugin.version = status.version;
    report.vaultAddresses = s.vaultAddresses;
    report.namespace = s.namespace ?? undefined;
    report.authMethod = s.authMethod;
    report.authMount = s.authMount;
    report.allowedPaths = s.allowedPaths;
    report.allowedWrites = s.allowedWrites;
    report.timeoutMs = s.timeoutMs;
    const r = status.rotation;
    report.rotation = {
      default: r?.default ?? s.rotate,
      intervalSeconds: (r?.intervalMs ?? s.rotateIntervalMs) / 1000,
      leader: r?.leader,
      driverNames: r?.driverNames,
      lastPass: r?.lastPass,
      lastError: r?.lastError,
    };
    // A failing watcher rolls nothing: that is a problem, not a detail.
    if (r?.lastPass?.outcome === 'failed')
      report.problems.push(
        `rotation's last pass failed: ${r.lastError?.message ?? 'unknown error'} (the plugin log says more)`,
      );
    report.activeAddress = status.vault?.activeAddress;
    report.vaultNodes = status.vault?.addresses;
    const t = status.vault?.token;
    if (t) {
      const { loggedIn, ttlSeconds, expiresAt, renewable, policies, lastError } = t;
      report.token = { loggedIn, ttlSeconds, expiresAt, renewable, policies, lastError };
      if (!t.loggedIn)
        report.problems.push(
          `not logged in to Vault${t.lastError ? `: ${t.lastError}` : ' yet'} (docker dso ` +
            `system test-vault says why and how to fix it)`,
        );
    }
    for (const p of status.problems) report.problems.push(`invalid setting: ${p}`);
    const compose = await ctx
      .connect(plugin)
      .composeList()
      .catch(() => undefined);
    if (compose?.Projects.length) {
      report.composeProjects = compose.Projects.map((p) => ({
        project: p.Project,
        files: p.Files.length,
        failing: p.Files.filter((f) => f.Error).map((f) => `${f.Service}/${f.Name}: ${f.Error}`),
      }));
      for (const p of report.composeProjects)
        for (const f of p.failing) report.problems.push(`compose project ${p.project}: ${f} (not refreshed)`);
    }
  }

  // Vault health, from this host (the plugin uses the host's network too).
  const tls = {
    caFile: hostPathOf(plugin.env.VAULT_CACERT || undefined, plugin.etcDsoSource),
    serverName: plugin.env.VAULT_TLS_SERVER_NAME || undefined,
    skipVerify: plugin.env.VAULT_SKIP_VERIFY === 'true',
  };
  report.health = await Promise.all(report.vaultAddresses.map((a) => ctx.health(a, tls)));
  if (report.vaultAddresses.length && !report.health.some((h) => h.healthy)) {
    report.problems.push(
      `no Vault address is healthy: ` +
        `${report.health.map((h) => `${h.address} ${h.state}${h.error ? ` (${h.error})` : ''}`).join('; ')}`,
    );
  }
  if (exit === EXIT.OK && report.problems.length) exit = EXIT.FAILURE;
  return { report, exit };
}

function healthLine(h: VaultHealth, active?: string): string {
  const parts: string[] = [h.state];
  if (h.reachable && h.sealed !== undefined) parts.push(h.sealed ? 'sealed' : 'unsealed');
  if (h.version) parts.push(`version ${h.version}`);
  if (h.error) parts.push(h.error);
  return `${h.address}${active && active === h.address ? ' (in use)' : ''}: ${[...new Set(parts)].join(', ')}`;
}

/** One address as the plugin sees it: its role, whether it answered last, whether requests skip it and why. */
function nodeLine(n: NonNullable<InfoReport['vaultNodes']>[number], active?: string): string {
  const parts: string[] = [n.state && n.state !== 'unknown' ? n.state : 'role not known yet'];
  if (n.address === active) parts.push('answered last');
  if (n.skipped) parts.push(`skipped by requests until it answers again${n.lastError ? ` (${n.lastError})` : ''}`);
  return `${n.address}: ${parts.join(', ')}`;
}

export function formatInfo(r: InfoReport, now: number): string {
  const rows: [string, string][] = [];
  rows.push([
    'Plugin',
    [
      `${r.plugin.name}: ${r.plugin.state}`,
      r.plugin.id ? ` (id ${r.plugin.id.slice(0, 12)})` : '',
      r.plugin.version ? `, version ${r.plugin.version}` : '',
    ].join(''),
  ]);
  rows.push(['Mode', r.mode]);
  rows.push(['Provider', r.provider]);
  if (r.plugin.state !== 'absent') {
    rows.push(['Vault addresses', r.vaultAddresses.length ? r.vaultAddresses.join(', ') : '(none set)']);
    if (r.namespace) rows.push(['Namespace', r.namespace]);
    rows.push(['Auth method', `${r.authMethod ?? '?'}${r.authMount ? ` (mount auth/${r.authMount})` : ''}`]);
    if (r.token) {
      const t = r.token;
      rows.push([
        'Token',
        t.loggedIn
          ? [
              `logged in, TTL ${t.ttlSeconds ? formatDuration(t.ttlSeconds) : 'none (does not expire)'}`,
              t.expiresAt ? `, expires ${formatTime(t.expiresAt, now)}` : '',
              t.renewable ? ', renewable' : '',
              t.policies?.length ? `, policies ${t.policies.join(', ')}` : '',
            ].join('')
          : `not logged in${t.lastError ? `: ${t.lastError}` : ''}`,
      ]);
    } else if (r.plugin.state === 'enabled') {
      rows.push(['Token', 'unknown (the plugin did not report one)']);
    }
    rows.push(['Vault health', r.health.length ? r.health.map((h) => healthLine(h, r.activeAddress)).join('\n') : '-']);
    if (r.vaultNodes?.length)
      rows.push(['Plugin sees', r.vaultNodes.map((n) => nodeLine(n, r.activeAddress)).join('\n')]);
    if (r.allowedPaths?.length) rows.push(['Allowed paths', r.allowedPaths.join(', ')]);
    if (r.allowedWrites?.length) rows.push(['Allowed writes', r.allowedWrites.join('; ')]);
    if (r.rotation) {
      const every = r.rotation.intervalSeconds ? `, checked every ${formatDuration(r.rotation.intervalSeconds)}` : '';
      const lines = [
        r.rotation.default
          ? `on for every secret (DSO_ROTATE=true; dso.rotate=false turns it off)${every}`
          : `only for secrets labelled dso.rotate=true${every}`,
      ];
      // The watcher's own report, one line each: where it runs, what it recognises, how it went.
      const w = r.rotation;
      if (w.leader !== undefined) {
        const where =
          w.leader === null
            ? 'not known yet (no pass so far)'
            : w.leader
              ? 'runs here (this node is the swarm leader)'
              : 'idle here (runs on the swarm leader)';
        lines.push(`watcher: ${where}`);
        lines.push(`driver names: ${w.driverNames?.length ? w.driverNames.join(', ') : 'none recognised yet'}`);
        if (w.lastPass) {
          const rolls = w.lastPass.rolls ? `, ${counted(w.lastPass.rolls, 'roll')}` : '';
          lines.push(`last pass: ${formatTime(w.lastPass.at, now)}: ${w.lastPass.outcome}${rolls}`);
        }
        if (w.lastError) lines.push(`last error: ${formatTime(w.lastError.at, now)}: ${w.lastError.message}`);
      }
      rows.push(['Rotation', lines.join('\n')]);
    }
    if (r.composeProjects?.length) {
      const every = r.rotation?.intervalSeconds ? ` every ${formatDuration(r.rotation.intervalSeconds)}` : '';
      rows.push([
        'Compose projects',
        r.composeProjects
          .map(
            (p) =>
              `${p.project}: ${counted(p.files, 'secret file')} on a tmpfs, ` +
              `refreshed in place${every} (docker dso down ${p.project} removes them)`,
          )
          .join('\n'),
      ]);
    }
    if (r.plugin.configDir) rows.push(['Config dir', `${r.plugin.configDir} (the plugin's /etc/dso)`]);
  }
  rows.push(['Problems', r.problems.length ? r.problems.map((p) => `- ${p}`).join('\n') : 'none']);
  return `${keyValues(rows)}\n`;
}

export async function run(ctx: Context, parsed: Parsed): Promise<number> {
  const name = pluginName(ctx, parsed);
  const { report, exit } = await gatherInfo(ctx, name);
  if (parsed.options.json) printJson(ctx, report);
  else ctx.io.out(formatInfo(report, ctx.now()));
  return exit;
}
