// `docker dso up`'s compose transformation, a pure function: every `environment` value
// that is a dso:// reference becomes a driver-backed secret (labels dso.ref) mounted in the
// service, and the variable becomes <VAR>_FILE=/run/secrets/<name>. Secrets already
// declared with the dso driver pass through. The result holds references only, no values.
import { shortName } from '../docker/objects';
import YAML from 'yaml';
import { DsoError } from '../errors';
import type { ComposeSecretSpec } from '../plugin/compose-protocol';
import { parseReference, SCHEME } from '../resolve/reference';

export class ComposeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComposeError';
  }
}

export interface InjectedSecret {
  service: string;
  /** The environment variable that held the reference (it becomes <variable>_FILE). */
  variable: string;
  /** Key under the compose file's top-level `secrets` (Docker names it <stack>_<key>). */
  secret: string;
  reference: string;
  /** Where the value is mounted in the service's containers. */
  file: string;
}

export interface TransformResult {
  compose: Record<string, unknown>;
  injected: InjectedSecret[];
  /** Top-level secrets declared with the dso driver, kept (their driver set to the plugin's name). */
  passedThrough: string[];
  /** The file's top-level `name:` (removed: `docker stack deploy` refuses it). */
  name?: string;
  warnings: string[];
}

export interface TransformOptions {
  /** The secrets driver: the DSO plugin's name. */
  driver: string;
}

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `base`, else `base_2`, `base_3`...: the first that `taken` does not hold. */
function freeName(base: string, taken: Set<unknown>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
  return name;
}

/** The secret a service's `secrets:` entry mounts (short or long syntax). */
const sourceOf = (m: unknown): string => (typeof m === 'string' ? m : isObject(m) ? String(m.source ?? '') : '');

/** Parses compose YAML (merge keys allowed, as Docker's loader does). */
export function parseCompose(text: string, file: string): Obj {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { merge: true, maxAliasCount: 1000 });
  } catch (err) {
    throw new ComposeError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isObject(doc)) throw new ComposeError(`${file} does not hold a compose file (a mapping with "services")`);
  return doc;
}

export function stringifyCompose(doc: Obj): string {
  return YAML.stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** A secret key made from a variable name: DB_PASSWORD -> db_password. */
export function secretKeyFor(variable: string): string {
  const key = variable
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '_')
    .replace(/^[^a-z0-9]+/, '')
    .replace(/_+$/, '');
  return key || 'secret';
}

function labelsOf(def: Obj): Record<string, string> {
  const labels = def.labels;
  if (isObject(labels)) return Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)]));
  if (Array.isArray(labels)) {
    return Object.fromEntries(
      labels
        .map((l) => String(l))
        .map((l) => (l.includes('=') ? [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] : [l, ''])),
    );
  }
  return {};
}

function checkVersion(doc: Obj, warnings: string[]): void {
  if (doc.version === undefined) {
    // Debian's 20.10 docker stack deploy reads a file without one as format 1.0 and refuses it.
    doc.version = '3.8';
    return;
  }
  const text = String(doc.version);
  const m = /^(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) throw new ComposeError(`version "${text}" is not a compose file format version (e.g. "3.8")`);
  const major = Number(m[1]);
  const minor = Number(m[2] ?? 0);
  if (major < 3)
    throw new ComposeError(
      `compose file format ${text} cannot be deployed to a swarm: docker stack deploy needs ` +
        `3.x (secret drivers need 3.8 or later)`,
    );
  if (major === 3 && minor < 8) {
    doc.version = '3.8';
    warnings.push(`compose file format ${text} raised to 3.8: secret drivers need 3.8 or later`);
  }
}

