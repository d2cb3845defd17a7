// Rotation: when Vault changes, roll the services that use the secret. Docker secrets are
// immutable, so a new value reaches containers only through new tasks: `ForceUpdate + 1`
// on the service's current spec, which keeps its own update config (start-first gives
// zero downtime). Runs on the swarm leader only and keeps nothing a restart would lose:
// what uses what is read from Docker at every check.
import { createHmac, randomBytes } from 'node:crypto';
import { DsoError } from '../errors';
import { timerDelay } from '../timers';
import type { Logger } from '../log';
import type { SecretTarget } from '../resolve/driver';
import type { RequestFacts } from '../resolve/resolver';
import type { LeaseManager } from '../vault/leases';
import type { SwarmApi, SwarmSecret, SwarmServiceFull } from './docker';
import { normalizeDriverName } from './identity';

export type RotationReason = 'new-version' | 'changed-value' | 'lease-end' | 'on-demand';

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

/** What rotation needs of the secret driver. */
export interface RotationReader {
  target(request: RequestFacts, deadline: number): Promise<SecretTarget>;
  readKv(target: SecretTarget, deadline: number): Promise<{ data: Record<string, unknown>; version?: number }>;
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
}

interface Observation {
  version?: number;
  hash: string;
}

/** The services whose tasks mount `secretId`. */
export function servicesUsing(secretId: string, services: SwarmServiceFull[]): SwarmServiceFull[] {
  return services.filter((s) => (s.Spec.TaskTemplate.ContainerSpec?.Secrets ?? []).some((ref) => ref.SecretID === secretId));
}

