// The shape every secrets engine has: where a reference really points, and reading it.
import type { LeaseOwner } from '../vault/leases';
import type { Workload } from '../vault/session';
import type { MountInfo } from './mounts';

export interface ReadOptions {
  version?: number;
  params: Record<string, string>;
  /** POST `params` as the body (decided and allowed by resolve/writes.ts), else GET. */
  write?: boolean;
  deadline: number;
  workload?: Workload;
  /** Who a leased secret belongs to: its task, or its service when copies are shared. */
  owner?: LeaseOwner;
  /** For leases: the service to roll before the lease ends, when rotation is on. */
  serviceId?: string;
  rotate?: boolean;
}

export interface SecretRead {
  /** The API path read, e.g. secret/data/app/db. */
  apiPath: string;
  data: Record<string, unknown>;
  version?: number;
  /** KV v2: when that version was written (Vault's created_time); rotation compares it with task ages. */
  versionCreatedAt?: string;
  /** Leased (dynamic) values are per task by default; static ones are shared. */
  leased: boolean;
  lease?: { id: string; expiresAt: number };
}

export interface SecretEngine {
  /** The API path a reference (maybe in CLI form) resolves to on this mount. */
  apiPath(path: string, mount: MountInfo): string;
  read(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead>;
}
