// Which lease owners (tasks, services) still exist, read from the Docker Engine API.
import type { LeaseOwner, OwnerLiveness } from '../vault/leases';
import type { DockerApi } from '../docker/api';

/** Task states after which a task never runs again. */
const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'orphaned', 'remove']);

export class DockerLiveness implements OwnerLiveness {
  constructor(private readonly docker: DockerApi) {}

  async alive(owners: LeaseOwner[]): Promise<Map<string, boolean>> {
    const result = new Map<string, boolean>();
    const taskIds = owners.filter((o) => o.kind === 'task').map((o) => o.id);
    const serviceIds = owners.filter((o) => o.kind === 'service').map((o) => o.id);
    if (taskIds.length) {
      const tasks = await this.docker.tasks(taskIds);
      const running = new Set(tasks.filter((t) => !TERMINAL.has(t.Status?.State ?? '')).map((t) => t.ID));
      for (const id of taskIds) result.set(`task:${id}`, running.has(id));
    }
    if (serviceIds.length) {
      const services = await this.docker.services(serviceIds);
      const present = new Set(services.map((s) => s.ID));
      for (const id of serviceIds) result.set(`service:${id}`, present.has(id));
    }
    return result;
  }
}
