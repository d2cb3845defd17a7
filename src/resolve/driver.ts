// The secret driver: request -> plan (labels, templates, policy) -> mount -> engine ->
// rendered bytes. It answers the plugin's GetSecret; it knows nothing of HTTP.
import type { KvEngine } from '../engines/kv';
import type { LeasedEngine } from '../engines/leased';
import type { LeaseOwner } from '../vault/leases';
import type { SecretEngine } from '../engines/engine';
import { render } from './formats';
import { MountInfo, MountResolver, SECRET_ENGINE_TYPES } from '../engines/mounts';
import { DsoError } from '../errors';
import type { Logger } from '../log';
import type { ReadPlan, RequestFacts, Resolver } from './resolver';
import { WritePolicy } from './writes';

export interface DriverResult {
  value: Buffer;
  doNotReuse: boolean;
  source: { path?: string; field?: string; version?: number; leaseExpiresAt?: string };
}

export interface SecretTarget {
  apiPath: string;
  mount: MountInfo;
  version?: number;
  kv: boolean;
  /** The secret's dso.rotate label, when set. */
  rotate?: boolean;
}

export interface VaultDriverOptions {
  resolver: Resolver;
  mounts: MountResolver;
  kv: KvEngine;
  leased?: LeasedEngine;
  timeoutMs: number;
  /** DSO_ROTATE: rotation for secrets without a dso.rotate label. */
  rotateDefault?: boolean;
  /** DSO_ALLOWED_WRITES; without it only the built-in PKI/SSH issue paths may write. */
  writes?: WritePolicy;
  /** For the one line per secret that says why dso.reuse=true was overridden. */
  logger?: Logger;
}

/** Secrets whose dso.reuse=true override was logged; bounded so that it cannot grow forever. */
const MAX_WARNED = 10_000;

/**
 * Who a leased secret belongs to: its task when each task gets its own copy; its service
 * when dso.reuse=true lets Docker share one copy among the service's tasks on a node.
 */
export function leaseOwner(request: RequestFacts, reuse: boolean | undefined): LeaseOwner {
  if (reuse === true) {
    const id = request.ServiceID || request.ServiceName;
    return id ? { kind: 'service', id } : { kind: 'none', id: '' };
  }
  const id = request.TaskID || request.TaskName;
  return id ? { kind: 'task', id } : { kind: 'none', id: '' };
}

export class VaultSecretDriver {
  private readonly writes: WritePolicy;
  private readonly warned = new Set<string>();

  constructor(private readonly options: VaultDriverOptions) {
    this.writes = options.writes ?? new WritePolicy();
  }

  async getSecret(request: RequestFacts, signal?: Pick<AbortSignal, 'throwIfAborted'>): Promise<DriverResult> {
    const deadline = Date.now() + this.options.timeoutMs;
    const plan = this.options.resolver.plan(request);
    const source: DriverResult['source'] = { path: plan.path, field: plan.ref.field };
    try {
      const workload = {
        service: request.ServiceName,
        task: request.TaskName ?? request.TaskID,
        secret: request.SecretName,
      };
      // A cached mount (the usual case) is used at once, without a turn of the event loop.
      const found = this.options.mounts.find(plan.path, deadline, workload);
      const mount = found instanceof Promise ? await found : found;
      const { engine, apiPath } = this.placed(plan, mount);
      signal?.throwIfAborted();
      source.path = apiPath;
      this.options.resolver.policy.check(apiPath, plan.context);
      // Decided before the engine is called: a refused write never reaches Vault.
      const write = this.writes.decide(apiPath, mount, plan.params, plan.context) === 'write';
      const perRequester = this.perRequester(plan, request);
      // A copy that must not be shared belongs to its task, whatever dso.reuse says.
      const owner = leaseOwner(request, perRequester ? false : plan.reuse);
      const read = await engine.read(apiPath, mount, {
        version: plan.version,
        params: plan.params,
        write,
        deadline,
        workload,
        owner,
        serviceId: request.ServiceID,
        rotate: plan.rotate ?? this.options.rotateDefault,
      });
      source.version = read.version;
      if (read.lease)
        source.leaseExpiresAt =
          read.lease.expiresAt === Infinity ? undefined : new Date(read.lease.expiresAt).toISOString();
      const value = render(read.data, plan.ref.field, plan.format, apiPath);
      return { value, doNotReuse: perRequester || !(plan.reuse ?? !read.leased), source };
    } catch (err) {
      if (err instanceof DsoError) err.source = source;
      throw err;
    }
  }

