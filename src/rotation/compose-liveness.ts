// Which lease owners of compose projects (plain hosts, no swarm) still exist, for the lease
// reaper: an owner is one service of one project, `compose:<project>/<service>[#<generation>]`,
// alive while a container carries that project's and service's compose labels. Owners of
// swarm tasks and services go to the swarm liveness as before, so one reaper serves both.
// Two cases the Engine cannot answer by itself: between `docker dso up` writing the files
// and `docker compose up` creating the containers an owner has no container yet (a grace
// period keeps it), and a generation replaced by fresh credentials (before a lease's max
// TTL) is gone at once, so its lease is revoked.
import type { LeaseOwner, OwnerLiveness } from '../vault/leases';
import { ownerKey } from '../vault/leases';
import type { DockerApi } from '../docker/api';

export const COMPOSE_OWNER_PREFIX = 'compose:';
export const PROJECT_LABEL = 'com.docker.compose.project';
export const SERVICE_LABEL = 'com.docker.compose.service';
/** How long an owner without containers counts as alive after `docker dso up` resolved it. */
export const PENDING_GRACE_MS = 120_000;

export interface ComposeOwner {
  project: string;
  service: string;
  generation?: number;
}

/** The owner id of a project's service (and credential generation). */
export function composeOwnerId(project: string, service: string, generation?: number): string {
  return `${COMPOSE_OWNER_PREFIX}${project}/${service}${generation === undefined ? '' : `#${generation}`}`;
}

export function parseComposeOwner(id: string): ComposeOwner | undefined {
  const m = /^compose:([^/]+)\/([^#]+)(?:#(\d+))?$/.exec(id);
  if (!m) return undefined;
  return { project: m[1], service: m[2], generation: m[3] === undefined ? undefined : Number(m[3]) };
}

export class ComposeLiveness implements OwnerLiveness {
  /** project -> when `up` last resolved it (its containers may not exist yet). */
  private readonly pending = new Map<string, number>();
  /** `project/service` -> the credential generation in use. */
  private readonly generations = new Map<string, number>();

  constructor(
    private readonly swarm: OwnerLiveness | undefined,
    private readonly docker: DockerApi,
    private readonly now: () => number = Date.now,
  ) {}

  /** `docker dso up` resolved this project: its owners live until its containers can exist. */
  expect(project: string): void {
    this.pending.set(project, this.now());
  }

  /** `docker dso down`, or a failed up: the project's owners live only as long as containers do. */
  forget(project: string): void {
    this.pending.delete(project);
    for (const key of [...this.generations.keys()]) if (key.startsWith(`${project}/`)) this.generations.delete(key);
  }

  generation(project: string, service: string): number {
    return this.generations.get(`${project}/${service}`) ?? 0;
  }

  /** Fresh credentials for a service: the previous generation's leases are revoked by the reaper. */
  nextGeneration(project: string, service: string): number {
    const next = this.generation(project, service) + 1;
    this.generations.set(`${project}/${service}`, next);
    return next;
  }

  /** Did `docker dso up` resolve the project less than PENDING_GRACE_MS ago? */
  private pendingNow(project: string): boolean {
    const since = this.pending.get(project);
    return since !== undefined && this.now() - since < PENDING_GRACE_MS;
  }

  /** Does the project have a container, or is its `up` still pending? */
  async present(project: string): Promise<boolean> {
    return this.pendingNow(project) || (await this.docker.containers([`${PROJECT_LABEL}=${project}`])).length > 0;
  }

  async alive(owners: LeaseOwner[]): Promise<Map<string, boolean> | undefined> {
    const compose = owners.filter((o) => o.id.startsWith(COMPOSE_OWNER_PREFIX));
    const others = owners.filter((o) => !o.id.startsWith(COMPOSE_OWNER_PREFIX));
    const result = new Map<string, boolean>();
    if (others.length && this.swarm) {
      try {
        const answer = await this.swarm.alive(others);
        if (answer) for (const [k, v] of answer) result.set(k, v);
      } catch (err) {
        // A plain host has no tasks to ask about: unknown, so those leases are kept; but a
        // swarm-only failure must not hide what is known about compose owners.
        if (compose.length === 0) throw err;
      }
    }
    const parsed = compose.map((owner) => [owner, parseComposeOwner(owner.id)] as const);
    const running = new Set<string>();
    for (const project of new Set(parsed.map(([, p]) => p?.project))) {
      if (project === undefined) continue;
      const containers = await this.docker.containers([`${PROJECT_LABEL}=${project}`]);
      for (const c of containers) if (c.Labels?.[SERVICE_LABEL]) running.add(`${project}/${c.Labels[SERVICE_LABEL]}`);
      if (containers.length) this.pending.delete(project);
    }
    for (const [owner, p] of parsed) {
      if (!p) continue;
      const current = p.generation === undefined || p.generation === this.generation(p.project, p.service);
      result.set(ownerKey(owner), current && (running.has(`${p.project}/${p.service}`) || this.pendingNow(p.project)));
    }
    return result;
  }
}
