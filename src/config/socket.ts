// Where the plugin listens, found without loading anything heavy: main.ts opens the socket
// before the rest of the plugin is loaded. Same sources and order as loadSettings: the
// environment wins over /etc/dso/dso.json; an unreadable file is reported by loadSettings.
import * as fs from 'node:fs';

export const DEFAULT_CONFIG_FILE = '/etc/dso/dso.json';
export const DEFAULT_SOCKET = '/run/docker/plugins/dso.sock';

export function socketSetting(
  env: NodeJS.ProcessEnv = process.env,
  configFile = env.DSO_CONFIG ?? DEFAULT_CONFIG_FILE,
): string {
  if (env.DSO_SOCKET) return env.DSO_SOCKET;
  try {
    const file = JSON.parse(fs.readFileSync(configFile, 'utf8')) as { DSO_SOCKET?: unknown };
    if (typeof file?.DSO_SOCKET === 'string' && file.DSO_SOCKET !== '') return file.DSO_SOCKET;
  } catch {
    // missing or invalid: loadSettings says why
  }
  return DEFAULT_SOCKET;
}
