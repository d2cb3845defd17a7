// The shape every secrets engine has: where a reference really points, and reading it.
import type { Workload } from '../vault/session';
import type { MountInfo } from './mounts';

export interface ReadOptions {
  version?: number;
  params: Record<string, string>;
  deadline: number;
  workload?: Workload;
}

export interface SecretRead {
  /** The API path read, e.g. secret/data/app/db. */
  apiPath: string;
  data: Record<string, unknown>;
  version?: number;
  /** Leased (dynamic) values are per task by default; static ones are shared. */
  leased: boolean;
}

export interface SecretEngine {
  /** The API path a reference (maybe in CLI form) resolves to on this mount. */
  apiPath(path: string, mount: MountInfo): string;
  read(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead>;
}
