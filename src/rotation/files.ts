// Compose projects on plain Docker hosts (no swarm, so Docker never calls a secrets driver):
// the plugin resolves a project's references through the same driver as GetSecret (labels,
// templates, DSO_ALLOWED_PATHS, audit headers, one lease per project service and path) and
// writes each value to a file on a tmpfs under its runtime directory, which compose mounts
// into the containers as a file-based secret at /run/secrets/<name>. Those mounts are bind
// mounts of the file: when Vault changes, the refresher rewrites the file in place (same
// inode), so running containers see the new value without a restart; `dso.rotate=restart`
// restarts the service's containers instead, `dso.rotate=false` leaves the file alone. A
// lease nearing its max TTL gets fresh credentials the same way (a new owner generation,
// whose predecessor's lease the reaper revokes). A value is never written anywhere that is
// not a tmpfs. Files and what they were made from live in memory only: dockerd empties the
// plugin's runtime directory when the plugin stops, so nothing outlives the plugin.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DsoError, describeError } from '../errors';
import { repeat } from '../timers';
import type { Logger } from '../log';
import type {
  ComposeDownReply,
  ComposeFetch,
  ComposeFileReport,
  ComposeListReply,
  ComposeSecretSpec,
  ComposeService,
  ComposeUpReply,
  ComposeUpRequest,
  RefreshMode,
} from '../plugin/compose-protocol';
import { referenceOf } from '../plugin/compose-protocol';
import { STACK_LABEL, type RequestFacts } from '../resolve/resolver';
import type { DriverResult } from '../resolve/driver';
import type { LeaseSummary } from '../vault/leases';
import { composeOwnerId, ComposeLiveness, parseComposeOwner, PROJECT_LABEL, SERVICE_LABEL } from './compose-liveness';
import type { DockerApi } from '../docker/api';
import type { RotationReport } from './watcher';

/** statfs f_type of a tmpfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;

export function isTmpfs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** dso.rotate on a plain host: in place unless it says false (off) or restart. */
export function refreshMode(labels: Record<string, string>): RefreshMode {
  const value = labels['dso.rotate'];
  if (value === undefined || value === 'true') return 'in-place';
  if (value === 'false') return 'off';
  if (value === 'restart') return 'restart';
  throw new DsoError(
    'ERR_LABELS',
    'label dso.rotate must be true, false or restart (restart: on plain hosts, restart ' +
      'the containers when the value changes)',
  );
}

export interface ComposeFilesOptions {
  driver: { getSecret(request: RequestFacts): Promise<DriverResult> };
  /** The lease manager's public view, to find leases that end soon. */
  leases?: { describe(): LeaseSummary[] };
  liveness: ComposeLiveness;
  docker: Pick<DockerApi, 'containers' | 'restartContainer'>;
  logger: Logger;
  /** The plugin's runtime directory (its socket's directory); files go to <runtimeDir>/compose. */
  runtimeDir: string;
  intervalMs: number;
  isTmpfs?: (dir: string) => boolean;
}

interface Entry {
  project: string;
  spec: ComposeSecretSpec;
  refresh: RefreshMode;
  /** Labels for the driver: dso.rotate is this module's business here, not the driver's. */
  labels: Record<string, string>;
  file: string;
  digest: string;
  report: ComposeFileReport;
}

const digestOf = (value: Buffer) => createHash('sha256').update(value).digest('hex');

export class ComposeFiles implements ComposeService {
  private readonly projects = new Map<string, Map<string, Entry>>();
  private readonly isTmpfs: (dir: string) => boolean;
  private stopLoop?: () => void;
  private checking = false;
  private notTmpfsLogged = false;
  readonly root: string;

  constructor(private readonly options: ComposeFilesOptions) {
    this.isTmpfs = options.isTmpfs ?? isTmpfs;
    this.root = path.join(options.runtimeDir, 'compose');
  }

  private requireTmpfs(): void {
    try {
      fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new DsoError(
        'ERR_NOT_TMPFS',
        `cannot create ${this.root} for compose secret files (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    if (!this.isTmpfs(this.root)) {
      throw new DsoError(
        'ERR_NOT_TMPFS',
        `${this.root} is not on a tmpfs: DSO writes secret values only to memory. On the ` +
          `host, mount a tmpfs on the plugin's compose directory and restart the plugin (docker ` +
          `dso up does this itself when run as root), or run dockerd with its exec root ` +
          `(/run/docker) on a tmpfs`,
      );
    }
  }

