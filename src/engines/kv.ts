// KV secrets, version 1 and 2. On a v2 mount `data/` is added to CLI-style paths, and
// `dso.version` reads an older version. Identical concurrent reads share one request.
import { DsoError } from '../errors';
import { VaultApiError } from '../vault/errors';
import type { VaultSession } from '../vault/session';
import { SingleFlight } from '../singleflight';
import type { ReadOptions, SecretEngine, SecretRead } from './engine';
import type { MountInfo } from './mounts';

/** KV v1 answers with the secret as `data`; v2 with `data.data` and `data.metadata`. */
interface KvAnswer {
  data?: Record<string, unknown> | null;
}

interface KvV2Data {
  data?: Record<string, unknown> | null;
  metadata?: { version?: number; created_time?: string; deletion_time?: string; destroyed?: boolean } | null;
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
    // '#' is in no path (reference.ts): a version's key never equals another path's.
    const key = options.version === undefined ? apiPath : `${apiPath}#${options.version}`;
    return this.flights.run(key, () => this.ask(apiPath, mount, options), options.deadline);
  }

  private async ask(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead> {
    const { version } = options;
    let answer: KvAnswer;
    try {
      answer = await this.session.call<KvAnswer>({
        method: 'GET',
        path: apiPath,
        query: version !== undefined ? { version } : undefined,
        deadline: options.deadline,
        workload: options.workload,
      });
    } catch (err) {
      throw this.mapError(err, apiPath, mount, version);
    }
    if (mount.kvVersion !== 2) {
      if (!answer.data) throw new DsoError('ERR_NOT_FOUND', `no secret at ${apiPath}`);
      return { apiPath, data: answer.data, leased: false };
    }
    const { data, metadata: meta } = (answer.data ?? {}) as KvV2Data;
    if (!data) {
      const state = meta?.destroyed ? 'destroyed' : meta?.deletion_time ? 'deleted' : 'empty';
      throw new DsoError('ERR_NOT_FOUND', `${apiPath}${version ? ` version ${version}` : ''} is ${state}`);
    }
    return { apiPath, data, version: meta?.version, versionCreatedAt: meta?.created_time, leased: false };
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
