// Dynamic secrets: any read that Vault answers with a lease (database/creds/<role>, ...),
// and engines that issue on write (pki/issue/<role>), whose parameters come from the
// reference's query string; whether a read is a write, and may be, is decided before
// (resolve/writes.ts). One lease per owner and path (see ../vault/leases.ts).
import type { LeaseManager, LeaseOwner, LeasedAnswer } from '../vault/leases';
import { ownerKey } from '../vault/leases';
import { VaultApiError } from '../vault/errors';
import type { VaultSession } from '../vault/session';
import { DsoError } from '../errors';
import type { FaultLog } from '../log';
import type { ReadOptions, SecretEngine, SecretRead } from './engine';
import type { MountInfo } from './mounts';

export class LeasedEngine implements SecretEngine {
  constructor(
    private readonly session: VaultSession,
    private readonly leases: LeaseManager,
    private readonly faults?: FaultLog,
  ) {}

  apiPath(path: string): string {
    return path;
  }

  async read(apiPath: string, mount: MountInfo, options: ReadOptions): Promise<SecretRead> {
    const write = options.write === true;
    const owner: LeaseOwner = options.owner ?? { kind: 'none', id: '' };
    const params = JSON.stringify(Object.entries(options.params).sort(([a], [b]) => a.localeCompare(b)));
    const key = `${ownerKey(owner)}|${apiPath}|${params}`;
    const lease = await this.leases.acquire(
      key,
      owner,
      apiPath,
      async (usedToken) => {
        try {
          const answer = await this.session.call<LeasedAnswer>({
            method: write ? 'POST' : 'GET',
            path: apiPath,
            body: write ? options.params : undefined,
            deadline: options.deadline,
            workload: options.workload,
            usedToken,
          });
          this.faults?.recovered(`engine:${apiPath}`, 'secrets engine serving again', { path: apiPath });
          return answer;
        } catch (err) {
          const mapped = mapError(err, apiPath, mount);
          // The engine itself failing (its database down...) is a fault worth one line.
          if (err instanceof VaultApiError && err.status >= 500) {
            this.faults?.fault(`engine:${apiPath}`, 'secrets engine failing', {
              path: apiPath,
              error: (mapped as Error).message,
            });
          }
          throw mapped;
        }
      },
      { serviceId: options.serviceId, rotate: options.rotate },
    );
    return { apiPath, data: lease.data, leased: true, lease: { id: lease.leaseId, expiresAt: lease.expiresAt } };
  }
}

function mapError(err: unknown, apiPath: string, mount: MountInfo): unknown {
  if (!(err instanceof VaultApiError)) return err;
  if (err.status === 403)
    return new DsoError(
      'ERR_VAULT_DENIED',
      `permission denied on ${apiPath}: the plugin's Vault policy must allow it (${err.reason})`,
    );
  const engine = `${mount.type} engine at ${mount.path}`;
  if (err.status === 404 || err.status === 400) {
    const message = `${engine} cannot serve ${apiPath}: ${err.reason}`;
    return new DsoError('ERR_NOT_FOUND', message, { subcode: 'engine-path' });
  }
  return new DsoError(err.code, `${engine} failed to serve ${apiPath}: ${err.reason}`, { subcode: 'engine-failed' });
}
