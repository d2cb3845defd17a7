// The Docker Engine API's objects as DSO reads them, and the facts both halves derive from
// them: the plugin gets them from ./api.ts over the socket it mounts, `docker dso` from the
// user's docker CLI (`docker <object> inspect --format '{{json .}}'` prints these very
// objects), so one shape and one reading serve both.
import * as path from 'node:path';
import type { SwarmServiceFull } from './api';

/** Where dockerd mounts its API socket, and where a managed plugin's own sockets live. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
export const PLUGIN_RUNTIME_ROOT = '/run/docker/plugins';

/** GET /plugins/{name}/json, `docker plugin inspect`. */
export interface DockerPlugin {
  Id: string;
  Name: string;
  Enabled?: boolean;
  Settings?: { Env?: string[]; Mounts?: { Name?: string; Source?: string; Destination?: string }[] };
  Config?: { Interface?: { Socket?: string }; Env?: { Name: string; Settable?: string[] | null }[] };
}

/** "dso:latest" and "dso" are the same plugin and driver: Docker adds :latest to a name without a tag. */
export function shortName(name: string): string {
  return name.replace(/:latest$/, '');
}

/** A plugin as `docker dso` reads it. */
export type PluginInfo = ReturnType<typeof pluginInfo>;

export function pluginInfo(p: DockerPlugin) {
  const env: Record<string, string> = {};
  for (const e of p.Settings?.Env ?? []) {
    const i = e.indexOf('=');
    if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
  }
  const etc = (p.Settings?.Mounts ?? []).find((m) => m.Destination === '/etc/dso');
  return {
    /** The name as Docker shows it (with its tag, e.g. dso:latest); shortName() for messages. */
    name: p.Name,
    id: p.Id,
    enabled: p.Enabled === true,
    /** Current settings (env) of the plugin: no credentials live here, only file paths. */
    env,
    /** Env names `docker plugin set` accepts. */
    settable: (p.Config?.Env ?? []).filter((e) => (e.Settable ?? []).includes('value')).map((e) => e.Name),
    /** Host directory mounted at /etc/dso, when the plugin has that mount. */
    etcDsoSource: etc?.Source,
    /** Socket file name inside the plugin's runtime directory (config.json interface.socket). */
    socketName: p.Config?.Interface?.Socket || 'dso.sock',
  };
}

/** Where dockerd puts a managed plugin's socket on the host. */
export function pluginSocketPath(plugin: PluginInfo, runtimeRoot = PLUGIN_RUNTIME_ROOT): string {
  return path.join(runtimeRoot, plugin.id, plugin.socketName);
}

/** The services that mount a secret (by secret ID). */
export function servicesUsing<S extends Pick<SwarmServiceFull, 'Spec'>>(secretId: string, services: S[]): S[] {
  return services.filter((s) =>
    (s.Spec.TaskTemplate.ContainerSpec?.Secrets ?? []).some((ref) => ref.SecretID === secretId),
  );
}
