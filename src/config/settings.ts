// Loads and checks the settings. A bad setting never stops the plugin: the problems are
// returned beside the settings, and every GetSecret answers with them until fixed.
import { DEFAULT_DOCKER_SOCKET } from '../docker/objects';
import * as fs from 'node:fs';
import Ajv from 'ajv';
import { TEMPLATE_NAMES, templateNames } from '../resolve/template';
import { parseAllowedWrites, WriteRule } from '../resolve/writes';
import { parseDuration } from './duration';
import { RawSettings, rawSettingsSchema, SETTING_NAMES, SETTINGS, SettingName } from './schema';
import { DEFAULT_CONFIG_FILE, DEFAULT_SOCKET } from './socket';

export { DEFAULT_CONFIG_FILE, DEFAULT_SOCKET };

export type AuthMethodName = 'token' | 'approle' | 'jwt' | 'cert';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface TlsSettings {
  caCertFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  serverName?: string;
  skipVerify: boolean;
}

/** The plugin's settings, as settingsFrom() reads them. */
export type Settings = ReturnType<typeof settingsFrom>;

export interface LoadedSettings {
  settings: Settings;
  /** Each names the setting and what it should be; never its value. */
  problems: string[];
}

const MAX_TIMEOUT_MS = 29_999;

const ajv = new Ajv({ allErrors: true });
const validateRaw = ajv.compile<RawSettings>(rawSettingsSchema);

function readConfigFile(file: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      problems.push(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return {};
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    problems.push(`${file}: must hold a JSON object of settings, e.g. {"VAULT_ADDR": "https://vault:8200"}`);
  } catch {
    problems.push(`${file}: is not valid JSON`);
  }
  return {};
}

/** File values first, then the environment; empty strings count as unset (plugin env defaults). */
function mergeSources(
  env: NodeJS.ProcessEnv,
  file: Record<string, unknown>,
  problems: string[],
  fileName: string,
): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(file)) {
    if (!(SETTING_NAMES as string[]).includes(key)) {
      problems.push(`${fileName}: unknown setting ${key}; known settings: ${SETTING_NAMES.join(', ')}`);
      continue;
    }
    if (value === null || value === '') continue;
    // DSO_ALLOWED_WRITES separates entries with ";" (its entries hold commas).
    merged[key] = Array.isArray(value)
      ? value.join(key === 'DSO_ALLOWED_WRITES' ? ';' : ',')
      : typeof value === 'object'
        ? value
        : String(value);
  }
  for (const name of SETTING_NAMES) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[name] = value;
  }
  return merged;
}

function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** VAULT_ADDR's addresses, without trailing slashes (the plugin's reading, and `docker dso`'s). */
export const vaultAddresses = (text: string | undefined) => list(text).map((a) => a.replace(/\/+$/, ''));

