// Rotation: when Vault changes, roll the services that use the secret. Docker secrets are
// immutable, so a new value reaches containers only through new tasks: `ForceUpdate + 1`
// on the service's current spec, which keeps its own update config (start-first gives
// zero downtime). Runs on the swarm leader only and keeps nothing a restart would lose.
//
// The baseline is what running tasks hold, read from Docker at every pass: a task fetches
// its secrets after the manager created it, so a task created before the current KV v2
// version was written (plus a margin for clock skew between Vault and this host) may hold
// an older value and its service is rolled; tasks created after it hold the new one, which
// is also why a roll never repeats (the roll's tasks are newer than the version). This needs
// no memory of earlier passes, so changes made while the plugin was down, before a new
// service's first pass, or on another leader are rolled too. KV v1 has no version times:
// there a keyed hash of the value is compared with the previous pass (see README's gap).
import { createHmac, randomBytes } from 'node:crypto';
import { DsoError } from '../errors';
import { FaultLog } from '../log';
import { repeat } from '../timers';
import type { Logger } from '../log';
import type { SecretRead } from '../engines/engine';
import type { SecretTarget } from '../resolve/driver';
import type { RequestFacts } from '../resolve/resolver';
import type { LeaseManager } from '../vault/leases';
import type { SwarmApi, SwarmSecret, SwarmServiceFull, SwarmTask } from '../docker/api';
import { servicesUsing, shortName } from '../docker/objects';

export type RotationReason = 'new-version' | 'changed-value' | 'lease-end' | 'lease-not-renewed' | 'on-demand';

export interface RollResult {
  service: string;
  serviceId: string;
  outcome: 'rolled' | 'skipped-updating' | 'failed';
  error?: string;
}

export interface RotationReport {
  secret: string;
  reason: RotationReason;
  services: RollResult[];
}

/** A service whose tasks hold leases this plugin process never saw, and that it may not roll. */
export interface UnmanagedLease {
  service: string;
  serviceId: string;
  secret: string;
  path: string;
  /** The command that gives its tasks fresh, renewed leases. */
  fix: string;
}

/** What GET /DSO.Status and `docker dso system info` show about the watcher. */
export interface RotationHealth {
  /** Whether this node is the swarm leader (rotation runs here); null until a pass could tell. */
  leader: boolean | null;
  /** The driver names this plugin recognises as its own on secrets. */
  driverNames: string[];
  lastPass: { at: string; outcome: 'ok' | 'not-leader' | 'failed'; durationMs: number; rolls: number } | null;
  lastError: { at: string; message: string } | null;
  unmanagedLeases: UnmanagedLease[];
}

/** What rotation needs of the secret driver. */
export interface RotationReader {
  target(request: RequestFacts, deadline: number): Promise<SecretTarget>;
  readKv(target: SecretTarget, deadline: number): Promise<Pick<SecretRead, 'data' | 'version' | 'versionCreatedAt'>>;
}

export interface WatcherOptions {
  api: SwarmApi;
  reader: RotationReader;
  leases?: LeaseManager;
  logger: Logger;
  intervalMs: number;
  timeoutMs: number;
  /** DSO_ROTATE: rotation for secrets without a dso.rotate label. */
  rotateDefault: boolean;
  /** This plugin's driver names (secrets with another driver are not ours). */
  driverNames: () => Promise<Set<string>>;
  /** Attempts when Docker says the service changed meanwhile (version conflict). */
  attempts?: number;
  /** How far Vault's clock may be off this host's; default 2 s. */
  skewMs?: number;
  /** When this process started: leases of tasks created before it were issued by another. */
  startedAt?: number;
  now?: () => number;
}

interface Observation {
  version?: number;
  hash: string;
}

interface User {
  secret: SwarmSecret;
  service: SwarmServiceFull;
}

export const DEFAULT_SKEW_MS = 2_000;

