// The few Docker Engine API calls DSO makes, over the docker.sock the managed plugin mounts.
// A small client of our own: a few GETs and one POST do not justify a dependency tree
// with native add-ons inside the plugin's rootfs. Every call has a deadline for the whole
// exchange (not only an idle timeout), so a stalled daemon cannot stall rotation or
// lease renewal behind it.
import * as http from 'node:http';
import { DsoError } from '../errors';
import { DEFAULT_DOCKER_SOCKET, DockerPlugin } from './objects';

export interface SwarmTask {
  ID: string;
  ServiceID?: string;
  DesiredState?: string;
  /** When the manager created the task (RFC 3339, the leader's clock). */
  CreatedAt?: string;
  Status?: { State?: string; Err?: string };
}

/** An answer over a Unix socket: its HTTP status and body. */
export interface SocketReply {
  status: number;
  body: string;
}

/**
 * One HTTP exchange with JSON over a Unix socket (the engine's, a plugin's), the whole of it
 * within `timeoutMs`, not only an idle timeout: a peer that drips its answer is cut off too.
 * Fails with the socket's error (ENOENT, EACCES...), ETIMEDOUT past the deadline, or ECUTOFF
 * for an answer cut off before its end.
 */
export function socketRequest(socketPath: string, method: string, path: string, body: unknown, timeoutMs: number) {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const failure = (code: string, message: string) => Object.assign(new Error(message), { code });
  return new Promise<SocketReply>((resolve, reject) => {
    const headers = payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {};
    const signal = AbortSignal.timeout(timeoutMs);
    const req = http.request({ socketPath, method, path, timeout: timeoutMs, signal, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      // Cut off mid-answer (deadline, peer gone): settle instead of waiting for an end.
      res.on('error', () => undefined);
      res.on('close', () => res.complete || reject(failure('ECUTOFF', 'cut off before its answer ended')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    const timedOut = () => failure('ETIMEDOUT', `no answer within ${timeoutMs} ms`);
    req.on('timeout', () => req.destroy(timedOut()));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err.name === 'AbortError' ? timedOut() : err));
    req.end(payload);
  });
}

/** Ids per filtered request: ~40 bytes each, URL-encoded, well under any server's limit. */
const ID_BATCH = 100;
export class DockerApi {
  constructor(
    private readonly socketPath = DEFAULT_DOCKER_SOCKET,
    private readonly timeoutMs = 5_000,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const call = `${method} ${path.split('?')[0]}`;
    const reply = await socketRequest(this.socketPath, method, path, body, timeoutMs).catch(
      (err: NodeJS.ErrnoException) => {
        const at = `Docker Engine at ${this.socketPath}`;
        const cut = `${at}: ${call} cut off before its answer ended (deadline ${timeoutMs} ms)`;
        const why = err.code === 'ETIMEDOUT' ? err.message : (err.code ?? err.message);
        throw new DsoError('ERR_INTERNAL', err.code === 'ECUTOFF' ? cut : `${at} unreachable: ${why}`);
      },
    );
    let parsed: unknown;
    try {
      parsed = reply.body ? JSON.parse(reply.body) : undefined;
    } catch {
      if (reply.status < 300) throw new DsoError('ERR_INTERNAL', `Docker Engine ${method} ${path}: answer is not JSON`);
    }
    if (reply.status >= 300) {
      const message = (parsed as { message?: string } | undefined)?.message ?? reply.body.slice(0, 300);
      const error = new DsoError('ERR_INTERNAL', `Docker Engine ${call}: ${reply.status} ${message}`);
      throw Object.assign(error, { status: reply.status });
    }
    return parsed as T;
  }

  tasks(ids: string[]): Promise<SwarmTask[]> {
    return this.byIds<SwarmTask>('/tasks', ids);
  }

  /** Every service, or those of `ids`. */
  services(ids?: string[]): Promise<SwarmServiceFull[]> {
    return ids ? this.byIds('/services', ids) : this.request('GET', '/services');
  }

  secrets(): Promise<SwarmSecret[]> {
    return this.request('GET', '/secrets');
  }

  /** Whether this engine is the swarm's leader (rotation runs there only). */
  async isLeader(): Promise<boolean> {
    const swarm = (await this.info()).Swarm;
    if (!swarm?.NodeID || !swarm.ControlAvailable) return false;
    const node = await this.request<{ ManagerStatus?: { Leader?: boolean } }>(
      'GET',
      `/nodes/${encodeURIComponent(swarm.NodeID)}`,
    );
    return node.ManagerStatus?.Leader === true;
  }

  async updateService(id: string, version: number, spec: SwarmServiceFull['Spec']): Promise<void> {
    await this.request('POST', `/services/${encodeURIComponent(id)}/update?version=${version}`, spec);
  }

  /** The service of a task; undefined when the task is gone or the engine cannot say. */
  async taskService(taskId: string): Promise<string | undefined> {
    return (await this.request<SwarmTask>('GET', `/tasks/${encodeURIComponent(taskId)}`).catch(() => undefined))
      ?.ServiceID;
  }

  /** Tasks whose desired state is running, of every service: what containers hold now. */
  runningTasks(): Promise<SwarmTask[]> {
    const filters = encodeURIComponent(JSON.stringify({ 'desired-state': ['running'] }));
    return this.request<SwarmTask[]>('GET', `/tasks?filters=${filters}`);
  }

  /**
   * GET `route` filtered by `ids`, ID_BATCH ids a request: the lease reaper asks about every
   * lease owner at once, and hundreds of ids in one URL pass the size a server accepts
   * (the liveness answer would then be "unknown" and renewals would stall). No ids: nothing asked.
   */
  private async byIds<T>(route: string, ids: string[]): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < ids.length; i += ID_BATCH) {
      const filters = encodeURIComponent(JSON.stringify({ id: ids.slice(i, i + ID_BATCH) }));
      out.push(...(await this.request<T[]>('GET', `${route}?filters=${filters}`)));
    }
    return out;
  }

  /** GET /info: the engine's swarm state, among others. */
  info(): Promise<DockerInfo> {
    return this.request<DockerInfo>('GET', '/info');
  }

  /** GET /plugins/{name or id}/json. */
  plugin(nameOrId: string): Promise<DockerPlugin> {
    return this.request<DockerPlugin>('GET', `/plugins/${encodeURIComponent(nameOrId)}/json`);
  }

  /** `docker plugin set`: env values (`NAME=value`) and mount sources (`mount.source=/path`). */
  async setPlugin(name: string, pairs: string[]): Promise<void> {
    await this.request('POST', `/plugins/${encodeURIComponent(name)}/set`, pairs);
  }

  /** Enables a plugin; dockerd answers once its socket answers, or after `timeoutSeconds`. */
  async enablePlugin(name: string, timeoutSeconds: number): Promise<void> {
    const path = `/plugins/${encodeURIComponent(name)}/enable?timeout=${timeoutSeconds}`;
    await this.request('POST', path, undefined, this.timeoutMs + timeoutSeconds * 1_000);
  }

  /** Disables a plugin; `force` even while services or containers use it. */
  async disablePlugin(name: string, force = false): Promise<void> {
    await this.request('POST', `/plugins/${encodeURIComponent(name)}/disable?force=${force ? 1 : 0}`);
  }

  /** GET /services/{name or id}. */
  service(nameOrId: string): Promise<SwarmServiceFull> {
    return this.request<SwarmServiceFull>('GET', `/services/${encodeURIComponent(nameOrId)}`);
  }

  /** Services that carry every `label=value` given, with their running and desired task counts. */
  servicesWithStatus(labels: string[]): Promise<SwarmServiceFull[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return this.request<SwarmServiceFull[]>('GET', `/services?status=true&filters=${filters}`);
  }

  /** GET /secrets/{name or id}. */
  secret(nameOrId: string): Promise<SwarmSecret> {
    return this.request<SwarmSecret>('GET', `/secrets/${encodeURIComponent(nameOrId)}`);
  }

  /** Every task of one service, in any state. */
  serviceTasks(serviceId: string): Promise<SwarmTask[]> {
    const filters = encodeURIComponent(JSON.stringify({ service: [serviceId] }));
    return this.request<SwarmTask[]>('GET', `/tasks?filters=${filters}`);
  }

  /** Containers in any state that carry every `label=value` given (compose projects on plain hosts). */
  containers(labels: string[]): Promise<DockerContainer[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return this.request<DockerContainer[]>('GET', `/containers/json?all=1&filters=${filters}`);
  }

  /** Restarts a container with its own stop timeout (compose's stop_grace_period). */
  async restartContainer(id: string): Promise<void> {
    // Docker answers once the container is up again: allow for a long grace period.
    await this.request('POST', `/containers/${encodeURIComponent(id)}/restart`, undefined, this.timeoutMs + 120_000);
  }
}

export interface DockerContainer {
  Id: string;
  State?: string;
  Labels?: Record<string, string> | null;
}

export interface SwarmSecret {
  ID: string;
  Spec: { Name: string; Labels?: Record<string, string> | null; Driver?: { Name?: string } | null };
}

export interface SwarmServiceFull {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string> | null;
    TaskTemplate: {
      ForceUpdate?: number;
      ContainerSpec?: { Secrets?: Array<{ SecretID: string; SecretName: string; File?: { Name?: string } }> | null };
    };
    [key: string]: unknown;
  };
  UpdateStatus?: { State?: string };
  /** With `status=true` (API 1.41, engine 20.10). */
  ServiceStatus?: { RunningTasks?: number; DesiredTasks?: number };
}

export interface DockerInfo {
  Swarm?: { NodeID?: string; ControlAvailable?: boolean; LocalNodeState?: string };
}

/** The calls rotation makes; a Pick so the decision logic can be tested with a fake. */
export type SwarmApi = Pick<
  DockerApi,
  'isLeader' | 'secrets' | 'services' | 'service' | 'updateService' | 'taskService' | 'runningTasks'
>;