  /**
   * Where a secret points for a given service, asking Vault nothing but the mount (cached):
   * rotation groups secrets by this before reading each distinct path once.
   */
  async target(request: RequestFacts, deadline: number): Promise<SecretTarget> {
    const plan = this.options.resolver.plan(request);
    const mount = await this.options.mounts.find(plan.path, deadline);
    const { apiPath } = this.placed(plan, mount);
    this.options.resolver.policy.check(apiPath, plan.context);
    return { apiPath, mount, version: plan.version, kv: mount.kvVersion !== undefined, rotate: plan.rotate };
  }

  /**
   * Whether this answer depends on who asks (templates in the path, its parameters,
   * DSO_ALLOWED_PATHS or DSO_ALLOWED_WRITES). Docker keeps a shareable answer under the
   * secret's ID and hands it to any task on the node that names the secret, even one whose
   * own request was refused; so such answers are never shareable (DoNotReuse), and a
   * dso.reuse=true label is overridden, said once per secret in the log.
   */
  private perRequester(plan: ReadPlan, request: RequestFacts): boolean {
    if (plan.requesterDependence === undefined && this.writes.requesterDependence === undefined) return false;
    const reasons = [plan.requesterDependence, this.writes.requesterDependence].filter(
      (r): r is string => r !== undefined,
    );
    const secret = request.SecretName ?? '';
    if (plan.reuse === true && !this.warned.has(secret)) {
      if (this.warned.size >= MAX_WARNED) this.warned.clear();
      this.warned.add(secret);
      this.options.logger?.warn('dso.reuse=true overridden: every task gets its own copy (DoNotReuse)', {
        secret,
        reason:
          `the answer depends on who asks (${reasons.join('; ')}); a shared copy would reach ` +
          `other services' tasks on the same node`,
      });
    }
    return true;
  }

  /** The engine of `mount` (refused unless it is one DSO serves) and the API path the plan resolves to there. */
  private placed(plan: ReadPlan, mount: MountInfo): { engine: SecretEngine; apiPath: string } {
    const engine = this.engineFor(mount, plan.path);
    return { engine, apiPath: engine.apiPath(plan.path, mount) };
  }

  /**
   * Vault's own machinery is never a secret to hand out, in any namespace: token endpoints
   * would give away (or renew, or revoke) the plugin's token, an auth method's would mint
   * logins (`team-a/auth/approle/role/x/secret-id`), cubbyhole is the token's own storage.
   * So the mount Vault reports decides: its type must be a secrets engine DSO serves, and
   * its path must be where the requested path lives.
   */
  private engineFor(mount: MountInfo, path: string): SecretEngine {
    if (!`${path}/`.startsWith(mount.path)) {
      throw new DsoError(
        'ERR_PATH_REFUSED',
        `${path} is not inside the mount Vault reports for it (${mount.path}, type ` +
          `${mount.type}): DSO serves only paths inside a secrets engine`,
      );
    }
    if (mount.authMethod) {
      throw new DsoError(
        'ERR_PATH_REFUSED',
        `${mount.path} is a ${mount.type} auth method, not a secrets engine DSO serves`,
      );
    }
    if (!SECRET_ENGINE_TYPES.has(mount.type)) {
      throw new DsoError(
        'ERR_PATH_REFUSED',
        `${mount.path} is a mount of type ${mount.type}, not a secrets engine DSO serves (it ` +
          `serves ${[...SECRET_ENGINE_TYPES].join(', ')})`,
      );
    }
    if (mount.kvVersion) return this.options.kv;
    if (this.options.leased) return this.options.leased;
    throw new DsoError(
      'ERR_UNSUPPORTED',
      `the ${mount.type} secrets engine at ${mount.path} is not supported here; DSO reads KV v1 and v2 mounts`,
    );
  }
}

/** Answers every request with the settings' problems until they are fixed. */
export class MisconfiguredDriver {
  readonly message: string;

  constructor(problems: string[]) {
    this.message =
      `the DSO plugin's settings are invalid: ${problems.join('; ')}. Fix them with "docker ` +
      `plugin set" (disable the plugin first) or in /etc/dso/dso.json`;
  }

  async getSecret(): Promise<DriverResult> {
    throw new DsoError('ERR_SETTINGS', this.message);
  }
}