  private facts(project: string, entry: Pick<Entry, 'spec' | 'labels'>): RequestFacts {
    const service = entry.spec.Service;
    return {
      SecretName: entry.spec.Name,
      SecretLabels: entry.labels,
      ServiceName: service,
      ServiceID: composeOwnerId(project, service),
      // {stack} in templates and DSO_ALLOWED_PATHS is the project, as it is the stack in a swarm.
      ServiceLabels: { [STACK_LABEL]: project, [PROJECT_LABEL]: project },
      TaskName: `${project}-${service}`,
      TaskID: composeOwnerId(project, service, this.options.liveness.generation(project, service)),
    };
  }

  /** Writes `value` to `file`: a new file 0400 for `owner`, an existing one in place (same inode). */
  private write(file: string, value: Buffer, owner: ComposeSecretSpec): void {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fd = fs.openSync(
        file,
        fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
        0o400,
      );
      fs.fchownSync(fd, owner.Uid ?? 0, owner.Gid ?? owner.Uid ?? 0);
      fs.fchmodSync(fd, 0o400);
    }
    try {
      // Write first, then cut to length: a reader never finds the file empty.
      fs.writeSync(fd, value, 0, value.length, 0);
      fs.ftruncateSync(fd, value.length);
    } finally {
      fs.closeSync(fd);
    }
  }

  async up(request: ComposeUpRequest, record: (fetch: ComposeFetch) => void): Promise<ComposeUpReply> {
    const { Project: project } = request;
    this.requireTmpfs();
    const names = request.Secrets.map((spec) => spec.Name);
    const twice = names.find((name, i) => names.indexOf(name) !== i);
    if (twice) throw new DsoError('ERR_BAD_REQUEST', `secret ${twice} is named twice in project ${project}`);
    const dir = path.join(this.root, project);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const before = this.projects.get(project);
    const entries = new Map<string, Entry>();
    const created: string[] = [];
    this.options.liveness.expect(project);
    try {
      for (const spec of request.Secrets) {
        const source: ComposeFetch['source'] = {};
        try {
          const refresh = refreshMode(spec.Labels);
          const { ['dso.rotate']: _rotate, ...labels } = spec.Labels;
          const file = path.join(dir, spec.Name);
          const result = await this.options.driver.getSecret(this.facts(project, { spec, labels }));
          Object.assign(source, result.source);
          const existed = fs.existsSync(file);
          this.write(file, result.value, spec);
          if (!existed) created.push(file);
          entries.set(spec.Name, {
            project,
            spec,
            refresh,
            labels,
            file,
            digest: digestOf(result.value),
            report: {
              Name: spec.Name,
              Service: spec.Service,
              File: path.relative(this.options.runtimeDir, file),
              Refresh: refresh,
              Reference: referenceOf(labels) ?? undefined,
              ...this.sourceReport(result.source),
              WrittenAt: new Date().toISOString(),
            },
          });
          record({ spec, ok: true, doNotReuse: result.doNotReuse, source });
        } catch (err) {
          const { code, message, subcode } = describeError(err);
          const failedSource = (err as DsoError).source ?? source;
          record({ spec, ok: false, code, subcode, error: message, source: failedSource });
          throw Object.assign(new DsoError(code, `secret ${spec.Name} of service ${spec.Service}: ${message}`), {
            source: failedSource,
          });
        }
      }
    } catch (err) {
      for (const file of created) fs.rmSync(file, { force: true });
      if (!before) {
        fs.rmSync(dir, { recursive: true, force: true });
        this.options.liveness.forget(project);
      }
      throw err;
    }
    // Files of an earlier `up` that this one no longer names are removed.
    for (const [name, old] of before ?? []) if (!entries.has(name)) fs.rmSync(old.file, { force: true });
    this.projects.set(project, entries);
    this.options.logger.info('compose project files written', { project, files: entries.size, dir });
    return { Project: project, Files: [...entries.values()].map((e) => ({ ...e.report })) };
  }

  private sourceReport(source: DriverResult['source']): Partial<ComposeFileReport> {
    return { Path: source.path, Field: source.field, Version: source.version, LeaseExpiresAt: source.leaseExpiresAt };
  }

  async down(project: string): Promise<ComposeDownReply> {
    const entries = this.projects.get(project);
    const dir = path.join(this.root, project);
    let removed = 0;
    for (const entry of entries?.values() ?? []) {
      fs.rmSync(entry.file, { force: true });
      removed++;
    }
    // Files of an `up` this plugin process does not remember (none survive a restart, but be sure).
    if (fs.existsSync(dir)) {
      for (const name of fs.readdirSync(dir)) {
        fs.rmSync(path.join(dir, name), { force: true });
        if (!entries?.has(name)) removed++;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
    this.projects.delete(project);
    this.options.liveness.forget(project);
    this.options.logger.info('compose project files removed', { project, files: removed });
    return { Project: project, Removed: removed };
  }

  list(project?: string): ComposeListReply {
    const projects = [...this.projects.entries()].filter(([name]) => project === undefined || name === project);
    return {
      Projects: projects.map(([name, entries]) => ({
        Project: name,
        Files: [...entries.values()].map((e) => ({ ...e.report })),
      })),
    };
  }

  /** A project's files that follow Vault (dso.rotate is not false). */
  private refreshed(project: string): Entry[] {
    return [...(this.projects.get(project)?.values() ?? [])].filter((e) => e.refresh !== 'off');
  }

  /** Services whose leases end within `windowMs` and cannot be renewed past it get a new credential generation. */
  private renewEnding(windowMs: number): void {
    const now = Date.now();
    for (const lease of this.options.leases?.describe() ?? []) {
      const parsed = parseComposeOwner(lease.owner.replace(/^(task|service):/, ''));
      if (!parsed || parsed.generation === undefined) continue;
      if (parsed.generation !== this.options.liveness.generation(parsed.project, parsed.service)) continue;
      const follows = this.refreshed(parsed.project).some((e) => e.spec.Service === parsed.service);
      const endsAt = Date.parse(lease.expiresAt ?? '');
      const ending = endsAt - now <= windowMs && (lease.nearMaxTtl || !lease.renewable); // NaN: no end known
      if (!follows || !ending) continue;
      const generation = this.options.liveness.nextGeneration(parsed.project, parsed.service);
      this.options.logger.info('compose service gets fresh credentials before its lease ends', {
        project: parsed.project,
        service: parsed.service,
        path: lease.path,
        endsAt: lease.expiresAt,
        generation,
      });
    }
  }

  /** One pass: re-read every file's secret, rewrite what changed, restart where asked. */
  async check(): Promise<void> {
    if (this.checking || this.projects.size === 0) return;
    this.checking = true;
    try {
      if (!this.isTmpfs(this.root)) {
        if (!this.notTmpfsLogged)
          this.options.logger.error('compose secret files are not refreshed: their directory is no longer a tmpfs', {
            dir: this.root,
          });
        this.notTmpfsLogged = true;
        return;
      }
      this.notTmpfsLogged = false;
      this.renewEnding(this.options.intervalMs * 1.5 + 5_000);
      for (const project of this.projects.keys()) {
        // A project whose containers are gone (`docker compose down` without `docker dso down`)
        // is not refreshed: new leases for it would only be revoked again by the reaper.
        if ((await this.options.liveness.present(project).catch(() => true)) === false) continue;
        await this.refresh(project, this.refreshed(project));
      }
    } finally {
      this.checking = false;
    }
  }

  /** Re-reads each entry's secret and rewrites what changed; restarts services whose changed file says so. */
  private async refresh(project: string, entries: Entry[]): Promise<Map<string, string | undefined>> {
    const restart = new Set<string>();
    const errors = new Map<string, string | undefined>();
    for (const entry of entries) {
      try {
        errors.set(entry.spec.Service, errors.get(entry.spec.Service));
        const result = await this.options.driver.getSecret(this.facts(project, entry));
        Object.assign(entry.report, this.sourceReport(result.source));
        entry.report.Error = undefined;
        const digest = digestOf(result.value);
        if (digest === entry.digest) continue;
        if (!fs.existsSync(entry.file))
          throw new DsoError('ERR_NOT_FOUND', `${entry.file} is gone (removed outside DSO)`);
        this.write(entry.file, result.value, entry.spec);
        entry.digest = digest;
        entry.report.WrittenAt = new Date().toISOString();
        if (entry.refresh === 'restart') restart.add(entry.spec.Service);
        this.options.logger.info('compose secret file refreshed', {
          project,
          service: entry.spec.Service,
          secret: entry.spec.Name,
          path: result.source.path,
          version: result.source.version,
          action: entry.refresh,
        });
      } catch (err) {
        const { message } = describeError(err);
        entry.report.Error = message;
        errors.set(entry.spec.Service, message);
        this.options.logger.warn('compose secret file not refreshed', {
          project,
          service: entry.spec.Service,
          secret: entry.spec.Name,
          error: message,
        });
      }
    }
    for (const service of restart) {
      const error = await this.restart(project, service);
      if (error) errors.set(service, error);
    }
    return errors;
  }

  /**
   * `docker dso rotate` for a compose secret (`<project>/<name>`, `<project>_<name>`, or
   * `<name>` when one project has it): re-read now; dynamic secrets get fresh credentials.
   * Undefined when no compose project has such a secret.
   */
  async refreshNow(secret: string): Promise<RotationReport | undefined> {
    const matches: Entry[] = [];
    for (const [project, entries] of this.projects) {
      for (const e of entries.values()) {
        if (secret === e.spec.Name || secret === `${project}/${e.spec.Name}` || secret === `${project}_${e.spec.Name}`)
          matches.push(e);
      }
    }
    if (matches.length === 0) return undefined;
    const projects = new Set(matches.map((e) => e.project));
    if (projects.size > 1)
      throw new DsoError(
        'ERR_BAD_REQUEST',
        `several compose projects have a secret ${secret} (${[...projects].join(', ')}): name ` +
          `one as <project>/${secret}`,
      );
    const project = matches[0].project;
    const all = [...(this.projects.get(project)?.values() ?? [])];
    const chosen = new Set(matches);
    // A dynamic secret's service gets a new lease; its other files from that lease follow.
    const held = this.options.leases?.describe() ?? [];
    const leased = (e: Entry) =>
      e.report.LeaseExpiresAt !== undefined ||
      held.some((l) => l.owner === `task:${this.facts(project, e).TaskID}` && l.path === e.report.Path);
    const renewed = new Set<string>();
    for (const e of matches.filter(leased)) {
      if (renewed.has(e.spec.Service)) continue;
      renewed.add(e.spec.Service);
      const others = all.filter((o) => o.spec.Service === e.spec.Service && leased(o));
      this.options.liveness.nextGeneration(project, e.spec.Service);
      for (const other of others) chosen.add(other);
    }
    const errors = await this.refresh(project, [...chosen]);
    return {
      secret: `${project}/${matches[0].spec.Name}`,
      reason: 'on-demand',
      services: [...errors].map(([service, error]) => ({
        service: `${project}-${service}`,
        serviceId: composeOwnerId(project, service),
        outcome: error ? 'failed' : 'rolled',
        ...(error ? { error } : {}),
      })),
    };
  }

  private async restart(project: string, service: string): Promise<string | undefined> {
    try {
      const containers = await this.options.docker.containers([
        `${PROJECT_LABEL}=${project}`,
        `${SERVICE_LABEL}=${service}`,
      ]);
      const running = containers.filter((c) => c.State === 'running');
      for (const c of running) await this.options.docker.restartContainer(c.Id);
      this.options.logger.info('compose service restarted for a new secret value', {
        project,
        service,
        containers: running.length,
      });
      return undefined;
    } catch (err) {
      const { message } = describeError(err);
      this.options.logger.error('compose service not restarted after a new secret value', {
        project,
        service,
        error: message,
      });
      return message;
    }
  }

  start(): void {
    this.stopLoop ??= repeat(
      () => this.check(),
      this.options.intervalMs,
      () => this.options.intervalMs,
    );
  }

  stop(): void {
    this.stopLoop?.();
    this.stopLoop = undefined;
  }
}