export function transformCompose(input: Obj, options: TransformOptions): TransformResult {
  const doc = structuredClone(input);
  const warnings: string[] = [];
  const injected: InjectedSecret[] = [];
  const passedThrough: string[] = [];
  const driver = shortName(options.driver);

  let name: string | undefined;
  if (doc.name !== undefined) {
    name = String(doc.name);
    delete doc.name;
  }
  if (!isObject(doc.services) || Object.keys(doc.services).length === 0)
    throw new ComposeError('the compose file has no services');
  if (doc.secrets !== undefined && !isObject(doc.secrets))
    throw new ComposeError('the top-level "secrets" must be a mapping');
  const secrets: Obj = isObject(doc.secrets) ? { ...doc.secrets } : {};

  // Secrets declared with the dso driver: kept, driver set to this plugin's name.
  for (const [key, def] of Object.entries(secrets)) {
    if (!isObject(def) || typeof def.driver !== 'string') continue;
    if (shortName(def.driver) !== 'dso' && shortName(def.driver) !== driver) continue;
    secrets[key] = { ...def, driver };
    passedThrough.push(key);
    const labels = labelsOf(def);
    if (!labels['dso.ref'] && !labels['dso.path']) {
      warnings.push(
        `secret ${key} has neither a dso.ref nor a dso.path label: the plugin's DSO_PATH_TEMPLATE must name its path`,
      );
    }
    if (def.driver_opts !== undefined)
      warnings.push(`secret ${key}: driver_opts never reach a secrets driver; use labels (dso.ref, dso.format, ...)`);
  }

  const taken = new Set(Object.keys(secrets));
  const byReference = new Map<string, string>();
  const allocate = (variable: string, service: string, reference: string): string => {
    const known = byReference.get(reference);
    if (known) return known;
    const base = secretKeyFor(variable);
    const key = taken.has(base) ? freeName(`${secretKeyFor(service)}_${base}`, taken) : base;
    taken.add(key);
    byReference.set(reference, key);
    secrets[key] = { driver, labels: { 'dso.ref': reference } };
    return key;
  };

  const services = doc.services as Obj;
  for (const [serviceName, def] of Object.entries(services)) {
    if (!isObject(def)) continue;
    const env = def.environment;
    if (env === undefined || env === null) continue;
    if (def.env_file !== undefined)
      warnings.push(
        `service ${serviceName}: env_file is not scanned for dso:// references (write them under environment)`,
      );

    // Variables as [name, value] pairs, in order; list items without "=" pass through as is.
    if (!Array.isArray(env) && !isObject(env))
      throw new ComposeError(`services.${serviceName}.environment must be a mapping or a list`);
    const pairs: [string, unknown][] = Array.isArray(env)
      ? env.map((item) => {
          const text = String(item);
          const eq = text.indexOf('=');
          return eq < 0 ? [text, undefined] : [text.slice(0, eq), text.slice(eq + 1)];
        })
      : Object.entries(env);

    const isRef = (v: unknown): v is string => typeof v === 'string' && v.trim().startsWith(SCHEME);
    if (!pairs.some(([, v]) => isRef(v))) continue;
    const names = new Set(pairs.map(([k]) => k));

    if (def.secrets !== undefined && !Array.isArray(def.secrets))
      throw new ComposeError(`services.${serviceName}.secrets must be a list`);
    const mounts: unknown[] = [...((def.secrets as unknown[] | undefined) ?? [])];
    const targetOf = (m: unknown): string | undefined =>
      typeof m === 'string' ? m : isObject(m) ? String(m.target ?? m.source ?? '') : undefined;

    const replaced = new Map<string, [string, string]>();
    for (const [variable, value] of pairs) {
      if (!isRef(value)) continue;
      const reference = value.trim();
      try {
        parseReference(reference, `services.${serviceName}.environment.${variable}`);
      } catch (err) {
        throw new ComposeError(err instanceof DsoError ? err.message : String(err));
      }
      const fileVar = `${variable}_FILE`;
      if (names.has(fileVar)) {
        throw new ComposeError(
          `services.${serviceName}.environment has both ${variable} (a dso:// reference) and ` +
            `${fileVar}: ${variable} would become ${fileVar}; remove one`,
        );
      }
      const key = allocate(variable, serviceName, reference);
      const existing = mounts.find((m) => sourceOf(m) === key);
      const target = existing !== undefined ? targetOf(existing) || key : freeName(key, new Set(mounts.map(targetOf)));
      if (existing === undefined) mounts.push(target === key ? key : { source: key, target });
      const file = `/run/secrets/${target}`;
      replaced.set(variable, [fileVar, file]);
      injected.push({ service: serviceName, variable, secret: key, reference, file });
    }

    def.secrets = mounts;
    // A variable that held a reference becomes <VAR>_FILE in its place; list items without "=" stay.
    const swap = ([k, v]: [string, unknown]) => (v === undefined ? undefined : replaced.get(k));
    def.environment = Array.isArray(env)
      ? env.map((item, i) => swap(pairs[i])?.join('=') ?? item)
      : Object.fromEntries(pairs.map((p) => swap(p) ?? p));
  }

  if (injected.length || passedThrough.length) {
    checkVersion(doc, warnings);
    doc.secrets = secrets;
  }
  return { compose: doc, injected, passedThrough, name, warnings };
}

