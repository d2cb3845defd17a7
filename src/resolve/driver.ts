// The secret driver: request -> plan (labels, templates, policy) -> mount -> engine ->
// rendered bytes. It answers the plugin's GetSecret; it knows nothing of HTTP.
import type { KvEngine } from '../engines/kv';
import type { LeasedEngine } from '../engines/leased';
import type { LeaseOwner } from '../vault/leases';
import type { SecretEngine } from '../engines/engine';
import { render } from '../engines/formats';
import type { MountInfo, MountResolver } from '../engines/mounts';
import { DsoError } from '../errors';
import type { Workload } from '../vault/session';
import type { ReadPlan, RequestFacts, Resolver } from './resolver';

export interface DriverResult {
  value: Buffer;
  doNotReuse: boolean;
  source: { path?: string; field?: string; version?: number; leaseExpiresAt?: string };
}

/** Mount types that are Vault's own machinery (namespaced ones start with ns_). */
const VAULT_INTERNAL_TYPES = new Set(['token', 'system', 'identity', 'cubbyhole']);

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
}

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
  constructor(private readonly options: VaultDriverOptions) {}

  async getSecret(request: RequestFacts, signal?: AbortSignal): Promise<DriverResult> {
    const deadline = Date.now() + this.options.timeoutMs;
    const plan = this.options.resolver.plan(request);
    const source: DriverResult['source'] = { path: plan.path, field: plan.ref.field };
    try {
      const workload = { service: request.ServiceName, task: request.TaskName ?? request.TaskID, secret: request.SecretName };
      const { mount, engine, apiPath } = await this.locate(plan, deadline, workload);
      signal?.throwIfAborted();
      source.path = apiPath;
      this.options.resolver.policy.check(apiPath, plan.context);
      const owner = leaseOwner(request, plan.reuse);
      const read = await engine.read(apiPath, mount, {
        version: plan.version,
        params: plan.params,
        deadline,
        workload,
        owner,
        serviceId: request.ServiceID,
        rotate: plan.rotate ?? this.options.rotateDefault,
      });
      source.version = read.version;
      if (read.lease) source.leaseExpiresAt = read.lease.expiresAt === Infinity ? undefined : new Date(read.lease.expiresAt).toISOString();
      const value = render(read.data, plan.ref.field, plan.format, apiPath);
      return { value, doNotReuse: !(plan.reuse ?? !read.leased), source };
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
    const { mount, apiPath } = await this.locate(plan, deadline);
    this.options.resolver.policy.check(apiPath, plan.context);
    return { apiPath, mount, version: plan.version, kv: mount.kvVersion !== undefined, rotate: plan.rotate };
  }

  /** The current data and version at a KV target (one Vault read). */
  async readKv(target: SecretTarget, deadline: number): Promise<{ data: Record<string, unknown>; version?: number }> {
    const read = await this.options.kv.read(target.apiPath, target.mount, { version: target.version, params: {}, deadline });
    return { data: read.data, version: read.version };
  }

  /** The mount (asked of Vault, cached), its engine, and the API path the plan resolves to. */
  private async locate(plan: ReadPlan, deadline: number, workload?: Workload): Promise<{ mount: MountInfo; engine: SecretEngine; apiPath: string }> {
    const mount = await this.options.mounts.lookup(plan.path, deadline, workload);
    const engine = this.engineFor(mount);
    return { mount, engine, apiPath: engine.apiPath(plan.path, mount) };
  }

  private engineFor(mount: MountInfo): SecretEngine {
    if (mount.kvVersion) return this.options.kv;
    // Vault's own machinery is never a secret to hand out: token/self endpoints would give
    // away (or renew, or revoke) the plugin's token, cubbyhole is the token's own storage.
    if (VAULT_INTERNAL_TYPES.has(mount.type) || mount.type.startsWith('ns_')) {
      throw new DsoError('ERR_PATH_REFUSED', `${mount.path} is Vault's ${mount.type} backend, not a secrets engine DSO serves`);
    }
    if (this.options.leased) return this.options.leased;
    throw new DsoError('ERR_UNSUPPORTED', `the ${mount.type} secrets engine at ${mount.path} is not supported here; DSO reads KV v1 and v2 mounts`);
  }
}

/** Answers every request with the settings' problems until they are fixed. */
export class MisconfiguredDriver {
  readonly message: string;

  constructor(problems: string[]) {
    this.message = `the DSO plugin's settings are invalid: ${problems.join('; ')}. Fix them with "docker plugin set" (disable the plugin first) or in /etc/dso/dso.json`;
  }

  async getSecret(): Promise<DriverResult> {
    throw new DsoError('ERR_SETTINGS', this.message);
  }
}

