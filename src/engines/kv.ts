// KV secrets, version 1 and 2. On a v2 mount `data/` is added to CLI-style paths, and
// `dso.version` reads an older version. Identical concurrent reads share one request.
import { DsoError } from '../errors';
import { VaultApiError } from '../vault/errors';
import type { VaultSession } from '../vault/session';
import { SingleFlight } from '../singleflight';
import type { ReadOptions, SecretEngine, SecretRead } from './engine';
import type { MountInfo } from './mounts';

interface KvV2Answer {
  data?: {
    data?: Record<string, unknown> | null;
    metadata?: { version?: number; created_time?: string; deletion_time?: string; destroyed?: boolean } | null;
  };
}

interface KvV1Answer {
  data?: Record<string, unknown> | null;
}

/** How long a successful KV read serves identical requests after it returned. */
export const KV_REUSE_MS = 1_000;

export class KvEngine implements SecretEngine {
  /** A read is shared with identical requests that start up to 1 s after it returned (a herd). */
  private readonly flights = new SingleFlight<SecretRead>(KV_REUSE_MS);

  constructor(private readonly session: VaultSession) {}

  get mergedReads(): number {
    return this.flights.merged;
  }

  apiPath(path: string, mount: MountInfo): string {
    const rest = `${path}/`.startsWith(mount.path) ? path.slice(mount.path.length) : path;
    if (rest === '' || rest === 'data')
      throw new DsoError('ERR_REFERENCE', `${path} names the KV mount ${mount.path}, not a secret in it`);
    if (mount.kvVersion !== 2 || rest.startsWith('data/')) return path;
    return `${mount.path}data/${rest}`;
  }

  read(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead> {
    if (options.version !== undefined && mount.kvVersion !== 2) {
      throw new DsoError('ERR_LABELS', `dso.version needs a KV v2 mount; ${mount.path} is KV v1`);
    }
    const key = `${apiPath}@${options.version ?? 'latest'}`;
    return this.flights.run(
      key,
      () => (mount.kvVersion === 2 ? this.readV2(apiPath, mount, options) : this.readV1(apiPath, mount, options)),
      options.deadline,
    );
  }

  private async readV2(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead> {
    const query = options.version !== undefined ? { version: options.version } : undefined;
    let answer: KvV2Answer;
    try {
      answer = await this.session.call<KvV2Answer>({
        method: 'GET',
        path: apiPath,
        query,
        deadline: options.deadline,
        workload: options.workload,
      });
    } catch (err) {
      throw this.mapError(err, apiPath, mount, options.version);
    }
    const meta = answer.data?.metadata;
    const data = answer.data?.data;
    if (!data) {
      const state = meta?.destroyed ? 'destroyed' : meta?.deletion_time ? 'deleted' : 'empty';
      throw new DsoError(
        'ERR_NOT_FOUND',
        `${apiPath}${options.version ? ` version ${options.version}` : ''} is ${state}`,
      );
    }
    return { apiPath, data, version: meta?.version, versionCreatedAt: meta?.created_time, leased: false };
  }

  private async readV1(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead> {
    let answer: KvV1Answer;
    try {
      answer = await this.session.call<KvV1Answer>({
        method: 'GET',
        path: apiPath,
        deadline: options.deadline,
        workload: options.workload,
      });
    } catch (err) {
      throw this.mapError(err, apiPath, mount);
    }
    if (!answer.data) throw new DsoError('ERR_NOT_FOUND', `no secret at ${apiPath}`);
    return { apiPath, data: answer.data, leased: false };
  }

  private mapError(err: unknown, apiPath: string, mount: MountInfo, version?: number): unknown {
    if (!(err instanceof VaultApiError)) return err;
    if (err.status === 404) {
      return new DsoError(
        'ERR_NOT_FOUND',
        `no secret at ${apiPath}${version ? ` version ${version}` : ''} (KV v${mount.kvVersion} mount ${mount.path})`,
      );
    }
    if (err.status === 403) {
      return new DsoError(
        'ERR_VAULT_DENIED',
        `permission denied reading ${apiPath}: the plugin's Vault policy must allow "read" on it (${err.reason})`,
      );
    }
    return err;
  }
}
