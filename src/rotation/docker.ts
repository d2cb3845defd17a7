// The few Docker Engine API calls DSO makes, over the docker.sock the managed plugin mounts.
// A small client of our own: three GETs and one POST do not justify a dependency tree
// with native add-ons inside the plugin's rootfs.
import * as http from 'node:http';
import { DsoError } from '../errors';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export interface SwarmTask {
  ID: string;
  ServiceID?: string;
  DesiredState?: string;
  Status?: { State?: string };
}

export interface SwarmService {
  ID: string;
  Spec?: { Name?: string };
}

export class DockerEngine {
  constructor(
    private readonly socketPath = DEFAULT_DOCKER_SOCKET,
    private readonly timeoutMs = 5_000,
  ) {}

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          timeout: this.timeoutMs,
          headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 500) >= 300) {
              let message = text.slice(0, 300);
              try {
                message = (JSON.parse(text) as { message?: string }).message ?? message;
              } catch {
                // not JSON: keep the text
              }
              reject(Object.assign(new DsoError('ERR_INTERNAL', `Docker Engine ${method} ${path.split('?')[0]}: ${res.statusCode} ${message}`), { status: res.statusCode }));
              return;
            }
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch {
              reject(new DsoError('ERR_INTERNAL', `Docker Engine ${method} ${path}: answer is not JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) => reject(new DsoError('ERR_INTERNAL', `Docker Engine at ${this.socketPath} unreachable: ${err.code ?? err.message}`)));
      req.end(payload);
    });
  }

  tasks(ids: string[]): Promise<SwarmTask[]> {
    const filters = encodeURIComponent(JSON.stringify({ id: ids }));
    return this.request<SwarmTask[]>('GET', `/tasks?filters=${filters}`);
  }

  services(ids: string[]): Promise<SwarmService[]> {
    const filters = encodeURIComponent(JSON.stringify({ id: ids }));
    return this.request<SwarmService[]>('GET', `/services?filters=${filters}`);
  }
}
