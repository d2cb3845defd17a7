// Which driver name is this plugin? Docker does not tell a plugin its own name, but a
// managed plugin runs in a cgroup named after its plugin ID, and the Engine API maps that
// ID to the name secrets use as their driver. Outside Docker, DSO_DRIVER_NAME says it.
import * as fs from 'node:fs';
import type { DockerApi } from '../docker/api';
import { shortName } from '../docker/objects';

/** The 64-hex plugin ID in this process's cgroup path, if any. */
export function pluginIdFromCgroup(text: string): string | undefined {
  return /([0-9a-f]{64})/.exec(text)?.[1];
}

export async function ownDriverNames(api: DockerApi, configured: string | undefined): Promise<Set<string>> {
  const names = new Set<string>();
  if (configured) names.add(shortName(configured));
  let cgroup = '';
  try {
    cgroup = fs.readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    // not Linux, or no /proc: only the configured name
  }
  const id = pluginIdFromCgroup(cgroup);
  if (id) {
    try {
      names.add(shortName((await api.plugin(id)).Name));
    } catch {
      // not a managed plugin after all
    }
  }
  return names;
}
