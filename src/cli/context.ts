// What every command gets: output streams, the Docker client, a way to reach the plugin's
// socket, a clock. Tests pass fakes for each.
import { pluginSocketPath, shortName } from '../docker/objects';
import * as path from 'node:path';
import type { OptionSpec, Parsed } from './args';
import { DockerClient, PluginInfo, readJson, Runner } from './docker';
import { CliError, EXIT } from './errors';
import { PluginApi, PluginClient } from './plugin-client';
import type { HealthChecker } from './health';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** All of standard input (for `--vault-secret-id -`). */
  readStdin(): Promise<Buffer>;
  stdinIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface Context {
  io: Io;
  docker: DockerClient;
  /** Runs other programs (plugin/build.sh); argv arrays only. */
  runner: Runner;
  /** A client for the plugin's socket. */
  connect(plugin: PluginInfo): PluginApi;
  health: HealthChecker;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** plugin/build.sh of the repository this CLI runs from, when there is one. */
  buildScript?: string;
  version: string;
}

export const DEFAULT_PLUGIN = 'dso';
export const DEFAULT_CONFIG_DIR = '/etc/dso';
/** Non-secret facts `init` records for `system info` (mode, provider), beside the credential files. */
export const CLI_META_FILE = 'dso-cli.json';

export const PLUGIN_OPTION: OptionSpec = {
  name: 'plugin',
  type: 'string',
  valueName: 'NAME',
  description: 'the DSO plugin to use; its name is also the secrets driver name (default: $DSO_PLUGIN or "dso")',
};

export const JSON_OPTION: OptionSpec = {
  name: 'json',
  type: 'boolean',
  description: 'print one JSON object for scripts instead of text',
};

export function pluginName(ctx: Context, parsed: Parsed): string {
  const name = (parsed.options.plugin as string | undefined) ?? ctx.io.env.DSO_PLUGIN ?? DEFAULT_PLUGIN;
  if (!/^[a-z0-9][a-z0-9._\-/]*(:[A-Za-z0-9._-]+)?$/.test(name)) {
    throw new CliError(
      EXIT.USAGE,
      `invalid plugin name "${name}": lowercase letters, digits, ".", "_", "-", "/" and an optional :tag`,
    );
  }
  return name;
}

/** "dso:latest" and "dso" are the same plugin (Docker adds :latest). */
export function sameName(a: string | undefined, b: string): boolean {
  return a !== undefined && shortName(a) === shortName(b);
}

/** The plugin, enabled, and a client for its socket; a CliError (exit 3) otherwise. */
export async function requirePlugin(ctx: Context, name: string): Promise<{ info: PluginInfo; api: PluginApi }> {
  const info = await ctx.docker.plugin(name);
  if (!info) {
    throw new CliError(
      EXIT.PLUGIN,
      `the DSO plugin ${name} is not installed in this Docker engine`,
      `create and configure it: docker dso init --plugin ${name} --vault-address https://vault:8200 --vault-auth-method approle --vault-role-id <id> --vault-secret-id -`,
    );
  }
  if (!info.enabled) {
    throw new CliError(
      EXIT.PLUGIN,
      `the DSO plugin ${name} is disabled`,
      `docker plugin enable ${name} (or docker dso init --plugin ${name} ... to configure and enable it)`,
    );
  }
  return { info, api: ctx.connect(info) };
}

/** The plugin's client and status once its socket answers (after an enable or a restart), within `timeoutMs`. */
export async function waitForPlugin(ctx: Context, name: string, timeoutMs = 30_000) {
  const end = ctx.now() + timeoutMs;
  for (;;) {
    try {
      const { api } = await requirePlugin(ctx, name);
      return { api, status: await api.status() };
    } catch (err) {
      if (ctx.now() > end) throw err;
    }
    await ctx.sleep(250);
  }
}

export function defaultConnect(plugin: PluginInfo, runtimeRoot?: string): PluginApi {
  return new PluginClient(pluginSocketPath(plugin, runtimeRoot), shortName(plugin.name));
}

/** Host path of a file the plugin sees at `/etc/dso/...`, given the mount's host source. */
export function hostPathOf(pluginPath: string | undefined, etcDsoSource: string | undefined): string | undefined {
  if (!pluginPath || !etcDsoSource) return undefined;
  if (pluginPath === DEFAULT_CONFIG_DIR) return etcDsoSource;
  if (!pluginPath.startsWith(`${DEFAULT_CONFIG_DIR}/`)) return undefined;
  return path.join(etcDsoSource, pluginPath.slice(DEFAULT_CONFIG_DIR.length + 1));
}

export interface CliMeta {
  mode?: string;
  provider?: string;
}

export function readCliMeta(configDir: string | undefined): CliMeta {
  const meta = configDir ? readJson<CliMeta>(path.join(configDir, CLI_META_FILE)) : undefined;
  return meta && typeof meta === 'object' ? meta : {};
}

/** Prints an object as JSON (for --json). */
export function printJson(ctx: Context, value: unknown): void {
  ctx.io.out(`${JSON.stringify(value, null, 2)}\n`);
}