/** A stack name from a directory or file name, as compose derives project names. */
export function stackNameFrom(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '')
    .replace(/^[^a-z0-9]+/, '');
}

export interface PlainHostPlan {
  /** One file per DSO secret and service that mounts it (key under the rewritten `secrets`, and file name). */
  files: ComposeSecretSpec[];
  /** The compose file with each DSO secret as a file-based secret at `hostPathOf(key)`. */
  finish(hostPathOf: (key: string) => string): Obj;
}

/** `user: "1000"` or `"1000:1000"`: numeric ids only (names would need the image's /etc/passwd). */
function numericUser(user: unknown): { uid?: number; gid?: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(String(user ?? '').trim());
  return m ? { uid: Number(m[1]), gid: m[2] === undefined ? undefined : Number(m[2]) } : {};
}

/**
 * Plain Docker hosts (no swarm): secrets drivers do not exist there, so every DSO secret of
 * the swarm transform (`result`) becomes a compose file-based secret, one file per service
 * that mounts it (leases are per service), mounted where the swarm transform mounts it
 * (/run/secrets/<target>, so the <VAR>_FILE variables stay as they are).
 */
export function planFileSecrets(result: TransformResult, driver: string): PlainHostPlan {
  const doc = structuredClone(result.compose);
  const secrets: Obj = isObject(doc.secrets) ? doc.secrets : {};
  const isOurs = (d: unknown) =>
    isObject(d) && typeof d.driver === 'string' && shortName(d.driver) === shortName(driver);
  const ours = new Set(Object.keys(secrets).filter((k) => isOurs(secrets[k])));
  const services = isObject(doc.services) ? doc.services : {};
  const users = new Map<string, string[]>();
  for (const [name, def] of Object.entries(services)) {
    if (!isObject(def) || !Array.isArray(def.secrets)) continue;
    for (const m of def.secrets) {
      const source = sourceOf(m);
      if (ours.has(source)) users.set(source, [...(users.get(source) ?? []), name]);
    }
  }
  const files: ComposeSecretSpec[] = [];
  const taken = new Set(Object.keys(secrets));
  const keyFor = new Map<string, string>(); // `${secret}\n${service}` -> file key
  for (const secret of ours) {
    const labels = labelsOf(secrets[secret] as Obj);
    const list = users.get(secret) ?? [];
    for (const service of list) {
      const key = list.length > 1 ? freeName(`${secretKeyFor(service)}_${secret}`, taken) : secret;
      taken.add(key);
      keyFor.set(`${secret}\n${service}`, key);
      const def = services[service] as Obj;
      const mount = (def.secrets as unknown[]).find((m) => isObject(m) && m.source === secret) as Obj | undefined;
      // The mount's own uid/gid, else the service's numeric user.
      const owner = (id: 'uid' | 'gid') => {
        const n = mount?.[id] === undefined ? undefined : Number(mount[id]);
        return Number.isInteger(n) ? n : numericUser(def.user)[id];
      };
      files.push({ Name: key, Service: service, Labels: labels, Uid: owner('uid'), Gid: owner('gid') });
    }
  }
  return {
    files,
    finish(hostPathOf) {
      const out = structuredClone(doc);
      const outSecrets: Obj = isObject(out.secrets) ? out.secrets : {};
      for (const secret of ours) delete outSecrets[secret];
      for (const f of files) outSecrets[f.Name] = { file: hostPathOf(f.Name) };
      const outServices = out.services as Obj;
      for (const [name, def] of Object.entries(outServices)) {
        if (!isObject(def) || !Array.isArray(def.secrets)) continue;
        def.secrets = def.secrets.map((m) => {
          const source = sourceOf(m);
          const key = keyFor.get(`${source}\n${name}`);
          if (!key) return m;
          // uid/gid/mode are not applied to file-based secrets by compose: the plugin sets the owner.
          const target = typeof m === 'string' ? m : String((m as Obj).target ?? source);
          return key === target ? key : { source: key, target };
        });
      }
      if (Object.keys(outSecrets).length) out.secrets = outSecrets;
      else delete out.secrets;
      // The format version is obsolete for `docker compose` (it warns about it).
      delete out.version;
      return out;
    },
  };
}