export function loadSettings(
  env: NodeJS.ProcessEnv = process.env,
  configFile = env.DSO_CONFIG ?? DEFAULT_CONFIG_FILE,
): LoadedSettings {
  const problems: string[] = [];
  const merged = mergeSources(env, readConfigFile(configFile, problems), problems, configFile);

  const raw: RawSettings = {};
  if (!validateRaw(merged)) {
    const bad = new Set<SettingName>();
    for (const error of validateRaw.errors ?? []) {
      const name = error.instancePath.replace(/^\//, '') as SettingName;
      if (name && SETTINGS[name] && !bad.has(name)) {
        bad.add(name);
        problems.push(`${name} is invalid: it must be ${SETTINGS[name].hint}`);
      }
    }
    for (const name of SETTING_NAMES)
      if (!bad.has(name) && typeof merged[name] === 'string') raw[name] = merged[name] as string;
  } else {
    Object.assign(raw, merged);
  }

  const settings = settingsFrom(raw, problems);
  problems.push(...checkCombination(settings, merged));
  return { settings, problems };
}

/** The settings from their checked raw values; a duration out of range is a problem, and its default is used. */
function settingsFrom(raw: RawSettings, problems: string[]) {
  const duration = (name: SettingName, fallbackMs: number, maxMs = Number.MAX_SAFE_INTEGER): number => {
    if (raw[name] === undefined) return fallbackMs;
    const ms = parseDuration(raw[name]!);
    if (ms === undefined || ms <= 0 || ms > maxMs) {
      problems.push(`${name} is invalid: it must be ${SETTINGS[name].hint}`);
      return fallbackMs;
    }
    return ms;
  };
  const authMethod = (raw.VAULT_AUTH_METHOD ?? 'token') as AuthMethodName;
  return {
    vaultAddresses: vaultAddresses(raw.VAULT_ADDR),
    namespace: raw.VAULT_NAMESPACE,
    authMethod,
    authMount: (raw.VAULT_AUTH_MOUNT ?? authMethod).replace(/^\/+|\/+$/g, ''),
    tokenFile: raw.VAULT_TOKEN_FILE,
    roleId: raw.VAULT_ROLE_ID,
    roleIdFile: raw.VAULT_ROLE_ID_FILE,
    secretIdFile: raw.VAULT_SECRET_ID_FILE,
    secretIdWrapped: raw.VAULT_SECRET_ID_WRAPPED === 'true',
    jwtFile: raw.VAULT_JWT_FILE,
    jwtRole: raw.VAULT_JWT_ROLE,
    certRole: raw.VAULT_CERT_ROLE,
    tls: {
      caCertFile: raw.VAULT_CACERT,
      clientCertFile: raw.VAULT_CLIENT_CERT,
      clientKeyFile: raw.VAULT_CLIENT_KEY,
      serverName: raw.VAULT_TLS_SERVER_NAME,
      // Only the exact value `true`: "1" or "yes" must not silently disable verification.
      skipVerify: raw.VAULT_SKIP_VERIFY === 'true',
    },
    timeoutMs: duration('DSO_TIMEOUT', 10_000, MAX_TIMEOUT_MS),
    pathTemplate: raw.DSO_PATH_TEMPLATE,
    allowedPaths: list(raw.DSO_ALLOWED_PATHS),
    /** DSO_ALLOWED_WRITES: where a reference's query string may be sent as a write, and which parameters. */
    allowedWrites: writes(raw.DSO_ALLOWED_WRITES, problems),
    rotate: raw.DSO_ROTATE === 'true',
    rotateIntervalMs: duration('DSO_ROTATE_INTERVAL', 60_000),
    logLevel: (raw.DSO_LOG_LEVEL ?? 'info') as LogLevel,
    metricsAddress: raw.DSO_METRICS_ADDR,
    socket: raw.DSO_SOCKET ?? DEFAULT_SOCKET,
    /** The Docker Engine API, to learn which tasks still run (lease revocation). */
    dockerSocket: raw.DSO_DOCKER_SOCKET ?? DEFAULT_DOCKER_SOCKET,
    /** This plugin's name as secrets' driver; found by itself inside a managed plugin. */
    driverName: raw.DSO_DRIVER_NAME,
  };
}

/** DSO_ALLOWED_WRITES; the schema checked its syntax already, so a failure here is a second guard. */
function writes(text: string | undefined, problems: string[]): WriteRule[] {
  try {
    return parseAllowedWrites(text);
  } catch {
    problems.push(`DSO_ALLOWED_WRITES is invalid: it must be ${SETTINGS.DSO_ALLOWED_WRITES.hint}`);
    return [];
  }
}

/** Settings that are each valid but do not fit together. */
function checkCombination(s: Settings, given: Record<string, unknown>): string[] {
  const problems: string[] = [];
  // An invalid VAULT_ADDR is already reported as invalid: "not set" only when absent.
  if (s.vaultAddresses.length === 0 && given.VAULT_ADDR === undefined) {
    problems.push('VAULT_ADDR is not set: set it to the Vault address, e.g. https://vault:8200');
  }
  switch (s.authMethod) {
    case 'token':
      if (!s.tokenFile)
        problems.push(
          'VAULT_TOKEN_FILE is not set: the token method reads the token from this file, e.g. /etc/dso/token',
        );
      break;
    case 'approle':
      if (!s.roleId && !s.roleIdFile)
        problems.push('VAULT_ROLE_ID or VAULT_ROLE_ID_FILE must be set for VAULT_AUTH_METHOD=approle');
      if (s.roleId && s.roleIdFile) problems.push('set only one of VAULT_ROLE_ID and VAULT_ROLE_ID_FILE');
      if (!s.secretIdFile)
        problems.push(
          'VAULT_SECRET_ID_FILE is not set: AppRole reads its secret id from this file, e.g. /etc/dso/secret-id',
        );
      break;
    case 'jwt':
      if (!s.jwtFile) problems.push('VAULT_JWT_FILE is not set: the jwt method reads the JWT from this file');
      if (!s.jwtRole) problems.push('VAULT_JWT_ROLE is not set: name the Vault role to log in with');
      break;
    case 'cert':
      if (!s.tls.clientCertFile || !s.tls.clientKeyFile)
        problems.push('VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be set for VAULT_AUTH_METHOD=cert');
      break;
  }
  if (!!s.tls.clientCertFile !== !!s.tls.clientKeyFile)
    problems.push('VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be set together');
  // A typo such as {stak} would otherwise make a pattern silently allow nothing.
  const templated = [
    ['DSO_ALLOWED_PATHS', s.allowedPaths],
    ['DSO_ALLOWED_WRITES', s.allowedWrites.map((r) => r.pattern)],
    ['DSO_PATH_TEMPLATE', s.pathTemplate ? [s.pathTemplate] : []],
  ] as const;
  for (const [name, texts] of templated) {
    const unknown = texts.flatMap(templateNames).filter((t) => !(TEMPLATE_NAMES as readonly string[]).includes(t));
    // The unknown name is part of the value, and problems never repeat values.
    if (unknown.length)
      problems.push(`${name} uses an unknown template; known: ${TEMPLATE_NAMES.map((t) => `{${t}}`).join(', ')}`);
  }
  return problems;
}

/** What may be shown about the settings (status route, `docker dso system info`): no credentials. */
export type SettingsSummary = ReturnType<typeof describeSettings>;

export function describeSettings(s: Settings) {
  return {
    vaultAddresses: s.vaultAddresses,
    namespace: s.namespace ?? null,
    authMethod: s.authMethod,
    authMount: s.authMount,
    timeoutMs: s.timeoutMs,
    pathTemplate: s.pathTemplate ?? null,
    allowedPaths: s.allowedPaths,
    allowedWrites: s.allowedWrites.map((r) => `${r.pattern}?${r.params.join(',')}`),
    rotate: s.rotate,
    rotateIntervalMs: s.rotateIntervalMs,
    logLevel: s.logLevel,
    tlsSkipVerify: s.tls.skipVerify,
  };
}