/** Task states in which the task has been given its secrets (they are fetched at assignment). */
const HOLDS_SECRETS = new Set(['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

/** Update states during which Docker is already replacing the service's tasks. */
const UPDATING = new Set(['updating', 'rollback_started']);

/** KV v1: why a secret must roll, comparing the previous pass with this one. */
export function changeReason(before: Observation | undefined, now: Observation): RotationReason | undefined {
  if (!before) return undefined; // first sight (start, restart, new secret): the baseline
  if (now.version !== undefined && before.version !== undefined && now.version !== before.version) return 'new-version';
  if (now.hash !== before.hash) return 'changed-value';
  return undefined;
}

/**
 * KV v2: the running tasks of `serviceId` that may hold a value older than the version
 * written at `writtenAt` (ms): those created before it, plus the clock-skew margin.
 */
export function staleTasks(serviceId: string, tasks: SwarmTask[], writtenAt: number, skewMs: number): SwarmTask[] {
  return tasks.filter((t) => {
    if (t.ServiceID !== serviceId || !HOLDS_SECRETS.has(t.Status?.State ?? '')) return false;
    const created = Date.parse(t.CreatedAt ?? '');
    return !Number.isFinite(created) || created < writtenAt + skewMs;
  });
}

/** The service's current spec with ForceUpdate + 1: everything else, update config included, as it is. */
export function forcedSpec(service: SwarmServiceFull): SwarmServiceFull['Spec'] {
  const spec = structuredClone(service.Spec);
  spec.TaskTemplate.ForceUpdate = (spec.TaskTemplate.ForceUpdate ?? 0) + 1;
  return spec;
}

function isVersionConflict(err: unknown): boolean {
  return err instanceof Error && /out of sequence|version/i.test(err.message);
}

function message(err: unknown): string {
  return err instanceof DsoError ? err.message : 'unexpected error';
}

/** A listing the pass cannot do without: the pass stops, the fault is logged once. */
class PassAborted extends Error {}

export class RotationWatcher {
  /** KV v1 only: last observation per Vault path, a keyed hash, never the value. */
  private readonly seen = new Map<string, Observation>();
  /** The HMAC key lives in memory only; a restart takes a new KV v1 baseline. */
  private readonly key = randomBytes(32);
  /**
   * Rolls this process made, per service and change: a guard (not the baseline) so that a
   * service whose roll Docker has not started, or paused, is not rolled over and over.
   */
  private readonly rolledFor = new Map<string, number>();
  private readonly faults: FaultLog;
  private stopLoop?: () => void;
  /** A version written less than the skew margin ago: pass again once it is past. */
  private nextPassAt?: number;
  private readonly now: () => number;
  private readonly startedAt: number;
  /**
   * Since when this process serves the swarm's secrets: its start, or the pass that saw it
   * become leader again. Running tasks created before then got their leases elsewhere.
   */
  private leaderSince: number;
  readonly history: RotationReport[] = [];
  private state: RotationHealth = {
    leader: null,
    driverNames: [],
    lastPass: null,
    lastError: null,
    unmanagedLeases: [],
  };

  constructor(private readonly options: WatcherOptions) {
    this.faults = new FaultLog(options.logger);
    this.now = options.now ?? Date.now;
    this.startedAt = options.startedAt ?? this.now();
    this.leaderSince = this.startedAt;
  }

  private get skewMs(): number {
    return this.options.skewMs ?? DEFAULT_SKEW_MS;
  }

  health(): RotationHealth {
    return structuredClone(this.state);
  }

  /** The last problem, for the status route. */
  private noteError(message: string): void {
    this.state.lastError = { at: new Date(this.now()).toISOString(), message };
  }

  /** KV v1: what a read says of the value, a keyed hash and never the value. */
  private observe(read: { data: Record<string, unknown>; version?: number }): Observation {
    return {
      version: read.version,
      hash: createHmac('sha256', this.key).update(JSON.stringify(read.data)).digest('hex'),
    };
  }

  /** One Engine API listing: a failure is a warning once per fault, and once at recovery. */
  private async listing<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.faults.recovered(`list:${what}`, `rotation can list ${what} again`, { what });
      return result;
    } catch (err) {
      this.faults.fault(`list:${what}`, `rotation pass cannot list ${what}: no service is rolled until it can`, {
        what,
        error: message(err),
      });
      this.noteError(`cannot list ${what}: ${message(err)}`);
      throw new PassAborted();
    }
  }

  private async ourSecrets(): Promise<SwarmSecret[]> {
    const names = await this.options.driverNames();
    this.state.driverNames = [...names];
    // Without a name of its own, rotation would silently find no secret to watch.
    if (names.size === 0) {
      this.faults.fault('driver-names', 'rotation recognises no driver name of its own: no secret is watched', {
        fix: 'set DSO_DRIVER_NAME to the name secrets use as their driver (needed outside a managed plugin)',
      });
    } else this.faults.recovered('driver-names', 'rotation knows its driver names again', { driverNames: [...names] });
    return (await this.options.api.secrets()).filter((s) => names.has(shortName(s.Spec.Driver?.Name ?? '')));
  }

  private rotates(secret: SwarmSecret): boolean {
    const labelled = secret.Spec.Labels?.['dso.rotate'];
    return labelled === undefined ? this.options.rotateDefault : labelled === 'true';
  }

  /** One pass, recorded in the health the status route shows. */
  async check(): Promise<RotationReport[]> {
    const started = this.now();
    let reports: RotationReport[] = [];
    let outcome: 'ok' | 'not-leader' | 'failed' = 'failed';
    try {
      reports = await this.pass();
      outcome = this.state.leader === true ? 'ok' : 'not-leader';
    } catch (err) {
      if (!(err instanceof PassAborted)) {
        this.noteError(message(err));
        this.options.logger.warn('rotation pass failed', { error: message(err) });
      }
    }
    const rolls = reports.reduce((n, r) => n + r.services.filter((s) => s.outcome === 'rolled').length, 0);
    this.state.lastPass = { at: new Date(started).toISOString(), outcome, durationMs: this.now() - started, rolls };
    return reports;
  }

  private async pass(): Promise<RotationReport[]> {
    const { api, reader, logger, timeoutMs } = this.options;
    const leader = await this.listing('nodes', () => api.isLeader());
    if (leader && this.state.leader === false) this.leaderSince = this.now();
    if (leader !== this.state.leader)
      logger.info(
        leader
          ? 'rotation runs here: this node is the swarm leader'
          : 'rotation does not run here: this node is not the swarm leader',
        {},
      );
    this.state.leader = leader;
    if (!leader) {
      this.state.unmanagedLeases = [];
      return [];
    }
    const secrets = await this.listing('secrets', () => this.ourSecrets());
    const services = await this.listing('services', () => api.services());
    const tasks = await this.listing('tasks', () => api.runningTasks());
    const deadline = this.now() + timeoutMs;

    // Group (secret, service) pairs by the Vault path they read: KV paths to compare,
    // leased paths to check for leases this process does not hold.
    const kvGroups = new Map<string, { target: SecretTarget; users: User[] }>();
    const leased: Array<User & { path: string }> = [];
    for (const secret of secrets) {
      const rotate = this.rotates(secret);
      for (const service of servicesUsing(secret.ID, services)) {
        // Rotation off: only leases issued before this start concern us (to say so).
        if (!rotate && !this.oldTasks(service.ID, tasks).length) continue;
        try {
          const target = await reader.target(
            {
              SecretName: secret.Spec.Name,
              SecretLabels: secret.Spec.Labels ?? {},
              ServiceName: service.Spec.Name,
              ServiceID: service.ID,
              ServiceLabels: service.Spec.Labels ?? {},
            },
            deadline,
          );
          if (!target.kv) leased.push({ secret, service, path: target.apiPath });
          else if (rotate && target.version === undefined) {
            // A pinned dso.version never changes.
            const group = kvGroups.get(target.apiPath) ?? { target, users: [] };
            group.users.push({ secret, service });
            kvGroups.set(target.apiPath, group);
          }
        } catch (err) {
          logger.debug('rotation: cannot resolve secret for service', {
            secret: secret.Spec.Name,
            service: service.Spec.Name,
            error: message(err),
          });
        }
      }
    }

    const reports: RotationReport[] = [];
    const rolled = new Set<string>();
    this.nextPassAt = undefined;
    for (const [apiPath, group] of kvGroups) {
      let read: Awaited<ReturnType<RotationReader['readKv']>>;
      try {
        read = await reader.readKv(group.target, deadline);
        this.faults.recovered(`read:${apiPath}`, 'rotation can read the secret again', { path: apiPath });
      } catch (err) {
        this.faults.fault(`read:${apiPath}`, 'rotation: cannot read secret to check it', {
          path: apiPath,
          error: message(err),
        });
        this.noteError(`cannot read ${apiPath}: ${message(err)}`);
        continue;
      }
      const writtenAt = Date.parse(read.versionCreatedAt ?? '');
      if (Number.isFinite(writtenAt))
        reports.push(...(await this.rollStale(apiPath, group.users, tasks, writtenAt, read.version, rolled)));
      else reports.push(...(await this.rollChangedV1(apiPath, group.users, this.observe(read), rolled)));
    }

    reports.push(...(await this.rollUnmanagedLeases(leased, tasks, rolled)));
    reports.push(...(await this.rollEndingLeases(services, rolled)));
    return reports;
  }

  /** KV v2: roll the services with tasks created before the version (plus skew). */
  private async rollStale(
    apiPath: string,
    users: User[],
    tasks: SwarmTask[],
    writtenAt: number,
    version: number | undefined,
    rolled: Set<string>,
  ): Promise<RotationReport[]> {
    const stale = users.filter(({ service }) => staleTasks(service.ID, tasks, writtenAt, this.skewMs).length > 0);
    if (!stale.length) return [];
    const settled = writtenAt + this.skewMs;
    if (this.now() < settled) {
      // Tasks a roll made now could still count as older than the version: roll once it is past.
      this.nextPassAt = Math.min(this.nextPassAt ?? Infinity, settled + 100);
      return [];
    }
    const due = stale.filter(({ service }) => this.due(`${service.ID}|${apiPath}`, writtenAt, service, apiPath));
    if (due.length)
      this.options.logger.info('rotation: running tasks may hold an older value', {
        path: apiPath,
        version,
        writtenAt: new Date(writtenAt).toISOString(),
        services: [...new Set(due.map((u) => u.service.Spec.Name))],
      });
    return this.rollUsers(due, 'new-version', rolled, (id) => this.rolledFor.set(`${id}|${apiPath}`, writtenAt));
  }

  /** KV v1: roll when the keyed hash differs from the previous pass. */
  private async rollChangedV1(
    apiPath: string,
    users: User[],
    now: Observation,
    rolled: Set<string>,
  ): Promise<RotationReport[]> {
    const reason = changeReason(this.seen.get(apiPath), now);
    if (!reason) {
      this.seen.set(apiPath, now);
      return [];
    }
    const reports = await this.rollUsers(users, reason, rolled);
    // A roll that did not happen (service mid-update, Docker error) is tried again next pass.
    if (reports.every((r) => r.services.every((s) => s.outcome === 'rolled'))) this.seen.set(apiPath, now);
    return reports;
  }

  /**
   * Whether to roll `service` for the change at `writtenAt`: not while Docker is updating
   * it (its new tasks will be newer), and not twice for one change (a paused update is
   * reported once instead of rolled in a loop).
   */
  private due(key: string, writtenAt: number, service: SwarmServiceFull, path: string): boolean {
    if (UPDATING.has(service.UpdateStatus?.State ?? '')) return false;
    const done = this.rolledFor.get(key);
    if (done === undefined || done < writtenAt) return true;
    if (/paused/.test(service.UpdateStatus?.State ?? '')) {
      const name = service.Spec.Name;
      const fix = `docker service ps ${name} shows why its new tasks fail; then docker service update --force ${name}`;
      const problem = 'rotation: the roll of a service is paused, its tasks still hold an older value';
      this.faults.fault(`paused:${key}:${writtenAt}`, problem, { service: name, path, fix });
    }
    return false;
  }

  /** Running tasks of a service created before this process started serving as leader. */
  private oldTasks(serviceId: string, tasks: SwarmTask[]): SwarmTask[] {
    return tasks.filter(
      (t) =>
        t.ServiceID === serviceId && t.Status?.State === 'running' && Date.parse(t.CreatedAt ?? '') < this.leaderSince,
    );
  }

  /**
   * Leases live in memory: tasks that got theirs before this process started (restart,
   * upgrade) or became leader hold leases it does not renew, which end at their TTL. With
   * rotation on, their services are rolled now; with it off, the log and `docker dso
   * inspect` say so with the command that fixes it.
   */
  private async rollUnmanagedLeases(
    leased: Array<User & { path: string }>,
    tasks: SwarmTask[],
    rolled: Set<string>,
  ): Promise<RotationReport[]> {
    const leases = this.options.leases;
    const unmanaged: UnmanagedLease[] = [];
    const toRoll: User[] = [];
    for (const { secret, service, path } of leased) {
      const serviceOwner = { kind: 'service', id: service.ID } as const;
      const held = (t: SwarmTask) => leases?.holds([{ kind: 'task', id: t.ID }, serviceOwner], path);
      if (this.oldTasks(service.ID, tasks).every(held)) continue;
      const fix = `docker service update --force ${service.Spec.Name}`;
      if (this.rotates(secret)) {
        if (this.due(`${service.ID}|${path}|unmanaged`, this.leaderSince, service, path))
          toRoll.push({ secret, service });
      } else {
        const facts = { service: service.Spec.Name, secret: secret.Spec.Name, path, fix };
        unmanaged.push({ ...facts, serviceId: service.ID });
        const problem =
          'tasks hold leases issued before this plugin started: they are not renewed and end at their TTL';
        this.faults.fault(`unmanaged:${service.ID}|${path}`, problem, facts);
      }
    }
    this.state.unmanagedLeases = unmanaged;
    return this.rollUsers(toRoll, 'lease-not-renewed', rolled, (id) => {
      for (const u of leased.filter((l) => l.service.ID === id))
        this.rolledFor.set(`${id}|${u.path}|unmanaged`, this.leaderSince);
    });
  }

  private async rollUsers(
    users: User[],
    reason: RotationReason,
    rolled: Set<string>,
    onRolled?: (serviceId: string) => void,
  ): Promise<RotationReport[]> {
    const bySecret = new Map<string, SwarmServiceFull[]>();
    for (const { secret, service } of users)
      bySecret.set(secret.Spec.Name, [...(bySecret.get(secret.Spec.Name) ?? []), service]);
    const reports: RotationReport[] = [];
    for (const [secret, services] of bySecret) {
      const report = await this.rollAll(secret, reason, services, rolled);
      for (const r of report.services) if (r.outcome === 'rolled') onRolled?.(r.serviceId);
      if (report.services.length) reports.push(report);
    }
    return reports;
  }

  /** Rolls the services of leases (rotation on) that end before the next pass. */
  private async rollEndingLeases(services: SwarmServiceFull[], rolled: Set<string>): Promise<RotationReport[]> {
    const reports: RotationReport[] = [];
    const leases = this.options.leases?.takeEnding(this.options.intervalMs * 1.5 + 5_000) ?? [];
    for (const lease of leases) {
      const serviceId =
        lease.serviceId ??
        (lease.owner.kind === 'task' ? await this.options.api.taskService(lease.owner.id) : lease.owner.id);
      const service = services.find((s) => s.ID === serviceId);
      if (service) reports.push(await this.rollAll(lease.path, 'lease-end', [service], rolled));
    }
    return reports;
  }

  /** A lease just learnt it will end: roll its service now rather than at the next pass. */
  async leaseEnding(): Promise<void> {
    try {
      if (!(await this.options.api.isLeader())) return;
      await this.rollEndingLeases(await this.options.api.services(), new Set());
    } catch (err) {
      this.options.logger.warn('rotation at lease end failed', { error: message(err) });
    }
  }

  /** On demand (an operator's request): roll every service that uses the secret now. */
  async rotateNow(secretNameOrId: string): Promise<RotationReport> {
    const secret = (await this.ourSecrets()).find((s) => s.Spec.Name === secretNameOrId || s.ID === secretNameOrId);
    if (!secret)
      throw new DsoError('ERR_NOT_FOUND', `no secret named ${secretNameOrId} uses this plugin as its driver`);
    return this.rollAll(
      secret.Spec.Name,
      'on-demand',
      servicesUsing(secret.ID, await this.options.api.services()),
      new Set(),
    );
  }

  private async rollAll(
    secret: string,
    reason: RotationReason,
    services: SwarmServiceFull[],
    rolled: Set<string>,
  ): Promise<RotationReport> {
    const results: RollResult[] = [];
    for (const service of services) {
      if (rolled.has(service.ID)) continue; // one roll per service per pass, whatever the number of secrets
      rolled.add(service.ID);
      results.push(await this.roll(service.ID, service.Spec.Name));
    }
    const report = { secret, reason, services: results };
    if (results.length === 0 && reason !== 'on-demand') return report;
    this.history.push(report);
    if (this.history.length > 100) this.history.shift();
    const told = (rs: RollResult[]) => rs.map((r) => `${r.service}: ${r.outcome}${r.error ? ` (${r.error})` : ''}`);
    const failed = results.filter((r) => r.outcome !== 'rolled');
    if (failed.length) this.noteError(`roll for ${secret} failed: ${told(failed).join(', ')}`);
    this.options.logger[failed.length ? 'warn' : 'info']('rotation', {
      secret,
      reason,
      services: results.map((r) => r.service),
      outcome: results.length === 0 ? 'no services' : failed.length ? told(results).join(', ') : 'rolled',
    });
    return report;
  }

  private async roll(serviceId: string, name: string): Promise<RollResult> {
    const attempts = this.options.attempts ?? 3;
    let lastError = '';
    for (let i = 0; i < attempts; i++) {
      try {
        const service = await this.options.api.service(serviceId);
        if (UPDATING.has(service.UpdateStatus?.State ?? ''))
          return { service: name, serviceId, outcome: 'skipped-updating' };
        await this.options.api.updateService(serviceId, service.Version.Index, forcedSpec(service));
        return { service: name, serviceId, outcome: 'rolled' };
      } catch (err) {
        lastError = err instanceof Error ? err.message : 'unexpected error';
        if (!isVersionConflict(err)) break; // only a concurrent change is worth retrying at once
      }
    }
    return { service: name, serviceId, outcome: 'failed', error: lastError };
  }

  start(): void {
    // Normally the interval; sooner when a version just written waits out the skew margin.
    const next = () => Math.min(this.options.intervalMs, Math.max(100, (this.nextPassAt ?? Infinity) - this.now()));
    this.stopLoop ??= repeat(() => this.check(), Math.min(this.options.intervalMs, 2_000), next);
  }

  stop(): void {
    this.stopLoop?.();
    this.stopLoop = undefined;
  }
}