/** Why a secret must roll, comparing what was seen before with what is there now. */
export function changeReason(before: Observation | undefined, now: Observation): RotationReason | undefined {
  if (!before) return undefined; // first sight (start, restart, new secret): the baseline
  if (now.version !== undefined && before.version !== undefined && now.version !== before.version) return 'new-version';
  if (now.hash !== before.hash) return 'changed-value';
  return undefined;
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

export class RotationWatcher {
  /** Last observation per Vault path: version and a keyed hash, never the value. */
  private readonly seen = new Map<string, Observation>();
  /** The HMAC key lives in memory only; a restart takes a new baseline. */
  private readonly key = randomBytes(32);
  private timer?: NodeJS.Timeout;
  private running = false;
  readonly history: RotationReport[] = [];

  constructor(private readonly options: WatcherOptions) {}

  private hash(data: Record<string, unknown>): string {
    return createHmac('sha256', this.key).update(JSON.stringify(data)).digest('hex');
  }

  private async ourSecrets(): Promise<SwarmSecret[]> {
    const names = await this.options.driverNames();
    return (await this.options.api.secrets()).filter((s) => names.has(normalizeDriverName(s.Spec.Driver?.Name ?? '')));
  }

  /** One pass: the changes since the last pass, and leases about to end. */
  async check(): Promise<RotationReport[]> {
    const { api, reader, logger, timeoutMs } = this.options;
    if (!(await api.isLeader())) return [];
    const secrets = await this.ourSecrets();
    const services = await api.services();
    const deadline = Date.now() + timeoutMs;

    // Group (secret, service) pairs with rotation on by the Vault path they read.
    const groups = new Map<string, { target: SecretTarget; users: Array<{ secret: SwarmSecret; service: SwarmServiceFull }> }>();
    for (const secret of secrets) {
      const labelled = secret.Spec.Labels?.['dso.rotate'];
      if ((labelled === undefined ? this.options.rotateDefault : labelled === 'true') === false) continue;
      for (const service of servicesUsing(secret.ID, services)) {
        try {
          const target = await reader.target(
            { SecretName: secret.Spec.Name, SecretLabels: secret.Spec.Labels ?? {}, ServiceName: service.Spec.Name, ServiceID: service.ID, ServiceLabels: service.Spec.Labels ?? {} },
            deadline,
          );
          if (!target.kv) continue; // leased secrets rotate at lease end, below
          const group = groups.get(target.apiPath) ?? { target, users: [] };
          group.users.push({ secret, service });
          groups.set(target.apiPath, group);
        } catch (err) {
          logger.debug('rotation: cannot resolve secret for service', { secret: secret.Spec.Name, service: service.Spec.Name, error: err instanceof DsoError ? err.message : 'unexpected error' });
        }
      }
    }

    const reports: RotationReport[] = [];
    const rolled = new Set<string>();
    for (const [apiPath, group] of groups) {
      let now: Observation;
      try {
        const read = await reader.readKv(group.target, deadline);
        now = { version: read.version, hash: this.hash(read.data) };
      } catch (err) {
        logger.warn('rotation: cannot read secret to check it', { path: apiPath, error: err instanceof DsoError ? err.message : 'unexpected error' });
        continue;
      }
      const reason = changeReason(this.seen.get(apiPath), now);
      if (!reason) {
        this.seen.set(apiPath, now);
        continue;
      }
      const bySecret = new Map<string, SwarmServiceFull[]>();
      for (const { secret, service } of group.users) bySecret.set(secret.Spec.Name, [...(bySecret.get(secret.Spec.Name) ?? []), service]);
      let complete = true;
      for (const [secret, users] of bySecret) {
        const report = await this.rollAll(secret, reason, users, rolled);
        complete &&= report.services.every((r) => r.outcome === 'rolled');
        reports.push(report);
      }
      // A roll that did not happen (service mid-update, Docker error) is tried again next pass.
      if (complete) this.seen.set(apiPath, now);
    }

    reports.push(...(await this.rollEndingLeases(services, rolled)));
    return reports;
  }

  /** Rolls the services of leases (rotation on) that end before the next pass. */
  private async rollEndingLeases(services: SwarmServiceFull[], rolled: Set<string>): Promise<RotationReport[]> {
    const reports: RotationReport[] = [];
    const leases = this.options.leases?.takeEnding(this.options.intervalMs * 1.5 + 5_000) ?? [];
    for (const lease of leases) {
      const serviceId = lease.serviceId ?? (lease.owner.kind === 'task' ? await this.options.api.taskService(lease.owner.id) : lease.owner.id);
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
      this.options.logger.warn('rotation at lease end failed', { error: err instanceof Error ? err.message : 'unexpected error' });
    }
  }

  /** On demand (an operator's request): roll every service that uses the secret now. */
  async rotateNow(secretNameOrId: string): Promise<RotationReport> {
    const secret = (await this.ourSecrets()).find((s) => s.Spec.Name === secretNameOrId || s.ID === secretNameOrId);
    if (!secret) throw new DsoError('ERR_NOT_FOUND', `no secret named ${secretNameOrId} uses this plugin as its driver`);
    return this.rollAll(secret.Spec.Name, 'on-demand', servicesUsing(secret.ID, await this.options.api.services()), new Set());
  }

  private async rollAll(secret: string, reason: RotationReason, services: SwarmServiceFull[], rolled: Set<string>): Promise<RotationReport> {
    const results: RollResult[] = [];
    for (const service of services) {
      if (rolled.has(service.ID)) continue; // one roll per service per pass, whatever the number of secrets
      rolled.add(service.ID);
      results.push(await this.roll(service.ID, service.Spec.Name));
    }
    const report = { secret, reason, services: results };
    this.history.push(report);
    if (this.history.length > 100) this.history.shift();
    const failed = results.some((r) => r.outcome !== 'rolled');
    this.options.logger[failed ? 'warn' : 'info']('rotation', {
      secret,
      reason,
      services: results.map((r) => r.service),
      outcome: results.length === 0 ? 'no services' : failed ? results.map((r) => `${r.service}: ${r.outcome}${r.error ? ` (${r.error})` : ''}`).join(', ') : 'rolled',
    });
    return report;
  }

  private async roll(serviceId: string, name: string): Promise<RollResult> {
    const attempts = this.options.attempts ?? 3;
    let lastError = '';
    for (let i = 0; i < attempts; i++) {
      try {
        const service = await this.options.api.service(serviceId);
        if (service.UpdateStatus?.State === 'updating') return { service: name, serviceId, outcome: 'skipped-updating' };
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
    if (this.timer) return;
    const tick = () => {
      if (this.running) return;
      this.running = true;
      this.check()
        .catch((err) => this.options.logger.warn('rotation check failed', { error: err instanceof Error ? err.message : 'unexpected error' }))
        .finally(() => {
          this.running = false;
          if (this.timer) {
            this.timer = setTimeout(tick, timerDelay(this.options.intervalMs));
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(tick, Math.min(this.options.intervalMs, 2_000));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
